//! `cnn train`: the training loop of Dive into Deep Learning's
//! `train_ch6`, generic over the net.
//!
//! Each epoch shuffles the training set (an [`Rng`] seeded from `--seed`,
//! so runs repeat exactly with the same seed and thread count), steps
//! through it in batches (the last one partial), then evaluates on the test
//! set and prints one table row. A loss that is not finite stops training
//! and keeps the last weights whose loss was finite.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cnn_runtime::data::{Dataset, NUM_CLASSES};
use cnn_runtime::init::{self, Rng};
use cnn_runtime::optim::{Adam, Optimizer, Sgd};
use cnn_runtime::{train, Network, Target};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{OptimizerConfig, TrainConfig};
use super::dataset::{self, Source};
use super::error::CliError;
use super::plot;
use super::report::{self, thousands, EpochMetrics, Evaluation};
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
/// `resume`.
pub fn initial_net<N: Network>(seed: u64, resume: Option<&Path>) -> Result<Box<N>, CliError> {
    let mut net = train::boxed_zeroed::<N>();
    match resume {
        Some(path) => weights_file::load(&mut *net, path)?,
        None => init::xavier_uniform(N::TENSORS, net.params_mut(), &mut Rng::new(seed)),
    }
    Ok(net)
}

/// `"1 epoch"`, `"10 epochs"`.
fn plural(n: usize, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {noun}{s}")
}

fn optimizer(config: &OptimizerConfig) -> Box<dyn Optimizer> {
    match *config {
        OptimizerConfig::Sgd(c) => Box::new(Sgd::new(c)),
        OptimizerConfig::Adam(c) => Box::new(Adam::new(c)),
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
}

/// Runs `cnn train` for net type `N`.
pub fn run<N: Network>(config: &TrainConfig) -> Result<(), CliError> {
    train::set_threads(config.threads);
    let mut net = initial_net::<N>(config.seed, config.resume.as_deref())?;

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

    std::fs::create_dir_all(&config.out).map_err(CliError::io("cannot create directory", &config.out))?;

    say!(
        "net: {} ({} parameters), {}, batch {}, {}, {}, seed {}",
        N::NAME,
        thousands(N::PARAM_COUNT),
        config.optimizer,
        config.batch_size,
        plural(config.epochs, "epoch"),
        plural(config.threads, "thread"),
        config.seed
    );
    match &config.resume {
        Some(path) => say!("weights: resumed from {}", path.display()),
        None => say!("weights: Xavier-uniform initialisation (seed {})", config.seed),
    }
    say!("{}", report::table_header());

    let (history, stop, last_eval) = train_epochs(&mut *net, config, train_set, test);

    let final_eval = match (&stop, last_eval) {
        (Stop::Finished, Some(eval)) => eval,
        // The weights changed since the last evaluation (or there was none).
        _ => Evaluation::of(&*net, test),
    };
    let written = write_outputs(&*net, &config.out, &history)?;
    say!("");
    say!("{}", final_eval.per_class_report().trim_end());
    say!("wrote:");
    for path in &written {
        say!("  {}", path.display());
    }
    match stop {
        Stop::Finished => Ok(()),
        Stop::Diverged {
            epoch,
            step,
            steps,
            loss,
        } => Err(CliError::Diverged {
            epoch,
            step,
            steps,
            loss,
            lr: config.optimizer.lr(),
            saved: config.out.join("weights.json"),
        }),
    }
}

/// The epochs: the metrics of each finished one, why training stopped, and
/// the evaluation after the last finished epoch.
fn train_epochs<N: Network>(
    net: &mut N,
    config: &TrainConfig,
    train_set: &Dataset,
    test: &Dataset,
) -> (Vec<EpochMetrics>, Stop, Option<Evaluation>) {
    let n = train_set.len();
    let batch = config.batch_size.min(n);
    let steps = n.div_ceil(batch);
    let mut opt = optimizer(&config.optimizer);
    let mut shuffle = Rng::new(config.seed ^ 0xD1B5_4A32_D192_ED03);
    let mut order: Vec<usize> = (0..n).collect();
    let mut images = vec![0.0f32; batch * N::INPUT_LEN];
    let mut labels = vec![0u8; batch];
    let mut logits = vec![0.0f32; batch * N::OUTPUT_LEN];
    // `good`: the last parameters whose loss was finite; `before`: the
    // parameters before the current step.
    let mut good = net.params().to_vec();
    let mut before = good.clone();
    let mut history = Vec::with_capacity(config.epochs);
    let mut last_eval = None;
    let start = Instant::now();
    let mut global_step = 0u64;

    for epoch in 1..=config.epochs {
        shuffle.shuffle(&mut order);
        let bar = progress_bar(n, epoch, config.epochs);
        let epoch_start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (step, indices) in order.chunks(batch).enumerate() {
            let len = indices.len();
            let (x, y) = (&mut images[..len * N::INPUT_LEN], &mut labels[..len]);
            train_set.gather(indices, x, y);

            before.copy_from_slice(net.params());
            let step_seed = config.seed ^ global_step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            // The step returns the logits of its forward pass: accuracy from
            // the weights the step starts from, as D2L counts it.
            let out = &mut logits[..len * N::OUTPUT_LEN];
            let loss = train::train_step_with_outputs(net, x, Target::Classes(y), &mut *opt, step_seed, out);
            correct += out
                .chunks(N::OUTPUT_LEN)
                .zip(y.iter())
                .filter(|(row, &label)| train::argmax(row) == usize::from(label))
                .count();
            global_step += 1;
            if !loss.is_finite() || !before.iter().all(|v| v.is_finite()) {
                bar.finish_and_clear();
                net.params_mut().copy_from_slice(&good);
                let stop = Stop::Diverged {
                    epoch,
                    step: step + 1,
                    steps,
                    loss,
                };
                return (history, stop, last_eval);
            }
            std::mem::swap(&mut good, &mut before);

            loss_sum += f64::from(loss) * len as f64;
            seen += len;
            bar.inc(len as u64);
            let rate = seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} ex/s, loss {:.4}",
                thousands(rate.round() as usize),
                loss_sum / seen as f64
            ));
        }
        let train_secs = epoch_start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let eval = Evaluation::of(&*net, test);
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_acc: report::ratio(correct, seen),
            test_acc: eval.accuracy(),
            examples_per_sec: seen as f64 / train_secs.max(1e-9),
            elapsed_s: start.elapsed().as_secs_f64(),
        };
        say!("{}", metrics.table_row());
        history.push(metrics);
        last_eval = Some(eval);
    }
    (history, Stop::Finished, last_eval)
}

/// Writes the weights (both formats), `metrics.csv` and the plots into
/// `out`; returns the paths written, `weights.json` first. A PNG that
/// cannot be drawn is a warning, not an error.
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
