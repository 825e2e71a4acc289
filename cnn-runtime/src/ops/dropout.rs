//! Dropout, PyTorch `nn.Dropout(p)`: the identity at inference; in training
//! each element is zeroed with probability `p` and the survivors scaled by
//! `1 / (1 - p)`, so the expected value is unchanged.
//!
//! The mask is a pure function of `(seed, element index)` (a SplitMix64
//! hash), so the backward pass recomputes it instead of storing it, and the
//! same seed gives the same mask on every machine.

/// Whether element `index` survives under `seed` with drop probability `p`.
#[inline]
pub fn keeps(p: f32, seed: u64, index: usize) -> bool {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // 24 uniform bits, compared like `torch.rand() >= p`.
    ((z >> 40) as f32) * (1.0 / (1u64 << 24) as f32) >= p
}

/// Training-mode dropout in place: `x[i] = keep(i) * x[i] / (1 - p)`.
#[inline]
pub fn forward(p: f32, seed: u64, x: &mut [f32]) {
    if p <= 0.0 {
        return;
    }
    let scale = 1.0 / (1.0 - p);
    for (i, v) in x.iter_mut().enumerate() {
        *v = if keeps(p, seed, i) { *v * scale } else { 0.0 };
    }
}

/// Backward of [`forward`] in place: `dy[i] = keep(i) * dy[i] / (1 - p)`,
/// with the same `p` and `seed`.
#[inline]
pub fn backward(p: f32, seed: u64, dy: &mut [f32]) {
    forward(p, seed, dy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_probability_is_the_identity() {
        let mut x = [1.0, -2.0, 3.5];
        forward(0.0, 7, &mut x);
        assert_eq!(x, [1.0, -2.0, 3.5]);
    }

    #[test]
    fn drop_rate_and_scaling_are_right() {
        let n = 200_000;
        for &p in &[0.1f32, 0.5, 0.8] {
            let mut x = vec![1.0f32; n];
            forward(p, 42, &mut x);
            let kept = x.iter().filter(|&&v| v != 0.0).count();
            let rate = 1.0 - kept as f64 / n as f64;
            // Binomial standard deviation is below 0.0012 here; allow 5 sigma.
            assert!((rate - p as f64).abs() < 0.006, "p = {p}: dropped {rate}");
            let scale = 1.0 / (1.0 - p);
            assert!(x.iter().all(|&v| v == 0.0 || v == scale));
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.02, "p = {p}: mean {mean}");
        }
    }

    #[test]
    fn backward_uses_the_same_mask() {
        let mut y = vec![1.0f32; 1000];
        forward(0.3, 9, &mut y);
        let mut dy = vec![2.0f32; 1000];
        backward(0.3, 9, &mut dy);
        for (a, b) in y.iter().zip(&dy) {
            assert_eq!(*b, 2.0 * a);
        }
    }

    #[test]
    fn seeds_give_different_masks() {
        let mut a = vec![1.0f32; 256];
        let mut b = vec![1.0f32; 256];
        forward(0.5, 1, &mut a);
        forward(0.5, 2, &mut b);
        assert_ne!(a, b);
    }
}
