//! `cnn train`: the training loop of Dive into Deep Learning's
//! `train_ch6`, generic over the net, which never loses or mixes a run.
//!
//! Each epoch shuffles the training set (an [`Rng`] seeded from `--seed`,
//! so runs repeat exactly with the same seed and thread count), steps
//! through it in batches (the last one partial), then evaluates on the test
//! set, prints one table row and writes the run's checkpoint
//! ([`checkpoint`]). Ctrl-C or SIGTERM lets the step under way finish, then
//! saves the checkpoint and stops; `--resume DIR` takes it up and produces
//! bit for bit what the uninterrupted run would have. A loss that is not
//! finite stops training and keeps the last weights whose loss was finite.
//!
//! The run directory is locked and checked writable before any data is
//! loaded ([`RunDir`]), and the outputs are published as one set at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cnn_runtime::data::{Dataset, NUM_CLASSES};
use cnn_runtime::init::{self, Rng};
use cnn_runtime::optim::{Adam, Optimizer, Sgd};
use cnn_runtime::{train, weights, Network, Target};
use indicatif::{ProgressBar, ProgressStyle};
use models::NetVisitor;

use super::args::{OptimizerConfig, TrainArgs, TrainConfig};
use super::checkpoint::{self, Checkpoint, DataStamp, OptimizerState, Progress, SavedRun, Snapshot};
use super::dataset::{self, Source};
use super::error::CliError;
use super::interrupt::Interrupt;
use super::plot;
use super::report::{self, thousands, EpochMetrics, Evaluation};
use super::run_dir::RunDir;
use super::weights_file;

/// Checks that `N` can classify the images of `data` into Fashion-MNIST's
/// classes; `what` names the images for the error.
pub fn check_fit<N: Network>(rows: usize, cols: usize, what: &str) -> Result<(), CliError> {
    if N::OUTPUT_LEN != NUM_CLASSES {
        return Err(CliError::Mismatch(format!(
            "{} has {} outputs, but Fashion-MNIST has {NUM_CLASSES} classes",
            N::NAME,
            N::OUTPUT_LEN
        )));
    }
    if [1, rows, cols] != N::INPUT_SHAPE {
        return Err(CliError::Mismatch(format!(
            "{what}: images are {rows}x{cols} pixels, but {} expects input {:?}",
            N::NAME,
            N::INPUT_SHAPE
        )));
    }
    Ok(())
}

/// `check_fit` for a loaded split: the error names its images file.
pub fn check_dataset<N: Network>(
    data: &Dataset,
    source: &Source,
    split: cnn_runtime::data::Split,
) -> Result<(), CliError> {
    let what = match source {
        Source::Dir { path, .. } => path.join(split.images_file()).display().to_string(),
        Source::Embedded => format!("embedded sample {}", split.images_file()),
    };
    check_fit::<N>(data.rows, data.cols, &what)
}

/// A fresh `N`: Xavier-uniform weights from `seed`, or the weights of
/// `weights` (a `.json` or `.safetensors` file).
pub fn initial_net<N: Network>(seed: u64, weights: Option<&Path>) -> Result<Box<N>, CliError> {
    let mut net = train::boxed_zeroed::<N>();
    match weights {
        Some(path) => weights_file::load(&mut *net, path)?,
        None => {
            init::xavier_uniform(N::TENSORS, net.params_mut(), &mut Rng::new(seed));
            init::buffers(N::BUFFERS, net.buffers_mut());
        }
    }
    Ok(net)
}

/// The net's whole state, parameters then buffers (batch norm's running
/// statistics), into `out` (reusing its allocation).
fn copy_state<N: Network>(net: &N, out: &mut Vec<f32>) {
    out.clear();
    out.extend_from_slice(net.params());
    out.extend_from_slice(net.buffers());
}

/// Sets the net's whole state from [`copy_state`]'s layout.
fn set_state<N: Network>(net: &mut N, state: &[f32]) {
    let (params, buffers) = state.split_at(N::PARAM_COUNT);
    net.params_mut().copy_from_slice(params);
    net.buffers_mut().copy_from_slice(buffers);
}

/// `"1 epoch"`, `"10 epochs"`.
fn plural(n: usize, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {noun}{s}")
}

/// The seed of the shuffle generator of a run with `seed`.
fn shuffle_seed(seed: u64) -> u64 {
    seed ^ 0xD1B5_4A32_D192_ED03
}

/// `cnn train`: a new run into `--out`, or with `--resume DIR` the run in
/// DIR continued. The run directory is locked and checked before the data
/// is loaded.
pub fn command(args: TrainArgs) -> Result<(), CliError> {
    let Some(resume) = args.resume.clone() else {
        let config = args.validate()?;
        let dir = RunDir::open(&config.out)?;
        refuse_to_overwrite_unfinished(&dir)?;
        let interrupt = Interrupt::install();
        return super::dispatch(
            &config.net.clone(),
            TrainJob {
                config: &config,
                dir: &dir,
                resume: None,
                interrupt: &interrupt,
            },
        );
    };
    let run_dir = resume_dir(&resume)?;
    let dir = RunDir::open(&run_dir)?;
    let saved = Checkpoint::read(&dir.checkpoint())?;
    let data_given = args.data.is_some() || args.sample;
    let epochs_given = args.epochs;
    let mut config = args.continue_run(dir.path(), &saved.run)?.validate()?;
    if !data_given {
        if let Source::Dir { chosen_by, .. } = &mut config.source {
            *chosen_by = Some("--resume");
        }
    }
    if config.optimizer != saved.run.optimizer {
        return Err(CliError::Checkpoint {
            path: saved.path.clone(),
            message: format!(
                "its optimizer ({}) is not one this cnn can rebuild ({})",
                saved.run.optimizer, config.optimizer
            ),
        });
    }
    if config.epochs <= saved.progress.epochs_done {
        let done = saved.progress.epochs_done;
        return Err(CliError::InvalidArg(match epochs_given {
            Some(n) => format!(
                "--epochs {n}: the run in {} has already done {}; pass more to train on",
                run_dir.display(),
                plural(done, "epoch")
            ),
            None => format!(
                "the run in {} already finished its {}: nothing to resume (pass --epochs with more \
                 to train on)",
                run_dir.display(),
                plural(done, "epoch")
            ),
        }));
    }
    let interrupt = Interrupt::install();
    super::dispatch(
        &config.net.clone(),
        TrainJob {
            config: &config,
            dir: &dir,
            resume: Some(&saved),
            interrupt: &interrupt,
        },
    )
}

/// The run directory `--resume` names: a directory, or its
/// `checkpoint.safetensors`. A weights file is an error pointing to
/// `--init-weights`.
fn resume_dir(path: &Path) -> Result<PathBuf, CliError> {
    if path.is_dir() {
        if !path.join(checkpoint::FILE_NAME).is_file() {
            return Err(CliError::InvalidArg(format!(
                "--resume {}: the directory holds no {} (a run writes it after each epoch); nothing \
                 to resume",
                path.display(),
                checkpoint::FILE_NAME
            )));
        }
        return Ok(path.to_owned());
    }
    if path.file_name().is_some_and(|n| n == checkpoint::FILE_NAME) && path.is_file() {
        return Ok(match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        });
    }
    if path.is_file() {
        return Err(CliError::InvalidArg(format!(
            "--resume takes a run directory (the --out of a run) holding {}; to start a new run \
             from the weights in {} only, use --init-weights {}",
            checkpoint::FILE_NAME,
            path.display(),
            path.display()
        )));
    }
    Err(CliError::InvalidArg(format!(
        "--resume {}: no such run directory",
        path.display()
    )))
}

/// A new run into a directory whose checkpoint belongs to a run that did
/// not finish would overwrite it: refused, naming `--resume`.
fn refuse_to_overwrite_unfinished(dir: &RunDir) -> Result<(), CliError> {
    let path = dir.checkpoint();
    if !path.exists() {
        return Ok(());
    }
    let saved = Checkpoint::read(&path).map_err(|e| {
        CliError::InvalidArg(format!(
            "{e}; a new run would overwrite it: delete it, or pick another --out"
        ))
    })?;
    if saved.finished() {
        return Ok(());
    }
    Err(CliError::InvalidArg(format!(
        "{} holds a run that stopped {}: continue it with `cnn train --resume {}`, or pick \
         another --out (or delete {} to start over there)",
        dir.path().display(),
        saved.progress.position(saved.run.epochs),
        dir.path().display(),
        path.display()
    )))
}

struct TrainJob<'a> {
    config: &'a TrainConfig,
    dir: &'a RunDir,
    resume: Option<&'a Checkpoint>,
    interrupt: &'a Interrupt,
}

impl NetVisitor for TrainJob<'_> {
    type Output = Result<(), CliError>;
    fn visit<N: Network>(self) -> Self::Output {
        run::<N>(self.config, self.dir, self.resume, self.interrupt)
    }
}

/// The optimizers of `cnn train`, whose state goes into checkpoints.
enum TrainOptimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl TrainOptimizer {
    fn new(config: &OptimizerConfig) -> TrainOptimizer {
        match *config {
            OptimizerConfig::Sgd(c) => TrainOptimizer::Sgd(Sgd::new(c)),
            OptimizerConfig::Adam(c) => TrainOptimizer::Adam(Adam::new(c)),
        }
    }

    /// The optimizer of a checkpoint, for `params` parameters.
    fn restore(
        config: &OptimizerConfig,
        params: usize,
        saved: &Checkpoint,
    ) -> Result<TrainOptimizer, CliError> {
        let steps = saved.optimizer_steps;
        let buffer = |name: &str| saved.buffer(name).map(Option::unwrap_or_default);
        let restored = match *config {
            OptimizerConfig::Sgd(c) => {
                Sgd::with_state(c, params, steps, buffer("momentum_buffer")?).map(TrainOptimizer::Sgd)
            }
            OptimizerConfig::Adam(c) => {
                Adam::with_state(c, params, steps, buffer("exp_avg")?, buffer("exp_avg_sq")?)
                    .map(TrainOptimizer::Adam)
            }
        };
        restored.map_err(|e| CliError::Checkpoint {
            path: saved.path.clone(),
            message: e.to_string(),
        })
    }

    fn as_dyn(&mut self) -> &mut dyn Optimizer {
        match self {
            TrainOptimizer::Sgd(o) => o,
            TrainOptimizer::Adam(o) => o,
        }
    }

    fn state(&self) -> OptimizerState {
        match self {
            TrainOptimizer::Sgd(o) => OptimizerState {
                steps: o.steps(),
                buffers: match o.velocity() {
                    [] => Vec::new(),
                    v => vec![("momentum_buffer", v.to_vec())],
                },
            },
            TrainOptimizer::Adam(o) => {
                let (m, v) = o.moments();
                OptimizerState {
                    steps: o.steps(),
                    buffers: if m.is_empty() {
                        Vec::new()
                    } else {
                        vec![("exp_avg", m.to_vec()), ("exp_avg_sq", v.to_vec())]
                    },
                }
            }
        }
    }
}

fn progress_bar(examples: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(examples as u64).with_prefix(format!("epoch {epoch}/{epochs}"));
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{wide_bar}] {human_pos}/{human_len} eta {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Why training ended.
enum Stop {
    /// Every epoch ran.
    Finished,
    /// The loss at this step was not finite.
    Diverged {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f32,
    },
    /// A signal or a `--stop-after-*` option stopped the run (after saving
    /// its checkpoint, if it had taken a step). `message` says what stopped
    /// it where and how to go on; `code` is the exit status.
    Interrupted { message: String, code: u8 },
}

/// What a run records about itself in its checkpoints.
struct RunRecord {
    saved: SavedRun,
    data: DataStamp,
}

/// Runs `cnn train` for net type `N`.
fn run<N: Network>(
    config: &TrainConfig,
    dir: &RunDir,
    resume: Option<&Checkpoint>,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    train::set_threads(config.threads);
    let mut net = match resume {
        Some(saved) => {
            let mut net = train::boxed_zeroed::<N>();
            let mut state = Vec::new();
            copy_state(&*net, &mut state);
            saved.load_params::<N>(&weights::state_table::<N>(), &mut state)?;
            set_state(&mut *net, &state);
            net
        }
        None => initial_net::<N>(config.seed, config.init_weights.as_deref())?,
    };

    let source = &config.source;
    let data = dataset::load(source, true, config.limit_train, config.limit_test)?;
    say!("{}", data.description);
    let (recipe, recipe_name) = config.recipe;
    say!(
        "recipe: {recipe_name}: {recipe}{}",
        match source {
            Source::Embedded => "; D2L's (SGD lr 0.9, batch 256, 10 epochs) needs the full set",
            Source::Dir { .. } => "",
        }
    );
    let test = &data.test;
    let Some(train_set) = &data.train else {
        unreachable!("dataset::load was asked for the training split")
    };
    check_dataset::<N>(train_set, source, cnn_runtime::data::Split::Train)?;
    check_dataset::<N>(test, source, cnn_runtime::data::Split::Test)?;

    let n = train_set.len();
    let steps = n.div_ceil(config.batch_size.min(n));
    let record = RunRecord {
        saved: SavedRun {
            net: config.net.clone(),
            optimizer: config.optimizer,
            batch_size: config.batch_size,
            epochs: config.epochs,
            seed: config.seed,
            threads: config.threads,
            data: match source {
                Source::Embedded => None,
                Source::Dir { path, .. } => Some(path.canonicalize().unwrap_or_else(|_| path.clone())),
            },
            limit_train: config.limit_train,
            limit_test: config.limit_test,
            init_weights: match resume {
                Some(saved) => saved.run.init_weights.clone(),
                None => config
                    .init_weights
                    .as_ref()
                    .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())),
            },
        },
        data: DataStamp::of(train_set, test),
    };
    let (progress, mut opt) = match resume {
        None => (
            Progress::start(shuffle_seed(config.seed), n, steps),
            TrainOptimizer::new(&config.optimizer),
        ),
        Some(saved) => {
            if saved.data != record.data {
                return Err(CliError::Mismatch(format!(
                    "the data differs from the run's: {} was trained on {} train and {} test \
                     examples (fingerprint {:016x}), this data has {} and {} (fingerprint {:016x})",
                    saved.path.display(),
                    thousands(saved.data.train),
                    thousands(saved.data.test),
                    saved.data.fingerprint,
                    thousands(record.data.train),
                    thousands(record.data.test),
                    record.data.fingerprint
                )));
            }
            if saved.progress.steps_per_epoch != steps {
                return Err(CliError::Checkpoint {
                    path: saved.path.clone(),
                    message: format!(
                        "it counts {} steps per epoch, but batch {} over {} examples makes {steps}",
                        saved.progress.steps_per_epoch, config.batch_size, n
                    ),
                });
            }
            (
                saved.progress.clone(),
                TrainOptimizer::restore(&config.optimizer, N::PARAM_COUNT, saved)?,
            )
        }
    };

    say!(
        "net: {} ({} parameters), {}, batch {}, {}, {}, {} kernels, seed {}",
        N::NAME,
        thousands(N::PARAM_COUNT),
        config.optimizer,
        config.batch_size,
        plural(config.epochs, "epoch"),
        plural(config.threads, "thread"),
        cnn_runtime::ops::instruction_set(),
        config.seed
    );
    match (resume, &config.init_weights) {
        (Some(saved), _) => say!(
            "weights: resumed from {}, {} (step {} of the run)",
            saved.path.display(),
            saved.progress.position(config.epochs),
            saved.progress.global_step
        ),
        (None, Some(path)) => say!(
            "weights: loaded from {} (weights only: a new run, from epoch 1 with a fresh optimizer)",
            path.display()
        ),
        (None, None) => say!("weights: Xavier-uniform initialisation (seed {})", config.seed),
    }
    say!("{}", report::table_header());
    for m in &progress.history {
        say!("{}", m.table_row());
    }

    let mut loop_state = Epochs {
        net: &mut *net,
        config,
        train_set,
        test,
        opt: &mut opt,
        progress,
        dir,
        record: &record,
        interrupt,
    };
    let (stop, last_eval) = loop_state.run()?;
    let history = std::mem::take(&mut loop_state.progress.history);

    let (final_eval, diverged) = match stop {
        Stop::Interrupted { message, code } => return Err(CliError::Interrupted { message, code }),
        Stop::Finished => match last_eval {
            Some(eval) => (eval, None),
            None => (Evaluation::of(&*net, test), None),
        },
        // The weights changed since the last evaluation.
        Stop::Diverged { .. } => (Evaluation::of(&*net, test), Some(stop)),
    };
    let written = publish_outputs(&*net, dir, &history)?;
    say!("");
    say!("{}", final_eval.per_class_report().trim_end());
    say!("wrote:");
    for path in &written {
        say!("  {}", path.display());
    }
    if let Some(Stop::Diverged {
        epoch,
        step,
        steps,
        loss,
    }) = diverged
    {
        // Resuming would only repeat the divergence; without the checkpoint
        // a new run (with a lower --lr) may use the directory.
        let _ = std::fs::remove_file(dir.checkpoint());
        return Err(CliError::Diverged {
            epoch,
            step,
            steps,
            loss,
            lr: config.optimizer.lr(),
            saved: dir.path().join("weights.json"),
        });
    }
    say!(
        "  {} (continue with --resume {} --epochs N)",
        dir.checkpoint().display(),
        dir.path().display()
    );
    Ok(())
}

/// The training loop's state.
struct Epochs<'a, N> {
    net: &'a mut N,
    config: &'a TrainConfig,
    train_set: &'a Dataset,
    test: &'a Dataset,
    opt: &'a mut TrainOptimizer,
    progress: Progress,
    dir: &'a RunDir,
    record: &'a RunRecord,
    interrupt: &'a Interrupt,
}

impl<N: Network> Epochs<'_, N> {
    /// Writes the checkpoint of where the run stands.
    fn save(&self) -> Result<(), CliError> {
        // Parameters and buffers (batch norm's running statistics).
        let tensors = weights::state_table::<N>();
        let mut state = Vec::new();
        copy_state(&*self.net, &mut state);
        checkpoint::write(
            &self.dir.checkpoint(),
            &Snapshot {
                net_type: N::NAME,
                tensors: &tensors,
                params: &state,
                run: &self.record.saved,
                data: self.record.data,
                progress: &self.progress,
                optimizer: self.opt.state(),
            },
        )
    }

    /// What asks the run to stop now, if anything: a signal, or a testing
    /// option whose point is reached (`epoch_end`: between epochs).
    fn stop_request(&self, epoch_end: bool) -> Option<(String, u8)> {
        if let Some(signal) = self.interrupt.pending() {
            return Some((format!("interrupted by {}", signal.name()), signal.exit_code()));
        }
        let p = &self.progress;
        if self.config.stop.steps.is_some_and(|s| p.global_step >= s) {
            return Some(("stopped by --stop-after-steps".to_owned(), 130));
        }
        if epoch_end && self.config.stop.epochs.is_some_and(|e| p.epochs_done >= e) {
            return Some(("stopped by --stop-after-epochs".to_owned(), 130));
        }
        None
    }

    /// Saves the checkpoint and says where the run stopped.
    fn stop_here(&mut self, by: String, code: u8, elapsed: f64) -> Result<Stop, CliError> {
        self.progress.elapsed_s = elapsed;
        self.save()?;
        Ok(Stop::Interrupted {
            message: format!(
                "{by} {}; the run is saved in {}: continue it with `cnn train --resume {}`",
                self.progress.position(self.config.epochs),
                self.dir.checkpoint().display(),
                self.dir.path().display()
            ),
            code,
        })
    }

    /// The epochs from where the progress stands: why training stopped, and
    /// the evaluation after the last finished epoch.
    fn run(&mut self) -> Result<(Stop, Option<Evaluation>), CliError> {
        let config = self.config;
        let n = self.train_set.len();
        let batch = config.batch_size.min(n);
        let steps = self.progress.steps_per_epoch;
        let mut shuffle = Rng::new(self.progress.shuffle_state);
        let mut images = vec![0.0f32; batch * N::INPUT_LEN];
        let mut labels = vec![0u8; batch];
        let mut logits = vec![0.0f32; batch * N::OUTPUT_LEN];
        // `good`: the last state (parameters and buffers) whose loss was
        // finite; `before`: the state before the current step.
        let mut good = Vec::new();
        copy_state(&*self.net, &mut good);
        let mut before = good.clone();
        let mut last_eval = None;
        let start = Instant::now();
        let elapsed_before = self.progress.elapsed_s;
        let elapsed = |start: &Instant| elapsed_before + start.elapsed().as_secs_f64();

        if let Some((by, code)) = self.stop_request(false) {
            // No step was taken: a resumed run's checkpoint still holds.
            let saved = if self.progress.global_step == 0 {
                "nothing was saved".to_owned()
            } else {
                format!("{} is unchanged", self.dir.checkpoint().display())
            };
            let message = format!("{by} before training began; {saved}");
            return Ok((Stop::Interrupted { message, code }, None));
        }
        while self.progress.epochs_done < config.epochs {
            let epoch = self.progress.epochs_done + 1;
            if self.progress.step_in_epoch == 0 {
                shuffle.shuffle(&mut self.progress.order);
                self.progress.shuffle_state = shuffle.state();
                (self.progress.loss_sum, self.progress.correct, self.progress.seen) = (0.0, 0, 0);
            }
            let bar = progress_bar(n, epoch, config.epochs);
            bar.set_position(self.progress.seen as u64);
            let epoch_start = Instant::now();
            let seen_before = self.progress.seen;
            let first_step = self.progress.step_in_epoch;
            for step in first_step..steps {
                let p = &mut self.progress;
                let indices = &p.order[step * batch..((step + 1) * batch).min(n)];
                let len = indices.len();
                let (x, y) = (&mut images[..len * N::INPUT_LEN], &mut labels[..len]);
                self.train_set.gather(indices, x, y);

                copy_state(&*self.net, &mut before);
                let step_seed = config.seed ^ p.global_step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                // The step returns the logits of its forward pass: accuracy
                // from the weights the step starts from, as D2L counts it.
                let out = &mut logits[..len * N::OUTPUT_LEN];
                let loss = train::train_step_with_outputs(
                    &mut *self.net,
                    x,
                    Target::Classes(y),
                    self.opt.as_dyn(),
                    step_seed,
                    out,
                );
                p.correct += out
                    .chunks(N::OUTPUT_LEN)
                    .zip(y.iter())
                    .filter(|(row, &label)| train::argmax(row) == usize::from(label))
                    .count();
                p.global_step += 1;
                p.step_in_epoch = step + 1;
                if !loss.is_finite() || !before.iter().all(|v| v.is_finite()) {
                    bar.finish_and_clear();
                    set_state(&mut *self.net, &good);
                    let stop = Stop::Diverged {
                        epoch,
                        step: step + 1,
                        steps,
                        loss,
                    };
                    return Ok((stop, last_eval));
                }
                std::mem::swap(&mut good, &mut before);

                p.loss_sum += f64::from(loss) * len as f64;
                p.seen += len;
                bar.inc(len as u64);
                let rate = (p.seen - seen_before) as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "{} ex/s, loss {:.4}",
                    thousands(rate.round() as usize),
                    p.loss_sum / p.seen as f64
                ));
                if step + 1 < steps {
                    if let Some((by, code)) = self.stop_request(false) {
                        bar.finish_and_clear();
                        let stop = self.stop_here(by, code, elapsed(&start))?;
                        return Ok((stop, last_eval));
                    }
                }
            }
            let train_secs = epoch_start.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let eval = Evaluation::of(&*self.net, self.test);
            let p = &mut self.progress;
            let metrics = EpochMetrics {
                epoch,
                train_loss: p.loss_sum / p.seen as f64,
                train_acc: report::ratio(p.correct, p.seen),
                test_acc: eval.accuracy(),
                examples_per_sec: (p.seen - seen_before) as f64 / train_secs.max(1e-9),
                elapsed_s: elapsed(&start),
            };
            say!("{}", metrics.table_row());
            p.history.push(metrics);
            p.epochs_done = epoch;
            p.step_in_epoch = 0;
            p.elapsed_s = metrics.elapsed_s;
            last_eval = Some(eval);
            let saved = self.save();
            if epoch < config.epochs {
                if let Some((by, code)) = self.stop_request(true) {
                    saved?;
                    let stop = self.stop_here(by, code, elapsed(&start))?;
                    return Ok((stop, last_eval));
                }
            }
            if let Err(e) = saved {
                warn!("{e}; training goes on, but a resume would start from an older checkpoint");
            }
        }
        Ok((Stop::Finished, last_eval))
    }
}

/// Writes the weights (both formats), `metrics.csv` and the plots into a
/// staging directory, then publishes them into the run directory as one
/// set; returns the paths published, `weights.json` first. A PNG that
/// cannot be drawn is a warning, not an error (the set then has none).
fn publish_outputs<N: Network>(
    net: &N,
    dir: &RunDir,
    history: &[EpochMetrics],
) -> Result<Vec<PathBuf>, CliError> {
    let staging = dir.staging()?;
    write_outputs(net, &staging, history).map_err(|e| CliError::Publish {
        dir: dir.path().to_owned(),
        reason: e.to_string(),
        staging: staging.clone(),
    })?;
    dir.publish(&staging)
}

/// Writes the outputs into `out`; returns the paths written.
fn write_outputs<N: Network>(
    net: &N,
    out: &Path,
    history: &[EpochMetrics],
) -> Result<Vec<PathBuf>, CliError> {
    let mut written = weights_file::save_both(net, out)?;
    let csv = out.join("metrics.csv");
    cnn_runtime::weights::write_atomic(&csv, report::metrics_csv(history).as_bytes())
        .map_err(CliError::io("cannot write", &csv))?;
    written.push(csv);

    let title = format!("{} on Fashion-MNIST", N::NAME);
    written.push(plot::write_svg(out, &title, history)?);
    match plot::write_png(out, &title, history) {
        Ok(png) => written.push(png),
        Err(e) => warn!("{e}"),
    }
    Ok(written)
}
