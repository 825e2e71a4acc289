//! Nets too large for the stack: the boxed constructors build them on the
//! heap with the same values as the by-value ones, and they train.

use cnn_runtime::{cnn_net, init};

cnn_net! {
    // 784 * 400 + 400 + 400 * 10 + 10 parameters: 1.27 MB, past the 1 MiB
    // limit above which `init` is deprecated.
    Big: [1, 28, 28] => flatten linear(784, 400) relu linear(400, 10)
}

#[test]
fn boxed_constructors_match_the_initialisers() {
    const { assert!(Big::PARAM_COUNT * 4 > 1 << 20) };
    let zeroed = Big::boxed_zeroed();
    assert!(zeroed.params().iter().all(|&v| v == 0.0));

    let mut expected = vec![0.0f32; Big::PARAM_COUNT];
    init::pytorch_default(Big::TENSORS, &mut expected, &mut init::Rng::new(5));
    assert_eq!(&Big::boxed_init(5).params()[..], &expected[..]);

    init::xavier_uniform(Big::TENSORS, &mut expected, &mut init::Rng::new(6));
    assert_eq!(&Big::boxed_init_xavier(6).params()[..], &expected[..]);
}

#[test]
fn a_boxed_net_trains() {
    let mut net = Big::boxed_init_xavier(1);
    let mut opt = cnn_runtime::optim::Sgd::new(cnn_runtime::optim::SgdConfig::new(0.05));
    let images: Vec<f32> = (0..8 * 784).map(|i| ((i * 31) % 97) as f32 / 97.0).collect();
    let labels: Vec<u8> = (0..8).map(|i| (i % 10) as u8).collect();
    let first = net.train_step(&images, &labels, &mut opt);
    let mut last = first;
    for _ in 0..20 {
        last = net.train_step(&images, &labels, &mut opt);
    }
    assert!(last < first * 0.5, "loss {first} -> {last}");
}
