//! `weights = "file"`: parameters read while the macro expands, checked
//! against the planned tensors, and baked into the binary as a constant the
//! compiler places in read-only memory.
//!
//! The path is relative to the calling crate's `CARGO_MANIFEST_DIR`. The
//! generated code `include_bytes!`s the file too, only so that cargo rebuilds
//! the crate when the file changes.

use crate::ctxt::Errors;
use crate::ops::Role;
use crate::plan::Tensor;
use std::collections::HashMap;
use std::path::PathBuf;
use syn::LitStr;

/// The parameters (and buffers) of a net, read from a weights file.
pub struct Baked {
    /// Every parameter, in the flat `state_dict` order of the plan.
    pub values: Vec<f32>,
    /// Every buffer (batch norm's running statistics and step counts), in
    /// the plan's buffer order; empty for a net without buffers.
    pub buffers: Vec<f32>,
    /// The absolute path read, for rebuild tracking.
    pub path: String,
}

/// One tensor as the file holds it.
struct FileTensor {
    shape: Vec<usize>,
    values: Result<Vec<f32>, String>,
    /// Stored as integers (a safetensors `I64`, as PyTorch saves
    /// `num_batches_tracked`): only a step count may be.
    integer: bool,
}

/// The file named by `weights = "..."`, read once for whichever loader
/// takes it (float here, int8 in `crate::int8`).
pub struct WeightsFile {
    /// The path as the user wrote it, for messages.
    pub relative: String,
    /// The absolute path read, for messages and rebuild tracking.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Reads the file named by `lit` (relative to `CARGO_MANIFEST_DIR`), or
/// reports why it cannot at `lit`.
pub fn read(lit: &LitStr, errors: &mut Errors) -> Option<WeightsFile> {
    let relative = lit.value();
    let Ok(root) = std::env::var("CARGO_MANIFEST_DIR") else {
        errors.push(
            lit.span(),
            "cannot resolve the weights path: CARGO_MANIFEST_DIR is not set (build with cargo)",
        );
        return None;
    };
    let path = PathBuf::from(root).join(&relative);
    let shown = path.display().to_string();
    match std::fs::read(&path) {
        Ok(bytes) => Some(WeightsFile {
            relative,
            path: shown,
            bytes,
        }),
        Err(e) => {
            errors.push(lit.span(), format!("cannot read weights file `{shown}`: {e}"));
            None
        }
    }
}

/// Checks the float weights `file` (named by `lit`) against the net's
/// parameter table (`tensors`, `param_count` elements) and buffer table
/// (`buffers`, `buffer_count` elements); every problem becomes an error at
/// `lit`, all of them at once.
pub fn load(
    lit: &LitStr,
    file: &WeightsFile,
    (tensors, param_count): (&[Tensor], usize),
    (buffers, buffer_count): (&[Tensor], usize),
    errors: &mut Errors,
) -> Option<Baked> {
    let before = errors.count();
    let WeightsFile {
        relative,
        path: shown,
        bytes,
    } = file;
    let parsed = if relative.ends_with(".safetensors") {
        read_safetensors(bytes)
    } else if relative.ends_with(".json") {
        read_json(bytes)
    } else {
        Err("expected a `.safetensors` or `.json` file".to_string())
    };
    let mut file = match parsed {
        Ok(file) => file,
        Err(message) => {
            errors.push(lit.span(), format!("weights file `{relative}`: {message}"));
            return None;
        }
    };

    let mut values = vec![0.0f32; param_count];
    let mut buffer_values = vec![0.0f32; buffer_count];
    let placed = tensors
        .iter()
        .map(|t| (t, false))
        .chain(buffers.iter().map(|t| (t, true)));
    for (t, is_buffer) in placed {
        let Some(found) = file.remove(&t.key) else {
            errors.push(
                lit.span(),
                format!(
                    "weights file `{relative}`: missing tensor \"{}\" (expected shape {:?})",
                    t.key, t.shape
                ),
            );
            continue;
        };
        let data = match found.values {
            Ok(data) => data,
            Err(message) => {
                errors.push(
                    lit.span(),
                    format!("weights file `{relative}`: tensor \"{}\": {message}", t.key),
                );
                continue;
            }
        };
        let counts_steps = t.role == Role::BatchesTracked;
        if found.integer && !counts_steps {
            errors.push(
                lit.span(),
                format!(
                    "weights file `{relative}`: tensor \"{}\": dtype I64, expected F32",
                    t.key
                ),
            );
        } else if found.shape != t.shape {
            errors.push(
                lit.span(),
                format!(
                    "weights file `{relative}`: tensor \"{}\": expected shape {:?}, found {:?}",
                    t.key, t.shape, found.shape
                ),
            );
        } else if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            errors.push(
                lit.span(),
                format!(
                    "weights file `{relative}`: tensor \"{}\": value {i} is not finite",
                    t.key
                ),
            );
        } else if let Some(i) = data
            .iter()
            .position(|&v| counts_steps && (v < 0.0 || v.fract() != 0.0))
        {
            errors.push(
                lit.span(),
                format!(
                    "weights file `{relative}`: tensor \"{}\": value {i} ({}) is not a step count",
                    t.key, data[i]
                ),
            );
        } else {
            let dst = if is_buffer {
                &mut buffer_values
            } else {
                &mut values
            };
            dst[t.offset..t.offset + t.len].copy_from_slice(&data);
        }
    }
    let mut extra: Vec<&String> = file.keys().collect();
    extra.sort();
    for key in extra {
        errors.push(
            lit.span(),
            format!("weights file `{relative}`: unexpected tensor \"{key}\" (the net has no such parameter or buffer)"),
        );
    }
    (errors.count() == before).then(|| Baked {
        values,
        buffers: buffer_values,
        path: shown.clone(),
    })
}

fn read_safetensors(bytes: &[u8]) -> Result<HashMap<String, FileTensor>, String> {
    let file =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    Ok(file
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let integer = view.dtype() == safetensors::Dtype::I64;
            let values = match view.dtype() {
                safetensors::Dtype::F32 => Ok(view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()),
                // Step counts: exact in f32 up to 2^24 steps, as the
                // runtime's loader keeps them.
                safetensors::Dtype::I64 => Ok(view
                    .data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                    .collect()),
                dtype => Err(format!("dtype {dtype:?}, expected F32")),
            };
            (
                key,
                FileTensor {
                    shape: view.shape().to_vec(),
                    values,
                    integer,
                },
            )
        })
        .collect())
}

fn read_json(bytes: &[u8]) -> Result<HashMap<String, FileTensor>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or("expected an object mapping keys to {\"shape\", \"data\"}")?;
    let mut out = HashMap::new();
    for (key, entry) in object {
        let shape: Option<Vec<usize>> = entry["shape"]
            .as_array()
            .and_then(|dims| dims.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let shape = shape.ok_or_else(|| format!("tensor \"{key}\": missing or bad \"shape\""))?;
        let values = entry["data"]
            .as_array()
            .and_then(|data| {
                data.iter()
                    .map(|v| v.as_f64().map(|v| v as f32))
                    .collect::<Option<Vec<f32>>>()
            })
            .ok_or_else(|| "missing or bad \"data\"".to_string())
            .and_then(|data| {
                // Saturating: a shape whose product overflows matches no data.
                let expected = shape.iter().fold(1usize, |a, &d| a.saturating_mul(d));
                if data.len() == expected {
                    Ok(data)
                } else {
                    Err(format!(
                        "{} values for shape {shape:?} ({expected} expected)",
                        data.len()
                    ))
                }
            });
        out.insert(
            key.clone(),
            FileTensor {
                shape,
                values,
                integer: false,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Role;
    use proc_macro2::Span;
    use safetensors::tensor::TensorView;

    fn table() -> Vec<Tensor> {
        let t = |key: &str, shape: Vec<usize>, offset, is_bias: bool| Tensor {
            len: shape.iter().product(),
            key: key.to_string(),
            shape,
            offset,
            role: if is_bias { Role::Bias } else { Role::Weight },
            fan_in: 2,
            fan_out: 3,
        };
        vec![t("0.weight", vec![3, 2], 0, false), t("0.bias", vec![3], 6, true)]
    }

    fn write(name: &str, bytes: &[u8]) -> String {
        let dir = std::env::temp_dir().join(format!("cnn-macros-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn safetensors_file(tensors: &[(&str, Vec<usize>, Vec<f32>)], dtype: safetensors::Dtype) -> Vec<u8> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(k, s, v)| {
                (
                    k.to_string(),
                    s.clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(k, s, b)| {
                // A 16-bit dtype keeps the shape and takes half the bytes.
                let b = if dtype == safetensors::Dtype::F32 {
                    &b[..]
                } else {
                    &b[..b.len() / 2]
                };
                (k.clone(), TensorView::new(dtype, s.clone(), b).unwrap())
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn load_path(path: &str) -> (Option<Baked>, Vec<String>) {
        let mut errors = Errors::default();
        let lit = LitStr::new(path, Span::call_site());
        let baked =
            read(&lit, &mut errors).and_then(|file| load(&lit, &file, (&table(), 9), (&[], 0), &mut errors));
        (baked, errors.messages())
    }

    #[test]
    fn loads_safetensors_and_json_in_table_order() {
        let w = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = vec![-0.5, 0.25, 7.0];
        let st = write(
            "ok.safetensors",
            &safetensors_file(
                &[
                    ("0.bias", vec![3], b.clone()),
                    ("0.weight", vec![3, 2], w.clone()),
                ],
                safetensors::Dtype::F32,
            ),
        );
        let (baked, errors) = load_path(&st);
        assert!(errors.is_empty(), "{errors:?}");
        let expected: Vec<f32> = w.iter().chain(&b).copied().collect();
        assert_eq!(baked.unwrap().values, expected);

        let json = write(
            "ok.json",
            br#"{"0.weight": {"shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}, "0.bias": {"shape": [3], "data": [-0.5, 0.25, 7]}}"#,
        );
        let (baked, errors) = load_path(&json);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(baked.unwrap().values, expected);
    }

    #[test]
    fn every_mismatch_is_reported_at_once() {
        let st = write(
            "bad.safetensors",
            &safetensors_file(
                &[
                    ("0.weight", vec![2, 3], vec![0.0; 6]),
                    ("1.weight", vec![1], vec![0.0]),
                ],
                safetensors::Dtype::F32,
            ),
        );
        let (baked, errors) = load_path(&st);
        assert!(baked.is_none());
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("tensor \"0.weight\": expected shape [3, 2], found [2, 3]"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("missing tensor \"0.bias\" (expected shape [3])"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("unexpected tensor \"1.weight\""),
            "{}",
            errors[2]
        );
    }

    /// A batch norm's buffers: running statistics and the step count.
    fn buffer_table() -> Vec<Tensor> {
        let t = |key: &str, shape: Vec<usize>, offset, role| Tensor {
            len: shape.iter().product(),
            key: key.to_string(),
            shape,
            offset,
            role,
            fan_in: 1,
            fan_out: 1,
        };
        vec![
            t("1.running_mean", vec![2], 0, Role::RunningMean),
            t("1.running_var", vec![2], 2, Role::RunningVar),
            t("1.num_batches_tracked", vec![], 4, Role::BatchesTracked),
        ]
    }

    /// A safetensors file of `0.weight` (F32) and a step count of `steps`
    /// stored as `dtype`, plus the running statistics.
    fn with_buffers(steps: i64, count_dtype: safetensors::Dtype, bias_dtype: safetensors::Dtype) -> Vec<u8> {
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let weight = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let bias = match bias_dtype {
            safetensors::Dtype::I64 => [7i64, 8, 9].iter().flat_map(|x| x.to_le_bytes()).collect(),
            _ => f32s(&[7.0, 8.0, 9.0]),
        };
        let (mean, var) = (f32s(&[0.5, -0.5]), f32s(&[2.0, 3.0]));
        let count: Vec<u8> = match count_dtype {
            safetensors::Dtype::I64 => steps.to_le_bytes().to_vec(),
            _ => f32s(&[steps as f32]),
        };
        let views = vec![
            (
                "0.weight",
                TensorView::new(safetensors::Dtype::F32, vec![3, 2], &weight).unwrap(),
            ),
            ("0.bias", TensorView::new(bias_dtype, vec![3], &bias).unwrap()),
            (
                "1.running_mean",
                TensorView::new(safetensors::Dtype::F32, vec![2], &mean).unwrap(),
            ),
            (
                "1.running_var",
                TensorView::new(safetensors::Dtype::F32, vec![2], &var).unwrap(),
            ),
            (
                "1.num_batches_tracked",
                TensorView::new(count_dtype, vec![], &count).unwrap(),
            ),
        ];
        safetensors::serialize(views, None).unwrap()
    }

    fn load_with_buffers(path: &str) -> (Option<Baked>, Vec<String>) {
        let mut errors = Errors::default();
        let lit = LitStr::new(path, Span::call_site());
        let baked = read(&lit, &mut errors)
            .and_then(|file| load(&lit, &file, (&table(), 9), (&buffer_table(), 5), &mut errors));
        (baked, errors.messages())
    }

    #[test]
    fn bakes_buffers_with_pytorch_int64_step_counts() {
        let st = write(
            "bn.safetensors",
            &with_buffers(12, safetensors::Dtype::I64, safetensors::Dtype::F32),
        );
        let (baked, errors) = load_with_buffers(&st);
        assert!(errors.is_empty(), "{errors:?}");
        let baked = baked.unwrap();
        assert_eq!(baked.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(baked.buffers, [0.5, -0.5, 2.0, 3.0, 12.0]);

        // As the runtime saves it without PyTorch: an f32 count.
        let st = write(
            "bn32.safetensors",
            &with_buffers(3, safetensors::Dtype::F32, safetensors::Dtype::F32),
        );
        let (baked, errors) = load_with_buffers(&st);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(baked.unwrap().buffers[4], 3.0);

        let json = write(
            "bn.json",
            br#"{"0.weight": {"shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}, "0.bias": {"shape": [3], "data": [7, 8, 9]},
                "1.running_mean": {"shape": [2], "data": [0.5, -0.5]}, "1.running_var": {"shape": [2], "data": [2, 3]},
                "1.num_batches_tracked": {"shape": [], "data": [12]}}"#,
        );
        let (baked, errors) = load_with_buffers(&json);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(baked.unwrap().buffers, [0.5, -0.5, 2.0, 3.0, 12.0]);
    }

    #[test]
    fn integers_only_where_steps_are_counted() {
        let st = write(
            "bn-neg.safetensors",
            &with_buffers(-1, safetensors::Dtype::I64, safetensors::Dtype::I64),
        );
        let (baked, errors) = load_with_buffers(&st);
        assert!(baked.is_none());
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("tensor \"0.bias\": dtype I64, expected F32"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("tensor \"1.num_batches_tracked\": value 0 (-1) is not a step count"),
            "{}",
            errors[1]
        );

        // Missing buffers are named like missing parameters.
        let (_, errors) = load_with_buffers(&write(
            "no-bn.json",
            br#"{"0.weight": {"shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}, "0.bias": {"shape": [3], "data": [7, 8, 9]}}"#,
        ));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[2].contains("missing tensor \"1.num_batches_tracked\" (expected shape [])"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn wrong_dtype_non_finite_and_unreadable_files() {
        let f16 = write(
            "f16.safetensors",
            &safetensors_file(
                &[
                    ("0.weight", vec![3, 2], vec![0.0; 6]),
                    ("0.bias", vec![3], vec![0.0; 3]),
                ],
                safetensors::Dtype::F16,
            ),
        );
        let (_, errors) = load_path(&f16);
        assert!(
            errors.iter().any(|e| e.contains("dtype F16, expected F32")),
            "{errors:?}"
        );

        let nan = write(
            "nan.json",
            br#"{"0.weight": {"shape": [3, 2], "data": [1, 2, 3, 4, 5, 1e39]}, "0.bias": {"shape": [3], "data": [0, 0, 0]}}"#,
        );
        let (_, errors) = load_path(&nan);
        assert!(
            errors.iter().any(|e| e.contains("value 5 is not finite")),
            "{errors:?}"
        );

        let (_, errors) = load_path("/definitely/not/here.safetensors");
        assert!(
            errors[0].starts_with("cannot read weights file `/definitely/not/here.safetensors`"),
            "{errors:?}"
        );

        let txt = write("weights.txt", b"hello");
        let (_, errors) = load_path(&txt);
        assert!(
            errors[0].contains("expected a `.safetensors` or `.json` file"),
            "{errors:?}"
        );

        let garbage = write("garbage.safetensors", b"not really");
        let (_, errors) = load_path(&garbage);
        assert!(errors[0].contains("not a safetensors file"), "{errors:?}");
    }
}
