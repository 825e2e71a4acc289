//! The direct convolution, no heap and no `std`: the forward pass as a
//! register-tiled [`Correlation`], and the backward pass (input gradient as
//! the same correlation with the kernel flipped at stride 1, else a row
//! scatter; weight gradient as one dot product per tap).

use super::super::simd::{madd, multiversion};
use super::super::window::{input_index, valid_range, zip_strided, zip_strided_rev};
use super::super::{reduce, sum};
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use super::x86;
use super::Conv2d;

multiversion! {
    /// [`super::forward`] after its checks, compiled for the CPU's vector width.
    pub(super) fn forward_any(g: &Conv2d, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) => forward_body
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
pub(super) struct Correlation {
    pub(super) inputs: usize,
    pub(super) in_h: usize,
    pub(super) in_w: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
    pub(super) kernel: (usize, usize),
    pub(super) stride: (usize, usize),
    pub(super) pad: (usize, usize),
}

impl Correlation {
    #[inline(always)]
    pub(super) fn run<const FMA: bool>(
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
    pub(super) fn tap_rows(&self, p: usize) -> (usize, usize) {
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

multiversion! {
    /// [`super::backward`] after its checks, compiled for the CPU's vector width.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_any(
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
                #[cfg(all(feature = "std", target_arch = "x86_64"))]
                if input_grad_rows(g, w, dy_img, dx_img) {
                    continue;
                }
                input_grad_correlation(g).run::<FMA>(dx_img, g.in_channels, dy_img, |c, o, u, v| {
                    w[o * flen + (c * kh + (kh - 1 - u)) * kw + (kw - 1 - v)]
                });
            } else {
                scatter_input_grad(g, w, dy_img, dx_img);
            }
        }
    }
}

/// The correlation whose output is the input gradient of a stride-1 conv
/// with `P < K`: `dx[c, i, j] = sum_{o, u, v} w[o, c, u, v] dy[o, i + PH - u,
/// j + PW - v]`, a stride-1 correlation of `dy`, padded by `K - 1 - P`,
/// with the kernel flipped and its in/out channels swapped.
fn input_grad_correlation(g: &Conv2d) -> Correlation {
    let (kh, kw) = g.kernel;
    Correlation {
        inputs: g.out_channels,
        in_h: g.out_h(),
        in_w: g.out_w(),
        out_h: g.in_h,
        out_w: g.in_w,
        kernel: g.kernel,
        stride: (1, 1),
        pad: (kh - 1 - g.pad.0, kw - 1 - g.pad.1),
    }
}

/// `dx = dL/dx` for `n` images through [`input_grad_rows`] where that beats
/// im2col's GEMM and col2im, or `false` (nothing done): an AVX-512 CPU, a
/// stride-1 conv with `P < K`, and input rows of 8 to 16 columns, which the
/// row kernels take in tiles of 3 rows, one vector each. On a Zen 5,
/// LeNet's conv2 (16 planes of 10x10 back to 6 of 14x14) took 3.3 us an
/// image against 5.5 for the GEMM (4.2) and col2im (1.3). Narrower rows
/// take the flattened tiles, which lost to the GEMM: with them,
/// AlexNetSmall's 7x7 convs cost 8% of its training.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(super) fn input_grad_narrow(g: &Conv2d, n: usize, w: &[f32], dy: &[f32], dx: &mut [f32]) -> bool {
    use super::super::simd::{level, Level};
    let (kh, kw) = g.kernel;
    if level() != Level::Avx512
        || g.stride != (1, 1)
        || g.pad.0 >= kh
        || g.pad.1 >= kw
        || !(8..=16).contains(&g.in_w)
    {
        return false;
    }
    let (in_len, out_len) = (g.input_len(), g.output_len());
    for (dx_img, dy_img) in dx.chunks_exact_mut(in_len).zip(dy.chunks_exact(out_len)).take(n) {
        dx_img.fill(0.0);
        if !input_grad_rows(g, w, dy_img, dx_img) {
            return false;
        }
    }
    true
}

/// `dx_img += dL/dx` for one image of a stride-1 conv with `P < K`, through
/// the row kernels of `x86` on [`input_grad_correlation`]; `false` (nothing
/// done) without AVX2 + FMA.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(super) fn input_grad_rows(g: &Conv2d, w: &[f32], dy_img: &[f32], dx_img: &mut [f32]) -> bool {
    let (kh, kw) = g.kernel;
    debug_assert!(g.stride == (1, 1) && g.pad.0 < kh && g.pad.1 < kw);
    // w[o, c, KH - 1 - u, KW - 1 - v] for output plane c, input plane o.
    let taps = x86::Taps {
        base: ((kh - 1) * kw + kw - 1) as isize,
        k_step: (kh * kw) as isize,
        c_step: g.filter_len() as isize,
        u_step: -(kw as isize),
        v_step: -1,
    };
    x86::correlate(&input_grad_correlation(g), dx_img, g.in_channels, dy_img, w, taps)
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
