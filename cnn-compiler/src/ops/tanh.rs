//! `tanh`: PyTorch's `nn.Tanh`, in place; kernels in
//! `cnn-runtime/src/ops/tanh.rs`.

use super::{activation, BackwardIo, Effect, ForwardIo, Op, TensorSpec};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;

/// `tanh` (no arguments).
#[derive(Clone, Copy, Debug)]
pub struct Tanh;

impl Op for Tanh {
    const KEYWORD: &'static str = "tanh";
    const TORCH_NAME: &'static str = "Tanh";
    const ARGS: &'static [Param] = &[];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = true;

    fn build(_: &Args) -> Self {
        Tanh
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
        activation::forward("tanh", io)
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        activation::backward("tanh", l, io)
    }
}
