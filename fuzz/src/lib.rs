//! What the fuzz targets share: an allocator that aborts on any single
//! allocation above [`MAX_ALLOCATION`] (a loader must never reserve what an
//! untrusted header promises, and no input here is big enough to need it),
//! the tensor tables the weights targets load into, and checks of the
//! all-or-nothing promise.

use std::alloc::{GlobalAlloc, Layout, System};

use cnn_runtime::{TensorInfo, TensorRole};

/// The largest single allocation a target may make. Inputs stay under a
/// megabyte (libFuzzer's default `-max_len` is 4 KiB); gzip inflates at most
/// about 1032:1, and a `Dataset` holds four bytes per pixel.
pub const MAX_ALLOCATION: usize = 64 << 20;

/// [`System`], aborting (a crash libFuzzer records) on any allocation above
/// [`MAX_ALLOCATION`].
pub struct CappedAllocator;

fn check(size: usize) {
    if size > MAX_ALLOCATION {
        // Nothing that allocates may run here: abort is what libFuzzer sees.
        std::process::abort();
    }
}

// SAFETY: forwards every call to the system allocator unchanged after the
// size check.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
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
