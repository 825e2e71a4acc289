//! The forward pass of 3x3, stride-1 convolutions by Winograd's minimal
//! filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016), on AVX-512 vectors.
//!
//! Each output tile of 2x2 pixels is `A^T [(G g G^T) . (B^T d B)] A` with
//! `d` the 4x4 input patch under the tile and `g` the 3x3 filter: 16
//! products per input channel where the direct sum has 36, a 2.25-fold
//! saving of multiply-adds paid for with additions in the transforms. Per
//! call the filters are transformed once, `U[xi][o][c]` (`xi` the 16 points
//! of the 4x4 transform domain). Per group of images:
//! - the input transform writes `V[c][vector][xi][lane]`: 16 tiles to a
//!   vector, from one tile row (the even and odd columns of the rows split
//!   by `vpermt2ps`; the rows read with masks, the padding as zeros) or
//!   from 2 or 4 rows of a narrow plane, the 16 points of a vector side by
//!   side (one contiguous block);
//! - 16 small GEMMs `M[o][.][xi][.] = sum_c U[xi][o][c] V[c][.][xi][.]`,
//!   the tiles in the lanes and 8 output channels x 3 vectors of tiles in
//!   registers;
//! - the output transform takes `M` back to the pixels, reading a vector's
//!   16 points from one contiguous block, interleaving the tiles' two
//!   columns into rows, and adds the bias.
//!
//! The sums are not the direct convolution's: the transforms round
//! differently, so results agree with it to a few units in the last place
//! of the largest terms (see the tests), not bit for bit.

use super::Conv2d;
use core::arch::x86_64::*;

/// Tiles per vector.
const LANES: usize = 16;

/// Output channels per register tile of the GEMMs; the output channels are
/// padded to a multiple of it with zero filters.
const RO: usize = 8;

/// Vectors of tiles per register tile of the GEMMs.
const NT: usize = 3;

/// Points of the transform domain, 4x4.
const POINTS: usize = 16;

/// The most floats of `V` and `M` a group of images takes (512 KiB: half of
/// a Zen 5 core's L2) unless one image needs more.
const GROUP_FLOATS: usize = 1 << 17;

/// Floats of one vector of tiles at every point, in `V` and `M`: the 16
/// points and one cache line of skew, so that the blocks the GEMMs step
/// through (one line of each) do not all fall into the same 4 of L1's 64
/// sets, as 1 KiB apart they would (without it this layout measured 10%
/// slower on ResNet's batch 256; with it, 6% faster than points stored
/// apart, `V[xi][c][t]`, whose transforms touched 16 streams).
const BLOCK: usize = POINTS * LANES + LANES;

/// The fewest input and output channels this path takes.
const MIN_CHANNELS: usize = 8;

/// The layout of the scratch for a group of `group` images.
struct Plan {
    /// Tile rows and columns of one image.
    th: usize,
    tw: usize,
    /// Lanes a tile row takes in the transforms' vectors: 4, 8 or 16, so
    /// that narrow planes put 4 or 2 tile rows in a vector (wider ones go
    /// 16 tiles at a time).
    gw: usize,
    /// Output channels padded to a multiple of [`RO`].
    op: usize,
    /// Images per group.
    group: usize,
    /// Vectors per tile row: `tw / 16` rounded up for wide planes, else 1.
    kc: usize,
    /// Vectors of tiles per image.
    vi: usize,
}

impl Plan {
    fn new(g: &Conv2d, group: usize) -> Self {
        let (th, tw) = (g.out_h().div_ceil(2), g.out_w().div_ceil(2));
        let gw = match tw {
            0..=4 => 4,
            5..=8 => 8,
            _ => LANES,
        };
        let kc = if gw == LANES { tw.div_ceil(LANES) } else { 1 };
        Plan {
            th,
            tw,
            gw,
            op: g.out_channels.next_multiple_of(RO),
            group,
            kc,
            vi: th.div_ceil(LANES / gw) * kc,
        }
    }

    /// The plan for the fewest images whose tiles fill a register tile
    /// of the GEMMs ([`NT`] vectors).
    fn min_group(g: &Conv2d) -> Self {
        let one = Plan::new(g, 1);
        Plan::new(g, NT.div_ceil(one.vi))
    }

    /// Vectors of tiles per group.
    fn vectors(&self) -> usize {
        self.group * self.vi
    }

    /// The vector of image `i` whose first tile row is `ty` (a multiple of
    /// `16 / gw`), first tile `k` (a multiple of 16).
    fn vector(&self, i: usize, ty: usize, k: usize) -> usize {
        i * self.vi + ty / (LANES / self.gw) * self.kc + k / LANES
    }

    fn u_len(&self, g: &Conv2d) -> usize {
        POINTS * self.op * g.in_channels
    }

    fn v_len(&self, g: &Conv2d) -> usize {
        g.in_channels * self.vectors() * BLOCK
    }

    fn m_len(&self) -> usize {
        self.op * self.vectors() * BLOCK
    }

    /// The scratch: the three buffers, each from a cache line, and up to a
    /// line to align the first.
    fn len(&self, g: &Conv2d) -> usize {
        [self.u_len(g), self.v_len(g), self.m_len()]
            .iter()
            .map(|len| len.next_multiple_of(LANES))
            .sum::<usize>()
            + LANES
            - 1
    }
}

/// The fewest 2x2 tiles an output plane must have for this path: below
/// that, the per-call filter transform and the idle lanes of the tile
/// transforms cost more than the multiply-adds saved. Measured on a Zen 5
/// (us per image, this path against the direct kernels, at 1 / 4 / 32
/// images a call): NiN's 32-to-64-channel 6x6 conv (9 tiles) 11.7 / 6.9 /
/// 5.5 against 7.5 / 6.1 / 5.7, its 64-to-10 2x2 conv (1 tile) 6.0 / - /
/// 2.1 against 2.6 / - / 1.9; ResNet's 64-channel 7x7 convs (16 tiles)
/// 21.0 / 13.8 against 24.2 / 21.6.
const MIN_TILES: usize = 16;

/// Whether this path takes `g`: a 3x3, stride-1 conv with at least
/// [`MIN_CHANNELS`] input and output channels and [`MIN_TILES`] tiles.
fn takes(g: &Conv2d) -> bool {
    g.kernel == (3, 3)
        && g.stride == (1, 1)
        && g.in_channels >= MIN_CHANNELS
        && g.out_channels >= MIN_CHANNELS
        && g.out_h().div_ceil(2) * g.out_w().div_ceil(2) >= MIN_TILES
}

/// Whether this path runs `g` on this CPU: [`takes`], on AVX-512.
fn applies(g: &Conv2d) -> bool {
    use super::super::simd::{level, Level};
    level() == Level::Avx512 && takes(g)
}

/// The scratch floats [`forward`] and [`input_grad`] need for the fewest
/// images of `g` that fill a GEMM register tile ([`Plan::min_group`]; they
/// group more when `col` holds them, or run one at a time in less), the
/// larger of the two; 0 if neither takes `g`. One vector a GEMM tile
/// (ResNet's 64-channel 7x7 convs, one image a group) ran them at 548 us
/// per 32 images on an Intel Xeon core (AVX-512) against 426 with three.
pub(super) fn scratch_len(g: &Conv2d) -> usize {
    let forward = if takes(g) { Plan::min_group(g).len(g) } else { 0 };
    let input_grad = input_grad_conv(g).map_or(0, |t| Plan::min_group(&t).len(&t));
    forward.max(input_grad)
}

/// The convolution whose forward pass is the input gradient of `g`: from
/// `O` planes of `OH x OW` (`dy`) to `C` planes of `H x W` (`dx`) with the
/// filters flipped and their channels swapped, padded `2 - P`; for a 3x3,
/// stride-1 `g` padded at most 2 that this path takes.
fn input_grad_conv(g: &Conv2d) -> Option<Conv2d> {
    let pad = (2usize.checked_sub(g.pad.0)?, 2usize.checked_sub(g.pad.1)?);
    let t = Conv2d {
        in_channels: g.out_channels,
        in_h: g.out_h(),
        in_w: g.out_w(),
        out_channels: g.in_channels,
        kernel: g.kernel,
        stride: g.stride,
        pad,
    };
    (takes(g) && takes(&t)).then_some(t)
}

/// The plan for `n` images of `g` in `col_len` floats of scratch: as many
/// images to a group as fit in [`GROUP_FLOATS`] and in the scratch, at
/// least one; `None` if one does not fit.
fn plan(g: &Conv2d, n: usize, col_len: usize) -> Option<Plan> {
    let one = Plan::new(g, 1);
    if one.len(g) > col_len {
        return None;
    }
    let per_image = (g.in_channels + one.op) * one.vi * BLOCK;
    let by_budget = (GROUP_FLOATS / per_image).max(NT.div_ceil(one.vi));
    let mut group = by_budget.min(n);
    while group > 1 && Plan::new(g, group).len(g) > col_len {
        group -= 1;
    }
    Some(Plan::new(g, group))
}

/// `y = conv(x, w) + b` for `n` images by F(2x2, 3x3) if `g` takes this
/// path ([`applies`]) and `col` holds its scratch for one image
/// ([`scratch_len`]); returns whether it ran.
pub(super) fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) -> bool {
    applies(g) && run(g, Filters::Direct, n, x, w, b, y, col)
}

/// `dx = dL/dx` for `n` images of `g` as the forward pass of
/// [`input_grad_conv`] on `dy`, if this path takes it on this CPU and
/// `col` holds its scratch; returns whether it ran.
pub(super) fn input_grad(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    col: &mut [f32],
) -> bool {
    match input_grad_conv(g) {
        Some(t) if applies(g) => run(&t, Filters::Flipped, n, dy, w, None, dx, col),
        _ => false,
    }
}

/// How the filters of the convolution run are stored in `w`.
#[derive(Clone, Copy, PartialEq)]
enum Filters {
    /// As its own `[O][C][3][3]`.
    Direct,
    /// As those of the convolution it is the input gradient of
    /// ([`input_grad_conv`]): `[C][O][3][3]`, each filter reversed.
    Flipped,
}

/// The F(2x2, 3x3) pass of `g` (which [`applies`]) for `n` images, its
/// filters in `w` as `filters` says; `false` if `col` is too short.
#[allow(clippy::too_many_arguments)]
fn run(
    g: &Conv2d,
    filters: Filters,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) -> bool {
    if n == 0 {
        return false;
    }
    let Some(p) = plan(g, n, col.len()) else {
        return false;
    };
    // Each buffer from a cache line (64 bytes).
    let skip = col.as_ptr().align_offset(64).min(LANES - 1);
    let (u, rest) = col[skip..].split_at_mut(p.u_len(g).next_multiple_of(LANES));
    let (v, rest) = rest.split_at_mut(p.v_len(g).next_multiple_of(LANES));
    let m = &mut rest[..p.m_len()];
    // SAFETY: the caller checked AVX-512F.
    unsafe {
        match filters {
            Filters::Direct => transform_filters::<false>(g, p.op, w, u),
            Filters::Flipped => transform_filters::<true>(g, p.op, w, u),
        }
    };
    let (in_len, out_len) = (g.input_len(), g.output_len());
    for first in (0..n).step_by(p.group) {
        let count = p.group.min(n - first);
        for i in 0..count {
            let image = first + i;
            let x_img = &x[image * in_len..][..in_len];
            // SAFETY: `applies` checked AVX-512F; the slices have the plan's
            // lengths.
            unsafe {
                match p.gw {
                    4 => transform_input::<4>(g, &p, x_img, i, v),
                    8 => transform_input::<8>(g, &p, x_img, i, v),
                    _ => transform_input::<LANES>(g, &p, x_img, i, v),
                }
            };
        }
        // SAFETY: as above.
        unsafe { multiply(g, &p, count, u, v, m) };
        for i in 0..count {
            let image = first + i;
            // SAFETY: as above.
            let y_img = &mut y[image * out_len..][..out_len];
            unsafe {
                match p.gw {
                    4 => transform_output::<4>(g, &p, i, m, b, y_img),
                    8 => transform_output::<8>(g, &p, i, m, b, y_img),
                    _ => transform_output::<LANES>(g, &p, i, m, b, y_img),
                }
            };
        }
    }
    true
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
unsafe fn transform_filters<const FLIPPED: bool>(g: &Conv2d, op: usize, w: &[f32], u: &mut [f32]) {
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
    let half = _mm512_set1_ps(0.5);
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
                // G f: 4 rows of 3 (per lane).
                let mut gf = [[_mm512_setzero_ps(); 3]; 4];
                for j in 0..3 {
                    let (f0, f1, f2) = (f[j], f[3 + j], f[6 + j]);
                    gf[0][j] = f0;
                    gf[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(f0, f1), f2));
                    gf[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(f0, f1), f2));
                    gf[3][j] = f2;
                }
                // (G f) G^T: 4 columns.
                for (i, r) in gf.iter().enumerate() {
                    let row = [
                        r[0],
                        _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2])),
                        _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(r[0], r[1]), r[2])),
                        r[2],
                    ];
                    for (j, value) in row.into_iter().enumerate() {
                        _mm512_mask_storeu_ps(u.add((i * 4 + j) * stride + o * c_n + c), mask, value);
                    }
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
unsafe fn transform_input<const GW: usize>(g: &Conv2d, p: &Plan, x_img: &[f32], i: usize, v: &mut [f32]) {
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
                    *h_r = [
                        _mm512_sub_ps(d0, d2),
                        _mm512_add_ps(d1, d2),
                        _mm512_sub_ps(d2, d1),
                        _mm512_sub_ps(d1, d3),
                    ];
                }
                // SAFETY: one vector's block of `V`, inside it (the plan
                // sized it). Lanes past the plane's tiles hold zeros or
                // values of the plane, which no output reads.
                unsafe {
                    let t = v.add((c * p.vectors() + p.vector(i, ty, k)) * BLOCK);
                    let [h0, h1, h2, h3] = h;
                    for (j, (((&a, &b), &c), &d)) in h0.iter().zip(&h1).zip(&h2).zip(&h3).enumerate() {
                        let points = [
                            _mm512_sub_ps(a, c),
                            _mm512_add_ps(b, c),
                            _mm512_sub_ps(c, b),
                            _mm512_sub_ps(b, d),
                        ];
                        for (r, value) in points.into_iter().enumerate() {
                            _mm512_storeu_ps(t.add((r * 4 + j) * LANES), value);
                        }
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
unsafe fn multiply(g: &Conv2d, p: &Plan, count: usize, u: &[f32], v: &[f32], m: &mut [f32]) {
    let c_n = g.in_channels;
    let vectors = count * p.vi;
    assert!(u.len() >= p.u_len(g) && v.len() >= p.v_len(g) && m.len() >= p.m_len() && count <= p.group);
    let (u, v, m) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
    // Floats between the rows of `V` (input channels) and of `M` (output
    // channels).
    let row = p.vectors() * BLOCK;
    for xi in 0..POINTS {
        // SAFETY: every pointer below stays inside `U`, `V` and `M`, which
        // the plan sized: `o + RO <= op`, `t + N <= vectors`.
        unsafe {
            let u_xi = u.add(xi * p.op * c_n);
            for o in (0..p.op).step_by(RO) {
                let (u_o, m_o) = (u_xi.add(o * c_n), m.add(o * row + xi * LANES));
                // Blocks of 3 vectors, the last 4 as 2 + 2 when 1 would be
                // left: a one-vector block's 8 accumulators barely cover
                // the FMA latency, and it has a load per FMA.
                let threes = if vectors % NT == 1 && vectors > 1 {
                    vectors / NT - 1
                } else {
                    vectors / NT
                };
                let mut t = 0;
                for _ in 0..threes {
                    block::<NT>(u_o, c_n, v.add(t * BLOCK + xi * LANES), row, m_o.add(t * BLOCK));
                    t += NT;
                }
                while vectors - t >= 2 {
                    block::<2>(u_o, c_n, v.add(t * BLOCK + xi * LANES), row, m_o.add(t * BLOCK));
                    t += 2;
                }
                if t < vectors {
                    block::<1>(u_o, c_n, v.add(t * BLOCK + xi * LANES), row, m_o.add(t * BLOCK));
                }
            }
        }
    }
}

/// One register tile: `RO` rows of `U` (stride `c_n`) times `N` vectors of
/// `V` (rows `row` floats apart, vectors [`BLOCK`] apart) into `M` (the
/// same strides).
///
/// # Safety
///
/// AVX-512F; the `RO x c_n` floats at `u`, `c_n` rows of `N` vectors at
/// `v` and `RO` rows of `N` vectors at `m`.
#[inline(always)]
unsafe fn block<const N: usize>(u: *const f32, c_n: usize, v: *const f32, row: usize, m: *mut f32) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); N]; RO];
        for c in 0..c_n {
            let mut vv = [_mm512_setzero_ps(); N];
            for (j, vj) in vv.iter_mut().enumerate() {
                *vj = _mm512_loadu_ps(v.add(c * row + j * BLOCK));
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let ur = _mm512_set1_ps(*u.add(r * c_n + c));
                for (a, &vj) in acc_r.iter_mut().zip(&vv) {
                    *a = _mm512_fmadd_ps(ur, vj, *a);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (j, &a) in acc_r.iter().enumerate() {
                _mm512_storeu_ps(m.add(r * row + j * BLOCK), a);
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
unsafe fn transform_output<const GW: usize>(
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
                    let mut mm = [[_mm512_setzero_ps(); 4]; 4];
                    for (xi, value) in mm.iter_mut().flatten().enumerate() {
                        *value = _mm512_loadu_ps(t.add(xi * LANES));
                    }
                    // A^T M: two rows.
                    let mut s = [[_mm512_setzero_ps(); 4]; 2];
                    for j in 0..4 {
                        s[0][j] = _mm512_add_ps(_mm512_add_ps(mm[0][j], mm[1][j]), mm[2][j]);
                        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(mm[1][j], mm[2][j]), mm[3][j]);
                    }
                    for (r, s_r) in s.iter().enumerate() {
                        // (A^T M) A: the tiles' two columns, plus the bias.
                        let left = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s_r[0], s_r[1]), s_r[2]), bias);
                        let right = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s_r[1], s_r[2]), s_r[3]), bias);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::forward_any;

    fn geometry(c: usize, h: usize, w: usize, o: usize, pad: usize) -> Conv2d {
        Conv2d {
            in_channels: c,
            in_h: h,
            in_w: w,
            out_channels: o,
            kernel: (3, 3),
            stride: (1, 1),
            pad: (pad, pad),
        }
    }

    /// `len` values uniform in `[-1, 1)`, from seed `seed`.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        crate::ops::testing::Rng::new(seed).vec(len)
    }

    /// `|v|` of each value.
    fn abs(v: &[f32]) -> Vec<f32> {
        v.iter().map(|v| v.abs()).collect()
    }

    /// Every `got` within 8 units in the last place of `scale` (the sum of
    /// the absolute products, plus 1) of the direct sum `want`.
    fn assert_within(got: &[f32], want: &[f32], scale: &[f32], what: &str) {
        for (idx, ((&a, &e), &s)) in got.iter().zip(want).zip(scale).enumerate() {
            assert!(
                (a - e).abs() <= 8.0 * f32::EPSILON * (s + 1.0),
                "{what} {idx} is {a}, direct {e}"
            );
        }
    }

    /// The F(2x2, 3x3) pass against the direct one, on odd and even planes,
    /// planes wider than one vector of tiles, pads 0 to 2, output channels
    /// not a multiple of the register tile, groups of images cut short by
    /// the scratch: every output within a few units in the last place of
    /// the sum of the absolute products.
    #[test]
    fn matches_the_direct_convolution() {
        if !applies(&geometry(8, 8, 8, 8, 1)) {
            return;
        }
        let cases = [
            (8, 7, 7, 8, 1, 3),
            (16, 28, 28, 16, 1, 2),
            (9, 14, 14, 12, 1, 3),
            (8, 9, 11, 10, 0, 2),
            (12, 5, 6, 8, 2, 4),
            (8, 40, 70, 9, 1, 1),
            (32, 14, 14, 32, 1, 5),
        ];
        for (c, h, w_, o, pad, n) in cases {
            let g = geometry(c, h, w_, o, pad);
            let x = values(n * g.input_len(), 1);
            let w = values(g.weight_len(), 2);
            let b = values(o, 3);
            let mut want = vec![0.0; n * g.output_len()];
            forward_any(&g, n, &x, &w, Some(&b), &mut want);
            let mut scale = vec![0.0; n * g.output_len()];
            forward_any(&g, n, &abs(&x), &abs(&w), None, &mut scale);
            for col_len in [scratch_len(&g), scratch_len(&g) * 2 + 7, scratch_len(&g) * n] {
                let mut col = vec![f32::NAN; col_len];
                let mut got = vec![f32::NAN; n * g.output_len()];
                assert!(forward(&g, n, &x, &w, Some(&b), &mut got, &mut col));
                assert_within(&got, &want, &scale, &format!("{g:?} n {n} col {col_len}: output"));
            }
        }
    }

    /// The input gradient as the F(2x2, 3x3) pass of the flipped filters
    /// against the direct backward pass, for pads 0 to 2 (the transposed
    /// conv padded 2 to 0), more input than output channels and the
    /// reverse, odd and narrow planes.
    #[test]
    fn input_gradient_matches_the_direct_backward_pass() {
        if !applies(&geometry(8, 8, 8, 8, 1)) {
            return;
        }
        let cases = [
            (16, 28, 28, 16, 1, 2),
            (8, 7, 7, 12, 1, 3),
            (12, 9, 11, 8, 0, 2),
            (9, 8, 9, 10, 2, 2),
            (32, 14, 14, 32, 1, 3),
        ];
        for (c, h, w_, o, pad, n) in cases {
            let g = geometry(c, h, w_, o, pad);
            let t = input_grad_conv(&g).expect("a 3x3 stride-1 conv padded at most 2");
            assert_eq!((t.out_h(), t.out_w()), (h, w_));
            let x = values(n * g.input_len(), 4);
            let w = values(g.weight_len(), 5);
            let dy = values(n * g.output_len(), 6);
            let mut dw = vec![0.0; g.weight_len()];
            let mut want = vec![0.0; n * g.input_len()];
            crate::ops::conv::backward_any(&g, n, &x, &w, &dy, &mut dw, None, Some(&mut want));
            let mut scale = vec![0.0; n * g.input_len()];
            crate::ops::conv::backward_any(&g, n, &x, &abs(&w), &abs(&dy), &mut dw, None, Some(&mut scale));
            let mut col = vec![f32::NAN; scratch_len(&g)];
            let mut got = vec![f32::NAN; n * g.input_len()];
            assert!(input_grad(&g, n, &w, &dy, &mut got, &mut col));
            assert_within(&got, &want, &scale, &format!("{g:?} n {n}: dx"));
        }
        // Padded 3 (its input gradient would crop): declined.
        let g = geometry(8, 8, 8, 8, 3);
        assert!(input_grad_conv(&g).is_none());
    }

    /// Too little scratch, a stride of 2 or a 5x5 kernel: the path declines.
    #[test]
    fn declines_what_it_does_not_take() {
        let g = geometry(8, 8, 8, 8, 1);
        if !applies(&g) {
            return;
        }
        let (x, w) = (vec![0.0; g.input_len()], vec![0.0; g.weight_len()]);
        let mut y = vec![0.0; g.output_len()];
        // `scratch_len` is for a group of images; one image takes less.
        let one = Plan::new(&g, 1).len(&g);
        assert!(one < scratch_len(&g));
        let mut col = vec![0.0; one];
        assert!(forward(&g, 1, &x, &w, None, &mut y, &mut col));
        col.pop();
        assert!(!forward(&g, 1, &x, &w, None, &mut y, &mut col));
        let strided = Conv2d { stride: (2, 2), ..g };
        assert!(!applies(&strided));
        let wide = Conv2d { kernel: (5, 5), ..g };
        assert!(!applies(&wide));
        assert!(!applies(&Conv2d { in_channels: 4, ..g }));
        // A 6x6 output plane: 9 tiles.
        assert!(!applies(&Conv2d {
            in_h: 6,
            in_w: 6,
            ..g
        }));
    }
}
