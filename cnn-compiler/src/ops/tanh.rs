//! `tanh`: PyTorch's `nn.Tanh`, in place; kernels in
//! `cnn-runtime/src/ops/tanh.rs`.

super::activation::activation_op!(
    /// `tanh` (no arguments).
    Tanh, "tanh", "Tanh", int8 = fixed_point(1.0 / 128.0, 0)
);
