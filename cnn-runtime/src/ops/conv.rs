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
//!   `direct_beats_gemm`):
//!   `Y = W col + b`, `dW += dY col^T`, `dcol = W^T dY` scattered back by
//!   col2im. A 1x1, stride-1, unpadded conv uses `x` itself as `col`.
//!   The weight gradient of any other unit-stride conv skips im2col: each
//!   tap's window is a shifted view of the zero-padded image
//!   (`weight_grad_windows`). Without `std` they call the direct kernels.
//!
//! Backward: `dw` and `db` are accumulated (`+=`) over the batch, `dx` is
//! overwritten with `dL/dx`.

use super::simd::{madd, multiversion};
use super::window::{check_geometry, input_index, out_len, valid_range, zip_strided, zip_strided_rev};
use super::{reduce, sum};

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

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
    forward_any(g, n, x, w, b, y);
}

multiversion! {
    /// [`forward`] after its checks, compiled for the CPU's vector width.
    fn forward_any(g: &Conv2d, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) => forward_body
}

#[inline(always)]
fn forward_body<const FMA: bool>(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let (oplane, flen) = (g.out_plane(), g.filter_len());
    let (kh, kw) = g.kernel;
    let corr = Correlation {
        inputs: g.in_channels,
        in_h: g.in_h,
        in_w: g.in_w,
        out_h: g.out_h(),
        out_w: g.out_w(),
        kernel: g.kernel,
        stride: g.stride,
        pad: g.pad,
    };
    for i in 0..n {
        let x_img = &x[i * in_len..][..in_len];
        let y_img = &mut y[i * out_len..][..out_len];
        for (o, y_o) in y_img.chunks_exact_mut(oplane).enumerate() {
            y_o.fill(b.map_or(0.0, |b| b[o]));
        }
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            let taps = x86::Taps {
                base: 0,
                k_step: flen as isize,
                c_step: (kh * kw) as isize,
                u_step: kw as isize,
                v_step: 1,
            };
            if x86::correlate(&corr, y_img, g.out_channels, x_img, w, taps) {
                continue;
            }
        }
        corr.run::<FMA>(y_img, g.out_channels, x_img, |o, c, u, v| {
            w[o * flen + (c * kh + u) * kw + v]
        });
    }
}

/// Output columns computed together in the register block of
/// [`Correlation`].
const BLOCK: usize = 8;

/// Output channels computed together (sharing each input load), at most.
const CHANNEL_BLOCK: usize = 4;

/// Floats of the stack buffer a border tile copies its zero-padded input
/// columns into: enough for `(BLOCK - 1) * SW + KW <= 64`.
const SEGMENT: usize = 64;

/// `out[k, p, q] += sum_{c, u, v} wt(k, c, u, v) * inp[c, p*SH + u - PH, q*SW + v - PW]`
/// over `outputs` planes `out_h x out_w` and `inputs` planes `in_h x in_w`
/// (zero outside): the direct conv forward, and (with flipped, transposed
/// weights) the stride-1 input gradient.
///
/// The inner loop keeps a `CHANNEL_BLOCK x BLOCK` tile of outputs in
/// registers over every tap, so each input row segment is loaded once per
/// tap for up to four output channels and no output is stored more than
/// once. Tiles near the padded border, where some taps fall outside the
/// input, read a zero-padded copy of their input columns instead.
#[derive(Clone, Copy)]
struct Correlation {
    inputs: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
}

impl Correlation {
    #[inline(always)]
    fn run<const FMA: bool>(
        &self,
        out: &mut [f32],
        outputs: usize,
        inp: &[f32],
        wt: impl Fn(usize, usize, usize, usize) -> f32,
    ) {
        let oplane = self.out_h * self.out_w;
        let mut o = 0;
        while o + CHANNEL_BLOCK <= outputs {
            let tile = &mut out[o * oplane..(o + CHANNEL_BLOCK) * oplane];
            self.block::<CHANNEL_BLOCK, FMA>(tile, inp, |k, c, u, v| wt(o + k, c, u, v));
            o += CHANNEL_BLOCK;
        }
        if o + 2 <= outputs {
            let tile = &mut out[o * oplane..(o + 2) * oplane];
            self.block::<2, FMA>(tile, inp, |k, c, u, v| wt(o + k, c, u, v));
            o += 2;
        }
        if o < outputs {
            let tile = &mut out[o * oplane..(o + 1) * oplane];
            self.block::<1, FMA>(tile, inp, |k, c, u, v| wt(o + k, c, u, v));
        }
    }

    /// [`Correlation::run`] for exactly `NO` output planes.
    #[inline(always)]
    fn block<const NO: usize, const FMA: bool>(
        &self,
        out: &mut [f32],
        inp: &[f32],
        wt: impl Fn(usize, usize, usize, usize) -> f32,
    ) {
        let (oh_n, ow_n) = (self.out_h, self.out_w);
        let (kw, sw, pw) = (self.kernel.1, self.stride.1, self.pad.1);
        let oplane = oh_n * ow_n;
        let wd = self.in_w;
        // Columns whose every tap lies inside the input: q*SW >= PW and
        // q*SW + KW - 1 - PW <= W - 1.
        let q_hi = if wd + pw >= kw {
            ((wd + pw - kw) / sw + 1).min(ow_n)
        } else {
            0
        };
        let q_lo = pw.div_ceil(sw);
        let lanes = ow_n.min(BLOCK);
        // Input columns one tile reads; a border tile copies them, zero
        // padded, into a stack buffer of SEGMENT floats if they fit.
        let span = (BLOCK - 1) * sw + kw;
        for p in 0..oh_n {
            let mut q0 = 0;
            while q0 < ow_n {
                // Tiles of BLOCK columns; the last one is shifted left to end
                // at the row's end, and its lanes before q0 (already stored)
                // are skipped.
                let q = q0.min(ow_n - lanes);
                let acc = if lanes == BLOCK && q >= q_lo && q + BLOCK <= q_hi {
                    self.tile::<NO, false, FMA>(inp, p, q, &wt)
                } else if span <= SEGMENT {
                    self.tile::<NO, true, FMA>(inp, p, q, &wt)
                } else {
                    self.tile_wide_border::<NO>(inp, p, q, lanes, &wt)
                };
                for (k, acc_k) in acc.iter().enumerate() {
                    let o_row = &mut out[k * oplane + p * ow_n + q..][..lanes];
                    for (o, &a) in o_row.iter_mut().zip(acc_k).skip(q0 - q) {
                        *o += a;
                    }
                }
                q0 = q + lanes;
            }
        }
    }

    /// The rows of kernel taps that land inside the input for output row `p`.
    #[inline(always)]
    fn tap_rows(&self, p: usize) -> (usize, usize) {
        let (kh, sh, ph) = (self.kernel.0, self.stride.0, self.pad.0);
        let lo = ph.saturating_sub(p * sh);
        let hi = (self.in_h + ph).saturating_sub(p * sh).min(kh);
        (lo, hi.max(lo))
    }

    /// Outputs `(p, q..q + BLOCK)` of `NO` planes, the tile in registers.
    /// `BORDER = false`: every tap of every lane lies inside the input, read
    /// in place. `BORDER = true`: the input columns the tile reads are first
    /// copied, zero padded, into a stack segment (needs `span <= SEGMENT`);
    /// lanes past the end of a row narrower than `BLOCK` compute values the
    /// caller does not store.
    #[inline(always)]
    fn tile<const NO: usize, const BORDER: bool, const FMA: bool>(
        &self,
        inp: &[f32],
        p: usize,
        q: usize,
        wt: &impl Fn(usize, usize, usize, usize) -> f32,
    ) -> [[f32; BLOCK]; NO] {
        let (wd, plane) = (self.in_w, self.in_h * self.in_w);
        let (sh, sw) = self.stride;
        let (ph, pw) = self.pad;
        let kw = self.kernel.1;
        let (u_lo, u_hi) = self.tap_rows(p);
        let mut segment = [0.0f32; SEGMENT];
        let mut acc = [[0.0f32; BLOCK]; NO];
        for c in 0..self.inputs {
            for u in u_lo..u_hi {
                let x_row = &inp[c * plane + (p * sh + u - ph) * wd..][..wd];
                // `row[first + t]` is input column `q*SW - PW + t`.
                let (row, first): (&[f32], usize) = if BORDER {
                    let span = (BLOCK - 1) * sw + kw;
                    // Input columns q*SW - PW + t for t < span, clipped.
                    let t_lo = pw.saturating_sub(q * sw).min(span);
                    let t_hi = (wd + pw).saturating_sub(q * sw).clamp(t_lo, span);
                    segment[..t_lo].fill(0.0);
                    if t_lo < t_hi {
                        let from = q * sw + t_lo - pw;
                        segment[t_lo..t_hi].copy_from_slice(&x_row[from..from + t_hi - t_lo]);
                    }
                    segment[t_hi..span].fill(0.0);
                    (&segment[..span], 0)
                } else {
                    (x_row, q * sw - pw)
                };
                for v in 0..kw {
                    let base = first + v;
                    let mut wv = [0.0f32; NO];
                    for (k, wk) in wv.iter_mut().enumerate() {
                        *wk = wt(k, c, u, v);
                    }
                    if sw == 1 {
                        let xs = &row[base..base + BLOCK];
                        for (acc_k, &wk) in acc.iter_mut().zip(&wv) {
                            for (a, &xv) in acc_k.iter_mut().zip(xs) {
                                *a = madd::<FMA>(wk, xv, *a);
                            }
                        }
                    } else {
                        let xs = &row[base..base + (BLOCK - 1) * sw + 1];
                        for (j, &xv) in xs.iter().step_by(sw).enumerate() {
                            for (acc_k, &wk) in acc.iter_mut().zip(&wv) {
                                acc_k[j] = madd::<FMA>(wk, xv, acc_k[j]);
                            }
                        }
                    }
                }
            }
        }
        acc
    }

    /// A border tile whose input span does not fit the stack segment (very
    /// wide kernels or strides): each tap touches only the lanes whose input
    /// lies inside. Slow, but rare.
    #[inline(never)]
    fn tile_wide_border<const NO: usize>(
        &self,
        inp: &[f32],
        p: usize,
        q: usize,
        lanes: usize,
        wt: &impl Fn(usize, usize, usize, usize) -> f32,
    ) -> [[f32; BLOCK]; NO] {
        let (wd, plane) = (self.in_w, self.in_h * self.in_w);
        let (sh, sw) = self.stride;
        let (ph, pw) = self.pad;
        let (u_lo, u_hi) = self.tap_rows(p);
        let mut acc = [[0.0f32; BLOCK]; NO];
        for v in 0..self.kernel.1 {
            let (v_lo, v_hi) = valid_range(v, pw, sw, wd, self.out_w);
            let j_hi = v_hi.saturating_sub(q).min(lanes);
            let j_lo = v_lo.saturating_sub(q).min(j_hi);
            if j_lo == j_hi {
                continue;
            }
            let start = input_index(q + j_lo, v, pw, sw);
            for c in 0..self.inputs {
                for u in u_lo..u_hi {
                    let x_row = &inp[c * plane + (p * sh + u - ph) * wd..][..wd];
                    for (acc_k, k) in acc.iter_mut().zip(0..NO) {
                        let wk = wt(k, c, u, v);
                        zip_strided(&mut acc_k[j_lo..j_hi], x_row, start, sw, |a, xv| *a += wk * xv);
                    }
                }
            }
        }
        acc
    }
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

multiversion! {
    /// [`backward`] after its checks, compiled for the CPU's vector width.
    #[allow(clippy::too_many_arguments)]
    fn backward_any(
        g: &Conv2d,
        n: usize,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        dx: Option<&mut [f32]>,
    ) => backward_body
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_body<const FMA: bool>(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
) {
    let (h, wd) = (g.in_h, g.in_w);
    let (kh, kw) = g.kernel;
    let (ph, pw) = g.pad;
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let (oplane, flen) = (g.out_plane(), g.filter_len());
    for i in 0..n {
        let x_img = &x[i * in_len..][..in_len];
        let dy_img = &dy[i * out_len..][..out_len];
        if let Some(db) = db.as_deref_mut() {
            for (dbo, dy_o) in db.iter_mut().zip(dy_img.chunks_exact(oplane)) {
                *dbo += sum(dy_o);
            }
        }
        weight_grad::<FMA>(g, x_img, dy_img, dw);
        if let Some(dx) = dx.as_deref_mut() {
            let dx_img = &mut dx[i * in_len..][..in_len];
            dx_img.fill(0.0);
            if g.stride == (1, 1) && ph < kh && pw < kw {
                // dx[c, i, j] = sum_{o, u, v} w[o, c, u, v] dy[o, i + PH - u, j + PW - v]:
                // a stride-1 correlation of dy, padded by K - 1 - P, with the
                // kernel flipped and its in/out channels swapped.
                let corr = Correlation {
                    inputs: g.out_channels,
                    in_h: g.out_h(),
                    in_w: g.out_w(),
                    out_h: h,
                    out_w: wd,
                    kernel: g.kernel,
                    stride: (1, 1),
                    pad: (kh - 1 - ph, kw - 1 - pw),
                };
                #[cfg(all(feature = "std", target_arch = "x86_64"))]
                {
                    // w[o, c, KH - 1 - u, KW - 1 - v] for output plane c, input plane o.
                    let taps = x86::Taps {
                        base: ((kh - 1) * kw + kw - 1) as isize,
                        k_step: (kh * kw) as isize,
                        c_step: flen as isize,
                        u_step: -(kw as isize),
                        v_step: -1,
                    };
                    if x86::correlate(&corr, dx_img, g.in_channels, dy_img, w, taps) {
                        continue;
                    }
                }
                corr.run::<FMA>(dx_img, g.in_channels, dy_img, |c, o, u, v| {
                    w[o * flen + (c * kh + (kh - 1 - u)) * kw + (kw - 1 - v)]
                });
            } else {
                scatter_input_grad(g, w, dy_img, dx_img);
            }
        }
    }
}

/// `dw[o, c, u, v] += sum_{p, q} dy[o, p, q] * x[c, p*SH + u - PH, q*SW + v - PW]`
/// for one image, output channels in blocks that share each input load.
#[inline(always)]
fn weight_grad<const FMA: bool>(g: &Conv2d, x_img: &[f32], dy_img: &[f32], dw: &mut [f32]) {
    let mut o = 0;
    while o + CHANNEL_BLOCK <= g.out_channels {
        weight_grad_block::<CHANNEL_BLOCK, FMA>(g, o, x_img, dy_img, dw);
        o += CHANNEL_BLOCK;
    }
    if o + 2 <= g.out_channels {
        weight_grad_block::<2, FMA>(g, o, x_img, dy_img, dw);
        o += 2;
    }
    if o < g.out_channels {
        weight_grad_block::<1, FMA>(g, o, x_img, dy_img, dw);
    }
}

/// [`weight_grad`] for output channels `o0..o0 + NO`: per tap, a dot product
/// over the valid outputs with `NO x BLOCK` accumulators kept in registers
/// across rows.
#[inline(always)]
fn weight_grad_block<const NO: usize, const FMA: bool>(
    g: &Conv2d,
    o0: usize,
    x_img: &[f32],
    dy_img: &[f32],
    dw: &mut [f32],
) {
    let (h, wd) = (g.in_h, g.in_w);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.pad;
    let (plane, oplane, flen) = (h * wd, g.out_plane(), g.filter_len());
    let dy_block = &dy_img[o0 * oplane..(o0 + NO) * oplane];
    for c in 0..g.in_channels {
        let x_c = &x_img[c * plane..][..plane];
        for u in 0..kh {
            let (p_lo, p_hi) = valid_range(u, ph, sh, h, oh_n);
            for v in 0..kw {
                let (q_lo, q_hi) = valid_range(v, pw, sw, wd, ow_n);
                if q_lo == q_hi {
                    continue;
                }
                let (len, start) = (q_hi - q_lo, input_index(q_lo, v, pw, sw));
                let full = len - len % BLOCK;
                let mut acc = [[0.0f32; BLOCK]; NO];
                let mut tail = [0.0f32; NO];
                for p in p_lo..p_hi {
                    let x_row = &x_c[input_index(p, u, ph, sh) * wd..][..wd];
                    let xs = &x_row[start..start + (len - 1) * sw + 1];
                    let dy_at = p * ow_n + q_lo;
                    for t in (0..full).step_by(BLOCK) {
                        let mut xb = [0.0f32; BLOCK];
                        if sw == 1 {
                            xb.copy_from_slice(&xs[t..t + BLOCK]);
                        } else {
                            for (xj, &xv) in xb.iter_mut().zip(xs[t * sw..].iter().step_by(sw)) {
                                *xj = xv;
                            }
                        }
                        for (k, acc_k) in acc.iter_mut().enumerate() {
                            let dys = &dy_block[k * oplane + dy_at + t..][..BLOCK];
                            for ((a, &d), &xv) in acc_k.iter_mut().zip(dys).zip(&xb) {
                                *a = madd::<FMA>(d, xv, *a);
                            }
                        }
                    }
                    for j in full..len {
                        let xv = xs[j * sw];
                        for (k, tk) in tail.iter_mut().enumerate() {
                            *tk += dy_block[k * oplane + dy_at + j] * xv;
                        }
                    }
                }
                for (k, (acc_k, tk)) in acc.into_iter().zip(tail).enumerate() {
                    dw[(o0 + k) * flen + (c * kh + u) * kw + v] += reduce(acc_k) + tk;
                }
            }
        }
    }
}

/// `dx_img += conv^T(dy_img)` by scattering each `w * dy` row into the input
/// rows it came from; handles any stride and padding.
#[inline]
fn scatter_input_grad(g: &Conv2d, w: &[f32], dy_img: &[f32], dx_img: &mut [f32]) {
    let (h, wd) = (g.in_h, g.in_w);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.pad;
    let (plane, oplane, flen) = (h * wd, g.out_plane(), g.filter_len());
    for o in 0..g.out_channels {
        let dy_o = &dy_img[o * oplane..][..oplane];
        let w_o = &w[o * flen..][..flen];
        for c in 0..g.in_channels {
            let dx_c = &mut dx_img[c * plane..][..plane];
            for ki in 0..kh {
                let (oh_lo, oh_hi) = valid_range(ki, ph, sh, h, oh_n);
                for kj in 0..kw {
                    let (ow_lo, ow_hi) = valid_range(kj, pw, sw, wd, ow_n);
                    if ow_lo == ow_hi {
                        continue;
                    }
                    let wv = w_o[(c * kh + ki) * kw + kj];
                    let start = input_index(ow_lo, kj, pw, sw);
                    for oh in oh_lo..oh_hi {
                        let ih = input_index(oh, ki, ph, sh);
                        let dx_row = &mut dx_c[ih * wd..][..wd];
                        let dy_row = &dy_o[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
                        zip_strided_rev(dx_row, start, sw, dy_row, |d, g| *d += wv * g);
                    }
                }
            }
        }
    }
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
super::simd::multiversion! {
    /// im2col of one image: `col[(c*KH + u)*KW + v][p*OW + q]` is the input
    /// element tap `(c, u, v)` of output `(p, q)` reads, or 0 in the padding.
    ///
    /// Rows are short (an output row), so they are copied with [`copy_short`]
    /// rather than `memcpy` calls, whose fixed cost dominated here; compiled
    /// for the CPU's widest vectors.
    fn im2col(g: &Conv2d, x_img: &[f32], col: &mut [f32]) => im2col_body
}

#[cfg(feature = "std")]
#[inline(always)]
fn im2col_body<const FMA: bool>(g: &Conv2d, x_img: &[f32], col: &mut [f32]) {
    let (h, wd) = (g.in_h, g.in_w);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.pad;
    let (plane, oplane) = (h * wd, g.out_plane());
    for c in 0..g.in_channels {
        let x_c = &x_img[c * plane..][..plane];
        for ki in 0..kh {
            let (oh_lo, oh_hi) = valid_range(ki, ph, sh, h, oh_n);
            for kj in 0..kw {
                let (ow_lo, ow_hi) = valid_range(kj, pw, sw, wd, ow_n);
                let row = &mut col[((c * kh + ki) * kw + kj) * oplane..][..oplane];
                row[..oh_lo * ow_n].fill(0.0);
                row[oh_hi * ow_n..].fill(0.0);
                let start = input_index(ow_lo, kj, pw, sw);
                for oh in oh_lo..oh_hi {
                    let r = &mut row[oh * ow_n..][..ow_n];
                    fill_short(&mut r[..ow_lo]);
                    fill_short(&mut r[ow_hi..]);
                    if ow_lo < ow_hi {
                        let ih = input_index(oh, ki, ph, sh);
                        let x_row = &x_c[ih * wd..][..wd];
                        if sw == 1 {
                            copy_short(&mut r[ow_lo..ow_hi], &x_row[start..start + ow_hi - ow_lo]);
                        } else {
                            zip_strided(&mut r[ow_lo..ow_hi], x_row, start, sw, |d, s| *d = s);
                        }
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for short rows: 16- or 8-float moves (the last one
/// overlapping) instead of a `memcpy` call.
#[cfg(feature = "std")]
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    const CHUNK: usize = 8;
    let n = dst.len();
    let src = &src[..n];
    if n >= 2 * CHUNK {
        let mut i = 0;
        while i + 2 * CHUNK <= n {
            let s: &[f32; 2 * CHUNK] = src[i..i + 2 * CHUNK].try_into().expect("chunk");
            dst[i..i + 2 * CHUNK].copy_from_slice(s);
            i += 2 * CHUNK;
        }
        if i < n {
            let s: &[f32; 2 * CHUNK] = src[n - 2 * CHUNK..].try_into().expect("chunk");
            dst[n - 2 * CHUNK..].copy_from_slice(s);
        }
    } else if n >= CHUNK {
        let mut i = 0;
        while i + CHUNK <= n {
            let s: &[f32; CHUNK] = src[i..i + CHUNK].try_into().expect("chunk");
            dst[i..i + CHUNK].copy_from_slice(s);
            i += CHUNK;
        }
        if i < n {
            let s: &[f32; CHUNK] = src[n - CHUNK..].try_into().expect("chunk");
            dst[n - CHUNK..].copy_from_slice(s);
        }
    } else {
        let mut i = 0;
        if n >= 4 {
            let s: &[f32; 4] = src[..4].try_into().expect("chunk");
            dst[..4].copy_from_slice(s);
            i = 4;
        }
        if n - i >= 2 {
            // Two or three left: the last one may coincide with `i + 1`.
            dst[i] = src[i];
            dst[i + 1] = src[i + 1];
            dst[n - 1] = src[n - 1];
        } else if n - i == 1 {
            dst[i] = src[i];
        }
    }
}

/// `dst.fill(0.0)` for the few padding columns of a row, without a `memset` call.
#[cfg(feature = "std")]
#[inline(always)]
fn fill_short(dst: &mut [f32]) {
    if dst.len() <= 4 {
        for d in dst.iter_mut() {
            *d = 0.0;
        }
    } else {
        dst.fill(0.0);
    }
}

/// col2im of one image, the adjoint of [`im2col`]: `dx_img` is overwritten
/// with the sum of every `col` entry that reads each input element.
#[cfg(feature = "std")]
#[inline]
fn col2im(g: &Conv2d, col: &[f32], dx_img: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::col2im(g, col, dx_img) {
        return;
    }
    col2im_any(g, col, dx_img);
}

#[cfg(feature = "std")]
super::simd::multiversion! {
    /// [`col2im`] compiled for the CPU's widest vectors.
    fn col2im_any(g: &Conv2d, col: &[f32], dx_img: &mut [f32]) => col2im_body
}

#[cfg(feature = "std")]
#[inline(always)]
fn col2im_body<const FMA: bool>(g: &Conv2d, col: &[f32], dx_img: &mut [f32]) {
    let (h, wd) = (g.in_h, g.in_w);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.pad;
    let (plane, oplane) = (h * wd, g.out_plane());
    dx_img.fill(0.0);
    for c in 0..g.in_channels {
        let dx_c = &mut dx_img[c * plane..][..plane];
        for ki in 0..kh {
            let (oh_lo, oh_hi) = valid_range(ki, ph, sh, h, oh_n);
            for kj in 0..kw {
                let (ow_lo, ow_hi) = valid_range(kj, pw, sw, wd, ow_n);
                if ow_lo == ow_hi {
                    continue;
                }
                let row = &col[((c * kh + ki) * kw + kj) * oplane..][..oplane];
                let start = input_index(ow_lo, kj, pw, sw);
                for oh in oh_lo..oh_hi {
                    let ih = input_index(oh, ki, ph, sh);
                    let dx_row = &mut dx_c[ih * wd..][..wd];
                    let src = &row[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
                    zip_strided_rev(dx_row, start, sw, src, |d, s| *d += s);
                }
            }
        }
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
        !g.is_pointwise()
            && g.stride.1 == 1
            && g.filter_len() <= DIRECT_MAX_FILTER
            && super::simd::level() != super::simd::Level::Baseline
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
    #[cfg(not(feature = "std"))]
    {
        let _ = col;
        forward(g, n, x, w, b, y);
    }
    #[cfg(feature = "std")]
    {
        use super::gemm::sgemm;
        check(g, n, x.len(), w.len(), b.map(<[f32]>::len), y.len(), "y");
        check_col(g, col);
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
        *dbo += sum(dy_o);
    }
}

/// The padded row length and the lengths of the padded image and of the
/// widened output gradient that [`weight_grad_windows`] lays out in `col`.
#[cfg(feature = "std")]
#[inline]
fn windows_layout(g: &Conv2d) -> (usize, usize, usize) {
    let wp = g.in_w + 2 * g.pad.1;
    let hp = g.in_h + 2 * g.pad.0;
    let x_len = g.in_channels * hp * wp + g.kernel.1 - 1;
    (wp, x_len, g.out_channels * g.out_h() * wp)
}

/// Whether [`weight_grad_windows`] applies: a CPU with its kernel (checked
/// here, once per call, so the buffers are never built for nothing), unit
/// strides (so every tap's window is a shifted view of the padded image)
/// and room in `col` for its two buffers (always, except for convs whose
/// padding dwarfs the kernel).
#[cfg(feature = "std")]
#[inline]
fn windows_fit(g: &Conv2d, col_len: usize) -> bool {
    let (_, x_len, dy_len) = windows_layout(g);
    super::gemm::dot_windows_available()
        && g.stride == (1, 1)
        && g.out_h() > 0
        && g.out_w() > 0
        && x_len + dy_len <= col_len
}

/// `dw += dL/dw` for one image of a unit-stride conv with no im2col copy:
/// with `x` zero-padded to rows of `WP` and `dy` widened with zeros from
/// `OW` to `WP` columns, both flattened, tap `(c, u, v)` of output channel
/// `o` is one inner product, `sum_j dy'[o, j] x'[c, u*WP + v + j]` over
/// `j < OH*WP`: the window of every tap is a shifted view of the same
/// padded image (the zero columns of `dy'` cancel the reads that wrap into
/// the next row). Costs `WP/OW` more multiply-adds than the GEMM on an
/// im2col copy, but writes `C*HP*WP + O*OH*WP` values per image instead of
/// `C*KH*KW*OH*OW` (LeNet's conv1: 6.4k instead of 19.6k). `col` holds the
/// two buffers. Returns `false`, with `dw` untouched, when this CPU has no
/// kernel for it ([`super::gemm::dot_windows`]; [`windows_fit`] checks that
/// first).
#[cfg(feature = "std")]
fn weight_grad_windows(g: &Conv2d, x_img: &[f32], dy_img: &[f32], dw: &mut [f32], col: &mut [f32]) -> bool {
    let (wp, x_len, dy_len) = windows_layout(g);
    let (kh, kw) = g.kernel;
    let oh_n = g.out_h();
    let plane_p = (g.in_h + 2 * g.pad.0) * wp;
    let (xp, rest) = col.split_at_mut(x_len);
    let dyp = &mut rest[..dy_len];
    pad_windows(g, x_img, dy_img, xp, dyp);
    let flen = g.filter_len();
    super::gemm::dot_windows(
        g.out_channels,
        oh_n * wp,
        flen,
        dyp,
        oh_n * wp,
        xp,
        |j| {
            let (cu, v) = (j / kw, j % kw);
            let (c, u) = (cu / kh, cu % kh);
            c * plane_p + u * wp + v
        },
        dw,
        flen,
    )
}

#[cfg(feature = "std")]
super::simd::multiversion! {
    /// The two buffers of [`weight_grad_windows`]: `xp` the image
    /// zero-padded to rows of `WP` (and `KW - 1` zeros after), `dyp` the
    /// output gradient widened with zeros to rows of `WP`; compiled for the
    /// CPU's widest vectors (the rows are short).
    fn pad_windows(g: &Conv2d, x_img: &[f32], dy_img: &[f32], xp: &mut [f32], dyp: &mut [f32]) => pad_windows_body
}

#[cfg(feature = "std")]
#[inline(always)]
fn pad_windows_body<const FMA: bool>(
    g: &Conv2d,
    x_img: &[f32],
    dy_img: &[f32],
    xp: &mut [f32],
    dyp: &mut [f32],
) {
    let (wp, _, _) = windows_layout(g);
    let (h, wd, (ph, pw)) = (g.in_h, g.in_w, g.pad);
    let ow_n = g.out_w();
    let plane_p = (h + 2 * ph) * wp;
    for (x_c, xp_c) in x_img.chunks_exact(h * wd).zip(xp.chunks_exact_mut(plane_p)) {
        xp_c[..ph * wp].fill(0.0);
        xp_c[(ph + h) * wp..].fill(0.0);
        for (x_row, xp_row) in x_c.chunks_exact(wd).zip(xp_c[ph * wp..].chunks_exact_mut(wp)) {
            fill_short(&mut xp_row[..pw]);
            copy_short(&mut xp_row[pw..pw + wd], x_row);
            fill_short(&mut xp_row[pw + wd..]);
        }
    }
    xp[g.in_channels * plane_p..].fill(0.0);
    for (dy_row, dyp_row) in dy_img.chunks_exact(ow_n).zip(dyp.chunks_exact_mut(wp)) {
        copy_short(&mut dyp_row[..ow_n], dy_row);
        fill_short(&mut dyp_row[ow_n..]);
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
        let col = &mut col[..if pointwise { 0 } else { g.col_len() }];
        let windows = !pointwise && windows_fit(g, col.len());
        for i in 0..n {
            let x_img = &x[i * in_len..][..in_len];
            let dy_img = &dy[i * out_len..][..out_len];
            if let Some(db) = db.as_deref_mut() {
                bias_grad(db, dy_img, oplane);
            }
            if !(windows && weight_grad_windows(g, x_img, dy_img, dw, col)) {
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
            if let Some(dx) = dx.as_deref_mut() {
                let dx_img = &mut dx[i * in_len..][..in_len];
                // dcol[CKK, P] = W^T[CKK, O] dY[O, P]; pointwise: dcol is dx.
                let dcol: &mut [f32] = if pointwise { &mut *dx_img } else { &mut *col };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{
        assert_close, assert_close32, assert_grad, finite_diff, functional, to_f64, Rng,
    };
    use proptest::prelude::*;

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
