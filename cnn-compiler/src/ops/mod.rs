//! Every op of the DSL, one module each: its keyword and arguments, its
//! shape rule, its parameter tensors, what it does to memory, and the code
//! of its forward and backward passes. The phases (`layer`, `shape`, `plan`,
//! `expand`) know ops only through the [`Op`] trait and the [`LayerKind`]
//! enum that [`ops!`] builds from one list, so every `match` over op kinds is
//! generated and exhaustive.
//!
//! # How to add a layer
//! 1. Write its kernels in `cnn-runtime/src/ops/<keyword>.rs`: forward and
//!    backward over `n` examples (NCHW, row-major), a naive reference and
//!    tests against it, and the PyTorch function it matches in the docs.
//! 2. Add `cnn-compiler/src/ops/<keyword>.rs`: a `Copy` struct with the
//!    resolved arguments and `impl Op` (keyword, PyTorch name, signature,
//!    shape rule with spanned errors, tensors, [`Effect`], forward and
//!    backward emission through `::cnn_runtime::__private`, and its int8
//!    step, [`Op::int8`]: TFLite's int8 kernel, or why there is none yet).
//! 3. Add one line to the [`ops!`] list below (the order is the order
//!    "unknown layer" messages list the keywords in), and any aliases users
//!    may type to `symbol::ALIASES`.
//! 4. Add a PyTorch parity fixture (`tools/gen_fixtures.py`), a trybuild case
//!    for each new error (`tests/ui/`), a row in README's layer table, and
//!    regenerate the LeNet snapshot only if LeNet's expansion should change.

mod activation;
mod add;
mod avgpool;
mod batchnorm;
mod cat;
mod conv;
mod dropout;
mod flatten;
mod global_avgpool;
mod global_maxpool;
mod global_pool;
mod identity;
mod linear;
mod maxpool;
mod relu;
mod relu6;
mod sigmoid;
mod tanh;
mod window;

use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;

/// What an op does to memory; the planner and the code generator decide
/// buffers from this alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads its input buffer and writes a new one (conv, pools, linear).
    Compute,
    /// Element-wise, in place on its input's buffer; its backward reads the
    /// output it wrote, so no later in-place op may overwrite that buffer
    /// during training (activations).
    InPlace,
    /// No code at inference; in training a copy transformed in place, whose
    /// backward needs no stored output (dropout with `p > 0`).
    TrainCopy,
    /// No code at all: the output is the input's buffer, reinterpreted
    /// (flatten, dropout with `p = 0`).
    View,
    /// Batch norm: in training, like `Compute` (reads its input, writes a
    /// new buffer; its backward reads the input and the batch statistics);
    /// at inference, like `InPlace` (a per-channel affine map).
    Normalize,
}

/// What a tensor of an op is: its initialiser, and whether it is a
/// trainable parameter or a buffer (batch norm's running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A conv or linear weight.
    Weight,
    /// A conv or linear bias.
    Bias,
    /// Batch norm's scale (`gamma`, initialised to 1).
    NormWeight,
    /// Batch norm's shift (`beta`, initialised to 0).
    NormBias,
    /// A buffer: batch norm's running mean (starts at 0).
    RunningMean,
    /// A buffer: batch norm's running variance (starts at 1).
    RunningVar,
    /// A buffer: the training steps batch norm has seen (`int64` in
    /// PyTorch's files).
    BatchesTracked,
}

impl Role {
    /// Buffers live in their own array, which no optimizer touches.
    pub fn is_buffer(self) -> bool {
        match self {
            Role::Weight | Role::Bias | Role::NormWeight | Role::NormBias => false,
            Role::RunningMean | Role::RunningVar | Role::BatchesTracked => true,
        }
    }

    /// The runtime's `TensorRole` variant.
    pub fn variant(self) -> &'static str {
        match self {
            Role::Weight => "Weight",
            Role::Bias => "Bias",
            Role::NormWeight => "NormWeight",
            Role::NormBias => "NormBias",
            Role::RunningMean => "RunningMean",
            Role::RunningVar => "RunningVar",
            Role::BatchesTracked => "BatchesTracked",
        }
    }
}

/// A parameter or buffer tensor an op declares, before the planner places
/// it.
pub struct TensorSpec {
    /// The `state_dict` key suffix: `weight`, `bias`, `running_mean`, ...
    pub suffix: &'static str,
    /// PyTorch's shape of the tensor.
    pub shape: Vec<usize>,
    /// What it is.
    pub role: Role,
    /// Fan-in and fan-out for the initialisers.
    pub fan_in: usize,
    pub fan_out: usize,
}

/// What the code generator gives an op to print its forward pass with.
///
/// `Compute` ops print a kernel call with `x: &[f32]` (input), `y: &mut
/// [f32]` (output), `n` (examples) and `col` (the im2col buffer, empty
/// unless `GEMM`) in scope. In-place ops transform `target` (an expression
/// of type `&mut [f32]`).
pub struct ForwardIo {
    pub target: TokenStream,
    /// The training forward pass (batch norm normalises with the batch's
    /// statistics: `stats`, the workspace's statistics area, and `sync`,
    /// the `&dyn Exchange` between shares of the batch, are in scope),
    /// rather than inference.
    pub train: bool,
}

/// What the code generator gives an op to print its backward pass with;
/// every field is an expression valid where the code is printed, with `n`,
/// `grads` (`&mut [f32]` of every parameter gradient), `seed` and `col` in
/// scope.
pub struct BackwardIo {
    /// The stored input buffer (the caller's input or an activation).
    pub x: TokenStream,
    /// The stored output buffer.
    pub y: TokenStream,
    /// The buffer holding `dL/dy` (its first `n * out_len` elements).
    pub dy_buffer: TokenStream,
    /// The other gradient buffer, where `dL/dx` goes (`n * in_len`).
    pub dx_buffer: TokenStream,
    /// `Option<&mut [f32]>`: `Some` of the `dL/dx` slice when an earlier
    /// layer needs it, else `None`.
    pub dx: TokenStream,
    /// `let dw = ..; let db = ..;`: the op's gradient slices, if it has
    /// parameters.
    pub grads_split: TokenStream,
}

/// An int8 value's quantization, TFLite's: `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quant {
    pub scale: f32,
    pub zero_point: i32,
}

/// An activation an int8 conv or linear layer applies to its output as a
/// clamp (TFLite fuses a following relu or relu6 so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fused {
    Relu,
    Relu6,
}

/// A conv's or linear layer's tensors from an int8 weights file.
pub struct Int8Tensors {
    /// `[O, ..]` int8 weights, symmetric (zero point 0).
    pub weight: Vec<i8>,
    /// `[O]` int32 bias, if the layer has one.
    pub bias: Option<Vec<i32>>,
    /// One scale per output channel, or one for all.
    pub weight_scale: Vec<f32>,
    /// The output's quantization.
    pub output: Quant,
}

/// Where a conv's or linear layer's tensors sit in an int8 net's arrays
/// (`weights`, `biases`, and the per-channel `requant` and weight scales),
/// and its index among the net's conv and linear layers (`outputs`,
/// `per_tensor`, `clamps`).
pub struct Int8Slots {
    pub index: usize,
    pub weight: (usize, usize),
    pub bias: Option<(usize, usize)>,
    pub channels: (usize, usize),
}

/// What the int8 code generator gives an op to print its step with (see
/// `crate::int8`). In the step's `code`, `Compute` steps read `x: &[i8]`
/// and write `y: &mut [i8]`, in-place ones transform `target: &mut [i8]`;
/// `n` and `self` (the net, with its arrays) are in scope. In its
/// `prepare` code (a `const fn` run once per net), `quants`, `requant`,
/// `clamps` and `luts` are the mutable arrays being filled, `weight_scales`,
/// `per_tensor` and `outputs` the parts read (see `Int8Parts`).
pub struct Int8Io<'a> {
    /// The layer's index in the float net's `LAYERS`, for messages and
    /// errors.
    pub layer: usize,
    /// The value it reads: its input's quantization is `quants[input]`.
    pub input: usize,
    /// The value it writes: its output's quantization is `quants[output]`
    /// (which the driver fills from [`Int8Code::output`] after `prepare`).
    pub output: usize,
    /// The op's place in the arrays (conv and linear only).
    pub slots: Option<&'a Int8Slots>,
    /// Its output quantization's index in `points`, if it is a point of
    /// its own (`global_avgpool`).
    pub point: Option<usize>,
    /// The activation that reads its output (and nothing else does),
    /// fused into its output.
    pub fused: Option<Fused>,
    /// This layer is an activation the layer before it fused.
    pub absorbed: bool,
    /// The first free entry of `luts` (the 256-entry tables of sigmoid and
    /// tanh).
    pub lut: usize,
    /// The first free entry of `means` (global average pooling's prepared
    /// MEAN).
    pub mean: usize,
}

/// An op's code in an int8 net.
pub struct Int8Code {
    /// The inference step.
    pub code: TokenStream,
    /// What it derives from the parts once (in a `const fn`).
    pub prepare: TokenStream,
    /// Its output's quantization.
    pub output: Int8Output,
    /// Entries of `luts` it took (from [`Int8Io::lut`] on).
    pub luts_taken: usize,
    /// Entries of `means` it took (from [`Int8Io::mean`] on).
    pub means_taken: usize,
}

/// Where an int8 op's output quantization comes from.
pub enum Int8Output {
    /// The input's (pools: TFLite requires it).
    Input,
    /// The file's `{key}.output_scale` / `.output_zero_point` (conv, linear).
    Own(usize),
    /// Fixed by the op (sigmoid, tanh).
    Fixed(Quant),
    /// The file's `points` entry (`global_avgpool`).
    Point(usize),
}

/// What an op is in an int8 net.
pub enum Int8Step {
    /// Reads `x`, writes `y`.
    Compute(Int8Code),
    /// Transforms `target` in place.
    InPlace(Int8Code),
    /// No code: the same bytes, the same quantization (flatten, identity,
    /// dropout at inference, an activation fused into the layer before).
    Same,
}

/// The interface each op module implements.
pub trait Op: Copy + Into<LayerKind> {
    /// The DSL keyword, e.g. `conv`.
    const KEYWORD: &'static str;
    /// The PyTorch module it matches, e.g. `Conv2d`.
    const TORCH_NAME: &'static str;
    /// Positional parameters, all required.
    const ARGS: &'static [Param];
    /// Named options.
    const OPTIONS: &'static [Param];
    /// The output has the input's shape, element by element (activations,
    /// dropout): shape messages then name the layer before this one.
    const ELEMENT_WISE: bool;
    /// It has parameter tensors (which then need a `state_dict` key: inside
    /// an `add`/`cat` branch such a layer must be labelled).
    const HAS_PARAMS: bool;

    /// The op from arguments that all checked out.
    fn build(args: &Args) -> Self;

    /// What it does to memory.
    fn effect(&self) -> Effect;

    /// The output shape and the input channels or features consumed (after
    /// `_` is inferred; 0 where there are none), or `None` after reporting
    /// why the input does not fit. `input` is `None` when an earlier layer
    /// failed: check only what can be checked without it.
    fn shape(
        &self,
        layer: &Layer,
        input: Option<Shape>,
        from: &Provenance,
        errors: &mut Errors,
    ) -> Option<(Shape, usize)>;

    /// The parameter tensors, in `state_dict` order, and the
    /// multiply-accumulates of one example's forward pass.
    fn tensors(&self, shaped: &Shaped) -> (Vec<TensorSpec>, usize);

    /// Elements of the im2col buffer its GEMM path needs per call.
    fn col_len(&self, shaped: &Shaped) -> usize;

    /// The forward pass (see [`ForwardIo`]).
    fn forward(&self, layer: &LayerPlan, io: &ForwardIo) -> TokenStream;

    /// The backward pass (see [`BackwardIo`]): accumulates parameter
    /// gradients and writes `dL/dx`, or transforms `dy` in place for
    /// in-place ops.
    fn backward(&self, layer: &LayerPlan, io: &BackwardIo) -> TokenStream;

    /// The PyTorch module of this layer with its input known (batch norm
    /// is `BatchNorm2d` or `BatchNorm1d`); [`Op::TORCH_NAME`] otherwise.
    fn torch_name_for(&self, _shaped: &Shaped) -> &'static str {
        Self::TORCH_NAME
    }

    /// Its step in an int8 net (TFLite's int8 semantics, bit for bit with
    /// TensorFlow Lite Micro), or why it has none yet.
    fn int8(&self, layer: &LayerPlan, io: &Int8Io) -> Result<Int8Step, String>;

    /// The update of its buffers after a training step, from the batch
    /// statistics the step left in `stats`, with `self.buffers` and `n`
    /// (the batch's examples) in scope. Ops without buffers print nothing.
    fn update(&self, _layer: &LayerPlan) -> TokenStream {
        TokenStream::new()
    }
}

/// Builds [`LayerKind`], its dispatch and the keyword table from one list:
/// `Variant(Type)`, in the order messages list the keywords.
macro_rules! ops {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// What a layer computes, with every number resolved: one variant per op.
        #[derive(Clone, Copy, Debug)]
        pub enum LayerKind {
            $($variant($ty)),*
        }

        $(impl From<$ty> for LayerKind {
            fn from(op: $ty) -> LayerKind {
                LayerKind::$variant(op)
            }
        })*

        /// Every layer keyword, in the order the error message lists them.
        pub const KEYWORDS: &[&str] = &[$(<$ty as Op>::KEYWORD),*];

        /// Whether the op `keyword` has parameters (false for unknown keywords).
        pub fn keyword_has_params(keyword: &str) -> bool {
            $(if keyword == <$ty as Op>::KEYWORD {
                return <$ty as Op>::HAS_PARAMS;
            })*
            false
        }

        /// Positional parameters and options of `keyword`, if it is an op.
        pub fn signature(keyword: &str) -> Option<(&'static [Param], &'static [Param])> {
            $(if keyword == <$ty as Op>::KEYWORD {
                return Some((<$ty as Op>::ARGS, <$ty as Op>::OPTIONS));
            })*
            None
        }

        /// The op `keyword` built from arguments that checked out.
        pub fn build(keyword: &str, args: &Args) -> Option<LayerKind> {
            $(if keyword == <$ty as Op>::KEYWORD {
                return Some(<$ty as Op>::build(args).into());
            })*
            None
        }

        impl LayerKind {
            /// The DSL keyword.
            pub fn keyword(&self) -> &'static str {
                match self {
                    $(LayerKind::$variant(_) => <$ty as Op>::KEYWORD),*
                }
            }

            /// See [`Op::ELEMENT_WISE`].
            pub fn element_wise(&self) -> bool {
                match self {
                    $(LayerKind::$variant(_) => <$ty as Op>::ELEMENT_WISE),*
                }
            }

            /// See [`Op::effect`].
            pub fn effect(&self) -> Effect {
                match self {
                    $(LayerKind::$variant(op) => op.effect()),*
                }
            }

            /// See [`Op::shape`].
            pub fn shape(
                &self,
                layer: &Layer,
                input: Option<Shape>,
                from: &Provenance,
                errors: &mut Errors,
            ) -> Option<(Shape, usize)> {
                match self {
                    $(LayerKind::$variant(op) => op.shape(layer, input, from, errors)),*
                }
            }

            /// See [`Op::tensors`].
            pub fn tensors(&self, shaped: &Shaped) -> (Vec<TensorSpec>, usize) {
                match self {
                    $(LayerKind::$variant(op) => op.tensors(shaped)),*
                }
            }

            /// See [`Op::col_len`].
            pub fn col_len(&self, shaped: &Shaped) -> usize {
                match self {
                    $(LayerKind::$variant(op) => op.col_len(shaped)),*
                }
            }

            /// See [`Op::forward`].
            pub fn forward(&self, layer: &LayerPlan, io: &ForwardIo) -> TokenStream {
                match self {
                    $(LayerKind::$variant(op) => op.forward(layer, io)),*
                }
            }

            /// See [`Op::backward`].
            pub fn backward(&self, layer: &LayerPlan, io: &BackwardIo) -> TokenStream {
                match self {
                    $(LayerKind::$variant(op) => op.backward(layer, io)),*
                }
            }

            /// See [`Op::torch_name_for`].
            pub fn torch_name_for(&self, shaped: &Shaped) -> &'static str {
                match self {
                    $(LayerKind::$variant(op) => op.torch_name_for(shaped)),*
                }
            }

            /// See [`Op::int8`].
            pub fn int8(&self, layer: &LayerPlan, io: &Int8Io) -> Result<Int8Step, String> {
                match self {
                    $(LayerKind::$variant(op) => op.int8(layer, io)),*
                }
            }

            /// See [`Op::update`].
            pub fn update(&self, layer: &LayerPlan) -> TokenStream {
                match self {
                    $(LayerKind::$variant(op) => op.update(layer)),*
                }
            }
        }
    };
}

ops! {
    Conv(conv::Conv),
    MaxPool(maxpool::MaxPool),
    AvgPool(avgpool::AvgPool),
    GlobalAvgPool(global_avgpool::GlobalAvgPool),
    GlobalMaxPool(global_maxpool::GlobalMaxPool),
    Flatten(flatten::Flatten),
    Linear(linear::Linear),
    Relu(relu::Relu),
    Relu6(relu6::Relu6),
    Sigmoid(sigmoid::Sigmoid),
    Tanh(tanh::Tanh),
    Dropout(dropout::Dropout),
    Identity(identity::Identity),
    BatchNorm(batchnorm::BatchNorm),
}

/// A node that joins several branches, one module each (`add.rs`,
/// `cat.rs`): the branches' outputs summed or concatenated along channels.
/// A join has no parameters and reads no stored value in its backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Add,
    Cat,
}

impl JoinKind {
    /// The output shape from the branches' shapes (`None` where unknown),
    /// or `None` after reporting why they do not fit together.
    pub fn shape(
        self,
        keyword: &proc_macro2::Ident,
        inputs: &[(Option<Shape>, &Provenance)],
        errors: &mut Errors,
    ) -> Option<Shape> {
        match self {
            JoinKind::Add => add::shape(keyword, inputs, errors),
            JoinKind::Cat => cat::shape(keyword, inputs, errors),
        }
    }

    /// The DSL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            JoinKind::Add => "add",
            JoinKind::Cat => "cat",
        }
    }

    /// Whether the output may be the buffer of one of the inputs, updated in
    /// place (a sum may; a concatenation interleaves its inputs per example).
    pub fn in_place(self) -> bool {
        match self {
            JoinKind::Add => true,
            JoinKind::Cat => false,
        }
    }

    /// The forward pass of input `k`: reads `x`, writes its part of `y`
    /// (`first`: the first part written into `y`), with `n` in scope.
    pub fn forward_part(self, inputs: &[Shape], output: Shape, k: usize, first: bool) -> TokenStream {
        match self {
            JoinKind::Add => add::forward_part(first),
            JoinKind::Cat => cat::forward_part(inputs, output, k),
        }
    }

    /// The backward pass to input `k`: reads `dy`, writes (`first`) or adds
    /// to `dx`.
    pub fn backward_part(self, inputs: &[Shape], output: Shape, k: usize, first: bool) -> TokenStream {
        match self {
            JoinKind::Add => add::backward_part(first),
            JoinKind::Cat => cat::backward_part(inputs, output, k, first),
        }
    }

    /// Its preparation in an int8 net (in `__derive`, as [`Int8Code`]'s
    /// `prepare`, ending with `quants[io.output]` set), or why it has none.
    pub fn int8_prepare(self, io: &Int8JoinIo) -> Result<TokenStream, String> {
        match self {
            JoinKind::Add => add::int8_prepare(io),
            JoinKind::Cat => Ok(cat::int8_prepare(io)),
        }
    }

    /// Input `k`'s int8 part (`x` into `y`, as [`JoinKind::forward_part`];
    /// `first`: the first part written into `y`).
    pub fn int8_part(
        self,
        inputs: &[Shape],
        output: Shape,
        k: usize,
        first: bool,
        io: &Int8JoinIo,
    ) -> TokenStream {
        match self {
            JoinKind::Add => add::int8_part(first, io),
            JoinKind::Cat => cat::forward_part(inputs, output, k),
        }
    }
}

/// What the int8 code generator gives a join (see [`Int8Io`]).
pub struct Int8JoinIo<'a> {
    /// Its index among the net's joins (for errors).
    pub join: usize,
    /// The values it reads, branch by branch.
    pub inputs: &'a [usize],
    /// The value it writes.
    pub output: usize,
    /// The branch whose value is in the output's buffer before the other
    /// parts are written (the sum's first operand).
    pub first: usize,
    /// Its output quantization's index in `points`, if it has its own
    /// (`add`).
    pub point: Option<usize>,
    /// Its index in the net's `adds` (prepared ADDs), if it is one.
    pub add: usize,
    /// The activation that reads its output (and nothing else does),
    /// fused into it.
    pub fused: Option<Fused>,
}

/// The branches of a join whose shapes are known (an earlier mistake
/// leaves a branch unknown, already reported), numbered, and whether all
/// of them are.
fn known_branches<'p>(
    inputs: &[(Option<Shape>, &'p Provenance)],
) -> (Vec<(usize, Shape, &'p Provenance)>, bool) {
    let known: Vec<(usize, Shape, &Provenance)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, (shape, from))| shape.map(|s| (i, s, *from)))
        .collect();
    let all = known.len() == inputs.len();
    (known, all)
}

/// `::cnn_runtime::__private`, the root of every path the generated code
/// names.
fn private() -> TokenStream {
    quote::quote!(::cnn_runtime::__private)
}

/// A `usize` literal without suffix.
pub(crate) fn lit(n: usize) -> proc_macro2::Literal {
    proc_macro2::Literal::usize_unsuffixed(n)
}

/// `&self.params[a..b]` for a weight or bias.
fn param_slice(range: Option<(usize, usize)>) -> TokenStream {
    match range {
        Some((offset, len)) => {
            let (a, b) = (lit(offset), lit(offset + len));
            quote::quote!(&self.params[#a..#b])
        }
        None => quote::quote!(&[]),
    }
}

/// `Some(&self.params[..])` of the bias, or `None`.
fn bias_arg(range: Option<(usize, usize)>) -> TokenStream {
    match range {
        Some(_) => {
            let s = param_slice(range);
            quote::quote!(::cnn_runtime::__private::core::option::Option::Some(#s))
        }
        None => quote::quote!(::cnn_runtime::__private::core::option::Option::None),
    }
}

/// An int8 conv's or linear layer's output stage: the forward code's `W`,
/// `bias` and `stage` (read from the net's arrays), and the `prepare` code
/// that fills its requantization multipliers and clamp. `linear_out` is
/// `Some(out_features)` for a linear layer, whose multipliers TFLite rounds
/// differently when the file has one weight scale for all outputs.
fn int8_stage(s: &Int8Slots, io: &Int8Io, linear_out: Option<usize>) -> (TokenStream, TokenStream) {
    let p = private();
    let (input, output) = (lit(io.input), lit(io.output));
    let k = lit(s.index);
    let (w0, w1) = (lit(s.weight.0), lit(s.weight.1));
    let (c0, c1) = (lit(s.channels.0), lit(s.channels.1));
    let bias = match s.bias {
        Some((b0, b1)) => {
            let (b0, b1) = (lit(b0), lit(b1));
            quote::quote!(#p::core::option::Option::Some(&self.biases[#b0..#b1]))
        }
        None => quote::quote!(#p::core::option::Option::None),
    };
    let code = quote::quote! {
        let W: &[i8] = &self.weights[#w0..#w1];
        let bias: #p::core::option::Option<&[i32]> = #bias;
        let stage = #p::quant::OutputStage {
            input_zero_point: self.quants[#input].zero_point,
            requant: &self.requant[#c0..#c1],
            output_zero_point: self.quants[#output].zero_point,
            clamp: self.clamps[#k],
        };
    };
    let activation = match io.fused {
        None => quote::quote!(None),
        Some(Fused::Relu) => quote::quote!(Relu),
        Some(Fused::Relu6) => quote::quote!(Relu6),
    };
    let layer = lit(io.layer);
    let multiplier = match linear_out {
        Some(out) if out > 1 => quote::quote! {
            if per_tensor[#k] {
                #p::quant::Requant::checked_per_tensor_linear(input.scale, weight_scales[c], out.scale)
            } else {
                #p::quant::Requant::checked_per_channel(input.scale, weight_scales[c], out.scale)
            }
        },
        _ => quote::quote!(#p::quant::Requant::checked_per_channel(input.scale, weight_scales[c], out.scale)),
    };
    let prepare = quote::quote! {
        let (input, out) = (quants[#input], outputs[#k]);
        let mut c = #c0;
        while c < #c1 {
            requant[c] = match #multiplier {
                #p::core::option::Option::Some(r) => r,
                #p::core::option::Option::None => {
                    return #p::core::result::Result::Err(#p::int8::Int8Error::MultiplierOutOfRange { layer: #layer });
                }
            };
            c += 1;
        }
        clamps[#k] = #p::quant::Clamp::for_activation(#p::quant::Activation::#activation, out.scale, out.zero_point);
    };
    (code, prepare)
}
