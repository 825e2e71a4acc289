//! The BLIS loop nest around a [`Kernel`]: `C` is cut into `NC`-column
//! blocks, the depth into `KC` slices and `A` into `MC`-row blocks; each
//! `KC x NC` block of `B` is packed into `NR`-column panels and each `MC x KC`
//! block of `A` into `MR`-row panels, so the microkernel streams both from
//! contiguous memory. The packing buffers live in one thread-local `Vec`
//! that grows to the largest size seen and is then reused: after the first
//! call of a given size on a thread, no call allocates.
//!
//! When `A` has few rows, each element of `B` is used by only a tile or two,
//! so a row-contiguous `B` is read in place rather than copied.

#[cfg(target_arch = "x86_64")]
use super::kernel::{avx512_tile, Avx2Fma, Avx512};
use super::kernel::{Isa, Kernel, Portable, MAX_TILE};
use std::cell::Cell;

/// Depth of a packed slice: a `KC x NR` sliver of `B` stays in L1.
const KC: usize = 256;
/// Rows of `A` packed at a time (a multiple of every `MR`): `MC x KC` stays
/// in L2.
const MC: usize = 144;
/// Columns of `B` packed at a time (a multiple of every `NR`).
const NC: usize = 2048;
/// Up to this many rows of `A`, a `B` with unit column stride is not packed.
const DIRECT_B_MAX_M: usize = 24;
/// Packed panels start on a 64-byte boundary (16 floats): a cache line.
const ALIGN: usize = 16;

/// A read-only strided matrix: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(super) struct MatRef {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// A writable strided matrix, as [`MatRef`].
#[derive(Clone, Copy)]
pub(super) struct MatMut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

/// `C <- alpha A B + beta C` with `A` `m x k`, `B` `k x n`, `C` `m x n`.
#[derive(Clone, Copy)]
pub(super) struct Problem {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub alpha: f32,
    pub a: MatRef,
    pub b: MatRef,
    pub beta: f32,
    pub c: MatMut,
}

thread_local! {
    /// The packing buffer of this thread; taken out while a call runs, so a
    /// re-entrant call (none exists today) would just start a fresh one.
    static WORKSPACE: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `p` with the kernel of `isa`.
///
/// # Safety
///
/// `isa` is available on this CPU; `m, k, n > 0`; every element of `A`, `B`
/// and `C` that `p` addresses is inside a live allocation, `C`'s elements
/// are distinct, writable and overlap neither `A` nor `B`.
pub(super) unsafe fn run(isa: Isa, p: &Problem) {
    let mut ws = WORKSPACE.try_with(Cell::take).unwrap_or_default();
    // SAFETY: forwarded contract; each arm's kernel is the one `isa` names,
    // whose features the caller checked.
    unsafe {
        match isa {
            Isa::Portable => gemm::<Portable>(p, &mut ws),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => gemm_avx2(p, &mut ws),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => match forced_avx512_tile().unwrap_or_else(|| avx512_tile(p.m, p.n)) {
                0 => gemm_avx512::<Avx512<6, 2>>(p, &mut ws),
                1 => gemm_avx512::<Avx512<8, 2>>(p, &mut ws),
                2 => gemm_avx512::<Avx512<6, 1>>(p, &mut ws),
                _ => gemm_avx512::<Avx512<8, 1>>(p, &mut ws),
            },
        }
    }
    // Fails only while the thread is being torn down; the buffer is dropped.
    let _ = WORKSPACE.try_with(|cell| cell.set(ws));
}

#[cfg(all(test, target_arch = "x86_64"))]
thread_local! {
    /// Tests pin the AVX-512 tile here to run every variant on every shape.
    pub(super) static FORCE_AVX512_TILE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The AVX-512 tile a test pinned on this thread, if any.
#[cfg(target_arch = "x86_64")]
fn forced_avx512_tile() -> Option<usize> {
    #[cfg(test)]
    return FORCE_AVX512_TILE.with(Cell::get);
    #[cfg(not(test))]
    None
}

/// [`gemm`] with AVX2 + FMA enabled for the packing loops too.
///
/// # Safety
///
/// As [`run`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(p: &Problem, ws: &mut Vec<f32>) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<Avx2Fma>(p, ws) }
}

/// [`gemm`] with AVX-512F enabled for the packing loops too.
///
/// # Safety
///
/// As [`run`], on a CPU with AVX-512F, with `K` an AVX-512 kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gemm_avx512<K: Kernel>(p: &Problem, ws: &mut Vec<f32>) {
    // SAFETY: forwarded contract.
    unsafe { gemm::<K>(p, ws) }
}

const fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// The loop nest of the module docs, packing into `ws` (grown if needed).
///
/// # Safety
///
/// As [`run`], with `K`'s target features available.
#[inline(always)]
unsafe fn gemm<K: Kernel>(p: &Problem, ws: &mut Vec<f32>) {
    const { assert!(K::MR * K::NR <= MAX_TILE && MC / K::MR * K::MR == MC && NC / K::NR * K::NR == NC) };
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
    let (mr_n, nr_n) = (K::MR, K::NR);
    let kc_max = k.min(KC);
    let a_len = round_up(round_up(m, mr_n).min(MC) * kc_max, ALIGN);
    let direct_b = b.cs == 1 && m <= DIRECT_B_MAX_M;
    // Direct `B` still packs its last, partial panel (zero-padded).
    let b_len = kc_max * if direct_b { nr_n } else { round_up(n, nr_n).min(NC) };
    if ws.len() < a_len + b_len + ALIGN {
        ws.resize(a_len + b_len + ALIGN, 0.0);
    }
    let start = ws.as_ptr().align_offset(ALIGN * size_of::<f32>()).min(ALIGN);
    let (a_buf, b_buf) = ws[start..][..a_len + b_len].split_at_mut(a_len);

    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // Later depth slices accumulate onto the first one's result.
            let beta = if pc == 0 { beta } else { 1.0 };
            // SAFETY: (pc, jc) is an element of B (pc < k, jc < n).
            let b_block = unsafe { b.ptr.add(pc * b.rs + jc * b.cs) };
            if !direct_b {
                for (jp, panel) in b_buf[..round_up(nc, nr_n) * kc]
                    .chunks_exact_mut(kc * nr_n)
                    .enumerate()
                {
                    let j0 = jp * nr_n;
                    // SAFETY: the panel covers rows pc..pc + kc and columns
                    // jc + j0..jc + j0 + min(NR, nc - j0) of B, all inside it.
                    unsafe { pack(panel, nr_n, nr_n.min(nc - j0), b_block.add(j0 * b.cs), b.cs, b.rs) };
                }
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: (ic, pc) is an element of A.
                let a_block = unsafe { a.ptr.add(ic * a.rs + pc * a.cs) };
                for (ip, panel) in a_buf[..round_up(mc, mr_n) * kc]
                    .chunks_exact_mut(kc * mr_n)
                    .enumerate()
                {
                    let i0 = ip * mr_n;
                    // SAFETY: rows ic + i0..ic + i0 + min(MR, mc - i0) and
                    // columns pc..pc + kc of A, all inside it.
                    unsafe { pack(panel, mr_n, mr_n.min(mc - i0), a_block.add(i0 * a.rs), a.rs, a.cs) };
                }
                for j0 in (0..nc).step_by(nr_n) {
                    let nr = nr_n.min(nc - j0);
                    let (b_sliver, rsb) = if !direct_b {
                        (b_buf[j0 * kc..].as_ptr(), nr_n)
                    } else if nr == nr_n {
                        // SAFETY: column jc + j0 of B exists; the kernel then
                        // reads rows < kc and columns < j0 + NR <= nc of the
                        // block, inside B.
                        (unsafe { b_block.add(j0) }, b.rs)
                    } else {
                        // SAFETY: as for the packed panels above.
                        unsafe { pack(&mut b_buf[..kc * nr_n], nr_n, nr, b_block.add(j0), 1, b.rs) };
                        (b_buf.as_ptr(), nr_n)
                    };
                    for i0 in (0..mc).step_by(mr_n) {
                        let mr = mr_n.min(mc - i0);
                        let a_sliver = a_buf[i0 * kc..].as_ptr();
                        // SAFETY: (ic + i0, jc + j0) is an element of C.
                        let c_tile = unsafe { c.ptr.add((ic + i0) * c.rs + (jc + j0) * c.cs) };
                        if mr == mr_n && nr == nr_n && c.cs == 1 {
                            // SAFETY: the A sliver holds kc * MR packed
                            // values, the B sliver kc rows of NR readable
                            // values `rsb` apart, and the full tile lies in C
                            // with unit column stride; K's features are on.
                            unsafe { K::tile(kc, alpha, a_sliver, b_sliver, rsb, beta, c_tile, c.rs) };
                        } else {
                            let mut tile = [0.0f32; MAX_TILE];
                            // SAFETY: as above, into the local MR x NR tile.
                            unsafe {
                                K::tile(kc, alpha, a_sliver, b_sliver, rsb, 0.0, tile.as_mut_ptr(), nr_n)
                            };
                            for (i, row) in tile.chunks_exact(nr_n).take(mr).enumerate() {
                                for (j, &v) in row[..nr].iter().enumerate() {
                                    // SAFETY: i < mr, j < nr: inside C.
                                    let c_ij = unsafe { &mut *c_tile.add(i * c.rs + j * c.cs) };
                                    *c_ij = if beta == 0.0 { v } else { v + beta * *c_ij };
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs a sliver: `dst` holds `depth = dst.len() / width` groups of `width`
/// lanes; lane `l < lanes` of group `p` is `src[l * ls + p * ps]`, lanes
/// `lanes..width` are zero.
///
/// # Safety
///
/// `src + l * ls + p * ps` is readable for every `l < lanes`, `p < depth`.
#[inline(always)]
unsafe fn pack(dst: &mut [f32], width: usize, lanes: usize, src: *const f32, ls: usize, ps: usize) {
    if ls == 1 && lanes == width {
        for (p, group) in dst.chunks_exact_mut(width).enumerate() {
            // SAFETY: lanes 0..width of step p are readable (contract).
            group.copy_from_slice(unsafe { std::slice::from_raw_parts(src.add(p * ps), width) });
        }
    } else {
        for (p, group) in dst.chunks_exact_mut(width).enumerate() {
            let (live, pad) = group.split_at_mut(lanes);
            for (l, d) in live.iter_mut().enumerate() {
                // SAFETY: l < lanes, p < depth (contract).
                *d = unsafe { *src.add(l * ls + p * ps) };
            }
            pad.fill(0.0);
        }
    }
}
