//! What the firmware binaries share: the baked LeNet, the included data,
//! the instruction counter, stack painting, and the report lines.
//!
//! Every binary prints one record per line through semihosting, fields
//! separated by spaces, floats as the hexadecimal bits of the `f32` (exact,
//! and no float formatting code in flash); `tools/firmware.sh` and the host
//! program `tests/examples/firmware_host.rs` read them:
//!
//! | line | meaning |
//! |---|---|
//! | `firmware NAME` | which binary |
//! | `calib LOOP_INSTRUCTIONS TICKS` | the instruction counter's check (see [`calibrate`]) |
//! | `class I LABEL PRED LOGITS..` | a test image's label, predicted class and logits |
//! | `int8 I LABEL PRED OUTPUTS..` | an int8 net's label, class and int8 outputs (decimal) for input `I` of its fixture |
//! | `fixture I LOGITS..` | logits of the PyTorch fixture's input `I` |
//! | `fixture_loss I LOSS` | loss of fixture example `I` at the fixture's weights |
//! | `sgd LR STEPS` | the training steps' learning rate and count |
//! | `init SEED crop AT SIZE` | the residual net's `init` seed and the crop of the test images it sees |
//! | `loss STEP IMAGE LOSS` | the test image a training step trained on, and the loss it returned |
//! | `after I LOGITS..` | logits after the training steps |
//! | `instr forward\|train RUNS INSTRUCTIONS` | instructions of RUNS calls, in all |
//! | `stack PHASE BYTES BASE` | the stack's high-water mark during a phase (bytes from the top), and the bytes in use when it began |
//! | `ok` | the last line of a run that found nothing wrong (exit status 0) |
#![no_std]

// The instruction counter, stack painting, start/finish/fail and the panic
// and fault handlers, shared with tools/microflow.
pub use cnn_firmware_probe::*;

use cnn_runtime::cnn_net;

cnn_net! {
    /// LeNet-5 (D2L 7.6) with the main job's trained Fashion-MNIST weights
    /// in flash (`LeNet::TRAINED`).
    pub LeNet: [1, 28, 28] weights = "../weights/lenet-fashion.safetensors" =>
        conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
        conv(6, 16, 5) sigmoid avgpool(2)
        flatten
        linear(400, 120) sigmoid
        linear(120, 84) sigmoid
        linear(84, 10)
}

cnn_net! {
    /// D2L's LeNet in int8 with TensorFlow Lite's parameters
    /// (`tests/fixtures/int8/lenet_sigmoid`): integer-only inference, bit
    /// for bit as TensorFlow Lite Micro runs the same model.
    pub LeNetInt8: [1, 28, 28] weights = "../../tests/fixtures/int8/lenet_sigmoid.safetensors" =>
        net: [conv(1, 6, 5, pad = 2) sigmoid avgpool(2) conv(6, 16, 5) sigmoid avgpool(2) flatten
              linear(400, 120) sigmoid linear(120, 84) sigmoid linear(84, 10)]
}

cnn_net! {
    /// A graph net in int8 with TensorFlow Lite's parameters
    /// (`tests/fixtures/int8/residual_cat`): a residual ADD with a fused
    /// relu, a CONCATENATION, MEAN and REDUCE_MAX added, a linear head;
    /// integer-only inference, bit for bit as TensorFlow Lite Micro runs it.
    pub ResidualInt8: [1, 28, 28] weights = "../../tests/fixtures/int8/residual_cat.safetensors" =>
        net: [
            conv(1, 8, 3, stride = 2, pad = 1) relu
            2: add { conv1: conv(8, 8, 3, pad = 1) | identity } relu
            4: cat { a: conv(8, 8, 3, stride = 2, pad = 1) relu | b: conv(8, 4, 1, stride = 2) relu }
            add { global_avgpool | global_maxpool }
            flatten linear(12, 10)
        ]
}

/// Runs an int8 net (`forward_with` of one input, as `forward`) on each
/// of `images` int8 inputs of its fixture (`inputs`, `input.len()` bytes
/// each), printing an `int8` line per image, then the instructions of all
/// the forward passes and the stack's high-water mark.
pub fn classify_int8(
    labels: &[u8],
    inputs: &[u8],
    input: &mut [i8],
    output: &mut [i8],
    mut forward: impl FnMut(&[i8], &mut [i8]),
) {
    let stack = paint_stack();
    let mut ticks = 0u64;
    for (i, &label) in labels.iter().enumerate() {
        let bytes = &inputs[i * input.len()..][..input.len()];
        for (q, &b) in input.iter_mut().zip(bytes) {
            *q = b as i8;
        }
        let ((), t) = measure(|| {
            forward(
                core::hint::black_box(&*input),
                core::hint::black_box(&mut *output),
            )
        });
        ticks += u64::from(t);
        let class = (0..output.len()).fold(0, |best, k| if output[k] > output[best] { k } else { best });
        hprint!("int8 {} {} {}", i, label, class);
        for q in output.iter() {
            hprint!(" {}", q);
        }
        hprintln!();
    }
    hprintln!("instr forward {} {}", labels.len(), instructions(ticks));
    stack.report("forward");
}

/// The int8 LeNet's budget on the Cortex-M4F: its read-only data within
/// 128 KiB of flash (with room for the code) and its scratch within 32 KiB
/// of RAM (with room for the stack); `tools/firmware.sh` checks the
/// measured flash and RAM of the whole firmware against the same budget.
const _: () = assert!(LeNetInt8::PARAM_BYTES + 32 * 1024 <= 128 * 1024);
const _: () = assert!(LeNetInt8::INFER_SCRATCH_BYTES + 8 * 1024 <= 32 * 1024);

/// The data `build.rs` generated: test images and the PyTorch fixture.
pub mod data {
    include!(concat!(env!("OUT_DIR"), "/data.rs"));
}

/// Pixels per test image.
pub const IMAGE_LEN: usize = 28 * 28;

/// The pixels of test image `i`.
fn test_pixels(i: usize) -> &'static [u8] {
    &data::TEST_PIXELS[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]
}

/// Writes test image `i` into `out` as the host loader makes it: `pixel / 255`.
pub fn load_test_image(i: usize, out: &mut [f32; IMAGE_LEN]) {
    for (v, &p) in out.iter_mut().zip(test_pixels(i)) {
        *v = f32::from(p) / 255.0;
    }
}

/// Side of the crop the residual net sees.
pub const CROP: usize = 12;
/// First row and column of that crop in the 28x28 image.
pub const CROP_AT: usize = 8;

/// Writes rows and columns `CROP_AT..CROP_AT + CROP` of test image `i` into
/// `out`, scaled as [`load_test_image`] scales.
pub fn load_test_crop(i: usize, out: &mut [f32; CROP * CROP]) {
    let pixels = test_pixels(i);
    for (k, v) in out.iter_mut().enumerate() {
        *v = f32::from(pixels[(CROP_AT + k / CROP) * 28 + CROP_AT + k % CROP]) / 255.0;
    }
}

/// Little-endian `f32`s from included bytes.
pub fn read_f32s(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), out.len() * 4, "included data has the wrong length");
    for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// The index of the largest value (the first of equal ones).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Prints `values` as hexadecimal `f32` bits, each after a space.
pub fn print_bits(values: &[f32]) {
    for v in values {
        hprint!(" {:08x}", v.to_bits());
    }
}
