//! Softmax cross-entropy with mean reduction, PyTorch
//! `nn.CrossEntropyLoss()` on raw logits and class indices:
//!
//! `L = (1/N) sum_i (logsumexp(z[i, :]) - z[i, label_i])`,
//! `dL/dz[i, k] = (softmax(z[i, :])[k] - [k == label_i]) / N`.
//!
//! Layout: `logits` is `[N, classes]` row-major, `labels` is `[N]`.
//! `logsumexp` subtracts the row maximum first, so huge logits neither
//! overflow nor produce NaN.

use crate::math;

#[inline(always)]
#[track_caller]
fn check(n: usize, classes: usize, logits: usize, labels: &[u8]) {
    assert!(classes > 0, "cross_entropy: classes must be positive");
    assert_eq!(
        logits,
        n * classes,
        "cross_entropy: logits has {logits} elements, expected n * classes = {n} * {classes}"
    );
    assert_eq!(
        labels.len(),
        n,
        "cross_entropy: labels has {} elements, expected n = {n}",
        labels.len()
    );
}

/// `(row maximum, sum_k e^(z_k - max))` of one row.
#[inline(always)]
fn shifted_exp_sum(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = row.iter().map(|&z| math::exp(z - max)).sum();
    (max, sum)
}

/// Label of example `i` as an index, checked against `classes`.
#[inline(always)]
#[track_caller]
fn label(labels: &[u8], i: usize, classes: usize) -> usize {
    let label = usize::from(labels[i]);
    assert!(
        label < classes,
        "cross_entropy: label {label} of example {i} is out of range for {classes} classes"
    );
    label
}

/// Mean loss over the `n` examples and its gradient: `dlogits` is
/// overwritten with `(softmax - onehot) / n`. Returns 0 (and writes nothing)
/// for `n == 0`. Allocates nothing.
///
/// # Panics
///
/// If `classes == 0`, `logits` or `dlogits` does not have `n * classes`
/// elements, `labels` does not have `n`, or a label is `>= classes`.
#[inline]
pub fn forward_backward(n: usize, classes: usize, logits: &[f32], labels: &[u8], dlogits: &mut [f32]) -> f32 {
    check(n, classes, logits.len(), labels);
    assert_eq!(
        dlogits.len(),
        logits.len(),
        "cross_entropy: dlogits has {} elements, expected n * classes = {}",
        dlogits.len(),
        logits.len()
    );
    if n == 0 {
        return 0.0;
    }
    let inv_n = 1.0 / n as f32;
    let mut total = 0.0f64;
    for (i, (row, drow)) in logits
        .chunks_exact(classes)
        .zip(dlogits.chunks_exact_mut(classes))
        .enumerate()
    {
        let label = label(labels, i, classes);
        let (max, sum) = shifted_exp_sum(row);
        total += f64::from(max + math::ln(sum) - row[label]);
        let scale = inv_n / sum;
        for (d, &z) in drow.iter_mut().zip(row) {
            *d = math::exp(z - max) * scale;
        }
        drow[label] -= inv_n;
    }
    (total / n as f64) as f32
}

/// Mean loss over the `n` examples, without the gradient. Returns 0 for
/// `n == 0`.
///
/// # Panics
///
/// As [`forward_backward`].
#[inline]
pub fn loss(n: usize, classes: usize, logits: &[f32], labels: &[u8]) -> f32 {
    check(n, classes, logits.len(), labels);
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0f64;
    for (i, row) in logits.chunks_exact(classes).enumerate() {
        let label = label(labels, i, classes);
        let (max, sum) = shifted_exp_sum(row);
        total += f64::from(max + math::ln(sum) - row[label]);
    }
    (total / n as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, to_f64, Rng};
    use proptest::prelude::*;

    /// `-ln(softmax(z)[label])` averaged, straight from the definition (no
    /// max shift), in f64.
    fn reference(classes: usize, logits: &[f64], labels: &[u8]) -> f64 {
        let rows: Vec<&[f64]> = logits.chunks(classes).collect();
        let total: f64 = rows
            .iter()
            .zip(labels)
            .map(|(row, &l)| {
                let denom: f64 = row.iter().map(|z| z.exp()).sum();
                -(row[usize::from(l)].exp() / denom).ln()
            })
            .sum();
        total / labels.len() as f64
    }

    #[test]
    fn hand_computed() {
        // softmax([1, 2, 3]) = [0.0900306, 0.2447285, 0.6652410];
        // L = ln(1 + e^-1 + e^-2) = 0.4076060 for label 2.
        let logits = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0];
        let labels = [2, 0];
        let mut d = [f32::NAN; 6];
        let l = forward_backward(2, 3, &logits, &labels, &mut d);
        let expected = (0.407_606 + (0.407_606 + 2.0)) / 2.0;
        assert!((l - expected).abs() < 1e-6, "{l}");
        assert!((loss(2, 3, &logits, &labels) - l).abs() < 1e-7);
        let s = [0.090_030_6, 0.244_728_5, 0.665_241_0];
        let want = [
            s[0] / 2.0,
            s[1] / 2.0,
            (s[2] - 1.0) / 2.0,
            (s[0] - 1.0) / 2.0,
            s[1] / 2.0,
            s[2] / 2.0,
        ];
        assert_close("dlogits", &d, &want.map(f64::from), 1e-6);
    }

    #[test]
    fn huge_logits_stay_finite() {
        let logits = [1e4, 0.0, -1e4, 1e4, 1e4, 0.0];
        let mut d = [0.0; 6];
        let l = forward_backward(2, 3, &logits, &[0, 2], &mut d);
        assert!(l.is_finite() && d.iter().all(|v| v.is_finite()));
        // Example 0 is certain and right (loss 0); example 1 splits evenly
        // between two wrong classes (loss 1e4 + ln 2).
        assert!((l - (5000.0 + core::f32::consts::LN_2 / 2.0)).abs() < 1e-2, "{l}");
        assert_eq!(d[0], 0.0);
        assert!((d[3] - 0.25).abs() < 1e-6 && (d[5] + 0.5).abs() < 1e-6);
        assert!((loss(2, 3, &logits, &[0, 2]) - l).abs() < 1e-2);
    }

    #[test]
    #[should_panic(expected = "cross_entropy: label 3 of example 1 is out of range for 3 classes")]
    fn label_out_of_range_panics() {
        loss(2, 3, &[0.0; 6], &[0, 3]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(n in 1usize..=4, classes in 1usize..=12,
                                                    scale in 0.1f32..10.0, seed: u64) {
            let mut rng = Rng::new(seed);
            let logits: Vec<f32> = rng.vec(n * classes).iter().map(|v| v * scale).collect();
            let labels: Vec<u8> = (0..n).map(|_| rng.below(classes) as u8).collect();
            let z = to_f64(&logits);
            let expected = reference(classes, &z, &labels);
            let mut d = vec![f32::NAN; logits.len()];
            let l = forward_backward(n, classes, &logits, &labels, &mut d);
            prop_assert!((f64::from(l) - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                         "loss {} vs {}", l, expected);
            let l2 = loss(n, classes, &logits, &labels);
            prop_assert!((l2 - l).abs() <= 1e-6 * (1.0 + l.abs()));
            let fd = finite_diff(&z, 1e-4, &mut rng, 48, |z| reference(classes, z, &labels));
            assert_grad("dlogits", &d, &fd, 1e-5);
            // Every row of the gradient sums to zero.
            for row in d.chunks(classes) {
                prop_assert!(row.iter().sum::<f32>().abs() < 1e-6);
            }
        }
    }
}
