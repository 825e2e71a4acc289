//! Inference firmware: LeNet with the trained Fashion-MNIST weights baked
//! into flash classifies the included test images from a static scratch.
//! Prints each image's label, class and logits, the instructions per
//! forward pass and the stack's high-water mark (see the crate docs).
#![no_std]
#![no_main]

use cnn_firmware::{
    argmax, data, hprint, hprintln, instructions, load_test_image, measure, paint_stack, print_bits, LeNet,
};
use core::hint::black_box;
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut SCRATCH: [f32; LeNet::INFER_SCRATCH_LEN] = [0.0; LeNet::INFER_SCRATCH_LEN];
    static mut IMAGE: [f32; LeNet::INPUT_LEN] = [0.0; LeNet::INPUT_LEN];

    cnn_firmware::start("lenet");
    let stack = paint_stack();
    let mut ticks = 0u64;
    for i in 0..data::TEST_IMAGES {
        load_test_image(i, IMAGE);
        let (logits, t) =
            measure(|| LeNet::TRAINED.forward_with(black_box(&*IMAGE), black_box(&mut *SCRATCH)));
        ticks += u64::from(t);
        hprint!("class {} {} {}", i, data::TEST_LABELS[i], argmax(&logits));
        print_bits(&logits);
        hprintln!();
    }
    hprintln!("instr forward {} {}", data::TEST_IMAGES, instructions(ticks));
    stack.report("forward");
    cnn_firmware::finish()
}
