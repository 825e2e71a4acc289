//! What `global_avgpool` and `global_maxpool` share: `[C, H, W] -> [C, 1, 1]`
//! and the `(channels, plane)` arguments of their kernels.

use super::lit;
use crate::ctxt::Errors;
use crate::layer::Layer;
use crate::plan::LayerPlan;
use crate::shape::{need_chw, Provenance, Shape};
use proc_macro2::Literal;

/// The shape rule of both global pools.
pub fn shape(
    layer: &Layer,
    input: Option<Shape>,
    from: &Provenance,
    errors: &mut Errors,
) -> Option<(Shape, usize)> {
    let (c, _, _) = need_chw(layer, input?, from, errors)?;
    Some((Shape::Chw(c, 1, 1), c))
}

/// Channels and `H * W` of the layer's input, as literals.
pub fn channels_and_plane(l: &LayerPlan) -> (Literal, Literal) {
    match l.shaped.input {
        Shape::Chw(c, h, w) => (lit(c), lit(h.saturating_mul(w))),
        Shape::Flat(_) => unreachable!("the shape phase gives global pools a [C, H, W] input"),
    }
}
