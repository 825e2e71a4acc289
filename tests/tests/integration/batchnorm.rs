//! Batch norm against PyTorch (`tools/gen_fixtures.py`, float64): D2L's
//! BN-LeNet (8.5) and a ResNet built from D2L's `Residual` class (8.6).
//! Eval mode (`forward`, `forward_batch`) uses the running statistics;
//! train mode normalises over the whole batch, at one thread and split
//! into shares at two; two SGD steps update the parameters and, once per
//! step, the running statistics and `num_batches_tracked`.

use cnn_runtime::optim::{Sgd, SgdConfig};
use cnn_runtime::{cnn_net, Network, Target};
use cnn_tests::{assert_close, load, Fixture};

/// Forward outputs: 1e-5 relative or 1e-6 absolute.
const OUT: (f64, f64) = (1e-5, 1e-6);
/// Loss, gradients and the state after SGD steps: 1e-4 relative or 1e-6 absolute.
const GRAD: (f64, f64) = (1e-4, 1e-6);

fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The net with the fixture's parameters and buffers (PyTorch's
/// `state_dict`, `num_batches_tracked` included).
fn with_state<N: Network>(fx: &Fixture) -> Box<N> {
    let mut net = Box::new(N::zeroed());
    cnn_runtime::weights::load_state(&mut *net, |t, d| {
        cnn_runtime::weights::load_json_str(t, &fx.weights_json, d)
    })
    .unwrap_or_else(|e| panic!("{}: loading the state: {e}", fx.name));
    net
}

fn check_eval<N: Network>(fx: &Fixture) {
    let net = with_state::<N>(fx);
    let mut out = vec![0.0; fx.batch * N::OUTPUT_LEN];
    cnn_runtime::train::forward_batch(&*net, &fx.input, &mut out);
    assert_close(
        &format!("{} forward_batch (eval)", fx.name),
        &out,
        &fx.output,
        OUT.0,
        OUT.1,
    );
    cnn_runtime::train::Packed::new(&*net).forward_batch(&fx.input, &mut out);
    assert_close(
        &format!("{} packed forward_batch (eval)", fx.name),
        &out,
        &fx.output,
        OUT.0,
        OUT.1,
    );
    let mut one = Vec::new();
    for x in fx.input.chunks(N::INPUT_LEN) {
        let mut y = vec![0.0; N::OUTPUT_LEN];
        let mut ws = vec![0.0; N::forward_workspace_len(1)];
        net.forward_n(1, x, &mut y, &mut ws);
        one.extend(y);
    }
    assert_close(
        &format!("{} forward one at a time (eval)", fx.name),
        &one,
        &fx.output,
        OUT.0,
        OUT.1,
    );
}

fn check_train<N: Network>(fx: &Fixture, threads: usize) {
    let net = with_state::<N>(fx);
    let mut grads = vec![f32::NAN; N::PARAM_COUNT];
    let loss = {
        let _threads = cnn_tests::threads(threads);
        cnn_runtime::train::loss_and_grad(&*net, &fx.input, Target::Classes(&fx.labels), &mut grads, 0)
    };
    let what = format!("{} at {threads} thread(s)", fx.name);
    assert_close(&format!("{what} loss"), &[loss], &[fx.loss], GRAD.0, GRAD.1);
    assert_eq!(fx.grads.len(), N::TENSORS.len(), "{what}: tensor count");
    for (key, expected) in &fx.grads {
        let actual =
            cnn_runtime::network::tensor(N::TENSORS, &grads, key).unwrap_or_else(|| panic!("no {key}"));
        assert_close(&format!("{what} grad {key}"), actual, expected, GRAD.0, GRAD.1);
    }
}

fn check_sgd<N: Network>(fx: &Fixture, threads: usize) {
    let (lr, steps, state) = fx.after_sgd.as_ref().expect("a batch-norm fixture");
    let mut net = with_state::<N>(fx);
    let mut opt = Sgd::new(SgdConfig::new(*lr));
    {
        let _threads = cnn_tests::threads(threads);
        for _ in 0..*steps {
            cnn_runtime::train::train_step(&mut *net, &fx.input, Target::Classes(&fx.labels), &mut opt, 0);
        }
    }
    let what = format!("{} after {steps} SGD steps at {threads} thread(s)", fx.name);
    assert_eq!(
        state.len(),
        N::TENSORS.len() + N::BUFFERS.len(),
        "{what}: tensor count"
    );
    for (key, expected) in state {
        let actual = cnn_runtime::network::tensor(N::TENSORS, net.params(), key)
            .or_else(|| cnn_runtime::network::tensor(N::BUFFERS, net.buffers(), key))
            .unwrap_or_else(|| panic!("{what}: no {key}"));
        assert_close(&format!("{what}: {key}"), actual, expected, GRAD.0, GRAD.1);
    }
}

macro_rules! batch_norm_parity {
    // A whole invocation (blocks, then `pub Net`), as the fixture's text.
    (items $module:ident, $fixture:literal, $($dsl:tt)*) => {
        batch_norm_parity!(@tests $module, $fixture, { cnn_net! { $($dsl)* } }, stringify!($($dsl)*));
    };
    ($module:ident, $fixture:literal, $($dsl:tt)*) => {
        batch_norm_parity!(@tests $module, $fixture, { cnn_net! { pub Net: $($dsl)* } }, stringify!($($dsl)*));
    };
    (@tests $module:ident, $fixture:literal, { $($declaration:tt)* }, $text:expr) => {
        mod $module {
            use super::*;

            $($declaration)*

            fn fixture() -> Fixture {
                let fx = load($fixture);
                assert_eq!(squeezed(&fx.net), squeezed($text), "the declaration and the fixture differ");
                fx
            }

            #[test]
            fn eval_mode_uses_the_running_statistics() {
                check_eval::<Net>(&fixture());
            }

            #[test]
            fn train_mode_loss_and_gradients_one_thread() {
                check_train::<Net>(&fixture(), 1);
            }

            #[test]
            fn train_mode_loss_and_gradients_two_shares() {
                check_train::<Net>(&fixture(), 2);
            }

            #[test]
            fn two_sgd_steps_update_parameters_and_running_statistics() {
                check_sgd::<Net>(&fixture(), 1);
                check_sgd::<Net>(&fixture(), 2);
            }
        }
    };
}

batch_norm_parity!(lenet_bn, "lenet_bn", [1, 28, 28] => conv(1, 6, 5) batchnorm sigmoid avgpool(2, stride = 2) conv(6, 16, 5) batchnorm sigmoid avgpool(2, stride = 2) flatten linear(256, 120) batchnorm sigmoid linear(120, 84) batchnorm sigmoid linear(84, 10));
batch_norm_parity!(resnet_bn, "resnet_bn", [1, 12, 12] => [conv(1, 4, 3, pad = 1) batchnorm relu maxpool(2)] [[add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity } relu] [add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity } relu]] [[add { conv1: conv(4, 8, 3, pad = 1, stride = 2) bn1: batchnorm relu conv2: conv(8, 8, 3, pad = 1) bn2: batchnorm | conv3: conv(4, 8, 1, stride = 2) } relu] [add { conv1: conv(8, 8, 3, pad = 1) bn1: batchnorm relu conv2: conv(8, 8, 3, pad = 1) bn2: batchnorm | identity } relu]] [global_avgpool flatten linear(8, 10)]);
// D2L 8.7 exactly: DenseBlock and transition_block with their batch norms.
batch_norm_parity!(densenet_bn, "densenet_bn", [1, 12, 12] => [conv(1, 8, 3, pad = 1) batchnorm relu maxpool(2)] [cat { identity | net.0: [batchnorm relu conv(8, 4, 3, pad = 1)] } cat { identity | net.1: [batchnorm relu conv(12, 4, 3, pad = 1)] }] [batchnorm relu conv(16, 8, 1) avgpool(2, stride = 2)] [cat { identity | net.0: [batchnorm relu conv(8, 4, 3, pad = 1)] } cat { identity | net.1: [batchnorm relu conv(12, 4, 3, pad = 1)] }] batchnorm relu global_avgpool flatten linear(16, 10));
// MobileNetV2-style: inverted residuals (1x1 expansion, 3x3 depthwise, 1x1
// projection, ReLU6), written with blocks; the torchvision layout of keys.
batch_norm_parity!(items mobilenet_small, "mobilenet_small", block Body(inp, hidden, oup, stride = 1) => conv(inp, hidden, 1, bias = false) batchnorm relu6 conv(hidden, hidden, 3, stride = stride, pad = 1, groups = hidden, bias = false) batchnorm relu6 conv(hidden, oup, 1, bias = false) batchnorm; block InvertedResidual(inp, hidden, oup, stride = 1, res = false) => if res { add { identity | conv: Body(inp, hidden, oup, stride) } } else { conv: Body(inp, hidden, oup, stride) }; pub Net: [3, 16, 16] => [conv(3, 8, 3, stride = 2, pad = 1, bias = false) batchnorm relu6] InvertedResidual(8, 16, 8, res = true) InvertedResidual(8, 24, 12, stride = 2) InvertedResidual(12, 36, 12, res = true) [global_avgpool flatten linear(12, 10)]);

/// The no-heap batch-1 step of a net whose batch norms all follow convs
/// normalises each channel over the example's `H x W` (PyTorch's train
/// mode on a batch of one), exactly as the batched path does with `n = 1`,
/// and updates the running statistics once.
#[test]
fn batch_one_training_normalises_over_height_and_width() {
    use resnet_bn::Net;
    let fx = load("resnet_bn");
    let x: &[f32; Net::INPUT_LEN] = fx.input[..Net::INPUT_LEN].try_into().unwrap();
    let label = [fx.labels[0]];
    let mut net = with_state::<Net>(&fx);
    let mut batched = vec![0.0; Net::PARAM_COUNT];
    let mut ws = vec![0.0; Net::train_workspace_len(1)];
    let loss_b = net.loss_and_grad_n(1, x, Target::Classes(&label), &mut batched, &mut ws, 0);
    let mut grads = Box::new(resnet_bn::NetGrads::zeroed());
    let mut scratch = vec![f32::NAN; Net::TRAIN_SCRATCH_LEN];
    let scratch: &mut [f32; Net::TRAIN_SCRATCH_LEN] = (&mut scratch[..]).try_into().unwrap();
    let before = net.buffers().to_vec();
    let mut velocity = [0.0f32; 0];
    let mut opt = cnn_runtime::optim::SgdWith::new(SgdConfig::new(0.0), &mut velocity);
    let loss_1 = net.train_step_with(x, Target::Classes(&label), &mut grads, scratch, &mut opt);
    assert!(
        scratch.iter().all(|v| !v.is_nan()),
        "the whole training scratch is used"
    );
    // The direct kernels and the GEMM ones round differently.
    assert!(
        (loss_1 - loss_b).abs() <= 1e-5 * loss_b.abs(),
        "{loss_1} vs {loss_b}"
    );
    let batched: Vec<f64> = batched.iter().map(|&g| g as f64).collect();
    assert_close(
        "batch-1 vs batched gradients",
        grads.as_array(),
        &batched,
        1e-4,
        1e-6,
    );
    let tracked =
        cnn_runtime::network::tensor(Net::BUFFERS, net.buffers(), "0.1.num_batches_tracked").unwrap();
    assert_eq!(tracked, [4.0], "3 in the file, one step");
    assert_ne!(net.buffers(), before.as_slice(), "the running statistics moved");
}

/// After `flatten`, one example leaves one value per channel: PyTorch
/// refuses to train BatchNorm1d on it, and so does the runtime, saying why.
#[test]
#[should_panic(expected = "expected more than 1 value per channel when training")]
fn batch_one_training_through_batchnorm1d_is_refused() {
    use lenet_bn::Net;
    let fx = load("lenet_bn");
    let net = with_state::<Net>(&fx);
    let x: &[f32; Net::INPUT_LEN] = fx.input[..Net::INPUT_LEN].try_into().unwrap();
    let mut grads = Box::new(lenet_bn::NetGrads::zeroed());
    let mut scratch = vec![0.0f32; Net::TRAIN_SCRATCH_LEN];
    net.loss_and_grad_with(
        x,
        Target::Classes(&[1]),
        &mut grads,
        (&mut scratch[..]).try_into().unwrap(),
    );
}

/// Training with batch norm is bit-reproducible at a given thread count:
/// the shares' sums are added in share order, whatever the timing.
#[test]
fn two_shares_give_the_same_bits_every_time() {
    use resnet_bn::Net;
    let fx = load("resnet_bn");
    let _threads = cnn_tests::threads(2);
    let run = || {
        let mut net = with_state::<Net>(&fx);
        let mut opt = Sgd::new(SgdConfig::new(0.05).with_momentum(0.9));
        for _ in 0..3 {
            cnn_runtime::train::train_step(&mut *net, &fx.input, Target::Classes(&fx.labels), &mut opt, 0);
        }
        (net.params().to_vec(), net.buffers().to_vec())
    };
    let first = run();
    for _ in 0..3 {
        assert!(run() == first, "a rerun at 2 threads differs");
    }
}

/// The zoo's `lenet-bn` is D2L's BN-LeNet, the net of the `lenet_bn`
/// fixture: same layers, same keys for parameters and buffers.
#[test]
fn the_zoo_lenet_bn_is_the_fixture_net() {
    use models::LeNetBn;
    let sources = |layers: &[cnn_runtime::LayerInfo]| layers.iter().map(|l| l.source).collect::<Vec<_>>();
    assert_eq!(sources(LeNetBn::LAYERS), sources(lenet_bn::Net::LAYERS));
    let keys = |t: &[cnn_runtime::TensorInfo]| t.iter().map(|t| t.key).collect::<Vec<_>>();
    assert_eq!(keys(LeNetBn::TENSORS), keys(lenet_bn::Net::TENSORS));
    assert_eq!(keys(LeNetBn::BUFFERS), keys(lenet_bn::Net::BUFFERS));
    let fx = load("lenet_bn");
    let net = with_state::<LeNetBn>(&fx);
    let mut out = vec![0.0; fx.batch * LeNetBn::OUTPUT_LEN];
    net.forward_batch(&fx.input, &mut out);
    assert_close("zoo LeNetBn (eval)", &out, &fx.output, OUT.0, OUT.1);
}

/// The residual net of `resnet_bn` with PyTorch's parameters and running
/// statistics baked in at compile time (`tools/gen_fixtures.py` writes the
/// fixture's `state_dict` alone to `resnet_bn.weights.json`).
mod resnet_bn_baked {
    use cnn_runtime::cnn_net;

    cnn_net! {
        pub Net: [1, 12, 12] weights = "fixtures/resnet_bn.weights.json" =>
            [conv(1, 4, 3, pad = 1) batchnorm relu maxpool(2)]
            [[add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity } relu]
             [add { conv1: conv(4, 4, 3, pad = 1) bn1: batchnorm relu conv2: conv(4, 4, 3, pad = 1) bn2: batchnorm | identity } relu]]
            [[add { conv1: conv(4, 8, 3, pad = 1, stride = 2) bn1: batchnorm relu conv2: conv(8, 8, 3, pad = 1) bn2: batchnorm | conv3: conv(4, 8, 1, stride = 2) } relu]
             [add { conv1: conv(8, 8, 3, pad = 1) bn1: batchnorm relu conv2: conv(8, 8, 3, pad = 1) bn2: batchnorm | identity } relu]]
            [global_avgpool flatten linear(8, 10)]
    }
}

/// Baking a batch-norm net bakes its running statistics (and the int64
/// `num_batches_tracked`) beside the parameters: the constant net is the
/// one loaded at run time, and its eval-mode outputs are PyTorch's.
#[test]
fn baked_batch_norm_net_matches_pytorch_in_eval_mode() {
    use resnet_bn_baked::Net;
    let fx = load("resnet_bn");
    let baked = Net::TRAINED;
    let loaded = with_state::<resnet_bn::Net>(&fx);
    assert_eq!(baked.params(), loaded.params(), "parameters");
    assert_eq!(
        baked.buffers(),
        loaded.buffers(),
        "running statistics and step counts"
    );
    assert!(
        baked.buffers().iter().any(|&v| v != 0.0 && v != 1.0),
        "the fixture's running statistics are not the initial ones"
    );
    let mut out = Vec::new();
    for x in fx.input.chunks(Net::INPUT_LEN) {
        out.extend(baked.forward(x.try_into().expect("one example")));
    }
    assert_close("baked resnet_bn forward (eval)", &out, &fx.output, OUT.0, OUT.1);
}
