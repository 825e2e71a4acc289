//! Criterion benchmarks of every net in `models`: batch-1 `forward` (the
//! no-heap direct kernels), `forward_batch` on 256 images and one
//! `train_step` (SGD) on a batch of 256, at the thread count of
//! `CNN_BENCH_THREADS` (default 1); and the int8 LeNets' batch-1
//! `forward_with` (integer only), quantized from the float benchmark
//! weights. Throughput is reported in examples per second.
//!
//! `cargo bench -p models --bench nets` (add `-- LeNet/` to pick one net).
//! To bench a new net, add its type to the `bench_nets!` line at the bottom.

use cnn_runtime::init::{self, Rng};
use cnn_runtime::optim::{Sgd, SgdConfig};
use cnn_runtime::{train, Network};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

const BATCH: usize = 256;

/// Deterministic inputs in [0, 1) and labels for `n` examples of `N`.
fn data<N: Network>(n: usize) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng::new(42);
    let x = (0..n * N::INPUT_LEN).map(|_| rng.next_f32()).collect();
    let y = (0..n).map(|_| rng.below(N::OUTPUT_LEN.max(1)) as u8).collect();
    (x, y)
}

/// A Xavier-initialised net on the heap (large nets would not fit the stack).
fn net<N: Network>() -> Box<N> {
    let mut net = train::boxed_zeroed::<N>();
    init::xavier_uniform(N::TENSORS, net.params_mut(), &mut Rng::new(0));
    net
}

fn threads() -> usize {
    std::env::var("CNN_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
}

/// The batched benchmarks, through the `Network` trait.
fn batched<N: Network>(c: &mut Criterion) {
    train::set_threads(threads());
    let mut group = c.benchmark_group(N::NAME);
    group.throughput(Throughput::Elements(BATCH as u64));
    let (x, labels) = data::<N>(BATCH);
    let mut net = net::<N>();
    let mut out = vec![0.0f32; BATCH * N::OUTPUT_LEN];
    group.bench_function("forward_batch 256", |b| {
        b.iter(|| train::forward_batch(&*net, black_box(&x), &mut out))
    });
    let mut opt = Sgd::new(SgdConfig::new(0.1));
    let target = cnn_runtime::Target::Classes(&labels);
    group.bench_function("train_step 256", |b| {
        b.iter(|| black_box(train::train_step(&mut *net, black_box(&x), target, &mut opt, 0)))
    });
    group.finish();
}

/// One function per net: the batch-1 `forward` is an inherent method with
/// array types, so it needs the concrete type; the rest is generic.
macro_rules! bench_nets {
    ($($net:ident),* $(,)?) => {
        fn benches(c: &mut Criterion) {
            $(
                {
                    let net = net::<models::$net>();
                    let (x, _) = data::<models::$net>(1);
                    let x: &[f32; models::$net::INPUT_LEN] = x[..].try_into().expect("one example");
                    let mut group = c.benchmark_group(stringify!($net));
                    group.throughput(Throughput::Elements(1));
                    group.bench_function("forward 1", |b| b.iter(|| black_box(net.forward(black_box(x)))));
                    group.finish();
                    batched::<models::$net>(c);
                }
            )*
        }
    };
}

/// The int8 twin `Q` of `N`, quantized from the benchmark's float weights
/// (calibrated on the benchmark inputs): its batch-1 integer-only
/// `forward_n`.
fn int8<N: Network, Q: cnn_runtime::int8::Int8Network>(c: &mut Criterion) {
    use cnn_runtime::int8::calibrate;
    let float = net::<N>();
    let (x, _) = data::<N>(64);
    let tensors =
        calibrate::quantize::<N, Q>(&*float, &calibrate::calibrate(&*float, &x, 64)).expect("quantizes");
    let q = Q::from_parts(&tensors.parts()).expect("an int8 net");
    let input = q.input_quant();
    let mut xq = vec![0i8; Q::INPUT_LEN];
    cnn_runtime::quant::quantize_slice(&x[..N::INPUT_LEN], input.scale, input.zero_point, &mut xq);
    let mut y = vec![0i8; Q::OUTPUT_LEN];
    let mut scratch = vec![0i8; Q::INFER_SCRATCH_BYTES];
    let mut group = c.benchmark_group(Q::NAME);
    group.throughput(Throughput::Elements(1));
    group.bench_function("forward 1", |b| {
        b.iter(|| q.forward_n(1, black_box(&xq), &mut y, &mut scratch))
    });
    group.finish();
}

fn int8_benches(c: &mut Criterion) {
    int8::<models::LeNet, models::LeNetInt8>(c);
    int8::<models::LeNetRelu, models::LeNetReluInt8>(c);
}

bench_nets!(
    LeNet,
    LeNetRelu,
    Nin,
    VggSmall,
    AlexNetSmall,
    LeNetBn,
    ResNet,
    GoogLeNetSmall,
    DenseNetSmall,
    MobileNetSmall,
);

criterion_group! {
    name = nets;
    // No plots: plotters needs system fonts, which a bare machine lacks (it
    // panicked with FontUnavailable after the first benchmark here).
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).without_plots();
    targets = benches, int8_benches
}
criterion_main!(nets);
