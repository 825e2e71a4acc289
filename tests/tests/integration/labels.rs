//! Labels and nested sequences: `state_dict` keys as PyTorch builds them
//! for an `nn.Sequential` of named children and nested `nn.Sequential`s,
//! with the same computation as the flat chain.

use cnn_runtime::{cnn_net, Gradients};
use models::{LeNetRelu, LeNetReluGrads};

cnn_net! {
    /// LeNetRelu's layers, grouped and named like a torchvision model.
    pub Named: [1, 28, 28] =>
        features: [
            conv1: conv(1, 6, 5, pad = 2) relu maxpool(2)
            conv(6, 16, 5) relu maxpool(2)
        ]
        flatten
        classifier: [linear(400, 120) relu linear(120, 84) relu fc: linear(84, 10)];

    /// Labels may also be integers, and sequences nest more than once.
    pub Deep: [1, 4, 4] => [[conv(1, 2, 3)] 5: [relu flatten linear(8, 3)]]
}

#[test]
fn keys_follow_nn_sequential() {
    let keys: Vec<&str> = Named::TENSORS.iter().map(|t| t.key).collect();
    assert_eq!(
        keys,
        [
            "features.conv1.weight",
            "features.conv1.bias",
            "features.3.weight",
            "features.3.bias",
            "classifier.0.weight",
            "classifier.0.bias",
            "classifier.2.weight",
            "classifier.2.bias",
            "classifier.fc.weight",
            "classifier.fc.bias",
        ]
    );
    let keys: Vec<&str> = Deep::TENSORS.iter().map(|t| t.key).collect();
    assert_eq!(keys, ["0.0.0.weight", "0.0.0.bias", "0.5.2.weight", "0.5.2.bias"]);
}

/// Grouping and naming change keys only: with LeNetRelu's parameters the
/// named net computes the same logits and gradients, bit for bit.
#[test]
fn nesting_changes_keys_not_numbers() {
    let _threads = cnn_tests::threads(1);
    assert_eq!(Named::PARAM_COUNT, LeNetRelu::PARAM_COUNT);
    assert_eq!(Named::INFER_SCRATCH_LEN, LeNetRelu::INFER_SCRATCH_LEN);
    assert_eq!(Named::TRAIN_SCRATCH_LEN, LeNetRelu::TRAIN_SCRATCH_LEN);
    let flat = LeNetRelu::boxed_init(3);
    let mut named = Named::boxed_zeroed();
    named.params_mut().copy_from_slice(flat.params());

    let x: Vec<f32> = (0..4 * 784).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    let labels = [1u8, 7, 3, 9];
    let (mut a, mut b) = (vec![0.0; 40], vec![0.0; 40]);
    flat.forward_batch(&x, &mut a);
    named.forward_batch(&x, &mut b);
    assert_eq!(a, b);

    let mut ga = Box::new(LeNetReluGrads::zeroed());
    let mut gb = Box::new(NamedGrads::zeroed());
    let la = flat.loss_and_grad(&x, &labels, &mut ga);
    let lb = named.loss_and_grad(&x, &labels, &mut gb);
    assert_eq!(la, lb);
    assert_eq!(ga.as_slice(), gb.as_slice());
}
