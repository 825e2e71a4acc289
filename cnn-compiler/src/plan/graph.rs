//! The memory plan of a program that is not a path (it has `add` or `cat`):
//! every value gets a region of an arena, placed by liveness, so the
//! scratch constants stay exact.
//!
//! Inference: a value lives from the step that writes it to the last step
//! that reads it. Element-wise layers and `add` update a value in place when
//! they are its only reader; views (`flatten`, `identity`, and dropout at
//! inference) share their input's region.
//!
//! Training keeps every value the backward pass reads, as the path plan does
//! (in-place updates only where no backward pass needs the old contents).
//! Gradients live in a second arena, by liveness over the backward pass: a
//! value's gradient is born when its last reader (first in backward order)
//! writes it, the other readers add to it (through a temporary when their
//! kernel overwrites), and it dies once its producer has read it.

use super::arena::{self, Request};
use super::{Buffer, LayerPlan, Step};
use crate::lower::ValueId;
use crate::ops::Effect;
use crate::shape::ShapedJoin;

/// A region of an arena: `len` elements per example at `offset` (the batch
/// of `n` examples occupies `n * offset .. n * (offset + len)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub offset: usize,
    pub len: usize,
}

/// Where an inference value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// The caller's input.
    Input,
    /// A region of the scratch arena.
    Scratch(Region),
}

/// One step of the inference program.
#[derive(Clone, Copy, Debug)]
pub enum InferOp {
    /// Layer `layer` reads `x` and writes `y`.
    Compute { layer: usize, x: Loc, y: Loc },
    /// Copies `x` into `y` (before an in-place layer that may not write `x`).
    Copy { x: Loc, y: Loc },
    /// Layer `layer` runs in place on `at`.
    InPlace { layer: usize, at: Loc },
    /// Input `k` of join `join` (`x`) into its output `y`; `first` when it
    /// is the first part written.
    Join {
        join: usize,
        k: usize,
        x: Loc,
        y: Loc,
        first: bool,
    },
    /// The net's output value, copied to the caller's output.
    Output { x: Loc },
}

/// One step of the training forward pass (buffers as in the path plan).
#[derive(Clone, Copy, Debug)]
pub enum TrainOp {
    /// Layer `layer` reads `x` and writes `y` (a new buffer that starts as
    /// a copy of `x` when `copy`).
    Layer {
        layer: usize,
        x: Buffer,
        y: Buffer,
        copy: bool,
    },
    /// Input `k` of join `join` into its output.
    Join {
        join: usize,
        k: usize,
        x: Buffer,
        y: Buffer,
        first: bool,
    },
}

/// Where a backward step puts the gradient of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradDst {
    /// The input needs no gradient.
    None,
    /// The kernel writes it into the input's gradient, born here.
    Write(Region),
    /// The kernel writes it into `temp`, which is then added to the
    /// input's gradient `into`.
    Add { temp: Region, into: Region },
    /// The input's gradient is the output's gradient region, taken over
    /// (element-wise and view layers, after transforming it in place).
    Alias,
    /// Added from the output's gradient into `into` (element-wise and view
    /// layers whose input already has a gradient).
    Pass { into: Region },
}

/// One step of the backward pass.
#[derive(Clone, Copy, Debug)]
pub enum BackOp {
    /// Layer `layer`'s backward: `dy` is its output's gradient.
    Layer {
        layer: usize,
        x: Buffer,
        y: Buffer,
        dy: Region,
        dx: GradDst,
    },
    /// Input `k` of join `join`: its part of `dy` copied (`first`) or added
    /// into `dx`; `None` when `dx` took over `dy`'s region.
    Join {
        join: usize,
        k: usize,
        dy: Region,
        dx: Option<(Region, bool)>,
    },
}

/// The plan of a graph program.
pub struct GraphPlan {
    pub infer: Vec<InferOp>,
    pub infer_scratch: usize,
    /// Inference scratch elements alive at each node (the arena may be
    /// larger than the largest of these when regions cannot pack tighter).
    pub infer_live: Vec<usize>,
    pub train: Vec<TrainOp>,
    pub acts: Vec<usize>,
    pub train_output: Buffer,
    /// The net output's gradient, where the loss writes it.
    pub output_grad: Region,
    pub backward: Vec<BackOp>,
    /// Elements per example of the gradient arena.
    pub grad_len: usize,
}

/// What a node is to the planner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Layer(Effect),
    /// A join; `true` if its output may reuse an input's buffer.
    Join(bool),
}

/// The program seen as nodes over values.
struct Graph<'p> {
    steps: &'p [Step],
    kinds: Vec<Kind>,
    inputs: Vec<Vec<ValueId>>,
    outputs: Vec<ValueId>,
    /// Elements per example of each value.
    lens: Vec<usize>,
    /// The node writing each value (`None`: the net input).
    producer: Vec<Option<usize>>,
    /// The nodes reading each value, once per edge, in program order.
    readers: Vec<Vec<usize>>,
    output: ValueId,
}

impl Graph<'_> {
    /// Whether node `i` is a view in this mode (dropout is one at inference).
    fn is_view(&self, i: usize, inference: bool) -> bool {
        match self.kinds[i] {
            Kind::Layer(Effect::View) => true,
            Kind::Layer(Effect::TrainCopy) => inference,
            _ => false,
        }
    }

    /// Reads of `v`, looking through views (a view's reads count as reads
    /// of its input), plus one if it is the net output.
    fn uses(&self, v: ValueId, inference: bool) -> usize {
        let mut count = usize::from(v == self.output);
        for &r in &self.readers[v.0] {
            count += if self.is_view(r, inference) {
                self.uses(self.outputs[r], inference)
            } else {
                1
            };
        }
        count
    }

    /// Whether node `i` may overwrite the buffer holding `v`: `v` and every
    /// value it is a view of have `i` as their only reader.
    fn sole_reader(&self, v: ValueId, inference: bool) -> bool {
        let mut v = v;
        loop {
            if self.uses(v, inference) != 1 {
                return false;
            }
            match self.producer[v.0] {
                Some(p) if self.is_view(p, inference) => v = self.inputs[p][0],
                _ => return true,
            }
        }
    }

    /// Whether `v` appears once among node `i`'s inputs.
    fn once_in(&self, i: usize, v: ValueId) -> bool {
        self.inputs[i].iter().filter(|&&u| u == v).count() == 1
    }
}

/// Plans a graph program.
pub fn plan(
    steps: &[Step],
    layers: &[LayerPlan],
    joins: &[ShapedJoin],
    values: usize,
    output: ValueId,
) -> GraphPlan {
    let mut kinds = Vec::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut lens = vec![0usize; values];
    lens[0] = match steps.first() {
        Some(Step::Layer(l)) => layers[*l].in_len(),
        Some(Step::Join(j)) => joins[*j].input_shapes[0].len(),
        None => 0,
    };
    for step in steps {
        let (kind, ins, out, len) = match *step {
            Step::Layer(l) => {
                let l = &layers[l];
                (
                    Kind::Layer(l.effect()),
                    l.shaped.inputs.clone(),
                    l.shaped.output_value,
                    l.out_len(),
                )
            }
            Step::Join(j) => {
                let j = &joins[j];
                (
                    Kind::Join(j.kind.in_place()),
                    j.inputs.clone(),
                    j.output_value,
                    j.output.len(),
                )
            }
        };
        kinds.push(kind);
        inputs.push(ins);
        outputs.push(out);
        lens[out.0] = len;
    }
    let mut producer = vec![None; values];
    let mut readers = vec![Vec::new(); values];
    for (i, ins) in inputs.iter().enumerate() {
        producer[outputs[i].0] = Some(i);
        for v in ins {
            readers[v.0].push(i);
        }
    }
    let graph = Graph {
        steps,
        kinds,
        inputs,
        outputs,
        lens,
        producer,
        readers,
        output,
    };
    let (infer, infer_scratch, infer_live) = plan_inference(&graph);
    let (train, acts, train_output) = plan_training(&graph);
    let params: Vec<bool> = steps
        .iter()
        .map(|s| match *s {
            Step::Layer(l) => layers[l].params() > 0,
            Step::Join(_) => false,
        })
        .collect();
    let (backward, output_grad, grad_len) = plan_backward(&graph, &params, &train);
    GraphPlan {
        infer,
        infer_scratch,
        infer_live,
        train,
        acts,
        train_output,
        output_grad,
        backward,
        grad_len,
    }
}

/// Physical buffers of an arena being planned: length and lifetime.
#[derive(Default)]
struct Buffers {
    requests: Vec<Request>,
}

impl Buffers {
    fn open(&mut self, len: usize, step: usize) -> usize {
        self.requests.push(Request {
            len,
            first: step,
            last: step,
        });
        self.requests.len() - 1
    }
    fn touch(&mut self, id: usize, step: usize) {
        let r = &mut self.requests[id];
        r.last = r.last.max(step);
    }
}

/// The inference program over a liveness-placed scratch arena.
fn plan_inference(g: &Graph) -> (Vec<InferOp>, usize, Vec<usize>) {
    // Physical buffer of each value (`None`: the caller's input).
    let mut buffer_of: Vec<Option<usize>> = vec![None; g.lens.len()];
    let mut buffers = Buffers::default();
    // Ops with buffer ids, resolved to regions once placed.
    enum Pending {
        Compute(usize, Option<usize>, usize),
        Copy(Option<usize>, usize, usize),
        InPlace(usize, usize),
        Join(usize, usize, Option<usize>, usize, bool),
        Output(Option<usize>),
    }
    let mut pending = Vec::new();
    for (i, step) in g.steps.iter().enumerate() {
        let ins = &g.inputs[i];
        for v in ins {
            if let Some(b) = buffer_of[v.0] {
                buffers.touch(b, i);
            }
        }
        let x = buffer_of[ins[0].0];
        let out = g.outputs[i];
        let may_update = |v: ValueId| buffer_of[v.0].is_some() && g.sole_reader(v, true) && g.once_in(i, v);
        let y = match (g.kinds[i], *step) {
            (Kind::Layer(_), _) if g.is_view(i, true) => x,
            (Kind::Layer(Effect::Compute), Step::Layer(l)) => {
                let y = buffers.open(g.lens[out.0], i);
                pending.push(Pending::Compute(l, x, y));
                Some(y)
            }
            (Kind::Layer(_), Step::Layer(l)) => {
                // Element-wise, in place; on a copy when it may not write x.
                let y = if may_update(ins[0]) {
                    x.unwrap_or_default()
                } else {
                    let y = buffers.open(g.lens[out.0], i);
                    pending.push(Pending::Copy(x, y, g.lens[out.0]));
                    y
                };
                pending.push(Pending::InPlace(l, y));
                Some(y)
            }
            (Kind::Join(in_place), Step::Join(j)) => {
                let reuse = if in_place {
                    ins.iter().position(|&v| may_update(v))
                } else {
                    None
                };
                let y = match reuse {
                    Some(k) => buffer_of[ins[k].0].unwrap_or_default(),
                    None => buffers.open(g.lens[out.0], i),
                };
                let mut first = reuse.is_none();
                for (k, v) in ins.iter().enumerate() {
                    if Some(k) == reuse {
                        continue;
                    }
                    pending.push(Pending::Join(j, k, buffer_of[v.0], y, first));
                    first = false;
                }
                Some(y)
            }
            (Kind::Layer(_), Step::Join(_)) | (Kind::Join(_), Step::Layer(_)) => {
                unreachable!("kinds are built from the steps")
            }
        };
        if let Some(y) = y {
            buffers.touch(y, i);
        }
        buffer_of[out.0] = y;
    }
    let end = g.steps.len();
    let out = buffer_of[g.output.0];
    if let Some(b) = out {
        buffers.touch(b, end);
    }
    pending.push(Pending::Output(out));

    let (offsets, size) = arena::place(&buffers.requests);
    let live = (0..g.steps.len())
        .map(|i| {
            buffers
                .requests
                .iter()
                .filter(|r| r.first <= i && i <= r.last)
                .fold(0usize, |a, r| a.saturating_add(r.len))
        })
        .collect();
    let loc = |b: Option<usize>| match b {
        Some(b) => Loc::Scratch(Region {
            offset: offsets[b],
            len: buffers.requests[b].len,
        }),
        None => Loc::Input,
    };
    let region = |b: usize, len: usize| {
        Loc::Scratch(Region {
            offset: offsets[b],
            len,
        })
    };
    let ops = pending
        .into_iter()
        .map(|p| match p {
            Pending::Compute(layer, x, y) => InferOp::Compute {
                layer,
                x: loc(x),
                y: loc(Some(y)),
            },
            Pending::Copy(x, y, len) => InferOp::Copy {
                x: loc(x),
                y: region(y, len),
            },
            Pending::InPlace(layer, at) => InferOp::InPlace {
                layer,
                at: loc(Some(at)),
            },
            Pending::Join(join, k, x, y, first) => InferOp::Join {
                join,
                k,
                x: loc(x),
                y: loc(Some(y)),
                first,
            },
            Pending::Output(x) => InferOp::Output { x: loc(x) },
        })
        .collect();
    (ops, size, live)
}

/// The training forward pass: stored buffers for every value the backward
/// pass reads.
fn plan_training(g: &Graph) -> (Vec<TrainOp>, Vec<usize>, Buffer) {
    let mut ops = Vec::new();
    let mut acts: Vec<usize> = Vec::new();
    // Where each value lives, and whether that buffer holds an activation's
    // output, which that activation's backward reads.
    let mut buffer_of = vec![(Buffer::Input, false); g.lens.len()];
    let mut new_act = |len: usize| {
        acts.push(len);
        Buffer::Act(acts.len() - 1)
    };
    for (i, step) in g.steps.iter().enumerate() {
        let ins = &g.inputs[i];
        let out = g.outputs[i];
        let (x, x_activated) = buffer_of[ins[0].0];
        let may_update = |v: ValueId| {
            let (b, activated) = buffer_of[v.0];
            b != Buffer::Input && !activated && g.sole_reader(v, false) && g.once_in(i, v)
        };
        let stored = match (g.kinds[i], *step) {
            (Kind::Layer(effect), Step::Layer(layer)) => {
                let (y, copy, activated) = match effect {
                    Effect::Compute | Effect::Normalize => (new_act(g.lens[out.0]), false, false),
                    Effect::InPlace if may_update(ins[0]) => (x, false, true),
                    Effect::InPlace => (new_act(g.lens[out.0]), true, true),
                    Effect::TrainCopy => (new_act(g.lens[out.0]), true, false),
                    Effect::View => (x, false, x_activated),
                };
                ops.push(TrainOp::Layer { layer, x, y, copy });
                (y, activated)
            }
            (Kind::Join(in_place), Step::Join(join)) => {
                let reuse = if in_place {
                    ins.iter().position(|&v| may_update(v))
                } else {
                    None
                };
                let y = match reuse {
                    Some(k) => buffer_of[ins[k].0].0,
                    None => new_act(g.lens[out.0]),
                };
                let mut first = reuse.is_none();
                for (k, v) in ins.iter().enumerate() {
                    if Some(k) != reuse {
                        ops.push(TrainOp::Join {
                            join,
                            k,
                            x: buffer_of[v.0].0,
                            y,
                            first,
                        });
                        first = false;
                    }
                }
                (y, false)
            }
            (Kind::Layer(_), Step::Join(_)) | (Kind::Join(_), Step::Layer(_)) => {
                unreachable!("kinds are built from the steps")
            }
        };
        buffer_of[out.0] = stored;
    }
    let output = buffer_of[g.output.0].0;
    (ops, acts, output)
}

/// The backward pass over a liveness-placed gradient arena. `params[i]`:
/// node `i` has parameters. Returns the steps, the output gradient's region
/// and the arena length.
fn plan_backward(g: &Graph, params: &[bool], train: &[TrainOp]) -> (Vec<BackOp>, Region, usize) {
    // Whether the loss depends on a parameter through each value.
    let mut needs = vec![false; g.lens.len()];
    for (i, ins) in g.inputs.iter().enumerate() {
        needs[g.outputs[i].0] = params[i] || ins.iter().any(|v| needs[v.0]);
    }
    // The stored buffers of each layer, from the forward plan.
    let mut layer_io = std::collections::HashMap::new();
    for op in train {
        if let TrainOp::Layer { layer, x, y, .. } = *op {
            layer_io.insert(layer, (x, y));
        }
    }

    let mut buffers = Buffers::default();
    // The physical gradient buffer of each value, once born.
    let mut grad_of: Vec<Option<usize>> = vec![None; g.lens.len()];
    grad_of[g.output.0] = Some(buffers.open(g.lens[g.output.0], 0));
    enum Pending {
        Layer {
            node: usize,
            layer: usize,
            dy: usize,
            dx: PendingDst,
        },
        Join {
            join: usize,
            k: usize,
            dy: usize,
            dx: Option<(usize, bool)>,
        },
    }
    enum PendingDst {
        None,
        Write(usize),
        Add(usize, usize),
        Alias,
        Pass(usize),
    }
    let mut pending = Vec::new();
    for (t, i) in (0..g.steps.len()).rev().enumerate() {
        let t = t + 1;
        let runs = params[i] || g.inputs[i].iter().any(|v| needs[v.0]);
        if !runs {
            continue;
        }
        let out = g.outputs[i];
        let Some(dy) = grad_of[out.0] else {
            unreachable!("a node whose backward runs has a gradient")
        };
        buffers.touch(dy, t);
        match (g.kinds[i], g.steps[i]) {
            (Kind::Layer(effect), Step::Layer(layer)) => {
                let v = g.inputs[i][0];
                let dx = if !needs[v.0] {
                    PendingDst::None
                } else {
                    let writes = matches!(effect, Effect::Compute | Effect::Normalize);
                    match (writes, grad_of[v.0]) {
                        (true, None) => {
                            let b = buffers.open(g.lens[v.0], t);
                            grad_of[v.0] = Some(b);
                            PendingDst::Write(b)
                        }
                        (true, Some(into)) => {
                            let temp = buffers.open(g.lens[v.0], t);
                            buffers.touch(into, t);
                            PendingDst::Add(temp, into)
                        }
                        (false, None) => {
                            grad_of[v.0] = Some(dy);
                            PendingDst::Alias
                        }
                        (false, Some(into)) => {
                            buffers.touch(into, t);
                            PendingDst::Pass(into)
                        }
                    }
                };
                pending.push(Pending::Layer {
                    node: i,
                    layer,
                    dy,
                    dx,
                });
            }
            (Kind::Join(in_place), Step::Join(join)) => {
                for (k, &v) in g.inputs[i].iter().enumerate() {
                    if !needs[v.0] {
                        continue;
                    }
                    let dx = match grad_of[v.0] {
                        None if in_place && g.once_in(i, v) && !taken(&grad_of, dy) => {
                            grad_of[v.0] = Some(dy);
                            None
                        }
                        None => {
                            let b = buffers.open(g.lens[v.0], t);
                            grad_of[v.0] = Some(b);
                            Some((b, true))
                        }
                        Some(into) => {
                            buffers.touch(into, t);
                            Some((into, false))
                        }
                    };
                    pending.push(Pending::Join { join, k, dy, dx });
                }
            }
            (Kind::Layer(_), Step::Join(_)) | (Kind::Join(_), Step::Layer(_)) => {
                unreachable!("kinds are built from the steps")
            }
        }
        // The output's gradient is dead unless an input took it over.
        grad_of[out.0] = None;
    }

    let (offsets, size) = arena::place(&buffers.requests);
    let region = |b: usize| Region {
        offset: offsets[b],
        len: buffers.requests[b].len,
    };
    let sized = |b: usize, len: usize| Region {
        offset: offsets[b],
        len,
    };
    let ops = pending
        .into_iter()
        .map(|p| match p {
            Pending::Layer { node, layer, dy, dx } => {
                let (x, y) = layer_io
                    .get(&layer)
                    .copied()
                    .unwrap_or((Buffer::Input, Buffer::Input));
                let in_len = g.lens[g.inputs[node][0].0];
                BackOp::Layer {
                    layer,
                    x,
                    y,
                    dy: region(dy),
                    dx: match dx {
                        PendingDst::None => GradDst::None,
                        PendingDst::Write(b) => GradDst::Write(sized(b, in_len)),
                        PendingDst::Add(temp, into) => GradDst::Add {
                            temp: sized(temp, in_len),
                            into: sized(into, in_len),
                        },
                        PendingDst::Alias => GradDst::Alias,
                        PendingDst::Pass(into) => GradDst::Pass {
                            into: sized(into, in_len),
                        },
                    },
                }
            }
            Pending::Join { join, k, dy, dx } => BackOp::Join {
                join,
                k,
                dy: region(dy),
                dx: dx.map(|(b, first)| (region(b), first)),
            },
        })
        .collect();
    let output_grad = region(0);
    (ops, output_grad, size)
}

/// Whether a value's gradient already is the physical buffer `b`.
fn taken(grad_of: &[Option<usize>], b: usize) -> bool {
    grad_of.iter().filter(|g| **g == Some(b)).count() > 1
}
