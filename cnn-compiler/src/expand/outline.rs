//! Identical block instances share code: the steps of a block instance
//! that computes exactly what another does (same block, same arguments,
//! same shapes) differ only in where their values, parameters and
//! statistics live. Those places become the arguments of one generated
//! function per distinct instance, so a net's generated code grows with its
//! distinct blocks, not with its depth.
//!
//! The comparison is on the generated tokens themselves, so no op has to
//! know about it: two instances share a function when their signatures
//! (the call with its arguments, and every node's shapes) are equal and
//! their code is the same token for token except for unsuffixed integer
//! literals (offsets into the arena, the parameters, the buffers or the
//! statistics) and the names of the activation and gradient buffers of
//! the training pass (`a3`, `g0`). Integers that differ become elements of
//! an offset array; buffer names become slice arguments, the same name
//! always the same argument. Shapes are equal by the signature, so every
//! integer in a type or `const` position is equal too and stays a literal.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::{format_ident, quote};
use std::collections::HashMap;

use super::lit;
use crate::lower::Program;
use crate::plan::NetPlan;

/// Which outermost block instance computes each value, and what each
/// instance is.
pub struct Instances {
    /// By value: the instance whose node writes it.
    of_value: Vec<Option<usize>>,
    /// By instance: the call (`Residual(64, strides = 2)`).
    calls: Vec<String>,
}

/// The instance a step belongs to, and what decides whether it computes
/// alike: the instance's call and the shapes of the step's node.
pub struct Tag {
    instance: usize,
    signature: String,
}

impl Instances {
    /// The instances of `program`, before the shape phase consumes it.
    pub fn of(program: &Program) -> Instances {
        let values = program.nodes.iter().map(|n| n.output.0 + 1).max().unwrap_or(0);
        let mut of_value = vec![None; values];
        for node in &program.nodes {
            of_value[node.output.0] = node.instance;
        }
        Instances {
            of_value,
            calls: program.instances.clone(),
        }
    }

    fn tag(&self, value: usize, shapes: String) -> Option<Tag> {
        let instance = self.of_value.get(value).copied().flatten()?;
        Some(Tag {
            instance,
            signature: format!("{} {shapes}", self.calls.get(instance)?),
        })
    }

    /// The tag of a step of layer `layer` of the plan.
    pub fn layer(&self, plan: &NetPlan, layer: usize) -> Option<Tag> {
        let l = &plan.layers[layer];
        self.tag(
            l.shaped.output_value.0,
            format!("{:?}->{:?}", l.shaped.input, l.shaped.output),
        )
    }

    /// The tag of a step of join `join` of the plan.
    pub fn join(&self, plan: &NetPlan, join: usize) -> Option<Tag> {
        let j = &plan.joins[join];
        self.tag(j.output_value.0, format!("{:?}->{:?}", j.input_shapes, j.output))
    }
}

/// The variables of a body that shared functions take, beside `&self`,
/// the offsets and the buffers.
pub struct Env {
    /// `n: usize, input: &[f32], ..` in the function's signature.
    pub params: TokenStream,
    /// `n, input, ..` at the call.
    pub args: TokenStream,
}

/// Collects the shared functions of one net.
#[derive(Default)]
pub struct Outliner {
    /// Every shared function so far, for the net's `impl`.
    pub fns: TokenStream,
    count: usize,
}

/// A token of a step's code, flattened.
#[derive(PartialEq)]
enum Leaf {
    /// An unsuffixed integer literal.
    Int(String),
    /// The name of an activation or gradient buffer.
    Buffer(String),
    /// Anything else, as text (groups open and close as their delimiters).
    Other(String),
}

fn is_buffer(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix('a').is_some_and(digits) || name == "g0" || name == "g1"
}

fn flatten(code: &TokenStream, out: &mut Vec<Leaf>) {
    for tree in code.clone() {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("<", ">"),
                };
                out.push(Leaf::Other(open.to_string()));
                flatten(&g.stream(), out);
                out.push(Leaf::Other(close.to_string()));
            }
            TokenTree::Literal(l) => {
                let text = l.to_string();
                if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                    out.push(Leaf::Int(text));
                } else {
                    out.push(Leaf::Other(text));
                }
            }
            TokenTree::Ident(i) => {
                let text = i.to_string();
                out.push(if is_buffer(&text) {
                    Leaf::Buffer(text)
                } else {
                    Leaf::Other(text)
                });
            }
            TokenTree::Punct(p) => out.push(Leaf::Other(format!("{}{:?}", p.as_char(), p.spacing()))),
        }
    }
}

/// `code` with the leaf at each flattened position given by `replace`
/// (numbered as [`flatten`] numbers them) replaced by its tokens.
fn rewrite(
    code: &TokenStream,
    at: &mut usize,
    replace: &dyn Fn(usize) -> Option<TokenStream>,
) -> TokenStream {
    let mut out = TokenStream::new();
    for tree in code.clone() {
        match tree {
            TokenTree::Group(g) => {
                *at += 1; // the opening delimiter
                let inner = rewrite(&g.stream(), at, replace);
                *at += 1; // the closing one
                let mut group = Group::new(g.delimiter(), inner);
                group.set_span(g.span());
                out.extend([TokenTree::Group(group)]);
            }
            other => {
                match replace(*at) {
                    Some(tokens) => out.extend(tokens),
                    None => out.extend([other]),
                }
                *at += 1;
            }
        }
    }
    out
}

/// A run of consecutive steps of one instance.
struct Segment {
    instance: Option<usize>,
    /// The call and the shapes of every step.
    signature: String,
    code: TokenStream,
}

impl Outliner {
    /// The body of `steps` (each with its instance), with every group of
    /// alike instances' steps replaced by calls of one shared function
    /// (added to [`Outliner::fns`]) that sees the body's variables through
    /// `env`.
    pub fn outline(&mut self, steps: Vec<(Option<Tag>, TokenStream)>, env: &Env) -> TokenStream {
        let mut segments: Vec<Segment> = Vec::new();
        for (tag, code) in steps {
            let instance = tag.as_ref().map(|t| t.instance);
            match (segments.last_mut(), tag) {
                (Some(last), Some(tag)) if last.instance == instance => {
                    last.signature.push_str(" ; ");
                    last.signature.push_str(&tag.signature);
                    last.code.extend(code);
                }
                (_, tag) => segments.push(Segment {
                    instance,
                    signature: tag.map(|t| t.signature).unwrap_or_default(),
                    code,
                }),
            }
        }

        // Alike segments: same signature, same code but for integers and
        // buffer names, and the same buffer names in the same places.
        let mut leaves: Vec<Vec<Leaf>> = Vec::with_capacity(segments.len());
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for (s, segment) in segments.iter().enumerate() {
            let mut flat = Vec::new();
            flatten(&segment.code, &mut flat);
            if segment.instance.is_some() {
                let mut key = segment.signature.clone();
                let mut names: Vec<&str> = Vec::new();
                for leaf in &flat {
                    key.push(' ');
                    match leaf {
                        Leaf::Int(_) => key.push('#'),
                        Leaf::Buffer(name) => {
                            let k = names.iter().position(|n| n == name).unwrap_or_else(|| {
                                names.push(name);
                                names.len() - 1
                            });
                            key.push_str(&format!("@{k}"));
                        }
                        Leaf::Other(text) => key.push_str(text),
                    }
                }
                if !groups.contains_key(&key) {
                    order.push(key.clone());
                }
                groups.entry(key).or_default().push(s);
            }
            leaves.push(flat);
        }

        let mut calls: HashMap<usize, TokenStream> = HashMap::new();
        for key in &order {
            let members = &groups[key];
            if members.len() < 2 {
                continue;
            }
            let first = &leaves[members[0]];
            // The integers that differ between members become offsets.
            let mut offset_of: HashMap<usize, usize> = HashMap::new();
            let mut buffer_of: HashMap<usize, usize> = HashMap::new();
            let mut names: Vec<&str> = Vec::new();
            for (at, leaf) in first.iter().enumerate() {
                match leaf {
                    Leaf::Int(_) => {
                        if members.iter().any(|&m| leaves[m][at] != *leaf) {
                            offset_of.insert(at, offset_of.len());
                        }
                    }
                    Leaf::Buffer(name) => {
                        let k = names.iter().position(|n| n == name).unwrap_or_else(|| {
                            names.push(name);
                            names.len() - 1
                        });
                        buffer_of.insert(at, k);
                    }
                    Leaf::Other(_) => {}
                }
            }
            let template = rewrite(&segments[members[0]].code, &mut 0, &|at| {
                if let Some(k) = offset_of.get(&at) {
                    let k = lit(*k);
                    Some(quote!(o[#k]))
                } else {
                    buffer_of.get(&at).map(|k| {
                        let b = format_ident!("__b{}", k);
                        quote!(#b)
                    })
                }
            });
            let name = format_ident!("__shared{}", self.count);
            self.count += 1;
            let (offsets, buffers) = (lit(offset_of.len()), lit(names.len()));
            let bound = (0..names.len()).map(|k| format_ident!("__b{}", k));
            let Env { params, args } = env;
            let doc = format!(
                "Steps of every `{}` alike; `o` holds where each one's values, parameters and \
                 statistics live.",
                segments[members[0]]
                    .signature
                    .split(' ')
                    .next()
                    .unwrap_or_default()
            );
            self.fns.extend(quote! {
                #[doc = #doc]
                #[allow(unused_variables, unused_mut, clippy::too_many_arguments, clippy::identity_op)]
                #[inline(never)]
                fn #name<const GEMM: bool>(&self, o: &[usize; #offsets], buffers: [&mut [f32]; #buffers], #params) {
                    let [#(#bound),*] = buffers;
                    #template
                }
            });
            for &m in members {
                // Positions are the same in every member; only the values differ.
                let mut values = vec![String::new(); offset_of.len()];
                let mut member_names: Vec<String> = vec![String::new(); names.len()];
                for (at, leaf) in leaves[m].iter().enumerate() {
                    match leaf {
                        Leaf::Int(v) => {
                            if let Some(&k) = offset_of.get(&at) {
                                values[k] = v.clone();
                            }
                        }
                        Leaf::Buffer(name) => {
                            if let Some(&k) = buffer_of.get(&at) {
                                member_names[k] = name.clone();
                            }
                        }
                        Leaf::Other(_) => {}
                    }
                }
                // Digits only: they parse.
                let values = values
                    .iter()
                    .map(|v| v.parse::<TokenStream>().unwrap_or_default());
                let bufs = member_names.iter().map(|b| format_ident!("{}", b));
                calls.insert(
                    m,
                    quote!(self.#name::<GEMM>(&[#(#values),*], [#(&mut *#bufs),*], #args);),
                );
            }
        }

        let mut body = TokenStream::new();
        for (s, segment) in segments.into_iter().enumerate() {
            match calls.remove(&s) {
                Some(call) => body.extend(call),
                None => body.extend(segment.code),
            }
        }
        body
    }
}
