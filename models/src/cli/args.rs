//! The command line as clap sees it, and its checked form: the `*Args`
//! structs hold what was typed, [`TrainArgs::validate`] and friends turn
//! them into configurations whose values are known to be usable.

use std::path::{Path, PathBuf};

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cnn_runtime::optim::{AdamConfig, SgdConfig};

use super::checkpoint::SavedRun;
use super::dataset::Source;
use super::error::CliError;
use super::report::number;

/// Train, evaluate and run CNNs compiled ahead of time by `cnn_net!`.
///
/// Without a command, `cnn` runs `cnn train` with its defaults: LeNet on
/// Fashion-MNIST as in Dive into Deep Learning, section 7.6.
#[derive(Debug, Parser)]
#[command(name = "cnn", version)]
pub struct Cli {
    /// What to do (default: `train`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a net on Fashion-MNIST (the default command).
    Train(TrainArgs),
    /// Print the test accuracy of saved weights, overall and per class.
    Eval(EvalArgs),
    /// Classify every image of an IDX images file with saved weights.
    Infer(InferArgs),
    /// Print a net's layer table, or list the nets.
    Summary(SummaryArgs),
    /// Quantize trained float weights to int8 (TensorFlow Lite's scheme):
    /// calibrate on training images, write the int8 file, print the float
    /// and int8 test accuracy.
    Quantize(QuantizeArgs),
}

/// The `--net` values of `cnn quantize`: the nets with an int8 twin.
fn int8_net_names() -> PossibleValuesParser {
    PossibleValuesParser::new(models::INT8_NETS.iter().map(|&name| PossibleValue::new(name)))
}

/// Options of `cnn quantize`.
#[derive(Debug, Args)]
#[command(
    after_help = "The int8 file holds per-output-channel symmetric int8 weights, int32 biases (batch norms folded into the conv before them), and the scale and zero point of the input and of the output of every conv and linear layer, add and global_avgpool. Bake it into an int8 net with `cnn_net! { pub Net: [1, 28, 28] weights = \"FILE\" => ... }` (the float net's layers), or load it at run time into one declared with `int8`."
)]
pub struct QuantizeArgs {
    /// The float net the weights belong to.
    #[arg(long, default_value = "lenet", value_parser = int8_net_names())]
    pub net: String,
    /// Trained float weights (.json or .safetensors), e.g. a `cnn train`
    /// run's weights.safetensors.
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// Training images to calibrate the activation ranges on, spread
    /// evenly over the training set.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub calibration: usize,
    /// The int8 file to write [default: next to --weights, with
    /// `.int8.safetensors` for its extension].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fashion-MNIST directory [default: as for `cnn train`].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Test on the first N test examples only.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Worker threads, at most 4 per core [default: the available cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// A checked `cnn quantize` command line.
#[derive(Clone, Debug)]
pub struct QuantizeConfig {
    /// Registry name of the float net.
    pub net: String,
    /// Float weights file.
    pub weights: PathBuf,
    /// Calibration images, at least 1.
    pub calibration: usize,
    /// The int8 file to write (not the weights file).
    pub out: PathBuf,
    /// `--data`, if given.
    pub data: Option<PathBuf>,
    /// Use only the first N test examples (at least 1).
    pub limit_test: Option<usize>,
    /// Worker threads, at least 1.
    pub threads: usize,
}

impl QuantizeArgs {
    /// Checks every value.
    pub fn validate(self) -> Result<QuantizeConfig, CliError> {
        let calibration = positive_opt("--calibration", Some(self.calibration))?.unwrap_or(1);
        let out = match self.out {
            Some(out) => out,
            None => {
                let stem = self.weights.file_stem().unwrap_or_default().to_string_lossy();
                self.weights.with_file_name(format!("{stem}.int8.safetensors"))
            }
        };
        if out == self.weights {
            return Err(CliError::InvalidArg(format!(
                "--out {}: that is the float weights file; choose another name",
                out.display()
            )));
        }
        if out.extension().is_none_or(|e| e != "safetensors") {
            return Err(CliError::InvalidArg(format!(
                "--out {}: an int8 file is safetensors; give it the .safetensors extension",
                out.display()
            )));
        }
        Ok(QuantizeConfig {
            net: self.net,
            weights: self.weights,
            calibration,
            out,
            data: self.data,
            limit_test: positive_opt("--limit-test", self.limit_test)?,
            threads: threads(self.threads)?,
        })
    }
}

/// The `--net` values: every name of the registry, [`models::NETS`].
fn net_names() -> PossibleValuesParser {
    PossibleValuesParser::new(
        models::NETS
            .iter()
            .map(|net| PossibleValue::new(net.name).help(net.about)),
    )
}

/// The optimizers `--optimizer` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// Stochastic gradient descent (`torch.optim.SGD`).
    Sgd,
    /// Adam (`torch.optim.Adam`).
    Adam,
}

/// The most `--epochs` a run may ask for.
pub const MAX_EPOCHS: usize = 100_000;

/// The largest `--batch-size`.
pub const MAX_BATCH_SIZE: usize = 65_536;

/// `--threads` is capped at this many threads per available core.
pub const THREADS_PER_CORE: usize = 4;

/// Options of `cnn train`.
#[derive(Debug, Args)]
#[command(
    after_help = "A run writes its outputs (weights.json, weights.safetensors, metrics.csv, \
training.svg, training.png) into --out as one set at the end, and checkpoint.safetensors there \
after every epoch and on Ctrl-C (SIGINT) or SIGTERM. `cnn train --resume DIR` continues that \
run exactly where it stopped; `--init-weights FILE` only starts a new run from weights."
)]
pub struct TrainArgs {
    /// The net to train [default: lenet].
    #[arg(long, value_parser = net_names())]
    pub net: Option<String>,
    /// Passes over the training set, at most 100,000 [default: the net's
    /// recipe, 10 for LeNet on the full data set, 20 on the sample].
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Examples per optimisation step, at most 65,536 (the last batch of an
    /// epoch may be smaller) [default: the net's recipe, 256 on the full
    /// data set, 64 on the sample].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Learning rate [default: the net's recipe (`cnn summary` lists them) if
    /// the optimizer is the recipe's, else 0.9 with sgd, 0.001 with adam].
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// The optimizer [default: the net's recipe, sgd for LeNet].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// SGD momentum factor, in [0, 1) [default: the net's recipe if it uses
    /// sgd, else 0].
    #[arg(long, value_name = "FACTOR", allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// L2 weight decay added to the gradient [default: 0].
    #[arg(long, value_name = "FACTOR", allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// Seed of the weight initialisation and of the shuffling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fashion-MNIST directory (IDX files, raw or .gz) [default: $CNN_DATA,
    /// else /usr/share/datasets/fashion-mnist, else the embedded sample].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Train on the 5,000-image sample compiled into the binary, with the
    /// net's sample recipe, even if a full data set is installed.
    #[arg(long, conflicts_with = "data")]
    pub sample: bool,
    /// Where to write weights, metrics, plots and the checkpoint
    /// [default: runs/NET; with --resume, the run's directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads, at most 4 per core [default: the available cores;
    /// with --resume, the run's].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Continue the interrupted (or finished, with a larger --epochs) run
    /// whose --out was DIR, from its checkpoint.safetensors: weights,
    /// optimizer state, epoch, shuffle order and metrics, so the result is
    /// the run's had it never stopped. Options left out come from the run;
    /// options given must match it (--epochs and --threads may differ).
    #[arg(long, value_name = "DIR", conflicts_with = "init_weights")]
    pub resume: Option<PathBuf>,
    /// Start a new run from these weights (.json or .safetensors) instead
    /// of a fresh Xavier initialisation: weights only, with a fresh
    /// optimizer from epoch 1 (to continue a run, use --resume).
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// Train on the first N training examples only.
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Test on the first N test examples only.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Testing: act as if Ctrl-C came after epoch N (checkpoint, exit 130).
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_epochs: Option<usize>,
    /// Testing: act as if Ctrl-C came during step N of the run (counted
    /// over all epochs from 1): that step finishes, then checkpoint, exit 130.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_steps: Option<u64>,
}

/// Options of `cnn eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Weights file (.json or .safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The net the weights belong to.
    #[arg(long, default_value = models::NETS[0].name, value_parser = net_names())]
    pub net: String,
    /// Fashion-MNIST directory [default: as for `cnn train`].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Test on the first N test examples only.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Worker threads, at most 4 per core [default: the available cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Options of `cnn infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Weights file (.json or .safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The net the weights belong to.
    #[arg(long, default_value = models::NETS[0].name, value_parser = net_names())]
    pub net: String,
    /// Worker threads, at most 4 per core [default: the available cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// IDX images file (raw or gzip) whose images match the net's input.
    #[arg(value_name = "IDX_IMAGES")]
    pub images: PathBuf,
}

/// Options of `cnn summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The net to describe; without it, every net is listed.
    #[arg(value_parser = net_names())]
    pub name: Option<String>,
}

/// The optimizer with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// SGD, as `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// Adam, as `torch.optim.Adam`.
    Adam(AdamConfig),
}

impl OptimizerConfig {
    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Adam(c) => c.lr,
        }
    }
}

impl std::fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimizerConfig::Sgd(c) => {
                write!(f, "SGD lr {}", number(c.lr))?;
                if c.momentum != 0.0 {
                    write!(f, " momentum {}", number(c.momentum))?;
                }
                if c.weight_decay != 0.0 {
                    write!(f, " weight decay {}", number(c.weight_decay))?;
                }
                Ok(())
            }
            OptimizerConfig::Adam(c) => {
                write!(f, "Adam lr {}", number(c.lr))?;
                if c.weight_decay != 0.0 {
                    write!(f, " weight decay {}", number(c.weight_decay))?;
                }
                Ok(())
            }
        }
    }
}

/// A checked `cnn train` command line.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Registry name of the net.
    pub net: String,
    /// Passes over the training set, at least 1.
    pub epochs: usize,
    /// Examples per step, at least 1.
    pub batch_size: usize,
    /// Optimizer and hyper-parameters, all finite.
    pub optimizer: OptimizerConfig,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Where the data comes from.
    pub source: Source,
    /// The recipe that filled in the options left out, and its name.
    pub recipe: (models::Recipe, &'static str),
    /// Output directory.
    pub out: PathBuf,
    /// Worker threads, at least 1 and at most [`THREADS_PER_CORE`] per core.
    pub threads: usize,
    /// Weights to start a new run from (`--init-weights`).
    pub init_weights: Option<PathBuf>,
    /// Use only the first N training examples (at least 1).
    pub limit_train: Option<usize>,
    /// Use only the first N test examples (at least 1).
    pub limit_test: Option<usize>,
    /// Where the testing options `--stop-after-*` stop the run.
    pub stop: StopAt,
}

/// Where the hidden testing options stop a run, as if Ctrl-C came there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StopAt {
    /// After this epoch (`--stop-after-epochs`).
    pub epochs: Option<usize>,
    /// After this step of the run, counted from 1 (`--stop-after-steps`).
    pub steps: Option<u64>,
}

/// At least 1, or an error naming the option.
fn positive(option: &str, value: usize) -> Result<usize, CliError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(CliError::InvalidArg(format!(
            "{option} must be at least 1, got {value}"
        )))
    }
}

fn positive_opt(option: &str, value: Option<usize>) -> Result<Option<usize>, CliError> {
    value.map(|v| positive(option, v)).transpose()
}

/// At most `max`, or an error naming the option.
fn at_most(option: &str, value: usize, max: usize) -> Result<usize, CliError> {
    if value <= max {
        Ok(value)
    } else {
        Err(CliError::InvalidArg(format!(
            "{option} must be at most {}, got {value}",
            super::report::thousands(max)
        )))
    }
}

/// The available cores (1 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `--threads` value, or the number of available cores. More than
/// [`THREADS_PER_CORE`] threads per core only cost memory and time, so
/// such a value is capped, with a warning.
pub fn threads(value: Option<usize>) -> Result<usize, CliError> {
    let cores = cores();
    match value {
        Some(n) => {
            let n = positive("--threads", n)?;
            let cap = cores.saturating_mul(THREADS_PER_CORE);
            if n > cap {
                warn!(
                    "--threads {n} is more than {THREADS_PER_CORE} per core ({cores} available); using {cap}"
                );
                Ok(cap)
            } else {
                Ok(n)
            }
        }
        None => Ok(cores),
    }
}

/// A finite value in `[0, limit)`, or an error naming the option.
fn in_range(option: &str, value: f32, limit: Option<f32>) -> Result<f32, CliError> {
    let ok = value.is_finite() && value >= 0.0 && limit.is_none_or(|l| value < l);
    if ok {
        return Ok(value);
    }
    let range = match limit {
        Some(l) => format!("a number in [0, {l})"),
        None => "a finite number >= 0".to_owned(),
    };
    Err(CliError::InvalidArg(format!(
        "{option} must be {range}, got {value}"
    )))
}

impl TrainArgs {
    /// Checks every value and fills in the defaults that depend on others:
    /// the data source, then the net's [`models::Recipe`] for that source
    /// (its sample recipe on the embedded sample) for what was left out; the
    /// recipe's learning rate and momentum only if the optimizer is its own.
    pub fn validate(self) -> Result<TrainConfig, CliError> {
        let source = if self.sample {
            Source::Embedded
        } else {
            Source::choose(self.data.as_deref())
        };
        let net = self.net.unwrap_or_else(|| models::NETS[0].name.to_owned());
        let entry = models::net_entry(&net);
        let recipe = match (&source, entry) {
            (Source::Embedded, Some(net)) => (net.sample_recipe, "the sample recipe"),
            (Source::Embedded, None) => (models::Recipe::SAMPLE, "the sample recipe"),
            (Source::Dir { .. }, Some(net)) if net.recipe == models::Recipe::D2L => {
                (net.recipe, "D2L's recipe (section 7.6)")
            }
            (Source::Dir { .. }, Some(net)) => (net.recipe, "the net's recipe"),
            (Source::Dir { .. }, None) => (models::Recipe::D2L, "D2L's recipe (section 7.6)"),
        };
        let recipe_name = recipe.1;
        let recipe = recipe.0;
        let recipe_optimizer = match recipe.optimizer {
            models::RecipeOptimizer::Sgd => OptimizerKind::Sgd,
            models::RecipeOptimizer::Adam => OptimizerKind::Adam,
        };
        let kind = self.optimizer.unwrap_or(recipe_optimizer);
        let (default_lr, default_momentum) = match kind {
            _ if kind == recipe_optimizer => (recipe.lr, recipe.momentum),
            OptimizerKind::Sgd => (0.9, 0.0),
            OptimizerKind::Adam => (1e-3, 0.0),
        };
        let epochs = positive("--epochs", self.epochs.unwrap_or(recipe.epochs))?;
        let epochs = at_most("--epochs", epochs, MAX_EPOCHS)?;
        let batch_size = positive("--batch-size", self.batch_size.unwrap_or(recipe.batch_size))?;
        let batch_size = at_most("--batch-size", batch_size, MAX_BATCH_SIZE)?;
        let lr = self.lr.unwrap_or(default_lr);
        if !(lr.is_finite() && lr > 0.0) {
            return Err(CliError::InvalidArg(format!(
                "--lr must be a finite number greater than 0, got {lr}"
            )));
        }
        let momentum = in_range("--momentum", self.momentum.unwrap_or(default_momentum), Some(1.0))?;
        let weight_decay = in_range("--weight-decay", self.weight_decay.unwrap_or(0.0), None)?;
        let optimizer = match kind {
            OptimizerKind::Sgd => OptimizerConfig::Sgd(
                SgdConfig::new(lr)
                    .with_momentum(momentum)
                    .with_weight_decay(weight_decay),
            ),
            OptimizerKind::Adam => {
                if momentum != 0.0 {
                    return Err(CliError::InvalidArg(
                        "--momentum applies to --optimizer sgd only (Adam has its own moments)".to_owned(),
                    ));
                }
                OptimizerConfig::Adam(AdamConfig::new(lr).with_weight_decay(weight_decay))
            }
        };
        Ok(TrainConfig {
            out: self.out.unwrap_or_else(|| PathBuf::from("runs").join(&net)),
            net,
            epochs,
            batch_size,
            optimizer,
            seed: self.seed.unwrap_or(0),
            source,
            recipe: (recipe, recipe_name),
            threads: threads(self.threads)?,
            init_weights: self.init_weights,
            limit_train: positive_opt("--limit-train", self.limit_train)?,
            limit_test: positive_opt("--limit-test", self.limit_test)?,
            stop: StopAt {
                epochs: positive_opt("--stop-after-epochs", self.stop_after_epochs)?,
                steps: self.stop_after_steps,
            },
        })
    }
}

/// Whether `a` and `b` name the same file or directory.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl TrainArgs {
    /// `--resume`: fills the options left out with those of `saved`, the
    /// run in `dir`. An option given with another value than the run's is
    /// an error naming both: a resumed run keeps its recipe. Two may differ:
    /// `--epochs` (a run trained to N epochs is the same run up to there)
    /// and `--threads` (with a warning: the last bits of the results depend
    /// on the thread count).
    pub fn continue_run(mut self, dir: &Path, saved: &SavedRun) -> Result<TrainArgs, CliError> {
        let differs = |option: &str, given: String, theirs: String| {
            CliError::Mismatch(format!(
                "{option} {given} differs from the run in {} ({theirs}); a resumed run keeps its \
                 recipe: leave {option} out, or start a new run with another --out",
                dir.display()
            ))
        };
        /// `given` if it is `saved`, else the error.
        fn keep<T: PartialEq + std::fmt::Display + Clone>(
            given: &mut Option<T>,
            saved: T,
            option: &str,
            differs: &dyn Fn(&str, String, String) -> CliError,
        ) -> Result<(), CliError> {
            match given {
                Some(g) if *g != saved => Err(differs(option, g.to_string(), format!("{option} {saved}"))),
                _ => {
                    *given = Some(saved);
                    Ok(())
                }
            }
        }
        let (kind, lr, momentum, weight_decay) = match saved.optimizer {
            OptimizerConfig::Sgd(c) => (OptimizerKind::Sgd, c.lr, c.momentum, c.weight_decay),
            OptimizerConfig::Adam(c) => (OptimizerKind::Adam, c.lr, 0.0, c.weight_decay),
        };
        keep(&mut self.net, saved.net.clone(), "--net", &differs)?;
        if let Some(given) = self.optimizer.filter(|&k| k != kind) {
            let name = |k: OptimizerKind| format!("{k:?}").to_lowercase();
            return Err(differs(
                "--optimizer",
                name(given),
                format!("--optimizer {}", name(kind)),
            ));
        }
        self.optimizer = Some(kind);
        keep(&mut self.lr, lr, "--lr", &differs)?;
        keep(&mut self.momentum, momentum, "--momentum", &differs)?;
        keep(&mut self.weight_decay, weight_decay, "--weight-decay", &differs)?;
        keep(&mut self.batch_size, saved.batch_size, "--batch-size", &differs)?;
        keep(&mut self.seed, saved.seed, "--seed", &differs)?;
        let all = |n: Option<usize>, what: &str| n.map_or(format!("all {what} examples"), |n| n.to_string());
        for (given, theirs, option, what) in [
            (
                &mut self.limit_train,
                saved.limit_train,
                "--limit-train",
                "training",
            ),
            (&mut self.limit_test, saved.limit_test, "--limit-test", "test"),
        ] {
            match *given {
                Some(g) if Some(g) != theirs => {
                    return Err(differs(
                        option,
                        g.to_string(),
                        format!("{option} {}", all(theirs, what)),
                    ))
                }
                _ => *given = theirs,
            }
        }
        match (&saved.data, self.sample, &self.data) {
            (None, _, Some(given)) => {
                return Err(differs(
                    "--data",
                    given.display().to_string(),
                    "the embedded sample".to_owned(),
                ))
            }
            (Some(theirs), true, _) => {
                return Err(differs(
                    "--sample",
                    "(the embedded sample)".to_owned(),
                    format!("--data {}", theirs.display()),
                ))
            }
            (Some(theirs), false, Some(given)) if !same_path(given, theirs) => {
                return Err(differs(
                    "--data",
                    given.display().to_string(),
                    format!("--data {}", theirs.display()),
                ))
            }
            (None, _, None) => self.sample = true,
            (Some(theirs), false, _) => self.data = Some(theirs.clone()),
        }
        if let Some(given) = self.out.as_deref().filter(|out| !same_path(out, dir)) {
            return Err(CliError::Mismatch(format!(
                "--out {} differs from the run's directory {}: --resume continues a run where it is \
                 (leave --out out)",
                given.display(),
                dir.display()
            )));
        }
        self.out = Some(dir.to_owned());
        self.epochs = self.epochs.or(Some(saved.epochs));
        match self.threads {
            Some(t) if t != saved.threads => warn!(
                "--threads {t} differs from the run's {}: training goes on, but its results will \
                 differ in the last bits from the uninterrupted run's",
                saved.threads
            ),
            _ => self.threads = Some(saved.threads),
        }
        Ok(self)
    }
}

/// A checked `cnn eval` command line.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Registry name of the net.
    pub net: String,
    /// Weights file.
    pub weights: PathBuf,
    /// `--data`, if given.
    pub data: Option<PathBuf>,
    /// Use only the first N test examples (at least 1).
    pub limit_test: Option<usize>,
    /// Worker threads, at least 1.
    pub threads: usize,
}

impl EvalArgs {
    /// Checks every value.
    pub fn validate(self) -> Result<EvalConfig, CliError> {
        Ok(EvalConfig {
            net: self.net,
            weights: self.weights,
            data: self.data,
            limit_test: positive_opt("--limit-test", self.limit_test)?,
            threads: threads(self.threads)?,
        })
    }
}

/// A checked `cnn infer` command line.
#[derive(Clone, Debug)]
pub struct InferConfig {
    /// Registry name of the net.
    pub net: String,
    /// Weights file.
    pub weights: PathBuf,
    /// IDX images file.
    pub images: PathBuf,
    /// Worker threads, at least 1.
    pub threads: usize,
}

impl InferArgs {
    /// Checks every value.
    pub fn validate(self) -> Result<InferConfig, CliError> {
        Ok(InferConfig {
            net: self.net,
            weights: self.weights,
            images: self.images,
            threads: threads(self.threads)?,
        })
    }
}
