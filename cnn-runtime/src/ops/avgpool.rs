//! 2-D average pooling, PyTorch `nn.AvgPool2d` with `ceil_mode = False`,
//! `count_include_pad = True`:
//!
//! `y[i, c, p, q] = (1 / (KH*KW)) sum_{u < KH, v < KW} x[i, c, p*SH + u - PH, q*SW + v - PW]`
//!
//! with the padding reading zero. Layout NCHW row-major, `x` is
//! `[N, C, H, W]`, `y` is `[N, C, OH, OW]`, `OH = (H + 2 PH - KH) / SH + 1`.
//!
//! The divisor is always `KH * KW`: PyTorch clips each window to the padded
//! input `[-PH, H + PH)` before counting, but with `ceil_mode = False` no
//! window reaches past it, so the clipped count is the full kernel.
//!
//! Backward: `dx[i, c, h, w] = sum over windows containing (h, w) of
//! dy / (KH*KW)`, overwritten.

use super::simd::multiversion;
use super::window::{
    check_geometry, halving_map, input_index, valid_range, zip_strided, zip_strided_rev, Pool2d,
};

multiversion! {
    /// [`forward`] of a [`Pool2d::is_halving`] window, every plane of `x`
    /// (same sums in the same order as the general path).
    fn halving_forward(p: &Pool2d, x: &[f32], y: &mut [f32]) => halving_forward_body
}

#[inline(always)]
fn halving_forward_body<const FMA: bool>(p: &Pool2d, x: &[f32], y: &mut [f32]) {
    halving_map(p, x, y, |t, b| (((t[0] + t[1]) + b[0]) + b[1]) / 4.0);
}

multiversion! {
    /// [`backward`] of a [`Pool2d::is_halving`] window, every plane of `dy`.
    fn halving_backward(p: &Pool2d, dy: &[f32], dx: &mut [f32]) => halving_backward_body
}

#[inline(always)]
fn halving_backward_body<const FMA: bool>(p: &Pool2d, dy: &[f32], dx: &mut [f32]) {
    let (wd, plane) = (p.in_w, p.in_h * p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let oplane = oh_n * ow_n;
    for (dx_c, dy_c) in dx.chunks_exact_mut(plane).zip(dy.chunks_exact(oplane)) {
        if 2 * ow_n != wd || 2 * oh_n != p.in_h {
            // Odd sizes: the last row or column gets no gradient.
            dx_c.fill(0.0);
        }
        for (oh, dy_row) in dy_c.chunks_exact(ow_n).enumerate() {
            let (top, bottom) = dx_c[2 * oh * wd..].split_at_mut(wd);
            // Each gradient twice along the row (`j / 2` vectorizes as an
            // interleave) and the same into the row below, in one loop (a
            // copy of the row after it was a `memcpy` call per row).
            for (j, (t, b)) in top[..2 * ow_n]
                .iter_mut()
                .zip(&mut bottom[..2 * ow_n])
                .enumerate()
            {
                let g = dy_row[j / 2] * 0.25;
                *t = g;
                *b = g;
            }
        }
    }
}

#[inline(always)]
#[track_caller]
fn check(p: &Pool2d, n: usize, x: usize, x_name: &str, y: usize, y_name: &str) {
    check_geometry("avgpool", (p.in_h, p.in_w), p.kernel, p.stride, p.pad);
    assert_eq!(
        x,
        n * p.input_len(),
        "avgpool: {x_name} has {x} elements, expected n * C * H * W = {n} * {}",
        p.input_len()
    );
    assert_eq!(
        y,
        n * p.output_len(),
        "avgpool: {y_name} has {y} elements, expected n * C * OH * OW = {n} * {}",
        p.output_len()
    );
}

/// Average pooling of `n` images. Allocates nothing.
///
/// # Panics
///
/// If `x.len() != n * p.input_len()` or `y.len() != n * p.output_len()`.
#[inline]
pub fn forward(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) {
    check(p, n, x.len(), "x", y.len(), "y");
    let (h, wd) = (p.in_h, p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.pad;
    let (plane, oplane) = (h * wd, oh_n * ow_n);
    let divisor = (kh * kw) as f32;
    if p.is_halving() {
        return halving_forward(p, x, y);
    }
    for plane_idx in 0..n * p.channels {
        let x_c = &x[plane_idx * plane..][..plane];
        let y_c = &mut y[plane_idx * oplane..][..oplane];
        y_c.fill(0.0);
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
                    zip_strided(y_row, x_row, start, sw, |s, v| *s += v);
                }
            }
        }
        // Sum first, then divide, as PyTorch does.
        for v in y_c.iter_mut() {
            *v /= divisor;
        }
    }
}

/// Backward of average pooling for `n` images: `dx` is overwritten with
/// `dL/dx`, every `dy` spread evenly over its window (padding included).
/// Allocates nothing.
///
/// # Panics
///
/// If `dy.len() != n * p.output_len()` or `dx.len() != n * p.input_len()`.
#[inline]
pub fn backward(p: &Pool2d, n: usize, dy: &[f32], dx: &mut [f32]) {
    check(p, n, dx.len(), "dx", dy.len(), "dy");
    let (h, wd) = (p.in_h, p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.pad;
    let (plane, oplane) = (h * wd, oh_n * ow_n);
    let divisor = (kh * kw) as f32;
    if p.is_halving() {
        return halving_backward(p, dy, dx);
    }
    for plane_idx in 0..n * p.channels {
        let dx_c = &mut dx[plane_idx * plane..][..plane];
        let dy_c = &dy[plane_idx * oplane..][..oplane];
        dx_c.fill(0.0);
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
                    let dx_row = &mut dx_c[ih * wd..][..wd];
                    let dy_row = &dy_c[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
                    zip_strided_rev(dx_row, start, sw, dy_row, |d, g| *d += g / divisor);
                }
            }
        }
    }
}

pub mod int8 {
    //! int8 average pooling, TFLite's AVERAGE_POOL_2D, bit for bit as
    //! TensorFlow Lite Micro's reference kernel
    //! (`reference_integer_ops::AveragePool`) computes it:
    //!
    //! `s = sum of the window's taps inside the input`, `k = their count`,
    //! `y = clamp((s + k/2) / k)` for `s > 0`, else `clamp((s - k/2) / k)`,
    //!
    //! with integer division truncating toward zero: the mean rounded to
    //! nearest, ties away from zero. The sum is of the raw int8 values: the
    //! output shares the input's scale and zero point (TFLite requires it), and
    //! the mean of `q` is the `q` of the mean.
    //!
    //! Layout and geometry as the float [`forward`](super::forward) (`x`
    //! `[N, C, H, W]`, `y` `[N, C, OH, OW]`, int8). Unlike it, padding is
    //! *excluded* from the count (TFLite's rule, PyTorch's
    //! `count_include_pad = False`); without padding the two agree. `clamp` is
    //! the fused activation's range ([`Clamp::FULL`] for none).

    use super::{check, Pool2d};
    use crate::ops::window::for_each_window;
    use crate::quant::Clamp;

    /// int8 average pooling of `n` images. Direct loops, no heap, no `std`.
    ///
    /// # Panics
    ///
    /// If `x.len() != n * p.input_len()` or `y.len() != n * p.output_len()`,
    /// or if a window lies entirely in the padding (TFLM fails there too).
    pub fn forward(p: &Pool2d, n: usize, x: &[i8], clamp: Clamp, y: &mut [i8]) {
        check(p, n, x.len(), "x", y.len(), "y");
        for_each_window(p, x, y, |plane, rows, cols, out| {
            let count = (rows.len() * cols.len()) as i32;
            assert!(count > 0, "avgpool: a window lies entirely in the padding");
            let sum: i32 = rows
                .flat_map(|r| &plane[r * p.in_w..][cols.clone()])
                .map(|&v| i32::from(v))
                .sum();
            let mean = if sum > 0 {
                (sum + count / 2) / count
            } else {
                (sum - count / 2) / count
            };
            *out = clamp.apply(mean);
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rounds_half_away_from_zero() {
            let p = Pool2d {
                channels: 1,
                in_h: 2,
                in_w: 8,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            // Windows (columns 2q, 2q + 1 of both rows) summing to
            // 2 (0.5), -2 (-0.5), 6 (1.5), -6 (-1.5).
            #[rustfmt::skip]
            let x: [i8; 16] = [
                1, 0, -1, 0, 3, 0, -3, 0,
                1, 0, -1, 0, 3, 0, -3, 0,
            ];
            let mut y = [0i8; 4];
            forward(&p, 1, &x, Clamp::FULL, &mut y);
            assert_eq!(y, [1, -1, 2, -2]);
            // Just below ties: 5 / 4 = 1.25, -5 / 4 = -1.25.
            let x: [i8; 8] = [2, 3, -2, -3, 0, 0, 0, 0];
            let p = Pool2d { in_w: 4, ..p };
            let mut y = [0i8; 2];
            forward(&p, 1, &x, Clamp::FULL, &mut y);
            assert_eq!(y, [1, -1]);
        }

        #[test]
        fn padding_is_not_counted() {
            let p = Pool2d {
                channels: 1,
                in_h: 2,
                in_w: 2,
                kernel: (2, 2),
                stride: (1, 1),
                pad: (1, 1),
            };
            let x: [i8; 4] = [-128, 100, 7, 127];
            let mut y = [0i8; 9];
            forward(&p, 1, &x, Clamp::FULL, &mut y);
            // Corners see one tap, edges two, the centre four.
            // (-128 + 100 + 7 + 127) / 4 = 26.5 -> 27.
            assert_eq!(y, [-128, -14, 100, -61, 27, 114, 7, 67, 127]);
            forward(&p, 1, &x, Clamp { min: -10, max: 20 }, &mut y);
            assert_eq!(y, [-10, -10, 20, -10, 20, 20, 7, 20, 20]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    /// PyTorch's `avg_pool2d` loop: window clipped to the padded input for
    /// the divisor, then to the real input for the sum, in f64.
    fn reference(p: &Pool2d, n: usize, x: &[f64]) -> Vec<f64> {
        let (c_n, h, wd) = (p.channels as isize, p.in_h as isize, p.in_w as isize);
        let (kh, kw) = (p.kernel.0 as isize, p.kernel.1 as isize);
        let (sh, sw) = (p.stride.0 as isize, p.stride.1 as isize);
        let (ph, pw) = (p.pad.0 as isize, p.pad.1 as isize);
        let mut y = Vec::new();
        for i in 0..n as isize {
            for c in 0..c_n {
                for oh in 0..p.out_h() as isize {
                    for ow in 0..p.out_w() as isize {
                        let (h0, w0) = (oh * sh - ph, ow * sw - pw);
                        let (h1, w1) = ((h0 + kh).min(h + ph), (w0 + kw).min(wd + pw));
                        let count = ((h1 - h0) * (w1 - w0)) as f64;
                        let mut acc = 0.0;
                        for ih in h0.max(0)..h1.min(h) {
                            for iw in w0.max(0)..w1.min(wd) {
                                acc += x[(((i * c_n + c) * h + ih) * wd + iw) as usize];
                            }
                        }
                        y.push(acc / count);
                    }
                }
            }
        }
        y
    }

    /// The adjoint of [`reference`], loop for loop.
    fn reference_backward(p: &Pool2d, n: usize, dy: &[f64]) -> Vec<f64> {
        let (c_n, h, wd) = (p.channels, p.in_h, p.in_w);
        let (oh_n, ow_n) = (p.out_h(), p.out_w());
        let mut dx = vec![0.0; n * p.input_len()];
        let count = (p.kernel.0 * p.kernel.1) as f64;
        for i in 0..n {
            for c in 0..c_n {
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let d = dy[((i * c_n + c) * oh_n + oh) * ow_n + ow];
                        for u in 0..p.kernel.0 {
                            for v in 0..p.kernel.1 {
                                let ih = (oh * p.stride.0 + u) as isize - p.pad.0 as isize;
                                let iw = (ow * p.stride.1 + v) as isize - p.pad.1 as isize;
                                if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                    continue;
                                }
                                let idx = ((i * c_n + c) * h + ih as usize) * wd + iw as usize;
                                dx[idx] += d / count;
                            }
                        }
                    }
                }
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

    #[test]
    fn d2l_avg_pool() {
        let p = Pool2d {
            channels: 1,
            in_h: 3,
            in_w: 3,
            kernel: (2, 2),
            stride: (1, 1),
            pad: (0, 0),
        };
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut y = [0.0; 4];
        forward(&p, 1, &x, &mut y);
        assert_eq!(y, [2.0, 3.0, 5.0, 6.0]);
        let mut dx = [f32::NAN; 9];
        backward(&p, 1, &[4.0; 4], &mut dx);
        assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn padding_counts_in_the_divisor() {
        // count_include_pad = True: a corner window of a padded 2x2 input
        // sees one real element and three zeros.
        let p = Pool2d {
            channels: 1,
            in_h: 2,
            in_w: 2,
            kernel: (2, 2),
            stride: (2, 2),
            pad: (1, 1),
        };
        let x = [4.0, 8.0, 12.0, 16.0];
        let mut y = [0.0; 4];
        forward(&p, 1, &x, &mut y);
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
    }

    /// Forward and backward of random data against the f64 definition.
    fn check_against_reference(p: &Pool2d, n: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n * p.input_len());
        let dy = rng.vec(n * p.output_len());
        let mut y = vec![f32::NAN; n * p.output_len()];
        forward(p, n, &x, &mut y);
        assert_close("y", &y, &reference(p, n, &to_f64(&x)), 1e-6);
        let mut dx = vec![f32::NAN; x.len()];
        backward(p, n, &dy, &mut dx);
        assert_close("dx", &dx, &reference_backward(p, n, &to_f64(&dy)), 1e-6);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn forward_and_backward_match_reference((p, n) in geometry(), seed: u64) {
            check_against_reference(&p, n, seed);
        }

        /// The straight-line 2x2 stride-2 path, odd sizes included.
        #[test]
        fn halving_matches_reference(c in 1usize..=3, h in 2usize..=9, w in 2usize..=9, n in 1usize..=3,
                                     seed: u64) {
            let p = Pool2d { channels: c, in_h: h, in_w: w, kernel: (2, 2), stride: (2, 2), pad: (0, 0) };
            check_against_reference(&p, n, seed);
        }

        #[test]
        fn backward_matches_finite_differences((p, n) in geometry(), seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * p.input_len());
            let r = rng.vec(n * p.output_len());
            let mut dx = vec![0.0; x.len()];
            backward(&p, n, &r, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-3, &mut rng, 32, |x| {
                functional(&r, &reference(&p, n, x))
            });
            assert_grad("dx", &dx, &fd, 1e-5);
        }
    }
}
