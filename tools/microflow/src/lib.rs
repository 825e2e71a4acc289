//! What both binaries share, so that they differ only in the engine: the
//! included inputs, the instruction counter, stack painting and the report
//! lines. The method is models/firmware's (the `cnn-firmware-probe` crate,
//! README "On a Cortex-M, under QEMU").
//!
//! Each binary prints one record per line through semihosting, fields
//! separated by spaces; `tools/microflow.sh` reads them:
//!
//! | line | meaning |
//! |---|---|
//! | `firmware NAME` | which binary |
//! | `calib LOOP_INSTRUCTIONS TICKS` | the instruction counter's check (see [`calibrate`]) |
//! | `scratch BYTES` | `lenet-cnn` only: its static scratch, `INFER_SCRATCH_BYTES` |
//! | `int8 I LABEL PRED OUTPUTS..` | input `I`'s label, predicted class and int8 outputs (decimal) |
//! | `instr forward RUNS INSTRUCTIONS` | instructions of RUNS inferences, in all |
//! | `stack forward BYTES BASE` | the stack's high-water mark (bytes from the top), and the bytes in use when painting |
//! | `ok` | the last line of a run that found nothing wrong (exit status 0) |
#![no_std]

// The instruction counter, stack painting, start/finish/fail and the panic
// and fault handlers: models/firmware's, from their shared crate.
pub use cnn_firmware_probe::*;

/// The data `build.rs` generated: the fixture's int8 inputs and labels.
pub mod data {
    include!(concat!(env!("OUT_DIR"), "/data.rs"));
}

/// Bytes of one input (1 x 28 x 28, int8).
pub const INPUT_LEN: usize = 28 * 28;
/// Outputs (classes) of the model.
pub const CLASSES: usize = 10;

/// Input `i` of the fixture, as TFLite quantized it (row-major 28 x 28).
pub fn input(i: usize) -> [i8; INPUT_LEN] {
    let bytes = &data::INPUTS[i * INPUT_LEN..][..INPUT_LEN];
    core::array::from_fn(|k| bytes[k] as i8)
}

/// Prints `int8 I LABEL PRED OUTPUTS..` for input `i`.
pub fn report(i: usize, output: &[i8; CLASSES]) {
    let class = (0..CLASSES).fold(0, |best, k| if output[k] > output[best] { k } else { best });
    hprint!("int8 {} {} {}", i, data::LABELS[i], class);
    for q in output {
        hprint!(" {}", q);
    }
    hprintln!();
}
