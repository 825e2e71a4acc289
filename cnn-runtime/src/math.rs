//! Scalar `f32` maths for the kernels: with the `std` feature these are the
//! inherent `f32` methods (the platform's libm), without it the pure-Rust
//! [`libm`] crate, so `#![no_std]` builds need neither `std` nor `alloc`.
//!
//! Results may differ in the last ulp between the two builds.

/// `e^x`.
#[inline]
pub fn exp(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.exp()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::expf(x)
    }
}

/// Hyperbolic tangent, `(e^x - e^-x) / (e^x + e^-x)`.
#[inline]
pub fn tanh(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.tanh()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::tanhf(x)
    }
}

/// Natural logarithm; `ln(0) = -inf`, negative inputs give NaN.
#[inline]
pub fn ln(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.ln()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::logf(x)
    }
}

/// Square root; negative inputs give NaN.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::sqrtf(x)
    }
}

/// Logistic sigmoid `1 / (1 + e^-x)` (PyTorch `torch.sigmoid`).
///
/// `exp` is only ever taken of a non-positive number, so it never overflows:
/// for `x < 0` the equivalent form `e^x / (1 + e^x)` is used, which also keeps
/// full relative precision for very negative `x` (no `1 - tiny` cancellation).
/// The result lies in `[0, 1]`; NaN stays NaN.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + exp(-x))
    } else {
        let e = exp(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_reference() {
        let mut x = -30.0f32;
        while x <= 30.0 {
            let xd = f64::from(x);
            let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-6 * (1.0 + b.abs());
            assert!(close(exp(x.min(20.0)), xd.min(20.0).exp()), "exp({x})");
            assert!(close(tanh(x), xd.tanh()), "tanh({x})");
            assert!(close(sigmoid(x), 1.0 / (1.0 + (-xd).exp())), "sigmoid({x})");
            if x > 0.0 {
                assert!(close(ln(x), xd.ln()), "ln({x})");
                assert!(close(sqrt(x), xd.sqrt()), "sqrt({x})");
            }
            x += 0.37;
        }
    }

    #[test]
    fn sigmoid_saturates_without_nan() {
        assert_eq!(sigmoid(1e4), 1.0);
        assert_eq!(sigmoid(-1e4), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(f32::NAN).is_nan());
        // Precision for very negative inputs: e^-80 / (1 + e^-80) ~ 1.8e-35.
        let tiny = sigmoid(-80.0);
        assert!((f64::from(tiny) / (-80.0f64).exp() - 1.0).abs() < 1e-5);
    }
}
