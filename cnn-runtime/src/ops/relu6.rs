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
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if super::simd::level() == super::simd::Level::Avx2Fma {
        // SAFETY: `level()` detected AVX2 on this CPU; the lengths are equal.
        return unsafe { avx2::backward(y, dy) };
    }
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

/// The AVX2 copy of the backward pass, every float stored
/// ([`crate::ops::simd::x86::map_avx2`]). The forward pass's clamp stores
/// every float already.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod avx2 {
    use crate::ops::simd::x86::keep_avx2;
    use core::arch::x86_64::*;

    /// [`super::backward`] after its check: `dy` kept where `0 < y < 6`
    /// (ordered: NaN cuts it, as in [`super::backward_body`]), else +0.0.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2, and `y.len() == dy.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward(y: &[f32], dy: &mut [f32]) {
        let six = _mm256_set1_ps(6.0);
        // SAFETY: the caller guarantees AVX2 and equal lengths.
        unsafe {
            keep_avx2(y, dy, |y| {
                let above = _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps());
                _mm256_and_ps(above, _mm256_cmp_ps::<_CMP_LT_OQ>(y, six))
            })
        };
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

    /// The AVX2 backward pass gives the portable body's bits, at the kinks,
    /// NaN, infinities and signed zeros too, for every length to three
    /// vectors past a tail.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[test]
    fn avx2_backward_is_the_portable_body_bit_for_bit() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let special = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            6.0,
            5.999_999_5,
            6.000_000_5,
        ];
        let mut rng = Rng::new(7);
        for len in 0..=27 {
            let y = rng.with_specials(len, 4.0, 3.0, &special);
            let dy: Vec<f32> = y.iter().rev().map(|v| v - 1.0).collect();
            let (mut fast, mut slow) = (dy.clone(), dy);
            // SAFETY: AVX2 was detected above; the lengths are equal.
            unsafe { avx2::backward(&y, &mut fast) };
            backward_body::<false>(&y, &mut slow);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "{len} elements");
        }
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
