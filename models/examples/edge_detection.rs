//! Dive into Deep Learning, section 7.2.3, "Object Edge Detection in Images":
//! a 1x2 kernel `[1, -1]` finds where a 6x8 image changes from white (1) to
//! black (0) and back. The output is 1 at the left edge, -1 at the right
//! edge and 0 elsewhere; on the transposed image, whose edges are horizontal,
//! the same kernel sees nothing.
//!
//! Run with `cargo run -p models --example edge_detection`.

use cnn_runtime::cnn_net;

cnn_net! {
    /// The kernel `[1, -1]` over the 6x8 image: output 6x7.
    EdgeNet: [1, 6, 8] => conv(1, 1, (1, 2), bias = false);

    /// The same kernel over the transposed 8x6 image: output 8x5.
    EdgeNetT: [1, 8, 6] => conv(1, 1, (1, 2), bias = false)
}

/// `K = torch.tensor([[1.0, -1.0]])`.
const K: [f32; 2] = [1.0, -1.0];

/// `X = torch.ones((6, 8)); X[:, 2:6] = 0`.
fn image() -> [f32; 48] {
    let mut x = [1.0; 48];
    for row in x.chunks_mut(8) {
        row[2..6].fill(0.0);
    }
    x
}

/// `X.t()`: the 8x6 transpose of a 6x8 image.
fn transpose(x: &[f32; 48]) -> [f32; 48] {
    let mut t = [0.0; 48];
    for i in 0..6 {
        for j in 0..8 {
            t[j * 6 + i] = x[i * 8 + j];
        }
    }
    t
}

/// `corr2d(X, K)` on the 6x8 image.
fn edges(x: &[f32; 48]) -> [f32; 42] {
    let mut net = EdgeNet::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(&K);
    net.forward(x)
}

/// `corr2d(X.t(), K)` on the 8x6 transposed image.
fn edges_transposed(xt: &[f32; 48]) -> [f32; 40] {
    let mut net = EdgeNetT::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(&K);
    net.forward(xt)
}

/// A row-major matrix as nested brackets, like a printed tensor.
fn matrix(values: &[f32], cols: usize) -> String {
    let rows: Vec<String> = values
        .chunks(cols)
        .map(|row| {
            row.iter()
                .map(|v| format!("{v:>2}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    format!("[[{}]]", rows.join("],\n ["))
}

fn main() {
    let x = image();
    println!("X (6x8) =\n{}\n", matrix(&x, 8));
    println!("K = {}\n", matrix(&K, 2));
    println!("Y = corr2d(X, K) (6x7) =\n{}\n", matrix(&edges(&x), 7));
    println!(
        "corr2d(X.t(), K) (8x5) =\n{}",
        matrix(&edges_transposed(&transpose(&x)), 5)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_vertical_edges() {
        let y = edges(&image());
        assert_eq!(EdgeNet::LAYERS[0].output_shape, [1, 6, 7]);
        for row in y.chunks(7) {
            assert_eq!(row, [0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
        }
    }

    #[test]
    fn sees_nothing_on_the_transposed_image() {
        assert_eq!(EdgeNetT::LAYERS[0].output_shape, [1, 8, 5]);
        assert_eq!(edges_transposed(&transpose(&image())), [0.0; 40]);
    }
}
