//! What the fuzz targets share: an allocator that aborts on any single
//! allocation above [`MAX_ALLOCATION`] (a loader must never reserve what an
//! untrusted header promises, and no input here is big enough to need it),
//! and [`checks`], the properties each target asserts on one input.

use std::alloc::{GlobalAlloc, Layout, System};

pub mod checks;

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
