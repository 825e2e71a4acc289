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

pub mod int8 {
    //! int8 global average pooling, TFLite's MEAN over H and W, bit for bit
    //! as TensorFlow Lite Micro's reference kernel computes it for int8
    //! (`reduce_common.cc` -> `reference_ops::QuantizedMeanOrSum`):
    //!
    //! `s = sum_s x[i, c, s] - S * zp_in` (int32, `S = H * W`),
    //! `y[i, c] = saturate(mbqm(s, m', shift') + zp_out)`,
    //!
    //! where `(m, shift)` is the requantization `in_scale / out_scale`
    //! ([`Requant::rescale`]) and `(m', shift')` folds the division by `S`
    //! into it ([`mean_requant`]). `mbqm` is TFLite's
    //! [`multiply_by_quantized_multiplier`] (double rounding). No activation
    //! is fused (saturation to int8 only); the output scale is the
    //! converter's choice and usually differs from the input's.
    //!
    //! Layout as the float [`forward`](super::forward): `x` `[N, C, H, W]`
    //! (seen as `[N, C, S]`), `y` `[N, C]` (= `[N, C, 1, 1]`), int8.

    use super::check;
    use crate::quant::{multiply_by_quantized_multiplier, saturate_i8, Quant, Requant};

    /// TFLM's folding of the mean's `1 / count` into the requantization
    /// `r`, as `QuantizedMeanOrSum` does it when it runs:
    /// `k = min(floor(log2(count)), 32, 31 + r.shift)`,
    /// `multiplier = (r.multiplier << k) / count` (in `i64`, truncated),
    /// `shift = r.shift - k`. The fraction stays in `[2^29, 2^31)` (about
    /// `m * 2^k / count` with `2^k <= count`), so only a bit or two of
    /// precision is lost.
    ///
    /// # Panics
    ///
    /// If `count` is zero or does not fit in an `i64`.
    pub const fn mean_requant(r: Requant, count: usize) -> Requant {
        assert!(
            count > 0 && count as u64 <= i64::MAX as u64,
            "global_avgpool: bad element count"
        );
        let mut k = (count as u64).ilog2() as i32;
        if k > 32 {
            k = 32;
        }
        if k > 31 + r.shift {
            k = 31 + r.shift;
        }
        assert!(k >= 0, "global_avgpool: requantization shift below -31");
        Requant {
            multiplier: (((r.multiplier as i64) << k) / count as i64) as i32,
            shift: r.shift - k,
        }
    }

    /// TFLM's prepared int8 MEAN over `count` elements: the zero points
    /// and the requantization `in_scale / out_scale` with `1 / count` folded
    /// in ([`mean_requant`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MeanParams {
        /// Zero point of the input.
        pub input_zero_point: i32,
        /// Elements per mean, `H * W`.
        pub count: usize,
        /// `in_scale / (out_scale * count)`, as TFLM folds it.
        pub requant: Requant,
        /// Zero point of the output.
        pub output_zero_point: i32,
    }

    impl MeanParams {
        /// A placeholder before preparation (it pools no planes: `forward`
        /// refuses it), e.g. to fill an array that
        /// [`MeanParams::prepare`] then fills in a `const fn`.
        pub const ZERO: MeanParams = MeanParams {
            input_zero_point: 0,
            count: 0,
            requant: Requant::ZERO,
            output_zero_point: 0,
        };

        /// TFLM's preparation (`PrepareMeanOrSumHelper`:
        /// [`Requant::rescale`] of the scales) and the fold of `1 / count`
        /// its Eval does ([`mean_requant`]), for an input and output of the
        /// given quantizations.
        ///
        /// # Panics
        ///
        /// If `count` is zero.
        pub const fn prepare(input: Quant, output: Quant, count: usize) -> MeanParams {
            MeanParams {
                input_zero_point: input.zero_point,
                count,
                requant: mean_requant(Requant::rescale(input.scale, output.scale), count),
                output_zero_point: output.zero_point,
            }
        }

        /// [`MeanParams::prepare`], or `None` where it would panic or the
        /// rescale is out of int32 arithmetic's range: `count` zero, or
        /// `in_scale / out_scale` not finite, `2^30` or more, or below
        /// `2^-32`.
        pub const fn try_prepare(input: Quant, output: Quant, count: usize) -> Option<MeanParams> {
            let Some(r) = Requant::checked_rescale(input.scale, output.scale) else {
                return None;
            };
            if count == 0 || r.shift < -31 || r.multiplier == 0 {
                return None;
            }
            Some(Self::prepare(input, output, count))
        }
    }

    /// int8 mean over the `spatial` elements of each of the `n * channels`
    /// planes. Direct loops, no heap, no `std`.
    ///
    /// # Panics
    ///
    /// If `spatial == 0`, `spatial != p.count`,
    /// `x.len() != n * channels * spatial` or `y.len() != n * channels`; in
    /// debug builds, if the int32 sum of a plane could overflow
    /// (`spatial >= 2^24`).
    pub fn forward(channels: usize, spatial: usize, n: usize, x: &[i8], p: &MeanParams, y: &mut [i8]) {
        check(channels, spatial, n, x.len(), "x", y.len(), "y");
        assert_eq!(
            p.count, spatial,
            "global_avgpool: parameters prepared for {} elements, the planes have {spatial}",
            p.count
        );
        debug_assert!(spatial < 1 << 24, "global_avgpool: the int32 sum could overflow");
        let r = p.requant;
        // TFLM computes `zp * count` in int64 and narrows the difference.
        let offset = i64::from(p.input_zero_point) * spatial as i64;
        for (y_c, x_c) in y.iter_mut().zip(x.chunks_exact(spatial)) {
            let sum: i32 = x_c.iter().map(|&v| i32::from(v)).sum();
            let shifted = (i64::from(sum) - offset) as i32;
            let out = multiply_by_quantized_multiplier(shifted, r.multiplier, r.shift);
            *y_c = saturate_i8(out.wrapping_add(p.output_zero_point));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::ops::testing::Rng;
        use proptest::prelude::*;

        /// `x * m * 2^(shift - 31)` with TFLM's two roundings (ties up in
        /// the high multiply, away from zero in the shift), exactly in
        /// `i128`, for any shift.
        fn mbqm(x: i128, m: i32, shift: i32) -> i128 {
            let x = if shift > 0 { x << shift } else { x };
            let high = (x * i128::from(m) + (1 << 30)) >> 31;
            let e = if shift > 0 { 0 } else { shift.unsigned_abs() };
            let (q, r) = (high.abs() >> e, high.abs() & ((1i128 << e) - 1));
            let q = if e > 0 && 2 * r >= 1i128 << e { q + 1 } else { q };
            if high < 0 {
                -q
            } else {
                q
            }
        }

        /// Naive MEAN: the fold and the arithmetic written out in `i128`.
        fn reference(spatial: usize, x: &[i8], zp_in: i32, r: Requant, zp_out: i32) -> Vec<i8> {
            let count = spatial as i128;
            let k = (127 - count.leading_zeros() as i32).min(32).min(31 + r.shift);
            let m = ((i128::from(r.multiplier) << k) / count) as i32;
            x.chunks(spatial)
                .map(|plane| {
                    let sum: i128 = plane.iter().map(|&v| i128::from(v) - i128::from(zp_in)).sum();
                    let out = mbqm(sum, m, r.shift - k) + i128::from(zp_out);
                    out.clamp(-128, 127) as i8
                })
                .collect()
        }

        #[test]
        fn folds_the_count_as_tflm() {
            // residual_cat's MEAN over 7 x 7 (tests/fixtures/int8/residual_cat.json).
            let r = Requant::rescale(0.089_242_496, 0.097_864_12);
            assert_eq!(
                r,
                Requant {
                    multiplier: 1_958_294_804,
                    shift: 0
                }
            );
            assert_eq!(
                mean_requant(r, 49),
                Requant {
                    multiplier: 1_278_886_402,
                    shift: -5
                }
            );
            // A power of two divides exactly.
            assert_eq!(
                mean_requant(r, 64),
                Requant {
                    multiplier: r.multiplier,
                    shift: -6
                }
            );
            assert_eq!(mean_requant(r, 1), r);
            // The fold never shifts past 31 + shift: k = 2, not log2(16) = 4,
            // and the rest of 1 / 16 stays in the multiplier.
            let tiny = Requant {
                multiplier: 1 << 30,
                shift: -29,
            };
            assert_eq!(
                mean_requant(tiny, 16),
                Requant {
                    multiplier: 1 << 28,
                    shift: -31
                }
            );
        }

        /// [`forward`] of one example with parameters prepared from the
        /// quantizations `(scale, zero_point)` of input and output.
        fn mean(x: &[i8], channels: usize, q_in: (f32, i32), q_out: (f32, i32)) -> Vec<i8> {
            let spatial = x.len() / channels;
            let q = |(scale, zero_point)| Quant { scale, zero_point };
            let p = MeanParams::prepare(q(q_in), q(q_out), spatial);
            let mut y = vec![0i8; channels];
            forward(channels, spatial, 1, x, &p, &mut y);
            y
        }

        #[test]
        fn means_round_and_saturate() {
            // Same scale in and out: the mean of q, rounded.
            let x: [i8; 8] = [1, 2, 3, 4, -128, -128, -128, -127];
            // 2.5 -> 3 (ties up, then exact), -127.75 -> -128.
            assert_eq!(mean(&x, 2, (0.5, 0), (0.5, 0)), [3, -128]);
            // Zero points at the extremes: x - zp spans 0..255.
            assert_eq!(mean(&[127; 8], 2, (0.5, -128), (0.5, -128)), [127, 127]);
            assert_eq!(mean(&[-128; 8], 2, (0.5, 127), (0.5, 127)), [-128, -128]);
            // A smaller output scale saturates.
            assert_eq!(mean(&[127; 8], 2, (1.0, -128), (0.25, -128)), [127, 127]);
            assert_eq!(mean(&[-128; 8], 2, (1.0, 127), (0.25, 0)), [-128, -128]);
        }

        #[test]
        #[should_panic(expected = "prepared for 4 elements, the planes have 2")]
        fn parameters_must_fit_the_planes() {
            let q = Quant {
                scale: 1.0,
                zero_point: 0,
            };
            forward(2, 2, 1, &[0; 4], &MeanParams::prepare(q, q, 4), &mut [0; 2]);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn matches_reference_and_the_real_mean(
                channels in 1usize..=4, spatial in 1usize..=200, n in 1usize..=2,
                s_in in 1e-3f32..1.0, ratio in 0.05f32..20.0, zp_in: i8, zp_out: i8, seed: u64,
            ) {
                let s_out = s_in * ratio;
                let r = Requant::rescale(s_in, s_out);
                let p = MeanParams::prepare(
                    Quant { scale: s_in, zero_point: zp_in.into() },
                    Quant { scale: s_out, zero_point: zp_out.into() },
                    spatial,
                );
                let mut rng = Rng::new(seed);
                let x: Vec<i8> = (0..n * channels * spatial).map(|_| rng.next_u64() as i8).collect();
                let mut y = vec![0i8; n * channels];
                forward(channels, spatial, n, &x, &p, &mut y);
                prop_assert_eq!(&y, &reference(spatial, &x, zp_in.into(), r, zp_out.into()));
                for (plane, &q) in x.chunks(spatial).zip(&y) {
                    let mean = plane.iter().map(|&v| f64::from(i32::from(v) - i32::from(zp_in))).sum::<f64>()
                        / spatial as f64;
                    let ideal = mean * f64::from(s_in) / f64::from(s_out) + f64::from(zp_out);
                    let ideal = ideal.clamp(-128.0, 127.0);
                    prop_assert!((f64::from(q) - ideal).abs() <= 1.0, "{} vs {}", q, ideal);
                }
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
