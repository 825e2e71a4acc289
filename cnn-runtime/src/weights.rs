//! Weight files: a flat parameter array to and from JSON or safetensors,
//! keyed by PyTorch `state_dict` names.
//!
//! Both formats hold every tensor of a net's [`TensorInfo`] table under its
//! key (`"0.weight"`, ...) with its PyTorch shape, so files move between this
//! crate and PyTorch unchanged:
//!
//! - **JSON**: one object mapping each key to
//!   `{"shape": [6, 1, 5, 5], "data": [flat row-major values]}`. Written in
//!   table order with the shortest decimal of each `f32` that reads back to
//!   the same bits.
//! - **safetensors**: `F32` little-endian tensors, as
//!   `safetensors.torch.save_file(model.state_dict(), path)` writes them.
//!
//! Loading is all-or-nothing: everything is checked and decoded into a
//! scratch copy first, and the destination is written only when the whole
//! file is valid. The checks run in a fixed order, and the first failure is
//! reported: a key given twice (document order), missing keys (table
//! order), then unexpected keys (sorted), then per tensor in table order
//! its fields (JSON: only `"shape"` and `"data"`, once each), dtype, shape,
//! length and values (non-finite values are rejected). Files are replaced
//! atomically ([`write_atomic`]).
//!
//! Each loader checks that it was given its own format: a file of the other
//! one ([`sniff_format`]) is a [`WeightsError::WrongFormat`] saying so,
//! rather than whatever the parser makes of it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::network::{Network, TensorInfo, TensorRole};

pub mod int8;
mod json_keys;

/// Why weights could not be saved or loaded.
#[derive(Debug)]
pub enum WeightsError {
    /// Reading or writing `path` failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The bytes are not a well-formed weights file (bad JSON, a bad
    /// safetensors header, an entry without `"shape"`, ...).
    Parse(String),
    /// The net has a tensor the file lacks.
    MissingKey {
        /// The `state_dict` key.
        key: String,
        /// The shape the net expects under that key.
        expected: Vec<usize>,
    },
    /// The file holds a key twice (JSON parsers would keep the last one
    /// silently).
    DuplicateKey {
        /// The key, decoded.
        key: String,
    },
    /// The bytes are a weights file of the other format than the loader
    /// reads (a JSON file given to the safetensors loader, or the reverse).
    WrongFormat {
        /// The format the bytes are in.
        found: WeightsFormat,
    },
    /// The file has a tensor the net lacks.
    UnexpectedKey {
        /// The key found in the file.
        key: String,
    },
    /// A tensor has a different shape in the file than in the net.
    ShapeMismatch {
        /// The `state_dict` key.
        key: String,
        /// The net's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A safetensors tensor is not `F32` (the only accepted dtype, and
    /// PyTorch's default).
    Dtype {
        /// The `state_dict` key.
        key: String,
        /// The dtype found, as safetensors names it (`"F16"`, `"F64"`, ...).
        found: String,
    },
    /// A value is NaN or infinite (or, in JSON, `null` or beyond `f32`'s
    /// range).
    NonFinite {
        /// The `state_dict` key.
        key: String,
        /// Row-major index of the value within its tensor.
        index: usize,
    },
    /// A JSON tensor's `"data"` does not hold as many values as its
    /// `"shape"` says.
    LengthMismatch {
        /// The `state_dict` key.
        key: String,
        /// The shape given in the file.
        shape: Vec<usize>,
        /// The number of values in `"data"`.
        len: usize,
    },
    /// A float weights file given to an int8 net.
    NotInt8,
    /// A tensor of an int8 file has the wrong dtype, or a value out of
    /// range (a scale that is not positive and finite, a zero point outside
    /// int8).
    Int8Value {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The int8 file's tensors are well-formed but make no net (see
    /// [`crate::int8::Int8Error`]).
    Int8(crate::int8::Int8Error),
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            WeightsError::Parse(message) => write!(f, "invalid weights file: {message}"),
            WeightsError::MissingKey { key, expected } => {
                write!(f, "missing tensor {key:?} (expected shape {expected:?})")
            }
            WeightsError::DuplicateKey { key } => {
                write!(f, "duplicate tensor {key:?}: the file holds it more than once")
            }
            WeightsError::WrongFormat {
                found: WeightsFormat::Json,
            } => f.write_str("this is a JSON weights file, not safetensors; rename it to .json"),
            WeightsError::WrongFormat {
                found: WeightsFormat::Safetensors,
            } => f.write_str("this is a safetensors file, not JSON weights; rename it to .safetensors"),
            WeightsError::WrongFormat {
                found: WeightsFormat::Int8,
            } => f.write_str(
                "this is an int8 weights file (\"cnn.format\": \"int8\"): a float net cannot load it; bake it \
                 into an int8 net with `weights = \"file.safetensors\"` in `cnn_net!`",
            ),
            WeightsError::UnexpectedKey { key } => {
                write!(
                    f,
                    "unexpected tensor {key:?}: the network has no parameter of that name"
                )
            }
            WeightsError::ShapeMismatch { key, expected, found } => {
                write!(f, "tensor {key:?}: expected shape {expected:?}, found {found:?}")
            }
            WeightsError::Dtype { key, found } => {
                write!(f, "tensor {key:?}: expected dtype F32, found {found}")
            }
            WeightsError::NonFinite { key, index } => {
                write!(f, "tensor {key:?}: value {index} is not a finite f32")
            }
            WeightsError::NotInt8 => f.write_str(
                "this is a float weights file: an int8 net loads only int8 files (metadata \"cnn.format\": \
                 \"int8\"); make one from float weights with `cnn quantize`",
            ),
            WeightsError::Int8Value { key, message } => write!(f, "tensor {key:?}: {message}"),
            WeightsError::Int8(e) => write!(f, "int8 weights: {e}"),
            WeightsError::LengthMismatch { key, shape, len } => match element_count(shape) {
                Some(n) => write!(f, "tensor {key:?}: shape {shape:?} needs {n} values, found {len}"),
                None => write!(
                    f,
                    "tensor {key:?}: shape {shape:?} is too large, found {len} values"
                ),
            },
        }
    }
}

impl std::error::Error for WeightsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WeightsError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The two weight file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightsFormat {
    /// The JSON format of [`to_json_string`].
    Json,
    /// safetensors ([`to_safetensors`]).
    Safetensors,
    /// An int8 safetensors file (metadata `"cnn.format": "int8"`), which
    /// `cnn_net!` bakes into an integer-only net: no float net loads it.
    Int8,
}

/// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return.
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The format `bytes` look like, judged by content alone: safetensors
/// starts with its header's length (8 bytes, little-endian, within the
/// file) and then the header, a JSON object (`{`, after any whitespace);
/// JSON weights start, after whitespace, with `{`. `None` for anything
/// else. A hint for errors, not a validation: either may still fail to load.
pub fn sniff_format(bytes: &[u8]) -> Option<WeightsFormat> {
    if let Some((len, rest)) = bytes.split_first_chunk::<8>() {
        let header = usize::try_from(u64::from_le_bytes(*len))
            .ok()
            .and_then(|n| rest.get(..n));
        if let Some(header) = header {
            if header.iter().find(|&&b| !is_json_space(b)) == Some(&b'{') {
                return Some(WeightsFormat::Safetensors);
            }
        }
    }
    match bytes.iter().find(|&&b| !is_json_space(b)) {
        Some(b'{') => Some(WeightsFormat::Json),
        _ => None,
    }
}

/// `Parse(message)`, unless `bytes` are really in the format `other`: then
/// [`WeightsError::WrongFormat`] says so.
fn parse_or_wrong_format(bytes: &[u8], other: WeightsFormat, message: String) -> WeightsError {
    if sniff_format(bytes) == Some(other) {
        WeightsError::WrongFormat { found: other }
    } else {
        WeightsError::Parse(message)
    }
}

/// The product of `shape`, or `None` on overflow.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Panics unless every tensor of the table lies inside `flat` (a table and
/// a parameter array that do not belong together: a bug, not bad input).
#[track_caller]
fn check_table(tensors: &[TensorInfo], flat: &[f32]) {
    for t in tensors {
        assert!(
            t.offset + t.len <= flat.len() && element_count(t.shape) == Some(t.len),
            "tensor table entry {:?} (shape {:?}, offset {}, len {}) does not fit {} parameters",
            t.key,
            t.shape,
            t.offset,
            t.len,
            flat.len()
        );
    }
}

/// Checks the keys of a file against the table: first every table key must
/// be present (in table order), then no other key may be (in sorted order).
fn check_keys<'a>(
    tensors: &[TensorInfo],
    found: impl IntoIterator<Item = &'a str>,
) -> Result<(), WeightsError> {
    let found: BTreeSet<&str> = found.into_iter().collect();
    if let Some(t) = tensors.iter().find(|t| !found.contains(t.key)) {
        return Err(WeightsError::MissingKey {
            key: t.key.to_owned(),
            expected: t.shape.to_vec(),
        });
    }
    let known: HashSet<&str> = tensors.iter().map(|t| t.key).collect();
    if let Some(key) = found.into_iter().find(|k| !known.contains(k)) {
        return Err(WeightsError::UnexpectedKey { key: key.to_owned() });
    }
    Ok(())
}

fn check_shape(t: &TensorInfo, found: &[usize]) -> Result<(), WeightsError> {
    if found == t.shape {
        Ok(())
    } else {
        Err(WeightsError::ShapeMismatch {
            key: t.key.to_owned(),
            expected: t.shape.to_vec(),
            found: found.to_vec(),
        })
    }
}

fn finite(t: &TensorInfo, index: usize, x: f32) -> Result<f32, WeightsError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(WeightsError::NonFinite {
            key: t.key.to_owned(),
            index,
        })
    }
}

/// What serde_json reads back from the text of a number (as `f64`, then
/// narrowed, the only way its default number parser offers).
fn json_reads_back(text: &str) -> Option<f32> {
    serde_json::from_str::<f64>(text).ok().map(|x| x as f32)
}

/// Appends a JSON number that reads back (through [`json_reads_back`]) to
/// exactly `x`, or `null` for a non-finite `x`.
fn push_json_f32(out: &mut String, x: f32) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    let start = out.len();
    // Rust prints the shortest decimal that parses back to `x` (`1e-7`,
    // `0.25`, `3.0`: all valid JSON numbers). Writing to a String cannot fail.
    let _ = write!(out, "{x:?}");
    if json_reads_back(&out[start..]).map(f32::to_bits) != Some(x.to_bits()) {
        // serde_json's fast parser reads through f64 and is not always
        // correctly rounded, which can land a short decimal on the wrong
        // f32. The exact f64 value of `x` cannot: an error of an f64 ulp
        // never crosses an f32 rounding boundary.
        out.truncate(start);
        let _ = write!(out, "{:?}", f64::from(x));
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON weights document of `data`: every tensor of the table, in table
/// order, one per line. Every finite value reads back bit-exactly through
/// [`load_json_str`]; non-finite values are written as `null` (which loading
/// rejects).
///
/// # Panics
///
/// If the table does not fit `data` (they belong to different nets).
pub fn to_json_string(tensors: &[TensorInfo], data: &[f32]) -> String {
    check_table(tensors, data);
    let mut out = String::with_capacity(32 + tensors.iter().map(|t| 48 + 14 * t.len).sum::<usize>());
    out.push('{');
    for (i, t) in tensors.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        push_json_str(&mut out, t.key);
        out.push_str(": {\"shape\": [");
        for (j, d) in t.shape.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{d}");
        }
        out.push_str("], \"data\": [");
        for (j, &x) in t.slice(data).iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            push_json_f32(&mut out, x);
        }
        out.push_str("]}");
    }
    out.push_str("\n}\n");
    out
}

fn parse_error(key: &str, what: &str) -> WeightsError {
    WeightsError::Parse(format!("tensor {key:?}: {what}"))
}

/// The `"shape"` and `"data"` of one JSON entry, whose fields as written
/// (repeats kept, document order) are `written_fields`.
fn json_entry<'v>(
    key: &str,
    entry: &'v Value,
    written_fields: &[String],
) -> Result<(Vec<usize>, &'v [Value]), WeightsError> {
    let Value::Object(fields) = entry else {
        return Err(parse_error(key, "expected an object with \"shape\" and \"data\""));
    };
    let mut seen = HashSet::new();
    for field in written_fields {
        if field != "shape" && field != "data" {
            return Err(parse_error(
                key,
                &format!("unknown field {field:?}, expected \"shape\" and \"data\""),
            ));
        }
        if !seen.insert(field.as_str()) {
            return Err(parse_error(key, &format!("duplicate field {field:?}")));
        }
    }
    let Some(Value::Array(shape)) = fields.get("shape") else {
        return Err(parse_error(
            key,
            "expected \"shape\": an array of non-negative integers",
        ));
    };
    let shape = shape
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| parse_error(key, "\"shape\" must hold non-negative integers"))?;
    let Some(Value::Array(data)) = fields.get("data") else {
        return Err(parse_error(key, "expected \"data\": a flat array of numbers"));
    };
    Ok((shape, data))
}

/// Reads JSON weights (the format of [`to_json_string`]) into `dst`.
///
/// All-or-nothing: on error `dst` is unchanged. JSON numbers are rounded to
/// the nearest `f32`, so files written by Python (`json.dump` of
/// `tensor.flatten().tolist()`, whose floats are the exact `f64` widening of
/// each `f32`) load bit-exactly. A key given twice, and a field of an entry
/// other than `"shape"` and `"data"` (or one of those twice), are errors.
///
/// # Panics
///
/// If the table does not fit `dst` (they belong to different nets).
pub fn load_json_str(tensors: &[TensorInfo], s: &str, dst: &mut [f32]) -> Result<(), WeightsError> {
    check_table(tensors, dst);
    let root: Value = serde_json::from_str(s).map_err(|e| {
        parse_or_wrong_format(
            s.as_bytes(),
            WeightsFormat::Safetensors,
            format!("not valid JSON: {e}"),
        )
    })?;
    let Value::Object(entries) = root else {
        return Err(WeightsError::Parse(
            "expected a JSON object mapping tensor names to {\"shape\": [..], \"data\": [..]}".to_owned(),
        ));
    };
    // serde_json keeps the last of repeated keys: read the keys as written.
    let written = json_keys::object_keys(s)
        .ok_or_else(|| WeightsError::Parse("not valid JSON: cannot scan its keys".to_owned()))?;
    let mut fields_of: HashMap<&str, &[String]> = HashMap::with_capacity(written.len());
    for (key, fields) in &written {
        if fields_of.insert(key.as_str(), fields.as_slice()).is_some() {
            return Err(WeightsError::DuplicateKey { key: key.clone() });
        }
    }
    check_keys(tensors, entries.keys().map(String::as_str))?;
    let mut scratch = dst.to_vec();
    for t in tensors {
        let Some(entry) = entries.get(t.key) else {
            // check_keys found every key; kept as an error rather than a panic.
            return Err(WeightsError::MissingKey {
                key: t.key.to_owned(),
                expected: t.shape.to_vec(),
            });
        };
        let written_fields = fields_of.get(t.key).copied().unwrap_or_default();
        let (shape, values) = json_entry(t.key, entry, written_fields)?;
        check_shape(t, &shape)?;
        if values.len() != t.len {
            return Err(WeightsError::LengthMismatch {
                key: t.key.to_owned(),
                shape,
                len: values.len(),
            });
        }
        for (index, (value, out)) in values.iter().zip(t.slice_mut(&mut scratch)).enumerate() {
            *out = match value {
                Value::Number(n) => match n.as_f64() {
                    Some(x) => finite(t, index, x as f32)?,
                    None => return Err(parse_error(t.key, "a number out of range")),
                },
                Value::Null => {
                    return Err(WeightsError::NonFinite {
                        key: t.key.to_owned(),
                        index,
                    })
                }
                _ => {
                    return Err(parse_error(
                        t.key,
                        &format!("\"data\" must be a flat array of numbers (value {index} is not)"),
                    ))
                }
            };
        }
    }
    dst.copy_from_slice(&scratch);
    Ok(())
}

/// The safetensors metadata key under which the `cnn` tool records which
/// net (its `Network::NAME`, e.g. `"LeNet"`) a file was saved from, so that
/// loading it into another net with the same tensor shapes is refused
/// ([`to_safetensors_with`], [`safetensors_metadata`]).
pub const NET_METADATA_KEY: &str = "cnn.net";

/// The metadata key and value of an int8 weights file (see
/// [`WeightsFormat::Int8`]).
pub const INT8_FORMAT: (&str, &str) = ("cnn.format", "int8");

/// Whether `bytes` are a safetensors file marked as int8.
fn is_int8(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref()?.get(INT8_FORMAT.0).cloned())
        .is_some_and(|v| v == INT8_FORMAT.1)
}

/// The safetensors file of `data`: one `F32` little-endian tensor per table
/// entry under its key, with the `{"format": "pt"}` metadata PyTorch's
/// `safetensors.torch.save_file` writes.
///
/// # Panics
///
/// If the table does not fit `data` (they belong to different nets).
pub fn to_safetensors(tensors: &[TensorInfo], data: &[f32]) -> Vec<u8> {
    to_safetensors_with(tensors, data, &[])
}

/// [`to_safetensors`] with more metadata entries (`(key, value)` pairs,
/// e.g. [`NET_METADATA_KEY`]) beside `{"format": "pt"}`.
///
/// # Panics
///
/// If the table does not fit `data` (they belong to different nets).
pub fn to_safetensors_with(tensors: &[TensorInfo], data: &[f32], metadata: &[(&str, &str)]) -> Vec<u8> {
    check_table(tensors, data);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| match t.role {
            // PyTorch's num_batches_tracked is a 0-dim int64.
            TensorRole::BatchesTracked => t
                .slice(data)
                .iter()
                .flat_map(|&x| (x as i64).to_le_bytes())
                .collect(),
            _ => t.slice(data).iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let views = tensors.iter().zip(&bytes).map(|(t, b)| {
        let dtype = if t.role == TensorRole::BatchesTracked {
            Dtype::I64
        } else {
            Dtype::F32
        };
        let view = TensorView::new(dtype, t.shape.to_vec(), b);
        // check_table made every length agree with its shape.
        (t.key, view.unwrap_or_else(|e| panic!("tensor {:?}: {e}", t.key)))
    });
    let mut all = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    all.extend(metadata.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
    // Fails only for a header over 100 MB, i.e. millions of tensors.
    safetensors::serialize(views, Some(all))
        .unwrap_or_else(|e| panic!("cannot serialise the tensor table: {e}"))
}

/// The metadata of safetensors bytes (empty if the header has none).
/// Checks the header as [`load_safetensors`] does, not the tensors.
pub fn safetensors_metadata(bytes: &[u8]) -> Result<HashMap<String, String>, WeightsError> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| not_safetensors(bytes, e))?;
    check_safetensors_keys(bytes)?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// The error for bytes the safetensors parser refused with `e`.
fn not_safetensors(bytes: &[u8], e: impl fmt::Display) -> WeightsError {
    parse_or_wrong_format(
        bytes,
        WeightsFormat::Json,
        format!("not a valid safetensors file: {e}"),
    )
}

/// Refuses a safetensors header (already accepted by the parser) that
/// repeats a tensor or a metadata key: the parser keeps the last one, and
/// a reader keeping the first would see another file (`"dtype": "F16"`
/// for a tensor, or another `"cnn.net"`).
fn check_safetensors_keys(bytes: &[u8]) -> Result<(), WeightsError> {
    let unscannable =
        || WeightsError::Parse("not a valid safetensors file: cannot scan its header".to_owned());
    let mut len = [0u8; 8];
    len.copy_from_slice(bytes.get(..8).ok_or_else(unscannable)?);
    let header = usize::try_from(u64::from_le_bytes(len))
        .ok()
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(unscannable)?;
    let written = json_keys::object_keys(header).ok_or_else(unscannable)?;
    let mut keys = HashSet::new();
    for (key, fields) in &written {
        // The parser itself refuses a repeated "__metadata__" or tensor
        // field, but not a repeated tensor or metadata key.
        if !keys.insert(key.as_str()) {
            return Err(WeightsError::DuplicateKey { key: key.clone() });
        }
        let mut seen = HashSet::new();
        if let Some(field) = fields.iter().find(|f| !seen.insert(f.as_str())) {
            return Err(if key == "__metadata__" {
                WeightsError::Parse(format!("duplicate metadata key {field:?}"))
            } else {
                parse_error(key, &format!("duplicate field {field:?}"))
            });
        }
    }
    Ok(())
}

/// Reads safetensors bytes into `dst`. Every tensor must be `F32` with the
/// net's shape. All-or-nothing: on error `dst` is unchanged. Metadata (such
/// as PyTorch's `{"format": "pt"}`) is ignored; a tensor or metadata key
/// given twice in the header is an error. JSON weights are refused with
/// [`WeightsError::WrongFormat`].
///
/// # Panics
///
/// If the table does not fit `dst` (they belong to different nets).
pub fn load_safetensors(tensors: &[TensorInfo], bytes: &[u8], dst: &mut [f32]) -> Result<(), WeightsError> {
    check_table(tensors, dst);
    let file = SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(bytes, e))?;
    check_safetensors_keys(bytes)?;
    if is_int8(bytes) {
        return Err(WeightsError::WrongFormat {
            found: WeightsFormat::Int8,
        });
    }
    check_keys(tensors, file.names())?;
    let mut scratch = dst.to_vec();
    for t in tensors {
        let view = file.tensor(t.key).map_err(|_| WeightsError::MissingKey {
            key: t.key.to_owned(),
            expected: t.shape.to_vec(),
        })?;
        if t.role == TensorRole::BatchesTracked && view.dtype() == Dtype::I64 {
            // PyTorch's step count: a 0-dim int64.
            check_shape(t, view.shape())?;
            let raw = view.data();
            if raw.len() != 8 * t.len {
                return Err(parse_error(
                    t.key,
                    &format!("{} data bytes for {} i64 values", raw.len(), t.len),
                ));
            }
            for (b, out) in raw.chunks_exact(8).zip(t.slice_mut(&mut scratch)) {
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                let count = i64::from_le_bytes(le);
                if count < 0 {
                    return Err(parse_error(t.key, &format!("a step count of {count}")));
                }
                *out = count as f32;
            }
            continue;
        }
        if view.dtype() != Dtype::F32 {
            return Err(WeightsError::Dtype {
                key: t.key.to_owned(),
                found: view.dtype().to_string(),
            });
        }
        check_shape(t, view.shape())?;
        let raw = view.data();
        if raw.len() != 4 * t.len {
            return Err(parse_error(
                t.key,
                &format!("{} data bytes for {} f32 values", raw.len(), t.len),
            ));
        }
        for (index, (b, out)) in raw.chunks_exact(4).zip(t.slice_mut(&mut scratch)).enumerate() {
            *out = finite(t, index, f32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
        }
    }
    dst.copy_from_slice(&scratch);
    Ok(())
}

/// The table of a net's whole state: its parameter tensors, then its
/// buffers (batch norm's running statistics) with offsets past the
/// parameters, as one flat array of both would hold them.
pub fn state_table<N: Network>() -> Vec<TensorInfo> {
    let mut table = N::TENSORS.to_vec();
    table.extend(N::BUFFERS.iter().map(|t| TensorInfo {
        offset: t.offset + N::PARAM_COUNT,
        ..*t
    }));
    table
}

/// Calls `f` with the table and the values of `net`'s whole state
/// (parameters and buffers; just the parameters, uncopied, for a net
/// without buffers), e.g. to write a weights file PyTorch's
/// `load_state_dict` accepts.
pub fn with_state<N: Network, R>(net: &N, f: impl FnOnce(&[TensorInfo], &[f32]) -> R) -> R {
    if N::BUFFERS.is_empty() {
        return f(N::TENSORS, net.params());
    }
    let mut flat = net.params().to_vec();
    flat.extend_from_slice(net.buffers());
    f(&state_table::<N>(), &flat)
}

/// Loads `net`'s whole state with `f` (a loader given the state's table and
/// a flat array to fill); all or nothing: on error `net` is unchanged.
pub fn load_state<N: Network>(
    net: &mut N,
    f: impl FnOnce(&[TensorInfo], &mut [f32]) -> Result<(), WeightsError>,
) -> Result<(), WeightsError> {
    if N::BUFFERS.is_empty() {
        return f(N::TENSORS, net.params_mut());
    }
    let mut flat = net.params().to_vec();
    flat.extend_from_slice(net.buffers());
    f(&state_table::<N>(), &mut flat)?;
    let (params, buffers) = flat.split_at(N::PARAM_COUNT);
    net.params_mut().copy_from_slice(params);
    net.buffers_mut().copy_from_slice(buffers);
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes [`to_json_string`] to `path` atomically ([`write_atomic`]).
pub fn save_json(tensors: &[TensorInfo], data: &[f32], path: &Path) -> Result<(), WeightsError> {
    write_atomic(path, to_json_string(tensors, data).as_bytes()).map_err(io_error(path))
}

/// Reads JSON weights from bytes into `dst` ([`load_json_str`], after
/// checking they are UTF-8); `dst` is unchanged on error.
pub fn load_json_bytes(tensors: &[TensorInfo], bytes: &[u8], dst: &mut [f32]) -> Result<(), WeightsError> {
    load_json_str(tensors, json_text(bytes, "the file")?, dst)
}

/// Reads a JSON weights file into `dst` ([`load_json_bytes`]); `dst` is
/// unchanged on error.
pub fn load_json(tensors: &[TensorInfo], path: &Path, dst: &mut [f32]) -> Result<(), WeightsError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let name = path.display().to_string();
    load_json_str(tensors, json_text(&bytes, &name)?, dst)
}

/// `bytes` as text; `name` stands for them in the error.
fn json_text<'b>(bytes: &'b [u8], name: &str) -> Result<&'b str, WeightsError> {
    std::str::from_utf8(bytes).map_err(|e| {
        parse_or_wrong_format(
            bytes,
            WeightsFormat::Safetensors,
            format!("{name} is not UTF-8 text: {e}"),
        )
    })
}

/// Writes [`to_safetensors`] to `path` atomically ([`write_atomic`]).
pub fn save_safetensors(tensors: &[TensorInfo], data: &[f32], path: &Path) -> Result<(), WeightsError> {
    save_safetensors_with(tensors, data, &[], path)
}

/// Writes [`to_safetensors_with`] to `path` atomically ([`write_atomic`]).
pub fn save_safetensors_with(
    tensors: &[TensorInfo],
    data: &[f32],
    metadata: &[(&str, &str)],
    path: &Path,
) -> Result<(), WeightsError> {
    write_atomic(path, &to_safetensors_with(tensors, data, metadata)).map_err(io_error(path))
}

/// Reads a safetensors file into `dst` ([`load_safetensors`]); `dst` is
/// unchanged on error.
pub fn load_safetensors_file(
    tensors: &[TensorInfo],
    path: &Path,
    dst: &mut [f32],
) -> Result<(), WeightsError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    load_safetensors(tensors, &bytes, dst)
}

/// Replaces the file at `path` by `bytes`, never leaving a partial file
/// there: the bytes go to a fresh temporary file in the same directory,
/// which is flushed to disk (`fsync`) and then renamed over `path`. On any
/// error the temporary file is removed and `path` is untouched.
///
/// A replaced file's permissions are not kept (the new file gets the
/// default ones).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; not every platform can open a
    // directory, and the data is in place either way.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::TensorRole;

    /// conv(1, 2, 3) -> relu -> flatten -> linear(8, 3), like
    /// tests/data/make_tiny_torch.py.
    const TINY: &[TensorInfo] = &[
        TensorInfo {
            key: "0.weight",
            shape: &[2, 1, 3, 3],
            offset: 0,
            len: 18,
            role: TensorRole::Weight,
            fan_in: 9,
            fan_out: 18,
        },
        TensorInfo {
            key: "0.bias",
            shape: &[2],
            offset: 18,
            len: 2,
            role: TensorRole::Bias,
            fan_in: 9,
            fan_out: 18,
        },
        TensorInfo {
            key: "3.weight",
            shape: &[3, 8],
            offset: 20,
            len: 24,
            role: TensorRole::Weight,
            fan_in: 8,
            fan_out: 3,
        },
        TensorInfo {
            key: "3.bias",
            shape: &[3],
            offset: 44,
            len: 3,
            role: TensorRole::Bias,
            fan_in: 8,
            fan_out: 3,
        },
    ];
    const TINY_LEN: usize = 47;

    const TORCH_SAFETENSORS: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tiny_torch.safetensors"
    ));
    const TORCH_JSON: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny_torch.json"));

    /// Values that stress exact round trips: tiny, huge, subnormal, negative
    /// zero, and decimals with no short f32 representation.
    fn awkward_values() -> Vec<f32> {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1.0 / 3.0,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(0x007f_ffff),
            f32::MAX,
            f32::MIN,
            f32::EPSILON,
            1e-30,
            16_777_217.0,
            123_456_790_000.0,
        ];
        let mut rng = crate::init::Rng::new(9);
        let mut out = Vec::with_capacity(TINY_LEN);
        while out.len() < TINY_LEN {
            let i = out.len();
            if i < special.len() {
                out.push(special[i]);
            } else {
                // Random finite bit patterns across the whole exponent range.
                let x = f32::from_bits(rng.next_u32());
                if x.is_finite() {
                    out.push(x);
                }
            }
        }
        out
    }

    fn bits(xs: &[f32]) -> Vec<u32> {
        xs.iter().map(|x| x.to_bits()).collect()
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "cnn-runtime-weights-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .expect("read temp dir")
                .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn json_round_trip_is_bit_exact() {
        let data = awkward_values();
        let text = to_json_string(TINY, &data);
        let mut back = vec![f32::NAN; TINY_LEN];
        load_json_str(TINY, &text, &mut back).expect("load");
        assert_eq!(bits(&back), bits(&data));
    }

    #[test]
    fn json_round_trip_of_many_random_values() {
        let table = [TensorInfo {
            key: "w",
            shape: &[100_000],
            offset: 0,
            len: 100_000,
            role: TensorRole::Weight,
            fan_in: 1,
            fan_out: 1,
        }];
        let mut rng = crate::init::Rng::new(1);
        let data: Vec<f32> = (0..100_000)
            .map(|i| loop {
                // Half of them in the range weights live in, half anywhere.
                let x = if i % 2 == 0 {
                    rng.uniform(-1.0, 1.0)
                } else {
                    f32::from_bits(rng.next_u32())
                };
                if x.is_finite() {
                    break x;
                }
            })
            .collect();
        let mut back = vec![0.0; 100_000];
        load_json_str(&table, &to_json_string(&table, &data), &mut back).expect("load");
        assert_eq!(bits(&back), bits(&data));
    }

    #[test]
    fn json_is_readable_and_in_table_order() {
        let data: Vec<f32> = (0..TINY_LEN).map(|i| i as f32 * 0.5).collect();
        let text = to_json_string(TINY, &data);
        let positions: Vec<usize> = TINY
            .iter()
            .map(|t| text.find(&format!("\"{}\"", t.key)).expect("key present"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(
            text.contains("\"0.bias\": {\"shape\": [2], \"data\": [9.0, 9.5]}"),
            "{text}"
        );
        assert!(text.starts_with("{\n  \"0.weight\": {\"shape\": [2, 1, 3, 3], \"data\": [0.0, 0.5,"));
        // Valid JSON in the eyes of serde_json too.
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["3.bias"]["shape"], serde_json::json!([3]));
    }

    #[test]
    fn safetensors_round_trip_is_bit_exact() {
        let data = awkward_values();
        let bytes = to_safetensors(TINY, &data);
        let mut back = vec![f32::NAN; TINY_LEN];
        load_safetensors(TINY, &bytes, &mut back).expect("load");
        assert_eq!(bits(&back), bits(&data));
        // The header carries PyTorch's metadata and F32 tensors.
        let (_, meta) = SafeTensors::read_metadata(&bytes).expect("header");
        let format = meta.metadata().as_ref().and_then(|m| m.get("format").cloned());
        assert_eq!(format.as_deref(), Some("pt"));
        let st = SafeTensors::deserialize(&bytes).expect("parse");
        assert_eq!(st.tensor("3.weight").expect("tensor").shape(), &[3, 8]);
    }

    #[test]
    fn safetensors_metadata_round_trips() {
        let data = awkward_values();
        let bytes = to_safetensors_with(TINY, &data, &[(NET_METADATA_KEY, "Tiny")]);
        let meta = safetensors_metadata(&bytes).expect("metadata");
        assert_eq!(meta.get(NET_METADATA_KEY).map(String::as_str), Some("Tiny"));
        assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
        // The extra entry does not change what loads.
        let mut back = vec![f32::NAN; TINY_LEN];
        load_safetensors(TINY, &bytes, &mut back).expect("load");
        assert_eq!(bits(&back), bits(&data));
        // PyTorch's files carry no net name; garbage is a parse error.
        let torch = safetensors_metadata(TORCH_SAFETENSORS).expect("metadata");
        assert!(!torch.contains_key(NET_METADATA_KEY), "{torch:?}");
        assert!(matches!(
            safetensors_metadata(b"not safetensors"),
            Err(WeightsError::Parse(_))
        ));
    }

    #[test]
    fn files_written_by_pytorch_load_and_agree() {
        let mut from_st = vec![0.0; TINY_LEN];
        load_safetensors(TINY, TORCH_SAFETENSORS, &mut from_st).expect("safetensors");
        let mut from_json = vec![0.0; TINY_LEN];
        load_json_str(TINY, TORCH_JSON, &mut from_json).expect("json");
        assert_eq!(bits(&from_st), bits(&from_json));
        // Values printed by make_tiny_torch.py.
        assert_eq!(f64::from(from_st[0]), -0.002_495_606_895_536_184_3);
        assert_eq!(f64::from(from_st[18]), -0.225_980_371_236_801_15);
        assert_eq!(f64::from(from_st[21]), 0.293_586_462_736_129_76);
        assert_eq!(f64::from(from_st[44]), -0.255_465_745_925_903_3);
        // PyTorch's default init: every value within 1/sqrt(fan_in).
        for t in TINY {
            let b = 1.0 / (t.fan_in as f32).sqrt();
            assert!(t.slice(&from_st).iter().all(|x| x.abs() <= b), "{}", t.key);
        }
        // And what we write loads back into the same values.
        let mut again = vec![0.0; TINY_LEN];
        load_safetensors(TINY, &to_safetensors(TINY, &from_st), &mut again).expect("reload");
        assert_eq!(bits(&again), bits(&from_st));
    }

    /// Loads `text`, checks it fails with the expected message and leaves the
    /// destination untouched.
    #[track_caller]
    fn json_error(text: &str) -> WeightsError {
        let mut dst = vec![7.0; TINY_LEN];
        let err = load_json_str(TINY, text, &mut dst).expect_err("must fail");
        assert!(dst.iter().all(|&x| x == 7.0), "dst changed after {err}");
        err
    }

    #[track_caller]
    fn safetensors_error(bytes: &[u8]) -> WeightsError {
        let mut dst = vec![7.0; TINY_LEN];
        let err = load_safetensors(TINY, bytes, &mut dst).expect_err("must fail");
        assert!(dst.iter().all(|&x| x == 7.0), "dst changed after {err}");
        err
    }

    fn tiny_json_value() -> serde_json::Map<String, Value> {
        let data: Vec<f32> = (0..TINY_LEN).map(|i| i as f32).collect();
        match serde_json::from_str(&to_json_string(TINY, &data)) {
            Ok(Value::Object(map)) => map,
            other => panic!("{other:?}"),
        }
    }

    fn json_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut map = tiny_json_value();
        edit(&mut map);
        Value::Object(map).to_string()
    }

    #[test]
    fn json_errors_name_what_went_wrong() {
        let err = json_error("{\"0.weight\": ");
        assert!(matches!(err, WeightsError::Parse(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("invalid weights file: not valid JSON"),
            "{err}"
        );

        let err = json_error("[1, 2]");
        assert!(matches!(err, WeightsError::Parse(_)), "{err:?}");

        // Missing keys are reported before unexpected ones, in table order.
        let err = json_error(&json_with(|m| {
            m.remove("3.bias");
            m.remove("0.bias");
            m.insert("zz".into(), Value::Null);
        }));
        assert_eq!(err.to_string(), "missing tensor \"0.bias\" (expected shape [2])");
        assert!(
            matches!(&err, WeightsError::MissingKey { key, expected } if key == "0.bias" && expected == &[2]),
            "{err:?}"
        );

        // Unexpected keys in sorted order.
        let err = json_error(&json_with(|m| {
            m.insert("z.weight".into(), Value::Null);
            m.insert("5.weight".into(), Value::Null);
        }));
        assert!(
            matches!(&err, WeightsError::UnexpectedKey { key } if key == "5.weight"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "unexpected tensor \"5.weight\": the network has no parameter of that name"
        );

        let err = json_error(&json_with(|m| {
            m["3.weight"]["shape"] = serde_json::json!([8, 3]);
        }));
        assert_eq!(
            err.to_string(),
            "tensor \"3.weight\": expected shape [3, 8], found [8, 3]"
        );
        assert!(matches!(err, WeightsError::ShapeMismatch { .. }), "{err:?}");

        let err = json_error(&json_with(|m| {
            let Value::Array(data) = &mut m["0.bias"]["data"] else {
                unreachable!()
            };
            data.push(Value::from(1.5));
        }));
        assert_eq!(
            err.to_string(),
            "tensor \"0.bias\": shape [2] needs 2 values, found 3"
        );
        assert!(
            matches!(&err, WeightsError::LengthMismatch { key, shape, len: 3 } if key == "0.bias" && shape == &[2]),
            "{err:?}"
        );

        // null (how NaN is written), and a number beyond f32's range.
        for bad in [Value::Null, serde_json::json!(1e39)] {
            let err = json_error(&json_with(|m| m["3.bias"]["data"][1] = bad));
            assert!(
                matches!(&err, WeightsError::NonFinite { key, index: 1 } if key == "3.bias"),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "tensor \"3.bias\": value 1 is not a finite f32");
        }

        for (edit, needle) in [
            (serde_json::json!("x"), "expected an object"),
            (serde_json::json!({"data": []}), "expected \"shape\""),
            (serde_json::json!({"shape": [2], "data": 3}), "expected \"data\""),
            (
                serde_json::json!({"shape": [-2], "data": []}),
                "non-negative integers",
            ),
            (
                serde_json::json!({"shape": [2], "data": [1, "2"]}),
                "value 1 is not",
            ),
        ] {
            let err = json_error(&json_with(|m| m["0.bias"] = edit));
            assert!(matches!(err, WeightsError::Parse(_)), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("tensor \"0.bias\"") && msg.contains(needle), "{msg}");
        }

        // A failure in the last tensor leaves the earlier ones unwritten too
        // (json_error checks `dst`).
        json_error(&json_with(|m| m["3.bias"]["data"][2] = Value::Null));
    }

    #[test]
    fn nan_parameters_save_but_do_not_load() {
        let mut data = vec![0.5; TINY_LEN];
        data[3] = f32::NAN;
        data[44] = f32::INFINITY;
        let err = json_error(&to_json_string(TINY, &data));
        assert!(
            matches!(&err, WeightsError::NonFinite { key, index: 3 } if key == "0.weight"),
            "{err:?}"
        );
        let err = safetensors_error(&to_safetensors(TINY, &data));
        assert!(
            matches!(&err, WeightsError::NonFinite { key, index: 3 } if key == "0.weight"),
            "{err:?}"
        );
    }

    /// A safetensors file of the given `(key, dtype, shape)` tensors with
    /// zeroed data.
    fn safetensors_of(tensors: &[(&str, Dtype, &[usize])]) -> Vec<u8> {
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, dtype, shape)| vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8])
            .collect();
        let views = tensors.iter().zip(&bytes).map(|((key, dtype, shape), b)| {
            (*key, TensorView::new(*dtype, shape.to_vec(), b).expect("view"))
        });
        safetensors::serialize(views, None).expect("serialize")
    }

    fn tiny_entries() -> Vec<(&'static str, Dtype, &'static [usize])> {
        TINY.iter().map(|t| (t.key, Dtype::F32, t.shape)).collect()
    }

    #[test]
    fn safetensors_errors_name_what_went_wrong() {
        let good = safetensors_of(&tiny_entries());
        let mut dst = vec![1.0; TINY_LEN];
        load_safetensors(TINY, &good, &mut dst).expect("zeros load");
        assert!(dst.iter().all(|&x| x == 0.0));

        for bad in [&b""[..], b"garbage!", &good[..good.len() - 1]] {
            let err = safetensors_error(bad);
            assert!(matches!(err, WeightsError::Parse(_)), "{err:?}");
            assert!(err
                .to_string()
                .starts_with("invalid weights file: not a valid safetensors file"));
        }

        let mut entries = tiny_entries();
        entries.retain(|e| e.0 != "3.weight");
        entries.push(("4.weight", Dtype::F32, &[1]));
        let err = safetensors_error(&safetensors_of(&entries));
        assert!(
            matches!(&err, WeightsError::MissingKey { key, .. } if key == "3.weight"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "missing tensor \"3.weight\" (expected shape [3, 8])"
        );

        let mut entries = tiny_entries();
        entries.push(("running_mean", Dtype::F32, &[2]));
        let err = safetensors_error(&safetensors_of(&entries));
        assert!(
            matches!(&err, WeightsError::UnexpectedKey { key } if key == "running_mean"),
            "{err:?}"
        );

        let mut entries = tiny_entries();
        entries[0].2 = &[2, 3, 3, 1];
        let err = safetensors_error(&safetensors_of(&entries));
        assert_eq!(
            err.to_string(),
            "tensor \"0.weight\": expected shape [2, 1, 3, 3], found [2, 3, 3, 1]"
        );

        for (dtype, name) in [(Dtype::F16, "F16"), (Dtype::F64, "F64"), (Dtype::I64, "I64")] {
            let mut entries = tiny_entries();
            entries[2].1 = dtype;
            let err = safetensors_error(&safetensors_of(&entries));
            assert!(
                matches!(&err, WeightsError::Dtype { key, found } if key == "3.weight" && found == name),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("tensor \"3.weight\": expected dtype F32, found {name}")
            );
        }
    }

    #[test]
    fn file_round_trips_and_io_errors() {
        let dir = TempDir::new("files");
        let data = awkward_values();
        let json = dir.0.join("w.json");
        let st = dir.0.join("w.safetensors");
        save_json(TINY, &data, &json).expect("save json");
        save_safetensors(TINY, &data, &st).expect("save safetensors");
        let mut back = vec![0.0; TINY_LEN];
        load_json(TINY, &json, &mut back).expect("load json");
        assert_eq!(bits(&back), bits(&data));
        back.fill(0.0);
        load_safetensors_file(TINY, &st, &mut back).expect("load safetensors");
        assert_eq!(bits(&back), bits(&data));
        assert_eq!(dir.entries(), ["w.json", "w.safetensors"]);

        let missing = dir.0.join("nope.json");
        let err = load_json(TINY, &missing, &mut back).expect_err("missing file");
        assert!(
            matches!(&err, WeightsError::Io { path, .. } if path == &missing),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
        let err = load_safetensors_file(TINY, &missing, &mut back).expect_err("missing file");
        assert!(matches!(err, WeightsError::Io { .. }), "{err:?}");

        fs::write(&json, b"\xff\xfe not utf-8").expect("write");
        let err = load_json(TINY, &json, &mut back).expect_err("bad utf-8");
        assert!(matches!(err, WeightsError::Parse(_)), "{err:?}");
        assert!(err.to_string().contains("w.json"), "{err}");

        let err = save_json(TINY, &data, &dir.0.join("no/such/dir/w.json")).expect_err("no dir");
        assert!(matches!(err, WeightsError::Io { .. }), "{err:?}");
        assert_eq!(dir.entries(), ["w.json", "w.safetensors"]);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary_files() {
        let dir = TempDir::new("atomic");
        let target = dir.0.join("weights.bin");
        write_atomic(&target, b"first").expect("write");
        write_atomic(&target, b"second, longer").expect("replace");
        assert_eq!(fs::read(&target).expect("read"), b"second, longer");
        write_atomic(&target, b"").expect("empty");
        assert_eq!(fs::read(&target).expect("read"), b"");
        assert_eq!(dir.entries(), ["weights.bin"]);
    }

    #[test]
    fn failed_write_atomic_keeps_the_old_target_and_cleans_up() {
        let dir = TempDir::new("atomic-fail");
        // Renaming a file over a non-empty directory fails after the
        // temporary file has been written: it must be removed again.
        let target = dir.0.join("occupied");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("keep.txt"), b"old").expect("write");
        assert!(write_atomic(&target, b"new").is_err());
        assert_eq!(fs::read(target.join("keep.txt")).expect("read"), b"old");
        assert_eq!(dir.entries(), ["occupied"]);

        // A path without a file name is refused up front.
        let err = write_atomic(Path::new("/"), b"x").expect_err("no file name");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    #[should_panic(expected = "does not fit 10 parameters")]
    fn a_table_of_another_net_panics() {
        to_json_string(TINY, &[0.0; 10]);
    }

    /// serde_json keeps the last of repeated keys; a weights file must not
    /// say two things about one tensor, nor carry fields nobody reads.
    #[test]
    fn json_duplicate_keys_and_unknown_fields_are_rejected() {
        let data: Vec<f32> = (0..TINY_LEN).map(|i| i as f32 * 0.5).collect();
        let good = to_json_string(TINY, &data);
        let bias = "{\"shape\": [2], \"data\": [9.0, 9.5]}";
        assert!(good.contains(&format!("\"0.bias\": {bias}")), "{good}");
        let with_entry = |entry: &str| good.replacen("\n}\n", &format!(",\n  {entry}\n}}\n"), 1);

        for twice in [
            format!("\"0.bias\": {bias}"),
            "\"0.bias\": {\"shape\": [2], \"data\": [1.0, 2.0]}".to_owned(),
            // The same key, spelled with an escape.
            format!("\"0.bi\\u0061s\": {bias}"),
        ] {
            let err = json_error(&with_entry(&twice));
            assert_eq!(
                err.to_string(),
                "duplicate tensor \"0.bias\": the file holds it more than once",
                "{twice}"
            );
        }

        let err = json_error(&good.replacen(
            &format!("\"0.bias\": {bias}"),
            "\"0.bias\": {\"shape\": [2], \"data\": [9.0, 9.5], \"data\": [1.0, 2.0]}",
            1,
        ));
        assert_eq!(
            err.to_string(),
            "invalid weights file: tensor \"0.bias\": duplicate field \"data\""
        );

        for (entry, field) in [
            (
                "{\"shape\": [2], \"data\": [9.0, 9.5], \"dtype\": \"F32\"}",
                "dtype",
            ),
            ("{\"Shape\": [2], \"shape\": [2], \"data\": [9.0, 9.5]}", "Shape"),
            ("{\"shape\": [2], \"data\": [9.0, 9.5], \"\": null}", ""),
        ] {
            let err = json_error(&good.replacen(
                &format!("\"0.bias\": {bias}"),
                &format!("\"0.bias\": {entry}"),
                1,
            ));
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid weights file: tensor \"0.bias\": unknown field {field:?}, expected \"shape\" and \"data\""
                )
            );
        }

        // A tensor the net does not have stays an error of its own.
        let err = json_error(&with_entry(&format!("\"9.bias\": {bias}")));
        assert_eq!(
            err.to_string(),
            "unexpected tensor \"9.bias\": the network has no parameter of that name"
        );
        // Keys that only look alike are different keys.
        let err = json_error(&with_entry(&format!("\"0.bias \": {bias}")));
        assert!(
            matches!(&err, WeightsError::UnexpectedKey { key } if key == "0.bias "),
            "{err:?}"
        );

        // Strings holding braces, quotes and escapes do not confuse the scan.
        let tricky = good.replacen(
            "\"0.bias\": {",
            "\"0.bias\": {\"shape\": [2], \"data\": [9.0, 9.5]}, \"z\\\"{[\": {",
            1,
        );
        let err = json_error(&tricky);
        assert!(
            matches!(&err, WeightsError::UnexpectedKey { key } if key == "z\"{["),
            "{err:?}"
        );
    }

    /// A safetensors header with a repeated key: serde (and so the
    /// safetensors crate) keeps the last, another reader may keep the first.
    #[test]
    fn safetensors_duplicate_keys_are_rejected() {
        /// Header text, padded to 8 bytes, then `data`.
        fn file(header: &str, data: &[u8]) -> Vec<u8> {
            let mut header = header.to_owned();
            while !header.len().is_multiple_of(8) {
                header.push(' ');
            }
            [&(header.len() as u64).to_le_bytes()[..], header.as_bytes(), data].concat()
        }
        let one = [TensorInfo {
            key: "w",
            shape: &[1],
            offset: 0,
            len: 1,
            role: TensorRole::Weight,
            fan_in: 1,
            fan_out: 1,
        }];
        let w = r#""w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
        let good = file(&format!("{{{w}}}"), &1f32.to_le_bytes());
        let mut dst = [0.0];
        load_safetensors(&one, &good, &mut dst).expect("good");
        assert_eq!(dst, [1.0]);

        let check = |header: String, message: &str| {
            let bytes = file(&header, &1f32.to_le_bytes());
            // The safetensors crate itself accepts it.
            SafeTensors::deserialize(&bytes).expect("parser accepts");
            let mut dst = [7.0];
            let err = load_safetensors(&one, &bytes, &mut dst).expect_err("duplicate");
            assert_eq!(err.to_string(), message, "{header}");
            assert_eq!(dst, [7.0]);
            let err = safetensors_metadata(&bytes).expect_err("duplicate");
            assert_eq!(err.to_string(), message, "{header}");
        };
        check(
            format!(r#"{{{w},{w}}}"#),
            "duplicate tensor \"w\": the file holds it more than once",
        );
        check(
            format!(r#"{{"w":{{"dtype":"F16","shape":[2],"data_offsets":[0,4]}},{w}}}"#),
            "duplicate tensor \"w\": the file holds it more than once",
        );
        check(
            format!(r#"{{"__metadata__":{{"cnn.net":"LeNet","cnn.net":"LeNetRelu"}},{w}}}"#),
            "invalid weights file: duplicate metadata key \"cnn.net\"",
        );
    }

    /// A file of one format given to the other's loader says which it is.
    #[test]
    fn a_file_of_the_other_format_says_so() {
        let data = awkward_values();
        let json = to_json_string(TINY, &data);
        let st = to_safetensors(TINY, &data);
        let want_json = "this is a JSON weights file, not safetensors; rename it to .json";
        for text in [json.clone(), format!(" \n\t{json}"), "{}".to_owned()] {
            let err = safetensors_error(text.as_bytes());
            assert_eq!(err.to_string(), want_json);
            let err = safetensors_metadata(text.as_bytes()).expect_err("json");
            assert_eq!(err.to_string(), want_json);
        }

        let dir = TempDir::new("sniff");
        let path = dir.0.join("w.json");
        fs::write(&path, &st).expect("write");
        let mut dst = vec![7.0; TINY_LEN];
        let err = load_json(TINY, &path, &mut dst).expect_err("safetensors in .json");
        assert_eq!(
            err.to_string(),
            "this is a safetensors file, not JSON weights; rename it to .safetensors"
        );
        assert!(dst.iter().all(|&x| x == 7.0));

        assert!(
            matches!(
                err,
                WeightsError::WrongFormat {
                    found: WeightsFormat::Safetensors
                }
            ),
            "{err:?}"
        );
        let err = load_json_bytes(TINY, &st, &mut dst).expect_err("safetensors bytes");
        assert!(matches!(err, WeightsError::WrongFormat { .. }), "{err:?}");
        let err = load_json_bytes(TINY, b"\xff{}", &mut dst).expect_err("not utf-8");
        assert!(
            err.to_string()
                .starts_with("invalid weights file: the file is not UTF-8 text"),
            "{err}"
        );
        // A small safetensors file of zeros is ASCII, so valid UTF-8 text.
        let one = [TensorInfo {
            key: "w",
            shape: &[1],
            offset: 0,
            len: 1,
            role: TensorRole::Weight,
            fan_in: 1,
            fan_out: 1,
        }];
        let zeros = safetensors::serialize(
            [("w", TensorView::new(Dtype::F32, vec![1], &[0; 4]).expect("view"))],
            None,
        )
        .expect("serialize");
        let text = std::str::from_utf8(&zeros).expect("ascii");
        let err = load_json_str(&one, text, &mut [0.0]).expect_err("safetensors text");
        assert!(matches!(err, WeightsError::WrongFormat { .. }), "{err:?}");
        let mut w = [5.0];
        load_safetensors(&one, &zeros, &mut w).expect("it is safetensors");
        assert_eq!(w, [0.0]);
        assert_eq!(sniff_format(&zeros), Some(WeightsFormat::Safetensors));
        assert_eq!(sniff_format(b"\r\n {"), Some(WeightsFormat::Json));
        assert_eq!(
            sniff_format(b"\x03\0\0\0\0\0\0\0 {}"),
            Some(WeightsFormat::Safetensors)
        );
        // A length beyond the file, or a header that is no object.
        assert_eq!(sniff_format(b"\x04\0\0\0\0\0\0\0 {}"), None);
        assert_eq!(sniff_format(b"\x02\0\0\0\0\0\0\0[]"), None);
        for neither in [&b""[..], b"[]", b"\x0c{}"] {
            assert_eq!(sniff_format(neither), None, "{neither:?}");
        }

        // Neither format: the loaders' own errors, unchanged.
        let err = safetensors_error(b"not a safetensors file at all");
        assert!(
            err.to_string()
                .starts_with("invalid weights file: not a valid safetensors file"),
            "{err}"
        );
        let err = json_error("[1, 2]");
        assert!(
            err.to_string()
                .starts_with("invalid weights file: expected a JSON object"),
            "{err}"
        );
    }
}
