//! Logistic sigmoid, PyTorch `nn.Sigmoid` / `torch.sigmoid`, elementwise on
//! any layout, in place:
//!
//! `y = 1 / (1 + e^-x)`, and backward `dL/dx = dL/dy * y (1 - y)`.
//!
//! The forward pass never overflows (see [`crate::math::sigmoid`]).

use crate::math;

/// `x <- sigmoid(x)` in place.
#[inline]
pub fn forward(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = math::sigmoid(*v);
    }
}

/// `dy <- dy * y (1 - y)` in place, where `y` is the forward *output*; `dy`
/// becomes `dL/dx`.
///
/// # Panics
///
/// If `y.len() != dy.len()`.
#[inline]
pub fn backward(y: &[f32], dy: &mut [f32]) {
    assert_eq!(
        y.len(),
        dy.len(),
        "sigmoid: y has {} elements but dy has {}",
        y.len(),
        dy.len()
    );
    for (d, &v) in dy.iter_mut().zip(y) {
        *d *= v * (1.0 - v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, assert_grad, finite_diff, functional, to_f64, Rng};
    use proptest::prelude::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect()
    }

    #[test]
    fn hand_computed() {
        let mut x = [0.0, 2.0, -2.0, 1e4, -1e4];
        forward(&mut x);
        assert_eq!(x[0], 0.5);
        assert!((x[1] - 0.880_797_1).abs() < 1e-6);
        assert!((x[2] - 0.119_202_92).abs() < 1e-6);
        assert_eq!((x[3], x[4]), (1.0, 0.0));
        let mut dy = [1.0; 5];
        backward(&x, &mut dy);
        assert_eq!(dy[0], 0.25);
        assert_eq!((dy[3], dy[4]), (0.0, 0.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_reference_and_finite_differences(len in 1usize..200, scale in 0.1f32..8.0,
                                                    seed: u64) {
            let mut rng = Rng::new(seed);
            let x: Vec<f32> = rng.vec(len).iter().map(|v| v * scale).collect();
            let mut y = x.clone();
            forward(&mut y);
            assert_close("y", &y, &reference(&to_f64(&x)), 1e-6);
            let r = rng.vec(len);
            let mut dx = r.clone();
            backward(&y, &mut dx);
            let fd = finite_diff(&to_f64(&x), 1e-4, &mut rng, 32, |x| functional(&r, &reference(x)));
            assert_grad("dx", &dx, &fd, 1e-5);
        }
    }
}
