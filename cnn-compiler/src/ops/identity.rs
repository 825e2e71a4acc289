//! `identity`: PyTorch's `nn.Identity()`, the output is the input. Free: no
//! kernel, no buffer. Mostly a branch of `add { .. }` or `cat { .. }` that
//! passes its input through (an empty branch does the same).

use super::{BackwardIo, Effect, ForwardIo, Int8Io, Int8Step, Op, TensorSpec};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;

/// `identity` (no arguments).
#[derive(Clone, Copy, Debug)]
pub struct Identity;

impl Op for Identity {
    const KEYWORD: &'static str = "identity";
    const TORCH_NAME: &'static str = "Identity";
    const ARGS: &'static [Param] = &[];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = true;
    const HAS_PARAMS: bool = false;

    fn build(_: &Args) -> Self {
        Identity
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
        Some((input?, 0))
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
