//! 2-D convolution (cross-correlation), PyTorch `nn.Conv2d` with
//! `dilation = 1`, `groups = 1`, zero padding:
//!
//! `y[i, o, p, q] = b[o] + sum_{c, u, v} w[o, c, u, v] * x[i, c, p*SH + u - PH, q*SW + v - PW]`
//!
//! where out-of-range input indices read zero. Layouts: `x` is
//! `[N, C, H, W]`, `w` is `[O, C, KH, KW]` (OIHW), `b` is `[O]`, `y` is
//! `[N, O, OH, OW]`, all row-major, with `OH = (H + 2 PH - KH) / SH + 1`.
//!
//! Two implementations with the same results up to rounding:
//! - [`forward`] / [`backward`]: direct loops, no heap, no `std`. The
//!   forward pass keeps a tile of 4 output channels x 8 output columns in
//!   registers while it runs over every tap, so each input segment is loaded
//!   once per tap and each output stored once; tiles at the padded border
//!   first copy their input columns, zero padded, into a small stack buffer,
//!   so the inner loop never branches on padding. The input gradient of a
//!   stride-1 conv is the same correlation applied to `dy` with the kernel
//!   flipped (other strides scatter row by row); the weight gradient is a
//!   dot product per tap with register accumulators across rows. With
//!   `std` on `x86_64`, a column stride of 1 and AVX2 + FMA or AVX-512F,
//!   that correlation (forward and input gradient) runs the intrinsics
//!   kernels of `conv/x86.rs` instead: up to 16 channels x 16 or 32 columns
//!   in registers, masked loads instead of padded copies, and rows narrower
//!   than a vector packed several to a vector.
//! - [`forward_gemm`] / [`backward_gemm`]: per image, im2col into the
//!   caller's `col` buffer (`[C*KH*KW, OH*OW]`), then one GEMM (except a
//!   forward pass the vector direct kernels run faster, see
//!   `direct_beats_gemm`; with AVX2 + FMA and enough `col`, every forward
//!   pass but 1x1 and the weight gradients of kernels 3 or 5 wide with 16
//!   or more output channels run the kernels of `conv/lanes.rs` instead,
//!   which tile output channels or columns into the lanes over a
//!   zero-padded copy of the image):
//!   `Y = W col + b`, `dW += dY col^T`, `dcol = W^T dY` scattered back by
//!   col2im. On AVX-512, the forward pass of a 3x3, stride-1 conv with 8 or
//!   more input and output channels runs Winograd's F(2x2, 3x3) instead
//!   (`winograd`, 16 multiply-adds per input channel and 2x2 outputs where
//!   the direct sum has 36) when `col` holds its scratch
//!   ([`winograd_scratch_len`], which a net's planner reserves). A 1x1, stride-1, unpadded conv uses `x` itself as `col`;
//!   with AVX2 + FMA or AVX-512F both entry points run its forward pass by
//!   `conv/pointwise.rs` instead (tiles of output channels x pixel vectors
//!   over the input rows in place: no packing, no bias pre-fill).
//!   The weight gradient of any other unit-stride conv skips im2col: each
//!   tap's window is a shifted view of the zero-padded image
//!   (`weight_grad_windows`). Without `std` they call the direct kernels.
//!
//! Backward: `dw` and `db` are accumulated (`+=`) over the batch, `dx` is
//! overwritten with `dL/dx`.
//!
//! This file holds the geometry, the argument checks and the entry points,
//! which pick the algorithm; each algorithm has a file: `direct` (the
//! correlation and the direct backward), `im2col` (im2col and col2im),
//! `windows` (the weight gradient from shifted windows of the padded
//! image), `x86`, `lanes`, `winograd` and `pointwise` (the intrinsics
//! kernels), the last six with `std`;
//! `grouped` runs the entry points per group for `groups > 1`.

mod depthwise;
mod direct;
mod grouped;
#[cfg(feature = "std")]
mod im2col;
pub mod int8;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod lanes;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod pointwise;
#[cfg(feature = "std")]
mod windows;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod winograd;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

use super::window::{check_geometry, out_len};
use crate::quant::Activation;
use direct::{backward_any, forward_any};
pub use grouped::{backward_grouped, backward_grouped_gemm, forward_grouped, forward_grouped_gemm};
#[cfg(feature = "std")]
use im2col::{col2im, im2col};
#[cfg(feature = "std")]
use windows::{weight_grad_windows, windows_fit};

/// Geometry of a 2-D convolution over one NCHW example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Input height `H`.
    pub in_h: usize,
    /// Input width `W`.
    pub in_w: usize,
    /// Output channels `O`.
    pub out_channels: usize,
    /// Kernel `(KH, KW)`.
    pub kernel: (usize, usize),
    /// Stride `(SH, SW)`.
    pub stride: (usize, usize),
    /// Zero padding `(PH, PW)` on each side.
    pub pad: (usize, usize),
}

impl Conv2d {
    /// `OH = (H + 2 PH - KH) / SH + 1`.
    #[inline]
    pub const fn out_h(&self) -> usize {
        out_len(self.in_h, self.kernel.0, self.stride.0, self.pad.0)
    }

    /// `OW = (W + 2 PW - KW) / SW + 1`.
    #[inline]
    pub const fn out_w(&self) -> usize {
        out_len(self.in_w, self.kernel.1, self.stride.1, self.pad.1)
    }

    /// Elements of one input example, `C * H * W`.
    #[inline]
    pub const fn input_len(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }

    /// Elements of one output example, `O * OH * OW`.
    #[inline]
    pub const fn output_len(&self) -> usize {
        self.out_channels * self.out_h() * self.out_w()
    }

    /// Elements of the weight, `O * C * KH * KW`.
    #[inline]
    pub const fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel.0 * self.kernel.1
    }

    /// Elements of the im2col buffer of one example, `C * KH * KW * OH * OW`.
    #[inline]
    pub const fn col_len(&self) -> usize {
        self.in_channels * self.kernel.0 * self.kernel.1 * self.out_h() * self.out_w()
    }

    /// A 1x1, stride-1, unpadded conv: the input already is its im2col matrix.
    #[inline]
    pub const fn is_pointwise(&self) -> bool {
        self.kernel.0 == 1
            && self.kernel.1 == 1
            && self.stride.0 == 1
            && self.stride.1 == 1
            && self.pad.0 == 0
            && self.pad.1 == 0
    }

    /// `C * KH * KW`, the length of one filter.
    #[inline(always)]
    const fn filter_len(&self) -> usize {
        self.in_channels * self.kernel.0 * self.kernel.1
    }

    /// `OH * OW`, the length of one output plane.
    #[inline(always)]
    const fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }
}

/// Asserts the geometry and the lengths of the tensors shared by every entry.
#[inline(always)]
#[track_caller]
fn check(g: &Conv2d, n: usize, x: usize, w: usize, b: Option<usize>, y: usize, y_name: &str) {
    check_geometry("conv", (g.in_h, g.in_w), g.kernel, g.stride, g.pad);
    assert_eq!(
        x,
        n * g.input_len(),
        "conv: x has {x} elements, expected n * C * H * W = {n} * {}",
        g.input_len()
    );
    assert_eq!(
        w,
        g.weight_len(),
        "conv: w has {w} elements, expected O * C * KH * KW = {}",
        g.weight_len()
    );
    if let Some(b) = b {
        assert_eq!(
            b, g.out_channels,
            "conv: bias has {b} elements, expected O = {}",
            g.out_channels
        );
    }
    assert_eq!(
        y,
        n * g.output_len(),
        "conv: {y_name} has {y} elements, expected n * O * OH * OW = {n} * {}",
        g.output_len()
    );
}

/// Direct convolution of `n` images: `y = conv(x, w) + b` (no bias if `b` is
/// `None`). Allocates nothing.
///
/// # Panics
///
/// If a slice length does not match the geometry (`x`: `n * input_len()`,
/// `w`: `weight_len()`, `b`: `out_channels`, `y`: `n * output_len()`).
#[inline]
pub fn forward(g: &Conv2d, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    check(g, n, x.len(), w.len(), b.map(<[f32]>::len), y.len(), "y");
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if pointwise::forward(g, n, x, w, b, Activation::None, y) || lanes::forward_on_stack(g, n, x, w, b, y) {
        return;
    }
    forward_any(g, n, x, w, b, y);
}

/// Direct backward pass of `n` images, given `dy = dL/dy`:
/// `dw += dL/dw`, `db += dL/db` (if `Some`), `dx = dL/dx` (if `Some`,
/// overwritten). Allocates nothing.
///
/// # Panics
///
/// If a slice length does not match the geometry (as [`forward`], with `dy`
/// like `y`, `dw` like `w`, `db` like `b` and `dx` like `x`).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn backward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    check_backward(g, n, x, w, dy, dw, db.as_deref(), dx.as_deref());
    backward_any(g, n, x, w, dy, dw, db, dx);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
#[track_caller]
fn check_backward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &[f32],
    db: Option<&[f32]>,
    dx: Option<&[f32]>,
) {
    check(g, n, x.len(), w.len(), db.map(<[f32]>::len), dy.len(), "dy");
    assert_eq!(
        dw.len(),
        w.len(),
        "conv: dw has {} elements, expected O * C * KH * KW = {}",
        dw.len(),
        w.len()
    );
    if let Some(dx) = dx {
        assert_eq!(
            dx.len(),
            x.len(),
            "conv: dx has {} elements, expected n * C * H * W = {}",
            dx.len(),
            x.len()
        );
    }
}

#[cfg(feature = "std")]
#[inline(always)]
#[track_caller]
fn check_col(g: &Conv2d, col: &[f32]) {
    assert!(
        g.is_pointwise() || col.len() >= g.col_len(),
        "conv: col has {} elements, needs at least col_len() = C * KH * KW * OH * OW = {}",
        col.len(),
        g.col_len()
    );
}

/// Whether the direct correlation beats im2col + GEMM for this forward pass:
/// with the vector kernels of [`x86`] (stride-1 columns) and filters short
/// enough that a 16-channel block of weights stays in L1. Measured on
/// LeNet's convs (filters of 25 and 150): batch-256 inference 2x, training
/// 1.2x. (The input gradient as a direct correlation measured slower than
/// its GEMM + col2im there: most of its taps read padding.)
#[cfg(feature = "std")]
#[inline]
fn direct_beats_gemm(g: &Conv2d) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::simd::{level, Level};
        let max_filter = match level() {
            Level::Baseline => return false,
            Level::Avx2Fma => DIRECT_MAX_FILTER,
            Level::Avx512 => DIRECT_MAX_FILTER_AVX512,
        };
        !g.is_pointwise() && g.stride.1 == 1 && g.filter_len() <= max_filter
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// The longest filter (`C * KH * KW`) [`direct_beats_gemm`] takes.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
const DIRECT_MAX_FILTER: usize = 256;

/// [`DIRECT_MAX_FILTER`] with the AVX-512 row kernels, which on a Zen 5
/// beat im2col + GEMM up to ResNet's 64-channel 3x3 convs (filters of 576:
/// 36 us an image against 47; 32 channels at 14x14, 22 us against 39)
/// but not at 128 channels (1,152: 427 us against 296).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
const DIRECT_MAX_FILTER_AVX512: usize = 576;

/// Forward pass of `n` images through im2col and GEMM; same result as
/// [`forward`] up to rounding. `col` is scratch of at least `g.col_len()`
/// elements (its contents are ignored and clobbered; it may be empty for a
/// 1x1, stride-1, unpadded conv, which skips im2col). Without `std` this is
/// [`forward`] and `col` is unused.
///
/// # Panics
///
/// As [`forward`], or if `col` is too short.
#[inline]
pub fn forward_gemm(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) {
    forward_gemm_with(g, n, x, w, b, &[], y, col);
}

/// [`forward_gemm`] with Winograd's filters of `w` transformed already
/// ([`pack_filters`]): the same outputs, bit for bit, without transforming
/// them on each call. Allocates nothing.
///
/// # Panics
///
/// As [`forward_gemm`], or if `filters` does not have
/// [`winograd_filters_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn forward_gemm_filters(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    filters: &[f32],
    y: &mut [f32],
    col: &mut [f32],
) {
    check_packed(filters.len(), winograd_filters_len(g));
    forward_gemm_with(g, n, x, w, b, filters, y, col);
}

/// [`forward_gemm`], Winograd's path on the transformed filters `u` unless
/// it is empty (then it transforms `w`'s itself).
#[allow(clippy::too_many_arguments)]
fn forward_gemm_with(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    u: &[f32],
    y: &mut [f32],
    col: &mut [f32],
) {
    #[cfg(not(feature = "std"))]
    {
        let _ = (col, u);
        forward(g, n, x, w, b, y);
    }
    #[cfg(feature = "std")]
    {
        use super::gemm::sgemm;
        check(g, n, x.len(), w.len(), b.map(<[f32]>::len), y.len(), "y");
        check_col(g, col);
        #[cfg(target_arch = "x86_64")]
        if pointwise::forward(g, n, x, w, b, Activation::None, y)
            || match u {
                [] => winograd::forward(g, n, x, w, b, y, col),
                u => winograd::forward_transformed(g, n, x, u, b, y, col),
            }
        {
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = u;
        #[cfg(target_arch = "x86_64")]
        if !g.is_pointwise() && lanes::forward(g, n, x, w, b, y, col) {
            return;
        }
        if direct_beats_gemm(g) {
            forward_any(g, n, x, w, b, y);
            return;
        }
        let (in_len, out_len) = (g.input_len(), g.output_len());
        let (o_n, oplane, flen) = (g.out_channels, g.out_plane(), g.filter_len());
        let col = &mut col[..if g.is_pointwise() { 0 } else { g.col_len() }];
        for i in 0..n {
            let x_img = &x[i * in_len..][..in_len];
            let y_img = &mut y[i * out_len..][..out_len];
            let beta = match b {
                Some(b) => {
                    for (y_o, &bo) in y_img.chunks_exact_mut(oplane).zip(b) {
                        y_o.fill(bo);
                    }
                    1.0
                }
                None => 0.0,
            };
            if !g.is_pointwise() {
                im2col(g, x_img, col);
            }
            let cols: &[f32] = if g.is_pointwise() { x_img } else { &*col };
            // Y[O, P] (+)= W[O, CKK] col[CKK, P]
            sgemm(
                o_n,
                flen,
                oplane,
                1.0,
                w,
                flen as isize,
                1,
                cols,
                oplane as isize,
                1,
                beta,
                y_img,
                oplane as isize,
                1,
            );
        }
    }
}

/// The scratch floats [`forward_gemm`] needs in `col` to run `g` by
/// Winograd's F(2x2, 3x3) on an AVX-512 or AVX2 CPU: for the fewest images
/// whose tiles fill the GEMMs' register tile (3 vectors of 16 tiles, as
/// AVX-512 runs them; AVX2's 3 vectors of 8 never need more; it groups
/// more when `col` holds them, and fewer when it must): 3x3, stride-1 convs
/// with 8 or more input and output channels; 0 for other convs, which never
/// take that path.
/// A net's planner reserves it (with a shorter `col`, `forward_gemm` takes
/// the other kernels). 0 where the path is not compiled (without `std` or
/// off `x86_64`).
pub fn winograd_scratch_len(g: &Conv2d) -> usize {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    return winograd::scratch_len(g);
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        let _ = g;
        0
    }
}

/// The floats [`forward_gemm_folded`] takes at the start of `col` for the
/// folded weights and bias of a conv of `groups` groups of geometry `g`.
pub const fn fold_len(g: &Conv2d, groups: usize) -> usize {
    groups * (g.weight_len() + g.out_channels)
}

/// The fewest input and output channels Winograd's F(2x2, 3x3) path takes.
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// The fewest 2x2 tiles an output plane must have for Winograd's path:
/// below that, the per-call filter transform and the idle lanes of the
/// tile transforms cost more than the multiply-adds saved. Measured on a
/// Zen 5 (us per image, this path against the direct kernels, at 1 / 4 /
/// 32 images a call): NiN's 32-to-64-channel 6x6 conv (9 tiles) 11.7 / 6.9
/// / 5.5 against 7.5 / 6.1 / 5.7, its 64-to-10 2x2 conv (1 tile) 6.0 / - /
/// 2.1 against 2.6 / - / 1.9; ResNet's 64-channel 7x7 convs (16 tiles)
/// 21.0 / 13.8 against 24.2 / 21.6.
const WINOGRAD_MIN_TILES: usize = 16;

/// Whether Winograd's F(2x2, 3x3) path takes `g`: a 3x3, stride-1 conv
/// with at least [`WINOGRAD_MIN_CHANNELS`] input and output channels and
/// [`WINOGRAD_MIN_TILES`] tiles. Pure arithmetic, on every target, so that
/// [`packed_len`] is too (the path itself runs on AVX-512 or AVX2 only).
const fn winograd_takes(g: &Conv2d) -> bool {
    g.kernel.0 == 3
        && g.kernel.1 == 3
        && g.stride.0 == 1
        && g.stride.1 == 1
        && g.in_channels >= WINOGRAD_MIN_CHANNELS
        && g.out_channels >= WINOGRAD_MIN_CHANNELS
        && g.out_h().div_ceil(2) * g.out_w().div_ceil(2) >= WINOGRAD_MIN_TILES
}

/// Floats of the filters Winograd's path transforms for `g`, `U[16 points]
/// [O rounded up to 8][C]`, if it takes `g` (on every target); else 0: the
/// packed weights of a conv without a batch norm after it
/// ([`pack_filters`]).
pub const fn winograd_filters_len(g: &Conv2d) -> usize {
    if winograd_takes(g) {
        16 * g.out_channels.next_multiple_of(8) * g.in_channels
    } else {
        0
    }
}

/// Panics unless packed weights of `len` floats have the layout's
/// `expected` length.
fn check_packed(len: usize, expected: usize) {
    assert_eq!(
        len, expected,
        "conv: packed weights of {len} floats, the layout has {expected}"
    );
}

/// The floats of a conv's packed weights ([`pack_folded`]): the weights and
/// bias with the batch norm after it folded in ([`fold_len`]), then, for
/// an ungrouped conv that Winograd's F(2x2, 3x3) path takes, those weights'
/// transformed filters. The same on every target (where that path does not
/// run, its part is left unused), so a net's packed layout is too.
pub const fn packed_len(g: &Conv2d, groups: usize) -> usize {
    fold_len(g, groups) + if groups == 1 { winograd_filters_len(g) } else { 0 }
}

/// Packs a conv of `groups` groups of geometry `g` (weights `w`, bias `b`)
/// and the batch norm `bn` after it for [`forward_packed`]: the work of
/// [`forward_gemm_folded`] that depends on the weights alone, done once
/// instead of on every call. Writes the folded weights and bias
/// ([`Fold::fold`](super::batchnorm::Fold::fold)) and, where Winograd's
/// path runs on this CPU, their transformed filters, into `packed`.
///
/// # Panics
///
/// If `packed` does not have [`packed_len`] floats, or as
/// [`Fold::fold`](super::batchnorm::Fold::fold).
pub fn pack_folded(
    g: &Conv2d,
    groups: usize,
    w: &[f32],
    b: Option<&[f32]>,
    bn: &super::batchnorm::Fold<'_>,
    packed: &mut [f32],
) {
    check_packed(packed.len(), packed_len(g, groups));
    let (folded, u) = packed.split_at_mut(fold_len(g, groups));
    let (wf, bf) = folded.split_at_mut(groups * g.weight_len());
    bn.fold(w, b, wf, bf);
    if groups == 1 {
        pack_filters(g, wf, u);
    }
}

/// Transforms the filters `w` of `g` for Winograd's path into `filters`
/// ([`winograd_filters_len`] floats), once for many calls of
/// [`forward_gemm_filters`], where that path runs on this CPU (elsewhere
/// `filters` is left as it is, and unused).
///
/// # Panics
///
/// If `filters` or `w` has another length.
pub fn pack_filters(g: &Conv2d, w: &[f32], filters: &mut [f32]) {
    check_packed(filters.len(), winograd_filters_len(g));
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv: weights of {} floats, expected {}",
        w.len(),
        g.weight_len()
    );
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    winograd::transform(g, w, filters);
}

/// [`forward_gemm_folded`] on weights [`pack_folded`] packed: the same
/// kernels on the same folded weights (so the same outputs, bit for bit),
/// without folding them or transforming Winograd's filters on each call.
/// Allocates nothing.
///
/// # Panics
///
/// As [`forward_gemm`], or if `packed` does not have [`packed_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn forward_packed(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    packed: &[f32],
    act: Activation,
    y: &mut [f32],
    col: &mut [f32],
) {
    check_packed(packed.len(), packed_len(g, groups));
    let (folded, u) = packed.split_at(fold_len(g, groups));
    let (wf, bf) = folded.split_at(groups * g.weight_len());
    forward_folded_weights(g, groups, n, x, wf, bf, u, act, y, col);
}

/// The inference pass of a conv, the batch norm after it and the
/// activation `act` after that in one: [`forward_gemm`] (with `groups > 1`,
/// [`forward_grouped_gemm`], `g` being one group's geometry) with `bn`
/// folded into the weights and bias
/// ([`Fold::fold`](super::batchnorm::Fold::fold)), so the normalised output
/// is written once and the batch norm costs a pass over the weights
/// instead of one over the activations; the pointwise and depthwise
/// kernels apply `act` in their store (the same values as
/// [`Activation::apply`], which the other kernels' output gets
/// afterwards). The folded copy takes the first [`fold_len`] floats of
/// `col`, the conv the rest. Allocates nothing.
///
/// # Panics
///
/// As [`forward_gemm`], or if `col` is shorter than [`fold_len`].
#[allow(clippy::too_many_arguments)]
pub fn forward_gemm_folded(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    bn: &super::batchnorm::Fold<'_>,
    act: Activation,
    y: &mut [f32],
    col: &mut [f32],
) {
    let (o, wl) = (groups * g.out_channels, groups * g.weight_len());
    assert!(
        col.len() >= wl + o,
        "conv: col has {} elements, the folded weights need {}",
        col.len(),
        wl + o
    );
    let (wf, rest) = col.split_at_mut(wl);
    let (bf, col) = rest.split_at_mut(o);
    bn.fold(w, b, wf, bf);
    forward_folded_weights(g, groups, n, x, wf, bf, &[], act, y, col);
}

/// The conv of the folded weights `wf` and bias `bf`, then `act`: the
/// pointwise and depthwise kernels apply it in their store. `u` holds
/// Winograd's transformed filters of `wf` ([`pack_folded`]), or is empty
/// for that path to transform them itself.
#[allow(clippy::too_many_arguments)]
fn forward_folded_weights(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    wf: &[f32],
    bf: &[f32],
    u: &[f32],
    act: Activation,
    y: &mut [f32],
    col: &mut [f32],
) {
    if groups > 1 {
        return grouped::forward_grouped_gemm_act(g, groups, n, x, wf, Some(bf), act, y, col);
    }
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        check(g, n, x.len(), wf.len(), Some(bf.len()), y.len(), "y");
        if pointwise::forward(g, n, x, wf, Some(bf), act, y) {
            return;
        }
    }
    forward_gemm_with(g, n, x, wf, Some(bf), u, y, col);
    act.apply(y);
}

#[cfg(feature = "std")]
super::simd::multiversion! {
    /// `db[o] += sum(dy_img[o])` over the `oplane` outputs of each channel,
    /// compiled for the CPU's widest vectors.
    fn bias_grad(db: &mut [f32], dy_img: &[f32], oplane: usize) => bias_grad_body
}

#[cfg(feature = "std")]
#[inline(always)]
fn bias_grad_body<const FMA: bool>(db: &mut [f32], dy_img: &[f32], oplane: usize) {
    for (dbo, dy_o) in db.iter_mut().zip(dy_img.chunks_exact(oplane)) {
        *dbo += super::sum(dy_o);
    }
}

/// Backward pass of `n` images through im2col and GEMM; same result as
/// [`backward`] up to rounding: `dw += dL/dw`, `db += dL/db`, `dx = dL/dx`.
/// `col` is scratch as for [`forward_gemm`]. Without `std` this is
/// [`backward`] and `col` is unused.
///
/// # Panics
///
/// As [`backward`], or if `col` is too short.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn backward_gemm(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    col: &mut [f32],
) {
    #[cfg(not(feature = "std"))]
    {
        let _ = col;
        backward(g, n, x, w, dy, dw, db, dx);
    }
    #[cfg(feature = "std")]
    {
        use super::gemm::sgemm;
        let (mut db, mut dx) = (db, dx);
        check_backward(g, n, x, w, dy, dw, db.as_deref(), dx.as_deref());
        check_col(g, col);
        let (in_len, out_len) = (g.input_len(), g.output_len());
        let (o_n, oplane, flen) = (g.out_channels, g.out_plane(), g.filter_len());
        let pointwise = g.is_pointwise();
        // The im2col copy, none for a 1x1 conv (`x` is its own).
        let im2col_len = if pointwise { 0 } else { g.col_len() };
        // The lanes kernels and the windows path take their scratch from all
        // of `col`: a net's buffer is sized for its largest layer, so a
        // conv whose own im2col is smaller can still have room for them
        // (ResNet's 64-channel 7x7 convs: their lanes weight gradient needs
        // 45,200 floats, their im2col 28,224, the net's buffer 143,743).
        let windows = !pointwise && windows_fit(g, col.len());
        #[cfg(target_arch = "x86_64")]
        let dw_done = !pointwise && lanes::weight_grad(g, n, x, dy, dw, col);
        #[cfg(not(target_arch = "x86_64"))]
        let dw_done = false;
        #[cfg(target_arch = "x86_64")]
        let dx_done = match dx.as_deref_mut() {
            Some(dx) => {
                winograd::input_grad(g, n, w, dy, dx, col)
                    || lanes::input_grad(g, n, w, dy, dx, col)
                    || direct::input_grad_narrow(g, n, w, dy, dx)
            }
            None => false,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let dx_done = false;
        for i in 0..n {
            let x_img = &x[i * in_len..][..in_len];
            let dy_img = &dy[i * out_len..][..out_len];
            if let Some(db) = db.as_deref_mut() {
                bias_grad(db, dy_img, oplane);
            }
            if !(dw_done || (windows && weight_grad_windows(g, x_img, dy_img, dw, col))) {
                let col = &mut col[..im2col_len];
                if !pointwise {
                    im2col(g, x_img, col);
                }
                let cols: &[f32] = if pointwise { x_img } else { &*col };
                // dW[O, CKK] += dY[O, P] col^T[P, CKK]
                sgemm(
                    o_n,
                    oplane,
                    flen,
                    1.0,
                    dy_img,
                    oplane as isize,
                    1,
                    cols,
                    1,
                    oplane as isize,
                    1.0,
                    dw,
                    flen as isize,
                    1,
                );
            }
            if let Some(dx) = dx.as_deref_mut().filter(|_| !dx_done) {
                let dx_img = &mut dx[i * in_len..][..in_len];
                // dcol[CKK, P] = W^T[CKK, O] dY[O, P]; pointwise: dcol is dx.
                let dcol: &mut [f32] = if pointwise {
                    &mut *dx_img
                } else {
                    &mut col[..im2col_len]
                };
                sgemm(
                    flen,
                    o_n,
                    oplane,
                    1.0,
                    w,
                    1,
                    flen as isize,
                    dy_img,
                    oplane as isize,
                    1,
                    0.0,
                    dcol,
                    oplane as isize,
                    1,
                );
                if !pointwise {
                    col2im(g, col, dx_img);
                }
            }
        }
    }
}

/// The first `need` floats (at most `CAP`) of a stack buffer, zeroed: the
/// rest is left uninitialized, so a frame sized for the largest case costs
/// only what a call uses.
#[inline(always)]
fn zeroed_prefix<const CAP: usize>(
    buffer: &mut [core::mem::MaybeUninit<f32>; CAP],
    need: usize,
) -> &mut [f32] {
    let need = need.min(CAP);
    for v in &mut buffer[..need] {
        v.write(0.0);
    }
    // SAFETY: the first `need` floats were initialized just above, and
    // `MaybeUninit<f32>` has the layout of `f32`.
    unsafe { core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<f32>(), need) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{
        assert_close, assert_close32, assert_grad, finite_diff, functional, to_f64, Rng,
    };
    use proptest::prelude::*;

    /// Filters transformed once give `forward_gemm`'s outputs bit for bit,
    /// on Winograd's path (whose scratch `col` holds), with and without
    /// bias; a conv that path does not take packs nothing.
    #[test]
    #[cfg(feature = "std")]
    fn transformed_filters_give_forward_gemms_outputs() {
        let mut rng = Rng::new(9);
        for (c, h, w, o, pad) in [(16, 10, 9, 12, 1), (8, 12, 12, 8, 0), (9, 16, 7, 24, 2)] {
            let g = Conv2d {
                in_channels: c,
                in_h: h,
                in_w: w,
                out_channels: o,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (pad, pad),
            };
            assert!(winograd_filters_len(&g) > 0, "{g:?} takes Winograd's path");
            let n = 3;
            let x = rng.vec(n * g.input_len());
            let wt = rng.vec(g.weight_len());
            let b = rng.vec(o);
            let mut filters = rng.vec(winograd_filters_len(&g));
            pack_filters(&g, &wt, &mut filters);
            for bias in [Some(&b[..]), None] {
                let mut col = rng.vec(g.col_len().max(winograd_scratch_len(&g)));
                let mut expected = rng.vec(n * g.output_len());
                forward_gemm(&g, n, &x, &wt, bias, &mut expected, &mut col);
                let mut y = rng.vec(n * g.output_len());
                forward_gemm_filters(&g, n, &x, &wt, bias, &filters, &mut y, &mut col);
                assert!(
                    y.iter().zip(&expected).all(|(a, e)| a.to_bits() == e.to_bits()),
                    "{g:?} bias {}: {y:?} vs {expected:?}",
                    bias.is_some()
                );
            }
        }
        let strided = Conv2d {
            in_channels: 16,
            in_h: 12,
            in_w: 12,
            out_channels: 16,
            kernel: (3, 3),
            stride: (2, 2),
            pad: (1, 1),
        };
        assert_eq!(winograd_filters_len(&strided), 0);
        assert_eq!(packed_len(&strided, 1), fold_len(&strided, 1));
    }

    /// A conv with a batch norm folded in against the conv, then the batch
    /// norm in place: plain, strided, grouped and depthwise, with and
    /// without bias, the scratch random (the folded copy must overwrite it).
    #[test]
    #[cfg(feature = "std")]
    fn folded_batchnorm_is_the_conv_then_the_batch_norm() {
        use super::super::batchnorm::{self, Fold};
        let mut rng = Rng::new(5);
        // (channels, groups, out channels, stride, kernel): 3x3 convs, and
        // pointwise ones (their own kernel, the activation in its store).
        for (case, (c, groups, o, stride, k)) in [
            (3, 1, 16, 1, 3),
            (16, 1, 32, 2, 3),
            (8, 2, 6, 1, 3),
            (12, 12, 12, 2, 3),
            (24, 24, 24, 1, 3),
            (16, 1, 24, 1, 1),
            (5, 1, 11, 1, 1),
            // Winograd's path (25 tiles), its filters packed.
            (16, 1, 12, 1, 3),
        ]
        .into_iter()
        .enumerate()
        {
            let g = Conv2d {
                in_channels: c / groups,
                in_h: 10,
                in_w: 9,
                out_channels: o / groups,
                kernel: (k, k),
                stride: (stride, stride),
                pad: (k / 2, k / 2),
            };
            let n = 3;
            // Pointwise sums are short: inputs up to 4 take them past relu6's 6.
            let x: Vec<f32> = rng
                .vec(n * c * 90)
                .iter()
                .map(|v| if k == 1 { 4.0 * v } else { *v })
                .collect();
            let w = rng.vec(groups * g.weight_len());
            let b = rng.vec(o);
            let (mean, gamma, beta) = (rng.vec(o), rng.vec(o), rng.vec(o));
            let act = [Activation::None, Activation::Relu, Activation::Relu6][case % 3];
            let var: Vec<f32> = rng.vec(o).iter().map(|v| v.abs() + 0.5).collect();
            let bn = Fold {
                running_mean: &mean,
                running_var: &var,
                eps: 1e-5,
                gamma: &gamma,
                beta: &beta,
            };
            for bias in [Some(&b[..]), None] {
                let y_len = n * groups * g.output_len();
                let mut col = rng.vec(fold_len(&g, groups) + g.col_len());
                let mut expected = vec![0.0; y_len];
                if groups == 1 {
                    forward_gemm(&g, n, &x, &w, bias, &mut expected, &mut col);
                } else {
                    forward_grouped_gemm(&g, groups, n, &x, &w, bias, &mut expected, &mut col);
                }
                let geometry = batchnorm::Geometry {
                    n,
                    c: o,
                    s: g.out_plane(),
                };
                batchnorm::forward_eval(&geometry, &mean, &var, 1e-5, &gamma, &beta, &mut expected);
                act.apply(&mut expected);
                assert!(
                    k != 1 || act != Activation::Relu6 || expected.contains(&6.0),
                    "no output at 6"
                );
                let mut y = rng.vec(y_len);
                let mut col = rng.vec(fold_len(&g, groups) + g.col_len().max(winograd_scratch_len(&g)));
                forward_gemm_folded(&g, groups, n, &x, &w, bias, &bn, act, &mut y, &mut col);
                let what = format!(
                    "c {c} groups {groups} o {o} stride {stride} kernel {k} {act:?} bias {}",
                    bias.is_some()
                );
                assert_close32(&what, &y, &expected, 1e-5);
                // Packed once, the same kernels on the same folded weights.
                let mut packed = rng.vec(packed_len(&g, groups));
                pack_folded(&g, groups, &w, bias, &bn, &mut packed);
                let mut from_packed = rng.vec(y_len);
                forward_packed(&g, groups, n, &x, &packed, act, &mut from_packed, &mut col);
                assert!(
                    from_packed
                        .iter()
                        .zip(&y)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{what}: packed {from_packed:?} vs {y:?}"
                );
            }
        }
    }

    /// The definition, loop for loop, in f64.
    fn reference_forward(g: &Conv2d, n: usize, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let (c_n, h, wd, o_n) = (g.in_channels, g.in_h, g.in_w, g.out_channels);
        let (kh, kw) = g.kernel;
        let (oh_n, ow_n) = (g.out_h(), g.out_w());
        let mut y = vec![0.0; n * g.output_len()];
        for i in 0..n {
            for o in 0..o_n {
                for p in 0..oh_n {
                    for q in 0..ow_n {
                        let mut acc = b.map_or(0.0, |b| b[o]);
                        for c in 0..c_n {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let ih = (p * g.stride.0 + u) as isize - g.pad.0 as isize;
                                    let iw = (q * g.stride.1 + v) as isize - g.pad.1 as isize;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                        continue;
                                    }
                                    let (ih, iw) = (ih as usize, iw as usize);
                                    acc += w[((o * c_n + c) * kh + u) * kw + v]
                                        * x[((i * c_n + c) * h + ih) * wd + iw];
                                }
                            }
                        }
                        y[((i * o_n + o) * oh_n + p) * ow_n + q] = acc;
                    }
                }
            }
        }
        y
    }

    /// The chain rule of the definition, loop for loop, in f64:
    /// `(dx, dw, db)` with nothing accumulated.
    fn reference_backward(
        g: &Conv2d,
        n: usize,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (c_n, h, wd, o_n) = (g.in_channels, g.in_h, g.in_w, g.out_channels);
        let (kh, kw) = g.kernel;
        let (oh_n, ow_n) = (g.out_h(), g.out_w());
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; o_n];
        for i in 0..n {
            for o in 0..o_n {
                for p in 0..oh_n {
                    for q in 0..ow_n {
                        let d = dy[((i * o_n + o) * oh_n + p) * ow_n + q];
                        db[o] += d;
                        for c in 0..c_n {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let ih = (p * g.stride.0 + u) as isize - g.pad.0 as isize;
                                    let iw = (q * g.stride.1 + v) as isize - g.pad.1 as isize;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                        continue;
                                    }
                                    let (ih, iw) = (ih as usize, iw as usize);
                                    let wi = ((o * c_n + c) * kh + u) * kw + v;
                                    let xi = ((i * c_n + c) * h + ih) * wd + iw;
                                    dw[wi] += d * x[xi];
                                    dx[xi] += d * w[wi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx, dw, db)
    }

    fn geometry() -> impl Strategy<Value = (Conv2d, usize)> {
        (
            (1usize..=3, 1usize..=3, 1usize..=4, 1usize..=4),
            (1usize..=3, 1usize..=3, 0usize..=2, 0usize..=2),
            (0usize..=5, 0usize..=20, 1usize..=3),
            prop::bool::weighted(0.15),
        )
            .prop_map(|((c, o, kh, kw), (sh, sw, ph, pw), (eh, ew, n), pointwise)| {
                let mut g = Conv2d {
                    in_channels: c,
                    in_h: (kh + eh).saturating_sub(ph).max(1),
                    in_w: (kw + ew).saturating_sub(pw).max(1),
                    out_channels: o,
                    kernel: (kh, kw),
                    stride: (sh, sw),
                    pad: (ph, pw),
                };
                if pointwise {
                    g.kernel = (1, 1);
                    g.stride = (1, 1);
                    g.pad = (0, 0);
                }
                (g, n)
            })
    }

    #[test]
    fn d2l_cross_correlation() {
        let g = Conv2d {
            in_channels: 1,
            in_h: 3,
            in_w: 3,
            out_channels: 1,
            kernel: (2, 2),
            stride: (1, 1),
            pad: (0, 0),
        };
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let w = [0.0, 1.0, 2.0, 3.0];
        let mut y = [0.0; 4];
        forward(&g, 1, &x, &w, None, &mut y);
        assert_eq!(y, [19.0, 25.0, 37.0, 43.0]);
        let mut col = vec![f32::NAN; g.col_len()];
        let mut y = [0.0; 4];
        forward_gemm(&g, 1, &x, &w, Some(&[1.0]), &mut y, &mut col);
        assert_eq!(y, [20.0, 26.0, 38.0, 44.0]);
    }

    #[test]
    fn padded_strided_box_filter() {
        // x = 1..=16 in a 4x4 grid, 3x3 box filter, pad 1, stride 2.
        let g = Conv2d {
            in_channels: 1,
            in_h: 4,
            in_w: 4,
            out_channels: 1,
            kernel: (3, 3),
            stride: (2, 2),
            pad: (1, 1),
        };
        let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let w = [1.0; 9];
        let mut y = [0.0; 4];
        forward(&g, 1, &x, &w, None, &mut y);
        assert_eq!(y, [14.0, 30.0, 57.0, 99.0]);
        // dL/dx for dy = 1: how many windows cover each input.
        let mut dx = [f32::NAN; 16];
        let mut dw = [0.0; 9];
        backward(&g, 1, &x, &w, &[1.0; 4], &mut dw, None, Some(&mut dx));
        #[rustfmt::skip]
        let covered = [1.0, 2.0, 1.0, 1.0,
                       2.0, 4.0, 2.0, 2.0,
                       1.0, 2.0, 1.0, 1.0,
                       1.0, 2.0, 1.0, 1.0];
        assert_eq!(dx, covered);
        // dL/dw[u][v] = sum of the inputs tap (u, v) reads.
        assert_eq!(dw[4], 1.0 + 3.0 + 9.0 + 11.0);
    }

    #[test]
    #[should_panic(expected = "conv: w has 3 elements, expected O * C * KH * KW = 4")]
    fn wrong_weight_len_panics() {
        let g = Conv2d {
            in_channels: 1,
            in_h: 3,
            in_w: 3,
            out_channels: 1,
            kernel: (2, 2),
            stride: (1, 1),
            pad: (0, 0),
        };
        forward(&g, 1, &[0.0; 9], &[0.0; 3], None, &mut [0.0; 4]);
    }

    /// Kernels too wide for the stack segment of a border tile take the
    /// slow per-lane path; the proptest shapes never reach it.
    #[test]
    fn wide_kernels_match_reference() {
        let shapes = [((2, 60), (1, 1), (1, 3)), ((3, 51), (2, 2), (1, 20))];
        for (kernel, stride, pad) in shapes {
            let g = Conv2d {
                in_channels: 2,
                in_h: 4,
                in_w: 62,
                out_channels: 3,
                kernel,
                stride,
                pad,
            };
            let n = 2;
            let mut rng = Rng::new(7);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let dy = rng.vec(n * g.output_len());
            let (x64, w64) = (to_f64(&x), to_f64(&w));
            let mut y = vec![f32::NAN; n * g.output_len()];
            forward(&g, n, &x, &w, None, &mut y);
            assert_close("y", &y, &reference_forward(&g, n, &x64, &w64, None), 1e-5);
            let (rdx, rdw, _) = reference_backward(&g, n, &x64, &w64, &to_f64(&dy));
            let mut dx = vec![f32::NAN; x.len()];
            let mut dw = vec![0.0; w.len()];
            backward(&g, n, &x, &w, &dy, &mut dw, None, Some(&mut dx));
            assert_close("dx", &dx, &rdx, 1e-5);
            assert_close("dw", &dw, &rdw, 1e-5);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn forward_matches_reference((g, n) in geometry(), has_bias: bool, seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let b = rng.vec(g.out_channels);
            let b = has_bias.then_some(&b[..]);
            let expected =
                reference_forward(&g, n, &to_f64(&x), &to_f64(&w), b.map(to_f64).as_deref());
            let mut y = vec![f32::NAN; n * g.output_len()];
            forward(&g, n, &x, &w, b, &mut y);
            assert_close("y", &y, &expected, 1e-5);
            let mut y_gemm = vec![f32::NAN; y.len()];
            let mut col = vec![f32::NAN; g.col_len()];
            forward_gemm(&g, n, &x, &w, b, &mut y_gemm, &mut col);
            assert_close32("y_gemm", &y_gemm, &y, 1e-5);
        }

        #[test]
        fn backward_matches_reference((g, n) in geometry(), has_bias: bool, seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let dy = rng.vec(n * g.output_len());
            // Parameter gradients accumulate onto what is already there.
            let dw0 = rng.vec(w.len());
            let db0 = rng.vec(g.out_channels);
            let (rdx, rdw, rdb) = reference_backward(&g, n, &to_f64(&x), &to_f64(&w), &to_f64(&dy));
            let plus = |a: &[f32], b: &[f64]| -> Vec<f64> {
                a.iter().zip(b).map(|(&a, &b)| f64::from(a) + b).collect()
            };

            let mut dx = vec![f32::NAN; x.len()];
            let (mut dw, mut db) = (dw0.clone(), db0.clone());
            backward(&g, n, &x, &w, &dy, &mut dw, has_bias.then_some(&mut db[..]), Some(&mut dx));
            assert_close("dx", &dx, &rdx, 1e-5);
            assert_close("dw", &dw, &plus(&dw0, &rdw), 1e-5);
            if has_bias {
                assert_close("db", &db, &plus(&db0, &rdb), 1e-5);
            } else {
                prop_assert_eq!(&db, &db0);
            }

            let mut dx_gemm = vec![f32::NAN; x.len()];
            let (mut dw_gemm, mut db_gemm) = (dw0.clone(), db0.clone());
            let mut col = vec![f32::NAN; g.col_len()];
            backward_gemm(&g, n, &x, &w, &dy, &mut dw_gemm, has_bias.then_some(&mut db_gemm[..]),
                          Some(&mut dx_gemm), &mut col);
            assert_close32("dx_gemm", &dx_gemm, &dx, 1e-5);
            assert_close32("dw_gemm", &dw_gemm, &dw, 1e-5);
            assert_close32("db_gemm", &db_gemm, &db, 1e-5);

            // A net's buffer, sized for its largest layer, is often longer
            // than this conv's im2col: the lanes and windows paths then
            // take their scratch from all of it.
            let mut big = vec![f32::NAN; g.col_len() + 65_536];
            let mut dx_big = vec![f32::NAN; x.len()];
            let (mut dw_big, mut db_big) = (dw0.clone(), db0.clone());
            backward_gemm(&g, n, &x, &w, &dy, &mut dw_big, has_bias.then_some(&mut db_big[..]),
                          Some(&mut dx_big), &mut big);
            assert_close32("dx with a larger col", &dx_big, &dx, 1e-5);
            assert_close32("dw with a larger col", &dw_big, &dw, 1e-5);
            assert_close32("db with a larger col", &db_big, &db, 1e-5);

            // Without dx, the parameter gradients are unchanged.
            let mut dw_only = dw0.clone();
            backward(&g, n, &x, &w, &dy, &mut dw_only, None, None);
            assert_close32("dw without dx", &dw_only, &dw, 1e-6);
            let mut dw_only = dw0.clone();
            backward_gemm(&g, n, &x, &w, &dy, &mut dw_only, None, None, &mut col);
            assert_close32("dw_gemm without dx", &dw_only, &dw, 1e-5);
        }

        #[test]
        fn backward_matches_finite_differences((g, n) in geometry(), seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * g.input_len());
            let w = rng.vec(g.weight_len());
            let b = rng.vec(g.out_channels);
            // L = sum(r * y), so dL/dy = r.
            let r = rng.vec(n * g.output_len());
            let mut dx = vec![0.0; x.len()];
            let mut dw = vec![0.0; w.len()];
            let mut db = vec![0.0; b.len()];
            backward(&g, n, &x, &w, &r, &mut dw, Some(&mut db), Some(&mut dx));
            let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
            let loss = |x: &[f64], w: &[f64], b: &[f64]| {
                functional(&r, &reference_forward(&g, n, x, w, Some(b)))
            };
            let fd = finite_diff(&x64, 1e-3, &mut rng, 24, |x| loss(x, &w64, &b64));
            assert_grad("dx", &dx, &fd, 1e-4);
            let fd = finite_diff(&w64, 1e-3, &mut rng, 24, |w| loss(&x64, w, &b64));
            assert_grad("dw", &dw, &fd, 1e-4);
            let fd = finite_diff(&b64, 1e-3, &mut rng, 24, |b| loss(&x64, &w64, b));
            assert_grad("db", &db, &fd, 1e-4);
        }
    }
}
