//! int8 weights files: safetensors with metadata `"cnn.format": "int8"`,
//! which `cnn quantize` writes, `cnn_net!` bakes (`weights = "file"`) and
//! [`load`] reads into an int8 net at run time.
//!
//! Keys (the float net's `state_dict` names for the layers):
//! - `input.scale` (F32, one value) and `input.zero_point` (I32, one value);
//! - for every conv and linear layer `K`: `K.weight` (I8, the float
//!   weight's shape, symmetric), `K.bias` (I32 `[O]`, if the layer has a
//!   bias; scale `input scale * weight scale`, zero point 0),
//!   `K.weight_scale` (F32 `[O]`, or `[1]` for all outputs),
//!   `K.output_scale` (F32) and `K.output_zero_point` (I32): the output's
//!   quantization after a fused relu or relu6;
//! - if the net has `add`s or `global_avgpool`s (its
//!   [`Int8Network::INT8_POINTS`]): `points.scale` (F32 `[P]`) and
//!   `points.zero_point` (I32 `[P]`), their output quantizations in program
//!   order.
//!
//! The compile-time reader in `cnn_net!` checks the same rules and reports
//! them as compile errors.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::{check_safetensors_keys, io_error, not_safetensors, write_atomic, WeightsError, INT8_FORMAT};
use crate::int8::{Int8LayerInfo, Int8Network, Int8Parts, Int8PointInfo};
use crate::quant::Quant;

/// The tensors of an int8 file, read and checked against a net's layers
/// ([`Int8Parts`] borrows them).
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Tensors {
    /// See [`Int8Parts::weights`].
    pub weights: Vec<i8>,
    /// See [`Int8Parts::biases`].
    pub biases: Vec<i32>,
    /// See [`Int8Parts::weight_scales`].
    pub weight_scales: Vec<f32>,
    /// See [`Int8Parts::per_tensor`].
    pub per_tensor: Vec<bool>,
    /// See [`Int8Parts::outputs`].
    pub outputs: Vec<Quant>,
    /// See [`Int8Parts::points`].
    pub points: Vec<Quant>,
    /// See [`Int8Parts::input`].
    pub input: Quant,
}

impl Int8Tensors {
    /// The parts, borrowed.
    pub fn parts(&self) -> Int8Parts<'_> {
        Int8Parts {
            weights: &self.weights,
            biases: &self.biases,
            weight_scales: &self.weight_scales,
            per_tensor: &self.per_tensor,
            outputs: &self.outputs,
            points: &self.points,
            input: self.input,
        }
    }
}

/// One tensor of the file, by key.
struct File<'a> {
    tensors: HashMap<String, TensorView<'a>>,
}

impl File<'_> {
    fn take(&mut self, key: &str, dtype: Dtype, shapes: &[&[usize]]) -> Result<Vec<u8>, WeightsError> {
        let Some(view) = self.tensors.remove(key) else {
            return Err(WeightsError::MissingKey {
                key: key.to_owned(),
                expected: shapes.first().map_or_else(Vec::new, |s| s.to_vec()),
            });
        };
        if view.dtype() != dtype {
            return Err(WeightsError::Int8Value {
                key: key.to_owned(),
                message: format!("dtype {}, expected {dtype}", view.dtype()),
            });
        }
        if !shapes.contains(&view.shape()) {
            return Err(WeightsError::ShapeMismatch {
                key: key.to_owned(),
                expected: shapes.first().map_or_else(Vec::new, |s| s.to_vec()),
                found: view.shape().to_vec(),
            });
        }
        Ok(view.data().to_vec())
    }

    fn i32s(&mut self, key: &str, shapes: &[&[usize]]) -> Result<Vec<i32>, WeightsError> {
        let bytes = self.take(key, Dtype::I32, shapes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Positive, finite F32 scales.
    fn scales(&mut self, key: &str, shapes: &[&[usize]]) -> Result<Vec<f32>, WeightsError> {
        let bytes = self.take(key, Dtype::F32, shapes)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(WeightsError::Int8Value {
                key: key.to_owned(),
                message: format!("scale {i} is {}, expected a positive finite number", values[i]),
            });
        }
        Ok(values)
    }

    fn quant(&mut self, prefix: &str) -> Result<Quant, WeightsError> {
        const ONE: &[&[usize]] = &[&[], &[1]];
        Ok(self.quants(&format!("{prefix}.scale"), &format!("{prefix}.zero_point"), ONE)?[0])
    }

    /// Quantizations from a tensor of scales and one of zero points of a
    /// shape among `shapes`.
    fn quants(
        &mut self,
        scale: &str,
        zero_point: &str,
        shapes: &[&[usize]],
    ) -> Result<Vec<Quant>, WeightsError> {
        let scales = self.scales(scale, shapes)?;
        let zero_points = self.i32s(zero_point, shapes)?;
        if let Some(z) = zero_points.iter().find(|z| !(-128..=127).contains(*z)) {
            return Err(WeightsError::Int8Value {
                key: zero_point.to_owned(),
                message: format!("zero point {z} is outside the int8 range"),
            });
        }
        Ok(scales
            .into_iter()
            .zip(zero_points)
            .map(|(scale, zero_point)| Quant { scale, zero_point })
            .collect())
    }
}

/// Reads an int8 file for a net with `layers` and `points` (its
/// [`Int8Network::INT8_LAYERS`] and [`Int8Network::INT8_POINTS`]).
///
/// # Errors
///
/// The first problem found: not a safetensors file, a float file
/// ([`WeightsError::NotInt8`]), a missing, unexpected or misshapen tensor,
/// a wrong dtype, a scale that is not positive and finite, a zero point
/// outside int8.
pub fn read(
    bytes: &[u8],
    layers: &[Int8LayerInfo],
    points: &[Int8PointInfo],
) -> Result<Int8Tensors, WeightsError> {
    let parsed = SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(bytes, e))?;
    check_safetensors_keys(bytes)?;
    if !super::is_int8(bytes) {
        return Err(WeightsError::NotInt8);
    }
    let mut file = File {
        tensors: parsed.tensors().into_iter().collect(),
    };
    let mut t = Int8Tensors {
        weights: Vec::new(),
        biases: Vec::new(),
        weight_scales: Vec::new(),
        per_tensor: Vec::new(),
        outputs: Vec::new(),
        points: Vec::new(),
        input: file.quant("input")?,
    };
    for l in layers {
        let key = l.key;
        let out = l.weight_shape.first().copied().unwrap_or(0);
        let w = file.take(&format!("{key}.weight"), Dtype::I8, &[l.weight_shape])?;
        t.weights.extend(w.iter().map(|&b| b as i8));
        if l.bias {
            t.biases.extend(file.i32s(&format!("{key}.bias"), &[&[out]])?);
        }
        let scales = file.scales(&format!("{key}.weight_scale"), &[&[out], &[1]])?;
        t.per_tensor.push(scales.len() == 1);
        t.weight_scales
            .extend((0..out).map(|c| scales[c.min(scales.len() - 1)]));
        let output = file.quants(
            &format!("{key}.output_scale"),
            &format!("{key}.output_zero_point"),
            &[&[], &[1]],
        )?;
        t.outputs.push(output[0]);
    }
    if !points.is_empty() {
        t.points = file.quants("points.scale", "points.zero_point", &[&[points.len()]])?;
    }
    let mut extra: Vec<&String> = file.tensors.keys().collect();
    extra.sort();
    if let Some(key) = extra.first() {
        return Err(WeightsError::UnexpectedKey { key: (*key).clone() });
    }
    Ok(t)
}

/// The int8 net `N` of an int8 file's bytes.
///
/// # Errors
///
/// As [`read`], and [`WeightsError::Int8`] if the scales are out of the
/// range TFLite's int8 arithmetic takes.
pub fn load<N: Int8Network>(bytes: &[u8]) -> Result<N, WeightsError> {
    let t = read(bytes, N::INT8_LAYERS, N::INT8_POINTS)?;
    N::from_parts(&t.parts()).map_err(WeightsError::Int8)
}

/// [`load`] from a file.
///
/// # Errors
///
/// As [`load`], and [`WeightsError::Io`] if the file cannot be read.
pub fn load_file<N: Int8Network>(path: &Path) -> Result<N, WeightsError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    load(&bytes)
}

/// The int8 file of `parts` for a net with `layers` and `points`, with
/// `metadata` besides the format mark. Per-tensor layers get one weight
/// scale (`[1]`).
///
/// # Panics
///
/// If the parts do not fit the layers.
pub fn to_safetensors(
    layers: &[Int8LayerInfo],
    points: &[Int8PointInfo],
    parts: &Int8Parts<'_>,
    metadata: &[(&str, &str)],
) -> Vec<u8> {
    fn bytes<T: Copy, const N: usize>(v: &[T], to: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| to(x)).collect()
    }
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "input.scale".into(),
            Dtype::F32,
            vec![],
            bytes(&[parts.input.scale], f32::to_le_bytes),
        ),
        (
            "input.zero_point".into(),
            Dtype::I32,
            vec![],
            bytes(&[parts.input.zero_point], i32::to_le_bytes),
        ),
    ];
    let (mut w, mut b, mut c) = (0, 0, 0);
    for (k, l) in layers.iter().enumerate() {
        let key = l.key;
        let out = l.weight_shape[0];
        let len: usize = l.weight_shape.iter().product();
        let weight = bytes(&parts.weights[w..w + len], |v: i8| v.to_le_bytes());
        tensors.push((
            format!("{key}.weight"),
            Dtype::I8,
            l.weight_shape.to_vec(),
            weight,
        ));
        w += len;
        if l.bias {
            let bias = bytes(&parts.biases[b..b + out], i32::to_le_bytes);
            tensors.push((format!("{key}.bias"), Dtype::I32, vec![out], bias));
            b += out;
        }
        let scales = if parts.per_tensor[k] {
            &parts.weight_scales[c..c + 1]
        } else {
            &parts.weight_scales[c..c + out]
        };
        tensors.push((
            format!("{key}.weight_scale"),
            Dtype::F32,
            vec![scales.len()],
            bytes(scales, f32::to_le_bytes),
        ));
        c += out;
        let q = parts.outputs[k];
        tensors.push((
            format!("{key}.output_scale"),
            Dtype::F32,
            vec![],
            bytes(&[q.scale], f32::to_le_bytes),
        ));
        tensors.push((
            format!("{key}.output_zero_point"),
            Dtype::I32,
            vec![],
            bytes(&[q.zero_point], i32::to_le_bytes),
        ));
    }
    assert!(
        w == parts.weights.len()
            && b == parts.biases.len()
            && c == parts.weight_scales.len()
            && points.len() == parts.points.len(),
        "int8 parts do not fit the layers"
    );
    if !points.is_empty() {
        let scales: Vec<f32> = parts.points.iter().map(|q| q.scale).collect();
        let zero_points: Vec<i32> = parts.points.iter().map(|q| q.zero_point).collect();
        tensors.push((
            "points.scale".into(),
            Dtype::F32,
            vec![points.len()],
            bytes(&scales, f32::to_le_bytes),
        ));
        tensors.push((
            "points.zero_point".into(),
            Dtype::I32,
            vec![points.len()],
            bytes(&zero_points, i32::to_le_bytes),
        ));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s, b)| {
            let view = TensorView::new(*d, s.clone(), b).expect("shape and bytes agree");
            (k.clone(), view)
        })
        .collect();
    let mut meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.insert(INT8_FORMAT.0.to_owned(), INT8_FORMAT.1.to_owned());
    safetensors::serialize(views, Some(meta)).expect("serializing in-memory tensors")
}

/// [`to_safetensors`] written atomically to `path` (a crash leaves the old
/// file or the new one, never a partial one).
///
/// # Errors
///
/// [`WeightsError::Io`] if the file cannot be written.
pub fn save(
    layers: &[Int8LayerInfo],
    points: &[Int8PointInfo],
    parts: &Int8Parts<'_>,
    metadata: &[(&str, &str)],
    path: &Path,
) -> Result<(), WeightsError> {
    write_atomic(path, &to_safetensors(layers, points, parts, metadata)).map_err(io_error(path))
}
