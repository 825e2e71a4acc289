//! Sliding-window geometry shared by `conv` and the pooling ops.
//!
//! A window of `kernel` taps slides with `stride` over an input implicitly
//! padded by `pad` on both sides; output position `o` and tap `k` read input
//! index `i = o * stride + k - pad`, and the output size is
//! `(in + 2 * pad - kernel) / stride + 1` (PyTorch's formula with
//! `dilation = 1`, `ceil_mode = False`).
//!
//! Kernels do not branch on padding per element: for each tap they compute
//! the range of outputs whose input index is inside the real input
//! (`valid_range`) and run a branch-free row loop over it (`zip_strided`,
//! `zip_strided_rev`); these helpers are crate-private.

/// Geometry of a 2-D pooling layer over an NCHW input (`maxpool`, `avgpool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Channels `C` (unchanged by pooling).
    pub channels: usize,
    /// Input height `H`.
    pub in_h: usize,
    /// Input width `W`.
    pub in_w: usize,
    /// Window `(KH, KW)`.
    pub kernel: (usize, usize),
    /// Stride `(SH, SW)`.
    pub stride: (usize, usize),
    /// Zero (avg) or `-inf` (max) padding `(PH, PW)` on each side.
    pub pad: (usize, usize),
}

impl Pool2d {
    /// `(H + 2 PH - KH) / SH + 1`.
    #[inline]
    pub const fn out_h(&self) -> usize {
        out_len(self.in_h, self.kernel.0, self.stride.0, self.pad.0)
    }

    /// `(W + 2 PW - KW) / SW + 1`.
    #[inline]
    pub const fn out_w(&self) -> usize {
        out_len(self.in_w, self.kernel.1, self.stride.1, self.pad.1)
    }

    /// Elements of one input example, `C * H * W`.
    #[inline]
    pub const fn input_len(&self) -> usize {
        self.channels * self.in_h * self.in_w
    }

    /// Elements of one output example, `C * OH * OW`.
    #[inline]
    pub const fn output_len(&self) -> usize {
        self.channels * self.out_h() * self.out_w()
    }
}

impl Pool2d {
    /// Whether this is the 2x2, stride-2, unpadded window of LeNet- and
    /// VGG-style nets, which the pooling ops run through [`halving_map`]
    /// and straight-line backward loops.
    #[inline(always)]
    pub(crate) fn is_halving(&self) -> bool {
        self.kernel == (2, 2) && self.stride == (2, 2) && self.pad == (0, 0)
    }
}

/// `y[c, p, q] = f([x[c, 2p, 2q], x[c, 2p, 2q + 1]], [x[c, 2p + 1, 2q],
/// x[c, 2p + 1, 2q + 1]])` for every plane: the forward pass of a pooling op
/// over [`Pool2d::is_halving`] windows, as row loops LLVM vectorizes (to be
/// inlined into a multiversioned kernel).
#[inline(always)]
pub(crate) fn halving_map(p: &Pool2d, x: &[f32], y: &mut [f32], f: impl Fn(&[f32], &[f32]) -> f32) {
    let (wd, plane) = (p.in_w, p.in_h * p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    for (x_c, y_c) in x.chunks_exact(plane).zip(y.chunks_exact_mut(oh_n * ow_n)) {
        for (oh, y_row) in y_c.chunks_exact_mut(ow_n).enumerate() {
            let top = &x_c[2 * oh * wd..][..2 * ow_n];
            let bottom = &x_c[(2 * oh + 1) * wd..][..2 * ow_n];
            for ((v, t), b) in y_row
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *v = f(t, b);
            }
        }
    }
}

/// Every pooling window of `x`'s planes, with no heap: `f(plane, rows,
/// cols, out)` gets the window's plane, its input rows and columns that lie
/// inside the plane (absolute indices; padded taps are left out, and a
/// window entirely in the padding gets empty ranges), and its output
/// element of `y`. The walk of the int8 pools.
#[inline(always)]
pub(crate) fn for_each_window<T, U>(
    p: &Pool2d,
    x: &[T],
    y: &mut [U],
    mut f: impl FnMut(&[T], core::ops::Range<usize>, core::ops::Range<usize>, &mut U),
) {
    // Inputs `start .. start + kernel` inside `0..len`.
    let inside = |start: isize, kernel: usize, len: usize| {
        let lo = start.clamp(0, len as isize) as usize;
        let hi = (start + kernel as isize).clamp(0, len as isize) as usize;
        lo..hi.max(lo)
    };
    let (h_n, w_n) = (p.in_h, p.in_w);
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    for (x_c, y_c) in x.chunks_exact(h_n * w_n).zip(y.chunks_exact_mut(oh_n * ow_n)) {
        for (oh, y_row) in y_c.chunks_exact_mut(ow_n).enumerate() {
            let rows = inside((oh * p.stride.0) as isize - p.pad.0 as isize, p.kernel.0, h_n);
            for (ow, out) in y_row.iter_mut().enumerate() {
                let cols = inside((ow * p.stride.1) as isize - p.pad.1 as isize, p.kernel.1, w_n);
                f(x_c, rows.clone(), cols, out);
            }
        }
    }
}

/// `(input + 2 pad - kernel) / stride + 1`, the number of window positions.
#[inline]
pub(crate) const fn out_len(input: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    (input + 2 * pad - kernel) / stride + 1
}

/// Asserts that a window geometry is usable: positive kernel and stride, and
/// a kernel no larger than the padded input (so at least one output).
#[inline(always)]
#[track_caller]
pub(crate) fn check_geometry(
    op: &str,
    input: (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
) {
    assert!(
        kernel.0 >= 1 && kernel.1 >= 1 && stride.0 >= 1 && stride.1 >= 1,
        "{op}: kernel {kernel:?} and stride {stride:?} must be positive"
    );
    assert!(
        input.0 + 2 * pad.0 >= kernel.0 && input.1 + 2 * pad.1 >= kernel.1,
        "{op}: kernel {kernel:?} is larger than the padded input {:?}",
        (input.0 + 2 * pad.0, input.1 + 2 * pad.1)
    );
}

/// The outputs `o` in `lo..hi` whose tap `k` reads a real input element, i.e.
/// `0 <= o * stride + k - pad < input`. `lo <= hi` always (empty as `lo == hi`).
#[inline(always)]
pub(crate) fn valid_range(
    k: usize,
    pad: usize,
    stride: usize,
    input: usize,
    output: usize,
) -> (usize, usize) {
    // o * stride >= pad - k
    let lo = if pad > k { (pad - k).div_ceil(stride) } else { 0 };
    // o * stride <= input - 1 + pad - k
    let hi = if input + pad > k {
        ((input - 1 + pad - k) / stride + 1).min(output)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Input index read by output `o` at tap `k`; only meaningful inside
/// [`valid_range`].
#[inline(always)]
pub(crate) fn input_index(o: usize, k: usize, pad: usize, stride: usize) -> usize {
    o * stride + k - pad
}

/// `f(&mut out[j], src[start + j * stride])` for every `j < out.len()`:
/// contiguous output, strided input (forward of conv and pooling).
#[inline(always)]
pub(crate) fn zip_strided(
    out: &mut [f32],
    src: &[f32],
    start: usize,
    stride: usize,
    mut f: impl FnMut(&mut f32, f32),
) {
    if out.is_empty() {
        return;
    }
    let span = (out.len() - 1) * stride + 1;
    let src = &src[start..start + span];
    if stride == 1 {
        for (o, &s) in out.iter_mut().zip(src) {
            f(o, s);
        }
    } else {
        for (o, &s) in out.iter_mut().zip(src.iter().step_by(stride)) {
            f(o, s);
        }
    }
}

/// `f(&mut dst[start + j * stride], src[j])` for every `j < src.len()`:
/// strided destination, contiguous source (backward scatter into `dx`).
#[inline(always)]
pub(crate) fn zip_strided_rev(
    dst: &mut [f32],
    start: usize,
    stride: usize,
    src: &[f32],
    mut f: impl FnMut(&mut f32, f32),
) {
    if src.is_empty() {
        return;
    }
    let span = (src.len() - 1) * stride + 1;
    let dst = &mut dst[start..start + span];
    if stride == 1 {
        for (d, &s) in dst.iter_mut().zip(src) {
            f(d, s);
        }
    } else {
        for (d, &s) in dst.iter_mut().step_by(stride).zip(src) {
            f(d, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lenet_pool_geometry() {
        let p = Pool2d {
            channels: 6,
            in_h: 28,
            in_w: 28,
            kernel: (2, 2),
            stride: (2, 2),
            pad: (0, 0),
        };
        assert_eq!((p.out_h(), p.out_w()), (14, 14));
        assert_eq!((p.input_len(), p.output_len()), (6 * 28 * 28, 6 * 14 * 14));
        let q = Pool2d {
            kernel: (3, 2),
            stride: (2, 1),
            pad: (1, 0),
            ..p
        };
        assert_eq!((q.out_h(), q.out_w()), (14, 27));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// `valid_range` is exactly the set of in-bounds outputs, every tap.
        #[test]
        fn valid_range_is_exact(input in 1usize..12, kernel in 1usize..7, pad in 0usize..4,
                                stride in 1usize..4) {
            prop_assume!(input + 2 * pad >= kernel);
            let output = out_len(input, kernel, stride, pad);
            for k in 0..kernel {
                let (lo, hi) = valid_range(k, pad, stride, input, output);
                prop_assert!(lo <= hi && hi <= output);
                for o in 0..output {
                    let i = (o * stride + k) as isize - pad as isize;
                    let inside = i >= 0 && (i as usize) < input;
                    prop_assert_eq!(inside, (lo..hi).contains(&o), "o = {}, k = {}", o, k);
                }
            }
        }
    }
}
