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
use crate::parse::{
    ArgSyntax, BlockSyntax, ChainSyntax, LabelSyntax, LayerSyntax, NetSyntax, NodeSyntax, UnitSyntax,
    ValueSyntax,
};
use crate::symbol;
use proc_macro2::{Ident, Span};
use std::borrow::Cow;

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
    /// The outermost block instance the node belongs to (an index of
    /// [`Program::instances`]), if any.
    pub instance: Option<usize>,
}

/// A net as nodes in topological order.
pub struct Program<'a> {
    /// The net's input.
    pub input: ValueId,
    /// Every node; each reads only the input or earlier nodes' outputs.
    pub nodes: Vec<Node<'a>>,
    /// The net's output.
    pub output: ValueId,
    /// Each outermost block instance, as its call reads with the arguments
    /// substituted (`Residual(64, strides = 2)`): with the shapes of its
    /// nodes, what decides whether two instances compute alike.
    pub instances: Vec<String>,
}

/// Checks every layer's arguments (reporting each problem) and lowers the
/// net to its program.
pub fn lower<'a>(net: &'a NetSyntax, blocks: &'a [BlockSyntax], errors: &mut Errors) -> Program<'a> {
    let mut lowering = Lowering {
        nodes: Vec::new(),
        values: 1,
        errors,
        blocks,
        scopes: Vec::new(),
        instances: Vec::new(),
    };
    let input = ValueId(0);
    let output = lowering.chain(&net.chain, "", &mut Names::default(), None, input);
    Program {
        input,
        nodes: lowering.nodes,
        output,
        instances: lowering.instances,
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
    /// The chain of an `if` (on the parameter `keyword`), not a branch of
    /// a join.
    conditional: bool,
}

impl Branch<'_> {
    /// "a branch of `add`", "`if use_1x1conv`".
    fn what(&self) -> String {
        if self.conditional {
            format!("`if {}`", self.keyword)
        } else {
            format!("a branch of `{}`", self.keyword)
        }
    }
}

/// The arguments of one block instance being lowered.
struct Scope<'a> {
    block: &'a BlockSyntax,
    values: HashMap<String, ValueSyntax>,
}

/// The state of one lowering: the nodes so far and the next free value.
struct Lowering<'a, 'e> {
    nodes: Vec<Node<'a>>,
    values: usize,
    errors: &'e mut Errors,
    blocks: &'a [BlockSyntax],
    /// The block instances being lowered, innermost last.
    scopes: Vec<Scope<'a>>,
    /// Every outermost block instance so far (see [`Program::instances`]).
    instances: Vec<String>,
}

impl<'a> Lowering<'a, '_> {
    /// The outermost block instance being lowered, if any.
    fn current_instance(&self) -> Option<usize> {
        (!self.scopes.is_empty()).then(|| self.instances.len().saturating_sub(1))
    }

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
                        Some(b) if b.conditional => format!("in `if {}` at {}", b.keyword, or_net(b.key)),
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
                (None, Some(b)) if b.conditional => {
                    format!("{} (if {}, position {position})", b.key, b.keyword)
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
                UnitSyntax::Layer(syntax) if self.block(syntax).is_some() => {
                    if segment.is_none() && self.has_params_in(&syntax.name) {
                        if let Some(b) = branch {
                            self.errors.push(
                                syntax.name.span(),
                                format!(
                                    "block `{}` has parameters, so inside {} it needs a label to name them \
                                     (PyTorch names a module by its attribute): write e.g. `downsample: {}`",
                                    syntax.name,
                                    b.what(),
                                    syntax.render()
                                ),
                            );
                        }
                    }
                    self.instance(syntax, &key, current)
                }
                UnitSyntax::Layer(syntax)
                    if ops::signature(&syntax.name.to_string()).is_none() && !self.blocks.is_empty() =>
                {
                    // Neither a layer nor a block: suggest from both.
                    let word = syntax.name.to_string();
                    let mut known: Vec<String> = ops::KEYWORDS.iter().map(|k| k.to_string()).collect();
                    known.extend(self.blocks.iter().map(|b| b.name.to_string()));
                    let blocks: Vec<String> = self.blocks.iter().map(|b| b.name.to_string()).collect();
                    self.errors.push(
                        syntax.name.span(),
                        format!(
                            "unknown layer or block `{word}`; the blocks are {} and the layers {}{}",
                            blocks.join(", "),
                            ops::KEYWORDS.join(", "),
                            did_you_mean(&word, &known)
                        ),
                    );
                    let output = self.value();
                    self.nodes.push(Node {
                        op: NodeOp::Layer(None),
                        inputs: vec![current],
                        output,
                        key,
                        instance: self.current_instance(),
                    });
                    output
                }
                UnitSyntax::Layer(syntax) => {
                    let syntax = self.substitute(syntax);
                    if segment.is_none() && ops::keyword_has_params(&syntax.name.to_string()) {
                        if let Some(b) = branch {
                            self.errors.push(
                                syntax.name.span(),
                                format!(
                                    "`{}` has parameters, so inside {} it needs a label to name \
                                     them (PyTorch names a module by its attribute): write e.g. `conv3: {}`",
                                    syntax.render(),
                                    b.what(),
                                    syntax.render()
                                ),
                            );
                        }
                    }
                    let layer = layer::resolve(syntax, self.errors);
                    let output = self.value();
                    self.nodes.push(Node {
                        op: NodeOp::Layer(layer),
                        inputs: vec![current],
                        output,
                        key,
                        instance: self.current_instance(),
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
                    if segment.is_none() && self.has_params(chain) {
                        if let Some(b) = branch {
                            self.errors.push(
                                bracket.span.join(),
                                format!(
                                    "this sequence has parameters, so inside {} it needs a label \
                                     to name them (PyTorch names a module by its attribute): write e.g. \
                                     `downsample: [ .. ]`",
                                    b.what()
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
                            conditional: false,
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
                        instance: self.current_instance(),
                    });
                    output
                }
                UnitSyntax::If {
                    flag,
                    then,
                    otherwise,
                } => match self.condition(flag) {
                    // Like a branch: no key level, the enclosing labels.
                    Some(chosen) => {
                        let chain = if chosen { then } else { otherwise };
                        let b = Branch {
                            keyword: flag,
                            key: &key,
                            index: 0,
                            conditional: true,
                        };
                        self.chain(chain, prefix, names, Some(b), current)
                    }
                    None => current,
                },
            };
        }
        current
    }

    /// The block a layer syntax calls, if its name is a block's.
    fn block(&self, syntax: &LayerSyntax) -> Option<&'a BlockSyntax> {
        let blocks: &'a [BlockSyntax] = self.blocks;
        blocks.iter().find(|b| b.name == syntax.name)
    }

    /// `syntax` with the innermost block instance's arguments substituted
    /// for its parameters (each keeps the span of the argument, so messages
    /// point at the call).
    fn substitute(&self, syntax: &'a LayerSyntax) -> Cow<'a, LayerSyntax> {
        let Some(scope) = self.scopes.last() else {
            return Cow::Borrowed(syntax);
        };
        let mut owned = syntax.clone();
        let mut changed = false;
        for arg in &mut owned.args {
            let (ArgSyntax::Positional(value) | ArgSyntax::Named { value, .. }) = arg;
            changed |= substitute_value(value, scope);
        }
        if changed {
            Cow::Owned(owned)
        } else {
            Cow::Borrowed(syntax)
        }
    }

    /// The value of an `if`'s parameter, or `None` after reporting why it
    /// has none.
    fn condition(&mut self, flag: &Ident) -> Option<bool> {
        let Some(scope) = self.scopes.last() else {
            self.errors.push(
                flag.span(),
                format!("`if {flag}` works only inside a block, on one of its `true`/`false` parameters"),
            );
            return None;
        };
        let name = flag.to_string();
        match scope.values.get(&name) {
            Some(ValueSyntax::Bool(b)) => Some(b.value),
            Some(other) => {
                let message = format!(
                    "`if {flag}` needs `true` or `false`, but `{flag}` is `{}` here",
                    other.render()
                );
                self.errors.push_spanned(other, message);
                None
            }
            None => {
                let names: Vec<String> = scope.block.params.iter().map(|p| p.name.to_string()).collect();
                let message = format!(
                    "block `{}` has no parameter `{flag}`{}",
                    scope.block.name,
                    did_you_mean(&name, &names)
                );
                self.errors.push(flag.span(), message);
                None
            }
        }
    }

    /// Lowers one use of a block: its arguments checked and bound, then its
    /// chain as a nested sequence under `key`.
    fn instance(&mut self, call: &'a LayerSyntax, key: &str, input: ValueId) -> ValueId {
        let Some(block) = self.block(call) else {
            return input;
        };
        let call = self.substitute(call);
        if let Some(outer) = self.scopes.iter().position(|s| std::ptr::eq(s.block, block)) {
            let path: Vec<String> = self.scopes[outer..]
                .iter()
                .map(|s| s.block.name.to_string())
                .collect();
            self.errors.push(
                call.name.span(),
                format!(
                    "block `{}` uses itself ({} -> {}): blocks cannot be recursive",
                    block.name,
                    path.join(" -> "),
                    block.name
                ),
            );
            return input;
        }
        let Some(values) = self.bind(block, &call) else {
            return input;
        };
        if self.scopes.is_empty() {
            self.instances.push(call.render());
        }
        self.scopes.push(Scope { block, values });
        let output = self.chain(&block.chain, key, &mut Names::default(), None, input);
        self.scopes.pop();
        output
    }

    /// The arguments of a block call by parameter name (defaults filled
    /// in), or `None` after reporting every problem.
    fn bind(&mut self, block: &BlockSyntax, call: &LayerSyntax) -> Option<HashMap<String, ValueSyntax>> {
        let before = self.errors.count();
        let names: Vec<String> = block.params.iter().map(|p| p.name.to_string()).collect();
        let params: Vec<String> = block
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{} = {}", p.name, d.render()),
                None => p.name.to_string(),
            })
            .collect();
        let signature = format!("{}({})", block.name, params.join(", "));
        let mut values: HashMap<String, ValueSyntax> = HashMap::new();
        let mut position = 0;
        for arg in &call.args {
            match arg {
                ArgSyntax::Positional(value) => {
                    match names.get(position) {
                        Some(name) => {
                            values.insert(name.clone(), value.clone());
                        }
                        None => self.errors.push_spanned(
                            value,
                            format!("too many arguments: block {signature} takes {}", names.len()),
                        ),
                    }
                    position += 1;
                }
                ArgSyntax::Named { name, value, .. } => {
                    let given = name.to_string();
                    if !names.contains(&given) {
                        let message = format!(
                            "block {signature} has no parameter `{given}`{}",
                            did_you_mean(&given, &names)
                        );
                        self.errors.push(name.span(), message);
                    } else if values.insert(given.clone(), value.clone()).is_some() {
                        self.errors.push(name.span(), format!("`{given}` is given twice"));
                    }
                }
            }
        }
        let missing: Vec<String> = block
            .params
            .iter()
            .filter(|p| p.default.is_none() && !values.contains_key(&p.name.to_string()))
            .map(|p| p.name.to_string())
            .collect();
        if !missing.is_empty() {
            let span = call.paren.as_ref().map_or(call.name.span(), |p| p.span.join());
            self.errors.push(
                span,
                format!("missing argument `{}` of block {signature}", missing.join("`, `")),
            );
        }
        for p in &block.params {
            let name = p.name.to_string();
            if let (Some(default), false) = (&p.default, values.contains_key(&name)) {
                values.insert(name, default.clone());
            }
        }
        (self.errors.count() == before).then_some(values)
    }

    /// Whether any layer in `chain` (at any depth, through block uses) has
    /// parameters.
    fn has_params(&self, chain: &ChainSyntax) -> bool {
        self.has_params_depth(chain, 0)
    }

    fn has_params_depth(&self, chain: &ChainSyntax, depth: usize) -> bool {
        // Recursive blocks are reported where they are used; stop here.
        if depth > 32 {
            return false;
        }
        chain.nodes.iter().any(|node| match &node.unit {
            UnitSyntax::Layer(layer) => match self.block(layer) {
                Some(block) => self.has_params_depth(&block.chain, depth + 1),
                None => ops::keyword_has_params(&layer.name.to_string()),
            },
            UnitSyntax::Seq { chain, .. } => self.has_params_depth(chain, depth),
            UnitSyntax::Join { branches, .. } => branches.iter().any(|b| self.has_params_depth(b, depth)),
            UnitSyntax::If { then, otherwise, .. } => {
                self.has_params_depth(then, depth) || self.has_params_depth(otherwise, depth)
            }
        })
    }

    /// Whether the block named `name` has parameters.
    fn has_params_in(&self, name: &Ident) -> bool {
        self.blocks
            .iter()
            .find(|b| b.name == *name)
            .is_some_and(|b| self.has_params_depth(&b.chain, 1))
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
        UnitSyntax::If { flag, .. } => flag.span(),
    }
}

/// The identifier a value is, if it is one: a block parameter's name.
fn ident_of(value: &ValueSyntax) -> Option<String> {
    let ValueSyntax::Other(tokens) = value else {
        return None;
    };
    let mut tokens = tokens.clone().into_iter();
    match (tokens.next(), tokens.next()) {
        (Some(proc_macro2::TokenTree::Ident(ident)), None) => Some(ident.to_string()),
        _ => None,
    }
}

/// `value` with the parameters of `scope` replaced by their arguments;
/// whether anything was replaced.
fn substitute_value(value: &mut ValueSyntax, scope: &Scope) -> bool {
    if let Some(name) = ident_of(value) {
        if let Some(arg) = scope.values.get(&name) {
            *value = arg.clone();
            return true;
        }
        return false;
    }
    match value {
        ValueSyntax::Pair { first, second, .. } => {
            let a = substitute_value(first, scope);
            let b = substitute_value(second, scope);
            a || b
        }
        _ => false,
    }
}

/// "did you mean" over `names`, as a `help:` line, or nothing.
fn did_you_mean(word: &str, names: &[String]) -> String {
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    symbol::nearest(word, &known).map_or_else(String::new, |near| format!("\nhelp: did you mean `{near}`?"))
}
