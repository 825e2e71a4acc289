//! Depthwise convolution, `conv(c, c, k, groups = c)`: each channel is
//! convolved with its own `KH x KW` filter. As a grouped convolution it is
//! `C` convolutions of one channel, which the general paths run as an
//! im2col of `KH * KW` rows and a GEMM of one output row per channel and
//! image: mostly overhead for 9 multiply-adds per output. Here every tap is
//! one weight times a row segment of the input, added into a row of the
//! output (contiguous, so vectorised, at stride 1), with no column buffer.
//! The forward pass of a plane small enough ([`padded_len`]) goes through
//! a zero-padded copy of it on the stack instead, whose columns are split
//! by phase of the column stride: every tap is then a contiguous row
//! segment at any stride, and a register tile of [`ROWS`] output rows x
//! [`LANES`] columns takes all `KH x KW` taps with no bounds to test
//! (MobileNet's 3x3 depthwise convs of 7 to 28 columns ran 5x faster than
//! tap by tap, where a 7-column row was a short loop per tap).
//!
//! `g` is the geometry of ONE group (`in_channels = out_channels = 1`), as
//! for the grouped entry points that call this; `channels` is `C`. Layouts:
//! `x` `[N, C, H, W]`, `w` `[C, 1, KH, KW]`, `b` `[C]`, `y` `[N, C, OH, OW]`.
//! Each output sums the taps in `(u, v)` order; the tiled pass adds the
//! bias last (a zeroed register starts the sum), the tap-by-tap one first,
//! as the direct convolution does: the two differ in rounding only.

use super::super::simd::{madd, multiversion};
use super::Conv2d;
use crate::quant::Activation;

/// Whether `g` (one group's geometry) is depthwise: one input and one
/// output channel per group.
pub(super) fn is_depthwise(g: &Conv2d) -> bool {
    g.in_channels == 1 && g.out_channels == 1
}

/// The outputs `q` of a row whose tap `v` reads an input column inside
/// `0..w_n`: `0 <= q * sw + v - pw < w_n`.
#[inline(always)]
fn columns(v: usize, (sw, pw): (usize, usize), w_n: usize, ow: usize) -> core::ops::Range<usize> {
    // q * sw >= pw - v, and q * sw < w_n + pw - v.
    let lo = pw.saturating_sub(v).div_ceil(sw);
    let hi = (w_n + pw).saturating_sub(v).div_ceil(sw).min(ow);
    lo..hi.max(lo)
}

/// `y_row[q] += wv * x_row[q * sw + v - pw]` for the `q` in `cols`.
#[inline(always)]
fn axpy_row<const FMA: bool>(
    wv: f32,
    x_row: &[f32],
    y_row: &mut [f32],
    cols: core::ops::Range<usize>,
    v: usize,
    (sw, pw): (usize, usize),
) {
    if cols.is_empty() {
        return;
    }
    let first = cols.start * sw + v - pw;
    if sw == 1 {
        let len = cols.len();
        for (yq, &xq) in y_row[cols].iter_mut().zip(&x_row[first..first + len]) {
            *yq = madd::<FMA>(wv, xq, *yq);
        }
    } else {
        for (yq, &xq) in y_row[cols].iter_mut().zip(x_row[first..].iter().step_by(sw)) {
            *yq = madd::<FMA>(wv, xq, *yq);
        }
    }
}

/// The depthwise convolution of `n` images (see the module docs), then
/// `act`: a 3x3 filter at stride 1 or 2 takes the AVX-512 or AVX2 tiles
/// where the CPU has them and the padded plane fits ([`tiles`], which apply
/// `act` in their store), everything else [`forward_any`] and `act`'s own
/// pass.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    g: &Conv2d,
    channels: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        use super::super::simd::{level, Level};
        if tiles::takes(g) {
            let kk = g.kernel.0 * g.kernel.1;
            assert!(x.len() >= n * channels * g.input_len() && y.len() >= n * channels * g.output_len());
            assert!(w.len() >= channels * kk && b.is_none_or(|b| b.len() >= channels));
            let all = (f32::NEG_INFINITY, f32::INFINITY);
            // The tiles for this CPU, one function per `ACT` (as the
            // pointwise kernel's), and the bounds they clamp to.
            type Kernel =
                unsafe fn(&Conv2d, usize, usize, &[f32], &[f32], Option<&[f32]>, (f32, f32), &mut [f32]);
            let kernel: Option<(Kernel, _)> = match (level(), act.bounds()) {
                (Level::Avx512, None) => Some((tiles::forward_avx512::<false>, all)),
                (Level::Avx512, Some(bounds)) => Some((tiles::forward_avx512::<true>, bounds)),
                (Level::Avx2Fma, None) => Some((tiles::forward_avx2::<false>, all)),
                (Level::Avx2Fma, Some(bounds)) => Some((tiles::forward_avx2::<true>, bounds)),
                (Level::Baseline, _) => None,
            };
            if let Some((kernel, bounds)) = kernel {
                // SAFETY: `level()` detected the kernel's features; `takes`
                // checked the geometry, and the lengths are asserted.
                unsafe { kernel(g, channels, n, x, w, b, bounds, y) };
                return;
            }
        }
    }
    forward_any(g, channels, n, x, w, b, y);
    act.apply(&mut y[..n * channels * g.output_len()]);
}

multiversion! {
    /// [`forward`] on the portable paths, compiled for the CPU's vector
    /// width.
    #[allow(clippy::too_many_arguments)]
    fn forward_any(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &mut [f32],
    ) => forward_body
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod tiles {
    //! The 3x3 forward pass at stride 1 or 2 on 16 lanes (AVX-512F) or 8
    //! (AVX2 and FMA), written once over [`Vector`]. LLVM's vectorization
    //! of the portable tiles (8 lanes, the AVX2 width, even on AVX-512)
    //! spilled the accumulators and copied each padded row with a `memmove`
    //! call: 17% of the FMA peak and 9% of a copy's bandwidth on
    //! MobileNetSmall's 64-plane 28x28 conv (`benches/depthwise.rs`). Here
    //! a tile is up to [`ROWS`] output rows (AVX-512; 4 on AVX2, see
    //! [`Tiles::ROWS`]) x one vector of columns, the nine weights splatted
    //! once a plane, read straight from the input: a row
    //! outside it is skipped, and a mask loads zeros where a column is
    //! outside (a padded copy, as the portable tiles make, took 44% of the
    //! time on AVX-512: its masked stores do not forward to the loads right
    //! after). At stride 2 the three column taps of a row come from the
    //! even and odd columns of two vectors ([`Tiles`]). Each input row of
    //! the tile is loaded once and feeds every output row it reaches, in
    //! `(u, v)` order from zero with the bias last, as the portable tiles
    //! sum: the results are the same bits. Planes of at most 8 output
    //! columns take the AVX-512 [`flat`] tiles instead, 16 outputs of the
    //! plane in a vector across its rows.

    use super::Conv2d;
    use crate::ops::simd::x86::{Avx2, Avx512, Vector};
    use core::arch::x86_64::*;

    /// Output rows of a tile at most.
    const ROWS: usize = 8;

    /// Whether these tiles run `g`: a 3x3 filter at stride 1 or 2 on a
    /// plane the portable tiles take too (`padded_len`), so both sum alike.
    pub(super) fn takes(g: &Conv2d) -> bool {
        g.kernel == (3, 3)
            && matches!(g.stride, (1, 1) | (2, 2))
            && g.out_h() > 0
            && g.out_w() > 0
            && super::padded_len(g).is_some()
    }

    /// What the tiles take from an instruction set beyond [`Vector`]: their
    /// height, the column taps at stride 2, and their own functions.
    trait Tiles: Vector {
        /// Output rows of a tile at most.
        const ROWS: usize;

        /// The masks of the input columns a tile reads, inside the row.
        type Reads: Copy;

        /// [`Self::Reads`] for a tile whose lane 0 of tap 0 reads input
        /// column `first` of rows of `w_n` columns.
        fn reads(first: isize, w_n: isize) -> Self::Reads;

        /// The input columns `first + 2 l + v` of lanes `l` for taps `v` =
        /// 0, 1, 2, from `row` (column `first` of an input row), zeros
        /// outside the row; the lanes in the order [`Self::in_order`] undoes.
        ///
        /// # Safety
        ///
        /// The instruction set's features; `row` and `reads` for the same
        /// `first` of an input row.
        unsafe fn split(row: *const f32, reads: Self::Reads) -> [Self::Vec; 3];

        /// The lanes of a sum of [`Self::split`]'s vectors in column order.
        ///
        /// # Safety
        ///
        /// The instruction set's features.
        unsafe fn in_order(v: Self::Vec) -> Self::Vec;

        /// [`rows`] on this instruction set, a function of its own per
        /// row count and stride: inlined together into one `forward`, the
        /// tiles compiled to loops LLVM left rolled, the taps read from
        /// memory, and ran slower (the depthwise bench on a Zen 5).
        ///
        /// # Safety
        ///
        /// As [`rows`].
        unsafe fn rows<const R: usize, const S: usize, const ACT: bool>(plane: &Plane<Self, ACT>, p0: usize)
        where
            Self: Sized;
    }

    impl Tiles for Avx512 {
        const ROWS: usize = ROWS;
        type Reads = [__mmask16; 3];

        #[inline(always)]
        fn reads(first: isize, w_n: isize) -> [__mmask16; 3] {
            [
                Avx512::mask(-first, w_n - first),
                Avx512::mask(-first - 16, w_n - first - 16),
                Avx512::mask(-first - 32, w_n - first - 32) & 1,
            ]
        }

        /// Two vectors of 16 consecutive columns split into even and odd
        /// lanes (`vpermt2ps`) and, for `v` = 2, the even ones moved down a
        /// lane (`valignd`) with the next column in the last.
        #[inline(always)]
        unsafe fn split(row: *const f32, reads: [__mmask16; 3]) -> [__m512; 3] {
            // SAFETY: AVX-512F is the caller's; the loads read the columns
            // `reads` keeps, inside the row.
            unsafe {
                let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                let a = _mm512_maskz_loadu_ps(reads[0], row);
                let b = _mm512_maskz_loadu_ps(reads[1], row.wrapping_add(16));
                let c = _mm512_maskz_loadu_ps(reads[2], row.wrapping_add(32));
                let e = _mm512_permutex2var_ps(a, even, b);
                let o = _mm512_permutex2var_ps(a, odd, b);
                let next = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                    _mm512_castps_si512(c),
                    _mm512_castps_si512(e),
                ));
                [e, o, next]
            }
        }

        #[inline(always)]
        unsafe fn in_order(v: __m512) -> __m512 {
            v
        }

        #[inline(always)]
        unsafe fn rows<const R: usize, const S: usize, const ACT: bool>(
            plane: &Plane<Avx512, ACT>,
            p0: usize,
        ) {
            /// [`rows`] compiled for avx512f.
            ///
            /// # Safety
            ///
            /// As [`rows`].
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn tile_rows<const R: usize, const S: usize, const ACT: bool>(
                plane: &Plane<Avx512, ACT>,
                p0: usize,
            ) {
                // SAFETY: the caller's contract.
                unsafe { rows::<Avx512, R, S, ACT>(plane, p0) }
            }
            // SAFETY: the caller's contract.
            unsafe { tile_rows::<R, S, ACT>(plane, p0) }
        }
    }

    impl Tiles for Avx2 {
        /// 4 accumulators, 3 input vectors and the taps from memory: 8 rows
        /// (AVX-512's) spilled, and ran MobileNetSmall's stride-2 convs
        /// 1.3-1.7x slower on a Zen 5 with `CNN_MAX_ISA=avx2`.
        const ROWS: usize = 4;
        type Reads = [__m256i; 4];

        #[inline(always)]
        fn reads(first: isize, w_n: isize) -> [__m256i; 4] {
            [
                Avx2::mask(-first, w_n - first),
                Avx2::mask(-first - 8, w_n - first - 8),
                Avx2::mask(-first - 2, w_n - first - 2),
                Avx2::mask(-first - 10, w_n - first - 10),
            ]
        }

        /// `vshufps` of the 16 columns from `first` and of the 16 from
        /// `first + 2` into even and odd columns within each 128-bit half:
        /// lanes for output columns 0 1 4 5 2 3 6 7 (no lane-crossing
        /// shuffle per input row; one per output row undoes it).
        #[inline(always)]
        unsafe fn split(row: *const f32, reads: [__m256i; 4]) -> [__m256; 3] {
            // SAFETY: AVX2 is the caller's; the loads read the columns
            // `reads` keeps, inside the row.
            unsafe {
                let a = _mm256_maskload_ps(row, reads[0]);
                let b = _mm256_maskload_ps(row.wrapping_add(8), reads[1]);
                let a2 = _mm256_maskload_ps(row.wrapping_add(2), reads[2]);
                let b2 = _mm256_maskload_ps(row.wrapping_add(10), reads[3]);
                [
                    _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
                    _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
                    _mm256_shuffle_ps::<0b10_00_10_00>(a2, b2),
                ]
            }
        }

        #[inline(always)]
        unsafe fn in_order(v: __m256) -> __m256 {
            // SAFETY: AVX2 is the caller's. The 64-bit pairs 0 2 1 3.
            unsafe { _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v))) }
        }

        #[inline(always)]
        unsafe fn rows<const R: usize, const S: usize, const ACT: bool>(plane: &Plane<Avx2, ACT>, p0: usize) {
            /// [`rows`] compiled for avx2,fma.
            ///
            /// # Safety
            ///
            /// As [`rows`].
            #[inline]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn tile_rows<const R: usize, const S: usize, const ACT: bool>(
                plane: &Plane<Avx2, ACT>,
                p0: usize,
            ) {
                // SAFETY: the caller's contract.
                unsafe { rows::<Avx2, R, S, ACT>(plane, p0) }
            }
            // SAFETY: the caller's contract.
            unsafe { tile_rows::<R, S, ACT>(plane, p0) }
        }
    }

    /// The depthwise convolution of `n` images of `channels` planes on
    /// AVX-512F, each output clamped to `bounds` (`f32::clamp`) if `ACT`.
    ///
    /// # Safety
    ///
    /// AVX-512F; [`takes`] holds for `g`; `x`, `w`, `b` and `y` hold `n`
    /// images, `channels` filters and biases, `n` outputs.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_avx512<const ACT: bool>(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        bounds: (f32, f32),
        y: &mut [f32],
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            if flat_takes(g) {
                flat::<ACT>(g, channels, n, x, w, b, bounds, y)
            } else {
                forward::<Avx512, ACT>(g, channels, n, x, w, b, bounds, y)
            }
        }
    }

    /// Output vectors of a plane [`flat`] takes, at most: 16x16 outputs.
    const FLAT_VECTORS: usize = 16;

    /// Whether [`flat`] runs `g`: one pixel of padding, stride 1 or 2, at
    /// most 8 output columns (wider rows fill more of a row tile's lanes,
    /// and a row tile loads each input row once for several output rows:
    /// MobileNetSmall's 28x28 plane at stride 2, 14 output columns, ran
    /// 10-15% slower flat) and [`FLAT_VECTORS`] vectors of outputs.
    fn flat_takes(g: &Conv2d) -> bool {
        let (oh, ow) = (g.out_h(), g.out_w());
        g.kernel == (3, 3)
            && g.pad == (1, 1)
            && matches!(g.stride, (1, 1) | (2, 2))
            && (1..=8).contains(&ow)
            && oh * ow <= FLAT_VECTORS * 16
    }

    /// Floats of the phase planes [`flat`] splits a stride-2 plane into:
    /// four of `OH x OW`, each with a vector of slack after it.
    const PHASES_CAP: usize = 4 * (FLAT_VECTORS * 16 + 16);

    /// The AVX-512 pass over small planes (MobileNetSmall's 7x7 at stride 1,
    /// its 14x14 at stride 2), flat: a tile is 16 consecutive
    /// outputs of the plane, across its rows, so 49 outputs are 4 vectors
    /// instead of 7 rows of 7 lanes.
    ///
    /// At stride 1, tap `(u, v)` of output `t` reads input
    /// `t + (u - 1) W + v - 1` (the plane read as one row), masked where that
    /// pixel is outside the plane or, for `v` = 0 and 2, in the row before or
    /// after. At stride 2 the plane is first split into its four phases
    /// (even or odd rows x even or odd columns, each `OH x OW`, zero past
    /// the input), where tap `(u, v)` of output `(p, q)` is pixel
    /// `(p - [u = 0], q - [v = 0])` of phase `([u != 1], [v != 1])`: again
    /// one offset per tap, masked in the first row and column. The masks
    /// depend only on the shape, computed once. The taps add in `(u, v)`
    /// order from zero, then the bias: the portable tiles' bits.
    ///
    /// # Safety
    ///
    /// AVX-512F; [`flat_takes`] holds for `g`; operands as
    /// [`forward_avx512`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn flat<const ACT: bool>(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        bounds: (f32, f32),
        y: &mut [f32],
    ) {
        let (h_n, w_n) = (g.in_h, g.in_w);
        let (oh, ow) = (g.out_h(), g.out_w());
        let split = g.stride == (2, 2);
        let out_len = oh * ow;
        let vectors = out_len.div_ceil(16);
        // Per tap: the plane it reads (0 at stride 1: the input; else a
        // phase), its offset from the output's index, and the length of
        // the plane it reads.
        let phase_len = out_len + 16;
        let source: [(usize, isize); 9] = core::array::from_fn(|tap| {
            let (u, v) = (tap / 3, tap % 3);
            if split {
                let phase = 2 * usize::from(u != 1) + usize::from(v != 1);
                let offset = -(ow as isize) * isize::from(u == 0) - isize::from(v == 0);
                (phase * phase_len, offset)
            } else {
                (0, (u as isize - 1) * w_n as isize + v as isize - 1)
            }
        });
        let read_len = if split { out_len } else { h_n * w_n } as isize;
        // Per vector and tap, the lanes that read inside their plane and
        // the right row; per vector, the lanes that are outputs.
        let mut reads = [[0 as __mmask16; 9]; FLAT_VECTORS];
        let mut stores = [0 as __mmask16; FLAT_VECTORS];
        for (j, (taps, store)) in reads.iter_mut().zip(&mut stores).enumerate().take(vectors) {
            let t0 = (16 * j) as isize;
            *store = Avx512::mask(0, out_len as isize - t0);
            for (tap, m) in taps.iter_mut().enumerate() {
                let (v, at) = (tap % 3, t0 + source[tap].1);
                let mut lanes = Avx512::mask(-at, read_len - at) & *store;
                for l in 0..16 {
                    let q = (16 * j + l) % ow;
                    if (v == 0 && q == 0) || (!split && v == 2 && q == ow - 1) {
                        lanes &= !(1 << l);
                    }
                }
                *m = lanes;
            }
        }
        // The phases; positions no input reaches stay zero, as every plane
        // writes the same ones.
        let mut phases = [0.0f32; PHASES_CAP];
        // SAFETY (splats): of locals.
        let clamp = unsafe {
            Clamp::<Avx512, ACT> {
                lo: Avx512::splat(&bounds.0),
                hi: Avx512::splat(&bounds.1),
            }
        };
        let planes = x.chunks_exact(h_n * w_n).zip(y.chunks_exact_mut(out_len));
        for (k, (x_c, y_c)) in planes.enumerate().take(n * channels) {
            let c = k % channels;
            let w_c = &w[c * 9..][..9];
            let base = if split {
                // SAFETY: `x_c` holds the plane; `phases` holds four
                // phases of `phase_len` (`PHASES_CAP` floats at most).
                unsafe { split_phases(x_c, (h_n, w_n), ow, phase_len, &mut phases) };
                phases.as_ptr()
            } else {
                x_c.as_ptr()
            };
            // SAFETY: the splats read `w_c`'s floats and a local; every
            // load reads only lanes of `reads`, inside its plane, and every
            // store writes only lanes of `stores`, inside `y_c`.
            unsafe {
                let taps: [__m512; 9] = core::array::from_fn(|t| Avx512::splat(&w_c[t]));
                let bias = Avx512::splat(&b.map_or(0.0, |b| b[c]));
                for (j, masks) in reads.iter().enumerate().take(vectors) {
                    let t0 = 16 * j;
                    let mut acc = Avx512::zero();
                    for (tap, &wt) in taps.iter().enumerate() {
                        let (start, offset) = source[tap];
                        let at = base.wrapping_add(start).wrapping_offset(t0 as isize + offset);
                        acc = Avx512::fmadd(wt, Avx512::load(at, masks[tap]), acc);
                    }
                    let v = clamp.apply(Avx512::add(bias, acc));
                    Avx512::store(y_c.as_mut_ptr().add(t0), stores[j], v);
                }
            }
        }
    }

    /// Writes the four phases of plane `x_c` (`h x w`) into `phases`:
    /// phase `2 a + b` (at `(2 a + b) * phase_len`) holds pixel `(2 i + a,
    /// 2 j + b)` at `i * ow + j`, for `j < ow`. A row is two masked loads
    /// and two permutes (even and odd columns); its stores run 16 lanes
    /// (the lanes past `ow` land in the next row, written after, or in the
    /// slack), so the loads after them can forward from them.
    ///
    /// # Safety
    ///
    /// AVX-512F; `x_c` holds `h * w` floats, `w <= 2 * ow <= 32`, `h <= 2 *
    /// OH` rows of phases of `ow` columns fit `phase_len - 16`, and
    /// `phases` holds `4 * phase_len` floats.
    #[inline(always)]
    unsafe fn split_phases(
        x_c: &[f32],
        (h, w): (usize, usize),
        ow: usize,
        phase_len: usize,
        phases: &mut [f32],
    ) {
        // SAFETY: the loads read columns `< w` of row `r`, inside `x_c`;
        // row `r` of phase `2 a + b` starts at `(r / 2) * ow`, and its 16
        // lanes end inside the phase's `phase_len` (the caller).
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            let (lo_mask, hi_mask) = (Avx512::mask(0, w as isize), Avx512::mask(-16, w as isize - 16));
            let dst = phases.as_mut_ptr();
            for r in 0..h {
                let row = x_c.as_ptr().add(r * w);
                let lo = _mm512_maskz_loadu_ps(lo_mask, row);
                let hi = _mm512_maskz_loadu_ps(hi_mask, row.wrapping_add(16));
                let at = (r % 2) * 2 * phase_len + (r / 2) * ow;
                _mm512_storeu_ps(dst.add(at), _mm512_permutex2var_ps(lo, even, hi));
                _mm512_storeu_ps(dst.add(at + phase_len), _mm512_permutex2var_ps(lo, odd, hi));
            }
        }
    }

    /// [`forward_avx512`] on AVX2 and FMA.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA; operands as [`forward_avx512`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_avx2<const ACT: bool>(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        bounds: (f32, f32),
        y: &mut [f32],
    ) {
        // SAFETY: the caller's contract.
        unsafe { forward::<Avx2, ACT>(g, channels, n, x, w, b, bounds, y) }
    }

    /// Every plane of [`forward_avx512`] with `V`'s vectors.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller; operands as
    /// [`forward_avx512`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn forward<V: Tiles, const ACT: bool>(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        bounds: (f32, f32),
        y: &mut [f32],
    ) {
        // SAFETY (splats): of locals and of `w`'s floats.
        let clamp = unsafe {
            Clamp::<V, ACT> {
                lo: V::splat(&bounds.0),
                hi: V::splat(&bounds.1),
            }
        };
        let oh = g.out_h();
        let planes = x
            .chunks_exact(g.in_h * g.in_w)
            .zip(y.chunks_exact_mut(oh * g.out_w()));
        for (k, (x_c, y_c)) in planes.enumerate().take(n * channels) {
            let c = k % channels;
            let w_c = &w[c * 9..][..9];
            // SAFETY: `x_c` is one input plane of `g` and `y_c` its
            // `oh * ow` outputs; the features are on; the splats read a
            // local and `w_c`'s floats.
            unsafe {
                let plane = Plane::<V, ACT> {
                    g,
                    x_c: x_c.as_ptr(),
                    taps: core::array::from_fn(|t| V::splat(&w_c[t])),
                    bias: V::splat(&b.map_or(0.0, |b| b[c])),
                    clamp,
                    out: y_c.as_mut_ptr(),
                };
                if g.stride.0 == 1 {
                    rows_of::<V, 1, ACT>(&plane);
                } else {
                    rows_of::<V, 2, ACT>(&plane);
                }
            }
        }
    }

    /// The bounds an output is clamped to if `ACT`.
    struct Clamp<V: Vector, const ACT: bool> {
        lo: V::Vec,
        hi: V::Vec,
    }

    impl<V: Vector, const ACT: bool> Clone for Clamp<V, ACT> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<V: Vector, const ACT: bool> Copy for Clamp<V, ACT> {}

    impl<V: Vector, const ACT: bool> Clamp<V, ACT> {
        /// `v` clamped if `ACT`, as [`Vector::clamp`].
        #[inline(always)]
        unsafe fn apply(self, v: V::Vec) -> V::Vec {
            // SAFETY: the caller runs with `V`'s features.
            if ACT {
                unsafe { V::clamp(v, self.lo, self.hi) }
            } else {
                v
            }
        }
    }

    /// One plane's operands: its geometry, input, the 9 taps and the bias
    /// in every lane, the clamp and its output.
    struct Plane<'a, V: Vector, const ACT: bool> {
        g: &'a Conv2d,
        x_c: *const f32,
        taps: [V::Vec; 9],
        bias: V::Vec,
        clamp: Clamp<V, ACT>,
        out: *mut f32,
    }

    /// Every output row of one plane at stride `S`, `V::ROWS` at a time.
    ///
    /// # Safety
    ///
    /// As [`rows`], for all the plane's rows.
    #[inline(always)]
    unsafe fn rows_of<V: Tiles, const S: usize, const ACT: bool>(plane: &Plane<V, ACT>) {
        let oh = plane.g.out_h();
        let mut p0 = 0;
        while p0 < oh {
            // SAFETY: the caller's contract, for rows `p0..`.
            unsafe {
                match (oh - p0).min(V::ROWS) {
                    1 => V::rows::<1, S, ACT>(plane, p0),
                    2 => V::rows::<2, S, ACT>(plane, p0),
                    3 => V::rows::<3, S, ACT>(plane, p0),
                    4 => V::rows::<4, S, ACT>(plane, p0),
                    5 => V::rows::<5, S, ACT>(plane, p0),
                    6 => V::rows::<6, S, ACT>(plane, p0),
                    7 => V::rows::<7, S, ACT>(plane, p0),
                    _ => V::rows::<ROWS, S, ACT>(plane, p0),
                }
            }
            p0 += V::ROWS;
        }
    }

    /// Output rows `p0..p0 + R` of one plane at stride `S` (1 or 2, both
    /// ways), in tiles of one vector of columns.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller; `plane.x_c` is an input
    /// plane of `plane.g` (3x3, stride `S`), `plane.out` its output plane,
    /// and `p0 + R <= OH`.
    #[inline(always)]
    unsafe fn rows<V: Tiles, const R: usize, const S: usize, const ACT: bool>(
        plane: &Plane<V, ACT>,
        p0: usize,
    ) {
        let Plane {
            g,
            x_c,
            ref taps,
            bias,
            clamp,
            out,
        } = *plane;
        let (h_n, w_n) = (g.in_h as isize, g.in_w as isize);
        let (ph, pw) = (g.pad.0 as isize, g.pad.1 as isize);
        let ow = g.out_w();
        for q0 in (0..ow).step_by(V::LANES) {
            let left = (ow - q0) as isize;
            let store = V::mask(0, left);
            // The first input column a lane of tap 0 reads; at stride 1, the
            // masks of the lanes reading columns `first + d + l` inside the
            // row and the output row.
            let first = (S * q0) as isize - pw;
            let col = |at: isize| V::mask((-at).max(0), (w_n - at).min(left));
            let cols = [col(first), col(first + 1), col(first + 2)];
            let reads = V::reads(first, w_n);
            let mut acc = [V::zero(); R];
            // Input row `p0 S + i - PH` feeds output row `r` with filter row
            // `u = i - r S`: in order of `i`, each output sees `u` rising.
            for i in 0..(R - 1) * S + 3 {
                let h = (p0 * S + i) as isize - ph;
                if h < 0 || h >= h_n {
                    continue;
                }
                let row = x_c.wrapping_offset(h * w_n + first);
                // SAFETY: input row `h` of the plane, the masks keeping its
                // columns; `V`'s features are the caller's.
                let xs: [V::Vec; 3] = unsafe {
                    if S == 1 {
                        [
                            V::load(row, cols[0]),
                            V::load(row.wrapping_add(1), cols[1]),
                            V::load(row.wrapping_add(2), cols[2]),
                        ]
                    } else {
                        V::split(row, reads)
                    }
                };
                for (v, &xv) in xs.iter().enumerate() {
                    for (r, a) in acc.iter_mut().enumerate() {
                        if (r * S..r * S + 3).contains(&i) {
                            // SAFETY: `V`'s features are the caller's.
                            *a = unsafe { V::fmadd(taps[(i - r * S) * 3 + v], xv, *a) };
                        }
                    }
                }
            }
            for (r, &a) in acc.iter().enumerate() {
                // SAFETY: outputs `q0..` of row `p0 + r`, masked to the row.
                unsafe {
                    let a = if S == 1 { a } else { V::in_order(a) };
                    let v = clamp.apply(V::add(bias, a));
                    V::store(out.add((p0 + r) * ow + q0), store, v);
                }
            }
        }
    }
}

/// Output columns of a register tile: one AVX2 vector.
const LANES: usize = 8;
/// Output rows of a register tile: independent accumulators, so the
/// multiply-adds of one tap do not wait on each other.
const ROWS: usize = 4;
/// The largest padded plane (f32) the tiled forward pass copies to the
/// stack: 8 KiB, room for a 3x3 conv of 28x28 planes at stride 1 or 2.
const PLANE_CAP: usize = 2048;

/// The padded, phase-split copy of one input plane: `HP = H + 2 PH` rows of
/// `SW` phases, phase `r` holding the padded columns `r, r + SW, ...` and
/// zeros after them (so a tile's last vector may read past the row's
/// columns); `(f32 per phase, f32 in all)`, or `None` past [`PLANE_CAP`].
fn padded_len(g: &Conv2d) -> Option<(usize, usize)> {
    let phase = (g.in_w + 2 * g.pad.1).div_ceil(g.stride.1) + LANES;
    let len = (g.in_h + 2 * g.pad.0) * g.stride.1 * phase;
    (len <= PLANE_CAP).then_some((phase, len))
}

/// `C`, or the run-time `value` for `C = 0`: the tiled pass's column
/// stride (`SW`) and filter size (`KS`), constants where they are known.
#[inline(always)]
fn constant_or<const C: usize>(value: usize) -> usize {
    if C == 0 {
        value
    } else {
        C
    }
}

/// Writes `x_c` (one plane) into `xp` as [`padded_len`] lays it out, at
/// column stride `SW` (`g`'s own for `SW = 0`; a constant stride lets the
/// compiler split the columns by phase with vector shuffles). Every plane
/// writes the same places: the zeros around them, filled once, stay.
#[inline(always)]
fn pad_plane<const SW: usize>(g: &Conv2d, x_c: &[f32], phase: usize, xp: &mut [f32]) {
    let sw = constant_or::<SW>(g.stride.1);
    let pw = g.pad.1;
    let row_len = sw * phase;
    for (h, x_row) in x_c.chunks_exact(g.in_w).enumerate() {
        let xp_row = &mut xp[(h + g.pad.0) * row_len..][..row_len];
        if sw == 1 {
            xp_row[pw..pw + g.in_w].copy_from_slice(x_row);
            continue;
        }
        // Phase `r` holds the input columns `j` with `(j + PW) % SW == r`,
        // in order, from `j0` on.
        for r in 0..sw {
            let j0 = (r + sw - pw % sw) % sw;
            let Some(columns) = x_row.get(j0..) else {
                continue;
            };
            let count = columns.len().div_ceil(sw);
            let phase_row = &mut xp_row[r * phase + (j0 + pw) / sw..][..count];
            let groups = columns.chunks_exact(sw);
            if let Some(&last) = groups.remainder().first() {
                phase_row[count - 1] = last;
            }
            for (d, group) in phase_row.iter_mut().zip(groups) {
                *d = group[0];
            }
        }
    }
}

/// Output rows `p0..p0 + R` of one plane from its padded copy `xp`: per
/// tile of [`LANES`] columns, every tap in `(u, v)` order, then the bias.
/// A constant filter size `KS` (0: `g`'s own) unrolls the taps, so the
/// tile's accumulators stay in registers: at a run-time 3x3 they went to
/// the stack after every filter row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile_rows<const FMA: bool, const R: usize, const SW: usize, const KS: usize>(
    g: &Conv2d,
    xp: &[f32],
    phase: usize,
    w_c: &[f32],
    bias: f32,
    p0: usize,
    y_c: &mut [f32],
) {
    let (kh, kw) = (constant_or::<KS>(g.kernel.0), constant_or::<KS>(g.kernel.1));
    let sh = g.stride.0;
    let sw = constant_or::<SW>(g.stride.1);
    let (ow, row_len) = (g.out_w(), sw * phase);
    for q0 in (0..ow).step_by(LANES) {
        let mut acc = [[0.0; LANES]; R];
        for (u, w_row) in w_c.chunks_exact(kw).enumerate().take(kh) {
            for (v, &wv) in w_row.iter().enumerate() {
                // A division by a constant stride is a shift or nothing; at
                // a run-time one it was a twentieth of MobileNetSmall's
                // batch-1 instructions.
                let at = v % sw * phase + q0 + v / sw;
                for (i, acc) in acc.iter_mut().enumerate() {
                    let start = ((p0 + i) * sh + u) * row_len + at;
                    debug_assert!(start + LANES <= xp.len());
                    // SAFETY: row `(p0 + i) * SH + u < HP` of `xp`, and in
                    // its phase `v % SW` columns `q0 + v / SW ..` plus
                    // `LANES`: `q0 < OW`, so they end by `OW - 1 + (KW - 1)
                    // / SW + LANES < ceil(WP / SW) + LANES`, the phase's
                    // length (`padded_len`). Checked indexing here was a
                    // tenth of MobileNetSmall's instructions.
                    let src = unsafe { xp.get_unchecked(start..start + LANES) };
                    for (a, &xv) in acc.iter_mut().zip(src) {
                        *a = madd::<FMA>(wv, xv, *a);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let out = &mut y_c[(p0 + i) * ow..][q0..ow];
            // A whole tile is one vector store (a copy of run-time length
            // was a `memcpy` call per row of every tile).
            let acc = acc.map(|a| bias + a);
            match out.first_chunk_mut::<LANES>() {
                Some(out) => *out = acc,
                None => store_partial(out, &acc),
            }
        }
    }
}

/// `out.len() < LANES` values of `acc` into `out`: at most three stores of
/// constant length (4, 2, 1), where a loop or a run-time `copy_from_slice`
/// (a `memcpy` call) cost more than the tile's taps on 7-column planes.
#[inline(always)]
fn store_partial(out: &mut [f32], acc: &[f32; LANES]) {
    const { assert!(LANES == 8, "the steps below add up to LANES - 1") };
    let len = out.len();
    let mut k = 0;
    for step in [4, 2, 1] {
        if len & step != 0 {
            out[k..][..step].copy_from_slice(&acc[k..][..step]);
            k += step;
        }
    }
}

/// The tiled forward pass over planes padded to `len` floats in phases of
/// `phase` ([`padded_len`]), at column stride `SW` and filter `KS x KS`
/// (`g`'s own for 0).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiled<const FMA: bool, const SW: usize, const KS: usize>(
    g: &Conv2d,
    channels: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    phase: usize,
    len: usize,
) {
    let (kk, oh) = (g.kernel.0 * g.kernel.1, g.out_h());
    let mut buffer = [core::mem::MaybeUninit::<f32>::uninit(); PLANE_CAP];
    // Zero from here on where `pad_plane` writes nothing; only the `len`
    // floats used (`padded_len` keeps it within the buffer).
    let xp = super::zeroed_prefix(&mut buffer, len);
    let planes = x
        .chunks_exact(g.in_h * g.in_w)
        .zip(y.chunks_exact_mut(oh * g.out_w()));
    for (k, (x_c, y_c)) in planes.enumerate().take(n * channels) {
        let c = k % channels;
        let (w_c, bias) = (&w[c * kk..][..kk], b.map_or(0.0, |b| b[c]));
        pad_plane::<SW>(g, x_c, phase, xp);
        tiled_plane::<FMA, SW, KS>(g, xp, phase, w_c, bias, y_c);
    }
}

/// Every output row of one plane from its padded copy `xp`, in tiles of
/// [`ROWS`] rows (then single rows), overwriting `y_c`.
#[inline(always)]
fn tiled_plane<const FMA: bool, const SW: usize, const KS: usize>(
    g: &Conv2d,
    xp: &[f32],
    phase: usize,
    w_c: &[f32],
    bias: f32,
    y_c: &mut [f32],
) {
    let oh = g.out_h();
    let mut p0 = 0;
    while p0 + ROWS <= oh {
        tile_rows::<FMA, ROWS, SW, KS>(g, xp, phase, w_c, bias, p0, y_c);
        p0 += ROWS;
    }
    for p in p0..oh {
        tile_rows::<FMA, 1, SW, KS>(g, xp, phase, w_c, bias, p, y_c);
    }
}

#[inline(always)]
fn forward_body<const FMA: bool>(
    g: &Conv2d,
    channels: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    if let Some((phase, len)) = padded_len(g) {
        match (g.stride.1, g.kernel) {
            (1, (3, 3)) => tiled::<FMA, 1, 3>(g, channels, n, x, w, b, y, phase, len),
            (2, (3, 3)) => tiled::<FMA, 2, 3>(g, channels, n, x, w, b, y, phase, len),
            (1, _) => tiled::<FMA, 1, 0>(g, channels, n, x, w, b, y, phase, len),
            (2, _) => tiled::<FMA, 2, 0>(g, channels, n, x, w, b, y, phase, len),
            _ => tiled::<FMA, 0, 0>(g, channels, n, x, w, b, y, phase, len),
        }
        return;
    }
    let (kh, kw) = g.kernel;
    let (h_n, w_n) = (g.in_h, g.in_w);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (sh, ph) = (g.stride.0, g.pad.0);
    let cols_of = (g.stride.1, g.pad.1);
    let planes = x.chunks_exact(h_n * w_n).zip(y.chunks_exact_mut(oh * ow));
    for (k, (x_c, y_c)) in planes.enumerate().take(n * channels) {
        let c = k % channels;
        let w_c = &w[c * kh * kw..][..kh * kw];
        y_c.fill(b.map_or(0.0, |b| b[c]));
        for (p, y_row) in y_c.chunks_exact_mut(ow).enumerate() {
            for (u, w_row) in w_c.chunks_exact(kw).enumerate() {
                let Some(h) = (p * sh + u).checked_sub(ph).filter(|&h| h < h_n) else {
                    continue;
                };
                let x_row = &x_c[h * w_n..][..w_n];
                for (v, &wv) in w_row.iter().enumerate() {
                    axpy_row::<FMA>(wv, x_row, y_row, columns(v, cols_of, w_n, ow), v, cols_of);
                }
            }
        }
    }
}

multiversion! {
    /// The gradients of [`forward`]: `dw` and `db` accumulated, `dx`
    /// overwritten.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        dx: Option<&mut [f32]>,
    ) => backward_body
}

/// The most taps (`KH * KW`) the tiled backward pass keeps accumulators
/// for: 7 x 7.
const MAX_TAPS: usize = 49;

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_body<const FMA: bool>(
    g: &Conv2d,
    channels: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    if let (Some((phase, len)), true) = (padded_len(g), g.kernel.0 * g.kernel.1 <= MAX_TAPS) {
        match (g.stride.1, g.kernel) {
            (1, (3, 3)) => backward_tiled::<FMA, 1, 3>(g, channels, n, x, w, dy, dw, db, dx, phase, len),
            (2, (3, 3)) => backward_tiled::<FMA, 2, 3>(g, channels, n, x, w, dy, dw, db, dx, phase, len),
            (1, _) => backward_tiled::<FMA, 1, 0>(g, channels, n, x, w, dy, dw, db, dx, phase, len),
            (2, _) => backward_tiled::<FMA, 2, 0>(g, channels, n, x, w, dy, dw, db, dx, phase, len),
            _ => backward_tiled::<FMA, 0, 0>(g, channels, n, x, w, dy, dw, db, dx, phase, len),
        }
        return;
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    let (kk, in_len) = (g.kernel.0 * g.kernel.1, g.in_h * g.in_w);
    let (mut db, mut dx) = (db, dx);
    for k in 0..n * channels {
        let c = k % channels;
        let dy_c = &dy[k * oh * ow..][..oh * ow];
        if let Some(db) = db.as_deref_mut() {
            db[c] += sum::<FMA>(dy_c);
        }
        let dx_c = dx.as_deref_mut().map(|dx| &mut dx[k * in_len..][..in_len]);
        let (x_c, w_c) = (&x[k * in_len..][..in_len], &w[c * kk..][..kk]);
        backward_taps::<FMA>(g, x_c, w_c, dy_c, &mut dw[c * kk..][..kk], dx_c);
    }
}

/// `sum(v)` in [`LANES`] independent partial sums: a left fold is one
/// chain of dependent adds, which LLVM may not reorder into vectors.
#[inline(always)]
fn sum<const FMA: bool>(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    hsum(&acc) + tail
}

/// The lanes of `acc` added pairwise, as a vector reduction does.
#[inline(always)]
fn hsum(acc: &[f32; LANES]) -> f32 {
    let mut lanes = *acc;
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The tiled backward pass over planes padded as the forward pass pads
/// them ([`padded_len`]): per plane, `db` from vector partial sums, `dw`
/// from [`weight_grad_plane`] over the padded input, and at stride 1 (with
/// `P < K`) `dx` as the forward pass of the transposed correlation over the
/// padded `dy` with the filter reversed ([`tiled_plane`]); other strides
/// take `dx` tap by tap. The tap-by-tap pass this replaces summed each
/// tap's weight gradient as one chain of dependent multiply-adds: 42% of
/// MobileNetSmall's training on a Zen 5.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_tiled<const FMA: bool, const SW: usize, const KS: usize>(
    g: &Conv2d,
    channels: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
    phase: usize,
    len: usize,
) {
    let (kh, kw) = g.kernel;
    let (kk, in_len, out_len) = (kh * kw, g.in_h * g.in_w, g.out_h() * g.out_w());
    let mut buffer = [core::mem::MaybeUninit::<f32>::uninit(); PLANE_CAP];
    let xp = super::zeroed_prefix(&mut buffer, len);
    // `dx` as the stride-1 correlation, with the filter reversed, of `dy`
    // padded by `K - 1 - P` (stride 1), or at stride 2 with `K = 2P + 1`
    // (MobileNet's downsampling 3x3) of `dy` spread over every other row
    // and column of an input-sized plane padded by `P`: the zeros between
    // cost multiply-adds, but in vector tiles (64 planes of 28x28: 46 us
    // an image against 20 for the spread plane). The flag: spread.
    let one = |in_h, in_w, pad| Conv2d {
        in_channels: 1,
        in_h,
        in_w,
        out_channels: 1,
        kernel: g.kernel,
        stride: (1, 1),
        pad,
    };
    let transposed = match g.stride {
        (1, 1) if g.pad.0 < kh && g.pad.1 < kw => Some((
            one(g.out_h(), g.out_w(), (kh - 1 - g.pad.0, kw - 1 - g.pad.1)),
            false,
        )),
        (2, 2) if kh == 2 * g.pad.0 + 1 && kw == 2 * g.pad.1 + 1 => Some((one(g.in_h, g.in_w, g.pad), true)),
        _ => None,
    }
    .and_then(|(t, spread)| padded_len(&t).map(|(phase, len)| (t, phase, len, spread)));
    let mut dy_buffer = [core::mem::MaybeUninit::<f32>::uninit(); PLANE_CAP];
    let dyp = super::zeroed_prefix(&mut dy_buffer, transposed.map_or(0, |t| t.2));
    for k in 0..n * channels {
        let c = k % channels;
        let (x_c, dy_c) = (&x[k * in_len..][..in_len], &dy[k * out_len..][..out_len]);
        let w_c = &w[c * kk..][..kk];
        if let Some(db) = db.as_deref_mut() {
            db[c] += sum::<FMA>(dy_c);
        }
        pad_plane::<SW>(g, x_c, phase, xp);
        let dw_c = &mut dw[c * kk..][..kk];
        if KS == 3 {
            weight_grad_plane::<FMA, SW, KS, 9>(g, xp, phase, dy_c, dw_c);
        } else {
            weight_grad_plane::<FMA, SW, KS, MAX_TAPS>(g, xp, phase, dy_c, dw_c);
        }
        let Some(dx) = dx.as_deref_mut() else {
            continue;
        };
        let dx_c = &mut dx[k * in_len..][..in_len];
        match transposed {
            Some((t, t_phase, _, spread)) => {
                let mut reversed = [0.0f32; MAX_TAPS];
                for (r, &v) in reversed.iter_mut().zip(w_c.iter().rev()) {
                    *r = v;
                }
                if spread {
                    // Row `i`, column `j` of `dy` at `(2i, 2j)` of the plane;
                    // the places between are never written, so stay zero.
                    for (i, dy_row) in dy_c.chunks_exact(g.out_w()).enumerate() {
                        let row = &mut dyp[(2 * i + t.pad.0) * t_phase + t.pad.1..];
                        for (d, &v) in row.iter_mut().step_by(2).zip(dy_row) {
                            *d = v;
                        }
                    }
                } else {
                    pad_plane::<1>(&t, dy_c, t_phase, dyp);
                }
                tiled_plane::<FMA, 1, KS>(&t, dyp, t_phase, &reversed[..kk], 0.0, dx_c);
            }
            None => {
                dx_c.fill(0.0);
                input_grad_taps::<FMA>(g, w_c, dy_c, dx_c);
            }
        }
    }
}

/// `dw_c[u, v] += sum_{p, q} dy_c[p, q] * x[p*SH + u - PH, q*SW + v - PW]`
/// for one plane, from its padded copy `xp`: per output row and tile of
/// [`LANES`] columns, one vector accumulator per tap, reduced at the end.
/// `T` is the accumulators' count, at least `KH * KW`: 9 for a constant
/// 3x3 (`KS`), so they stay in registers.
#[inline(always)]
fn weight_grad_plane<const FMA: bool, const SW: usize, const KS: usize, const T: usize>(
    g: &Conv2d,
    xp: &[f32],
    phase: usize,
    dy_c: &[f32],
    dw_c: &mut [f32],
) {
    let (kh, kw) = (constant_or::<KS>(g.kernel.0), constant_or::<KS>(g.kernel.1));
    debug_assert!(kh * kw <= T);
    let sh = g.stride.0;
    let sw = constant_or::<SW>(g.stride.1);
    let (ow, row_len) = (g.out_w(), sw * phase);
    let mut acc = [[0.0f32; LANES]; T];
    for (p, dy_row) in dy_c.chunks_exact(ow).enumerate() {
        let mut q0 = 0;
        while q0 < ow {
            // Lanes past the row's end: zero in both operands, so they add
            // exactly nothing (whatever the padded copy holds there).
            let live = (ow - q0).min(LANES);
            let d: [f32; LANES] = match dy_row[q0..].first_chunk::<LANES>() {
                Some(d) => *d,
                None => core::array::from_fn(|l| dy_row.get(q0 + l).copied().unwrap_or(0.0)),
            };
            for u in 0..kh {
                for v in 0..kw {
                    let start = (p * sh + u) * row_len + v % sw * phase + q0 + v / sw;
                    debug_assert!(start + LANES <= xp.len());
                    // SAFETY: inside `xp`, as the same offsets in
                    // `tile_rows`.
                    let src = unsafe { xp.get_unchecked(start..start + LANES) };
                    let a = &mut acc[u * kw + v];
                    if live == LANES {
                        for (a, (&dv, &xv)) in a.iter_mut().zip(d.iter().zip(src)) {
                            *a = madd::<FMA>(dv, xv, *a);
                        }
                    } else {
                        for (l, (a, (&dv, &xv))) in a.iter_mut().zip(d.iter().zip(src)).enumerate() {
                            let xv = if l < live { xv } else { 0.0 };
                            *a = madd::<FMA>(dv, xv, *a);
                        }
                    }
                }
            }
            q0 += LANES;
        }
    }
    for (dw, a) in dw_c.iter_mut().zip(&acc).take(kh * kw) {
        *dw += hsum(a);
    }
}

/// One plane's gradients tap by tap, straight from `x_c` (planes past
/// [`PLANE_CAP`] or filters past [`MAX_TAPS`]): `dw_c` accumulated, `dx_c`
/// (if given) overwritten.
#[inline(always)]
fn backward_taps<const FMA: bool>(
    g: &Conv2d,
    x_c: &[f32],
    w_c: &[f32],
    dy_c: &[f32],
    dw_c: &mut [f32],
    dx_c: Option<&mut [f32]>,
) {
    let (sw, w_n) = (g.stride.1, g.in_w);
    for_each_tap(g, dy_c, |t, h, first, dy_seg| {
        let taps = dy_seg
            .iter()
            .zip(x_c[h * w_n..][..w_n][first..].iter().step_by(sw));
        dw_c[t] += taps.fold(0.0, |acc, (&d, &xv)| madd::<FMA>(d, xv, acc));
    });
    if let Some(dx_c) = dx_c {
        dx_c.fill(0.0);
        input_grad_taps::<FMA>(g, w_c, dy_c, dx_c);
    }
}

/// `dx_c += dL/dx` of one plane tap by tap: each tap adds a weight times a
/// row of `dy_c` into a row of `dx_c` (every `SW`-th column).
#[inline(always)]
fn input_grad_taps<const FMA: bool>(g: &Conv2d, w_c: &[f32], dy_c: &[f32], dx_c: &mut [f32]) {
    let (sw, w_n) = (g.stride.1, g.in_w);
    for_each_tap(g, dy_c, |t, h, first, dy_seg| {
        let dx_row = &mut dx_c[h * w_n..][..w_n];
        for (&d, dxq) in dy_seg.iter().zip(dx_row[first..].iter_mut().step_by(sw)) {
            *dxq = madd::<FMA>(w_c[t], d, *dxq);
        }
    });
}

/// `f(tap, h, first, dy_seg)` for every output row of `dy_c` and tap
/// `(u, v)` (`tap = u * KW + v`) that reads inside the input: input row
/// `h`, the outputs `dy_seg` of the row whose columns are inside, the first
/// of them reading input column `first` (then every `SW`-th).
#[inline(always)]
fn for_each_tap(g: &Conv2d, dy_c: &[f32], mut f: impl FnMut(usize, usize, usize, &[f32])) {
    let (kh, kw) = g.kernel;
    let (h_n, w_n) = (g.in_h, g.in_w);
    let (sh, ph) = (g.stride.0, g.pad.0);
    let cols_of = (g.stride.1, g.pad.1);
    let ow = g.out_w();
    for (p, dy_row) in dy_c.chunks_exact(ow).enumerate() {
        for u in 0..kh {
            let Some(h) = (p * sh + u).checked_sub(ph).filter(|&h| h < h_n) else {
                continue;
            };
            for v in 0..kw {
                let cols = columns(v, cols_of, w_n, ow);
                if cols.is_empty() {
                    continue;
                }
                let first = cols.start * cols_of.0 + v - cols_of.1;
                f(u * kw + v, h, first, &dy_row[cols]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Rng;
    use proptest::prelude::*;

    /// Depthwise as `C` ordinary one-channel convolutions per image, with
    /// the general kernels.
    #[allow(clippy::type_complexity)]
    fn reference(
        g: &Conv2d,
        channels: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let (xl, yl, wl) = (g.input_len(), g.output_len(), g.weight_len());
        let (mut y, mut dw, mut db, mut dx) = (
            vec![0.0; n * channels * yl],
            vec![0.0; w.len()],
            vec![0.0; channels],
            vec![0.0; x.len()],
        );
        for k in 0..n * channels {
            let c = k % channels;
            let (xs, ws) = (&x[k * xl..][..xl], &w[c * wl..][..wl]);
            super::super::forward(g, 1, xs, ws, Some(&b[c..=c]), &mut y[k * yl..][..yl]);
            super::super::backward(
                g,
                1,
                xs,
                ws,
                &dy[k * yl..][..yl],
                &mut dw[c * wl..][..wl],
                Some(&mut db[c..=c]),
                Some(&mut dx[k * xl..][..xl]),
            );
        }
        (y, dw, db, dx)
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// MobileNet's depthwise shapes (tiled, on the stack) and planes past
    /// [`PLANE_CAP`] (tap by tap), against the one-channel convolutions:
    /// the forward pass and all three gradients.
    #[test]
    fn mobilenet_shapes_and_large_planes() {
        for (hw, stride, tiled) in [
            (28, 1, true),
            (28, 2, true),
            (14, 1, true),
            (7, 1, true),
            (7, 2, true),
            (50, 1, false),
            (60, 2, false),
        ] {
            let g = depthwise_3x3((hw, hw), stride, (1, 1));
            assert_eq!(padded_len(&g).is_some(), tiled, "{hw}x{hw} stride {stride}");
            let (channels, n) = (3, 2);
            let mut rng = Rng::new(hw as u64);
            let x = rng.vec(n * channels * g.input_len());
            let w = rng.vec(channels * g.weight_len());
            let b = rng.vec(channels);
            let dy = rng.vec(n * channels * g.output_len());
            let (ey, edw, edb, edx) = reference(&g, channels, n, &x, &w, &b, &dy);
            let mut y = vec![f32::NAN; ey.len()];
            forward(&g, channels, n, &x, &w, Some(&b), Activation::None, &mut y);
            let what = format!("{hw}x{hw} stride {stride}");
            close(&y, &ey, &what);
            let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; channels], vec![f32::NAN; x.len()]);
            backward(
                &g,
                channels,
                n,
                &x,
                &w,
                &dy,
                &mut dw,
                Some(&mut db),
                Some(&mut dx),
            );
            close(&dw, &edw, &format!("{what}: dw"));
            close(&db, &edb, &format!("{what}: db"));
            close(&dx, &edx, &format!("{what}: dx"));
        }
    }

    /// A 3x3 depthwise geometry of one channel.
    fn depthwise_3x3((h, w_n): (usize, usize), stride: usize, pad: (usize, usize)) -> Conv2d {
        Conv2d {
            in_channels: 1,
            in_h: h,
            in_w: w_n,
            out_channels: 1,
            kernel: (3, 3),
            stride: (stride, stride),
            pad,
        }
    }

    /// The outputs of [`forward`] (whichever path this CPU takes) and of
    /// the portable tiles then `act`'s own pass, as bits, for inputs up to 4
    /// in size (sums past relu6's 6) drawn from `seed`.
    fn both_paths(
        g: &Conv2d,
        (channels, n): (usize, usize),
        seed: u64,
        bias: bool,
        act: Activation,
    ) -> (Vec<u32>, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = rng
            .vec(n * channels * g.input_len())
            .iter()
            .map(|v| 4.0 * v)
            .collect();
        let w = rng.vec(channels * 9);
        let b = rng.vec(channels);
        let b = bias.then_some(&b[..]);
        let mut fast = vec![f32::NAN; n * channels * g.output_len()];
        let mut portable = fast.clone();
        forward(g, channels, n, &x, &w, b, act, &mut fast);
        forward_any(g, channels, n, &x, &w, b, &mut portable);
        act.apply(&mut portable);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect();
        (bits(&fast), bits(&portable))
    }

    /// Every plane of up to 10x10 at stride 1 and 34x34 at stride 2, with
    /// one pixel of padding (the AVX-512 flat tiles take those of at most 8
    /// output columns and 256 outputs), gives the portable tiles' bits, with
    /// each activation.
    #[test]
    fn small_planes_agree_bit_for_bit() {
        let sizes = |s: usize, max: usize| (1..=max).flat_map(move |h| (1..=max).map(move |w| (s, h, w)));
        for (stride, h, w_n) in sizes(1, 10).chain(sizes(2, 34)) {
            let g = depthwise_3x3((h, w_n), stride, (1, 1));
            for act in [Activation::None, Activation::Relu, Activation::Relu6] {
                let (fast, portable) = both_paths(&g, (3, 2), (h * 16 + w_n) as u64, true, act);
                assert_eq!(fast, portable, "{h}x{w_n} stride {stride}, {act:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whichever path this CPU takes for a 3x3 filter at stride 1 or 2
        /// (the AVX-512 or AVX2 tiles where it has them, the activation in
        /// their store; CI runs it under each `CNN_MAX_ISA`) gives the portable tiles' bits and then the activation's
        /// own pass, rows of more than one vector (or, at stride 2, of more
        /// than 32 input columns) and every row count of the last tile
        /// included; inputs up to 4 in size take sums past relu6's 6.
        #[test]
        fn the_paths_agree_bit_for_bit(
            seed in 0u64..1000,
            (h, w_n) in (1usize..24, 1usize..44),
            (ph, pw) in (0usize..3, 0usize..3),
            stride in 1usize..=2,
            channels in 1usize..4,
            n in 1usize..3,
            bias: bool,
            act in 0usize..3,
        ) {
            prop_assume!(h + 2 * ph >= 3 && w_n + 2 * pw >= 3);
            let g = depthwise_3x3((h, w_n), stride, (ph, pw));
            let act = [Activation::None, Activation::Relu, Activation::Relu6][act];
            let (fast, portable) = both_paths(&g, (channels, n), seed, bias, act);
            prop_assert_eq!(fast, portable);
        }

        #[test]
        fn matches_one_channel_convolutions(
            seed in 0u64..1000,
            (h, w_n) in (1usize..9, 1usize..9),
            (kh, kw) in (1usize..5, 1usize..5),
            (sh, sw) in (1usize..4, 1usize..4),
            (ph, pw) in (0usize..3, 0usize..3),
            channels in 1usize..4,
            n in 1usize..3,
        ) {
            prop_assume!(h + 2 * ph >= kh && w_n + 2 * pw >= kw);
            let g = Conv2d { in_channels: 1, in_h: h, in_w: w_n, out_channels: 1, kernel: (kh, kw), stride: (sh, sw), pad: (ph, pw) };
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * channels * g.input_len());
            let w = rng.vec(channels * g.weight_len());
            let b = rng.vec(channels);
            let dy = rng.vec(n * channels * g.output_len());
            let (ey, edw, edb, edx) = reference(&g, channels, n, &x, &w, &b, &dy);
            let mut y = vec![f32::NAN; ey.len()];
            forward(&g, channels, n, &x, &w, Some(&b), Activation::None, &mut y);
            close(&y, &ey, "y");
            // dw and db accumulate onto what is there; dx is overwritten.
            let (mut dw, mut db, mut dx) = (vec![1.0; w.len()], vec![1.0; channels], vec![f32::NAN; x.len()]);
            backward(&g, channels, n, &x, &w, &dy, &mut dw, Some(&mut db), Some(&mut dx));
            let plus_one = |v: &[f32]| v.iter().map(|a| a + 1.0).collect::<Vec<_>>();
            close(&dw, &plus_one(&edw), "dw");
            close(&db, &plus_one(&edb), "db");
            close(&dx, &edx, "dx");
        }
    }
}
