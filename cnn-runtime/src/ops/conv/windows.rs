//! The weight gradient of a unit-stride conv without im2col (`std` only):
//! the image zero-padded and the output gradient widened, both into `col`,
//! then one inner product per tap over a shifted window of the padded image.

use super::super::simd::multiversion;
use super::im2col::{copy_short, fill_short};
use super::Conv2d;

/// The padded row length and the lengths of the padded image and of the
/// widened output gradient that [`weight_grad_windows`] lays out in `col`.
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
#[inline]
pub(super) fn windows_fit(g: &Conv2d, col_len: usize) -> bool {
    let (_, x_len, dy_len) = windows_layout(g);
    super::super::gemm::dot_windows_available()
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
/// kernel for it ([`super::super::gemm::dot_windows`]; [`windows_fit`]
/// checks that first).
pub(super) fn weight_grad_windows(
    g: &Conv2d,
    x_img: &[f32],
    dy_img: &[f32],
    dw: &mut [f32],
    col: &mut [f32],
) -> bool {
    let (wp, x_len, dy_len) = windows_layout(g);
    let (kh, kw) = g.kernel;
    let oh_n = g.out_h();
    let plane_p = (g.in_h + 2 * g.pad.0) * wp;
    let (xp, rest) = col.split_at_mut(x_len);
    let dyp = &mut rest[..dy_len];
    pad_windows(g, x_img, dy_img, xp, dyp);
    let flen = g.filter_len();
    super::super::gemm::dot_windows(
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

multiversion! {
    /// The two buffers of [`weight_grad_windows`]: `xp` the image
    /// zero-padded to rows of `WP` (and `KW - 1` zeros after), `dyp` the
    /// output gradient widened with zeros to rows of `WP`; compiled for the
    /// CPU's widest vectors (the rows are short).
    fn pad_windows(g: &Conv2d, x_img: &[f32], dy_img: &[f32], xp: &mut [f32], dyp: &mut [f32]) => pad_windows_body
}

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
