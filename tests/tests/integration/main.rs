//! The integration tests, as one test binary: each would otherwise link its
//! own copy of the runtime, the zoo and their monomorphised code, which was
//! most of the cold build of `cargo test`. `no_alloc` stays a binary of its
//! own because it installs a counting global allocator.
//!
//! Tests that change the process-wide thread count hold
//! [`cnn_tests::threads`]'s guard.

mod batchnorm;
mod blocks;
mod determinism;
mod embedded;
mod fuzz_corpus;
mod gradcheck;
mod int8;
mod int8_nets;
mod labels;
mod large_nets;
mod memory_plan;
mod parity;
mod quantize;
mod readme;
mod trace;
mod zoo;
