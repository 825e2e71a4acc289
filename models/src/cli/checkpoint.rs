//! `checkpoint.safetensors`: everything a `cnn train` run needs to go on
//! exactly where it stopped, in one file written atomically into the run's
//! `--out` after every epoch and when the run is interrupted.
//!
//! It is a safetensors file (readable with `safetensors.torch.load_file`):
//!
//! | tensor | dtype, shape | what |
//! |---|---|---|
//! | the net's `state_dict` keys (`0.weight`, ...) | F32, as in `weights.safetensors` | the weights |
//! | `optim.momentum_buffer` | F32 `[params]` | SGD's momentum buffers (after a first step with momentum) |
//! | `optim.exp_avg`, `optim.exp_avg_sq` | F32 `[params]` | Adam's moments (after a first step) |
//! | `shuffle.order` | U64 `[train examples]` | the order of the current (or, between epochs, the last) epoch |
//! | `metrics` | F64 `[epochs done, 5]` | per epoch: train_loss, train_acc, test_acc, examples/s, elapsed s |
//!
//! Its string metadata holds the rest: `cnn.checkpoint` (the format
//! version, [`VERSION`]), `cnn.net` (the net's type name, as in weights
//! files), the resolved recipe under `cnn.run.*` (net, optimizer and every
//! hyper-parameter, batch size, epochs, seed, threads, data source, limits,
//! initial weights), the data under `cnn.data.*` (example counts and a
//! fingerprint of the pixels and labels), the position under
//! `cnn.progress.*` (epochs done, steps done in the current epoch, steps per
//! epoch, global step, the shuffle generator's state, the current epoch's
//! loss sum, correct count and examples seen, elapsed seconds) and
//! `cnn.optim.steps`. Numbers are written as Rust prints them, which reads
//! back to the same bits.
//!
//! One file rather than several means the weights, optimizer state and
//! position can never disagree; [`write()`] replaces it atomically
//! (temporary file, `fsync`, rename).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cnn_runtime::data::Dataset;
use cnn_runtime::network::TensorInfo;
use cnn_runtime::optim::{AdamConfig, SgdConfig};
use cnn_runtime::weights::NET_METADATA_KEY;
use cnn_runtime::Network;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::args::OptimizerConfig;
use super::error::CliError;
use super::report::EpochMetrics;

/// The file name inside the run directory.
pub const FILE_NAME: &str = "checkpoint.safetensors";

/// The metadata key holding the format version; its presence marks a
/// checkpoint (as opposed to a weights file).
pub const VERSION_KEY: &str = "cnn.checkpoint";

/// The format version this code writes and reads.
pub const VERSION: &str = "1";

const ORDER: &str = "shuffle.order";
const METRICS: &str = "metrics";
const METRIC_COLUMNS: usize = 5;

/// The resolved recipe of a run: what `--resume` continues with, and
/// compares the command line against.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedRun {
    /// The net's `--net` name.
    pub net: String,
    /// The optimizer with every hyper-parameter.
    pub optimizer: OptimizerConfig,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs the run was asked for.
    pub epochs: usize,
    /// `--seed`.
    pub seed: u64,
    /// Worker threads (results are bit-identical for the same count).
    pub threads: usize,
    /// The data directory (absolute), or `None` for the embedded sample.
    pub data: Option<PathBuf>,
    /// `--limit-train`.
    pub limit_train: Option<usize>,
    /// `--limit-test`.
    pub limit_test: Option<usize>,
    /// `--init-weights`, if the run started from a weights file.
    pub init_weights: Option<PathBuf>,
}

/// What the data looked like: a resumed run must see the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataStamp {
    /// Training examples (after `--limit-train`).
    pub train: usize,
    /// Test examples (after `--limit-test`).
    pub test: usize,
    /// A hash of every pixel value and label of both splits.
    pub fingerprint: u64,
}

impl DataStamp {
    /// The stamp of the splits a run uses.
    pub fn of(train: &Dataset, test: &Dataset) -> DataStamp {
        let mut hash = 0xCBF2_9CE4_8422_2325u64;
        let mut mix = |word: u64| hash = (hash.rotate_left(5) ^ word).wrapping_mul(0x0000_0100_0000_01B3);
        for set in [train, test] {
            mix(set.len() as u64);
            mix((set.rows as u64) << 32 | set.cols as u64);
            set.images.iter().for_each(|x| mix(u64::from(x.to_bits())));
            set.labels.iter().for_each(|&l| mix(u64::from(l)));
        }
        DataStamp {
            train: train.len(),
            test: test.len(),
            fingerprint: hash,
        }
    }
}

/// Where a run stands: enough to continue it bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Steps already taken in epoch `epochs_done + 1` (0 between epochs).
    pub step_in_epoch: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Steps taken in the whole run.
    pub global_step: u64,
    /// The shuffle generator's state (after the current epoch's shuffle).
    pub shuffle_state: u64,
    /// The current epoch's order of the training examples; between epochs,
    /// the last epoch's (the next epoch shuffles it further).
    pub order: Vec<usize>,
    /// Sum of `loss * batch` over the current epoch's steps so far.
    pub loss_sum: f64,
    /// Correct training predictions in the current epoch so far.
    pub correct: usize,
    /// Training examples seen in the current epoch so far.
    pub seen: usize,
    /// Seconds of training so far, evaluation included.
    pub elapsed_s: f64,
    /// The finished epochs' metrics.
    pub history: Vec<EpochMetrics>,
}

impl Progress {
    /// A run that has not taken a step: the order is `0..examples` and the
    /// shuffle generator starts from `shuffle_seed`.
    pub fn start(shuffle_seed: u64, examples: usize, steps_per_epoch: usize) -> Progress {
        Progress {
            epochs_done: 0,
            step_in_epoch: 0,
            steps_per_epoch,
            global_step: 0,
            shuffle_state: shuffle_seed,
            order: (0..examples).collect(),
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            elapsed_s: 0.0,
            history: Vec::new(),
        }
    }

    /// `"after epoch 2 of 10"` or `"at epoch 3 of 10, step 5 of 16"`, for a
    /// run of `epochs` epochs.
    pub fn position(&self, epochs: usize) -> String {
        if self.step_in_epoch == 0 {
            format!("after epoch {} of {epochs}", self.epochs_done)
        } else {
            format!(
                "at epoch {} of {epochs}, step {} of {}",
                self.epochs_done + 1,
                self.step_in_epoch,
                self.steps_per_epoch
            )
        }
    }
}

/// The state of the optimizer: its step count and named buffers (PyTorch's
/// names: `momentum_buffer`, `exp_avg`, `exp_avg_sq`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Steps taken.
    pub steps: u64,
    /// The buffers that exist (none before the first step).
    pub buffers: Vec<(&'static str, Vec<f32>)>,
}

/// Everything a checkpoint holds, borrowed from the training loop.
pub struct Snapshot<'a> {
    /// The net's type name ([`Network::NAME`]).
    pub net_type: &'static str,
    /// The net's tensor table: its parameters, then its buffers (batch
    /// norm's running statistics).
    pub tensors: &'a [TensorInfo],
    /// The values of every tensor of the table.
    pub params: &'a [f32],
    /// The recipe.
    pub run: &'a SavedRun,
    /// The data.
    pub data: DataStamp,
    /// The position.
    pub progress: &'a Progress,
    /// The optimizer.
    pub optimizer: OptimizerState,
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Optional values as `"none"` or the value.
fn optional<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "none".to_owned(), T::to_string)
}

/// The checkpoint's bytes.
pub fn encode(snap: &Snapshot) -> Vec<u8> {
    let run = snap.run;
    let p = snap.progress;
    let mut meta: Vec<(&str, String)> = vec![
        ("format", "pt".to_owned()),
        (VERSION_KEY, VERSION.to_owned()),
        (NET_METADATA_KEY, snap.net_type.to_owned()),
        ("cnn.run.net", run.net.clone()),
        ("cnn.run.batch_size", run.batch_size.to_string()),
        ("cnn.run.epochs", run.epochs.to_string()),
        ("cnn.run.seed", run.seed.to_string()),
        ("cnn.run.threads", run.threads.to_string()),
        (
            "cnn.run.data",
            run.data
                .as_ref()
                .map_or_else(|| "embedded".to_owned(), |d| d.to_string_lossy().into_owned()),
        ),
        ("cnn.run.limit_train", optional(&run.limit_train)),
        ("cnn.run.limit_test", optional(&run.limit_test)),
        (
            "cnn.run.init_weights",
            optional(
                &run.init_weights
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            ),
        ),
        ("cnn.data.train_examples", snap.data.train.to_string()),
        ("cnn.data.test_examples", snap.data.test.to_string()),
        ("cnn.data.fingerprint", format!("{:016x}", snap.data.fingerprint)),
        ("cnn.progress.epochs_done", p.epochs_done.to_string()),
        ("cnn.progress.step_in_epoch", p.step_in_epoch.to_string()),
        ("cnn.progress.steps_per_epoch", p.steps_per_epoch.to_string()),
        ("cnn.progress.global_step", p.global_step.to_string()),
        ("cnn.progress.shuffle_state", p.shuffle_state.to_string()),
        ("cnn.progress.loss_sum", p.loss_sum.to_string()),
        ("cnn.progress.correct", p.correct.to_string()),
        ("cnn.progress.seen", p.seen.to_string()),
        ("cnn.progress.elapsed_s", p.elapsed_s.to_string()),
        ("cnn.optim.steps", snap.optimizer.steps.to_string()),
    ];
    match run.optimizer {
        OptimizerConfig::Sgd(c) => meta.extend([
            ("cnn.run.optimizer", "sgd".to_owned()),
            ("cnn.run.lr", c.lr.to_string()),
            ("cnn.run.momentum", c.momentum.to_string()),
            ("cnn.run.dampening", c.dampening.to_string()),
            ("cnn.run.nesterov", c.nesterov.to_string()),
            ("cnn.run.weight_decay", c.weight_decay.to_string()),
        ]),
        OptimizerConfig::Adam(c) => meta.extend([
            ("cnn.run.optimizer", "adam".to_owned()),
            ("cnn.run.lr", c.lr.to_string()),
            ("cnn.run.beta1", c.beta1.to_string()),
            ("cnn.run.beta2", c.beta2.to_string()),
            ("cnn.run.eps", c.eps.to_string()),
            ("cnn.run.weight_decay", c.weight_decay.to_string()),
        ]),
    }
    let meta: HashMap<String, String> = meta.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();

    // (name, dtype, shape, bytes)
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = snap
        .tensors
        .iter()
        .map(|t| {
            (
                t.key.to_owned(),
                Dtype::F32,
                t.shape.to_vec(),
                f32_bytes(t.slice(snap.params)),
            )
        })
        .collect();
    for (name, values) in &snap.optimizer.buffers {
        tensors.push((
            format!("optim.{name}"),
            Dtype::F32,
            vec![values.len()],
            f32_bytes(values),
        ));
    }
    let order: Vec<u8> = p.order.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
    tensors.push((ORDER.to_owned(), Dtype::U64, vec![p.order.len()], order));
    if !p.history.is_empty() {
        let metrics: Vec<u8> = p
            .history
            .iter()
            .flat_map(|m| {
                [
                    m.train_loss,
                    m.train_acc,
                    m.test_acc,
                    m.examples_per_sec,
                    m.elapsed_s,
                ]
            })
            .flat_map(f64::to_le_bytes)
            .collect();
        tensors.push((
            METRICS.to_owned(),
            Dtype::F64,
            vec![p.history.len(), METRIC_COLUMNS],
            metrics,
        ));
    }
    let views = tensors.iter().map(|(name, dtype, shape, bytes)| {
        let view = TensorView::new(*dtype, shape.clone(), bytes);
        // Every length above was made from its shape.
        (
            name.as_str(),
            view.unwrap_or_else(|e| panic!("checkpoint tensor {name}: {e}")),
        )
    });
    // Fails only for a header over 100 MB.
    safetensors::serialize(views, Some(meta)).unwrap_or_else(|e| panic!("cannot serialise a checkpoint: {e}"))
}

/// Writes the checkpoint to `path` atomically.
pub fn write(path: &Path, snap: &Snapshot) -> Result<(), CliError> {
    cnn_runtime::weights::write_atomic(path, &encode(snap))
        .map_err(CliError::io("cannot write checkpoint", path))
}

/// A checkpoint read back: its metadata decoded, its tensors still bytes.
#[derive(Debug)]
pub struct Checkpoint {
    /// The file.
    pub path: PathBuf,
    /// The net's type name.
    pub net_type: String,
    /// The recipe.
    pub run: SavedRun,
    /// The data it was trained on.
    pub data: DataStamp,
    /// Where it stands.
    pub progress: Progress,
    /// Optimizer steps taken.
    pub optimizer_steps: u64,
    bytes: Vec<u8>,
}

/// Reads a metadata value.
struct Meta<'a> {
    map: &'a HashMap<String, String>,
}

impl Meta<'_> {
    fn text(&self, key: &str) -> Result<&str, String> {
        self.map
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("metadata {key} is missing"))
    }

    fn number<T: FromStr>(&self, key: &str) -> Result<T, String> {
        let text = self.text(key)?;
        text.parse()
            .map_err(|_| format!("metadata {key} = {text:?} is not a valid number"))
    }

    fn optional(&self, key: &str) -> Result<Option<usize>, String> {
        match self.text(key)? {
            "none" => Ok(None),
            _ => self.number(key).map(Some),
        }
    }

    fn finite(&self, key: &str) -> Result<f32, String> {
        let x: f32 = self.number(key)?;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("metadata {key} = {x} is not finite"))
        }
    }
}

impl Checkpoint {
    /// Reads and checks `path`: the format version, the recipe, and a
    /// position that fits together (the order a permutation, the counts
    /// consistent). The tensors are checked when taken out.
    pub fn read(path: &Path) -> Result<Checkpoint, CliError> {
        let bytes = std::fs::read(path).map_err(CliError::io("cannot read", path))?;
        Checkpoint::from_bytes(path, bytes).map_err(|message| CliError::Checkpoint {
            path: path.to_owned(),
            message,
        })
    }

    fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Checkpoint, String> {
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
        let map = header.metadata().clone().unwrap_or_default();
        let meta = Meta { map: &map };
        match map.get(VERSION_KEY) {
            Some(v) if v == VERSION => {}
            Some(v) => {
                return Err(format!(
                    "checkpoint format {v:?} is not one this cnn reads ({VERSION:?})"
                ))
            }
            None => {
                return Err(format!(
                    "not a checkpoint (no {VERSION_KEY} metadata): a weights file?"
                ))
            }
        }
        let lr = meta.finite("cnn.run.lr")?;
        let weight_decay = meta.finite("cnn.run.weight_decay")?;
        let optimizer = match meta.text("cnn.run.optimizer")? {
            "sgd" => OptimizerConfig::Sgd(SgdConfig {
                lr,
                momentum: meta.finite("cnn.run.momentum")?,
                dampening: meta.finite("cnn.run.dampening")?,
                weight_decay,
                nesterov: meta.number("cnn.run.nesterov")?,
            }),
            "adam" => OptimizerConfig::Adam(AdamConfig {
                lr,
                beta1: meta.finite("cnn.run.beta1")?,
                beta2: meta.finite("cnn.run.beta2")?,
                eps: meta.finite("cnn.run.eps")?,
                weight_decay,
            }),
            other => return Err(format!("unknown optimizer {other:?}")),
        };
        let run = SavedRun {
            net: meta.text("cnn.run.net")?.to_owned(),
            optimizer,
            batch_size: meta.number("cnn.run.batch_size")?,
            epochs: meta.number("cnn.run.epochs")?,
            seed: meta.number("cnn.run.seed")?,
            threads: meta.number("cnn.run.threads")?,
            data: match meta.text("cnn.run.data")? {
                "embedded" => None,
                dir => Some(PathBuf::from(dir)),
            },
            limit_train: meta.optional("cnn.run.limit_train")?,
            limit_test: meta.optional("cnn.run.limit_test")?,
            init_weights: match meta.text("cnn.run.init_weights")? {
                "none" => None,
                file => Some(PathBuf::from(file)),
            },
        };
        let fingerprint = meta.text("cnn.data.fingerprint")?;
        let data = DataStamp {
            train: meta.number("cnn.data.train_examples")?,
            test: meta.number("cnn.data.test_examples")?,
            fingerprint: u64::from_str_radix(fingerprint, 16)
                .map_err(|_| format!("metadata cnn.data.fingerprint = {fingerprint:?} is not hexadecimal"))?,
        };

        let file =
            SafeTensors::deserialize(&bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
        let order = match file.tensor(ORDER) {
            Ok(view) if view.dtype() == Dtype::U64 && view.shape().len() == 1 => view
                .data()
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
                .collect::<Vec<usize>>(),
            _ => return Err(format!("tensor {ORDER} is missing or not U64 [examples]")),
        };
        let epochs_done: usize = meta.number("cnn.progress.epochs_done")?;
        let history = match file.tensor(METRICS) {
            Ok(view) if view.dtype() == Dtype::F64 && view.shape() == [epochs_done, METRIC_COLUMNS] => {
                let values: Vec<f64> = view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect();
                values
                    .chunks_exact(METRIC_COLUMNS)
                    .enumerate()
                    .map(|(i, row)| EpochMetrics {
                        epoch: i + 1,
                        train_loss: row[0],
                        train_acc: row[1],
                        test_acc: row[2],
                        examples_per_sec: row[3],
                        elapsed_s: row[4],
                    })
                    .collect()
            }
            Err(_) if epochs_done == 0 => Vec::new(),
            _ => {
                return Err(format!(
                    "tensor {METRICS} is missing or not F64 [{epochs_done}, {METRIC_COLUMNS}]"
                ))
            }
        };
        let progress = Progress {
            epochs_done,
            step_in_epoch: meta.number("cnn.progress.step_in_epoch")?,
            steps_per_epoch: meta.number("cnn.progress.steps_per_epoch")?,
            global_step: meta.number("cnn.progress.global_step")?,
            shuffle_state: meta.number("cnn.progress.shuffle_state")?,
            order,
            loss_sum: meta.number("cnn.progress.loss_sum")?,
            correct: meta.number("cnn.progress.correct")?,
            seen: meta.number("cnn.progress.seen")?,
            elapsed_s: meta.number("cnn.progress.elapsed_s")?,
            history,
        };
        check_progress(&progress, &data)?;
        Ok(Checkpoint {
            path: path.to_owned(),
            net_type: meta.text(NET_METADATA_KEY)?.to_owned(),
            run,
            data,
            progress,
            optimizer_steps: meta.number("cnn.optim.steps")?,
            bytes,
        })
    }

    /// Whether the run did all its epochs.
    pub fn finished(&self) -> bool {
        self.progress.step_in_epoch == 0 && self.progress.epochs_done >= self.run.epochs
    }

    /// Takes the weights out into `dst` (the params of an `N`); the file
    /// must be `N`'s.
    pub fn load_params<N: Network>(&self, tensors: &[TensorInfo], dst: &mut [f32]) -> Result<(), CliError> {
        if self.net_type != N::NAME {
            return Err(CliError::Checkpoint {
                path: self.path.clone(),
                message: format!("it holds the net {}, not {}", self.net_type, N::NAME),
            });
        }
        load_weights(tensors, &self.bytes, dst).map_err(|message| CliError::Checkpoint {
            path: self.path.clone(),
            message,
        })
    }

    /// The optimizer buffer `name` (`momentum_buffer`, `exp_avg`,
    /// `exp_avg_sq`), if the file holds it.
    pub fn buffer(&self, name: &str) -> Result<Option<Vec<f32>>, CliError> {
        let key = format!("optim.{name}");
        let bad = |message: String| CliError::Checkpoint {
            path: self.path.clone(),
            message,
        };
        let file = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let Ok(view) = file.tensor(&key) else {
            return Ok(None);
        };
        if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
            return Err(bad(format!("tensor {key} is not F32 [params]")));
        }
        Ok(Some(
            view.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ))
    }
}

/// The counts of a position agree with each other and the data.
fn check_progress(p: &Progress, data: &DataStamp) -> Result<(), String> {
    let bad = |what: &str| Err(format!("inconsistent progress: {what}"));
    if p.order.len() != data.train {
        return bad("the shuffle order does not cover the training examples");
    }
    let mut seen = vec![false; p.order.len()];
    for &i in &p.order {
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            _ => return bad("the shuffle order is not a permutation"),
        }
    }
    let expected_steps = (p.epochs_done as u64)
        .checked_mul(p.steps_per_epoch as u64)
        .and_then(|s| s.checked_add(p.step_in_epoch as u64));
    if p.steps_per_epoch == 0
        || p.step_in_epoch >= p.steps_per_epoch
        || expected_steps != Some(p.global_step)
        || p.history.len() != p.epochs_done
        || p.seen > data.train
        || p.correct > p.seen
        || !p.loss_sum.is_finite()
    {
        return bad("epoch, step and example counts do not fit together");
    }
    Ok(())
}

/// Reads the net's tensors (by their keys in `tensors`) from checkpoint
/// bytes into `dst`, ignoring the other tensors. All or nothing.
pub fn load_weights(tensors: &[TensorInfo], bytes: &[u8], dst: &mut [f32]) -> Result<(), String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let mut scratch = dst.to_vec();
    for t in tensors {
        let view = file
            .tensor(t.key)
            .map_err(|_| format!("tensor {:?} is missing", t.key))?;
        if view.dtype() != Dtype::F32 || view.shape() != t.shape {
            return Err(format!(
                "tensor {:?} is {:?} {:?}, expected F32 {:?}",
                t.key,
                view.dtype(),
                view.shape(),
                t.shape
            ));
        }
        let out = t.slice_mut(&mut scratch);
        for (index, (b, x)) in view.data().chunks_exact(4).zip(out.iter_mut()).enumerate() {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if !x.is_finite() {
                return Err(format!("tensor {:?} holds {x} at index {index}", t.key));
            }
        }
    }
    dst.copy_from_slice(&scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_runtime::network::TensorRole;

    static TABLE: [TensorInfo; 2] = [
        TensorInfo {
            key: "0.weight",
            shape: &[2, 2],
            offset: 0,
            len: 4,
            role: TensorRole::Weight,
            fan_in: 2,
            fan_out: 2,
        },
        TensorInfo {
            key: "0.bias",
            shape: &[2],
            offset: 4,
            len: 2,
            role: TensorRole::Bias,
            fan_in: 2,
            fan_out: 2,
        },
    ];

    fn run() -> SavedRun {
        SavedRun {
            net: "lenet".to_owned(),
            optimizer: OptimizerConfig::Adam(AdamConfig::new(0.003).with_weight_decay(1e-4)),
            batch_size: 2,
            epochs: 5,
            seed: 7,
            threads: 2,
            data: Some(PathBuf::from("/data/fashion")),
            limit_train: Some(3),
            limit_test: None,
            init_weights: None,
        }
    }

    fn progress() -> Progress {
        Progress {
            epochs_done: 1,
            step_in_epoch: 1,
            steps_per_epoch: 2,
            global_step: 3,
            shuffle_state: u64::MAX - 5,
            order: vec![2, 0, 1],
            loss_sum: 0.1 + 0.2,
            correct: 1,
            seen: 2,
            elapsed_s: 1.25,
            history: vec![EpochMetrics {
                epoch: 1,
                train_loss: 2.301_234_567_891_234,
                train_acc: 1.0 / 3.0,
                test_acc: 0.1,
                examples_per_sec: 1234.5,
                elapsed_s: 0.75,
            }],
        }
    }

    fn bytes(params: &[f32], progress: &Progress) -> Vec<u8> {
        encode(&Snapshot {
            net_type: "Tiny",
            tensors: &TABLE,
            params,
            run: &run(),
            data: DataStamp {
                train: 3,
                test: 10,
                fingerprint: 0xDEAD_BEEF_0123_4567,
            },
            progress,
            optimizer: OptimizerState {
                steps: 3,
                buffers: vec![("exp_avg", vec![0.5; 6]), ("exp_avg_sq", vec![0.25; 6])],
            },
        })
    }

    /// Every field comes back with the same bits.
    #[test]
    fn round_trip() {
        let params = [1.0, -2.0, 0.1, 3.5e-8, 7.0, -0.0];
        let read = Checkpoint::from_bytes(Path::new("c"), bytes(&params, &progress())).expect("read");
        assert_eq!(read.run, run());
        assert_eq!(read.progress, progress());
        assert_eq!(read.data.fingerprint, 0xDEAD_BEEF_0123_4567);
        assert_eq!((read.net_type.as_str(), read.optimizer_steps), ("Tiny", 3));
        assert!(!read.finished());
        let mut dst = [0.0f32; 6];
        load_weights(&TABLE, &read.bytes, &mut dst).expect("weights");
        assert_eq!(dst.map(f32::to_bits), params.map(f32::to_bits));
        assert_eq!(read.buffer("exp_avg_sq").expect("buffer"), Some(vec![0.25; 6]));
        assert_eq!(read.buffer("momentum_buffer").expect("buffer"), None);
    }

    /// Any pixel or label changed, or a split cut differently, changes the
    /// stamp a resumed run is compared against.
    #[test]
    fn the_data_stamp_sees_every_value() {
        let set = |images: Vec<f32>, labels: Vec<u8>| Dataset {
            images,
            labels,
            rows: 1,
            cols: 2,
        };
        let train = set(vec![0.0, 0.5, 1.0, 0.25], vec![3, 7]);
        let test = set(vec![0.75, 0.0], vec![1]);
        let stamp = DataStamp::of(&train, &test);
        assert_eq!((stamp.train, stamp.test), (2, 1));
        assert_eq!(stamp, DataStamp::of(&train.clone(), &test.clone()));
        let changed = [
            (set(vec![0.0, 0.5, 1.0, 0.5], vec![3, 7]), test.clone()),
            (set(vec![0.0, 0.5, 1.0, 0.25], vec![3, 8]), test.clone()),
            (train.clone(), set(vec![0.75, 0.0], vec![2])),
            (
                set(vec![0.0, 0.5], vec![3]),
                set(vec![1.0, 0.25, 0.75, 0.0], vec![7, 1]),
            ),
        ];
        for (a, b) in changed {
            assert_ne!(DataStamp::of(&a, &b).fingerprint, stamp.fingerprint);
        }
    }

    #[test]
    fn inconsistent_positions_are_refused() {
        let params = [0.0f32; 6];
        for broken in [
            Progress {
                order: vec![0, 0, 1],
                ..progress()
            },
            Progress {
                global_step: 4,
                ..progress()
            },
            Progress {
                step_in_epoch: 2,
                ..progress()
            },
            Progress {
                history: Vec::new(),
                epochs_done: 1,
                ..progress()
            },
        ] {
            let err = Checkpoint::from_bytes(Path::new("c"), bytes(&params, &broken)).expect_err("refused");
            assert!(
                err.starts_with("inconsistent progress") || err.contains("metrics"),
                "{err}"
            );
        }
        let weights = cnn_runtime::weights::to_safetensors(&TABLE, &params);
        let err = Checkpoint::from_bytes(Path::new("c"), weights).expect_err("weights file");
        assert!(err.contains("not a checkpoint"), "{err}");
    }
}
