//! Logistic sigmoid, PyTorch `nn.Sigmoid` / `torch.sigmoid`, elementwise on
//! any layout, in place:
//!
//! `y = 1 / (1 + e^-x)`, and backward `dL/dx = dL/dy * y (1 - y)`.
//!
//! The forward pass never overflows: like [`crate::math::sigmoid`] it only
//! takes `e^-|x|`, and uses `e^x / (1 + e^x)` for negative `x`, so very
//! negative inputs keep their relative precision. Unlike that scalar
//! function it evaluates `e^t` with a branch-free polynomial (Cephes `expf`:
//! Cody-Waite range reduction, degree-6 polynomial, exponent by bit
//! arithmetic; about 1 ulp) that LLVM vectorizes, compiled for the best
//! instruction set of the CPU (`ops/simd.rs`). With AVX-512 or AVX2 the
//! forward pass is written out instead (modules `avx512`, `avx2`, the
//! latter with 8 entries and a quartic): on AVX-512 a 16-entry table of
//! `2^(j/16)` leaves a degree-3 polynomial, and `vscalefps` applies the
//! power of two: 17 instructions per 16 lanes instead of 30, 1.9 ns instead
//! of 3.0 on a Zen 5 (L1-resident data). Either way the
//! pass stays within 2.5e-7 (relative) of the exact sigmoid; NaN stays NaN.

use super::simd::{madd, multiversion};

/// `x <- sigmoid(x)` in place.
#[inline]
pub fn forward(x: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    match super::simd::level() {
        // SAFETY: `level()` detected AVX-512F on this CPU.
        super::simd::Level::Avx512 => return unsafe { avx512::forward(x) },
        // SAFETY: `level()` detected AVX2 and FMA on this CPU.
        super::simd::Level::Avx2Fma => return unsafe { avx2::forward(x) },
        super::simd::Level::Baseline => {}
    }
    forward_any(x)
}

multiversion! {
    /// [`forward`] without AVX2, compiled for the build's target.
    fn forward_any(x: &mut [f32]) => forward_body
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod avx512 {
    //! The forward pass on 16 lanes. Per lane, with `z = -|x|` (floored at
    //! -105, where `e^z` rounds to 0 even as a subnormal, so infinities
    //! need no special case):
    //!
    //! - `k = round(16 z / ln 2)` by the magic-number addition, whose low
    //!   mantissa bits are `k mod 16` for `vpermps` to pick `2^(k mod 16 / 16)`
    //!   from a register;
    //! - `r = z - k ln2 / 16` (Cody-Waite, two constants), `|r| <= ln2 / 32`,
    //!   so `e^r - 1 ~ r + r^2/2 + r^3/6` is off by at most `r^4/24 < 1e-8`;
    //! - `e^z = 2^(k mod 16 / 16) e^r`, scaled by `2^floor(k/16)` with
    //!   `vscalefps`, which rounds subnormal results correctly;
    //! - the sigmoid is `1 / (1 + e)` for `x >= 0` and `e / (1 + e)` below.
    //!
    //! A division, not the reciprocal estimate with a Newton step: on Zen 5
    //! the estimate measured 15% slower (1.89 against 2.17 ns per vector),
    //! the old polynomial 3.0 ns.

    use crate::ops::simd::x86::{Avx512, Vector};
    use core::arch::x86_64::*;

    /// `2^(j/16)` for `j < 16`, rounded to `f32`.
    pub(super) const POW2_SIXTEENTHS: [f32; 16] = [
        1.0,
        1.044_273_7,
        1.090_507_7,
        1.138_788_6,
        1.189_207_1,
        1.241_857_8,
        1.296_839_6,
        1.354_255_6,
        core::f32::consts::SQRT_2,
        1.476_826_2,
        1.542_210_8,
        1.610_490_3,
        1.681_792_9,
        1.756_252_2,
        1.834_008_1,
        1.915_206_6,
    ];

    /// `x <- sigmoid(x)` in place, 16 lanes at a time (the tail masked).
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(x: &mut [f32]) {
        let table = _mm512_loadu_ps(POW2_SIXTEENTHS.as_ptr());
        let full = x.len() / 16 * 16;
        for c in x[..full].chunks_exact_mut(16) {
            // SAFETY: `c` holds 16 floats.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), lanes(v, table)) };
        }
        let tail = x.len() - full;
        if tail > 0 {
            let m = Avx512::mask(0, tail as isize);
            let rest = x[full..].as_mut_ptr();
            // SAFETY: the mask covers the `tail` floats left.
            unsafe { Avx512::store(rest, m, lanes(Avx512::load(rest, m), table)) };
        }
    }

    /// The sigmoid of 16 lanes (see the module docs).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lanes(x: __m512, table: __m512) -> __m512 {
        const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
                                         // ln 2 / 16 split so `k * HI` is exact for the |k| <= 2424 here.
        const LN2_16_HI: f32 = 0.693_359_4 / 16.0;
        const LN2_16_LO: f32 = -2.121_944_4e-4 / 16.0;
        let neg_abs = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(x),
            _mm512_set1_epi32(i32::MIN),
        ));
        // `max` returns its second operand for a NaN, so NaN stays NaN.
        let z = _mm512_max_ps(_mm512_set1_ps(-105.0), neg_abs);
        let shifted = _mm512_fmadd_ps(
            z,
            _mm512_set1_ps(16.0 * core::f32::consts::LOG2_E),
            _mm512_set1_ps(MAGIC),
        );
        let pow = _mm512_permutexvar_ps(_mm512_castps_si512(shifted), table);
        let k = _mm512_sub_ps(shifted, _mm512_set1_ps(MAGIC));
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_16_HI), z);
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_16_LO), r);
        let p = _mm512_fmadd_ps(_mm512_set1_ps(1.0 / 6.0), r, _mm512_set1_ps(0.5));
        let expm1 = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r);
        let e = _mm512_scalef_ps(
            _mm512_fmadd_ps(pow, expm1, pow),
            _mm512_mul_ps(k, _mm512_set1_ps(1.0 / 16.0)),
        );
        let q = _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_add_ps(e, _mm512_set1_ps(1.0)));
        let negative = _mm512_cmplt_epi32_mask(_mm512_castps_si512(x), _mm512_setzero_si512());
        _mm512_mask_mul_ps(q, negative, e, q)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_table_is_powers_of_two() {
            for (j, &t) in super::POW2_SIXTEENTHS.iter().enumerate() {
                assert_eq!(t, 2f64.powf(j as f64 / 16.0) as f32, "entry {j}");
            }
        }
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod avx2 {
    //! The forward pass on 8 lanes, as on 16 (module `avx512`) with what
    //! AVX2 has: a table of 8 powers `2^(j/8)` (`vpermps` indexes 8
    //! lanes), so `|r| <= ln2 / 16` and the polynomial takes a fourth
    //! degree (off by at most `r^5/120 < 2e-9`); the power of two from the
    //! exponent bits (no `vscalefps`), which needs `z >= -87`: below it the
    //! lane takes `e^z = 0`, as the portable copy does. On a Zen 5 under
    //! `CNN_MAX_ISA=avx2`: 2.4 ns per 8 lanes, against 3.1 for LLVM's
    //! vectorization of the portable polynomial.

    use crate::ops::simd::x86::{Avx2, Vector};
    use core::arch::x86_64::*;

    /// `2^(j/8)` for `j < 8`: every other entry of the 16.
    const POW2_EIGHTHS: [f32; 8] = {
        let mut t = [0.0; 8];
        let mut j = 0;
        while j < 8 {
            t[j] = super::avx512::POW2_SIXTEENTHS[2 * j];
            j += 1;
        }
        t
    };

    /// `x <- sigmoid(x)` in place, 8 lanes at a time (the tail masked).
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward(x: &mut [f32]) {
        let table = _mm256_loadu_ps(POW2_EIGHTHS.as_ptr());
        let full = x.len() / 8 * 8;
        for c in x[..full].chunks_exact_mut(8) {
            // SAFETY: `c` holds 8 floats.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), lanes(v, table)) };
        }
        let tail = x.len() - full;
        if tail > 0 {
            let m = Avx2::mask(0, tail as isize);
            let rest = x[full..].as_mut_ptr();
            // SAFETY: the mask covers the `tail` floats left.
            unsafe { Avx2::store(rest, m, lanes(Avx2::load(rest, m), table)) };
        }
    }

    /// The sigmoid of 8 lanes (see the module docs).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn lanes(x: __m256, table: __m256) -> __m256 {
        const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
                                         // ln 2 / 8 split so `k * HI` is exact for the |k| <= 1004 here.
        const LN2_8_HI: f32 = 0.693_359_4 / 8.0;
        const LN2_8_LO: f32 = -2.121_944_4e-4 / 8.0;
        const FLOOR: f32 = -87.0;
        let neg_abs = _mm256_or_ps(x, _mm256_set1_ps(-0.0));
        // `max` returns its second operand for a NaN, so NaN stays NaN.
        let z = _mm256_max_ps(_mm256_set1_ps(FLOOR), neg_abs);
        let shifted = _mm256_fmadd_ps(
            z,
            _mm256_set1_ps(8.0 * core::f32::consts::LOG2_E),
            _mm256_set1_ps(MAGIC),
        );
        let pow = _mm256_permutevar8x32_ps(table, _mm256_castps_si256(shifted));
        let k = _mm256_sub_ps(shifted, _mm256_set1_ps(MAGIC));
        let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_8_HI), z);
        let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_8_LO), r);
        let p = _mm256_fmadd_ps(_mm256_set1_ps(1.0 / 24.0), r, _mm256_set1_ps(1.0 / 6.0));
        let p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
        let expm1 = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r);
        // 2^floor(k/8) from the integer k in `shifted`'s low mantissa
        // bits: (floor(k/8) + 127) << 23, a normal number for z >= -87.
        let k_int = _mm256_sub_epi32(
            _mm256_castps_si256(shifted),
            _mm256_castps_si256(_mm256_set1_ps(MAGIC)),
        );
        let exponent = _mm256_add_epi32(_mm256_srai_epi32::<3>(k_int), _mm256_set1_epi32(127));
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(exponent));
        let e = _mm256_mul_ps(_mm256_fmadd_ps(pow, expm1, pow), scale);
        // Below the floor: 0 (a NaN compares false and stays).
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(neg_abs, _mm256_set1_ps(FLOOR));
        let e = _mm256_andnot_ps(under, e);
        let q = _mm256_div_ps(_mm256_set1_ps(1.0), _mm256_add_ps(e, _mm256_set1_ps(1.0)));
        // `blendv` takes `e q` where the sign bit of `x` is set.
        _mm256_blendv_ps(q, _mm256_mul_ps(e, q), x)
    }
}

#[inline(always)]
fn forward_body<const FMA: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = sigmoid_lane::<FMA>(*v);
    }
}

/// `e^t` for `t <= 0` (or NaN), flushing to 0 below about -87.
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(t: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // ln 2 split so `n * LN2_HI` is exact for the |n| <= 126 used here.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer, which lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Below this e^t < 2^-125.5: the result is 0 (through `zero`), so `n`
    // never leaves the range of normal powers of two. `<` keeps NaN as is.
    let zero = t < -87.0;
    let t = if zero { -87.0 } else { t };
    let shifted = madd::<FMA>(t, LOG2E, ROUND);
    let n = shifted - ROUND;
    let r = madd::<FMA>(n, -LN2_LO, madd::<FMA>(n, -LN2_HI, t));
    let mut p = 1.987_569_2e-4f32;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let e = madd::<FMA>(p, r * r, r) + 1.0;
    // 2^n from the integer in `shifted`'s mantissa: (n + 127) << 23.
    let bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    let scaled = e * f32::from_bits(bits);
    if zero {
        0.0
    } else {
        scaled
    }
}

/// `1 / (1 + e^-x)` without branches: `e = e^-|x|`, then `1 / (1 + e)` for
/// `x >= 0` and `e / (1 + e)` otherwise.
#[inline(always)]
pub(crate) fn sigmoid_lane<const FMA: bool>(x: f32) -> f32 {
    let e = exp_nonpositive::<FMA>(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// `dy <- dy * y (1 - y)` in place, where `y` is the forward *output*; `dy`
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
        "sigmoid: y has {} elements but dy has {}",
        y.len(),
        dy.len()
    );
    backward_any(y, dy);
}

multiversion! {
    /// [`backward`] after its check, compiled for the CPU's vector width.
    fn backward_any(y: &[f32], dy: &mut [f32]) => backward_body
}

#[inline(always)]
fn backward_body<const FMA: bool>(y: &[f32], dy: &mut [f32]) {
    for (d, &v) in dy.iter_mut().zip(y) {
        *d *= v * (1.0 - v);
    }
}

pub mod int8 {
    //! int8 logistic sigmoid, TFLite's LOGISTIC, bit for bit as TensorFlow Lite
    //! Micro's reference kernel (`reference_integer_ops::Logistic`) computes it.
    //! TFLM evaluates gemmlowp's fixed-point `logistic` in integers, not a
    //! lookup table of float results:
    //!
    //! - `d = x - x_zp`; `d <= -radius` gives `-128` and `d >= radius` gives
    //!   `127` (real inputs beyond `+-15 f` for some `f` in `[0.5, 1)`, where
    //!   8-bit sigmoid is saturated anyway, see [`Q4Input::radius`]);
    //! - otherwise `d * x_scale` in Q4.27 ([`Q4Input::to_q4`]), its logistic in
    //!   Q0.31 ([`fixed::logistic`]), rounded to 8 fraction bits
    //!   (`rounding_divide_by_pot(., 23)`, ties away from zero), minus 128,
    //!   clamped to int8.
    //!
    //! The output quantization is fixed: scale `1/256`, zero point `-128`
    //! (TFLM refuses other zero points; the converter always picks these).
    //! Elementwise, any layout, in place like the float
    //! [`forward`](super::forward).

    use crate::quant::{fixed, rounding_divide_by_pot, Q4Input};

    /// Scale of the output, `1/256`.
    pub const OUTPUT_SCALE: f32 = 1.0 / 256.0;
    /// Zero point of the output.
    pub const OUTPUT_ZERO_POINT: i32 = -128;

    /// One element (see the module docs).
    #[inline]
    pub const fn sigmoid(input: &Q4Input, x: i8) -> i8 {
        match input.to_q4(x) {
            Err(false) => i8::MIN,
            Err(true) => i8::MAX,
            Ok(q4) => {
                let q0 = fixed::logistic::<{ Q4Input::INTEGER_BITS as u32 }>(q4);
                let q8 = rounding_divide_by_pot(q0, 31 - 8) + OUTPUT_ZERO_POINT;
                crate::quant::saturate_i8(q8)
            }
        }
    }

    /// `x <- sigmoid(x)` in place, `input` prepared by
    /// [`Q4Input::prepare`] from the input's scale and zero point. No heap,
    /// no `std`.
    pub fn forward(input: &Q4Input, x: &mut [i8]) {
        for v in x.iter_mut() {
            *v = sigmoid(input, *v);
        }
    }

    /// [`sigmoid`] of every int8 input, indexed by the input's bits as a
    /// `u8`: with only 256 inputs, a net computes the function once (when
    /// it compiles, or loads) and inference looks it up
    /// ([`crate::quant::lookup`]).
    pub const fn table(input: &Q4Input) -> [i8; 256] {
        crate::quant::int8_table!(sigmoid(input))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::quant::{dequantize, quantize};

        #[test]
        fn the_table_is_the_function() {
            for (scale, zp) in [(0.035_930_674_f32, -86), (0.125, 3), (1e-6, 0), (0.5, -128)] {
                let p = Q4Input::prepare(scale, zp);
                crate::quant::assert_table_is(&table(&p), |q| sigmoid(&p, q));
            }
        }

        #[test]
        fn within_one_step_of_the_float_sigmoid() {
            for (scale, zp) in [(0.035_930_674_f32, -86), (0.125, 3), (0.01, 0), (0.5, -128)] {
                let p = Q4Input::prepare(scale, zp);
                for q in i8::MIN..=i8::MAX {
                    let real = f64::from(dequantize(q, scale, zp));
                    let expected = 1.0 / (1.0 + (-real).exp());
                    let got = f64::from(dequantize(sigmoid(&p, q), OUTPUT_SCALE, OUTPUT_ZERO_POINT));
                    assert!(
                        (got - expected).abs() <= 1.0 / 256.0,
                        "sigmoid({real}) = {got}, expected {expected} (scale {scale}, zp {zp})"
                    );
                }
            }
        }

        #[test]
        fn saturates_and_centres() {
            let p = Q4Input::prepare(0.125, 0);
            // 0 maps to exactly 1/2: 2^30 / 2^23 = 128, - 128 = 0.
            assert_eq!(sigmoid(&p, 0), 0);
            // 0.125 * 2^27 = 0.5 * 2^25: saturation from 15 * 0.5 = 7.5 on.
            assert_eq!((p.shift, p.radius), (25, 60));
            assert_eq!(sigmoid(&p, 60), 127);
            assert_eq!(sigmoid(&p, -60), -128);
            assert_eq!(sigmoid(&p, 59), 127); // sigmoid(7.375) * 256 = 255.84
            let mut x = [quantize(1.0, 0.125, 0), quantize(-1.0, 0.125, 0)];
            forward(&p, &mut x);
            // sigmoid(1) = 0.731.. -> 187.1 / 256, sigmoid(-1) -> 68.9 / 256.
            assert_eq!(x, [59, -59]); // 187 - 128, 69 - 128
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect()
    }

    #[test]
    fn hand_computed() {
        let mut x = [0.0, 2.0, -2.0, 1e4, -1e4];
        forward(&mut x);
        assert_eq!(x[0], 0.5);
        assert!((x[1] - 0.880_797_1).abs() < 1e-6);
        assert!((x[2] - 0.119_202_92).abs() < 1e-6);
        assert_eq!((x[3], x[4]), (1.0, 0.0));
        let mut dy = [1.0; 5];
        backward(&x, &mut dy);
        assert_eq!(dy[0], 0.25);
        assert_eq!((dy[3], dy[4]), (0.0, 0.0));
        let mut special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -80.0, -87.5, 88.0];
        forward(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(special[1..3], [1.0, 0.0]);
        // Relative precision for very negative inputs: e^-80 ~ 1.8e-35.
        assert!((f64::from(special[3]) / (-80.0f64).exp() - 1.0).abs() < 1e-5);
        assert!(special[4] >= 0.0 && special[4] < 1e-37 && special[5] == 1.0);
    }

    /// The vectorized lane function against the f64 definition on a dense
    /// grid, through whichever copy this CPU runs and the baseline one.
    #[test]
    fn lanes_match_f64_everywhere() {
        let mut x = -90.0f32;
        let mut worst = 0.0f64;
        while x <= 90.0 {
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            let mut v = [x];
            forward(&mut v);
            for got in [v[0], sigmoid_lane::<false>(x)] {
                let err = (f64::from(got) - exact).abs() / exact.max(1e-30);
                if exact > 1e-37 {
                    worst = worst.max(err);
                }
            }
            x += 0.001_7;
        }
        // Measured: 2.08e-7 (AVX-512), 1.97e-7 (AVX2), 1.77e-7 (portable);
        // the AVX2 copy with a cubic instead of its quartic gives 2.9e-7.
        assert!(worst < 2.5e-7, "worst relative error {worst}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(len in 1usize..200, scale in 0.1f32..8.0,
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
