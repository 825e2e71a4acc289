//! Dive into Deep Learning, section 7.4, "Multiple Input and Multiple Output
//! Channels": with several input channels a convolution cross-correlates
//! each channel with its own kernel slice and adds the results (7.4.1); each
//! output channel has its own such kernel (7.4.2); and a 1x1 convolution is
//! a matrix multiply over the channels at every pixel (7.4.3).
//!
//! Run with `cargo run -p models --example channels`.

use cnn_runtime::cnn_net;
use cnn_runtime::init::Rng;

cnn_net! {
    /// 7.4.1: two input channels, one output channel.
    MultiIn: [2, 3, 3] => conv(2, 1, 2, bias = false);

    /// 7.4.2: two input channels, three output channels.
    MultiInOut: [2, 3, 3] => conv(2, 3, 2, bias = false);

    /// 7.4.3: a 1x1 convolution from three channels to two.
    OneByOne: [3, 3, 3] => conv(3, 2, 1, bias = false)
}

/// D2L's `X`: two 3x3 channels, `[[0..8]]` and `[[1..9]]`, in CHW order.
const X: [f32; 18] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, //
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
];
/// D2L's `K`: one 2x2 kernel per input channel, `[[0, 1], [2, 3]]` and `[[1, 2], [3, 4]]`.
const K: [f32; 8] = [0.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0];

/// `corr2d_multi_in(X, K)`: the weight `[1, 2, 2, 2]` is `K`.
fn multi_in() -> [f32; 4] {
    let mut net = MultiIn::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(&K);
    net.forward(&X)
}

/// `torch.stack((K, K + 1, K + 2), 0)`: the weight `[3, 2, 2, 2]`.
fn stacked_kernels() -> [f32; 24] {
    let mut k3 = [0.0; 24];
    for (o, block) in k3.chunks_mut(8).enumerate() {
        for (w, k) in block.iter_mut().zip(K) {
            *w = k + o as f32;
        }
    }
    k3
}

/// `corr2d_multi_in_out(X, K)` with the stacked kernels: three 2x2 channels.
fn multi_in_out() -> [f32; 12] {
    let mut net = MultiInOut::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(&stacked_kernels());
    net.forward(&X)
}

/// `X = torch.normal(0, 1, (3, 3, 3)); K = torch.normal(0, 1, (2, 3, 1, 1))`.
fn random_x_and_k(seed: u64) -> ([f32; 27], [f32; 6]) {
    let mut rng = Rng::new(seed);
    let mut x = [0.0; 27];
    let mut k = [0.0; 6];
    x.iter_mut().chain(&mut k).for_each(|v| *v = rng.normal());
    (x, k)
}

/// `corr2d_multi_in_out(X, K)` for the 1x1 kernel: two 3x3 channels.
fn one_by_one(x: &[f32; 27], k: &[f32; 6]) -> [f32; 18] {
    let mut net = OneByOne::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(k);
    net.forward(x)
}

/// D2L's `corr2d_multi_in_out_1x1`: `K` as a 2x3 matrix times `X` as a 3x9
/// matrix (channels by pixels).
fn matmul_1x1(x: &[f32; 27], k: &[f32; 6]) -> [f32; 18] {
    let mut y = [0.0; 18];
    for o in 0..2 {
        for p in 0..9 {
            y[o * 9 + p] = (0..3).map(|c| k[o * 3 + c] * x[c * 9 + p]).sum();
        }
    }
    y
}

/// Channels of `[C, H, W]` values as nested brackets, like a printed tensor.
fn channels(values: &[f32], h: usize, w: usize) -> String {
    let blocks: Vec<String> = values
        .chunks(h * w)
        .map(|channel| {
            let rows: Vec<String> = channel
                .chunks(w)
                .map(|row| {
                    row.iter()
                        .map(|v| format!("{v:>3}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            format!("[[{}]]", rows.join("],\n  ["))
        })
        .collect();
    format!("[{}]", blocks.join(",\n\n "))
}

fn main() {
    println!("corr2d_multi_in(X, K) =\n{}\n", channels(&multi_in(), 2, 2));

    println!(
        "K = torch.stack((K, K + 1, K + 2), 0): shape {:?}",
        MultiInOut::TENSORS[0].shape
    );
    println!(
        "corr2d_multi_in_out(X, K) =\n{}\n",
        channels(&multi_in_out(), 2, 2)
    );

    let (x, k) = random_x_and_k(0);
    let (y1, y2) = (matmul_1x1(&x, &k), one_by_one(&x, &k));
    let diff: f32 = y1.iter().zip(&y2).map(|(a, b)| (a - b).abs()).sum();
    println!(
        "1x1 convolution {} on a random [3, 3, 3] input:",
        OneByOne::LAYERS[0].source
    );
    println!("sum |matmul(K, X) - conv(X)| = {diff}  (D2L asserts < 1e-6)");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D2L's `corr2d_multi_in_out`, written as loops over `[C, 3, 3]` inputs
    /// and `[O, C, 2, 2]` kernels: two-by-two outputs per output channel.
    fn corr2d_multi_in_out_loops(x: &[f32], k: &[f32], c: usize, o: usize) -> Vec<f32> {
        let mut y = vec![0.0; o * 4];
        for out in 0..o {
            for i in 0..2 {
                for j in 0..2 {
                    for ch in 0..c {
                        for a in 0..2 {
                            for b in 0..2 {
                                y[out * 4 + i * 2 + j] +=
                                    x[ch * 9 + (i + a) * 3 + j + b] * k[((out * c + ch) * 2 + a) * 2 + b];
                            }
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn two_input_channels_match_d2l() {
        assert_eq!(multi_in(), [56.0, 72.0, 104.0, 120.0]);
        assert_eq!(multi_in().to_vec(), corr2d_multi_in_out_loops(&X, &K, 2, 1));
    }

    #[test]
    fn three_output_channels_match_the_loops() {
        assert_eq!(MultiInOut::TENSORS[0].shape, [3, 2, 2, 2]);
        let expected = corr2d_multi_in_out_loops(&X, &stacked_kernels(), 2, 3);
        assert_eq!(multi_in_out().to_vec(), expected);
        // D2L's printed values.
        assert_eq!(
            expected,
            [56.0, 72.0, 104.0, 120.0, 76.0, 100.0, 148.0, 172.0, 96.0, 128.0, 192.0, 224.0]
        );
    }

    #[test]
    fn one_by_one_is_a_matmul_over_channels() {
        // D2L bounds the summed difference by 1e-6; the convolution fuses
        // each multiply-add (one rounding instead of two), so compare each
        // element to within a few ulps instead.
        for seed in 0..16 {
            let (x, k) = random_x_and_k(seed);
            for (a, b) in matmul_1x1(&x, &k).iter().zip(&one_by_one(&x, &k)) {
                let bound = 4.0 * f32::EPSILON * a.abs().max(b.abs()).max(1.0);
                assert!((a - b).abs() <= bound, "seed {seed}: matmul {a}, conv {b}");
            }
        }
    }
}
