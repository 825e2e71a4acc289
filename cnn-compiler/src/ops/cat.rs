//! `cat { .. | .. }`: the outputs of every branch concatenated along
//! channels (`torch.cat(outputs, dim=1)`), as in GoogLeNet's Inception block
//! (D2L 8.4) and DenseNet (8.7). `[C, H, W]` branches must agree on `H x W`;
//! flat branches concatenate their features.

use super::{lit, private, Int8JoinIo};
use crate::ctxt::Errors;
use crate::shape::{Provenance, Shape};
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// The shape rule: channels summed, `H x W` shared.
pub fn shape(keyword: &Ident, inputs: &[(Option<Shape>, &Provenance)], errors: &mut Errors) -> Option<Shape> {
    let (known, mut ok) = super::known_branches(inputs);
    let (first, want, want_from) = *known.first()?;
    let mut total = 0usize;
    for &(i, shape, from) in &known {
        let fits = match (want, shape) {
            (Shape::Chw(_, h, w), Shape::Chw(c, sh, sw)) if (h, w) == (sh, sw) => {
                total = total.saturating_add(c);
                true
            }
            (Shape::Flat(_), Shape::Flat(f)) => {
                total = total.saturating_add(f);
                true
            }
            _ => false,
        };
        if !fits {
            let rule = match want {
                Shape::Chw(..) => {
                    "concatenation along channels needs every branch to have the same height and width"
                }
                Shape::Flat(_) => "flat branches concatenate only with flat branches",
            };
            errors.push(
                keyword.span(),
                format!(
                    "`cat`: branch {} yields {shape} (from {}) but branch {} yields {want} (from {}); {rule}",
                    i + 1,
                    from.from(),
                    first + 1,
                    want_from.from(),
                ),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(match want {
        Shape::Chw(_, h, w) => Shape::Chw(total, h, w),
        Shape::Flat(_) => Shape::Flat(total),
    })
}

/// Elements per example before input `k`'s part of the output.
fn offset(inputs: &[Shape], k: usize) -> usize {
    inputs[..k].iter().fold(0usize, |a, s| a.saturating_add(s.len()))
}

/// Forward, input `k` (`x`) into its channels of the output (`y`).
pub fn forward_part(inputs: &[Shape], output: Shape, k: usize) -> TokenStream {
    let p = private();
    let (part, total, at) = (lit(inputs[k].len()), lit(output.len()), lit(offset(inputs, k)));
    quote!(#p::ops::cat::forward(n, #part, #total, #at, x, y);)
}

/// Backward to input `k`: its channels of `dL/dy` copied into `dx` (the
/// first gradient `dx` receives) or added to it.
pub fn backward_part(inputs: &[Shape], output: Shape, k: usize, first: bool) -> TokenStream {
    let p = private();
    let (part, total, at) = (lit(inputs[k].len()), lit(output.len()), lit(offset(inputs, k)));
    let accumulate = !first;
    quote!(#p::ops::cat::backward(n, #part, #total, #at, dy, dx, #accumulate);)
}

/// int8: TFLite's CONCATENATION copies bytes (its parts are the float
/// ones), so every input must have the same quantization, which the output
/// takes; the preparation checks that they do.
pub fn int8_prepare(io: &Int8JoinIo) -> TokenStream {
    let p = private();
    let (join, output) = (lit(io.join), lit(io.output));
    let first = lit(io.inputs.first().copied().unwrap_or(0));
    let rest = io.inputs.iter().skip(1).map(|&v| lit(v));
    quote! {
        #(
            if !#p::ops::cat::int8::same_quantization(quants[#rest], quants[#first]) {
                return #p::core::result::Result::Err(#p::int8::Int8Error::CatQuantizations { join: #join });
            }
        )*
        quants[#output] = quants[#first];
    }
}
