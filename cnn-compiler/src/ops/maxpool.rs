//! `maxpool(k, stride = s, pad = p)`: PyTorch's `nn.MaxPool2d` (padding counts
//! as `-inf`; ties route the gradient to the first maximum); kernels in
//! `cnn-runtime/src/ops/maxpool.rs`.

use super::window::{Window, POOL_ARGS, POOL_OPTIONS};
use super::{
    lit, private, BackwardIo, Effect, ForwardIo, Int8Code, Int8Io, Int8Output, Int8Step, Op, TensorSpec,
};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;
use quote::quote;

/// A resolved `maxpool`.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool(pub Window);

impl Op for MaxPool {
    const KEYWORD: &'static str = "maxpool";
    const TORCH_NAME: &'static str = "MaxPool2d";
    const ARGS: &'static [Param] = POOL_ARGS;
    const OPTIONS: &'static [Param] = POOL_OPTIONS;
    const ELEMENT_WISE: bool = false;
    const HAS_PARAMS: bool = false;

    fn build(args: &Args) -> Self {
        MaxPool(Window::build(args))
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
        self.0.pool_shape(layer, input, from, errors)
    }

    fn tensors(&self, _: &Shaped) -> (Vec<TensorSpec>, usize) {
        (Vec::new(), 0)
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn forward(&self, l: &LayerPlan, _: &ForwardIo) -> TokenStream {
        let p = private();
        let geometry = self.0.geometry(l);
        quote! { #geometry #p::ops::maxpool::forward(&G, n, x, y); }
    }

    fn int8(&self, l: &LayerPlan, _: &Int8Io) -> Result<Int8Step, String> {
        let p = private();
        let geometry = self.0.geometry(l);
        let code = quote! {
            #geometry
            #p::ops::maxpool::int8::forward(&G, n, x, #p::quant::Clamp::FULL, y);
        };
        // Pooling keeps the input's quantization, as TFLite requires.
        Ok(Int8Step::Compute(Int8Code {
            code,
            prepare: TokenStream::new(),
            output: Int8Output::Input,
            luts_taken: 0,
            means_taken: 0,
        }))
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        let p = private();
        let geometry = self.0.geometry(l);
        let (in_len, out_len) = (lit(l.in_len()), lit(l.out_len()));
        let BackwardIo {
            x,
            dy_buffer,
            dx_buffer,
            ..
        } = io;
        quote! { {
            #geometry
            #p::ops::maxpool::backward(&G, n, &*#x, &#dy_buffer[..n * #out_len], &mut #dx_buffer[..n * #in_len]);
        }}
    }
}
