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

/// The instruction sets [`multiversion!`] compiles for.
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// The best [`Level`] this CPU supports, detected once per process.
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
#[inline]
pub(crate) fn level() -> Level {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        static CHOICE: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 && is_x86_feature_detected!("avx512f") {
                Level::Avx512
            } else if avx2 {
                Level::Avx2Fma
            } else {
                Level::Baseline
            }
        })
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    Level::Baseline
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
