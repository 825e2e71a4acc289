//! Mean squared error, PyTorch `nn.MSELoss()` (mean reduction over every
//! element):
//!
//! `L = (1/len) sum_j (pred_j - target_j)^2`,
//! `dL/dpred_j = 2 (pred_j - target_j) / len`.
//!
//! Any layout, as long as `pred` and `target` share it.

/// Mean squared error and its gradient: `dpred` is overwritten with
/// `2 (pred - target) / len`. Returns 0 for empty inputs. Allocates nothing.
///
/// # Panics
///
/// If `pred`, `target` and `dpred` do not all have the same length.
#[inline]
pub fn forward_backward(pred: &[f32], target: &[f32], dpred: &mut [f32]) -> f32 {
    assert_eq!(
        pred.len(),
        target.len(),
        "mse: pred has {} elements but target has {}",
        pred.len(),
        target.len()
    );
    assert_eq!(
        dpred.len(),
        pred.len(),
        "mse: dpred has {} elements but pred has {}",
        dpred.len(),
        pred.len()
    );
    if pred.is_empty() {
        return 0.0;
    }
    let inv_len = 1.0 / pred.len() as f32;
    let mut total = 0.0f64;
    for ((d, &p), &t) in dpred.iter_mut().zip(pred).zip(target) {
        let diff = p - t;
        total += f64::from(diff * diff);
        *d = 2.0 * diff * inv_len;
    }
    (total / pred.len() as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_grad, finite_diff, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(pred: &[f64], target: &[f64]) -> f64 {
        pred.iter()
            .zip(target)
            .map(|(p, t)| (p - t) * (p - t))
            .sum::<f64>()
            / pred.len() as f64
    }

    #[test]
    fn hand_computed() {
        let mut d = [f32::NAN; 4];
        let l = forward_backward(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.0, 4.0, 4.0], &mut d);
        assert_eq!(l, 1.25);
        assert_eq!(d, [0.0, 1.0, -0.5, 0.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(len in 1usize..100, seed: u64) {
            let mut rng = Rng::new(seed);
            let pred = rng.vec(len);
            let target = rng.vec(len);
            let mut d = vec![f32::NAN; len];
            let l = forward_backward(&pred, &target, &mut d);
            let (p, t) = (to_f64(&pred), to_f64(&target));
            let expected = reference(&p, &t);
            prop_assert!((f64::from(l) - expected).abs() <= 1e-6 * (1.0 + expected));
            let fd = finite_diff(&p, 1e-3, &mut rng, 32, |p| reference(p, &t));
            assert_grad("dpred", &d, &fd, 1e-5);
        }
    }
}
