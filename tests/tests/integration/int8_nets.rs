//! int8 nets compiled from TensorFlow Lite's own quantization: each
//! fixture's int8 weights, biases, scales and zero points (as TFLite's
//! converter chose them, written by `tools/int8_weights.py`) are baked with
//! `weights = "...safetensors"`, and the generated integer-only
//! `forward_with` must give TensorFlow Lite Micro's int8 outputs exactly,
//! on every image of the fixture.

use cnn_tests::{json_ints as ints, load_int8 as fixture};
use serde_json::Value;

/// A fixture's net with TFLite's parameters baked, and the check of every
/// image against TFLite Micro.
macro_rules! int8_net {
    ($name:ident, $file:literal, $($net:tt)*) => {
        mod $name {
            cnn_runtime::cnn_net! {
                pub Net: [1, 28, 28] weights = $file => $($net)*
            }

            // The same net with its tensors loaded at run time.
            cnn_runtime::cnn_net! {
                pub Loaded: [1, 28, 28] int8 => $($net)*
            }

            #[test]
            fn outputs_equal_tflite_micro() {
                super::check(stringify!($name), |x, y, scratch| Net::TRAINED.forward_with(
                    x.try_into().expect("one input"),
                    y.try_into().expect("one output"),
                    scratch.try_into().expect("the scratch"),
                ), Net::INFER_SCRATCH_BYTES, (Net::INPUT_SCALE, Net::INPUT_ZERO_POINT), (Net::OUTPUT_SCALE, Net::OUTPUT_ZERO_POINT));
                // The f32 helpers quantize as TFLite does.
                let fx = super::fixture(stringify!($name));
                let image = &fx["images"][0];
                let pixels: Vec<u8> = super::ints(&image["pixels"]);
                let x: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
                let q = Net::TRAINED.quantize_input(x[..].try_into().unwrap());
                assert_eq!(q.to_vec(), super::ints::<i8>(&image["input"]), "quantize_input");
            }

            /// Loaded at run time from the same file, the net derives the
            /// same multipliers and gives the same outputs; written back,
            /// the file loads to the same net again.
            #[test]
            fn loaded_at_run_time_equals_baked() {
                use cnn_runtime::int8::Int8Network;
                let bytes = std::fs::read(cnn_tests::fixtures_dir().join(&$file["fixtures/".len()..])).unwrap();
                let loaded: Loaded = cnn_runtime::weights::int8::load(&bytes).expect("loads");
                assert_eq!(loaded.input_quant(), Net::TRAINED.input_quant());
                assert_eq!(loaded.output_quant(), Net::TRAINED.output_quant());
                super::check(stringify!($name), |x, y, scratch| loaded.forward_with(
                    x.try_into().expect("one input"),
                    y.try_into().expect("one output"),
                    scratch.try_into().expect("the scratch"),
                ), Loaded::INFER_SCRATCH_BYTES, (Net::INPUT_SCALE, Net::INPUT_ZERO_POINT), (Net::OUTPUT_SCALE, Net::OUTPUT_ZERO_POINT));
                // Batched: the same bytes as one at a time.
                let fx = super::fixture(stringify!($name));
                let inputs: Vec<i8> = fx["images"].as_array().unwrap().iter().flat_map(|i| super::ints::<i8>(&i["input"])).collect();
                let n = inputs.len() / Loaded::INPUT_LEN;
                let mut batched = vec![0i8; n * Loaded::OUTPUT_LEN];
                let mut scratch = vec![0i8; n * Loaded::INFER_SCRATCH_BYTES];
                Int8Network::forward_n(&loaded, n, &inputs, &mut batched, &mut scratch);
                let expected: Vec<i8> = fx["images"].as_array().unwrap().iter().flat_map(|i| super::ints::<i8>(&i["output"])).collect();
                assert_eq!(batched, expected, "forward_n");
                // Round trip through the writer.
                let t = cnn_runtime::weights::int8::read(&bytes, Loaded::INT8_LAYERS, Loaded::INT8_POINTS).unwrap();
                let written = cnn_runtime::weights::int8::to_safetensors(Loaded::INT8_LAYERS, Loaded::INT8_POINTS, &t.parts(), &[]);
                assert_eq!(cnn_runtime::weights::int8::read(&written, Loaded::INT8_LAYERS, Loaded::INT8_POINTS).unwrap(), t);
            }
        }
    };
}

/// Runs `forward_with` on every image of fixture `name` and compares with
/// TFLite Micro's outputs, bit for bit; the net's quantization constants
/// are TFLite's.
fn check(
    name: &str,
    forward_with: impl Fn(&[i8], &mut [i8], &mut [i8]),
    scratch_bytes: usize,
    input: (f32, i32),
    output: (f32, i32),
) {
    let fx = fixture(name);
    let quant = |q: &Value| {
        (
            q["scale"].as_f64().unwrap() as f32,
            q["zero_point"].as_i64().unwrap() as i32,
        )
    };
    assert_eq!(input, quant(&fx["input_quant"]), "{name}: input quantization");
    assert_eq!(output, quant(&fx["output_quant"]), "{name}: output quantization");
    let images = fx["images"].as_array().expect("images");
    assert!(images.len() >= 16, "{name}: {} images", images.len());
    let mut scratch = vec![0i8; scratch_bytes];
    for (i, image) in images.iter().enumerate() {
        let x: Vec<i8> = ints(&image["input"]);
        let expected: Vec<i8> = ints(&image["output"]);
        let mut y = vec![0i8; expected.len()];
        scratch.fill(0x55);
        forward_with(&x, &mut y, &mut scratch);
        assert_eq!(y, expected, "{name}: image {i} ({})", image["source"]);
    }
}

int8_net!(lenet_sigmoid, "fixtures/int8/lenet_sigmoid.safetensors", net: [conv(1, 6, 5, pad = 2) sigmoid avgpool(2) conv(6, 16, 5) sigmoid avgpool(2) flatten linear(400, 120) sigmoid linear(120, 84) sigmoid linear(84, 10)]);
int8_net!(lenet_relu, "fixtures/int8/lenet_relu.safetensors", net: [conv(1, 6, 5, pad = 2) relu maxpool(2) conv(6, 16, 5) relu maxpool(2) flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10)]);
int8_net!(lenet_relu_avg, "fixtures/int8/lenet_relu_avg.safetensors", net: [conv(1, 6, 5, pad = 2) relu avgpool(2) conv(6, 16, 5) relu avgpool(2) flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10)]);
int8_net!(strided, "fixtures/int8/strided.safetensors", net: [conv(1, 8, 3, stride = 2, pad = 1) relu conv(8, 16, 3, stride = 2, pad = 1) relu6 flatten linear(784, 10)]);
int8_net!(one_by_one, "fixtures/int8/one_by_one.safetensors", net: [conv(1, 8, 3) relu conv(8, 4, 1) tanh maxpool(2) flatten linear(676, 10)]);
// A graph net: a residual ADD with a fused relu, a CONCATENATION, MEAN and
// REDUCE_MAX added. (The joins are labelled with their positions: in the
// generator's PyTorch module the branches are attributes of modules `2` and
// `4`.)
int8_net!(residual_cat, "fixtures/int8/residual_cat.safetensors", net: [
    conv(1, 8, 3, stride = 2, pad = 1) relu
    2: add { conv1: conv(8, 8, 3, pad = 1) | identity } relu
    4: cat { a: conv(8, 8, 3, stride = 2, pad = 1) relu | b: conv(8, 4, 1, stride = 2) relu }
    add { global_avgpool | global_maxpool }
    flatten linear(12, 10)
]);

/// The float twin of `lenet_relu` (same layers, same keys).
mod float_lenet_relu {
    cnn_runtime::cnn_net! {
        pub Net: [1, 28, 28] => net: [conv(1, 6, 5, pad = 2) relu maxpool(2) conv(6, 16, 5) relu maxpool(2) flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10)]
    }
}

/// A float net refuses an int8 file at load time with a message saying
/// what the file is and what to do with it, and loads nothing.
#[test]
fn a_float_net_refuses_an_int8_file() {
    let bytes = std::fs::read(cnn_tests::fixtures_dir().join("int8/lenet_relu.safetensors")).unwrap();
    let mut net = float_lenet_relu::Net::boxed_zeroed();
    let error = net.load_safetensors(&bytes).expect_err("an int8 file");
    let message = error.to_string();
    assert!(
        message.contains("int8 weights file") && message.contains("cnn_net!"),
        "{message}"
    );
    assert!(net.params().iter().all(|&v| v == 0.0), "nothing loaded");
}

/// The int8 net's constants: the scratch is the float net's plan in bytes,
/// and the read-only data is what its tensors hold.
#[test]
fn int8_constants() {
    assert_eq!(
        lenet_relu::Net::INFER_SCRATCH_BYTES,
        float_lenet_relu::Net::INFER_SCRATCH_LEN
    );
    // Weights (one byte each), biases (four), two i32 per output channel,
    // a clamp per layer with weights (2), every layer's quantization (8).
    let weights = 150 + 2400 + 48000 + 10080 + 840;
    let channels = 6 + 16 + 120 + 84 + 10;
    let data: usize = weights + 4 * channels + 8 * channels + 2 * 5 + 8 * 13;
    assert_eq!(lenet_relu::Net::PARAM_BYTES, data.next_multiple_of(4));
    assert_eq!(lenet_relu::Net::PARAM_BYTES, lenet_relu::Loaded::PARAM_BYTES);
    assert_eq!(lenet_relu::Net::MACS, float_lenet_relu::Net::MACS);
}

/// Every bad int8 file is a load-time error naming what is wrong, and
/// a float file is refused by an int8 net.
#[test]
fn bad_int8_files_are_load_errors() {
    use cnn_runtime::int8::Int8Parts;
    use cnn_runtime::weights::{int8, WeightsError};
    type Net = lenet_sigmoid::Loaded;
    let bytes = std::fs::read(cnn_tests::fixtures_dir().join("int8/lenet_sigmoid.safetensors")).unwrap();
    let good = int8::read(&bytes, Net::INT8_LAYERS, Net::INT8_POINTS).unwrap();
    let error = |edit: &dyn Fn(&mut int8::Int8Tensors)| {
        let mut t = good.clone();
        edit(&mut t);
        let written = int8::to_safetensors(Net::INT8_LAYERS, Net::INT8_POINTS, &t.parts(), &[]);
        int8::load::<Net>(&written).err().map(|e| e.to_string())
    };
    // A zero output scale, a negative weight scale, a zero point beyond int8.
    let zero = error(&|t| t.outputs[1].scale = 0.0).unwrap();
    assert!(
        zero.contains("3.output_scale\"") && zero.contains("positive finite"),
        "{zero}"
    );
    let negative = error(&|t| t.weight_scales[7] = -1.0).unwrap();
    assert!(
        negative.contains("3.weight_scale\"") && negative.contains("scale 1 is -1"),
        "{negative}"
    );
    let zp = error(&|t| t.input.zero_point = 300).unwrap();
    assert!(
        zp.contains("\"input.zero_point\"") && zp.contains("outside the int8 range"),
        "{zp}"
    );
    // A sigmoid whose input scale TFLite's fixed point cannot take.
    let tiny = error(&|t| t.outputs[0].scale = 1e-12).unwrap();
    assert!(tiny.contains("layer 1") && tiny.contains("2^-27"), "{tiny}");
    // A file for another net: shapes and keys differ.
    let other = std::fs::read(cnn_tests::fixtures_dir().join("int8/strided.safetensors")).unwrap();
    let message = int8::load::<Net>(&other).err().unwrap().to_string();
    assert!(message.contains("0.weight\""), "{message}");
    // A float file.
    let float = cnn_runtime::weights::to_safetensors(
        float_lenet_relu::Net::TENSORS,
        &vec![0.0; float_lenet_relu::Net::PARAM_COUNT],
    );
    let refused = int8::load::<Net>(&float).err().unwrap();
    assert!(matches!(refused, WeightsError::NotInt8), "{refused}");
    assert!(refused.to_string().contains("cnn quantize"), "{refused}");
    // Parts that do not fit.
    let parts = Int8Parts {
        weights: &[0; 3],
        ..good.parts()
    };
    assert!(Net::from_parts(&parts).is_err());
}
