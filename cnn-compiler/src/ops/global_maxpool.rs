//! `global_maxpool`: PyTorch's `nn.AdaptiveMaxPool2d(1)`, the maximum of each
//! channel (the gradient goes to the first maximum); kernels in
//! `cnn-runtime/src/ops/global_maxpool.rs`.

use super::global_pool::{self, channels_and_plane};
use super::{
    lit, private, BackwardIo, Effect, ForwardIo, Int8Code, Int8Io, Int8Output, Int8Step, Op, TensorSpec,
};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;
use quote::quote;

/// `global_maxpool` (no arguments).
#[derive(Clone, Copy, Debug)]
pub struct GlobalMaxPool;

impl Op for GlobalMaxPool {
    const KEYWORD: &'static str = "global_maxpool";
    const TORCH_NAME: &'static str = "AdaptiveMaxPool2d";
    const ARGS: &'static [Param] = &[];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = false;
    const HAS_PARAMS: bool = false;

    fn build(_: &Args) -> Self {
        GlobalMaxPool
    }

    fn effect(&self) -> Effect {
        Effect::Compute
    }

    fn shape(
        &self,
        layer: &Layer,
        input: Option<Shape>,
        from: &Provenance,
        errors: &mut Errors,
    ) -> Option<(Shape, usize)> {
        global_pool::shape(layer, input, from, errors)
    }

    fn tensors(&self, _: &Shaped) -> (Vec<TensorSpec>, usize) {
        (Vec::new(), 0)
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn forward(&self, l: &LayerPlan, _: &ForwardIo) -> TokenStream {
        let p = private();
        let (c, s) = channels_and_plane(l);
        quote! { #p::ops::global_maxpool::forward(#c, #s, n, x, y); }
    }

    /// TFLite's REDUCE_MAX over H and W: a maximum of int8 values, in the
    /// input's quantization.
    fn int8(&self, l: &LayerPlan, _: &Int8Io) -> Result<Int8Step, String> {
        let p = private();
        let (c, s) = channels_and_plane(l);
        Ok(Int8Step::Compute(Int8Code {
            code: quote!(#p::ops::global_maxpool::int8::forward(#c, #s, n, x, y);),
            prepare: TokenStream::new(),
            output: Int8Output::Input,
            luts_taken: 0,
            means_taken: 0,
        }))
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        let p = private();
        let (c, s) = channels_and_plane(l);
        let (in_len, out_len) = (lit(l.in_len()), lit(l.out_len()));
        let BackwardIo {
            x,
            dy_buffer,
            dx_buffer,
            ..
        } = io;
        quote!(#p::ops::global_maxpool::backward(#c, #s, n, &*#x, &#dy_buffer[..n * #out_len], &mut #dx_buffer[..n * #in_len]);)
    }
}
