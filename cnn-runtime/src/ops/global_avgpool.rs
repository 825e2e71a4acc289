//! Global average pooling, PyTorch `nn.AdaptiveAvgPool2d(1)` followed by a
//! flatten:
//!
//! `y[i, c] = (1 / S) sum_s x[i, c, s]`, with `S = H * W` (`spatial`).
//!
//! Layout: `x` is `[N, C, H, W]` row-major (seen as `[N, C, S]`), `y` is
//! `[N, C]`. Backward: `dx[i, c, s] = dy[i, c] / S`, overwritten.

use super::sum;

#[inline(always)]
#[track_caller]
fn check(channels: usize, spatial: usize, n: usize, x: usize, x_name: &str, y: usize, y_name: &str) {
    assert!(spatial > 0, "global_avgpool: spatial size must be positive");
    assert_eq!(
        x,
        n * channels * spatial,
        "global_avgpool: {x_name} has {x} elements, expected n * C * H * W = {n} * {channels} * {spatial}"
    );
    assert_eq!(
        y,
        n * channels,
        "global_avgpool: {y_name} has {y} elements, expected n * C = {n} * {channels}"
    );
}

/// Mean over the `spatial` elements of each of the `n * channels` planes.
/// Allocates nothing.
///
/// # Panics
///
/// If `spatial == 0`, `x.len() != n * channels * spatial` or
/// `y.len() != n * channels`.
#[inline]
pub fn forward(channels: usize, spatial: usize, n: usize, x: &[f32], y: &mut [f32]) {
    check(channels, spatial, n, x.len(), "x", y.len(), "y");
    for (y_c, x_c) in y.iter_mut().zip(x.chunks_exact(spatial)) {
        *y_c = sum(x_c) / spatial as f32;
    }
}

/// Backward: every element of a plane gets `dy / spatial`; `dx` is
/// overwritten. Allocates nothing.
///
/// # Panics
///
/// If `spatial == 0`, `dx.len() != n * channels * spatial` or
/// `dy.len() != n * channels`.
#[inline]
pub fn backward(channels: usize, spatial: usize, n: usize, dy: &[f32], dx: &mut [f32]) {
    check(channels, spatial, n, dx.len(), "dx", dy.len(), "dy");
    for (&d, dx_c) in dy.iter().zip(dx.chunks_exact_mut(spatial)) {
        dx_c.fill(d / spatial as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(channels: usize, spatial: usize, n: usize, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; n * channels];
        for (p, y_p) in y.iter_mut().enumerate() {
            for s in 0..spatial {
                *y_p += x[p * spatial + s];
            }
            *y_p /= spatial as f64;
        }
        y
    }

    #[test]
    fn hand_computed() {
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let mut y = [0.0; 2];
        forward(2, 4, 1, &x, &mut y);
        assert_eq!(y, [1.5, 5.5]);
        let mut dx = [f32::NAN; 8];
        backward(2, 4, 1, &[4.0, -8.0], &mut dx);
        assert_eq!(dx, [1.0, 1.0, 1.0, 1.0, -2.0, -2.0, -2.0, -2.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(channels in 1usize..=5, spatial in 1usize..=40,
                                                    n in 1usize..=3, seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * channels * spatial);
            let r = rng.vec(n * channels);
            let mut y = vec![f32::NAN; r.len()];
            forward(channels, spatial, n, &x, &mut y);
            assert_close("y", &y, &reference(channels, spatial, n, &to_f64(&x)), 1e-6);
            let mut dx = vec![f32::NAN; x.len()];
            backward(channels, spatial, n, &r, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-3, &mut rng, 32, |x| {
                functional(&r, &reference(channels, spatial, n, x))
            });
            assert_grad("dx", &dx, &fd, 1e-5);
        }
    }
}
