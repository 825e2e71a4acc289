//! `dropout(p)`: PyTorch's `nn.Dropout(p)`. Identity at inference; in
//! training a seeded mask scaled by `1 / (1 - p)`, which the backward
//! recomputes from the seed instead of storing; kernels in
//! `cnn-runtime/src/ops/dropout.rs`.

use super::{lit, private, BackwardIo, Effect, ForwardIo, Int8Io, Int8Step, Op, TensorSpec};
use crate::ctxt::Errors;
use crate::layer::{Accepts, Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// A resolved `dropout`.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// The probability of zeroing an element, in [0, 1).
    pub p: f32,
}

/// A per-layer constant mixed into the dropout seed, so two dropout layers
/// draw different masks.
fn layer_salt(index: usize) -> Literal {
    Literal::u64_suffixed((index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

impl Op for Dropout {
    const KEYWORD: &'static str = "dropout";
    const TORCH_NAME: &'static str = "Dropout";
    const ARGS: &'static [Param] = &[Param::new("p", Accepts::Probability)];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = true;
    const HAS_PARAMS: bool = false;

    fn build(args: &Args) -> Self {
        Dropout { p: args.float(0) }
    }

    fn effect(&self) -> Effect {
        if self.p > 0.0 {
            Effect::TrainCopy
        } else {
            Effect::View
        }
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

    fn forward(&self, l: &LayerPlan, io: &ForwardIo) -> TokenStream {
        if self.effect() == Effect::View {
            return TokenStream::new();
        }
        let p = private();
        let (rate, salt, target) = (self.p, layer_salt(l.index), &io.target);
        quote!(#p::ops::dropout::forward(#rate, seed ^ #salt, #target);)
    }

    /// Dropout does nothing at inference.
    fn int8(&self, _: &LayerPlan, _: &Int8Io) -> Result<Int8Step, String> {
        Ok(Int8Step::Same)
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        if self.effect() == Effect::View {
            return TokenStream::new();
        }
        let p = private();
        let (rate, salt, out_len) = (self.p, layer_salt(l.index), lit(l.out_len()));
        let dy_buffer = &io.dy_buffer;
        quote!(#p::ops::dropout::backward(#rate, seed ^ #salt, &mut #dy_buffer[..n * #out_len]);)
    }
}
