//! The F(2x2, 3x3) kernels on AVX2 and FMA: 8 tiles to a vector, 4 output
//! channels x 3 vectors of tiles in the GEMMs' registers (12 accumulators,
//! 3 vectors of `V` and a broadcast in AVX2's 16).
//!
//! The transforms need no lane-crossing shuffle: `vshufps` splits two rows
//! of 8 floats into their even and odd columns within each 128-bit half,
//! which leaves a vector's tiles in the order 0 1 4 5 2 3 6 7 (or, for a
//! narrow plane, two tiles of each of two tile rows per half); the GEMMs do
//! not care, and the output transform's `vunpcklps` / `vunpckhps` of the
//! left and right columns put them back in pixel order, 8 floats a store.

use super::math;
use super::{Conv2d, Filters, Plan, POINTS};
use crate::ops::simd::x86::Avx2;
use core::arch::x86_64::*;

/// Tiles per vector.
const LANES: usize = 8;

/// Floats of one vector's block in `V` and `M` ([`super::block`]).
const BLOCK: usize = super::block(LANES);

/// Output channels per register tile of the GEMMs (a divisor of
/// [`super::RO`], to which the output channels are padded).
const RO: usize = 4;

/// The lanes `l` of a vector with `lo <= l < hi`, as a mask for
/// `vmaskmovps` and the gathers.
#[inline(always)]
fn lanes_between(lo: isize, hi: isize) -> __m256i {
    use crate::ops::simd::x86::{Avx2, Vector};
    <Avx2 as Vector>::mask(lo, hi)
}

/// The first `n` (at most 8) floats of `v` to `p`, with plain stores of 4,
/// 2 and 1 floats: AVX2's masked store is slow on AMD's Zen 3.
///
/// # Safety
///
/// AVX; `n` writable floats at `p`.
#[inline(always)]
unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
    // SAFETY: the caller's contract; each store writes below `p + n`.
    unsafe {
        if n >= LANES {
            _mm256_storeu_ps(p, v);
            return;
        }
        let (mut p, mut n, mut half) = (p, n, _mm256_castps256_ps128(v));
        if n >= 4 {
            _mm_storeu_ps(p, half);
            half = _mm256_extractf128_ps::<1>(v);
            (p, n) = (p.add(4), n - 4);
        }
        if n >= 2 {
            _mm_store_sd(p.cast::<f64>(), _mm_castps_pd(half));
            half = _mm_movehl_ps(half, half);
            (p, n) = (p.add(2), n - 2);
        }
        if n == 1 {
            _mm_store_ss(p, half);
        }
    }
}

/// `U[xi][o][c] = (G g G^T)[xi]` as the AVX-512 copy computes it, 8 input
/// channels to a vector, their taps gathered from `w` as `filters` stores
/// them.
///
/// # Safety
///
/// AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_filters(g: &Conv2d, filters: Filters, op: usize, w: &[f32], u: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        match filters {
            Filters::Direct => transform_filters_as::<false>(g, op, w, u),
            Filters::Flipped => transform_filters_as::<true>(g, op, w, u),
        }
    }
}

/// [`transform_filters`] for one way of storing the filters.
///
/// # Safety
///
/// AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_filters_as<const FLIPPED: bool>(g: &Conv2d, op: usize, w: &[f32], u: &mut [f32]) {
    let c_n = g.in_channels;
    let stride = op * c_n;
    assert!(w.len() == g.out_channels * c_n * 9 && u.len() >= POINTS * stride);
    let (w, u) = (w.as_ptr(), u.as_mut_ptr());
    // Filter `(o, c)` from `w + first(o, c)`, tap `k` at `tap(k)`; the
    // filters of consecutive `c` are `lane` floats apart.
    let first = |o: usize, c: usize| {
        if FLIPPED {
            (c * g.out_channels + o) * 9
        } else {
            (o * c_n + c) * 9
        }
    };
    let tap = |k: usize| if FLIPPED { 8 - k } else { k };
    let lane = if FLIPPED { g.out_channels * 9 } else { 9 };
    let taps = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(lane as i32),
    );
    for o in 0..op {
        for c in (0..c_n).step_by(LANES) {
            let count = (c_n - c).min(LANES);
            let mask = _mm256_castsi256_ps(lanes_between(0, count as isize));
            // SAFETY: the gathers read the taps of filters `w[o][c..]` of
            // the lanes in `mask`, inside `w` (`o < O`); the stores write
            // `U[xi][o][c..c + count]`, inside `u`.
            unsafe {
                let mut f = [_mm256_setzero_ps(); 9];
                if o < g.out_channels {
                    let base = w.add(first(o, c));
                    for (k, f_k) in f.iter_mut().enumerate() {
                        *f_k =
                            _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), base.add(tap(k)), taps, mask);
                    }
                }
                let points = math::filter_points::<Avx2>(f);
                for (xi, value) in points.into_iter().enumerate() {
                    store_first(u.add(xi * stride + o * c_n + c), value, count);
                }
            }
        }
    }
}

/// [`transform_input_as`] for the plan's tile-row width.
///
/// # Safety
///
/// AVX2 and FMA; `v` as the plan (of 8 lanes) lays it out.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_input(g: &Conv2d, p: &Plan, x_img: &[f32], i: usize, v: &mut [f32]) {
    assert_eq!(p.lanes, LANES);
    // SAFETY: the caller's contract.
    unsafe {
        match p.gw {
            4 => transform_input_as::<4>(g, p, x_img, i, v),
            _ => transform_input_as::<LANES>(g, p, x_img, i, v),
        }
    }
}

/// `V[c][.][xi][.] = (B^T d B)[xi]` for every tile of image `x_img`, image
/// `i` of the group, as the AVX-512 copy computes it: a vector holds 8
/// tiles of a tile row (`GW` = 8) or 4 of each of two tile rows (`GW` =
/// 4), in the order the module's documentation gives. The patches are read
/// straight from the image, the padding and whatever lies past the plane
/// as zeros (masked loads where a row's 8 floats leave the plane).
///
/// # Safety
///
/// AVX2 and FMA; `v` as [`Plan`] lays it out.
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_input_as<const GW: usize>(g: &Conv2d, p: &Plan, x_img: &[f32], i: usize, v: &mut [f32]) {
    debug_assert_eq!(p.gw, GW);
    let (c_n, h, w) = (g.in_channels, g.in_h as isize, g.in_w as isize);
    let (ph, pw) = (g.pad.0 as isize, g.pad.1 as isize);
    assert!(x_img.len() == g.input_len() && v.len() >= p.v_len(g) && i < p.group);
    let (x, v) = (x_img.as_ptr(), v.as_mut_ptr());
    // Tile rows to a vector: 1, or 2 for a narrow plane.
    let rows = LANES / GW;
    // The lanes of 8 floats from column `col` that lie in the plane, `None`
    // when all do.
    let in_plane = |col: isize| (col < 0 || col + LANES as isize > w).then(|| lanes_between(-col, w - col));
    for c in 0..c_n {
        // SAFETY: the pointer arithmetic wraps (no access), and the loads
        // read only the lanes `in_plane` keeps, of rows inside plane `c`.
        let plane = x.wrapping_add(c * g.in_h * g.in_w);
        // 8 floats of the padded plane's row `y + PH` from column
        // `col + PW` (`y`, `col` in the image's own coordinates).
        let load = |y: isize, col: isize, mask: Option<__m256i>| {
            if !(0..h).contains(&y) {
                return _mm256_setzero_ps();
            }
            let at = plane.wrapping_offset(y * w + col);
            // SAFETY: as above.
            unsafe {
                match mask {
                    None => _mm256_loadu_ps(at),
                    Some(mask) => _mm256_maskload_ps(at, mask),
                }
            }
        };
        for ty in (0..p.th).step_by(rows) {
            for k in (0..p.tw).step_by(LANES) {
                // The patch's top row and left column in the image, and the
                // masks of the column offsets the loads take.
                let (y0, x0) = (2 * ty as isize - ph, 2 * k as isize - pw);
                let masks = [
                    in_plane(x0),
                    in_plane(x0 + 2),
                    in_plane(x0 + 8),
                    in_plane(x0 + 10),
                ];
                // h[r][j]: row r of the patch times B (per lane).
                let mut h = [[_mm256_setzero_ps(); 4]; 4];
                for (r, h_r) in h.iter_mut().enumerate() {
                    let y = y0 + r as isize;
                    // The second operand of each split: the row's next 8
                    // columns, or the next tile row's input row.
                    let (a, a2) = (load(y, x0, masks[0]), load(y, x0 + 2, masks[1]));
                    let (b, b2) = if rows == 1 {
                        (load(y, x0 + 8, masks[2]), load(y, x0 + 10, masks[3]))
                    } else {
                        (load(y + 2, x0, masks[0]), load(y + 2, x0 + 2, masks[1]))
                    };
                    let [d0, d1, d2, d3] = [
                        _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
                        _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
                        _mm256_shuffle_ps::<0b10_00_10_00>(a2, b2),
                        _mm256_shuffle_ps::<0b11_01_11_01>(a2, b2),
                    ];
                    *h_r = math::times_bt::<Avx2>([d0, d1, d2, d3]);
                }
                // SAFETY: one vector's block of `V`, inside it (the plan
                // sized it). Lanes past the plane's tiles hold zeros or
                // values of the plane, which no output reads.
                unsafe {
                    let t = v.add((c * p.vectors() + p.vector(i, ty, k)) * BLOCK);
                    let points = math::input_points::<Avx2>(h);
                    for (xi, value) in points.into_iter().enumerate() {
                        _mm256_storeu_ps(t.add(xi * LANES), value);
                    }
                }
            }
        }
    }
}

/// The 16 GEMMs `M[o][.][xi][.] = sum_c U[xi][o][c] V[c][.][xi][.]` over
/// the tiles of `count` images.
///
/// # Safety
///
/// AVX2 and FMA; the slices as the plan (of 8 lanes) lays them out.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn multiply(g: &Conv2d, p: &Plan, count: usize, u: &[f32], v: &[f32], m: &mut [f32]) {
    let c_n = g.in_channels;
    let vectors = count * p.vi;
    assert!(
        p.lanes == LANES
            && p.op.is_multiple_of(RO)
            && u.len() >= p.u_len(g)
            && v.len() >= p.v_len(g)
            && m.len() >= p.m_len()
            && count <= p.group
    );
    let (u, v, m) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
    // Floats between the rows of `V` (input channels) and of `M` (output
    // channels).
    let row = p.vectors() * BLOCK;
    // The tiles outside the points: a block of up to 3 vectors' 16 points
    // (every input channel's) stays in L1 and L2 while the 16 GEMMs step
    // through it, where points outside streamed all of `V` 16 times, using
    // half of each cache line (two points share one). 8-12% faster on
    // ResNet's 3x3 convs (the conv bench, a Zen 5 with `CNN_MAX_ISA=avx2`);
    // on AVX-512, whose points fill a line, the Xeon measured it 2.4%
    // slower.
    for (t, n) in super::blocks(vectors) {
        for xi in 0..POINTS {
            // SAFETY: every pointer below stays inside `U`, `V` and `M`,
            // which the plan sized: `o + RO <= op`, `t + n <= vectors`.
            unsafe {
                let u_xi = u.add(xi * p.op * c_n);
                let v_t = v.add(t * BLOCK + xi * LANES);
                for o in (0..p.op).step_by(RO) {
                    let (u_o, m_o) = (u_xi.add(o * c_n), m.add(o * row + t * BLOCK + xi * LANES));
                    math::block_of::<Avx2, RO, BLOCK>(n, u_o, c_n, v_t, row, m_o);
                }
            }
        }
    }
}

/// [`transform_output_as`] for the plan's tile-row width.
///
/// # Safety
///
/// AVX2 and FMA; `m` as the plan (of 8 lanes) lays it out.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_output(
    g: &Conv2d,
    p: &Plan,
    i: usize,
    m: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    assert_eq!(p.lanes, LANES);
    // SAFETY: the caller's contract.
    unsafe {
        match p.gw {
            4 => transform_output_as::<4>(g, p, i, m, b, y),
            _ => transform_output_as::<LANES>(g, p, i, m, b, y),
        }
    }
}

/// `y = A^T M A + b` for the tiles of image `i` of the group, as the
/// AVX-512 copy computes it; the second row and column of the last tiles
/// are dropped where `OH` or `OW` is odd.
///
/// # Safety
///
/// AVX2 and FMA; `m` as [`Plan`] lays it out, `y` one image's output.
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_output_as<const GW: usize>(
    g: &Conv2d,
    p: &Plan,
    i: usize,
    m: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    debug_assert_eq!(p.gw, GW);
    let (oh, ow) = (g.out_h(), g.out_w());
    assert!(m.len() >= p.m_len() && y.len() == g.output_len() && i < p.group);
    let (m, y) = (m.as_ptr(), y.as_mut_ptr());
    for o in 0..g.out_channels {
        let bias = _mm256_set1_ps(b.map_or(0.0, |b| b[o]));
        let plane = o * oh * ow;
        for ty in (0..p.th).step_by(LANES / GW) {
            for k in (0..p.tw).step_by(LANES) {
                // SAFETY: the loads read one vector's block of `M`; the
                // stores write, per half of the vector's tiles, their output
                // columns below `OW` of rows `2 ty'` and (below `OH`)
                // `2 ty' + 1` of plane `o`.
                unsafe {
                    let t = m.add((o * p.vectors() + p.vector(i, ty, k)) * BLOCK);
                    let mut mm = [_mm256_setzero_ps(); 16];
                    for (xi, value) in mm.iter_mut().enumerate() {
                        *value = _mm256_loadu_ps(t.add(xi * LANES));
                    }
                    for r in 0..2 {
                        let [left, right] = math::output_row::<Avx2>(&mm, r, bias);
                        // Tiles 0-3 (in pixel order: lanes 0, 1, 4, 5) and
                        // 4-7 of the vector, each 8 floats of one row.
                        let halves = [_mm256_unpacklo_ps(left, right), _mm256_unpackhi_ps(left, right)];
                        for (half, out) in halves.into_iter().enumerate() {
                            let lane = half * LANES / 2;
                            let (row, col) = (2 * (ty + lane / GW) + r, 2 * (k + lane % GW));
                            if row >= oh || col >= ow {
                                continue;
                            }
                            store_first(y.add(plane + row * ow + col), out, ow - col);
                        }
                    }
                }
            }
        }
    }
}
