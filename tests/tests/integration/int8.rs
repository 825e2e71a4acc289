//! The int8 kernels against TensorFlow Lite Micro, bit for bit: every net of
//! `tests/fixtures/int8/` (written by `tools/gen_int8_fixtures.py`: PyTorch
//! nets converted to int8 TFLite models and run by TFLM's own interpreter)
//! is run here layer by layer through `cnn_runtime`'s int8 kernels, and
//! every value must EQUAL TFLM's.
//!
//! For each net the test
//! - derives every layer's fixed-point parameters from the float scales
//!   (`Requant`, `Clamp`, `Q4Input`) and requires them to equal the ones the
//!   generator computed the way TFLM prepares them;
//! - quantizes each image's pixels (`pixels / 255`) with the model's input
//!   scale and zero point and requires TFLM's int8 input;
//! - where the fixture has TFLM's intermediate tensors, runs each layer on
//!   TFLM's input to it (so a mismatch names the op that caused it) and
//!   requires TFLM's output;
//! - runs the whole net from the int8 input and requires TFLM's int8
//!   logits, and the same predicted classes.
//!
//! This test file is the small interpreter the compiler will later generate
//! as straight code.

use cnn_runtime::ops::conv::Conv2d;
use cnn_runtime::ops::linear::Linear;
use cnn_runtime::ops::window::Pool2d;
use cnn_runtime::ops::{avgpool, conv, linear, maxpool, sigmoid, tanh};
use cnn_runtime::quant::{self, Activation, Clamp, OutputStage, Q4Input, Requant};
use serde_json::Value;

const NETS: [&str; 5] = ["lenet_sigmoid", "lenet_relu", "lenet_relu_avg", "strided", "one_by_one"];

/// One layer with everything its kernel needs.
enum Op {
    Conv {
        g: Conv2d,
        groups: usize,
        w: Vec<i8>,
        b: Vec<i32>,
        requant: Vec<Requant>,
        in_zp: i32,
        out_zp: i32,
        clamp: Clamp,
    },
    Linear {
        g: Linear,
        w: Vec<i8>,
        b: Vec<i32>,
        requant: Vec<Requant>,
        in_zp: i32,
        out_zp: i32,
        clamp: Clamp,
    },
    MaxPool(Pool2d, Clamp),
    AvgPool(Pool2d, Clamp),
    Sigmoid(Q4Input),
    Tanh(Q4Input),
    Flatten,
}

struct Layer {
    name: String,
    op: Op,
    out_len: usize,
}

impl Layer {
    fn run(&self, x: &[i8]) -> Vec<i8> {
        let mut y = vec![0i8; self.out_len];
        match &self.op {
            Op::Conv {
                g,
                groups,
                w,
                b,
                requant,
                in_zp,
                out_zp,
                clamp,
            } => {
                let stage = OutputStage {
                    input_zero_point: *in_zp,
                    requant,
                    output_zero_point: *out_zp,
                    clamp: *clamp,
                };
                conv::int8::forward(g, *groups, 1, x, w, Some(b), &stage, &mut y);
            }
            Op::Linear {
                g,
                w,
                b,
                requant,
                in_zp,
                out_zp,
                clamp,
            } => {
                let stage = OutputStage {
                    input_zero_point: *in_zp,
                    requant,
                    output_zero_point: *out_zp,
                    clamp: *clamp,
                };
                linear::int8::forward(g, 1, x, w, Some(b), &stage, &mut y);
            }
            Op::MaxPool(p, clamp) => maxpool::int8::forward(p, 1, x, *clamp, &mut y),
            Op::AvgPool(p, clamp) => avgpool::int8::forward(p, 1, x, *clamp, &mut y),
            Op::Sigmoid(q) => {
                y.copy_from_slice(x);
                sigmoid::int8::forward(q, &mut y);
            }
            Op::Tanh(q) => {
                y.copy_from_slice(x);
                tanh::int8::forward(q, &mut y);
            }
            Op::Flatten => y.copy_from_slice(x),
        }
        y
    }
}

fn usize_at(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}: expected an unsigned integer")) as usize
}

fn i32_at(v: &Value, key: &str) -> i32 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key}: expected an integer")) as i32
}

fn pair(v: &Value, key: &str) -> (usize, usize) {
    let a = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}: expected [a, b]"));
    (a[0].as_u64().unwrap() as usize, a[1].as_u64().unwrap() as usize)
}

fn int8s(v: &Value) -> Vec<i8> {
    cnn_tests::json_ints(v)
}

fn int32s(v: &Value) -> Vec<i32> {
    cnn_tests::json_ints(v)
}

/// A float32 written as its exact double.
fn f32_at(v: &Value, key: &str) -> f32 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key}: expected a number")) as f32
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn shape_len(v: &Value) -> usize {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .product()
}

fn activation(v: &Value) -> Activation {
    match v["activation"].as_str().expect("activation") {
        "none" => Activation::None,
        "relu" => Activation::Relu,
        "relu6" => Activation::Relu6,
        other => panic!("unknown activation {other}"),
    }
}

/// The layer's clamp, derived in Rust and checked against the fixture.
fn clamp_of(v: &Value, what: &str) -> Clamp {
    let q = &v["output_quant"];
    let clamp = Clamp::for_activation(activation(v), f32_at(q, "scale"), i32_at(q, "zero_point"));
    assert_eq!(
        (i32::from(clamp.min), i32::from(clamp.max)),
        (i32_at(v, "act_min"), i32_at(v, "act_max")),
        "{what}: activation range"
    );
    clamp
}

/// The per-channel multipliers, derived in Rust from the float scales the
/// way TFLM prepares them, and checked against the generator's.
fn requant_of(v: &Value, what: &str, per_tensor_linear: bool) -> Vec<Requant> {
    let in_scale = f32_at(&v["input_quant"], "scale");
    let out_scale = f32_at(&v["output_quant"], "scale");
    let w_scales = f32s(&v["weight"]["scales"]);
    let requant: Vec<Requant> = w_scales
        .iter()
        .map(|&ws| {
            if per_tensor_linear {
                Requant::per_tensor_linear(in_scale, ws, out_scale)
            } else {
                Requant::per_channel(in_scale, ws, out_scale)
            }
        })
        .collect();
    let expected: Vec<Requant> = int32s(&v["multipliers"])
        .into_iter()
        .zip(int32s(&v["shifts"]))
        .map(|(multiplier, shift)| Requant { multiplier, shift })
        .collect();
    // A conv with one weight scale has it broadcast to every channel.
    let broadcast: Vec<Requant> = if requant.len() == 1 && expected.len() > 1 {
        vec![requant[0]; expected.len()]
    } else {
        requant.clone()
    };
    assert_eq!(broadcast, expected, "{what}: requantization multipliers");
    // TFLite's bias scale is in_scale * w_scale[c] (the kernels never read
    // it: the bias is simply added to the sum).
    for (c, &bs) in f32s(&v["bias"]["scales"]).iter().enumerate() {
        let ws = w_scales[if w_scales.len() == 1 { 0 } else { c }];
        let product = f64::from(in_scale) * f64::from(ws);
        assert!(
            (f64::from(bs) - product).abs() <= 1e-6 * product,
            "{what}: bias scale {c} is {bs}, expected {product}"
        );
    }
    requant
}

fn weight_zero_points_are_zero(v: &Value, what: &str) {
    assert!(
        cnn_tests::json_ints::<i64>(&v["weight"]["zero_points"])
            .iter()
            .all(|&z| z == 0),
        "{what}: weights must be symmetric"
    );
}

fn parse_layer(v: &Value, index: usize) -> Layer {
    let kind = v["op"].as_str().expect("op");
    let name = format!("layer {index} ({kind}, modules {})", v["modules"]);
    let in_shape = v["in_shape"].as_array().expect("in_shape");
    let in_zp = i32_at(&v["input_quant"], "zero_point");
    let out_zp = i32_at(&v["output_quant"], "zero_point");
    let out_len = shape_len(&v["out_shape"]);
    let spatial = |i: usize| in_shape[i].as_u64().unwrap() as usize;
    let op = match kind {
        "conv" => {
            weight_zero_points_are_zero(v, &name);
            let w_shape: Vec<usize> = v["weight"]["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let g = Conv2d {
                in_channels: spatial(0),
                in_h: spatial(1),
                in_w: spatial(2),
                out_channels: w_shape[0],
                kernel: pair(v, "kernel"),
                stride: pair(v, "stride"),
                pad: pair(v, "pad"),
            };
            assert_eq!(g.output_len(), out_len, "{name}: output shape");
            Op::Conv {
                g,
                groups: usize_at(v, "groups"),
                w: int8s(&v["weight"]["data"]),
                b: int32s(&v["bias"]["data"]),
                requant: requant_of(v, &name, false),
                in_zp,
                out_zp,
                clamp: clamp_of(v, &name),
            }
        }
        "linear" => {
            weight_zero_points_are_zero(v, &name);
            let per_channel = v["per_channel"].as_bool().expect("per_channel");
            Op::Linear {
                g: Linear {
                    in_features: usize_at(v, "in_features"),
                    out_features: usize_at(v, "out_features"),
                },
                w: int8s(&v["weight"]["data"]),
                b: int32s(&v["bias"]["data"]),
                requant: requant_of(v, &name, !per_channel),
                in_zp,
                out_zp,
                clamp: clamp_of(v, &name),
            }
        }
        "maxpool" | "avgpool" => {
            assert_eq!(
                v["input_quant"], v["output_quant"],
                "{name}: pools keep the quantization"
            );
            let p = Pool2d {
                channels: spatial(0),
                in_h: spatial(1),
                in_w: spatial(2),
                kernel: pair(v, "kernel"),
                stride: pair(v, "stride"),
                pad: pair(v, "pad"),
            };
            assert_eq!(p.output_len(), out_len, "{name}: output shape");
            if kind == "maxpool" {
                Op::MaxPool(p, clamp_of(v, &name))
            } else {
                Op::AvgPool(p, clamp_of(v, &name))
            }
        }
        "sigmoid" | "tanh" => {
            let q = Q4Input::prepare(f32_at(&v["input_quant"], "scale"), in_zp);
            assert_eq!(
                (q.multiplier, q.shift, q.radius),
                (
                    i32_at(v, "input_multiplier"),
                    i32_at(v, "input_shift"),
                    i32_at(v, "input_range_radius")
                ),
                "{name}: input rescaling"
            );
            let out = &v["output_quant"];
            let (scale, zp) = if kind == "sigmoid" {
                (sigmoid::int8::OUTPUT_SCALE, sigmoid::int8::OUTPUT_ZERO_POINT)
            } else {
                (tanh::int8::OUTPUT_SCALE, tanh::int8::OUTPUT_ZERO_POINT)
            };
            assert_eq!(
                (f32_at(out, "scale"), i32_at(out, "zero_point")),
                (scale, zp),
                "{name}"
            );
            if kind == "sigmoid" {
                Op::Sigmoid(q)
            } else {
                Op::Tanh(q)
            }
        }
        "flatten" => Op::Flatten,
        other => panic!("{name}: unknown op {other}"),
    };
    Layer { name, op, out_len }
}

/// Index of the first maximum (numpy's `argmax`).
fn argmax(v: &[i8]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Describes the differences of `ours` from `tflm`, or `None` if equal.
fn diff(ours: &[i8], tflm: &[i8]) -> Option<String> {
    assert_eq!(ours.len(), tflm.len(), "lengths");
    let wrong: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != tflm[i]).collect();
    let &first = wrong.first()?;
    let max = wrong
        .iter()
        .map(|&i| (i32::from(ours[i]) - i32::from(tflm[i])).abs())
        .max()
        .unwrap();
    Some(format!(
        "{} of {} values differ (max by {max}); first at {first}: ours {}, TFLM {}",
        wrong.len(),
        ours.len(),
        ours[first],
        tflm[first]
    ))
}

struct Counts {
    images: usize,
    outputs: usize,
    intermediates: usize,
}

fn check_net(name: &str) -> Counts {
    let fx = cnn_tests::load_int8(name);
    let layers: Vec<Layer> = fx["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
        .map(|(i, v)| parse_layer(v, i))
        .collect();
    let (in_scale, in_zp) = (
        f32_at(&fx["input_quant"], "scale"),
        i32_at(&fx["input_quant"], "zero_point"),
    );

    let mut failures = Vec::new();
    let mut counts = Counts {
        images: 0,
        outputs: 0,
        intermediates: 0,
    };
    let mut correct = 0;
    for image in fx["images"].as_array().expect("images") {
        let source = image["source"].as_str().unwrap();
        let input = int8s(&image["input"]);
        let expected = int8s(&image["output"]);

        // The input quantization, from the pixels.
        let pixels: Vec<f32> = cnn_tests::json_ints::<i64>(&image["pixels"])
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let mut quantized = vec![0i8; pixels.len()];
        quant::quantize_slice(&pixels, in_scale, in_zp, &mut quantized);
        if let Some(d) = diff(&quantized, &input) {
            failures.push(format!("{name} {source}: input quantization: {d}"));
        }

        // Each layer on TFLM's input to it.
        if let Some(inter) = image.get("intermediates") {
            let inter: Vec<Vec<i8>> = inter.as_array().unwrap().iter().map(int8s).collect();
            assert_eq!(inter.len(), layers.len(), "{name}: one intermediate per layer");
            for (i, layer) in layers.iter().enumerate() {
                let x = if i == 0 { &input } else { &inter[i - 1] };
                if let Some(d) = diff(&layer.run(x), &inter[i]) {
                    failures.push(format!("{name} {source}: {} on TFLM's input: {d}", layer.name));
                }
                counts.intermediates += inter[i].len();
            }
        }

        // The whole net.
        let mut x = input;
        for layer in &layers {
            x = layer.run(&x);
        }
        if let Some(d) = diff(&x, &expected) {
            failures.push(format!("{name} {source}: final output: {d}"));
        }
        if argmax(&x) != argmax(&expected) {
            failures.push(format!(
                "{name} {source}: predicted class {} but TFLM's is {}",
                argmax(&x),
                argmax(&expected)
            ));
        }
        if image["label"].as_u64() == Some(argmax(&x) as u64) {
            correct += 1;
        }
        counts.images += 1;
        counts.outputs += x.len();
    }
    assert_eq!(
        correct,
        usize_at(&fx["accuracy"], "int8"),
        "{name}: correct predictions differ from TFLM's count"
    );
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches with TFLM:\n{}",
        failures.len(),
        failures.join("\n")
    );
    counts
}

#[test]
fn int8_kernels_match_tflite_micro_bit_for_bit() {
    let mut total = Counts {
        images: 0,
        outputs: 0,
        intermediates: 0,
    };
    for name in NETS {
        let c = check_net(name);
        println!(
            "{name}: {} images, {} output values and {} intermediate values equal to TFLM's",
            c.images, c.outputs, c.intermediates
        );
        total.images += c.images;
        total.outputs += c.outputs;
        total.intermediates += c.intermediates;
    }
    assert!(total.images >= 4 * 18 && total.intermediates > 0);
}

/// The fixtures cover what they claim: per-channel conv weights, a padded
/// strided conv, a 1x1 conv, both pools, sigmoid and tanh, relu and relu6.
#[test]
fn int8_fixtures_cover_the_ops() {
    let mut ops = std::collections::BTreeSet::new();
    for name in NETS {
        let fx = cnn_tests::load_int8(name);
        for l in fx["layers"].as_array().unwrap() {
            let kind = l["op"].as_str().unwrap().to_string();
            if let Some(act) = l.get("activation").and_then(Value::as_str) {
                ops.insert(format!("{kind}+{act}"));
            }
            if kind == "conv" {
                if l["stride"][0].as_u64() > Some(1) && l["pad"][0].as_u64() > Some(0) {
                    ops.insert("strided padded conv".into());
                }
                if l["kernel"][0].as_u64() == Some(1) {
                    ops.insert("1x1 conv".into());
                }
            }
            ops.insert(kind);
        }
    }
    for want in [
        "conv",
        "linear",
        "maxpool",
        "avgpool",
        "sigmoid",
        "tanh",
        "flatten",
        "conv+relu",
        "conv+relu6",
        "linear+relu",
        "strided padded conv",
        "1x1 conv",
    ] {
        assert!(ops.contains(want), "no fixture has {want}: {ops:?}");
    }
}

/// Every int8 input of LOGISTIC and TANH for six input quantizations
/// (`activations.json`), against TFLM.
#[test]
fn int8_sigmoid_and_tanh_match_tflite_micro_on_every_input() {
    let fx = cnn_tests::load_int8("activations");
    let cases = fx["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        let op = case["op"].as_str().unwrap();
        let what = format!("{op} calibrated on {}", case["calibration_range"]);
        let in_q = &case["input_quant"];
        let q = Q4Input::prepare(f32_at(in_q, "scale"), i32_at(in_q, "zero_point"));
        assert_eq!(
            (q.multiplier, q.shift, q.radius),
            (
                i32_at(case, "input_multiplier"),
                i32_at(case, "input_shift"),
                i32_at(case, "input_range_radius")
            ),
            "{what}: input rescaling"
        );
        let mut y = int8s(&case["input"]);
        match op {
            "sigmoid" => sigmoid::int8::forward(&q, &mut y),
            "tanh" => tanh::int8::forward(&q, &mut y),
            other => panic!("unknown op {other}"),
        }
        if let Some(d) = diff(&y, &int8s(&case["output"])) {
            failures.push(format!("{what}: {d}"));
        }
    }
    assert!(cases.len() >= 12, "expected 6 cases per op");
    assert!(
        failures.is_empty(),
        "mismatches with TFLM:\n{}",
        failures.join("\n")
    );
}
