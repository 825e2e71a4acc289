//! Our side of `bench/compare.sh`: times the generated LeNet in one fresh
//! process and prints one JSON line per measurement.
//!
//! ```text
//! cargo run --release -p models --example bench_lenet -- \
//!     --threads 2 [--weights lenet.safetensors] [--input x.f32] [--logits out.f32] [--seconds 2]
//! ```
//!
//! Three measurements, each after a warm-up, as the median of repeated
//! timed blocks: `latency_us` (batch-1 `forward`), `infer_img_s`
//! (`forward_batch` on 256 images) and `train_ex_s` (`train_step` with SGD,
//! lr 0.9 as in D2L, batch 256). `--weights` loads a safetensors file
//! (PyTorch `state_dict` keys) instead of a seeded init; `--input` reads raw
//! little-endian f32 images (a multiple of 784 values; the first 256 are
//! used, repeated if fewer); `--logits` writes the batch-256 logits of those
//! weights, before any training, for the agreement check.

use cnn_runtime::optim::{Sgd, SgdConfig};
use cnn_runtime::train;
use models::LeNet;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BATCH: usize = 256;

struct Args {
    threads: usize,
    weights: Option<String>,
    input: Option<String>,
    logits: Option<String>,
    seconds: f64,
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        threads: 1,
        weights: None,
        input: None,
        logits: None,
        seconds: 2.0,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => args.threads = value().parse().expect("--threads takes a number"),
            "--weights" => args.weights = Some(value()),
            "--input" => args.input = Some(value()),
            "--logits" => args.logits = Some(value()),
            "--seconds" => args.seconds = value().parse().expect("--seconds takes a number"),
            "--only" => args.only = Some(value()),
            other => panic!("unknown flag {other}; see the module docs"),
        }
    }
    args
}

/// Deterministic images in [0, 1) when no input file is given.
fn synthetic_images(n: usize) -> Vec<f32> {
    let mut rng = cnn_runtime::init::Rng::new(42);
    (0..n * LeNet::INPUT_LEN).map(|_| rng.next_f32()).collect()
}

fn read_images(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(
        !values.is_empty() && values.len().is_multiple_of(LeNet::INPUT_LEN),
        "{path}: expected a multiple of {} f32 values",
        LeNet::INPUT_LEN
    );
    values
        .iter()
        .copied()
        .cycle()
        .take(BATCH * LeNet::INPUT_LEN)
        .collect()
}

/// Nanoseconds this thread has run on a CPU (Linux), when `BENCH_CPU_TIME`
/// is set: a one-thread rate that other load on the machine does not skew.
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

fn main() {
    let args = parse_args();
    train::set_threads(args.threads);
    let mut net = Box::new(LeNet::init_xavier(0));
    if let Some(path) = &args.weights {
        net.load_safetensors_file(path)
            .unwrap_or_else(|e| panic!("cannot load {path}: {e}"));
    }
    let x = match &args.input {
        Some(path) => read_images(path),
        None => synthetic_images(BATCH),
    };
    let labels: Vec<u8> = (0..BATCH).map(|i| (i * 7 % 10) as u8).collect();
    let mut logits = vec![0.0f32; BATCH * LeNet::OUTPUT_LEN];
    net.forward_batch(&x, &mut logits);
    if let Some(path) = &args.logits {
        let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    let wanted = |what: &str| args.only.as_deref().is_none_or(|o| o == what);
    let t = args.threads;

    if wanted("latency") {
        let one: &[f32; LeNet::INPUT_LEN] = x[..LeNet::INPUT_LEN].try_into().expect("one image");
        let per_s = rate(args.seconds, 1, || {
            black_box(net.forward(black_box(one)));
        });
        println!(
            r#"{{"system":"ours","threads":{t},"metric":"latency_us","value":{:.3}}}"#,
            1e6 / per_s
        );
    }
    if wanted("infer") {
        let per_s = rate(args.seconds, BATCH, || {
            net.forward_batch(black_box(&x), &mut logits);
        });
        println!(r#"{{"system":"ours","threads":{t},"metric":"infer_img_s","value":{per_s:.1}}}"#);
    }
    if wanted("train") {
        let mut opt = Sgd::new(SgdConfig::new(0.9));
        let per_s = rate(args.seconds, BATCH, || {
            black_box(net.train_step(black_box(&x), &labels, &mut opt));
        });
        println!(r#"{{"system":"ours","threads":{t},"metric":"train_ex_s","value":{per_s:.1}}}"#);
    }
}
