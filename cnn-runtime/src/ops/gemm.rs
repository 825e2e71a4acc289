//! Safe, length-checked single-precision GEMM over slices (`std` only):
//!
//! `C <- alpha A B + beta C`, with `A` an `m x k`, `B` a `k x n` and `C` an
//! `m x n` matrix, each given as a slice plus a row stride `rs` and a column
//! stride `cs` in elements (`A[i][j] = a[i * rsa + j * csa]`). A transposed
//! operand is just swapped strides: callers never copy a matrix to transpose
//! it. Matches `torch.addmm(C, A, B, beta=beta, alpha=alpha)`.
//!
//! No BLAS: a BLIS-style packed loop nest (`packed`) around a register
//! microkernel picked once per process for this CPU (`kernel`), and an
//! unpacked inner-product path (`dot`) for operands that are contiguous
//! along the depth. The packing buffers are thread-local and reused, so
//! after the first call of a given size on a thread no call touches the
//! heap. Its `unsafe` is raw-pointer kernels behind the length checks of
//! [`sgemm`] and [`dot_windows`] (the crate's other `unsafe`: the
//! convolution intrinsics in `conv/x86.rs`, the instruction-set dispatch
//! in `simd.rs` and the worker pool in `workspace.rs`).
#![deny(unsafe_op_in_unsafe_fn)]

mod dot;
mod kernel;
mod packed;

use kernel::Isa;
use packed::{MatMut, MatRef, Problem};

/// `C <- alpha A B + beta C` (see the module docs for the stride convention).
///
/// When `beta == 0`, `C` is not read, so it may hold garbage or NaN. With
/// `k == 0` the product is empty and `C <- beta C`.
///
/// # Panics
///
/// If a stride is negative, if some element that the strides address lies
/// outside its slice, or if `C`'s strides make two of its elements share one
/// location.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    sgemm_with(
        Isa::detect(),
        true,
        (m, k, n),
        alpha,
        (a, rsa, csa),
        (b, rsb, csb),
        beta,
        (c, rsc, csc),
    );
}

/// The name of the microkernel [`sgemm`] uses on this CPU, with its tile
/// shape, e.g. `"x86_64 avx2+fma 6x16"`.
pub fn has_fast_kernel() -> &'static str {
    Isa::detect().name()
}

/// Whether [`dot_windows`] runs on this CPU (it needs AVX2 and FMA), so a
/// caller can skip preparing its operands when it would return `false`.
pub fn dot_windows_available() -> bool {
    Isa::detect().has_dot()
}

/// [`sgemm`] with an explicit kernel set, and the inner-product path allowed
/// or not, so tests can run every variant.
#[allow(clippy::too_many_arguments)]
fn sgemm_with(
    isa: Isa,
    allow_dot: bool,
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    (a, rsa, csa): (&[f32], isize, isize),
    (b, rsb, csb): (&[f32], isize, isize),
    beta: f32,
    (c, rsc, csc): (&mut [f32], isize, isize),
) {
    check_operand("A", a.len(), m, k, rsa, csa);
    check_operand("B", b.len(), k, n, rsb, csb);
    check_operand("C", c.len(), m, n, rsc, csc);
    if m == 0 || n == 0 {
        return;
    }
    // The kernels require C's elements not to alias one another. A
    // sufficient condition: one stride steps over the whole extent of the
    // other dimension (row-major-like or column-major-like), which every
    // caller here satisfies.
    let (rsc, csc) = (rsc as usize, csc as usize);
    let row_major = (n == 1 || csc >= 1) && (m == 1 || rsc > (n - 1) * csc);
    let col_major = (m == 1 || rsc >= 1) && (n == 1 || csc > (m - 1) * rsc);
    assert!(
        row_major || col_major,
        "sgemm: strides ({rsc}, {csc}) of the {m} x {n} matrix C make elements alias"
    );
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let c_ij = &mut c[i * rsc + j * csc];
                *c_ij = if beta == 0.0 { 0.0 } else { beta * *c_ij };
            }
        }
        return;
    }
    let (rsa, csa, rsb, csb) = (rsa as usize, csa as usize, rsb as usize, csb as usize);
    let problem = Problem {
        m,
        k,
        n,
        alpha,
        a: MatRef {
            ptr: a.as_ptr(),
            rs: rsa,
            cs: csa,
        },
        b: MatRef {
            ptr: b.as_ptr(),
            rs: rsb,
            cs: csb,
        },
        beta,
        c: MatMut {
            ptr: c.as_mut_ptr(),
            rs: rsc,
            cs: csc,
        },
    };
    assert!(
        isa.available(),
        "sgemm: the {} kernel needs CPU features this machine lacks",
        isa.name()
    );
    // SAFETY: `isa` runs here (asserted); m, k, n > 0; every element the
    // problem addresses is at `row * rs + col * cs` with row and col inside
    // the stated dimensions, which `check_operand` asserted lies inside each
    // slice; `c` is a unique borrow, so it overlaps neither `a` nor `b`, and
    // its elements do not alias one another (asserted above).
    unsafe {
        if allow_dot && dot::applies(isa, &problem) {
            dot::run(isa, &problem);
        } else {
            packed::run(isa, &problem);
        }
    }
}

/// `C[i][j] += sum_{p < k} A[i * lda + p] * B[start(j) + p]` for `i < m`,
/// `j < n`, with `C` row-major (row stride `ldc`): the inner products of `m`
/// contiguous rows of `A` with `n` contiguous windows of `B` that begin
/// anywhere and may overlap. With the windows at the shifted views of one
/// zero-padded image this is the weight gradient of a convolution, without
/// the im2col copy an [`sgemm`] would need (`conv::backward_gemm`).
///
/// Returns `false`, having done nothing, when this CPU has no vector kernel
/// for it (the inner-product tiles need AVX2 and FMA): the caller then takes
/// another path.
///
/// # Panics
///
/// If a row of `A` or a window of `B` runs past its slice, if `ldc < n`, or
/// if `C` is too short.
#[allow(clippy::too_many_arguments)]
pub fn dot_windows(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    start: impl Fn(usize) -> usize,
    c: &mut [f32],
    ldc: usize,
) -> bool {
    if !dot_windows_available() {
        return false;
    }
    let isa = Isa::detect();
    if m == 0 || n == 0 || k == 0 {
        return true;
    }
    assert!(
        (m - 1) * lda + k <= a.len(),
        "dot_windows: A has {} elements, its {m} rows of {k} at stride {lda} need {}",
        a.len(),
        (m - 1) * lda + k
    );
    for j in 0..n {
        let s = start(j);
        assert!(
            s.checked_add(k).is_some_and(|end| end <= b.len()),
            "dot_windows: window {j} of B starts at {s}, runs {k} elements, but B has {}",
            b.len()
        );
    }
    assert!(
        ldc >= n && (m - 1) * ldc + n <= c.len(),
        "dot_windows: C has {} elements with row stride {ldc}, needs {m} rows of {n}",
        c.len()
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `has_dot` says AVX2 and FMA run here; m, n, k > 0; every row
    // of A and window of B is in bounds (asserted above), C's elements
    // `i * ldc + j` are in bounds and distinct (`ldc >= n`), and `c` is a
    // unique borrow, so it overlaps neither operand.
    unsafe {
        dot::run_windows(
            isa,
            (m, k, n),
            (a.as_ptr(), lda),
            b.as_ptr(),
            &start,
            (c.as_mut_ptr(), ldc),
        );
    }
    true
}

/// Asserts that the `rows x cols` matrix with strides `(rs, cs)` lies inside
/// a slice of `len` elements.
#[inline]
#[track_caller]
fn check_operand(name: &str, len: usize, rows: usize, cols: usize, rs: isize, cs: isize) {
    assert!(
        rs >= 0 && cs >= 0,
        "sgemm: {name} strides must be non-negative, got ({rs}, {cs})"
    );
    if rows == 0 || cols == 0 {
        return;
    }
    let last = (rows - 1)
        .checked_mul(rs as usize)
        .zip((cols - 1).checked_mul(cs as usize))
        .and_then(|(r, c)| r.checked_add(c));
    assert!(
        matches!(last, Some(last) if last < len),
        "sgemm: {name} is {rows} x {cols} with strides ({rs}, {cs}) but its slice has only {len} elements"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_close32, Rng};
    use proptest::prelude::*;

    /// `C <- alpha A B + beta C`, the loops of the definition, in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: &[f32],
        (rsa, csa): (usize, usize),
        b: &[f32],
        (rsb, csb): (usize, usize),
        beta: f32,
        c: &[f32],
        (rsc, csc): (usize, usize),
    ) -> Vec<f64> {
        let mut out: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    acc += f64::from(a[i * rsa + p * csa]) * f64::from(b[p * rsb + j * csb]);
                }
                let at = i * rsc + j * csc;
                let old = if beta == 0.0 {
                    0.0
                } else {
                    f64::from(beta) * out[at]
                };
                out[at] = f64::from(alpha) * acc + old;
            }
        }
        out
    }

    #[test]
    fn two_by_two() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [f32::NAN; 4];
        sgemm(2, 2, 2, 1.0, &a, 2, 1, &b, 2, 1, 0.0, &mut c, 2, 1);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // A^T B through swapped strides, accumulated with beta = 1.
        sgemm(2, 2, 2, 1.0, &a, 1, 2, &b, 2, 1, 1.0, &mut c, 2, 1);
        assert_eq!(c, [19.0 + 26.0, 22.0 + 30.0, 43.0 + 38.0, 50.0 + 44.0]);
    }

    #[test]
    #[should_panic(expected = "but its slice has only 3 elements")]
    fn short_slice_panics() {
        let mut c = [0.0; 4];
        sgemm(2, 2, 2, 1.0, &[0.0; 3], 2, 1, &[0.0; 4], 2, 1, 0.0, &mut c, 2, 1);
    }

    #[test]
    #[should_panic(expected = "make elements alias")]
    fn aliasing_c_panics() {
        let mut c = [0.0; 4];
        sgemm(2, 2, 2, 1.0, &[0.0; 4], 2, 1, &[0.0; 4], 2, 1, 0.0, &mut c, 1, 1);
    }

    #[test]
    fn empty_k_scales_c() {
        let mut c = [1.0, 2.0];
        sgemm(1, 0, 2, 1.0, &[], 0, 0, &[], 0, 0, 3.0, &mut c, 2, 1);
        assert_eq!(c, [3.0, 6.0]);
    }

    /// A random strided layout for a `rows x cols` operand: row-major,
    /// column-major or general strides, with padding, and (unless `c`)
    /// occasionally a zero stride that repeats a row or column. Returns the
    /// strides and the slice length they need.
    fn layout(rng: &mut Rng, rows: usize, cols: usize, c: bool) -> ((usize, usize), usize) {
        let pad = rng.below(3);
        let (rs, cs) = match rng.below(if c { 3 } else { 4 }) {
            0 => (cols + pad, 1),
            1 => (1, rows + pad),
            2 => {
                let cs = 2 + rng.below(2);
                (cols * cs + pad, cs)
            }
            _ if rng.below(2) == 0 => (0, 1),
            _ => (cols, 0),
        };
        ((rs, cs), (rows - 1) * rs + (cols - 1) * cs + 1 + rng.below(2))
    }

    /// Runs `sgemm_with(isa, allow_dot, ..)` on a copy of `c0` and checks it
    /// against the f64 definition (relative tolerance 1e-5 per unit of depth).
    #[allow(clippy::too_many_arguments)]
    fn check_route(
        isa: Isa,
        allow_dot: bool,
        (m, k, n): (usize, usize, usize),
        alpha: f32,
        (a, sa): (&[f32], (usize, usize)),
        (b, sb): (&[f32], (usize, usize)),
        beta: f32,
        (c0, sc): (&[f32], (usize, usize)),
    ) -> Vec<f32> {
        let expected = reference(m, k, n, alpha, a, sa, b, sb, beta, c0, sc);
        let mut c = c0.to_vec();
        if beta == 0.0 {
            fill_matrix(&mut c, m, n, sc, f32::NAN);
        }
        let s = |(r, c): (usize, usize)| (r as isize, c as isize);
        sgemm_with(
            isa,
            allow_dot,
            (m, k, n),
            alpha,
            (a, s(sa).0, s(sa).1),
            (b, s(sb).0, s(sb).1),
            beta,
            (&mut c, s(sc).0, s(sc).1),
        );
        let tol = 1e-5 * (1.0 + k as f64);
        let what = format!("{} ({})", isa.name(), if allow_dot { "auto" } else { "packed" });
        assert_close(&what, &c, &expected, tol);
        c
    }

    /// [`check_route`] on the packed path and on the automatic choice
    /// (which is the inner-product path where it applies); returns the
    /// latter.
    #[allow(clippy::too_many_arguments)]
    fn check_kernel(
        isa: Isa,
        mkn: (usize, usize, usize),
        alpha: f32,
        a: (&[f32], (usize, usize)),
        b: (&[f32], (usize, usize)),
        beta: f32,
        c0: (&[f32], (usize, usize)),
    ) -> Vec<f32> {
        check_route(isa, false, mkn, alpha, a, b, beta, c0);
        check_route(isa, true, mkn, alpha, a, b, beta, c0)
    }

    /// Sets the elements of the `m x n` matrix with strides `sc` to `v`
    /// (the padding between them keeps its values).
    fn fill_matrix(c: &mut [f32], m: usize, n: usize, (rs, cs): (usize, usize), v: f32) {
        for i in 0..m {
            for j in 0..n {
                c[i * rs + j * cs] = v;
            }
        }
    }

    /// Every kernel compiled in that this CPU can run.
    fn kernels() -> impl Iterator<Item = Isa> {
        Isa::ALL.iter().copied().filter(|isa| isa.available())
    }

    #[test]
    fn detected_kernel_is_available_and_named() {
        assert!(Isa::detect().available());
        assert_eq!(has_fast_kernel(), Isa::detect().name());
        #[cfg(target_arch = "x86_64")]
        if crate::ops::simd::level() != crate::ops::simd::Level::Baseline {
            assert_ne!(Isa::detect(), Isa::Portable);
        }
    }

    #[test]
    fn empty_k_with_zero_beta_overwrites_nan() {
        let mut c = [f32::NAN; 2];
        sgemm(1, 0, 2, 1.0, &[], 0, 0, &[], 0, 0, 0.0, &mut c, 2, 1);
        assert_eq!(c, [0.0, 0.0]);
    }

    /// Sizes past every block (`MC`, `KC` and `NC`), so several depth slices
    /// accumulate and several `A` and `B` blocks are packed; the last layout
    /// takes the inner-product path.
    #[test]
    fn crosses_every_block() {
        let (m, k, n) = (151, 265, 2053);
        let mut rng = Rng::new(7);
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let c0 = rng.vec(m * n);
        for isa in kernels() {
            check_kernel(
                isa,
                (m, k, n),
                0.5,
                (&a, (k, 1)),
                (&b, (n, 1)),
                -1.5,
                (&c0, (n, 1)),
            );
            check_kernel(
                isa,
                (m, k, n),
                1.0,
                (&a, (1, m)),
                (&b, (1, k)),
                0.0,
                (&c0, (1, m)),
            );
            check_kernel(
                isa,
                (m, k, n),
                2.0,
                (&a, (k, 1)),
                (&b, (1, k)),
                1.0,
                (&c0, (n, 1)),
            );
        }
    }

    /// The products LeNet's batched paths compute, with the callers' strides.
    #[test]
    fn lenet_shapes() {
        let mut rng = Rng::new(11);
        for isa in kernels() {
            for &(m, k, n, ta, tb, beta) in &[
                (6, 25, 784, false, false, 1.0),   // conv1 forward
                (16, 150, 100, false, false, 1.0), // conv2 forward
                (6, 784, 25, false, true, 1.0),    // conv1 dW += dY col^T
                (150, 16, 100, true, false, 0.0),  // conv2 dcol = W^T dY
                (32, 400, 120, false, true, 1.0),  // linear forward
                (120, 32, 400, true, false, 1.0),  // linear dW += dY^T X
                (32, 120, 400, false, false, 0.0), // linear dX = dY W
                (32, 84, 10, false, true, 1.0),
            ] {
                let a = rng.vec(m * k);
                let b = rng.vec(k * n);
                let c0 = rng.vec(m * n);
                let sa = if ta { (1, m) } else { (k, 1) };
                let sb = if tb { (1, k) } else { (n, 1) };
                check_kernel(isa, (m, k, n), 1.0, (&a, sa), (&b, sb), beta, (&c0, (n, 1)));
            }
        }
    }

    /// A call after a larger one reuses (part of) its buffer, and one after
    /// a smaller one grows it; neither sees stale packed data.
    #[test]
    fn buffer_reuse_across_sizes() {
        let mut rng = Rng::new(3);
        for &(m, k, n) in &[(40, 300, 50), (5, 7, 3), (70, 20, 90), (5, 7, 3)] {
            let a = rng.vec(m * k);
            let b = rng.vec(k * n);
            let c0 = rng.vec(m * n);
            let expected = check_kernel(
                Isa::detect(),
                (m, k, n),
                1.0,
                (&a, (k, 1)),
                (&b, (n, 1)),
                0.0,
                (&c0, (n, 1)),
            );
            let mut c = vec![0.0; m * n];
            sgemm(
                m, k, n, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1,
            );
            assert_eq!(c, expected, "sgemm is deterministic across buffer states");
        }
    }

    /// Every AVX-512 tile shape, not just the one `avx512_tile` picks, over
    /// random sizes and layouts on the packed path.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_avx512_tile() {
        use kernel::AVX512_TILES;
        use packed::FORCE_AVX512_TILE;
        if !Isa::Avx512.available() {
            return;
        }
        let mut rng = Rng::new(5);
        for t in 0..AVX512_TILES.len() {
            FORCE_AVX512_TILE.with(|f| f.set(Some(t)));
            for _ in 0..40 {
                let (m, k, n) = (1 + rng.below(40), 1 + rng.below(300), 1 + rng.below(80));
                let (sa, a_len) = layout(&mut rng, m, k, false);
                let (sb, b_len) = layout(&mut rng, k, n, false);
                let (sc, c_len) = layout(&mut rng, m, n, true);
                let (a, b, c0) = (rng.vec(a_len), rng.vec(b_len), rng.vec(c_len));
                let beta = [0.0, 1.0, 0.5][rng.below(3)];
                check_route(
                    Isa::Avx512,
                    false,
                    (m, k, n),
                    1.5,
                    (&a, sa),
                    (&b, sb),
                    beta,
                    (&c0, sc),
                );
            }
        }
        FORCE_AVX512_TILE.with(|f| f.set(None));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_tile_choice() {
        use kernel::{avx512_tile, AVX512_TILES};
        let tile = |m, n| AVX512_TILES[avx512_tile(m, n)];
        assert_eq!(tile(16, 100), (8, 32));
        assert_eq!(tile(6, 784), (6, 32));
        assert_eq!(tile(256, 256), (8, 32));
        assert_eq!(tile(150, 100), (6, 32));
        assert_eq!(tile(96, 196), (6, 32));
        // Half the work: LeNet's last layer, 10 outputs.
        assert_eq!(tile(256, 10), (8, 16));
    }

    /// Threads have their own buffers: concurrent calls do not interfere.
    #[test]
    fn concurrent_threads() {
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                scope.spawn(move || {
                    let mut rng = Rng::new(100 + t);
                    for _ in 0..20 {
                        let (m, k, n) = (1 + rng.below(40), 1 + rng.below(300), 1 + rng.below(40));
                        let a = rng.vec(m * k);
                        let b = rng.vec(k * n);
                        let c0 = rng.vec(m * n);
                        check_kernel(
                            Isa::detect(),
                            (m, k, n),
                            1.0,
                            (&a, (k, 1)),
                            (&b, (1, k)),
                            1.0,
                            (&c0, (n, 1)),
                        );
                    }
                });
            }
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// `dot_windows` against the f64 definition, with overlapping
        /// windows at arbitrary starts and partial tiles.
        #[test]
        fn dot_windows_matches_reference(m in 1usize..=9, k in 1usize..=40, n in 1usize..=11,
                                         extra in 0usize..3, seed: u64) {
            let mut rng = Rng::new(seed);
            let lda = k + extra;
            let ldc = n + extra;
            let a = rng.vec((m - 1) * lda + k);
            let b = rng.vec(k + 2 * n + extra);
            let starts: Vec<usize> = (0..n).map(|_| (rng.next_u64() % (2 * n + extra + 1) as u64) as usize).collect();
            let c0 = rng.vec((m - 1) * ldc + n);
            let mut expected: Vec<f64> = c0.iter().map(|&v| f64::from(v)).collect();
            for i in 0..m {
                for (j, &s) in starts.iter().enumerate() {
                    let dot: f64 = (0..k).map(|p| f64::from(a[i * lda + p]) * f64::from(b[s + p])).sum();
                    expected[i * ldc + j] += dot;
                }
            }
            let mut c = c0.clone();
            if dot_windows(m, k, n, &a, lda, &b, |j| starts[j], &mut c, ldc) {
                assert_close("dot_windows", &c, &expected, 1e-5 * (1.0 + k as f64));
            } else {
                prop_assert_eq!(c, c0);
            }
        }

        /// Every kernel against the f64 definition, and the selected one
        /// against matrixmultiply, over random sizes, layouts, alpha, beta.
        #[test]
        fn matches_reference(m in 1usize..=70, k in 1usize..=70, n in 1usize..=70,
                             alpha_kind in 0usize..3, beta_kind in 0usize..4, seed: u64) {
            let mut rng = Rng::new(seed);
            let (sa, a_len) = layout(&mut rng, m, k, false);
            let (sb, b_len) = layout(&mut rng, k, n, false);
            let (sc, c_len) = layout(&mut rng, m, n, true);
            let a = rng.vec(a_len);
            let b = rng.vec(b_len);
            let c0 = rng.vec(c_len);
            let alpha = [1.0, 0.75, -2.0][alpha_kind];
            let beta = [0.0, 1.0, -0.5, 2.0][beta_kind];
            let mut ours = Vec::new();
            for isa in kernels() {
                ours = check_kernel(isa, (m, k, n), alpha, (&a, sa), (&b, sb), beta, (&c0, sc));
            }
            let mut theirs = c0.clone();
            let s = |x: usize| x as isize;
            // SAFETY: `layout` sized every slice for its strides, and C's
            // strides never alias (row- or column-major with padding).
            unsafe {
                matrixmultiply::sgemm(m, k, n, alpha, a.as_ptr(), s(sa.0), s(sa.1),
                                      b.as_ptr(), s(sb.0), s(sb.1), beta,
                                      theirs.as_mut_ptr(), s(sc.0), s(sc.1));
            }
            // Padding between elements is left alone by both, so compare all.
            assert_close32("sgemm vs matrixmultiply", &ours, &theirs, 1e-5 * (1.0 + k as f64));
        }
    }
}
