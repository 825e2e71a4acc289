//! The committed fuzz corpora (`fuzz/corpus/`), replayed through the same
//! checks the fuzz targets assert (`fuzz/src/checks.rs`, included here), so
//! every input the fuzzer ever kept stays a regression test of the loaders
//! in the ordinary `cargo test`. The DSL corpus is replayed by
//! `cnn-compiler`'s own test. New inputs come from `bash fuzz/run.sh`.

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("read a corpus file");
        let result = std::panic::catch_unwind(|| check(&bytes));
        assert!(result.is_ok(), "{target}: the check failed on {}", path.display());
        count += 1;
    }
    count
}

#[test]
fn idx_raw_corpus() {
    assert!(replay("idx_raw", checks::idx_raw) >= 10);
}

#[test]
fn idx_gzip_corpus() {
    assert!(replay("idx_gzip", checks::idx_gzip) >= 10);
}

#[test]
fn weights_json_corpus() {
    assert!(replay("weights_json", checks::weights_json) >= 10);
}

#[test]
fn weights_safetensors_corpus() {
    assert!(replay("weights_safetensors", checks::weights_safetensors) >= 10);
}
