//! im2col and its adjoint col2im for one image (`std` only): the
//! `[C*KH*KW, OH*OW]` matrix whose product with the weights is the conv,
//! and the sum of such a matrix back onto the input it reads.

use super::super::simd::multiversion;
use super::super::window::{input_index, valid_range, zip_strided, zip_strided_rev};
#[cfg(target_arch = "x86_64")]
use super::x86;
use super::Conv2d;

multiversion! {
    /// im2col of one image: `col[(c*KH + u)*KW + v][p*OW + q]` is the input
    /// element tap `(c, u, v)` of output `(p, q)` reads, or 0 in the padding.
    ///
    /// Rows are short (an output row), so they are copied with [`copy_short`]
    /// rather than `memcpy` calls, whose fixed cost dominated here; compiled
    /// for the CPU's widest vectors.
    pub(super) fn im2col(g: &Conv2d, x_img: &[f32], col: &mut [f32]) => im2col_body
}

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
#[inline(always)]
pub(super) fn copy_short(dst: &mut [f32], src: &[f32]) {
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
#[inline(always)]
pub(super) fn fill_short(dst: &mut [f32]) {
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
#[inline]
pub(super) fn col2im(g: &Conv2d, col: &[f32], dx_img: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::col2im(g, col, dx_img) {
        return;
    }
    col2im_any(g, col, dx_img);
}

multiversion! {
    /// [`col2im`] compiled for the CPU's widest vectors.
    pub(super) fn col2im_any(g: &Conv2d, col: &[f32], dx_img: &mut [f32]) => col2im_body
}

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
