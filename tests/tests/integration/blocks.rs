//! Reusable blocks: D2L's `Residual` (8.6) written once as a block with a
//! conditional shortcut and used four times gives the net of the
//! `resnet_bn` fixture, built from D2L's own class: same keys, same
//! numbers as PyTorch.

use cnn_runtime::{cnn_net, Target};
use cnn_tests::{assert_close, load};

cnn_net! {
    /// D2L 8.6's `Residual`, parameters and defaults as in the book.
    block Residual(num_channels, use_1x1conv = false, strides = 1) =>
        add {
            conv1: conv(_, num_channels, 3, pad = 1, stride = strides) bn1: batchnorm relu
            conv2: conv(num_channels, num_channels, 3, pad = 1) bn2: batchnorm
          | if use_1x1conv { conv3: conv(_, num_channels, 1, stride = strides) }
        }
        relu;

    pub ResNetBlocks: [1, 12, 12] =>
        [conv(1, 4, 3, pad = 1) batchnorm relu maxpool(2)]
        [Residual(4) Residual(4)]
        [Residual(8, use_1x1conv = true, strides = 2) Residual(8)]
        [global_avgpool flatten linear(8, 10)]
}

mod written_out {
    use super::*;

    // The same net without blocks, as tests/tests/integration/batchnorm.rs declares it.
    cnn_net! {
        pub Net: [1, 12, 12] => [conv(1, 4, 3, pad = 1) batchnorm relu maxpool(2)]
            [[add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity } relu]
             [add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity } relu]]
            [[add { conv1: conv(4, 8, 3, pad = 1, stride = 2) bn1: batchnorm relu conv2: conv(8, 8, 3, pad = 1) bn2: batchnorm | conv3: conv(4, 8, 1, stride = 2) } relu]
             [add { conv1: conv(8, 8, 3, pad = 1) bn1: batchnorm relu conv2: conv(8, 8, 3, pad = 1) bn2: batchnorm | identity } relu]]
            [global_avgpool flatten linear(8, 10)]
    }
}

#[test]
fn a_block_expands_to_the_written_out_net() {
    let keys = |t: &[cnn_runtime::TensorInfo]| t.iter().map(|t| (t.key, t.shape)).collect::<Vec<_>>();
    assert_eq!(keys(ResNetBlocks::TENSORS), keys(written_out::Net::TENSORS));
    assert_eq!(keys(ResNetBlocks::BUFFERS), keys(written_out::Net::BUFFERS));
    // The arguments are substituted into the layers.
    assert!(ResNetBlocks::LAYERS
        .iter()
        .any(|l| l.source == "conv(_, 8, 3, pad = 1, stride = 2)"));
    assert_eq!(
        ResNetBlocks::INFER_SCRATCH_LEN,
        written_out::Net::INFER_SCRATCH_LEN
    );
    assert_eq!(
        ResNetBlocks::TRAIN_SCRATCH_LEN,
        written_out::Net::TRAIN_SCRATCH_LEN
    );
}

#[test]
fn the_block_net_matches_pytorch() {
    let fx = load("resnet_bn");
    let mut net = ResNetBlocks::boxed_zeroed();
    cnn_runtime::weights::load_state(&mut *net, |t, d| {
        cnn_runtime::weights::load_json_str(t, &fx.weights_json, d)
    })
    .expect("D2L's Residual keys load as they are");
    let mut out = vec![0.0; fx.batch * ResNetBlocks::OUTPUT_LEN];
    net.forward_batch(&fx.input, &mut out);
    assert_close("block ResNet (eval)", &out, &fx.output, 1e-5, 1e-6);
    let mut grads = vec![0.0; ResNetBlocks::PARAM_COUNT];
    let loss =
        cnn_runtime::train::loss_and_grad(&*net, &fx.input, Target::Classes(&fx.labels), &mut grads, 0);
    assert_close("block ResNet loss", &[loss], &[fx.loss], 1e-4, 1e-6);
    for (key, expected) in &fx.grads {
        let actual = cnn_runtime::network::tensor(ResNetBlocks::TENSORS, &grads, key).expect("key");
        assert_close(key, actual, expected, 1e-4, 1e-6);
    }
}

/// Alike block instances (`Residual(4) Residual(4)`) run one shared
/// function each for inference, the training forward pass and the backward
/// pass; the block net must compute exactly what the written-out net
/// computes, bit for bit, on every path: the no-heap batch-1 `forward` and
/// training step, the batched and threaded paths, and the running
/// statistics after SGD steps.
#[test]
fn shared_block_code_computes_what_the_written_out_net_does() {
    use cnn_runtime::optim::{Sgd, SgdConfig};
    use cnn_runtime::Network;
    let fx = load("resnet_bn");
    let json = &fx.weights_json;
    let mut blocks = ResNetBlocks::boxed_zeroed();
    let mut written = written_out::Net::boxed_zeroed();
    cnn_runtime::weights::load_state(&mut *blocks, |t, d| {
        cnn_runtime::weights::load_json_str(t, json, d)
    })
    .expect("the fixture loads");
    cnn_runtime::weights::load_state(&mut *written, |t, d| {
        cnn_runtime::weights::load_json_str(t, json, d)
    })
    .expect("the fixture loads");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();

    // Inference: batch 1 without heap, and batched.
    let x: &[f32; ResNetBlocks::INPUT_LEN] = fx.input[..ResNetBlocks::INPUT_LEN].try_into().unwrap();
    assert_eq!(bits(&blocks.forward(x)), bits(&written.forward(x)), "forward");
    let mut a = vec![0.0; fx.batch * ResNetBlocks::OUTPUT_LEN];
    let mut b = a.clone();
    blocks.forward_batch(&fx.input, &mut a);
    written.forward_batch(&fx.input, &mut b);
    assert_eq!(bits(&a), bits(&b), "forward_batch");

    // Training: batched at two threads, then the no-heap batch-1 step.
    for threads in [1, 2] {
        let _threads = cnn_tests::threads(threads);
        let mut ga = vec![0.0; ResNetBlocks::PARAM_COUNT];
        let mut gb = ga.clone();
        let target = Target::Classes(&fx.labels);
        let la = cnn_runtime::train::loss_and_grad(&*blocks, &fx.input, target, &mut ga, 0);
        let lb = cnn_runtime::train::loss_and_grad(&*written, &fx.input, target, &mut gb, 0);
        assert_eq!(la.to_bits(), lb.to_bits(), "loss at {threads} thread(s)");
        assert_eq!(bits(&ga), bits(&gb), "gradients at {threads} thread(s)");
    }
    let mut opt_a = Sgd::new(SgdConfig::new(0.1));
    let mut opt_b = Sgd::new(SgdConfig::new(0.1));
    for _ in 0..2 {
        let target = Target::Classes(&fx.labels);
        cnn_runtime::train::train_step(&mut *blocks, &fx.input, target, &mut opt_a, 0);
        cnn_runtime::train::train_step(&mut *written, &fx.input, target, &mut opt_b, 0);
    }
    let mut grads_a = Box::new(ResNetBlocksGrads::zeroed());
    let mut grads_b = Box::new(written_out::NetGrads::zeroed());
    let mut scratch_a = vec![0.0; ResNetBlocks::TRAIN_SCRATCH_LEN];
    let mut scratch_b = vec![0.0; written_out::Net::TRAIN_SCRATCH_LEN];
    let la = blocks.train_step_with(
        x,
        Target::Classes(&fx.labels[..1]),
        &mut grads_a,
        (&mut scratch_a[..]).try_into().unwrap(),
        &mut opt_a,
    );
    let lb = written.train_step_with(
        x,
        Target::Classes(&fx.labels[..1]),
        &mut grads_b,
        (&mut scratch_b[..]).try_into().unwrap(),
        &mut opt_b,
    );
    assert_eq!(la.to_bits(), lb.to_bits(), "batch-1 step loss");
    assert_eq!(
        bits(blocks.params()),
        bits(written.params()),
        "parameters after the steps"
    );
    assert_eq!(
        bits(blocks.buffers()),
        bits(written.buffers()),
        "running statistics after the steps"
    );
}
