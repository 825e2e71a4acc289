//! The properties each loader fuzz target asserts on one input, as plain
//! functions: the fuzz targets call them on new inputs, and the ordinary
//! test run replays the committed corpora through them
//! (`tests/tests/integration/fuzz_corpus.rs` includes this file), so a
//! regression on a known input fails `cargo test` without a fuzzer.
//!
//! Only `std`, `flate2` and `cnn_runtime` are used here, so the file
//! compiles in both crates.

use std::io::Write;

use cnn_runtime::data::{self, DataError};
use cnn_runtime::weights::{self, WeightsFormat};
use cnn_runtime::{TensorInfo, TensorRole};

/// The IDX reader on raw (uncompressed) bytes: images, labels, and a whole
/// data set from two parts of the input. Whatever loads holds exactly what
/// the header promised.
pub fn idx_raw(bytes: &[u8]) {
    // Gzip magic would select the decoder: that is the other target.
    if bytes.starts_with(&MAGIC) {
        return;
    }
    if let Ok((pixels, rows, cols)) = data::parse_idx_images(bytes, "fuzz") {
        assert_eq!(16 + pixels.len(), bytes.len());
        assert!(rows > 0 && cols > 0 && pixels.len() % (rows * cols) == 0);
    }
    if let Ok(labels) = data::parse_idx_labels(bytes, "fuzz") {
        assert_eq!(8 + labels.len(), bytes.len());
    }
    // The first byte says where the images end and the labels begin.
    if let Some((&cut, rest)) = bytes.split_first() {
        let (images, labels) = rest.split_at(usize::from(cut) * rest.len() / 256);
        if let Ok(set) = data::from_idx_bytes(images, labels, "fuzz") {
            assert_eq!(set.images.len(), set.len() * set.image_len());
            assert!(set.labels.iter().all(|&l| usize::from(l) < data::NUM_CLASSES));
            assert!(set.images.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }
}

const MAGIC: [u8; 2] = [0x1f, 0x8b];

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
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

/// The IDX reader on gzip bytes, two ways: the input itself as a gzip
/// stream (mutated headers, deflate data, checksums, members) must not
/// panic; the input as the content of a valid gzip file, in one member and
/// split into two, must read exactly as the raw bytes do.
pub fn idx_gzip(bytes: &[u8]) {
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
}

/// The JSON weights loader, into two tables: no partial write, one-line
/// errors; whatever loads is JSON by its content and saves back to the same
/// bits.
pub fn weights_json(bytes: &[u8]) {
    for (table, len) in [(TINY, TINY_LEN), (ONE, 1)] {
        let loaded = load_all_or_nothing(len, |dst| weights::load_json_bytes(table, bytes, dst));
        if let Some(values) = loaded {
            assert_eq!(weights::sniff_format(bytes), Some(WeightsFormat::Json));
            let text = weights::to_json_string(table, &values);
            let again = load_all_or_nothing(len, |dst| weights::load_json_str(table, &text, dst));
            assert_eq!(again.map(|v| bits(&v)), Some(bits(&values)));
        }
    }
}

/// The safetensors weights loader (and its metadata reader), into two
/// tables: no partial write, one-line errors; whatever loads is safetensors
/// by its content and saves back to the same bits.
pub fn weights_safetensors(bytes: &[u8]) {
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
}

const fn tensor(key: &'static str, shape: &'static [usize], offset: usize, len: usize) -> TensorInfo {
    TensorInfo {
        key,
        shape,
        offset,
        len,
        role: TensorRole::Weight,
        fan_in: 1,
        fan_out: 1,
    }
}

/// conv(1, 2, 3) -> flatten -> linear(8, 3), as in the runtime's weights
/// tests (the seed corpora are files of this table).
pub const TINY: &[TensorInfo] = &[
    tensor("0.weight", &[2, 1, 3, 3], 0, 18),
    tensor("0.bias", &[2], 18, 2),
    tensor("3.weight", &[3, 8], 20, 24),
    tensor("3.bias", &[3], 44, 3),
];

/// Parameters of [`TINY`].
pub const TINY_LEN: usize = 47;

/// One scalar tensor `"w"`: small enough that mutations often stay valid.
pub const ONE: &[TensorInfo] = &[tensor("w", &[1], 0, 1)];

/// The value a destination is filled with before a load.
pub const UNTOUCHED: f32 = 7.0;

/// Runs `load` into a destination of `len` values; checks that an error
/// left it untouched and that loaded values are finite. Returns the values
/// on success.
pub fn load_all_or_nothing<E: std::fmt::Display>(
    len: usize,
    load: impl FnOnce(&mut [f32]) -> Result<(), E>,
) -> Option<Vec<f32>> {
    let mut dst = vec![UNTOUCHED; len];
    match load(&mut dst) {
        Ok(()) => {
            assert!(dst.iter().all(|x| x.is_finite()), "loaded a non-finite value");
            Some(dst)
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "not one line: {message:?}"
            );
            assert!(
                dst.iter().all(|&x| x == UNTOUCHED),
                "partial write before the error {message}"
            );
            None
        }
    }
}

/// Bit patterns, so that `-0.0` and `0.0` differ.
pub fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}
