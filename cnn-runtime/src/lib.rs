//! Runtime for networks compiled by [`cnn_net!`]: the kernels the generated
//! code calls, plus optimizers, weight formats and data loading.
//!
//! Layout conventions follow PyTorch: activations are NCHW and row-major,
//! convolution weights are OIHW, linear weights are `[out, in]`, and every
//! parameter tensor of a net lives in one flat `[f32; PARAM_COUNT]` array in
//! `state_dict` order (see [`TensorInfo`]).
//!
//! Without the default `std` feature the crate is `#![no_std]` and does not
//! use `alloc`: the batch-1 forward pass and the batch-1 training step of a
//! generated net run entirely on caller-provided buffers.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![warn(missing_docs)]

// Lets the generated code's absolute `::cnn_runtime::...` paths resolve inside
// this crate's own unit tests too.
extern crate self as cnn_runtime;

pub use cnn_macros::cnn_net;

pub mod init;
pub mod int8;
pub mod math;
pub mod network;
pub mod ops;
pub mod optim;
pub mod quant;

#[cfg(feature = "std")]
pub mod data;
#[cfg(feature = "std")]
pub mod train;
#[cfg(feature = "std")]
pub mod weights;
#[cfg(feature = "std")]
pub mod workspace;

pub use network::{Alone, Exchange, Gradients, LayerInfo, Network, Target, TensorInfo, TensorRole};

/// Not public API: what the code emitted by `cnn_net!` refers to.
#[doc(hidden)]
pub mod __private {
    pub use crate::network::{
        self, Alone, Exchange, Gradients, LayerInfo, Network, Target, TensorInfo, TensorRole,
    };
    pub use crate::optim::Optimizer;
    pub use crate::{init, int8, ops, quant};
    pub use core;
    #[cfg(feature = "std")]
    pub use std;

    /// Splits a ping-pong scratch buffer: the layer input sits at the front
    /// (`input_at_front`) or the back, the output at the opposite end.
    ///
    /// Panics if `input_len + output_len > scratch.len()`; the memory plan of
    /// the macro guarantees it never happens for generated code.
    #[inline(always)]
    pub fn ping_pong<T>(
        scratch: &mut [T],
        input_at_front: bool,
        input_len: usize,
        output_len: usize,
    ) -> (&[T], &mut [T]) {
        let total = scratch.len();
        assert!(input_len + output_len <= total, "scratch too small");
        if input_at_front {
            let (front, back) = scratch.split_at_mut(total - output_len);
            (&front[..input_len], back)
        } else {
            let (front, back) = scratch.split_at_mut(total - input_len);
            (back, &mut front[..output_len])
        }
    }

    /// The region of a ping-pong scratch where a buffer of `len` lives.
    #[inline(always)]
    pub fn region<T>(scratch: &mut [T], at_front: bool, len: usize) -> &mut [T] {
        let total = scratch.len();
        if at_front {
            &mut scratch[..len]
        } else {
            &mut scratch[total - len..]
        }
    }

    /// Two disjoint regions of an arena: `x` to read and `y` to write (the
    /// memory plan of a graph net places values that are alive together in
    /// disjoint regions).
    ///
    /// Panics if the regions overlap or pass the end; the plan guarantees
    /// neither happens for generated code.
    #[inline(always)]
    pub fn arena_pair<T>(
        arena: &mut [T],
        x: core::ops::Range<usize>,
        y: core::ops::Range<usize>,
    ) -> (&mut [T], &mut [T]) {
        if x.end <= y.start {
            let (low, high) = arena.split_at_mut(y.start);
            (&mut low[x], &mut high[..y.end - y.start])
        } else {
            assert!(y.end <= x.start, "arena regions {x:?} and {y:?} overlap");
            let (low, high) = arena.split_at_mut(x.start);
            (&mut high[..x.end - x.start], &mut low[y])
        }
    }

    /// Implements the `std`-only convenience methods of a generated net
    /// (batched inference, training, weight files). Expands to nothing when
    /// the runtime is built without `std`, so generated code needs no `cfg`.
    #[cfg(feature = "std")]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __impl_std_methods {
        ($net:ident, $grads:ident) => {
            $crate::__std_methods_body!($net, $grads);
        };
    }

    #[cfg(not(feature = "std"))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __impl_std_methods {
        ($net:ident, $grads:ident) => {};
    }

    pub use crate::__impl_std_methods as impl_std_methods;

    /// The `std`-only items of a generated net's `Network` impl (in that
    /// impl block); nothing without `std`, as [`impl_std_methods!`].
    #[cfg(feature = "std")]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __impl_std_network_items {
        () => {
            fn boxed_zeroed() -> $crate::__private::std::boxed::Box<Self> {
                Self::boxed_zeroed()
            }
        };
    }

    #[cfg(not(feature = "std"))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __impl_std_network_items {
        () => {};
    }

    pub use crate::__impl_std_network_items as impl_std_network_items;
}
