//! `sigmoid`: PyTorch's `nn.Sigmoid`, `1 / (1 + exp(-x))`, in place; kernels in
//! `cnn-runtime/src/ops/sigmoid.rs`.

super::activation::activation_op!(
    /// `sigmoid` (no arguments).
    Sigmoid, "sigmoid", "Sigmoid", int8 = fixed_point(1.0 / 256.0, -128)
);
