//! The inner-product path: when `A`'s rows and `B`'s columns are both
//! contiguous along the depth (`csa == 1`, `rsb == 1`, as in `X W^T` of the
//! batched linear forward), each element of `C` is a dot product of two
//! contiguous vectors. Tiles of them are computed straight from the
//! operands: no packing, so no transposing copy of `B`, which is what
//! dominates the packed path for these layouts. [`run_windows`] is the same
//! loop over columns that start anywhere (the conv weight gradient).

#[cfg(target_arch = "x86_64")]
use super::kernel::x86::{dot_tile_avx2, dot_tile_avx512, DOT_MR_AVX2, DOT_NR};
use super::kernel::Isa;
use super::packed::Problem;

/// Whether `p` takes the inner-product path with `isa`.
pub(super) fn applies(isa: Isa, p: &Problem) -> bool {
    isa.has_dot() && p.a.cs == 1 && p.b.rs == 1
}

/// A tile kernel of `kernel::x86` and its row count.
#[cfg(target_arch = "x86_64")]
type Tile = (
    unsafe fn(
        usize,
        f32,
        (*const f32, usize, usize),
        ([*const f32; DOT_NR], usize),
        f32,
        (*mut f32, usize, usize),
    ),
    usize,
);

/// The tile `isa` runs for the next `rows` rows: the widest, or with
/// AVX-512 the one closest to the rows left (so LeNet's 16 output channels
/// take tiles of 6, 6 and 4 rows rather than 6, 6 and 6).
#[cfg(target_arch = "x86_64")]
fn tile(isa: Isa, rows: usize) -> Tile {
    match (isa, rows) {
        (Isa::Avx512, 5..) => (dot_tile_avx512::<6>, 6),
        (Isa::Avx512, 4) => (dot_tile_avx512::<4>, 4),
        (Isa::Avx512, 3) => (dot_tile_avx512::<3>, 3),
        (Isa::Avx512, _) => (dot_tile_avx512::<2>, 2),
        _ => (dot_tile_avx2, DOT_MR_AVX2),
    }
}

/// Runs `p` on the inner-product path.
///
/// # Safety
///
/// As [`super::packed::run`], and [`applies`] holds.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn run(isa: Isa, p: &Problem) {
    let Problem {
        m,
        k,
        n,
        alpha,
        a,
        b,
        beta,
        c,
    } = *p;
    // SAFETY: the caller's contract is `tiles`': columns of B at `cs`
    // steps are contiguous along the depth (`applies`).
    unsafe {
        tiles(
            isa,
            (m, k, n),
            alpha,
            (a.ptr, a.rs),
            &|j| b.ptr.wrapping_add(j * b.cs),
            beta,
            (c.ptr, c.rs, c.cs),
        )
    }
}

/// `C[i][j] += sum_{p < k} A[i * lda + p] * B[start(j) + p]` for `i < m`,
/// `j < n`, `C` row-major with row stride `ldc`: see
/// [`super::dot_windows`], which checks the bounds.
///
/// # Safety
///
/// As [`tiles`] with column `j` at `b + start(j)`, `alpha = beta = 1` and
/// `C` at `c + i * ldc + j`.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn run_windows(
    isa: Isa,
    (m, k, n): (usize, usize, usize),
    (a, lda): (*const f32, usize),
    b: *const f32,
    start: &dyn Fn(usize) -> usize,
    (c, ldc): (*mut f32, usize),
) {
    // SAFETY: forwarded contract.
    unsafe {
        tiles(
            isa,
            (m, k, n),
            1.0,
            (a, lda),
            &|j| b.wrapping_add(start(j)),
            1.0,
            (c, ldc, 1),
        )
    }
}

/// `C[i][j] <- alpha * sum_{p < k} A_i[p] B_j[p] + beta * C[i][j]` with row
/// `A_i` at `a + i * lda`, column `B_j` at `col(j)` and `C[i][j]` at
/// `c + i * rsc + j * csc`, in tiles of [`DOT_NR`] columns (outside: they
/// stay in L1 while the rows of `A` stream past them) by up to 6 rows.
///
/// # Safety
///
/// `isa` runs here and [`Isa::has_dot`]; `m, n, k > 0`; `k` elements from
/// every `a + i * lda` (`i < m`) and every `col(j)` (`j < n`) are readable;
/// the `C` elements are distinct, writable and overlap neither operand.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tiles(
    isa: Isa,
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    (a, lda): (*const f32, usize),
    col: &dyn Fn(usize) -> *const f32,
    beta: f32,
    (c, rsc, csc): (*mut f32, usize, usize),
) {
    for j0 in (0..n).step_by(DOT_NR) {
        let nr = DOT_NR.min(n - j0);
        let cols = core::array::from_fn(|j| col(j0 + j.min(nr - 1)));
        let mut i0 = 0;
        while i0 < m {
            let (kernel, mr_max) = tile(isa, m - i0);
            let mr = mr_max.min(m - i0);
            // SAFETY: rows i0..i0 + mr of A and the columns in `cols` are
            // readable for `k` elements; the C tile is inside C and
            // overlaps no operand; `isa`'s features are on (caller).
            unsafe {
                kernel(
                    k,
                    alpha,
                    (a.wrapping_add(i0 * lda), lda, mr),
                    (cols, nr),
                    beta,
                    (c.wrapping_add(i0 * rsc + j0 * csc), rsc, csc),
                )
            };
            i0 += mr;
        }
    }
}

/// Never called: [`applies`] is false without `x86_64`.
///
/// # Safety
///
/// None needed; it panics.
#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn run(_: Isa, _: &Problem) {
    unreachable!("the inner-product path needs x86_64")
}
