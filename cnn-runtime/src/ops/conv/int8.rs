//! int8 convolution, TFLite's CONV_2D with per-channel quantized weights,
//! bit for bit as TensorFlow Lite Micro's reference kernel
//! (`reference_integer_ops::ConvPerChannel`) computes it, in our layouts:
//!
//! `acc[i, o, p, q] = b[o] + sum_{c, u, v} w[o, c, u, v] * (x[i, g*C/G + c, p*SH + u - PH, q*SW + v - PW] - x_zp)`
//!
//! `y[i, o, p, q] = clamp(M[o](acc) + y_zp)`
//!
//! where taps outside the input are skipped (the same as reading the zero
//! point, i.e. zero padding of the real values), `g = o / (O/G)` is the
//! group of output channel `o`, `M[o]` is the per-channel
//! [`Requant`](crate::quant::Requant) `in_scale * w_scale[o] / out_scale`
//! applied with TFLite's double rounding, and the clamp is the fused
//! activation's range ([`OutputStage`]). The sum is exact in `i32` (it wraps
//! past `2^31`, which no filter shorter than `2^16` taps reaches).
//!
//! Layouts: `x` is `[N, C, H, W]`, `w` is `[O, C/G, KH, KW]` (OIHW), `b` is
//! `[O]`, `y` is `[N, O, OH, OW]`, all row-major int8 (bias int32), with
//! `OH = (H + 2 PH - KH) / SH + 1` as for the float [`forward`](super::forward).
//! TFLite's own graphs are NHWC/OHWI; only the layout differs, not a bit of
//! the arithmetic. Its explicit padding arrives as a PAD op (filling with
//! the zero point) before a VALID conv, which this kernel's `pad` replaces.
//!
//! Direct loops, no heap, no `std`: where the whole window is inside the
//! input, the zero point comes out of the sum (`sum w x - x_zp sum w`) and
//! the taps of 1-, 3- and 5-wide kernels are unrolled; at the border only the
//! taps inside are summed. The tests check it against an independent
//! definition.

use super::Conv2d;
use crate::ops::window::check_geometry;
use crate::quant::OutputStage;

/// The int8 convolution of `n` examples (see the module docs); `b = None`
/// means no bias. `g` is the geometry of the whole layer (`C` input and `O`
/// output channels), split into `groups` groups.
///
/// # Panics
///
/// If `groups` does not divide `C` and `O`, a slice length does not match
/// (`x`: `n * C * H * W`, `w`: `O * C/G * KH * KW`, `b`: `O`,
/// `y`: `n * O * OH * OW`), or `stage.requant` has neither 1 nor `O` entries.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[i8],
    w: &[i8],
    b: Option<&[i32]>,
    stage: &OutputStage<'_>,
    y: &mut [i8],
) {
    check(g, groups, n, x.len(), w.len(), b.map(<[i32]>::len), y.len());
    stage.check("conv", g.out_channels);
    let (kh_n, kw_n) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.pad;
    let (h_n, w_n) = (g.in_h, g.in_w);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let c_per_group = g.in_channels / groups;
    let o_per_group = g.out_channels / groups;
    let filter_len = c_per_group * kh_n * kw_n;
    let x_zp = stage.input_zero_point;
    for (x_i, y_i) in x
        .chunks_exact(g.input_len())
        .zip(y.chunks_exact_mut(g.output_len()))
    {
        for (o, y_o) in y_i.chunks_exact_mut(oh_n * ow_n).enumerate() {
            let x_g = &x_i[o / o_per_group * c_per_group * h_n * w_n..][..c_per_group * h_n * w_n];
            let w_o = &w[o * filter_len..][..filter_len];
            let bias = b.map_or(0, |b| b[o]);
            // Where the whole window is inside, `sum w (x - x_zp)` is
            // `sum w x - x_zp sum w`: the same integer (the sums wrap alike).
            let w_sum = w_o.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v)));
            let inside_offset = bias.wrapping_sub(x_zp.wrapping_mul(w_sum));
            for (p, y_row) in y_o.chunks_exact_mut(ow_n).enumerate() {
                // Input rows `p*SH + u - PH` for taps `u` in `us` are inside.
                let top = (p * sh) as isize - ph as isize;
                let us = tap_range(top, kh_n, h_n);
                for (q, out) in y_row.iter_mut().enumerate() {
                    let left = (q * sw) as isize - pw as isize;
                    let vs = tap_range(left, kw_n, w_n);
                    let acc = if us.len() == kh_n && vs.len() == kw_n {
                        let origin = top as usize * w_n + left as usize;
                        let plane = h_n * w_n;
                        let dot = match g.kernel {
                            (1, 1) => window::<1, 1>(x_g, w_o, origin, plane, w_n),
                            (3, 3) => window::<3, 3>(x_g, w_o, origin, plane, w_n),
                            (5, 5) => window::<5, 5>(x_g, w_o, origin, plane, w_n),
                            _ => window_any(x_g, w_o, origin, plane, w_n, g.kernel),
                        };
                        dot.wrapping_add(inside_offset)
                    } else {
                        // At the border: the taps inside only (none for a
                        // window wholly outside, when the pad is the
                        // kernel's size or more).
                        let mut acc = bias;
                        if !vs.is_empty() {
                            let first = (left + vs.start as isize) as usize;
                            let taps = x_g.chunks_exact(h_n * w_n).zip(w_o.chunks_exact(kh_n * kw_n));
                            for (x_c, w_c) in taps {
                                for u in us.clone() {
                                    let row = (top + u as isize) as usize * w_n + first;
                                    let x_row = &x_c[row..][..vs.len()];
                                    let w_row = &w_c[u * kw_n + vs.start..][..vs.len()];
                                    for (&xv, &wv) in x_row.iter().zip(w_row) {
                                        acc = acc.wrapping_add(i32::from(wv) * (i32::from(xv) - x_zp));
                                    }
                                }
                            }
                        }
                        acc
                    };
                    *out = stage.output(acc, o);
                }
            }
        }
    }
}

/// `sum w x` over a window wholly inside the input: `x` holds the group's
/// planes (`plane` values each, rows of `row`), the window starts at
/// `origin` in each plane, `w` is the filter (`KH` rows of `KW` taps per
/// input channel). Sizes known when this compiles unroll the window and
/// leave one bounds check per plane. Not inlined: on its own it keeps its
/// sums in registers (inlined into the loops above, the Cortex-M4 build
/// spilled them to the stack).
#[inline(never)]
fn window<const KH: usize, const KW: usize>(
    x: &[i8],
    w: &[i8],
    origin: usize,
    plane: usize,
    row: usize,
) -> i32 {
    let mut acc = 0i32;
    for (x_c, w_c) in x.chunks_exact(plane).zip(w.chunks_exact(KH * KW)) {
        let x_win = &x_c[origin..][..(KH - 1) * row + KW];
        for u in 0..KH {
            let x_row = &x_win[u * row..][..KW];
            let w_row = &w_c[u * KW..][..KW];
            let mut t = 0;
            if KW >= 4 {
                acc = dot4(acc, &x_row[..4], &w_row[..4]);
                t = 4;
            }
            for (&xv, &wv) in x_row[t..].iter().zip(&w_row[t..]) {
                acc = acc.wrapping_add(i32::from(xv) * i32::from(wv));
            }
        }
    }
    acc
}

/// `acc + x[0] w[0] + .. + x[3] w[3]` (wrapping), of 4-element slices.
#[inline(always)]
fn dot4(acc: i32, x: &[i8], w: &[i8]) -> i32 {
    let (x, w): (&[i8; 4], &[i8; 4]) = (x.try_into().expect("4 taps"), w.try_into().expect("4 taps"));
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        // Cortex-M4/M7 (the DSP extension): one word load each, the bytes
        // sign-extended in pairs (0, 2) and (1, 3) into 16-bit halves, two
        // dual multiply-accumulates, as CMSIS-NN's inner loop. Measured on
        // the M4 under QEMU: LeNet's int8 forward takes 3,314,460
        // instructions with it, 3,596,640 with the scalar loop below.
        let (x, w) = (
            u32::from_le_bytes(x.map(|v| v as u8)),
            u32::from_le_bytes(w.map(|v| v as u8)),
        );
        let mut acc = acc;
        // SAFETY: SXTB16 and SMLAD only read and write the registers named
        // here; `target_feature = "dsp"` guarantees the instructions exist.
        // SMLAD's overflow only sets the Q flag: the sum wraps, as the
        // scalar path's `wrapping_add`.
        unsafe {
            core::arch::asm!(
                "sxtb16 {xa}, {x}",
                "sxtb16 {wa}, {w}",
                "smlad {acc}, {xa}, {wa}, {acc}",
                "sxtb16 {xa}, {x}, ror #8",
                "sxtb16 {wa}, {w}, ror #8",
                "smlad {acc}, {xa}, {wa}, {acc}",
                x = in(reg) x,
                w = in(reg) w,
                acc = inout(reg) acc,
                xa = out(reg) _,
                wa = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        acc
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    {
        x.iter().zip(w).fold(acc, |acc, (&xv, &wv)| {
            acc.wrapping_add(i32::from(xv) * i32::from(wv))
        })
    }
}

/// [`window`] for any kernel width.
#[inline(always)]
fn window_any(x: &[i8], w: &[i8], origin: usize, plane: usize, row: usize, (kh, kw): (usize, usize)) -> i32 {
    let mut acc = 0i32;
    for (x_c, w_c) in x.chunks_exact(plane).zip(w.chunks_exact(kh * kw)) {
        for (u, w_row) in w_c.chunks_exact(kw).enumerate() {
            let x_row = &x_c[origin + u * row..][..kw];
            for (&xv, &wv) in x_row.iter().zip(w_row) {
                acc = acc.wrapping_add(i32::from(xv) * i32::from(wv));
            }
        }
    }
    acc
}

/// The taps `t` in `0..kernel` with `start + t` in `0..len`.
#[inline(always)]
fn tap_range(start: isize, kernel: usize, len: usize) -> core::ops::Range<usize> {
    let lo = (-start).clamp(0, kernel as isize) as usize;
    let hi = (len as isize - start).clamp(0, kernel as isize) as usize;
    lo..hi.max(lo)
}

#[inline(always)]
#[track_caller]
fn check(g: &Conv2d, groups: usize, n: usize, x: usize, w: usize, b: Option<usize>, y: usize) {
    check_geometry("conv", (g.in_h, g.in_w), g.kernel, g.stride, g.pad);
    assert!(
        groups >= 1 && g.in_channels.is_multiple_of(groups) && g.out_channels.is_multiple_of(groups),
        "conv: groups = {groups} must divide in_channels = {} and out_channels = {}",
        g.in_channels,
        g.out_channels
    );
    assert_eq!(
        x,
        n * g.input_len(),
        "conv: x has {x} elements, expected n * C * H * W = {n} * {}",
        g.input_len()
    );
    let w_len = g.weight_len() / groups;
    assert_eq!(
        w, w_len,
        "conv: w has {w} elements, expected O * C/G * KH * KW = {w_len}"
    );
    if let Some(b) = b {
        assert_eq!(
            b, g.out_channels,
            "conv: bias has {b} elements, expected out_channels = {}",
            g.out_channels
        );
    }
    assert_eq!(
        y,
        n * g.output_len(),
        "conv: y has {y} elements, expected n * O * OH * OW = {n} * {}",
        g.output_len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Rng;
    use crate::quant::{Clamp, Requant};
    use proptest::prelude::*;

    /// The definition, written independently: zero-pad the real values
    /// (`x - x_zp`) into a bigger plane, then correlate.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        g: &Conv2d,
        groups: usize,
        n: usize,
        x: &[i8],
        w: &[i8],
        b: &[i32],
        stage: &OutputStage<'_>,
    ) -> Vec<i8> {
        let (c_n, o_n) = (g.in_channels, g.out_channels);
        let (hp, wp) = (g.in_h + 2 * g.pad.0, g.in_w + 2 * g.pad.1);
        let (cg, og) = (c_n / groups, o_n / groups);
        let mut y = Vec::new();
        for i in 0..n {
            let mut padded = vec![0i32; c_n * hp * wp];
            for c in 0..c_n {
                for h in 0..g.in_h {
                    for wd in 0..g.in_w {
                        let v = x[((i * c_n + c) * g.in_h + h) * g.in_w + wd];
                        padded[(c * hp + h + g.pad.0) * wp + wd + g.pad.1] =
                            i32::from(v) - stage.input_zero_point;
                    }
                }
            }
            for o in 0..o_n {
                for p in 0..g.out_h() {
                    for q in 0..g.out_w() {
                        let mut acc = b[o];
                        for c in 0..cg {
                            for u in 0..g.kernel.0 {
                                for v in 0..g.kernel.1 {
                                    let xv = padded[((o / og * cg + c) * hp + p * g.stride.0 + u) * wp
                                        + q * g.stride.1
                                        + v];
                                    let wv = w[((o * cg + c) * g.kernel.0 + u) * g.kernel.1 + v];
                                    acc += i32::from(wv) * xv;
                                }
                            }
                        }
                        y.push(stage.output(acc, o));
                    }
                }
            }
        }
        y
    }

    fn bytes(rng: &mut Rng, len: usize) -> Vec<i8> {
        (0..len).map(|_| rng.next_u64() as i8).collect()
    }

    #[test]
    fn hand_computed() {
        // One 3x3 input, a 2x2 kernel, pad 1, stride 2: outputs at the corners.
        let g = Conv2d {
            in_channels: 1,
            in_h: 3,
            in_w: 3,
            out_channels: 1,
            kernel: (2, 2),
            stride: (2, 2),
            pad: (1, 1),
        };
        let x: [i8; 9] = [11, 12, 13, 14, 15, 16, 17, 18, 19]; // zero point 10
        let w: [i8; 4] = [1, 2, 3, 4];
        let r = [Requant::from_real(0.5)];
        let stage = OutputStage {
            input_zero_point: 10,
            requant: &r,
            output_zero_point: -1,
            clamp: Clamp::FULL,
        };
        let mut y = [0i8; 4];
        forward(&g, 1, 1, &x, &w, Some(&[3]), &stage, &mut y);
        // Real inputs 1..9; (4*1 + 3) / 2 = 3.5 -> 4, (3*2 + 4*3 + 3) / 2 =
        // 10.5 -> 11, (2*4 + 4*7 + 3) / 2 = 19.5 -> 20,
        // (1*5 + 2*6 + 3*8 + 4*9 + 3) / 2 = 40; then the zero point -1.
        assert_eq!(y, [3, 10, 19, 39]);
    }

    #[test]
    #[should_panic(expected = "conv: w has 8 elements, expected O * C/G * KH * KW = 2")]
    fn wrong_weight_len_panics() {
        let g = Conv2d {
            in_channels: 2,
            in_h: 2,
            in_w: 2,
            out_channels: 2,
            kernel: (1, 1),
            stride: (1, 1),
            pad: (0, 0),
        };
        let stage = OutputStage {
            input_zero_point: 0,
            requant: &[Requant::ZERO],
            output_zero_point: 0,
            clamp: Clamp::FULL,
        };
        forward(&g, 2, 1, &[0; 8], &[0; 8], None, &stage, &mut [0; 8]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_reference(
            cg in 1usize..=3, og in 1usize..=3, groups in 1usize..=3, n in 1usize..=2,
            h in 1usize..=8, wd in 1usize..=8, kh in 1usize..=4, kw in 1usize..=4,
            sh in 1usize..=3, sw in 1usize..=3, ph in 0usize..=2, pw in 0usize..=2,
            per_channel: bool, has_bias: bool, seed: u64,
        ) {
            prop_assume!(h + 2 * ph >= kh && wd + 2 * pw >= kw);
            let g = Conv2d {
                in_channels: cg * groups, in_h: h, in_w: wd, out_channels: og * groups,
                kernel: (kh, kw), stride: (sh, sw), pad: (ph, pw),
            };
            let mut rng = Rng::new(seed);
            let x = bytes(&mut rng, n * g.input_len());
            let w = bytes(&mut rng, g.weight_len() / groups);
            let b: Vec<i32> = (0..g.out_channels).map(|_| rng.next_u64() as i32 >> 16).collect();
            let requant: Vec<Requant> = (0..if per_channel { g.out_channels } else { 1 })
                .map(|_| Requant::from_real(f64::from(rng.uniform().abs()) * 0.05 + 1e-4))
                .collect();
            let stage = OutputStage {
                input_zero_point: rng.next_u64() as i8 as i32,
                requant: &requant,
                output_zero_point: rng.next_u64() as i8 as i32,
                clamp: Clamp { min: -100, max: 110 },
            };
            let zeros = vec![0; g.out_channels];
            let expected = reference(&g, groups, n, &x, &w, if has_bias { &b } else { &zeros }, &stage);
            let mut y = vec![0i8; n * g.output_len()];
            forward(&g, groups, n, &x, &w, has_bias.then_some(&b[..]), &stage, &mut y);
            prop_assert_eq!(y, expected);
        }
    }
}
