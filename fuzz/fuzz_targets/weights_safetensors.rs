//! The safetensors weights loader (and its metadata reader) on arbitrary
//! bytes, into two tables: never a panic, never a partial write, one-line
//! errors; whatever loads is safetensors by its content and saves back to
//! the same bits.
#![no_main]

use cnn_loaders_fuzz::{checks, CappedAllocator};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|bytes: &[u8]| checks::weights_safetensors(bytes));
