//! `ops::gemm::sgemm` against `matrixmultiply::sgemm` on the products LeNet's
//! batched paths compute (with the callers' strides) and a square 256^3.
//!
//! Criterion reports throughput in elements per second where an element is
//! one flop (`2 m k n` per call), so "Gelem/s" reads as GFLOP/s. Before the
//! criterion runs, a quick timing prints both rates and their ratio per
//! shape. Run with `cargo bench -p cnn-runtime --bench gemm`.

mod common;

use cnn_runtime::ops::gemm::{has_fast_kernel, sgemm};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

/// One product: sizes, whether `A`/`B` are transposed views, and `beta`.
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    beta: f32,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "conv1 fwd",
        m: 6,
        k: 25,
        n: 784,
        ta: false,
        tb: false,
        beta: 1.0,
    },
    Shape {
        name: "conv2 fwd",
        m: 16,
        k: 150,
        n: 100,
        ta: false,
        tb: false,
        beta: 1.0,
    },
    Shape {
        name: "conv1 dW",
        m: 6,
        k: 784,
        n: 25,
        ta: false,
        tb: true,
        beta: 1.0,
    },
    Shape {
        name: "conv2 dW",
        m: 16,
        k: 100,
        n: 150,
        ta: false,
        tb: true,
        beta: 1.0,
    },
    Shape {
        name: "conv2 dcol",
        m: 150,
        k: 16,
        n: 100,
        ta: true,
        tb: false,
        beta: 0.0,
    },
    Shape {
        name: "fc1 fwd b32",
        m: 32,
        k: 400,
        n: 120,
        ta: false,
        tb: true,
        beta: 1.0,
    },
    Shape {
        name: "fc1 fwd b256",
        m: 256,
        k: 400,
        n: 120,
        ta: false,
        tb: true,
        beta: 1.0,
    },
    Shape {
        name: "fc1 dW b256",
        m: 120,
        k: 256,
        n: 400,
        ta: true,
        tb: false,
        beta: 1.0,
    },
    Shape {
        name: "fc1 dX b256",
        m: 256,
        k: 120,
        n: 400,
        ta: false,
        tb: false,
        beta: 0.0,
    },
    Shape {
        name: "square 256",
        m: 256,
        k: 256,
        n: 256,
        ta: false,
        tb: false,
        beta: 0.0,
    },
];

/// Operands of a shape: `(a, rsa, csa, b, rsb, csb, c)`, `C` row-major.
struct Operands {
    a: Vec<f32>,
    sa: (isize, isize),
    b: Vec<f32>,
    sb: (isize, isize),
    c: Vec<f32>,
}

impl Shape {
    fn flops(&self) -> u64 {
        2 * (self.m * self.k * self.n) as u64
    }

    fn operands(&self) -> Operands {
        let (m, k, n) = (self.m, self.k, self.n);
        let fill = |len: usize, salt: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7 + salt) % 13) as f32 / 13.0 - 0.5)
                .collect()
        };
        Operands {
            a: fill(m * k, 1),
            sa: if self.ta { (1, m as isize) } else { (k as isize, 1) },
            b: fill(k * n, 2),
            sb: if self.tb { (1, k as isize) } else { (n as isize, 1) },
            c: fill(m * n, 3),
        }
    }

    fn ours(&self, o: &mut Operands) {
        let Operands { a, sa, b, sb, c } = o;
        sgemm(
            self.m,
            self.k,
            self.n,
            1.0,
            black_box(a),
            sa.0,
            sa.1,
            black_box(b),
            sb.0,
            sb.1,
            self.beta,
            c,
            self.n as isize,
            1,
        );
    }

    fn theirs(&self, o: &mut Operands) {
        let Operands { a, sa, b, sb, c } = o;
        // SAFETY: `operands` sized every slice for its strides and `C` is a
        // dense row-major matrix, so nothing is out of bounds or aliased.
        unsafe {
            matrixmultiply::sgemm(
                self.m,
                self.k,
                self.n,
                1.0,
                black_box(a).as_ptr(),
                sa.0,
                sa.1,
                black_box(b).as_ptr(),
                sb.0,
                sb.1,
                self.beta,
                c.as_mut_ptr(),
                self.n as isize,
                1,
            );
        }
    }
}

/// GFLOP/s of `f` on `shape`, best of a few batches of calls.
fn rate(shape: &Shape, o: &mut Operands, f: fn(&Shape, &mut Operands)) -> f64 {
    let calls = (50_000_000 / shape.flops()).clamp(10, 100_000);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..calls {
            f(shape, o);
        }
        best = best.min(start.elapsed());
    }
    (shape.flops() * calls) as f64 / best.as_secs_f64() / 1e9
}

/// The quick table: both rates and their ratio, one line per shape.
fn summary() {
    println!("sgemm kernel: {}", has_fast_kernel());
    println!(
        "{:<14} {:>16} {:>10} {:>16} {:>7}",
        "shape", "m x k x n", "ours", "matrixmultiply", "ratio"
    );
    for shape in SHAPES {
        let mut o = shape.operands();
        let ours = rate(shape, &mut o, Shape::ours);
        let theirs = rate(shape, &mut o, Shape::theirs);
        println!(
            "{:<14} {:>16} {:>10.1} {:>16.1} {:>6.2}x   (GFLOP/s)",
            shape.name,
            format!("{}x{}x{}", shape.m, shape.k, shape.n),
            ours,
            theirs,
            ours / theirs
        );
    }
}

fn bench(c: &mut Criterion) {
    for shape in SHAPES {
        let mut group = c.benchmark_group(format!("sgemm/{}", shape.name));
        group.throughput(Throughput::Elements(shape.flops()));
        let mut o = shape.operands();
        let dims = format!("{}x{}x{}", shape.m, shape.k, shape.n);
        group.bench_function(BenchmarkId::new("ours", &dims), |bench| {
            bench.iter(|| shape.ours(&mut o))
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", &dims), |bench| {
            bench.iter(|| shape.theirs(&mut o))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}

fn main() {
    common::main(summary, benches);
}
