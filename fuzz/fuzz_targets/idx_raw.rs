//! The IDX reader on raw (uncompressed) bytes: images, labels, and a whole
//! data set from two parts of the input. Never a panic, never an allocation
//! above the cap; whatever loads holds exactly what the header promised.
#![no_main]

use cnn_loaders_fuzz::{checks, CappedAllocator};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|bytes: &[u8]| checks::idx_raw(bytes));
