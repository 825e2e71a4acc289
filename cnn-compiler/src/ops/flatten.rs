//! `flatten`: PyTorch's `nn.Flatten()`, `[C, H, W] -> [C*H*W]`. Free: the
//! output is the input's buffer, reinterpreted; no kernel.

use super::{BackwardIo, Effect, ForwardIo, Int8Io, Int8Step, Op, TensorSpec};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;

/// `flatten` (no arguments).
#[derive(Clone, Copy, Debug)]
pub struct Flatten;

impl Op for Flatten {
    const KEYWORD: &'static str = "flatten";
    const TORCH_NAME: &'static str = "Flatten";
    const ARGS: &'static [Param] = &[];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = false;
    const HAS_PARAMS: bool = false;

    fn build(_: &Args) -> Self {
        Flatten
    }

    fn effect(&self) -> Effect {
        Effect::View
    }

    fn shape(
        &self,
        _: &Layer,
        input: Option<Shape>,
        _: &Provenance,
        _: &mut Errors,
    ) -> Option<(Shape, usize)> {
        let input = input?;
        Some((Shape::Flat(input.len()), input.len()))
    }

    fn tensors(&self, _: &Shaped) -> (Vec<TensorSpec>, usize) {
        (Vec::new(), 0)
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn forward(&self, _: &LayerPlan, _: &ForwardIo) -> TokenStream {
        TokenStream::new()
    }

    fn int8(&self, _: &LayerPlan, _: &Int8Io) -> Result<Int8Step, String> {
        Ok(Int8Step::Same)
    }

    fn backward(&self, _: &LayerPlan, _: &BackwardIo) -> TokenStream {
        TokenStream::new()
    }
}
