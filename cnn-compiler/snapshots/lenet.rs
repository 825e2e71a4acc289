/// LeNet-5 as in Dive into Deep Learning, section 7.6
#[derive(Clone)]
pub struct LeNet {
    params: [f32; 61706],
}
///Gradients of every parameter of [`LeNet`]: the same tensors, keys and layout.
#[derive(Clone)]
pub struct LeNetGrads {
    data: [f32; 61706],
}
#[allow(dead_code, clippy::all)]
impl LeNet {
    ///`[C, H, W]` of one input: `[1, 28, 28]`.
    pub const INPUT_SHAPE: [usize; 3] = [1, 28, 28];
    /// Elements of one input example (`C * H * W`).
    pub const INPUT_LEN: usize = 784;
    ///Outputs per example: 10 (shape [10]).
    pub const OUTPUT_LEN: usize = 10;
    /// Number of trainable parameters.
    pub const PARAM_COUNT: usize = 61706;
    /// Bytes of all parameters (f32).
    pub const PARAM_BYTES: usize = 61706 * 4;
    /// Multiply-accumulates of one forward pass of one example.
    pub const MACS: usize = 416520;
    /// f32 elements of scratch [`Self::forward_with`] needs: the largest pair of buffers alive at once.
    pub const INFER_SCRATCH_LEN: usize = 5880;
    /// Bytes of [`Self::INFER_SCRATCH_LEN`].
    pub const INFER_SCRATCH_BYTES: usize = 5880 * 4;
    /// f32 elements of scratch [`Self::loss_and_grad_with`] needs (one example).
    pub const TRAIN_SCRATCH_LEN: usize = 13974;
    /// Bytes of [`Self::TRAIN_SCRATCH_LEN`].
    pub const TRAIN_SCRATCH_BYTES: usize = 13974 * 4;
    /// Every parameter tensor, in PyTorch `state_dict` order.
    pub const TENSORS: &'static [::cnn_runtime::__private::TensorInfo] = &[
        ::cnn_runtime::__private::TensorInfo {
            key: "0.weight",
            shape: &[6, 1, 5, 5],
            offset: 0,
            len: 150,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 25,
            fan_out: 150,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "0.bias",
            shape: &[6],
            offset: 150,
            len: 6,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 25,
            fan_out: 150,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "3.weight",
            shape: &[16, 6, 5, 5],
            offset: 156,
            len: 2400,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 150,
            fan_out: 400,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "3.bias",
            shape: &[16],
            offset: 2556,
            len: 16,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 150,
            fan_out: 400,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "7.weight",
            shape: &[120, 400],
            offset: 2572,
            len: 48000,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 400,
            fan_out: 120,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "7.bias",
            shape: &[120],
            offset: 50572,
            len: 120,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 400,
            fan_out: 120,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "9.weight",
            shape: &[84, 120],
            offset: 50692,
            len: 10080,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 120,
            fan_out: 84,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "9.bias",
            shape: &[84],
            offset: 60772,
            len: 84,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 120,
            fan_out: 84,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "11.weight",
            shape: &[10, 84],
            offset: 60856,
            len: 840,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 84,
            fan_out: 10,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "11.bias",
            shape: &[10],
            offset: 61696,
            len: 10,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 84,
            fan_out: 10,
        },
    ];
    /// Every layer: keyword, output shape, parameters, MACs.
    pub const LAYERS: &'static [::cnn_runtime::__private::LayerInfo] = &[
        ::cnn_runtime::__private::LayerInfo {
            index: 0,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(1, 6, 5, pad = 2)",
            module: "0",
            output_shape: &[6, 28, 28],
            params: 156,
            macs: 117600,
            infer_scratch: 4704,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 1,
            keyword: "sigmoid",
            torch_name: "Sigmoid",
            source: "sigmoid",
            module: "1",
            output_shape: &[6, 28, 28],
            params: 0,
            macs: 0,
            infer_scratch: 0,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 2,
            keyword: "avgpool",
            torch_name: "AvgPool2d",
            source: "avgpool(2)",
            module: "2",
            output_shape: &[6, 14, 14],
            params: 0,
            macs: 0,
            infer_scratch: 5880,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 3,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(6, 16, 5)",
            module: "3",
            output_shape: &[16, 10, 10],
            params: 2416,
            macs: 240000,
            infer_scratch: 2776,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 4,
            keyword: "sigmoid",
            torch_name: "Sigmoid",
            source: "sigmoid",
            module: "4",
            output_shape: &[16, 10, 10],
            params: 0,
            macs: 0,
            infer_scratch: 0,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 5,
            keyword: "avgpool",
            torch_name: "AvgPool2d",
            source: "avgpool(2)",
            module: "5",
            output_shape: &[16, 5, 5],
            params: 0,
            macs: 0,
            infer_scratch: 2000,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 6,
            keyword: "flatten",
            torch_name: "Flatten",
            source: "flatten",
            module: "6",
            output_shape: &[400],
            params: 0,
            macs: 0,
            infer_scratch: 0,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 7,
            keyword: "linear",
            torch_name: "Linear",
            source: "linear(400, 120)",
            module: "7",
            output_shape: &[120],
            params: 48120,
            macs: 48000,
            infer_scratch: 520,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 8,
            keyword: "sigmoid",
            torch_name: "Sigmoid",
            source: "sigmoid",
            module: "8",
            output_shape: &[120],
            params: 0,
            macs: 0,
            infer_scratch: 0,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 9,
            keyword: "linear",
            torch_name: "Linear",
            source: "linear(120, 84)",
            module: "9",
            output_shape: &[84],
            params: 10164,
            macs: 10080,
            infer_scratch: 204,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 10,
            keyword: "sigmoid",
            torch_name: "Sigmoid",
            source: "sigmoid",
            module: "10",
            output_shape: &[84],
            params: 0,
            macs: 0,
            infer_scratch: 0,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 11,
            keyword: "linear",
            torch_name: "Linear",
            source: "linear(84, 10)",
            module: "11",
            output_shape: &[10],
            params: 850,
            macs: 840,
            infer_scratch: 84,
        },
    ];
    const COL_LEN: usize = 19756;
    /// A net with every parameter zero.
    pub const fn zeroed() -> Self {
        Self { params: [0.0; 61706] }
    }
    /// A net initialised like PyTorch's default for `nn.Conv2d` and
    /// `nn.Linear` (uniform in +-1/sqrt(fan_in)), deterministic in `seed`.
    pub fn init(seed: u64) -> Self {
        let mut net = Self::zeroed();
        ::cnn_runtime::__private::init::pytorch_default(
            Self::TENSORS,
            &mut net.params,
            &mut ::cnn_runtime::__private::init::Rng::new(seed),
        );
        net
    }
    /// Weights Xavier-uniform (`nn.init.xavier_uniform_`), biases as
    /// PyTorch's default: Dive into Deep Learning's `init_cnn`.
    pub fn init_xavier(seed: u64) -> Self {
        let mut net = Self::zeroed();
        ::cnn_runtime::__private::init::xavier_uniform(
            Self::TENSORS,
            &mut net.params,
            &mut ::cnn_runtime::__private::init::Rng::new(seed),
        );
        net
    }
    /// Wraps a flat parameter array (in [`Self::TENSORS`] order).
    pub const fn from_params(params: [f32; 61706]) -> Self {
        Self { params }
    }
    /// The flat parameter array.
    pub const fn params(&self) -> &[f32; 61706] {
        &self.params
    }
    /// The flat parameter array, mutable.
    pub fn params_mut(&mut self) -> &mut [f32; 61706] {
        &mut self.params
    }
    /// `(key, shape, values)` of every parameter tensor, in `state_dict` order.
    pub fn tensors(
        &self,
    ) -> impl ::cnn_runtime::__private::core::iter::Iterator<
        Item = (&'static str, &'static [usize], &[f32]),
    > + '_ {
        ::cnn_runtime::__private::network::tensors(Self::TENSORS, &self.params)
    }
    /// The tensor with this `state_dict` key.
    pub fn tensor(
        &self,
        key: &str,
    ) -> ::cnn_runtime::__private::core::option::Option<&[f32]> {
        ::cnn_runtime::__private::network::tensor(Self::TENSORS, &self.params, key)
    }
    /// The tensor with this `state_dict` key, mutable.
    pub fn tensor_mut(
        &mut self,
        key: &str,
    ) -> ::cnn_runtime::__private::core::option::Option<&mut [f32]> {
        ::cnn_runtime::__private::network::tensor_mut(
            Self::TENSORS,
            &mut self.params,
            key,
        )
    }
    /// Writes the layer table (shapes, parameters, MACs, bytes).
    pub fn write_summary<W: ::cnn_runtime::__private::core::fmt::Write>(
        out: &mut W,
    ) -> ::cnn_runtime::__private::core::fmt::Result {
        ::cnn_runtime::__private::network::write_summary::<Self, W>(out)
    }
    /// Forward pass of one example. No heap: the scratch lives on the
    /// stack ([`Self::INFER_SCRATCH_BYTES`] bytes).
    pub fn forward(&self, input: &[f32; 784]) -> [f32; 10] {
        let mut scratch = [0.0f32; 5880];
        self.forward_with(input, &mut scratch)
    }
    /// Forward pass of one example on caller-provided scratch (which
    /// may be a `static`).
    pub fn forward_with(
        &self,
        input: &[f32; 784],
        scratch: &mut [f32; 5880],
    ) -> [f32; 10] {
        let mut output = [0.0f32; 10];
        self.__forward::<
                false,
            >(
            1,
            input,
            &mut output,
            scratch,
            ::cnn_runtime::__private::core::option::Option::None,
            ::cnn_runtime::__private::core::option::Option::None,
        );
        output
    }
    /// Loss of one example and its gradient with respect to every
    /// parameter (overwritten into `grads`), on caller-provided
    /// scratch: no heap, usable without `std` or `alloc`.
    pub fn loss_and_grad_with(
        &self,
        input: &[f32; 784],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut LeNetGrads,
        scratch: &mut [f32; 13974],
    ) -> f32 {
        self.__loss_and_grad::<false>(1, input, target, &mut grads.data, scratch, 0)
    }
    /// One optimisation step on one example, without heap: gradient
    /// into `grads`, then `opt` updates the parameters. Returns the loss.
    pub fn train_step_with<O: ::cnn_runtime::__private::Optimizer>(
        &mut self,
        input: &[f32; 784],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut LeNetGrads,
        scratch: &mut [f32; 13974],
        opt: &mut O,
    ) -> f32 {
        let loss = self.loss_and_grad_with(input, target, grads, scratch);
        opt.step(&mut self.params, &grads.data);
        loss
    }
    /// The inference forward pass; `trace` sees every layer's output
    /// (`None` on the ordinary paths: each visit is a test of it).
    #[inline]
    fn __forward<const GEMM: bool>(
        &self,
        n: usize,
        input: &[f32],
        output: &mut [f32],
        workspace: &mut [f32],
        mut trace: ::cnn_runtime::__private::network::Trace<'_>,
        packed: ::cnn_runtime::__private::core::option::Option<&[f32]>,
    ) {
        ::cnn_runtime::__private::core::assert_eq!(
            input.len(), n * 784, "{}: input has {} values, expected {} ({} x {})",
            "LeNet", input.len(), n * 784, n, 784
        );
        ::cnn_runtime::__private::core::assert_eq!(
            output.len(), n * 10,
            "{}: output has room for {} values, expected {} ({} x {})", "LeNet", output
            .len(), n * 10, n, 10
        );
        let col_len = if GEMM { Self::COL_LEN } else { 0 };
        ::cnn_runtime::__private::core::assert!(
            workspace.len() >= col_len + n * 5880, "{}: workspace too small", "LeNet"
        );
        let (col, scratch) = workspace.split_at_mut(col_len);
        let scratch = &mut scratch[..n * 5880];
        let _ = (&col, &scratch, packed);
        {
            let x: &[f32] = input;
            let y: &mut [f32] = ::cnn_runtime::__private::region(
                scratch,
                true,
                n * 4704,
            );
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 1,
                in_h: 28,
                in_w: 28,
                out_channels: 6,
                kernel: (5, 5),
                stride: (1, 1),
                pad: (2, 2),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[0..150],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[150..156],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[0..150],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[150..156],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(0, &*::cnn_runtime::__private::region(scratch, true, n * 4704));
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(
            ::cnn_runtime::__private::region(scratch, true, n * 4704),
        );
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(1, &*::cnn_runtime::__private::region(scratch, true, n * 4704));
        }
        {
            let (x, y) = ::cnn_runtime::__private::ping_pong(
                scratch,
                true,
                n * 4704,
                n * 1176,
            );
            const G: ::cnn_runtime::__private::ops::window::Pool2d = ::cnn_runtime::__private::ops::window::Pool2d {
                channels: 6,
                in_h: 28,
                in_w: 28,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            ::cnn_runtime::__private::ops::avgpool::forward(&G, n, x, y);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(2, &*::cnn_runtime::__private::region(scratch, false, n * 1176));
        }
        {
            let (x, y) = ::cnn_runtime::__private::ping_pong(
                scratch,
                false,
                n * 1176,
                n * 1600,
            );
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 6,
                in_h: 14,
                in_w: 14,
                out_channels: 16,
                kernel: (5, 5),
                stride: (1, 1),
                pad: (0, 0),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[156..2556],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[2556..2572],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[156..2556],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[2556..2572],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(3, &*::cnn_runtime::__private::region(scratch, true, n * 1600));
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(
            ::cnn_runtime::__private::region(scratch, true, n * 1600),
        );
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(4, &*::cnn_runtime::__private::region(scratch, true, n * 1600));
        }
        {
            let (x, y) = ::cnn_runtime::__private::ping_pong(
                scratch,
                true,
                n * 1600,
                n * 400,
            );
            const G: ::cnn_runtime::__private::ops::window::Pool2d = ::cnn_runtime::__private::ops::window::Pool2d {
                channels: 16,
                in_h: 10,
                in_w: 10,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            ::cnn_runtime::__private::ops::avgpool::forward(&G, n, x, y);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(5, &*::cnn_runtime::__private::region(scratch, false, n * 400));
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(6, &*::cnn_runtime::__private::region(scratch, false, n * 400));
        }
        {
            let (x, y) = ::cnn_runtime::__private::ping_pong(
                scratch,
                false,
                n * 400,
                n * 120,
            );
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 400,
                out_features: 120,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[2572..50572],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[50572..50692],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[2572..50572],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[50572..50692],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(7, &*::cnn_runtime::__private::region(scratch, true, n * 120));
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(
            ::cnn_runtime::__private::region(scratch, true, n * 120),
        );
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(8, &*::cnn_runtime::__private::region(scratch, true, n * 120));
        }
        {
            let (x, y) = ::cnn_runtime::__private::ping_pong(
                scratch,
                true,
                n * 120,
                n * 84,
            );
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 120,
                out_features: 84,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[50692..60772],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[60772..60856],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[50692..60772],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[60772..60856],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(9, &*::cnn_runtime::__private::region(scratch, false, n * 84));
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(
            ::cnn_runtime::__private::region(scratch, false, n * 84),
        );
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(10, &*::cnn_runtime::__private::region(scratch, false, n * 84));
        }
        {
            let x: &[f32] = &*::cnn_runtime::__private::region(scratch, false, n * 84);
            let y: &mut [f32] = &mut *output;
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 84,
                out_features: 10,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[60856..61696],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[61696..61706],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[60856..61696],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[61696..61706],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(11, &*output);
        }
    }
    #[inline]
    fn __loss_and_grad<const GEMM: bool>(
        &self,
        n: usize,
        input: &[f32],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut [f32],
        workspace: &mut [f32],
        seed: u64,
    ) -> f32 {
        ::cnn_runtime::__private::core::assert_eq!(
            input.len(), n * 784, "{}: input has {} values, expected {} ({} x {})",
            "LeNet", input.len(), n * 784, n, 784
        );
        ::cnn_runtime::__private::core::assert_eq!(
            grads.len(), 61706, "{}: gradient buffer has {} values, expected {}",
            "LeNet", grads.len(), 61706
        );
        let col_len = if GEMM { Self::COL_LEN } else { 0 };
        ::cnn_runtime::__private::core::assert!(
            workspace.len() >= col_len + n * 13974, "{}: workspace too small", "LeNet"
        );
        let _ = seed;
        grads.fill(0.0);
        let (col, rest) = workspace.split_at_mut(col_len);
        let _ = &col;
        let (a0, rest) = rest.split_at_mut(n * 4704);
        let (a1, rest) = rest.split_at_mut(n * 1176);
        let (a2, rest) = rest.split_at_mut(n * 1600);
        let (a3, rest) = rest.split_at_mut(n * 400);
        let (a4, rest) = rest.split_at_mut(n * 120);
        let (a5, rest) = rest.split_at_mut(n * 84);
        let (a6, rest) = rest.split_at_mut(n * 10);
        let (g0, rest) = rest.split_at_mut(n * 4704);
        let (g1, _) = rest.split_at_mut(n * 1176);
        {
            let x: &[f32] = &*input;
            let y: &mut [f32] = &mut *a0;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 1,
                in_h: 28,
                in_w: 28,
                out_channels: 6,
                kernel: (5, 5),
                stride: (1, 1),
                pad: (2, 2),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[0..150],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[150..156],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[0..150],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[150..156],
                    ),
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(&mut *a0);
        {
            let x: &[f32] = &*a0;
            let y: &mut [f32] = &mut *a1;
            const G: ::cnn_runtime::__private::ops::window::Pool2d = ::cnn_runtime::__private::ops::window::Pool2d {
                channels: 6,
                in_h: 28,
                in_w: 28,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            ::cnn_runtime::__private::ops::avgpool::forward(&G, n, x, y);
        }
        {
            let x: &[f32] = &*a1;
            let y: &mut [f32] = &mut *a2;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 6,
                in_h: 14,
                in_w: 14,
                out_channels: 16,
                kernel: (5, 5),
                stride: (1, 1),
                pad: (0, 0),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[156..2556],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[2556..2572],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[156..2556],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[2556..2572],
                    ),
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(&mut *a2);
        {
            let x: &[f32] = &*a2;
            let y: &mut [f32] = &mut *a3;
            const G: ::cnn_runtime::__private::ops::window::Pool2d = ::cnn_runtime::__private::ops::window::Pool2d {
                channels: 16,
                in_h: 10,
                in_w: 10,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            ::cnn_runtime::__private::ops::avgpool::forward(&G, n, x, y);
        }
        {
            let x: &[f32] = &*a3;
            let y: &mut [f32] = &mut *a4;
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 400,
                out_features: 120,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[2572..50572],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[50572..50692],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[2572..50572],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[50572..50692],
                    ),
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(&mut *a4);
        {
            let x: &[f32] = &*a4;
            let y: &mut [f32] = &mut *a5;
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 120,
                out_features: 84,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[50692..60772],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[60772..60856],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[50692..60772],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[60772..60856],
                    ),
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::sigmoid::forward(&mut *a5);
        {
            let x: &[f32] = &*a5;
            let y: &mut [f32] = &mut *a6;
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 84,
                out_features: 10,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[60856..61696],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[61696..61706],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[60856..61696],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[61696..61706],
                    ),
                    y,
                );
            }
        }
        let loss = match target {
            ::cnn_runtime::__private::Target::Classes(labels) => {
                ::cnn_runtime::__private::core::assert_eq!(
                    labels.len(), n, "expected {} labels, found {}", n, labels.len()
                );
                ::cnn_runtime::__private::ops::cross_entropy::forward_backward(
                    n,
                    10,
                    &*a6,
                    labels,
                    &mut g0[..n * 10],
                )
            }
            ::cnn_runtime::__private::Target::Values(values) => {
                ::cnn_runtime::__private::core::assert_eq!(
                    values.len(), n * 10, "expected {} target values, found {}", n * 10,
                    values.len()
                );
                ::cnn_runtime::__private::ops::mse::forward_backward(
                    &*a6,
                    values,
                    &mut g0[..n * 10],
                )
            }
        };
        {
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 84,
                out_features: 10,
            };
            let (dw, db) = grads[60856..61706].split_at_mut(840);
            let db = ::cnn_runtime::__private::core::option::Option::Some(db);
            let dy: &[f32] = &g0[..n * 10];
            if GEMM {
                ::cnn_runtime::__private::ops::linear::backward_gemm(
                    &G,
                    n,
                    &*a5,
                    &self.params[60856..61696],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g1[..n * 84],
                    ),
                );
            } else {
                ::cnn_runtime::__private::ops::linear::backward(
                    &G,
                    n,
                    &*a5,
                    &self.params[60856..61696],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g1[..n * 84],
                    ),
                );
            }
        }
        ::cnn_runtime::__private::ops::sigmoid::backward(&*a5, &mut g1[..n * 84]);
        {
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 120,
                out_features: 84,
            };
            let (dw, db) = grads[50692..60856].split_at_mut(10080);
            let db = ::cnn_runtime::__private::core::option::Option::Some(db);
            let dy: &[f32] = &g1[..n * 84];
            if GEMM {
                ::cnn_runtime::__private::ops::linear::backward_gemm(
                    &G,
                    n,
                    &*a4,
                    &self.params[50692..60772],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g0[..n * 120],
                    ),
                );
            } else {
                ::cnn_runtime::__private::ops::linear::backward(
                    &G,
                    n,
                    &*a4,
                    &self.params[50692..60772],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g0[..n * 120],
                    ),
                );
            }
        }
        ::cnn_runtime::__private::ops::sigmoid::backward(&*a4, &mut g0[..n * 120]);
        {
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 400,
                out_features: 120,
            };
            let (dw, db) = grads[2572..50692].split_at_mut(48000);
            let db = ::cnn_runtime::__private::core::option::Option::Some(db);
            let dy: &[f32] = &g0[..n * 120];
            if GEMM {
                ::cnn_runtime::__private::ops::linear::backward_gemm(
                    &G,
                    n,
                    &*a3,
                    &self.params[2572..50572],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g1[..n * 400],
                    ),
                );
            } else {
                ::cnn_runtime::__private::ops::linear::backward(
                    &G,
                    n,
                    &*a3,
                    &self.params[2572..50572],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g1[..n * 400],
                    ),
                );
            }
        }
        {
            const G: ::cnn_runtime::__private::ops::window::Pool2d = ::cnn_runtime::__private::ops::window::Pool2d {
                channels: 16,
                in_h: 10,
                in_w: 10,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            ::cnn_runtime::__private::ops::avgpool::backward(
                &G,
                n,
                &g1[..n * 400],
                &mut g0[..n * 1600],
            );
        }
        ::cnn_runtime::__private::ops::sigmoid::backward(&*a2, &mut g0[..n * 1600]);
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 6,
                in_h: 14,
                in_w: 14,
                out_channels: 16,
                kernel: (5, 5),
                stride: (1, 1),
                pad: (0, 0),
            };
            let (dw, db) = grads[156..2572].split_at_mut(2400);
            let db = ::cnn_runtime::__private::core::option::Option::Some(db);
            let dy: &[f32] = &g0[..n * 1600];
            if GEMM {
                ::cnn_runtime::__private::ops::conv::backward_gemm(
                    &G,
                    n,
                    &*a1,
                    &self.params[156..2556],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g1[..n * 1176],
                    ),
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::backward(
                    &G,
                    n,
                    &*a1,
                    &self.params[156..2556],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut g1[..n * 1176],
                    ),
                );
            }
        }
        {
            const G: ::cnn_runtime::__private::ops::window::Pool2d = ::cnn_runtime::__private::ops::window::Pool2d {
                channels: 6,
                in_h: 28,
                in_w: 28,
                kernel: (2, 2),
                stride: (2, 2),
                pad: (0, 0),
            };
            ::cnn_runtime::__private::ops::avgpool::backward(
                &G,
                n,
                &g1[..n * 1176],
                &mut g0[..n * 4704],
            );
        }
        ::cnn_runtime::__private::ops::sigmoid::backward(&*a0, &mut g0[..n * 4704]);
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 1,
                in_h: 28,
                in_w: 28,
                out_channels: 6,
                kernel: (5, 5),
                stride: (1, 1),
                pad: (2, 2),
            };
            let (dw, db) = grads[0..156].split_at_mut(150);
            let db = ::cnn_runtime::__private::core::option::Option::Some(db);
            let dy: &[f32] = &g0[..n * 4704];
            if GEMM {
                ::cnn_runtime::__private::ops::conv::backward_gemm(
                    &G,
                    n,
                    &*input,
                    &self.params[0..150],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::None,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::backward(
                    &G,
                    n,
                    &*input,
                    &self.params[0..150],
                    dy,
                    dw,
                    db,
                    ::cnn_runtime::__private::core::option::Option::None,
                );
            }
        }
        let _ = (&g0, &g1);
        loss
    }
}
#[allow(clippy::all)]
impl ::cnn_runtime::__private::Network for LeNet {
    const NAME: &'static str = "LeNet";
    const INPUT_SHAPE: [usize; 3] = Self::INPUT_SHAPE;
    const INPUT_LEN: usize = 784;
    const OUTPUT_LEN: usize = 10;
    const PARAM_COUNT: usize = 61706;
    const MACS: usize = 416520;
    const TENSORS: &'static [::cnn_runtime::__private::TensorInfo] = Self::TENSORS;
    const LAYERS: &'static [::cnn_runtime::__private::LayerInfo] = Self::LAYERS;
    const INFER_SCRATCH_LEN: usize = 5880;
    const TRAIN_SCRATCH_LEN: usize = 13974;
    const PACKED_LEN: usize = 0;
    type Grads = LeNetGrads;
    fn zeroed() -> Self {
        Self::zeroed()
    }
    ::cnn_runtime::__private::impl_std_network_items!();
    fn params(&self) -> &[f32] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    fn forward_workspace_len(n: usize) -> usize {
        Self::COL_LEN + n * 5880
    }
    fn train_workspace_len(n: usize) -> usize {
        Self::COL_LEN + n * 13974
    }
    fn forward_n(
        &self,
        n: usize,
        input: &[f32],
        output: &mut [f32],
        workspace: &mut [f32],
    ) {
        self.__forward::<
                true,
            >(
            n,
            input,
            output,
            workspace,
            ::cnn_runtime::__private::core::option::Option::None,
            ::cnn_runtime::__private::core::option::Option::None,
        )
    }
    fn pack(&self, packed: &mut [f32]) {
        ::cnn_runtime::__private::core::assert_eq!(
            packed.len(), 0,
            "{}: packed weights have {} values, expected PACKED_LEN = {}", "LeNet",
            packed.len(), 0
        );
    }
    fn forward_n_packed(
        &self,
        n: usize,
        input: &[f32],
        output: &mut [f32],
        workspace: &mut [f32],
        packed: &[f32],
    ) {
        ::cnn_runtime::__private::core::assert_eq!(
            packed.len(), 0,
            "{}: packed weights have {} values, expected PACKED_LEN = {}", "LeNet",
            packed.len(), 0
        );
        self.__forward::<
                true,
            >(
            n,
            input,
            output,
            workspace,
            ::cnn_runtime::__private::core::option::Option::None,
            ::cnn_runtime::__private::core::option::Option::Some(packed),
        )
    }
    fn forward_one(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) {
        self.__forward::<
                false,
            >(
            1,
            input,
            output,
            scratch,
            ::cnn_runtime::__private::core::option::Option::None,
            ::cnn_runtime::__private::core::option::Option::None,
        )
    }
    fn forward_traced(
        &self,
        n: usize,
        input: &[f32],
        output: &mut [f32],
        workspace: &mut [f32],
        visit: &mut dyn ::cnn_runtime::__private::core::ops::FnMut(usize, &[f32]),
    ) {
        self.__forward::<
                true,
            >(
            n,
            input,
            output,
            workspace,
            ::cnn_runtime::__private::core::option::Option::Some(visit),
            ::cnn_runtime::__private::core::option::Option::None,
        )
    }
    fn train_outputs<'a>(n: usize, input: &'a [f32], workspace: &'a [f32]) -> &'a [f32] {
        let _ = input;
        let start = Self::COL_LEN + n * 8084;
        &workspace[start..start + n * 10]
    }
    fn loss_and_grad_n(
        &self,
        n: usize,
        input: &[f32],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut [f32],
        workspace: &mut [f32],
        seed: u64,
    ) -> f32 {
        self.__loss_and_grad::<true>(n, input, target, grads, workspace, seed)
    }
}
impl ::cnn_runtime::__private::core::fmt::Debug for LeNet {
    fn fmt(
        &self,
        f: &mut ::cnn_runtime::__private::core::fmt::Formatter<'_>,
    ) -> ::cnn_runtime::__private::core::fmt::Result {
        f.debug_struct("LeNet").field("params", &61706).finish_non_exhaustive()
    }
}
#[allow(dead_code, clippy::all)]
impl LeNetGrads {
    /// All gradients zero.
    pub const fn zeroed() -> Self {
        Self { data: [0.0; 61706] }
    }
    /// The flat gradient array, in the parameters' layout.
    pub const fn as_array(&self) -> &[f32; 61706] {
        &self.data
    }
    /// `(key, shape, values)` of every gradient tensor.
    pub fn tensors(
        &self,
    ) -> impl ::cnn_runtime::__private::core::iter::Iterator<
        Item = (&'static str, &'static [usize], &[f32]),
    > + '_ {
        ::cnn_runtime::__private::network::tensors(LeNet::TENSORS, &self.data)
    }
    /// The gradient of the parameter with this `state_dict` key.
    pub fn tensor(
        &self,
        key: &str,
    ) -> ::cnn_runtime::__private::core::option::Option<&[f32]> {
        ::cnn_runtime::__private::network::tensor(LeNet::TENSORS, &self.data, key)
    }
}
impl ::cnn_runtime::__private::Gradients for LeNetGrads {
    const TENSORS: &'static [::cnn_runtime::__private::TensorInfo] = LeNet::TENSORS;
    fn zeroed() -> Self {
        Self::zeroed()
    }
    fn as_slice(&self) -> &[f32] {
        &self.data
    }
    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }
}
impl ::cnn_runtime::__private::core::fmt::Debug for LeNetGrads {
    fn fmt(
        &self,
        f: &mut ::cnn_runtime::__private::core::fmt::Formatter<'_>,
    ) -> ::cnn_runtime::__private::core::fmt::Result {
        f.debug_struct(stringify!(LeNetGrads))
            .field("params", &61706)
            .finish_non_exhaustive()
    }
}
::cnn_runtime::__private::impl_std_methods!(LeNet, LeNetGrads);
