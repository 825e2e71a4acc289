//! int8 inference firmware: D2L's LeNet with TensorFlow Lite's int8
//! parameters in flash runs TFLite's quantized inputs of the int8 fixture
//! from a static int8 scratch, integer only. Prints each image's label,
//! class and int8 outputs (the host compares them with TensorFlow Lite
//! Micro's, which must be equal), the instructions per forward pass and the
//! stack's high-water mark (see the crate docs).
#![no_std]
#![no_main]

use cnn_firmware::{classify_int8, data, LeNetInt8};
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut SCRATCH: [i8; LeNetInt8::INFER_SCRATCH_BYTES] = [0; LeNetInt8::INFER_SCRATCH_BYTES];
    static mut INPUT: [i8; LeNetInt8::INPUT_LEN] = [0; LeNetInt8::INPUT_LEN];

    cnn_firmware::start("lenet-int8");
    let mut output = [0i8; LeNetInt8::OUTPUT_LEN];
    let scratch = &mut *SCRATCH;
    classify_int8(
        &data::INT8_LABELS,
        data::INT8_INPUTS,
        &mut *INPUT,
        &mut output,
        |x, y| {
            LeNetInt8::TRAINED.forward_with(
                x.try_into().expect("one input"),
                y.try_into().expect("one output"),
                core::hint::black_box(&mut *scratch),
            )
        },
    );
    cnn_firmware::finish()
}
