//! Instruction-set multiversioning for the element-wise and direct kernels,
//! picked once per process (the GEMM has its own selection in `gemm::kernel`).
//!
//! A kernel is written once as an `#[inline(always)]` body in plain Rust,
//! generic over `const FMA: bool`; [`multiversion!`] compiles that body three
//! times (baseline, AVX2 + FMA, AVX-512F) and calls the best copy this CPU
//! runs. LLVM auto-vectorizes each copy for its target, and with `FMA` the
//! body uses fused multiply-adds ([`madd`]). Detection needs `std`; without
//! it only the baseline copy exists (unless the crate is compiled with those
//! target features enabled, which the baseline copy then uses).
//!
//! Results may differ in the last bits between copies (FMA rounds once);
//! a given machine always takes the same copy, so runs stay reproducible.

#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) mod x86;

/// The instruction sets [`multiversion!`] compiles for, in ascending order.
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The build's target features only.
    Baseline,
    /// `x86_64` AVX2 and FMA.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    Avx2Fma,
    /// `x86_64` AVX-512F (with AVX2 and FMA).
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    Avx512,
}

/// The best [`Level`] this CPU supports, at most [`cap`], detected once
/// per process.
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
#[inline]
pub(crate) fn level() -> Level {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        static CHOICE: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let detected = if avx2 && is_x86_feature_detected!("avx512f") {
                Level::Avx512
            } else if avx2 {
                Level::Avx2Fma
            } else {
                Level::Baseline
            };
            detected.min(cap())
        })
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    Level::Baseline
}

/// The environment variable that caps the instruction set the kernels use:
/// `baseline` (the build's target features only), `avx2` (AVX2 + FMA) or
/// `avx512`, case-insensitive. For reproducing another machine's results
/// bit for bit (each copy rounds in its own order) and for measuring the
/// smaller copies on a larger CPU. Read once per process, at the first
/// kernel call (which, when the variable is set, allocates its value once:
/// `std::env::var_os`); any other value is ignored with a warning on
/// stderr.
pub const MAX_ISA_VAR: &str = "CNN_MAX_ISA";

/// The [`Level`] a [`MAX_ISA_VAR`] value names, `None` for anything else.
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
pub(crate) fn parse_cap(value: &str) -> Option<Level> {
    let is = |name: &str| value.trim().eq_ignore_ascii_case(name);
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    let (avx2, avx512) = (Level::Avx2Fma, Level::Avx512);
    // Elsewhere only the baseline copy exists: an x86 cap is no cap.
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    let (avx2, avx512) = (Level::Baseline, Level::Baseline);
    if is("baseline") {
        Some(Level::Baseline)
    } else if is("avx2") {
        Some(avx2)
    } else if is("avx512") {
        Some(avx512)
    } else {
        None
    }
}

/// The highest [`Level`] [`MAX_ISA_VAR`] allows (every level when it is
/// unset or invalid), read once per process.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) fn cap() -> Level {
    static CAP: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        let Some(value) = std::env::var_os(MAX_ISA_VAR) else {
            return Level::Avx512;
        };
        match value.to_str().and_then(parse_cap) {
            Some(level) => level,
            None => {
                std::eprintln!(
                    "warning: {MAX_ISA_VAR}={} is not one of baseline, avx2, avx512 (ignored: the kernels use \
                     the best instruction set of this CPU)",
                    value.to_string_lossy()
                );
                Level::Avx512
            }
        }
    })
}

/// `a * b + c`, fused (one rounding) when `FMA`, which only the copies
/// compiled with the `fma` feature pass; otherwise a multiply and an add.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    if FMA {
        return a.mul_add(b, c);
    }
    a * b + c
}

/// `multiversion!(fn name(args) => body::<FMA>)` defines `fn name(args)`
/// that calls `body::<true>(args)` compiled for AVX-512F or AVX2 + FMA when
/// the CPU has them, else `body::<false>(args)` for the baseline target.
/// `body` must be `#[inline(always)]` so each copy is compiled for its
/// features.
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$attr])*
        #[inline]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                match $crate::ops::simd::level() {
                    // SAFETY: `level()` detected these features on this CPU.
                    $crate::ops::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::ops::simd::Level::Avx2Fma => return unsafe { avx2($($arg),*) },
                    $crate::ops::simd::Level::Baseline => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_isa_values() {
        assert_eq!(parse_cap("baseline"), Some(Level::Baseline));
        assert_eq!(parse_cap(" Baseline\n"), Some(Level::Baseline));
        for bad in ["", "sse2", "avx", "avx-512", "avx2 avx512"] {
            assert_eq!(parse_cap(bad), None, "{bad:?}");
        }
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            assert_eq!(parse_cap("AVX2"), Some(Level::Avx2Fma));
            assert_eq!(parse_cap("avx512"), Some(Level::Avx512));
            assert!(Level::Baseline < Level::Avx2Fma && Level::Avx2Fma < Level::Avx512);
            assert!(level() <= cap());
        }
    }
}
