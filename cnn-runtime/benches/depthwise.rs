//! The depthwise convolution (`conv(c, c, 3, groups = c)`) on MobileNetSmall's
//! shapes, rated by bytes, not FLOPs: with 9 multiply-adds per output it is
//! bound by memory, so each pass is set against a copy of the same number of
//! bytes, timed in the same process (`copy_from_slice`: the C library's
//! `memmove`, as fast as this core moves data at that footprint), and
//! against a copy of 256 MB (main memory).
//!
//! Bytes are the least a pass must move: the forward pass reads `x` and the
//! weights and writes `y`; the backward pass reads `x`, the weights and
//! `dy` and writes `dx` and `dw`. Two batch sizes: 2 images (the chunk
//! `forward_batch` gives MobileNetSmall, whose activations stay in L2) and
//! 32 (a training micro-batch, which does not). A quick timing (best of
//! several blocks of calls) prints the rates before the Criterion runs.
//! `cargo bench -p cnn-runtime --bench depthwise`.

mod common;

use cnn_runtime::ops::conv::{backward_grouped, forward_grouped, Conv2d};
use common::best;
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};

/// One depthwise convolution of MobileNetSmall: its channels and the
/// geometry of one channel.
struct Shape {
    name: &'static str,
    channels: usize,
    conv: Conv2d,
}

const fn depthwise(hw: usize, stride: usize) -> Conv2d {
    Conv2d {
        in_channels: 1,
        in_h: hw,
        in_w: hw,
        out_channels: 1,
        kernel: (3, 3),
        stride: (stride, stride),
        pad: (1, 1),
    }
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "64x28x28, stride 1",
        channels: 64,
        conv: depthwise(28, 1),
    },
    Shape {
        name: "64x28x28, stride 2",
        channels: 64,
        conv: depthwise(28, 2),
    },
    Shape {
        name: "96x14x14, stride 1",
        channels: 96,
        conv: depthwise(14, 1),
    },
    Shape {
        name: "96x14x14, stride 2",
        channels: 96,
        conv: depthwise(14, 2),
    },
    Shape {
        name: "128x7x7, stride 1",
        channels: 128,
        conv: depthwise(7, 1),
    },
];

/// Images per call: `forward_batch`'s chunk for MobileNetSmall, and a
/// training micro-batch.
const BATCHES: [usize; 2] = [2, 32];

struct Operands {
    n: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    y: Vec<f32>,
    dw: Vec<f32>,
    dx: Vec<f32>,
}

fn operands(s: &Shape, n: usize) -> Operands {
    let fill = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + salt) % 13) as f32 / 13.0 - 0.5)
            .collect()
    };
    let c = s.channels;
    Operands {
        n,
        x: fill(n * c * s.conv.input_len(), 1),
        w: fill(c * s.conv.weight_len(), 2),
        y: fill(n * c * s.conv.output_len(), 3),
        dw: vec![0.0; c * s.conv.weight_len()],
        dx: vec![0.0; n * c * s.conv.input_len()],
    }
}

#[derive(Clone, Copy)]
enum Pass {
    Forward,
    Backward,
}

const PASSES: [(Pass, &str); 2] = [(Pass::Forward, "forward"), (Pass::Backward, "backward")];

/// The least bytes `pass` moves (see the module docs).
fn bytes(o: &Operands, pass: Pass) -> usize {
    let floats = match pass {
        Pass::Forward => o.x.len() + o.w.len() + o.y.len(),
        // `y` stands for `dy`.
        Pass::Backward => o.x.len() + o.w.len() + o.y.len() + o.dx.len() + o.dw.len(),
    };
    4 * floats
}

fn run(s: &Shape, o: &mut Operands, pass: Pass) {
    let (x, w) = (black_box(&o.x), black_box(&o.w));
    match pass {
        Pass::Forward => forward_grouped(&s.conv, s.channels, o.n, x, w, None, &mut o.y),
        Pass::Backward => backward_grouped(
            &s.conv,
            s.channels,
            o.n,
            x,
            w,
            &o.y,
            &mut o.dw,
            None,
            Some(&mut o.dx),
        ),
    }
}

/// GB/s of `copy_from_slice` moving `bytes` in all: half read, half written.
fn copy_rate(bytes: usize) -> f64 {
    let half = (bytes / 8).max(16);
    let src = vec![1.0f32; half];
    let mut dst = vec![0.0f32; half];
    let calls = (200_000_000 / bytes).clamp(1, 10_000);
    let secs = best(calls, 15, || dst.copy_from_slice(black_box(&src)));
    black_box(&dst);
    (8 * half) as f64 / secs / 1e9
}

fn quick() {
    let memory = copy_rate(256 << 20);
    println!("copy of 256 MB (main memory): {memory:.1} GB/s");
    for s in SHAPES {
        for n in BATCHES {
            let mut o = operands(s, n);
            for (pass, label) in PASSES {
                let moved = bytes(&o, pass);
                let calls = (20_000_000 / moved).clamp(2, 10_000);
                let secs = best(calls, 30, || run(s, &mut o, pass));
                let rate = moved as f64 / secs / 1e9;
                let copy = copy_rate(moved);
                println!(
                    "{:20} x{n:<3} {label:9} {:8.1} us, {:6.2} MB, {rate:5.1} GB/s: {:3.0}% of a copy of as many bytes \
                     ({copy:.1} GB/s), {:3.0}% of main memory's",
                    s.name,
                    secs * 1e6,
                    moved as f64 / 1e6,
                    100.0 * rate / copy,
                    100.0 * rate / memory,
                );
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("depthwise");
    for s in SHAPES {
        for n in BATCHES {
            let mut o = operands(s, n);
            for (pass, label) in PASSES {
                group.throughput(Throughput::Bytes(bytes(&o, pass) as u64));
                group.bench_function(BenchmarkId::new(format!("{label} x{n}"), s.name), |b| {
                    b.iter(|| run(s, &mut o, pass))
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}

fn main() {
    common::main(quick, benches);
}
