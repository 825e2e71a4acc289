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

use super::simd::multiversion;
use super::window::{check_geometry, halving_map, Pool2d};

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

/// `v` if it [`takes_over`] `m`, else `m`: one step of the running maximum.
#[inline(always)]
fn pick(v: f32, m: f32) -> f32 {
    if takes_over(v, m) {
        v
    } else {
        m
    }
}

multiversion! {
    /// [`forward`] of a [`Pool2d::is_halving`] window, every plane of `x`:
    /// straight-line and branch-free, same results as the general path.
    fn halving_forward(p: &Pool2d, x: &[f32], y: &mut [f32]) => halving_forward_body
}

#[inline(always)]
fn halving_forward_body<const FMA: bool>(p: &Pool2d, x: &[f32], y: &mut [f32]) {
    // Starting from the first element equals starting from -inf.
    halving_map(p, x, y, |t, b| pick(b[1], pick(b[0], pick(t[1], t[0]))));
}

multiversion! {
    /// [`backward`] of a [`Pool2d::is_halving`] window, every plane: windows do not
    /// overlap, so each `dx` element is written once (no clearing pass
    /// unless an odd size leaves a row or column outside every window).
    fn halving_backward(p: &Pool2d, x: &[f32], dy: &[f32], dx: &mut [f32]) => halving_backward_body
}

#[inline(always)]
fn halving_backward_body<const FMA: bool>(p: &Pool2d, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (wd, plane) = (p.in_w, p.in_h * p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let planes = x.chunks_exact(plane).zip(dx.chunks_exact_mut(plane));
    for ((x_c, dx_c), dy_c) in planes.zip(dy.chunks_exact(oh_n * ow_n)) {
        if 2 * ow_n != wd || 2 * oh_n != p.in_h {
            dx_c.fill(0.0);
        }
        for (oh, dy_row) in dy_c.chunks_exact(ow_n).enumerate() {
            let top = &x_c[2 * oh * wd..][..2 * ow_n];
            let bottom = &x_c[(2 * oh + 1) * wd..][..2 * ow_n];
            let (dtop, dbottom) = dx_c[2 * oh * wd..].split_at_mut(wd);
            let (dtop, dbottom) = (&mut dtop[..2 * ow_n], &mut dbottom[..2 * ow_n]);
            // Blocks of LANES windows through fixed-size arrays (so LLVM
            // vectorizes the de- and re-interleaving), then the rest.
            let full = ow_n / LANES * LANES;
            for q in (0..full).step_by(LANES) {
                let at = 2 * q;
                let t: &[f32; 2 * LANES] = top[at..at + 2 * LANES].try_into().expect("block");
                let b: &[f32; 2 * LANES] = bottom[at..at + 2 * LANES].try_into().expect("block");
                let g: &[f32; LANES] = dy_row[q..q + LANES].try_into().expect("block");
                let (mut out_t, mut out_b) = ([0.0f32; 2 * LANES], [0.0f32; 2 * LANES]);
                for l in 0..LANES {
                    let d = route(t[2 * l], t[2 * l + 1], b[2 * l], b[2 * l + 1], g[l]);
                    (out_t[2 * l], out_t[2 * l + 1], out_b[2 * l], out_b[2 * l + 1]) = d;
                }
                dtop[at..at + 2 * LANES].copy_from_slice(&out_t);
                dbottom[at..at + 2 * LANES].copy_from_slice(&out_b);
            }
            for q in full..ow_n {
                let d = route(
                    top[2 * q],
                    top[2 * q + 1],
                    bottom[2 * q],
                    bottom[2 * q + 1],
                    dy_row[q],
                );
                (dtop[2 * q], dtop[2 * q + 1], dbottom[2 * q], dbottom[2 * q + 1]) = d;
            }
        }
    }
}

/// Windows per block in [`halving_backward`].
const LANES: usize = 8;

/// The gradient `g` of one 2x2 window `(t0, t1; b0, b1)`, sent to its first
/// arg-max in row-major order (as the general path) and zero elsewhere,
/// with lane masks rather than an index so that LLVM vectorizes it.
#[inline(always)]
fn route(t0: f32, t1: f32, b0: f32, b1: f32, g: f32) -> (f32, f32, f32, f32) {
    let take1 = takes_over(t1, t0);
    let m1 = if take1 { t1 } else { t0 };
    let take2 = takes_over(b0, m1);
    let m2 = if take2 { b0 } else { m1 };
    let take3 = takes_over(b1, m2);
    let later2 = take2 | take3;
    (
        if take1 | later2 { 0.0 } else { g },
        if take1 & !later2 { g } else { 0.0 },
        if take2 & !take3 { g } else { 0.0 },
        if take3 { g } else { 0.0 },
    )
}

/// Max pooling of `n` images. Allocates nothing.
///
/// # Panics
///
/// If `x.len() != n * p.input_len()` or `y.len() != n * p.output_len()`.
#[inline]
pub fn forward(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) {
    check(p, n, x.len(), y.len(), "y");
    if p.is_halving() {
        halving_forward(p, x, y);
        return;
    }
    general_forward(p, n, x, y);
}

multiversion! {
    /// [`forward`] for any window, after the checks.
    fn general_forward(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) => general_forward_body
}

#[inline(always)]
fn general_forward_body<const FMA: bool>(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) {
    let (h, wd) = (p.in_h, p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.pad;
    let planes = x
        .chunks_exact(h * wd)
        .zip(y.chunks_exact_mut(oh_n * ow_n))
        .take(n * p.channels);
    if wd + 2 * pw > SEPARABLE_MAX_W {
        for (x_c, y_c) in planes {
            for (oh, y_row) in y_c.chunks_exact_mut(ow_n).enumerate() {
                for (block, y_blk) in y_row.chunks_mut(WINDOWS).enumerate() {
                    let (best, _) = window_max(p, x_c, oh, block * WINDOWS);
                    y_blk.copy_from_slice(&best[..y_blk.len()]);
                }
            }
        }
        return;
    }
    // Separable: the maximum of each column over the window's rows (whole
    // rows at a time, which vectorizes), then of each window's columns. The
    // padding reads -inf, which never takes over. Same values as the
    // row-major scan (the maximum, or NaN if there is one); among equal
    // maxima (0 and -0) it may keep another one.
    let mut cols = [f32::NEG_INFINITY; SEPARABLE_MAX_W];
    let cols = &mut cols[..wd + 2 * pw];
    for (x_c, y_c) in planes {
        for (oh, y_row) in y_c.chunks_exact_mut(ow_n).enumerate() {
            let first = (oh * sh).saturating_sub(ph);
            let last = (oh * sh + kh).saturating_sub(ph).min(h);
            let inner = &mut cols[pw..pw + wd];
            inner.fill(f32::NEG_INFINITY);
            for ih in first..last {
                for (m, &v) in inner.iter_mut().zip(&x_c[ih * wd..][..wd]) {
                    *m = pick(v, *m);
                }
            }
            for (ow, out) in y_row.iter_mut().enumerate() {
                let window = &cols[ow * sw..][..kw];
                *out = window.iter().fold(f32::NEG_INFINITY, |m, &v| pick(v, m));
            }
        }
    }
}

/// The widest padded row [`general_forward`] takes separably (its column
/// maxima live in a stack array of this size); wider rows take
/// [`window_max`].
const SEPARABLE_MAX_W: usize = 512;

/// Output windows [`window_max`] takes at once, one per vector lane.
const WINDOWS: usize = 8;

/// The maximum and its first position (flat index into the plane `x_c`,
/// `usize::MAX` if the window is all padding) in row-major window order,
/// PyTorch's rule ([`takes_over`], and the first real element is always
/// taken), of the windows of outputs `(oh, ow0 + l)` for `l < WINDOWS`.
/// Branch-free over lanes, so LLVM vectorizes it; lanes past the last
/// output hold windows clipped to nothing, which callers ignore.
#[inline(always)]
fn window_max(p: &Pool2d, x_c: &[f32], oh: usize, ow0: usize) -> ([f32; WINDOWS], [usize; WINDOWS]) {
    let (h, wd) = (p.in_h, p.in_w);
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.pad;
    let mut best = [f32::NEG_INFINITY; WINDOWS];
    let mut at = [usize::MAX; WINDOWS];
    for u in 0..kh {
        let Some(ih) = (oh * sh + u).checked_sub(ph).filter(|&ih| ih < h) else {
            continue;
        };
        let row = &x_c[ih * wd..][..wd];
        for v in 0..kw {
            for l in 0..WINDOWS {
                // Out of the row (padding) reads nothing and never takes over.
                let iw = ((ow0 + l) * sw + v).wrapping_sub(pw);
                let inside = iw < wd;
                let val = if inside {
                    row[iw.min(wd - 1)]
                } else {
                    f32::NEG_INFINITY
                };
                let take = inside & (takes_over(val, best[l]) | (at[l] == usize::MAX));
                best[l] = if take { val } else { best[l] };
                at[l] = if take { ih * wd + iw } else { at[l] };
            }
        }
    }
    (best, at)
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
    if p.is_halving() {
        halving_backward(p, x, dy, dx);
        return;
    }
    general_backward(p, n, x, dy, dx);
}

multiversion! {
    /// [`backward`] for any window, after the checks: the arg-max of
    /// [`WINDOWS`] outputs at a time ([`window_max`]), then one add per
    /// output (overlapping windows may share an arg-max).
    fn general_backward(p: &Pool2d, n: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) => general_backward_body
}

#[inline(always)]
fn general_backward_body<const FMA: bool>(p: &Pool2d, n: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (plane, oh_n, ow_n) = (p.in_h * p.in_w, p.out_h(), p.out_w());
    dx.fill(0.0);
    let planes = x.chunks_exact(plane).zip(dx.chunks_exact_mut(plane));
    for ((x_c, dx_c), dy_c) in planes.zip(dy.chunks_exact(oh_n * ow_n)).take(n * p.channels) {
        for (oh, dy_row) in dy_c.chunks_exact(ow_n).enumerate() {
            for (block, dy_blk) in dy_row.chunks(WINDOWS).enumerate() {
                let (_, at) = window_max(p, x_c, oh, block * WINDOWS);
                for (&at, &g) in at.iter().zip(dy_blk) {
                    if let Some(d) = dx_c.get_mut(at) {
                        *d += g;
                    }
                }
            }
        }
    }
}

pub mod int8 {
    //! int8 max pooling, TFLite's MAX_POOL_2D, bit for bit as TensorFlow Lite
    //! Micro's reference kernel (`reference_integer_ops::MaxPool`) computes it:
    //!
    //! `y[i, c, p, q] = clamp(max over the window's taps inside the input of x)`
    //!
    //! Layout and geometry as the float [`forward`](super::forward) (`x`
    //! `[N, C, H, W]`, `y` `[N, C, OH, OW]`, int8). The output shares the
    //! input's scale and zero point (TFLite requires it), so no requantization:
    //! the maximum of the int8 values is the int8 of the maximum. Padded taps
    //! are skipped; a window entirely in the padding (impossible with PyTorch's
    //! `pad <= kernel / 2`) gives `-128` before the clamp. `clamp` is the fused
    //! activation's range ([`Clamp::FULL`] for none).

    use super::{check, Pool2d};
    use crate::ops::window::for_each_window;
    use crate::quant::Clamp;

    /// int8 max pooling of `n` images. Direct loops, no heap, no `std`.
    ///
    /// # Panics
    ///
    /// If `x.len() != n * p.input_len()` or `y.len() != n * p.output_len()`.
    pub fn forward(p: &Pool2d, n: usize, x: &[i8], clamp: Clamp, y: &mut [i8]) {
        check(p, n, x.len(), y.len(), "y");
        for_each_window(p, x, y, |plane, rows, cols, out| {
            let mut m = i8::MIN;
            for r in rows {
                m = plane[r * p.in_w..][cols.clone()].iter().fold(m, |m, &v| m.max(v));
            }
            *out = clamp.apply(i32::from(m));
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hand_computed() {
            let p = Pool2d {
                channels: 1,
                in_h: 3,
                in_w: 3,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (1, 1),
            };
            let x: [i8; 9] = [-5, 3, -7, 9, -128, 1, 0, -2, 127];
            let mut y = [0i8; 4];
            forward(&p, 1, &x, Clamp::FULL, &mut y);
            assert_eq!(y, [-5, 3, 9, 127]);
            forward(&p, 1, &x, Clamp { min: 0, max: 100 }, &mut y);
            assert_eq!(y, [0, 3, 9, 100]);
        }

        #[test]
        #[should_panic(expected = "maxpool: y has 3 elements")]
        fn wrong_output_len_panics() {
            let p = Pool2d {
                channels: 1,
                in_h: 4,
                in_w: 4,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            forward(&p, 1, &[0; 16], Clamp::FULL, &mut [0; 3]);
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

    /// The 2x2 stride-2 fast path against the general one (gradients bit
    /// for bit): odd sizes, ties, -inf and NaN included.
    #[test]
    fn halving_path_matches_general_path() {
        let mut rng = Rng::new(3);
        for case in 0..200 {
            let p = Pool2d {
                channels: 1 + rng.below(3),
                in_h: 2 + rng.below(9),
                in_w: 2 + rng.below(40),
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            let n = 1 + rng.below(2);
            let special = [0.0, 1.0, f32::NEG_INFINITY, f32::NAN, -0.0];
            let x: Vec<f32> = (0..n * p.input_len())
                .map(|_| match case % 3 {
                    0 => rng.uniform(),
                    1 => rng.below(3) as f32,
                    _ => special[rng.below(special.len())],
                })
                .collect();
            let dy = rng.vec(n * p.output_len());
            let (mut y, mut y_general) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
            forward(&p, n, &x, &mut y);
            general_forward(&p, n, &x, &mut y_general);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            // Values: among equal maxima (0 and -0) the separable general
            // path may keep another one than the row-major scan.
            let same = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
            assert!(
                y.iter().zip(&y_general).all(|(&a, &b)| same(a, b)),
                "forward {p:?}"
            );
            let (mut dx, mut dx_general) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            backward(&p, n, &x, &dy, &mut dx);
            general_backward(&p, n, &x, &dy, &mut dx_general);
            assert_eq!(bits(&dx), bits(&dx_general), "backward {p:?}");
        }
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
