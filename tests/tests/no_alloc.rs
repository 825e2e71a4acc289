//! Allocation guarantees, measured with a counting global allocator:
//! batch-1 `forward` and the batch-1 training step never touch the heap, and
//! after the first call the batched paths (`forward_batch`, `train_step`)
//! reuse their buffers.

use cnn_runtime::optim::{Sgd, SgdConfig, SgdWith};
use cnn_runtime::Target;
use models::{LeNet, LeNetGrads};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap allocations made by this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    // Reading a set `CNN_MAX_ISA` takes one allocation (its value, through
    // `std::env::var_os`), once per process at the first kernel call: done
    // here, so only then. Unset, the first call allocates nothing.
    if std::env::var_os(cnn_runtime::ops::MAX_ISA_VAR).is_some() {
        cnn_runtime::ops::instruction_set();
    }
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn image(seed: usize) -> [f32; LeNet::INPUT_LEN] {
    let mut x = [0.0; LeNet::INPUT_LEN];
    for (i, v) in x.iter_mut().enumerate() {
        *v = ((i * 31 + seed * 17) % 255) as f32 / 255.0;
    }
    x
}

#[test]
fn forward_allocates_nothing() {
    let net = Box::new(LeNet::init(1));
    let x = image(0);
    let mut out = [0.0; 10];
    assert_eq!(allocations(|| out = net.forward(&x)), 0);
    assert!(out.iter().all(|v| v.is_finite()));
    assert_ne!(out, [0.0; 10], "the counted call really ran");
}

#[test]
fn forward_with_static_scratch_allocates_nothing() {
    static mut SCRATCH: [f32; LeNet::INFER_SCRATCH_LEN] = [0.0; LeNet::INFER_SCRATCH_LEN];
    let net = Box::new(LeNet::init(2));
    let x = image(1);
    // SAFETY: only this test touches SCRATCH.
    let scratch = unsafe { &mut *std::ptr::addr_of_mut!(SCRATCH) };
    let mut out = [0.0; 10];
    assert_eq!(allocations(|| out = net.forward_with(&x, scratch)), 0);
    assert_eq!(out, net.forward(&x));
}

#[test]
fn batch_one_training_step_allocates_nothing() {
    let mut net = Box::new(LeNet::init(3));
    let mut grads = Box::new(LeNetGrads::zeroed());
    let mut scratch = vec![0.0; LeNet::TRAIN_SCRATCH_LEN].into_boxed_slice();
    let mut velocity = vec![0.0; LeNet::PARAM_COUNT];
    let mut opt = SgdWith::new(SgdConfig::new(0.1).with_momentum(0.9), &mut velocity);
    let x = image(2);
    let scratch: &mut [f32; LeNet::TRAIN_SCRATCH_LEN] = (&mut scratch[..]).try_into().unwrap();
    let before = net.params()[0];
    let mut losses = Vec::with_capacity(3);
    let count = allocations(|| {
        for _ in 0..3 {
            losses.push(net.train_step_with(&x, Target::Classes(&[7]), &mut grads, scratch, &mut opt));
        }
    });
    assert_eq!(count, 0);
    assert_ne!(net.params()[0], before, "the step changed the parameters");
    assert!(
        losses[2] < losses[0],
        "repeating one example lowers its loss: {losses:?}"
    );
}

#[test]
fn batched_paths_reuse_their_buffers() {
    let _threads = cnn_tests::threads(1);
    let mut net = Box::new(LeNet::init(4));
    let batch: Vec<f32> = (0..32).flat_map(image).collect();
    let labels: Vec<u8> = (0..32).map(|i| (i % 10) as u8).collect();
    let mut out = vec![0.0; 32 * 10];
    let mut opt = Sgd::new(SgdConfig::new(0.1).with_momentum(0.9));

    net.forward_batch(&batch, &mut out);
    net.train_step(&batch, &labels, &mut opt);
    let count = allocations(|| {
        for _ in 0..3 {
            net.forward_batch(&batch, &mut out);
            net.train_step(&batch, &labels, &mut opt);
        }
    });
    eprintln!("batched allocations: {count}");
    assert_eq!(count, 0);
    assert!(out.iter().all(|v| v.is_finite()));
}
