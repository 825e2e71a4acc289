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
//! The graph nets (`residual_cat`: a residual ADD, a channel CONCATENATION,
//! MEAN and REDUCE_MAX over H and W) are checked the same way, op by op on
//! TFLM's inputs to each op, then whole, by a small graph interpreter.
//!
//! This test file is the small interpreter the compiler will later generate
//! as straight code.

use cnn_runtime::ops::add::int8::AddParams;
use cnn_runtime::ops::conv::Conv2d;
use cnn_runtime::ops::global_avgpool::int8::MeanParams;
use cnn_runtime::ops::linear::Linear;
use cnn_runtime::ops::window::Pool2d;
use cnn_runtime::ops::{
    add, avgpool, cat, conv, global_avgpool, global_maxpool, linear, maxpool, sigmoid, tanh,
};
use cnn_runtime::quant::{self, Activation, Clamp, OutputStage, Q4Input, Quant, Requant};
use serde_json::Value;

const NETS: [&str; 5] = [
    "lenet_sigmoid",
    "lenet_relu",
    "lenet_relu_avg",
    "strided",
    "one_by_one",
];

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

// ---------------------------------------------------------------------------
// Graph nets: ops that read named tensors
// ---------------------------------------------------------------------------

/// The int8 graph nets of `tests/fixtures/int8/`.
const GRAPH_NETS: [&str; 1] = ["residual_cat"];

/// An op of a graph net with everything its kernel needs.
enum GraphOp {
    /// A conv or linear layer (one input), as in a chain.
    Layer(Layer),
    /// ADD of two tensors of the same shape.
    Add(AddParams),
    /// CONCATENATION along channels: the elements per example of each input.
    Cat(Vec<usize>),
    /// MEAN over H and W.
    Mean {
        channels: usize,
        spatial: usize,
        p: MeanParams,
    },
    /// REDUCE_MAX over H and W.
    Max { channels: usize, spatial: usize },
}

struct Node {
    name: String,
    kind: String,
    tensor: String,
    inputs: Vec<String>,
    op: GraphOp,
    out_len: usize,
}

impl Node {
    fn run(&self, xs: &[&[i8]]) -> Vec<i8> {
        let mut y = vec![0i8; self.out_len];
        match &self.op {
            GraphOp::Layer(layer) => return layer.run(xs[0]),
            GraphOp::Add(p) => add::int8::forward(p, xs[0], xs[1], &mut y),
            GraphOp::Cat(parts) => {
                let total: usize = parts.iter().sum();
                let mut at = 0;
                for (&part, x) in parts.iter().zip(xs) {
                    cat::int8::forward(1, part, total, at, x, &mut y);
                    at += part;
                }
            }
            GraphOp::Mean { channels, spatial, p } => {
                global_avgpool::int8::forward(*channels, *spatial, 1, xs[0], p, &mut y)
            }
            GraphOp::Max { channels, spatial } => {
                global_maxpool::int8::forward(*channels, *spatial, 1, xs[0], &mut y)
            }
        }
        y
    }
}

fn quant_at(v: &Value) -> Quant {
    Quant {
        scale: f32_at(v, "scale"),
        zero_point: i32_at(v, "zero_point"),
    }
}

fn requant_at(v: &Value, multiplier: &str, shift: &str) -> Requant {
    Requant {
        multiplier: i32_at(v, multiplier),
        shift: i32_at(v, shift),
    }
}

/// `[C, H, W]` of a global pool's input: (C, H * W).
fn planes(v: &Value) -> (usize, usize) {
    let s: Vec<usize> = cnn_tests::json_ints::<i64>(&v["in_shape"])
        .iter()
        .map(|&d| d as usize)
        .collect();
    (s[0], s[1] * s[2])
}

/// Parses a graph op, deriving TFLM's parameters in Rust from the scales
/// and requiring the generator's (TFLM's preparation) to equal them.
fn parse_node(v: &Value, index: usize) -> Node {
    let kind = v["op"].as_str().expect("op");
    let tensor = v["name"].as_str().expect("name").to_string();
    let name = format!("op {index} {tensor} ({kind}, modules {})", v["modules"]);
    let inputs: Vec<String> = v["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| i.as_str().expect("input name").to_string())
        .collect();
    let out_len = shape_len(&v["out_shape"]);
    let op = match kind {
        "conv" | "linear" => GraphOp::Layer(parse_layer(v, index)),
        "add" => {
            let q: Vec<Quant> = v["input_quants"]
                .as_array()
                .unwrap()
                .iter()
                .map(quant_at)
                .collect();
            let p = AddParams::prepare(q[0], q[1], quant_at(&v["output_quant"]), activation(v));
            let expected = AddParams {
                input1_offset: i32_at(v, "input1_offset"),
                input2_offset: i32_at(v, "input2_offset"),
                left_shift: usize_at(v, "left_shift") as u32,
                input1: requant_at(v, "input1_multiplier", "input1_shift"),
                input2: requant_at(v, "input2_multiplier", "input2_shift"),
                output: requant_at(v, "output_multiplier", "output_shift"),
                output_offset: i32_at(v, "output_offset"),
                clamp: clamp_of(v, &name),
            };
            assert_eq!(p, expected, "{name}: TFLM's ADD parameters");
            GraphOp::Add(p)
        }
        "cat" => {
            let out = quant_at(&v["output_quant"]);
            assert_eq!(v["equal_quant"], Value::Bool(true), "{name}");
            for q in v["input_quants"].as_array().unwrap() {
                assert!(
                    cat::int8::same_quantization(quant_at(q), out),
                    "{name}: TFLM's CONCATENATION needs equal quantizations"
                );
            }
            assert_eq!(usize_at(v, "axis"), 0, "{name}: along channels");
            GraphOp::Cat(v["in_shapes"].as_array().unwrap().iter().map(shape_len).collect())
        }
        "global_avgpool" => {
            let (channels, spatial) = planes(v);
            let (in_q, out_q) = (quant_at(&v["input_quant"]), quant_at(&v["output_quant"]));
            let requant = Requant::rescale(in_q.scale, out_q.scale);
            assert_eq!(
                requant,
                requant_at(v, "multiplier", "shift"),
                "{name}: MEAN's multiplier"
            );
            assert_eq!(usize_at(v, "count"), spatial, "{name}");
            let p = MeanParams::prepare(in_q, out_q, spatial);
            assert_eq!(
                p.requant,
                requant_at(v, "mean_multiplier", "mean_shift"),
                "{name}: MEAN's multiplier with 1 / count folded in"
            );
            GraphOp::Mean { channels, spatial, p }
        }
        "global_maxpool" => {
            assert_eq!(
                v["input_quant"], v["output_quant"],
                "{name}: TFLM's REDUCE_MAX keeps the quantization"
            );
            let (channels, spatial) = planes(v);
            GraphOp::Max { channels, spatial }
        }
        other => panic!("{name}: unknown op {other}"),
    };
    Node {
        name,
        kind: kind.to_string(),
        tensor,
        inputs,
        op,
        out_len,
    }
}

/// Values compared with TFLM's, by op kind.
#[derive(Default)]
struct GraphCounts {
    images: usize,
    outputs: usize,
    by_op: std::collections::BTreeMap<String, usize>,
}

fn check_graph_net(name: &str) -> GraphCounts {
    let fx = cnn_tests::load_int8(name);
    let layers = fx["layers"].as_array().expect("layers");
    let nodes: Vec<Node> = layers.iter().enumerate().map(|(i, v)| parse_node(v, i)).collect();
    let mut failures = Vec::new();
    let mut counts = GraphCounts::default();
    let mut correct = 0;
    for image in fx["images"].as_array().expect("images") {
        let source = image["source"].as_str().unwrap();
        let input = int8s(&image["input"]);
        let expected = int8s(&image["output"]);

        // Each op on TFLM's inputs to it.
        if let Some(inter) = image.get("intermediates") {
            let inter: Vec<Vec<i8>> = inter.as_array().unwrap().iter().map(int8s).collect();
            assert_eq!(inter.len(), nodes.len(), "{name}: one intermediate per op");
            let tflm = |t: &str| -> &[i8] {
                if t == "input" {
                    &input
                } else {
                    let k = nodes.iter().position(|n| n.tensor == t).expect("tensor");
                    &inter[k]
                }
            };
            for (node, tflm_out) in nodes.iter().zip(&inter) {
                let xs: Vec<&[i8]> = node.inputs.iter().map(|t| tflm(t)).collect();
                if let Some(d) = diff(&node.run(&xs), tflm_out) {
                    failures.push(format!("{name} {source}: {} on TFLM's input: {d}", node.name));
                }
                *counts.by_op.entry(node.kind.clone()).or_default() += tflm_out.len();
            }
        }

        // The whole graph from the int8 input.
        let mut ours: Vec<(String, Vec<i8>)> = vec![("input".to_string(), input)];
        for node in &nodes {
            let xs: Vec<&[i8]> = node
                .inputs
                .iter()
                .map(|t| &ours.iter().find(|(n, _)| n == t).expect("tensor").1[..])
                .collect();
            let y = node.run(&xs);
            ours.push((node.tensor.clone(), y));
        }
        let x = &ours.last().unwrap().1;
        if let Some(d) = diff(x, &expected) {
            failures.push(format!("{name} {source}: final output: {d}"));
        }
        if image["label"].as_u64() == Some(argmax(x) as u64) {
            correct += 1;
        }
        counts.images += 1;
        counts.outputs += x.len();
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches with TFLM:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        correct,
        usize_at(&fx["accuracy"], "int8"),
        "{name}: correct predictions differ from TFLM's count"
    );
    counts
}

/// ADD (inputs of different quantizations, with and without a fused relu),
/// CONCATENATION, MEAN and REDUCE_MAX against TFLM, op by op on TFLM's
/// inputs and through the whole graph, every value equal.
#[test]
fn int8_graph_kernels_match_tflite_micro_bit_for_bit() {
    for name in GRAPH_NETS {
        let c = check_graph_net(name);
        println!(
            "{name}: {} images, {} output values equal to TFLM's; op by op: {:?}",
            c.images, c.outputs, c.by_op
        );
        assert!(c.images >= 18);
        for op in ["add", "cat", "global_avgpool", "global_maxpool"] {
            assert!(
                c.by_op.get(op).copied().unwrap_or(0) > 0,
                "{name}: no {op} compared"
            );
        }
    }
}

/// The graph fixture covers what it claims: ADDs whose inputs have
/// different quantizations (one with a fused relu), a channel concatenation,
/// a MEAN whose output scale differs from its input's, and REDUCE_MAX.
#[test]
fn int8_graph_fixture_covers_the_ops() {
    let mut ops = std::collections::BTreeSet::new();
    for name in GRAPH_NETS {
        let fx = cnn_tests::load_int8(name);
        for l in fx["layers"].as_array().unwrap() {
            let kind = l["op"].as_str().unwrap();
            ops.insert(kind.to_string());
            if kind == "add" {
                let q = l["input_quants"].as_array().unwrap();
                if q[0] != q[1] {
                    ops.insert(format!(
                        "add of different quantizations+{}",
                        l["activation"].as_str().unwrap()
                    ));
                }
            }
            if kind == "global_avgpool" && l["input_quant"] != l["output_quant"] {
                ops.insert("requantizing mean".into());
            }
        }
    }
    for want in [
        "add of different quantizations+relu",
        "add of different quantizations+none",
        "cat",
        "global_avgpool",
        "requantizing mean",
        "global_maxpool",
        "conv",
        "linear",
    ] {
        assert!(ops.contains(want), "no graph fixture has {want}: {ops:?}");
    }
}
