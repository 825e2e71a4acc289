//! MicroFlow's side: its `#[model]` macro compiles
//! `tests/fixtures/int8/lenet_relu_avg.tflite` (the path is read relative
//! to the directory rustc runs in: this workspace's root) and classifies
//! the fixture's first inputs. Reports as `src/lib.rs` says.
//!
//! MicroFlow's public methods return dequantized `f32` outputs
//! (`predict_quantized(Buffer4D<i8, 1, 28, 28, 1>) -> Buffer2D<f32, 1, 10>`);
//! the int8 outputs come from the private `predict_inner` the macro emits
//! beside them (visible in this module, where the macro expands), which
//! `predict_quantized` calls before its `dequantize()`; the input tensor
//! carries the model's input quantization, as `predict_quantized` builds
//! it. MicroFlow's tensors are values: every layer's output lives on the
//! stack. Its requantization is f32 arithmetic rounded once (`roundf`),
//! TFLite Micro's fixed point rounded twice, so values within about 2^-10
//! of a tie can round apart (tools/microflow.sh reports how often it shows).
#![no_std]
#![no_main]

use cnn_microflow_bench::{data, input, instructions, measure, paint_stack, report, CLASSES};
use core::hint::black_box;
use cortex_m_rt::entry;
use microflow::buffer::{Buffer2D, Buffer4D};
use microflow::model;
use microflow::tensor::Tensor4D;

#[model("../../tests/fixtures/int8/lenet_relu_avg.tflite")]
struct LeNet;

#[entry]
fn main() -> ! {
    cnn_microflow_bench::start("lenet-microflow");
    let stack = paint_stack();
    let mut ticks = 0u64;
    for i in 0..data::IMAGES {
        let pixels = input(i);
        // NHWC [1, 28, 28, 1]: row r, column c of a nalgebra (column-major) matrix.
        let buffer: Buffer4D<i8, 1, 28, 28, 1> = [Buffer2D::from_fn(|r, c| [pixels[r * 28 + c]])];
        let (result, t) = measure(|| {
            LeNet::predict_inner(Tensor4D::new(
                black_box(buffer),
                [data::INPUT_SCALE],
                [data::INPUT_ZERO_POINT],
            ))
        });
        ticks += u64::from(t);
        let result = black_box(result);
        let output: [i8; CLASSES] = core::array::from_fn(|k| result.buffer[(0, k)]);
        report(i, &output);
    }
    cnn_microflow_bench::hprintln!("instr forward {} {}", data::IMAGES, instructions(ticks));
    stack.report("forward");
    cnn_microflow_bench::finish()
}
