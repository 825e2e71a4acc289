//! int8 inference firmware: D2L's LeNet with TensorFlow Lite's int8
//! parameters in flash runs TFLite's quantized inputs of the int8 fixture
//! from a static int8 scratch, integer only. Prints each image's label,
//! class and int8 outputs (the host compares them with TensorFlow Lite
//! Micro's, which must be equal), the instructions per forward pass and the
//! stack's high-water mark (see the crate docs).
#![no_std]
#![no_main]

use cnn_firmware::{data, hprint, hprintln, instructions, measure, paint_stack, LeNetInt8};
use core::hint::black_box;
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut SCRATCH: [i8; LeNetInt8::INFER_SCRATCH_BYTES] = [0; LeNetInt8::INFER_SCRATCH_BYTES];
    static mut INPUT: [i8; LeNetInt8::INPUT_LEN] = [0; LeNetInt8::INPUT_LEN];

    cnn_firmware::start("lenet-int8");
    let stack = paint_stack();
    let mut ticks = 0u64;
    for i in 0..data::INT8_IMAGES {
        let bytes = &data::INT8_INPUTS[i * LeNetInt8::INPUT_LEN..][..LeNetInt8::INPUT_LEN];
        for (q, &b) in INPUT.iter_mut().zip(bytes) {
            *q = b as i8;
        }
        let mut output = [0i8; LeNetInt8::OUTPUT_LEN];
        let ((), t) = measure(|| {
            LeNetInt8::TRAINED.forward_with(
                black_box(&*INPUT),
                black_box(&mut output),
                black_box(&mut *SCRATCH),
            )
        });
        ticks += u64::from(t);
        let class = (0..output.len()).fold(0, |best, k| if output[k] > output[best] { k } else { best });
        hprint!("int8 {} {} {}", i, data::INT8_LABELS[i], class);
        for q in output {
            hprint!(" {}", q);
        }
        hprintln!();
    }
    hprintln!("instr forward {} {}", data::INT8_IMAGES, instructions(ticks));
    stack.report("forward");
    cnn_firmware::finish()
}
