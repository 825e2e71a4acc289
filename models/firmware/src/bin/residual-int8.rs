//! int8 inference firmware for a graph net: the `residual_cat` fixture's
//! net (a residual ADD, a CONCATENATION, MEAN and REDUCE_MAX) with
//! TensorFlow Lite's int8 parameters in flash runs TFLite's quantized
//! inputs from a static int8 scratch, integer only. Prints each image's label,
//! class and int8 outputs (the host compares them with TensorFlow Lite
//! Micro's, which must be equal), the instructions per forward pass and the
//! stack's high-water mark (see the crate docs).
#![no_std]
#![no_main]

use cnn_firmware::{classify_int8, data, ResidualInt8};
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut SCRATCH: [i8; ResidualInt8::INFER_SCRATCH_BYTES] = [0; ResidualInt8::INFER_SCRATCH_BYTES];
    static mut INPUT: [i8; ResidualInt8::INPUT_LEN] = [0; ResidualInt8::INPUT_LEN];

    cnn_firmware::start("residual-int8");
    let mut output = [0i8; ResidualInt8::OUTPUT_LEN];
    let scratch = &mut *SCRATCH;
    classify_int8(
        &data::RESIDUAL_INT8_LABELS,
        data::RESIDUAL_INT8_INPUTS,
        &mut *INPUT,
        &mut output,
        |x, y| {
            ResidualInt8::TRAINED.forward_with(
                x.try_into().expect("one input"),
                y.try_into().expect("one output"),
                core::hint::black_box(&mut *scratch),
            )
        },
    );
    cnn_firmware::finish()
}
