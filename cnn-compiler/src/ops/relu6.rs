//! `relu6`: PyTorch's `nn.ReLU6`, `min(max(x, 0), 6)`, in place; kernels in
//! `cnn-runtime/src/ops/relu6.rs`.

use super::{activation, BackwardIo, Effect, ForwardIo, Op, TensorSpec};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;

/// `relu6` (no arguments).
#[derive(Clone, Copy, Debug)]
pub struct Relu6;

impl Op for Relu6 {
    const KEYWORD: &'static str = "relu6";
    const TORCH_NAME: &'static str = "ReLU6";
    const ARGS: &'static [Param] = &[];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = true;

    fn build(_: &Args) -> Self {
        Relu6
    }

    fn effect(&self) -> Effect {
        Effect::InPlace
    }

    fn shape(
        &self,
        _: &Layer,
        input: Option<Shape>,
        _: &Provenance,
        _: &mut Errors,
    ) -> Option<(Shape, usize)> {
        activation::shape(input)
    }

    fn tensors(&self, _: &Shaped) -> (Vec<TensorSpec>, usize) {
        (Vec::new(), 0)
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn forward(&self, _: &LayerPlan, io: &ForwardIo) -> TokenStream {
        activation::forward("relu6", io)
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        activation::backward("relu6", l, io)
    }
}
