//! Hyperbolic tangent, PyTorch `nn.Tanh` / `torch.tanh`, elementwise on any
//! layout, in place:
//!
//! `y = tanh(x)`, and backward `dL/dx = dL/dy * (1 - y^2)`.

use crate::math;

/// `x <- tanh(x)` in place.
#[inline]
pub fn forward(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = math::tanh(*v);
    }
}

/// `dy <- dy * (1 - y^2)` in place, where `y` is the forward *output*; `dy`
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
        "tanh: y has {} elements but dy has {}",
        y.len(),
        dy.len()
    );
    for (d, &v) in dy.iter_mut().zip(y) {
        *d *= 1.0 - v * v;
    }
}

pub mod int8 {
    //! int8 hyperbolic tangent, TFLite's TANH, bit for bit as TensorFlow Lite
    //! Micro's reference kernel (`reference_integer_ops::Tanh`) computes it.
    //! TFLM evaluates gemmlowp's fixed-point `tanh` in integers, not a
    //! lookup table of float results:
    //!
    //! - `d = x - x_zp`; `d <= -radius` gives `-128` and `d >= radius` gives
    //!   `127` (real inputs beyond `+-15 f` for some `f` in `[0.5, 1)`, where
    //!   8-bit tanh is saturated anyway, see [`Q4Input::radius`]);
    //! - otherwise `d * x_scale` in Q4.27 ([`Q4Input::to_q4`]), its tanh in
    //!   Q0.31 ([`fixed::tanh`]), rounded to 7 fraction bits
    //!   (`rounding_divide_by_pot(., 24)`, ties away from zero), clamped to
    //!   int8 (so `tanh = 1` becomes 127).
    //!
    //! The output quantization is fixed: scale `1/128`, zero point `0` (the
    //! kernel assumes it; the converter always picks these). Elementwise, any
    //! layout, in place like the float [`forward`](super::forward).

    use crate::quant::{fixed, rounding_divide_by_pot, Q4Input};

    /// Scale of the output, `1/128`.
    pub const OUTPUT_SCALE: f32 = 1.0 / 128.0;
    /// Zero point of the output.
    pub const OUTPUT_ZERO_POINT: i32 = 0;

    /// One element (see the module docs).
    #[inline]
    pub const fn tanh(input: &Q4Input, x: i8) -> i8 {
        match input.to_q4(x) {
            Err(false) => i8::MIN,
            Err(true) => i8::MAX,
            Ok(q4) => {
                const IB: u32 = Q4Input::INTEGER_BITS as u32;
                let q0 = fixed::tanh::<IB, { IB + 1 }>(q4);
                let q7 = rounding_divide_by_pot(q0, 31 - 7);
                crate::quant::saturate_i8(q7)
            }
        }
    }

    /// `x <- tanh(x)` in place, `input` prepared by [`Q4Input::prepare`]
    /// from the input's scale and zero point. No heap, no `std`.
    pub fn forward(input: &Q4Input, x: &mut [i8]) {
        for v in x.iter_mut() {
            *v = tanh(input, *v);
        }
    }

    /// [`tanh`] of every int8 input, indexed by the input's bits as a `u8`,
    /// for [`crate::quant::lookup`] (see `sigmoid::int8::table`).
    pub const fn table(input: &Q4Input) -> [i8; 256] {
        crate::quant::int8_table!(tanh(input))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_table_is_the_function() {
            for (scale, zp) in [(0.035_930_674_f32, -86), (0.125, 3), (1e-6, 0), (0.5, -128)] {
                let p = Q4Input::prepare(scale, zp);
                crate::quant::assert_table_is(&table(&p), |q| tanh(&p, q));
            }
        }
        use crate::quant::dequantize;

        #[test]
        fn within_one_step_of_the_float_tanh() {
            for (scale, zp) in [(0.014_056_137_f32, 20), (0.125, 3), (0.01, 0), (0.5, -128)] {
                let p = Q4Input::prepare(scale, zp);
                for q in i8::MIN..=i8::MAX {
                    let real = f64::from(dequantize(q, scale, zp));
                    let expected = real.tanh();
                    let got = f64::from(dequantize(tanh(&p, q), OUTPUT_SCALE, OUTPUT_ZERO_POINT));
                    assert!(
                        (got - expected).abs() <= 1.0 / 128.0,
                        "tanh({real}) = {got}, expected {expected} (scale {scale}, zp {zp})"
                    );
                }
            }
        }

        #[test]
        fn odd_and_saturating() {
            let p = Q4Input::prepare(0.05, 0);
            assert_eq!(tanh(&p, 0), 0);
            for q in 1..=127i8 {
                // Odd up to the clamp of +128 to 127.
                assert!(
                    (i32::from(tanh(&p, -q)) + i32::from(tanh(&p, q))).abs() <= 1,
                    "{q}"
                );
            }
            let mut x = [20i8, -20, 127, -128];
            forward(&p, &mut x);
            // tanh(1) * 128 = 97.48 -> 97; tanh(6.35) * 128 = 127.9995 -> 128,
            // clamped to 127; tanh(-6.4) * 128 -> -128.
            assert_eq!(x, [97, -97, 127, -128]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| v.tanh()).collect()
    }

    #[test]
    fn hand_computed() {
        let mut x = [0.0, 1.0, -1.0, 1e4, -1e4];
        forward(&mut x);
        assert_eq!(x[0], 0.0);
        assert!((x[1] - 0.761_594_2).abs() < 1e-6);
        assert!((x[2] + 0.761_594_2).abs() < 1e-6);
        assert_eq!((x[3], x[4]), (1.0, -1.0));
        let mut dy = [2.0; 5];
        backward(&x, &mut dy);
        assert_eq!(dy[0], 2.0);
        assert!((dy[1] - 2.0 * 0.419_974_34).abs() < 1e-6);
        assert_eq!((dy[3], dy[4]), (0.0, 0.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(len in 1usize..200, scale in 0.1f32..4.0,
                                                    seed: u64) {
            let mut rng = Rng::new(seed);
            let x: Vec<f32> = rng.vec(len).iter().map(|v| v * scale).collect();
            let mut y = x.clone();
            forward(&mut y);
            assert_close("y", &y, &reference(&to_f64(&x)), 1e-6);
            let r = rng.vec(len);
            let mut dx = r.clone();
            backward(&y, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-4, &mut rng, 32, |x| functional(&r, &reference(x)));
            assert_grad("dx", &dx, &fd, 1e-5);
        }
    }
}
