//! The `cnn_net!` DSL: arbitrary text through the whole compiler (parse,
//! lower, shape, plan, expand). Whatever the input, the compiler returns
//! tokens (items and `compile_error!`s) and never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cnn_compiler::expand_str(text);
    }
});
