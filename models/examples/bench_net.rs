//! Our side of `bench/compare.sh` (LeNet) and `bench/zoo.sh` (the graph
//! nets): times one net of the zoo in one fresh process and prints one JSON
//! line per measurement.
//!
//! ```text
//! cargo run --release -p models --example bench_net -- --net resnet \
//!     --threads 2 [--weights w.safetensors] [--input x.f32] [--logits out.f32] \
//!     [--seconds 2] [--only latency|infer|train|none]
//! ```
//!
//! `--net` takes any name `cnn list` prints (default `lenet`). Four
//! measurements, each after a warm-up, as the median of repeated timed
//! blocks: `latency_us` of one image three times, as `ours` through
//! `train::Packed::forward_batch` (the batched kernels, their workspace kept
//! by the thread, on weights packed once: batch norms folded, Winograd
//! filters transformed, as the engines pack theirs at load), as
//! `ours-unpacked` through `forward_batch` (which does that on every call)
//! and as `ours-no-heap` through `forward_with` (the no-heap path, its
//! scratch reused, each conv's kernel scratch on the stack), `infer_img_s`
//! (256 images, packed and unpacked) and `train_ex_s` (a training step on a
//! batch of 256 with the optimizer of the net's recipe: SGD with LeNet's lr
//! 0.9, Adam for the graph nets). `--weights` loads a safetensors file
//! (PyTorch `state_dict` keys, batch norm's running statistics included)
//! instead of a seeded Xavier init; `--input` reads raw little-endian f32
//! images (a multiple of the net's input length; the first 256 are used,
//! repeated if fewer); `--logits` writes the batch-256 logits of those
//! weights, before any training, for the agreement check. A bad flag or file
//! is reported on stderr with exit status 2.

use cnn_runtime::init::{self, Rng};
use cnn_runtime::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use cnn_runtime::{train, Network, Target};
use models::{NetVisitor, RecipeOptimizer};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const BATCH: usize = 256;

struct Args {
    net: String,
    threads: usize,
    weights: Option<String>,
    input: Option<String>,
    logits: Option<String>,
    seconds: f64,
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        net: "lenet".into(),
        threads: 1,
        weights: None,
        input: None,
        logits: None,
        seconds: 2.0,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| format!("{flag} takes {what}, not {value:?}");
        match flag.as_str() {
            "--net" => args.net = value,
            "--threads" => {
                args.threads = value
                    .parse()
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or_else(|| number("a positive whole number"))?
            }
            "--seconds" => {
                args.seconds = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| number("a positive number"))?
            }
            "--weights" => args.weights = Some(value),
            "--input" => args.input = Some(value),
            "--logits" => args.logits = Some(value),
            "--only" => match value.as_str() {
                "latency" | "infer" | "train" | "none" => args.only = Some(value),
                _ => {
                    return Err(format!(
                        "--only takes latency, infer, train or none, not {value:?}"
                    ))
                }
            },
            other => return Err(format!("unknown flag {other}; see the module docs")),
        }
    }
    Ok(args)
}

/// `BATCH` images: those of `path` (repeated if fewer), or deterministic
/// values in [0, 1) when no file is given.
fn images(path: Option<&str>, input_len: usize) -> Result<Vec<f32>, String> {
    let Some(path) = path else {
        let mut rng = Rng::new(42);
        return Ok((0..BATCH * input_len).map(|_| rng.next_f32()).collect());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(4 * input_len) {
        return Err(format!(
            "{path}: {} bytes is not a whole number of images of {input_len} f32 values",
            bytes.len()
        ));
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    Ok(values.cycle().take(BATCH * input_len).collect())
}

/// Seconds on a clock: this thread's CPU time (Linux) when `BENCH_CPU_TIME`
/// is set, a one-thread rate that other load on the machine does not skew;
/// wall time otherwise.
fn clock() -> f64 {
    if std::env::var_os("BENCH_CPU_TIME").is_some() {
        if let Some(ns) = std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        {
            return ns * 1e-9;
        }
    }
    thread_local!(static START: Instant = Instant::now());
    START.with(|s| s.elapsed().as_secs_f64())
}

/// Runs `f` (which processes `items` items per call) in blocks of about
/// 50 ms for `seconds`, after a warm-up; returns the median rate in items/s.
fn rate(seconds: f64, items: usize, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    let mut calls = 0usize;
    while warm.elapsed() < Duration::from_millis(300) || calls < 3 {
        f();
        calls += 1;
    }
    let per_call = warm.elapsed().as_secs_f64() / calls as f64;
    let block = ((0.05 / per_call) as usize).max(1);
    let mut rates = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || rates.len() < 5 {
        let t = clock();
        for _ in 0..block {
            f();
        }
        rates.push((block * items) as f64 / (clock() - t));
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The measurements of `args` on the net type the visitor is given.
struct Bench<'a>(&'a Args);

impl NetVisitor for Bench<'_> {
    type Output = Result<(), String>;

    fn visit<N: Network>(self) -> Self::Output {
        let args = self.0;
        let mut net = train::boxed_zeroed::<N>();
        match &args.weights {
            Some(path) => {
                cnn_runtime::weights::load_state(&mut *net, |tensors, dst| {
                    cnn_runtime::weights::load_safetensors_file(tensors, path.as_ref(), dst)
                })
                .map_err(|e| format!("cannot load {path}: {e}"))?;
            }
            None => {
                init::xavier_uniform(N::TENSORS, net.params_mut(), &mut Rng::new(0));
                init::buffers(N::BUFFERS, net.buffers_mut());
            }
        }
        let x = images(args.input.as_deref(), N::INPUT_LEN)?;
        let labels: Vec<u8> = (0..BATCH).map(|i| (i * 7 % 10) as u8).collect();
        let mut logits = vec![0.0f32; BATCH * N::OUTPUT_LEN];
        if let Some(path) = &args.logits {
            train::forward_batch(&*net, &x, &mut logits);
            let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(path, bytes).map_err(|e| format!("cannot write {path}: {e}"))?;
        }
        let wanted = |what: &str| args.only.as_deref().is_none_or(|o| o == what);
        let emit = |system: &str, metric: &str, value: f64| {
            use std::io::Write;
            let line = format!(
                r#"{{"system":"{system}","net":"{}","threads":{},"metric":"{metric}","value":{value:.3}}}"#,
                args.net, args.threads
            );
            if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
                // The reader went away (`| head`): no one is left to read
                // the rest, so stop as quietly as a Unix filter would.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    std::process::exit(0);
                }
                eprintln!("bench_net: cannot write to stdout: {e}");
                std::process::exit(2);
            }
        };

        if wanted("latency") {
            let one = &x[..N::INPUT_LEN];
            let mut out = vec![0.0f32; N::OUTPUT_LEN];
            let packed = train::Packed::new(&*net);
            let per_s = rate(args.seconds, 1, || {
                packed.forward_batch(black_box(one), &mut out);
            });
            emit("ours", "latency_us", 1e6 / per_s);
            let per_s = rate(args.seconds, 1, || {
                train::forward_batch(&*net, black_box(one), &mut out);
            });
            emit("ours-unpacked", "latency_us", 1e6 / per_s);
            let mut scratch = vec![0.0f32; N::INFER_SCRATCH_LEN];
            let per_s = rate(args.seconds, 1, || {
                net.forward_one(black_box(one), &mut out, &mut scratch);
                black_box(&out);
            });
            emit("ours-no-heap", "latency_us", 1e6 / per_s);
        }
        if wanted("infer") {
            let packed = train::Packed::new(&*net);
            let per_s = rate(args.seconds, BATCH, || {
                packed.forward_batch(black_box(&x), &mut logits);
            });
            emit("ours", "infer_img_s", per_s);
            let per_s = rate(args.seconds, BATCH, || {
                train::forward_batch(&*net, black_box(&x), &mut logits);
            });
            emit("ours-unpacked", "infer_img_s", per_s);
        }
        if wanted("train") {
            let recipe = models::net_entry(&args.net).map(|e| e.recipe);
            let mut opt: Box<dyn Optimizer> = match recipe {
                Some(r) if r.optimizer == RecipeOptimizer::Adam => Box::new(Adam::new(AdamConfig::new(r.lr))),
                Some(r) => Box::new(Sgd::new(SgdConfig::new(r.lr))),
                None => return Err(format!("{} has no recipe", args.net)),
            };
            let mut step = 0u64;
            let per_s = rate(args.seconds, BATCH, || {
                step += 1;
                black_box(train::train_step(
                    &mut *net,
                    black_box(&x),
                    Target::Classes(&labels),
                    &mut *opt,
                    step,
                ));
            });
            emit("ours", "train_ex_s", per_s);
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        train::set_threads(args.threads);
        models::with_net(&args.net, Bench(&args)).unwrap_or_else(|| {
            let names: Vec<&str> = models::NETS.iter().map(|n| n.name).collect();
            Err(format!(
                "unknown net {:?}; the nets are: {}",
                args.net,
                names.join(", ")
            ))
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_net: {message}");
            ExitCode::from(2)
        }
    }
}
