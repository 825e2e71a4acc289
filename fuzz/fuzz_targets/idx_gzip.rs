//! The IDX reader on gzip bytes, two ways:
//!
//! - the input itself as a gzip stream (mutated headers, deflate data,
//!   checksums, members): never a panic, never an allocation above the cap;
//! - the input as the content of a valid gzip file, in one member and split
//!   into two: the result must be exactly that of the raw bytes.
#![no_main]

use cnn_loaders_fuzz::{checks, CappedAllocator};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|bytes: &[u8]| checks::idx_gzip(bytes));
