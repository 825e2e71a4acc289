//! `add { .. | .. }`: the outputs of every branch summed element by element,
//! the residual connection (`Y += X` in D2L's `Residual`, section 8.6).
//! Every branch must yield the same shape.

use super::{lit, private, Fused, Int8JoinIo};
use crate::ctxt::Errors;
use crate::shape::{Provenance, Shape};
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// The shape rule: every branch's shape, which must agree.
pub fn shape(keyword: &Ident, inputs: &[(Option<Shape>, &Provenance)], errors: &mut Errors) -> Option<Shape> {
    let (known, mut ok) = super::known_branches(inputs);
    let (first, want, want_from) = *known.first()?;
    for &(i, shape, from) in &known[1..] {
        if shape != want {
            errors.push(
                keyword.span(),
                format!(
                    "`add`: branch {} yields {shape} ({}) but branch {} yields {want} ({}); the branches are \
                     summed, so they must have the same shape{}",
                    i + 1,
                    describe(from),
                    first + 1,
                    describe(want_from),
                    hint_for(want, shape)
                ),
            );
            ok = false;
        }
    }
    ok.then_some(want)
}

/// The hint for two disagreeing branch shapes: the smaller one is taken as
/// the main branch's.
fn hint_for(a: Shape, b: Shape) -> String {
    match (a, b) {
        (Shape::Chw(_, ha, _), Shape::Chw(_, hb, _)) if hb < ha => hint(b, a),
        _ => hint(a, b),
    }
}

/// "from conv(..) at layer 1.conv2" or "its input, passed through".
fn describe(from: &Provenance) -> String {
    format!("from {}", from.from())
}

/// The usual fix when the branch that keeps the larger (or the same) size
/// is the shortcut: a labelled 1x1 conv there, with the main branch's
/// channels and the stride that shrinks it to the main branch's size.
fn hint(main: Shape, shortcut: Shape) -> String {
    let (Shape::Chw(c, h, w), Shape::Chw(_, sh, sw)) = (main, shortcut) else {
        return String::new();
    };
    if h == 0 || w == 0 || sh % h != 0 || sw % w != 0 || sh / h != sw / w {
        return String::new();
    }
    let stride = sh / h;
    let stride = if stride > 1 {
        format!(", stride = {stride}")
    } else {
        String::new()
    };
    format!("\nhelp: give the shortcut a labelled 1x1 conv that yields {main}, e.g. `conv3: conv(_, {c}, 1{stride})`")
}

/// Forward, input `k` (`x`) into the output (`y`): the first input written
/// is copied, the others are added.
pub fn forward_part(first: bool) -> TokenStream {
    let p = private();
    if first {
        quote!(y.copy_from_slice(x);)
    } else {
        quote!(#p::ops::add::accumulate(x, y);)
    }
}

/// Backward to input `k`: `dL/dx = dL/dy`, copied into `dx` if it is the
/// first gradient `dx` receives, else added to it.
pub fn backward_part(first: bool) -> TokenStream {
    let p = private();
    if first {
        quote!(dx.copy_from_slice(dy);)
    } else {
        quote!(#p::ops::add::accumulate(dy, dx);)
    }
}

/// int8: TFLite's ADD, which is binary: the first part written is copied
/// into the output's buffer, the other added to it in place with the
/// prepared `self.adds[io.add]` (ADD is symmetric bit for bit, so which
/// operand comes first does not matter).
pub fn int8_part(first: bool, io: &Int8JoinIo) -> TokenStream {
    let p = private();
    let a = lit(io.add);
    if first {
        quote!(y.copy_from_slice(x);)
    } else {
        quote!(#p::ops::add::int8::forward_in_place(&self.adds[#a], y, x);)
    }
}

/// int8: the prepared ADD of the two inputs into the output quantization of
/// the file's point, with the fused activation's clamp.
pub fn int8_prepare(io: &Int8JoinIo) -> Result<TokenStream, String> {
    let p = private();
    let [a, b] = io.inputs else {
        return Err(format!(
            "has {} branches; an int8 `add` takes two (TFLite's ADD is binary): nest them, e.g. \
             `add {{ add {{ .. | .. }} | .. }}`",
            io.inputs.len()
        ));
    };
    let Some(point) = io.point else {
        return Err("has no quantization point (a bug of cnn_net!)".to_string());
    };
    let (first, second) = if io.first == 0 { (*a, *b) } else { (*b, *a) };
    let (first, second, k, slot, output) = (lit(first), lit(second), lit(point), lit(io.add), lit(io.output));
    let activation = match io.fused {
        None => quote!(None),
        Some(Fused::Relu) => quote!(Relu),
        Some(Fused::Relu6) => quote!(Relu6),
    };
    Ok(quote! {
        adds[#slot] = match #p::ops::add::int8::AddParams::try_prepare(
            quants[#first],
            quants[#second],
            points[#k],
            #p::quant::Activation::#activation,
        ) {
            #p::core::option::Option::Some(params) => params,
            #p::core::option::Option::None => {
                return #p::core::result::Result::Err(#p::int8::Int8Error::PointOutOfRange { point: #k });
            }
        };
        quants[#output] = points[#k];
    })
}
