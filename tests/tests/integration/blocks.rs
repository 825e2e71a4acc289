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
