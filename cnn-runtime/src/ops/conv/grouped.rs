//! Grouped convolution, PyTorch `nn.Conv2d(.., groups = G)`: the `C` input
//! and `O` output channels are split into `G` equal groups, and output group
//! `k` sees only input group `k` (depthwise when `G = C`). Each group of each
//! image is an ordinary convolution of its channel slices, so this runs the
//! entry points of `conv.rs` (and so every fast path) once per image and
//! group: `x` is `[N, C, H, W]`, `w` is `[O, C/G, KH, KW]` (group `k`'s
//! filters are rows `k*O/G ..`), `b` is `[O]`, `y` is `[N, O, OH, OW]`.
//!
//! `g` is the geometry of ONE group (`in_channels = C/G`,
//! `out_channels = O/G`); the GEMM variants need a `col` for one group.
//! Depthwise convolutions (one input and one output channel per group) take
//! their own kernel on every path ([`super::depthwise`]).

use super::{depthwise, Conv2d};
use crate::quant::Activation;

/// The slices of image `i`, group `k`: `(x, w, b, y)` offsets and lengths.
struct Slices {
    x: (usize, usize),
    w: (usize, usize),
    b: (usize, usize),
    y: (usize, usize),
}

fn slices(g: &Conv2d, groups: usize, i: usize, k: usize) -> Slices {
    let (x_len, y_len) = (g.input_len(), g.output_len());
    Slices {
        x: ((i * groups + k) * x_len, x_len),
        w: (k * g.weight_len(), g.weight_len()),
        b: (k * g.out_channels, g.out_channels),
        y: ((i * groups + k) * y_len, y_len),
    }
}

fn part(v: &[f32], (at, len): (usize, usize)) -> &[f32] {
    &v[at..at + len]
}

fn part_mut(v: &mut [f32], (at, len): (usize, usize)) -> &mut [f32] {
    &mut v[at..at + len]
}

/// Checks the lengths of whole tensors against `groups` groups of `g`.
fn check(g: &Conv2d, groups: usize, n: usize, x: usize, w: usize, b: Option<usize>, y: usize) {
    assert!(groups >= 1, "conv: groups must be at least 1");
    assert_eq!(
        x,
        n * groups * g.input_len(),
        "conv: x has {x} elements, expected n * C * H * W"
    );
    assert_eq!(
        w,
        groups * g.weight_len(),
        "conv: w has {w} elements, expected O * C/G * KH * KW"
    );
    if let Some(b) = b {
        assert_eq!(
            b,
            groups * g.out_channels,
            "conv: bias has {b} elements, expected O"
        );
    }
    assert_eq!(
        y,
        n * groups * g.output_len(),
        "conv: y has {y} elements, expected n * O * OH * OW"
    );
}

/// [`super::forward`] with `groups` groups. Allocates nothing.
pub fn forward_grouped(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    check(g, groups, n, x.len(), w.len(), b.map(<[f32]>::len), y.len());
    if depthwise::is_depthwise(g) {
        return depthwise::forward(g, groups, n, x, w, b, Activation::None, y);
    }
    for i in 0..n {
        for k in 0..groups {
            let s = slices(g, groups, i, k);
            let b = b.map(|b| part(b, s.b));
            super::forward(g, 1, part(x, s.x), part(w, s.w), b, part_mut(y, s.y));
        }
    }
}

/// [`super::forward_gemm`] with `groups` groups; `col` is for one group.
#[allow(clippy::too_many_arguments)]
pub fn forward_grouped_gemm(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) {
    forward_grouped_gemm_act(g, groups, n, x, w, b, Activation::None, y, col);
}

/// [`forward_grouped_gemm`], then `act` (in the depthwise tiles' store
/// where they run).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_grouped_gemm_act(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    col: &mut [f32],
) {
    check(g, groups, n, x.len(), w.len(), b.map(<[f32]>::len), y.len());
    if depthwise::is_depthwise(g) {
        return depthwise::forward(g, groups, n, x, w, b, act, y);
    }
    for i in 0..n {
        for k in 0..groups {
            let s = slices(g, groups, i, k);
            let b = b.map(|b| part(b, s.b));
            super::forward_gemm(g, 1, part(x, s.x), part(w, s.w), b, part_mut(y, s.y), col);
        }
    }
    act.apply(y);
}

/// [`super::backward`] with `groups` groups: `dw`, `db` accumulated, `dx`
/// overwritten. Allocates nothing.
#[allow(clippy::too_many_arguments)]
pub fn backward_grouped(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
) {
    check(
        g,
        groups,
        n,
        x.len(),
        w.len(),
        db.as_deref().map(<[f32]>::len),
        dy.len(),
    );
    assert_eq!(
        dw.len(),
        w.len(),
        "conv: dw has {} elements, expected {}",
        dw.len(),
        w.len()
    );
    if let Some(dx) = dx.as_deref() {
        assert_eq!(
            dx.len(),
            x.len(),
            "conv: dx has {} elements, expected {}",
            dx.len(),
            x.len()
        );
    }
    if depthwise::is_depthwise(g) {
        return depthwise::backward(g, groups, n, x, w, dy, dw, db, dx);
    }
    for i in 0..n {
        for k in 0..groups {
            let s = slices(g, groups, i, k);
            let db = db.as_deref_mut().map(|db| part_mut(db, s.b));
            let dx = dx.as_deref_mut().map(|dx| part_mut(dx, s.x));
            super::backward(
                g,
                1,
                part(x, s.x),
                part(w, s.w),
                part(dy, s.y),
                part_mut(dw, s.w),
                db,
                dx,
            );
        }
    }
}

/// [`super::backward_gemm`] with `groups` groups; `col` is for one group.
#[allow(clippy::too_many_arguments)]
pub fn backward_grouped_gemm(
    g: &Conv2d,
    groups: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
    col: &mut [f32],
) {
    check(
        g,
        groups,
        n,
        x.len(),
        w.len(),
        db.as_deref().map(<[f32]>::len),
        dy.len(),
    );
    assert_eq!(
        dw.len(),
        w.len(),
        "conv: dw has {} elements, expected {}",
        dw.len(),
        w.len()
    );
    if let Some(dx) = dx.as_deref() {
        assert_eq!(
            dx.len(),
            x.len(),
            "conv: dx has {} elements, expected {}",
            dx.len(),
            x.len()
        );
    }
    if depthwise::is_depthwise(g) {
        return depthwise::backward(g, groups, n, x, w, dy, dw, db, dx);
    }
    for i in 0..n {
        for k in 0..groups {
            let s = slices(g, groups, i, k);
            let db = db.as_deref_mut().map(|db| part_mut(db, s.b));
            let dx = dx.as_deref_mut().map(|dx| part_mut(dx, s.x));
            super::backward_gemm(
                g,
                1,
                part(x, s.x),
                part(w, s.w),
                part(dy, s.y),
                part_mut(dw, s.w),
                db,
                dx,
                col,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Rng;

    /// The ungrouped weights equal to `w` on the diagonal blocks, zero
    /// elsewhere: an ordinary conv with them is the grouped conv.
    fn block_diagonal(g: &Conv2d, groups: usize, w: &[f32]) -> Vec<f32> {
        let (cg, og, area) = (g.in_channels, g.out_channels, g.kernel.0 * g.kernel.1);
        let c = cg * groups;
        let mut full = vec![0.0; og * groups * c * area];
        for o in 0..og * groups {
            let k = o / og;
            for ci in 0..cg {
                let src = (o * cg + ci) * area;
                let dst = (o * c + k * cg + ci) * area;
                full[dst..dst + area].copy_from_slice(&w[src..src + area]);
            }
        }
        full
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn grouped_equals_block_diagonal_ungrouped() {
        let mut rng = Rng::new(9);
        // (C/G, O/G, G): two groups, depthwise, depthwise with multiplier 2.
        for (cg, og, groups, stride, pad) in [(2, 3, 2, 1, 1), (1, 1, 4, 2, 1), (1, 2, 3, 1, 0)] {
            let g = Conv2d {
                in_channels: cg,
                in_h: 7,
                in_w: 6,
                out_channels: og,
                kernel: (3, 3),
                stride: (stride, stride),
                pad: (pad, pad),
            };
            let full = Conv2d {
                in_channels: cg * groups,
                out_channels: og * groups,
                ..g
            };
            let n = 3;
            let x = rng.vec(n * full.input_len());
            let w = rng.vec(groups * g.weight_len());
            let b = rng.vec(groups * og);
            let dy = rng.vec(n * full.output_len());
            let wf = block_diagonal(&g, groups, &w);

            let mut expected = vec![0.0; n * full.output_len()];
            super::super::forward(&full, n, &x, &wf, Some(&b), &mut expected);
            let mut y = vec![0.0; expected.len()];
            forward_grouped(&g, groups, n, &x, &w, Some(&b), &mut y);
            close(&y, &expected, "y");
            let mut col = vec![0.0; 4096];
            let mut y_gemm = vec![0.0; expected.len()];
            forward_grouped_gemm(&g, groups, n, &x, &w, Some(&b), &mut y_gemm, &mut col);
            close(&y_gemm, &expected, "y (gemm)");

            let (mut dwf, mut dbf, mut dxf) = (vec![0.0; wf.len()], vec![0.0; b.len()], vec![0.0; x.len()]);
            super::super::backward(&full, n, &x, &wf, &dy, &mut dwf, Some(&mut dbf), Some(&mut dxf));
            let expected_dw = {
                // The diagonal blocks of the full weight gradient.
                let (area, c) = (9, cg * groups);
                let mut dw = vec![0.0; w.len()];
                for o in 0..og * groups {
                    let k = o / og;
                    for ci in 0..cg {
                        let src = (o * c + k * cg + ci) * area;
                        let dst = (o * cg + ci) * area;
                        dw[dst..dst + area].copy_from_slice(&dwf[src..src + area]);
                    }
                }
                dw
            };
            for gemm in [false, true] {
                let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; x.len()]);
                if gemm {
                    backward_grouped_gemm(
                        &g,
                        groups,
                        n,
                        &x,
                        &w,
                        &dy,
                        &mut dw,
                        Some(&mut db),
                        Some(&mut dx),
                        &mut col,
                    );
                } else {
                    backward_grouped(&g, groups, n, &x, &w, &dy, &mut dw, Some(&mut db), Some(&mut dx));
                }
                close(&dw, &expected_dw, "dw");
                close(&db, &dbf, "db");
                close(&dx, &dxf, "dx");
            }
        }
    }
}
