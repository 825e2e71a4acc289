//! Fully connected layer, PyTorch `nn.Linear`:
//!
//! `y[i, o] = b[o] + sum_k x[i, k] * w[o, k]`, i.e. `Y = X W^T + b`
//!
//! Layouts: `x` is `[N, in]`, `w` is `[out, in]` (PyTorch's), `b` is
//! `[out]`, `y` is `[N, out]`, all row-major. A preceding NCHW activation is
//! flattened as is (`nn.Flatten`).
//!
//! Backward: `dW += dY^T X`, `db += sum_i dY[i]` (accumulated over the
//! batch), `dX = dY W` (overwritten).
//!
//! [`forward`] / [`backward`] are direct loops (no heap, no `std`);
//! [`forward_gemm`] / [`backward_gemm`] do one GEMM per product for the whole
//! batch, transposing through strides rather than copies, and fall back to
//! the direct loops without `std`.

use super::axpy;
use super::simd::{madd, multiversion};

/// Geometry of a fully connected layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Input features per example.
    pub in_features: usize,
    /// Output features per example.
    pub out_features: usize,
}

impl Linear {
    /// Elements of the weight, `out * in`.
    #[inline]
    pub const fn weight_len(&self) -> usize {
        self.in_features * self.out_features
    }
}

#[inline(always)]
#[track_caller]
fn check(g: &Linear, n: usize, x: usize, w: usize, b: Option<usize>, y: usize, y_name: &str) {
    assert_eq!(
        x,
        n * g.in_features,
        "linear: x has {x} elements, expected n * in_features = {n} * {}",
        g.in_features
    );
    assert_eq!(
        w,
        g.weight_len(),
        "linear: w has {w} elements, expected out_features * in_features = {}",
        g.weight_len()
    );
    if let Some(b) = b {
        assert_eq!(
            b, g.out_features,
            "linear: bias has {b} elements, expected out_features = {}",
            g.out_features
        );
    }
    assert_eq!(
        y,
        n * g.out_features,
        "linear: {y_name} has {y} elements, expected n * out_features = {n} * {}",
        g.out_features
    );
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
#[track_caller]
fn check_backward(
    g: &Linear,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &[f32],
    db: Option<&[f32]>,
    dx: Option<&[f32]>,
) {
    check(g, n, x.len(), w.len(), db.map(<[f32]>::len), dy.len(), "dy");
    assert_eq!(
        dw.len(),
        w.len(),
        "linear: dw has {} elements, expected out_features * in_features = {}",
        dw.len(),
        w.len()
    );
    if let Some(dx) = dx {
        assert_eq!(
            dx.len(),
            x.len(),
            "linear: dx has {} elements, expected n * in_features = {}",
            dx.len(),
            x.len()
        );
    }
}

/// `y = x W^T + b` for `n` examples (no bias if `b` is `None`), direct
/// loops. Allocates nothing.
///
/// # Panics
///
/// If a slice length does not match (`x`: `n * in`, `w`: `out * in`,
/// `b`: `out`, `y`: `n * out`).
#[inline]
pub fn forward(g: &Linear, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    check(g, n, x.len(), w.len(), b.map(<[f32]>::len), y.len(), "y");
    forward_rows(g, n, x, w, b, y);
}

/// [`forward`] after its checks: the rows of `x86` where the CPU has
/// AVX2 or AVX-512, else [`forward_any`].
#[inline]
fn forward_rows(g: &Linear, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    match super::simd::level() {
        // SAFETY: `level()` detected AVX-512F with AVX2 and FMA.
        super::simd::Level::Avx512 => return unsafe { x86::forward_avx512(g, n, x, w, b, y) },
        // SAFETY: `level()` detected AVX2 and FMA.
        super::simd::Level::Avx2Fma => return unsafe { x86::forward_avx2(g, n, x, w, b, y) },
        super::simd::Level::Baseline => {}
    }
    forward_any(g, n, x, w, b, y);
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86 {
    //! [`super::forward`] written out over [`Vector`] (AVX-512 or AVX2):
    //! LLVM's vectorization of the portable rows keeps one accumulator per
    //! row and sums a row's tail one scalar at a time, a chain of dependent
    //! multiply-adds (LeNet's 120-input layer: 8 of them per row on
    //! AVX-512). Here a block of four rows keeps two accumulators each
    //! (eight chains in flight), the tail is one masked vector, and the
    //! four rows reduce together ([`Vector::sum4`]).

    use super::Linear;
    use crate::ops::simd::x86::{Avx2, Avx512, Vector};
    use core::arch::x86_64::*;

    /// Rows per block.
    const ROWS: usize = 4;

    /// `y = x W^T + b` for `n` examples on AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn forward_avx512(
        g: &Linear,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &mut [f32],
    ) {
        // SAFETY: the features are enabled.
        unsafe { forward::<Avx512>(g, n, x, w, b, y) }
    }

    /// `y = x W^T + b` for `n` examples on AVX2.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_avx2(
        g: &Linear,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &mut [f32],
    ) {
        // SAFETY: the features are enabled.
        unsafe { forward::<Avx2>(g, n, x, w, b, y) }
    }

    /// # Safety
    ///
    /// `V`'s features with FMA.
    #[inline(always)]
    unsafe fn forward<V: Vector>(
        g: &Linear,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (k_n, o_n) = (g.in_features, g.out_features);
        assert!(x.len() >= n * k_n && w.len() >= o_n * k_n && y.len() >= n * o_n);
        assert!(b.is_none_or(|b| b.len() >= o_n));
        let tail = V::mask(0, (k_n % V::LANES) as isize);
        let full = o_n / ROWS * ROWS;
        for i in 0..n {
            let x_i = x[i * k_n..].as_ptr();
            let y_i = &mut y[i * o_n..][..o_n];
            for o in (0..full).step_by(ROWS) {
                let rows: [*const f32; ROWS] =
                    core::array::from_fn(|r| w.as_ptr().wrapping_add((o + r) * k_n));
                // SAFETY: each row and `x_i` hold `k_n` floats; outputs
                // and biases `o .. o + 4` are inside `y_i` and `b`.
                unsafe {
                    let sums = block::<V>(k_n, tail, x_i, rows);
                    let bias = match b {
                        Some(b) => _mm_loadu_ps(b.as_ptr().add(o)),
                        None => _mm_setzero_ps(),
                    };
                    _mm_storeu_ps(y_i.as_mut_ptr().add(o), _mm_add_ps(bias, sums));
                }
            }
            if full < o_n {
                // The last rows, repeated up to a block (computed, not
                // stored).
                let rows: [*const f32; ROWS] =
                    core::array::from_fn(|r| w.as_ptr().wrapping_add((full + r).min(o_n - 1) * k_n));
                let mut sums = [0.0; ROWS];
                // SAFETY: each row and `x_i` hold `k_n` floats; `sums`
                // holds four.
                unsafe { _mm_storeu_ps(sums.as_mut_ptr(), block::<V>(k_n, tail, x_i, rows)) };
                for (r, (y_o, s)) in y_i[full..].iter_mut().zip(sums).enumerate() {
                    *y_o = b.map_or(0.0, |b| b[full + r]) + s;
                }
            }
        }
    }

    /// The dot products of `x` with the four rows.
    ///
    /// # Safety
    ///
    /// `V`'s features with FMA; `x` and each row hold `k_n` floats; `tail`
    /// holds the low `k_n % V::LANES` lanes.
    #[inline(always)]
    unsafe fn block<V: Vector>(k_n: usize, tail: V::Mask, x: *const f32, rows: [*const f32; ROWS]) -> __m128 {
        let mut even = [V::zero(); ROWS];
        let mut odd = [V::zero(); ROWS];
        let mut k = 0;
        // SAFETY (all loads): floats `k ..` of `x` and the rows, inside
        // `k_n` (the tail masked); the features are the caller's.
        unsafe {
            while k + 2 * V::LANES <= k_n {
                let (x0, x1) = (V::loadu(x.add(k)), V::loadu(x.add(k + V::LANES)));
                for r in 0..ROWS {
                    even[r] = V::fmadd(x0, V::loadu(rows[r].add(k)), even[r]);
                    odd[r] = V::fmadd(x1, V::loadu(rows[r].add(k + V::LANES)), odd[r]);
                }
                k += 2 * V::LANES;
            }
            if k + V::LANES <= k_n {
                let x0 = V::loadu(x.add(k));
                for r in 0..ROWS {
                    even[r] = V::fmadd(x0, V::loadu(rows[r].add(k)), even[r]);
                }
                k += V::LANES;
            }
            if k < k_n {
                let x1 = V::load(x.add(k), tail);
                for r in 0..ROWS {
                    odd[r] = V::fmadd(x1, V::load(rows[r].add(k), tail), odd[r]);
                }
            }
            // A loop, not `array::from_fn`: its closure would be compiled
            // without the caller's target features, the adds left as calls.
            for r in 0..ROWS {
                even[r] = V::add(even[r], odd[r]);
            }
            V::sum4(even)
        }
    }
}

multiversion! {
    /// [`forward`] after its checks, compiled for the CPU's vector width.
    fn forward_any(g: &Linear, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) => forward_body
}

#[inline(always)]
fn forward_body<const FMA: bool>(
    g: &Linear,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let (k_n, o_n) = (g.in_features, g.out_features);
    for i in 0..n {
        let x_i = &x[i * k_n..][..k_n];
        let y_i = &mut y[i * o_n..][..o_n];
        // ROWS outputs at a time: each segment of `x` is loaded once for
        // ROWS weight rows, and the ROWS accumulators are independent chains.
        let mut blocks = y_i.chunks_exact_mut(ROWS);
        for (blk, y_blk) in (&mut blocks).enumerate() {
            let o = blk * ROWS;
            let sums = dot_rows::<ROWS, FMA>(x_i, &w[o * k_n..][..ROWS * k_n]);
            for (r, (y_io, s)) in y_blk.iter_mut().zip(sums).enumerate() {
                *y_io = b.map_or(0.0, |b| b[o + r]) + s;
            }
        }
        let o0 = o_n - blocks.into_remainder().len();
        for o in o0..o_n {
            let [s] = dot_rows::<1, FMA>(x_i, &w[o * k_n..][..k_n]);
            y_i[o] = b.map_or(0.0, |b| b[o]) + s;
        }
    }
}

/// Output rows per block in [`forward_body`]: 4 rows of 16 lanes are 4
/// AVX-512 or 8 AVX2 accumulators, which leaves registers for the loads.
const ROWS: usize = 4;

/// Lanes per row accumulator in [`dot_rows`].
const ROW_LANES: usize = 16;

/// `[dot(x, w_r) for r in 0..R]` where `w_r = w[r * x.len()..][..x.len()]`:
/// `R` dot products sharing the loads of `x`, each summed in
/// [`ROW_LANES`] independent lanes and then reduced.
#[inline(always)]
fn dot_rows<const R: usize, const FMA: bool>(x: &[f32], w: &[f32]) -> [f32; R] {
    let k_n = x.len();
    let w = &w[..R * k_n];
    let mut acc = [[0.0f32; ROW_LANES]; R];
    let full = k_n / ROW_LANES * ROW_LANES;
    for k in (0..full).step_by(ROW_LANES) {
        let xs: &[f32; ROW_LANES] = x[k..][..ROW_LANES].try_into().unwrap();
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let ws: &[f32; ROW_LANES] = w[r * k_n + k..][..ROW_LANES].try_into().unwrap();
            for l in 0..ROW_LANES {
                acc_r[l] = madd::<FMA>(xs[l], ws[l], acc_r[l]);
            }
        }
    }
    let mut out = [0.0f32; R];
    for (r, (out_r, acc_r)) in out.iter_mut().zip(&acc).enumerate() {
        // Halve the lanes pairwise (a tree, like a vector reduction).
        let mut lanes = *acc_r;
        let mut width = ROW_LANES / 2;
        while width > 0 {
            for l in 0..width {
                lanes[l] += lanes[l + width];
            }
            width /= 2;
        }
        let mut s = lanes[0];
        for k in full..k_n {
            s = madd::<FMA>(x[k], w[r * k_n + k], s);
        }
        *out_r = s;
    }
    out
}

/// Backward pass for `n` examples, direct loops, given `dy = dL/dy`:
/// `dw += dy^T x`, `db += column sums of dy` (if `Some`), `dx = dy W` (if
/// `Some`, overwritten). Allocates nothing.
///
/// # Panics
///
/// If a slice length does not match (as [`forward`], with `dy` like `y`,
/// `dw` like `w`, `db` like `b`, `dx` like `x`).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn backward(
    g: &Linear,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
) {
    check_backward(g, n, x, w, dy, dw, db.as_deref(), dx.as_deref());
    let (k_n, o_n) = (g.in_features, g.out_features);
    for i in 0..n {
        let x_i = &x[i * k_n..][..k_n];
        let dy_i = &dy[i * o_n..][..o_n];
        if let Some(db) = db.as_deref_mut() {
            for (dbo, &d) in db.iter_mut().zip(dy_i) {
                *dbo += d;
            }
        }
        for (o, &d) in dy_i.iter().enumerate() {
            axpy(d, x_i, &mut dw[o * k_n..][..k_n]);
        }
        if let Some(dx) = dx.as_deref_mut() {
            let dx_i = &mut dx[i * k_n..][..k_n];
            dx_i.fill(0.0);
            for (o, &d) in dy_i.iter().enumerate() {
                axpy(d, &w[o * k_n..][..k_n], dx_i);
            }
        }
    }
}

/// `y = x W^T + b` for `n` examples as one GEMM (for one example,
/// [`forward`]'s rows); same result as [`forward`] up to rounding. Without
/// `std` this is [`forward`].
///
/// # Panics
///
/// As [`forward`].
#[inline]
pub fn forward_gemm(g: &Linear, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    #[cfg(not(feature = "std"))]
    forward(g, n, x, w, b, y);
    #[cfg(feature = "std")]
    {
        check(g, n, x.len(), w.len(), b.map(<[f32]>::len), y.len(), "y");
        if n == 1 {
            // One example is a matrix-vector product: the rows of
            // `forward` beat the GEMM's inner-product tiles there (LeNet's
            // 400 x 120 layer 1.5 us against 2.3, 120 x 84 0.25 against
            // 0.78, on a Zen 5, with the AVX-512 rows of `x86`).
            forward_rows(g, n, x, w, b, y);
            return;
        }
        let (k_n, o_n) = (g.in_features, g.out_features);
        let beta = match b {
            Some(b) if o_n > 0 => {
                for y_i in y.chunks_exact_mut(o_n) {
                    y_i.copy_from_slice(b);
                }
                1.0
            }
            _ => 0.0,
        };
        // Y[n, out] (+)= X[n, in] W^T[in, out]; W^T[k][o] = w[o * in + k].
        super::gemm::sgemm(
            n,
            k_n,
            o_n,
            1.0,
            x,
            k_n as isize,
            1,
            w,
            1,
            k_n as isize,
            beta,
            y,
            o_n as isize,
            1,
        );
    }
}

/// Backward pass for `n` examples as GEMMs; same result as [`backward`] up
/// to rounding: `dw += dy^T x`, `db += column sums of dy`, `dx = dy W`.
/// Without `std` this is [`backward`].
///
/// # Panics
///
/// As [`backward`].
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn backward_gemm(
    g: &Linear,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    #[cfg(not(feature = "std"))]
    backward(g, n, x, w, dy, dw, db, dx);
    #[cfg(feature = "std")]
    {
        use super::gemm::sgemm;
        check_backward(g, n, x, w, dy, dw, db.as_deref(), dx.as_deref());
        let (k_n, o_n) = (g.in_features, g.out_features);
        if let Some(db) = db {
            if o_n > 0 {
                for dy_i in dy.chunks_exact(o_n) {
                    for (dbo, &d) in db.iter_mut().zip(dy_i) {
                        *dbo += d;
                    }
                }
            }
        }
        // dW[out, in] += dY^T[out, n] X[n, in]; dY^T[o][i] = dy[i * out + o].
        sgemm(
            o_n,
            n,
            k_n,
            1.0,
            dy,
            1,
            o_n as isize,
            x,
            k_n as isize,
            1,
            1.0,
            dw,
            k_n as isize,
            1,
        );
        if let Some(dx) = dx {
            // dX[n, in] = dY[n, out] W[out, in].
            sgemm(
                n,
                o_n,
                k_n,
                1.0,
                dy,
                o_n as isize,
                1,
                w,
                k_n as isize,
                1,
                0.0,
                dx,
                k_n as isize,
                1,
            );
        }
    }
}

pub mod int8 {
    //! int8 fully connected layer, TFLite's FULLY_CONNECTED, bit for bit as
    //! TensorFlow Lite Micro's reference kernels (`FullyConnectedPerChannel`
    //! and, for one weight scale, `FullyConnected`) compute it:
    //!
    //! `acc[i, o] = b[o] + sum_k w[o, k] * (x[i, k] - x_zp)`,
    //! `y[i, o] = clamp(M[o](acc) + y_zp)`
    //!
    //! with the layouts of the float [`forward`](super::forward) (`x` `[N, in]`,
    //! `w` `[out, in]`, `b` `[out]`, `y` `[N, out]`; int8, bias int32) and the
    //! output stage of [`OutputStage`]. Weights are symmetric (zero point 0).
    //!
    //! TFLM prepares the multipliers differently for the two weight
    //! quantizations: per-channel weights use
    //! [`Requant::per_channel`](crate::quant::Requant::per_channel) for each
    //! output, a per-tensor weight scale uses
    //! [`Requant::per_tensor_linear`](crate::quant::Requant::per_tensor_linear)
    //! (the scale product rounded to `f32`), passed as a single-entry `requant`.
    //!
    //! A linear layer after `flatten` sees the NCHW activation in PyTorch's CHW
    //! order; a TFLite model flattens NHWC, so its weight columns must be
    //! permuted to CHW order before use (exact: the sum is in integers).

    use super::Linear;
    use crate::quant::OutputStage;

    /// The int8 linear layer for `n` examples; `b = None` means no bias.
    /// Direct loops, no heap, no `std`.
    ///
    /// # Panics
    ///
    /// If a slice length does not match (`x`: `n * in`, `w`: `out * in`,
    /// `b`: `out`, `y`: `n * out`), or `stage.requant` has neither 1 nor
    /// `out` entries.
    pub fn forward(
        g: &Linear,
        n: usize,
        x: &[i8],
        w: &[i8],
        b: Option<&[i32]>,
        stage: &OutputStage<'_>,
        y: &mut [i8],
    ) {
        super::check(g, n, x.len(), w.len(), b.map(<[i32]>::len), y.len(), "y");
        stage.check("linear", g.out_features);
        let (k_n, o_n) = (g.in_features, g.out_features);
        for i in 0..n {
            let x_i = &x[i * k_n..][..k_n];
            let y_i = &mut y[i * o_n..][..o_n];
            for (o, out) in y_i.iter_mut().enumerate() {
                let w_o = &w[o * k_n..][..k_n];
                let mut acc: i32 = 0;
                for (&wv, &xv) in w_o.iter().zip(x_i) {
                    acc = acc.wrapping_add(i32::from(wv) * (i32::from(xv) - stage.input_zero_point));
                }
                *out = stage.output(acc.wrapping_add(b.map_or(0, |b| b[o])), o);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::ops::testing::Rng;
        use crate::quant::{Clamp, Requant};
        use proptest::prelude::*;

        #[test]
        fn hand_computed() {
            let g = Linear {
                in_features: 3,
                out_features: 2,
            };
            // Zero point -2: real inputs [3, 0, -1] and [1, 1, 1].
            let x: [i8; 6] = [1, -2, -3, -1, -1, -1];
            let w: [i8; 6] = [1, 2, 3, -4, 5, 6];
            let b = [10, -20];
            let r = [Requant::from_real(0.5), Requant::from_real(0.25)];
            let stage = OutputStage {
                input_zero_point: -2,
                requant: &r,
                output_zero_point: 5,
                clamp: Clamp { min: -128, max: 12 },
            };
            let mut y = [0i8; 4];
            forward(&g, 2, &x, &w, Some(&b), &stage, &mut y);
            // Row 0: (3 + 0 - 3 + 10) * 0.5 = 5, + 5; (-12 + 0 - 6 - 20) * 0.25 =
            // -9.5 -> -10 (the high multiply halves -38 exactly, the shift
            // rounds -9.5 away from zero), + 5.
            // Row 1: (1 + 2 + 3 + 10) * 0.5 = 8, + 5 = 13 clamped to 12;
            // (-4 + 5 + 6 - 20) * 0.25 = -3.25: the high multiply rounds -6.5
            // up to -6, the shift gives -3, + 5.
            assert_eq!(y, [10, -5, 12, 2]);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn matches_naive(k_n in 1usize..=40, o_n in 1usize..=12, n in 1usize..=3,
                             per_channel: bool, seed: u64) {
                let g = Linear { in_features: k_n, out_features: o_n };
                let mut rng = Rng::new(seed);
                let x: Vec<i8> = (0..n * k_n).map(|_| rng.next_u64() as i8).collect();
                let w: Vec<i8> = (0..o_n * k_n).map(|_| rng.next_u64() as i8).collect();
                let b: Vec<i32> = (0..o_n).map(|_| rng.next_u64() as i32 >> 12).collect();
                let requant: Vec<Requant> = (0..if per_channel { o_n } else { 1 })
                    .map(|_| Requant::from_real(f64::from(rng.uniform().abs()) * 0.02 + 1e-5))
                    .collect();
                let stage = OutputStage {
                    input_zero_point: rng.next_u64() as i8 as i32,
                    requant: &requant,
                    output_zero_point: rng.next_u64() as i8 as i32,
                    clamp: Clamp::FULL,
                };
                let mut y = vec![0i8; n * o_n];
                forward(&g, n, &x, &w, Some(&b), &stage, &mut y);
                for i in 0..n {
                    for o in 0..o_n {
                        let acc: i64 = i64::from(b[o]) + (0..k_n)
                            .map(|k| i64::from(w[o * k_n + k])
                                 * (i64::from(x[i * k_n + k]) - i64::from(stage.input_zero_point)))
                            .sum::<i64>();
                        let r = requant[if per_channel { o } else { 0 }];
                        let expected = (i64::from(r.apply(acc as i32)) + i64::from(stage.output_zero_point))
                            .clamp(-128, 127) as i8;
                        prop_assert_eq!(y[i * o_n + o], expected);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{
        assert_close, assert_close32, assert_grad, finite_diff, functional, to_f64, Rng,
    };
    use proptest::prelude::*;

    fn reference_forward(g: &Linear, n: usize, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let (k_n, o_n) = (g.in_features, g.out_features);
        let mut y = vec![0.0; n * o_n];
        for i in 0..n {
            for o in 0..o_n {
                let mut acc = b.map_or(0.0, |b| b[o]);
                for k in 0..k_n {
                    acc += x[i * k_n + k] * w[o * k_n + k];
                }
                y[i * o_n + o] = acc;
            }
        }
        y
    }

    /// `(dx, dw, db)` of the definition, nothing accumulated.
    fn reference_backward(
        g: &Linear,
        n: usize,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (k_n, o_n) = (g.in_features, g.out_features);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; o_n]);
        for i in 0..n {
            for o in 0..o_n {
                let d = dy[i * o_n + o];
                db[o] += d;
                for k in 0..k_n {
                    dw[o * k_n + k] += d * x[i * k_n + k];
                    dx[i * k_n + k] += d * w[o * k_n + k];
                }
            }
        }
        (dx, dw, db)
    }

    fn geometry() -> impl Strategy<Value = (Linear, usize)> {
        (1usize..=80, 1usize..=20, 1usize..=5).prop_map(|(i, o, n)| {
            (
                Linear {
                    in_features: i,
                    out_features: o,
                },
                n,
            )
        })
    }

    #[test]
    fn hand_computed() {
        let g = Linear {
            in_features: 3,
            out_features: 2,
        };
        let x = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let w = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
        let b = [10.0, 20.0];
        let expected = [8.0, 23.0, 8.0, 20.0];
        let mut y = [0.0; 4];
        forward(&g, 2, &x, &w, Some(&b), &mut y);
        assert_eq!(y, expected);
        let mut y = [f32::NAN; 4];
        forward_gemm(&g, 2, &x, &w, Some(&b), &mut y);
        assert_eq!(y, expected);

        let dy = [1.0, 0.0, 0.0, 2.0];
        let (mut dw, mut db, mut dx) = ([0.0; 6], [0.0; 2], [f32::NAN; 6]);
        backward(&g, 2, &x, &w, &dy, &mut dw, Some(&mut db), Some(&mut dx));
        assert_eq!(dw, [1.0, 2.0, 3.0, -2.0, 0.0, 2.0]);
        assert_eq!(db, [1.0, 2.0]);
        assert_eq!(dx, [1.0, 0.0, -1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    #[should_panic(expected = "linear: y has 3 elements, expected n * out_features = 2 * 2")]
    fn wrong_output_len_panics() {
        let g = Linear {
            in_features: 3,
            out_features: 2,
        };
        forward(&g, 2, &[0.0; 6], &[0.0; 6], None, &mut [0.0; 3]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn forward_matches_reference((g, n) in geometry(), has_bias: bool, seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * g.in_features);
            let w = rng.vec(g.weight_len());
            let b = rng.vec(g.out_features);
            let b = has_bias.then_some(&b[..]);
            let expected =
                reference_forward(&g, n, &to_f64(&x), &to_f64(&w), b.map(to_f64).as_deref());
            let mut y = vec![f32::NAN; n * g.out_features];
            forward(&g, n, &x, &w, b, &mut y);
            assert_close("y", &y, &expected, 1e-5);
            let mut y_gemm = vec![f32::NAN; y.len()];
            forward_gemm(&g, n, &x, &w, b, &mut y_gemm);
            assert_close32("y_gemm", &y_gemm, &y, 1e-5);
        }

        #[test]
        fn backward_matches_reference((g, n) in geometry(), has_bias: bool, seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * g.in_features);
            let w = rng.vec(g.weight_len());
            let dy = rng.vec(n * g.out_features);
            let dw0 = rng.vec(w.len());
            let db0 = rng.vec(g.out_features);
            let (rdx, rdw, rdb) = reference_backward(&g, n, &to_f64(&x), &to_f64(&w), &to_f64(&dy));
            let plus = |a: &[f32], b: &[f64]| -> Vec<f64> {
                a.iter().zip(b).map(|(&a, &b)| f64::from(a) + b).collect()
            };

            let mut dx = vec![f32::NAN; x.len()];
            let (mut dw, mut db) = (dw0.clone(), db0.clone());
            backward(&g, n, &x, &w, &dy, &mut dw, has_bias.then_some(&mut db[..]), Some(&mut dx));
            assert_close("dx", &dx, &rdx, 1e-5);
            assert_close("dw", &dw, &plus(&dw0, &rdw), 1e-5);
            if has_bias {
                assert_close("db", &db, &plus(&db0, &rdb), 1e-5);
            } else {
                prop_assert_eq!(&db, &db0);
            }

            let mut dx_gemm = vec![f32::NAN; x.len()];
            let (mut dw_gemm, mut db_gemm) = (dw0.clone(), db0.clone());
            backward_gemm(&g, n, &x, &w, &dy, &mut dw_gemm, has_bias.then_some(&mut db_gemm[..]),
                          Some(&mut dx_gemm));
            assert_close32("dx_gemm", &dx_gemm, &dx, 1e-5);
            assert_close32("dw_gemm", &dw_gemm, &dw, 1e-5);
            assert_close32("db_gemm", &db_gemm, &db, 1e-5);
        }

        #[test]
        fn backward_matches_finite_differences((g, n) in geometry(), seed: u64) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * g.in_features);
            let w = rng.vec(g.weight_len());
            let b = rng.vec(g.out_features);
            let r = rng.vec(n * g.out_features);
            let mut dx = vec![0.0; x.len()];
            let mut dw = vec![0.0; w.len()];
            let mut db = vec![0.0; b.len()];
            backward(&g, n, &x, &w, &r, &mut dw, Some(&mut db), Some(&mut dx));
            let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
            let loss = |x: &[f64], w: &[f64], b: &[f64]| {
                functional(&r, &reference_forward(&g, n, x, w, Some(b)))
            };
            let fd = finite_diff(&x64, 1e-3, &mut rng, 24, |x| loss(x, &w64, &b64));
            assert_grad("dx", &dx, &fd, 1e-4);
            let fd = finite_diff(&w64, 1e-3, &mut rng, 24, |w| loss(&x64, w, &b64));
            assert_grad("dw", &dw, &fd, 1e-4);
            let fd = finite_diff(&b64, 1e-3, &mut rng, 24, |b| loss(&x64, &w64, b));
            assert_grad("db", &db, &fd, 1e-4);
        }
    }
}
