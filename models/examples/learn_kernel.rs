//! Dive into Deep Learning, section 7.2.4, "Learning a Kernel": start a
//! `conv(1, 1, (1, 2), bias = false)` layer from random weights and let
//! gradient descent find the edge detector `[1, -1]` of section 7.2.3 from
//! the image `X` and its edge map `Y` alone.
//!
//! D2L minimises the *sum* of squared errors over the 6x7 = 42 outputs with
//! learning rate 3e-2. Our `Target::Values` loss is PyTorch's
//! `nn.MSELoss()`, the *mean* over those 42 outputs, so its gradient is the
//! sum's divided by 42. Stepping by `42 * 3e-2` times the mean's gradient is
//! therefore exactly D2L's step, and `42 * mean` is exactly the loss D2L
//! prints. Only the random starting kernel differs from D2L's run.
//!
//! Run with `cargo run -p models --example learn_kernel`.

use cnn_runtime::{cnn_net, Target};

cnn_net! {
    /// One 1x2 kernel over the 6x8 image, as D2L's `nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)`.
    EdgeNet: [1, 6, 8] => conv(1, 1, (1, 2), bias = false)
}

/// D2L's `lr = 3e-2`, for the sum of squared errors.
const LR: f32 = 3e-2;
/// D2L's `for i in range(10)`.
const ITERATIONS: usize = 10;
/// Outputs the mean-squared-error loss averages over: sum = mean * OUTPUTS.
const OUTPUTS: f32 = EdgeNet::OUTPUT_LEN as f32;

/// `X = torch.ones((6, 8)); X[:, 2:6] = 0`.
fn image() -> [f32; 48] {
    let mut x = [1.0; 48];
    for row in x.chunks_mut(8) {
        row[2..6].fill(0.0);
    }
    x
}

/// `Y = corr2d(X, K)` with the true kernel `K = [[1, -1]]`: the target.
fn edge_map(x: &[f32; 48]) -> [f32; 42] {
    let mut net = EdgeNet::zeroed();
    net.tensor_mut("0.weight")
        .expect("conv 0 has a weight")
        .copy_from_slice(&[1.0, -1.0]);
    net.forward(x)
}

/// What one training run saw.
struct Run {
    /// The random kernel before training.
    initial: [f32; 2],
    /// D2L's `l.sum()` of each iteration, computed before that iteration's update.
    losses: Vec<f32>,
    /// The kernel after the last update.
    learned: [f32; 2],
}

fn kernel(net: &EdgeNet) -> [f32; 2] {
    let w = net.tensor("0.weight").expect("conv 0 has a weight");
    [w[0], w[1]]
}

/// D2L's training loop, from the PyTorch-style random kernel of `seed`.
fn learn(seed: u64) -> Run {
    let x = image();
    let y = edge_map(&x);
    let mut net = EdgeNet::init(seed);
    let mut grads = EdgeNetGrads::zeroed();
    let initial = kernel(&net);
    let mut losses = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let mean = net.loss_and_grad_target(&x, Target::Values(&y), &mut grads, 0);
        losses.push(mean * OUTPUTS);
        // conv2d.weight.data[:] -= lr * conv2d.weight.grad, with the grad of the sum.
        let dw = grads.tensor("0.weight").expect("conv 0 has a weight");
        let w = net.tensor_mut("0.weight").expect("conv 0 has a weight");
        for (w, g) in w.iter_mut().zip(dw) {
            *w -= LR * (OUTPUTS * g);
        }
    }
    Run {
        initial,
        losses,
        learned: kernel(&net),
    }
}

fn main() {
    let run = learn(0);
    println!(
        "kernel before training: [[{:.4}, {:.4}]]",
        run.initial[0], run.initial[1]
    );
    for (i, loss) in run.losses.iter().enumerate() {
        if (i + 1) % 2 == 0 {
            println!("epoch {}, loss {loss:.3}", i + 1);
        }
    }
    let [a, b] = run.learned;
    println!("learned kernel: [[{a:.4}, {b:.4}]]  (the true kernel is [[1, -1]])");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D2L's loop written out by hand: `Y_hat` by loops, the gradient of
    /// `sum((Y_hat - Y)^2)` by the chain rule, and the update with lr 3e-2.
    fn learn_by_hand(initial: [f32; 2]) -> (Vec<f32>, [f32; 2]) {
        let x = image();
        let y = edge_map(&x);
        let mut w = initial;
        let mut losses = Vec::new();
        for _ in 0..ITERATIONS {
            let (mut loss, mut g) = (0.0, [0.0f32; 2]);
            for i in 0..6 {
                for j in 0..7 {
                    let (x0, x1) = (x[i * 8 + j], x[i * 8 + j + 1]);
                    let err = w[0] * x0 + w[1] * x1 - y[i * 7 + j];
                    loss += err * err;
                    g[0] += 2.0 * err * x0;
                    g[1] += 2.0 * err * x1;
                }
            }
            losses.push(loss);
            w = [w[0] - LR * g[0], w[1] - LR * g[1]];
        }
        (losses, w)
    }

    #[test]
    fn follows_d2l_sum_of_squares_trajectory() {
        for seed in 0..8 {
            let run = learn(seed);
            let (losses, learned) = learn_by_hand(run.initial);
            for (ours, d2l) in run.losses.iter().zip(&losses) {
                assert!(
                    (ours - d2l).abs() <= 1e-4 * d2l.max(1.0),
                    "seed {seed}: loss {ours} vs {d2l}"
                );
            }
            for (ours, d2l) in run.learned.iter().zip(learned) {
                assert!((ours - d2l).abs() < 1e-5, "seed {seed}: kernel {ours} vs {d2l}");
            }
        }
    }

    #[test]
    fn learns_the_edge_detector_from_any_start() {
        for seed in 0..64 {
            let run = learn(seed);
            let [a, b] = run.learned;
            assert!(
                (a - 1.0).abs() < 0.1 && (b + 1.0).abs() < 0.1,
                "seed {seed}: learned [{a}, {b}]"
            );
            assert!(
                run.losses[9] < run.losses[1],
                "seed {seed}: loss did not fall: {:?}",
                run.losses
            );
        }
    }
}
