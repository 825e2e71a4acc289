//! Proof that a `#![no_std]` crate without `alloc` can declare a net and run
//! it: CI builds this crate on its own (`cargo build -p cnn-no-std`) so the
//! runtime's `std` feature stays off.
#![no_std]

use cnn_runtime::cnn_net;

cnn_net! {
    /// LeNet-5 as in Dive into Deep Learning, section 7.6.
    pub LeNet: [1, 28, 28] =>
        conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
        conv(6, 16, 5) sigmoid avgpool(2)
        flatten
        linear(400, 120) sigmoid
        linear(120, 84) sigmoid
        linear(84, 10)
}

/// Classifies one image with a net whose parameters and scratch are static.
pub fn classify(
    net: &LeNet,
    image: &[f32; LeNet::INPUT_LEN],
    scratch: &mut [f32; LeNet::INFER_SCRATCH_LEN],
) -> usize {
    let logits = net.forward_with(image, scratch);
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

cnn_net! {
    /// A residual net (an identity and a strided 1x1-conv shortcut) and an
    /// Inception-style concatenation: graph nets plan their scratch exactly
    /// too, so they run on caller-provided arrays without a heap.
    pub Residual: [1, 12, 12] =>
        conv(1, 4, 3, pad = 1) relu
        add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu
        [add { conv1: conv(4, 8, 3, pad = 1, stride = 2) relu conv2: conv(8, 8, 3, pad = 1) | conv3: conv(4, 8, 1, stride = 2) } relu]
        cat { a: conv(8, 4, 1) relu | maxpool(3, stride = 1, pad = 1) }
        global_avgpool flatten linear(12, 10)
}

/// One no-heap SGD step of the residual net on one example; returns the loss.
pub fn train_residual(
    net: &mut Residual,
    image: &[f32; Residual::INPUT_LEN],
    label: u8,
    grads: &mut ResidualGrads,
    scratch: &mut [f32; Residual::TRAIN_SCRATCH_LEN],
    opt: &mut cnn_runtime::optim::SgdWith<'_>,
) -> f32 {
    net.train_step_with(image, cnn_runtime::Target::Classes(&[label]), grads, scratch, opt)
}

/// The residual net's logits for one image, on caller-provided scratch.
pub fn residual_logits(
    net: &Residual,
    image: &[f32; Residual::INPUT_LEN],
    scratch: &mut [f32; Residual::INFER_SCRATCH_LEN],
) -> [f32; Residual::OUTPUT_LEN] {
    net.forward_with(image, scratch)
}
