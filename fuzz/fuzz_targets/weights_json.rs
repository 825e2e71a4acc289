//! The JSON weights loader on arbitrary bytes, into two tables: never a
//! panic, never a partial write, one-line errors; whatever loads is JSON by
//! its content and saves back to the same bits.
#![no_main]

use cnn_loaders_fuzz::{bits, load_all_or_nothing, CappedAllocator, ONE, TINY, TINY_LEN};
use cnn_runtime::weights::{self, WeightsFormat};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|bytes: &[u8]| {
    for (table, len) in [(TINY, TINY_LEN), (ONE, 1)] {
        let loaded = load_all_or_nothing(len, |dst| weights::load_json_bytes(table, bytes, dst));
        if let Some(values) = loaded {
            assert_eq!(weights::sniff_format(bytes), Some(WeightsFormat::Json));
            let text = weights::to_json_string(table, &values);
            let again = load_all_or_nothing(len, |dst| weights::load_json_str(table, &text, dst));
            assert_eq!(again.map(|v| bits(&v)), Some(bits(&values)));
        }
    }
});
