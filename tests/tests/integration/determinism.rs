//! Training is deterministic: the same seed and thread count give
//! bit-identical weights; different thread counts agree up to float
//! reassociation of the per-thread gradient sum.

use cnn_runtime::optim::{Sgd, SgdConfig};
use cnn_runtime::train;
use models::LeNet;

fn train_lenet(threads: usize) -> Vec<f32> {
    let _threads = cnn_tests::threads(threads);
    let mut net = Box::new(LeNet::init_xavier(7));
    let mut opt = Sgd::new(SgdConfig::new(0.5).with_momentum(0.9));
    let mut rng = cnn_runtime::init::Rng::new(3);
    let batch = 48;
    for _ in 0..4 {
        let x: Vec<f32> = (0..batch * LeNet::INPUT_LEN).map(|_| rng.next_f32()).collect();
        let y: Vec<u8> = (0..batch).map(|_| rng.below(10) as u8).collect();
        let loss = net.train_step(&x, &y, &mut opt);
        assert!(loss.is_finite());
    }
    net.params().to_vec()
}

#[test]
fn same_seed_same_threads_same_bits() {
    let a = train_lenet(1);
    let b = train_lenet(1);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let c = train_lenet(2);
    let d = train_lenet(2);
    assert!(c.iter().zip(&d).all(|(x, y)| x.to_bits() == y.to_bits()));
    // Across thread counts: equal up to reassociation (documented tolerance).
    let worst = a
        .iter()
        .zip(&c)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1e-2))
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "1 vs 2 threads differ by {worst} (relative)");
    assert!(a.iter().zip(&c).any(|(x, y)| x != y) || worst == 0.0);
}

/// A batch larger than `train::TRAIN_CHUNK` is computed in micro-batches
/// whose gradients are added weighted by size: the loss and every gradient
/// agree with one pass over the whole batch (`Network::loss_and_grad_n`) up
/// to reassociation, and the logits it reports are the one pass's.
#[test]
fn micro_batches_match_one_pass() {
    use cnn_runtime::{Network, Target};
    let net = Box::new(LeNet::init_xavier(11));
    let n = 2 * train::TRAIN_CHUNK + 5;
    let mut rng = cnn_runtime::init::Rng::new(4);
    let x: Vec<f32> = (0..n * LeNet::INPUT_LEN).map(|_| rng.next_f32()).collect();
    let y: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();

    let mut one = vec![0.0f32; LeNet::PARAM_COUNT];
    let mut workspace = vec![0.0f32; LeNet::train_workspace_len(n)];
    let loss_one = net.loss_and_grad_n(n, &x, Target::Classes(&y), &mut one, &mut workspace, 0);
    let logits_one = LeNet::train_outputs(n, &x, &workspace).to_vec();

    let _threads = cnn_tests::threads(1);
    let mut micro = vec![f32::NAN; LeNet::PARAM_COUNT];
    let mut logits = vec![f32::NAN; n * LeNet::OUTPUT_LEN];
    let mut opt = cnn_runtime::optim::Sgd::new(SgdConfig::new(0.0));
    let mut copy = net.clone();
    let loss = train::train_step_with_outputs(&mut *copy, &x, Target::Classes(&y), &mut opt, 0, &mut logits);
    train::loss_and_grad(&*net, &x, Target::Classes(&y), &mut micro, 0);

    assert!(
        (loss - loss_one).abs() <= 1e-5 * loss_one.abs(),
        "{loss} vs {loss_one}"
    );
    let scale = one.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    let worst = one
        .iter()
        .zip(&micro)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-5 * scale,
        "gradients differ by {worst} (largest {scale})"
    );
    assert!(logits
        .iter()
        .zip(&logits_one)
        .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())));
}
