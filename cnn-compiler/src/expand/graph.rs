//! Codegen of a program with joins: prints the [`GraphPlan`] steps. Values
//! live in regions of one arena (`scratch` at inference, `gr` for the
//! gradients); each step borrows the two regions it touches.

use super::outline::{Env, Instances, Outliner, Tag};
use super::{buffer_ident, grads_split, lit, packed_step, unless_folded, Packing};
use crate::ops::{BackwardIo, Effect, ForwardIo};
use crate::plan::graph::{BackOp, GradDst, GraphPlan, InferOp, Loc, Region, TrainOp};
use crate::plan::NetPlan;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `n * offset .. n * (offset + len)` of an arena.
pub fn range(r: Region) -> TokenStream {
    let (a, b) = (lit(r.offset), lit(r.offset.saturating_add(r.len)));
    quote!(n * #a..n * #b)
}

/// `let x: &[T] = ..; let y: &mut [T] = ..;` from `arena`, reading `x`
/// and writing `y`, with `T` the element type `ty`.
pub fn bind_xy(arena: &TokenStream, x: Loc, y: Region, ty: &TokenStream) -> TokenStream {
    let p = quote!(::cnn_runtime::__private);
    let yr = range(y);
    match x {
        Loc::Input => quote!(let x: &[#ty] = input; let y: &mut [#ty] = &mut #arena[#yr];),
        Loc::Scratch(x) => {
            let xr = range(x);
            quote!(let (x, y) = #p::arena_pair(#arena, #xr, #yr); let x: &[#ty] = x;)
        }
    }
}

/// The region of a location that is written (never the caller's input).
pub fn written(loc: Loc) -> Region {
    match loc {
        Loc::Scratch(r) => r,
        // The planner never writes the caller's input.
        Loc::Input => Region { offset: 0, len: 0 },
    }
}

/// The inference steps, each with its block instance: every step of the
/// plan, then the output copied out. After each layer's step its output
/// goes to the trace; views, which print no step, are traced in program
/// order from where their input lives; a join's output is traced after its
/// last part, as `LAYERS.len() + j` for the `j`-th join.
pub fn forward_steps(
    plan: &NetPlan,
    g: &GraphPlan,
    instances: &Instances,
    packing: &mut Packing,
) -> Vec<(Option<Tag>, TokenStream)> {
    let scratch = quote!(scratch);
    let f32_type = quote!(f32);
    let values_at = |loc: Loc| match loc {
        Loc::Input => quote!(input),
        Loc::Scratch(r) => {
            let r = range(r);
            quote!(&scratch[#r])
        }
    };
    // Where each value lives once written (value 0 is the net's input).
    let values = plan
        .layers
        .iter()
        .map(|l| l.shaped.output_value.0)
        .chain(plan.joins.iter().map(|j| j.output_value.0))
        .max()
        .unwrap_or(0);
    let mut loc_of = vec![Loc::Input; values + 1];
    // Program order: the lowering numbers each node's output value as it
    // appends the node, so a lower output value is an earlier node.
    let position = |op: &InferOp| match *op {
        InferOp::Compute { layer, .. } | InferOp::InPlace { layer, .. } => {
            Some(plan.layers[layer].shaped.output_value.0)
        }
        InferOp::Join { join, .. } => Some(plan.joins[join].output_value.0),
        InferOp::Copy { .. } => None,
        InferOp::Output { .. } => Some(usize::MAX),
    };
    // Traces the views before program position `before`, from `traced` on.
    let trace_views = |before: usize,
                       traced: &mut usize,
                       loc_of: &mut Vec<Loc>,
                       steps: &mut Vec<(Option<Tag>, TokenStream)>| {
        while let Some(l) = plan.layers.get(*traced) {
            if l.shaped.output_value.0 >= before {
                break;
            }
            debug_assert!(
                matches!(l.effect(), Effect::View | Effect::TrainCopy),
                "only views print no inference step"
            );
            let loc = loc_of[l.shaped.inputs[0].0];
            loc_of[l.shaped.output_value.0] = loc;
            let visit = super::trace_visit(*traced, values_at(loc));
            steps.push((instances.layer(plan, *traced), visit));
            *traced += 1;
        }
    };
    // Each join's last part: after it, the join's output is traced.
    let mut last_part = vec![usize::MAX; plan.joins.len()];
    for (i, op) in g.infer.iter().enumerate() {
        if let InferOp::Join { join, .. } = *op {
            last_part[join] = i;
        }
    }
    let mut traced = 0;
    let mut steps = Vec::new();
    // The batch norm (and activation) the conv before it takes in
    // (`fold_batchnorm`).
    let mut folded = Vec::new();
    for (i, op) in g.infer.iter().enumerate() {
        // A copy belongs to the in-place layer after it.
        let before = g.infer[i..].iter().find_map(position).unwrap_or(usize::MAX);
        trace_views(before, &mut traced, &mut loc_of, &mut steps);
        let instance = match *op {
            InferOp::Compute { layer, .. } | InferOp::InPlace { layer, .. } => instances.layer(plan, layer),
            InferOp::Join { join, .. } => instances.join(plan, join),
            InferOp::Copy { .. } | InferOp::Output { .. } => None,
        };
        steps.push((
            instance,
            match *op {
                InferOp::Compute { layer, x, y } => {
                    let l = &plan.layers[layer];
                    let bind = bind_xy(&scratch, x, written(y), &f32_type);
                    let mut call = l.kind().forward(
                        l,
                        &ForwardIo {
                            target: TokenStream::new(),
                            train: false,
                        },
                    );
                    // The layers after it in place on its output.
                    let [next, act] = [1, 2].map(|k| match g.infer.get(i + k) {
                        Some(&InferOp::InPlace { layer, at }) if at == y => Some(layer),
                        _ => None,
                    });
                    let taken;
                    (call, taken) = packed_step(plan, layer, next, act, call, packing);
                    folded = taken.unwrap_or(folded);
                    loc_of[l.shaped.output_value.0] = y;
                    traced = layer + 1;
                    let visit = super::trace_visit(layer, values_at(y));
                    quote!({ #bind #call } #visit)
                }
                InferOp::Copy { x, y } => {
                    let bind = bind_xy(&scratch, x, written(y), &f32_type);
                    quote!({ #bind y.copy_from_slice(x); })
                }
                InferOp::InPlace { layer, at } => {
                    let l = &plan.layers[layer];
                    let r = range(written(at));
                    let mut call = l.kind().forward(
                        l,
                        &ForwardIo {
                            target: quote!(&mut scratch[#r]),
                            train: false,
                        },
                    );
                    if folded.contains(&layer) {
                        call = unless_folded(call);
                    }
                    loc_of[l.shaped.output_value.0] = at;
                    traced = layer + 1;
                    let visit = super::trace_visit(layer, values_at(at));
                    quote!(#call #visit)
                }
                InferOp::Join { join, k, x, y, first } => {
                    let j = &plan.joins[join];
                    let bind = bind_xy(&scratch, x, written(y), &f32_type);
                    let part = j.kind.forward_part(&j.input_shapes, j.output, k, first);
                    loc_of[j.output_value.0] = y;
                    // After its last part, the join's output goes to the
                    // trace, numbered after the layers.
                    let visit = if last_part[join] == i {
                        super::trace_visit(plan.layers.len() + join, values_at(y))
                    } else {
                        TokenStream::new()
                    };
                    quote!({ #bind #part } #visit)
                }
                InferOp::Output { x } => {
                    let x = values_at(x);
                    quote!(output.copy_from_slice(#x);)
                }
            },
        ));
    }
    trace_views(usize::MAX, &mut traced, &mut loc_of, &mut steps);
    steps
}

/// The training body: the forward pass keeping every buffer the backward
/// pass reads, the loss, then the backward pass over the gradient arena.
pub fn train_body(
    plan: &NetPlan,
    g: &GraphPlan,
    instances: &Instances,
    outliner: &mut Outliner,
    env: &Env,
) -> TokenStream {
    let mut body = TokenStream::new();
    for (k, len) in g.acts.iter().enumerate() {
        let ident = format_ident!("a{}", k);
        let len = lit(*len);
        body.extend(quote!(let (#ident, rest) = rest.split_at_mut(n * #len);));
    }
    let grad_len = lit(g.grad_len);
    body.extend(quote!(let (gr, _) = rest.split_at_mut(n * #grad_len);));

    let mut steps = Vec::new();
    for op in &g.train {
        let instance = match *op {
            TrainOp::Layer { layer, .. } => instances.layer(plan, layer),
            TrainOp::Join { join, .. } => instances.join(plan, join),
        };
        steps.push((
            instance,
            match *op {
                TrainOp::Layer { layer, x, y, copy } => {
                    let l = &plan.layers[layer];
                    let (x, y) = (buffer_ident(x), buffer_ident(y));
                    let copied = if copy {
                        quote!(#y.copy_from_slice(&*#x);)
                    } else {
                        TokenStream::new()
                    };
                    match l.effect() {
                        Effect::Compute | Effect::Normalize => {
                            let call = l.kind().forward(
                                l,
                                &ForwardIo {
                                    target: TokenStream::new(),
                                    train: true,
                                },
                            );
                            quote!({ let x: &[f32] = &*#x; let y: &mut [f32] = &mut *#y; #call })
                        }
                        Effect::InPlace | Effect::TrainCopy => {
                            let call = l.kind().forward(
                                l,
                                &ForwardIo {
                                    target: quote!(&mut *#y),
                                    train: true,
                                },
                            );
                            quote!(#copied #call)
                        }
                        Effect::View => TokenStream::new(),
                    }
                }
                TrainOp::Join { join, k, x, y, first } => {
                    let j = &plan.joins[join];
                    let (x, y) = (buffer_ident(x), buffer_ident(y));
                    let part = j.kind.forward_part(&j.input_shapes, j.output, k, first);
                    quote!({ let x: &[f32] = &*#x; let y: &mut [f32] = &mut *#y; #part })
                }
            },
        ));
    }
    body.extend(outliner.outline(steps, env));

    let out = buffer_ident(g.train_output);
    let dy = range(g.output_grad);
    let scale = super::scale_for_shares(plan, quote!(gr[#dy]));
    let loss = super::loss_and_dy(plan, &out, quote!(dy));
    body.extend(quote! {
        let loss = {
            let dy: &mut [f32] = &mut gr[#dy];
            #loss
        };
        #scale
    });

    let mut steps = Vec::new();
    for op in &g.backward {
        let instance = match *op {
            BackOp::Layer { layer, .. } => instances.layer(plan, layer),
            BackOp::Join { join, .. } => instances.join(plan, join),
        };
        steps.push((
            instance,
            match *op {
                BackOp::Layer { layer, x, y, dy, dx } => backward_layer(plan, layer, x, y, dy, dx),
                BackOp::Join { join, k, dy, dx } => match dx {
                    None => TokenStream::new(),
                    Some((dx, first)) => {
                        let j = &plan.joins[join];
                        let bind = bind_xy(&quote!(gr), Loc::Scratch(dy), dx, &quote!(f32));
                        let part = j.kind.backward_part(&j.input_shapes, j.output, k, first);
                        quote!({ #bind let (dy, dx) = (x, y); #part })
                    }
                },
            },
        ));
    }
    body.extend(outliner.outline(steps, env));
    body.extend(quote!(let _ = &gr; loss));
    body
}

/// One layer's backward step and where its input gradient goes.
fn backward_layer(
    plan: &NetPlan,
    layer: usize,
    x: crate::plan::Buffer,
    y: crate::plan::Buffer,
    dy: Region,
    dx: GradDst,
) -> TokenStream {
    let p = quote!(::cnn_runtime::__private);
    let l = &plan.layers[layer];
    let in_len = lit(l.in_len());
    let dy_range = range(dy);
    // The kernel's own output for `dx`, when it writes one.
    let (bind, dx_arg) = match dx {
        GradDst::Write(r) | GradDst::Add { temp: r, .. } => {
            let r = range(r);
            (
                quote!(let (dy, dx) = #p::arena_pair(gr, #dy_range, #r);),
                quote!(#p::core::option::Option::Some(&mut dx[..n * #in_len])),
            )
        }
        GradDst::None | GradDst::Alias | GradDst::Pass { .. } => (
            quote!(let dy: &mut [f32] = &mut gr[#dy_range]; let dx: &mut [f32] = &mut [];),
            quote!(#p::core::option::Option::None),
        ),
    };
    let step = l.kind().backward(
        l,
        &BackwardIo {
            x: buffer_ident(x),
            y: buffer_ident(y),
            dy_buffer: quote!(dy),
            dx_buffer: quote!(dx),
            dx: dx_arg,
            grads_split: grads_split(l),
        },
    );
    let then = match dx {
        GradDst::Add { temp, into } => {
            let bind = bind_xy(&quote!(gr), Loc::Scratch(temp), into, &quote!(f32));
            quote!({ #bind #p::ops::add::accumulate(x, y); })
        }
        GradDst::Pass { into } => {
            let from = Region {
                offset: dy.offset,
                len: into.len,
            };
            let bind = bind_xy(&quote!(gr), Loc::Scratch(from), into, &quote!(f32));
            quote!({ #bind #p::ops::add::accumulate(x, y); })
        }
        GradDst::None | GradDst::Write(_) | GradDst::Alias => TokenStream::new(),
    };
    quote!({ #bind let _ = (&dy, &dx); #step } #then)
}
