//! The direct convolution's forward pass on the shapes the model zoo runs,
//! in GFLOP/s and as a share of one core's FMA peak measured in the same
//! process (a loop of independent vector FMAs with no loads, the most this
//! core retires). The rates count the direct convolution's multiply-adds
//! (`2 * O * C * KH * KW` flops per output pixel), also for the 3x3 convs
//! `forward_gemm` runs by Winograd's F(2x2, 3x3) on AVX-512 or AVX2, which does
//! 16/36 of them: those rates can pass 100% of the peak.
//!
//! Each shape runs on a chunk of 32 images, the batch share the runtime's
//! `forward_batch` hands a worker. A quick timing (best of several blocks of
//! calls: the least disturbed on a shared machine) prints the rates before
//! the Criterion runs. `cargo bench -p cnn-runtime --bench conv`.

mod common;

use cnn_runtime::ops::conv::{backward_gemm, forward, forward_gemm, winograd_scratch_len, Conv2d};
use common::best;
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};

/// One convolution: a name and its geometry.
struct Shape {
    name: &'static str,
    conv: Conv2d,
}

const fn conv(c: usize, hw: usize, o: usize, k: usize, pad: usize) -> Conv2d {
    Conv2d {
        in_channels: c,
        in_h: hw,
        in_w: hw,
        out_channels: o,
        kernel: (k, k),
        stride: (1, 1),
        pad: (pad, pad),
    }
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "lenet conv1 1x28x28 -> 6, 5x5 pad 2",
        conv: conv(1, 28, 6, 5, 2),
    },
    Shape {
        name: "lenet conv2 6x14x14 -> 16, 5x5",
        conv: conv(6, 14, 16, 5, 0),
    },
    Shape {
        name: "resnet 3x3 16x28x28 -> 16, pad 1",
        conv: conv(16, 28, 16, 3, 1),
    },
    Shape {
        name: "resnet 3x3 32x14x14 -> 32, pad 1",
        conv: conv(32, 14, 32, 3, 1),
    },
    Shape {
        name: "resnet 3x3 64x7x7 -> 64, pad 1",
        conv: conv(64, 7, 64, 3, 1),
    },
    Shape {
        name: "3x3 64x14x14 -> 64, pad 1",
        conv: conv(64, 14, 64, 3, 1),
    },
    Shape {
        name: "mobilenet 1x1 16x28x28 -> 64",
        conv: conv(16, 28, 64, 1, 0),
    },
    Shape {
        name: "mobilenet 1x1 64x28x28 -> 16",
        conv: conv(64, 28, 16, 1, 0),
    },
    Shape {
        name: "mobilenet 1x1 96x14x14 -> 24",
        conv: conv(96, 14, 24, 1, 0),
    },
    Shape {
        name: "mobilenet 1x1 32x7x7 -> 128",
        conv: conv(32, 7, 128, 1, 0),
    },
];

/// Images per call: a worker's chunk in `forward_batch`.
const IMAGES: usize = 32;

fn flops(g: &Conv2d) -> u64 {
    2 * (IMAGES * g.output_len() * g.weight_len() / g.out_channels) as u64
}

struct Operands {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    y: Vec<f32>,
    dw: Vec<f32>,
    dx: Vec<f32>,
    col: Vec<f32>,
}

fn operands(g: &Conv2d) -> Operands {
    let fill = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + salt) % 13) as f32 / 13.0 - 0.5)
            .collect()
    };
    Operands {
        x: fill(IMAGES * g.input_len(), 1),
        w: fill(g.weight_len(), 2),
        b: fill(g.out_channels, 3),
        y: fill(IMAGES * g.output_len(), 4),
        dw: vec![0.0; g.weight_len()],
        dx: vec![0.0; IMAGES * g.input_len()],
        // As much as a net's planner gives the conv (its im2col, or the
        // Winograd path's scratch).
        col: vec![0.0; g.col_len().max(winograd_scratch_len(g))],
    }
}

/// The entry points timed: `forward` (no scratch: the batch-1 path),
/// `forward_gemm` (with `col` scratch: the batched and training paths), and
/// the weight gradient alone through `backward_gemm` (`y` as the output
/// gradient; the same multiply-adds as the forward pass), and the weight and
/// input gradients together (twice the multiply-adds: the rate is over both).
#[derive(Clone, Copy)]
enum Path {
    Direct,
    Batched,
    WeightGrad,
    Backward,
}

const PATHS: [(Path, &str); 4] = [
    (Path::Direct, "forward"),
    (Path::Batched, "forward_gemm"),
    (Path::WeightGrad, "dw"),
    (Path::Backward, "dw + dx"),
];

fn run(g: &Conv2d, o: &mut Operands, path: Path) {
    let (x, w) = (black_box(&o.x), black_box(&o.w));
    match path {
        Path::Direct => forward(g, IMAGES, x, w, Some(&o.b), &mut o.y),
        Path::Batched => forward_gemm(g, IMAGES, x, w, Some(&o.b), &mut o.y, &mut o.col),
        Path::WeightGrad => backward_gemm(g, IMAGES, x, w, &o.y, &mut o.dw, None, None, &mut o.col),
        Path::Backward => backward_gemm(
            g,
            IMAGES,
            x,
            w,
            &o.y,
            &mut o.dw,
            None,
            Some(&mut o.dx),
            &mut o.col,
        ),
    }
}

/// GFLOP/s of a loop of independent FMAs on the widest vectors this CPU
/// has and the kernels may use (16 lanes with AVX-512F unless
/// `CNN_MAX_ISA` caps the kernels below it, else 8; 12 accumulators, enough
/// to cover the latency on any x86 core), with their lane count, or `None`
/// without AVX2 and FMA.
fn fma_peak() -> Option<(f64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        const STEPS: u64 = 1_000_000;
        // AVX-512 only where the kernels run it (detected, not capped).
        let wide = cnn_runtime::ops::instruction_set() == "avx512";
        let secs = best(1, 7, || {
            // SAFETY: AVX2 and FMA were detected above, and AVX-512F where
            // `wide`.
            black_box(unsafe {
                if wide {
                    fma_loop_avx512(STEPS)
                } else {
                    fma_loop(STEPS)
                }
            });
        });
        let lanes = if wide { 16 } else { 8 };
        Some(((STEPS * 12 * lanes * 2) as f64 / secs / 1e9, lanes))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop(steps: u64) -> f32 {
    use core::arch::x86_64::*;
    let m = _mm256_set1_ps(black_box(0.999_999));
    let a = _mm256_set1_ps(black_box(1e-7));
    let mut acc = [_mm256_set1_ps(black_box(1.0)); 12];
    for _ in 0..steps {
        for r in &mut acc {
            *r = _mm256_fmadd_ps(*r, m, a);
        }
    }
    let sum = acc.iter().fold(_mm256_setzero_ps(), |s, &r| _mm256_add_ps(s, r));
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out[0]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_loop_avx512(steps: u64) -> f32 {
    use core::arch::x86_64::*;
    let m = _mm512_set1_ps(black_box(0.999_999));
    let a = _mm512_set1_ps(black_box(1e-7));
    let mut acc = [_mm512_set1_ps(black_box(1.0)); 12];
    for _ in 0..steps {
        for r in &mut acc {
            *r = _mm512_fmadd_ps(*r, m, a);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for &r in &acc {
        sum = _mm512_add_ps(sum, r);
    }
    _mm512_reduce_add_ps(sum)
}

fn quick() {
    let peak = fma_peak().map(|(p, lanes)| {
        println!("one core's FMA peak ({lanes}-lane FMA loop): {p:.1} GFLOP/s");
        p
    });
    if peak.is_none() {
        println!("no AVX2 + FMA: no peak measured");
    }
    for s in SHAPES {
        let mut o = operands(&s.conv);
        let f = flops(&s.conv);
        let calls = (40_000_000 / f).clamp(2, 10_000) as usize;
        for (path, label) in PATHS {
            let secs = best(calls, 40, || run(&s.conv, &mut o, path));
            let f = if matches!(path, Path::Backward) { 2 * f } else { f };
            let rate = f as f64 / secs / 1e9;
            let share = peak.map_or(String::new(), |p| format!(", {:.0}% of peak", 100.0 * rate / p));
            println!(
                "{:36} {label:12} {:7.1} us per {IMAGES} images, {rate:5.1} GFLOP/s{share}",
                s.name,
                secs * 1e6
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv forward");
    for s in SHAPES {
        let mut o = operands(&s.conv);
        for (path, label) in PATHS {
            let f = flops(&s.conv) * if matches!(path, Path::Backward) { 2 } else { 1 };
            group.throughput(Throughput::Elements(f));
            group.bench_function(BenchmarkId::new(label, s.name), |b| {
                b.iter(|| run(&s.conv, &mut o, path))
            });
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
