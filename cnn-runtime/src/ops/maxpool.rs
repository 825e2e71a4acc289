//! 2-D max pooling, PyTorch `nn.MaxPool2d` (`dilation = 1`,
//! `ceil_mode = False`):
//!
//! `y[i, c, p, q] = max_{u < KH, v < KW} x[i, c, p*SH + u - PH, q*SW + v - PW]`
//!
//! with the padding reading `-inf`. Layout NCHW row-major, `x` is
//! `[N, C, H, W]`, `y` is `[N, C, OH, OW]`, `OH = (H + 2 PH - KH) / SH + 1`.
//! NaN propagates, as in PyTorch.
//!
//! Backward routes each `dy` to the arg-max of its window, recomputed from
//! `x`: the first maximum in row-major window order wins ties (PyTorch's CPU
//! kernel), and windows that overlap add their contributions. PyTorch
//! requires `pad <= kernel / 2`; a window lying entirely in the padding
//! (only possible beyond that) gives `-inf` and passes no gradient.

use super::window::{check_geometry, input_index, valid_range, zip_strided, Pool2d};

#[inline(always)]
#[track_caller]
fn check(p: &Pool2d, n: usize, x: usize, y: usize, y_name: &str) {
    check_geometry("maxpool", (p.in_h, p.in_w), p.kernel, p.stride, p.pad);
    assert_eq!(
        x,
        n * p.input_len(),
        "maxpool: x has {x} elements, expected n * C * H * W = {n} * {}",
        p.input_len()
    );
    assert_eq!(
        y,
        n * p.output_len(),
        "maxpool: {y_name} has {y} elements, expected n * C * OH * OW = {n} * {}",
        p.output_len()
    );
}

/// Whether `v` replaces the running maximum `m`: if larger or NaN, PyTorch's
/// `val > maxval || isnan(val)` (so the first maximum wins ties and NaN
/// propagates).
#[inline(always)]
fn takes_over(v: f32, m: f32) -> bool {
    v > m || v.is_nan()
}

/// Max pooling of `n` images. Allocates nothing.
///
/// # Panics
///
/// If `x.len() != n * p.input_len()` or `y.len() != n * p.output_len()`.
#[inline]
pub fn forward(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) {
    check(p, n, x.len(), y.len(), "y");
    let (h, wd) = (p.in_h, p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.pad;
    let (plane, oplane) = (h * wd, oh_n * ow_n);
    for plane_idx in 0..n * p.channels {
        let x_c = &x[plane_idx * plane..][..plane];
        let y_c = &mut y[plane_idx * oplane..][..oplane];
        y_c.fill(f32::NEG_INFINITY);
        // Tap by tap over whole rows, like conv: the padding is never read,
        // which is the same as reading -inf there.
        for ki in 0..kh {
            let (oh_lo, oh_hi) = valid_range(ki, ph, sh, h, oh_n);
            for kj in 0..kw {
                let (ow_lo, ow_hi) = valid_range(kj, pw, sw, wd, ow_n);
                if ow_lo == ow_hi {
                    continue;
                }
                let start = input_index(ow_lo, kj, pw, sw);
                for oh in oh_lo..oh_hi {
                    let ih = input_index(oh, ki, ph, sh);
                    let x_row = &x_c[ih * wd..][..wd];
                    let y_row = &mut y_c[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
                    zip_strided(y_row, x_row, start, sw, |m, v| {
                        if takes_over(v, *m) {
                            *m = v;
                        }
                    });
                }
            }
        }
    }
}

/// Backward of max pooling for `n` images: `dx` is overwritten with
/// `dL/dx`, each `dy` going to the first arg-max of its window in `x`.
/// Allocates nothing.
///
/// # Panics
///
/// If `x` or `dx` does not have `n * p.input_len()` elements, or `dy`
/// `n * p.output_len()`.
#[inline]
pub fn backward(p: &Pool2d, n: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    check(p, n, x.len(), dy.len(), "dy");
    assert_eq!(
        dx.len(),
        x.len(),
        "maxpool: dx has {} elements, expected n * C * H * W = {}",
        dx.len(),
        x.len()
    );
    let (h, wd) = (p.in_h, p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.pad;
    let (plane, oplane) = (h * wd, oh_n * ow_n);
    dx.fill(0.0);
    for plane_idx in 0..n * p.channels {
        let x_c = &x[plane_idx * plane..][..plane];
        let dx_c = &mut dx[plane_idx * plane..][..plane];
        let dy_c = &dy[plane_idx * oplane..][..oplane];
        for oh in 0..oh_n {
            // Window rows and columns clipped to the real input.
            let ih_lo = (oh * sh).saturating_sub(ph);
            let ih_hi = (oh * sh + kh).saturating_sub(ph).min(h);
            for ow in 0..ow_n {
                let iw_lo = (ow * sw).saturating_sub(pw);
                let iw_hi = (ow * sw + kw).saturating_sub(pw).min(wd);
                let mut best = f32::NEG_INFINITY;
                let mut at = None;
                for ih in ih_lo..ih_hi {
                    for iw in iw_lo..iw_hi {
                        let v = x_c[ih * wd + iw];
                        // `at.is_none()` lets an all -inf window still pick
                        // its first element, as PyTorch does.
                        if takes_over(v, best) || at.is_none() {
                            best = v;
                            at = Some(ih * wd + iw);
                        }
                    }
                }
                if let Some(at) = at {
                    dx_c[at] += dy_c[oh * ow_n + ow];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    /// Maximum over the window, padding as -inf, in f64; also returns the
    /// first arg-max (row-major) of every window as a flat `x` index.
    fn reference(p: &Pool2d, n: usize, x: &[f64]) -> (Vec<f64>, Vec<Option<usize>>) {
        let (c_n, h, wd) = (p.channels, p.in_h, p.in_w);
        let (oh_n, ow_n) = (p.out_h(), p.out_w());
        let mut y = Vec::new();
        let mut arg = Vec::new();
        for i in 0..n {
            for c in 0..c_n {
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let mut best = f64::NEG_INFINITY;
                        let mut at = None;
                        for u in 0..p.kernel.0 {
                            for v in 0..p.kernel.1 {
                                let ih = (oh * p.stride.0 + u) as isize - p.pad.0 as isize;
                                let iw = (ow * p.stride.1 + v) as isize - p.pad.1 as isize;
                                if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                    continue;
                                }
                                let idx = ((i * c_n + c) * h + ih as usize) * wd + iw as usize;
                                if at.is_none() || x[idx] > best {
                                    best = x[idx];
                                    at = Some(idx);
                                }
                            }
                        }
                        y.push(best);
                        arg.push(at);
                    }
                }
            }
        }
        (y, arg)
    }

    fn reference_backward(p: &Pool2d, n: usize, x: &[f64], dy: &[f64]) -> Vec<f64> {
        let (_, arg) = reference(p, n, x);
        let mut dx = vec![0.0; x.len()];
        for (at, d) in arg.iter().zip(dy) {
            if let Some(at) = at {
                dx[*at] += d;
            }
        }
        dx
    }

    /// Random pooling geometry within PyTorch's rule `pad <= kernel / 2`.
    fn geometry() -> impl Strategy<Value = (Pool2d, usize)> {
        (
            (1usize..=3, 1usize..=4, 1usize..=4),
            (1usize..=3, 1usize..=3, 0usize..=2, 0usize..=2),
            (0usize..=6, 0usize..=6, 1usize..=3),
        )
            .prop_map(|((c, kh, kw), (sh, sw, ph, pw), (eh, ew, n))| {
                let pad = (ph.min(kh / 2), pw.min(kw / 2));
                let p = Pool2d {
                    channels: c,
                    in_h: (kh + eh).saturating_sub(2 * pad.0).max(1),
                    in_w: (kw + ew).saturating_sub(2 * pad.1).max(1),
                    kernel: (kh, kw),
                    stride: (sh, sw),
                    pad,
                };
                (p, n)
            })
    }

    fn d2l_pool() -> Pool2d {
        Pool2d {
            channels: 1,
            in_h: 3,
            in_w: 3,
            kernel: (2, 2),
            stride: (1, 1),
            pad: (0, 0),
        }
    }

    #[test]
    fn d2l_max_pool() {
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut y = [0.0; 4];
        forward(&d2l_pool(), 1, &x, &mut y);
        assert_eq!(y, [4.0, 5.0, 7.0, 8.0]);
        let mut dx = [f32::NAN; 9];
        backward(&d2l_pool(), 1, &x, &[1.0, 2.0, 3.0, 4.0], &mut dx);
        assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0]);
    }

    #[test]
    fn ties_go_to_the_first_maximum() {
        let x = [1.0f32; 9];
        let mut dx = [0.0; 9];
        backward(&d2l_pool(), 1, &x, &[1.0, 2.0, 3.0, 4.0], &mut dx);
        // Window (p, q) starts at (p, q): its first element takes it all.
        assert_eq!(dx, [1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
        // Overlapping windows that share an arg-max add up.
        let x = [0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0f32];
        backward(&d2l_pool(), 1, &x, &[1.0, 2.0, 3.0, 4.0], &mut dx);
        assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn padding_acts_as_negative_infinity() {
        let p = Pool2d {
            channels: 1,
            in_h: 2,
            in_w: 2,
            kernel: (2, 2),
            stride: (1, 1),
            pad: (1, 1),
        };
        let x = [-4.0, -3.0, -2.0, -1.0f32];
        let mut y = [0.0; 9];
        forward(&p, 1, &x, &mut y);
        #[rustfmt::skip]
        assert_eq!(y, [-4.0, -3.0, -3.0,
                       -2.0, -1.0, -1.0,
                       -2.0, -1.0, -1.0]);
    }

    #[test]
    fn nan_propagates() {
        let x = [0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0, 7.0, 8.0];
        let mut y = [0.0; 4];
        forward(&d2l_pool(), 1, &x, &mut y);
        assert!(y.iter().all(|v| v.is_nan()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn forward_and_backward_match_reference((p, n) in geometry(), seed: u64,
                                                ties: bool) {
            let mut rng = Rng::new(seed);
            // With ties: values from a tiny set, so windows often tie.
            let x: Vec<f32> = if ties {
                (0..n * p.input_len()).map(|_| rng.below(3) as f32).collect()
            } else {
                rng.vec(n * p.input_len())
            };
            let dy = rng.vec(n * p.output_len());
            let x64 = to_f64(&x);
            let (expected, _) = reference(&p, n, &x64);
            let mut y = vec![f32::NAN; n * p.output_len()];
            forward(&p, n, &x, &mut y);
            assert_close("y", &y, &expected, 0.0);
            let mut dx = vec![f32::NAN; x.len()];
            backward(&p, n, &x, &dy, &mut dx);
            assert_close("dx", &dx, &reference_backward(&p, n, &x64, &to_f64(&dy)), 1e-6);
        }

        #[test]
        fn backward_matches_finite_differences((p, n) in geometry(), seed: u64) {
            let mut rng = Rng::new(seed);
            // Distinct values 0.01 apart: no ties, and a 1e-3 step never
            // changes an arg-max.
            let x = rng.distinct(n * p.input_len());
            let r = rng.vec(n * p.output_len());
            let mut dx = vec![0.0; x.len()];
            backward(&p, n, &x, &r, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-3, &mut rng, 32, |x| {
                functional(&r, &reference(&p, n, x).0)
            });
            assert_grad("dx", &dx, &fd, 1e-5);
        }
    }
}
