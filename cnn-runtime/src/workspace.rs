//! Reusable buffers for the `std` conveniences: sized on first use, reused
//! afterwards, so that after the first call a batched forward pass or a
//! training step of the same batch size performs no heap allocation.

use std::cell::RefCell;

/// The buffers one worker needs: a workspace and a gradient array.
#[derive(Default)]
pub struct Buffers {
    /// Activation and im2col workspace.
    pub workspace: Vec<f32>,
    /// Gradient accumulator for one worker's share of a batch.
    pub grads: Vec<f32>,
}

impl Buffers {
    /// Grows (never shrinks) both buffers to at least the given lengths.
    pub fn reserve(&mut self, workspace: usize, grads: usize) {
        if self.workspace.len() < workspace {
            self.workspace.resize(workspace, 0.0);
        }
        if self.grads.len() < grads {
            self.grads.resize(grads, 0.0);
        }
    }
}

thread_local! {
    static POOL: RefCell<Vec<Buffers>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `workers` buffer sets owned by this thread. Re-entrant
/// calls (from inside `f`) get fresh buffers instead of panicking.
pub fn with_buffers<R>(workers: usize, f: impl FnOnce(&mut [Buffers]) -> R) -> R {
    let taken = POOL.with(|pool| pool.try_borrow_mut().map(|mut p| std::mem::take(&mut *p)).ok());
    let mut buffers = taken.unwrap_or_default();
    if buffers.len() < workers {
        buffers.resize_with(workers, Buffers::default);
    }
    let result = f(&mut buffers[..workers]);
    POOL.with(|pool| {
        if let Ok(mut p) = pool.try_borrow_mut() {
            if p.is_empty() {
                *p = buffers;
            }
        }
    });
    result
}
