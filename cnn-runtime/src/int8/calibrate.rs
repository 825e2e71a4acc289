//! Post-training quantization with TensorFlow Lite's int8 scheme: a float
//! net's activation ranges over calibration images ([`calibrate`]) and its
//! weights make the tensors of its int8 twin ([`quantize`]), which
//! [`predict`] runs.
//!
//! As TFLite's converter: weights are symmetric per output channel
//! (`scale = max |w| / 127`, values in `[-127, 127]`), activations
//! asymmetric per tensor from their observed `[min, max]` widened to hold 0
//! ([`Quant::from_range`]), biases int32 with `scale = input scale * weight
//! scale` and zero point 0. A conv or linear layer followed by relu/relu6
//! takes the range of the activation's output (the int8 op clamps instead);
//! sigmoid and tanh have TFLite's fixed output quantizations. An `add` (or
//! `global_avgpool`) gets the range of its output (after a relu it fuses),
//! and the points feeding one `cat` share the union of their ranges, as
//! TFLite's converter makes a concatenation's inputs share one
//! quantization.

use std::fmt;

use super::Int8Network;
use crate::network::Network;
use crate::quant::{self, Quant};
use crate::weights::int8::Int8Tensors;

/// Smallest and largest value seen at the input and at every layer's and
/// join's output.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranges {
    /// `(min, max)` of the input values.
    pub input: (f32, f32),
    /// `(min, max)` of each output as [`Network::forward_traced`] numbers
    /// them: each layer's, in `LAYERS` order, then each join's.
    pub outputs: Vec<(f32, f32)>,
    /// Examples seen.
    pub examples: usize,
}

/// Runs `net` on `images` (`INPUT_LEN` values each), `batch` at a time,
/// and records the range of every layer's and join's output.
///
/// # Panics
///
/// If `images` does not hold whole examples, or `batch` is 0.
pub fn calibrate<N: Network>(net: &N, images: &[f32], batch: usize) -> Ranges {
    assert!(batch > 0, "calibrate: batch must be positive");
    assert!(
        images.len().is_multiple_of(N::INPUT_LEN),
        "calibrate: {} values are not whole examples of {}",
        images.len(),
        N::INPUT_LEN
    );
    let empty = (f32::INFINITY, f32::NEG_INFINITY);
    let widen = |r: &mut (f32, f32), values: &[f32]| {
        for &v in values {
            if v < r.0 {
                r.0 = v;
            }
            if v > r.1 {
                r.1 = v;
            }
        }
    };
    let mut ranges = Ranges {
        input: empty,
        outputs: vec![empty; N::LAYERS.len()],
        examples: images.len() / N::INPUT_LEN,
    };
    let mut workspace = vec![0.0f32; N::forward_workspace_len(batch)];
    let mut output = vec![0.0f32; batch * N::OUTPUT_LEN];
    for chunk in images.chunks(batch * N::INPUT_LEN) {
        let n = chunk.len() / N::INPUT_LEN;
        widen(&mut ranges.input, chunk);
        let outputs = &mut ranges.outputs;
        net.forward_traced(
            n,
            chunk,
            &mut output[..n * N::OUTPUT_LEN],
            &mut workspace[..N::forward_workspace_len(n)],
            &mut |k, values| {
                if outputs.len() <= k {
                    outputs.resize(k + 1, empty);
                }
                widen(&mut outputs[k], values);
            },
        );
    }
    ranges
}

/// Why a float net could not be quantized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizeError(String);

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuantizeError {}

/// The tensors of `Q` (an int8 net with the layers of `N`) from `net`'s
/// weights and the activation `ranges` of [`calibrate`].
///
/// # Errors
///
/// If `Q`'s layers are not `N`'s (a key or shape differs), the ranges are
/// not `N`'s, or a value is not finite.
pub fn quantize<N: Network, Q: Int8Network>(net: &N, ranges: &Ranges) -> Result<Int8Tensors, QuantizeError> {
    let fail = |m: String| Err(QuantizeError(m));
    if ranges.outputs.len() < N::LAYERS.len() || ranges.examples == 0 {
        return fail(format!("the calibration ranges are not those of {}", N::NAME));
    }
    let params = net.params();
    let tensor = |key: String| N::TENSORS.iter().find(|t| t.key == key);
    let mut t = Int8Tensors {
        weights: Vec::new(),
        biases: Vec::new(),
        weight_scales: Vec::new(),
        per_tensor: Vec::new(),
        outputs: Vec::new(),
        points: Vec::new(),
        input: Quant::from_range(ranges.input.0, ranges.input.1),
    };
    // Each point's range: its output's, widened to its tie group's.
    let range_of = |output: usize| ranges.outputs.get(output).copied().unwrap_or((0.0, 0.0));
    let owners: Vec<(usize, usize)> = Q::INT8_LAYERS
        .iter()
        .map(|l| (l.output_layer, l.tie))
        .chain(Q::INT8_POINTS.iter().map(|p| (p.output, p.tie)))
        .collect();
    let mut group = vec![(f32::INFINITY, f32::NEG_INFINITY); owners.len()];
    for &(output, tie) in &owners {
        let Some(g) = group.get_mut(tie) else {
            return fail(format!(
                "{}: a quantization point ties to point {tie}, which it has not",
                Q::NAME
            ));
        };
        let (min, max) = range_of(output);
        *g = (g.0.min(min), g.1.max(max));
    }
    let owner_quant = |k: usize| {
        let (min, max) = group[owners[k].1];
        Quant::from_range(min, max)
    };
    let mut float_biases = Vec::new();
    for l in Q::INT8_LAYERS {
        let Some(w) = tensor(format!("{}.weight", l.key)).filter(|w| w.shape == l.weight_shape) else {
            return fail(format!(
                "{} has no tensor \"{}.weight\" of shape {:?}: {} is not its int8 twin",
                N::NAME,
                l.key,
                l.weight_shape,
                Q::NAME
            ));
        };
        let out = l.weight_shape[0];
        let mut values = w.slice(params).to_vec();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return fail(format!("tensor \"{}\": value {i} is not finite", w.key));
        }
        let mut bias = match tensor(format!("{}.bias", l.key)) {
            Some(b) if b.len == out => b.slice(params).to_vec(),
            // A layer without a bias gets one from the batch norm folded
            // into it.
            None if l.fold.is_some() => vec![0.0; out],
            _ if !l.bias => Vec::new(),
            _ => {
                return fail(format!(
                    "{} has no tensor \"{}.bias\" of {out} values",
                    N::NAME,
                    l.key
                ))
            }
        };
        if let Some(fold) = &l.fold {
            fold_batchnorm::<N>(net, fold, &mut values, &mut bias)?;
        }
        for row in values.chunks(values.len() / out) {
            let largest = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // An all-zero channel: any scale gives zeros; 1 keeps its bias
            // scale reasonable.
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            t.weight_scales.push(scale);
            t.weights.extend(
                row.iter()
                    .map(|&v| quant::round_half_away(v / scale).clamp(-127.0, 127.0) as i8),
            );
        }
        t.per_tensor.push(false);
        if l.bias {
            float_biases.extend_from_slice(&bias);
        }
        t.outputs.push(owner_quant(t.outputs.len()));
    }
    t.points = (0..Q::INT8_POINTS.len())
        .map(|p| owner_quant(Q::INT8_LAYERS.len() + p))
        .collect();
    // The biases' scales need each layer's input quantization, which the
    // int8 net derives from the parts (an earlier layer's output, or a
    // sigmoid's fixed one): derive it once with zero biases.
    t.biases = vec![0; float_biases.len()];
    let quants = Q::from_parts(&t.parts())
        .map_err(|e| QuantizeError(format!("the calibrated scales make no int8 net: {e}")))?
        .value_quants()
        .to_vec();
    let (mut b, mut c) = (0, 0);
    for l in Q::INT8_LAYERS {
        let out = l.weight_shape[0];
        if l.bias {
            let input_scale = f64::from(quants[Q::LAYER_INPUTS[l.layer]].scale);
            for k in 0..out {
                let scale = input_scale * f64::from(t.weight_scales[c + k]);
                let q = (f64::from(float_biases[b + k]) / scale).round();
                t.biases[b + k] = q.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
            }
            b += out;
        }
        c += out;
    }
    Ok(t)
}

/// Folds the batch norm `fold` (at inference: `y = x * s + (beta - mean *
/// s)` with `s = gamma / sqrt(var + eps)`, per output channel) into the
/// `weight` rows and `bias` of the layer before it, as TFLite's converter
/// does.
fn fold_batchnorm<N: Network>(
    net: &N,
    fold: &super::Int8Fold,
    weight: &mut [f32],
    bias: &mut [f32],
) -> Result<(), QuantizeError> {
    let missing = |what: &str| {
        QuantizeError(format!(
            "{} has no batch norm {what} \"{}.{what}\"",
            N::NAME,
            fold.key
        ))
    };
    let param = |what: &str| {
        crate::network::tensor(N::TENSORS, net.params(), &format!("{}.{what}", fold.key))
            .ok_or_else(|| missing(what))
    };
    let buffer = |what: &str| {
        crate::network::tensor(N::BUFFERS, net.buffers(), &format!("{}.{what}", fold.key))
            .ok_or_else(|| missing(what))
    };
    let (gamma, beta) = (param("weight")?, param("bias")?);
    let (mean, var) = (buffer("running_mean")?, buffer("running_var")?);
    let out = bias.len();
    if [gamma.len(), beta.len(), mean.len(), var.len()]
        .iter()
        .any(|&len| len != out)
    {
        return Err(QuantizeError(format!(
            "batch norm \"{}\" does not have the {out} channels of the layer before it",
            fold.key
        )));
    }
    for (c, row) in weight.chunks_mut(weight.len() / out.max(1)).enumerate() {
        // As the float net's inference computes it (`forward_eval`).
        let scale = gamma[c] / libm::sqrtf(var[c] + fold.eps);
        let shift = beta[c] - mean[c] * scale;
        for w in row.iter_mut() {
            *w *= scale;
        }
        bias[c] = bias[c] * scale + shift;
    }
    if weight.iter().chain(bias.iter()).any(|v| !v.is_finite()) {
        return Err(QuantizeError(format!(
            "batch norm \"{}\" folds to values that are not finite",
            fold.key
        )));
    }
    Ok(())
}

/// The class (arg-max of the int8 outputs, the first on ties) `net` gives
/// each example of `images` (`INPUT_LEN` f32 values each), quantized with
/// the net's input quantization; on `crate::train::threads()` threads.
///
/// # Panics
///
/// If `images` does not hold whole examples.
pub fn predict<Q: Int8Network>(net: &Q, images: &[f32]) -> Vec<usize> {
    assert!(
        images.len().is_multiple_of(Q::INPUT_LEN),
        "predict: partial example"
    );
    let n = images.len() / Q::INPUT_LEN;
    let per_thread = n.div_ceil(crate::train::threads().max(1)).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = images
            .chunks(per_thread * Q::INPUT_LEN)
            .map(|part| s.spawn(move || predict_on_this_thread(net, part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("an int8 inference thread panicked"))
            .collect()
    })
}

/// [`predict`] on the calling thread.
fn predict_on_this_thread<Q: Int8Network>(net: &Q, images: &[f32]) -> Vec<usize> {
    const BATCH: usize = 64;
    let input = net.input_quant();
    let mut q = vec![0i8; BATCH * Q::INPUT_LEN];
    let mut y = vec![0i8; BATCH * Q::OUTPUT_LEN];
    let mut scratch = vec![0i8; BATCH * Q::INFER_SCRATCH_BYTES];
    let mut classes = Vec::with_capacity(images.len() / Q::INPUT_LEN);
    for chunk in images.chunks(BATCH * Q::INPUT_LEN) {
        let n = chunk.len() / Q::INPUT_LEN;
        quant::quantize_slice(chunk, input.scale, input.zero_point, &mut q[..chunk.len()]);
        net.forward_n(
            n,
            &q[..chunk.len()],
            &mut y[..n * Q::OUTPUT_LEN],
            &mut scratch[..n * Q::INFER_SCRATCH_BYTES],
        );
        classes.extend(y[..n * Q::OUTPUT_LEN].chunks(Q::OUTPUT_LEN).map(|o| {
            let mut best = 0;
            for (i, &v) in o.iter().enumerate() {
                if v > o[best] {
                    best = i;
                }
            }
            best
        }));
    }
    classes
}
