//! Optimizers with exactly the update rules of `torch.optim.SGD` and
//! `torch.optim.Adam`, over flat parameter and gradient slices.
//!
//! The update functions ([`sgd_update`], [`adam_update`]) keep their state in
//! slices the caller owns, so they work without `std` and allocate nothing.
//! [`SgdWith`] and [`AdamWith`] wrap them as [`Optimizer`]s over borrowed
//! state (no `std` needed); with `std`, [`Sgd`] and [`Adam`] own their state
//! and size it on the first step, so no step after the first allocates.
//!
//! Every slice passed to one update has the same length (one element per
//! parameter); a mismatch is a bug in the caller and panics with a message
//! naming both lengths.
//!
//! Checkpoints: an owned optimizer's whole state is its step count and its
//! buffers, read with [`Sgd::steps`] and [`Sgd::velocity`] ([`Adam::steps`],
//! [`Adam::moments`]). [`Sgd::with_state`] and [`Adam::with_state`] build an
//! optimizer from that state (checked) which continues bit for bit as the
//! one it was read from would have.

/// A gradient-descent optimizer over a flat parameter slice.
pub trait Optimizer {
    /// Updates `params` in place from their gradients `grads` (same length).
    fn step(&mut self, params: &mut [f32], grads: &[f32]);
    /// The current learning rate.
    fn learning_rate(&self) -> f32;
    /// Changes the learning rate from the next step on (for schedules).
    fn set_learning_rate(&mut self, lr: f32);
}

#[track_caller]
fn check_len(what: &str, len: usize, params: usize) {
    assert!(
        len == params,
        "{what} has {len} elements but there are {params} parameters"
    );
}

/// Hyper-parameters of stochastic gradient descent, as `torch.optim.SGD`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 disables momentum and its buffer).
    pub momentum: f32,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f32,
    /// L2 penalty: `weight_decay * param` is added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum. PyTorch accepts it only with `momentum > 0` and
    /// `dampening == 0`; here it is ignored when `momentum == 0`.
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD with learning rate `lr`: no momentum, dampening or weight
    /// decay (PyTorch's defaults).
    pub const fn new(lr: f32) -> Self {
        SgdConfig {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// The same configuration with momentum factor `momentum`.
    pub const fn with_momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// The same configuration with dampening `dampening`.
    pub const fn with_dampening(mut self, dampening: f32) -> Self {
        self.dampening = dampening;
        self
    }

    /// The same configuration with L2 weight decay `weight_decay`.
    pub const fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The same configuration with Nesterov momentum on or off.
    pub const fn with_nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

/// One step of `torch.optim.SGD` (with `maximize = False`).
///
/// For every element, with `g` the gradient and `p` the parameter:
///
/// ```text
/// g = g + weight_decay * p                       if weight_decay != 0
/// if momentum != 0:
///     b = g                                      on the first step
///     b = momentum * b + (1 - dampening) * g     afterwards
///     g = g + momentum * b   if nesterov   else   g = b
/// p = p - lr * g
/// ```
///
/// `velocity` holds the momentum buffers `b`; its contents are ignored (and
/// overwritten) when `first_step` is true. When `momentum == 0` it is unused
/// and may be empty.
///
/// # Panics
///
/// If `grads` (or, with momentum, `velocity`) is not as long as `params`.
pub fn sgd_update(
    cfg: &SgdConfig,
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    first_step: bool,
) {
    check_len("the gradient", grads.len(), params.len());
    let SgdConfig {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
    } = *cfg;
    if momentum == 0.0 {
        for (p, &g) in params.iter_mut().zip(grads) {
            let g = if weight_decay != 0.0 {
                g + weight_decay * *p
            } else {
                g
            };
            *p -= lr * g;
        }
        return;
    }
    check_len("the momentum buffer", velocity.len(), params.len());
    let keep = 1.0 - dampening;
    for ((p, &g), b) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
        let g = if weight_decay != 0.0 {
            g + weight_decay * *p
        } else {
            g
        };
        *b = if first_step { g } else { momentum * *b + keep * g };
        let d = if nesterov { g + momentum * *b } else { *b };
        *p -= lr * d;
    }
}

/// Hyper-parameters of Adam, as `torch.optim.Adam` (without `amsgrad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default `1e-3`).
    pub lr: f32,
    /// Decay of the first-moment average (default `0.9`).
    pub beta1: f32,
    /// Decay of the second-moment average (default `0.999`).
    pub beta2: f32,
    /// Added to the denominator for stability (default `1e-8`).
    pub eps: f32,
    /// L2 penalty added to the gradient (default 0; this is Adam's coupled
    /// weight decay, not AdamW's).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig::new(1e-3)
    }
}

impl AdamConfig {
    /// PyTorch's defaults with learning rate `lr`: betas `(0.9, 0.999)`,
    /// `eps = 1e-8`, no weight decay.
    pub const fn new(lr: f32) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// The same configuration with betas `(beta1, beta2)`.
    pub const fn with_betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// The same configuration with `eps`.
    pub const fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// The same configuration with L2 weight decay `weight_decay`.
    pub const fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

/// One step of `torch.optim.Adam` (`amsgrad = False`, `maximize = False`).
///
/// `step` counts from 1 (the first call passes 1). For every element:
///
/// ```text
/// g = g + weight_decay * p                      if weight_decay != 0
/// m = m + (1 - beta1) * (g - m)                 (torch.lerp)
/// v = beta2 * v + (1 - beta2) * g * g
/// bc1 = 1 - beta1^step,  bc2 = 1 - beta2^step   (in f64, like PyTorch)
/// p = p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
/// ```
///
/// `m` and `v` start at zero before step 1.
///
/// # Panics
///
/// If `step == 0`, or `grads`, `m` or `v` is not as long as `params`.
pub fn adam_update(
    cfg: &AdamConfig,
    step: u64,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    assert!(step >= 1, "adam_update: `step` counts from 1");
    check_len("the gradient", grads.len(), params.len());
    check_len("the first-moment buffer", m.len(), params.len());
    check_len("the second-moment buffer", v.len(), params.len());
    let AdamConfig {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
    } = *cfg;
    // PyTorch computes the scalars in Python floats (f64) and converts them
    // to f32 where they meet the tensors.
    let (beta1_64, beta2_64) = (f64::from(beta1), f64::from(beta2));
    let t = step as f64;
    let bias_correction1 = 1.0 - libm::pow(beta1_64, t);
    let bias_correction2 = 1.0 - libm::pow(beta2_64, t);
    let step_size = (f64::from(lr) / bias_correction1) as f32;
    let bias_correction2_sqrt = libm::sqrt(bias_correction2) as f32;
    let lerp_weight = (1.0 - beta1_64) as f32;
    let one_minus_beta2 = (1.0 - beta2_64) as f32;

    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if weight_decay != 0.0 {
            g + weight_decay * *p
        } else {
            g
        };
        // torch.lerp(start, end, w), picking the same formula by `w` as ATen.
        *m = if lerp_weight < 0.5 {
            *m + lerp_weight * (g - *m)
        } else {
            g - (g - *m) * (1.0 - lerp_weight)
        };
        *v = *v * beta2 + one_minus_beta2 * g * g;
        let denom = libm::sqrtf(*v) / bias_correction2_sqrt + eps;
        *p -= step_size * *m / denom;
    }
}

/// SGD over a momentum buffer the caller provides: works without `std`.
///
/// ```
/// use cnn_runtime::optim::{Optimizer, SgdConfig, SgdWith};
/// let mut params = [1.0f32, 2.0];
/// let mut velocity = [0.0f32; 2];
/// let mut opt = SgdWith::new(SgdConfig::new(0.1).with_momentum(0.9), &mut velocity);
/// opt.step(&mut params, &[1.0, -1.0]);
/// assert_eq!(params, [0.9, 2.1]);
/// ```
#[derive(Debug)]
pub struct SgdWith<'a> {
    cfg: SgdConfig,
    velocity: &'a mut [f32],
    steps: u64,
}

impl<'a> SgdWith<'a> {
    /// An optimizer keeping its momentum buffers in `velocity`, which must
    /// be as long as the parameters when `cfg.momentum != 0` (it may be empty
    /// otherwise). Its previous contents do not matter.
    pub fn new(cfg: SgdConfig, velocity: &'a mut [f32]) -> Self {
        SgdWith {
            cfg,
            velocity,
            steps: 0,
        }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl Optimizer for SgdWith<'_> {
    /// # Panics
    ///
    /// If `grads`, or with momentum the velocity buffer, is not as long as
    /// `params`.
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        sgd_update(&self.cfg, params, grads, self.velocity, self.steps == 0);
        self.steps += 1;
    }

    fn learning_rate(&self) -> f32 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }
}

/// Adam over moment buffers the caller provides: works without `std`.
#[derive(Debug)]
pub struct AdamWith<'a> {
    cfg: AdamConfig,
    m: &'a mut [f32],
    v: &'a mut [f32],
    steps: u64,
}

impl<'a> AdamWith<'a> {
    /// An optimizer keeping its moment estimates in `m` and `v`, each as long
    /// as the parameters. Both are zeroed here, as PyTorch starts them.
    ///
    /// # Panics
    ///
    /// If `m` and `v` differ in length.
    pub fn new(cfg: AdamConfig, m: &'a mut [f32], v: &'a mut [f32]) -> Self {
        check_len("the second-moment buffer", v.len(), m.len());
        m.fill(0.0);
        v.fill(0.0);
        AdamWith { cfg, m, v, steps: 0 }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl Optimizer for AdamWith<'_> {
    /// # Panics
    ///
    /// If `grads`, `m` or `v` is not as long as `params`.
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.steps += 1;
        adam_update(&self.cfg, self.steps, params, grads, self.m, self.v);
    }

    fn learning_rate(&self) -> f32 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }
}

/// Why saved optimizer state cannot be taken up by [`Sgd::with_state`] or
/// [`Adam::with_state`].
#[derive(Clone, Debug, PartialEq)]
pub enum StateError {
    /// A buffer of the wrong length for the parameter count and step count
    /// (buffers exist only after the first step, and SGD's only with
    /// momentum).
    Length {
        /// The buffer, by its PyTorch name (`momentum_buffer`, `exp_avg`,
        /// `exp_avg_sq`).
        buffer: &'static str,
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A buffer value that no step could have produced: NaN, infinite, or a
    /// negative second moment.
    Value {
        /// The buffer, by its PyTorch name.
        buffer: &'static str,
        /// Index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
}

impl core::fmt::Display for StateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StateError::Length {
                buffer,
                len,
                expected,
            } => write!(
                f,
                "optimizer buffer {buffer} has {len} values, expected {expected}"
            ),
            StateError::Value { buffer, index, value } => {
                write!(f, "optimizer buffer {buffer} holds {value} at index {index}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StateError {}

/// Checks that `buffer` has `expected` values, each finite (and not
/// negative if `non_negative`).
#[cfg(feature = "std")]
fn check_buffer(
    buffer: &'static str,
    values: &[f32],
    expected: usize,
    non_negative: bool,
) -> Result<(), StateError> {
    if values.len() != expected {
        return Err(StateError::Length {
            buffer,
            len: values.len(),
            expected,
        });
    }
    match values
        .iter()
        .position(|&x| !x.is_finite() || (non_negative && x < 0.0))
    {
        Some(index) => Err(StateError::Value {
            buffer,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

#[cfg(feature = "std")]
pub use owned::{Adam, Sgd};

#[cfg(feature = "std")]
mod owned {
    use super::{
        adam_update, check_buffer, check_len, sgd_update, AdamConfig, Optimizer, SgdConfig, StateError,
    };

    /// SGD that owns its momentum buffer, sized on the first step.
    ///
    /// ```
    /// use cnn_runtime::optim::{Optimizer, Sgd, SgdConfig};
    /// let mut opt = Sgd::new(SgdConfig::new(0.5).with_weight_decay(0.1));
    /// let mut params = [1.0f32];
    /// opt.step(&mut params, &[0.9]);
    /// assert_eq!(params, [0.5]);
    /// ```
    #[derive(Clone, Debug)]
    pub struct Sgd {
        cfg: SgdConfig,
        velocity: Vec<f32>,
        steps: u64,
    }

    impl Sgd {
        /// A fresh optimizer; allocates nothing until the first step.
        pub fn new(cfg: SgdConfig) -> Self {
            Sgd {
                cfg,
                velocity: Vec::new(),
                steps: 0,
            }
        }

        /// The hyper-parameters.
        pub fn config(&self) -> &SgdConfig {
            &self.cfg
        }

        /// Steps taken so far.
        pub fn steps(&self) -> u64 {
            self.steps
        }

        /// The momentum buffers (empty before the first step or without
        /// momentum).
        pub fn velocity(&self) -> &[f32] {
            &self.velocity
        }

        /// An optimizer over `params` parameters that continues where one
        /// with the same `cfg` stood after `steps` steps with momentum
        /// buffers `velocity` (its [`Sgd::steps`] and [`Sgd::velocity`]):
        /// its next step is bit for bit the step that one would have taken.
        ///
        /// `velocity` must hold `params` finite values after a first step
        /// with momentum, and nothing otherwise.
        ///
        /// ```
        /// use cnn_runtime::optim::{Optimizer, Sgd, SgdConfig};
        /// let cfg = SgdConfig::new(0.1).with_momentum(0.9);
        /// let (mut a, mut pa) = (Sgd::new(cfg), [1.0f32, 2.0]);
        /// a.step(&mut pa, &[0.5, -0.5]);
        /// let mut b = Sgd::with_state(cfg, 2, a.steps(), a.velocity().to_vec()).unwrap();
        /// let mut pb = pa;
        /// a.step(&mut pa, &[0.25, 1.0]);
        /// b.step(&mut pb, &[0.25, 1.0]);
        /// assert_eq!(pa, pb);
        /// ```
        pub fn with_state(
            cfg: SgdConfig,
            params: usize,
            steps: u64,
            velocity: Vec<f32>,
        ) -> Result<Sgd, StateError> {
            let expected = if steps > 0 && cfg.momentum != 0.0 {
                params
            } else {
                0
            };
            check_buffer("momentum_buffer", &velocity, expected, false)?;
            Ok(Sgd { cfg, velocity, steps })
        }
    }

    impl Optimizer for Sgd {
        /// # Panics
        ///
        /// If `grads` is not as long as `params`, or `params` changes length
        /// between steps while momentum is on.
        fn step(&mut self, params: &mut [f32], grads: &[f32]) {
            let first = self.steps == 0;
            if self.cfg.momentum != 0.0 {
                if first {
                    self.velocity.clear();
                    self.velocity.resize(params.len(), 0.0);
                } else {
                    check_len("the momentum buffer", self.velocity.len(), params.len());
                }
            }
            sgd_update(&self.cfg, params, grads, &mut self.velocity, first);
            self.steps += 1;
        }

        fn learning_rate(&self) -> f32 {
            self.cfg.lr
        }

        fn set_learning_rate(&mut self, lr: f32) {
            self.cfg.lr = lr;
        }
    }

    /// Adam that owns its moment buffers, sized on the first step.
    #[derive(Clone, Debug)]
    pub struct Adam {
        cfg: AdamConfig,
        m: Vec<f32>,
        v: Vec<f32>,
        steps: u64,
    }

    impl Adam {
        /// A fresh optimizer; allocates nothing until the first step.
        pub fn new(cfg: AdamConfig) -> Self {
            Adam {
                cfg,
                m: Vec::new(),
                v: Vec::new(),
                steps: 0,
            }
        }

        /// The hyper-parameters.
        pub fn config(&self) -> &AdamConfig {
            &self.cfg
        }

        /// Steps taken so far.
        pub fn steps(&self) -> u64 {
            self.steps
        }

        /// The first-moment (`exp_avg`) and second-moment (`exp_avg_sq`)
        /// estimates (empty before the first step).
        pub fn moments(&self) -> (&[f32], &[f32]) {
            (&self.m, &self.v)
        }

        /// An optimizer over `params` parameters that continues where one
        /// with the same `cfg` stood after `steps` steps with moments `m`
        /// and `v` (its [`Adam::steps`] and [`Adam::moments`]): its next
        /// step is bit for bit the step that one would have taken.
        ///
        /// After a first step `m` and `v` must each hold `params` finite
        /// values (`v` none negative); before it, nothing.
        pub fn with_state(
            cfg: AdamConfig,
            params: usize,
            steps: u64,
            m: Vec<f32>,
            v: Vec<f32>,
        ) -> Result<Adam, StateError> {
            let expected = if steps > 0 { params } else { 0 };
            check_buffer("exp_avg", &m, expected, false)?;
            check_buffer("exp_avg_sq", &v, expected, true)?;
            Ok(Adam { cfg, m, v, steps })
        }
    }

    impl Optimizer for Adam {
        /// # Panics
        ///
        /// If `grads` is not as long as `params`, or `params` changes length
        /// between steps.
        fn step(&mut self, params: &mut [f32], grads: &[f32]) {
            if self.steps == 0 {
                self.m.clear();
                self.m.resize(params.len(), 0.0);
                self.v.clear();
                self.v.resize(params.len(), 0.0);
            }
            self.steps += 1;
            adam_update(&self.cfg, self.steps, params, grads, &mut self.m, &mut self.v);
        }

        fn learning_rate(&self) -> f32 {
            self.cfg.lr
        }

        fn set_learning_rate(&mut self, lr: f32) {
            self.cfg.lr = lr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P0: [f32; 5] = [0.5, -1.0, 2.0, 0.0, 3.25];
    const GRADS: [[f32; 5]; 3] = [
        [0.1, -0.2, 0.3, -0.4, 0.0],
        [-0.05, 0.25, 0.3, 1.5, -2.0],
        [0.2, 0.2, -0.1, -0.3, 0.7],
    ];

    // Parameters after three steps over GRADS from P0, as printed by
    // cnn-runtime/tests/data/optim_reference.py with torch 2.15.0 (CPU,
    // float32; the f64 values are exact widenings of f32 results).
    const TORCH_SGD_PLAIN: [f64; 5] = [
        0.474_999_994_039_535_5,
        -1.024_999_976_158_142,
        1.950_000_047_683_715_8,
        -0.079_999_998_211_860_66,
        3.380_000_114_440_918,
    ];
    const TORCH_SGD_MOMENTUM_WD: [f64; 5] = [
        0.459_630_370_140_075_7,
        -1.007_745_742_797_851_6,
        1.860_633_611_679_077_1,
        -0.146_601_945_161_819_46,
        3.541_583_299_636_841,
    ];
    const TORCH_SGD_NESTEROV_WD: [f64; 5] = [
        0.437_227_308_750_152_6,
        -1.029_050_469_398_498_5,
        1.818_876_862_525_94,
        -0.211_810_126_900_672_9,
        3.632_163_763_046_264_6,
    ];
    const TORCH_SGD_DAMPENING: [f64; 5] = [
        0.483_950_018_882_751_46,
        -0.998_350_024_223_327_6,
        1.947_999_954_223_632_8,
        -0.035_199_996_083_974_84,
        3.351_500_034_332_275_4,
    ];
    const TORCH_ADAM_DEFAULT: [f64; 5] = [
        0.498_075_544_834_136_96,
        -0.999_608_039_855_957,
        1.997_394_204_139_709_5,
        0.000_160_063_296_789_303_42,
        3.251_075_983_047_485_4,
    ];
    const TORCH_ADAM_WD: [f64; 5] = [
        0.480_200_171_470_642_1,
        -0.996_513_187_885_284_4,
        1.974_108_695_983_886_7,
        0.001_148_786_395_788_192_7,
        3.250_505_924_224_853_5,
    ];

    /// SGD in f64, written from PyTorch's documented algorithm.
    fn sgd_reference(cfg: &SgdConfig) -> [f64; 5] {
        let (lr, mu, damp, wd) = (
            f64::from(cfg.lr),
            f64::from(cfg.momentum),
            f64::from(cfg.dampening),
            f64::from(cfg.weight_decay),
        );
        let mut p = P0.map(f64::from);
        let mut b = [0f64; 5];
        for (t, g) in GRADS.iter().enumerate() {
            for i in 0..5 {
                let mut g = f64::from(g[i]) + wd * p[i];
                if mu != 0.0 {
                    b[i] = if t == 0 { g } else { mu * b[i] + (1.0 - damp) * g };
                    g = if cfg.nesterov { g + mu * b[i] } else { b[i] };
                }
                p[i] -= lr * g;
            }
        }
        p
    }

    /// Adam in f64, written from PyTorch's documented algorithm.
    fn adam_reference(cfg: &AdamConfig) -> [f64; 5] {
        let (lr, b1, b2, eps, wd) = (
            f64::from(cfg.lr),
            f64::from(cfg.beta1),
            f64::from(cfg.beta2),
            f64::from(cfg.eps),
            f64::from(cfg.weight_decay),
        );
        let mut p = P0.map(f64::from);
        let (mut m, mut v) = ([0f64; 5], [0f64; 5]);
        for (t, g) in GRADS.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..5 {
                let g = f64::from(g[i]) + wd * p[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
        p
    }

    fn run(opt: &mut dyn Optimizer) -> [f32; 5] {
        let mut p = P0;
        for g in &GRADS {
            opt.step(&mut p, g);
        }
        p
    }

    #[track_caller]
    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "element {i}: got {g}, expected {w}\n got {got:?}\nwant {want:?}"
            );
        }
    }

    #[track_caller]
    fn assert_close_f64(got: &[f32], want: &[f64], tol: f64) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= tol * w.abs().max(1.0),
                "element {i}: got {g}, expected {w}"
            );
        }
    }

    fn sgd_cases() -> [(SgdConfig, [f64; 5]); 4] {
        [
            (SgdConfig::new(0.1), TORCH_SGD_PLAIN),
            (
                SgdConfig::new(0.1).with_momentum(0.9).with_weight_decay(1e-2),
                TORCH_SGD_MOMENTUM_WD,
            ),
            (
                SgdConfig::new(0.1)
                    .with_momentum(0.9)
                    .with_weight_decay(1e-2)
                    .with_nesterov(true),
                TORCH_SGD_NESTEROV_WD,
            ),
            (
                SgdConfig::new(0.05).with_momentum(0.8).with_dampening(0.3),
                TORCH_SGD_DAMPENING,
            ),
        ]
    }

    fn adam_cases() -> [(AdamConfig, [f64; 5]); 2] {
        [
            (AdamConfig::default(), TORCH_ADAM_DEFAULT),
            (
                AdamConfig::new(1e-2)
                    .with_betas(0.8, 0.99)
                    .with_eps(1e-6)
                    .with_weight_decay(1e-2),
                TORCH_ADAM_WD,
            ),
        ]
    }

    #[test]
    fn sgd_matches_torch_and_f64_reference() {
        for (cfg, torch) in sgd_cases() {
            let mut velocity = [f32::NAN; 5];
            let got = run(&mut SgdWith::new(cfg, &mut velocity));
            assert_close(&got, &torch.map(|x| x as f32), 1e-6);
            assert_close_f64(&got, &sgd_reference(&cfg), 1e-6);
        }
    }

    #[test]
    fn adam_matches_torch_and_f64_reference() {
        for (cfg, torch) in adam_cases() {
            let (mut m, mut v) = ([f32::NAN; 5], [f32::NAN; 5]);
            let got = run(&mut AdamWith::new(cfg, &mut m, &mut v));
            assert_close(&got, &torch.map(|x| x as f32), 1e-6);
            assert_close_f64(&got, &adam_reference(&cfg), 1e-6);
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn owned_optimizers_match_borrowed_ones_bit_for_bit() {
        for (cfg, _) in sgd_cases() {
            let mut velocity = [0f32; 5];
            let borrowed = run(&mut SgdWith::new(cfg, &mut velocity));
            let mut opt = Sgd::new(cfg);
            assert_eq!(run(&mut opt).map(f32::to_bits), borrowed.map(f32::to_bits));
            assert_eq!(opt.steps(), 3);
            let expected_buf = if cfg.momentum == 0.0 { 0 } else { 5 };
            assert_eq!(opt.velocity().len(), expected_buf);
        }
        for (cfg, _) in adam_cases() {
            let (mut m, mut v) = ([0f32; 5], [0f32; 5]);
            let borrowed = run(&mut AdamWith::new(cfg, &mut m, &mut v));
            let mut opt = Adam::new(cfg);
            assert_eq!(run(&mut opt).map(f32::to_bits), borrowed.map(f32::to_bits));
            assert_eq!(opt.moments().0, &m[..]);
            assert_eq!(opt.moments().1, &v[..]);
        }
    }

    /// An optimizer rebuilt from another's state after `k` steps finishes
    /// the three steps with the same bits as the one never stopped.
    #[cfg(feature = "std")]
    #[test]
    fn optimizers_rebuilt_from_their_state_continue_bit_for_bit() {
        fn finish(opt: &mut dyn Optimizer, mut p: [f32; 5], from: usize) -> [u32; 5] {
            for g in &GRADS[from..] {
                opt.step(&mut p, g);
            }
            p.map(f32::to_bits)
        }
        for k in 0..=GRADS.len() {
            for (cfg, _) in sgd_cases() {
                let whole = finish(&mut Sgd::new(cfg), P0, 0);
                let (mut first, mut p) = (Sgd::new(cfg), P0);
                for g in &GRADS[..k] {
                    first.step(&mut p, g);
                }
                let mut rebuilt =
                    Sgd::with_state(cfg, 5, first.steps(), first.velocity().to_vec()).expect("sgd state");
                assert_eq!(finish(&mut rebuilt, p, k), whole, "{cfg:?} after {k} steps");
            }
            for (cfg, _) in adam_cases() {
                let whole = finish(&mut Adam::new(cfg), P0, 0);
                let (mut first, mut p) = (Adam::new(cfg), P0);
                for g in &GRADS[..k] {
                    first.step(&mut p, g);
                }
                let (m, v) = first.moments();
                let mut rebuilt =
                    Adam::with_state(cfg, 5, first.steps(), m.to_vec(), v.to_vec()).expect("adam state");
                assert_eq!(finish(&mut rebuilt, p, k), whole, "{cfg:?} after {k} steps");
            }
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn state_that_no_run_could_have_is_refused() {
        let momentum = SgdConfig::new(0.1).with_momentum(0.9);
        let err = Sgd::with_state(momentum, 5, 2, vec![0.0; 4]).expect_err("short buffer");
        assert_eq!(
            err.to_string(),
            "optimizer buffer momentum_buffer has 4 values, expected 5"
        );
        // No buffer before the first step, nor without momentum.
        assert!(Sgd::with_state(momentum, 5, 0, vec![0.0; 5]).is_err());
        assert!(Sgd::with_state(SgdConfig::new(0.1), 5, 3, vec![0.0; 5]).is_err());
        assert!(Sgd::with_state(SgdConfig::new(0.1), 5, 3, Vec::new()).is_ok());
        let err = Sgd::with_state(momentum, 2, 1, vec![0.0, f32::NAN]).expect_err("NaN");
        assert_eq!(
            err.to_string(),
            "optimizer buffer momentum_buffer holds NaN at index 1"
        );

        let adam = AdamConfig::default();
        assert!(Adam::with_state(adam, 2, 0, Vec::new(), Vec::new()).is_ok());
        assert_eq!(
            Adam::with_state(adam, 2, 1, vec![0.0; 2], vec![0.0; 3]).expect_err("long v"),
            StateError::Length {
                buffer: "exp_avg_sq",
                len: 3,
                expected: 2
            }
        );
        let err = Adam::with_state(adam, 2, 1, vec![0.0; 2], vec![0.5, -1.0]).expect_err("negative v");
        assert_eq!(err.to_string(), "optimizer buffer exp_avg_sq holds -1 at index 1");
        assert!(Adam::with_state(adam, 2, 1, vec![f32::INFINITY, 0.0], vec![0.0; 2]).is_err());
    }

    #[test]
    fn plain_sgd_needs_no_velocity() {
        let mut p = [1.0f32, -2.0];
        sgd_update(&SgdConfig::new(0.5), &mut p, &[2.0, 2.0], &mut [], true);
        assert_eq!(p, [0.0, -3.0]);
        let mut opt = SgdWith::new(SgdConfig::new(0.5), &mut []);
        opt.step(&mut p, &[0.0, 2.0]);
        assert_eq!(p, [0.0, -4.0]);
    }

    #[test]
    fn first_step_ignores_stale_velocity() {
        let cfg = SgdConfig::new(1.0).with_momentum(0.5);
        let mut p = [0.0f32];
        let mut b = [100.0f32];
        sgd_update(&cfg, &mut p, &[1.0], &mut b, true);
        assert_eq!((p, b), ([-1.0], [1.0]));
        sgd_update(&cfg, &mut p, &[1.0], &mut b, false);
        assert_eq!((p, b), ([-2.5], [1.5]));
    }

    #[test]
    fn learning_rate_can_be_changed_between_steps() {
        let mut velocity = [0f32; 1];
        let mut opt = SgdWith::new(SgdConfig::new(1.0), &mut velocity);
        assert_eq!(opt.learning_rate(), 1.0);
        opt.set_learning_rate(0.25);
        assert_eq!(opt.learning_rate(), 0.25);
        let mut p = [1.0f32];
        opt.step(&mut p, &[2.0]);
        assert_eq!(p, [0.5]);

        let (mut m, mut v) = ([0f32; 1], [0f32; 1]);
        let mut adam = AdamWith::new(AdamConfig::default(), &mut m, &mut v);
        adam.set_learning_rate(0.5);
        assert_eq!(adam.learning_rate(), 0.5);
        let mut p = [0.0f32];
        // The first Adam step moves each parameter by about lr.
        adam.step(&mut p, &[3.0]);
        assert!((p[0] + 0.5).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    #[should_panic(expected = "the gradient has 2 elements but there are 3 parameters")]
    fn gradient_length_mismatch_panics_clearly() {
        sgd_update(&SgdConfig::new(0.1), &mut [0.0; 3], &[0.0; 2], &mut [], true);
    }

    #[test]
    #[should_panic(expected = "the momentum buffer has 0 elements but there are 3 parameters")]
    fn missing_velocity_panics_clearly() {
        let mut opt = SgdWith::new(SgdConfig::new(0.1).with_momentum(0.9), &mut []);
        opt.step(&mut [0.0; 3], &[0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "first-moment buffer has 2 elements but there are 3 parameters")]
    fn adam_buffer_mismatch_panics_clearly() {
        let (mut m, mut v) = ([0f32; 2], [0f32; 2]);
        AdamWith::new(AdamConfig::default(), &mut m, &mut v).step(&mut [0.0; 3], &[0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "counts from 1")]
    fn adam_step_zero_panics() {
        adam_update(&AdamConfig::default(), 0, &mut [], &[], &mut [], &mut []);
    }

    #[cfg(feature = "std")]
    #[test]
    #[should_panic(expected = "the momentum buffer has 3 elements but there are 4 parameters")]
    fn owned_sgd_rejects_a_changed_parameter_count() {
        let mut opt = Sgd::new(SgdConfig::new(0.1).with_momentum(0.9));
        opt.step(&mut [0.0; 3], &[0.0; 3]);
        opt.step(&mut [0.0; 4], &[0.0; 4]);
    }
}
