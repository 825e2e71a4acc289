//! The contract between `cnn_net!`'s int8 nets and generic code, as
//! [`crate::network`] is for float nets: every int8 net implements
//! [`Int8Network`].
//!
//! An int8 net holds, in arrays sized when it compiles, the tensors of an
//! int8 weights file ([`Int8Parts`]: int8 weights, int32 biases, one weight
//! scale per output channel, the quantization of the input and of every
//! conv's and linear layer's output) and what integer-only inference derives
//! from them once (requantization multipliers, output clamps, the
//! quantization of every layer's output, sigmoid/tanh input stages). A net
//! declared with `weights = "file"` builds them when the user's crate
//! compiles; one declared with `int8` and no file builds them at run time
//! from [`Int8Parts`] (e.g. `weights::int8::load`), through the same
//! `const fn`, so both compute the same bits.

use crate::quant::Quant;

/// A conv or linear layer of an int8 net: what its int8 file holds for it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8LayerInfo {
    /// Its `state_dict` name (the file's keys are `{key}.weight`, ...).
    pub key: &'static str,
    /// The float weight's shape (`[O, I/groups, KH, KW]` or `[out, in]`).
    pub weight_shape: &'static [usize],
    /// Whether it has a bias (`{key}.bias`, int32 `[O]`): the float
    /// layer's, or the one the batch norm folded into it gives.
    pub bias: bool,
    /// The batch norm after it that its int8 form folds in, if any.
    pub fold: Option<Int8Fold>,
    /// Its index in the float net's `LAYERS`.
    pub layer: usize,
    /// The index in the float net's `LAYERS` whose output this layer's
    /// output quantization describes: the layer itself, or the relu/relu6
    /// it fuses.
    pub output_layer: usize,
    /// The quantization point ([`Int8LayerInfo`]s numbered first, then
    /// [`Int8PointInfo`]s) whose output quantization this one's must equal:
    /// itself, or the first of the points that feed one `cat` (TFLite's
    /// CONCATENATION copies bytes, so its inputs share one quantization).
    pub tie: usize,
}

/// A batch norm that an int8 net folds into the conv or linear layer
/// before it (its only reader), as TFLite's converter does: the int8 file
/// holds the layer's folded weights and bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8Fold {
    /// Its `state_dict` name (`{key}.weight`, `{key}.running_mean`, ...).
    pub key: &'static str,
    /// Its `eps`.
    pub eps: f32,
}

/// A parameterless node of an int8 net with an output quantization of its
/// own in the file: an `add` (TFLite's ADD) or a `global_avgpool` (MEAN).
/// The file holds them in order as `points.scale` (F32 `[P]`) and
/// `points.zero_point` (I32 `[P]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int8PointInfo {
    /// What and where it is, for messages, e.g. `"add at 2"`.
    pub what: &'static str,
    /// The output its quantization describes, as
    /// [`Network::forward_traced`](crate::network::Network::forward_traced)
    /// numbers them: a layer's index in the float net's `LAYERS` (the point
    /// itself, or the relu/relu6 an `add` fuses), or `LAYERS.len() + j` for
    /// the output of the net's `j`-th join.
    pub output: usize,
    /// As [`Int8LayerInfo::tie`].
    pub tie: usize,
}

/// The tensors of an int8 file in an int8 net's order: its conv and linear
/// layers ([`Int8Network::INT8_LAYERS`]) one after another.
#[derive(Clone, Copy, Debug)]
pub struct Int8Parts<'a> {
    /// Every layer's int8 weights, concatenated (row-major, each as its
    /// float weight).
    pub weights: &'a [i8],
    /// Every bias, concatenated (layers without a bias hold none).
    pub biases: &'a [i32],
    /// One weight scale per output channel of every layer, concatenated
    /// (a file's single per-tensor scale repeated).
    pub weight_scales: &'a [f32],
    /// Per layer: the file gave one weight scale for all output channels
    /// (TFLite rounds a linear layer's multiplier differently then).
    pub per_tensor: &'a [bool],
    /// Per layer: its output's quantization.
    pub outputs: &'a [Quant],
    /// Per point ([`Int8Network::INT8_POINTS`]): its output's quantization.
    pub points: &'a [Quant],
    /// The input's quantization.
    pub input: Quant,
}

/// Why [`Int8Parts`] make no int8 net.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Error {
    /// The parts' lengths do not fit the net (a bug of the caller: loaders
    /// check shapes first).
    Lengths,
    /// Layer `layer` (a sigmoid or tanh) cannot take its input's scale:
    /// TFLite's fixed-point method needs at least `2^-27`.
    ScaleOutOfRange {
        /// The index of the layer in the float net's `LAYERS`.
        layer: usize,
    },
    /// Layer `layer` (a conv or linear layer) has a requantization
    /// multiplier `input_scale * weight_scale / output_scale` of `2^30` or
    /// more (or not finite), which int32 arithmetic cannot apply.
    MultiplierOutOfRange {
        /// The index of the layer in the float net's `LAYERS`.
        layer: usize,
    },
    /// Point `point` (an `add` or `global_avgpool`) cannot take the scales
    /// of its inputs and output: a multiplier int32 arithmetic cannot apply
    /// (an output scale below about `2^-19` of the inputs').
    PointOutOfRange {
        /// The index of the point in [`Int8Network::INT8_POINTS`].
        point: usize,
    },
    /// The inputs of the net's `join`-th join, a `cat`, have different
    /// quantizations (TFLite's CONCATENATION copies bytes: they must share
    /// one).
    CatQuantizations {
        /// The index of the join among the net's `add`s and `cat`s.
        join: usize,
    },
}

impl core::fmt::Display for Int8Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Int8Error::Lengths => f.write_str("the int8 tensors do not fit the net"),
            Int8Error::ScaleOutOfRange { layer } => write!(
                f,
                "layer {layer}: the input scale of a sigmoid or tanh must be at least 2^-27"
            ),
            Int8Error::MultiplierOutOfRange { layer } => write!(
                f,
                "layer {layer}: input scale * weight scale / output scale is 2^30 or more"
            ),
            Int8Error::PointOutOfRange { point } => write!(
                f,
                "quantization point {point} (an add or global_avgpool): its output scale is too small \
                 for its inputs' scales"
            ),
            Int8Error::CatQuantizations { join } => write!(
                f,
                "join {join} (a cat): its inputs' quantizations differ, and TFLite's CONCATENATION needs one"
            ),
        }
    }
}

/// An int8 net (generated by `cnn_net!`): integer-only inference with
/// TensorFlow Lite's int8 semantics.
pub trait Int8Network: Sized + Sync {
    /// The type name, e.g. `"LeNetInt8"`.
    const NAME: &'static str;
    /// Values of one input example.
    const INPUT_LEN: usize;
    /// Values of one output.
    const OUTPUT_LEN: usize;
    /// Bytes of scratch one example needs.
    const INFER_SCRATCH_BYTES: usize;
    /// Its conv and linear layers, in order.
    const INT8_LAYERS: &'static [Int8LayerInfo];
    /// Its `add`s and `global_avgpool`s, in program order: the nodes
    /// without parameters that have an output quantization of their own.
    const INT8_POINTS: &'static [Int8PointInfo];
    /// For each layer of the float net's `LAYERS`, the index in
    /// [`Int8Network::value_quants`] of the value it reads.
    const LAYER_INPUTS: &'static [usize];

    /// The net of `parts`.
    ///
    /// # Errors
    ///
    /// If the parts' lengths do not fit, or a scale is out of the range an
    /// op needs.
    fn from_parts(parts: &Int8Parts<'_>) -> Result<Self, Int8Error>;

    /// The input's quantization.
    fn input_quant(&self) -> Quant;

    /// The output's quantization.
    fn output_quant(&self) -> Quant;

    /// The quantization of every value: the input's, then each node's
    /// output in program order (in a chain, layer `i` reads value `i` and
    /// writes value `i + 1`).
    fn value_quants(&self) -> &[Quant];

    /// Integer-only inference on `n` examples (`input`: `n * INPUT_LEN`,
    /// `output`: `n * OUTPUT_LEN`, `scratch`: at least
    /// `n * INFER_SCRATCH_BYTES`).
    fn forward_n(&self, n: usize, input: &[i8], output: &mut [i8], scratch: &mut [i8]);
}

#[cfg(feature = "std")]
pub mod calibrate;
