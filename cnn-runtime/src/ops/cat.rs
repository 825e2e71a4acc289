//! The concatenation of `cat { .. | .. }` branches along channels, PyTorch's
//! `torch.cat(outputs, dim=1)` (GoogLeNet's Inception block, D2L 8.4, and
//! DenseNet, 8.7).
//!
//! With NCHW and the batch outermost, channel concatenation of one example
//! is the concatenation of its branches' flat outputs: branch `k` of `n`
//! examples, `part` elements each, goes to elements `at .. at + part` of
//! each example's `total`.

/// Forward of one branch: `y[i][at .. at + part] = x[i]` for every example
/// `i` of `n`, of `f32` or of int8 values ([`int8::forward`]).
///
/// # Panics
///
/// If `x` is not `n * part` long, `y` not `n * total`, or the part does
/// not fit in `total`.
pub fn forward<T: Copy>(n: usize, part: usize, total: usize, at: usize, x: &[T], y: &mut [T]) {
    check(n, part, total, at, x.len(), y.len());
    if part == 0 {
        return;
    }
    for (x, y) in x.chunks_exact(part).zip(y.chunks_exact_mut(total)) {
        y[at..at + part].copy_from_slice(x);
    }
}

/// Backward of one branch: `dx[i] = dy[i][at .. at + part]`, or `+=` when
/// `accumulate` (the branch's input already has a gradient from another
/// reader).
///
/// # Panics
///
/// As [`forward`], with `dx` for `x` and `dy` for `y`.
pub fn backward(
    n: usize,
    part: usize,
    total: usize,
    at: usize,
    dy: &[f32],
    dx: &mut [f32],
    accumulate: bool,
) {
    check(n, part, total, at, dx.len(), dy.len());
    if part == 0 {
        return;
    }
    for (dx, dy) in dx.chunks_exact_mut(part).zip(dy.chunks_exact(total)) {
        let dy = &dy[at..at + part];
        if accumulate {
            super::add::accumulate(dy, dx);
        } else {
            dx.copy_from_slice(dy);
        }
    }
}

fn check(n: usize, part: usize, total: usize, at: usize, x_len: usize, y_len: usize) {
    assert!(
        at.checked_add(part).is_some_and(|end| end <= total),
        "cat: part {at}..{at}+{part} does not fit in {total} elements per example"
    );
    assert_eq!(
        x_len,
        n * part,
        "cat: a branch has {x_len} elements, expected {n} x {part}"
    );
    assert_eq!(
        y_len,
        n * total,
        "cat: the output has {y_len} elements, expected {n} x {total}"
    );
}

pub mod int8 {
    //! int8 concatenation along channels, TFLite's CONCATENATION as
    //! TensorFlow Lite Micro runs it: a copy. TFLM's int8 kernel requires
    //! every input to have the output's scale and zero point (its Prepare
    //! fails otherwise; the converter gives the inputs of a CONCATENATION
    //! one shared quantization), so no value is requantized and no
    //! activation is fused.
    //!
    //! Layout as the float [`forward`](super::forward): branch `k` of `n`
    //! examples, `part` elements each, goes to elements `at .. at + part` of
    //! each example's `total`.

    use crate::quant::Quant;

    /// One branch: `y[i][at .. at + part] = x[i]` for every example `i` of
    /// `n`: the float [`forward`](super::forward), a copy. No heap, no `std`.
    ///
    /// # Panics
    ///
    /// If `x` is not `n * part` long, `y` not `n * total`, or the part does
    /// not fit in `total`.
    pub fn forward(n: usize, part: usize, total: usize, at: usize, x: &[i8], y: &mut [i8]) {
        super::forward(n, part, total, at, x, y);
    }

    /// Whether TFLM runs an int8 CONCATENATION of an input quantized as
    /// `input` into an output quantized as `output`: the scales equal (as
    /// `f64`, i.e. bit for bit) and the zero points too.
    pub const fn same_quantization(input: Quant, output: Quant) -> bool {
        input.scale as f64 == output.scale as f64 && input.zero_point == output.zero_point
    }

    #[cfg(test)]
    mod tests {
        use super::super::tests::reference;
        use super::*;
        use crate::ops::testing::Rng;
        use proptest::prelude::*;

        #[test]
        fn quantizations_must_match() {
            let q = Quant {
                scale: 0.089_242_5,
                zero_point: -128,
            };
            assert!(same_quantization(q, q));
            assert!(!same_quantization(
                q,
                Quant {
                    zero_point: -127,
                    ..q
                }
            ));
            assert!(!same_quantization(
                q,
                Quant {
                    scale: 0.089_242_51,
                    ..q
                }
            ));
        }

        #[test]
        #[should_panic(expected = "does not fit")]
        fn a_part_past_the_end_panics() {
            forward(1, 3, 4, 2, &[0; 3], &mut [0; 4]);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn matches_reference(n in 1usize..=3, hw in 0usize..=10, channels in prop::collection::vec(0usize..=4, 1..=4),
                                 seed: u64) {
                let mut rng = Rng::new(seed);
                let xs: Vec<Vec<i8>> = channels
                    .iter()
                    .map(|&c| (0..n * c * hw).map(|_| rng.next_u64() as i8).collect())
                    .collect();
                let total = channels.iter().sum::<usize>() * hw;
                let mut y = vec![0x55; n * total];
                let mut at = 0;
                for (&c, x) in channels.iter().zip(&xs) {
                    forward(n, c * hw, total, at, x, &mut y);
                    at += c * hw;
                }
                let parts: Vec<(usize, &[i8])> = channels.iter().zip(&xs).map(|(&c, x)| (c, &x[..])).collect();
                prop_assert_eq!(y, reference(n, &parts, hw));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference: index arithmetic over (example, channel, pixel).
    pub(super) fn reference<T: Copy + Default>(n: usize, parts: &[(usize, &[T])], hw: usize) -> Vec<T> {
        let c_total: usize = parts.iter().map(|p| p.0).sum();
        let mut y = vec![T::default(); n * c_total * hw];
        for i in 0..n {
            let mut c0 = 0;
            for &(c, x) in parts {
                for ch in 0..c {
                    for p in 0..hw {
                        y[(i * c_total + c0 + ch) * hw + p] = x[(i * c + ch) * hw + p];
                    }
                }
                c0 += c;
            }
        }
        y
    }

    #[test]
    fn concatenates_channels_per_example_and_splits_back() {
        let (n, hw) = (3, 5);
        let a: Vec<f32> = (0..n * 2 * hw).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..n * 3 * hw).map(|i| 1000.0 + i as f32).collect();
        let total = 5 * hw;
        let mut y = vec![f32::NAN; n * total];
        forward(n, 2 * hw, total, 0, &a, &mut y);
        forward(n, 3 * hw, total, 2 * hw, &b, &mut y);
        assert_eq!(y, reference(n, &[(2, &a), (3, &b)], hw));

        let mut da = vec![f32::NAN; a.len()];
        backward(n, 2 * hw, total, 0, &y, &mut da, false);
        assert_eq!(da, a);
        let mut db = vec![1.0; b.len()];
        backward(n, 3 * hw, total, 2 * hw, &y, &mut db, true);
        let want: Vec<f32> = b.iter().map(|v| v + 1.0).collect();
        assert_eq!(db, want);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_part_past_the_end_panics() {
        forward(1, 3, 4, 2, &[0.0; 3], &mut [0.0; 4]);
    }
}
