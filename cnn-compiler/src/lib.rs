//! The compiler behind the `cnn_net!` proc-macro: compiles a declarative CNN
//! layer list into const-sized Rust forward and backward code. It works on
//! `proc_macro2` tokens only, so the whole pipeline runs in unit tests, fuzz
//! targets and tools outside a macro (as `pest_generator` does for
//! `pest_derive`); `cnn-macros` is a one-function wrapper around [`expand()`].
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
//! Users depend on `cnn-runtime`, which re-exports the macro; the generated
//! code names everything through `::cnn_runtime::__private`.

mod ctxt;
mod expand;
mod int8;
mod layer;
mod lower;
mod ops;
mod parse;
mod plan;
mod shape;
mod symbol;
mod weights;

use proc_macro2::TokenStream;

/// Compiles the tokens inside `cnn_net! { .. }` into the generated items,
/// followed by a `compile_error!` for every mistake (each spanned on the
/// user's tokens). Never panics, whatever the tokens.
pub fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<parse::Input>(input) {
        Ok(input) => expand::expand(&input),
        Err(error) => error.into_compile_error(),
    }
}

/// [`expand()`] on source text, for fuzzing and tools: `None` when the text
/// is not a token stream at all (unbalanced delimiters, a stray quote).
pub fn expand_str(source: &str) -> Option<TokenStream> {
    source.parse::<TokenStream>().ok().map(expand)
}

#[cfg(test)]
mod tests {
    /// A small deterministic generator of DSL-like text: keywords, labels,
    /// numbers from 0 to past `u64::MAX`, options, and every kind of
    /// delimiter, balanced or not.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }

        fn number(&mut self) -> String {
            match self.next() % 6 {
                0 => "0".to_string(),
                1 => (self.next() % 8).to_string(),
                2 => (self.next() % 300).to_string(),
                3 => "4294967296".to_string(),
                4 => "18446744073709551615".to_string(),
                _ => "99999999999999999999999".to_string(),
            }
        }

        fn text(&mut self) -> String {
            let words = [
                "conv",
                "maxpool",
                "avgpool",
                "global_avgpool",
                "global_maxpool",
                "flatten",
                "linear",
                "relu",
                "sigmoid",
                "tanh",
                "dropout",
                "pub",
                "Net",
                "A",
                "stride",
                "pad",
                "bias",
                "=",
                "=>",
                ":",
                "::",
                ";",
                ",",
                "_",
                "(",
                ")",
                "[",
                "]",
                "{",
                "}",
                "|",
                "true",
                "0.5",
                "-1",
                "1.5",
                "x",
                "weights",
                "\"w.json\"",
                "conv1",
                "#[doc = \"d\"]",
                "add",
                "cat",
                "identity",
                "batchnorm",
                "relu6",
                "eps",
                "momentum",
                "1e-5",
                "groups",
                "block",
                "B",
                "c",
                "if",
                "else",
                "net.0",
                "0.1",
            ];
            let mut text = String::new();
            let len = self.next() % 40;
            for _ in 0..len {
                if self.next().is_multiple_of(3) {
                    text.push_str(&self.number());
                } else {
                    text.push_str(self.pick(&words));
                }
                text.push(' ');
            }
            text
        }
    }

    /// Thousands of random inputs, most of them nonsense: each expands to
    /// items and `compile_error!`s, never a panic.
    #[test]
    fn random_inputs_never_panic() {
        let mut gen = Gen(0x9E37_79B9_7F4A_7C15);
        for i in 0..20_000 {
            let body = gen.text();
            // Half the cases start like a real net, so the later phases run too.
            let text = if i % 2 == 0 {
                format!(
                    "pub Net: [{}, {}, {}] => {body}",
                    gen.number(),
                    gen.number(),
                    gen.number()
                )
            } else {
                body
            };
            let result = std::panic::catch_unwind(|| super::expand_str(&text));
            assert!(result.is_ok(), "the compiler panicked on: {text}");
        }
    }

    /// Every input of the DSL fuzz target's committed corpus
    /// (`fuzz/corpus/dsl`): the nets of the tests and their error cases.
    #[test]
    fn the_fuzz_corpus_never_panics() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dsl");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/dsl") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let result = std::panic::catch_unwind(|| super::expand_str(&text));
            assert!(result.is_ok(), "the compiler panicked on {}", path.display());
            count += 1;
        }
        assert!(count >= 50, "only {count} corpus files");
    }

    /// Blocks used inside themselves through several levels, and blocks
    /// with graph bodies used in branches: errors, never a panic or a hang.
    #[test]
    fn blocks_and_branches_never_panic() {
        for text in [
            "block A(c) => B(c); block B(c) => A(c); pub N: [1, 4, 4] => A(1)",
            "block A(c) => add { x: conv(_, c, 1) | A(c) }; pub N: [1, 4, 4] => A(1)",
            "block A(c, f = true) => if f { relu } else { A(c) }; pub N: [1, 4, 4] => A(1, f = false)",
            "block A() => relu; pub N: [1, 4, 4] => cat { A() | A | A(1) } flatten",
            "block A(c = (1, 2)) => conv(1, 1, c); pub N: [1, 4, 4] => A A(c = c)",
            "pub N: [1, 4, 4] => add { } cat { | } add { | | } batchnorm(0) batchnorm(eps = 1e-45)",
        ] {
            let result = std::panic::catch_unwind(|| super::expand_str(text));
            assert!(result.is_ok(), "the compiler panicked on: {text}");
        }
    }

    /// Inputs that once needed care: huge dimensions, nested empties.
    #[test]
    fn known_hard_inputs() {
        for text in [
            "pub A: [4294967295, 4294967295, 4294967295] => relu",
            "pub A: [1, 1, 1] => conv(1, 1, 18446744073709551615)",
            "pub A: [1, 8, 8] => maxpool(3, pad = 18446744073709551615)",
            "pub A: [1, 8, 8] => [[[]]]",
            "pub A: [1, 8, 8] => x: y: relu",
            "pub A: [1, 8, 8] => 0: 0: relu",
            "pub A: [1, 8, 8] => flatten linear(_, 18446744073709551615) linear(_, 18446744073709551615)",
        ] {
            let out = super::expand_str(text).expect("tokens");
            assert!(out.to_string().contains("compile_error"), "{text}");
        }
    }
}
