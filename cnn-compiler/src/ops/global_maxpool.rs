//! `global_maxpool`: PyTorch's `nn.AdaptiveMaxPool2d(1)`, the maximum of each
//! channel (the gradient goes to the first maximum); kernels in
//! `cnn-runtime/src/ops/global_maxpool.rs`.

use super::global_pool::{self, channels_and_plane};
use super::{lit, private, BackwardIo, Effect, ForwardIo, Op, TensorSpec};
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

    fn int8(&self, _: &LayerPlan, _: &crate::ops::Int8Io) -> Result<crate::ops::Int8Step, String> {
        Err("has no int8 kernel yet".to_string())
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
