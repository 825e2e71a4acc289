//! Dive into Deep Learning, section 7.3, "Padding and Stride": the output
//! shape of a convolution over an `n_h x n_w` input is
//! `floor((n_h - k_h + 2 p_h + s_h) / s_h) x floor((n_w - k_w + 2 p_w + s_w) / s_w)`
//! (`pad = p` adds `p` rows or columns on each side). D2L checks it on four
//! convolutions over an 8x8 input; `cnn_net!` works the same shapes out at
//! compile time, and each net's layer table shows them.
//!
//! Run with `cargo run -p models --example padding_and_stride`.

use cnn_runtime::{cnn_net, Network};

cnn_net! {
    /// 7.3.1: `nn.LazyConv2d(1, kernel_size=3, padding=1)` keeps 8x8.
    Pad1: [1, 8, 8] => conv(1, 1, 3, pad = 1);

    /// 7.3.1: `nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1))` keeps 8x8.
    PadRect: [1, 8, 8] => conv(1, 1, (5, 3), pad = (2, 1));

    /// 7.3.2: `nn.LazyConv2d(1, kernel_size=3, padding=1, stride=2)` halves to 4x4.
    Stride2: [1, 8, 8] => conv(1, 1, 3, pad = 1, stride = 2);

    /// 7.3.2: `nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4))` gives 2x2.
    StrideRect: [1, 8, 8] => conv(1, 1, (3, 5), pad = (0, 1), stride = (3, 4))
}

/// D2L's `comp_conv2d(conv2d, X).shape`: the `[H, W]` of the net's one
/// conv layer, dropping the channel as D2L drops batch and channel.
fn output_hw<N: Network>() -> [usize; 2] {
    match N::LAYERS[0].output_shape {
        &[1, h, w] => [h, w],
        other => panic!("{}: expected one output channel, found shape {other:?}", N::NAME),
    }
}

/// Prints the layer as written and its output shape, like D2L's
/// `comp_conv2d(conv2d, X).shape`.
fn show<N: Network>() {
    println!("{:<50} on 8x8 -> {:?}", N::LAYERS[0].source, output_hw::<N>());
}

fn main() {
    show::<Pad1>();
    show::<PadRect>();
    show::<Stride2>();
    show::<StrideRect>();
    println!("\n{}", StrideRect::summary());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D2L's formula for one dimension.
    fn out_len(n: usize, k: usize, p: usize, s: usize) -> usize {
        (n - k + 2 * p + s) / s
    }

    #[test]
    fn shapes_match_d2l() {
        assert_eq!(output_hw::<Pad1>(), [8, 8]);
        assert_eq!(output_hw::<PadRect>(), [8, 8]);
        assert_eq!(output_hw::<Stride2>(), [4, 4]);
        assert_eq!(output_hw::<StrideRect>(), [2, 2]);
        assert_eq!(StrideRect::OUTPUT_LEN, 4);
    }

    #[test]
    fn shapes_match_the_formula() {
        // (kernel, pad, stride) per dimension, as (h, w).
        let cases = [
            (output_hw::<Pad1>(), (3, 3), (1, 1), (1, 1)),
            (output_hw::<PadRect>(), (5, 3), (2, 1), (1, 1)),
            (output_hw::<Stride2>(), (3, 3), (1, 1), (2, 2)),
            (output_hw::<StrideRect>(), (3, 5), (0, 1), (3, 4)),
        ];
        for (hw, k, p, s) in cases {
            assert_eq!(hw, [out_len(8, k.0, p.0, s.0), out_len(8, k.1, p.1, s.1)]);
        }
    }

    #[test]
    fn forward_fills_every_output() {
        // A kernel of ones over an input of ones: each output counts the
        // real (not padding) pixels under its window.
        let mut net = StrideRect::zeroed();
        net.tensor_mut("0.weight").expect("conv 0 has a weight").fill(1.0);
        let y = net.forward(&[1.0; 64]);
        // Rows 0..3 and 3..6; columns -1..4 (one pad) and 3..8.
        assert_eq!(y, [12.0, 15.0, 12.0, 15.0]);
    }
}
