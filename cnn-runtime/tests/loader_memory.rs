//! Heap the IDX loader uses on hostile input, measured with a global
//! allocator that tracks each thread's live and peak bytes: a gzip bomb
//! (a small file that inflates far beyond what its header promises) and a
//! header promising gigabytes the file does not hold must both fail without
//! holding the data, and a valid file is held once, at its exact size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

use cnn_runtime::data::{self, DataError, IMAGES_MAGIC, LABELS_MAGIC};
use flate2::write::GzEncoder;
use flate2::Compression;

struct Tracking;

thread_local! {
    // Const-initialised and without a destructor: touching them never
    // allocates, so the allocator may use them.
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + bytes);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrank(bytes: usize) {
    // Memory freed here may have been allocated by another thread.
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Large blocks move with mremap, so the old and new block are not
        // both held: count only the change.
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            shrank(layout.size() - new_size);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

const MIB: usize = 1 << 20;

/// Runs `f`; returns its result and the most heap this thread held at once
/// meanwhile, beyond what it held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let out = f();
    (out, PEAK.with(Cell::get) - before)
}

/// Gzip of `head` followed by `zeros` zero bytes, compressed in chunks so
/// the test never holds the inflated stream itself.
fn gz_with_zeros(head: &[u8], zeros: usize) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(head).expect("compress");
    let chunk = vec![0u8; MIB];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        e.write_all(&chunk[..n]).expect("compress");
        left -= n;
    }
    e.finish().expect("compress")
}

fn header(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

#[test]
fn a_gzip_bomb_fails_in_constant_memory() {
    // 10 labels promised, 512 MiB delivered from a megabyte or two of gzip.
    let labels = [header(&[LABELS_MAGIC, 10]), vec![1; 10]].concat();
    let bomb = gz_with_zeros(&labels, 512 * MIB);
    assert!(bomb.len() < 4 * MIB, "{} bytes", bomb.len());
    let start = Instant::now();
    let (result, peak) = peak_during(|| data::parse_idx_labels(&bomb, "bomb.gz"));
    let err = result.expect_err("bomb");
    assert!(
        matches!(
            err,
            DataError::TrailingData {
                expected_bytes: 18,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes for 18 promised");
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());

    // One 28x28 image promised; the same through a file and a whole split.
    let images = [header(&[IMAGES_MAGIC, 1, 28, 28]), vec![0; 784]].concat();
    let bomb = gz_with_zeros(&images, 512 * MIB);
    let dir = std::env::temp_dir().join(format!("cnn-runtime-bomb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("train-images-idx3-ubyte.gz");
    std::fs::write(&path, &bomb).expect("write");
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &labels).expect("write");
    let (result, peak) = peak_during(|| data::read_idx_images(&path));
    let err = result.expect_err("bomb file");
    assert!(
        matches!(
            err,
            DataError::TrailingData {
                expected_bytes: 800,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes for 800 promised");
    let (result, peak) = peak_during(|| data::load_split(&dir, data::Split::Train));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        matches!(result, Err(DataError::TrailingData { .. })),
        "{result:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes");
}

#[test]
fn a_gzip_bomb_promising_a_lot_fails_in_constant_memory_too() {
    // 100 MiB of labels promised (more than is taken on trust), 300 MiB
    // delivered: measured before anything is held.
    let head = header(&[LABELS_MAGIC, 100 << 20]);
    let bomb = gz_with_zeros(&head, 300 * MIB);
    let (result, peak) = peak_during(|| data::parse_idx_labels(&bomb, "bomb.gz"));
    assert!(
        matches!(result, Err(DataError::TrailingData { .. })),
        "{result:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes");

    // And through a file, which is opened again for the real read.
    let dir = std::env::temp_dir().join(format!("cnn-runtime-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bomb.gz");
    std::fs::write(&path, &bomb).expect("write");
    let (result, peak) = peak_during(|| data::read_idx_labels(&path));
    assert!(
        matches!(result, Err(DataError::TrailingData { .. })),
        "{result:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes");

    // A valid file of that size is held once, at its exact size.
    let n = 100 * MIB;
    std::fs::write(&path, gz_with_zeros(&head, n)).expect("write");
    let (result, peak) = peak_during(|| data::read_idx_labels(&path));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(result.expect("valid").len(), n);
    assert!(peak < n + MIB, "peak heap {peak} bytes for {n} promised");
}

#[test]
fn a_header_promising_gigabytes_costs_only_what_arrives() {
    // 4 GiB of labels promised, 16 MiB there (gzip and raw): both are
    // measured before anything is allocated.
    let head = header(&[LABELS_MAGIC, u32::MAX]);
    let gzip = gz_with_zeros(&head, 16 * MIB);
    let (result, peak) = peak_during(|| data::parse_idx_labels(&gzip, "liar.gz"));
    assert!(
        matches!(result, Err(DataError::Truncated { found_bytes, .. }) if found_bytes == 8 + 16 * MIB as u64),
        "{result:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes for 16 MiB of data");

    let raw = [head, vec![0; 16 * MIB]].concat();
    let (result, peak) = peak_during(|| data::parse_idx_labels(&raw, "liar"));
    assert!(matches!(result, Err(DataError::Truncated { .. })), "{result:?}");
    assert!(peak < MIB, "peak heap {peak} bytes for 16 MiB of data");

    // 2^31 images of 28x28 (1.7 TB) promised, three bytes there.
    let liar = [header(&[IMAGES_MAGIC, 1 << 31, 28, 28]), vec![1, 2, 3]].concat();
    let (result, peak) = peak_during(|| data::parse_idx_images(&liar, "liar"));
    assert!(
        matches!(result, Err(DataError::Truncated { found_bytes: 19, .. })),
        "{result:?}"
    );
    assert!(peak < MIB, "peak heap {peak} bytes for 3 bytes of data");
}

#[test]
fn what_the_header_promises_is_all_that_is_kept() {
    // A complete 3 MiB labels file: the buffer holding it never grows past
    // the promised size, as a doubling buffer (4 MiB) would.
    let n = 3 * MIB;
    let labels = [header(&[LABELS_MAGIC, n as u32]), vec![0; n]].concat();
    let gzip = gz_with_zeros(&labels, 0);
    for (bytes, name) in [(&labels, "raw"), (&gzip, "gz")] {
        let (result, peak) = peak_during(|| data::parse_idx_labels(bytes, name));
        assert_eq!(result.expect("valid").len(), n);
        assert!(
            peak < n + MIB / 2,
            "{name}: peak heap {peak} bytes for {n} promised"
        );
    }
}
