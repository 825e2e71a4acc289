//! cnn-aot's side: `cnn_net!` compiles TFLite's parameters of the model
//! (`tests/fixtures/int8/lenet_relu_avg.safetensors`, written from the same
//! `.tflite` MicroFlow compiles) to integer-only code, and classifies the
//! fixture's first inputs from a static int8 scratch of
//! `INFER_SCRATCH_BYTES` (printed). Reports as `src/lib.rs` says.
#![no_std]
#![no_main]

use cnn_microflow_bench::{data, input, instructions, measure, paint_stack, report, CLASSES, INPUT_LEN};
use cnn_runtime::cnn_net;
use core::hint::black_box;
use cortex_m_rt::entry;

cnn_net! {
    /// LeNet with ReLU and average pooling, TFLite's int8 parameters in flash.
    pub LeNet: [1, 28, 28] weights = "../../tests/fixtures/int8/lenet_relu_avg.safetensors" =>
        net: [conv(1, 6, 5, pad = 2) relu avgpool(2) conv(6, 16, 5) relu avgpool(2) flatten
              linear(400, 120) relu linear(120, 84) relu linear(84, 10)]
}

const _: () = assert!(LeNet::INPUT_LEN == INPUT_LEN && LeNet::OUTPUT_LEN == CLASSES);

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut SCRATCH: [i8; LeNet::INFER_SCRATCH_BYTES] = [0; LeNet::INFER_SCRATCH_BYTES];
    static mut INPUT: [i8; INPUT_LEN] = [0; INPUT_LEN];

    cnn_microflow_bench::start("lenet-cnn");
    cnn_microflow_bench::hprintln!("scratch {}", LeNet::INFER_SCRATCH_BYTES);
    let stack = paint_stack();
    let mut ticks = 0u64;
    for i in 0..data::IMAGES {
        *INPUT = input(i);
        let mut output = [0i8; CLASSES];
        let ((), t) = measure(|| {
            LeNet::TRAINED.forward_with(
                black_box(&*INPUT),
                black_box(&mut output),
                black_box(&mut *SCRATCH),
            )
        });
        ticks += u64::from(t);
        report(i, &output);
    }
    cnn_microflow_bench::hprintln!("instr forward {} {}", data::IMAGES, instructions(ticks));
    stack.report("forward");
    cnn_microflow_bench::finish()
}
