//! Computes the shape of every value of the program at compile time and
//! reports mismatches in terms of layers and shapes; each op's own rule is
//! in its module under `ops/`.
//!
//! A layer whose input is unknown (an earlier layer was wrong) checks only
//! what it can, so one mistake gives one error.

use crate::ctxt::Errors;
use crate::layer::Layer;
use crate::lower::{Node, NodeOp, Program, ValueId};
use crate::ops::{JoinKind, LayerKind};
use std::fmt;

/// The most elements any value, parameter tensor or scratch buffer of a net
/// may have, and the most parameters or multiply-accumulates a net may
/// have: 2^32 (16 GiB of `f32`). Every count the macro derives from user
/// numbers saturates instead of wrapping, and a count past this limit is a
/// spanned "too large" error, so no constant is ever silently wrong.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// The shape of one example: `[C, H, W]` or `[features]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Chw(usize, usize, usize),
    Flat(usize),
}

impl Shape {
    /// Number of elements (saturating: a count past [`MAX_ELEMENTS`] is
    /// reported, never wrapped).
    pub fn len(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c.saturating_mul(h).saturating_mul(w),
            Shape::Flat(n) => n,
        }
    }

    /// The dimensions as a list.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Chw(c, h, w) => vec![c, h, w],
            Shape::Flat(n) => vec![n],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Chw(c, h, w) => write!(f, "[{c}, {h}, {w}]"),
            Shape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// A layer with its resolved input and output shapes.
pub struct Shaped<'a> {
    pub layer: Layer<'a>,
    pub input: Shape,
    pub output: Shape,
    /// Input channels or features after `_` is inferred.
    pub fan_in_units: usize,
    /// The node's `state_dict` key (see `lower::Node::key`).
    pub key: String,
    /// The values it reads and writes.
    pub inputs: Vec<ValueId>,
    pub output_value: ValueId,
}

/// A join (`add`, `cat`) with its inputs' and output's shapes.
pub struct ShapedJoin {
    pub kind: JoinKind,
    pub inputs: Vec<ValueId>,
    pub input_shapes: Vec<Shape>,
    pub output: Shape,
    pub output_value: ValueId,
    /// Its `state_dict` position (the key its branches' layers are under),
    /// for messages.
    pub key: String,
}

/// A node of a shaped program.
pub enum ShapedNode<'a> {
    Layer(Box<Shaped<'a>>),
    Join(ShapedJoin),
}

/// A program whose every value has a shape.
pub struct ShapedProgram<'a> {
    /// The nodes, in program order.
    pub nodes: Vec<ShapedNode<'a>>,
    /// Number of values (the net input and every node's output).
    pub values: usize,
    /// The net's output value.
    pub output: ValueId,
}

/// Where a value came from, for messages.
#[derive(Clone)]
pub struct Provenance {
    /// The key and source of the last layer that changed the shape, `None`
    /// for the net input.
    producer: Option<(String, String)>,
    /// The shape before `flatten`, when `flatten` was that layer.
    flattened_from: Option<Shape>,
}

impl Provenance {
    /// "conv(1, 6, 5) at layer 0", "conv(_, 64, 3) at layer 1.0.conv1" or
    /// "the input".
    pub fn from(&self) -> String {
        match &self.producer {
            Some((index, source)) => format!("{source} at layer {index}"),
            None => "the input".to_string(),
        }
    }

    /// "the previous layer yields [16, 5, 5] = 400 after flatten" and the like.
    pub fn yields(&self, shape: Shape) -> String {
        match self.flattened_from {
            Some(chw) => format!("the previous layer yields {chw} = {} after flatten", shape.len()),
            None => format!("{} yields {shape}", self.from()),
        }
    }
}

/// Shapes every value of `program` from the net's `input` shape. Returns the
/// shaped nodes, in program order, when every layer checked out; errors are
/// pushed either way. A node whose input is unknown (an earlier layer was
/// wrong) checks only what it can, so one mistake gives one error.
pub fn infer<'a>(input: Shape, program: Program<'a>, errors: &mut Errors) -> Option<ShapedProgram<'a>> {
    let values = program
        .nodes
        .iter()
        .map(|n| n.output.0 + 1)
        .max()
        .unwrap_or(0)
        .max(program.input.0 + 1);
    let mut shapes: Vec<Option<Shape>> = vec![None; values];
    let mut provenance = vec![
        Provenance {
            producer: None,
            flattened_from: None,
        };
        values
    ];
    shapes[program.input.0] = Some(input);
    let program_output = program.output;
    let mut shaped = Vec::new();
    let mut complete = true;
    for node in program.nodes {
        let Node {
            op,
            inputs,
            output,
            key,
            instance: _,
        } = node;
        let layer = match op {
            NodeOp::Layer(layer) => layer,
            NodeOp::Join { kind, keyword } => {
                let known: Vec<(Option<Shape>, &Provenance)> =
                    inputs.iter().map(|v| (shapes[v.0], &provenance[v.0])).collect();
                let result = kind.shape(keyword, &known, errors);
                provenance[output.0] = Provenance {
                    producer: Some((key.clone(), format!("{keyword} {{ .. }}"))),
                    flattened_from: None,
                };
                let out_shape = match result {
                    Some(shape) if shape.len() <= MAX_ELEMENTS => shape,
                    Some(shape) => {
                        errors.push(
                            keyword.span(),
                            format!(
                                "`{keyword}`: its output {shape} has {}; at most {MAX_ELEMENTS} elements fit",
                                element_count(shape.len())
                            ),
                        );
                        complete = false;
                        continue;
                    }
                    None => {
                        complete = false;
                        continue;
                    }
                };
                shapes[output.0] = Some(out_shape);
                let input_shapes: Option<Vec<Shape>> = inputs.iter().map(|v| shapes[v.0]).collect();
                match input_shapes {
                    Some(input_shapes) => shaped.push(ShapedNode::Join(ShapedJoin {
                        kind,
                        inputs,
                        input_shapes,
                        output: out_shape,
                        output_value: output,
                        key: key.clone(),
                    })),
                    None => complete = false,
                }
                continue;
            }
        };
        let source = inputs[0];
        let current = shapes[source.0];
        provenance[output.0] = provenance[source.0].clone();
        let Some(layer) = layer else {
            complete = false;
            continue;
        };
        let result = layer.kind.shape(&layer, current, &provenance[source.0], errors);
        let Some((out_shape, fan_in_units)) = result else {
            complete = false;
            continue;
        };
        if !layer.kind.element_wise() {
            provenance[output.0] = Provenance {
                producer: Some((key.clone(), layer.source.clone())),
                flattened_from: match (layer.kind, current) {
                    (LayerKind::Flatten(_), Some(chw @ Shape::Chw(..))) => Some(chw),
                    _ => None,
                },
            };
        }
        if out_shape.len() > MAX_ELEMENTS {
            errors.push(
                layer.syntax.name.span(),
                format!(
                    "{}: its output {out_shape} has {}; at most {MAX_ELEMENTS} elements fit",
                    layer.source,
                    element_count(out_shape.len())
                ),
            );
            complete = false;
            continue;
        }
        shapes[output.0] = Some(out_shape);
        let Some(input) = current else {
            complete = false;
            continue;
        };
        let node = Shaped {
            layer,
            input,
            output: out_shape,
            fan_in_units,
            key,
            inputs,
            output_value: output,
        };
        let (tensors, macs) = node.layer.kind.tensors(&node);
        let mut fits = true;
        if macs == usize::MAX {
            errors.push(
                node.layer.syntax.name.span(),
                format!("{}: its multiply-accumulates overflow a usize", node.layer.source),
            );
            fits = false;
        }
        for t in &tensors {
            let len = t.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d));
            if len > MAX_ELEMENTS {
                let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
                errors.push(
                    node.layer.syntax.name.span(),
                    format!(
                        "{}: its {} [{}] has {}; at most {MAX_ELEMENTS} elements fit",
                        node.layer.source,
                        t.suffix,
                        dims.join(", "),
                        element_count(len)
                    ),
                );
                fits = false;
            }
        }
        if !fits {
            complete = false;
            continue;
        }
        shaped.push(ShapedNode::Layer(Box::new(node)));
    }
    complete.then_some(ShapedProgram {
        nodes: shaped,
        values,
        output: program_output,
    })
}

/// `"12 elements"`, or `"more elements than a usize counts"` for a count
/// that saturated.
pub fn element_count(n: usize) -> String {
    if n == usize::MAX {
        "more elements than a usize can count".to_string()
    } else {
        format!("{n} elements")
    }
}

/// Reports a layer that needs `[C, H, W]` but got a flat input.
pub fn need_chw(
    layer: &Layer,
    input: Shape,
    provenance: &Provenance,
    errors: &mut Errors,
) -> Option<(usize, usize, usize)> {
    match input {
        Shape::Chw(c, h, w) => Some((c, h, w)),
        flat => {
            errors.push(
                layer.syntax.name.span(),
                format!(
                    "{}: needs a [C, H, W] input, but {}",
                    layer.source,
                    provenance.yields(flat)
                ),
            );
            None
        }
    }
}
