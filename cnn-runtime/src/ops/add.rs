//! The sum of `add { .. | .. }` branches, PyTorch's `Y += X` in D2L's
//! `Residual` (section 8.6): element by element, on any layout.
//!
//! Forward: the first branch's output is copied into the sum (or the sum
//! reuses its buffer) and every other one is added with [`accumulate`].
//! Backward: each branch receives `dL/dy` unchanged, copied or, for a
//! value read by several nodes, added to the gradient it already has.

use super::simd::multiversion;

/// `y <- y + x`, element by element.
///
/// # Panics
///
/// If `x.len() != y.len()`.
#[inline]
pub fn accumulate(x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "add: x has {} elements but y has {}",
        x.len(),
        y.len()
    );
    accumulate_any(x, y);
}

multiversion! {
    /// [`accumulate`] after its check.
    fn accumulate_any(x: &[f32], y: &mut [f32]) => accumulate_body
}

#[inline(always)]
fn accumulate_body<const FMA: bool>(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_every_element() {
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut y: Vec<f32> = (0..37).map(|i| (i * i) as f32).collect();
        let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        accumulate(&x, &mut y);
        assert_eq!(y, want);
    }

    #[test]
    #[should_panic(expected = "add: x has 3 elements but y has 2")]
    fn lengths_must_agree() {
        accumulate(&[1.0; 3], &mut [0.0; 2]);
    }
}
