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

/// The f64 arithmetic [`Terms`] needs, on one value or on [`SUM_LANES`]
/// lanes at once (`x86::Zmm`, `x86::Ymm2`): the vectorized reductions give
/// the same bits as the scalar one, lane by lane.
trait Lane: Copy {
    fn splat(v: f64) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
}

impl Lane for f64 {
    #[inline(always)]
    fn splat(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
}

/// The two terms one reduction adds up for an element pair `(a, b)`.
trait Terms: Copy {
    fn of<L: Lane>(self, a: L, b: L) -> (L, L);
}

/// `(x, 0)`: the sum for the mean.
#[derive(Clone, Copy)]
struct Sum;

impl Terms for Sum {
    #[inline(always)]
    fn of<L: Lane>(self, a: L, _: L) -> (L, L) {
        (a, L::splat(0.0))
    }
}

/// `((x - mean)^2, 0)`: the sum of squared deviations.
#[derive(Clone, Copy)]
struct Squares {
    mean: f64,
}

impl Terms for Squares {
    #[inline(always)]
    fn of<L: Lane>(self, a: L, _: L) -> (L, L) {
        let d = a.sub(L::splat(self.mean));
        (d.mul(d), L::splat(0.0))
    }
}

/// `(dy, dy * x_hat)` for `(a, b) = (dy, x)`: the backward sums.
#[derive(Clone, Copy)]
struct GradTerms {
    mean: f64,
    invstd: f64,
}

impl Terms for GradTerms {
    #[inline(always)]
    fn of<L: Lane>(self, d: L, v: L) -> (L, L) {
        (d, d.mul(v.sub(L::splat(self.mean))).mul(L::splat(self.invstd)))
    }
}

/// `(sum of t(a_i, b_i).0, sum of t(a_i, b_i).1)` over the common length of
/// `a` and `b`, in f64, accumulated in [`SUM_LANES`] independent lanes
/// (added pairwise at the end, the tail last), so a vector of lanes adds
/// a chunk at once instead of waiting on one add after another. The same
/// bits on every instruction set: AVX-512 and AVX2 run the lanes in
/// vectors (LLVM left this loop scalar), without fused multiply-adds.
#[inline]
fn sums_f64(a: &[f32], b: &[f32], t: impl Terms) -> (f64, f64) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        use super::simd::{level, Level};
        match level() {
            // SAFETY: `level()` detected these features on this CPU.
            Level::Avx512 => return unsafe { x86::sums_avx512(a, b, t) },
            // SAFETY: as above.
            Level::Avx2Fma => return unsafe { x86::sums_avx2(a, b, t) },
            Level::Baseline => {}
        }
    }
    sums_lanes::<[f64; SUM_LANES]>(a, b, t)
}

/// [`SUM_LANES`] f64 lanes widened from as many `f32`s.
trait Lanes: Lane {
    /// Lanes `l` from `p[l] as f64`.
    ///
    /// # Safety
    ///
    /// `p` reads [`SUM_LANES`] floats, in code compiled with the type's
    /// features.
    unsafe fn widen(p: *const f32) -> Self;
    /// The lanes, in order.
    fn lanes(self) -> [f64; SUM_LANES];
}

impl Lane for [f64; SUM_LANES] {
    #[inline(always)]
    fn splat(v: f64) -> Self {
        [v; SUM_LANES]
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        core::array::from_fn(|l| self[l] + o[l])
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        core::array::from_fn(|l| self[l] - o[l])
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        core::array::from_fn(|l| self[l] * o[l])
    }
}

impl Lanes for [f64; SUM_LANES] {
    #[inline(always)]
    unsafe fn widen(p: *const f32) -> Self {
        // SAFETY: the caller's `p` reads `SUM_LANES` floats.
        core::array::from_fn(|l| unsafe { *p.add(l) } as f64)
    }
    #[inline(always)]
    fn lanes(self) -> [f64; SUM_LANES] {
        self
    }
}

/// [`sums_f64`] over lanes `L`.
#[inline(always)]
fn sums_lanes<L: Lanes>(a: &[f32], b: &[f32], t: impl Terms) -> (f64, f64) {
    let len = a.len().min(b.len());
    let full = len - len % SUM_LANES;
    let mut acc = [L::splat(0.0); 2];
    for at in (0..full).step_by(SUM_LANES) {
        // SAFETY: `at + SUM_LANES <= len`, inside both slices.
        let (wa, wb) = unsafe { (L::widen(a.as_ptr().add(at)), L::widen(b.as_ptr().add(at))) };
        let (p, q) = t.of(wa, wb);
        acc = [acc[0].add(p), acc[1].add(q)];
    }
    let mut tail = (0.0f64, 0.0f64);
    for (&xa, &xb) in a[full..len].iter().zip(&b[full..len]) {
        let (p, q) = t.of(xa as f64, xb as f64);
        tail.0 += p;
        tail.1 += q;
    }
    let total = |a: [f64; SUM_LANES]| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    (total(acc[0].lanes()) + tail.0, total(acc[1].lanes()) + tail.1)
}

/// The f64 lanes of AVX-512F and AVX2 for [`sums_f64`].
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86 {
    use super::{sums_lanes, Lane, Lanes, Terms, SUM_LANES};
    use core::arch::x86_64::*;

    /// Eight lanes in one AVX-512 register.
    #[derive(Clone, Copy)]
    pub(super) struct Zmm(__m512d);

    // Its methods are only called from `sums_avx512`, compiled with
    // AVX-512F, into which they are inlined.
    impl Lane for Zmm {
        #[inline(always)]
        fn splat(v: f64) -> Self {
            // SAFETY: AVX-512F (see the impl).
            Zmm(unsafe { _mm512_set1_pd(v) })
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            // SAFETY: AVX-512F (see the impl).
            Zmm(unsafe { _mm512_add_pd(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            // SAFETY: AVX-512F (see the impl).
            Zmm(unsafe { _mm512_sub_pd(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            // SAFETY: AVX-512F (see the impl).
            Zmm(unsafe { _mm512_mul_pd(self.0, o.0) })
        }
    }

    impl Lanes for Zmm {
        #[inline(always)]
        unsafe fn widen(p: *const f32) -> Self {
            // SAFETY: the caller's `p` reads 8 floats, with AVX-512F.
            Zmm(unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) })
        }
        #[inline(always)]
        fn lanes(self) -> [f64; SUM_LANES] {
            let mut out = [0.0; SUM_LANES];
            // SAFETY: `out` holds 8 f64s; AVX-512F.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), self.0) };
            out
        }
    }

    /// Lanes 0-3 and 4-7 in two AVX registers.
    #[derive(Clone, Copy)]
    pub(super) struct Ymm2(__m256d, __m256d);

    // Its methods are only called from `sums_avx2`, compiled with AVX2,
    // into which they are inlined.
    impl Lane for Ymm2 {
        #[inline(always)]
        fn splat(v: f64) -> Self {
            // SAFETY: AVX2 (see the impl).
            let v = unsafe { _mm256_set1_pd(v) };
            Ymm2(v, v)
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            // SAFETY: AVX2 (see the impl).
            unsafe { Ymm2(_mm256_add_pd(self.0, o.0), _mm256_add_pd(self.1, o.1)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            // SAFETY: AVX2 (see the impl).
            unsafe { Ymm2(_mm256_sub_pd(self.0, o.0), _mm256_sub_pd(self.1, o.1)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            // SAFETY: AVX2 (see the impl).
            unsafe { Ymm2(_mm256_mul_pd(self.0, o.0), _mm256_mul_pd(self.1, o.1)) }
        }
    }

    impl Lanes for Ymm2 {
        #[inline(always)]
        unsafe fn widen(p: *const f32) -> Self {
            // SAFETY: the caller's `p` reads 8 floats, with AVX2.
            unsafe {
                Ymm2(
                    _mm256_cvtps_pd(_mm_loadu_ps(p)),
                    _mm256_cvtps_pd(_mm_loadu_ps(p.add(4))),
                )
            }
        }
        #[inline(always)]
        fn lanes(self) -> [f64; SUM_LANES] {
            let mut out = [0.0; SUM_LANES];
            // SAFETY: `out` holds 8 f64s; AVX2.
            unsafe {
                _mm256_storeu_pd(out.as_mut_ptr(), self.0);
                _mm256_storeu_pd(out.as_mut_ptr().add(4), self.1);
            }
            out
        }
    }

    /// [`super::sums_f64`] in AVX-512 registers.
    ///
    /// # Safety
    ///
    /// AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn sums_avx512(a: &[f32], b: &[f32], t: impl Terms) -> (f64, f64) {
        sums_lanes::<Zmm>(a, b, t)
    }

    /// [`super::sums_f64`] in AVX2 registers.
    ///
    /// # Safety
    ///
    /// AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sums_avx2(a: &[f32], b: &[f32], t: impl Terms) -> (f64, f64) {
        sums_lanes::<Ymm2>(a, b, t)
    }
}

/// Partial sums for the mean: `sums[0]` gets the element count per
/// channel (`n * s`), `sums[1 + ch]` the sum of channel `ch`.
pub fn sum(g: &Geometry, x: &[f32], sums: &mut [f64]) {
    g.check("x", x.len());
    assert_eq!(sums.len(), 1 + g.c, "batchnorm: sums has the wrong length");
    sums[0] = (g.n * g.s) as f64;
    let totals = &mut sums[1..];
    totals.fill(0.0);
    // Example by example, in memory order (a channel's runs, one per
    // example, are far apart: reading them channel by channel waited on
    // memory at every run); each total still adds its runs in example order.
    for image in x.chunks_exact((g.c * g.s).max(1)) {
        for (total, run) in totals.iter_mut().zip(image.chunks_exact(g.s.max(1))) {
            *total += sums_f64(run, run, Sum).0;
        }
    }
}

/// Partial sums of squared deviations from `mean`, per channel.
pub fn sum_squares(g: &Geometry, x: &[f32], mean: &[f32], sums: &mut [f64]) {
    g.check("x", x.len());
    assert_eq!(sums.len(), g.c, "batchnorm: sums has the wrong length");
    sums.fill(0.0);
    for image in x.chunks_exact((g.c * g.s).max(1)) {
        for ((total, &m), run) in sums.iter_mut().zip(mean).zip(image.chunks_exact(g.s.max(1))) {
            *total += sums_f64(run, run, Squares { mean: m as f64 }).0;
        }
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

/// Backward partial sums: `sums[ch]` gets `sum(dy)` and `sums[c + ch]`
/// `sum(dy * x_hat)` of channel `ch` over this share.
pub fn grad_sums(g: &Geometry, x: &[f32], mean: &[f32], invstd: &[f32], dy: &[f32], sums: &mut [f64]) {
    g.check("x", x.len());
    g.check("dy", dy.len());
    assert_eq!(sums.len(), 2 * g.c, "batchnorm: sums has the wrong length");
    sums.fill(0.0);
    let (sdy, sdyx) = sums.split_at_mut(g.c);
    let image_len = (g.c * g.s).max(1);
    for (image_dy, image_x) in dy.chunks_exact(image_len).zip(x.chunks_exact(image_len)) {
        let runs = image_dy
            .chunks_exact(g.s.max(1))
            .zip(image_x.chunks_exact(g.s.max(1)));
        for (ch, (run_dy, run_x)) in runs.enumerate() {
            let terms = GradTerms {
                mean: mean[ch] as f64,
                invstd: invstd[ch] as f64,
            };
            let (a, b) = sums_f64(run_dy, run_x, terms);
            sdy[ch] += a;
            sdyx[ch] += b;
        }
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
    for i in 0..g.n {
        for ch in 0..g.c {
            let (m, inv) = (mean[ch], invstd[ch]);
            let mean_dy = (sums[ch] / count) as f32;
            let mean_dyx = (sums[g.c + ch] / count) as f32;
            let scale = gamma[ch] * inv;
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

    /// Every instruction set's reduction gives the portable lanes' bits, for
    /// each term and lengths around the lane count (chunks and tails), and
    /// the portable lanes are close to a plain f64 sum.
    #[test]
    fn vector_sums_are_the_portable_sums_bit_for_bit() {
        type Kernel = fn(&[f32], &[f32], GradTerms) -> (f64, f64);
        let mut kernels: Vec<(&str, Kernel)> = vec![("dispatched", |a, b, t| sums_f64(a, b, t))];
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: AVX2 and FMA detected.
                kernels.push(("avx2", |a, b, t| unsafe { x86::sums_avx2(a, b, t) }));
            }
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F detected (with AVX2 and FMA above).
                kernels.push(("avx512", |a, b, t| unsafe { x86::sums_avx512(a, b, t) }));
            }
        }
        for len in 0..41 {
            let (a, b) = (values(len, 3), values(len, 11));
            let terms = GradTerms {
                mean: 0.3,
                invstd: 1.7,
            };
            let want = sums_lanes::<[f64; SUM_LANES]>(&a, &b, terms);
            let plain = a.iter().zip(&b).fold((0.0, 0.0), |(p, q), (&d, &v)| {
                (p + d as f64, q + d as f64 * (v as f64 - 0.3) * 1.7)
            });
            assert!((want.0 - plain.0).abs() < 1e-9 && (want.1 - plain.1).abs() < 1e-9);
            for (name, kernel) in &kernels {
                let got = kernel(&a, &b, terms);
                assert_eq!(got.0.to_bits(), want.0.to_bits(), "{name}, {len}: sum(dy)");
                assert_eq!(
                    got.1.to_bits(),
                    want.1.to_bits(),
                    "{name}, {len}: sum(dy * x_hat)"
                );
            }
            let squares = sums_f64(&a, &a, Squares { mean: -0.2 }).0;
            let squares_want = sums_lanes::<[f64; SUM_LANES]>(&a, &a, Squares { mean: -0.2 }).0;
            assert_eq!(squares.to_bits(), squares_want.to_bits(), "{len}: squares");
            let total = sums_f64(&a, &a, Sum).0;
            assert_eq!(
                total.to_bits(),
                sums_lanes::<[f64; SUM_LANES]>(&a, &a, Sum).0.to_bits()
            );
        }
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
