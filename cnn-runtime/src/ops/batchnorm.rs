//! Batch normalization, PyTorch's `nn.BatchNorm2d` (per channel over the
//! batch and `H x W`) and `nn.BatchNorm1d` (per feature over the batch; the
//! same kernels with `s = 1`), NCHW row-major with the batch outermost.
//!
//! Training normalises with the statistics of the whole batch (biased
//! variance), which may be split into shares on several threads: each share
//! computes partial sums, an [`Exchange`](crate::network::Exchange) adds
//! them in a fixed order, and every share continues with the same totals.
//! The mean is exchanged first, then the sum of squared deviations from it
//! (two exact passes, no `E[x^2] - E[x]^2` cancellation). The backward pass
//! exchanges `sum(dy)` and `sum(dy * x_hat)` the same way:
//!
//! ```text
//! x_hat = (x - mean) / sqrt(var + eps)        y = gamma * x_hat + beta
//! dbeta = sum(dy)    dgamma = sum(dy * x_hat)
//! dx = gamma / sqrt(var + eps) * (dy - dbeta / N - x_hat * dgamma / N)
//! ```
//!
//! Inference uses the running statistics: `y = gamma * (x - running_mean)
//! / sqrt(running_var + eps) + beta`, in place.

use super::simd::multiversion;

/// The parameters of one layer's pass: `n` examples, `c` channels of `s`
/// elements each.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Examples.
    pub n: usize,
    /// Channels (or features).
    pub c: usize,
    /// Elements per channel of one example (`H * W`, 1 after `flatten`).
    pub s: usize,
}

impl Geometry {
    fn check(&self, what: &str, len: usize) {
        assert_eq!(
            len,
            self.n * self.c * self.s,
            "batchnorm: {what} has {len} elements, expected {} x {} x {}",
            self.n,
            self.c,
            self.s
        );
    }

    /// The `s` elements of channel `ch` in example `i`.
    fn run(&self, i: usize, ch: usize) -> core::ops::Range<usize> {
        let start = (i * self.c + ch) * self.s;
        start..start + self.s
    }
}

/// Lanes of the f64 accumulators in [`sums_f64`].
const SUM_LANES: usize = 8;

/// `(sum of f(a_i, b_i).0, sum of f(a_i, b_i).1)` over the common length of
/// `a` and `b`, in f64, accumulated in [`SUM_LANES`] independent lanes
/// (added pairwise at the end, the tail last) so the loop vectorizes
/// instead of waiting on one add after another.
#[inline(always)]
fn sums_f64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f64, f64)) -> (f64, f64) {
    let mut acc = [[0.0f64; SUM_LANES]; 2];
    let (ca, cb) = (a.chunks_exact(SUM_LANES), b.chunks_exact(SUM_LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for l in 0..SUM_LANES {
            let (p, q) = f(xa[l], xb[l]);
            acc[0][l] += p;
            acc[1][l] += q;
        }
    }
    let mut tail = (0.0f64, 0.0f64);
    for (&xa, &xb) in ta.iter().zip(tb) {
        let (p, q) = f(xa, xb);
        tail.0 += p;
        tail.1 += q;
    }
    let total = |a: &[f64; SUM_LANES]| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    (total(&acc[0]) + tail.0, total(&acc[1]) + tail.1)
}

multiversion! {
    /// Partial sums for the mean: `sums[0]` gets the element count per
    /// channel (`n * s`), `sums[1 + ch]` the sum of channel `ch`.
    pub fn sum(g: &Geometry, x: &[f32], sums: &mut [f64]) => sum_body
}

#[inline(always)]
fn sum_body<const FMA: bool>(g: &Geometry, x: &[f32], sums: &mut [f64]) {
    g.check("x", x.len());
    assert_eq!(sums.len(), 1 + g.c, "batchnorm: sums has the wrong length");
    sums[0] = (g.n * g.s) as f64;
    for ch in 0..g.c {
        let mut total = 0.0f64;
        for i in 0..g.n {
            let run = &x[g.run(i, ch)];
            total += sums_f64(run, run, |v, _| (v as f64, 0.0)).0;
        }
        sums[1 + ch] = total;
    }
}

multiversion! {
    /// Partial sums of squared deviations from `mean`, per channel.
    pub fn sum_squares(g: &Geometry, x: &[f32], mean: &[f32], sums: &mut [f64]) => sum_squares_body
}

#[inline(always)]
fn sum_squares_body<const FMA: bool>(g: &Geometry, x: &[f32], mean: &[f32], sums: &mut [f64]) {
    g.check("x", x.len());
    assert_eq!(sums.len(), g.c, "batchnorm: sums has the wrong length");
    for ch in 0..g.c {
        let m = mean[ch] as f64;
        let mut total = 0.0f64;
        for i in 0..g.n {
            let run = &x[g.run(i, ch)];
            total += sums_f64(run, run, |v, _| ((v as f64 - m) * (v as f64 - m), 0.0)).0;
        }
        sums[ch] = total;
    }
}

/// The mean of each channel from the exchanged sums; `count` is the
/// element count per channel of the whole batch.
pub fn finish_mean(count: f64, sums: &[f64], mean: &mut [f32]) {
    for (m, &s) in mean.iter_mut().zip(sums) {
        *m = (s / count) as f32;
    }
}

/// The biased variance and `1 / sqrt(var + eps)` of each channel from the
/// exchanged sums of squared deviations.
///
/// # Panics
///
/// If `count` is 1 (one value per channel), which PyTorch refuses too:
/// "Expected more than 1 value per channel when training".
pub fn finish_var(count: f64, eps: f32, squares: &[f64], var: &mut [f32], invstd: &mut [f32]) {
    assert!(
        count > 1.0,
        "batchnorm: expected more than 1 value per channel when training (a batch of one example \
         after flatten: PyTorch refuses it too)"
    );
    for ((v, inv), &q) in var.iter_mut().zip(invstd.iter_mut()).zip(squares) {
        let variance = q / count;
        *v = variance as f32;
        *inv = (1.0 / libm::sqrt(variance + eps as f64)) as f32;
    }
}

multiversion! {
    /// Training forward: `y = gamma * (x - mean) * invstd + beta`.
    pub fn normalize(
        g: &Geometry,
        x: &[f32],
        mean: &[f32],
        invstd: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
    ) => normalize_body
}

#[inline(always)]
fn normalize_body<const FMA: bool>(
    g: &Geometry,
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
) {
    g.check("x", x.len());
    g.check("y", y.len());
    for i in 0..g.n {
        for ch in 0..g.c {
            let scale = gamma[ch] * invstd[ch];
            let shift = beta[ch] - mean[ch] * scale;
            let r = g.run(i, ch);
            for (y, &x) in y[r.clone()].iter_mut().zip(&x[r]) {
                *y = x * scale + shift;
            }
        }
    }
}

multiversion! {
    /// Backward partial sums: `sums[ch]` gets `sum(dy)` and `sums[c + ch]`
    /// `sum(dy * x_hat)` of channel `ch` over this share.
    pub fn grad_sums(g: &Geometry, x: &[f32], mean: &[f32], invstd: &[f32], dy: &[f32], sums: &mut [f64]) => grad_sums_body
}

#[inline(always)]
fn grad_sums_body<const FMA: bool>(
    g: &Geometry,
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    dy: &[f32],
    sums: &mut [f64],
) {
    g.check("x", x.len());
    g.check("dy", dy.len());
    assert_eq!(sums.len(), 2 * g.c, "batchnorm: sums has the wrong length");
    for ch in 0..g.c {
        let (m, inv) = (mean[ch] as f64, invstd[ch] as f64);
        let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
        for i in 0..g.n {
            let r = g.run(i, ch);
            let (a, b) = sums_f64(&dy[r.clone()], &x[r], |d, v| {
                (d as f64, d as f64 * (v as f64 - m) * inv)
            });
            sdy += a;
            sdyx += b;
        }
        sums[ch] = sdy;
        sums[g.c + ch] = sdyx;
    }
}

/// Adds this share's part of `dgamma` and `dbeta`: `sum(dy * x_hat)` and
/// `sum(dy)` of its own examples, as [`grad_sums`] lays them out (before
/// the exchange), so the shares' parameter gradients add up to the batch's.
pub fn param_grads(c: usize, local: &[f64], dgamma: &mut [f32], dbeta: &mut [f32]) {
    for ch in 0..c {
        dbeta[ch] += local[ch] as f32;
        dgamma[ch] += local[c + ch] as f32;
    }
}

/// Backward: writes `dx` from the exchanged totals `sums` (as
/// [`grad_sums`] lays them out) of the whole batch, `count` elements per
/// channel; nothing when `dx` is `None` (no earlier layer needs it).
///
/// `dy` is `dL/dy` of this share's examples; the loss is a mean over the
/// batch, so the totals already carry its scale.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &Geometry,
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    dy: &[f32],
    count: f64,
    sums: &[f64],
    dx: Option<&mut [f32]>,
) {
    let Some(dx) = dx else {
        g.check("x", x.len());
        g.check("dy", dy.len());
        return;
    };
    backward_any(g, x, mean, invstd, gamma, dy, count, sums, dx);
}

multiversion! {
    /// [`backward`] with a `dx` to write.
    #[allow(clippy::too_many_arguments)]
    fn backward_any(
        g: &Geometry,
        x: &[f32],
        mean: &[f32],
        invstd: &[f32],
        gamma: &[f32],
        dy: &[f32],
        count: f64,
        sums: &[f64],
        dx: &mut [f32],
    ) => backward_body
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_body<const FMA: bool>(
    g: &Geometry,
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    dy: &[f32],
    count: f64,
    sums: &[f64],
    dx: &mut [f32],
) {
    g.check("x", x.len());
    g.check("dy", dy.len());
    g.check("dx", dx.len());
    for ch in 0..g.c {
        let (m, inv) = (mean[ch], invstd[ch]);
        let mean_dy = (sums[ch] / count) as f32;
        let mean_dyx = (sums[g.c + ch] / count) as f32;
        let scale = gamma[ch] * inv;
        for i in 0..g.n {
            let r = g.run(i, ch);
            for ((dx, &d), &v) in dx[r.clone()].iter_mut().zip(&dy[r.clone()]).zip(&x[r]) {
                let x_hat = (v - m) * inv;
                *dx = scale * (d - mean_dy - x_hat * mean_dyx);
            }
        }
    }
}

/// A batch norm at inference, as the per-channel map `y * scale + shift`
/// (`scale = gamma / sqrt(running_var + eps)`, `shift = beta -
/// running_mean * scale`), to run in place ([`forward_eval`]) or to fold
/// into the conv before it ([`super::conv::forward_gemm_folded`]).
#[derive(Clone, Copy, Debug)]
pub struct Fold<'a> {
    /// The running mean, one per channel.
    pub running_mean: &'a [f32],
    /// The running variance, one per channel.
    pub running_var: &'a [f32],
    /// Added to the variance.
    pub eps: f32,
    /// The scale parameter (`weight`).
    pub gamma: &'a [f32],
    /// The shift parameter (`bias`).
    pub beta: &'a [f32],
}

impl Fold<'_> {
    /// `(scale, shift)` of channel `ch`.
    #[inline]
    pub fn channel(&self, ch: usize) -> (f32, f32) {
        let scale = self.gamma[ch] / libm::sqrtf(self.running_var[ch] + self.eps);
        (scale, self.beta[ch] - self.running_mean[ch] * scale)
    }

    /// The conv with weights `w` (one row per output channel) and bias `b`
    /// (none: zero) followed by this batch norm, as one conv: `wf = w *
    /// scale` row by row and `bf = b * scale + shift`.
    ///
    /// # Panics
    ///
    /// If `w` or `wf` is not a whole number of rows of one per channel of
    /// `bf`, or the parameters have fewer channels.
    pub fn fold(&self, w: &[f32], b: Option<&[f32]>, wf: &mut [f32], bf: &mut [f32]) {
        let rows = bf.len();
        assert!(
            rows > 0 && w.len() == wf.len() && w.len().is_multiple_of(rows),
            "batchnorm fold: {} weights for {rows} channels",
            w.len()
        );
        let row = w.len() / rows;
        for (ch, ((w_o, wf_o), bf_o)) in w
            .chunks_exact(row)
            .zip(wf.chunks_exact_mut(row))
            .zip(bf)
            .enumerate()
        {
            let (scale, shift) = self.channel(ch);
            for (f, &v) in wf_o.iter_mut().zip(w_o) {
                *f = v * scale;
            }
            *bf_o = b.map_or(0.0, |b| b[ch]) * scale + shift;
        }
    }
}

/// Inference, in place: `y = gamma * (y - running_mean) / sqrt(running_var
/// + eps) + beta`.
pub fn forward_eval(
    g: &Geometry,
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
) {
    g.check("y", y.len());
    let bn = Fold {
        running_mean,
        running_var,
        eps,
        gamma,
        beta,
    };
    for ch in 0..g.c {
        let (scale, shift) = bn.channel(ch);
        for i in 0..g.n {
            for v in &mut y[g.run(i, ch)] {
                *v = *v * scale + shift;
            }
        }
    }
}

/// The running statistics after one training step, as PyTorch updates
/// them: `running = (1 - momentum) * running + momentum * batch`, with the
/// batch variance made unbiased (`var * count / (count - 1)`), and the
/// step counted.
pub fn update_running(
    momentum: f32,
    count: f64,
    mean: &[f32],
    var: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    tracked: &mut f32,
) {
    let unbias = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
    for (r, &m) in running_mean.iter_mut().zip(mean) {
        *r = (1.0 - momentum) * *r + momentum * m;
    }
    for (r, &v) in running_var.iter_mut().zip(var) {
        *r = (1.0 - momentum) * *r + momentum * (v as f64 * unbias) as f32;
    }
    *tracked += 1.0;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive float64 batch norm over the whole batch and its gradients.
    #[allow(clippy::type_complexity)]
    fn reference(
        g: &Geometry,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        dy: &[f32],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let count = (g.n * g.s) as f64;
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut dgamma, mut dbeta) = (vec![0.0; g.c], vec![0.0; g.c]);
        for ch in 0..g.c {
            let values: Vec<(usize, f64)> = (0..g.n)
                .flat_map(|i| g.run(i, ch).map(|k| (k, x[k] as f64)))
                .collect();
            let mean = values.iter().map(|v| v.1).sum::<f64>() / count;
            let var = values.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / count;
            let inv = 1.0 / (var + eps).sqrt();
            let sdy: f64 = values.iter().map(|v| dy[v.0] as f64).sum();
            let sdyx: f64 = values.iter().map(|v| dy[v.0] as f64 * (v.1 - mean) * inv).sum();
            dbeta[ch] = sdy;
            dgamma[ch] = sdyx;
            for &(k, v) in &values {
                let xh = (v - mean) * inv;
                y[k] = gamma[ch] as f64 * xh + beta[ch] as f64;
                dx[k] = gamma[ch] as f64 * inv * (dy[k] as f64 - sdy / count - xh * sdyx / count);
            }
        }
        (y, dx, dgamma, dbeta)
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 250.0 - 1.7
            })
            .collect()
    }

    /// Two shares of one batch, exchanged by hand, match the reference.
    #[test]
    fn shares_with_exchanged_sums_match_the_whole_batch() {
        let full = Geometry { n: 5, c: 3, s: 4 };
        let len = full.c * full.s;
        let (x, dy) = (values(5 * len, 1), values(5 * len, 7));
        let (gamma, beta) = (vec![0.5, -1.25, 2.0], vec![0.1, 0.0, -0.3]);
        let eps = 1e-5;
        let (want_y, want_dx, want_dg, want_db) = reference(&full, &x, &gamma, &beta, &dy, eps as f64);

        let shares = [(0, 2), (2, 3)];
        let geometry = |n| Geometry { n, c: 3, s: 4 };
        let part = |(start, n): (usize, usize)| start * len..(start + n) * len;
        let mut totals = [0.0f64; 1 + 3];
        for &share in &shares {
            let mut sums = vec![0.0; 1 + 3];
            sum(&geometry(share.1), &x[part(share)], &mut sums);
            totals.iter_mut().zip(&sums).for_each(|(t, s)| *t += s);
        }
        let count = totals[0];
        let mut mean = vec![0.0; 3];
        finish_mean(count, &totals[1..], &mut mean);
        let mut squares = vec![0.0f64; 3];
        for &share in &shares {
            let mut sums = vec![0.0; 3];
            sum_squares(&geometry(share.1), &x[part(share)], &mean, &mut sums);
            squares.iter_mut().zip(&sums).for_each(|(t, s)| *t += s);
        }
        let (mut var, mut invstd) = (vec![0.0; 3], vec![0.0; 3]);
        finish_var(count, eps, &squares, &mut var, &mut invstd);
        let mut y = vec![0.0; x.len()];
        let mut grad = vec![0.0f64; 6];
        let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; 3], vec![0.0; 3]);
        for &share in &shares {
            let g = geometry(share.1);
            normalize(
                &g,
                &x[part(share)],
                &mean,
                &invstd,
                &gamma,
                &beta,
                &mut y[part(share)],
            );
            let mut sums = vec![0.0; 6];
            grad_sums(&g, &x[part(share)], &mean, &invstd, &dy[part(share)], &mut sums);
            param_grads(3, &sums, &mut dg, &mut db);
            grad.iter_mut().zip(&sums).for_each(|(t, s)| *t += s);
        }
        for &share in &shares {
            let g = geometry(share.1);
            backward(
                &g,
                &x[part(share)],
                &mean,
                &invstd,
                &gamma,
                &dy[part(share)],
                count,
                &grad,
                Some(&mut dx[part(share)]),
            );
        }
        let close = |a: &[f32], b: &[f64], what: &str| {
            for (a, b) in a.iter().zip(b) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{what}: {a} vs {b}"
                );
            }
        };
        close(&y, &want_y, "y");
        close(&dx, &want_dx, "dx");
        close(&dg, &want_dg, "dgamma");
        close(&db, &want_db, "dbeta");
    }

    #[test]
    fn eval_uses_running_statistics_and_update_is_pytorchs() {
        let g = Geometry { n: 2, c: 2, s: 1 };
        let mut y = vec![1.0, 2.0, 3.0, 4.0];
        forward_eval(
            &g,
            &[1.0, 2.0],
            &[4.0, 1.0],
            0.0,
            &[2.0, 1.0],
            &[0.5, 0.0],
            &mut y,
        );
        assert_eq!(y, [0.5, 0.0, 2.5, 2.0]);

        let (mut rm, mut rv, mut tracked) = (vec![0.0, 1.0], vec![1.0, 1.0], 0.0);
        update_running(
            0.1,
            4.0,
            &[2.0, -1.0],
            &[3.0, 0.0],
            &mut rm,
            &mut rv,
            &mut tracked,
        );
        assert!((rm[0] - 0.2).abs() < 1e-7 && (rm[1] - 0.8).abs() < 1e-7, "{rm:?}");
        // 0.9 * 1 + 0.1 * 3 * 4/3
        assert!((rv[0] - 1.3).abs() < 1e-6 && (rv[1] - 0.9).abs() < 1e-6, "{rv:?}");
        assert_eq!(tracked, 1.0);
    }
}
