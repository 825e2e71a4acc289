//! Rectified linear unit, PyTorch `nn.ReLU` / `torch.relu`, elementwise on
//! any layout, in place:
//!
//! `y = max(x, 0)`, and backward `dL/dx = dL/dy * [y > 0]`.
//!
//! NaN stays NaN in the forward pass, as in PyTorch. Both passes are
//! compiled for the CPU's widest vectors (`ops/simd.rs`).

use super::simd::multiversion;

/// `x <- max(x, 0)` in place.
#[inline]
pub fn forward(x: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if super::simd::level() == super::simd::Level::Avx2Fma {
        // SAFETY: `level()` detected AVX2 on this CPU.
        return unsafe { avx2::forward(x) };
    }
    forward_any(x);
}

multiversion! {
    /// [`forward`] on AVX-512 or the baseline.
    fn forward_any(x: &mut [f32]) => forward_body
}

#[inline(always)]
fn forward_body<const FMA: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        // Not `v.max(0.0)`, which would turn NaN into 0.
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// `dy <- dy * [y > 0]` in place, where `y` is the forward *output*; `dy`
/// becomes `dL/dx`.
///
/// # Panics
///
/// If `y.len() != dy.len()`.
#[inline]
pub fn backward(y: &[f32], dy: &mut [f32]) {
    assert_eq!(
        y.len(),
        dy.len(),
        "relu: y has {} elements but dy has {}",
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
        if v <= 0.0 {
            *d = 0.0;
        }
    }
}

/// The AVX2 copies of both passes, every float stored
/// ([`crate::ops::simd::x86::map_avx2`]).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod avx2 {
    use crate::ops::simd::x86::{keep_avx2, map_avx2};
    use core::arch::x86_64::*;

    /// [`super::forward`]: `vmaxps` returns its second operand, `x`, when
    /// either is NaN or both are zeros, so NaN and -0.0 stay as in
    /// [`super::forward_body`].
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward(x: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2.
        unsafe { map_avx2(x, |v| _mm256_max_ps(_mm256_setzero_ps(), v)) };
    }

    /// [`super::backward`] after its check: `dy` kept where `y <= 0` is
    /// false (NaN keeps it, as in [`super::backward_body`]), else +0.0.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2, and `y.len() == dy.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward(y: &[f32], dy: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2 and equal lengths.
        unsafe { keep_avx2(y, dy, |y| _mm256_cmp_ps::<_CMP_NLE_UQ>(y, _mm256_setzero_ps())) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
    }

    #[test]
    fn hand_computed() {
        let mut x = [-2.0, -0.0, 0.0, 0.5, 3.0];
        forward(&mut x);
        assert_eq!(x, [0.0, 0.0, 0.0, 0.5, 3.0]);
        let mut dy = [1.0, 2.0, 3.0, 4.0, 5.0];
        backward(&x, &mut dy);
        assert_eq!(dy, [0.0, 0.0, 0.0, 4.0, 5.0]);
        let mut nan = [f32::NAN];
        forward(&mut nan);
        assert!(nan[0].is_nan());
    }

    /// The AVX2 copies give the portable bodies' bits, NaN, infinities
    /// and signed zeros included, for every length to three vectors past a
    /// tail.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[test]
    fn avx2_passes_are_the_portable_bodies_bit_for_bit() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let special = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-40,
            -1e-40,
        ];
        let mut rng = Rng::new(7);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for len in 0..=27 {
            let x = rng.with_specials(len, 1.0, 0.0, &special);
            let (mut fast, mut slow) = (x.clone(), x.clone());
            // SAFETY: AVX2 was detected above.
            unsafe { avx2::forward(&mut fast) };
            forward_body::<false>(&mut slow);
            assert_eq!(bits(&fast), bits(&slow), "forward, {len} elements");
            let dy: Vec<f32> = x.iter().rev().copied().collect();
            let (mut fast, mut slow) = (dy.clone(), dy);
            // SAFETY: AVX2 was detected above; the lengths are equal.
            unsafe { avx2::backward(&x, &mut fast) };
            backward_body::<false>(&x, &mut slow);
            assert_eq!(bits(&fast), bits(&slow), "backward, {len} elements");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(len in 1usize..200, seed: u64) {
            let mut rng = Rng::new(seed);
            // Distinct values 0.01 apart, none within 1e-3 of the kink.
            let x = rng.distinct(len);
            let expected = reference(&to_f64(&x));
            let mut y = x.clone();
            forward(&mut y);
            prop_assert!(y.iter().zip(&expected).all(|(&a, &b)| f64::from(a) == b));
            let r = rng.vec(len);
            let mut dx = r.clone();
            backward(&y, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-3, &mut rng, 32, |x| functional(&r, &reference(x)));
            assert_grad("dx", &dx, &fd, 1e-6);
        }
    }
}
