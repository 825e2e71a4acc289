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

use crate::layer::LayerKind;
use crate::shape::{Shape, Shaped};

/// A parameter tensor in the flat array, in `state_dict` order.
pub struct Tensor {
    pub key: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    pub is_bias: bool,
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
    /// Dropout with `p > 0`: does something in training.
    pub fn is_dropping(&self) -> bool {
        matches!(self.kind(), LayerKind::Dropout { p } if p > 0.0)
    }
    /// Conv, pools and linear write a new buffer; the rest are element-wise
    /// (activations, dropout) or free (flatten).
    pub fn computes(&self) -> bool {
        !matches!(
            self.kind(),
            LayerKind::Relu
                | LayerKind::Sigmoid
                | LayerKind::Tanh
                | LayerKind::Flatten
                | LayerKind::Dropout { .. }
        )
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

/// The whole plan of one net.
pub struct NetPlan<'a> {
    pub layers: Vec<LayerPlan<'a>>,
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
    /// ping-pongs between: exactly the longest gradient each receives.
    pub grad_lens: [usize; 2],
    /// The buffer holding the net's output in training.
    pub train_output: Buffer,
}

impl NetPlan<'_> {
    /// Training scratch per example (activations plus gradient buffers).
    pub fn train_scratch(&self) -> usize {
        self.acts.iter().sum::<usize>() + self.grad_lens[0] + self.grad_lens[1]
    }

    /// True when some layer before `index` has parameters, so the backward
    /// pass must go on past `index`.
    pub fn params_before(&self, index: usize) -> bool {
        self.layers[..index].iter().any(|l| l.params() > 0)
    }
}

/// Plans a net whose layers all checked out.
pub fn plan(input: Shape, shaped: Vec<Shaped<'_>>) -> NetPlan<'_> {
    let mut tensors = Vec::new();
    let mut offset = 0;
    let mut layers = Vec::new();
    for (index, shaped) in shaped.into_iter().enumerate() {
        let mut weight = None;
        let mut bias = None;
        let mut macs = 0;
        let mut push = |suffix: &str, shape: Vec<usize>, is_bias: bool, fan_in: usize, fan_out: usize| {
            let len = shape.iter().product();
            tensors.push(Tensor {
                key: format!("{index}.{suffix}"),
                shape,
                offset,
                len,
                is_bias,
                fan_in,
                fan_out,
            });
            offset += len;
            (offset - len, len)
        };
        match shaped.layer.kind {
            LayerKind::Conv {
                out_channels,
                kernel,
                bias: has_bias,
                ..
            } => {
                let c = shaped.fan_in_units;
                let area = kernel.h * kernel.w;
                let (fan_in, fan_out) = (c * area, out_channels * area);
                weight = Some(push(
                    "weight",
                    vec![out_channels, c, kernel.h, kernel.w],
                    false,
                    fan_in,
                    fan_out,
                ));
                if has_bias {
                    bias = Some(push("bias", vec![out_channels], true, fan_in, fan_out));
                }
                macs = shaped.output.len() * fan_in;
            }
            LayerKind::Linear {
                out_features,
                bias: has_bias,
                ..
            } => {
                let f = shaped.fan_in_units;
                weight = Some(push("weight", vec![out_features, f], false, f, out_features));
                if has_bias {
                    bias = Some(push("bias", vec![out_features], true, f, out_features));
                }
                macs = f * out_features;
            }
            _ => {}
        }
        layers.push(LayerPlan {
            shaped,
            index,
            weight,
            bias,
            macs,
            infer_scratch: 0,
        });
    }

    let (infer_steps, infer_scratch) = plan_inference(&mut layers);
    let col_len = layers
        .iter()
        .filter_map(|l| match (l.kind(), l.shaped.output) {
            (LayerKind::Conv { kernel, .. }, Shape::Chw(_, oh, ow)) => {
                Some(l.shaped.fan_in_units * kernel.h * kernel.w * oh * ow)
            }
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let (train_io, acts, train_output) = plan_training(&layers);
    let grad_lens = plan_gradients(&layers);
    let output_shape = layers.last().map_or(input, |l| l.shaped.output);
    NetPlan {
        param_count: offset,
        macs: layers.iter().map(|l| l.macs).sum(),
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
fn plan_inference(layers: &mut [LayerPlan]) -> (Vec<InferStep>, usize) {
    let last_compute = layers.iter().rposition(|l| l.computes());
    let mut steps = Vec::new();
    let mut current = Slot::Input;
    let mut current_len = layers.first().map_or(0, |l| l.in_len());
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
        if layer.computes() {
            let dst = if Some(i) == last_compute {
                Slot::Output
            } else {
                next_free(current)
            };
            let live = in_scratch(current, layer.in_len()) + in_scratch(dst, layer.out_len());
            layer.infer_scratch = live;
            scratch = scratch.max(live);
            steps.push(InferStep::Compute {
                layer: i,
                src: current,
                dst,
            });
            current = dst;
        } else if !matches!(layer.kind(), LayerKind::Flatten | LayerKind::Dropout { .. }) {
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
        current_len = layer.out_len();
    }
    if current == Slot::Input {
        // Nothing but flatten/dropout: the output is the input.
        steps.push(InferStep::Copy {
            src: Slot::Input,
            dst: Slot::Output,
            len: current_len,
        });
    }
    (steps, scratch)
}

/// Buffers of the training forward pass.
fn plan_training(layers: &[LayerPlan]) -> (Vec<TrainIo>, Vec<usize>, Buffer) {
    let mut io = Vec::new();
    let mut acts: Vec<usize> = Vec::new();
    let mut current = Buffer::Input;
    // Whether `current` already holds an activation's output (which that
    // activation's backward pass reads, so it must not be overwritten).
    let mut activated = false;
    for layer in layers {
        let x = current;
        let (y, copy) = if layer.computes() {
            acts.push(layer.out_len());
            activated = false;
            (Buffer::Act(acts.len() - 1), false)
        } else if layer.kind().is_activation() && (current == Buffer::Input || activated) {
            acts.push(layer.out_len());
            (Buffer::Act(acts.len() - 1), true)
        } else if layer.is_dropping() {
            // Dropout writes a masked copy; its backward recomputes the mask
            // and needs no stored output.
            acts.push(layer.out_len());
            activated = false;
            (Buffer::Act(acts.len() - 1), true)
        } else {
            (current, false)
        };
        if layer.kind().is_activation() {
            activated = true;
        }
        io.push(TrainIo { x, y, copy });
        current = y;
    }
    (io, acts, current)
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
        if layer.computes() {
            if params_before(i) {
                lens[1 - current] = lens[1 - current].max(layer.in_len());
            }
            current = 1 - current;
        }
    }
    lens
}
