//! The forward pass and the weight gradient with output channels in the
//! vector lanes, for `x86_64` AVX2 + FMA: the paths [`super::forward_gemm`]
//! and [`super::backward_gemm`] take for every convolution with a column
//! stride of 1 (except 1x1 forward passes, a plain GEMM), when their `col`
//! scratch holds what these kernels need ([`scratch_len`],
//! [`weight_grad_scratch_len`]); [`super::forward`] (batch 1, no heap) runs
//! the forward kernels with their scratch on the stack when it fits. The
//! weight gradient is described at [`weight_grad`]. On an AVX-512 CPU the
//! channel tiles take 16 channels to a vector ([`plane_avx512`]) and the
//! forward pass runs here only where it measured faster than the row
//! kernels ([`forward_wins`]).
//!
//! The row kernels of `conv/x86.rs` put consecutive output columns in the
//! lanes, so a row whose width is not a multiple of 8 leaves lanes idle and
//! every padded border needs masked loads (LeNet's conv2, 10 columns wide,
//! ran at 40% of one core's FMA peak on a Zen 3). Here a register tile is
//! `R` output rows x `Q` output columns x `NV` vectors of 8 output channels:
//! per tap `(c, u, v)`, the `NV` weight vectors are loaded once, each of the
//! `R * Q` input values is broadcast once, and the tile takes `R * Q * NV`
//! fused multiply-adds, with no mask anywhere. The tile shape is picked per
//! convolution so that tiles cover the output plane with the fewest wasted
//! pixels (LeNet's 10x10 plane exactly as 1 x 5 tiles).
//!
//! Per call the weights are packed tap by tap, `[C*KH*KW][KP]` with the
//! output channels padded to `KP`, a multiple of 8, with zeros. Per image,
//! the input is copied into a zero-padded plane (so no tap tests a border),
//! the tiles write `[OH*OW][KP]`, and an 8x8 transpose moves that to the
//! `[O][OH*OW]` output, adding the bias on the way. Each output is the sum
//! of its taps in `(c, u, v)` order, then the bias.

use super::super::simd::x86::{Avx2, Avx512, Vector};
use super::Conv2d;
use core::arch::x86_64::*;

/// Output channels per vector.
const LANES: usize = 8;

/// Floats after the padded input that a tile's last columns may read: a
/// channel tile computes up to `Q - 1` columns past a row's end (reading
/// `(Q - 1) * SW` floats past it: 11 at most, 10 at a column stride of 2),
/// a row tile up to `8 * ROW_VECTORS - 1` (never stored).
const SLACK: usize = 8 * ROW_VECTORS;

/// Vectors of output columns in a row tile ([`row_plane`]).
const ROW_VECTORS: usize = 2;

/// Whether [`row_plane`] (columns in the lanes) beats [`plane`] (channels
/// in the lanes) for `k_n` output channels `ow` wide: with 8 or fewer
/// channels, a channel tile has one vector of channels per broadcast input
/// value and, for fewer than 8, idle lanes; rows of 12 or more columns keep
/// three quarters or more of a row tile's lanes busy.
fn rows_win(k_n: usize, ow: usize) -> bool {
    k_n <= LANES && ow >= 12
}

/// The scratch floats [`forward`] needs for `g`: the packed weights, the
/// padded image with its slack, and (for channel tiles) the `[OH*OW][KP]`
/// sums.
pub(super) fn scratch_len(g: &Conv2d) -> usize {
    buffers_len(g, !row_tiles(g))
}

/// `[C*KH*KW][KP]` (packed weights or the weight gradient), the padded
/// image with its slack, and with `per_pixel` an `[OH*OW][KP]` buffer: the
/// scratch of the forward and weight-gradient kernels.
fn buffers_len(g: &Conv2d, per_pixel: bool) -> usize {
    let kp = g.out_channels.next_multiple_of(LANES);
    let (hp, wp) = (g.in_h + 2 * g.pad.0, g.in_w + 2 * g.pad.1);
    let pixels = if per_pixel { g.out_plane() * kp } else { 0 };
    g.filter_len() * kp + g.in_channels * hp * wp + SLACK + pixels
}

/// Whether the forward pass of `g` runs as row tiles (columns in the
/// lanes, [`row_plane`]) rather than channel tiles ([`plane`]): for a
/// column stride of 1 only.
fn row_tiles(g: &Conv2d) -> bool {
    g.stride.1 == 1 && rows_win(g.out_channels, g.out_w())
}

/// Whether this CPU runs these kernels: AVX2 and FMA, which AVX-512 CPUs
/// have too.
fn avx2() -> bool {
    super::super::simd::level() != super::super::simd::Level::Baseline
}

/// Whether channel tiles take AVX-512 vectors of 16 channels
/// ([`plane_avx512`]): on AVX-512 CPUs.
fn wide() -> bool {
    super::super::simd::level() == super::super::simd::Level::Avx512
}

/// Whether the forward pass of `g` takes these kernels: always on an AVX2
/// CPU. On an AVX-512 one (whose channel tiles take 16 channels to a
/// vector, [`plane_avx512`]) where they measured faster than the row
/// kernels of `conv/x86.rs`, 16 columns to a vector, on a Zen 5 (one image
/// / 8 images per call):
/// - at column stride 2, where those do not run: ResNet's downsampling 3x3
///   18 / 16 us against 250 (portable) or 30 (GEMM);
/// - with more than one input channel, at most 14 output columns, not 1x1:
///   LeNet's conv2 3.2 / 2.7 us against 3.5, ResNet's 64-channel 3x3 at
///   7x7 27 / 35 against 34, 32 channels at 14x14 21 / 18 against 21, a
///   4-to-8-channel 5x5 3.3 against 5.4.
///
/// The row kernels keep one input channel (LeNet's conv1 1.6 us against
/// 2.2), wider planes (16 channels at 28x28: 16 against 21) and 1x1 convs.
/// The weight and input gradients run on both.
fn forward_wins(g: &Conv2d) -> bool {
    use super::super::simd::{level, Level};
    match level() {
        Level::Avx2Fma => true,
        Level::Avx512 => {
            g.stride.1 == 2 || (g.in_channels > 1 && g.out_w() <= WIDE_MAX_COLUMNS && !g.is_pointwise())
        }
        Level::Baseline => false,
    }
}

/// The widest output plane [`forward_wins`] takes from the row kernels on
/// an AVX-512 CPU.
const WIDE_MAX_COLUMNS: usize = 14;

/// Copies image `x_img` (`C x H x W`) into the interior of `xp`, planes of
/// `hp x wp` (at least `H + 2 PH` by `W + 2 PW`) with `g`'s padding above
/// and left of it (the rest left as it is: zero).
pub(super) fn pad_image(g: &Conv2d, x_img: &[f32], xp: &mut [f32], (hp, wp): (usize, usize)) {
    let (ph, pw) = g.pad;
    assert!(x_img.len() == g.input_len() && hp >= g.in_h + ph && wp >= g.in_w + pw);
    assert!(xp.len() >= g.in_channels * hp * wp);
    if super::super::simd::level() == super::super::simd::Level::Avx512 {
        // SAFETY: AVX-512F was detected; the asserts above bound every row.
        unsafe { pad_image_avx512(g, x_img, xp, (hp, wp)) };
        return;
    }
    for (c, x_c) in x_img.chunks_exact(g.in_h * g.in_w).enumerate() {
        for (r, x_row) in x_c.chunks_exact(g.in_w).enumerate() {
            xp[c * hp * wp + (r + ph) * wp + pw..][..g.in_w].copy_from_slice(x_row);
        }
    }
}

/// [`pad_image`] by masked vector moves, 16 floats at a time: the rows (7
/// to 28 floats in ResNet) are too short for `memcpy`, whose calls took
/// 6.8% of ResNet's batch-256 inference.
///
/// # Safety
///
/// AVX-512F; `x_img` one image of `g`, `xp` at least `C` planes of
/// `hp x wp` with `hp >= H + PH` and `wp >= W + PW`.
#[target_feature(enable = "avx512f")]
unsafe fn pad_image_avx512(g: &Conv2d, x_img: &[f32], xp: &mut [f32], (hp, wp): (usize, usize)) {
    let (ph, pw) = g.pad;
    let w = g.in_w;
    let tail = ((1u32 << (w % 16)) - 1) as u16;
    let (src, dst) = (x_img.as_ptr(), xp.as_mut_ptr());
    for c in 0..g.in_channels {
        for r in 0..g.in_h {
            // SAFETY: the caller's contract: `w` floats of row `r` of plane
            // `c` of the image, into row `r + PH` of plane `c` of `xp` from
            // column `PW`.
            unsafe {
                let s = src.add((c * g.in_h + r) * w);
                let d = dst.add(c * hp * wp + (r + ph) * wp + pw);
                let mut k = 0;
                while k + 16 <= w {
                    _mm512_storeu_ps(d.add(k), _mm512_loadu_ps(s.add(k)));
                    k += 16;
                }
                if tail != 0 {
                    _mm512_mask_storeu_ps(d.add(k), tail, _mm512_maskz_loadu_ps(tail, s.add(k)));
                }
            }
        }
    }
}

/// The floats [`forward_on_stack`] puts on the stack for a small conv
/// (24 KiB): LeNet's convs need 1,240 and 5,192.
const STACK_SMALL: usize = 6144;

/// The most floats [`forward_on_stack`] puts on the stack (192 KiB):
/// ResNet's 3x3 convs need up to 45,200 (64 channels, whose packed weights
/// are 36,864). The generated `forward` keeps its own scratch on the stack
/// too, up to `cnn_net!`'s 1 MiB limit; a conv needing more takes the row
/// kernels.
const STACK_LARGE: usize = 49152;

/// [`forward`] with its scratch on the stack, for the no-heap path
/// ([`super::forward`]); `false` (nothing done) also when `g` needs more
/// than [`STACK_LARGE`] floats.
pub(super) fn forward_on_stack(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) -> bool {
    let need = scratch_len(g);
    if need > STACK_LARGE || !forward_wins(g) {
        return false;
    }
    if need <= STACK_SMALL {
        // A small frame for small convs: every page of a frame is probed.
        on_stack::<STACK_SMALL>(need, |scratch| forward(g, n, x, w, b, y, scratch))
    } else {
        on_stack::<STACK_LARGE>(need, |scratch| forward(g, n, x, w, b, y, scratch))
    }
}

/// `f` of `need` zeroed floats in a stack frame of `CAP` floats.
#[inline(never)]
fn on_stack<const CAP: usize>(need: usize, f: impl FnOnce(&mut [f32]) -> bool) -> bool {
    let mut stack = [core::mem::MaybeUninit::<f32>::uninit(); CAP];
    f(super::zeroed_prefix(&mut stack, need))
}

/// `y = conv(x, w) + b` for `n` images, as [`super::forward`], or `false`
/// (nothing done) where other kernels win ([`forward_wins`]) or as
/// [`run_forward`]. The lengths of `x`, `w`, `b` and `y` must have been
/// checked against `g`.
pub(super) fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> bool {
    forward_wins(g) && run_forward(g, n, x, w, b, y, scratch)
}

/// [`forward`] wherever these kernels run: `false` (nothing done) without
/// AVX2 + FMA, for a column stride past 2, or when `scratch` is shorter
/// than [`scratch_len`].
fn run_forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> bool {
    if g.stride.1 > 2 || !avx2() || scratch.len() < scratch_len(g) || g.out_plane() == 0 {
        return false;
    }
    assert!(x.len() >= n * g.input_len() && y.len() >= n * g.output_len());
    assert!(w.len() >= g.weight_len() && b.is_none_or(|b| b.len() >= g.out_channels));
    // SAFETY: AVX2 and FMA were detected (`level`); the lengths are asserted.
    unsafe { forward_avx2(g, n, x, w, b, y, scratch, wide()) };
    true
}

/// The convolution whose forward pass is the input gradient of `g`, for a
/// stride of 1: over the `O` planes of `dy`, padded by `KH - 1 - PH` and
/// `KW - 1 - PW`, to `C` planes of `H x W`, with the kernel flipped and its
/// channels swapped ([`flip_kernel`]). `None` for a padding past `K - 1`,
/// and where the new padding would be wider than `g`'s own (most of the taps would read zeros: LeNet's conv2,
/// 5x5 unpadded, as four-column borders around a 10x10 gradient), so the
/// GEMM and col2im cost less.
fn input_grad_conv(g: &Conv2d) -> Option<Conv2d> {
    let (kh, kw) = g.kernel;
    let (ph, pw) = g.pad;
    // A padding past `K - 1` would need a negative one (a crop) here.
    let pad = ((kh - 1).checked_sub(ph)?, (kw - 1).checked_sub(pw)?);
    (g.stride == (1, 1) && !g.is_pointwise() && pad.0 <= ph && pad.1 <= pw).then_some(Conv2d {
        in_channels: g.out_channels,
        in_h: g.out_h(),
        in_w: g.out_w(),
        out_channels: g.in_channels,
        kernel: g.kernel,
        stride: (1, 1),
        pad,
    })
}

/// `wf[c][k][u][v] = w[k][c][KH-1-u][KW-1-v]`.
fn flip_kernel(g: &Conv2d, w: &[f32], wf: &mut [f32]) {
    let (kh, kw) = g.kernel;
    let taps = kh * kw;
    for (k, w_k) in w.chunks_exact(g.filter_len()).enumerate() {
        for (c, w_kc) in w_k.chunks_exact(taps).enumerate() {
            let dst = &mut wf[(c * g.out_channels + k) * taps..][..taps];
            for (d, &s) in dst.iter_mut().zip(w_kc.iter().rev()) {
                *d = s;
            }
        }
    }
}

/// The scratch floats [`input_grad`] needs for `g` (0 when it does not
/// apply): the flipped kernel, then [`scratch_len`] of the transposed conv.
pub(super) fn input_grad_scratch_len(g: &Conv2d) -> usize {
    input_grad_conv(g).map_or(0, |t| g.weight_len() + scratch_len(&t))
}

/// `dx = dL/dx` for `n` images of a stride-1 conv padded at least half its
/// kernel (3x3 with padding 1: ResNet's), as the forward pass of
/// [`input_grad_conv`] on `dy` with the flipped kernel; or `false` (nothing
/// done) without AVX2 + FMA, for other convs, or with less `scratch` than
/// [`input_grad_scratch_len`]. The lengths of `w`, `dy` and `dx` must have
/// been checked against `g`.
pub(super) fn input_grad(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) -> bool {
    let Some(t) = input_grad_conv(g) else {
        return false;
    };
    if !avx2() || scratch.len() < input_grad_scratch_len(g) {
        return false;
    }
    let (wf, rest) = scratch.split_at_mut(g.weight_len());
    flip_kernel(g, w, wf);
    run_forward(&t, n, dy, wf, None, dx, rest)
}

/// Declares a set of register-tile shapes, each once with its dimensions:
/// the enum, `dims` (`(NV, R, Q)`), `pick` (the [`cheapest`] of them for a
/// plane, with `full` accumulators a full tile) and `run`, [`plane`] with
/// the shape's constants at column stride 1.
macro_rules! tile_shapes {
    (
        $(#[$attr:meta])*
        enum $name:ident, full $full:literal, fallback $fallback:ident {
            $($shape:ident = ($nv:literal, $r:literal, $q:literal)),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum $name {
            $($shape),+
        }

        impl $name {
            /// Every shape.
            const ALL: &[$name] = &[$($name::$shape),+];

            /// `(NV, R, Q)`.
            const fn dims(self) -> (usize, usize, usize) {
                match self {
                    $($name::$shape => ($nv, $r, $q)),+
                }
            }

            /// The shape for `nv` vectors of channels that wastes the fewest
            /// multiply-adds on an `oh x ow` plane ([`cheapest`]).
            fn pick(nv: usize, oh: usize, ow: usize) -> $name {
                cheapest($name::ALL, $name::dims, $full, nv, oh, ow).unwrap_or($name::$fallback)
            }

            /// [`plane`] with this shape's `NV`, `R` and `Q`, at column
            /// stride 1.
            ///
            /// # Safety
            ///
            /// As [`plane`], with `V`'s features enabled in the caller (this
            /// is inlined into it).
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn run<V: Vector>(
                self,
                geo: Geometry,
                oh: usize,
                ow: usize,
                sh: usize,
                xp: *const f32,
                w: *const f32,
                out: *mut f32,
            ) {
                // SAFETY: forwarded contract.
                unsafe {
                    match self {
                        $($name::$shape => plane::<V, $nv, $r, $q, 1>(geo, oh, ow, sh, xp, w, out)),+
                    }
                }
            }
        }
    };
}

tile_shapes! {
    /// The shape of an AVX2 register tile: `NV` vectors of 8 channels, `R`
    /// rows, `Q` columns; 12 accumulators make a full tile.
    enum Shape, full 12, fallback V1R3Q4 {
        V2R1Q5 = (2, 1, 5),
        V2R1Q6 = (2, 1, 6),
        V2R2Q3 = (2, 2, 3),
        V2R3Q2 = (2, 3, 2),
        V1R3Q4 = (1, 3, 4),
        V1R2Q5 = (1, 2, 5),
        V1R2Q6 = (1, 2, 6),
        V1R1Q12 = (1, 1, 12),
    }
}

tile_shapes! {
    /// The shape of an AVX-512 register tile: `NV` vectors of 16 channels,
    /// `R` rows, `Q` columns; at most 24 accumulators of the 32 registers.
    enum WideShape, full 24, fallback V1R4Q6 {
        V2R1Q7 = (2, 1, 7),
        V2R2Q6 = (2, 2, 6),
        V2R3Q4 = (2, 3, 4),
        V1R3Q7 = (1, 3, 7),
        V1R4Q6 = (1, 4, 6),
        V1R2Q12 = (1, 2, 12),
    }
}

/// The geometry a tile reads: input planes of `plane` floats with rows of
/// `wp`, `c_n x kh x kw` taps.
#[derive(Clone, Copy)]
struct Geometry {
    c_n: usize,
    kh: usize,
    kw: usize,
    plane: usize,
    wp: usize,
    /// Floats between taps in the packed weights.
    kp: usize,
}

/// With `wide`, channel tiles of a column stride of 1 take 16 or 32
/// channels at a time in AVX-512 vectors ([`plane_avx512`]).
///
/// # Safety
///
/// AVX2 and FMA, and AVX-512F with `wide`; `x`, `w`, `b`, `y` hold what
/// `g` says for `n` images and `scratch` at least [`scratch_len`] floats.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_avx2(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
    wide: bool,
) {
    let (k_n, flen, oplane) = (g.out_channels, g.filter_len(), g.out_plane());
    let kp = k_n.next_multiple_of(LANES);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (ph, pw) = g.pad;
    let (hp, wp) = (g.in_h + 2 * ph, g.in_w + 2 * pw);
    let (packed, rest) = scratch.split_at_mut(flen * kp);
    let (xp, rest) = rest.split_at_mut(g.in_channels * hp * wp + SLACK);
    // Empty for row tiles (`scratch_len`).
    let hwc = rest;

    // Weights tap by tap (`[O][C*KH*KW]` transposed), channels padded with
    // zeros.
    // SAFETY: the features are enabled; `w` holds `k_n * flen` floats and
    // `packed` `flen * kp`.
    unsafe { to_pixels(w, k_n, flen, kp, packed) };
    // The borders and the slack stay zero; each image fills the interior.
    xp.fill(0.0);
    let geo = Geometry {
        c_n: g.in_channels,
        kh: g.kernel.0,
        kw: g.kernel.1,
        plane: hp * wp,
        wp,
        kp,
    };
    let (in_len, out_len) = (g.input_len(), g.output_len());
    for i in 0..n {
        let x_img = &x[i * in_len..][..in_len];
        pad_image(g, x_img, xp, (hp, wp));
        let y_img = &mut y[i * out_len..][..out_len];
        if row_tiles(g) {
            let blocks: &[usize] = match k_n {
                7 => &[4, 3],
                8 => &[4, 4],
                _ => &[k_n],
            };
            let mut k0 = 0;
            for &no in blocks {
                let bias: [f32; 6] =
                    core::array::from_fn(|k| b.map_or(0.0, |b| if k < no { b[k0 + k] } else { 0.0 }));
                let (xp, wk) = (xp.as_ptr(), packed.as_ptr().wrapping_add(k0));
                let out = &mut y_img[k0 * oplane..(k0 + no) * oplane];
                let sh = g.stride.0;
                // SAFETY: the features are enabled; `packed` holds channels
                // `k0..k0 + no` in rows of `kp`, `xp` the padded image and
                // its slack; `out` is `no` planes.
                unsafe {
                    match no {
                        1 => row_plane::<1>(geo, oh, ow, sh, xp, wk, &bias, out),
                        2 => row_plane::<2>(geo, oh, ow, sh, xp, wk, &bias, out),
                        3 => row_plane::<3>(geo, oh, ow, sh, xp, wk, &bias, out),
                        4 => row_plane::<4>(geo, oh, ow, sh, xp, wk, &bias, out),
                        5 => row_plane::<5>(geo, oh, ow, sh, xp, wk, &bias, out),
                        _ => row_plane::<6>(geo, oh, ow, sh, xp, wk, &bias, out),
                    }
                }
                k0 += no;
            }
            continue;
        }
        assert!(hwc.len() >= oplane * kp, "conv: scratch too short");
        let mut k0 = 0;
        while k0 < kp {
            // With `wide`, vectors of 16 channels while 16 are left.
            let width = if wide && kp - k0 >= 2 * LANES {
                2 * LANES
            } else {
                LANES
            };
            let nv = if kp - k0 >= 2 * width { 2 } else { 1 };
            // SAFETY: the features are enabled; `packed` holds the weights
            // of channels `k0..k0 + nv * width`, `xp` the padded image with
            // its slack, and `hwc` `oplane * kp` floats.
            unsafe {
                let xp = xp.as_ptr();
                let wk = packed.as_ptr().add(k0);
                let out = hwc.as_mut_ptr().add(k0);
                let sh = g.stride.0;
                if width > LANES {
                    // AVX-512F: checked by the caller (`wide`).
                    plane_avx512(nv, geo, oh, ow, (sh, g.stride.1), xp, wk, out);
                    k0 += nv * width;
                    continue;
                }
                // A column stride of 2 (ResNet's and MobileNet's
                // downsampling convs) with one tile shape per width: each
                // shape is one more copy of the kernel.
                match (g.stride.1, nv) {
                    (2, 2) => plane::<Avx2, 2, 2, 3, 2>(geo, oh, ow, sh, xp, wk, out),
                    (2, _) => plane::<Avx2, 1, 2, 6, 2>(geo, oh, ow, sh, xp, wk, out),
                    _ => Shape::pick(nv, oh, ow).run::<Avx2>(geo, oh, ow, sh, xp, wk, out),
                }
            }
            k0 += nv * width;
        }
        // SAFETY: the features are enabled; `hwc` holds `oplane * kp` floats.
        unsafe { to_planes(&hwc[..oplane * kp], kp, k_n, oplane, b, y_img) };
    }
}

/// Every tile of one output plane, for the `NV` vectors of `V` of channels
/// whose packed weights start at `w`: `out[(p*OW + q) * kp + k]` for
/// `k < NV * V::LANES`.
///
/// # Safety
///
/// `V`'s features with FMA; `xp` is the padded image (`c_n` planes of `plane` floats,
/// rows of `wp`) followed by [`SLACK`] readable floats; `w` starts `NV`
/// vectors of channels in packed rows of `kp`, `c_n * kh * kw` of them;
/// `out` has `oh * ow` rows of `kp` floats.
#[inline(always)]
unsafe fn plane<V: Vector, const NV: usize, const R: usize, const Q: usize, const SW: usize>(
    geo: Geometry,
    oh: usize,
    ow: usize,
    sh: usize,
    xp: *const f32,
    w: *const f32,
    out: *mut f32,
) {
    let mut p0 = 0;
    while p0 < oh {
        // Rows past the plane repeat its last row (computed, not stored).
        let rows: [*const f32; R] =
            core::array::from_fn(|r| xp.wrapping_add((p0 + r).min(oh - 1) * sh * geo.wp));
        let mut q0 = 0;
        while q0 < ow {
            // SAFETY: pixel (r, j) of the tile reads row `(p0 + r) * SH + u`
            // (clamped to the plane), columns `(q0 + j) * SW + v`: inside
            // the padded image, or up to `(Q - 1) * SW` floats past a row's
            // end, which is the next row or the slack.
            let acc = unsafe { tile::<V, NV, R, Q, SW>(geo, rows.map(|p| p.wrapping_add(q0 * SW)), w) };
            for (r, acc_r) in acc.iter().enumerate() {
                if p0 + r >= oh {
                    break;
                }
                for (j, acc_j) in acc_r.iter().enumerate() {
                    if q0 + j >= ow {
                        break;
                    }
                    let at = out.wrapping_add(((p0 + r) * ow + q0 + j) * geo.kp);
                    for (v, &a) in acc_j.iter().enumerate() {
                        // SAFETY: pixel `(p0 + r) * OW + q0 + j` of the
                        // plane, vector `v` of this chunk's channels.
                        unsafe { V::storeu(at.add(v * V::LANES), a) };
                    }
                }
            }
            q0 += Q;
        }
        p0 += R;
    }
}

/// The shape of `all` (dimensions `(NV, R, Q)` by `dims`) for `nv` vectors
/// of channels that wastes the fewest multiply-adds on an `oh x ow` plane:
/// pixels computed past the plane's edge are wasted, and a tile of fewer
/// than `full` accumulators counts as that much slower (the FMA units need
/// that many in flight).
fn cheapest<S: Copy>(
    all: &[S],
    dims: fn(S) -> (usize, usize, usize),
    full: usize,
    nv: usize,
    oh: usize,
    ow: usize,
) -> Option<S> {
    let cost = |s: &S| {
        let (_, r, q) = dims(*s);
        let computed = oh.div_ceil(r) * r * ow.div_ceil(q) * q;
        computed * full / (r * q * nv)
    };
    all.iter().copied().filter(|&s| dims(s).0 == nv).min_by_key(cost)
}

/// [`plane`] with `nv` (1 or 2) AVX-512 vectors of 16 channels: twice the
/// channels per multiply-add of the AVX2 tiles. At a column stride of 1 the
/// shape is [`WideShape::pick`]'s (`Q - 1 <= 11` columns past a row's end
/// stay inside [`SLACK`]); at 2 (ResNet's downsampling convs), tiles of 7
/// columns (ResNet's 14- and 7-column planes exactly) by one row of two
/// vectors or three rows of one (`(Q - 1) * 2 = 12` floats past a row's
/// end). On a Zen 5, against the AVX2 tiles of 8 channels it took before
/// (us an image, 8 images a call), ResNet's 16-to-32-channel stride-2 conv
/// from 28x28 went 15.3 -> 7.9, its 32-to-64 from 14x14 20.3 -> 7.9.
///
/// # Safety
///
/// AVX-512F (with AVX2 and FMA); as [`plane`] for `16 * nv` channels and
/// the strides `(sh, sw)`, `sw` 1 or 2.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn plane_avx512(
    nv: usize,
    geo: Geometry,
    oh: usize,
    ow: usize,
    (sh, sw): (usize, usize),
    xp: *const f32,
    w: *const f32,
    out: *mut f32,
) {
    // SAFETY: forwarded contract, with the features enabled here.
    unsafe {
        match (sw, nv) {
            (2, 2) => plane::<Avx512, 2, 1, 7, 2>(geo, oh, ow, sh, xp, w, out),
            (2, _) => plane::<Avx512, 1, 3, 7, 2>(geo, oh, ow, sh, xp, w, out),
            _ => WideShape::pick(nv, oh, ow).run::<Avx512>(geo, oh, ow, sh, xp, w, out),
        }
    }
}

/// `NO <= 6` output planes with columns in the lanes: tiles of one output
/// row x [`ROW_VECTORS`] vectors of columns x `NO` channels, each weight
/// broadcast once per tap into `ROW_VECTORS` multiply-adds; `out[k][t] =
/// sum + bias[k]`. A tile's vectors store whole, their lanes past the row
/// landing in the next rows, which later tiles overwrite; only the lanes
/// past the plane's end are not stored.
///
/// # Safety
///
/// AVX2 and FMA; `xp` as for [`plane`] with [`SLACK`] covering
/// `8 * ROW_VECTORS - 1` floats; `w` starts the packed rows (of `kp`) at the
/// block's first channel; `out` holds `NO` planes of `oh * ow`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_plane<const NO: usize>(
    geo: Geometry,
    oh: usize,
    ow: usize,
    sh: usize,
    xp: *const f32,
    w: *const f32,
    bias: &[f32; 6],
    out: &mut [f32],
) {
    let oplane = oh * ow;
    assert!(out.len() >= NO * oplane);
    let bias: [__m256; NO] = core::array::from_fn(|k| _mm256_set1_ps(bias[k]));
    for p in 0..oh {
        let row = xp.wrapping_add(p * sh * geo.wp);
        for q0 in (0..ow).step_by(ROW_VECTORS * LANES) {
            let mut acc = [[_mm256_setzero_ps(); ROW_VECTORS]; NO];
            let mut wt = w;
            for c in 0..geo.c_n {
                for u in 0..geo.kh {
                    let src = row.wrapping_add(c * geo.plane + u * geo.wp + q0);
                    for v in 0..geo.kw {
                        // SAFETY: columns `q0 + v ..` of an input row, at
                        // most `8 * ROW_VECTORS - 1` past its end (the next
                        // row or the slack).
                        let xs: [__m256; ROW_VECTORS] =
                            core::array::from_fn(|j| unsafe { _mm256_loadu_ps(src.add(v + j * LANES)) });
                        for (k, acc_k) in acc.iter_mut().enumerate() {
                            // SAFETY: channel `k` of a packed row.
                            let wv = unsafe { _mm256_broadcast_ss(&*wt.add(k)) };
                            for (a, &x) in acc_k.iter_mut().zip(&xs) {
                                *a = _mm256_fmadd_ps(wv, x, *a);
                            }
                        }
                        wt = wt.wrapping_add(geo.kp);
                    }
                }
            }
            for (k, acc_k) in acc.iter().enumerate() {
                for (j, &a) in acc_k.iter().enumerate() {
                    let at = p * ow + q0 + j * LANES;
                    let sum = _mm256_add_ps(a, bias[k]);
                    let dst = &mut out[k * oplane..(k + 1) * oplane];
                    if at + LANES <= oplane {
                        // SAFETY: 8 floats inside plane `k`.
                        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(at), sum) };
                    } else if at < oplane {
                        let mut lanes = [0.0f32; LANES];
                        // SAFETY: `lanes` holds 8 floats.
                        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
                        dst[at..].copy_from_slice(&lanes[..oplane - at]);
                    }
                }
            }
        }
    }
}

/// One tile's sums over every tap: `acc[r][j][v]` for output row `r`,
/// column `j`, channel vector `v`, starting from zero.
///
/// # Safety
///
/// `V`'s features with FMA; `rows[r] + (c * plane + u * wp + v) + j * SW`
/// is readable for every tap and `j < Q`; `w` holds `c_n * kh * kw` packed
/// rows of `kp` with `NV * V::LANES` readable floats each.
#[inline(always)]
unsafe fn tile<V: Vector, const NV: usize, const R: usize, const Q: usize, const SW: usize>(
    geo: Geometry,
    rows: [*const f32; R],
    w: *const f32,
) -> [[[V::Vec; NV]; Q]; R] {
    let mut acc = [[[V::zero(); NV]; Q]; R];
    let mut wt = w;
    for c in 0..geo.c_n {
        for u in 0..geo.kh {
            let off = c * geo.plane + u * geo.wp;
            for v in 0..geo.kw {
                // SAFETY: the caller's contract.
                let ws: [V::Vec; NV] = core::array::from_fn(|k| unsafe { V::loadu(wt.add(k * V::LANES)) });
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let src = rows[r].wrapping_add(off + v);
                    for (j, acc_j) in acc_r.iter_mut().enumerate() {
                        // SAFETY: the caller's contract.
                        let xv = unsafe { V::splat(src.add(j * SW)) };
                        for (a, &wv) in acc_j.iter_mut().zip(&ws) {
                            // SAFETY: the caller's features.
                            *a = unsafe { V::fmadd(xv, wv, *a) };
                        }
                    }
                }
                wt = wt.wrapping_add(geo.kp);
            }
        }
    }
    acc
}

/// The scratch floats [`weight_grad`] needs for `g`: the gradient's
/// accumulator `[C*KH*KW][KP]`, the padded image with its slack, and the
/// output gradient transposed to `[OH*OW][KP]`.
pub(super) fn weight_grad_scratch_len(g: &Conv2d) -> usize {
    buffers_len(g, true)
}

/// `dw += dL/dw` over `n` images, with output channels in the lanes, or
/// `false` (nothing done) without AVX2 + FMA, for a column stride other
/// than 1 (or 2 on an AVX-512 CPU), a kernel other than 3 or 5 wide, fewer than 16 output channels
/// (a vector of channels would be part idle, and the inner products of
/// `windows.rs` run as fast there), or less `scratch` than
/// [`weight_grad_scratch_len`]. The lengths of `x`, `dy` and `dw` must have
/// been checked against `g`.
///
/// Per image, the input is zero-padded and the output gradient transposed
/// to `[OH*OW][KP]`; a register tile is `R` rows `(c, u)` of the kernel x
/// its `KW` taps x `NV` vectors of 8 output channels (16 on an AVX-512
/// CPU while 16 are left), and runs over every
/// output pixel: per pixel, `NV` gradient vectors are loaded and each of
/// the `R * KW` input values is broadcast once. Tiles accumulate across
/// the images in `[C*KH*KW][KP]`, added to `dw` once at the end. (The
/// inner products of `windows.rs` reduce every tile per image and widen
/// each row to the padded width: LeNet's conv2 computes 1.4 times its
/// multiply-adds there.)
pub(super) fn weight_grad(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    scratch: &mut [f32],
) -> bool {
    // Column stride 2 only with AVX-512 vectors: ResNet's training gained
    // 9% from them on a Zen 5, while the AVX2 tiles there measured level
    // with the inner products at stride 2 (624-663 against 638-662 ex/s).
    let max_stride = if wide() { 2 } else { 1 };
    if g.stride.1 > max_stride
        || !matches!(g.kernel.1, 3 | 5)
        || g.out_channels < 2 * LANES
        || !avx2()
        || scratch.len() < weight_grad_scratch_len(g)
        || g.out_plane() == 0
    {
        return false;
    }
    assert!(x.len() >= n * g.input_len() && dy.len() >= n * g.output_len());
    assert!(dw.len() >= g.weight_len());
    // SAFETY: AVX2 and FMA were detected (`level`), and AVX-512F where
    // `wide`; the lengths are asserted.
    unsafe {
        if g.kernel.1 == 3 {
            weight_grad_avx2::<3>(g, n, x, dy, dw, scratch, wide())
        } else {
            weight_grad_avx2::<5>(g, n, x, dy, dw, scratch, wide())
        }
    };
    true
}

/// With `wide`, 16 or 32 channels at a time in AVX-512 vectors.
///
/// # Safety
///
/// AVX2 and FMA, and AVX-512F with `wide`; `KW == g.kernel.1`; `x`, `dy`,
/// `dw` hold what `g` says for `n` images and `scratch` at least
/// [`weight_grad_scratch_len`] floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_grad_avx2<const KW: usize>(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    scratch: &mut [f32],
    wide: bool,
) {
    let (k_n, flen, oplane) = (g.out_channels, g.filter_len(), g.out_plane());
    let kp = k_n.next_multiple_of(LANES);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (ph, pw) = g.pad;
    let (hp, wp) = (g.in_h + 2 * ph, g.in_w + 2 * pw);
    let (acc, rest) = scratch.split_at_mut(flen * kp);
    let (xp, rest) = rest.split_at_mut(g.in_channels * hp * wp + SLACK);
    let dyt = &mut rest[..oplane * kp];
    acc.fill(0.0);
    xp.fill(0.0);
    let rows = g.in_channels * g.kernel.0;
    let geo = Sweep {
        oh,
        ow,
        row_step: g.stride.0 * wp,
        col_step: g.stride.1,
        kp,
    };
    let (in_len, out_len) = (g.input_len(), g.output_len());
    for i in 0..n {
        let x_img = &x[i * in_len..][..in_len];
        pad_image(g, x_img, xp, (hp, wp));
        // SAFETY: the features are enabled; `dyt` holds `oplane * kp` floats.
        unsafe { to_pixels(&dy[i * out_len..][..out_len], k_n, oplane, kp, dyt) };
        // Kernel row `(c, u)` starts at `c * HP * WP + u * WP` of `xp`.
        let row_at = |cu: usize| (cu / g.kernel.0) * hp * wp + (cu % g.kernel.0) * wp;
        let mut k0 = 0;
        while k0 < kp {
            // With `wide`, vectors of 16 channels while 16 are left.
            let width = if wide && kp - k0 >= 2 * LANES {
                2 * LANES
            } else {
                LANES
            };
            let nv = if kp - k0 >= 2 * width { 2 } else { 1 };
            // Kernel rows in groups of `R` (the last repeats its last row:
            // computed, not stored).
            let r_n = match (nv, KW) {
                (2, 3) => 2,
                (2, _) => 1,
                (_, 3) => 4,
                _ => 2,
            };
            let mut cu0 = 0;
            while cu0 < rows {
                let offs: [usize; 4] = core::array::from_fn(|r| row_at((cu0 + r).min(rows - 1)));
                let at = |r: usize| cu0 + r < rows;
                let dst = acc.as_mut_ptr().wrapping_add(cu0 * KW * kp + k0);
                let (xp, dyt) = (xp.as_ptr(), dyt.as_ptr().wrapping_add(k0));
                let keep = [at(0), at(1), at(2), at(3)];
                // SAFETY: the features are enabled (AVX-512F checked by the
                // caller for `wide`); the tile reads `xp` (with its slack)
                // and `dyt` at channels `k0..k0 + nv * width`, and updates
                // the `acc` rows of its kernel rows that exist.
                unsafe {
                    if width > LANES {
                        sweep_avx512::<KW>(nv, r_n, geo, xp, offs, dyt, dst, keep);
                    } else {
                        sweep_rows::<Avx2, KW>(nv, r_n, geo, xp, offs, dyt, dst, keep);
                    }
                }
                cu0 += r_n;
            }
            k0 += nv * width;
        }
    }
    for (t, row) in acc.chunks_exact(kp).enumerate() {
        for (k, &a) in row[..k_n].iter().enumerate() {
            dw[k * flen + t] += a;
        }
    }
}

/// [`sweep_rows`] with AVX-512 vectors.
///
/// # Safety
///
/// AVX-512F (with AVX2 and FMA); as [`sweep_rows`].
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn sweep_avx512<const KW: usize>(
    nv: usize,
    r_n: usize,
    geo: Sweep,
    xp: *const f32,
    offs: [usize; 4],
    dyt: *const f32,
    acc: *mut f32,
    keep: [bool; 4],
) {
    // SAFETY: forwarded contract, with the features enabled here.
    unsafe { sweep_rows::<Avx512, KW>(nv, r_n, geo, xp, offs, dyt, acc, keep) }
}

/// The [`sweep`] of `nv` vectors of `V` and `r_n` (1, 2 or 4) kernel rows
/// from `offs`.
///
/// # Safety
///
/// `V`'s features with FMA; as [`sweep`] for the `r_n` rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn sweep_rows<V: Vector, const KW: usize>(
    nv: usize,
    r_n: usize,
    geo: Sweep,
    xp: *const f32,
    offs: [usize; 4],
    dyt: *const f32,
    acc: *mut f32,
    keep: [bool; 4],
) {
    let [o0, o1, ..] = offs;
    let [k0, k1, ..] = keep;
    // SAFETY: forwarded contract.
    unsafe {
        match (nv, r_n) {
            (2, 1) => sweep::<V, 2, 1, KW>(geo, xp, [o0], dyt, acc, [k0]),
            (2, _) => sweep::<V, 2, 2, KW>(geo, xp, [o0, o1], dyt, acc, [k0, k1]),
            (_, 2) => sweep::<V, 1, 2, KW>(geo, xp, [o0, o1], dyt, acc, [k0, k1]),
            _ => sweep::<V, 1, 4, KW>(geo, xp, offs, dyt, acc, keep),
        }
    }
}

/// The output plane a [`sweep`] runs over.
#[derive(Clone, Copy)]
struct Sweep {
    oh: usize,
    ow: usize,
    /// Floats of `xp` between output rows: `SH * WP`.
    row_step: usize,
    /// Floats of `xp` between output columns: `SW`.
    col_step: usize,
    /// Floats between pixels of `dyt` and between taps of `acc`.
    kp: usize,
}

/// One weight-gradient tile over every output pixel of one image:
/// `acc[(cu0 + r) * KW + v][k] += sum_t xp[offs[r] + p*SH*WP + q*SW + v] * dyt[t][k]`
/// for the `R` kernel rows with `keep[r]`, `KW` taps each, `NV` vectors of
/// `V` channels (`q` stepping `SW` columns of `xp`).
///
/// # Safety
///
/// `V`'s features with FMA; `xp + offs[r]` starts a kernel row inside the padded image
/// whose every pixel's taps are readable; `dyt` starts channel `k0` of
/// `oh * ow` rows of `kp`; `acc` starts tap row `cu0 * KW` at channel `k0`,
/// with `R * KW` rows of `kp` (those with `keep`) writable.
#[inline(always)]
unsafe fn sweep<V: Vector, const NV: usize, const R: usize, const KW: usize>(
    geo: Sweep,
    xp: *const f32,
    offs: [usize; R],
    dyt: *const f32,
    acc: *mut f32,
    keep: [bool; R],
) {
    let mut sums = [[[V::zero(); NV]; KW]; R];
    let bases: [*const f32; R] = offs.map(|o| xp.wrapping_add(o));
    let mut d = dyt;
    for p in 0..geo.oh {
        let row = p * geo.row_step;
        for q in 0..geo.ow {
            // SAFETY: pixel `p * OW + q` of `dyt`, `NV` vectors of channels.
            let ds: [V::Vec; NV] = core::array::from_fn(|j| unsafe { V::loadu(d.add(j * V::LANES)) });
            for (r, sums_r) in sums.iter_mut().enumerate() {
                let src = bases[r].wrapping_add(row + q * geo.col_step);
                for (v, sums_v) in sums_r.iter_mut().enumerate() {
                    // SAFETY: tap `v` of this pixel, inside the padded image.
                    let xv = unsafe { V::splat(src.add(v)) };
                    for (s, &dv) in sums_v.iter_mut().zip(&ds) {
                        // SAFETY: the caller's features.
                        *s = unsafe { V::fmadd(xv, dv, *s) };
                    }
                }
            }
            d = d.wrapping_add(geo.kp);
        }
    }
    for (r, sums_r) in sums.iter().enumerate() {
        if !keep[r] {
            continue;
        }
        for (v, sums_v) in sums_r.iter().enumerate() {
            for (j, &s) in sums_v.iter().enumerate() {
                let at = acc.wrapping_add((r * KW + v) * geo.kp + j * V::LANES);
                // SAFETY: a kept row of `acc` (caller).
                unsafe { V::storeu(at, V::add(V::loadu(at), s)) };
            }
        }
    }
}

/// `dyt[t][k] = dy[k][t]` for `k < k_n`, `t < oplane`, and zero for
/// `k_n <= k < kp` (so those lanes add nothing): 8x8 blocks transposed in
/// registers, the last `oplane % 8` pixels one by one. Also packs the
/// weights, `[O][C*KH*KW]` to `[C*KH*KW][KP]`.
///
/// # Safety
///
/// AVX2; `dy` holds `k_n * oplane` floats, `dyt` `oplane * kp`.
#[target_feature(enable = "avx2,fma")]
unsafe fn to_pixels(dy: &[f32], k_n: usize, oplane: usize, kp: usize, dyt: &mut [f32]) {
    let full = oplane - oplane % LANES;
    for k0 in (0..k_n).step_by(LANES) {
        let kn = (k_n - k0).min(LANES);
        for t in (0..full).step_by(LANES) {
            // SAFETY: channel rows `k0 + k < k_n` of `dy`, pixels `t..t + 8`;
            // the rows past `k_n` are zero.
            let rows: [__m256; LANES] = core::array::from_fn(|k| {
                if k < kn {
                    unsafe { _mm256_loadu_ps(dy.as_ptr().add((k0 + k) * oplane + t)) }
                } else {
                    _mm256_setzero_ps()
                }
            });
            let cols = transpose(rows);
            for (i, &c) in cols.iter().enumerate() {
                let dst = &mut dyt[(t + i) * kp + k0..][..LANES];
                // SAFETY: `dst` holds 8 floats.
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), c) };
            }
        }
        for t in full..oplane {
            for k in 0..LANES {
                dyt[t * kp + k0 + k] = if k < kn { dy[(k0 + k) * oplane + t] } else { 0.0 };
            }
        }
    }
}

/// `y[k][t] = hwc[t][k] + b[k]` for `k < k_n`, `t < oplane`: 8x8 blocks
/// transposed in registers, the last `oplane % 8` pixels one by one.
///
/// # Safety
///
/// AVX2; `hwc` holds `oplane * kp` floats, `y` `k_n * oplane`, `b` (if
/// any) `k_n`.
#[target_feature(enable = "avx2,fma")]
unsafe fn to_planes(hwc: &[f32], kp: usize, k_n: usize, oplane: usize, b: Option<&[f32]>, y: &mut [f32]) {
    let bias = |k: usize| b.map_or(0.0, |b| b[k]);
    let full = oplane - oplane % LANES;
    for k0 in (0..k_n).step_by(LANES) {
        let kn = (k_n - k0).min(LANES);
        let bv: [__m256; LANES] =
            core::array::from_fn(|k| _mm256_set1_ps(if k < kn { bias(k0 + k) } else { 0.0 }));
        for t in (0..full).step_by(LANES) {
            // SAFETY: rows `t..t + 8` of `hwc`, channels `k0..k0 + 8 <= kp`.
            let rows: [__m256; LANES] =
                core::array::from_fn(|i| unsafe { _mm256_loadu_ps(hwc.as_ptr().add((t + i) * kp + k0)) });
            let cols = transpose(rows);
            for k in 0..kn {
                let dst = &mut y[(k0 + k) * oplane + t..][..LANES];
                // SAFETY: `dst` holds 8 floats.
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), _mm256_add_ps(cols[k], bv[k])) };
            }
        }
        for t in full..oplane {
            for k in 0..kn {
                y[(k0 + k) * oplane + t] = hwc[t * kp + k0 + k] + bias(k0 + k);
            }
        }
    }
}

/// The 8x8 transpose: lane `i` of result `k` is lane `k` of `r[i]`.
#[inline(always)]
fn transpose(r: [__m256; 8]) -> [__m256; 8] {
    // SAFETY: only called from code compiled with AVX2.
    unsafe {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close32, Rng};

    /// Whether this process runs the kernels: the CPU has AVX2 and FMA,
    /// and `CNN_MAX_ISA` does not cap them off (the tests pass vacuously if
    /// not).
    fn avx2_fma() -> bool {
        avx2()
    }

    /// A 5x5, stride-1 conv of LeNet's kind: `c` square `hw` planes to `o`.
    fn five_by_five(c: usize, hw: usize, o: usize, pad: usize) -> Conv2d {
        Conv2d {
            in_channels: c,
            in_h: hw,
            in_w: hw,
            out_channels: o,
            kernel: (5, 5),
            stride: (1, 1),
            pad: (pad, pad),
        }
    }

    /// The lanes kernel against the portable direct forward pass over random
    /// geometries: every tile shape, channel counts around multiples of 8
    /// (both chunk widths and zero-padded channels), padding, row and
    /// column strides of 1 and 2, planes whose width or height is not a
    /// multiple of the tile's, and pixel counts not a multiple of 8 (the
    /// transpose's tail).
    #[test]
    fn lanes_match_the_portable_forward() {
        if !avx2_fma() {
            return;
        }
        let mut rng = Rng::new(23);
        // LeNet's two convs, then a row tile whose last vector ends one
        // lane past the plane (15 columns), then random geometries.
        // ResNet's downsampling convs: 3x3 and 1x1 at stride 2.
        let resnet = |c: usize, hw: usize, k: usize| Conv2d {
            in_channels: c,
            in_h: hw,
            in_w: hw,
            out_channels: 2 * c,
            kernel: (k, k),
            stride: (2, 2),
            pad: (k / 2, k / 2),
        };
        let fixed = [
            five_by_five(1, 28, 6, 2),
            five_by_five(6, 14, 16, 0),
            five_by_five(3, 19, 6, 0),
            resnet(16, 28, 3),
            resnet(32, 14, 3),
            resnet(16, 28, 1),
            resnet(3, 9, 3),
        ];
        for case in 0..600 {
            let (kh, kw) = (1 + rng.below(5), 1 + rng.below(5));
            let (ph, pw) = (rng.below(kh), rng.below(kw));
            let g = fixed.get(case).copied().unwrap_or(Conv2d {
                in_channels: 1 + rng.below(5),
                in_h: kh + rng.below(14),
                in_w: kw + rng.below(20),
                out_channels: if case % 2 == 0 {
                    1 + rng.below(8)
                } else {
                    1 + rng.below(40)
                },
                kernel: (kh, kw),
                stride: (1 + rng.below(2), 1 + rng.below(2)),
                pad: (ph, pw),
            });
            let n = 1 + rng.below(3);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let b = rng.vec(g.out_channels);
            let bias = (case % 3 != 0).then_some(&b[..]);
            let mut expected = vec![0.0; n * g.output_len()];
            super::super::direct::forward_any(&g, n, &x, &w, bias, &mut expected);
            // The AVX2 tiles, then (where the CPU has AVX-512F) the 16-channel
            // ones with the AVX2 tiles for the last 8 channels.
            let wide = [false, true]
                .into_iter()
                .filter(|&wide| !wide || is_x86_feature_detected!("avx512f"));
            for wide in wide {
                let mut y = rng.vec(n * g.output_len());
                let mut scratch = rng.vec(scratch_len(&g));
                // SAFETY: AVX2 and FMA (and AVX-512F for `wide`) were
                // detected; the lengths match `g`.
                unsafe { forward_avx2(&g, n, &x, &w, bias, &mut y, &mut scratch, wide) };
                assert_close32(
                    &format!("case {case} n {n} wide {wide} {g:?}"),
                    &y,
                    &expected,
                    1e-5,
                );
            }
        }
    }

    /// The weight gradient against the portable direct backward pass over
    /// random geometries with 16 or more output channels (both chunk
    /// widths, channels padded to a multiple of 8), kernels 3 and 5 wide,
    /// padding, row and column strides of 1 and 2, and kernel-row counts
    /// not a multiple of the tile's (its repeated last row must not be
    /// stored), with AVX2 vectors and, where the CPU has AVX-512F, 16-lane
    /// ones.
    #[test]
    fn weight_grad_matches_the_portable_backward() {
        if !avx2_fma() {
            return;
        }
        let mut rng = Rng::new(29);
        for case in 0..200 {
            let kw = if rng.below(2) == 0 { 3 } else { 5 };
            let kh = 1 + rng.below(5);
            let (ph, pw) = (rng.below(kh), rng.below(kw));
            let g = if case == 0 {
                five_by_five(6, 14, 16, 0)
            } else {
                Conv2d {
                    in_channels: 1 + rng.below(5),
                    in_h: kh + rng.below(10),
                    in_w: kw + rng.below(14),
                    out_channels: 16 + rng.below(25),
                    kernel: (kh, kw),
                    stride: (1 + rng.below(2), 1 + rng.below(2)),
                    pad: (ph, pw),
                }
            };
            let n = 1 + rng.below(3);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let dy = rng.vec(n * g.output_len());
            let dw0 = rng.vec(g.weight_len());
            let mut expected = dw0.clone();
            super::super::direct::backward_any(&g, n, &x, &w, &dy, &mut expected, None, None);
            let mut dw = dw0.clone();
            let mut scratch = rng.vec(weight_grad_scratch_len(&g));
            // Column stride 2 runs on AVX-512 CPUs only.
            let ran = weight_grad(&g, n, &x, &dy, &mut dw, &mut scratch);
            assert_eq!(ran, g.stride.1 == 1 || wide(), "case {case} ran");
            if ran {
                assert_close32(&format!("case {case} n {n} {g:?}"), &dw, &expected, 1e-5);
            }
            // Both tile widths, whichever `weight_grad` picked on this CPU.
            let wide = [false, true]
                .into_iter()
                .filter(|&wide| !wide || is_x86_feature_detected!("avx512f"));
            for wide in wide {
                let mut dw = dw0.clone();
                // SAFETY: AVX2 and FMA (and AVX-512F for `wide`) were
                // detected; the lengths match `g` and `KW` its kernel.
                unsafe {
                    if g.kernel.1 == 3 {
                        weight_grad_avx2::<3>(&g, n, &x, &dy, &mut dw, &mut scratch, wide)
                    } else {
                        weight_grad_avx2::<5>(&g, n, &x, &dy, &mut dw, &mut scratch, wide)
                    }
                }
                assert_close32(
                    &format!("case {case} n {n} wide {wide} {g:?}"),
                    &dw,
                    &expected,
                    1e-5,
                );
            }
        }
    }

    /// The input gradient against the portable direct backward pass over
    /// random stride-1 geometries padded at least half the kernel (both
    /// tile kinds: up to and past 8 input channels), and `None` for the
    /// convs it leaves to the GEMM.
    #[test]
    fn input_grad_matches_the_portable_backward() {
        if !avx2_fma() {
            return;
        }
        let mut rng = Rng::new(31);
        for case in 0..200 {
            let (kh, kw) = (1 + 2 * rng.below(3), 1 + 2 * rng.below(3));
            let g = Conv2d {
                in_channels: 1 + rng.below(20),
                in_h: 1 + rng.below(12),
                in_w: 1 + rng.below(18),
                out_channels: 1 + rng.below(20),
                kernel: (kh, kw),
                stride: (1, 1),
                pad: (
                    (kh / 2 + rng.below(2)).min(kh - 1),
                    (kw / 2 + rng.below(2)).min(kw - 1),
                ),
            };
            if g.is_pointwise() {
                continue;
            }
            let n = 1 + rng.below(3);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let dy = rng.vec(n * g.output_len());
            let mut dw = vec![0.0; g.weight_len()];
            let mut expected = vec![0.0; n * g.input_len()];
            super::super::direct::backward_any(&g, n, &x, &w, &dy, &mut dw, None, Some(&mut expected));
            let mut dx = rng.vec(n * g.input_len());
            let mut scratch = rng.vec(input_grad_scratch_len(&g));
            assert!(
                input_grad(&g, n, &w, &dy, &mut dx, &mut scratch),
                "case {case} ran"
            );
            assert_close32(&format!("case {case} n {n} {g:?}"), &dx, &expected, 1e-5);
        }
        assert_eq!(
            input_grad_conv(&five_by_five(6, 14, 16, 0)),
            None,
            "LeNet's conv2"
        );
    }

    /// Each shape is what its name says, and the pick covers LeNet's and
    /// the zoo's planes without waste where a shape fits exactly.
    #[test]
    fn shapes_pick_the_least_waste() {
        assert_eq!(Shape::pick(2, 10, 10), Shape::V2R1Q5);
        assert_eq!(Shape::pick(1, 28, 28), Shape::V1R3Q4);
        assert_eq!(Shape::pick(2, 14, 14), Shape::V2R2Q3);
        for s in [Shape::V2R1Q5, Shape::V1R3Q4, Shape::V1R1Q12] {
            let (nv, r, q) = s.dims();
            assert_eq!(format!("{s:?}"), format!("V{nv}R{r}Q{q}"));
        }
    }
}
