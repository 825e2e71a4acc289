//! The residual net of `tests/no-std` (identity and strided 1x1-conv
//! shortcuts, an Inception-style concatenation) from `Residual::init(0)`, on
//! 12x12 crops of the included test images: logits, batch-1 SGD steps and
//! their losses, instructions per forward pass and per training step, and
//! the stack's high-water mark (see the crate docs).
#![no_std]
#![no_main]

use cnn_firmware::{
    argmax, data, hprint, hprintln, instructions, load_test_crop, measure, paint_stack, print_bits, CROP,
    CROP_AT,
};
use cnn_no_std::{residual_logits, train_residual, Residual, ResidualGrads};
use cnn_runtime::optim::{SgdConfig, SgdWith};
use core::hint::black_box;
use cortex_m_rt::entry;

/// The seed of `Residual::init`.
const SEED: u64 = 0;
/// Training steps, one crop each.
const STEPS: usize = 8;
/// SGD learning rate.
const LR: f32 = 0.05;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut NET: Residual = Residual::zeroed();
    static mut GRADS: ResidualGrads = ResidualGrads::zeroed();
    static mut TRAIN_SCRATCH: [f32; Residual::TRAIN_SCRATCH_LEN] = [0.0; Residual::TRAIN_SCRATCH_LEN];
    static mut INFER_SCRATCH: [f32; Residual::INFER_SCRATCH_LEN] = [0.0; Residual::INFER_SCRATCH_LEN];
    static mut IMAGE: [f32; Residual::INPUT_LEN] = [0.0; Residual::INPUT_LEN];

    cnn_firmware::start("residual");
    hprintln!("sgd {:08x} {}", LR.to_bits(), STEPS);
    hprintln!("init {} crop {} {}", SEED, CROP_AT, CROP);
    let net: &mut Residual = NET;
    init(net);

    let stack = paint_stack();
    let mut ticks = 0u64;
    for i in 0..data::TEST_IMAGES {
        load_test_crop(i, IMAGE);
        let (logits, t) =
            measure(|| residual_logits(net, black_box(&*IMAGE), black_box(&mut *INFER_SCRATCH)));
        ticks += u64::from(t);
        hprint!("class {} {} {}", i, data::TEST_LABELS[i], argmax(&logits));
        print_bits(&logits);
        hprintln!();
    }
    hprintln!("instr forward {} {}", data::TEST_IMAGES, instructions(ticks));
    stack.report("forward");

    let stack = paint_stack();
    let mut opt = SgdWith::new(SgdConfig::new(LR), &mut []);
    let mut ticks = 0u64;
    for step in 0..STEPS {
        load_test_crop(step % data::TEST_IMAGES, IMAGE);
        let label = data::TEST_LABELS[step % data::TEST_IMAGES];
        let (loss, t) =
            measure(|| train_residual(net, black_box(&*IMAGE), label, GRADS, TRAIN_SCRATCH, &mut opt));
        ticks += u64::from(t);
        hprintln!(
            "loss {} {} {:08x}",
            step,
            step % data::TEST_IMAGES,
            loss.to_bits()
        );
    }
    hprintln!("instr train {} {}", STEPS, instructions(ticks));
    stack.report("train");

    load_test_crop(0, IMAGE);
    let logits = residual_logits(net, &*IMAGE, INFER_SCRATCH);
    hprint!("after 0");
    print_bits(&logits);
    hprintln!();
    cnn_firmware::finish()
}

/// `Residual::init(SEED)` into `net`, in a frame of its own (the value is
/// built on the stack), so that `main`'s frame stays small.
#[inline(never)]
fn init(net: &mut Residual) {
    *net = Residual::init(SEED);
}
