//! int8 nets: `weights = "file.safetensors"` naming an int8 file (TFLite's
//! post-training quantization scheme) compiles the net to integer-only
//! inference, bit for bit as TensorFlow Lite Micro runs the same model.
//!
//! # The int8 file
//! A safetensors file whose metadata has `"cnn.format": "int8"`, holding,
//! under the net's `state_dict` keys:
//! - `input.scale` (F32, one value) and `input.zero_point` (I32, one
//!   value): the quantization of the net's input;
//! - for every conv and linear layer `K`: `K.weight` (I8, the float
//!   weight's shape; symmetric, zero point 0), `K.bias` (I32 `[out]`, if the
//!   layer has a bias; scale `input scale * weight scale`, zero point 0),
//!   `K.weight_scale` (F32, one per output channel, or one for all), and
//!   `K.output_scale` (F32) and `K.output_zero_point` (I32): its output's
//!   quantization, after a fused relu or relu6;
//! - if the net has `add`s or `global_avgpool`s (its points, which have no
//!   parameters but an output quantization of their own, as TFLite's ADD
//!   and MEAN): `points.scale` (F32 `[P]`) and `points.zero_point` (I32
//!   `[P]`), in program order.
//!
//! The other layers keep their input's quantization (pools, flatten,
//! `global_maxpool`), or take the one TFLite fixes (sigmoid: `1/256, -128`;
//! tanh: `1/128, 0`); a relu or relu6 must be the only reader of a conv's,
//! linear layer's or `add`'s output, whose clamp it becomes. A `cat` copies
//! bytes, as TFLite's CONCATENATION: its branches must share one
//! quantization (checked when the net is built), which `cnn quantize` gives
//! them.
//!
//! # Graph nets
//! The float net's memory plan is printed with int8 kernels: each value in
//! its region of the scratch arena, `add` (binary, as TFLite's ADD) in place
//! on the buffer of its first operand.
//!
//! # The generated net
//! A unit struct with integer-only `forward_with` over caller-owned int8
//! buffers (`INFER_SCRATCH_BYTES` of scratch, planned exactly as the float
//! net's), the quantization of its input and output as constants, and
//! `quantize_input` / `dequantize_output` / `forward` (f32 in and out, the
//! scratch on the stack) / `forward_batch` helpers. Weights and biases are
//! `static`s (flash on a microcontroller); the requantization multipliers
//! are computed by the runtime's `const fn`s when the user's crate
//! compiles. No heap, no float in `forward_with`.

use crate::ctxt::Errors;
use crate::expand::{bind_xy, graph, slot_expr};
use crate::ops::{
    lit, Fused, Int8Io, Int8JoinIo, Int8Output, Int8Slots, Int8Step, Int8Tensors, JoinKind, LayerKind, Quant,
};
use crate::parse::NetSyntax;
use crate::plan::graph::{GraphPlan, InferOp, Loc};
use crate::plan::{InferStep, NetPlan};
use crate::weights::WeightsFile;
use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use safetensors::Dtype;
use std::collections::HashMap;

/// The metadata key and value that mark an int8 file (the runtime's
/// `weights::INT8_FORMAT`, which refuses such a file for a float net).
pub const FORMAT: (&str, &str) = ("cnn.format", "int8");

/// One tensor of an int8 file.
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The int8 file of a net, read.
pub struct Int8File {
    tensors: HashMap<String, Tensor>,
    /// The absolute path read, for rebuild tracking.
    path: String,
    /// The path as the user wrote it, for messages.
    relative: String,
}

/// `file` as an int8 file, if it is one (`Ok(None)` for any other file:
/// the float loader checks those).
pub fn read(file: &WeightsFile) -> Result<Option<Int8File>, String> {
    let relative = &file.relative;
    if !relative.ends_with(".safetensors") {
        return Ok(None);
    }
    let Ok((_, metadata)) = safetensors::SafeTensors::read_metadata(&file.bytes) else {
        return Ok(None);
    };
    let is_int8 = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(FORMAT.0))
        .is_some_and(|f| f == FORMAT.1);
    if !is_int8 {
        return Ok(None);
    }
    let parsed = safetensors::SafeTensors::deserialize(&file.bytes)
        .map_err(|e| format!("weights file `{relative}`: not a safetensors file: {e}"))?;
    let tensors = parsed
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let t = Tensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (key, t)
        })
        .collect();
    Ok(Some(Int8File {
        tensors,
        path: file.path.clone(),
        relative: relative.clone(),
    }))
}

impl Int8File {
    /// Takes tensor `key` of `dtype` with `len` elements in a shape among
    /// `shapes` (any shape of `len` elements if empty), or reports why not.
    fn take(
        &mut self,
        key: &str,
        dtype: Dtype,
        shapes: &[&[usize]],
        errors: &mut Vec<String>,
    ) -> Option<Vec<u8>> {
        let relative = &self.relative;
        let Some(t) = self.tensors.remove(key) else {
            let shape = shapes
                .first()
                .map(|s| format!(" (expected shape {s:?})"))
                .unwrap_or_default();
            errors.push(format!(
                "int8 weights file `{relative}`: missing tensor \"{key}\"{shape}"
            ));
            return None;
        };
        if t.dtype != dtype {
            errors.push(format!(
                "int8 weights file `{relative}`: tensor \"{key}\": dtype {:?}, expected {dtype:?}",
                t.dtype
            ));
            return None;
        }
        if !shapes.contains(&t.shape.as_slice()) {
            let expected: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
            errors.push(format!(
                "int8 weights file `{relative}`: tensor \"{key}\": expected shape {}, found {:?}",
                expected.join(" or "),
                t.shape
            ));
            return None;
        }
        Some(t.bytes)
    }

    fn take_i8(&mut self, key: &str, shape: &[usize], errors: &mut Vec<String>) -> Option<Vec<i8>> {
        let bytes = self.take(key, Dtype::I8, &[shape], errors)?;
        Some(bytes.iter().map(|&b| b as i8).collect())
    }

    fn take_i32(&mut self, key: &str, shapes: &[&[usize]], errors: &mut Vec<String>) -> Option<Vec<i32>> {
        let bytes = self.take(key, Dtype::I32, shapes, errors)?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    /// Scales: F32, positive and finite.
    fn take_scales(&mut self, key: &str, shapes: &[&[usize]], errors: &mut Vec<String>) -> Option<Vec<f32>> {
        let bytes = self.take(key, Dtype::F32, shapes, errors)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            errors.push(format!(
                "int8 weights file `{}`: tensor \"{key}\": scale {i} is {}, expected a positive finite number",
                self.relative, values[i]
            ));
            return None;
        }
        Some(values)
    }

    /// The `points` quantizations: `points.scale` (F32 `[count]`) and
    /// `points.zero_point` (I32 `[count]`).
    fn take_points(&mut self, count: usize, errors: &mut Vec<String>) -> Option<Vec<Quant>> {
        let scales = self.take_scales("points.scale", &[&[count]], errors);
        let zero_points = self.take_i32("points.zero_point", &[&[count]], errors)?;
        if let Some(z) = zero_points.iter().find(|z| !(-128..=127).contains(*z)) {
            errors.push(format!(
                "int8 weights file `{}`: tensor \"points.zero_point\": zero point {z} is outside the int8 range",
                self.relative
            ));
            return None;
        }
        Some(
            scales?
                .into_iter()
                .zip(zero_points)
                .map(|(scale, zero_point)| Quant { scale, zero_point })
                .collect(),
        )
    }

    /// A value's quantization from `{prefix}.{scale}` and
    /// `{prefix}.{zero_point}`.
    fn take_quant(&mut self, scale: &str, zero_point: &str, errors: &mut Vec<String>) -> Option<Quant> {
        const ONE: &[&[usize]] = &[&[], &[1]];
        let scale = self.take_scales(scale, ONE, errors);
        let zp = self.take_i32(zero_point, ONE, errors)?[0];
        if !(-128..=127).contains(&zp) {
            errors.push(format!(
                "int8 weights file `{}`: tensor \"{zero_point}\": zero point {zp} is outside the int8 range",
                self.relative
            ));
            return None;
        }
        Some(Quant {
            scale: scale?[0],
            zero_point: zp,
        })
    }
}

/// A conv's or linear layer's place in an int8 net.
struct Weighted<'a> {
    key: &'a str,
    layer: usize,
    weight_shape: &'a [usize],
    slots: Int8Slots,
    /// The layer whose float output its output quantization describes.
    output_layer: usize,
    /// What its int8 form takes in after it.
    absorbed: Absorbed,
    /// The batch norm folded into it: its key and `eps`.
    fold: Option<(&'a str, f32)>,
}

/// The int8 tensors of each conv and linear layer of `plan` from `file`
/// (in the order of `weighted`), the points' quantizations and the input's;
/// every problem goes to `messages`.
fn layer_tensors(
    weighted: &[Weighted],
    points: usize,
    file: &mut Int8File,
    messages: &mut Vec<String>,
) -> (Vec<Option<Int8Tensors>>, Option<Vec<Quant>>, Option<Quant>) {
    let input = file.take_quant("input.scale", "input.zero_point", messages);
    let mut layers = Vec::new();
    for l in weighted {
        let key = l.key;
        let out = l.weight_shape[0];
        let w = file.take_i8(&format!("{key}.weight"), l.weight_shape, messages);
        let bias = l
            .slots
            .bias
            .is_some()
            .then(|| file.take_i32(&format!("{key}.bias"), &[&[out]], messages));
        let scales = file.take_scales(&format!("{key}.weight_scale"), &[&[out], &[1]], messages);
        let output = file.take_quant(
            &format!("{key}.output_scale"),
            &format!("{key}.output_zero_point"),
            messages,
        );
        layers.push(match (w, bias, scales, output) {
            (Some(weight), None, Some(weight_scale), Some(output)) => Some(Int8Tensors {
                weight,
                bias: None,
                weight_scale,
                output,
            }),
            (Some(weight), Some(Some(bias)), Some(weight_scale), Some(output)) => Some(Int8Tensors {
                weight,
                bias: Some(bias),
                weight_scale,
                output,
            }),
            _ => None,
        });
    }
    let point_quants = if points == 0 {
        Some(Vec::new())
    } else {
        file.take_points(points, messages)
    };
    let mut extra: Vec<&String> = file.tensors.keys().collect();
    extra.sort();
    for key in extra {
        messages.push(format!(
            "int8 weights file `{}`: unexpected tensor \"{key}\" (the net has no such parameter or quantization)",
            file.relative
        ));
    }
    (layers, point_quants, input)
}

/// A node of the program: a layer or a join, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    Layer(usize),
    Join(usize),
}

/// The values of a plan and who writes and reads each.
struct Values {
    /// The nodes in program order.
    order: Vec<Node>,
    /// Each value's producer (`None`: the net's input).
    producer: Vec<Option<Node>>,
    /// Each value's readers.
    readers: Vec<Vec<Node>>,
    /// The net's output value.
    output: usize,
}

impl Values {
    fn of(plan: &NetPlan) -> Values {
        let mut nodes: Vec<(usize, Node)> = plan
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.shaped.output_value.0, Node::Layer(i)))
            .chain(
                plan.joins
                    .iter()
                    .enumerate()
                    .map(|(j, join)| (join.output_value.0, Node::Join(j))),
            )
            .collect();
        // The lowering numbers each node's output value as it appends the
        // node: sorted by it, the nodes are in program order, and the last
        // one writes the net's output.
        nodes.sort_by_key(|n| n.0);
        let count = nodes.last().map_or(1, |n| n.0 + 1);
        let mut producer = vec![None; count];
        let mut readers = vec![Vec::new(); count];
        for &(v, node) in &nodes {
            producer[v] = Some(node);
            let inputs = match node {
                Node::Layer(i) => &plan.layers[i].shaped.inputs,
                Node::Join(j) => &plan.joins[j].inputs,
            };
            for input in inputs {
                readers[input.0].push(node);
            }
        }
        Values {
            order: nodes.into_iter().map(|n| n.1).collect(),
            producer,
            readers,
            output: count - 1,
        }
    }

    /// The relu or relu6 layer that is the only reader of value `v`, and
    /// the activation it is.
    fn fused_reader(&self, plan: &NetPlan, v: usize) -> Option<(usize, Fused)> {
        match self.readers[v].as_slice() {
            [Node::Layer(r)] => match plan.layers[*r].kind() {
                LayerKind::Relu(_) => Some((*r, Fused::Relu)),
                LayerKind::Relu6(_) => Some((*r, Fused::Relu6)),
                _ => None,
            },
            _ => None,
        }
    }

    /// What a conv's or linear layer's int8 form takes in after its output
    /// value `v`: a batch norm that is its only reader (folded into its
    /// weights), then a relu or relu6 that is the only reader of what
    /// comes before (its clamp).
    fn absorbed_by_layer(&self, plan: &NetPlan, v: usize) -> Absorbed {
        let batchnorm = match self.readers[v].as_slice() {
            [Node::Layer(b)] if matches!(plan.layers[*b].kind(), LayerKind::BatchNorm(_)) => Some(*b),
            _ => None,
        };
        let after = batchnorm.map_or(v, |b| plan.layers[b].shaped.output_value.0);
        Absorbed {
            batchnorm,
            activation: self.fused_reader(plan, after),
        }
    }
}

/// The layers a conv's or linear layer's int8 form takes in.
#[derive(Clone, Copy)]
struct Absorbed {
    /// A batch norm folded into its weights and bias.
    batchnorm: Option<usize>,
    /// A relu or relu6 that becomes its clamp.
    activation: Option<(usize, Fused)>,
}

impl Absorbed {
    /// The last layer taken in, whose output the layer's output
    /// quantization describes, or `layer` itself.
    fn last(self, layer: usize) -> usize {
        self.activation.map(|a| a.0).or(self.batchnorm).unwrap_or(layer)
    }
}

/// Every conv and linear layer of `plan` with its slots in the net's
/// arrays, and the arrays' lengths (weights, biases, channels).
fn layout<'a>(plan: &'a NetPlan<'_>, values: &Values) -> (Vec<Weighted<'a>>, [usize; 3]) {
    let mut weighted = Vec::new();
    let (mut w, mut b, mut c) = (0, 0, 0);
    for (i, l) in plan.layers.iter().enumerate() {
        if !matches!(l.kind(), LayerKind::Conv(_) | LayerKind::Linear(_)) {
            continue;
        }
        let key = &l.shaped.key;
        let Some(weight) = plan.tensors.iter().find(|t| t.key == format!("{key}.weight")) else {
            continue;
        };
        let (len, out) = (weight.shape.iter().product::<usize>(), weight.shape[0]);
        let absorbed = values.absorbed_by_layer(plan, l.shaped.output_value.0);
        let fold = absorbed.batchnorm.and_then(|b| match plan.layers[b].kind() {
            LayerKind::BatchNorm(bn) => Some((plan.layers[b].shaped.key.as_str(), bn.eps)),
            _ => None,
        });
        // A folded batch norm gives the layer a bias if it had none.
        let bias = (l.bias.is_some() || fold.is_some()).then(|| (b, b + out));
        weighted.push(Weighted {
            key,
            layer: i,
            weight_shape: &weight.shape,
            slots: Int8Slots {
                index: weighted.len(),
                weight: (w, w + len),
                bias,
                channels: (c, c + out),
            },
            output_layer: absorbed.last(i),
            absorbed,
            fold,
        });
        w += len;
        b += if bias.is_some() { out } else { 0 };
        c += out;
    }
    (weighted, [w, b, c])
}

/// A node with an output quantization of its own in the file but no
/// parameters: an `add` or a `global_avgpool`.
struct Point {
    node: Node,
    /// What and where, for messages.
    what: String,
    /// The traced output its quantization describes.
    output: usize,
    /// The relu or relu6 layer an `add` fuses, and which it is.
    fused: Option<(usize, Fused)>,
}

/// The net's points in program order.
fn points(plan: &NetPlan, values: &Values) -> Vec<Point> {
    let mut points = Vec::new();
    for &node in &values.order {
        match node {
            Node::Join(j) if plan.joins[j].kind == JoinKind::Add => {
                let join = &plan.joins[j];
                let fused = values.fused_reader(plan, join.output_value.0);
                points.push(Point {
                    node,
                    what: format!("add at {}", or_net(&join.key)),
                    output: fused.map_or(plan.layers.len() + j, |(r, _)| r),
                    fused,
                });
            }
            Node::Layer(i) if matches!(plan.layers[i].kind(), LayerKind::GlobalAvgPool(_)) => {
                points.push(Point {
                    node,
                    what: format!("global_avgpool at {}", plan.layers[i].shaped.key),
                    output: i,
                    fused: None,
                });
            }
            Node::Join(_) | Node::Layer(_) => {}
        }
    }
    points
}

/// A key, or "the net" for the top level's empty one.
fn or_net(key: &str) -> &str {
    if key.is_empty() {
        "the net"
    } else {
        key
    }
}

/// Where a value's quantization comes from, for the ties of `cat`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A quantization point: conv/linear `k`, or point `W + p`.
    Point(usize),
    /// Fixed: the net's input, or a sigmoid's or tanh's.
    Fixed(&'static str),
}

/// The owner of value `v`'s quantization.
fn owner(
    plan: &NetPlan,
    values: &Values,
    steps: &[Option<Int8Step>],
    point_of: &HashMap<Node, usize>,
    weighted: usize,
    v: usize,
) -> Owner {
    let mut v = v;
    loop {
        match values.producer[v] {
            None => return Owner::Fixed("the net's input"),
            Some(Node::Join(j)) => match plan.joins[j].kind {
                JoinKind::Add => return Owner::Point(weighted + point_of[&Node::Join(j)]),
                JoinKind::Cat => v = plan.joins[j].inputs[0].0,
            },
            Some(Node::Layer(i)) => {
                let output = match &steps[i] {
                    Some(Int8Step::Compute(c) | Int8Step::InPlace(c)) => &c.output,
                    Some(Int8Step::Same) | None => &Int8Output::Input,
                };
                match output {
                    Int8Output::Input => v = plan.layers[i].shaped.inputs[0].0,
                    Int8Output::Own(k) => return Owner::Point(*k),
                    Int8Output::Point(p) => return Owner::Point(weighted + p),
                    Int8Output::Fixed(_) => return Owner::Fixed("a sigmoid or tanh"),
                }
            }
        }
    }
}

/// The smallest member of `k`'s group.
fn find(parent: &mut [usize], k: usize) -> usize {
    let mut root = k;
    while parent[root] != root {
        root = parent[root];
    }
    parent[k] = root;
    root
}

/// `Name`'s int8 code: its tensors baked from `file`, or loaded at run time
/// without one; `None` after reporting every problem at `span`.
pub fn emit(
    net: &NetSyntax,
    plan: &NetPlan,
    span: Span,
    mut file: Option<Int8File>,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let before = errors.count();
    let values = Values::of(plan);
    let (weighted, [weights_len, biases_len, channels]) = layout(plan, &values);
    let points = points(plan, &values);
    let point_of: HashMap<Node, usize> = points
        .iter()
        .enumerate()
        .map(|(p, point)| (point.node, p))
        .collect();

    // The file's tensors, checked against the layout.
    let baked = match &mut file {
        Some(file) => {
            let mut messages = Vec::new();
            let (tensors, point_quants, input) = layer_tensors(&weighted, points.len(), file, &mut messages);
            for m in messages {
                errors.push(span, m);
            }
            let (input, point_quants) = (input?, point_quants?);
            if errors.count() != before {
                return None;
            }
            let tensors: Vec<Int8Tensors> = tensors.into_iter().flatten().collect();
            Some((tensors, point_quants, input))
        }
        None => None,
    };

    // Each layer's step.
    let p = quote!(::cnn_runtime::__private);
    let count = plan.layers.len();
    let mut absorbed = vec![false; count];
    let mut fused_into = vec![None; count];
    for w in &weighted {
        if let Some(b) = w.absorbed.batchnorm {
            absorbed[b] = true;
        }
        if let Some((r, fused)) = w.absorbed.activation {
            absorbed[r] = true;
            fused_into[w.layer] = Some(fused);
        }
    }
    let mut join_fused = vec![None; plan.joins.len()];
    for point in &points {
        if let (Node::Join(j), Some((r, fused))) = (point.node, point.fused) {
            absorbed[r] = true;
            join_fused[j] = Some(fused);
        }
    }
    let weighted_of: HashMap<usize, usize> = weighted.iter().enumerate().map(|(k, w)| (w.layer, k)).collect();
    let mut steps: Vec<Option<Int8Step>> = Vec::with_capacity(count);
    let (mut luts, mut means) = (0, 0);
    let mut layer_prepare = Vec::with_capacity(count);
    for (i, l) in plan.layers.iter().enumerate() {
        let (input, output) = (l.shaped.inputs[0].0, l.shaped.output_value.0);
        let io = Int8Io {
            layer: i,
            input,
            output,
            slots: weighted_of.get(&i).map(|&k| &weighted[k].slots),
            point: point_of.get(&Node::Layer(i)).copied(),
            fused: fused_into[i],
            absorbed: absorbed[i],
            lut: luts,
            mean: means,
        };
        let out = lit(output);
        let mut prepare = TokenStream::new();
        match l.kind().int8(l, &io) {
            Ok(step) => {
                let quant = match &step {
                    Int8Step::Compute(c) | Int8Step::InPlace(c) => {
                        luts += c.luts_taken;
                        means += c.means_taken;
                        let code = &c.prepare;
                        prepare.extend(quote!({ #code }));
                        match c.output {
                            Int8Output::Input => {
                                let input = lit(input);
                                quote!(quants[#input])
                            }
                            Int8Output::Own(k) => {
                                let k = lit(k);
                                quote!(outputs[#k])
                            }
                            Int8Output::Point(k) => {
                                let k = lit(k);
                                quote!(points[#k])
                            }
                            Int8Output::Fixed(q) => quant_tokens(q),
                        }
                    }
                    Int8Step::Same => {
                        let input = lit(input);
                        quote!(quants[#input])
                    }
                };
                prepare.extend(quote!(quants[#out] = #quant;));
                steps.push(Some(step));
            }
            Err(why) => {
                errors.push(
                    span,
                    format!(
                        "int8 net `{}`: layer {} `{}` {why}",
                        net.name, l.shaped.key, l.shaped.layer.source
                    ),
                );
                steps.push(None);
            }
        }
        layer_prepare.push(prepare);
    }

    // Each join's: which branch is in its output's buffer first (the one
    // whose buffer it reuses, or the first part the plan writes).
    let mut first_branch = vec![0; plan.joins.len()];
    if let Some(g) = &plan.graph {
        for (j, join) in plan.joins.iter().enumerate() {
            let parts: Vec<(usize, bool)> = g
                .infer
                .iter()
                .filter_map(|op| match *op {
                    InferOp::Join {
                        join: other,
                        k,
                        first,
                        ..
                    } if other == j => Some((k, first)),
                    _ => None,
                })
                .collect();
            first_branch[j] = match parts.iter().find(|p| p.1) {
                Some(&(k, _)) => k,
                None => (0..join.inputs.len())
                    .find(|k| !parts.iter().any(|p| p.0 == *k))
                    .unwrap_or(0),
            };
        }
    }
    let join_inputs: Vec<Vec<usize>> = plan
        .joins
        .iter()
        .map(|j| j.inputs.iter().map(|v| v.0).collect())
        .collect();
    let mut adds = 0;
    let mut join_ios = Vec::with_capacity(plan.joins.len());
    for (j, join) in plan.joins.iter().enumerate() {
        join_ios.push(Int8JoinIo {
            join: j,
            inputs: &join_inputs[j],
            output: join.output_value.0,
            first: first_branch[j],
            point: point_of.get(&Node::Join(j)).copied(),
            add: adds,
            fused: join_fused[j],
        });
        if join.kind == JoinKind::Add {
            adds += 1;
        }
    }

    // The preparation, in program order (a node reads its inputs'
    // quantizations).
    let mut prepare = TokenStream::new();
    for &node in &values.order {
        match node {
            Node::Layer(i) => prepare.extend(std::mem::take(&mut layer_prepare[i])),
            Node::Join(j) => match plan.joins[j].kind.int8_prepare(&join_ios[j]) {
                Ok(code) => prepare.extend(quote!({ #code })),
                Err(why) => errors.push(
                    span,
                    format!(
                        "int8 net `{}`: `{}` at {} {why}",
                        net.name,
                        plan.joins[j].kind.keyword(),
                        or_net(&plan.joins[j].key)
                    ),
                ),
            },
        }
    }

    // The quantization points that feed one `cat` share one quantization.
    let owners = weighted.len() + points.len();
    let mut parent: Vec<usize> = (0..owners).collect();
    for (j, join) in plan.joins.iter().enumerate() {
        if join.kind != JoinKind::Cat {
            continue;
        }
        let found: Vec<Owner> = join_inputs[j]
            .iter()
            .map(|&v| owner(plan, &values, &steps, &point_of, weighted.len(), v))
            .collect();
        let fixed = found.iter().find_map(|o| match o {
            Owner::Fixed(what) => Some(*what),
            Owner::Point(_) => None,
        });
        match fixed {
            Some(what) if found.iter().any(|o| *o != found[0]) => errors.push(
                span,
                format!(
                    "int8 net `{}`: `cat` at {}: a branch keeps the quantization of {what}, which cannot change \
                     to match the other branches' (TFLite's CONCATENATION needs one for all; a requantizing op \
                     between them is not supported yet)",
                    net.name,
                    or_net(&join.key)
                ),
            ),
            _ => {
                let ks: Vec<usize> = found
                    .iter()
                    .filter_map(|o| match o {
                        Owner::Point(k) => Some(*k),
                        Owner::Fixed(_) => None,
                    })
                    .collect();
                for pair in ks.windows(2) {
                    let (a, b) = (find(&mut parent, pair[0]), find(&mut parent, pair[1]));
                    let (low, high) = (a.min(b), a.max(b));
                    parent[high] = low;
                }
            }
        }
    }
    if errors.count() != before {
        return None;
    }
    let ties: Vec<usize> = (0..owners).map(|k| find(&mut parent, k)).collect();

    // The steps of the float plan, printed with int8 kernels.
    let body = match &plan.graph {
        None => chain_body(plan, &steps),
        Some(g) => graph_body(plan, g, &steps, &join_ios),
    };

    let NetSyntax { attrs, vis, name, .. } = net;
    let lit_usize = Literal::usize_unsuffixed;
    let (input_len, output_len) = (lit_usize(plan.input_len), lit_usize(plan.output_len));
    let scratch = lit_usize(plan.infer_scratch);
    let dims = plan.input_shape.dims();
    let macs = lit_usize(plan.macs);
    let (wn, bn, cn, kn, ln, sn) = (
        lit(weights_len),
        lit(biases_len),
        lit(channels),
        lit(weighted.len()),
        lit(values.output + 1),
        lit(luts),
    );
    let (pn, an, mn) = (lit(points.len()), lit(adds), lit(means));
    let out_value = lit(values.output);
    let name_str = name.to_string();
    let layer_infos = weighted.iter().enumerate().map(|(k, w)| {
        let (key, shape, bias, layer, output_layer, tie) = (
            w.key,
            w.weight_shape.iter().map(|&d| lit(d)),
            w.slots.bias.is_some(),
            lit(w.layer),
            lit(w.output_layer),
            lit(ties[k]),
        );
        let fold = match w.fold {
            Some((key, eps)) => {
                let eps = Literal::f32_suffixed(eps);
                quote!(#p::core::option::Option::Some(#p::int8::Int8Fold { key: #key, eps: #eps }))
            }
            None => quote!(#p::core::option::Option::None),
        };
        quote!(#p::int8::Int8LayerInfo {
            key: #key, weight_shape: &[#(#shape),*], bias: #bias, fold: #fold, layer: #layer,
            output_layer: #output_layer, tie: #tie,
        })
    });
    let point_infos = points.iter().enumerate().map(|(k, point)| {
        let (what, output, tie) = (&point.what, lit(point.output), lit(ties[weighted.len() + k]));
        quote!(#p::int8::Int8PointInfo { what: #what, output: #output, tie: #tie })
    });
    let layer_inputs = plan.layers.iter().map(|l| lit(l.shaped.inputs[0].0));

    let (doc_struct, baked_items, include) = match (&baked, &file) {
        (Some((tensors, point_quants, input)), Some(file)) => {
            let weights = tensors
                .iter()
                .flat_map(|t| &t.weight)
                .map(|&v| Literal::i8_unsuffixed(v));
            let biases = tensors
                .iter()
                .flat_map(|t| t.bias.iter().flatten())
                .map(|&v| Literal::i32_unsuffixed(v));
            let mut scales = Vec::new();
            let mut per_tensor = Vec::new();
            for (t, w) in tensors.iter().zip(&weighted) {
                let out = w.weight_shape[0];
                per_tensor.push(t.weight_scale.len() == 1);
                for c in 0..out {
                    scales.push(Literal::f32_suffixed(
                        t.weight_scale[c.min(t.weight_scale.len() - 1)],
                    ));
                }
            }
            let outputs = tensors.iter().map(|t| quant_tokens(t.output));
            let point_quants = point_quants.iter().map(|&q| quant_tokens(q));
            let input_q = quant_tokens(*input);
            let (in_scale, in_zp) = (
                Literal::f32_suffixed(input.scale),
                Literal::i32_suffixed(input.zero_point),
            );
            let path = &file.path;
            // What is wrong with the file's scales, as a `const` can say it.
            let file_says = |why: &str| format!("{name_str}: int8 weights file `{}`: {why}", file.relative);
            let (lengths, scale, multiplier, point, cat) = (
                file_says("the tensors do not fit the net"),
                file_says("the input scale of a sigmoid or tanh is below 2^-27"),
                file_says(
                    "a conv or linear layer's input scale * weight scale / output scale is 2^30 or more",
                ),
                file_says("an add's or global_avgpool's output scale is too small for its inputs' scales"),
                file_says(
                    "the inputs of a cat have different quantizations (TFLite's CONCATENATION needs one)",
                ),
            );
            let doc = format!(
                "`{name_str}` with int8 weights from `{}`: integer-only inference with TensorFlow Lite's int8 \
                 semantics (bit for bit as TensorFlow Lite Micro runs the same model).",
                file.relative
            );
            let items = quote! {
                /// The net with the file's tensors, built when this crate
                /// compiles (in flash on a microcontroller).
                pub const TRAINED: &'static #name = &match Self::__derive(
                    &[#(#scales),*],
                    &[#(#per_tensor),*],
                    &[#(#outputs),*],
                    &[#(#point_quants),*],
                    #input_q,
                ) {
                    #p::core::result::Result::Ok((requant, clamps, quants, luts, adds, means)) => #name {
                        weights: [#(#weights),*],
                        biases: [#(#biases),*],
                        requant,
                        clamps,
                        quants,
                        luts,
                        adds,
                        means,
                    },
                    #p::core::result::Result::Err(#p::int8::Int8Error::Lengths) => #p::core::panic!(#lengths),
                    #p::core::result::Result::Err(#p::int8::Int8Error::ScaleOutOfRange { .. }) => #p::core::panic!(#scale),
                    #p::core::result::Result::Err(#p::int8::Int8Error::MultiplierOutOfRange { .. }) => #p::core::panic!(#multiplier),
                    #p::core::result::Result::Err(#p::int8::Int8Error::PointOutOfRange { .. }) => #p::core::panic!(#point),
                    #p::core::result::Result::Err(#p::int8::Int8Error::CatQuantizations { .. }) => #p::core::panic!(#cat),
                };
                /// The input's quantization: `real = INPUT_SCALE * (q - INPUT_ZERO_POINT)`.
                pub const INPUT_SCALE: f32 = #in_scale;
                /// See [`Self::INPUT_SCALE`].
                pub const INPUT_ZERO_POINT: i32 = #in_zp;
                /// The output's quantization.
                pub const OUTPUT_SCALE: f32 = Self::TRAINED.quants[#out_value].scale;
                /// See [`Self::OUTPUT_SCALE`].
                pub const OUTPUT_ZERO_POINT: i32 = Self::TRAINED.quants[#out_value].zero_point;
            };
            // Rebuild when the weights file changes.
            let include = quote!(
                const _: &[u8] = include_bytes!(#path);
            );
            (doc, items, include)
        }
        _ => {
            let doc = format!(
                "`{name_str}`, an int8 net whose tensors are loaded at run time (`from_parts`, or \
                 `cnn_runtime::weights::int8::load` from a file `cnn quantize` writes): integer-only inference \
                 with TensorFlow Lite's int8 semantics."
            );
            (doc, TokenStream::new(), TokenStream::new())
        }
    };
    let count_lit = out_value;
    Some(quote! {
        #(#attrs)*
        #[doc = #doc_struct]
        #[derive(Clone)]
        #vis struct #name {
            weights: [i8; #wn],
            biases: [i32; #bn],
            requant: [#p::quant::Requant; #cn],
            clamps: [#p::quant::Clamp; #kn],
            quants: [#p::quant::Quant; #ln],
            luts: [[i8; 256]; #sn],
            adds: [#p::ops::add::int8::AddParams; #an],
            means: [#p::ops::global_avgpool::int8::MeanParams; #mn],
        }

        #[allow(clippy::all)]
        impl #name {
            #baked_items
            /// `[C, H, W]` of one input.
            pub const INPUT_SHAPE: [usize; 3] = [#(#dims),*];
            /// Values of one input.
            pub const INPUT_LEN: usize = #input_len;
            /// Values of one output.
            pub const OUTPUT_LEN: usize = #output_len;
            /// Bytes of scratch `forward_with` needs, exactly.
            pub const INFER_SCRATCH_BYTES: usize = #scratch;
            /// Bytes of read-only data: the net's int8 weights, int32
            /// biases, requantization multipliers (two `i32`s per output
            /// channel), clamps, quantizations and prepared ops.
            pub const PARAM_BYTES: usize = #p::core::mem::size_of::<Self>();
            /// Multiply-accumulates of one forward pass.
            pub const MACS: usize = #macs;
            /// Its conv and linear layers: what an int8 file holds for each.
            pub const INT8_LAYERS: &'static [#p::int8::Int8LayerInfo] = &[#(#layer_infos),*];
            /// Its `add`s and `global_avgpool`s: the file's `points`.
            pub const INT8_POINTS: &'static [#p::int8::Int8PointInfo] = &[#(#point_infos),*];
            /// The value each layer reads (an index in `quants`).
            const LAYER_INPUTS: &'static [usize] = &[#(#layer_inputs),*];

            /// What inference derives from the parts once: the
            /// requantization multipliers, clamps, every value's
            /// quantization (`quants[0]` is the input's), the sigmoid/tanh
            /// tables and the prepared ADDs and MEANs.
            #[allow(unused_mut, unused_variables, clippy::type_complexity)]
            const fn __derive(
                weight_scales: &[f32],
                per_tensor: &[bool],
                outputs: &[#p::quant::Quant],
                points: &[#p::quant::Quant],
                input: #p::quant::Quant,
            ) -> #p::core::result::Result<
                (
                    [#p::quant::Requant; #cn],
                    [#p::quant::Clamp; #kn],
                    [#p::quant::Quant; #ln],
                    [[i8; 256]; #sn],
                    [#p::ops::add::int8::AddParams; #an],
                    [#p::ops::global_avgpool::int8::MeanParams; #mn],
                ),
                #p::int8::Int8Error,
            > {
                if weight_scales.len() != #cn
                    || per_tensor.len() != #kn
                    || outputs.len() != #kn
                    || points.len() != #pn
                {
                    return #p::core::result::Result::Err(#p::int8::Int8Error::Lengths);
                }
                let mut requant = [#p::quant::Requant::ZERO; #cn];
                let mut clamps = [#p::quant::Clamp::FULL; #kn];
                let mut quants = [#p::quant::Quant::UNIT; #ln];
                let mut luts = [[0i8; 256]; #sn];
                let mut adds = [#p::ops::add::int8::AddParams::ZERO; #an];
                let mut means = [#p::ops::global_avgpool::int8::MeanParams::ZERO; #mn];
                quants[0] = input;
                #prepare
                #p::core::result::Result::Ok((requant, clamps, quants, luts, adds, means))
            }

            /// The net of `parts` (e.g. read from an int8 file by
            /// `cnn_runtime::weights::int8::load`), computing what inference
            /// derives from them exactly as a baked net does.
            ///
            /// # Errors
            ///
            /// If the parts' lengths do not fit this net, or a scale is
            /// out of the range TFLite's int8 arithmetic takes.
            pub fn from_parts(parts: &#p::int8::Int8Parts<'_>) -> #p::core::result::Result<Self, #p::int8::Int8Error> {
                if parts.weights.len() != #wn || parts.biases.len() != #bn {
                    return #p::core::result::Result::Err(#p::int8::Int8Error::Lengths);
                }
                let (requant, clamps, quants, luts, adds, means) = Self::__derive(
                    parts.weight_scales,
                    parts.per_tensor,
                    parts.outputs,
                    parts.points,
                    parts.input,
                )?;
                let mut net = Self { weights: [0; #wn], biases: [0; #bn], requant, clamps, quants, luts, adds, means };
                net.weights.copy_from_slice(parts.weights);
                net.biases.copy_from_slice(parts.biases);
                #p::core::result::Result::Ok(net)
            }

            /// The input's quantization.
            pub fn input_quant(&self) -> #p::quant::Quant {
                self.quants[0]
            }

            /// The output's quantization.
            pub fn output_quant(&self) -> #p::quant::Quant {
                self.quants[#count_lit]
            }

            /// Integer-only inference on one quantized input, with the
            /// caller's scratch. No heap, no floating point.
            pub fn forward_with(
                &self,
                input: &[i8; #input_len],
                output: &mut [i8; #output_len],
                scratch: &mut [i8; #scratch],
            ) {
                self.__forward(1, input, output, scratch);
            }

            #[inline]
            fn __forward(&self, n: usize, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
                #p::core::assert!(
                    input.len() == n * #input_len && output.len() == n * #output_len && scratch.len() >= n * #scratch,
                    "{}: buffers do not fit {} examples", #name_str, n
                );
                let scratch = &mut scratch[..n * #scratch];
                let _ = (&input, &output, &scratch);
                #body
            }

            /// `x` quantized with the input's scale and zero point, rounded
            /// as TensorFlow Lite rounds.
            pub fn quantize_input(&self, x: &[f32; #input_len]) -> [i8; #input_len] {
                let mut q = [0i8; #input_len];
                let quant = self.quants[0];
                #p::quant::quantize_slice(x, quant.scale, quant.zero_point, &mut q);
                q
            }

            /// The real values of an output.
            pub fn dequantize_output(&self, y: &[i8; #output_len]) -> [f32; #output_len] {
                let mut out = [0.0f32; #output_len];
                let quant = self.quants[#count_lit];
                #p::quant::dequantize_slice(y, quant.scale, quant.zero_point, &mut out);
                out
            }

            /// Quantizes `x`, runs [`Self::forward_with`] with scratch on the
            /// stack, and dequantizes the output.
            pub fn forward(&self, x: &[f32; #input_len]) -> [f32; #output_len] {
                let q = self.quantize_input(x);
                let mut y = [0i8; #output_len];
                let mut scratch = [0i8; #scratch];
                self.forward_with(&q, &mut y, &mut scratch);
                self.dequantize_output(&y)
            }

            /// [`Self::forward`] on each example of `input`
            /// (`INPUT_LEN` values each) into `output` (`OUTPUT_LEN` each).
            ///
            /// # Panics
            ///
            /// If the lengths do not hold the same number of examples.
            pub fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
                #p::core::assert!(
                    input.len() % #input_len == 0 && output.len() == input.len() / #input_len * #output_len,
                    "{}: {} input values and room for {} outputs do not hold whole examples",
                    #name_str, input.len(), output.len()
                );
                for (x, y) in input.chunks_exact(#input_len).zip(output.chunks_exact_mut(#output_len)) {
                    let x: &[f32; #input_len] = x.try_into().expect("a whole example");
                    y.copy_from_slice(&self.forward(x));
                }
            }
        }

        impl #p::int8::Int8Network for #name {
            const NAME: &'static str = #name_str;
            const INPUT_LEN: usize = #input_len;
            const OUTPUT_LEN: usize = #output_len;
            const INFER_SCRATCH_BYTES: usize = #scratch;
            const INT8_LAYERS: &'static [#p::int8::Int8LayerInfo] = Self::INT8_LAYERS;
            const INT8_POINTS: &'static [#p::int8::Int8PointInfo] = Self::INT8_POINTS;
            const LAYER_INPUTS: &'static [usize] = Self::LAYER_INPUTS;

            fn from_parts(parts: &#p::int8::Int8Parts<'_>) -> #p::core::result::Result<Self, #p::int8::Int8Error> {
                Self::from_parts(parts)
            }
            fn input_quant(&self) -> #p::quant::Quant {
                self.quants[0]
            }
            fn output_quant(&self) -> #p::quant::Quant {
                self.quants[#count_lit]
            }
            fn value_quants(&self) -> &[#p::quant::Quant] {
                &self.quants
            }
            fn forward_n(&self, n: usize, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
                self.__forward(n, input, output, scratch)
            }
        }

        impl #p::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut #p::core::fmt::Formatter<'_>) -> #p::core::fmt::Result {
                f.debug_struct(#name_str)
                    .field("input", &self.quants[0])
                    .field("output", &self.quants[#count_lit])
                    .finish_non_exhaustive()
            }
        }

        #include
    })
}

/// A chain's inference: the path plan's steps with int8 kernels.
fn chain_body(plan: &NetPlan, steps: &[Option<Int8Step>]) -> TokenStream {
    let i8_type = quote!(i8);
    let mut body = TokenStream::new();
    for step in &plan.infer_steps {
        match *step {
            InferStep::Compute { layer, src, dst } => {
                let l = &plan.layers[layer];
                let bind = bind_xy(src, l.in_len(), dst, l.out_len(), &i8_type);
                match &steps[layer] {
                    Some(Int8Step::Compute(c)) => {
                        let code = &c.code;
                        body.extend(quote!({ #bind #code }));
                    }
                    // A float compute step is an int8 compute step for
                    // every op that has one; the rest print nothing.
                    _ => body.extend(quote!({ #bind y.copy_from_slice(x); })),
                }
            }
            InferStep::Copy { src, dst, len } => {
                let bind = bind_xy(src, len, dst, len, &i8_type);
                body.extend(quote!({ #bind y.copy_from_slice(x); }));
            }
            InferStep::InPlace { layer, slot } => {
                if let Some(Int8Step::InPlace(c)) = &steps[layer] {
                    let target = slot_expr(slot, plan.layers[layer].out_len(), true);
                    let code = &c.code;
                    body.extend(quote!({ let target: &mut [i8] = #target; #code }));
                }
            }
        }
    }
    body
}

/// A graph net's inference: the graph plan's steps (values in regions of
/// the scratch arena) with int8 kernels.
fn graph_body(
    plan: &NetPlan,
    g: &GraphPlan,
    steps: &[Option<Int8Step>],
    joins: &[Int8JoinIo],
) -> TokenStream {
    let i8_type = quote!(i8);
    let scratch = quote!(scratch);
    let mut body = TokenStream::new();
    for op in &g.infer {
        body.extend(match *op {
            InferOp::Compute { layer, x, y } => {
                let bind = graph::bind_xy(&scratch, x, graph::written(y), &i8_type);
                match &steps[layer] {
                    Some(Int8Step::Compute(c)) => {
                        let code = &c.code;
                        quote!({ #bind #code })
                    }
                    _ => quote!({ #bind y.copy_from_slice(x); }),
                }
            }
            InferOp::Copy { x, y } => {
                let bind = graph::bind_xy(&scratch, x, graph::written(y), &i8_type);
                quote!({ #bind y.copy_from_slice(x); })
            }
            InferOp::InPlace { layer, at } => match &steps[layer] {
                Some(Int8Step::InPlace(c)) => {
                    let r = graph::range(graph::written(at));
                    let code = &c.code;
                    quote!({ let target: &mut [i8] = &mut scratch[#r]; #code })
                }
                _ => TokenStream::new(),
            },
            InferOp::Join { join, k, x, y, first } => {
                let j = &plan.joins[join];
                let bind = graph::bind_xy(&scratch, x, graph::written(y), &i8_type);
                let part = j
                    .kind
                    .int8_part(&j.input_shapes, j.output, k, first, &joins[join]);
                quote!({ #bind #part })
            }
            InferOp::Output { x } => match x {
                Loc::Input => quote!(output.copy_from_slice(input);),
                Loc::Scratch(r) => {
                    let r = graph::range(r);
                    quote!(output.copy_from_slice(&scratch[#r]);)
                }
            },
        });
    }
    body
}

/// A `Quant` value in generated code.
fn quant_tokens(q: Quant) -> TokenStream {
    let (s, z) = (
        Literal::f32_suffixed(q.scale),
        Literal::i32_suffixed(q.zero_point),
    );
    quote!(::cnn_runtime::__private::quant::Quant { scale: #s, zero_point: #z })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::LitStr;

    /// A safetensors file of `tensors` (key, dtype, shape, little-endian
    /// bytes) with `format` in its metadata.
    fn file(name: &str, format: (&str, &str), tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> String {
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(k, d, s, b)| {
                (
                    k.to_string(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        let metadata = Some(HashMap::from([(format.0.to_string(), format.1.to_string())]));
        let bytes = safetensors::serialize(views, metadata).unwrap();
        let dir = std::env::temp_dir().join(format!("cnn-int8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn i32s(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The int8 tensors of `conv(1, 2, 1) relu flatten linear(2, 3)` on
    /// `[1, 1, 1]`, with `edit` applied.
    fn tensors(
        edit: impl FnOnce(&mut Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)>),
    ) -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
        let mut t = vec![
            ("input.scale", Dtype::F32, vec![], f32s(&[0.5])),
            ("input.zero_point", Dtype::I32, vec![], i32s(&[-128])),
            ("0.weight", Dtype::I8, vec![2, 1, 1, 1], vec![1, 2]),
            ("0.bias", Dtype::I32, vec![2], i32s(&[0, 1])),
            ("0.weight_scale", Dtype::F32, vec![2], f32s(&[0.1, 0.2])),
            ("0.output_scale", Dtype::F32, vec![], f32s(&[0.25])),
            ("0.output_zero_point", Dtype::I32, vec![], i32s(&[-128])),
            ("3.weight", Dtype::I8, vec![3, 2], vec![1, 2, 3, 4, 5, 6]),
            ("3.bias", Dtype::I32, vec![3], i32s(&[0, 1, 2])),
            ("3.weight_scale", Dtype::F32, vec![1], f32s(&[0.1])),
            ("3.output_scale", Dtype::F32, vec![], f32s(&[0.5])),
            ("3.output_zero_point", Dtype::I32, vec![], i32s(&[3])),
        ];
        edit(&mut t);
        t
    }

    /// The errors of the net compiled with the file of `tensors`.
    fn errors(name: &str, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<String> {
        errors_of(name, "conv(1, 2, 1) relu flatten linear(2, 3)", tensors)
    }

    fn errors_of(name: &str, layers: &str, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<String> {
        let path = file(name, FORMAT, tensors);
        let source = format!("pub Net: [1, 1, 1] weights = {path:?} => {layers}");
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(&source).expect("tokens"), &mut messages);
        messages
    }

    /// The string of every `compile_error!` in `tokens`.
    fn collect_messages(tokens: TokenStream, out: &mut Vec<String>) {
        let mut after_compile_error = false;
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Ident(i) => after_compile_error = i == "compile_error",
                proc_macro2::TokenTree::Group(g) if after_compile_error => {
                    let lit: LitStr = syn::parse2(g.stream()).expect("a message");
                    out.push(lit.value());
                    after_compile_error = false;
                }
                proc_macro2::TokenTree::Group(g) => collect_messages(g.stream(), out),
                _ => {}
            }
        }
    }

    #[test]
    fn a_good_file_compiles() {
        assert_eq!(errors("good.safetensors", &tensors(|_| {})), Vec::<String>::new());
    }

    #[test]
    fn bad_int8_files_are_errors_naming_the_tensor_all_at_once() {
        let bad = tensors(|t| {
            t.retain(|(k, ..)| *k != "0.weight_scale" && *k != "input.zero_point");
            for (k, d, s, b) in t.iter_mut() {
                match *k {
                    "0.weight" => *s = vec![2, 1, 1, 2],
                    "0.output_scale" => *b = f32s(&[0.0]),
                    "3.output_scale" => *b = f32s(&[-1.0]),
                    "3.bias" => *d = Dtype::F32,
                    "3.output_zero_point" => *b = i32s(&[200]),
                    _ => {}
                }
            }
            t.push(("3.extra", Dtype::F32, vec![1], f32s(&[1.0])));
        });
        // The shape does not match its bytes: give the wrong-shape weight
        // the right number of bytes.
        let bad: Vec<_> = bad
            .into_iter()
            .map(|(k, d, s, b)| {
                if k == "0.weight" {
                    (k, d, s, vec![1, 2, 3, 4])
                } else {
                    (k, d, s, b)
                }
            })
            .collect();
        let errors = errors("bad.safetensors", &bad);
        let expected = [
            "missing tensor \"input.zero_point\"",
            "tensor \"0.weight\": expected shape [2, 1, 1, 1], found [2, 1, 1, 2]",
            "missing tensor \"0.weight_scale\"",
            "tensor \"0.output_scale\": scale 0 is 0, expected a positive finite number",
            "tensor \"3.bias\": dtype F32, expected I32",
            "tensor \"3.output_scale\": scale 0 is -1, expected a positive finite number",
            "tensor \"3.output_zero_point\": zero point 200 is outside the int8 range",
            "unexpected tensor \"3.extra\"",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (e, x) in errors.iter().zip(expected) {
            assert!(e.contains(x), "{e:?} should contain {x:?}");
        }
    }

    #[test]
    fn ops_without_an_int8_form_are_named() {
        // A batch norm folds into the conv before it, not into a view.
        let errors = errors_of(
            "folds.safetensors",
            "conv(1, 2, 1) batchnorm flatten linear(2, 3)",
            &tensors(|_| {}),
        );
        assert_eq!(errors, Vec::<String>::new());
        let errors = errors_of(
            "ops.safetensors",
            "conv(1, 2, 1) flatten batchnorm linear(2, 3)",
            &tensors(|_| {}),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .contains("layer 2 `batchnorm` in an int8 net must directly follow a conv or linear layer"),
            "{}",
            errors[0]
        );

        // TFLite's int8 average pool leaves padding out of the count.
        let errors = errors_of(
            "avgpool.safetensors",
            "conv(1, 2, 1) avgpool(3, stride = 1, pad = 1) flatten linear(2, 3)",
            &tensors(|t| {
                for (k, _, s, b) in t.iter_mut() {
                    if *k == "3.weight" {
                        *s = vec![3, 2];
                        *b = vec![1; 6];
                    }
                }
            }),
        );
        assert!(
            errors.len() == 1
                && errors[0]
                    .contains("layer 1 `avgpool(3, stride = 1, pad = 1)` with padding has no int8 form"),
            "{errors:?}"
        );

        let errors = errors_of(
            "relu.safetensors",
            "conv(1, 2, 1) flatten relu linear(2, 3)",
            &tensors(|_| {}),
        );
        assert!(
            errors[0].contains("layer 2 `relu` in an int8 net `relu` must directly follow"),
            "{errors:?}"
        );
    }

    /// `pub A, B: ..` declares float `A` and its int8 twin `B` from one
    /// layer list; `int8` on such a pair is an error that says why.
    #[test]
    fn a_net_names_its_int8_twin() {
        let source = "pub Net, NetInt8: [1, 4, 4] => conv(1, 2, 1) batchnorm relu flatten linear(32, 3)";
        let tokens = crate::expand_str(source).expect("tokens");
        let mut messages = Vec::new();
        collect_messages(tokens.clone(), &mut messages);
        assert_eq!(messages, Vec::<String>::new());
        let text = tokens.to_string();
        assert!(
            text.contains("pub struct Net {") || text.contains("pub struct Net("),
            "{text}"
        );
        assert!(
            text.contains("impl :: cnn_runtime :: __private :: int8 :: Int8Network for NetInt8"),
            "{text}"
        );

        let source = "pub Net, NetInt8: [1, 4, 4] int8 => conv(1, 2, 1) flatten linear(32, 3)";
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(source).expect("tokens"), &mut messages);
        assert!(
            messages.len() == 1
                && messages[0]
                    .contains("`Net` has an int8 twin (`NetInt8`), so it is the float net: leave out `int8`"),
            "{messages:?}"
        );
    }

    #[test]
    fn float_files_are_not_int8() {
        let path = file(
            "float.safetensors",
            ("cnn.net", "Net"),
            &[("0.weight", Dtype::F32, vec![1], f32s(&[1.0]))],
        );
        let file = WeightsFile {
            relative: path.clone(),
            bytes: std::fs::read(&path).unwrap(),
            path,
        };
        assert!(read(&file).unwrap().is_none());
    }

    #[test]
    fn an_int8_net_refuses_a_float_file_and_graphs() {
        let path = file(
            "float2.safetensors",
            ("cnn.net", "Net"),
            &[("0.weight", Dtype::F32, vec![1], f32s(&[1.0]))],
        );
        let source =
            format!("pub Net: [1, 1, 1] int8 weights = {path:?} => conv(1, 2, 1) relu flatten linear(2, 3)");
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(&source).expect("tokens"), &mut messages);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("is not an int8 file") && messages[0].contains("cnn quantize"),
            "{messages:?}"
        );

        // Graphs compile; what TFLite has no int8 form of is named, all at
        // once: an add of three branches, a cat of a branch that keeps the
        // net input's quantization with one that has its own, an avgpool
        // with padding.
        let source = "pub Net: [1, 4, 4] int8 => conv(1, 2, 1) add { identity | c: conv(2, 2, 1) } \
                      global_avgpool flatten linear(2, 3)";
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(source).expect("tokens"), &mut messages);
        assert_eq!(messages, Vec::<String>::new());
        let source = "pub Net: [1, 4, 4] int8 => cat { identity | c: conv(1, 2, 1) } \
                      add { identity | a: conv(3, 3, 1) | b: conv(3, 3, 1) } avgpool(3, stride = 1, pad = 1) \
                      flatten linear(48, 3)";
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(source).expect("tokens"), &mut messages);
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            messages[0].contains("with padding has no int8 form"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("`add` at 1 has 3 branches; an int8 `add` takes two"),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("`cat` at 0: a branch keeps the quantization of the net's input"),
            "{messages:?}"
        );

        // Without a file, a chain compiles.
        let source = "pub Net: [1, 4, 4] int8 => conv(1, 2, 1) relu flatten linear(32, 3) sigmoid";
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(source).expect("tokens"), &mut messages);
        assert_eq!(messages, Vec::<String>::new());
    }
}
