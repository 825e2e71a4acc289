//! Dive into Deep Learning, section 7.5, "Pooling": a window slides over the
//! input like a convolution kernel, but takes the maximum or the mean of
//! what it covers and has no parameters. Padding and stride work as for
//! convolutions (the window defaults to stride = its size, like PyTorch's
//! `nn.MaxPool2d`), and each channel is pooled on its own, so the channel
//! count does not change.
//!
//! Run with `cargo run -p models --example pooling`.

use cnn_runtime::cnn_net;

cnn_net! {
    /// 7.5.1: D2L's `pool2d(X, (2, 2))`, which slides with stride 1.
    Max2: [1, 3, 3] => maxpool(2, stride = 1);

    /// 7.5.1: `pool2d(X, (2, 2), 'avg')`.
    Avg2: [1, 3, 3] => avgpool(2, stride = 1);

    /// 7.5.2: `nn.MaxPool2d(3)`: stride 3 by default.
    Max3: [1, 4, 4] => maxpool(3);

    /// 7.5.2: `nn.MaxPool2d(3, padding=1, stride=2)`.
    Max3Pad: [1, 4, 4] => maxpool(3, pad = 1, stride = 2);

    /// 7.5.2: `nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))`.
    MaxRect: [1, 4, 4] => maxpool((2, 3), stride = (2, 3), pad = (0, 1));

    /// 7.5.3: `nn.MaxPool2d(3, padding=1, stride=2)` on two channels.
    Max3PadTwo: [2, 4, 4] => maxpool(3, pad = 1, stride = 2)
}

/// `torch.arange(len)` as f32, plus `offset`.
fn arange<const N: usize>(offset: f32) -> [f32; N] {
    std::array::from_fn(|i| i as f32 + offset)
}

/// `torch.cat((X, X + 1), 1)` for the 4x4 `X = arange(16)`.
fn two_channels() -> [f32; 32] {
    let mut x = [0.0; 32];
    x[..16].copy_from_slice(&arange::<16>(0.0));
    x[16..].copy_from_slice(&arange::<16>(1.0));
    x
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
                        .map(|v| format!("{v:>2}"))
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
    let x3 = arange::<9>(0.0);
    println!("X =\n{}\n", channels(&x3, 3, 3));
    println!(
        "pool2d(X, (2, 2)) =\n{}\n",
        channels(&Max2::zeroed().forward(&x3), 2, 2)
    );
    println!(
        "pool2d(X, (2, 2), 'avg') =\n{}\n",
        channels(&Avg2::zeroed().forward(&x3), 2, 2)
    );

    let x4 = arange::<16>(0.0);
    println!("X =\n{}\n", channels(&x4, 4, 4));
    println!(
        "nn.MaxPool2d(3)(X) =\n{}\n",
        channels(&Max3::zeroed().forward(&x4), 1, 1)
    );
    let y = Max3Pad::zeroed().forward(&x4);
    println!(
        "nn.MaxPool2d(3, padding=1, stride=2)(X) =\n{}\n",
        channels(&y, 2, 2)
    );
    let y = MaxRect::zeroed().forward(&x4);
    println!(
        "nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X) =\n{}\n",
        channels(&y, 2, 2)
    );

    let y = Max3PadTwo::zeroed().forward(&two_channels());
    println!(
        "X = torch.cat((X, X + 1), 1): shape {:?}",
        Max3PadTwo::INPUT_SHAPE
    );
    println!(
        "nn.MaxPool2d(3, padding=1, stride=2)(X) =\n{}",
        channels(&y, 2, 2)
    );
    println!("output shape {:?}", Max3PadTwo::LAYERS[0].output_shape);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooling window written as loops over one `h x w` channel, with
    /// padding that no window value can come from (PyTorch pads max pooling
    /// with -inf; every window here covers at least one real pixel).
    fn pool2d_loops(
        x: &[f32],
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
        mean: bool,
    ) -> Vec<f32> {
        let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
        let mut y = Vec::new();
        for i in 0..oh {
            for j in 0..ow {
                let window: Vec<f32> = (0..kh * kw)
                    .filter_map(|t| {
                        let (r, c) = (
                            (i * sh + t / kw).checked_sub(ph)?,
                            (j * sw + t % kw).checked_sub(pw)?,
                        );
                        (r < h && c < w).then(|| x[r * w + c])
                    })
                    .collect();
                y.push(if mean {
                    window.iter().sum::<f32>() / (kh * kw) as f32
                } else {
                    window.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                });
            }
        }
        y
    }

    #[test]
    fn max_and_mean_of_2x2_windows() {
        let x = arange::<9>(0.0);
        assert_eq!(Max2::zeroed().forward(&x), [4.0, 5.0, 7.0, 8.0]);
        assert_eq!(Avg2::zeroed().forward(&x), [2.0, 3.0, 5.0, 6.0]);
        assert_eq!(
            Max2::zeroed().forward(&x).to_vec(),
            pool2d_loops(&x, (3, 3), (2, 2), (1, 1), (0, 0), false)
        );
        assert_eq!(
            Avg2::zeroed().forward(&x).to_vec(),
            pool2d_loops(&x, (3, 3), (2, 2), (1, 1), (0, 0), true)
        );
    }

    #[test]
    fn padding_and_stride() {
        let x = arange::<16>(0.0);
        assert_eq!(Max3::zeroed().forward(&x), [10.0]);
        assert_eq!(Max3Pad::zeroed().forward(&x), [5.0, 7.0, 13.0, 15.0]);
        assert_eq!(MaxRect::zeroed().forward(&x), [5.0, 7.0, 13.0, 15.0]);
        let padded = pool2d_loops(&x, (4, 4), (3, 3), (2, 2), (1, 1), false);
        assert_eq!(Max3Pad::zeroed().forward(&x).to_vec(), padded);
        let rect = pool2d_loops(&x, (4, 4), (2, 3), (2, 3), (0, 1), false);
        assert_eq!(MaxRect::zeroed().forward(&x).to_vec(), rect);
    }

    #[test]
    fn channels_are_pooled_separately() {
        assert_eq!(Max3PadTwo::LAYERS[0].output_shape, [2, 2, 2]);
        let y = Max3PadTwo::zeroed().forward(&two_channels());
        assert_eq!(y, [5.0, 7.0, 13.0, 15.0, 6.0, 8.0, 14.0, 16.0]);
    }
}
