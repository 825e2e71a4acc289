//! Register-tiled direct correlation for `x86_64` AVX-512F and AVX2 + FMA:
//! the fast path of [`super::direct::Correlation`] for a unit column stride.
//!
//! A tile is `NO` output channels x `R` output rows x `NQ` vectors of
//! consecutive output columns (16 lanes for AVX-512, 8 for AVX2), held in
//! registers over every tap `(c, u, v)`: per tap, each row's `NQ` input
//! vectors are loaded once and each of the `NO` weights is broadcast once
//! for all of the tile's rows. Padding costs nothing per element: taps whose
//! input row is outside are skipped (`tap_rows`), and a column mask per
//! `(v, vector)` loads zeros where the input column is outside or the lane
//! is past the row's end (masked lanes are neither read nor written). Rows
//! narrower than a vector or two instead take tiles of one vector of the
//! flattened output plane (`flat`), which covers several rows with one
//! masked load per row segment (LeNet's 10x10 conv2 with AVX2 vectors: 13
//! vectors a plane instead of 20); with AVX-512, rows of 8 to 16 columns
//! take tiles of 3 rows, one vector each, which measured faster.
//!
//! Weights are addressed affinely, `w[base + k*SK + c*SC + u*SU + v*SV]`, so
//! the same kernel runs the forward pass (OIHW as is) and the input gradient
//! (flipped kernel, channels swapped: negative `SU`, `SV`).
//!
//! `out += correlation`, like [`super::direct::Correlation::run`]: every output of
//! the tile is loaded once, accumulated in registers, and stored once.

use super::super::simd::x86::{Avx2, Avx512, Vector};
use super::super::simd::{level, Level};
use super::direct::Correlation;

/// `w[base + k*k_step + c*c_step + u*u_step + v*v_step]` is the weight of
/// output plane `k`, input plane `c`, tap `(u, v)`.
#[derive(Clone, Copy)]
pub(super) struct Taps {
    pub base: isize,
    pub k_step: isize,
    pub c_step: isize,
    pub u_step: isize,
    pub v_step: isize,
}

/// `out[k, p, q] += sum_{c, u, v} w(k, c, u, v) * inp[c, p*SH + u - PH, q + v - PW]`
/// through the widest vector kernel this CPU runs; `false` (nothing done)
/// when there is none or the column stride is not 1.
///
/// # Panics
///
/// If `out`, `inp` or the weights addressed by `taps` are out of bounds.
#[inline]
pub(super) fn correlate(
    corr: &Correlation,
    out: &mut [f32],
    outputs: usize,
    inp: &[f32],
    w: &[f32],
    taps: Taps,
) -> bool {
    let level = level();
    if corr.stride.1 != 1 || level == Level::Baseline {
        return false;
    }
    let (kh, kw) = corr.kernel;
    assert!(
        out.len() >= outputs * corr.out_h * corr.out_w,
        "conv: output too short"
    );
    assert!(
        inp.len() >= corr.inputs * corr.in_h * corr.in_w,
        "conv: input too short"
    );
    assert!(
        corr.out_w == corr.in_w + 2 * corr.pad.1 - kw + 1,
        "conv: width geometry"
    );
    assert!(
        corr.out_h == 0 || (corr.out_h - 1) * corr.stride.0 + kh <= corr.in_h + 2 * corr.pad.0,
        "conv: height geometry"
    );
    if outputs == 0 || corr.out_h == 0 || corr.out_w == 0 || corr.inputs == 0 {
        return true;
    }
    // Every weight index lies between the sums of each term's extremes.
    let (mut lo, mut hi) = (taps.base, taps.base);
    for (step, n) in [
        (taps.k_step, outputs),
        (taps.c_step, corr.inputs),
        (taps.u_step, kh),
        (taps.v_step, kw),
    ] {
        let last = step * (n as isize - 1);
        lo += last.min(0);
        hi += last.max(0);
    }
    assert!(
        lo >= 0 && hi < w.len() as isize,
        "conv: weight index out of bounds"
    );
    match level {
        // SAFETY: `level()` detected AVX-512F, AVX2 and FMA on this CPU; the
        // bounds of `out`, `inp` and every weight index are checked above.
        Level::Avx512 => unsafe {
            run_avx512(corr, out.as_mut_ptr(), outputs, inp.as_ptr(), w.as_ptr(), taps)
        },
        // SAFETY: as above, with AVX2 and FMA.
        Level::Avx2Fma => unsafe {
            run_avx2(corr, out.as_mut_ptr(), outputs, inp.as_ptr(), w.as_ptr(), taps)
        },
        Level::Baseline => unreachable!(),
    }
    true
}

/// [`super::im2col::col2im`] for a unit column stride, or `false` (nothing done)
/// without AVX2 + FMA or for other strides. Each row of `dx` is gathered in
/// registers from every `(u, v)` tap that writes it (a masked load per tap
/// and 8 or 16 columns) and stored once: no clearing pass, and no store is
/// reloaded right away (adding the taps' rows to `dx` one by one, as the
/// portable loop does, makes each row's store feed the next tap's load at a
/// one-column shift, which stalls store forwarding).
#[cfg(feature = "std")]
pub(super) fn col2im(g: &super::Conv2d, col: &[f32], dx_img: &mut [f32]) -> bool {
    if g.stride.1 != 1 || g.kernel.1 > GATHER_MAX_KW {
        return false;
    }
    assert!(col.len() >= g.col_len(), "conv: col too short");
    assert!(dx_img.len() >= g.input_len(), "conv: dx too short");
    let level = level();
    // SAFETY: the features of each kernel were detected on this CPU, and
    // the lengths `gather_rows` needs were asserted above.
    unsafe {
        match level {
            Level::Avx512 => gather_rows_avx512(g, col, dx_img),
            Level::Avx2Fma => gather_rows_avx2(g, col, dx_img),
            Level::Baseline => return false,
        }
    }
    true
}

#[cfg(feature = "std")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gather_rows_avx512(g: &super::Conv2d, col: &[f32], dx_img: &mut [f32]) {
    // SAFETY: the caller's contract is `gather_rows`'s; the features are on.
    unsafe { gather_rows::<Avx512>(g, col, dx_img) }
}

#[cfg(feature = "std")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gather_rows_avx2(g: &super::Conv2d, col: &[f32], dx_img: &mut [f32]) {
    // SAFETY: the caller's contract is `gather_rows`'s; the features are on.
    unsafe { gather_rows::<Avx2>(g, col, dx_img) }
}

/// The widest kernel [`col2im`] takes: its per-column masks live in arrays
/// of this size.
#[cfg(feature = "std")]
const GATHER_MAX_KW: usize = 16;

/// The body of [`col2im`]: `dx[c, y, x] = sum` of the `col` entries of taps
/// `(c, u, v)` at outputs `(p, q)` with `p*SH + u - PH = y`, `q + v - PW = x`.
/// Per vector of columns the mask and offset of each `v` are computed once.
///
/// # Safety
///
/// The CPU supports `V`; the column stride is 1; `KW <= GATHER_MAX_KW`;
/// `col` holds `g.col_len()` and `dx_img` `g.input_len()` elements.
#[cfg(feature = "std")]
#[inline(always)]
unsafe fn gather_rows<V: Vector>(g: &super::Conv2d, col: &[f32], dx_img: &mut [f32]) {
    let (h, wd) = (g.in_h, g.in_w);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (kh, kw) = g.kernel;
    let (sh, (ph, pw)) = (g.stride.0, g.pad);
    let oplane = oh_n * ow_n;
    let mut masks = [V::mask(0, 0); GATHER_MAX_KW];
    let mut offsets = [0isize; GATHER_MAX_KW];
    let mut any = [false; GATHER_MAX_KW];
    for x0 in (0..wd).step_by(V::LANES) {
        // Lane l of tap column v reads output column q = x0 + l + PW - v,
        // for the lanes where that is in 0..OW and x0 + l < W.
        for v in 0..kw {
            let lo = (v as isize - (x0 + pw) as isize).max(0);
            let hi = (ow_n as isize + v as isize - (x0 + pw) as isize)
                .min(V::LANES as isize)
                .min((wd - x0) as isize);
            any[v] = lo < hi;
            masks[v] = V::mask(lo, hi);
            offsets[v] = (v * oplane + x0 + pw) as isize - v as isize;
        }
        let store_mask = V::mask(0, (wd - x0) as isize);
        for c in 0..g.in_channels {
            for y in 0..h {
                let mut acc = V::zero();
                for u in 0..kh {
                    // Output row p with p*SH + u - PH = y, if any.
                    let Some(t) = (y + ph).checked_sub(u) else {
                        continue;
                    };
                    if t % sh != 0 || t / sh >= oh_n {
                        continue;
                    }
                    let row = ((c * kh + u) * kw * oplane + t / sh * ow_n) as isize;
                    for v in 0..kw {
                        if any[v] {
                            // SAFETY: only the lanes of `masks[v]` are read,
                            // for which `q` is in 0..OW: inside this tap's
                            // row of `col` (length asserted by the caller);
                            // `wrapping_offset` keeps the lane-0 address
                            // computable even where it is not.
                            let x =
                                unsafe { V::load(col.as_ptr().wrapping_offset(row + offsets[v]), masks[v]) };
                            // SAFETY: the CPU supports `V` (caller).
                            acc = unsafe { V::add(acc, x) };
                        }
                    }
                }
                // SAFETY: lanes `x0 + l < W` of row `y` of plane `c` of `dx`.
                unsafe { V::store(dx_img.as_mut_ptr().add((c * h + y) * wd + x0), store_mask, acc) };
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512(
    corr: &Correlation,
    out: *mut f32,
    outputs: usize,
    inp: *const f32,
    w: *const f32,
    t: Taps,
) {
    // SAFETY: the caller's contract is `run`'s, the features are enabled, and
    // a 16-lane vector spans at most 5 rows of 4 or more.
    unsafe {
        match corr.out_w {
            // One vector a row, tiles of 3 rows x up to 6 planes (18
            // accumulators, and the 6 weights broadcast once for the 3
            // rows). On a Zen 5 these beat the flattened tiles, whose 3
            // masked loads per tap are merged into one vector: LeNet's
            // conv2 input gradient (6 planes of 14x14) 10.2 us an image
            // against 3.3, a 1-to-6-channel 5x5 conv at 16x16 0.83 against
            // 0.43, 16 channels of 3x3 at 14x14 5.3 against 4.6. 8 planes
            // a tile (24 accumulators beside 8 broadcasts) spilled.
            8..=16 => run::<Avx512, 0, 3, 1, 6, 4>(corr, out, outputs, inp, w, t),
            4..8 => run::<Avx512, 5, 1, 1, 16, 12>(corr, out, outputs, inp, w, t),
            // Fewer than 8 planes leave the one-row tiles at 12 accumulators
            // or fewer: two rows a tile double them. LeNet's conv1 (6 planes
            // of 28x28 from one) took 1.38 us an image against 1.59 on a
            // Zen 5; 8 planes of ResNet's 28x28 measured 5% slower with two
            // rows (4 planes a tile), so they keep one.
            _ if outputs < 8 => run::<Avx512, 0, 2, 2, 6, 4>(corr, out, outputs, inp, w, t),
            _ => run::<Avx512, 0, 1, 2, 8, 6>(corr, out, outputs, inp, w, t),
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    corr: &Correlation,
    out: *mut f32,
    outputs: usize,
    inp: *const f32,
    w: *const f32,
    t: Taps,
) {
    // SAFETY: the caller's contract is `run`'s, the features are enabled, and
    // an 8-lane vector spans at most 2 rows of 8 or more, 3 rows of 4 or more.
    unsafe {
        match corr.out_w {
            8..16 => run::<Avx2, 2, 1, 1, 12, 8>(corr, out, outputs, inp, w, t),
            4..8 => run::<Avx2, 3, 1, 1, 12, 8>(corr, out, outputs, inp, w, t),
            _ => run::<Avx2, 0, 1, 2, 6, 4>(corr, out, outputs, inp, w, t),
        }
    }
}

/// Output planes in blocks of `BIG` while they last (see `take_big`), then
/// of `MID`, 4, 2 and 1 (`BIG` and `MID` at least 4); tiles of [`flat`]
/// vectors reading `S` row segments each, or if `S == 0` of [`block`]s of
/// `R` rows of `NQ` vectors.
///
/// # Safety
///
/// The CPU supports `V`; `out` holds `outputs` planes, `inp` `corr.inputs`
/// planes, and every weight index `taps` gives for `k < outputs` is inside `w`.
#[inline(always)]
unsafe fn run<
    V: Vector,
    const S: usize,
    const R: usize,
    const NQ: usize,
    const BIG: usize,
    const MID: usize,
>(
    corr: &Correlation,
    out: *mut f32,
    outputs: usize,
    inp: *const f32,
    w: *const f32,
    t: Taps,
) {
    let oplane = corr.out_h * corr.out_w;
    let mut o = 0;
    // A block of `BIG` is taken unless it would leave a few planes (fewer
    // than `MID`) that two or more `MID` blocks cover instead: 16 planes as
    // 8 + 8 rather than 12 + 4, whose 4 accumulators (for one vector a
    // plane) cannot hide the FMA's latency.
    let take_big = |rest: usize| rest >= BIG && (rest - BIG == 0 || rest - BIG >= MID || rest < 2 * MID);
    // SAFETY: each block covers planes `o..o + NO` with `o + NO <= outputs`,
    // and its weights are those of output planes `o + k`.
    unsafe {
        let at = |o: usize| (out.add(o * oplane), w.offset(o as isize * t.k_step));
        while take_big(outputs - o) {
            let (out, w) = at(o);
            if S > 0 {
                flat::<V, BIG, S>(corr, out, inp, w, t);
            } else {
                block::<V, BIG, R, NQ>(corr, out, inp, w, t);
            }
            o += BIG;
        }
        while outputs - o >= MID {
            let (out, w) = at(o);
            if S > 0 {
                flat::<V, MID, S>(corr, out, inp, w, t);
            } else {
                block::<V, MID, R, NQ>(corr, out, inp, w, t);
            }
            o += MID;
        }
        while outputs - o >= 4 {
            let (out, w) = at(o);
            if S > 0 {
                flat::<V, 4, S>(corr, out, inp, w, t);
            } else {
                block::<V, 4, R, NQ>(corr, out, inp, w, t);
            }
            o += 4;
        }
        if outputs - o >= 2 {
            let (out, w) = at(o);
            if S > 0 {
                flat::<V, 2, S>(corr, out, inp, w, t);
            } else {
                block::<V, 2, R, NQ>(corr, out, inp, w, t);
            }
            o += 2;
        }
        if outputs - o >= 1 {
            let (out, w) = at(o);
            if S > 0 {
                flat::<V, 1, S>(corr, out, inp, w, t);
            } else {
                block::<V, 1, R, NQ>(corr, out, inp, w, t);
            }
        }
    }
}

/// `NO` output planes, tiles of `R` rows x `NQ * V::LANES` columns: per
/// tap, each row's `NQ` input vectors are loaded once and each of the `NO`
/// weights is broadcast once for all `R * NQ` of them.
///
/// # Safety
///
/// As [`run`], for the `NO` planes at `out` and the weights at `w` (`base`
/// not yet added).
#[inline(always)]
unsafe fn block<V: Vector, const NO: usize, const R: usize, const NQ: usize>(
    corr: &Correlation,
    out: *mut f32,
    inp: *const f32,
    w: *const f32,
    t: Taps,
) {
    let lanes = V::LANES as isize;
    let (ow, wd) = (corr.out_w as isize, corr.in_w as isize);
    let oplane = corr.out_h * corr.out_w;
    let plane = corr.in_h * corr.in_w;
    let (sh, ph, pw) = (corr.stride.0, corr.pad.0, corr.pad.1 as isize);
    let w = w.wrapping_offset(t.base);
    for p0 in (0..corr.out_h).step_by(R) {
        // Rows past the plane's end have an empty tap range and an empty
        // store mask: computed on zeros, never read or written.
        let live: [bool; R] = core::array::from_fn(|r| p0 + r < corr.out_h);
        let taps: [(usize, usize); R] =
            core::array::from_fn(|r| if live[r] { corr.tap_rows(p0 + r) } else { (0, 0) });
        let (u_min, u_max) = (
            taps.iter().map(|t| t.0).min().unwrap_or(0),
            taps.iter().map(|t| t.1).max().unwrap_or(0),
        );
        let out_row = |k: usize, r: usize| out.wrapping_add(k * oplane + (p0 + r) * corr.out_w);
        let mut q0 = 0;
        while q0 < ow {
            // Lanes of vector j inside the row: j*L + l < OW - q0.
            let left = ow - q0;
            let masks: [[V::Mask; NQ]; R] = core::array::from_fn(|r| {
                core::array::from_fn(|j| {
                    if live[r] {
                        V::mask(0, left - j as isize * lanes)
                    } else {
                        V::mask(0, 0)
                    }
                })
            });
            let mut acc = [[[V::zero(); NQ]; R]; NO];
            for (k, acc_k) in acc.iter_mut().enumerate() {
                for (r, acc_r) in acc_k.iter_mut().enumerate() {
                    for (j, a) in acc_r.iter_mut().enumerate() {
                        let at = out_row(k, r).wrapping_offset(q0 + j as isize * lanes);
                        // SAFETY: the mask keeps lanes inside output row
                        // `p0 + r` of plane `k` (none past the plane).
                        *a = unsafe { V::load(at, masks[r][j]) };
                    }
                }
            }
            for v in 0..corr.kernel.1 {
                // Input column of lane l of vector j: s + j*L + l, read only
                // if inside the input row and the lane inside the output row.
                let s = q0 + v as isize - pw;
                let cols: [V::Mask; NQ] = core::array::from_fn(|j| {
                    let sj = s + j as isize * lanes;
                    V::mask(-sj, (wd - sj).min(left - j as isize * lanes))
                });
                let w_v = w.wrapping_offset(v as isize * t.v_step);
                for c in 0..corr.inputs {
                    let w_c = w_v.wrapping_offset(c as isize * t.c_step);
                    let inp_c = inp.wrapping_add(c * plane);
                    for u in u_min..u_max {
                        let w_u = w_c.wrapping_offset(u as isize * t.u_step);
                        // SAFETY: `correlate` checked every weight index.
                        let wk: [V::Vec; NO] = core::array::from_fn(|k| unsafe {
                            V::splat(w_u.wrapping_offset(k as isize * t.k_step))
                        });
                        for r in 0..R {
                            if !(taps[r].0..taps[r].1).contains(&u) {
                                continue;
                            }
                            let row = inp_c.wrapping_add(((p0 + r) * sh + u - ph) * corr.in_w);
                            let xs: [V::Vec; NQ] = core::array::from_fn(|j| {
                                // SAFETY: row `(p0 + r)*SH + u - PH` is inside
                                // the input (`tap_rows`), and the mask keeps
                                // its columns.
                                unsafe { V::load(row.wrapping_offset(s + j as isize * lanes), cols[j]) }
                            });
                            for (acc_k, &wk) in acc.iter_mut().zip(&wk) {
                                for (a, &x) in acc_k[r].iter_mut().zip(&xs) {
                                    // SAFETY: the CPU supports `V`.
                                    *a = unsafe { V::fmadd(wk, x, *a) };
                                }
                            }
                        }
                    }
                }
            }
            for (k, acc_k) in acc.iter().enumerate() {
                for (r, acc_r) in acc_k.iter().enumerate() {
                    for (j, &a) in acc_r.iter().enumerate() {
                        let at = out_row(k, r).wrapping_offset(q0 + j as isize * lanes);
                        // SAFETY: as for the load above.
                        unsafe { V::store(at, masks[r][j], a) };
                    }
                }
            }
            q0 += NQ as isize * lanes;
        }
    }
}

/// `NO` output planes, each tile one vector of `V::LANES` consecutive
/// outputs of the flattened plane (`p * OW + q`), which may span several
/// output rows: for rows narrower than a vector or two, fewer lanes idle
/// than in [`block`]. Each row segment of a vector is its own masked load
/// per tap (always `S` of them, unused ones with an empty mask, so the inner
/// loop does not branch), merged into one vector that feeds `NO`
/// multiply-adds.
///
/// # Safety
///
/// As [`block`], and a vector spans at most `S` output rows.
#[inline(always)]
unsafe fn flat<V: Vector, const NO: usize, const S: usize>(
    corr: &Correlation,
    out: *mut f32,
    inp: *const f32,
    w: *const f32,
    t: Taps,
) {
    let lanes = V::LANES;
    let (ow, wd, h) = (corr.out_w, corr.in_w as isize, corr.in_h as isize);
    let oplane = corr.out_h * corr.out_w;
    let plane = corr.in_h * corr.in_w;
    let (sh, ph, pw) = (corr.stride.0 as isize, corr.pad.0 as isize, corr.pad.1 as isize);
    let w = w.wrapping_offset(t.base);
    let mut t0 = 0;
    while t0 < oplane {
        let n = lanes.min(oplane - t0);
        // Segments: output row, column of lane 0 in that row, and lanes
        // `lo..hi` (empty for unused ones).
        let mut segs = [(0isize, 0isize, 0isize, 0isize); S];
        let mut l = 0;
        for seg in &mut segs {
            if l < n {
                let (p, q) = ((t0 + l) / ow, (t0 + l) % ow);
                let len = (ow - q).min(n - l);
                *seg = (
                    p as isize,
                    q as isize - l as isize,
                    l as isize,
                    (l + len) as isize,
                );
                l += len;
            }
        }
        debug_assert!(l == n, "a vector spans more than S rows");
        let omask = V::mask(0, n as isize);
        let mut acc = [V::zero(); NO];
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: the mask keeps lanes `t0..t0 + n` of plane `k`.
            *a = unsafe { V::load(out.wrapping_add(k * oplane + t0), omask) };
        }
        for u in 0..corr.kernel.0 {
            // Whether each segment's input row is inside, and its offset.
            let rows: [(bool, isize); S] = core::array::from_fn(|i| {
                let r = segs[i].0 * sh + u as isize - ph;
                (segs[i].2 < segs[i].3 && (0..h).contains(&r), r * wd)
            });
            if !rows.iter().any(|r| r.0) {
                continue;
            }
            for v in 0..corr.kernel.1 {
                // Per segment: the offset of lane 0 in an input plane and
                // the lanes whose input row and column are inside.
                let loads: [(isize, V::Mask); S] = core::array::from_fn(|i| {
                    let (_, q_lane0, lo, hi) = segs[i];
                    let (inside, row) = rows[i];
                    let col0 = q_lane0 + v as isize - pw;
                    let hi = if inside { hi.min(wd - col0) } else { 0 };
                    (if inside { row + col0 } else { 0 }, V::mask(lo.max(-col0), hi))
                });
                let w_uv = w.wrapping_offset(u as isize * t.u_step + v as isize * t.v_step);
                for c in 0..corr.inputs {
                    let inp_c = inp.wrapping_add(c * plane);
                    // SAFETY: each mask keeps only lanes whose row and column
                    // are inside the input.
                    let mut x = unsafe { V::load(inp_c.wrapping_offset(loads[0].0), loads[0].1) };
                    for &(off, m) in &loads[1..] {
                        // SAFETY: as above.
                        x = unsafe { V::load_merge(x, inp_c.wrapping_offset(off), m) };
                    }
                    let w_c = w_uv.wrapping_offset(c as isize * t.c_step);
                    for (k, a) in acc.iter_mut().enumerate() {
                        // SAFETY: `correlate` checked every weight index; the
                        // CPU supports `V`.
                        unsafe { *a = V::fmadd(V::splat(w_c.wrapping_offset(k as isize * t.k_step)), x, *a) };
                    }
                }
            }
        }
        for (k, &a) in acc.iter().enumerate() {
            // SAFETY: as for the load above.
            unsafe { V::store(out.wrapping_add(k * oplane + t0), omask, a) };
        }
        t0 += lanes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close32, Rng};

    type Kernel = unsafe fn(&Correlation, *mut f32, usize, *const f32, *const f32, Taps);

    /// Both kernels (whichever this CPU runs) against the portable
    /// correlation, over random shapes covering every tile path: rows and
    /// flattened tiles, each channel block, padding on every side, row
    /// strides, and the flipped taps of the input gradient.
    #[test]
    fn kernels_match_portable_correlation() {
        let mut rng = Rng::new(11);
        let mut kernels: Vec<(&str, Kernel)> = Vec::new();
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(("avx2", run_avx2));
            if is_x86_feature_detected!("avx512f") {
                kernels.push(("avx512", run_avx512));
            }
        }
        for case in 0..400 {
            let (kh, kw) = (1 + rng.below(5), 1 + rng.below(5));
            let (ph, pw) = (rng.below(kh), rng.below(kw));
            let sh = 1 + rng.below(2);
            let in_h = (kh + rng.below(6)).saturating_sub(2 * ph).max(1);
            let in_w = (kw + rng.below(36)).saturating_sub(2 * pw).max(1);
            let corr = Correlation {
                inputs: 1 + rng.below(4),
                in_h,
                in_w,
                out_h: (in_h + 2 * ph - kh) / sh + 1,
                out_w: in_w + 2 * pw - kw + 1,
                kernel: (kh, kw),
                stride: (sh, 1),
                pad: (ph, pw),
            };
            let outputs = 1 + rng.below(40);
            let (c_n, flen) = (corr.inputs, corr.inputs * kh * kw);
            let inp = rng.vec(c_n * in_h * in_w);
            let out0 = rng.vec(outputs * corr.out_h * corr.out_w);
            // Forward taps over `w[outputs, inputs, kh, kw]`; flipped taps
            // over `w[inputs, outputs, kh, kw]` as the input gradient reads.
            let w = rng.vec(outputs * flen);
            let flipped = case % 2 == 1;
            let taps = if flipped {
                Taps {
                    base: ((kh - 1) * kw + kw - 1) as isize,
                    k_step: (kh * kw) as isize,
                    c_step: (outputs * kh * kw) as isize,
                    u_step: -(kw as isize),
                    v_step: -1,
                }
            } else {
                Taps {
                    base: 0,
                    k_step: flen as isize,
                    c_step: (kh * kw) as isize,
                    u_step: kw as isize,
                    v_step: 1,
                }
            };
            let weight = |k: usize, c: usize, u: usize, v: usize| {
                let at = taps.base
                    + k as isize * taps.k_step
                    + c as isize * taps.c_step
                    + u as isize * taps.u_step
                    + v as isize * taps.v_step;
                w[at as usize]
            };
            let mut expected = out0.clone();
            corr.run::<false>(&mut expected, outputs, &inp, weight);
            for &(name, kernel) in &kernels {
                let mut out = out0.clone();
                // SAFETY: the CPU has the kernel's features (checked above);
                // the lengths are those `correlate` checks.
                unsafe { kernel(&corr, out.as_mut_ptr(), outputs, inp.as_ptr(), w.as_ptr(), taps) };
                let (o, g) = (
                    outputs,
                    (
                        corr.inputs,
                        corr.in_h,
                        corr.in_w,
                        corr.out_h,
                        corr.out_w,
                        corr.kernel,
                        corr.stride,
                        corr.pad,
                    ),
                );
                assert_close32(&format!("{name} case {case} {o} {g:?}"), &out, &expected, 1e-5);
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod col2im_tests {
    use super::super::Conv2d;
    use super::*;
    use crate::ops::testing::Rng;

    type Gather = unsafe fn(&Conv2d, &[f32], &mut [f32]);

    /// The gathering col2im of both vector widths against the portable
    /// scatter, bit for bit (both add each element's taps in the same
    /// order, starting from zero), over random unit-column-stride shapes:
    /// padding on every side, row strides, rows wider than a vector.
    #[test]
    fn gather_matches_portable_col2im() {
        let mut rng = Rng::new(5);
        let mut kernels: Vec<(&str, Gather)> = Vec::new();
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(("avx2", gather_rows_avx2));
            if is_x86_feature_detected!("avx512f") {
                kernels.push(("avx512", gather_rows_avx512));
            }
        }
        for _ in 0..300 {
            let (kh, kw) = (1 + rng.below(5), 1 + rng.below(6));
            let (ph, pw) = (rng.below(kh + 1), rng.below(kw + 1));
            let g = Conv2d {
                in_channels: 1 + rng.below(3),
                in_h: (kh + rng.below(8)).saturating_sub(2 * ph).max(1),
                in_w: (kw + rng.below(40)).saturating_sub(2 * pw).max(1),
                out_channels: 1,
                kernel: (kh, kw),
                stride: (1 + rng.below(3), 1),
                pad: (ph, pw),
            };
            let col = rng.vec(g.col_len());
            let mut expected = rng.vec(g.input_len());
            super::super::im2col::col2im_any(&g, &col, &mut expected);
            for &(name, kernel) in &kernels {
                let mut dx = rng.vec(g.input_len());
                // SAFETY: the CPU has the kernel's features (checked above);
                // `col` and `dx` have the lengths `gather_rows` needs, the
                // column stride is 1 and the kernel is at most 6 wide.
                unsafe { kernel(&g, &col, &mut dx) };
                assert_eq!(dx, expected, "{name} on {g:?}");
            }
        }
    }
}
