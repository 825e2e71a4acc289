//! Global max pooling, PyTorch `nn.AdaptiveMaxPool2d(1)` followed by a
//! flatten:
//!
//! `y[i, c] = max_s x[i, c, s]`, with `S = H * W` (`spatial`).
//!
//! Layout: `x` is `[N, C, H, W]` row-major (seen as `[N, C, S]`), `y` is
//! `[N, C]`. NaN propagates. Backward sends `dy[i, c]` to the arg-max of the
//! plane, recomputed from `x` (the first maximum wins ties); every other
//! element of `dx` is zero (overwritten).

#[inline(always)]
#[track_caller]
fn check(channels: usize, spatial: usize, n: usize, x: usize, y: usize, y_name: &str) {
    assert!(spatial > 0, "global_maxpool: spatial size must be positive");
    assert_eq!(
        x,
        n * channels * spatial,
        "global_maxpool: x has {x} elements, expected n * C * H * W = {n} * {channels} * {spatial}"
    );
    assert_eq!(
        y,
        n * channels,
        "global_maxpool: {y_name} has {y} elements, expected n * C = {n} * {channels}"
    );
}

/// Index of the maximum of a non-empty plane: the first one on ties, the
/// last NaN if any (PyTorch's `val > max || isnan(val)` scan).
#[inline(always)]
fn arg_max(plane: &[f32]) -> usize {
    let mut at = 0;
    let mut best = plane[0];
    for (s, &v) in plane.iter().enumerate().skip(1) {
        if v > best || v.is_nan() {
            best = v;
            at = s;
        }
    }
    at
}

/// Maximum over the `spatial` elements of each of the `n * channels`
/// planes. Allocates nothing.
///
/// # Panics
///
/// If `spatial == 0`, `x.len() != n * channels * spatial` or
/// `y.len() != n * channels`.
#[inline]
pub fn forward(channels: usize, spatial: usize, n: usize, x: &[f32], y: &mut [f32]) {
    check(channels, spatial, n, x.len(), y.len(), "y");
    for (y_c, x_c) in y.iter_mut().zip(x.chunks_exact(spatial)) {
        *y_c = x_c[arg_max(x_c)];
    }
}

/// Backward: `dx` is overwritten with zeros except `dy` at the arg-max of
/// each plane of `x`. Allocates nothing.
///
/// # Panics
///
/// If `spatial == 0`, `x` or `dx` does not have `n * channels * spatial`
/// elements, or `dy` does not have `n * channels`.
#[inline]
pub fn backward(channels: usize, spatial: usize, n: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    check(channels, spatial, n, x.len(), dy.len(), "dy");
    assert_eq!(
        dx.len(),
        x.len(),
        "global_maxpool: dx has {} elements, expected n * C * H * W = {}",
        dx.len(),
        x.len()
    );
    for ((&d, x_c), dx_c) in dy
        .iter()
        .zip(x.chunks_exact(spatial))
        .zip(dx.chunks_exact_mut(spatial))
    {
        dx_c.fill(0.0);
        dx_c[arg_max(x_c)] = d;
    }
}

pub mod int8 {
    //! int8 global max pooling, TFLite's REDUCE_MAX over H and W, bit for
    //! bit as TensorFlow Lite Micro's reference kernel
    //! (`reduce_common.cc`, `ReduceGeneric` from `-128` with `in > current`)
    //! computes it:
    //!
    //! `y[i, c] = max_s x[i, c, s]`.
    //!
    //! TFLM's int8 REDUCE_MAX requires the output to have the input's scale
    //! and zero point (its Eval fails otherwise; the converter ties them), so
    //! no value is requantized, and no activation is fused.
    //!
    //! Layout as the float [`forward`](super::forward): `x` `[N, C, H, W]`
    //! (seen as `[N, C, S]`), `y` `[N, C]` (= `[N, C, 1, 1]`), int8.

    use super::check;

    /// int8 maximum over the `spatial` elements of each of the
    /// `n * channels` planes. Direct loops, no heap, no `std`.
    ///
    /// # Panics
    ///
    /// If `spatial == 0`, `x.len() != n * channels * spatial` or
    /// `y.len() != n * channels`.
    pub fn forward(channels: usize, spatial: usize, n: usize, x: &[i8], y: &mut [i8]) {
        check(channels, spatial, n, x.len(), y.len(), "y");
        for (y_c, x_c) in y.iter_mut().zip(x.chunks_exact(spatial)) {
            let mut m = i8::MIN;
            for &v in x_c {
                if v > m {
                    m = v;
                }
            }
            *y_c = m;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::ops::testing::Rng;
        use proptest::prelude::*;

        #[test]
        fn hand_computed() {
            let x: [i8; 9] = [-128, -128, -128, 5, -7, 127, 0, -1, -2];
            let mut y = [0i8; 3];
            forward(3, 3, 1, &x, &mut y);
            assert_eq!(y, [-128, 127, 0]);
        }

        #[test]
        #[should_panic(expected = "global_maxpool: y has 2 elements")]
        fn wrong_output_len_panics() {
            forward(3, 3, 1, &[0; 9], &mut [0; 2]);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn matches_reference(channels in 1usize..=4, spatial in 1usize..=60, n in 1usize..=3, seed: u64) {
                let mut rng = Rng::new(seed);
                let x: Vec<i8> = (0..n * channels * spatial).map(|_| rng.next_u64() as i8).collect();
                let mut y = vec![0i8; n * channels];
                forward(channels, spatial, n, &x, &mut y);
                let expected: Vec<i8> = x.chunks(spatial).map(|p| *p.iter().max().unwrap()).collect();
                prop_assert_eq!(y, expected);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(channels: usize, spatial: usize, n: usize, x: &[f64]) -> Vec<f64> {
        (0..n * channels)
            .map(|p| {
                x[p * spatial..(p + 1) * spatial]
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    }

    #[test]
    fn hand_computed_with_tie() {
        let x = [1.0, 3.0, 3.0, 2.0, -5.0, -4.0, -6.0, -4.5];
        let mut y = [0.0; 2];
        forward(2, 4, 1, &x, &mut y);
        assert_eq!(y, [3.0, -4.0]);
        let mut dx = [f32::NAN; 8];
        backward(2, 4, 1, &x, &[7.0, 9.0], &mut dx);
        assert_eq!(dx, [0.0, 7.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0]);
    }

    #[test]
    fn nan_propagates() {
        let mut y = [0.0];
        forward(1, 3, 1, &[1.0, f32::NAN, 2.0], &mut y);
        assert!(y[0].is_nan());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(channels in 1usize..=5, spatial in 1usize..=40,
                                                    n in 1usize..=3, seed: u64) {
            let mut rng = Rng::new(seed);
            // Distinct values: a 1e-3 step never changes an arg-max.
            let x = rng.distinct(n * channels * spatial);
            let r = rng.vec(n * channels);
            let mut y = vec![f32::NAN; r.len()];
            forward(channels, spatial, n, &x, &mut y);
            assert_close("y", &y, &reference(channels, spatial, n, &to_f64(&x)), 0.0);
            let mut dx = vec![f32::NAN; x.len()];
            backward(channels, spatial, n, &x, &r, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-3, &mut rng, 32, |x| {
                functional(&r, &reference(channels, spatial, n, x))
            });
            assert_grad("dx", &dx, &fd, 1e-5);
        }
    }
}
