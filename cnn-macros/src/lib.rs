//! The `cnn_net!` proc-macro: compiles a declarative CNN layer list into
//! const-sized Rust forward and backward code. Every phase lives in the
//! `cnn-compiler` crate, on `proc_macro2` tokens; this crate only hands the
//! macro's tokens to it.
//!
//! Users depend on `cnn-runtime`, which re-exports this macro; the generated
//! code names everything through `::cnn_runtime::__private`.

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
    cnn_compiler::expand(input.into()).into()
}
