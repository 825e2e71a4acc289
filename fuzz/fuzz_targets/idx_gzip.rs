//! The IDX reader on gzip bytes, two ways:
//!
//! - the input itself as a gzip stream (mutated headers, deflate data,
//!   checksums, members): never a panic, never an allocation above the cap;
//! - the input as the content of a valid gzip file, in one member and split
//!   into two: the result must be exactly that of the raw bytes.
#![no_main]

use std::io::Write;

use cnn_loaders_fuzz::CappedAllocator;
use cnn_runtime::data::{self, DataError};
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

const MAGIC: [u8; 2] = [0x1f, 0x8b];

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("compress in memory");
    e.finish().expect("compress in memory")
}

/// What a parse gave, comparable across encodings.
fn outcome<T: std::fmt::Debug>(result: Result<T, DataError>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(e) => {
            assert!(
                !matches!(e, DataError::CorruptGzip { .. } | DataError::Io { .. }),
                "valid gzip reported as damaged: {e}"
            );
            e.to_string()
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    // As a gzip stream.
    let stream = if bytes.starts_with(&MAGIC) {
        bytes.to_vec()
    } else {
        [&MAGIC[..], bytes].concat()
    };
    let _ = data::parse_idx_images(&stream, "fuzz");
    let _ = data::parse_idx_labels(&stream, "fuzz");

    // As content, against the raw reading of the same bytes.
    if bytes.starts_with(&MAGIC) {
        return;
    }
    let cut = bytes.len() / 3;
    for packed in [gz(bytes), [gz(&bytes[..cut]), gz(&bytes[cut..])].concat()] {
        assert_eq!(
            outcome(data::parse_idx_images(&packed, "fuzz")),
            outcome(data::parse_idx_images(bytes, "fuzz"))
        );
        assert_eq!(
            outcome(data::parse_idx_labels(&packed, "fuzz")),
            outcome(data::parse_idx_labels(bytes, "fuzz"))
        );
    }
});
