//! The memory plan's constants are exact: the scratch a net declares is
//! enough (results equal the unconstrained paths) and not one element too
//! large (a NaN-filled scratch comes back with every element overwritten).

use cnn_runtime::{cnn_net, Network, Target};
use models::{LeNet, LeNetGrads, LeNetRelu, LeNetReluGrads};

cnn_net! {
    Pools: [3, 9, 9] => maxpool(3, stride = 2, pad = 1) conv(3, 4, 3, pad = 1) relu avgpool(2) flatten linear(_, 5);
    ActivationFirst: [1, 6, 6] => sigmoid conv(1, 2, 3) tanh relu global_avgpool flatten linear(2, 3);
    NoLinear: [2, 8, 8] => conv(2, 4, 3) relu conv(4, 3, 1) global_maxpool flatten;
    Residual: [2, 8, 8] =>
        conv(2, 4, 3, pad = 1) relu
        add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu
        [add { conv1: conv(4, 6, 3, pad = 1, stride = 2) relu conv2: conv(6, 6, 3, pad = 1) | conv3: conv(4, 6, 1, stride = 2) } relu]
        global_avgpool flatten linear(6, 3);
    Inception: [3, 8, 8] =>
        cat { p1: conv(3, 2, 1) relu | p2_1: conv(3, 3, 1) relu p2_2: conv(3, 2, 3, pad = 1) relu | maxpool(3, stride = 1, pad = 1) p4: conv(3, 2, 1) | }
        maxpool(2) flatten linear(_, 3);
    BnChain: [2, 8, 8] =>
        conv(2, 4, 3, pad = 1) batchnorm relu maxpool(2) conv(4, 4, 3, pad = 1) batchnorm relu global_avgpool flatten linear(4, 3);
    BnResidual: [2, 8, 8] =>
        conv(2, 4, 3, pad = 1) batchnorm relu
        add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) b2: batchnorm | identity } relu
        global_avgpool flatten linear(4, 3);
    Dense: [2, 6, 6] =>
        cat { identity | a: conv(2, 3, 3, pad = 1) relu } cat { identity | b: conv(5, 3, 3, pad = 1) relu } relu
        avgpool(2) flatten linear(_, 4)
}

fn image<N: Network>(seed: usize) -> Vec<f32> {
    (0..N::INPUT_LEN)
        .map(|i| ((i * 37 + seed * 11) % 101) as f32 / 101.0 - 0.3)
        .collect()
}

macro_rules! exact_plan {
    // A chain ping-pongs: its scratch is exactly the largest live pair.
    ($test:ident, $net:ident, $grads:ident) => {
        exact_plan!($test, $net, $grads, |declared, widest| assert_eq!(
            declared,
            widest
        ));
    };
    // A graph's arena holds at least everything alive at once.
    (graph $test:ident, $net:ident, $grads:ident) => {
        exact_plan!($test, $net, $grads, |declared, widest| assert!(
            declared >= widest && widest > 0
        ));
    };
    ($test:ident, $net:ident, $grads:ident, $widest:expr) => {
        #[test]
        fn $test() {
            let net = Box::new($net::init(3));
            let x: [f32; $net::INPUT_LEN] = image::<$net>(1).try_into().unwrap();

            // Inference: the declared constant is the largest live pair.
            let widest = $net::LAYERS
                .iter()
                .map(|l| l.infer_scratch)
                .max()
                .unwrap_or(0);
            ($widest)($net::INFER_SCRATCH_LEN, widest);
            assert_eq!($net::INFER_SCRATCH_BYTES, 4 * $net::INFER_SCRATCH_LEN);
            let mut scratch = [f32::NAN; $net::INFER_SCRATCH_LEN];
            let out = net.forward_with(&x, &mut scratch);
            assert!(
                scratch.iter().all(|v| !v.is_nan()),
                "some inference scratch is never used"
            );
            let mut batched = vec![0.0; $net::OUTPUT_LEN];
            net.forward_batch(&x, &mut batched);
            for (a, b) in out.iter().zip(&batched) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }

            // Training, one example, no heap.
            let mut scratch = vec![f32::NAN; $net::TRAIN_SCRATCH_LEN];
            let mut grads = Box::new($grads::zeroed());
            let loss = net.loss_and_grad_with(
                &x,
                Target::Classes(&[1]),
                &mut grads,
                (&mut scratch[..]).try_into().unwrap(),
            );
            assert!(
                scratch.iter().all(|v| !v.is_nan()),
                "some training scratch is never used"
            );
            assert_eq!($net::TRAIN_SCRATCH_BYTES, 4 * scratch.len());
            let mut expected = vec![0.0; $net::PARAM_COUNT];
            let batched_loss =
                cnn_runtime::train::loss_and_grad(&*net, &x, Target::Classes(&[1]), &mut expected, 0);
            assert!((loss - batched_loss).abs() <= 1e-5 * loss.abs().max(1.0));
            for (a, b) in grads.as_array().iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-6 + 1e-4 * b.abs(), "{a} vs {b}");
            }
            assert_eq!($net::PARAM_BYTES, 4 * $net::PARAM_COUNT);
        }
    };
}

exact_plan!(lenet, LeNet, LeNetGrads);
exact_plan!(lenet_relu, LeNetRelu, LeNetReluGrads);
exact_plan!(pools, Pools, PoolsGrads);
exact_plan!(activation_first, ActivationFirst, ActivationFirstGrads);
exact_plan!(no_linear, NoLinear, NoLinearGrads);
exact_plan!(graph residual, Residual, ResidualGrads);
exact_plan!(graph inception, Inception, InceptionGrads);
exact_plan!(graph dense, Dense, DenseGrads);
exact_plan!(bn_chain, BnChain, BnChainGrads);
exact_plan!(graph bn_residual, BnResidual, BnResidualGrads);

/// A firmware's budget, checked by the compiler: activations in 32 KiB of
/// RAM, parameters in 256 KiB of flash. (RAM and flash together would not
/// fit 256 KiB: 23,520 + 246,824 bytes; the compiler says so.)
const _: () = assert!(LeNet::INFER_SCRATCH_BYTES <= 32 * 1024 && LeNet::PARAM_BYTES <= 256 * 1024);

#[test]
fn lenet_plan_numbers() {
    // The largest live pair is avgpool(2) reading [6, 28, 28] and writing [6, 14, 14].
    assert_eq!(LeNet::INFER_SCRATCH_LEN, 6 * 28 * 28 + 6 * 14 * 14);
    assert_eq!(LeNet::PARAM_BYTES, 246_824);
}

cnn_net! {
    WinogradRows: [8, 9, 11] => conv(8, 10, 3) flatten;
    WinogradQuads: [9, 5, 6] => conv(9, 8, 3, pad = 2) flatten;
    WinogradWide: [9, 40, 70] => conv(9, 8, 3, pad = 1) flatten
}

/// The batched passes' workspace holds, after the folded weights, the
/// scratch of the runtime's Winograd forward pass for 3x3, stride-1 convs,
/// and of its input gradient as the forward pass of the transposed conv,
/// which the compiler computes on its own: exactly, for planes of one, two
/// and four tile rows to a vector (`WinogradWide`'s input gradient needs
/// more than its forward pass: its 9 output channels pad to 16), and for
/// every such conv of ResNet (a conv given less would fall back to the
/// slower kernels unnoticed).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_workspace_holds_the_winograd_scratch() {
    use cnn_runtime::ops::conv::{fold_len, winograd_scratch_len, Conv2d};
    let conv = |c: usize, (h, w): (usize, usize), o: usize, pad: usize| Conv2d {
        in_channels: c,
        in_h: h,
        in_w: w,
        out_channels: o,
        kernel: (3, 3),
        stride: (1, 1),
        pad: (pad, pad),
    };
    let alone = [
        (WinogradRows::forward_workspace_len(0), conv(8, (9, 11), 10, 0)),
        (WinogradQuads::forward_workspace_len(0), conv(9, (5, 6), 8, 2)),
        (WinogradWide::forward_workspace_len(0), conv(9, (40, 70), 8, 1)),
    ];
    for (col, g) in alone {
        // Larger than the im2col copy for these three.
        assert!(winograd_scratch_len(&g) > g.col_len(), "{g:?}");
        assert_eq!(col, fold_len(&g, 1) + winograd_scratch_len(&g), "{g:?}");
    }
    let col = models::ResNet::forward_workspace_len(0);
    let resnet = [
        conv(16, (28, 28), 16, 1),
        conv(32, (14, 14), 32, 1),
        conv(64, (7, 7), 64, 1),
    ];
    for g in resnet {
        assert!(
            fold_len(&g, 1) + winograd_scratch_len(&g) <= col,
            "{g:?}: col {col}"
        );
    }
    // The 64-channel convs' folded weights and scratch are ResNet's largest.
    assert_eq!(col, fold_len(&resnet[2], 1) + winograd_scratch_len(&resnet[2]));
}
