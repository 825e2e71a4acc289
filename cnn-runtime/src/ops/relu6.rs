//! ReLU capped at 6, PyTorch `nn.ReLU6` / `F.relu6` (MobileNet's
//! activation), elementwise on any layout, in place:
//!
//! `y = min(max(x, 0), 6)`, and backward `dL/dx = dL/dy * [0 < y < 6]`
//! (zero at both kinks, as PyTorch's `hardtanh_backward`).
//!
//! NaN stays NaN in the forward pass, as in PyTorch. Both passes are
//! compiled for the CPU's widest vectors (`ops/simd.rs`).

use super::simd::multiversion;

multiversion! {
    /// `x <- min(max(x, 0), 6)` in place.
    pub fn forward(x: &mut [f32]) => forward_body
}

#[inline(always)]
fn forward_body<const FMA: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        // `f32::clamp` keeps NaN as NaN, as PyTorch does.
        *v = v.clamp(0.0, 6.0);
    }
}

/// `dy <- dy * [0 < y < 6]` in place, where `y` is the forward *output*;
/// `dy` becomes `dL/dx`.
///
/// # Panics
///
/// If `y.len() != dy.len()`.
#[inline]
pub fn backward(y: &[f32], dy: &mut [f32]) {
    assert_eq!(
        y.len(),
        dy.len(),
        "relu6: y has {} elements but dy has {}",
        y.len(),
        dy.len()
    );
    backward_any(y, dy);
}

multiversion! {
    /// [`backward`] after its check.
    fn backward_any(y: &[f32], dy: &mut [f32]) => backward_body
}

#[inline(always)]
fn backward_body<const FMA: bool>(y: &[f32], dy: &mut [f32]) {
    for (d, &v) in dy.iter_mut().zip(y) {
        if !(v > 0.0 && v < 6.0) {
            *d = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| v.clamp(0.0, 6.0)).collect()
    }

    #[test]
    fn hand_computed() {
        let mut x = [-2.0, -0.0, 0.0, 0.5, 5.5, 6.0, 7.0];
        forward(&mut x);
        assert_eq!(x, [0.0, 0.0, 0.0, 0.5, 5.5, 6.0, 6.0]);
        let mut dy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        backward(&x, &mut dy);
        assert_eq!(dy, [0.0, 0.0, 0.0, 4.0, 5.0, 0.0, 0.0]);
        let mut nan = [f32::NAN];
        forward(&mut nan);
        assert!(nan[0].is_nan());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(len in 1usize..200, seed: u64) {
            let mut rng = Rng::new(seed);
            // Distinct values 0.01 apart, scaled to cover both kinks
            // (0 and 6), none within 1e-3 of either.
            let x: Vec<f32> = rng
                .distinct(len)
                .iter()
                .map(|v| v * 8.0 + 3.0)
                .filter(|v| (v - 6.0).abs() > 2e-3 && v.abs() > 2e-3)
                .collect();
            let expected = reference(&to_f64(&x));
            let mut y = x.clone();
            forward(&mut y);
            prop_assert!(y.iter().zip(&expected).all(|(&a, &b)| f64::from(a) == b));
            let r = rng.vec(x.len());
            let mut dx = r.clone();
            backward(&y, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-3, &mut rng, 32, |x| functional(&r, &reference(x)));
            assert_grad("dx", &dx, &fd, 1e-6);
        }
    }
}
