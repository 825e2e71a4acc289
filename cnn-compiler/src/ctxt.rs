//! Collects every error of one macro invocation so they are reported at once.

use proc_macro2::TokenStream;
use std::fmt::Display;

/// A list of spanned errors; [`Errors::into_compile_error`] turns them into
/// `compile_error!` invocations, each pointing at its own tokens.
#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    /// Records an error at `span`.
    pub fn push(&mut self, span: proc_macro2::Span, message: impl Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    /// Records an error covering the tokens of `node`.
    pub fn push_spanned(&mut self, node: impl quote::ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(node, message));
    }

    /// Number of errors recorded so far.
    pub fn count(&self) -> usize {
        self.errors.len()
    }

    /// The messages, for tests.
    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.to_string()).collect()
    }

    /// All errors as `compile_error!` token streams.
    pub fn into_compile_error(self) -> TokenStream {
        self.errors
            .into_iter()
            .map(syn::Error::into_compile_error)
            .collect()
    }
}
