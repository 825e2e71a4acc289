//! Syntax to a program: the net's layers lowered to nodes in topological
//! order over numbered values, each node with its `state_dict` key. The
//! phases after this one (`shape`, `plan`, `expand`) read only the program.
//!
//! A chain of `n` layers lowers to a path: value 0 is the net's input, node
//! `i` reads value `i` and writes value `i + 1`, and its key is its position
//! `i`, as in PyTorch's `nn.Sequential`. Labels (`conv1: conv(..)`) replace
//! a position in the key; a nested sequence (`[ .. ]`) adds a key level, as
//! a nested `nn.Sequential` does, and lowers in line.
//!
//! `add { .. | .. }` and `cat { .. | .. }` lower each branch from the same
//! input value, then a join node reads every branch's output. Branches add
//! no key level (their layers are attributes of the enclosing module, as in
//! D2L's `Residual`), so a layer with parameters inside a branch must be
//! labelled; a labelled join adds its label as a level.

use std::collections::HashMap;

use crate::ctxt::Errors;
use crate::layer::{self, Layer};
use crate::ops::{self, JoinKind};
use crate::parse::{ChainSyntax, LabelSyntax, NetSyntax, NodeSyntax, UnitSyntax};
use proc_macro2::{Ident, Span};

/// A value of the program: the net's input or one node's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueId(pub usize);

/// What a node computes.
pub enum NodeOp<'a> {
    /// One layer: the checked layer, or `None` when its arguments were wrong
    /// (already reported): its output is then unknown.
    Layer(Option<Layer<'a>>),
    /// The outputs of several branches summed or concatenated.
    Join {
        kind: JoinKind,
        /// The `add` or `cat` the user wrote, for messages.
        keyword: &'a Ident,
    },
}

/// One node of the program.
pub struct Node<'a> {
    pub op: NodeOp<'a>,
    /// The values it reads: one for a layer, one per branch for a join.
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
    let output = lowering.chain(&net.chain, "", &mut Names::default(), None, input);
    Program {
        input,
        nodes: lowering.nodes,
        output,
    }
}

/// The key segments already taken at one key level: each with a phrase
/// naming where, for the duplicate message.
#[derive(Default)]
struct Names(HashMap<String, String>);

/// The branch a chain is, if it is one: the join's keyword and key, and the
/// branch's number, for the keys of unlabelled layers (which only messages
/// show).
#[derive(Clone, Copy)]
struct Branch<'k> {
    keyword: &'k Ident,
    key: &'k str,
    index: usize,
}

/// The state of one lowering: the nodes so far and the next free value.
struct Lowering<'a, 'e> {
    nodes: Vec<Node<'a>>,
    values: usize,
    errors: &'e mut Errors,
}

impl<'a> Lowering<'a, '_> {
    fn value(&mut self) -> ValueId {
        self.values += 1;
        ValueId(self.values - 1)
    }

    /// Lowers `chain` reading `input`, with keys under `prefix` (whose taken
    /// segments are `names`); returns the value it yields.
    ///
    /// Keys follow `nn.Sequential`: a node's segment is its label if it has
    /// one, else its position in its chain; a nested sequence adds a level.
    /// In a branch positions name nothing, so unlabelled layers there must
    /// have no parameters.
    fn chain(
        &mut self,
        chain: &'a ChainSyntax,
        prefix: &str,
        names: &mut Names,
        branch: Option<Branch>,
        input: ValueId,
    ) -> ValueId {
        let mut current = input;
        for (position, node) in chain.nodes.iter().enumerate() {
            let segment = match (&node.label, branch) {
                (Some(label), _) => Some(label.segment()),
                (None, None) => Some(position.to_string()),
                (None, Some(_)) => None,
            };
            let key = match (&segment, branch) {
                (Some(segment), b) => {
                    let here = match b {
                        Some(b) => format!(
                            "in branch {} of `{}` at {}",
                            b.index + 1,
                            b.keyword,
                            or_net(b.key)
                        ),
                        None => format!("at position {position}"),
                    };
                    self.claim(names, prefix, segment, node, here);
                    join(prefix, segment)
                }
                (None, Some(b)) => format!(
                    "{} ({} branch {}, position {position})",
                    b.key,
                    b.keyword,
                    b.index + 1
                ),
                (None, None) => join(prefix, &position.to_string()),
            };
            current = match &node.unit {
                UnitSyntax::Layer(syntax) => {
                    let layer = layer::resolve(syntax, self.errors);
                    if segment.is_none() && ops::keyword_has_params(&syntax.name.to_string()) {
                        if let Some(b) = branch {
                            self.errors.push(
                                syntax.name.span(),
                                format!(
                                    "`{}` has parameters, so inside a branch of `{}` it needs a label to name \
                                     them (PyTorch names a module by its attribute): write e.g. `conv3: {}`",
                                    syntax.render(),
                                    b.keyword,
                                    syntax.render()
                                ),
                            );
                        }
                    }
                    let output = self.value();
                    self.nodes.push(Node {
                        op: NodeOp::Layer(layer),
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
                    if segment.is_none() && has_params(chain) {
                        if let Some(b) = branch {
                            self.errors.push(
                                bracket.span.join(),
                                format!(
                                    "this sequence has parameters, so inside a branch of `{}` it needs a label \
                                     to name them (PyTorch names a module by its attribute): write e.g. \
                                     `downsample: [ .. ]`",
                                    b.keyword
                                ),
                            );
                        }
                    }
                    self.chain(chain, &key, &mut Names::default(), None, current)
                }
                UnitSyntax::Join {
                    kind,
                    keyword,
                    branches,
                } => {
                    // Unlabelled, the branches are attributes of the
                    // enclosing module; labelled, of a module of that name.
                    let mut own = Names::default();
                    let (branch_prefix, branch_names) = if node.label.is_some() {
                        (key.as_str(), &mut own)
                    } else {
                        (prefix, &mut *names)
                    };
                    let mut inputs = Vec::new();
                    for (index, chain) in branches.iter().enumerate() {
                        let b = Branch {
                            keyword,
                            key: &key,
                            index,
                        };
                        inputs.push(self.chain(chain, branch_prefix, branch_names, Some(b), current));
                    }
                    if branches.len() < 2 {
                        self.errors.push(
                            keyword.span(),
                            format!(
                                "`{keyword} {{ .. }}` needs at least two branches separated by `|`, e.g. \
                                 `{keyword} {{ conv(_, 8, 3, pad = 1) | identity }}`"
                            ),
                        );
                    }
                    let output = self.value();
                    self.nodes.push(Node {
                        op: NodeOp::Join { kind: *kind, keyword },
                        inputs,
                        output,
                        key,
                    });
                    output
                }
            };
        }
        current
    }

    /// Records `segment` as taken under `prefix`, or reports it as a
    /// duplicate.
    fn claim(&mut self, names: &mut Names, prefix: &str, segment: &str, node: &NodeSyntax, here: String) {
        if let Some(first) = names.0.get(segment) {
            let span = node
                .label
                .as_ref()
                .map_or_else(|| node_span(node), LabelSyntax::span);
            self.errors.push(
                span,
                format!(
                    "duplicate key `{}` in this sequence: the node {first} already has it; give this node another label",
                    join(prefix, segment)
                ),
            );
        } else {
            names.0.insert(segment.to_string(), here);
        }
    }
}

/// Whether any layer in `chain` (at any depth) has parameters.
fn has_params(chain: &ChainSyntax) -> bool {
    chain.nodes.iter().any(|node| match &node.unit {
        UnitSyntax::Layer(layer) => ops::keyword_has_params(&layer.name.to_string()),
        UnitSyntax::Seq { chain, .. } => has_params(chain),
        UnitSyntax::Join { branches, .. } => branches.iter().any(has_params),
    })
}

/// `prefix.segment`, or `segment` at the top level.
fn join(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// `layer 1.0`, or `the net's top level` for the empty key.
fn or_net(key: &str) -> String {
    if key.is_empty() {
        "the net's top level".to_string()
    } else {
        format!("layer {key}")
    }
}

/// Where a node starts, for messages about it.
fn node_span(node: &NodeSyntax) -> Span {
    match &node.unit {
        UnitSyntax::Layer(layer) => layer.name.span(),
        UnitSyntax::Seq { bracket, .. } => bracket.span.join(),
        UnitSyntax::Join { keyword, .. } => keyword.span(),
    }
}
