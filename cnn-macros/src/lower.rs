//! Syntax to a program: the net's layers lowered to nodes in topological
//! order over numbered values, each node with its `state_dict` key. The
//! phases after this one (`shape`, `plan`, `expand`) read only the program.
//!
//! A chain of `n` layers lowers to a path: value 0 is the net's input, node
//! `i` reads value `i` and writes value `i + 1`, and its key is its position
//! `i`, as in PyTorch's `nn.Sequential`.

use crate::ctxt::Errors;
use crate::layer::{self, Layer};
use crate::parse::NetSyntax;

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
    let nodes: Vec<Node> = net
        .layers
        .iter()
        .enumerate()
        .map(|(index, syntax)| Node {
            layer: layer::resolve(syntax, errors),
            inputs: vec![ValueId(index)],
            output: ValueId(index + 1),
            key: index.to_string(),
        })
        .collect();
    Program {
        input: ValueId(0),
        output: ValueId(nodes.len()),
        nodes,
    }
}
