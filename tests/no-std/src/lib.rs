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
