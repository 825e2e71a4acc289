//! Fixed-point arithmetic of TensorFlow Lite's int8 scheme, bit for bit as
//! TensorFlow Lite Micro's reference kernels compute it (TFLM's default
//! "double rounding" build, `TFLITE_SINGLE_ROUNDING` unset).
//!
//! The scheme: a real value `r` is held as an int8 `q` with
//! `r = scale * (q - zero_point)`. Activations have one `(scale, zero_point)`
//! per tensor; weights are symmetric (`zero_point = 0`) with one scale per
//! output channel (or one for the tensor); biases are int32 with
//! `scale = input_scale * weight_scale[c]` and `zero_point = 0`.
//!
//! An accumulating op (conv, linear) sums `w * (x - x_zp)` in int32, adds the
//! bias, and must then multiply by the real factor
//! `M = input_scale * weight_scale[c] / output_scale` (usually < 1). M is
//! held as a [`Requant`]: a 32-bit multiplier `m` in `[2^30, 2^31)` (the
//! fraction `m / 2^31` in `[0.5, 1)`) and an exponent `shift`, with
//! `M ~= m * 2^(shift - 31)`. Applying it takes two roundings:
//! [`saturating_rounding_doubling_high_mul`] (`x * m / 2^31`, rounded to
//! nearest, ties up) then [`rounding_divide_by_pot`] (`/ 2^-shift`, rounded
//! to nearest, ties away from zero). Both are the gemmlowp primitives TFLM
//! uses; the result can differ by one from rounding `x * M` once.
//!
//! Everything here is integer arithmetic except the preparation of
//! multipliers from float scales, which is done by `const fn`s (exact
//! `frexp`, `round` and `floor` of our own, like C's), so `cnn_net!`'s int8
//! nets compute their multipliers when they compile; it runs without `std`
//! and gives the same bits on every target.
//!
//! [`fixed`] holds gemmlowp's fixed-point `exp`, `logistic` and `tanh`,
//! which TFLM's int8 LOGISTIC and TANH kernels use (see
//! `ops::sigmoid::int8` and `ops::tanh::int8`).

/// A real multiplier `M ~= multiplier * 2^(shift - 31)`, TFLite's
/// `(quantized_multiplier, shift)` pair: `shift > 0` is a left shift applied
/// before the multiplication, `shift < 0` a rounding right shift after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Requant {
    /// The fraction `M / 2^shift` as a Q0.31 number, in `[2^30, 2^31)` for
    /// `M > 0` (negative for `M < 0`, zero for `M = 0`).
    pub multiplier: i32,
    /// The power of two, in `[-31, 30]` for multipliers that fit.
    pub shift: i32,
}

impl Requant {
    /// The multiplier zero (every input maps to 0).
    pub const ZERO: Requant = Requant {
        multiplier: 0,
        shift: 0,
    };

    /// TFLite's `QuantizeMultiplier`: `real = q * 2^shift` with `q` in
    /// `[0.5, 1)` (`frexp`), `multiplier = round(q * 2^31)` (half away from
    /// zero); a `q` that rounds up to `2^31` becomes `2^30` with `shift + 1`,
    /// and a real below about `2^-32` (`shift < -31`) flushes to
    /// [`Requant::ZERO`].
    ///
    /// # Panics
    ///
    /// If `real` is not finite.
    pub const fn from_real(real: f64) -> Requant {
        assert!(
            real.is_finite(),
            "Requant::from_real: the multiplier is not finite"
        );
        if real == 0.0 {
            return Requant::ZERO;
        }
        let (q, mut shift) = frexp(real);
        let mut q_fixed = round_f64(q * TWO_POW_31) as i64;
        debug_assert!(q_fixed.abs() <= 1 << 31);
        if q_fixed == 1 << 31 {
            q_fixed /= 2;
            shift += 1;
        }
        if shift < -31 {
            return Requant::ZERO;
        }
        Requant {
            multiplier: q_fixed as i32,
            shift,
        }
    }

    /// The requantization of a conv (always, even with one weight scale) or
    /// of a linear layer with per-channel weights, as TFLM prepares it
    /// (`PopulateConvolutionQuantizationParams`): the scales widened to
    /// `f64` first, `M = (in * w) / out` in `f64`.
    pub const fn per_channel(input_scale: f32, weight_scale: f32, output_scale: f32) -> Requant {
        let real = input_scale as f64 * weight_scale as f64 / output_scale as f64;
        Requant::from_real(real)
    }

    /// The requantization of a linear layer with ONE weight scale, as TFLM
    /// prepares it (`GetQuantizedConvolutionMultipler`): the product
    /// `in * w` is rounded to `f32` before the division in `f64`. The
    /// multiplier can differ from [`Requant::per_channel`] in its last bits.
    pub const fn per_tensor_linear(input_scale: f32, weight_scale: f32, output_scale: f32) -> Requant {
        let real = (input_scale * weight_scale) as f64 / output_scale as f64;
        Requant::from_real(real)
    }

    /// The requantization from one activation scale to another,
    /// `M = input_scale / output_scale` (both widened to `f64`), as TFLM
    /// prepares it for MEAN (`PrepareMeanOrSumHelper`) and other ops that
    /// only rescale.
    pub const fn rescale(input_scale: f32, output_scale: f32) -> Requant {
        Requant::from_real(input_scale as f64 / output_scale as f64)
    }

    /// [`Requant::rescale`], or `None` as [`Requant::checked_per_channel`].
    pub const fn checked_rescale(input_scale: f32, output_scale: f32) -> Option<Requant> {
        Requant::checked(input_scale as f64 / output_scale as f64)
    }

    /// [`Requant::per_channel`], or `None` if the multiplier is not finite
    /// or too large to apply (`shift > 30`: `M >= 2^30`).
    pub const fn checked_per_channel(
        input_scale: f32,
        weight_scale: f32,
        output_scale: f32,
    ) -> Option<Requant> {
        let real = input_scale as f64 * weight_scale as f64 / output_scale as f64;
        Requant::checked(real)
    }

    /// [`Requant::per_tensor_linear`], or `None` as
    /// [`Requant::checked_per_channel`].
    pub const fn checked_per_tensor_linear(
        input_scale: f32,
        weight_scale: f32,
        output_scale: f32,
    ) -> Option<Requant> {
        let real = (input_scale * weight_scale) as f64 / output_scale as f64;
        Requant::checked(real)
    }

    const fn checked(real: f64) -> Option<Requant> {
        if !real.is_finite() {
            return None;
        }
        let r = Requant::from_real(real);
        if r.shift > 30 {
            None
        } else {
            Some(r)
        }
    }

    /// `x * M`, rounded as TFLM rounds it: [`multiply_by_quantized_multiplier`].
    #[inline(always)]
    pub fn apply(self, x: i32) -> i32 {
        multiply_by_quantized_multiplier(x, self.multiplier, self.shift)
    }
}

const TWO_POW_31: f64 = 2_147_483_648.0;

/// C's `frexp` for a finite `x`: `(f, e)` with `x = f * 2^e` and `|f|` in
/// `[0.5, 1)` (`(0, 0)` for zero), exactly, as a `const fn` so that the
/// generated code computes its multipliers when it compiles.
pub const fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (mut bits, mut adjust) = (x.to_bits(), 0);
    if (bits >> 52) & 0x7ff == 0 {
        // Subnormal: scale into the normal range first (exact).
        bits = (x * 18_014_398_509_481_984.0).to_bits(); // 2^54
        adjust = -54;
    }
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (fraction, exponent - 1022 + adjust)
}

/// `round(x)` with ties away from zero (C's `round`), as a `const fn`;
/// exact for every `f64`.
pub const fn round_f64(x: f64) -> f64 {
    // Past 2^52 every f64 is an integer already.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let t = x as i64 as f64; // truncated toward zero, exactly
    let d = x - t; // exact: both lie in the same binade or below
    let r = if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    };
    r.copysign(x) // -0.3 rounds to -0.0, as in C
}

/// `floor(x)` as a `const fn`, exact for every `f64`.
const fn floor_f64(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let t = x as i64 as f64;
    if t > x {
        t - 1.0
    } else {
        t.copysign(x) // floor(-0.0) is -0.0, as in C
    }
}

/// `(a * b) / 2^31` rounded to nearest with ties toward `+inf`, and the one
/// overflowing case `i32::MIN * i32::MIN` saturated to `i32::MAX`: the
/// product of two Q0.31 numbers in `[-1, 1)` (ARM's `VQRDMULH`, gemmlowp's
/// `SaturatingRoundingDoublingHighMul`).
///
/// gemmlowp adds a "nudge" of `2^30` to a non-negative product and
/// `1 - 2^30` to a negative one, then divides by `2^31` truncating toward
/// zero: the `1` keeps a negative tie from reaching the next integer, so
/// `1.5` goes to `2` but `-1.5` to `-1` (and `-0.5` to `0`).
#[inline(always)]
pub const fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded to nearest with ties away from zero (gemmlowp's
/// `RoundingDivideByPOT`, a rounding arithmetic right shift): the shifted
/// value, plus one when the dropped bits exceed half, where "half" counts
/// one more for negative `x` (so `-2.5` rounds to `-3`, `2.5` to `3`).
///
/// # Panics
///
/// In debug builds, if `exponent > 31`.
#[inline(always)]
pub const fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31, "rounding_divide_by_pot: exponent > 31");
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// TFLite's `MultiplyByQuantizedMultiplier` (double rounding): `x * m *
/// 2^(shift - 31)` as `rounding_divide_by_pot(srdhm(x << max(shift, 0), m),
/// max(-shift, 0))`.
///
/// The left shift wraps on overflow, as the C++ (formally undefined)
/// compiles on every target TFLM runs on; TFLite's multipliers keep it in
/// range (`shift > 0` only for `M >= 1`, with small `x`).
#[inline(always)]
pub const fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let (left, right) = if shift > 0 {
        (shift as u32, 0)
    } else {
        (0, shift.unsigned_abs())
    };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32.wrapping_shl(left)), multiplier),
        right,
    )
}

/// `round(x)` with ties away from zero, C's `roundf` (TFLite's
/// `TfLiteRound`).
#[inline]
pub const fn round_half_away(x: f32) -> f32 {
    // Past 2^23 every f32 is an integer already.
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = x as i32 as f32;
    let d = x - t;
    let r = if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    };
    r.copysign(x)
}

/// `v` clamped to the int8 range.
#[inline(always)]
pub const fn saturate_i8(v: i32) -> i8 {
    if v < i8::MIN as i32 {
        i8::MIN
    } else if v > i8::MAX as i32 {
        i8::MAX
    } else {
        v as i8
    }
}

/// `[f(args.., x) for every int8 x]`, indexed by `x`'s bits as a `u8`: the
/// table of an element-wise int8 function for [`lookup`], built in a
/// `const fn` (a macro, as a `const fn` cannot call a function pointer).
macro_rules! int8_table {
    ($f:ident($($arg:expr),*)) => {{
        let mut t = [0i8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $f($($arg,)* i as u8 as i8);
            i += 1;
        }
        t
    }};
}
pub(crate) use int8_table;

/// Asserts that `table` gives `f` of every int8 input through [`lookup`].
#[cfg(test)]
#[track_caller]
pub(crate) fn assert_table_is(table: &[i8; 256], f: impl Fn(i8) -> i8) {
    let mut x: Vec<i8> = (i8::MIN..=i8::MAX).collect();
    lookup(table, &mut x);
    for (q, y) in (i8::MIN..=i8::MAX).zip(x) {
        assert_eq!(y, f(q), "input {q}");
    }
}

/// `x <- table[x]` in place, the table indexed by the int8's bits as a
/// `u8`: an element-wise int8 function of one input, computed for all 256
/// inputs beforehand (`sigmoid::int8::table`, `tanh::int8::table`).
pub fn lookup(table: &[i8; 256], x: &mut [i8]) {
    for v in x.iter_mut() {
        *v = table[usize::from(*v as u8)];
    }
}

/// TFLite's QUANTIZE of one `f32`: `clamp(round(x / scale) + zero_point)`
/// with the division in `f32` and ties away from zero.
#[inline]
pub fn quantize(x: f32, scale: f32, zero_point: i32) -> i8 {
    let r = round_half_away(x / scale);
    // `as i32` saturates (and maps NaN to 0) where C++ would be undefined.
    let q = (r as i32).saturating_add(zero_point);
    q.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
}

/// TFLite's DEQUANTIZE of one int8: `scale * (q - zero_point)` computed in
/// `f64` (the scale widened) and rounded once to `f32`.
#[inline]
pub fn dequantize(q: i8, scale: f32, zero_point: i32) -> f32 {
    (f64::from(scale) * f64::from(i32::from(q) - zero_point)) as f32
}

/// [`quantize`] elementwise: `q[i] = quantize(x[i], scale, zero_point)`.
///
/// # Panics
///
/// If `x.len() != q.len()`.
pub fn quantize_slice(x: &[f32], scale: f32, zero_point: i32, q: &mut [i8]) {
    assert_eq!(
        x.len(),
        q.len(),
        "quantize: x has {} elements but q has {}",
        x.len(),
        q.len()
    );
    for (qi, &xi) in q.iter_mut().zip(x) {
        *qi = quantize(xi, scale, zero_point);
    }
}

/// [`dequantize`] elementwise: `x[i] = dequantize(q[i], scale, zero_point)`.
///
/// # Panics
///
/// If `q.len() != x.len()`.
pub fn dequantize_slice(q: &[i8], scale: f32, zero_point: i32, x: &mut [f32]) {
    assert_eq!(
        q.len(),
        x.len(),
        "dequantize: q has {} elements but x has {}",
        q.len(),
        x.len()
    );
    for (xi, &qi) in x.iter_mut().zip(q) {
        *xi = dequantize(qi, scale, zero_point);
    }
}

/// An int8 value's quantization: `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quant {
    /// The real step between consecutive integers; positive and finite.
    pub scale: f32,
    /// The integer that stands for real 0, in `[-128, 127]`.
    pub zero_point: i32,
}

impl Quant {
    /// Scale 1, zero point 0 (a placeholder for arrays filled later).
    pub const UNIT: Quant = Quant {
        scale: 1.0,
        zero_point: 0,
    };

    /// TFLite's quantization of the real range `[min, max]` (widened to
    /// hold 0, as the converter does): `scale = (max - min) / 255` and the
    /// zero point `-128 - min / scale`, rounded to nearest and kept in the
    /// int8 range. NaN bounds count as 0; the range `[0, 0]` (a value that
    /// is always 0, e.g. a dead relu) gets scale 1.
    pub fn from_range(min: f32, max: f32) -> Quant {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let width = (max - min) / 255.0;
        let scale = if width.is_normal() { width } else { 1.0 };
        let zero_point = round_half_away(-128.0 - min / scale) as i32;
        Quant {
            scale,
            zero_point: zero_point.clamp(-128, 127),
        }
    }
}

/// An activation fused into the op before it: TFLite's, applied as a clamp
/// of the int8 output, and the one the float convs' folded inference pass
/// applies in its store ([`crate::ops::conv::forward_gemm_folded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// No activation: the int8 range.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// The float bounds `(lo, hi)` a kernel's store clamps to, as
    /// `f32::clamp` does (NaN and -0.0 pass): the same values as the op's
    /// own pass ([`Activation::apply`]); `None` for no activation.
    pub fn bounds(self) -> Option<(f32, f32)> {
        match self {
            Activation::None => None,
            Activation::Relu => Some((0.0, f32::INFINITY)),
            Activation::Relu6 => Some((0.0, 6.0)),
        }
    }

    /// The activation's own pass over float values, in place.
    pub fn apply(self, y: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Relu => crate::ops::relu::forward(y),
            Activation::Relu6 => crate::ops::relu6::forward(y),
        }
    }
}

/// The inclusive int8 range an op's output is clamped to: the int8 range
/// narrowed by a fused [`Activation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Clamp {
    /// Smallest output.
    pub min: i8,
    /// Largest output.
    pub max: i8,
}

/// `zero_point + round(v / scale)` within the int8 range (one bound of
/// [`Clamp::for_activation`]).
const fn quantized_bound(v: f32, scale: f32, zero_point: i32) -> i8 {
    // `as i32` saturates where C++ would be undefined.
    saturate_i8(zero_point.saturating_add(round_half_away(v / scale) as i32))
}

impl Clamp {
    /// The whole int8 range, `[-128, 127]`.
    pub const FULL: Clamp = Clamp {
        min: i8::MIN,
        max: i8::MAX,
    };

    /// TFLite's `CalculateActivationRangeQuantized` for an int8 output of
    /// `(scale, zero_point)`: relu clamps below at the quantized 0, relu6
    /// also above at the quantized 6 (each quantized as
    /// `zero_point + round(v / scale)` in `f32`), both within the int8 range.
    ///
    /// The converter gives a relu/relu6 output a range starting at 0 (and
    /// ending at 6 or below), so for its models these bounds usually equal
    /// the int8 range and the clamp is the saturation to int8.
    pub const fn for_activation(act: Activation, scale: f32, zero_point: i32) -> Clamp {
        match act {
            Activation::None => Clamp::FULL,
            Activation::Relu => Clamp {
                min: quantized_bound(0.0, scale, zero_point),
                max: i8::MAX,
            },
            Activation::Relu6 => Clamp {
                min: quantized_bound(0.0, scale, zero_point),
                max: quantized_bound(6.0, scale, zero_point),
            },
        }
    }

    /// `v` clamped to `[min, max]`, as an int8.
    #[inline(always)]
    pub fn apply(self, v: i32) -> i8 {
        v.clamp(i32::from(self.min), i32::from(self.max)) as i8
    }
}

/// How an accumulating int8 op (conv, linear) reads its input and turns each
/// int32 sum into an int8 output:
///
/// `acc = bias[c] + sum w * (x - input_zero_point)`,
/// `y = clamp(requant[c].apply(acc) + output_zero_point)`.
///
/// `requant` has one entry per output channel, or a single entry used for
/// every channel (per-tensor weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputStage<'a> {
    /// Zero point of the input activation.
    pub input_zero_point: i32,
    /// Per-channel (or one shared) multiplier `in * w[c] / out`.
    pub requant: &'a [Requant],
    /// Zero point of the output activation.
    pub output_zero_point: i32,
    /// Output range (the fused activation).
    pub clamp: Clamp,
}

impl OutputStage<'_> {
    /// Asserts that `requant` fits `channels` output channels (1 or
    /// `channels` entries).
    #[track_caller]
    pub fn check(&self, op: &str, channels: usize) {
        let n = self.requant.len();
        assert!(
            n == 1 || n == channels,
            "{op}: {n} requantization multipliers, expected 1 or {channels} (one per output channel)"
        );
    }

    /// The output of channel `c` for the int32 sum `acc` (bias included).
    #[inline(always)]
    pub fn output(&self, acc: i32, c: usize) -> i8 {
        let r = if self.requant.len() == 1 {
            self.requant[0]
        } else {
            self.requant[c]
        };
        self.clamp
            .apply(r.apply(acc).saturating_add(self.output_zero_point))
    }
}

/// How TFLM's int8 LOGISTIC and TANH bring an input `q` into gemmlowp's
/// Q4.27 fixed point (4 integer bits, so reals in `[-16, 16)`): with
/// `d = q - zero_point`, inputs with `|d| >= radius` saturate the output,
/// the others map to `multiply_by_quantized_multiplier(d, multiplier,
/// shift)`, i.e. `d * scale * 2^27` (which the radius keeps below `2^31`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Q4Input {
    /// Zero point of the input.
    pub zero_point: i32,
    /// Q0.31 fraction of `scale * 2^27`.
    pub multiplier: i32,
    /// Exponent of `scale * 2^27` (a left shift for scales above `2^-27`).
    pub shift: i32,
    /// `floor(15 * 2^27 / 2^shift)`. With `scale * 2^27 = f * 2^shift`
    /// (`f` in `[0.5, 1)`, the fraction behind `multiplier`), `radius * scale`
    /// is about `15 f`: the saturation starts between 7.5 and 15, where both
    /// functions are already saturated at 8 bits.
    pub radius: i32,
}

impl Q4Input {
    /// Integer bits of the fixed-point input (TFLM's `kInputIntegerBits`).
    pub const INTEGER_BITS: i32 = 4;

    /// TFLM's preparation of int8 LOGISTIC / TANH for an input of
    /// `(scale, zero_point)`: `frexp(scale * 2^27) = (f, shift)`,
    /// `multiplier = round(f * 2^31)` and `radius` as documented.
    ///
    /// Unlike [`Requant::from_real`], TFLM does not renormalise a fraction
    /// that rounds up to `2^31` (possible only for a scale within `2^-32`
    /// relative of a power of two); the conversion to `i32` then wraps to
    /// `i32::MIN` as it does on x86 and Arm.
    ///
    /// # Panics
    ///
    /// If `scale` is not positive and finite, or so small (below `2^-27`)
    /// that the shift would be negative.
    pub const fn prepare(scale: f32, zero_point: i32) -> Q4Input {
        match Self::try_prepare(scale, zero_point) {
            Some(q) => q,
            None => panic!("logistic/tanh: the input scale must be positive, finite and at least 2^-27"),
        }
    }

    /// [`Q4Input::prepare`], or `None` for a scale it panics on.
    pub const fn try_prepare(scale: f32, zero_point: i32) -> Option<Q4Input> {
        if !(scale.is_finite() && scale > 0.0) {
            return None;
        }
        let real = scale as f64 * (1u32 << (31 - Self::INTEGER_BITS)) as f64;
        let (f, shift) = frexp(real);
        if shift < 0 || shift > 62 {
            return None;
        }
        let multiplier = round_f64(f * TWO_POW_31) as i64 as i32;
        let max_rescaled = ((1 << Self::INTEGER_BITS) - 1) as f64
            * (1u64 << (31 - Self::INTEGER_BITS)) as f64
            / (1u64 << shift) as f64;
        Some(Q4Input {
            zero_point,
            multiplier,
            shift,
            radius: floor_f64(max_rescaled) as i32,
        })
    }

    /// `d = q - zero_point` and, if `|d| < radius`, `d` in Q4.27; `Err`
    /// carries the saturated side (`true` for positive).
    #[inline(always)]
    pub const fn to_q4(self, q: i8) -> Result<i32, bool> {
        let d = q as i32 - self.zero_point;
        if d <= -self.radius {
            Err(false)
        } else if d >= self.radius {
            Err(true)
        } else {
            Ok(multiply_by_quantized_multiplier(d, self.multiplier, self.shift))
        }
    }
}

/// gemmlowp's scalar fixed-point maths (`fixedpoint/fixedpoint.h`), which
/// TFLM's int8 LOGISTIC and TANH evaluate: values are raw `i32` in Qm.n with
/// `m` integer bits and `n = 31 - m` fraction bits; products go through
/// [`saturating_rounding_doubling_high_mul`] and `m` of the result is the sum
/// of the operands'. Plain additions wrap (in C++ they would be undefined on
/// overflow; the algorithms keep them in range).
pub mod fixed {
    use super::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul as mul};

    /// `x * 2^exponent` with saturation to the `i32` range (gemmlowp's
    /// `SaturatingRoundingMultiplyByPOT` for a positive exponent), as used by
    /// `Rescale` to drop integer bits.
    #[inline(always)]
    const fn saturating_shl(x: i32, exponent: u32) -> i32 {
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    }

    /// The Q0 value just below one, gemmlowp's `FixedPoint<_, 0>::One()`.
    const ONE_Q0: i32 = i32::MAX;
    /// One in Q2.29.
    const ONE_Q2: i32 = 1 << 29;

    /// `exp(a)` for `a` in `[-1/4, 0)`, Q0.31 in and out: a degree-4 Taylor
    /// polynomial around `-1/8`.
    const fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
        const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
        const ONE_THIRD: i32 = 715_827_883;
        let x = a.wrapping_add(1 << 28); // a + 1/8
        let x2 = mul(x, x);
        let x3 = mul(x2, x);
        let x4 = mul(x2, x2);
        let x4_over_4 = rounding_divide_by_pot(x4, 2);
        let poly = rounding_divide_by_pot(mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2), 1);
        EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
    }

    /// `exp(a)` for `a <= 0` given in Q`IB`.(31-`IB`), as Q0.31 (`exp(0)`
    /// is `i32::MAX`, the Q0.31 value just below one): `a` is split into its
    /// remainder modulo 1/4, handled by the polynomial, and the multiples of
    /// `1/4, 1/2, 1, .. 16` it contains, each multiplying in a constant
    /// `exp(-2^k)`.
    pub const fn exp_on_negative_values<const IB: u32>(a: i32) -> i32 {
        let frac_bits = 31 - IB;
        let one_quarter = 1i32 << (frac_bits - 2);
        let mask = one_quarter - 1;
        let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
        let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(saturating_shl(
            a_mod_quarter_minus_one_quarter,
            IB,
        ));
        let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
        // (k, exp(-2^k) in Q0.31), multiplied in for each set bit of weight
        // 2^k in `remainder`, the part of `-a` the polynomial did not cover.
        const BARREL: [(i32, i32); 7] = [
            (-2, 1_672_461_947),
            (-1, 1_302_514_674),
            (0, 790_015_084),
            (1, 290_630_308),
            (2, 39_332_535),
            (3, 720_401),
            (4, 242),
        ];
        let mut i = 0;
        while i < BARREL.len() {
            let (k, factor) = BARREL[i];
            if (IB as i32) > k {
                let bit = (frac_bits as i32 + k) as u32;
                if remainder & (1i32 << bit) != 0 {
                    result = mul(result, factor);
                }
            }
            i += 1;
        }
        if IB > 5 {
            // exp(a) < 2^-31 below -32: flush to zero.
            let clamp = -(1i32 << (36 - IB));
            if a < clamp {
                result = 0;
            }
        }
        if a == 0 {
            ONE_Q0
        } else {
            result
        }
    }

    /// Newton-Raphson reciprocal of `half_denominator = (1 + x) / 2` (Q0.31,
    /// in `[1/2, 1)`), three iterations from `48/17 - 32/17 d`: `1 / d` in
    /// Q2.29.
    const fn reciprocal_of_half_denominator(half_denominator: i32) -> i32 {
        const FORTY_EIGHT_OVER_17: i32 = 1_515_870_810; // Q2.29
        const NEG_THIRTY_TWO_OVER_17: i32 = -1_010_580_540; // Q2.29
        let mut x = FORTY_EIGHT_OVER_17.wrapping_add(mul(half_denominator, NEG_THIRTY_TWO_OVER_17));
        let mut i = 0;
        while i < 3 {
            let half_denominator_times_x = mul(half_denominator, x);
            let one_minus = ONE_Q2.wrapping_sub(half_denominator_times_x);
            x = x.wrapping_add(saturating_shl(mul(x, one_minus), 2));
            i += 1;
        }
        x
    }

    /// `(a + 1) / 2` rounded half away from zero, gemmlowp's
    /// `RoundingHalfSum(a, One())` in Q0.31.
    #[inline(always)]
    const fn half_sum_with_one(a: i32) -> i32 {
        let sum = a as i64 + ONE_Q0 as i64;
        let sign = if sum >= 0 { 1 } else { -1 };
        ((sum + sign) / 2) as i32
    }

    /// `1 / (1 + x)` for `x` in `(0, 1)`, Q0.31 in and out.
    const fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
        let x = reciprocal_of_half_denominator(half_sum_with_one(a));
        // 1 / (1 + a) = (1 / half_denominator) / 2: Q2.29 -> Q1.30 -> Q0.31.
        saturating_shl(x, 1)
    }

    /// `(1 - x) / (1 + x)` for `x` in `(0, 1)`, Q0.31 in and out.
    const fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
        let x = reciprocal_of_half_denominator(half_sum_with_one(a));
        // (1 - a) / (1 + a) = 1 / half_denominator - 1, Q2.29 -> Q0.31.
        saturating_shl(x.wrapping_sub(ONE_Q2), 2)
    }

    /// gemmlowp's `logistic`: `1 / (1 + exp(-a))` for `a` in Q`IB`, as Q0.31
    /// (`0.5` is exactly `2^30`). Computed for `|a|` and reflected as
    /// `1 - f(|a|)` for negative `a`.
    pub const fn logistic<const IB: u32>(a: i32) -> i32 {
        if a == 0 {
            return 1 << 30;
        }
        let abs = if a > 0 { a } else { a.wrapping_neg() };
        let positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values::<IB>(abs.wrapping_neg()));
        if a > 0 {
            positive
        } else {
            ONE_Q0.wrapping_sub(positive)
        }
    }

    /// gemmlowp's `tanh`: `(1 - exp(-2|a|)) / (1 + exp(-2|a|))` for `a` in
    /// Q`IB`, as Q0.31, with the sign of `a`. `-2|a|` is the same raw value
    /// read with one more integer bit, so `exp` runs in Q(`IB`+1).
    pub const fn tanh<const IB: u32, const IB_PLUS_1: u32>(a: i32) -> i32 {
        debug_assert!(IB + 1 == IB_PLUS_1);
        if a == 0 {
            return 0;
        }
        let negative_abs = if a < 0 { a } else { a.wrapping_neg() };
        let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values::<IB_PLUS_1>(negative_abs));
        if a < 0 {
            t.wrapping_neg()
        } else {
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `round(n / 2^e)`, ties toward +inf, computed exactly in i128.
    fn round_half_up_div_pow2(n: i128, e: u32) -> i128 {
        (n + (1i128 << e >> 1)) >> e
    }

    /// `round(n / 2^e)`, ties away from zero, computed exactly in i128.
    fn round_div_pow2(n: i128, e: u32) -> i128 {
        let d = 1i128 << e;
        let q = n.abs() / d;
        let r = n.abs() % d;
        let q = if 2 * r >= d { q + 1 } else { q };
        if n < 0 {
            -q
        } else {
            q
        }
    }

    #[test]
    fn quantize_multiplier_known_values() {
        // TFLite's quantization_util_test (QuantizeMultiplierArray).
        let cases: [(f64, i32, i32); 13] = [
            (-4.0, -1_073_741_824, 3),
            (-2.0, -1_073_741_824, 2),
            (-1.0, -1_073_741_824, 1),
            (-0.5, -1_073_741_824, 0),
            (-0.25, -1_073_741_824, -1),
            (-0.125, -1_073_741_824, -2),
            (0.0, 0, 0),
            (0.125, 1_073_741_824, -2),
            (0.25, 1_073_741_824, -1),
            (0.5, 1_073_741_824, 0),
            (1.0, 1_073_741_824, 1),
            (2.0, 1_073_741_824, 2),
            (4.0, 1_073_741_824, 3),
        ];
        for (real, multiplier, shift) in cases {
            assert_eq!(Requant::from_real(real), Requant { multiplier, shift }, "{real}");
        }
        // frexp(123.45) = 0.964453125.. * 2^7 (IntegerFrExp test: 2071147315).
        assert_eq!(
            Requant::from_real(123.45),
            Requant {
                multiplier: 2_071_147_315,
                shift: 7
            }
        );
        // A fraction that rounds up to 2^31 is renormalised.
        let just_below_one = 1.0 - f64::EPSILON;
        assert_eq!(
            Requant::from_real(just_below_one),
            Requant {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        // Below 2^-32 the multiplier flushes to zero.
        assert_eq!(Requant::from_real(1e-10), Requant::ZERO);
        assert_eq!(Requant::from_real(1e-9).shift, -29);
    }

    #[test]
    fn per_tensor_linear_rounds_the_product_to_f32() {
        // Scales (exact f32 values) whose f32 product loses enough bits for
        // the two preparations to give different multipliers.
        let (i, w, o) = (0.127_755_37_f32, 0.054_687_556_f32, 0.009_153_731_f32);
        assert_eq!(
            Requant::per_channel(i, w, o),
            Requant {
                multiplier: 1_639_077_176,
                shift: 0
            }
        );
        assert_eq!(
            Requant::per_tensor_linear(i, w, o),
            Requant {
                multiplier: 1_639_077_194,
                shift: 0
            }
        );
    }

    #[test]
    fn srdhm_edge_cases() {
        // The only overflow: (-1) * (-1) = 1 is not in [-1, 1).
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        assert_eq!(saturating_rounding_doubling_high_mul(0, i32::MIN), 0);
        // 1/2 * 1/2 = 1/4.
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        // Ties round up (toward +inf, like VQRDMULH): 3 * 2^30 / 2^31 = 1.5
        // -> 2 but -1.5 -> -1, and -0.5 -> 0.
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-5, 1 << 30), -2);
        // Just below a tie: 1.25 -> 1, -1.25 -> -1.
        assert_eq!(saturating_rounding_doubling_high_mul(5, 1 << 29), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-5, 1 << 29), -1);
    }

    #[test]
    fn rounding_divide_by_pot_edge_cases() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rounding_divide_by_pot(-3, 1), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-1, 1), -1); // -0.5 -> -1
        assert_eq!(rounding_divide_by_pot(1, 1), 1); // 0.5 -> 1
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(1 << 29, 31), 0); // 0.25
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1); // -0.5
    }

    #[test]
    fn multiply_by_quantized_multiplier_shifts() {
        let half = Requant::from_real(0.5);
        // shift 0: only the high multiply rounds, ties up.
        assert_eq!(half.apply(7), 4); // 3.5 -> 4
        assert_eq!(half.apply(-7), -3); // -3.5 -> -3

        // shift > 0: 3 * 3.0 = 9, 3.0 = 0.75 * 2^2.
        let three = Requant::from_real(3.0);
        assert_eq!(
            three,
            Requant {
                multiplier: 3 << 29,
                shift: 2
            }
        );
        assert_eq!(three.apply(3), 9);
        assert_eq!(three.apply(-3), -9);
        // shift < 0: 1000 * 0.01.
        let hundredth = Requant::from_real(0.01);
        assert!(hundredth.shift < 0);
        assert_eq!(hundredth.apply(1000), 10);
        assert_eq!(hundredth.apply(-1050), -11); // -10.5 -> -11
        assert_eq!(hundredth.apply(1049), 10);
        // Double rounding: 5 * 0.25 = 1.25 would round to 1 in one step, but
        // the high multiply first rounds 5 * 0.5 = 2.5 up to 3, and the shift
        // then rounds 1.5 away from zero to 2. For -5 the high multiply
        // rounds -2.5 up to -2, and -2 / 2 = -1.
        let quarter = Requant::from_real(0.25);
        assert_eq!(
            quarter,
            Requant {
                multiplier: 1 << 30,
                shift: -1
            }
        );
        assert_eq!(quarter.apply(5), 2);
        assert_eq!(quarter.apply(-5), -1);
        assert_eq!(quarter.apply(6), 2); // 1.5 -> 2
        assert_eq!(quarter.apply(-6), -2); // -1.5 -> -2
    }

    #[test]
    fn quantize_and_dequantize_round_half_away() {
        assert_eq!(quantize(0.5, 1.0, 0), 1);
        assert_eq!(quantize(-0.5, 1.0, 0), -1);
        assert_eq!(quantize(1.5, 1.0, -128), -126);
        assert_eq!(quantize(1000.0, 1.0, 0), 127);
        assert_eq!(quantize(-1000.0, 1.0, 0), -128);
        assert_eq!(quantize(f32::NAN, 1.0, 3), 3);
        assert_eq!(quantize(1.0, 1.0 / 255.0, -128), 127);
        assert_eq!(dequantize(127, 1.0 / 255.0, -128), 1.0);
        assert_eq!(dequantize(-128, 0.5, -128), 0.0);
        let mut q = [0i8; 3];
        quantize_slice(&[0.0, 0.25, -0.25], 0.1, 1, &mut q);
        assert_eq!(q, [1, 4, -2]); // 2.5 -> 3, -2.5 -> -3
        let mut x = [0.0f32; 3];
        dequantize_slice(&q, 0.1, 1, &mut x);
        assert_eq!(x, [0.0, 0.3, -0.3]);
    }

    #[test]
    fn activation_clamps() {
        assert_eq!(Clamp::for_activation(Activation::None, 0.1, 5), Clamp::FULL);
        let relu = Clamp::for_activation(Activation::Relu, 0.1, -20);
        assert_eq!(relu, Clamp { min: -20, max: 127 });
        let relu6 = Clamp::for_activation(Activation::Relu6, 0.1, -20);
        assert_eq!(relu6, Clamp { min: -20, max: 40 });
        // As the converter sets relu6 outputs up: [0, 6] over the int8 range.
        let relu6 = Clamp::for_activation(Activation::Relu6, 6.0 / 255.0, -128);
        assert_eq!(relu6, Clamp::FULL);
        assert_eq!(relu.apply(-100), -20);
        assert_eq!(relu.apply(1000), 127);
    }

    #[test]
    fn output_stage_per_tensor_and_per_channel() {
        let r = [Requant::from_real(0.5), Requant::from_real(0.25)];
        let stage = OutputStage {
            input_zero_point: 0,
            requant: &r,
            output_zero_point: 10,
            clamp: Clamp { min: -5, max: 100 },
        };
        stage.check("test", 2);
        assert_eq!(stage.output(100, 0), 60);
        assert_eq!(stage.output(100, 1), 35);
        assert_eq!(stage.output(-1000, 1), -5);
        let one = OutputStage {
            requant: &r[..1],
            ..stage
        };
        assert_eq!(one.output(100, 1), 60);
    }

    #[test]
    #[should_panic(expected = "conv: 2 requantization multipliers, expected 1 or 3")]
    fn output_stage_checks_channels() {
        let r = [Requant::ZERO; 2];
        let stage = OutputStage {
            input_zero_point: 0,
            requant: &r,
            output_zero_point: 0,
            clamp: Clamp::FULL,
        };
        stage.check("conv", 3);
    }

    #[test]
    fn q4_input_as_tflm_prepares_it() {
        // LeNet's first LOGISTIC in tests/fixtures/int8/lenet_sigmoid.json.
        let p = Q4Input::prepare(0.035_930_674, -86);
        assert_eq!((p.multiplier, p.shift, p.radius), (1_234_568_576, 23, 240));
        assert!(p.to_q4(127).is_ok()); // d = 213 < 240
        let p = Q4Input::prepare(0.125_430_39, 3);
        assert_eq!((p.multiplier, p.shift, p.radius), (1_077_438_848, 25, 60));
        assert_eq!(p.to_q4(63), Err(true));
        assert_eq!(p.to_q4(-57), Err(false));
        assert!(p.to_q4(62).is_ok());
        assert_eq!(p.to_q4(3), Ok(0));
    }

    #[test]
    fn fixed_point_functions_are_accurate() {
        let q = |raw: i32, ib: u32| f64::from(raw) / f64::from(1u32 << (31 - ib));
        for i in 0..2000 {
            let a = -(i * 1_000_000); // Q4.27 in [-16, 0]
            let e = fixed::exp_on_negative_values::<4>(a);
            assert!((q(e, 0) - q(a, 4).exp()).abs() < 1e-6, "exp({})", q(a, 4));
            let l = fixed::logistic::<4>(a);
            let expected = 1.0 / (1.0 + (-q(a, 4)).exp());
            assert!((q(l, 0) - expected).abs() < 1e-6, "logistic({})", q(a, 4));
            let t = fixed::tanh::<4, 5>(a);
            assert!((q(t, 0) - q(a, 4).tanh()).abs() < 1e-6, "tanh({})", q(a, 4));
            let t = fixed::tanh::<4, 5>(-a);
            assert!((q(t, 0) - (-q(a, 4)).tanh()).abs() < 1e-6, "tanh({})", -q(a, 4));
        }
        assert_eq!(fixed::logistic::<4>(0), 1 << 30);
        assert_eq!(fixed::tanh::<4, 5>(0), 0);
        assert_eq!(fixed::exp_on_negative_values::<4>(0), i32::MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The `const fn` frexp, round and floor are libm's (C's), bit for
        /// bit, on every kind of f64 (subnormals, ties, huge values).
        #[test]
        fn const_float_helpers_match_libm(bits in any::<u64>(), small in -1e7f64..1e7, tie in -4096i64..4096) {
            let x = f64::from_bits(bits);
            if x.is_finite() {
                let (f, e) = frexp(x);
                let (lf, le) = libm::frexp(x);
                prop_assert_eq!((f.to_bits(), e), (lf.to_bits(), le), "frexp({:e})", x);
                prop_assert_eq!(round_f64(x).to_bits(), libm::round(x).to_bits(), "round({:e})", x);
                prop_assert_eq!(floor_f64(x).to_bits(), libm::floor(x).to_bits(), "floor({:e})", x);
            }
            for v in [small, tie as f64 + 0.5, tie as f64 - 0.5] {
                prop_assert_eq!(round_f64(v).to_bits(), libm::round(v).to_bits(), "round({})", v);
                prop_assert_eq!(floor_f64(v).to_bits(), libm::floor(v).to_bits(), "floor({})", v);
                let v32 = v as f32;
                prop_assert_eq!(round_half_away(v32).to_bits(), libm::roundf(v32).to_bits(), "roundf({})", v32);
            }
        }

        #[test]
        fn srdhm_is_the_rounded_product(a: i32, b: i32) {
            let expected = if a == i32::MIN && b == i32::MIN {
                i128::from(i32::MAX)
            } else {
                round_half_up_div_pow2(i128::from(a) * i128::from(b), 31)
            };
            prop_assert_eq!(i128::from(saturating_rounding_doubling_high_mul(a, b)), expected);
        }

        #[test]
        fn rdbpot_is_the_rounded_quotient(x: i32, e in 0u32..=31) {
            prop_assert_eq!(i128::from(rounding_divide_by_pot(x, e)), round_div_pow2(i128::from(x), e));
        }

        #[test]
        fn mbqm_is_within_one_of_the_exact_product(x in -(1i32 << 24)..(1 << 24), real in 1e-6f64..0.99) {
            let r = Requant::from_real(real);
            prop_assert!((1 << 30..=i32::MAX).contains(&r.multiplier));
            let exact = round_div_pow2(i128::from(x) * i128::from(r.multiplier), (31 - r.shift) as u32);
            let got = i128::from(r.apply(x));
            prop_assert!((got - exact).abs() <= 1, "{} vs {}", got, exact);
            // And the multiplier represents the real to 2^-31 relative.
            let represented = f64::from(r.multiplier) * 2f64.powi(r.shift - 31);
            prop_assert!((represented - real).abs() <= real * 1e-9);
        }
    }
}
