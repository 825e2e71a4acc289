//! Collects every error of one macro invocation so they are reported at once.

use proc_macro2::TokenStream;
use std::fmt::Display;

/// A list of spanned errors; [`Errors::into_compile_error`] turns them into
/// `compile_error!` invocations, each pointing at its own tokens.
///
/// The tokens of a block's body are checked once per use of the block, so
/// a mistake in them would be reported at the same token once per use,
/// each message differing only in numbers (the layer's key, its shapes):
/// such errors are reported once, with a note counting the others.
#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
    /// By error: its place and message with numbers masked (when the
    /// compiler tells where tokens are), and how many later errors alike
    /// it stands for.
    places: Vec<(Option<String>, usize)>,
}

/// The place of `error` in the source and its message with every number
/// masked, when the compiler says where the tokens are (a real macro
/// expansion's span prints as `#0 bytes(120..125)`; outside one, spans
/// carry no location and errors are never merged).
fn place(error: &syn::Error) -> Option<String> {
    let debug = format!("{:?}", error.span());
    let mut masked = String::new();
    for c in error.to_string().chars() {
        if !c.is_ascii_digit() {
            masked.push(c);
        } else if !masked.ends_with('#') {
            masked.push('#');
        }
    }
    debug.contains("bytes(").then(|| format!("{debug} {masked}"))
}

impl Errors {
    /// Records an error at `span`.
    pub fn push(&mut self, span: proc_macro2::Span, message: impl Display) {
        self.add(syn::Error::new(span, message));
    }

    /// Records an error covering the tokens of `node`.
    pub fn push_spanned(&mut self, node: impl quote::ToTokens, message: impl Display) {
        self.add(syn::Error::new_spanned(node, message));
    }

    fn add(&mut self, error: syn::Error) {
        let at = place(&error);
        if let Some(at) = &at {
            if let Some(first) = self.places.iter_mut().find(|(p, _)| p.as_ref() == Some(at)) {
                first.1 += 1;
                return;
            }
        }
        self.errors.push(error);
        self.places.push((at, 0));
    }

    /// Number of errors recorded so far, merged ones included (callers
    /// compare counts to learn whether a step failed).
    pub fn count(&self) -> usize {
        self.places.iter().map(|&(_, more)| more + 1).sum()
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
            .zip(self.places)
            .map(|(error, (_, more))| match more {
                0 => error.into_compile_error(),
                _ => syn::Error::new(
                    error.span(),
                    format!(
                        "{error}\nnote: {more} more error{} like this one at this token not shown \
                         (a block's tokens are checked once per use of the block)",
                        if more == 1 { "" } else { "s" },
                    ),
                )
                .into_compile_error(),
            })
            .collect()
    }
}
