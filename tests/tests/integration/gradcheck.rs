//! Central finite differences against the generated backward pass, on small
//! nets that together use every layer kind and option, through both the
//! batched (GEMM) path and the batch-1 no-heap path.

use cnn_runtime::init::Rng;
use cnn_runtime::{cnn_net, Network, Target};

cnn_net! {
    /// Strided, padded, rectangular conv; tanh; avgpool with padding; linear.
    pub ConvTanh: [2, 9, 8] =>
        conv(2, 3, (3, 2), stride = (2, 1), pad = (1, 0)) tanh
        avgpool(3, stride = 2, pad = 1) flatten linear(_, 4) sigmoid linear(4, 3);
    /// Maxpool with padding, relu, no-bias conv, global max pool.
    pub PoolRelu: [3, 8, 8] =>
        conv(3, 4, 3, pad = 1, bias = false) relu maxpool(3, stride = 2, pad = 1)
        conv(4, 5, 1) relu global_maxpool flatten linear(5, 3, bias = false);
    /// Global average pool, stacked activations, dropout(0), an activation first.
    pub Stacked: [2, 6, 6] =>
        sigmoid conv(2, 4, 3) tanh relu dropout(0.0) global_avgpool flatten linear(4, 3) tanh sigmoid;
    /// Only linear layers and activations.
    pub Mlp: [1, 3, 4] => flatten linear(12, 6) relu linear(6, 5) tanh linear(5, 3);
    /// Residual blocks: an identity shortcut, then a strided one with a 1x1
    /// conv; relu after each sum, in place.
    pub Residual: [2, 6, 6] =>
        conv(2, 4, 3, pad = 1) relu
        add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu
        [add { conv1: conv(4, 6, 3, pad = 1, stride = 2) tanh conv2: conv(6, 6, 3, pad = 1) | conv3: conv(4, 6, 1, stride = 2) }]
        relu global_avgpool flatten linear(6, 3);
    /// Inception-style: branches concatenated along channels, one through a
    /// pool, one empty (the input itself).
    pub Inception: [3, 6, 6] =>
        conv(3, 4, 1) relu
        cat { p1: conv(4, 2, 1) relu | p2_1: conv(4, 3, 1) relu p2_2: conv(3, 2, 3, pad = 1) relu | maxpool(3, stride = 1, pad = 1) p4: conv(4, 2, 1) | }
        maxpool(2) flatten linear(_, 3);
    /// A value read twice by one join, joins nested in a branch, a flat
    /// `cat`, dropout(0) in a branch.
    pub Tangle: [1, 4, 4] =>
        flatten linear(16, 6) tanh
        add { identity | identity | a: linear(6, 6) sigmoid }
        cat { add { b: linear(6, 6) | dropout(0.0) } relu | c: linear(6, 2) }
        linear(_, 3);
    /// A join reading the caller's input, an activation on its output.
    pub InputJoin: [2, 5, 5] =>
        cat { identity | c: conv(2, 3, 3, pad = 1) } relu global_maxpool flatten linear(5, 2);
    /// Batch norm after a conv (BatchNorm2d) and after a linear layer
    /// (BatchNorm1d, channels given), in a chain.
    pub BnChain: [2, 6, 6] =>
        conv(2, 3, 3, pad = 1) batchnorm relu maxpool(2) flatten linear(27, 5) batchnorm(5) tanh linear(5, 3);
    /// Batch norm in a residual block, as in D2L's `Residual`.
    pub BnResidual: [2, 6, 6] =>
        conv(2, 4, 3, pad = 1) bn: batchnorm(4, eps = 1e-3) relu
        add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity }
        relu global_avgpool flatten linear(4, 3)
}

fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Compares the analytic gradient with central differences on `samples`
/// random parameters; `batched` selects the GEMM path, otherwise the
/// batch-1 path is checked example by example.
fn check<N: Network>(seed: u64) {
    let mut rng = Rng::new(seed);
    let n = 3;
    let mut net = Box::new(N::zeroed());
    for p in net.params_mut() {
        *p = rng.uniform(-0.6, 0.6);
    }
    let input = random(n * N::INPUT_LEN, &mut rng);
    let labels: Vec<u8> = (0..n).map(|i| (i % N::OUTPUT_LEN) as u8).collect();
    let target = Target::Classes(&labels);
    let mut grads = vec![0.0f32; N::PARAM_COUNT];
    let mut ws = vec![0.0f32; N::train_workspace_len(n)];
    net.loss_and_grad_n(n, &input, target, &mut grads, &mut ws, 0);

    let eps = 2e-3f32;
    let base = net.loss_and_grad_n(n, &input, target, &mut vec![0.0; N::PARAM_COUNT], &mut ws, 0) as f64;
    let mut checked = 0;
    for _ in 0..60 {
        let i = rng.below(N::PARAM_COUNT);
        let original = net.params()[i];
        let mut scratch = vec![0.0f32; N::PARAM_COUNT];
        let mut loss_at = |v: f32, net: &mut N| {
            net.params_mut()[i] = v;
            net.loss_and_grad_n(n, &input, target, &mut scratch, &mut ws, 0) as f64
        };
        let plus = loss_at(original + eps, &mut net);
        let minus = loss_at(original - eps, &mut net);
        net.params_mut()[i] = original;
        let numeric = (plus - minus) / (2.0 * eps as f64);
        let analytic = grads[i] as f64;
        // A ReLU or max-pool kink inside [p - eps, p + eps] makes the two
        // one-sided slopes disagree; such samples say nothing, skip them.
        let (right, left) = ((plus - base) / eps as f64, (base - minus) / eps as f64);
        if (right - left).abs() > 0.05 * right.abs().max(left.abs()).max(1e-2) {
            continue;
        }
        let tolerance = 2e-3 + 3e-2 * analytic.abs().max(numeric.abs());
        assert!(
            (numeric - analytic).abs() <= tolerance,
            "{}: parameter {i}: finite difference {numeric:.6}, backward {analytic:.6}",
            N::NAME
        );
        checked += 1;
    }
    assert!(
        checked >= 40,
        "{}: only {checked} of 60 samples were away from kinks",
        N::NAME
    );
}

#[test]
fn conv_tanh_avgpool() {
    for seed in 0..3 {
        check::<ConvTanh>(seed);
    }
}

#[test]
fn maxpool_relu_no_bias_global_max() {
    for seed in 0..3 {
        check::<PoolRelu>(seed);
    }
}

#[test]
fn stacked_activations_global_avg_dropout_zero() {
    for seed in 0..3 {
        check::<Stacked>(seed);
    }
}

#[test]
fn linear_only() {
    for seed in 0..3 {
        check::<Mlp>(seed);
    }
}

#[test]
fn residual_add_with_identity_and_conv_shortcuts() {
    for seed in 0..3 {
        check::<Residual>(seed);
    }
}

#[test]
fn inception_cat_with_pool_and_empty_branches() {
    for seed in 0..3 {
        check::<Inception>(seed);
    }
}

#[test]
fn values_read_twice_and_nested_joins() {
    for seed in 0..3 {
        check::<Tangle>(seed);
    }
}

#[test]
fn batch_norm_2d_and_1d_in_a_chain() {
    for seed in 0..3 {
        check::<BnChain>(seed);
    }
}

#[test]
fn batch_norm_in_a_residual_block() {
    for seed in 0..3 {
        check::<BnResidual>(seed);
    }
}

#[test]
fn a_join_on_the_callers_input() {
    for seed in 0..3 {
        check::<InputJoin>(seed);
    }
}

#[test]
fn batch_one_path_matches_batched_path() {
    let mut rng = Rng::new(5);
    let mut net = Box::new(PoolRelu::zeroed());
    for p in net.params_mut() {
        *p = rng.uniform(-0.5, 0.5);
    }
    let x: Vec<f32> = random(PoolRelu::INPUT_LEN, &mut rng);
    let labels = [2u8];
    let mut batched = vec![0.0; PoolRelu::PARAM_COUNT];
    let mut ws = vec![0.0; PoolRelu::train_workspace_len(1)];
    let loss_b = net.loss_and_grad_n(1, &x, Target::Classes(&labels), &mut batched, &mut ws, 0);
    let mut grads = Box::new(PoolReluGrads::zeroed());
    let mut scratch = [0.0f32; PoolRelu::TRAIN_SCRATCH_LEN];
    let loss_1 = net.loss_and_grad_with(
        (&x[..]).try_into().unwrap(),
        Target::Classes(&labels),
        &mut grads,
        &mut scratch,
    );
    assert!((loss_b - loss_1).abs() <= 1e-6 * loss_b.abs().max(1.0));
    for (a, b) in batched.iter().zip(grads.as_array()) {
        assert!((a - b).abs() <= 1e-5 + 1e-4 * a.abs(), "{a} vs {b}");
    }
}

#[test]
fn dropout_masks_in_training_and_is_identity_in_inference() {
    cnn_net! { Drop: [1, 2, 2] => flatten dropout(0.5) linear(4, 2) }
    let mut net = Drop::zeroed();
    net.params_mut()
        .copy_from_slice(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let x = [1.0f32; 4];
    // Inference: no mask, no scaling.
    assert_eq!(net.forward(&x), [4.0, 0.0]);
    // Training: the gradient of weight row 0 is x masked and scaled by 2,
    // and the mask changes with the seed.
    let mut masks = std::collections::HashSet::new();
    for seed in 0..16u64 {
        let mut grads = vec![0.0; Drop::PARAM_COUNT];
        let mut ws = vec![0.0; Drop::train_workspace_len(1)];
        net.loss_and_grad_n(1, &x, Target::Classes(&[1]), &mut grads, &mut ws, seed);
        let row: Vec<f32> = grads[..4].to_vec();
        let unit = row.iter().copied().find(|v| *v != 0.0).unwrap_or(0.0);
        assert!(row.iter().all(|v| *v == 0.0 || *v == unit), "{row:?}");
        masks.insert(row.iter().map(|v| *v != 0.0).collect::<Vec<_>>());
    }
    assert!(masks.len() > 4, "masks vary with the seed: {masks:?}");
}

#[test]
fn training_step_returns_the_forward_outputs() {
    use cnn_runtime::optim::{Sgd, SgdConfig};
    let mut rng = Rng::new(11);
    let mut net = Box::new(ConvTanh::zeroed());
    for p in net.params_mut() {
        *p = rng.uniform(-0.5, 0.5);
    }
    let n = 20;
    let x = random(n * ConvTanh::INPUT_LEN, &mut rng);
    let y: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    for threads in [1, 2] {
        let _threads = cnn_tests::threads(threads);
        let mut expected = vec![0.0; n * ConvTanh::OUTPUT_LEN];
        net.forward_batch(&x, &mut expected);
        let mut outputs = vec![f32::NAN; n * ConvTanh::OUTPUT_LEN];
        let mut opt = Sgd::new(SgdConfig::new(0.1));
        cnn_runtime::train::train_step_with_outputs(
            &mut *net,
            &x,
            Target::Classes(&y),
            &mut opt,
            0,
            &mut outputs,
        );
        for (a, b) in outputs.iter().zip(&expected) {
            assert!(
                (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                "{threads} threads: {a} vs {b}"
            );
        }
    }
}

#[test]
fn inherent_train_step_draws_a_new_dropout_mask_each_step() {
    use cnn_runtime::optim::{Sgd, SgdConfig};
    cnn_net! { Drop2: [1, 2, 2] => flatten dropout(0.5) linear(4, 2) }
    let x = [1.0f32; 4];
    // With lr 0 the parameters stay put, so only the mask changes the loss.
    let mut net = Drop2::init(1);
    let mut opt = Sgd::new(SgdConfig::new(0.0));
    let losses: std::collections::HashSet<u32> = (0..12)
        .map(|_| net.train_step(&x, &[0], &mut opt).to_bits())
        .collect();
    assert!(losses.len() > 3, "the same mask every step: {losses:?}");
}

/// The three ways through a graph net agree: batch-1 `forward` (direct
/// kernels, the inference plan), `forward_batch` (GEMM kernels), and the
/// outputs the training pass keeps (the training plan); and the batch-1
/// no-heap gradient equals the batched one.
macro_rules! paths_agree {
    ($test:ident, $net:ident, $grads:ident) => {
        #[test]
        fn $test() {
            let mut rng = Rng::new(21);
            let mut net = Box::new($net::zeroed());
            for p in net.params_mut() {
                *p = rng.uniform(-0.6, 0.6);
            }
            let n = 4;
            let x = random(n * $net::INPUT_LEN, &mut rng);
            let mut batched = vec![0.0; n * $net::OUTPUT_LEN];
            net.forward_batch(&x, &mut batched);
            let labels: Vec<u8> = (0..n).map(|i| (i % $net::OUTPUT_LEN) as u8).collect();
            let mut ws = vec![0.0; $net::train_workspace_len(n)];
            let mut grads = vec![0.0; $net::PARAM_COUNT];
            net.loss_and_grad_n(n, &x, Target::Classes(&labels), &mut grads, &mut ws, 0);
            let kept = $net::train_outputs(n, &x, &ws).to_vec();
            let mut sum = vec![0.0f64; $net::PARAM_COUNT];
            for (i, example) in x.chunks($net::INPUT_LEN).enumerate() {
                let example: &[f32; $net::INPUT_LEN] = example.try_into().unwrap();
                let one = net.forward(example);
                let range = i * $net::OUTPUT_LEN..(i + 1) * $net::OUTPUT_LEN;
                for ((a, b), c) in one.iter().zip(&batched[range.clone()]).zip(&kept[range]) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "forward {a} vs forward_batch {b}"
                    );
                    assert!(
                        (a - c).abs() <= 1e-5 * (1.0 + c.abs()),
                        "forward {a} vs training {c}"
                    );
                }
                let mut g = Box::new($grads::zeroed());
                let mut scratch = vec![0.0f32; $net::TRAIN_SCRATCH_LEN];
                net.loss_and_grad_with(
                    example,
                    Target::Classes(&labels[i..i + 1]),
                    &mut g,
                    (&mut scratch[..]).try_into().unwrap(),
                );
                for (s, g) in sum.iter_mut().zip(g.as_array()) {
                    *s += *g as f64 / n as f64;
                }
            }
            for (a, b) in grads.iter().zip(&sum) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                    "batched {a} vs batch-1 {b}"
                );
            }
        }
    };
}

paths_agree!(residual_paths_agree, Residual, ResidualGrads);
paths_agree!(inception_paths_agree, Inception, InceptionGrads);
paths_agree!(tangle_paths_agree, Tangle, TangleGrads);
paths_agree!(input_join_paths_agree, InputJoin, InputJoinGrads);
