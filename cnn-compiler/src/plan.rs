//! Parameter layout and memory plan: where every tensor and every activation
//! lives, computed once so the code generator only prints it.
//!
//! Inference (one example, no heap) ping-pongs between the two ends of one
//! scratch buffer: a layer reads from one end and writes to the other, so the
//! scratch is the largest `input + output` of any layer, not the sum of all
//! layers. Element-wise layers run in place; `flatten` is free.
//!
//! Training keeps the output of every computing layer for the backward pass
//! (activations run in place on the buffer they follow, unless that buffer
//! already holds an activation's output that its own backward needs), plus
//! two gradient buffers that ping-pong.

mod arena;
pub mod graph;

use crate::lower::ValueId;
use crate::ops::{Effect, LayerKind, Role};
use crate::shape::{Shape, Shaped, ShapedJoin, ShapedNode, ShapedProgram};

/// A parameter (or buffer) tensor in its flat array, in `state_dict` order.
pub struct Tensor {
    pub key: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    pub role: Role,
    pub fan_in: usize,
    pub fan_out: usize,
}

/// A layer with its place in the parameter array.
pub struct LayerPlan<'a> {
    pub shaped: Shaped<'a>,
    pub index: usize,
    /// `(offset, len)` of the weight and bias in the flat parameter array.
    pub weight: Option<(usize, usize)>,
    pub bias: Option<(usize, usize)>,
    pub macs: usize,
    /// Inference scratch elements live while this layer runs (0 if in place).
    pub infer_scratch: usize,
    /// Start of its buffers in the buffer array (batch norm: running mean,
    /// running variance, steps tracked).
    pub buffers: Option<usize>,
    /// Start of its batch statistics in the training workspace's statistics
    /// area (batch norm: mean, variance, `1 / std`, `c` each).
    pub stats: Option<usize>,
}

impl LayerPlan<'_> {
    pub fn kind(&self) -> LayerKind {
        self.shaped.layer.kind
    }
    pub fn in_len(&self) -> usize {
        self.shaped.input.len()
    }
    pub fn out_len(&self) -> usize {
        self.shaped.output.len()
    }
    pub fn params(&self) -> usize {
        self.weight.map_or(0, |w| w.1) + self.bias.map_or(0, |b| b.1)
    }
    /// What the layer does to memory.
    pub fn effect(&self) -> Effect {
        self.kind().effect()
    }
    /// Conv, pools and linear write a new buffer; the rest are element-wise
    /// (activations, dropout) or free (flatten).
    pub fn computes(&self) -> bool {
        self.effect() == Effect::Compute
    }
    /// Whether it writes a new buffer in training (and its backward writes
    /// `dL/dx` into another one): computing layers and batch norm.
    pub fn computes_in_training(&self) -> bool {
        match self.effect() {
            Effect::Compute | Effect::Normalize => true,
            Effect::InPlace | Effect::TrainCopy | Effect::View => false,
        }
    }
}

/// Where an inference buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The caller's input.
    Input,
    /// The front of the scratch buffer.
    Front,
    /// The back of the scratch buffer.
    Back,
    /// The caller's output.
    Output,
}

/// One step of the inference program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferStep {
    /// Layer `layer` reads `src` and writes `dst`.
    Compute { layer: usize, src: Slot, dst: Slot },
    /// Copy `len` elements per example from `src` to `dst` (an activation
    /// that cannot run in place on the caller's input).
    Copy { src: Slot, dst: Slot, len: usize },
    /// Layer `layer` runs in place on `slot`.
    InPlace { layer: usize, slot: Slot },
}

/// A training buffer: the caller's input or stored activation `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    Input,
    Act(usize),
}

/// Where a layer's input and output live during training.
#[derive(Clone, Copy, Debug)]
pub struct TrainIo {
    pub x: Buffer,
    pub y: Buffer,
    /// The output buffer is new and starts as a copy of `x`.
    pub copy: bool,
}

/// A node of the program in order: layer `i` of `layers` or join `i` of
/// `joins`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Layer(usize),
    Join(usize),
}

/// The whole plan of one net.
pub struct NetPlan<'a> {
    pub layers: Vec<LayerPlan<'a>>,
    /// Buffer tensors (batch norm's running statistics), in `state_dict`
    /// order, placed in their own array.
    pub buffers: Vec<Tensor>,
    pub buffer_count: usize,
    /// Elements of the training workspace's batch-statistics area (not per
    /// example); 0 without batch norm.
    pub stats_len: usize,
    /// The `add` and `cat` nodes.
    pub joins: Vec<ShapedJoin>,
    /// The plan of a program that is not a path (it has joins); `None` for
    /// a chain, planned by the fields below.
    pub graph: Option<graph::GraphPlan>,
    pub input_shape: Shape,
    pub tensors: Vec<Tensor>,
    pub param_count: usize,
    pub macs: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub output_shape: Shape,
    /// The inference program.
    pub infer_steps: Vec<InferStep>,
    /// Ping-pong scratch per example.
    pub infer_scratch: usize,
    /// im2col buffer of the GEMM path (per call, not per example).
    pub col_len: usize,
    /// Per layer: where its input and output live in training.
    pub train_io: Vec<TrainIo>,
    /// Length per example of each stored activation.
    pub acts: Vec<usize>,
    /// Length per example of the two gradient buffers the backward pass
    /// ping-pongs between: exactly the longest gradient each receives. A
    /// graph has one gradient arena instead: `[arena, 0]`.
    pub grad_lens: [usize; 2],
    /// The buffer holding the net's output in training.
    pub train_output: Buffer,
}

impl NetPlan<'_> {
    /// Training scratch per example (activations plus gradient buffers).
    pub fn train_scratch(&self) -> usize {
        self.acts
            .iter()
            .chain(&self.grad_lens)
            .fold(0usize, |a, &b| a.saturating_add(b))
    }

    /// True when some layer before `index` has parameters, so the backward
    /// pass must go on past `index`.
    pub fn params_before(&self, index: usize) -> bool {
        self.layers[..index].iter().any(|l| l.params() > 0)
    }
}

/// Plans a net whose layers all checked out.
///
/// A path (a chain, however nested) gets one ping-pong for inference and
/// one chain of stored outputs for training, below; a program with joins is
/// planned by liveness in [`graph`].
pub fn plan(input: Shape, program: ShapedProgram<'_>) -> NetPlan<'_> {
    let ShapedProgram {
        nodes: shaped,
        values,
        output,
        ..
    } = program;
    let mut tensors = Vec::new();
    let mut offset = 0;
    let mut buffers = Vec::new();
    let mut buffer_offset = 0usize;
    let mut stats_len = 0usize;
    let mut layers = Vec::new();
    let mut joins = Vec::new();
    let mut steps = Vec::new();
    let mut output_shape = input;
    for node in shaped {
        let shaped = match node {
            ShapedNode::Layer(shaped) => *shaped,
            ShapedNode::Join(join) => {
                output_shape = join.output;
                steps.push(Step::Join(joins.len()));
                joins.push(join);
                continue;
            }
        };
        output_shape = shaped.output;
        let index = layers.len();
        steps.push(Step::Layer(index));
        let mut weight = None;
        let mut bias = None;
        let (specs, macs) = shaped.layer.kind.tensors(&shaped);
        let mut layer_buffers = None;
        for spec in specs {
            let len = spec.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d));
            let key = format!("{}.{}", shaped.key, spec.suffix);
            if spec.role.is_buffer() {
                layer_buffers.get_or_insert(buffer_offset);
                buffers.push(Tensor {
                    key,
                    shape: spec.shape,
                    offset: buffer_offset,
                    len,
                    role: spec.role,
                    fan_in: spec.fan_in,
                    fan_out: spec.fan_out,
                });
                buffer_offset = buffer_offset.saturating_add(len);
                continue;
            }
            let range = Some((offset, len));
            match spec.suffix {
                "weight" => weight = range,
                "bias" => bias = range,
                _ => {}
            }
            tensors.push(Tensor {
                key,
                shape: spec.shape,
                offset,
                len,
                role: spec.role,
                fan_in: spec.fan_in,
                fan_out: spec.fan_out,
            });
            offset = offset.saturating_add(len);
        }
        let stats = (shaped.layer.kind.effect() == Effect::Normalize).then(|| {
            let at = stats_len;
            stats_len = stats_len.saturating_add(shaped.fan_in_units.saturating_mul(3));
            at
        });
        layers.push(LayerPlan {
            shaped,
            index,
            weight,
            bias,
            macs,
            infer_scratch: 0,
            buffers: layer_buffers,
            stats,
        });
    }

    let col_len = layers
        .iter()
        .map(|l| l.kind().col_len(&l.shaped))
        .max()
        .unwrap_or(0);
    let (graph, infer_steps, infer_scratch, train_io, acts, train_output, grad_lens) = if joins.is_empty() {
        let (infer_steps, infer_scratch) = plan_inference(&mut layers, values, output);
        let (train_io, acts, train_output) = plan_training(&layers, values, output);
        let grad_lens = plan_gradients(&layers);
        (
            None,
            infer_steps,
            infer_scratch,
            train_io,
            acts,
            train_output,
            grad_lens,
        )
    } else {
        let g = graph::plan(&steps, &layers, &joins, values, output);
        for (step, &live) in steps.iter().zip(&g.infer_live) {
            if let Step::Layer(l) = *step {
                layers[l].infer_scratch = live;
            }
        }
        let (scratch, acts, train_output, grad_lens) =
            (g.infer_scratch, g.acts.clone(), g.train_output, [g.grad_len, 0]);
        (
            Some(g),
            Vec::new(),
            scratch,
            Vec::new(),
            acts,
            train_output,
            grad_lens,
        )
    };
    NetPlan {
        buffers,
        buffer_count: buffer_offset,
        stats_len,
        joins,
        graph,
        input_shape: input,
        param_count: offset,
        macs: layers.iter().fold(0usize, |a, l| a.saturating_add(l.macs)),
        input_len: input.len(),
        output_len: output_shape.len(),
        output_shape,
        layers,
        tensors,
        infer_steps,
        infer_scratch,
        col_len,
        train_io,
        acts,
        grad_lens,
        train_output,
    }
}

/// The ping-pong inference program and its scratch size per example.
fn plan_inference(layers: &mut [LayerPlan], values: usize, output: ValueId) -> (Vec<InferStep>, usize) {
    let last_compute = layers.iter().rposition(|l| l.computes());
    let mut steps = Vec::new();
    // Where each value lives; the net's input is the caller's.
    let mut slot_of = vec![Slot::Input; values];
    let mut scratch = 0;
    let in_scratch = |slot: Slot, len: usize| {
        if matches!(slot, Slot::Front | Slot::Back) {
            len
        } else {
            0
        }
    };
    let next_free = |slot: Slot| {
        if slot == Slot::Front {
            Slot::Back
        } else {
            Slot::Front
        }
    };
    for (i, layer) in layers.iter_mut().enumerate() {
        let mut current = slot_of[layer.shaped.inputs[0].0];
        let current_len = layer.in_len();
        match layer.effect() {
            Effect::Compute => {
                let dst = if Some(i) == last_compute {
                    Slot::Output
                } else {
                    next_free(current)
                };
                let live =
                    in_scratch(current, layer.in_len()).saturating_add(in_scratch(dst, layer.out_len()));
                layer.infer_scratch = live;
                scratch = scratch.max(live);
                steps.push(InferStep::Compute {
                    layer: i,
                    src: current,
                    dst,
                });
                current = dst;
            }
            Effect::InPlace | Effect::Normalize => {
                if current == Slot::Input {
                    // Activations never write the caller's input.
                    let dst = if last_compute.is_none_or(|last| i > last) {
                        Slot::Output
                    } else {
                        Slot::Front
                    };
                    scratch = scratch.max(in_scratch(dst, current_len));
                    layer.infer_scratch = in_scratch(dst, current_len);
                    steps.push(InferStep::Copy {
                        src: current,
                        dst,
                        len: current_len,
                    });
                    current = dst;
                }
                steps.push(InferStep::InPlace {
                    layer: i,
                    slot: current,
                });
            }
            // Identity at inference.
            Effect::TrainCopy | Effect::View => {}
        }
        slot_of[layer.shaped.output_value.0] = current;
    }
    if slot_of[output.0] == Slot::Input {
        // Nothing but flatten/dropout: the output is the input.
        steps.push(InferStep::Copy {
            src: Slot::Input,
            dst: Slot::Output,
            len: layers.last().map_or(0, |l| l.out_len()),
        });
    }
    (steps, scratch)
}

/// Buffers of the training forward pass.
fn plan_training(layers: &[LayerPlan], values: usize, output: ValueId) -> (Vec<TrainIo>, Vec<usize>, Buffer) {
    let mut io = Vec::new();
    let mut acts: Vec<usize> = Vec::new();
    // Where each value lives, and whether that buffer already holds an
    // activation's output (which that activation's backward pass reads, so
    // it must not be overwritten).
    let mut buffer_of = vec![(Buffer::Input, false); values];
    for layer in layers {
        let (current, mut activated) = buffer_of[layer.shaped.inputs[0].0];
        let x = current;
        let effect = layer.effect();
        let (y, copy) = match effect {
            Effect::Compute | Effect::Normalize => {
                acts.push(layer.out_len());
                activated = false;
                (Buffer::Act(acts.len() - 1), false)
            }
            Effect::InPlace if current == Buffer::Input || activated => {
                acts.push(layer.out_len());
                (Buffer::Act(acts.len() - 1), true)
            }
            Effect::TrainCopy => {
                // A transformed copy (dropout's mask); its backward
                // recomputes what it needs and reads no stored output.
                acts.push(layer.out_len());
                activated = false;
                (Buffer::Act(acts.len() - 1), true)
            }
            Effect::InPlace | Effect::View => (current, false),
        };
        if effect == Effect::InPlace {
            activated = true;
        }
        io.push(TrainIo { x, y, copy });
        buffer_of[layer.shaped.output_value.0] = (y, activated);
    }
    (io, acts, buffer_of[output.0].0)
}

/// Simulates the backward pass the code generator writes (the loss gradient
/// into buffer 0; each computing layer that must pass a gradient on writes
/// its input gradient into the other buffer) and returns the longest
/// gradient each buffer receives.
fn plan_gradients(layers: &[LayerPlan]) -> [usize; 2] {
    let params_before = |i: usize| layers[..i].iter().any(|l| l.params() > 0);
    let mut lens = [layers.last().map_or(0, |l| l.out_len()), 0];
    let mut current = 0;
    for (i, layer) in layers.iter().enumerate().rev() {
        if !params_before(i + 1) {
            break;
        }
        if layer.computes_in_training() {
            if params_before(i) {
                lens[1 - current] = lens[1 - current].max(layer.in_len());
            }
            current = 1 - current;
        }
    }
    lens
}
