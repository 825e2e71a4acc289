//! The forward pass of pointwise convolutions (1x1, stride 1, no padding:
//! MobileNet's expansions and projections), on AVX-512 or AVX2 + FMA.
//!
//! Per image, `y[o][p] = b[o] + sum_c w[o][c] x[c][p]`: a tile of `MR`
//! output channels by `NV` vectors of pixels sums in registers, the pixel
//! vectors loaded straight from the input rows and each weight broadcast
//! from `w`. The GEMM path this replaces copied every image's input into
//! packed panels, filled the output with the bias first and summed onto
//! it, and finished a plane's last, partial panel through a scalar copy.
//! The tiles walk the output channels inside a block of pixels, so the
//! block's input rows (`C x NV` vectors) stay in L1 across them.
//!
//! The sums run over `c` in order from zero with one rounding per
//! multiply-add, and the bias is added last: the GEMM path's rounding, bit
//! for bit. An activation folded into the conv (`forward_gemm_folded`) is
//! applied in the store, so its values never make a pass of their own.

use super::Conv2d;
use crate::ops::simd::x86::{Avx2, Avx512, Vector};
use crate::ops::simd::{level, Level};
use crate::quant::Activation;

/// `y = act(conv(x, w) + b)` for `n` images of a pointwise `g`, if this CPU
/// has AVX-512 or AVX2 + FMA; returns whether it ran. Slice lengths are the
/// caller's (checked) ones.
pub(super) fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> bool {
    if !g.is_pointwise() {
        return false;
    }
    let shape = Shape {
        c: g.in_channels,
        o: g.out_channels,
        p: g.in_h * g.in_w,
        clamp: act.bounds(),
    };
    assert!(
        x.len() >= n * shape.c * shape.p
            && y.len() >= n * shape.o * shape.p
            && w.len() >= shape.o * shape.c
            && b.is_none_or(|b| b.len() >= shape.o),
        "pointwise conv: operands shorter than the geometry"
    );
    match level() {
        // SAFETY: `level()` detected AVX-512F; the lengths are checked above.
        // (One function per `ACT`: with both copies of the tiles in one,
        // LLVM kept the accumulators in memory between tiles.)
        Level::Avx512 if act == Activation::None => unsafe { forward_avx512::<false>(shape, n, x, w, b, y) },
        // SAFETY: as above.
        Level::Avx512 => unsafe { forward_avx512::<true>(shape, n, x, w, b, y) },
        // SAFETY: `level()` detected AVX2 and FMA; lengths as above.
        Level::Avx2Fma if act == Activation::None => unsafe { forward_avx2::<false>(shape, n, x, w, b, y) },
        // SAFETY: as above.
        Level::Avx2Fma => unsafe { forward_avx2::<true>(shape, n, x, w, b, y) },
        Level::Baseline => return false,
    }
    true
}

/// Input channels, output channels and pixels of one image's plane, and
/// the bounds of the activation the store applies.
#[derive(Clone, Copy)]
struct Shape {
    c: usize,
    o: usize,
    p: usize,
    clamp: Option<(f32, f32)>,
}

/// [`images`] with 16-lane vectors and tiles of 8 channels by 3 vectors:
/// 24 accumulators, 3 input vectors and a broadcast weight of the 32
/// registers (12 by 2 and 6 by 4 measured no faster on a Zen 4).
///
/// # Safety
///
/// The CPU has AVX-512F; `x`, `w`, `b` and `y` hold `n` images of `s`.
#[target_feature(enable = "avx512f")]
unsafe fn forward_avx512<const ACT: bool>(
    s: Shape,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    // SAFETY: forwarded contract.
    unsafe { images::<Avx512, 8, 3, ACT>(s, n, x, w, b, y) }
}

/// [`images`] with 8-lane vectors and tiles of 6 channels by 2 vectors, in
/// 15 of the 16 registers. Tiles of 4 by 3 (all 16, with the broadcast)
/// ran MobileNetSmall's 64-to-16 and 96-to-24 convs at 36-43% of the
/// AVX-512 FMA peak on a Zen 4 against 59-87% for these.
///
/// # Safety
///
/// The CPU has AVX2 and FMA; operands as [`forward_avx512`].
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2<const ACT: bool>(
    s: Shape,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    // SAFETY: forwarded contract.
    unsafe { images::<Avx2, 6, 2, ACT>(s, n, x, w, b, y) }
}

/// Every image, block of `NV` pixel vectors (the plane's last block
/// shorter, its last vector masked) and tile of `MR` output channels (the
/// last channels one at a time).
///
/// # Safety
///
/// `V`'s instructions are enabled in the caller; operands as
/// [`forward_avx512`].
#[inline(always)]
unsafe fn images<V: Vector, const MR: usize, const NV: usize, const ACT: bool>(
    s: Shape,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let Shape { c, o, p, clamp } = s;
    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let block = NV * V::LANES;
    for img in 0..n {
        let (x_img, y_img) = (&x[img * c * p..][..c * p], &mut y[img * o * p..][..o * p]);
        for p0 in (0..p).step_by(block) {
            let left = p - p0;
            // Pixels in this block, and in its last vector.
            let m = left.min(block);
            let mask = V::mask(0, (m - (m - 1) / V::LANES * V::LANES) as isize);
            for o0 in (0..o).step_by(MR) {
                let at = Tile {
                    x: x_img[p0..].as_ptr(),
                    p,
                    c,
                    w: w[o0 * c..].as_ptr(),
                    b: b.map(|b| b[o0..].as_ptr()),
                    y: y_img[o0 * p + p0..].as_mut_ptr(),
                    mask,
                    lo,
                    hi,
                };
                let rows = MR.min(o - o0);
                // SAFETY: the tile's rows `o0..o0 + rows` and pixels
                // `p0..p0 + min(left, block)` are inside the image's planes;
                // `mask` keeps the last vector to them.
                unsafe {
                    match (rows == MR, left >= block, m.div_ceil(V::LANES)) {
                        (true, true, _) => tile::<V, MR, NV, true, ACT>(at),
                        (true, false, 1) => tile::<V, MR, 1, false, ACT>(at),
                        (true, false, 2) => tile::<V, MR, 2, false, ACT>(at),
                        (true, false, _) => tile::<V, MR, NV, false, ACT>(at),
                        (false, _, v) => {
                            for r in 0..rows {
                                let row = Tile {
                                    w: at.w.add(r * c),
                                    b: at.b.map(|b| b.add(r)),
                                    y: at.y.add(r * p),
                                    ..at
                                };
                                match (left >= block, v) {
                                    (true, _) => tile::<V, 1, NV, true, ACT>(row),
                                    (false, 1) => tile::<V, 1, 1, false, ACT>(row),
                                    (false, 2) => tile::<V, 1, 2, false, ACT>(row),
                                    (false, _) => tile::<V, 1, NV, false, ACT>(row),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where one tile reads and writes: its first pixel in input channel 0
/// (`x`, channels `p` apart), its first output channel's weights (`w`,
/// rows `c` apart) and bias, its first output (`y`, rows `p` apart), the
/// lanes of its last pixel vector, and the activation's bounds.
struct Tile<V: Vector> {
    x: *const f32,
    p: usize,
    c: usize,
    w: *const f32,
    b: Option<*const f32>,
    y: *mut f32,
    mask: V::Mask,
    lo: f32,
    hi: f32,
}

impl<V: Vector> Clone for Tile<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V: Vector> Copy for Tile<V> {}

/// `MR` output channels by `VN` vectors of pixels (the last one masked
/// unless `FULL`), clamped to the tile's bounds if `ACT` (a copy each, so
/// the store of a conv without activation tests nothing).
///
/// # Safety
///
/// `V`'s instructions are enabled; for `r < MR`, `ci < c` and the tile's
/// pixels `j` (`VN` vectors, the last cut by `mask` unless `FULL`),
/// `x + ci * p + j` is readable, `y + r * p + j` writable and distinct from
/// the inputs, `w + r * c + ci` and `b + r` readable.
#[inline(always)]
unsafe fn tile<V: Vector, const MR: usize, const VN: usize, const FULL: bool, const ACT: bool>(t: Tile<V>) {
    let last = |v: usize| !FULL && v == VN - 1;
    let mut acc = [[V::zero(); VN]; MR];
    // SAFETY: every address is one the contract names.
    unsafe {
        for ci in 0..t.c {
            let row = t.x.add(ci * t.p);
            let mut xv = [V::zero(); VN];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = if last(v) {
                    V::load(row.add(v * V::LANES), t.mask)
                } else {
                    V::loadu(row.add(v * V::LANES))
                };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let wr = V::splat(t.w.add(r * t.c + ci));
                for (a, &xv) in acc.iter_mut().zip(&xv) {
                    *a = V::fmadd(wr, xv, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let bias = t.b.map(|b| V::splat(b.add(r)));
            let out = t.y.add(r * t.p);
            for (v, &a) in acc.iter().enumerate() {
                let a = match bias {
                    Some(bias) => V::add(a, bias),
                    None => a,
                };
                let a = if ACT {
                    V::clamp(a, V::splat(&t.lo), V::splat(&t.hi))
                } else {
                    a
                };
                if last(v) {
                    V::store(out.add(v * V::LANES), t.mask, a);
                } else {
                    V::storeu(out.add(v * V::LANES), a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sums in the kernels' order, one rounding per multiply-add, the
    /// bias added last, then the activation's own pass.
    fn naive(s: Shape, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, act: Activation) -> Vec<f32> {
        let mut y = vec![0.0; n * s.o * s.p];
        for img in 0..n {
            for o in 0..s.o {
                for j in 0..s.p {
                    let mut acc = 0.0f32;
                    for ci in 0..s.c {
                        acc = w[o * s.c + ci].mul_add(x[(img * s.c + ci) * s.p + j], acc);
                    }
                    y[(img * s.o + o) * s.p + j] = b.map_or(acc, |b| acc + b[o]);
                }
            }
        }
        act.apply(&mut y);
        y
    }

    /// Both copies the CPU has against [`naive`], bit for bit, on planes
    /// around the vector and block sizes of each, output channels not a
    /// multiple of either tile, with and without bias, with each activation
    /// (inputs up to 4 in size, so sums pass both of relu6's bounds); the
    /// outputs past the images are never written.
    #[test]
    fn both_copies_match_the_naive_sums_bit_for_bit() {
        let mut rng = crate::ops::testing::Rng::new(7);
        let planes = [
            (1, 1),
            (1, 7),
            (3, 5),
            (4, 4),
            (1, 17),
            (7, 7),
            (6, 8),
            (1, 50),
            (5, 10),
            (14, 14),
        ];
        let mut cases = 0;
        for (case, &(h, wd)) in planes.iter().enumerate() {
            for &(c, o) in &[(1, 1), (3, 8), (16, 13), (24, 5), (33, 17)] {
                let g = Conv2d {
                    in_channels: c,
                    in_h: h,
                    in_w: wd,
                    out_channels: o,
                    kernel: (1, 1),
                    stride: (1, 1),
                    pad: (0, 0),
                };
                let act = [Activation::None, Activation::Relu, Activation::Relu6][(case + c) % 3];
                let s = Shape {
                    c,
                    o,
                    p: h * wd,
                    clamp: act.bounds(),
                };
                let n = 1 + case % 3;
                let x: Vec<f32> = rng.vec(n * c * s.p).iter().map(|v| 4.0 * v).collect();
                let (w, b) = (rng.vec(o * c), rng.vec(o));
                let bias = (case % 2 == 0).then_some(&b[..]);
                let want = naive(s, n, &x, &w, bias, act);
                type Kernel = unsafe fn(Shape, usize, &[f32], &[f32], Option<&[f32]>, &mut [f32]);
                let mut copies: Vec<(&str, Kernel)> = Vec::new();
                let with_act = act != Activation::None;
                if std::arch::is_x86_feature_detected!("avx512f") {
                    copies.push((
                        "avx512",
                        if with_act {
                            forward_avx512::<true>
                        } else {
                            forward_avx512::<false>
                        },
                    ));
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    copies.push((
                        "avx2",
                        if with_act {
                            forward_avx2::<true>
                        } else {
                            forward_avx2::<false>
                        },
                    ));
                }
                for (name, copy) in copies {
                    let mut y = vec![f32::NAN; want.len() + 5];
                    // SAFETY: the CPU has the copy's features (checked
                    // above); the operands hold `n` images of `s`.
                    unsafe { copy(s, n, &x, &w, bias, &mut y) };
                    assert!(
                        y[want.len()..].iter().all(|v| v.is_nan()),
                        "{name} wrote past {g:?}"
                    );
                    for (i, (&got, &exp)) in y.iter().zip(&want).enumerate() {
                        assert_eq!(
                            got.to_bits(),
                            exp.to_bits(),
                            "{name}, {g:?}, {n} images, output {i}"
                        );
                    }
                    cases += 1;
                }
                assert!(
                    forward(&g, n, &x, &w, bias, act, &mut vec![0.0; want.len()])
                        || level() == Level::Baseline
                );
            }
        }
        assert!(cases > 0 || level() == Level::Baseline, "no copy ran");
    }

    /// Anything else than 1x1, stride 1, no padding is declined.
    #[test]
    fn only_pointwise_convs_are_taken() {
        let one = |kernel, stride, pad| Conv2d {
            in_channels: 4,
            in_h: 6,
            in_w: 6,
            out_channels: 4,
            kernel,
            stride,
            pad,
        };
        for g in [
            one((3, 3), (1, 1), (1, 1)),
            one((1, 1), (2, 2), (0, 0)),
            one((1, 1), (1, 1), (1, 1)),
        ] {
            let out = g.output_len();
            let (x, w) = (vec![0.0; g.input_len()], vec![0.0; g.weight_len()]);
            assert!(
                !forward(&g, 1, &x, &w, None, Activation::None, &mut vec![0.0; out]),
                "{g:?}"
            );
        }
    }
}
