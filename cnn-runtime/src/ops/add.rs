//! The sum of `add { .. | .. }` branches, PyTorch's `Y += X` in D2L's
//! `Residual` (section 8.6): element by element, on any layout.
//!
//! Forward: the first branch's output is copied into the sum (or the sum
//! reuses its buffer) and every other one is added with [`accumulate`].
//! Backward: each branch receives `dL/dy` unchanged, copied or, for a
//! value read by several nodes, added to the gradient it already has.

use super::simd::multiversion;

/// `y <- y + x`, element by element.
///
/// # Panics
///
/// If `x.len() != y.len()`.
#[inline]
pub fn accumulate(x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "add: x has {} elements but y has {}",
        x.len(),
        y.len()
    );
    accumulate_any(x, y);
}

multiversion! {
    /// [`accumulate`] after its check.
    fn accumulate_any(x: &[f32], y: &mut [f32]) => accumulate_body
}

#[inline(always)]
fn accumulate_body<const FMA: bool>(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

pub mod int8 {
    //! int8 addition of two tensors of the same shape, TFLite's ADD, bit for
    //! bit as TensorFlow Lite Micro's reference kernel
    //! (`reference_integer_ops::AddElementwise`, `AddFunc`) computes it:
    //!
    //! `a = (x1 - zp1) * 2^20`, `b = (x2 - zp2) * 2^20`,
    //! `s = mbqm(a, m1) + mbqm(b, m2)`,
    //! `y = clamp(mbqm(s, m_out) + zp_out)`,
    //!
    //! with `mbqm` TFLite's [`multiply_by_quantized_multiplier`] (double
    //! rounding) and the multipliers of [`AddParams::prepare`]: both inputs
    //! are brought to a common scale `2 * max(scale1, scale2) / 2^20` (each
    //! multiplier at most 1/2, the 20 bits of headroom keep the rounding
    //! small), added exactly in int32, then rescaled to the output. The
    //! inputs may have different scales and zero points (a residual branch
    //! and the identity usually do).
    //!
    //! Element by element, on any layout (the two tensors and the output have
    //! the same shape: no broadcasting). `clamp` is the fused activation's
    //! range ([`Clamp::FULL`] for none).

    use crate::quant::{multiply_by_quantized_multiplier, Activation, Clamp, Quant, Requant};

    /// TFLM's prepared int8 ADD (`OpDataAdd`): offsets, the shared left
    /// shift, the three multipliers and the output clamp.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct AddParams {
        /// `-zero_point` of the first input.
        pub input1_offset: i32,
        /// `-zero_point` of the second input.
        pub input2_offset: i32,
        /// Bits of headroom both inputs are shifted left by
        /// ([`AddParams::LEFT_SHIFT`]).
        pub left_shift: u32,
        /// `scale1 / (2 * max(scale1, scale2))`, at most 1/2.
        pub input1: Requant,
        /// `scale2 / (2 * max(scale1, scale2))`, at most 1/2.
        pub input2: Requant,
        /// `2 * max(scale1, scale2) / (2^20 * output_scale)`.
        pub output: Requant,
        /// The output's zero point.
        pub output_offset: i32,
        /// The fused activation's output range.
        pub clamp: Clamp,
    }

    impl AddParams {
        /// TFLM's left shift for int8 inputs (15 for int16).
        pub const LEFT_SHIFT: u32 = 20;

        /// A placeholder before preparation (zero multipliers: every output
        /// is 0), e.g. to fill an array that [`AddParams::prepare`] then
        /// fills in a `const fn`.
        pub const ZERO: AddParams = AddParams {
            input1_offset: 0,
            input2_offset: 0,
            left_shift: Self::LEFT_SHIFT,
            input1: Requant::ZERO,
            input2: Requant::ZERO,
            output: Requant::ZERO,
            output_offset: 0,
            clamp: Clamp::FULL,
        };

        /// TFLM's preparation (`CalculateOpDataAdd`) for inputs and output of
        /// the given quantizations and a fused activation: with
        /// `t = 2 * max(scale1, scale2)` in `f64` (the larger `f32` scale
        /// widened), the multipliers of `scale1 / t`, `scale2 / t` and
        /// `t / (2^20 * output_scale)`, each TFLite's `QuantizeMultiplier`
        /// ([`Requant::from_real`]); the clamp is
        /// [`Clamp::for_activation`] of the output.
        ///
        /// # Panics
        ///
        /// If a scale is not positive and finite, or the output multiplier
        /// is not below one (TFLM's `QuantizeMultiplierSmallerThanOneExp`
        /// fails there too: an output scale below about `2^-19` of the
        /// inputs').
        pub const fn prepare(input1: Quant, input2: Quant, output: Quant, act: Activation) -> AddParams {
            match Self::try_prepare(input1, input2, output, act) {
                Some(p) => p,
                None => panic!(
                    "add: the scales must be positive and finite, and the output scale at least 2^-19 of the inputs'"
                ),
            }
        }

        /// [`AddParams::prepare`], or `None` where it panics.
        pub const fn try_prepare(
            input1: Quant,
            input2: Quant,
            output: Quant,
            act: Activation,
        ) -> Option<AddParams> {
            let (s1, s2, so) = (input1.scale, input2.scale, output.scale);
            if !(s1.is_finite() && s1 > 0.0 && s2.is_finite() && s2 > 0.0 && so.is_finite() && so > 0.0) {
                return None;
            }
            let twice_max_input_scale = 2.0 * (if s1 > s2 { s1 } else { s2 }) as f64;
            let real_output = twice_max_input_scale / ((1u32 << Self::LEFT_SHIFT) as f64 * so as f64);
            if real_output >= 1.0 {
                return None;
            }
            let output_requant = Requant::from_real(real_output);
            if output_requant.multiplier == 0 {
                // Below 2^-32: TFLM would still run, with a zero multiplier,
                // but every output would be the zero point; refuse it.
                return None;
            }
            Some(AddParams {
                input1_offset: -input1.zero_point,
                input2_offset: -input2.zero_point,
                left_shift: Self::LEFT_SHIFT,
                input1: Requant::from_real(s1 as f64 / twice_max_input_scale),
                input2: Requant::from_real(s2 as f64 / twice_max_input_scale),
                output: output_requant,
                output_offset: output.zero_point,
                clamp: Clamp::for_activation(act, so, output.zero_point),
            })
        }

        /// One output: TFLM's `AddFunc`.
        #[inline(always)]
        pub fn apply(&self, x1: i8, x2: i8) -> i8 {
            // |x - zp| <= 255, so the shifted values stay below 2^28; the
            // wrapping operations only mirror the C++ on nonsensical params.
            let shifted1 = (self.input1_offset + i32::from(x1)).wrapping_shl(self.left_shift);
            let shifted2 = (self.input2_offset + i32::from(x2)).wrapping_shl(self.left_shift);
            let scaled1 =
                multiply_by_quantized_multiplier(shifted1, self.input1.multiplier, self.input1.shift);
            let scaled2 =
                multiply_by_quantized_multiplier(shifted2, self.input2.multiplier, self.input2.shift);
            let raw_sum = scaled1.wrapping_add(scaled2);
            let raw_output =
                multiply_by_quantized_multiplier(raw_sum, self.output.multiplier, self.output.shift)
                    .wrapping_add(self.output_offset);
            self.clamp.apply(raw_output)
        }
    }

    /// `y[i] = p.apply(x1[i], x2[i])`. Direct loop, no heap, no `std`.
    ///
    /// # Panics
    ///
    /// If the three lengths differ.
    pub fn forward(p: &AddParams, x1: &[i8], x2: &[i8], y: &mut [i8]) {
        assert!(
            x1.len() == x2.len() && x2.len() == y.len(),
            "add: x1 has {} elements, x2 {} and y {}",
            x1.len(),
            x2.len(),
            y.len()
        );
        for ((y, &a), &b) in y.iter_mut().zip(x1).zip(x2) {
            *y = p.apply(a, b);
        }
    }

    /// [`forward`] into the first input's buffer: `x1_y[i] = p.apply(x1_y[i],
    /// x2[i])` (the sum reusing a branch's buffer).
    ///
    /// # Panics
    ///
    /// If the two lengths differ.
    pub fn forward_in_place(p: &AddParams, x1_y: &mut [i8], x2: &[i8]) {
        assert_eq!(
            x1_y.len(),
            x2.len(),
            "add: x1 has {} elements but x2 has {}",
            x1_y.len(),
            x2.len()
        );
        for (y, &b) in x1_y.iter_mut().zip(x2) {
            *y = p.apply(*y, b);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::ops::testing::Rng;
        use proptest::prelude::*;

        /// `round(n / 2^e)` with ties toward +inf (gemmlowp's high multiply).
        fn round_half_up(n: i128, e: u32) -> i128 {
            (n + (1i128 << e >> 1)) >> e
        }

        /// `round(n / 2^e)` with ties away from zero (RoundingDivideByPOT).
        fn round_half_away(n: i128, e: u32) -> i128 {
            let (q, r, d) = (n.abs() >> e, n.abs() & ((1i128 << e) - 1), 1i128 << e);
            let q = if 2 * r >= d { q + 1 } else { q };
            if n < 0 {
                -q
            } else {
                q
            }
        }

        /// `x * m * 2^(shift - 31)` as TFLM's two roundings give it, in
        /// exact `i128` arithmetic (shift <= 0, as in ADD).
        fn scale(x: i128, r: Requant) -> i128 {
            assert!(r.shift <= 0);
            round_half_away(
                round_half_up(x * i128::from(r.multiplier), 31),
                r.shift.unsigned_abs(),
            )
        }

        /// Naive ADD: TFLM's arithmetic written out in `i128`.
        fn reference(p: &AddParams, x1: &[i8], x2: &[i8]) -> Vec<i8> {
            x1.iter()
                .zip(x2)
                .map(|(&a, &b)| {
                    let a = (i128::from(a) + i128::from(p.input1_offset)) * (1 << 20);
                    let b = (i128::from(b) + i128::from(p.input2_offset)) * (1 << 20);
                    let sum = scale(a, p.input1) + scale(b, p.input2);
                    let out = scale(sum, p.output) + i128::from(p.output_offset);
                    out.clamp(i128::from(p.clamp.min), i128::from(p.clamp.max)) as i8
                })
                .collect()
        }

        fn quant(scale: f32, zero_point: i32) -> Quant {
            Quant { scale, zero_point }
        }

        #[test]
        fn prepares_as_tflm() {
            // residual_cat's residual ADD (tests/fixtures/int8/residual_cat.json).
            let p = AddParams::prepare(
                quant(0.071_177_41, -47),
                quant(0.012_562_835, -128),
                quant(0.048_694_536, -128),
                Activation::Relu,
            );
            assert_eq!(
                (p.input1_offset, p.input2_offset, p.output_offset),
                (47, 128, -128)
            );
            assert_eq!(
                p.input1,
                Requant {
                    multiplier: 1 << 30,
                    shift: 0
                }
            );
            assert_eq!(
                p.input2,
                Requant {
                    multiplier: 1_516_126_126,
                    shift: -3
                }
            );
            assert_eq!(
                p.output,
                Requant {
                    multiplier: 1_569_501_758,
                    shift: -18
                }
            );
            assert_eq!(p.clamp, Clamp::FULL);
            // Equal scales: both 1/2, and 2 * scale / (2^20 * scale) = 2^-19.
            let q = quant(0.1, 3);
            let p = AddParams::prepare(q, q, q, Activation::None);
            assert_eq!(
                p.input1,
                Requant {
                    multiplier: 1 << 30,
                    shift: 0
                }
            );
            assert_eq!(
                p.output,
                Requant {
                    multiplier: 1 << 30,
                    shift: -18
                }
            );
            assert!(AddParams::try_prepare(q, q, quant(1e-9, 0), Activation::None).is_none());
            assert!(AddParams::try_prepare(quant(0.0, 0), q, q, Activation::None).is_none());
            assert!(AddParams::try_prepare(q, quant(f32::NAN, 0), q, Activation::None).is_none());
        }

        #[test]
        fn adds_reals_and_saturates() {
            // Same quantization in and out: q1 + q2 - zp, saturated.
            let q = quant(0.5, -10);
            let p = AddParams::prepare(q, q, q, Activation::None);
            let x1 = [-10, 0, 100, 127, -128, 5];
            let x2 = [-10, 7, 100, 127, -128, -20];
            let mut y = [0i8; 6];
            forward(&p, &x1, &x2, &mut y);
            assert_eq!(y, [-10, 17, 127, 127, -128, -5]);
            // Relu: the output never goes below the zero point.
            let p = AddParams::prepare(q, q, q, Activation::Relu);
            forward(&p, &x1, &x2, &mut y);
            assert_eq!(y, [-10, 17, 127, 127, -10, -5]);
            // Zero points at the extremes of int8.
            let (lo, hi) = (quant(0.25, -128), quant(0.25, 127));
            let p = AddParams::prepare(lo, hi, quant(0.5, 0), Activation::None);
            // (127 + 128) * 0.25 + (-128 - 127) * 0.25 = 0; 255 * 0.25 / 0.5 = 127.5
            // saturates.
            forward(&p, &[127, 127, -128], &[-128, 127, 127], &mut y[..3]);
            assert_eq!(y[..3], [0, 127, 0]);
            let mut z = [127i8, 127, -128];
            forward_in_place(&p, &mut z, &[-128, 127, 127]);
            assert_eq!(z, [0, 127, 0]);
        }

        #[test]
        #[should_panic(expected = "add: x1 has 3 elements, x2 2 and y 3")]
        fn lengths_must_agree() {
            let q = quant(1.0, 0);
            forward(
                &AddParams::prepare(q, q, q, Activation::None),
                &[0; 3],
                &[0; 2],
                &mut [0; 3],
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn matches_reference_and_the_real_sum(
                s1 in 1e-3f32..1.0, s2 in 1e-3f32..1.0, so in 1e-3f32..2.0,
                z1: i8, z2: i8, zo: i8, act in 0usize..3, len in 0usize..64, seed: u64,
            ) {
                let (q1, q2, qo) = (quant(s1, z1.into()), quant(s2, z2.into()), quant(so, zo.into()));
                let act = [Activation::None, Activation::Relu, Activation::Relu6][act];
                let p = AddParams::prepare(q1, q2, qo, act);
                let mut rng = Rng::new(seed);
                let x1: Vec<i8> = (0..len).map(|_| rng.next_u64() as i8).collect();
                let x2: Vec<i8> = (0..len).map(|_| rng.next_u64() as i8).collect();
                let mut y = vec![0i8; len];
                forward(&p, &x1, &x2, &mut y);
                prop_assert_eq!(&y, &reference(&p, &x1, &x2));
                let mut z = x1.clone();
                forward_in_place(&p, &mut z, &x2);
                prop_assert_eq!(&z, &y);
                // Within one step of the rounded real sum, where unclamped.
                for i in 0..len {
                    let real = f64::from(s1) * f64::from(i32::from(x1[i]) - i32::from(z1))
                        + f64::from(s2) * f64::from(i32::from(x2[i]) - i32::from(z2));
                    let ideal = (real / f64::from(so)).round() + f64::from(zo);
                    if ideal > f64::from(p.clamp.min) && ideal < f64::from(p.clamp.max) {
                        prop_assert!((f64::from(y[i]) - ideal).abs() <= 1.0, "{} vs {}", y[i], ideal);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_every_element() {
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut y: Vec<f32> = (0..37).map(|i| (i * i) as f32).collect();
        let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        accumulate(&x, &mut y);
        assert_eq!(y, want);
    }

    #[test]
    #[should_panic(expected = "add: x has 3 elements but y has 2")]
    fn lengths_must_agree() {
        accumulate(&[1.0; 3], &mut [0.0; 2]);
    }
}
