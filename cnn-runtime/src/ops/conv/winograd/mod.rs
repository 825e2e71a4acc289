//! The forward pass of 3x3, stride-1 convolutions by Winograd's minimal
//! filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016), on AVX-512 vectors (16 tiles to
//! a vector, `avx512.rs`) or AVX2 ones (8, `avx2.rs`).
//!
//! Each output tile of 2x2 pixels is `A^T [(G g G^T) . (B^T d B)] A` with
//! `d` the 4x4 input patch under the tile and `g` the 3x3 filter: 16
//! products per input channel where the direct sum has 36, a 2.25-fold
//! saving of multiply-adds paid for with additions in the transforms. Per
//! call the filters are transformed once, `U[xi][o][c]` (`xi` the 16 points
//! of the 4x4 transform domain), unless the caller kept them
//! ([`transform`], for a net's packed weights). Per group of images:
//! - the input transform writes `V[c][vector][xi][lane]`: a vector's
//!   tiles from one tile row (the even and odd columns of the rows split
//!   by shuffles; the rows read with masks, the padding as zeros) or
//!   from 2 or 4 rows of a narrow plane, the 16 points of a vector side by
//!   side (one contiguous block);
//! - 16 small GEMMs `M[o][.][xi][.] = sum_c U[xi][o][c] V[c][.][xi][.]`,
//!   the tiles in the lanes and 8 (AVX-512) or 4 (AVX2) output channels x
//!   3 vectors of tiles in registers;
//! - the output transform takes `M` back to the pixels, reading a vector's
//!   16 points from one contiguous block, interleaving the tiles' two
//!   columns into rows, and adds the bias.
//!
//! The sums are not the direct convolution's: the transforms round
//! differently, so results agree with it to a few units in the last place
//! of the largest terms (see the tests), not bit for bit.

use super::Conv2d;
use std::sync::OnceLock;

mod avx2;
mod avx512;

/// Floats of a cache line: each buffer of the scratch starts on one.
const LINE: usize = 16;

/// Output channels are padded to a multiple of this with zero filters:
/// AVX-512's register tile of the GEMMs (AVX2's takes half).
const RO: usize = 8;

/// Vectors of tiles per register tile of the GEMMs.
const NT: usize = 3;

/// Points of the transform domain, 4x4.
const POINTS: usize = 16;

/// The most floats of `V` and `M` a group of images takes (512 KiB: half of
/// a Zen 4 or Zen 5 core's L2) unless one image needs more; less on a core
/// with less L2 ([`group_floats`]).
const GROUP_FLOATS: usize = 1 << 17;

/// [`GROUP_FLOATS`], or half of this core's L2 where that is less, as CPUID
/// reports it (detected once). On a Zen 3 (512 KiB of L2) groups of half
/// the floats ran ResNet's batch-256 inference a median 1.10x faster over
/// 8 alternating runs (1.12x at two threads), and training 1.08x.
fn group_floats() -> usize {
    static FLOATS: OnceLock<usize> = OnceLock::new();
    *FLOATS.get_or_init(|| group_floats_for(l2_kib()))
}

/// The group budget for a core with `l2_kib` KiB of L2 (`None`: unknown).
fn group_floats_for(l2_kib: Option<u32>) -> usize {
    l2_kib.map_or(GROUP_FLOATS, |kib| {
        // Half the cache, in floats: `kib * 1024 / 2 / 4`.
        (kib as usize * 128).min(GROUP_FLOATS)
    })
}

/// This core's L2 in KiB from CPUID leaf 0x8000_0006 (ECX bits 31-16, the
/// same on AMD and Intel); `None` where the leaf is missing or says 0.
// `__cpuid` is a safe function from Rust 1.94 on, unsafe before it (the
// workspace's `rust-version` is 1.89).
#[allow(unused_unsafe)]
fn l2_kib() -> Option<u32> {
    use core::arch::x86_64::__cpuid;
    // SAFETY: every x86-64 CPU has CPUID; leaf 0x8000_0000 reports the
    // highest extended leaf, and 0x8000_0006 is read only below it.
    let top = unsafe { __cpuid(0x8000_0000) }.eax;
    if top < 0x8000_0006 {
        return None;
    }
    // SAFETY: as above, the leaf exists.
    let kib = unsafe { __cpuid(0x8000_0006) }.ecx >> 16;
    (kib > 0).then_some(kib)
}

/// Floats of one vector of `lanes` tiles at every point, in `V` and `M`:
/// the 16 points and one vector of skew, so that the blocks the GEMMs step
/// through (one vector of each) do not all fall into the same few of L1's
/// 64 sets, as 1 KiB apart they would (without it the AVX-512 layout
/// measured 10% slower on ResNet's batch 256; with it, 6% faster than
/// points stored apart, `V[xi][c][t]`, whose transforms touched 16
/// streams). An AVX2 block is half an AVX-512 one, and an image has at
/// most twice the vectors, so its scratch is never larger.
const fn block(lanes: usize) -> usize {
    (POINTS + 1) * lanes
}

/// The instruction set the path runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// This CPU's, as capped by `CNN_MAX_ISA`; `None` below AVX2 and FMA.
    fn detect() -> Option<Isa> {
        use super::super::simd::{level, Level};
        match level() {
            Level::Avx512 => Some(Isa::Avx512),
            Level::Avx2Fma => Some(Isa::Avx2),
            Level::Baseline => None,
        }
    }

    /// Tiles per vector.
    fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
}

/// The layout of the scratch for a group of `group` images.
struct Plan {
    /// Tiles per vector: 16 (AVX-512) or 8 (AVX2).
    lanes: usize,
    /// Tile rows and columns of one image.
    th: usize,
    tw: usize,
    /// Lanes a tile row takes in the transforms' vectors: 4, 8 or `lanes`,
    /// so that narrow planes put 4 or 2 tile rows in a vector (wider ones go
    /// `lanes` tiles at a time).
    gw: usize,
    /// Output channels padded to a multiple of [`RO`].
    op: usize,
    /// Images per group.
    group: usize,
    /// Vectors per tile row: `tw / lanes` rounded up for wide planes, else 1.
    kc: usize,
    /// Vectors of tiles per image.
    vi: usize,
}

impl Plan {
    fn new(g: &Conv2d, group: usize, lanes: usize) -> Self {
        let (th, tw) = (g.out_h().div_ceil(2), g.out_w().div_ceil(2));
        let gw = match tw {
            0..=4 => 4,
            5..=8 => 8,
            _ => lanes,
        }
        .min(lanes);
        let kc = if gw == lanes { tw.div_ceil(lanes) } else { 1 };
        Plan {
            lanes,
            th,
            tw,
            gw,
            op: g.out_channels.next_multiple_of(RO),
            group,
            kc,
            vi: th.div_ceil(lanes / gw) * kc,
        }
    }

    /// The plan for the fewest images whose tiles fill a register tile
    /// of the GEMMs ([`NT`] vectors).
    fn min_group(g: &Conv2d, lanes: usize) -> Self {
        let one = Plan::new(g, 1, lanes);
        Plan::new(g, NT.div_ceil(one.vi), lanes)
    }

    /// Vectors of tiles per group.
    fn vectors(&self) -> usize {
        self.group * self.vi
    }

    /// The vector of image `i` whose first tile row is `ty` (a multiple of
    /// `lanes / gw`), first tile `k` (a multiple of `lanes`).
    fn vector(&self, i: usize, ty: usize, k: usize) -> usize {
        i * self.vi + ty / (self.lanes / self.gw) * self.kc + k / self.lanes
    }

    /// Floats of one vector's block ([`block`]).
    fn block(&self) -> usize {
        block(self.lanes)
    }

    fn u_len(&self, g: &Conv2d) -> usize {
        POINTS * self.op * g.in_channels
    }

    fn v_len(&self, g: &Conv2d) -> usize {
        g.in_channels * self.vectors() * self.block()
    }

    fn m_len(&self) -> usize {
        self.op * self.vectors() * self.block()
    }

    /// The scratch: the three buffers, each from a cache line, and up to a
    /// line to align the first.
    fn len(&self, g: &Conv2d) -> usize {
        [self.u_len(g), self.v_len(g), self.m_len()]
            .iter()
            .map(|len| len.next_multiple_of(LINE))
            .sum::<usize>()
            + LINE
            - 1
    }
}

/// The GEMMs' register tiles over `vectors` vectors of tiles, as `(first
/// vector, vectors)`: blocks of [`NT`], the last 4 as 2 + 2 when 1 would be
/// left (a one-vector block's accumulators barely cover the FMA latency,
/// and it has a load per FMA), then 2 or 1.
fn blocks(vectors: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = if vectors % NT == 1 && vectors > 1 {
        vectors / NT - 1
    } else {
        vectors / NT
    } * NT;
    let mut t = 0;
    core::iter::from_fn(move || {
        let n = match vectors - t {
            0 => return None,
            left if t < full => left.min(NT),
            1 => 1,
            _ => 2,
        };
        t += n;
        Some((t - n, n))
    })
}

/// Whether this path takes `g` (the rule lives beside [`super::packed_len`],
/// which reserves the transformed filters of such a conv on every target).
use super::winograd_takes as takes;

/// Whether this path runs `g` on this CPU: [`takes`], on AVX-512 or AVX2.
fn applies(g: &Conv2d) -> bool {
    Isa::detect().is_some() && takes(g)
}

/// The scratch floats [`forward`] and [`input_grad`] need for the fewest
/// images of `g` that fill a GEMM register tile ([`Plan::min_group`]; they
/// group more when `col` holds them, or run one at a time in less), the
/// larger of the two; 0 if neither takes `g`. One vector a GEMM tile
/// (ResNet's 64-channel 7x7 convs, one image a group) ran them at 548 us
/// per 32 images on an Intel Xeon core (AVX-512) against 426 with three.
pub(super) fn scratch_len(g: &Conv2d) -> usize {
    // AVX-512's plan: an AVX2 one never needs more (see `block`).
    let lanes = Isa::Avx512.lanes();
    let forward = if takes(g) {
        Plan::min_group(g, lanes).len(g)
    } else {
        0
    };
    let input_grad = input_grad_conv(g).map_or(0, |t| Plan::min_group(&t, lanes).len(&t));
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
/// images to a group as fit in [`group_floats`] and in the scratch, at
/// least one; `None` if one does not fit.
fn plan(g: &Conv2d, n: usize, col_len: usize, lanes: usize) -> Option<Plan> {
    let one = Plan::new(g, 1, lanes);
    if one.len(g) > col_len {
        return None;
    }
    let per_image = (g.in_channels + one.op) * one.vi * one.block();
    let by_budget = (group_floats() / per_image).max(NT.div_ceil(one.vi));
    let mut group = by_budget.min(n);
    while group > 1 && Plan::new(g, group, lanes).len(g) > col_len {
        group -= 1;
    }
    Some(Plan::new(g, group, lanes))
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
    applies(g) && run(g, Weights::Raw(Filters::Direct, w), n, x, b, y, col)
}

/// [`forward`] on filters [`transform`] already transformed (`u`), if `g`
/// takes this path on this CPU and `col` holds its scratch; returns whether
/// it ran.
pub(super) fn forward_transformed(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    u: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) -> bool {
    applies(g) && run(g, Weights::Transformed(u), n, x, b, y, col)
}

/// Transforms the filters `w` of `g` into `u` (`U[16 points][O rounded up
/// to 8][C]`), once for many calls of [`forward_transformed`], if `g` takes
/// this path on this CPU; returns whether it did.
///
/// # Panics
///
/// If `u` is not `U`'s length or `w` not `g`'s weights.
pub(super) fn transform(g: &Conv2d, w: &[f32], u: &mut [f32]) -> bool {
    let Some(isa) = Isa::detect().filter(|_| takes(g)) else {
        return false;
    };
    let p = Plan::new(g, 1, isa.lanes());
    assert_eq!(u.len(), p.u_len(g), "winograd: transformed filters' length");
    assert_eq!(w.len(), g.weight_len(), "winograd: filters' length");
    transform_filters(isa, g, Filters::Direct, p.op, w, u);
    true
}

/// `U` of the filters `w` (stored as `filters` says) of `g`, its outputs
/// padded to `op`, on `isa`.
fn transform_filters(isa: Isa, g: &Conv2d, filters: Filters, op: usize, w: &[f32], u: &mut [f32]) {
    // SAFETY: `isa` is this CPU's instruction set (or a lower one:
    // `Isa::detect`); the kernels assert the slices' lengths.
    unsafe {
        match isa {
            Isa::Avx512 => avx512::transform_filters(g, filters, op, w, u),
            Isa::Avx2 => avx2::transform_filters(g, filters, op, w, u),
        }
    }
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
        Some(t) if applies(g) => run(&t, Weights::Raw(Filters::Flipped, w), n, dy, None, dx, col),
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

/// The filters of a pass.
#[derive(Clone, Copy)]
enum Weights<'a> {
    /// To transform (into the scratch), stored as [`Filters`] says.
    Raw(Filters, &'a [f32]),
    /// Transformed already ([`transform`]), `U[xi][o][c]`.
    Transformed(&'a [f32]),
}

/// The F(2x2, 3x3) pass of `g` (which [`applies`]) for `n` images with
/// `weights`; `false` if `col` is too short.
fn run(
    g: &Conv2d,
    weights: Weights<'_>,
    n: usize,
    x: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) -> bool {
    let Some(isa) = Isa::detect() else {
        return false;
    };
    if n == 0 {
        return false;
    }
    let Some(p) = plan(g, n, col.len(), isa.lanes()) else {
        return false;
    };
    // Each buffer from a cache line (64 bytes).
    let skip = col.as_ptr().align_offset(64).min(LINE - 1);
    let (u_scratch, rest) = col[skip..].split_at_mut(p.u_len(g).next_multiple_of(LINE));
    let (v, rest) = rest.split_at_mut(p.v_len(g).next_multiple_of(LINE));
    let m = &mut rest[..p.m_len()];
    let u: &[f32] = match weights {
        Weights::Transformed(u) => {
            assert_eq!(u.len(), p.u_len(g), "winograd: transformed filters' length");
            u
        }
        Weights::Raw(filters, w) => {
            let u = &mut u_scratch[..p.u_len(g)];
            transform_filters(isa, g, filters, p.op, w, u);
            u
        }
    };
    let (in_len, out_len) = (g.input_len(), g.output_len());
    for first in (0..n).step_by(p.group) {
        let count = p.group.min(n - first);
        for i in 0..count {
            let x_img = &x[(first + i) * in_len..][..in_len];
            // SAFETY (this call and the two below): `isa` is this CPU's
            // instruction set (or a lower one), the plan is for its lanes,
            // and the slices have the plan's lengths.
            unsafe {
                match isa {
                    Isa::Avx512 => avx512::transform_input(g, &p, x_img, i, v),
                    Isa::Avx2 => avx2::transform_input(g, &p, x_img, i, v),
                }
            };
        }
        // SAFETY: as above.
        unsafe {
            match isa {
                Isa::Avx512 => avx512::multiply(g, &p, count, u, v, m),
                Isa::Avx2 => avx2::multiply(g, &p, count, u, v, m),
            }
        };
        for i in 0..count {
            let y_img = &mut y[(first + i) * out_len..][..out_len];
            // SAFETY: as above.
            unsafe {
                match isa {
                    Isa::Avx512 => avx512::transform_output(g, &p, i, m, b, y_img),
                    Isa::Avx2 => avx2::transform_output(g, &p, i, m, b, y_img),
                }
            };
        }
    }
    true
}

/// The transforms' arithmetic and the GEMMs' register tile, written once
/// for both instruction sets (each file loads, shuffles and stores its own
/// way around them). Per lane; the sums in a fixed order, the same on both.
mod math {
    use crate::ops::simd::x86::Vector;

    /// `G f` for a column of 3 taps, `G = [[1, 0, 0], [1/2, 1/2, 1/2],
    /// [1/2, -1/2, 1/2], [0, 0, 1]]`; `half` holds 0.5.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller.
    #[inline(always)]
    unsafe fn times_g<V: Vector>(f: [V::Vec; 3], half: V::Vec) -> [V::Vec; 4] {
        // SAFETY: the caller's contract.
        unsafe {
            [
                f[0],
                V::mul(half, V::add(V::add(f[0], f[1]), f[2])),
                V::mul(half, V::add(V::sub(f[0], f[1]), f[2])),
                f[2],
            ]
        }
    }

    /// The 16 points `G f G^T` of the filters whose 9 taps (row-major) are
    /// `f`, point `4 i + j` at `[4 * i + j]`.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller.
    #[inline(always)]
    pub(super) unsafe fn filter_points<V: Vector>(f: [V::Vec; 9]) -> [V::Vec; 16] {
        // SAFETY: the caller's contract (and `&half` is readable).
        unsafe {
            let half = V::splat(&0.5);
            // G f: 4 rows of 3, one column at a time.
            let mut gf = [[V::zero(); 3]; 4];
            for j in 0..3 {
                let col = times_g::<V>([f[j], f[3 + j], f[6 + j]], half);
                for (i, value) in col.into_iter().enumerate() {
                    gf[i][j] = value;
                }
            }
            let mut points = [V::zero(); 16];
            for (i, gf_i) in gf.into_iter().enumerate() {
                // (G f) G^T: row `i`'s 4 points.
                points[4 * i..4 * i + 4].copy_from_slice(&times_g::<V>(gf_i, half));
            }
            points
        }
    }

    /// `B^T d` for a column of 4, `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0,
    /// -1, 1, 0], [0, 1, 0, -1]]`.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller.
    #[inline(always)]
    pub(super) unsafe fn times_bt<V: Vector>(d: [V::Vec; 4]) -> [V::Vec; 4] {
        // SAFETY: the caller's contract.
        unsafe {
            [
                V::sub(d[0], d[2]),
                V::add(d[1], d[2]),
                V::sub(d[2], d[1]),
                V::sub(d[1], d[3]),
            ]
        }
    }

    /// The 16 points `B^T d B` of the patches whose rows times `B` are `h`
    /// (`h[r]` = [`times_bt`] of row `r`'s 4 columns), point `4 r + j` at
    /// `[4 * r + j]`.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller.
    #[inline(always)]
    pub(super) unsafe fn input_points<V: Vector>(h: [[V::Vec; 4]; 4]) -> [V::Vec; 16] {
        let mut points = [V::zero(); 16];
        for j in 0..4 {
            // SAFETY: the caller's contract.
            let col = unsafe { times_bt::<V>([h[0][j], h[1][j], h[2][j], h[3][j]]) };
            for (r, value) in col.into_iter().enumerate() {
                points[4 * r + j] = value;
            }
        }
        points
    }

    /// `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]` times a column of 4: row
    /// `r` of the two.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller.
    #[inline(always)]
    unsafe fn times_at<V: Vector>(c: [V::Vec; 4], r: usize) -> V::Vec {
        // SAFETY: the caller's contract.
        unsafe {
            if r == 0 {
                V::add(V::add(c[0], c[1]), c[2])
            } else {
                V::sub(V::sub(c[1], c[2]), c[3])
            }
        }
    }

    /// Row `r` (0 or 1) of `A^T m A + bias` for the 16 points `m` (point
    /// `4 i + j` at `[4 * i + j]`): the tiles' left and right columns.
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller.
    #[inline(always)]
    pub(super) unsafe fn output_row<V: Vector>(m: &[V::Vec; 16], r: usize, bias: V::Vec) -> [V::Vec; 2] {
        // SAFETY: the caller's contract.
        unsafe {
            // A^T m: row `r`, 4 columns.
            let mut s = [V::zero(); 4];
            for (j, s_j) in s.iter_mut().enumerate() {
                *s_j = times_at::<V>([m[j], m[4 + j], m[8 + j], m[12 + j]], r);
            }
            // (A^T m) A: its two columns, plus the bias.
            [
                V::add(times_at::<V>(s, 0), bias),
                V::add(times_at::<V>(s, 1), bias),
            ]
        }
    }

    /// [`block`] for `n` (1 to [`super::NT`]) vectors, as [`super::blocks`]
    /// gives them.
    ///
    /// # Safety
    ///
    /// As [`block`].
    #[inline(always)]
    pub(super) unsafe fn block_of<V: Vector, const RO: usize, const BLOCK: usize>(
        n: usize,
        u: *const f32,
        c_n: usize,
        v: *const f32,
        row: usize,
        m: *mut f32,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            match n {
                super::NT => block::<V, RO, { super::NT }, BLOCK>(u, c_n, v, row, m),
                2 => block::<V, RO, 2, BLOCK>(u, c_n, v, row, m),
                _ => block::<V, RO, 1, BLOCK>(u, c_n, v, row, m),
            }
        }
    }

    /// One register tile of the GEMMs: `RO` rows of `U` (stride `c_n`)
    /// times `N` vectors of `V` (rows `row` floats apart, vectors `BLOCK`
    /// apart) into `M` (the same strides).
    ///
    /// # Safety
    ///
    /// `V`'s features are enabled in the caller; the `RO x c_n` floats at
    /// `u`, `c_n` rows of `N` vectors at `v` and `RO` rows of `N` vectors
    /// at `m`.
    #[inline(always)]
    unsafe fn block<V: Vector, const RO: usize, const N: usize, const BLOCK: usize>(
        u: *const f32,
        c_n: usize,
        v: *const f32,
        row: usize,
        m: *mut f32,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut acc = [[V::zero(); N]; RO];
            for c in 0..c_n {
                let mut vv = [V::zero(); N];
                for (j, vj) in vv.iter_mut().enumerate() {
                    *vj = V::loadu(v.add(c * row + j * BLOCK));
                }
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let ur = V::splat(u.add(r * c_n + c));
                    for (a, &vj) in acc_r.iter_mut().zip(&vv) {
                        *a = V::fmadd(ur, vj, *a);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                for (j, &a) in acc_r.iter().enumerate() {
                    V::storeu(m.add(r * row + j * BLOCK), a);
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

    #[test]
    fn group_budget_is_half_the_l2_up_to_512_kib() {
        assert_eq!(group_floats_for(None), GROUP_FLOATS);
        assert_eq!(group_floats_for(Some(256)), 1 << 15);
        assert_eq!(group_floats_for(Some(512)), 1 << 16, "Zen 3");
        assert_eq!(group_floats_for(Some(1024)), GROUP_FLOATS, "Zen 4 and 5");
        assert_eq!(group_floats_for(Some(2048)), GROUP_FLOATS, "Sapphire Rapids");
        // What this CPU reports, if anything, is the size of an L2.
        let kib = l2_kib();
        assert!(kib.is_none_or(|kib| (64..=1 << 15).contains(&kib)), "{kib:?}");
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

    /// The GEMMs' blocks cover every vector once, in order: threes, and a
    /// tail of 2, 2 + 2 or 1 (only when there is a single vector).
    #[test]
    fn blocks_cover_the_vectors() {
        let all = |v: usize| blocks(v).collect::<Vec<_>>();
        assert_eq!(all(0), []);
        assert_eq!(all(1), [(0, 1)]);
        assert_eq!(all(2), [(0, 2)]);
        assert_eq!(all(4), [(0, 2), (2, 2)]);
        assert_eq!(all(7), [(0, 3), (3, 2), (5, 2)]);
        assert_eq!(all(8), [(0, 3), (3, 3), (6, 2)]);
        assert_eq!(all(9), [(0, 3), (3, 3), (6, 3)]);
        for v in 0..50 {
            let mut next = 0;
            for (t, n) in blocks(v) {
                assert!(
                    t == next && (1..=NT).contains(&n) && (n > 1 || v == 1),
                    "{v}: {t} {n}"
                );
                next = t + n;
            }
            assert_eq!(next, v);
        }
    }

    /// `scratch_len` sizes AVX-512's plan: AVX2's, for the same images,
    /// is never larger (its blocks are half as long and an image has at
    /// most twice the vectors), forward and input gradient, on planes of 4
    /// to 40 pixels a side and channels 8 to 64.
    #[test]
    fn an_avx2_plan_fits_the_scratch() {
        for hw in 4..=40 {
            for pad in 0..=2 {
                for (c, o) in [(8, 8), (8, 24), (64, 16), (17, 64)] {
                    let g = geometry(c, hw, hw + 3, o, pad);
                    if !takes(&g) {
                        continue;
                    }
                    let convs = [Some(g), input_grad_conv(&g)];
                    for t in convs.iter().flatten() {
                        let (avx2, avx512) = (Plan::min_group(t, 8), Plan::min_group(t, 16));
                        assert!(avx2.len(t) <= scratch_len(&g), "{t:?}");
                        assert!(avx2.len(t) <= avx512.len(t), "{t:?}");
                    }
                }
            }
        }
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
        let one = Plan::new(&g, 1, Isa::detect().expect("checked").lanes()).len(&g);
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
