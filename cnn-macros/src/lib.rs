//! The `cnn_net!` proc-macro: compiles a declarative CNN layer list into
//! const-sized Rust forward and backward code.
//!
//! The phases, a module each, with plain data between them:
//! `parse` (tokens to syntax, every node keeps its span) ->
//! `layer` (arguments checked and resolved to numbers) ->
//! `lower` (the net as a program: nodes in topological order over numbered
//! values, each with its `state_dict` key) ->
//! `shape` (every value's shape computed, mismatches reported) ->
//! `plan` (parameter layout and memory plan) ->
//! `expand` (the Rust code). Errors are collected in `ctxt::Errors` and
//! reported together; a net with errors still expands to a stub type so the
//! user sees only the real mistakes.
//!
//! Each op lives in one module of `ops/` (keyword, signature, shape rule,
//! tensors, memory effect, forward and backward code) and is registered in
//! one list there, from which every dispatch over op kinds is generated;
//! `ops/mod.rs` has the checklist for adding a layer.
//!
//! Users depend on `cnn-runtime`, which re-exports this macro; the generated
//! code names everything through `::cnn_runtime::__private`.

mod ctxt;
mod expand;
mod layer;
mod lower;
mod ops;
mod parse;
mod plan;
mod shape;
mod symbol;
mod weights;

use proc_macro::TokenStream;

/// Declares one or more CNNs. See the `cnn-runtime` crate documentation and
/// the README for the DSL and the generated API.
///
/// ```ignore
/// cnn_net! {
///     /// LeNet-5 as in Dive into Deep Learning, section 7.6
///     pub LeNet: [1, 28, 28] =>
///         conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
///         conv(6, 16, 5) sigmoid avgpool(2)
///         flatten
///         linear(400, 120) sigmoid
///         linear(120, 84) sigmoid
///         linear(84, 10)
/// }
/// ```
#[proc_macro]
pub fn cnn_net(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as parse::Input);
    expand::expand(&input).into()
}
