//! `relu6`: PyTorch's `nn.ReLU6`, `min(max(x, 0), 6)`, in place; kernels in
//! `cnn-runtime/src/ops/relu6.rs`.

super::activation::activation_op!(
    /// `relu6` (no arguments).
    Relu6, "relu6", "ReLU6", int8 = fused
);
