//! Safe, length-checked single-precision GEMM over slices (`std` only):
//!
//! `C <- alpha A B + beta C`, with `A` an `m x k`, `B` a `k x n` and `C` an
//! `m x n` matrix, each given as a slice plus a row stride `rs` and a column
//! stride `cs` in elements (`A[i][j] = a[i * rsa + j * csa]`). A transposed
//! operand is just swapped strides, so no kernel copies a matrix to
//! transpose it. Matches `torch.addmm(C, A, B, beta=beta, alpha=alpha)`.
//!
//! This is the crate's only `unsafe`: the call into [`matrixmultiply`], which
//! allocates its packing buffers (hence `std`).

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
    check_operand("A", a.len(), m, k, rsa, csa);
    check_operand("B", b.len(), k, n, rsb, csb);
    check_operand("C", c.len(), m, n, rsc, csc);
    if m == 0 || n == 0 {
        return;
    }
    // matrixmultiply requires C's elements not to alias one another. A
    // sufficient condition: one stride steps over the whole extent of the
    // other dimension (row-major-like or column-major-like), which every
    // kernel here satisfies.
    let (rsc_u, csc_u) = (rsc as usize, csc as usize);
    let row_major = (n == 1 || csc_u >= 1) && (m == 1 || rsc_u > (n - 1) * csc_u);
    let col_major = (m == 1 || rsc_u >= 1) && (n == 1 || csc_u > (m - 1) * rsc_u);
    assert!(
        row_major || col_major,
        "sgemm: strides ({rsc}, {csc}) of the {m} x {n} matrix C make elements alias"
    );
    // SAFETY: every element matrixmultiply reads from `a` and `b` or writes
    // to `c` is at `row * rs + col * cs` with row and col inside the stated
    // dimensions; `check_operand` asserted that those offsets are
    // non-negative and inside each slice (`a`/`b` are not read at all when
    // `k == 0`). `c` is a unique borrow, so it overlaps neither `a` nor `b`,
    // and its elements do not alias one another (asserted above).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
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
    use crate::ops::testing::{assert_close, Rng};
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_reference(m in 1usize..20, k in 0usize..20, n in 1usize..20,
                             ta: bool, tb: bool, tc: bool, beta_kind in 0usize..3,
                             seed: u64) {
            let mut rng = Rng::new(seed);
            let a = rng.vec(m * k);
            let b = rng.vec(k * n);
            let c0 = rng.vec(m * n);
            let sa = if ta { (1, m) } else { (k, 1) };
            let sb = if tb { (1, k) } else { (n, 1) };
            let sc = if tc { (1, m) } else { (n, 1) };
            let beta = [0.0, 1.0, -0.5][beta_kind];
            let expected = reference(m, k, n, 0.75, &a, sa, &b, sb, beta, &c0, sc);
            let mut c = c0.clone();
            if beta == 0.0 {
                c.fill(f32::NAN);
            }
            let s = |(r, c): (usize, usize)| (r as isize, c as isize);
            sgemm(m, k, n, 0.75, &a, s(sa).0, s(sa).1, &b, s(sb).0, s(sb).1,
                  beta, &mut c, s(sc).0, s(sc).1);
            assert_close("C", &c, &expected, 1e-5);
        }
    }
}
