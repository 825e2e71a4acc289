//! Syntax to a program: the net's layers lowered to nodes in topological
//! order over numbered values, each node with its `state_dict` key. The
//! phases after this one (`shape`, `plan`, `expand`) read only the program.
//!
//! A chain of `n` layers lowers to a path: value 0 is the net's input, node
//! `i` reads value `i` and writes value `i + 1`, and its key is its position
//! `i`, as in PyTorch's `nn.Sequential`. Labels (`conv1: conv(..)`) replace
//! a position in the key; a nested sequence (`[ .. ]`) adds a key level, as
//! a nested `nn.Sequential` does, and lowers in line.

use std::collections::HashMap;

use crate::ctxt::Errors;
use crate::layer::{self, Layer};
use crate::parse::{ChainSyntax, LabelSyntax, NetSyntax, NodeSyntax, UnitSyntax};
use proc_macro2::Span;

/// A value of the program: the net's input or one node's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueId(pub usize);

/// One layer instance of the program.
pub struct Node<'a> {
    /// The checked layer, or `None` when its arguments were wrong (already
    /// reported): its output is then unknown.
    pub layer: Option<Layer<'a>>,
    /// The values it reads.
    pub inputs: Vec<ValueId>,
    /// The value it writes.
    pub output: ValueId,
    /// The `state_dict` key of its tensors before `.weight`, `.bias`: the
    /// path of labels and positions from the net to the layer.
    pub key: String,
}

/// A net as nodes in topological order.
pub struct Program<'a> {
    /// The net's input.
    pub input: ValueId,
    /// Every node; each reads only the input or earlier nodes' outputs.
    pub nodes: Vec<Node<'a>>,
    /// The net's output.
    pub output: ValueId,
}

/// Checks every layer's arguments (reporting each problem) and lowers the
/// net to its program.
pub fn lower<'a>(net: &'a NetSyntax, errors: &mut Errors) -> Program<'a> {
    let mut lowering = Lowering {
        nodes: Vec::new(),
        values: 1,
        errors,
    };
    let input = ValueId(0);
    let output = lowering.chain(&net.chain, "", input);
    Program {
        input,
        nodes: lowering.nodes,
        output,
    }
}

/// The state of one lowering: the nodes so far and the next free value.
struct Lowering<'a, 'e> {
    nodes: Vec<Node<'a>>,
    values: usize,
    errors: &'e mut Errors,
}

impl<'a> Lowering<'a, '_> {
    /// Lowers `chain` reading `input`, with keys under `prefix`; returns the
    /// value it yields.
    ///
    /// Keys follow `nn.Sequential`: a node's segment is its label if it has
    /// one, else its position in its chain; a nested sequence adds a level.
    fn chain(&mut self, chain: &'a ChainSyntax, prefix: &str, input: ValueId) -> ValueId {
        let mut segments: HashMap<String, usize> = HashMap::new();
        let mut current = input;
        for (position, node) in chain.nodes.iter().enumerate() {
            let segment = node
                .label
                .as_ref()
                .map_or_else(|| position.to_string(), LabelSyntax::segment);
            if let Some(&first) = segments.get(&segment) {
                let span = node
                    .label
                    .as_ref()
                    .map_or_else(|| node_span(node), LabelSyntax::span);
                self.errors.push(
                    span,
                    format!(
                        "duplicate key `{}` in this sequence: the node at position {first} already has it; \
                         give this node another label",
                        join(prefix, &segment)
                    ),
                );
            } else {
                segments.insert(segment.clone(), position);
            }
            let key = join(prefix, &segment);
            current = match &node.unit {
                UnitSyntax::Layer(syntax) => {
                    let output = ValueId(self.values);
                    self.values += 1;
                    self.nodes.push(Node {
                        layer: layer::resolve(syntax, self.errors),
                        inputs: vec![current],
                        output,
                        key,
                    });
                    output
                }
                UnitSyntax::Seq { bracket, chain } => {
                    if chain.nodes.is_empty() {
                        self.errors.push(
                            bracket.span.join(),
                            "empty sequence `[]`: put layers in it or remove it",
                        );
                    }
                    self.chain(chain, &key, current)
                }
            };
        }
        current
    }
}

/// `prefix.segment`, or `segment` at the top level.
fn join(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// Where a node starts, for messages about it.
fn node_span(node: &NodeSyntax) -> Span {
    match &node.unit {
        UnitSyntax::Layer(layer) => layer.name.span(),
        UnitSyntax::Seq { bracket, .. } => bracket.span.join(),
    }
}
