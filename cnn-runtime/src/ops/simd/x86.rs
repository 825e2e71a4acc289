//! [`Vector`]: the vector operations of AVX-512F and of AVX2 + FMA behind
//! one trait, so a kernel written once over `V: Vector` compiles to either
//! (inside a function with the matching `#[target_feature]`).

use core::arch::x86_64::*;

/// The few vector operations the explicitly vectorized kernels need, for one
/// instruction set: the direct convolution's row tiles (`conv/x86.rs`), its
/// channel tiles (`conv/lanes.rs`), the GEMM's inner-product tiles
/// (`gemm/kernel.rs`), the depthwise tiles and the Winograd passes'
/// arithmetic are each written once, generic over it.
pub(crate) trait Vector {
    const LANES: usize;
    type Vec: Copy;
    type Mask: Copy;
    /// All lanes zero.
    fn zero() -> Self::Vec;
    /// Lanes `l` with `lo <= l < hi` (any integers).
    fn mask(lo: isize, hi: isize) -> Self::Mask;
    /// Lanes in `m` from `p + l`, others zero; lanes outside `m` are not read.
    unsafe fn load(p: *const f32, m: Self::Mask) -> Self::Vec;
    /// Lanes in `m` from `p + l`, the others from `v` (zero in the lanes of
    /// `m`); lanes outside `m` are not read.
    unsafe fn load_merge(v: Self::Vec, p: *const f32, m: Self::Mask) -> Self::Vec;
    /// Lanes in `m` to `p + l`; others are not written.
    unsafe fn store(p: *mut f32, m: Self::Mask, v: Self::Vec);
    /// `LANES` floats from `p`.
    unsafe fn loadu(p: *const f32) -> Self::Vec;
    /// `v` to the `LANES` floats at `p`.
    unsafe fn storeu(p: *mut f32, v: Self::Vec);
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self::Vec;
    /// `a * b + c`, rounded once.
    unsafe fn fmadd(a: Self::Vec, b: Self::Vec, c: Self::Vec) -> Self::Vec;
    /// `a + b`.
    unsafe fn add(a: Self::Vec, b: Self::Vec) -> Self::Vec;
    /// `a - b`.
    unsafe fn sub(a: Self::Vec, b: Self::Vec) -> Self::Vec;
    /// `a * b`.
    unsafe fn mul(a: Self::Vec, b: Self::Vec) -> Self::Vec;
    /// `lo` in the lanes where `v < lo`, `hi` where `v > hi`, `v` elsewhere
    /// (NaN and -0.0 stay): `f32::clamp` lane by lane.
    unsafe fn clamp(v: Self::Vec, lo: Self::Vec, hi: Self::Vec) -> Self::Vec;
    /// `v` folded to 8 lanes with the same total: its two halves added
    /// (AVX-512) or `v` itself (AVX2), the first step of a horizontal sum.
    unsafe fn fold8(v: Self::Vec) -> __m256;
    /// The total of each of the four vectors, in lanes 0 to 3.
    unsafe fn sum4(v: [Self::Vec; 4]) -> __m128;
}

/// [`Vector`] of AVX-512F.
pub(crate) struct Avx512;

impl Vector for Avx512 {
    const LANES: usize = 16;
    type Vec = __m512;
    type Mask = __mmask16;
    #[inline(always)]
    fn zero() -> __m512 {
        // SAFETY: only called from code compiled with AVX-512F.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn mask(lo: isize, hi: isize) -> __mmask16 {
        let lo = lo.clamp(0, 16) as u32;
        let hi = hi.clamp(lo as isize, 16) as u32;
        ((1u32 << hi) - (1u32 << lo)) as u16
    }
    #[inline(always)]
    unsafe fn load(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the lanes in `m` are readable.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn load_merge(v: __m512, p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the lanes in `m` are readable.
        unsafe { _mm512_mask_loadu_ps(v, m, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the caller guarantees the lanes in `m` are writable.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees `LANES` readable floats.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn storeu(p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees `LANES` writable floats.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { _mm512_set1_ps(*p) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn clamp(v: __m512, lo: __m512, hi: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F. `vmaxps`/`vminps` return
        // their second operand when either is NaN or both are zeros, so with
        // `v` second NaN and -0.0 pass.
        unsafe { _mm512_min_ps(hi, _mm512_max_ps(lo, v)) }
    }
    #[inline(always)]
    unsafe fn fold8(v: __m512) -> __m256 {
        // SAFETY: the caller guarantees AVX-512F (the 64-bit extract is
        // AVX-512F; the 32-bit one would need AVX-512DQ).
        unsafe {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
            _mm256_add_ps(_mm512_castps512_ps256(v), high)
        }
    }
    #[inline(always)]
    unsafe fn sum4(v: [__m512; 4]) -> __m128 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe {
            // Quarters (128 bits) q0 + q2 and q1 + q3 of vectors 0 and 1,
            // then of 2 and 3.
            let h01 = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(v[0], v[1]),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(v[0], v[1]),
            );
            let h23 = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(v[2], v[3]),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(v[2], v[3]),
            );
            // Quarter r: four partial sums of vector r.
            let q = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(h01, h23),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(h01, h23),
            );
            // Within each quarter: lane 0 gets the quarter's total.
            let q = _mm512_add_ps(q, _mm512_permute_ps::<0b00_00_11_10>(q));
            let q = _mm512_add_ps(q, _mm512_permute_ps::<0b00_00_00_01>(q));
            let lanes = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            _mm512_castps512_ps128(_mm512_permutexvar_ps(lanes, q))
        }
    }
}

/// `x[i] <- f(x[i])` eight floats at a time on AVX2, every float stored,
/// the last `x.len() % 8` through [`Avx2`]'s masked load and store (plain
/// stores since it has none of `vmaskmovps`'s): for the elementwise passes
/// whose portable bodies store only the floats they change (or, the same
/// to LLVM, a select of a float's old value), which LLVM compiles on AVX2
/// to `vmaskmovps`, microcoded on AMD's Zen 1 to 3 (ReLU's forward pass
/// took 10% of ResNet's batch-256 inference on a Zen 3 with it, 1% as
/// here). AVX-512's masked stores are plain stores, so its copies need none
/// of this.
///
/// # Safety
///
/// The CPU has AVX2 (the caller's `#[target_feature]`).
#[inline(always)]
pub(crate) unsafe fn map_avx2(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` holds 8 floats; the caller guarantees AVX.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr()))) };
    }
    let rest = chunks.into_remainder();
    let m = Avx2::mask(0, rest.len() as isize);
    // SAFETY: the mask's lanes are `rest`'s floats; the caller guarantees
    // AVX2.
    unsafe { Avx2::store(rest.as_mut_ptr(), m, f(Avx2::load(rest.as_ptr(), m))) };
}

/// `dy[i]` kept where `keep` sets the lanes of `y[i]`'s vector, +0.0
/// elsewhere, eight floats at a time on AVX2, every float stored (the
/// backward passes of the activations that cut gradients: see
/// [`map_avx2`]).
///
/// # Safety
///
/// The CPU has AVX2 (the caller's `#[target_feature]`); `y.len() ==
/// dy.len()`.
#[inline(always)]
pub(crate) unsafe fn keep_avx2(y: &[f32], dy: &mut [f32], keep: impl Fn(__m256) -> __m256) {
    debug_assert_eq!(y.len(), dy.len());
    let mut chunks = dy.chunks_exact_mut(8);
    for (c, y) in (&mut chunks).zip(y.chunks_exact(8)) {
        // SAFETY: `c` and `y` hold 8 floats each; the caller guarantees AVX.
        unsafe {
            let kept = _mm256_and_ps(_mm256_loadu_ps(c.as_ptr()), keep(_mm256_loadu_ps(y.as_ptr())));
            _mm256_storeu_ps(c.as_mut_ptr(), kept);
        }
    }
    let rest = chunks.into_remainder();
    let y = &y[y.len() - rest.len()..];
    let m = Avx2::mask(0, rest.len() as isize);
    // SAFETY: the mask's lanes are `rest`'s and `y`'s floats (the same
    // count); the caller guarantees AVX2.
    unsafe {
        let kept = _mm256_and_ps(Avx2::load(rest.as_ptr(), m), keep(Avx2::load(y.as_ptr(), m)));
        Avx2::store(rest.as_mut_ptr(), m, kept);
    }
}

/// [`Vector`] of AVX2 and FMA.
pub(crate) struct Avx2;

impl Vector for Avx2 {
    const LANES: usize = 8;
    type Vec = __m256;
    type Mask = __m256i;
    #[inline(always)]
    fn zero() -> __m256 {
        // SAFETY: only called from code compiled with AVX2.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn mask(lo: isize, hi: isize) -> __m256i {
        let lo = lo.clamp(0, 8) as i32;
        let hi = hi.clamp(0, 8) as i32;
        // SAFETY: only called from code compiled with AVX2.
        unsafe {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let below_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane);
            let below_lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(lo), lane);
            _mm256_andnot_si256(below_lo, below_hi)
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: the caller guarantees the lanes in `m` are readable.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn load_merge(v: __m256, p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: the caller guarantees the lanes in `m` are readable; they
        // are zero in `v`, and the load zeroes the others.
        unsafe { _mm256_or_ps(v, _mm256_maskload_ps(p, m)) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, m: __m256i, v: __m256) {
        // No `vmaskmovps`: AMD's Zen 1 to 3 microcode it (4.4 ns a store on a
        // Zen 3 against 0.35 for a plain one). A full mask stores plainly
        // (LeNet's batch-1 forward on a Zen 3 went from 35.3 to 31.6 us,
        // medians of 8 alternating runs), and the `n` lanes of a partial
        // one (a range from `mask`) go down to lane 0 and out in plain
        // stores of 4, 2 and 1 floats as `n`'s bits say.
        let bits = _mm256_movemask_ps(_mm256_castsi256_ps(m)) as u32;
        if bits == 0xff {
            // SAFETY: the caller guarantees all eight lanes are writable.
            return unsafe { _mm256_storeu_ps(p, v) };
        }
        if bits == 0 {
            return;
        }
        let first = bits.trailing_zeros();
        let n = bits.count_ones();
        debug_assert_eq!(bits >> first, (1 << n) - 1, "a mask is a range of lanes");
        // SAFETY: lanes `first..first + n` are the mask's, which the caller
        // guarantees writable; each store below writes the next of them.
        unsafe {
            let down = _mm256_add_epi32(
                _mm256_set1_epi32(first as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            let x = _mm256_permutevar8x32_ps(v, down);
            let mut q = p.add(first as usize);
            let mut h = _mm256_castps256_ps128(x);
            if n & 4 != 0 {
                _mm_storeu_ps(q, h);
                h = _mm256_extractf128_ps::<1>(x);
                q = q.add(4);
            }
            if n & 2 != 0 {
                _mm_storel_epi64(q.cast(), _mm_castps_si128(h));
                h = _mm_movehl_ps(h, h);
                q = q.add(2);
            }
            if n & 1 != 0 {
                _mm_store_ss(q, h);
            }
        }
    }
    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees `LANES` readable floats.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn storeu(p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees `LANES` writable floats.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { _mm256_broadcast_ss(&*p) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the caller guarantees FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the caller guarantees AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the caller guarantees AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the caller guarantees AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn clamp(v: __m256, lo: __m256, hi: __m256) -> __m256 {
        // SAFETY: the caller guarantees AVX. Operand order as above.
        unsafe { _mm256_min_ps(hi, _mm256_max_ps(lo, v)) }
    }
    #[inline(always)]
    unsafe fn fold8(v: __m256) -> __m256 {
        v
    }
    #[inline(always)]
    unsafe fn sum4(v: [__m256; 4]) -> __m128 {
        // SAFETY: the caller guarantees AVX.
        unsafe {
            // [0: 0+1, 2+3, 1: 0+1, 2+3 | 0: 4+5, 6+7, 1: 4+5, 6+7], then
            // vectors 0 to 3 in each half, then the halves added.
            let h = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
            _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked store writes its range of lanes and nothing else, for every
    /// range `mask` makes (the bounds clamped to the vector), on both sets.
    #[test]
    fn masked_stores_write_their_lanes_only() {
        fn check<V: Vector>(name: &str, load: unsafe fn(*const f32) -> V::Vec) {
            let values: Vec<f32> = (1..=V::LANES).map(|l| l as f32).collect();
            for lo in -2..=V::LANES as isize + 1 {
                for hi in -2..=V::LANES as isize + 1 {
                    let mut got = vec![-1.0f32; V::LANES];
                    // SAFETY: the set was detected; `got` holds `LANES`
                    // floats.
                    unsafe { V::store(got.as_mut_ptr(), V::mask(lo, hi), load(values.as_ptr())) };
                    let want: Vec<f32> = (0..V::LANES as isize)
                        .map(|l| {
                            if lo <= l && l < hi {
                                values[l as usize]
                            } else {
                                -1.0
                            }
                        })
                        .collect();
                    assert_eq!(got, want, "{name}, lanes {lo}..{hi}");
                }
            }
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY (of the loads): AVX is present; 8 floats.
            check::<Avx2>("avx2", |p| unsafe { Avx2::loadu(p) });
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY (of the loads): AVX-512F is present; 16 floats.
            check::<Avx512>("avx512", |p| unsafe { Avx512::loadu(p) });
        }
    }

    /// `clamp` of both sets is `f32::clamp` lane by lane, bit for bit, on
    /// NaN, both zeros, infinities and values on and past relu6's bounds.
    #[test]
    fn clamp_is_f32_clamp() {
        let values = [
            f32::NAN,
            -0.0,
            0.0,
            -1.5,
            3.0,
            6.0,
            6.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -f32::NAN,
            1e-40,
            -1e-40,
            5.999_999_5,
            1e30,
            -1e30,
            2.0,
        ];
        for (lo, hi) in [(0.0f32, 6.0f32), (0.0, f32::INFINITY)] {
            let want: Vec<u32> = values.iter().map(|v| v.clamp(lo, hi).to_bits()).collect();
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut got = [0.0f32; 16];
                // SAFETY: AVX-512F is present; the arrays hold 16 floats.
                unsafe {
                    let v = Avx512::clamp(
                        Avx512::loadu(values.as_ptr()),
                        Avx512::splat(&lo),
                        Avx512::splat(&hi),
                    );
                    Avx512::storeu(got.as_mut_ptr(), v);
                }
                assert_eq!(got.map(f32::to_bits).to_vec(), want, "avx512, hi {hi}");
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                for half in 0..2 {
                    let mut got = [0.0f32; 8];
                    // SAFETY: AVX is present; 8 floats from `half * 8`.
                    unsafe {
                        let v = Avx2::clamp(
                            Avx2::loadu(values[half * 8..].as_ptr()),
                            Avx2::splat(&lo),
                            Avx2::splat(&hi),
                        );
                        Avx2::storeu(got.as_mut_ptr(), v);
                    }
                    assert_eq!(
                        got.map(f32::to_bits).to_vec(),
                        want[half * 8..][..8],
                        "avx2, hi {hi}"
                    );
                }
            }
        }
    }
}
