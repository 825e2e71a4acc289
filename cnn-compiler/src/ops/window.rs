//! What `conv`, `maxpool` and `avgpool` share: the sliding-window output
//! size and its error, and the pools' arguments, shape rule and geometry
//! (the runtime's `ops/window.rs` is the kernels' counterpart).

use super::{lit, private};
use crate::ctxt::Errors;
use crate::layer::{Accepts, Args, Layer, Pair, Param};
use crate::plan::LayerPlan;
use crate::shape::{need_chw, Provenance, Shape};
use proc_macro2::TokenStream;
use quote::quote;

/// Kernel, stride and padding of a pooling window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub kernel: Pair,
    pub stride: Pair,
    pub pad: Pair,
}

/// `maxpool(k, stride = s, pad = p)` and `avgpool(..)`: the kernel, then options.
pub const POOL_ARGS: &[Param] = &[Param::new("kernel", Accepts::PositivePair)];
pub const POOL_OPTIONS: &[Param] = &[
    Param::new("stride", Accepts::PositivePair),
    Param::new("pad", Accepts::NonNegativePair),
];

impl Window {
    /// A pool's window; the stride defaults to the kernel, as in PyTorch.
    pub fn build(args: &Args) -> Window {
        let zero = args.default_pair(0);
        let kernel = args.pair(0).unwrap_or(zero);
        Window {
            kernel,
            stride: args.option_pair("stride").unwrap_or(Pair {
                span: args.name_span(),
                ..kernel
            }),
            pad: args.option_pair("pad").unwrap_or(zero),
        }
    }

    /// A pool's shape rule: channels kept, at most half the window padded.
    pub fn pool_shape(
        &self,
        layer: &Layer,
        input: Option<Shape>,
        from: &Provenance,
        errors: &mut Errors,
    ) -> Option<(Shape, usize)> {
        let source = &layer.source;
        let (c, h, w) = need_chw(layer, input?, from, errors)?;
        let Window { kernel, stride, pad } = *self;
        if pad.h.saturating_mul(2) > kernel.h || pad.w.saturating_mul(2) > kernel.w {
            errors.push(
                pad.span,
                format!(
                    "{source}: padding {}x{} is more than half the {}x{} window (PyTorch rejects it too)",
                    pad.h, pad.w, kernel.h, kernel.w
                ),
            );
            return None;
        }
        let (oh, ow) = window_output(source, "window", h, w, kernel, stride, pad, errors)?;
        Some((Shape::Chw(c, oh, ow), c))
    }

    /// The runtime's `Pool2d` geometry as a `const G`.
    pub fn geometry(&self, l: &LayerPlan) -> TokenStream {
        let p = private();
        let Shape::Chw(c, h, w) = l.shaped.input else {
            return TokenStream::new();
        };
        let (c, h, w) = (lit(c), lit(h), lit(w));
        let (k, s, pd) = (
            pair_lits(self.kernel),
            pair_lits(self.stride),
            pair_lits(self.pad),
        );
        quote! {
            const G: #p::ops::window::Pool2d = #p::ops::window::Pool2d {
                channels: #c, in_h: #h, in_w: #w, kernel: #k, stride: #s, pad: #pd,
            };
        }
    }
}

/// `(h, w)` as literals.
pub fn pair_lits(pair: Pair) -> TokenStream {
    let (h, w) = (lit(pair.h), lit(pair.w));
    quote!((#h, #w))
}

/// Output size of a sliding window, with the error for a window that does
/// not fit the padded input.
#[allow(clippy::too_many_arguments)]
pub fn window_output(
    source: &str,
    what: &str,
    h: usize,
    w: usize,
    kernel: Pair,
    stride: Pair,
    pad: Pair,
    errors: &mut Errors,
) -> Option<(usize, usize)> {
    let pad_h = pad.h.saturating_mul(2);
    let pad_w = pad.w.saturating_mul(2);
    let (ph, pw) = (h.saturating_add(pad_h), w.saturating_add(pad_w));
    if kernel.h > ph || kernel.w > pw {
        let padded = if pad.h == 0 && pad.w == 0 {
            String::new()
        } else {
            format!(" ({h}x{w} padded by {}x{})", pad.h, pad.w)
        };
        errors.push(
            kernel.span,
            format!(
                "{source}: {what} {}x{} is larger than the input {ph}x{pw}{padded}; the output would be empty",
                kernel.h, kernel.w
            ),
        );
        return None;
    }
    Some(((ph - kernel.h) / stride.h + 1, (pw - kernel.w) / stride.w + 1))
}
