//! Random numbers and parameter initialisers.
//!
//! [`Rng`] is SplitMix64: tiny, fast, deterministic for a given seed on every
//! platform, and good enough for initialisation, shuffling and dropout (not
//! for cryptography). The initialisers take a [`TensorInfo`] table and fill
//! the flat parameter slice it describes, tensor by tensor in table order, the
//! way PyTorch's layers do (the values differ from PyTorch's, whose generator
//! is a Mersenne Twister; the distributions are the same).
//!
//! Everything here works without `std` and allocates nothing.

use crate::network::{TensorInfo, TensorRole};

/// A small deterministic pseudo-random generator (SplitMix64).
///
/// Every seed, including 0, gives a full-period stream of 2^64 outputs.
///
/// ```
/// use cnn_runtime::init::Rng;
/// let mut a = Rng::new(42);
/// let mut b = Rng::new(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.uniform(-1.0, 1.0);
/// assert!((-1.0..1.0).contains(&x));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose stream is fully determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The whole state of the generator: `Rng::new(rng.state())` continues
    /// the stream of `rng` exactly (what a training checkpoint stores).
    ///
    /// ```
    /// use cnn_runtime::init::Rng;
    /// let mut a = Rng::new(7);
    /// a.next_u64();
    /// let mut b = Rng::new(a.state());
    /// assert_eq!(a.next_u64(), b.next_u64());
    /// ```
    pub const fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits (the high half of [`Rng::next_u64`]).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `[0, 1)`, from 24 random bits: every value is a multiple of
    /// 2^-24, so each is exactly representable and 1.0 is never returned.
    #[inline]
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in `[0, 1)`, from 53 random bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`, like PyTorch's `Tensor.uniform_(lo, hi)`.
    ///
    /// The result is strictly below `hi` even where `lo + (hi - lo) * u`
    /// rounds up to `hi` (such draws are redrawn). Returns `lo` when the range
    /// is empty (`hi <= lo`) or not a number.
    #[inline]
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        if lo.is_nan() || hi.is_nan() || lo >= hi {
            return lo;
        }
        let width = hi - lo;
        loop {
            let x = lo + width * self.next_f32();
            if x < hi {
                return x;
            }
        }
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's multiply-and-reject).
    ///
    /// # Panics
    ///
    /// If `n == 0` (the range is empty).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0): the range 0..0 is empty");
        let n = n as u64;
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            // Reject the low products that would make some results more
            // likely: there are exactly 2^64 mod n of them.
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as usize
    }

    /// Shuffles `items` in place (Fisher-Yates): every permutation is equally
    /// likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// A standard normal sample (mean 0, variance 1), by the Box-Muller
    /// transform. Uses two uniform draws per call.
    pub fn normal(&mut self) -> f32 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let radius = libm::sqrt(-2.0 * libm::log(u1));
        (radius * libm::cos(core::f64::consts::TAU * u2)) as f32
    }

    /// Fills `out` with independent draws from `uniform(lo, hi)`.
    pub fn fill_uniform(&mut self, out: &mut [f32], lo: f32, hi: f32) {
        for x in out {
            *x = self.uniform(lo, hi);
        }
    }
}

/// `1 / sqrt(fan_in)`, or 0 for an empty fan-in (PyTorch's bias rule; PyTorch
/// refuses to initialise weights of zero-element tensors at all).
fn inverse_sqrt_fan_in(fan_in: usize) -> f32 {
    if fan_in == 0 {
        0.0
    } else {
        (1.0 / libm::sqrt(fan_in as f64)) as f32
    }
}

/// The uniform bound PyTorch's `reset_parameters` uses for a bias (and, by
/// `kaiming_uniform_(a = sqrt(5))`, for a weight): `1 / sqrt(fan_in)`.
fn default_bound(t: &TensorInfo) -> f32 {
    inverse_sqrt_fan_in(t.fan_in)
}

/// The bound of `nn.init.xavier_uniform_` (gain 1):
/// `sqrt(6 / (fan_in + fan_out))`.
fn xavier_bound(t: &TensorInfo) -> f32 {
    let fans = t.fan_in + t.fan_out;
    if fans == 0 {
        0.0
    } else {
        libm::sqrt(6.0 / fans as f64) as f32
    }
}

/// How a tensor starts.
enum Fill {
    /// `U(-b, b)`, drawn from the generator.
    Uniform(f32),
    /// Every element this value; draws nothing.
    Constant(f32),
}

/// Batch norm's tensors start as PyTorch's do: scale 1, shift 0, running
/// mean 0, running variance 1, no steps; `None` for conv and linear
/// tensors, which are drawn.
fn constant(role: TensorRole) -> Option<f32> {
    match role {
        TensorRole::Weight | TensorRole::Bias => None,
        TensorRole::NormWeight | TensorRole::RunningVar => Some(1.0),
        TensorRole::NormBias | TensorRole::RunningMean | TensorRole::BatchesTracked => Some(0.0),
    }
}

/// Sets every buffer of `tensors` (batch norm's running statistics) to its
/// starting value: running means 0, running variances 1, step counts 0.
///
/// # Panics
///
/// If a tensor of the table lies outside `buffers`.
pub fn buffers(tensors: &[TensorInfo], buffers: &mut [f32]) {
    for t in tensors {
        t.slice_mut(buffers).fill(constant(t.role).unwrap_or(0.0));
    }
}

/// Fills every tensor of `tensors` as `fill(tensor)` says.
fn fill_table(tensors: &[TensorInfo], params: &mut [f32], rng: &mut Rng, fill: impl Fn(&TensorInfo) -> Fill) {
    for t in tensors {
        assert!(
            t.offset + t.len <= params.len(),
            "tensor {:?} (offset {}, len {}) lies outside the {} parameters",
            t.key,
            t.offset,
            t.len,
            params.len()
        );
        match fill(t) {
            Fill::Uniform(b) => rng.fill_uniform(t.slice_mut(params), -b, b),
            Fill::Constant(v) => t.slice_mut(params).fill(v),
        }
    }
}

/// PyTorch's default initialisation of `nn.Conv2d` and `nn.Linear`.
///
/// Weights: `kaiming_uniform_(w, a = sqrt(5))`, which is `U(-b, b)` with
/// `b = gain * sqrt(3 / fan_in)`, `gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)`,
/// so `b = 1 / sqrt(fan_in)`. Biases: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
///
/// # Panics
///
/// If a tensor of the table lies outside `params` (a table that does not
/// belong to this parameter array).
pub fn pytorch_default(tensors: &[TensorInfo], params: &mut [f32], rng: &mut Rng) {
    fill_table(tensors, params, rng, |t| match constant(t.role) {
        Some(v) => Fill::Constant(v),
        None => Fill::Uniform(default_bound(t)),
    });
}

/// Xavier (Glorot) uniform weights, PyTorch-default biases: what Dive into
/// Deep Learning's `init_cnn` does (`nn.init.xavier_uniform_` on the weight
/// of every `Conv2d` and `Linear`, biases left as constructed).
///
/// Weights: `U(-b, b)` with `b = sqrt(6 / (fan_in + fan_out))`. Biases:
/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
///
/// # Panics
///
/// If a tensor of the table lies outside `params`.
pub fn xavier_uniform(tensors: &[TensorInfo], params: &mut [f32], rng: &mut Rng) {
    fill_table(tensors, params, rng, |t| match (t.role, constant(t.role)) {
        (_, Some(v)) => Fill::Constant(v),
        (TensorRole::Weight, None) => Fill::Uniform(xavier_bound(t)),
        (_, None) => Fill::Uniform(default_bound(t)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// conv(1, 6, 5) then linear(24, 10): fan_in 25 / fan_out 150, then
    /// fan_in 24 / fan_out 10.
    const TABLE: &[TensorInfo] = &[
        TensorInfo {
            key: "0.weight",
            shape: &[6, 1, 5, 5],
            offset: 0,
            len: 150,
            role: TensorRole::Weight,
            fan_in: 25,
            fan_out: 150,
        },
        TensorInfo {
            key: "0.bias",
            shape: &[6],
            offset: 150,
            len: 6,
            role: TensorRole::Bias,
            fan_in: 25,
            fan_out: 150,
        },
        TensorInfo {
            key: "1.weight",
            shape: &[10, 24],
            offset: 156,
            len: 240,
            role: TensorRole::Weight,
            fan_in: 24,
            fan_out: 10,
        },
        TensorInfo {
            key: "1.bias",
            shape: &[10],
            offset: 396,
            len: 10,
            role: TensorRole::Bias,
            fan_in: 24,
            fan_out: 10,
        },
    ];
    const PARAMS: usize = 406;

    fn mean_var(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
        let n = xs.clone().count() as f64;
        let mean = xs.clone().sum::<f64>() / n;
        let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: [u64; 16] = core::array::from_fn(|_| a.next_u64());
        let ys: [u64; 16] = core::array::from_fn(|_| b.next_u64());
        let zs: [u64; 16] = core::array::from_fn(|_| c.next_u64());
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        // A clone continues the same stream.
        let mut d = a.clone();
        assert_eq!(a.next_u32(), d.next_u32());
    }

    #[test]
    fn splitmix64_reference_values() {
        // Published outputs of SplitMix64 seeded with 1234567 (from the
        // reference implementation by Sebastiano Vigna).
        let mut r = Rng::new(1234567);
        let expected = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn next_f32_in_unit_interval_with_uniform_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let mut xs = [0f32; 1000];
        let (mut sum, mut sum_sq) = (0f64, 0f64);
        for chunk in 0..n / xs.len() {
            let _ = chunk;
            for x in xs.iter_mut() {
                *x = r.next_f32();
                assert!((0.0..1.0).contains(x));
                sum += f64::from(*x);
                sum_sq += f64::from(*x) * f64::from(*x);
            }
        }
        let mean = sum / n as f64;
        let var = sum_sq / n as f64 - mean * mean;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "variance {var}");
    }

    #[test]
    fn uniform_respects_bounds_and_degenerate_ranges() {
        let mut r = Rng::new(3);
        for _ in 0..100_000 {
            let x = r.uniform(-0.2, 0.2);
            assert!((-0.2..0.2).contains(&x), "{x}");
        }
        // A range so narrow that the affine map often rounds to `hi`.
        let lo = 1.0f32;
        let hi = f32::from_bits(lo.to_bits() + 1);
        for _ in 0..1000 {
            assert_eq!(r.uniform(lo, hi), lo);
        }
        assert_eq!(r.uniform(2.0, 2.0), 2.0);
        assert_eq!(r.uniform(3.0, 1.0), 3.0);
        assert!(r.uniform(f32::NAN, 1.0).is_nan());
    }

    #[test]
    fn below_stays_in_range_and_covers_it_evenly() {
        let mut r = Rng::new(11);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[r.below(7)] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        for n in [1usize, 2, 3, 1000, usize::MAX] {
            for _ in 0..1000 {
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(r.below(1), 0);
    }

    #[test]
    #[should_panic(expected = "empty")]
    fn below_zero_panics() {
        Rng::new(0).below(0);
    }

    #[test]
    fn shuffle_is_a_permutation_and_moves_things() {
        let mut r = Rng::new(5);
        let mut v: [usize; 100] = core::array::from_fn(|i| i);
        r.shuffle(&mut v);
        let mut seen = [false; 100];
        for &x in &v {
            assert!(!seen[x]);
            seen[x] = true;
        }
        assert!(v.iter().enumerate().any(|(i, &x)| i != x));
        // Deterministic for a seed.
        let mut w: [usize; 100] = core::array::from_fn(|i| i);
        Rng::new(5).shuffle(&mut w);
        assert_eq!(v, w);
        // Empty and single-element slices are fine.
        r.shuffle::<u8>(&mut []);
        let mut one = [9];
        r.shuffle(&mut one);
        assert_eq!(one, [9]);
    }

    #[test]
    fn shuffle_of_three_hits_every_permutation_evenly() {
        let mut r = Rng::new(99);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            let mut v = [0u8, 1, 2];
            r.shuffle(&mut v);
            let idx = match v {
                [0, 1, 2] => 0,
                [0, 2, 1] => 1,
                [1, 0, 2] => 2,
                [1, 2, 0] => 3,
                [2, 0, 1] => 4,
                _ => 5,
            };
            counts[idx] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(2024);
        let mut xs = [0f32; 100_000];
        for x in xs.iter_mut() {
            *x = r.normal();
            assert!(x.is_finite());
        }
        let (mean, var) = mean_var(xs.iter().map(|&x| f64::from(x)));
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn pytorch_default_bounds_and_moments() {
        let mut params = [f32::NAN; PARAMS];
        pytorch_default(TABLE, &mut params, &mut Rng::new(0));
        for t in TABLE {
            let b = 1.0 / (t.fan_in as f32).sqrt();
            for &x in t.slice(&params) {
                assert!(x >= -b && x < b, "{}: {x} outside ±{b}", t.key);
            }
        }
        // A big layer: U(-b, b) has mean 0 and variance b^2 / 3.
        let big = [TensorInfo {
            key: "w",
            shape: &[100, 400],
            offset: 0,
            len: 40_000,
            role: TensorRole::Weight,
            fan_in: 400,
            fan_out: 100,
        }];
        let mut w = [0f32; 40_000];
        pytorch_default(&big, &mut w, &mut Rng::new(1));
        let b = 1.0 / 20.0;
        let (mean, var) = mean_var(w.iter().map(|&x| f64::from(x)));
        assert!(mean.abs() < 0.02 * b, "mean {mean}");
        assert!((var / (b * b / 3.0) - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn xavier_uniform_bounds_weights_and_default_biases() {
        let mut params = [f32::NAN; PARAMS];
        xavier_uniform(TABLE, &mut params, &mut Rng::new(0));
        for t in TABLE {
            let b = match t.role {
                TensorRole::Weight => (6.0 / (t.fan_in + t.fan_out) as f64).sqrt() as f32,
                TensorRole::Bias => 1.0 / (t.fan_in as f32).sqrt(),
                other => unreachable!("the table has no {other:?}"),
            };
            let xs = t.slice(&params);
            assert!(xs.iter().all(|&x| x >= -b && x < b), "{}", t.key);
            // The draws spread over the range rather than clustering.
            let max = xs.iter().fold(0f32, |m, &x| m.max(x.abs()));
            assert!(max > 0.5 * b, "{}: max |x| {max} vs bound {b}", t.key);
        }
        let big = [TensorInfo {
            key: "w",
            shape: &[120, 400],
            offset: 0,
            len: 48_000,
            role: TensorRole::Weight,
            fan_in: 400,
            fan_out: 120,
        }];
        let mut w = [0f32; 48_000];
        xavier_uniform(&big, &mut w, &mut Rng::new(2));
        // Glorot: variance 2 / (fan_in + fan_out).
        let (mean, var) = mean_var(w.iter().map(|&x| f64::from(x)));
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var / (2.0 / 520.0) - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn initialisers_are_deterministic_and_fill_everything() {
        let mut a = [f32::NAN; PARAMS];
        let mut b = [f32::NAN; PARAMS];
        pytorch_default(TABLE, &mut a, &mut Rng::new(42));
        pytorch_default(TABLE, &mut b, &mut Rng::new(42));
        assert!(a.iter().all(|x| x.is_finite()));
        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        let mut c = [f32::NAN; PARAMS];
        pytorch_default(TABLE, &mut c, &mut Rng::new(43));
        assert_ne!(a.map(f32::to_bits), c.map(f32::to_bits));
    }

    #[test]
    fn zero_fan_in_gives_zeros() {
        let table = [TensorInfo {
            key: "b",
            shape: &[3],
            offset: 0,
            len: 3,
            role: TensorRole::Bias,
            fan_in: 0,
            fan_out: 0,
        }];
        let mut p = [1f32; 3];
        pytorch_default(&table, &mut p, &mut Rng::new(0));
        assert_eq!(p, [0.0; 3]);
        p = [1f32; 3];
        xavier_uniform(&table, &mut p, &mut Rng::new(0));
        assert_eq!(p, [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn table_larger_than_params_panics_clearly() {
        let mut p = [0f32; 10];
        pytorch_default(TABLE, &mut p, &mut Rng::new(0));
    }
}
