//! `relu`: PyTorch's `nn.ReLU`, `max(x, 0)`, in place; kernels in
//! `cnn-runtime/src/ops/relu.rs`.

super::activation::activation_op!(
    /// `relu` (no arguments).
    Relu, "relu", "ReLU", int8 = fused
);
