//! Microkernels and the one place that picks one for this CPU.
//!
//! A microkernel computes one `MR x NR` tile `C <- alpha A B + beta C` from an
//! `MR`-row sliver of packed `A` (`a[p * MR + i] = A[i][p]`) and an `NR`-column
//! sliver of `B` whose rows are `rsb` elements apart (`b[p * rsb + j] =
//! B[p][j]`; `rsb == NR` when packed), into a `C` tile with row stride `rsc`
//! and unit column stride. The driver ([`super::packed`]) handles partial
//! tiles and other `C` layouts through a scratch tile, so kernels only ever
//! see full tiles.

use std::sync::OnceLock;

/// The largest `MR * NR` of any kernel: the size of the driver's stack tile.
pub(super) const MAX_TILE: usize = 8 * 32;

/// A register-blocked `MR x NR` microkernel (see the module docs).
pub(super) trait Kernel {
    /// Rows of a tile: lanes of a packed `A` sliver.
    const MR: usize;
    /// Columns of a tile: lanes of a packed `B` sliver.
    const NR: usize;

    /// `C[i][j] <- alpha * sum_p a[p * MR + i] * b[p * rsb + j] + beta *
    /// C[i][j]` for `i < MR`, `j < NR`, with `C[i][j]` at `c[i * rsc + j]`.
    /// When `beta == 0`, `C` is not read.
    ///
    /// # Safety
    ///
    /// The CPU supports the kernel's target features; `a` is valid for
    /// reading `k * MR` elements, `b` for reading `p * rsb + j` for `p < k`,
    /// `j < NR`, and `c` for reading and writing `i * rsc + j` for `i < MR`,
    /// `j < NR`, those `C` elements being distinct and overlapping neither
    /// `a` nor `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        rsb: usize,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    );
}

/// The microkernels this build has, named for [`super::has_fast_kernel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// [`Portable`]: plain Rust the compiler vectorizes for the baseline target.
    Portable,
    /// [`Avx2Fma`]: `x86_64` AVX2 + FMA intrinsics.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// [`Avx512`]: `x86_64` AVX-512F intrinsics.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// A human-readable name, including the tile shape.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable 4x8",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "x86_64 avx2+fma 6x16",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "x86_64 avx512f 6x32/8x32/6x16/8x16",
        }
    }

    /// Whether this CPU can run the kernel.
    pub(crate) fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // Every AVX-512 CPU but the Xeon Phi has these too; the
                // inner-product path uses them.
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
        }
    }

    /// Whether [`super::dot`] runs with this kernel set (it needs AVX2 + FMA).
    pub(crate) fn has_dot(self) -> bool {
        match self {
            Isa::Portable => false,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma | Isa::Avx512 => true,
        }
    }

    /// Every kernel compiled in, best last.
    pub(crate) const ALL: &'static [Isa] = &[
        Isa::Portable,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512,
    ];

    /// The instruction-set level of the kernel, as `CNN_MAX_ISA` caps it.
    fn level(self) -> crate::ops::simd::Level {
        use crate::ops::simd::Level;
        match self {
            Isa::Portable => Level::Baseline,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Level::Avx2Fma,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Level::Avx512,
        }
    }

    /// The best kernel this CPU supports, at most the level
    /// `CNN_MAX_ISA` allows ([`crate::ops::simd::MAX_ISA_VAR`]), detected
    /// once per process.
    pub(crate) fn detect() -> Isa {
        static CHOICE: OnceLock<Isa> = OnceLock::new();
        *CHOICE.get_or_init(|| {
            Isa::ALL
                .iter()
                .rev()
                .copied()
                .find(|isa| isa.available() && isa.level() <= crate::ops::simd::level())
                .unwrap_or(Isa::Portable)
        })
    }
}

/// Plain Rust over fixed-size accumulator arrays: with const bounds LLVM keeps
/// the tile in registers and vectorizes along `NR` for whatever the baseline
/// target offers (8 SSE registers of accumulators on `x86_64`).
pub(super) struct Portable;

impl Kernel for Portable {
    const MR: usize = 4;
    const NR: usize = 8;

    #[inline]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        rsb: usize,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        const MR: usize = Portable::MR;
        const NR: usize = Portable::NR;
        let mut acc = [[0.0f32; NR]; MR];
        for p in 0..k {
            // SAFETY: the caller guarantees `a[p * MR..][..MR]` and
            // `b[p * rsb..][..NR]` are readable; unaligned reads are fine.
            let (ap, bp) = unsafe {
                (
                    a.add(p * MR).cast::<[f32; MR]>().read_unaligned(),
                    b.add(p * rsb).cast::<[f32; NR]>().read_unaligned(),
                )
            };
            for (acc_i, &a_i) in acc.iter_mut().zip(&ap) {
                for (acc_ij, &b_j) in acc_i.iter_mut().zip(&bp) {
                    *acc_ij += a_i * b_j;
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees row `i` of the tile, `NR`
            // elements at `c + i * rsc`, is exclusively ours to read and write.
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * rsc), NR) };
            if beta == 0.0 {
                for (c_ij, &v) in row.iter_mut().zip(acc_i) {
                    *c_ij = alpha * v;
                }
            } else {
                for (c_ij, &v) in row.iter_mut().zip(acc_i) {
                    *c_ij = alpha * v + beta * *c_ij;
                }
            }
        }
    }
}

/// AVX2 + FMA: 6 rows x two 8-lane vectors = 12 accumulators, 2 registers for
/// the `B` row and 1 for the broadcast `A` element, of the 16 `ymm`.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2Fma;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx2Fma {
    const MR: usize = 6;
    const NR: usize = 16;

    #[inline]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        rsb: usize,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // SAFETY: forwarded contract; the caller checked avx2 and fma.
        unsafe { x86::tile_avx2(k, alpha, a, b, rsb, beta, c, rsc) }
    }
}

/// AVX-512F: `MR` rows x `NV` 16-lane vectors of accumulators. Zen 4 runs
/// each 512-bit FMA as two 256-bit halves, so four independent accumulators
/// already keep both FMA pipes busy: narrow tiles (`NV = 1`) lose little
/// peak, which lets the driver pick the tile that pads a small `m` or `n`
/// least ([`avx512_tile`]).
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx512<const MR: usize, const NV: usize>;

#[cfg(target_arch = "x86_64")]
impl<const MR: usize, const NV: usize> Kernel for Avx512<MR, NV> {
    const MR: usize = MR;
    const NR: usize = 16 * NV;

    #[inline]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        rsb: usize,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // SAFETY: forwarded contract; the caller checked avx512f.
        unsafe { x86::tile_avx512::<MR, NV>(k, alpha, a, b, rsb, beta, c, rsc) }
    }
}

/// The AVX-512 tiles, `(MR, NR)`: the first that pads `m x n` least wins.
#[cfg(target_arch = "x86_64")]
pub(super) const AVX512_TILES: [(usize, usize); 4] = [(6, 32), (8, 32), (6, 16), (8, 16)];

/// The index into [`AVX512_TILES`] of the tile for an `m x n` product: the
/// least padded work, preferring the wider tiles (fewer loads per flop,
/// and 12 or 16 accumulators to the narrow tiles' 6 or 8) unless a
/// narrower one saves more than a fifth of the work. On a Zen 5 the wide
/// tiles won on every shape measured even where the narrow ones padded
/// less: 16 x 150 x 100, 3.75 us against 4.33 (an eighth less work);
/// MobileNetSmall's 96 x 24 x 196, 5.7-6.0 us against 6.8 (a fourteenth less).
#[cfg(target_arch = "x86_64")]
pub(super) fn avx512_tile(m: usize, n: usize) -> usize {
    let padded = |(mr, nr): (usize, usize)| m.div_ceil(mr) * mr * n.div_ceil(nr) * nr;
    let mut best = 0;
    for (t, &tile) in AVX512_TILES.iter().enumerate().skip(1) {
        let (cost, best_cost) = (padded(tile), padded(AVX512_TILES[best]));
        let narrower = tile.1 < AVX512_TILES[best].1;
        if (narrower && cost * 5 < best_cost * 4) || (!narrower && cost < best_cost) {
            best = t;
        }
    }
    best
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use crate::ops::simd::x86::{Avx2, Avx512, Vector};
    use core::arch::x86_64::*;

    /// [`super::Kernel::tile`] for [`super::Avx2Fma`].
    ///
    /// # Safety
    ///
    /// As [`super::Kernel::tile`] with `MR = 6`, `NR = 16`, on a CPU with
    /// AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        rsb: usize,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        const MR: usize = 6;
        // SAFETY: every pointer read or written below is inside the regions
        // the caller guarantees: `a[p * 6 + i]`, `b[p * rsb + 0..16]` for
        // `p < k`, and `c[i * rsc + 0..16]` for `i < 6`. The intrinsics need
        // avx2 and fma, which this function is compiled for and the caller
        // checked at run time.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            let (mut a, mut b) = (a, b);
            for _ in 0..k {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let a_i = _mm256_broadcast_ss(&*a.add(i));
                    acc_i[0] = _mm256_fmadd_ps(a_i, b0, acc_i[0]);
                    acc_i[1] = _mm256_fmadd_ps(a_i, b1, acc_i[1]);
                }
                a = a.add(MR);
                b = b.add(rsb);
            }
            let alpha = _mm256_set1_ps(alpha);
            for (i, acc_i) in acc.iter().enumerate() {
                let row = c.add(i * rsc);
                for (v, &acc_iv) in acc_i.iter().enumerate() {
                    let out = row.add(8 * v);
                    let mut r = _mm256_mul_ps(alpha, acc_iv);
                    if beta != 0.0 {
                        r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(out), r);
                    }
                    _mm256_storeu_ps(out, r);
                }
            }
        }
    }

    /// [`super::Kernel::tile`] for [`super::Avx512`].
    ///
    /// # Safety
    ///
    /// As [`super::Kernel::tile`] with `MR` rows and `NR = 16 * NV`
    /// columns, on a CPU with AVX-512F.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512<const MR: usize, const NV: usize>(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        rsb: usize,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // SAFETY: as in `tile_avx2`, with `16 * NV` columns: every access is
        // inside `a[p * MR + i]`, `b[p * rsb + 0..16 * NV]` and
        // `c[i * rsc + 0..16 * NV]`, which the caller guarantees; avx512f is
        // enabled here and was checked.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            let (mut a, mut b) = (a, b);
            for _ in 0..k {
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, b_v) in bv.iter_mut().enumerate() {
                    *b_v = _mm512_loadu_ps(b.add(16 * v));
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let a_i = _mm512_set1_ps(*a.add(i));
                    for (acc_iv, &b_v) in acc_i.iter_mut().zip(&bv) {
                        *acc_iv = _mm512_fmadd_ps(a_i, b_v, *acc_iv);
                    }
                }
                a = a.add(MR);
                b = b.add(rsb);
            }
            let alpha = _mm512_set1_ps(alpha);
            for (i, acc_i) in acc.iter().enumerate() {
                let row = c.add(i * rsc);
                for (v, &acc_iv) in acc_i.iter().enumerate() {
                    let out = row.add(16 * v);
                    let mut r = _mm512_mul_ps(alpha, acc_iv);
                    if beta != 0.0 {
                        r = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_loadu_ps(out), r);
                    }
                    _mm512_storeu_ps(out, r);
                }
            }
        }
    }

    /// Rows of an inner-product tile with AVX2 (16 vector registers).
    pub(in super::super) const DOT_MR_AVX2: usize = 3;
    /// Columns of an inner-product tile.
    pub(in super::super) const DOT_NR: usize = 4;

    /// [`dot_tile`] with `3 x 4` tiles.
    ///
    /// # Safety
    ///
    /// As [`dot_tile`] with `MR = 3`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(in super::super) unsafe fn dot_tile_avx2(
        k: usize,
        alpha: f32,
        a: (*const f32, usize, usize),
        cols: ([*const f32; DOT_NR], usize),
        beta: f32,
        c: (*mut f32, usize, usize),
    ) {
        // SAFETY: the caller's contract is `dot_tile`'s; avx2 and fma are on.
        unsafe { dot_tile::<Avx2, DOT_MR_AVX2>(k, alpha, a, cols, beta, c) }
    }

    /// [`dot_tile`] with `MR x 4` tiles (`MR <= 6`) of AVX-512 vectors: 32
    /// registers, so `6 x 4` accumulators fit and each loaded column feeds 6
    /// rows. The smaller `MR` are for the last rows. 16 lanes a step, not 8:
    /// a Zen 5's 512-bit FMA units do twice the work per instruction (LeNet's
    /// conv1 weight gradient, 6 x 25 inner products of 896, fell from 94 to
    /// 59 us per 32 images; on a Zen 4, which splits them in two, the 8-lane
    /// tiles had measured as fast). AVX-512VL keeps the 8-lane reduction's
    /// operands in any of the 32 registers: without it LLVM held the
    /// accumulators in the 16 that VEX code reaches and spilled the rest.
    ///
    /// # Safety
    ///
    /// As [`dot_tile`], and AVX-512F and AVX-512VL are available.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub(in super::super) unsafe fn dot_tile_avx512<const MR: usize>(
        k: usize,
        alpha: f32,
        a: (*const f32, usize, usize),
        cols: ([*const f32; DOT_NR], usize),
        beta: f32,
        c: (*mut f32, usize, usize),
    ) {
        // SAFETY: the caller's contract is `dot_tile`'s; the features are on.
        unsafe { dot_tile::<Avx512, MR>(k, alpha, a, cols, beta, c) }
    }

    /// An up-to-`MR x 4` tile of inner products for operands contiguous along
    /// the depth: `C[i][j] <- alpha * sum_p A_i[p] B_j[p] + beta * C[i][j]`
    /// for `i < mr`, `j < nr`, with row `A_i` at `a + i * rsa`, column `B_j`
    /// at `cols[j]` and `C[i][j]` at `c + i * rsc + j * csc`. When
    /// `beta == 0`, `C` is not read. Missing rows and columns of a partial
    /// tile repeat the last real one, so every load stays inside the
    /// operands; their sums are dropped.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA are available; `1 <= mr <= MR`, `1 <= nr <= 4`; `k`
    /// elements from each `a + i * rsa` (`i < mr`) and each `cols[j]`
    /// (`j < nr`) are readable; the `C` elements are distinct, readable,
    /// writable and overlap neither `A` nor `B`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn dot_tile<V: Vector, const MR: usize>(
        k: usize,
        alpha: f32,
        (a, rsa, mr): (*const f32, usize, usize),
        (cols, nr): ([*const f32; DOT_NR], usize),
        beta: f32,
        (c, rsc, csc): (*mut f32, usize, usize),
    ) {
        const NR: usize = DOT_NR;
        // SAFETY: row `min(i, mr - 1)` of A and column `min(j, nr - 1)` of
        // B are readable for `k` elements, and every load below reads
        // offsets `p..p + LANES` with `p + LANES <= k`, or only the first
        // `k - p` lanes through the tail mask; C is written at `i < mr`,
        // `j < nr` only. `V`'s features are enabled here and were checked.
        unsafe {
            let mut rows = [a; MR];
            for (i, row) in rows.iter_mut().enumerate() {
                *row = a.add(i.min(mr - 1) * rsa);
            }
            let mut cols = cols;
            let last = cols[nr - 1];
            cols[nr..].fill(last);
            let mut acc = [[V::zero(); NR]; MR];
            let mut p = 0;
            while p + V::LANES <= k {
                let mut av = [V::zero(); MR];
                for (v, row) in av.iter_mut().zip(&rows) {
                    *v = V::loadu(row.add(p));
                }
                for (j, col) in cols.iter().enumerate() {
                    let bv = V::loadu(col.add(p));
                    for (acc_i, &a_i) in acc.iter_mut().zip(&av) {
                        acc_i[j] = V::fmadd(a_i, bv, acc_i[j]);
                    }
                }
                p += V::LANES;
            }
            if p < k {
                let mask = V::mask(0, (k - p) as isize);
                let mut av = [V::zero(); MR];
                for (v, row) in av.iter_mut().zip(&rows) {
                    *v = V::load(row.add(p), mask);
                }
                for (j, col) in cols.iter().enumerate() {
                    let bv = V::load(col.add(p), mask);
                    for (acc_i, &a_i) in acc.iter_mut().zip(&av) {
                        acc_i[j] = V::fmadd(a_i, bv, acc_i[j]);
                    }
                }
            }
            let alpha = _mm_set1_ps(alpha);
            // Every row reduced with constant indices, so the accumulators
            // stay in registers (indexing `acc` by the runtime `mr` made
            // LLVM give it a stack home and store it at every step). A plain
            // loop, not `array::from_fn`: a closure inlined into `from_fn`
            // loses this function's target features, and the AVX-512 casts
            // in `fold8` were then left as calls.
            let mut all_sums = [_mm_setzero_ps(); MR];
            for (sums, acc_i) in all_sums.iter_mut().zip(&acc) {
                // Four horizontal sums at once: lanes of the result are
                // sum(acc_i[0]), .., sum(acc_i[3]).
                let h01 = _mm256_hadd_ps(V::fold8(acc_i[0]), V::fold8(acc_i[1]));
                let h23 = _mm256_hadd_ps(V::fold8(acc_i[2]), V::fold8(acc_i[3]));
                let h = _mm256_hadd_ps(h01, h23);
                *sums = _mm_mul_ps(
                    alpha,
                    _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)),
                );
            }
            for (i, &sums) in all_sums.iter().enumerate().take(mr) {
                let row = c.add(i * rsc);
                if nr == NR && csc == 1 {
                    let out = if beta == 0.0 {
                        sums
                    } else {
                        _mm_fmadd_ps(_mm_set1_ps(beta), _mm_loadu_ps(row), sums)
                    };
                    _mm_storeu_ps(row, out);
                } else {
                    let mut lanes = [0.0f32; NR];
                    _mm_storeu_ps(lanes.as_mut_ptr(), sums);
                    for (j, &v) in lanes.iter().enumerate().take(nr) {
                        let c_ij = &mut *row.add(j * csc);
                        *c_ij = if beta == 0.0 { v } else { v + beta * *c_ij };
                    }
                }
            }
        }
    }
}
