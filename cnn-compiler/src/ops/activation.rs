//! What `relu`, `sigmoid` and `tanh` share: element-wise, in place, shape
//! kept; the backward reads the stored output (`y`), never the input.

use super::{lit, private, BackwardIo, ForwardIo};
use crate::plan::LayerPlan;
use crate::shape::Shape;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// The shape rule: the output is the input.
pub fn shape(input: Option<Shape>) -> Option<(Shape, usize)> {
    Some((input?, 0))
}

/// `ops::<module>::forward(target)`.
pub fn forward(module: &str, io: &ForwardIo) -> TokenStream {
    let p = private();
    let module = Ident::new(module, proc_macro2::Span::call_site());
    let target = &io.target;
    quote!(#p::ops::#module::forward(#target);)
}

/// `ops::<module>::backward(y, dy)`, with `dy` transformed in place.
pub fn backward(module: &str, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
    let p = private();
    let module = Ident::new(module, proc_macro2::Span::call_site());
    let out_len = lit(l.out_len());
    let BackwardIo { y, dy_buffer, .. } = io;
    quote!(#p::ops::#module::backward(&*#y, &mut #dy_buffer[..n * #out_len]);)
}
