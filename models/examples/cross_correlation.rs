//! Dive into Deep Learning, section 7.2.1, "The Cross-Correlation Operation":
//! a `conv` layer with one input channel, one output channel and no bias
//! computes exactly D2L's `corr2d(X, K)`. We write the kernel `K` into the
//! layer's weight by its PyTorch name, `"0.weight"`, and run the 3x3 input of
//! figure 7.2.1 through it.
//!
//! Run with `cargo run -p models --example cross_correlation`.

use cnn_runtime::cnn_net;

cnn_net! {
    /// One 2x2 kernel sliding over a 3x3 image: D2L's `corr2d`.
    Corr2d: [1, 3, 3] => conv(1, 1, 2, bias = false)
}

/// `X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])`, row-major.
const X: [f32; 9] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
/// `K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])`.
const K: [f32; 4] = [0.0, 1.0, 2.0, 3.0];

/// `corr2d(X, K)` through the compiled net: the weight `[1, 1, 2, 2]` is `K`.
fn corr2d(x: &[f32; 9], k: &[f32; 4]) -> [f32; 4] {
    let mut net = Corr2d::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(k);
    net.forward(x)
}

/// A row-major matrix as nested brackets, like a printed tensor.
fn matrix(values: &[f32], cols: usize) -> String {
    let rows: Vec<String> = values
        .chunks(cols)
        .map(|row| {
            row.iter()
                .map(|v| format!("{v:>3}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    format!("[[{}]]", rows.join("],\n ["))
}

fn main() {
    println!("X =\n{}\n", matrix(&X, 3));
    println!("K =\n{}\n", matrix(&K, 2));
    println!("corr2d(X, K) =\n{}", matrix(&corr2d(&X, &K), 2));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D2L's `corr2d`, written as its loops: `Y[i, j] = (X[i:i+h, j:j+w] * K).sum()`.
    fn corr2d_loops(x: &[f32], (xh, xw): (usize, usize), k: &[f32], (kh, kw): (usize, usize)) -> Vec<f32> {
        let (yh, yw) = (xh - kh + 1, xw - kw + 1);
        let mut y = vec![0.0; yh * yw];
        for i in 0..yh {
            for j in 0..yw {
                for a in 0..kh {
                    for b in 0..kw {
                        y[i * yw + j] += x[(i + a) * xw + j + b] * k[a * kw + b];
                    }
                }
            }
        }
        y
    }

    #[test]
    fn prints_the_d2l_result() {
        assert_eq!(corr2d(&X, &K), [19.0, 25.0, 37.0, 43.0]);
    }

    #[test]
    fn agrees_with_the_loops_on_other_kernels() {
        for k in [
            [1.0, 0.0, 0.0, 0.0],
            [0.5, -1.0, 2.0, 0.25],
            [-3.0, 1.0, 1.0, -3.0],
        ] {
            assert_eq!(corr2d(&X, &k).to_vec(), corr2d_loops(&X, (3, 3), &k, (2, 2)));
        }
    }
}
