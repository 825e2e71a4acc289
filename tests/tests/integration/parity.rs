//! Every fixture written by `tools/gen_fixtures.py` (PyTorch, float64) is
//! declared here with `cnn_net!` and checked: batch-1 `forward`,
//! `forward_batch`, the batched loss and gradients, and the no-heap batch-1
//! training path.

use cnn_runtime::{cnn_net, Network, Target};
use cnn_tests::{assert_close, load, Fixture};

/// Forward outputs: 1e-5 relative or 1e-6 absolute (issue contract).
const OUT_REL: f64 = 1e-5;
const OUT_ABS: f64 = 1e-6;
/// Loss and gradients: 1e-4 relative or 1e-6 absolute.
const GRAD_REL: f64 = 1e-4;
const GRAD_ABS: f64 = 1e-6;

fn normalised(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The fixture, after checking it was generated from the same DSL text.
fn fixture_for(name: &str, dsl: &str) -> Fixture {
    let fx = load(name);
    assert_eq!(
        normalised(&fx.net),
        normalised(dsl),
        "{name}: the Rust declaration and the fixture's net differ"
    );
    fx
}

fn with_weights<N: Network>(fx: &Fixture) -> Box<N> {
    let mut net = Box::new(N::zeroed());
    cnn_runtime::weights::load_json_str(N::TENSORS, &fx.weights_json, net.params_mut())
        .unwrap_or_else(|e| panic!("{}: loading weights: {e}", fx.name));
    net
}

fn check_forward_batch<N: Network>(fx: &Fixture) {
    let net = with_weights::<N>(fx);
    let mut out = vec![0.0; fx.batch * N::OUTPUT_LEN];
    cnn_runtime::train::forward_batch(&*net, &fx.input, &mut out);
    assert_close(
        &format!("{} forward_batch", fx.name),
        &out,
        &fx.output,
        OUT_REL,
        OUT_ABS,
    );
}

fn check_grads<N: Network>(fx: &Fixture) {
    let net = with_weights::<N>(fx);
    let mut grads = vec![f32::NAN; N::PARAM_COUNT];
    let loss =
        cnn_runtime::train::loss_and_grad(&*net, &fx.input, Target::Classes(&fx.labels), &mut grads, 0);
    assert_close(
        &format!("{} loss", fx.name),
        &[loss],
        &[fx.loss],
        GRAD_REL,
        GRAD_ABS,
    );
    compare_grads::<N>(fx, &grads, "loss_and_grad");
}

fn compare_grads<N: Network>(fx: &Fixture, grads: &[f32], what: &str) {
    assert_eq!(fx.grads.len(), N::TENSORS.len(), "{}: tensor count", fx.name);
    for (key, expected) in &fx.grads {
        let actual = cnn_runtime::network::tensor(N::TENSORS, grads, key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", fx.name));
        assert_close(
            &format!("{} {what} grad {key}", fx.name),
            actual,
            expected,
            GRAD_REL,
            GRAD_ABS,
        );
    }
}

macro_rules! parity {
    ($module:ident, $fixture:literal, $($dsl:tt)*) => {
        mod $module {
            use super::*;

            cnn_net! { pub Net: $($dsl)* }

            fn fixture() -> Fixture {
                fixture_for($fixture, stringify!($($dsl)*))
            }

            #[test]
            fn forward_one_example_at_a_time() {
                let fx = fixture();
                let net = with_weights::<Net>(&fx);
                let mut out = Vec::new();
                for x in fx.input.chunks(Net::INPUT_LEN) {
                    out.extend_from_slice(&net.forward(x.try_into().unwrap()));
                }
                assert_close(concat!($fixture, " forward"), &out, &fx.output, OUT_REL, OUT_ABS);
            }

            #[test]
            fn forward_batch() {
                check_forward_batch::<Net>(&fixture());
            }

            #[test]
            fn loss_and_gradients() {
                check_grads::<Net>(&fixture());
            }

            #[test]
            fn no_heap_training_path() {
                // The batch-1 path, averaged over the batch, gives the batch gradient.
                let fx = fixture();
                let net = with_weights::<Net>(&fx);
                let mut grads = Box::new(NetGrads::zeroed());
                let mut scratch = vec![0.0; Net::TRAIN_SCRATCH_LEN];
                let mut sum = vec![0.0f64; Net::PARAM_COUNT];
                let mut loss = 0.0f64;
                for (x, &label) in fx.input.chunks(Net::INPUT_LEN).zip(&fx.labels) {
                    let labels = [label];
                    loss += net.loss_and_grad_with(
                        x.try_into().unwrap(),
                        Target::Classes(&labels),
                        &mut grads,
                        (&mut scratch[..]).try_into().unwrap(),
                    ) as f64;
                    for (s, g) in sum.iter_mut().zip(grads.as_array()) {
                        *s += *g as f64;
                    }
                }
                let n = fx.batch as f64;
                let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
                assert_close(concat!($fixture, " batch-1 loss"), &[(loss / n) as f32], &[fx.loss], GRAD_REL, GRAD_ABS);
                compare_grads::<Net>(&fx, &mean, "batch-1");
            }
        }
    };
}

parity!(lenet, "lenet", [1, 28, 28] => conv(1, 6, 5, pad = 2) sigmoid avgpool(2) conv(6, 16, 5) sigmoid avgpool(2) flatten linear(400, 120) sigmoid linear(120, 84) sigmoid linear(84, 10));
parity!(lenet_relu, "lenet_relu", [1, 28, 28] => conv(1, 6, 5, pad = 2) relu maxpool(2) conv(6, 16, 5) relu maxpool(2) flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10));
parity!(strided_conv, "strided_conv", [3, 13, 11] => conv(3, 4, 3, stride = 2) relu conv(4, 5, 3, stride = 2, pad = 1) tanh flatten linear(_, 5));
parity!(rect_kernels, "rect_kernels", [2, 9, 10] => conv(2, 3, (3, 5), pad = (1, 2)) tanh conv(3, 4, (5, 3), stride = (2, 1), pad = (0, 1)) sigmoid flatten linear(_, 6));
parity!(three_channel, "three_channel", [3, 16, 16] => conv(3, 8, 3, pad = 1) relu maxpool(2) conv(8, 8, 3) relu global_avgpool flatten linear(8, 4));
parity!(one_by_one, "one_by_one", [4, 6, 6] => conv(4, 8, 1) relu conv(8, 2, 1) flatten linear(72, 3));
parity!(pools, "pools", [2, 11, 11] => maxpool(3, stride = 2, pad = 1) avgpool(3, stride = 1, pad = 1) conv(2, 3, 2) maxpool((2, 3), stride = (1, 2)) avgpool(2, stride = 1) flatten linear(_, 4));
parity!(global_pools, "global_pools", [3, 7, 7] => conv(3, 6, 3) relu global_maxpool flatten linear(6, 4));
parity!(nin_style, "nin_style", [1, 16, 16] => conv(1, 8, 3, pad = 1) relu conv(8, 8, 1) relu maxpool(2) conv(8, 10, 3, pad = 1) relu conv(10, 10, 1) global_avgpool flatten);
parity!(no_bias, "no_bias", [2, 8, 8] => conv(2, 4, 3, bias = false) relu avgpool(2) flatten linear(_, 5, bias = false));
parity!(relu6_mlp, "relu6_mlp", [1, 4, 4] => flatten linear(16, 24) relu6 linear(24, 12) relu6 linear(12, 3));
parity!(grouped_conv, "grouped_conv", [4, 9, 9] => conv(4, 6, 3, pad = 1, groups = 2) relu6 conv(6, 12, 3, stride = 2, groups = 6) relu conv(12, 12, 3, pad = 1, groups = 12, bias = false) conv(12, 4, 1) relu6 flatten linear(_, 5));
parity!(tanh_mlp, "tanh_mlp", [1, 4, 4] => flatten linear(16, 12) tanh linear(12, 7) sigmoid linear(7, 3));
parity!(maxpool_ties, "maxpool_ties", [1, 4, 4] => maxpool(2, stride = 1) flatten linear(9, 2));
parity!(maxpool_ties_conv, "maxpool_ties_conv", [2, 4, 4] => conv(2, 1, 1, bias = false) maxpool(2, stride = 1) flatten linear(9, 2));

// The model zoo of `models` (nets too large for a fixture are scaled down in
// width; see tools/gen_fixtures.py). Dropout is `dropout(0.0)` here: PyTorch's
// random masks cannot be reproduced, while p = 0 must match exactly.
parity!(nin, "nin", [1, 28, 28] => conv(1, 16, 5, pad = 2) relu conv(16, 16, 1) relu conv(16, 16, 1) relu maxpool(3, stride = 2) conv(16, 32, 3, pad = 1) relu conv(32, 32, 1) relu conv(32, 32, 1) relu maxpool(3, stride = 2) conv(32, 64, 3, pad = 1) relu conv(64, 64, 1) relu conv(64, 64, 1) relu maxpool(3, stride = 2) dropout(0.0) conv(64, 10, 3, pad = 1) relu conv(10, 10, 1) relu conv(10, 10, 1) global_avgpool flatten);
parity!(vgg_small, "vgg_small", [1, 28, 28] => conv(1, 8, 3, pad = 1) relu maxpool(2) conv(8, 16, 3, pad = 1) relu conv(16, 16, 3, pad = 1) relu maxpool(2) conv(16, 32, 3, pad = 1) relu conv(32, 32, 3, pad = 1) relu maxpool(2) flatten linear(288, 64) relu dropout(0.0) linear(64, 64) relu dropout(0.0) linear(64, 10));
parity!(alexnet_small, "alexnet_small", [1, 28, 28] => conv(1, 8, 7, stride = 2, pad = 3) relu maxpool(3, stride = 2, pad = 1) conv(8, 16, 3, pad = 1) relu conv(16, 24, 3, pad = 1) relu conv(24, 16, 3, pad = 1) relu maxpool(3, stride = 2) flatten linear(144, 64) relu dropout(0.0) linear(64, 64) relu dropout(0.0) linear(64, 10));

/// A layer's source with what the zoo fixtures may change blanked out: the
/// dropout rate always, and the widths of `conv(in, out, ..)` and
/// `linear(in, out, ..)` if `widths` (the first two arguments are never pairs).
fn masked_layer(source: &str, widths: bool) -> String {
    if source.starts_with("dropout(") {
        return "dropout(_)".to_owned();
    }
    match source.split_once('(') {
        Some((keyword @ ("conv" | "linear"), args)) if widths => {
            let rest = args
                .splitn(3, ',')
                .nth(2)
                .map_or(")".to_owned(), |r| format!(",{r}"));
            format!("{keyword}(_, _{rest}")
        }
        _ => source.to_owned(),
    }
}

/// `Zoo` and the parity net `Fixture` have the same input and the same layers,
/// up to [`masked_layer`].
fn assert_same_layers<Zoo: Network, Fixture: Network>(widths: bool) {
    assert_eq!(
        Zoo::INPUT_SHAPE,
        Fixture::INPUT_SHAPE,
        "{}: input shape",
        Zoo::NAME
    );
    let layers = |net: &[cnn_runtime::network::LayerInfo]| -> Vec<String> {
        net.iter().map(|l| masked_layer(l.source, widths)).collect()
    };
    assert_eq!(
        layers(Zoo::LAYERS),
        layers(Fixture::LAYERS),
        "{}: the zoo net and its fixture differ; update tools/gen_fixtures.py and this file",
        Zoo::NAME
    );
}

#[test]
fn zoo_fixtures_follow_the_zoo_declarations() {
    assert_eq!(
        masked_layer("conv(1, 16, 5, pad = 2)", true),
        "conv(_, _, 5, pad = 2)"
    );
    assert_eq!(masked_layer("linear(64, 10)", true), "linear(_, _)");
    assert_eq!(
        masked_layer("conv(1, 16, 5, pad = 2)", false),
        "conv(1, 16, 5, pad = 2)"
    );
    // NiN is its own fixture, dropout rate aside.
    assert_same_layers::<models::Nin, nin::Net>(false);
    assert_same_layers::<models::VggSmall, vgg_small::Net>(true);
    assert_same_layers::<models::AlexNetSmall, alexnet_small::Net>(true);
}

// Graph nets: D2L's Residual (8.6), Inception (8.4) and DenseBlock (8.7)
// classes, their batch norms left out, keys checked by a real state_dict.
parity!(resnet_small, "resnet_small", [1, 12, 12] => [conv(1, 4, 3, pad = 1) relu maxpool(2)] [[add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu] [add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu]] [[add { conv1: conv(4, 8, 3, pad = 1, stride = 2) relu conv2: conv(8, 8, 3, pad = 1) | conv3: conv(4, 8, 1, stride = 2) } relu] [add { conv1: conv(8, 8, 3, pad = 1) relu conv2: conv(8, 8, 3, pad = 1) | identity } relu]] [global_avgpool flatten linear(8, 10)]);
parity!(googlenet_small, "googlenet_small", [1, 16, 16] => [conv(1, 8, 5, pad = 2) relu maxpool(3, stride = 2, pad = 1)] [[cat { b1_1: conv(8, 4, 1) relu | b2_1: conv(8, 4, 1) relu b2_2: conv(4, 6, 3, pad = 1) relu | b3_1: conv(8, 2, 1) relu b3_2: conv(2, 3, 5, pad = 2) relu | b4_1: maxpool(3, stride = 1, pad = 1) b4_2: conv(8, 3, 1) relu }] [cat { b1_1: conv(16, 4, 1) relu | b2_1: conv(16, 4, 1) relu b2_2: conv(4, 6, 3, pad = 1) relu | b3_1: conv(16, 2, 1) relu b3_2: conv(2, 3, 5, pad = 2) relu | b4_1: maxpool(3, stride = 1, pad = 1) b4_2: conv(16, 3, 1) relu }] maxpool(3, stride = 2, pad = 1)] [global_avgpool flatten linear(16, 10)]);
parity!(densenet_small, "densenet_small", [1, 12, 12] => [conv(1, 8, 3, pad = 1) maxpool(2)] [cat { identity | net.0: [relu conv(8, 4, 3, pad = 1)] } cat { identity | net.1: [relu conv(12, 4, 3, pad = 1)] }] [relu conv(16, 8, 1) avgpool(2)] [cat { identity | net.0: [relu conv(8, 4, 3, pad = 1)] } cat { identity | net.1: [relu conv(12, 4, 3, pad = 1)] }] [relu global_avgpool flatten linear(16, 10)]);
