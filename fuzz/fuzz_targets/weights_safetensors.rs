//! The safetensors weights loader (and its metadata reader) on arbitrary
//! bytes, into two tables: never a panic, never a partial write, one-line
//! errors; whatever loads is safetensors by its content and saves back to
//! the same bits.
#![no_main]

use cnn_loaders_fuzz::{bits, load_all_or_nothing, CappedAllocator, ONE, TINY, TINY_LEN};
use cnn_runtime::weights::{self, WeightsFormat};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|bytes: &[u8]| {
    let metadata = weights::safetensors_metadata(bytes);
    for (table, len) in [(TINY, TINY_LEN), (ONE, 1)] {
        let loaded = load_all_or_nothing(len, |dst| weights::load_safetensors(table, bytes, dst));
        if let Some(values) = loaded {
            assert!(metadata.is_ok(), "loads but its metadata does not");
            assert_eq!(weights::sniff_format(bytes), Some(WeightsFormat::Safetensors));
            let file = weights::to_safetensors(table, &values);
            let again = load_all_or_nothing(len, |dst| weights::load_safetensors(table, &file, dst));
            assert_eq!(again.map(|v| bits(&v)), Some(bits(&values)));
        }
    }
});
