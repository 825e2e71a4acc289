//! Reusable buffers and threads for the `std` conveniences: buffers are
//! sized on first use and reused afterwards, so that after the first call a
//! batched forward pass or a training step of the same batch size performs
//! no heap allocation on one thread; with more threads, [`run_jobs`] hands
//! the shares to workers that persist across calls (with their thread-local
//! GEMM packing buffers) instead of spawning threads every step.

use std::cell::RefCell;

/// The buffers one worker needs: a workspace and two gradient arrays.
#[derive(Default)]
pub struct Buffers {
    /// Activation and im2col workspace.
    pub workspace: Vec<f32>,
    /// Gradient accumulator for one worker's share of a batch.
    pub grads: Vec<f32>,
    /// Gradient of one micro-batch of a share, before it is added to the
    /// share's (see `train::TRAIN_CHUNK`).
    pub micro_grads: Vec<f32>,
}

impl Buffers {
    /// Grows (never shrinks) the buffers to at least the given lengths.
    pub fn reserve(&mut self, workspace: usize, grads: usize, micro_grads: usize) {
        for (buffer, len) in [
            (&mut self.workspace, workspace),
            (&mut self.grads, grads),
            (&mut self.micro_grads, micro_grads),
        ] {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
    }
}

thread_local! {
    static POOL: RefCell<Vec<Buffers>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `workers` buffer sets owned by this thread. Re-entrant
/// calls (from inside `f`) get fresh buffers instead of panicking.
pub fn with_buffers<R>(workers: usize, f: impl FnOnce(&mut [Buffers]) -> R) -> R {
    let mut buffers = take_buffers(workers);
    let result = f(&mut buffers[..workers]);
    return_buffers(buffers);
    result
}

// The pool handling of `with_buffers` is not generic, so it is compiled once
// here rather than once per net and closure in every crate that trains.

/// This thread's buffer sets (fresh ones on a re-entrant call), at least
/// `workers` of them.
fn take_buffers(workers: usize) -> Vec<Buffers> {
    let taken = POOL.with(|pool| pool.try_borrow_mut().map(|mut p| std::mem::take(&mut *p)).ok());
    let mut buffers = taken.unwrap_or_default();
    if buffers.len() < workers {
        buffers.resize_with(workers, Buffers::default);
    }
    buffers
}

/// Keeps `buffers` for this thread's next call, unless a re-entrant call
/// already put its own back.
fn return_buffers(buffers: Vec<Buffers>) {
    POOL.with(|pool| {
        if let Ok(mut p) = pool.try_borrow_mut() {
            if p.is_empty() {
                *p = buffers;
            }
        }
    });
}

/// Runs every job of `jobs` at once and returns when all are done: job 0 on
/// the calling thread, job `i` on worker `i` of a process-wide pool of
/// threads that persist across calls (so their thread-local GEMM packing
/// buffers do too). Which job runs where never changes the result: jobs are
/// independent and each gets its own state.
///
/// A panic in any job is re-raised here once every job has finished. If
/// another thread is using the pool at the same moment, this call runs its
/// jobs on freshly spawned scoped threads instead.
pub fn run_jobs<J: FnMut() + Send>(jobs: &mut [J]) {
    match jobs {
        [] => return,
        [only] => return only(),
        _ => {}
    }
    // SAFETY: the task points at `jobs`, which outlives the call and is not
    // touched meanwhile; `run_task` runs each index exactly once.
    unsafe {
        run_task(pool::Task {
            data: jobs.as_mut_ptr().cast(),
            call: pool::call::<J>,
            count: jobs.len(),
        })
    }
}

/// The body of [`run_jobs`], not generic: only `pool::call::<J>` is compiled
/// per job type, the threading once.
///
/// # Safety
///
/// `task.data` holds `task.count` jobs of the type `task.call` expects, alive
/// and untouched by anyone else until this returns.
unsafe fn run_task(task: pool::Task) {
    let pool = pool::get();
    let Ok(_exclusive) = pool.busy.try_lock() else {
        std::thread::scope(|scope| {
            for i in 1..task.count {
                // SAFETY: index `i` is this thread's alone, and the scope
                // joins it before `run_task` returns (the caller's contract).
                scope.spawn(move || unsafe { task.run(i) });
            }
            // SAFETY: index 0 is this thread's alone.
            unsafe { task.run(0) }
        });
        return;
    };
    pool.ensure_workers(task.count - 1);
    pool.publish(task);
    // SAFETY: `task` points at the jobs, alive and otherwise untouched until
    // `wait` below returns; index 0 is this thread's alone (workers take
    // 1..count).
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { task.run(0) }));
    let theirs = pool.wait();
    if let Err(payload) = mine {
        std::panic::resume_unwind(payload);
    }
    if let Some(payload) = theirs {
        std::panic::resume_unwind(payload);
    }
}

/// The persistent workers behind [`run_jobs`].
mod pool {
    use std::any::Any;
    use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

    /// A batch of jobs with its lifetime erased: `call(data, i)` runs job `i`.
    #[derive(Clone, Copy)]
    pub(super) struct Task {
        pub data: *mut (),
        pub call: unsafe fn(*mut (), usize),
        pub count: usize,
    }

    // SAFETY: a `Task` only travels to the workers while `run_jobs` keeps the
    // jobs (which are `Send`) alive and waits for them; each index is run by
    // exactly one thread.
    unsafe impl Send for Task {}

    impl Task {
        /// Runs job `i`.
        ///
        /// # Safety
        ///
        /// The jobs are alive, `i < count`, and no other thread runs job `i`.
        pub unsafe fn run(self, i: usize) {
            // SAFETY: the caller's contract is `call`'s.
            unsafe { (self.call)(self.data, i) }
        }
    }

    /// Runs job `i` of the `J` array at `data`.
    ///
    /// # Safety
    ///
    /// `data` points at a live `[J]` with more than `i` elements, and no
    /// other thread touches element `i` meanwhile.
    pub(super) unsafe fn call<J: FnMut()>(data: *mut (), i: usize) {
        // SAFETY: the caller's contract; elements are disjoint per index.
        let job = unsafe { &mut *data.cast::<J>().add(i) };
        job();
    }

    #[derive(Default)]
    struct State {
        /// Bumped for every published task.
        generation: u64,
        task: Option<Task>,
        /// Worker jobs of the current task not finished yet.
        remaining: usize,
        /// The first panic of a worker job, re-raised by the caller.
        panic: Option<Box<dyn Any + Send>>,
        /// Worker threads started so far (numbered 1..=workers).
        workers: usize,
    }

    pub(super) struct Pool {
        /// Held by the one caller using the pool.
        pub busy: Mutex<()>,
        state: Mutex<State>,
        work: Condvar,
        done: Condvar,
    }

    pub(super) fn get() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            busy: Mutex::new(()),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        })
    }

    impl Pool {
        fn lock(&self) -> MutexGuard<'_, State> {
            // Jobs run outside the lock, so a poisoned state is still consistent.
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Starts workers until there are at least `n`.
        pub fn ensure_workers(&'static self, n: usize) {
            let mut state = self.lock();
            while state.workers < n {
                state.workers += 1;
                let index = state.workers;
                std::thread::Builder::new()
                    .name(format!("cnn-worker-{index}"))
                    .spawn(move || self.work_loop(index))
                    .expect("cannot spawn a worker thread");
            }
        }

        pub fn publish(&self, task: Task) {
            let mut state = self.lock();
            state.task = Some(task);
            state.remaining = task.count - 1;
            state.generation += 1;
            drop(state);
            self.work.notify_all();
        }

        /// Waits for the worker jobs of the current task; their first panic.
        pub fn wait(&self) -> Option<Box<dyn Any + Send>> {
            let mut state = self.lock();
            while state.remaining > 0 {
                state = self.done.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            state.task = None;
            state.panic.take()
        }

        fn work_loop(&self, index: usize) {
            let mut seen = 0;
            loop {
                let task = {
                    let mut state = self.lock();
                    loop {
                        if state.generation != seen {
                            seen = state.generation;
                            if let Some(task) = state.task.filter(|t| index < t.count) {
                                break task;
                            }
                        }
                        state = self.work.wait(state).unwrap_or_else(PoisonError::into_inner);
                    }
                };
                // SAFETY: the publisher keeps the jobs alive until `remaining`
                // reaches 0, which needs this job to finish; index `index` is
                // this worker's alone.
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { task.run(index) }));
                let mut state = self.lock();
                if let Err(payload) = result {
                    state.panic.get_or_insert(payload);
                }
                state.remaining -= 1;
                if state.remaining == 0 {
                    self.done.notify_all();
                }
            }
        }
    }
}
