//! The F(2x2, 3x3) kernels on AVX-512F: 16 tiles to a vector, the even
//! and odd columns of the input rows split by `vpermt2ps`, 8 output
//! channels x 3 vectors of tiles in the GEMMs' registers.

use super::math;
use super::{Conv2d, Filters, Plan, POINTS, RO};
use crate::ops::simd::x86::Avx512;
use core::arch::x86_64::*;

/// Tiles per vector.
const LANES: usize = 16;

/// Floats of one vector's block in `V` and `M` ([`super::block`]).
const BLOCK: usize = super::block(LANES);

/// [`transform_filters_as`] for the filters as `filters` stores them.
///
/// # Safety
///
/// AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_filters(g: &Conv2d, filters: Filters, op: usize, w: &[f32], u: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        match filters {
            Filters::Direct => transform_filters_as::<false>(g, op, w, u),
            Filters::Flipped => transform_filters_as::<true>(g, op, w, u),
        }
    }
}

/// [`transform_input_as`] for the plan's tile-row width.
///
/// # Safety
///
/// AVX-512F; `v` as the plan (of 16 lanes) lays it out.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_input(g: &Conv2d, p: &Plan, x_img: &[f32], i: usize, v: &mut [f32]) {
    assert_eq!(p.lanes, LANES);
    // SAFETY: the caller's contract.
    unsafe {
        match p.gw {
            4 => transform_input_as::<4>(g, p, x_img, i, v),
            8 => transform_input_as::<8>(g, p, x_img, i, v),
            _ => transform_input_as::<LANES>(g, p, x_img, i, v),
        }
    }
}

/// [`transform_output_as`] for the plan's tile-row width.
///
/// # Safety
///
/// AVX-512F; `m` as the plan (of 16 lanes) lays it out.
#[target_feature(enable = "avx512f")]
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
            8 => transform_output_as::<8>(g, p, i, m, b, y),
            _ => transform_output_as::<LANES>(g, p, i, m, b, y),
        }
    }
}

/// `U[xi][o][c] = (G g G^T)[xi]` for each filter `g = w[o][c]`, with
/// `G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]`, 16
/// input channels to a vector (their taps loaded and permuted from `w`, or
/// gathered: from the filters transposed and reversed with `FLIPPED`, see
/// [`Filters`]); the padded output channels `O..op` get zero filters.
///
/// # Safety
///
/// AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn transform_filters_as<const FLIPPED: bool>(g: &Conv2d, op: usize, w: &[f32], u: &mut [f32]) {
    let c_n = g.in_channels;
    let stride = op * c_n;
    assert!(w.len() == g.out_channels * c_n * 9 && u.len() >= POINTS * stride);
    let (w, u) = (w.as_ptr(), u.as_mut_ptr());
    // Filter `(o, c)` from `w + first(o, c)`, tap `k` at `tap(k)`; the
    // filters of consecutive `c` are `lane` floats apart.
    // One copy each: the direct filters' loads and permutes, inlined into
    // the gathers' loop, made the flipped copy's input gradient 10% slower.
    let first = |o: usize, c: usize| {
        if FLIPPED {
            (c * g.out_channels + o) * 9
        } else {
            (o * c_n + c) * 9
        }
    };
    let tap = |k: usize| if FLIPPED { 8 - k } else { k };
    let lane = if FLIPPED { g.out_channels * 9 } else { 9 };
    let taps = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(lane as i32),
    );
    for o in 0..op {
        for c in (0..c_n).step_by(LANES) {
            let mask = ((1u32 << (c_n - c).min(LANES)) - 1) as u16;
            // SAFETY: the gathers read the taps of filters `w[o][c..]` in
            // `mask`, inside `w` (`o < O`); the stores write `U[xi][o][c..]`
            // in `mask`, inside `u`.
            unsafe {
                let mut f = [_mm512_setzero_ps(); 9];
                if o < g.out_channels && !FLIPPED && mask == u16::MAX {
                    f = contiguous_taps(w.add(first(o, c)));
                } else if o < g.out_channels {
                    let base = w.add(first(o, c));
                    for (k, f_k) in f.iter_mut().enumerate() {
                        *f_k =
                            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, taps, base.add(tap(k)));
                    }
                }
                let points = math::filter_points::<Avx512>(f);
                for (xi, value) in points.into_iter().enumerate() {
                    _mm512_mask_storeu_ps(u.add(xi * stride + o * c_n + c), mask, value);
                }
            }
        }
    }
}

/// The nine taps of the 16 consecutive filters at `w` (144 floats), tap
/// `k` of filter `l` in lane `l` of vector `k`: `w[9 l + k]`. Nine loads
/// and, per tap, five `vpermt2ps` over pairs of them (their index `9 l + k`
/// modulo 32 is the same for every pair) merged by masks, instead of nine
/// gathers, which bound the filter transform: ResNet's 64-channel 7x7 conv
/// at one image a call went from 20.1 to 18.5 us.
///
/// # Safety
///
/// AVX-512F; 144 readable floats at `w`.
#[inline(always)]
unsafe fn contiguous_taps(w: *const f32) -> [__m512; 9] {
    // SAFETY: the caller's contract.
    unsafe {
        let a: [__m512; 9] = core::array::from_fn(|j| _mm512_loadu_ps(w.add(j * LANES)));
        let lane = _mm512_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 108, 117, 126, 135);
        let mut f = [_mm512_setzero_ps(); 9];
        for (k, f_k) in f.iter_mut().enumerate() {
            let at = _mm512_add_epi32(lane, _mm512_set1_epi32(k as i32));
            // Lanes whose float lies in pair `p` (floats `32 p .. 32 p + 32`).
            let pair = _mm512_srli_epi32::<5>(at);
            let mut v = _mm512_permutex2var_ps(a[0], at, a[1]);
            for p in 1..5 {
                let hi = if 2 * p + 1 < 9 { a[2 * p + 1] } else { a[2 * p] };
                let from = _mm512_permutex2var_ps(a[2 * p], at, hi);
                let m = _mm512_cmpeq_epi32_mask(pair, _mm512_set1_epi32(p as i32));
                v = _mm512_mask_mov_ps(v, m, from);
            }
            *f_k = v;
        }
        f
    }
}

/// `V[c][.][xi][.] = (B^T d B)[xi]` for every tile of image `x_img`, image
/// `i` of the group, with
/// `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`;
/// a vector holds 16 tiles of a tile row or `16 / gw` tile rows of a
/// narrow plane. The patches are read straight from the image, the
/// padding and whatever lies past the plane as zeros (masked loads): a
/// zero-padded copy of each image, before, cost 6.6% of ResNet's batch-256
/// inference.
///
/// # Safety
///
/// AVX-512F; `v` as [`Plan`] lays it out.
#[target_feature(enable = "avx512f")]
unsafe fn transform_input_as<const GW: usize>(g: &Conv2d, p: &Plan, x_img: &[f32], i: usize, v: &mut [f32]) {
    debug_assert_eq!(p.gw, GW);
    let (c_n, h, w) = (g.in_channels, g.in_h as isize, g.in_w as isize);
    let (ph, pw) = (g.pad.0 as isize, g.pad.1 as isize);
    assert!(x_img.len() == g.input_len() && v.len() >= p.v_len(g) && i < p.group);
    let (x, v) = (x_img.as_ptr(), v.as_mut_ptr());
    let rows = LANES / GW;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let even4 = _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 0, 2, 4, 6, 16, 18, 20, 22);
    let odd4 = _mm512_setr_epi32(1, 3, 5, 7, 17, 19, 21, 23, 1, 3, 5, 7, 17, 19, 21, 23);
    // The lanes of 16 floats from column `col` that lie in the plane.
    let in_plane = |col: isize| {
        let (lo, hi) = ((-col).clamp(0, 16), (w - col).clamp(0, 16));
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
    };
    for c in 0..c_n {
        // SAFETY: the pointer arithmetic wraps (no access), and the loads
        // read only the lanes `in_plane` keeps, of rows inside plane `c`.
        let plane = x.wrapping_add(c * g.in_h * g.in_w);
        // 16 floats of the padded plane's row `y + PH` from column
        // `col + PW` (`y`, `col` in the image's own coordinates).
        let load = |y: isize, col: isize, mask: u16| {
            if (0..h).contains(&y) {
                // SAFETY: as above.
                unsafe { _mm512_maskz_loadu_ps(mask, plane.wrapping_offset(y * w + col)) }
            } else {
                _mm512_setzero_ps()
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
                    in_plane(x0 + 16),
                    in_plane(x0 + 18),
                ];
                // h[r][j]: row r of the patch times B (per lane).
                let mut h = [[_mm512_setzero_ps(); 4]; 4];
                for (r, h_r) in h.iter_mut().enumerate() {
                    let y = y0 + r as isize;
                    let [d0, d1, d2, d3] = if rows == 4 {
                        // Tile rows s = 0..4 from input rows `2 s` apart,
                        // two to a permute, the halves merged.
                        let pick = |idx: __m512i, at: usize| {
                            let ld = |s: isize| load(y + 2 * s, x0 + at as isize, masks[at / 2]);
                            let low = _mm512_permutex2var_ps(ld(0), idx, ld(1));
                            let high = _mm512_permutex2var_ps(ld(2), idx, ld(3));
                            _mm512_mask_mov_ps(low, 0xff00, high)
                        };
                        [pick(even4, 0), pick(odd4, 0), pick(even4, 2), pick(odd4, 2)]
                    } else {
                        // The second operand: the row's next 16 columns,
                        // or the next tile row's input row.
                        let (a, a2) = (load(y, x0, masks[0]), load(y, x0 + 2, masks[1]));
                        let (b, b2) = if rows == 1 {
                            (load(y, x0 + 16, masks[2]), load(y, x0 + 18, masks[3]))
                        } else {
                            (load(y + 2, x0, masks[0]), load(y + 2, x0 + 2, masks[1]))
                        };
                        [
                            _mm512_permutex2var_ps(a, even, b),
                            _mm512_permutex2var_ps(a, odd, b),
                            _mm512_permutex2var_ps(a2, even, b2),
                            _mm512_permutex2var_ps(a2, odd, b2),
                        ]
                    };
                    *h_r = math::times_bt::<Avx512>([d0, d1, d2, d3]);
                }
                // SAFETY: one vector's block of `V`, inside it (the plan
                // sized it). Lanes past the plane's tiles hold zeros or
                // values of the plane, which no output reads.
                unsafe {
                    let t = v.add((c * p.vectors() + p.vector(i, ty, k)) * BLOCK);
                    let points = math::input_points::<Avx512>(h);
                    for (xi, value) in points.into_iter().enumerate() {
                        _mm512_storeu_ps(t.add(xi * LANES), value);
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
/// AVX-512F; the slices as [`Plan`] lays them out.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn multiply(g: &Conv2d, p: &Plan, count: usize, u: &[f32], v: &[f32], m: &mut [f32]) {
    let c_n = g.in_channels;
    let vectors = count * p.vi;
    assert!(
        p.lanes == LANES
            && u.len() >= p.u_len(g)
            && v.len() >= p.v_len(g)
            && m.len() >= p.m_len()
            && count <= p.group
    );
    let (u, v, m) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
    // Floats between the rows of `V` (input channels) and of `M` (output
    // channels).
    let row = p.vectors() * BLOCK;
    for xi in 0..POINTS {
        // SAFETY: every pointer below stays inside `U`, `V` and `M`, which
        // the plan sized: `o + RO <= op`, `t + n <= vectors`.
        unsafe {
            let u_xi = u.add(xi * p.op * c_n);
            for o in (0..p.op).step_by(RO) {
                let (u_o, m_o) = (u_xi.add(o * c_n), m.add(o * row + xi * LANES));
                for (t, n) in super::blocks(vectors) {
                    let v_t = v.add(t * BLOCK + xi * LANES);
                    math::block_of::<Avx512, RO, BLOCK>(n, u_o, c_n, v_t, row, m_o.add(t * BLOCK));
                }
            }
        }
    }
}

/// `y = A^T M A + b` for the tiles of image `i` of the group, with
/// `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`; the second row and column of the
/// last tiles are dropped where `OH` or `OW` is odd.
///
/// # Safety
///
/// AVX-512F; `m` as [`Plan`] lays it out, `y` one image's output.
#[target_feature(enable = "avx512f")]
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
    // Lanes 0-7 (`lo`) and 8-15 (`hi`) of the left and right columns,
    // interleaved.
    let lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    // Output floats of one tile row in an interleaved vector.
    let seg = (2 * GW).min(LANES);
    for o in 0..g.out_channels {
        let bias = _mm512_set1_ps(b.map_or(0.0, |b| b[o]));
        let plane = o * oh * ow;
        for ty in (0..p.th).step_by(LANES / GW) {
            for k in (0..p.tw).step_by(LANES) {
                // SAFETY: the loads read one vector's block of `M`; the stores
                // write, per tile row of the vector, its output columns
                // below `OW` of rows `2 ty'` and (below `OH`) `2 ty' + 1`
                // of plane `o`.
                unsafe {
                    let t = m.add((o * p.vectors() + p.vector(i, ty, k)) * BLOCK);
                    let mut mm = [_mm512_setzero_ps(); 16];
                    for (xi, value) in mm.iter_mut().enumerate() {
                        *value = _mm512_loadu_ps(t.add(xi * LANES));
                    }
                    for r in 0..2 {
                        let [left, right] = math::output_row::<Avx512>(&mm, r, bias);
                        for (half, idx) in [lo_idx, hi_idx].into_iter().enumerate() {
                            let out = _mm512_permutex2var_ps(left, idx, right);
                            for at in (0..LANES).step_by(seg) {
                                // Tile lane of this segment's first float.
                                let lane = half * LANES / 2 + at / 2;
                                let (row, col) = (2 * (ty + lane / GW) + r, 2 * (k + lane % GW));
                                if row >= oh || col >= ow {
                                    continue;
                                }
                                let cols = (ow - col).min(seg);
                                let mask = (((1u32 << cols) - 1) << at) as u16;
                                _mm512_mask_storeu_ps(
                                    y.add(plane + row * ow + col).wrapping_sub(at),
                                    mask,
                                    out,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
