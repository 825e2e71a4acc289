/// Two residual blocks.
#[derive(Clone)]
pub struct Res {
    params: [f32; 1402],
    buffers: [f32; 61],
}
///Gradients of every parameter of [`Res`]: the same tensors, keys and layout.
#[derive(Clone)]
pub struct ResGrads {
    data: [f32; 1402],
}
#[allow(dead_code, clippy::all)]
impl Res {
    ///`[C, H, W]` of one input: `[1, 8, 8]`.
    pub const INPUT_SHAPE: [usize; 3] = [1, 8, 8];
    /// Elements of one input example (`C * H * W`).
    pub const INPUT_LEN: usize = 64;
    ///Outputs per example: 10 (shape [10]).
    pub const OUTPUT_LEN: usize = 10;
    /// Number of trainable parameters.
    pub const PARAM_COUNT: usize = 1402;
    /// Bytes of all parameters (f32).
    pub const PARAM_BYTES: usize = 1402 * 4;
    /// Multiply-accumulates of one forward pass of one example.
    pub const MACS: usize = 36176;
    /// f32 elements of scratch [`Self::forward_with`] needs: the largest pair of buffers alive at once.
    pub const INFER_SCRATCH_LEN: usize = 768;
    /// Bytes of [`Self::INFER_SCRATCH_LEN`].
    pub const INFER_SCRATCH_BYTES: usize = 768 * 4;
    /// f32 elements of scratch [`Self::loss_and_grad_with`] needs (one example).
    pub const TRAIN_SCRATCH_LEN: usize = 3046;
    /// Bytes of [`Self::TRAIN_SCRATCH_LEN`].
    pub const TRAIN_SCRATCH_BYTES: usize = 3046 * 4;
    /// Every buffer tensor (batch norm's running statistics and
    /// step counts), in `state_dict` order: their own array,
    /// which optimizers never touch.
    pub const BUFFERS: &'static [::cnn_runtime::__private::TensorInfo] = &[
        ::cnn_runtime::__private::TensorInfo {
            key: "0.1.running_mean",
            shape: &[4],
            offset: 0,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::RunningMean,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "0.1.running_var",
            shape: &[4],
            offset: 4,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::RunningVar,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "0.1.num_batches_tracked",
            shape: &[],
            offset: 8,
            len: 1,
            role: ::cnn_runtime::__private::TensorRole::BatchesTracked,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn1.running_mean",
            shape: &[4],
            offset: 9,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::RunningMean,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn1.running_var",
            shape: &[4],
            offset: 13,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::RunningVar,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn1.num_batches_tracked",
            shape: &[],
            offset: 17,
            len: 1,
            role: ::cnn_runtime::__private::TensorRole::BatchesTracked,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn2.running_mean",
            shape: &[4],
            offset: 18,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::RunningMean,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn2.running_var",
            shape: &[4],
            offset: 22,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::RunningVar,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn2.num_batches_tracked",
            shape: &[],
            offset: 26,
            len: 1,
            role: ::cnn_runtime::__private::TensorRole::BatchesTracked,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn1.running_mean",
            shape: &[8],
            offset: 27,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::RunningMean,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn1.running_var",
            shape: &[8],
            offset: 35,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::RunningVar,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn1.num_batches_tracked",
            shape: &[],
            offset: 43,
            len: 1,
            role: ::cnn_runtime::__private::TensorRole::BatchesTracked,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn2.running_mean",
            shape: &[8],
            offset: 44,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::RunningMean,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn2.running_var",
            shape: &[8],
            offset: 52,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::RunningVar,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn2.num_batches_tracked",
            shape: &[],
            offset: 60,
            len: 1,
            role: ::cnn_runtime::__private::TensorRole::BatchesTracked,
            fan_in: 8,
            fan_out: 8,
        },
    ];
    /// Elements of the buffer array.
    pub const BUFFER_COUNT: usize = 61;
    const STATS_LEN: usize = 84;
    /// Every parameter tensor, in PyTorch `state_dict` order.
    pub const TENSORS: &'static [::cnn_runtime::__private::TensorInfo] = &[
        ::cnn_runtime::__private::TensorInfo {
            key: "0.0.weight",
            shape: &[4, 1, 3, 3],
            offset: 0,
            len: 36,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 9,
            fan_out: 36,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "0.0.bias",
            shape: &[4],
            offset: 36,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 9,
            fan_out: 36,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "0.1.weight",
            shape: &[4],
            offset: 40,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::NormWeight,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "0.1.bias",
            shape: &[4],
            offset: 44,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::NormBias,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.conv1.weight",
            shape: &[4, 4, 3, 3],
            offset: 48,
            len: 144,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 36,
            fan_out: 36,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.conv1.bias",
            shape: &[4],
            offset: 192,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 36,
            fan_out: 36,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn1.weight",
            shape: &[4],
            offset: 196,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::NormWeight,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn1.bias",
            shape: &[4],
            offset: 200,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::NormBias,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.conv2.weight",
            shape: &[4, 4, 3, 3],
            offset: 204,
            len: 144,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 36,
            fan_out: 36,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.conv2.bias",
            shape: &[4],
            offset: 348,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 36,
            fan_out: 36,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn2.weight",
            shape: &[4],
            offset: 352,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::NormWeight,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.0.bn2.bias",
            shape: &[4],
            offset: 356,
            len: 4,
            role: ::cnn_runtime::__private::TensorRole::NormBias,
            fan_in: 4,
            fan_out: 4,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.conv1.weight",
            shape: &[8, 4, 3, 3],
            offset: 360,
            len: 288,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 36,
            fan_out: 72,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.conv1.bias",
            shape: &[8],
            offset: 648,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 36,
            fan_out: 72,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn1.weight",
            shape: &[8],
            offset: 656,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::NormWeight,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn1.bias",
            shape: &[8],
            offset: 664,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::NormBias,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.conv2.weight",
            shape: &[8, 8, 3, 3],
            offset: 672,
            len: 576,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 72,
            fan_out: 72,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.conv2.bias",
            shape: &[8],
            offset: 1248,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 72,
            fan_out: 72,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn2.weight",
            shape: &[8],
            offset: 1256,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::NormWeight,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.bn2.bias",
            shape: &[8],
            offset: 1264,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::NormBias,
            fan_in: 8,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.conv3.weight",
            shape: &[8, 4, 1, 1],
            offset: 1272,
            len: 32,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 4,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "1.1.conv3.bias",
            shape: &[8],
            offset: 1304,
            len: 8,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 4,
            fan_out: 8,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "2.2.weight",
            shape: &[10, 8],
            offset: 1312,
            len: 80,
            role: ::cnn_runtime::__private::TensorRole::Weight,
            fan_in: 8,
            fan_out: 10,
        },
        ::cnn_runtime::__private::TensorInfo {
            key: "2.2.bias",
            shape: &[10],
            offset: 1392,
            len: 10,
            role: ::cnn_runtime::__private::TensorRole::Bias,
            fan_in: 8,
            fan_out: 10,
        },
    ];
    /// Every layer: keyword, output shape, parameters, MACs.
    pub const LAYERS: &'static [::cnn_runtime::__private::LayerInfo] = &[
        ::cnn_runtime::__private::LayerInfo {
            index: 0,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(1, 4, 3, pad = 1)",
            module: "0.0",
            output_shape: &[4, 8, 8],
            params: 40,
            macs: 2304,
            infer_scratch: 256,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 1,
            keyword: "batchnorm",
            torch_name: "BatchNorm2d",
            source: "batchnorm",
            module: "0.1",
            output_shape: &[4, 8, 8],
            params: 8,
            macs: 256,
            infer_scratch: 256,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 2,
            keyword: "relu",
            torch_name: "ReLU",
            source: "relu",
            module: "0.2",
            output_shape: &[4, 8, 8],
            params: 0,
            macs: 0,
            infer_scratch: 256,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 3,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(_, 4, 3, pad = 1, stride = 1)",
            module: "1.0.conv1",
            output_shape: &[4, 8, 8],
            params: 148,
            macs: 9216,
            infer_scratch: 512,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 4,
            keyword: "batchnorm",
            torch_name: "BatchNorm2d",
            source: "batchnorm",
            module: "1.0.bn1",
            output_shape: &[4, 8, 8],
            params: 8,
            macs: 256,
            infer_scratch: 512,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 5,
            keyword: "relu",
            torch_name: "ReLU",
            source: "relu",
            module: "1.0.0 (add branch 1, position 2)",
            output_shape: &[4, 8, 8],
            params: 0,
            macs: 0,
            infer_scratch: 512,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 6,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(4, 4, 3, pad = 1)",
            module: "1.0.conv2",
            output_shape: &[4, 8, 8],
            params: 148,
            macs: 9216,
            infer_scratch: 768,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 7,
            keyword: "batchnorm",
            torch_name: "BatchNorm2d",
            source: "batchnorm",
            module: "1.0.bn2",
            output_shape: &[4, 8, 8],
            params: 8,
            macs: 256,
            infer_scratch: 512,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 8,
            keyword: "relu",
            torch_name: "ReLU",
            source: "relu",
            module: "1.0.1",
            output_shape: &[4, 8, 8],
            params: 0,
            macs: 0,
            infer_scratch: 256,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 9,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(_, 8, 3, pad = 1, stride = 2)",
            module: "1.1.conv1",
            output_shape: &[8, 4, 4],
            params: 296,
            macs: 4608,
            infer_scratch: 384,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 10,
            keyword: "batchnorm",
            torch_name: "BatchNorm2d",
            source: "batchnorm",
            module: "1.1.bn1",
            output_shape: &[8, 4, 4],
            params: 16,
            macs: 128,
            infer_scratch: 384,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 11,
            keyword: "relu",
            torch_name: "ReLU",
            source: "relu",
            module: "1.1.0 (add branch 1, position 2)",
            output_shape: &[8, 4, 4],
            params: 0,
            macs: 0,
            infer_scratch: 384,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 12,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(8, 8, 3, pad = 1)",
            module: "1.1.conv2",
            output_shape: &[8, 4, 4],
            params: 584,
            macs: 9216,
            infer_scratch: 512,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 13,
            keyword: "batchnorm",
            torch_name: "BatchNorm2d",
            source: "batchnorm",
            module: "1.1.bn2",
            output_shape: &[8, 4, 4],
            params: 16,
            macs: 128,
            infer_scratch: 384,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 14,
            keyword: "conv",
            torch_name: "Conv2d",
            source: "conv(_, 8, 1, stride = 2)",
            module: "1.1.conv3",
            output_shape: &[8, 4, 4],
            params: 40,
            macs: 512,
            infer_scratch: 512,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 15,
            keyword: "relu",
            torch_name: "ReLU",
            source: "relu",
            module: "1.1.1",
            output_shape: &[8, 4, 4],
            params: 0,
            macs: 0,
            infer_scratch: 128,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 16,
            keyword: "global_avgpool",
            torch_name: "AdaptiveAvgPool2d",
            source: "global_avgpool",
            module: "2.0",
            output_shape: &[8, 1, 1],
            params: 0,
            macs: 0,
            infer_scratch: 136,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 17,
            keyword: "flatten",
            torch_name: "Flatten",
            source: "flatten",
            module: "2.1",
            output_shape: &[8],
            params: 0,
            macs: 0,
            infer_scratch: 8,
        },
        ::cnn_runtime::__private::LayerInfo {
            index: 18,
            keyword: "linear",
            torch_name: "Linear",
            source: "linear(8, 10)",
            module: "2.2",
            output_shape: &[10],
            params: 90,
            macs: 80,
            infer_scratch: 18,
        },
    ];
    const COL_LEN: usize = 2452;
    /// A net with every parameter zero.
    pub const fn zeroed() -> Self {
        Self {
            params: [0.0; 1402],
            buffers: [0.0; 61],
        }
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
        ::cnn_runtime::__private::init::buffers(Self::BUFFERS, &mut net.buffers);
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
        ::cnn_runtime::__private::init::buffers(Self::BUFFERS, &mut net.buffers);
        net
    }
    /// Wraps a flat parameter array (in [`Self::TENSORS`] order).
    pub const fn from_params(params: [f32; 1402]) -> Self {
        Self { params, buffers: [0.0; 61] }
    }
    /// The flat parameter array.
    pub const fn params(&self) -> &[f32; 1402] {
        &self.params
    }
    /// The flat parameter array, mutable.
    pub fn params_mut(&mut self) -> &mut [f32; 1402] {
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
    pub fn forward(&self, input: &[f32; 64]) -> [f32; 10] {
        let mut scratch = [0.0f32; 768];
        self.forward_with(input, &mut scratch)
    }
    /// Forward pass of one example on caller-provided scratch (which
    /// may be a `static`).
    pub fn forward_with(
        &self,
        input: &[f32; 64],
        scratch: &mut [f32; 768],
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
        input: &[f32; 64],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut ResGrads,
        scratch: &mut [f32; 3046],
    ) -> f32 {
        self.__loss_and_grad::<
                false,
            >(
            1,
            input,
            target,
            &mut grads.data,
            scratch,
            0,
            &::cnn_runtime::__private::Alone,
        )
    }
    /// One optimisation step on one example, without heap: gradient
    /// into `grads`, then `opt` updates the parameters. Returns the loss.
    pub fn train_step_with<O: ::cnn_runtime::__private::Optimizer>(
        &mut self,
        input: &[f32; 64],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut ResGrads,
        scratch: &mut [f32; 3046],
        opt: &mut O,
    ) -> f32 {
        let loss = self.loss_and_grad_with(input, target, grads, scratch);
        opt.step(&mut self.params, &grads.data);
        self.__update(&scratch[..84], 1);
        loss
    }
    /// Updates the running statistics from the batch statistics
    /// of a training pass over `n` examples.
    fn __update(&mut self, stats: &[f32], n: usize) {
        {
            let (mean, rest) = stats[0..12].split_at(4);
            let var = &rest[..4];
            let (running_mean, rest) = self.buffers[0..9].split_at_mut(4);
            let (running_var, tracked) = rest.split_at_mut(4);
            ::cnn_runtime::__private::ops::batchnorm::update_running(
                0.1f32,
                (n * 64) as f64,
                mean,
                var,
                running_mean,
                running_var,
                &mut tracked[0],
            );
        }
        {
            let (mean, rest) = stats[12..24].split_at(4);
            let var = &rest[..4];
            let (running_mean, rest) = self.buffers[9..18].split_at_mut(4);
            let (running_var, tracked) = rest.split_at_mut(4);
            ::cnn_runtime::__private::ops::batchnorm::update_running(
                0.1f32,
                (n * 64) as f64,
                mean,
                var,
                running_mean,
                running_var,
                &mut tracked[0],
            );
        }
        {
            let (mean, rest) = stats[24..36].split_at(4);
            let var = &rest[..4];
            let (running_mean, rest) = self.buffers[18..27].split_at_mut(4);
            let (running_var, tracked) = rest.split_at_mut(4);
            ::cnn_runtime::__private::ops::batchnorm::update_running(
                0.1f32,
                (n * 64) as f64,
                mean,
                var,
                running_mean,
                running_var,
                &mut tracked[0],
            );
        }
        {
            let (mean, rest) = stats[36..60].split_at(8);
            let var = &rest[..8];
            let (running_mean, rest) = self.buffers[27..44].split_at_mut(8);
            let (running_var, tracked) = rest.split_at_mut(8);
            ::cnn_runtime::__private::ops::batchnorm::update_running(
                0.1f32,
                (n * 16) as f64,
                mean,
                var,
                running_mean,
                running_var,
                &mut tracked[0],
            );
        }
        {
            let (mean, rest) = stats[60..84].split_at(8);
            let var = &rest[..8];
            let (running_mean, rest) = self.buffers[44..61].split_at_mut(8);
            let (running_var, tracked) = rest.split_at_mut(8);
            ::cnn_runtime::__private::ops::batchnorm::update_running(
                0.1f32,
                (n * 16) as f64,
                mean,
                var,
                running_mean,
                running_var,
                &mut tracked[0],
            );
        }
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
            input.len(), n * 64, "{}: input has {} values, expected {} ({} x {})", "Res",
            input.len(), n * 64, n, 64
        );
        ::cnn_runtime::__private::core::assert_eq!(
            output.len(), n * 10,
            "{}: output has room for {} values, expected {} ({} x {})", "Res", output
            .len(), n * 10, n, 10
        );
        let col_len = if GEMM { Self::COL_LEN } else { 0 };
        ::cnn_runtime::__private::core::assert!(
            workspace.len() >= col_len + n * 768, "{}: workspace too small", "Res"
        );
        let (col, scratch) = workspace.split_at_mut(col_len);
        let scratch = &mut scratch[..n * 768];
        let _ = (&col, &scratch, packed);
        {
            let x: &[f32] = input;
            let y: &mut [f32] = &mut scratch[n * 0..n * 256];
            if GEMM && trace.is_none() {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 1,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                const _: () = ::cnn_runtime::__private::core::assert!(
                    ::cnn_runtime::__private::ops::conv::packed_len(& G, 1) == 40,
                    "conv: packed layout"
                );
                match packed {
                    ::cnn_runtime::__private::core::option::Option::Some(packed) => {
                        ::cnn_runtime::__private::ops::conv::forward_packed(
                            &G,
                            1,
                            n,
                            x,
                            &packed[0..40],
                            ::cnn_runtime::__private::quant::Activation::Relu,
                            y,
                            col,
                        );
                    }
                    ::cnn_runtime::__private::core::option::Option::None => {
                        ::cnn_runtime::__private::ops::conv::forward_gemm_folded(
                            &G,
                            1,
                            n,
                            x,
                            &self.params[0..36],
                            ::cnn_runtime::__private::core::option::Option::Some(
                                &self.params[36..40],
                            ),
                            &::cnn_runtime::__private::ops::batchnorm::Fold {
                                running_mean: &self.buffers[0..4],
                                running_var: &self.buffers[4..8],
                                eps: 0.00001f32,
                                gamma: &self.params[40..44],
                                beta: &self.params[44..48],
                            },
                            ::cnn_runtime::__private::quant::Activation::Relu,
                            y,
                            col,
                        );
                    }
                }
            } else {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 1,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::forward_gemm(
                        &G,
                        n,
                        x,
                        &self.params[0..36],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[36..40],
                        ),
                        y,
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::forward(
                        &G,
                        n,
                        x,
                        &self.params[0..36],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[36..40],
                        ),
                        y,
                    );
                }
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(0, &scratch[n * 0..n * 256]);
        }
        if !(GEMM && trace.is_none()) {
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                ::cnn_runtime::__private::ops::batchnorm::forward_eval(
                    &g,
                    &self.buffers[0..4],
                    &self.buffers[4..8],
                    0.00001f32,
                    &self.params[40..44],
                    &self.params[44..48],
                    &mut scratch[n * 0..n * 256],
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(1, &scratch[n * 0..n * 256]);
        }
        if !(GEMM && trace.is_none()) {
            ::cnn_runtime::__private::ops::relu::forward(&mut scratch[n * 0..n * 256]);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(2, &scratch[n * 0..n * 256]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 0..n * 256,
                n * 256..n * 512,
            );
            let x: &[f32] = x;
            if GEMM && trace.is_none() {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                const _: () = ::cnn_runtime::__private::core::assert!(
                    ::cnn_runtime::__private::ops::conv::packed_len(& G, 1) == 148,
                    "conv: packed layout"
                );
                match packed {
                    ::cnn_runtime::__private::core::option::Option::Some(packed) => {
                        ::cnn_runtime::__private::ops::conv::forward_packed(
                            &G,
                            1,
                            n,
                            x,
                            &packed[40..188],
                            ::cnn_runtime::__private::quant::Activation::Relu,
                            y,
                            col,
                        );
                    }
                    ::cnn_runtime::__private::core::option::Option::None => {
                        ::cnn_runtime::__private::ops::conv::forward_gemm_folded(
                            &G,
                            1,
                            n,
                            x,
                            &self.params[48..192],
                            ::cnn_runtime::__private::core::option::Option::Some(
                                &self.params[192..196],
                            ),
                            &::cnn_runtime::__private::ops::batchnorm::Fold {
                                running_mean: &self.buffers[9..13],
                                running_var: &self.buffers[13..17],
                                eps: 0.00001f32,
                                gamma: &self.params[196..200],
                                beta: &self.params[200..204],
                            },
                            ::cnn_runtime::__private::quant::Activation::Relu,
                            y,
                            col,
                        );
                    }
                }
            } else {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::forward_gemm(
                        &G,
                        n,
                        x,
                        &self.params[48..192],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[192..196],
                        ),
                        y,
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::forward(
                        &G,
                        n,
                        x,
                        &self.params[48..192],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[192..196],
                        ),
                        y,
                    );
                }
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(3, &scratch[n * 256..n * 512]);
        }
        if !(GEMM && trace.is_none()) {
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                ::cnn_runtime::__private::ops::batchnorm::forward_eval(
                    &g,
                    &self.buffers[9..13],
                    &self.buffers[13..17],
                    0.00001f32,
                    &self.params[196..200],
                    &self.params[200..204],
                    &mut scratch[n * 256..n * 512],
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(4, &scratch[n * 256..n * 512]);
        }
        if !(GEMM && trace.is_none()) {
            ::cnn_runtime::__private::ops::relu::forward(&mut scratch[n * 256..n * 512]);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(5, &scratch[n * 256..n * 512]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 256..n * 512,
                n * 512..n * 768,
            );
            let x: &[f32] = x;
            if GEMM && trace.is_none() {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                const _: () = ::cnn_runtime::__private::core::assert!(
                    ::cnn_runtime::__private::ops::conv::packed_len(& G, 1) == 148,
                    "conv: packed layout"
                );
                match packed {
                    ::cnn_runtime::__private::core::option::Option::Some(packed) => {
                        ::cnn_runtime::__private::ops::conv::forward_packed(
                            &G,
                            1,
                            n,
                            x,
                            &packed[188..336],
                            ::cnn_runtime::__private::quant::Activation::None,
                            y,
                            col,
                        );
                    }
                    ::cnn_runtime::__private::core::option::Option::None => {
                        ::cnn_runtime::__private::ops::conv::forward_gemm_folded(
                            &G,
                            1,
                            n,
                            x,
                            &self.params[204..348],
                            ::cnn_runtime::__private::core::option::Option::Some(
                                &self.params[348..352],
                            ),
                            &::cnn_runtime::__private::ops::batchnorm::Fold {
                                running_mean: &self.buffers[18..22],
                                running_var: &self.buffers[22..26],
                                eps: 0.00001f32,
                                gamma: &self.params[352..356],
                                beta: &self.params[356..360],
                            },
                            ::cnn_runtime::__private::quant::Activation::None,
                            y,
                            col,
                        );
                    }
                }
            } else {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::forward_gemm(
                        &G,
                        n,
                        x,
                        &self.params[204..348],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[348..352],
                        ),
                        y,
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::forward(
                        &G,
                        n,
                        x,
                        &self.params[204..348],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[348..352],
                        ),
                        y,
                    );
                }
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(6, &scratch[n * 512..n * 768]);
        }
        if !(GEMM && trace.is_none()) {
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                ::cnn_runtime::__private::ops::batchnorm::forward_eval(
                    &g,
                    &self.buffers[18..22],
                    &self.buffers[22..26],
                    0.00001f32,
                    &self.params[352..356],
                    &self.params[356..360],
                    &mut scratch[n * 512..n * 768],
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(7, &scratch[n * 512..n * 768]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 0..n * 256,
                n * 512..n * 768,
            );
            let x: &[f32] = x;
            ::cnn_runtime::__private::ops::add::accumulate(x, y);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(19, &scratch[n * 512..n * 768]);
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut scratch[n * 512..n * 768]);
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(8, &scratch[n * 512..n * 768]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 512..n * 768,
                n * 0..n * 128,
            );
            let x: &[f32] = x;
            if GEMM && trace.is_none() {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 8,
                    kernel: (3, 3),
                    stride: (2, 2),
                    pad: (1, 1),
                };
                const _: () = ::cnn_runtime::__private::core::assert!(
                    ::cnn_runtime::__private::ops::conv::packed_len(& G, 1) == 296,
                    "conv: packed layout"
                );
                match packed {
                    ::cnn_runtime::__private::core::option::Option::Some(packed) => {
                        ::cnn_runtime::__private::ops::conv::forward_packed(
                            &G,
                            1,
                            n,
                            x,
                            &packed[336..632],
                            ::cnn_runtime::__private::quant::Activation::Relu,
                            y,
                            col,
                        );
                    }
                    ::cnn_runtime::__private::core::option::Option::None => {
                        ::cnn_runtime::__private::ops::conv::forward_gemm_folded(
                            &G,
                            1,
                            n,
                            x,
                            &self.params[360..648],
                            ::cnn_runtime::__private::core::option::Option::Some(
                                &self.params[648..656],
                            ),
                            &::cnn_runtime::__private::ops::batchnorm::Fold {
                                running_mean: &self.buffers[27..35],
                                running_var: &self.buffers[35..43],
                                eps: 0.00001f32,
                                gamma: &self.params[656..664],
                                beta: &self.params[664..672],
                            },
                            ::cnn_runtime::__private::quant::Activation::Relu,
                            y,
                            col,
                        );
                    }
                }
            } else {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 8,
                    kernel: (3, 3),
                    stride: (2, 2),
                    pad: (1, 1),
                };
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::forward_gemm(
                        &G,
                        n,
                        x,
                        &self.params[360..648],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[648..656],
                        ),
                        y,
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::forward(
                        &G,
                        n,
                        x,
                        &self.params[360..648],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[648..656],
                        ),
                        y,
                    );
                }
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(9, &scratch[n * 0..n * 128]);
        }
        if !(GEMM && trace.is_none()) {
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 8,
                    s: 16,
                };
                ::cnn_runtime::__private::ops::batchnorm::forward_eval(
                    &g,
                    &self.buffers[27..35],
                    &self.buffers[35..43],
                    0.00001f32,
                    &self.params[656..664],
                    &self.params[664..672],
                    &mut scratch[n * 0..n * 128],
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(10, &scratch[n * 0..n * 128]);
        }
        if !(GEMM && trace.is_none()) {
            ::cnn_runtime::__private::ops::relu::forward(&mut scratch[n * 0..n * 128]);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(11, &scratch[n * 0..n * 128]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 0..n * 128,
                n * 128..n * 256,
            );
            let x: &[f32] = x;
            if GEMM && trace.is_none() {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 8,
                    in_h: 4,
                    in_w: 4,
                    out_channels: 8,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                const _: () = ::cnn_runtime::__private::core::assert!(
                    ::cnn_runtime::__private::ops::conv::packed_len(& G, 1) == 584,
                    "conv: packed layout"
                );
                match packed {
                    ::cnn_runtime::__private::core::option::Option::Some(packed) => {
                        ::cnn_runtime::__private::ops::conv::forward_packed(
                            &G,
                            1,
                            n,
                            x,
                            &packed[632..1216],
                            ::cnn_runtime::__private::quant::Activation::None,
                            y,
                            col,
                        );
                    }
                    ::cnn_runtime::__private::core::option::Option::None => {
                        ::cnn_runtime::__private::ops::conv::forward_gemm_folded(
                            &G,
                            1,
                            n,
                            x,
                            &self.params[672..1248],
                            ::cnn_runtime::__private::core::option::Option::Some(
                                &self.params[1248..1256],
                            ),
                            &::cnn_runtime::__private::ops::batchnorm::Fold {
                                running_mean: &self.buffers[44..52],
                                running_var: &self.buffers[52..60],
                                eps: 0.00001f32,
                                gamma: &self.params[1256..1264],
                                beta: &self.params[1264..1272],
                            },
                            ::cnn_runtime::__private::quant::Activation::None,
                            y,
                            col,
                        );
                    }
                }
            } else {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 8,
                    in_h: 4,
                    in_w: 4,
                    out_channels: 8,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::forward_gemm(
                        &G,
                        n,
                        x,
                        &self.params[672..1248],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[1248..1256],
                        ),
                        y,
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::forward(
                        &G,
                        n,
                        x,
                        &self.params[672..1248],
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &self.params[1248..1256],
                        ),
                        y,
                    );
                }
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(12, &scratch[n * 128..n * 256]);
        }
        if !(GEMM && trace.is_none()) {
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 8,
                    s: 16,
                };
                ::cnn_runtime::__private::ops::batchnorm::forward_eval(
                    &g,
                    &self.buffers[44..52],
                    &self.buffers[52..60],
                    0.00001f32,
                    &self.params[1256..1264],
                    &self.params[1264..1272],
                    &mut scratch[n * 128..n * 256],
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(13, &scratch[n * 128..n * 256]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 512..n * 768,
                n * 0..n * 128,
            );
            let x: &[f32] = x;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 8,
                kernel: (1, 1),
                stride: (2, 2),
                pad: (0, 0),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[1272..1304],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1304..1312],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[1272..1304],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1304..1312],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(14, &scratch[n * 0..n * 128]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 0..n * 128,
                n * 128..n * 256,
            );
            let x: &[f32] = x;
            ::cnn_runtime::__private::ops::add::accumulate(x, y);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(20, &scratch[n * 128..n * 256]);
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut scratch[n * 128..n * 256]);
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(15, &scratch[n * 128..n * 256]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 128..n * 256,
                n * 10..n * 18,
            );
            let x: &[f32] = x;
            ::cnn_runtime::__private::ops::global_avgpool::forward(8, 16, n, x, y);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(16, &scratch[n * 10..n * 18]);
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(17, &scratch[n * 10..n * 18]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                scratch,
                n * 10..n * 18,
                n * 0..n * 10,
            );
            let x: &[f32] = x;
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 8,
                out_features: 10,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[1312..1392],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1392..1402],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[1312..1392],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1392..1402],
                    ),
                    y,
                );
            }
        }
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace
            .as_mut()
        {
            visit(18, &scratch[n * 0..n * 10]);
        }
        output.copy_from_slice(&scratch[n * 0..n * 10]);
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
        sync: &dyn ::cnn_runtime::__private::Exchange,
    ) -> f32 {
        ::cnn_runtime::__private::core::assert_eq!(
            input.len(), n * 64, "{}: input has {} values, expected {} ({} x {})", "Res",
            input.len(), n * 64, n, 64
        );
        ::cnn_runtime::__private::core::assert_eq!(
            grads.len(), 1402, "{}: gradient buffer has {} values, expected {}", "Res",
            grads.len(), 1402
        );
        let col_len = if GEMM { Self::COL_LEN } else { 0 };
        ::cnn_runtime::__private::core::assert!(
            workspace.len() >= col_len + 84 + n * 2962, "{}: workspace too small", "Res"
        );
        let _ = seed;
        grads.fill(0.0);
        let (col, rest) = workspace.split_at_mut(col_len);
        let _ = &col;
        let (stats, rest) = rest.split_at_mut(84);
        let (a0, rest) = rest.split_at_mut(n * 256);
        let (a1, rest) = rest.split_at_mut(n * 256);
        let (a2, rest) = rest.split_at_mut(n * 256);
        let (a3, rest) = rest.split_at_mut(n * 256);
        let (a4, rest) = rest.split_at_mut(n * 256);
        let (a5, rest) = rest.split_at_mut(n * 256);
        let (a6, rest) = rest.split_at_mut(n * 128);
        let (a7, rest) = rest.split_at_mut(n * 128);
        let (a8, rest) = rest.split_at_mut(n * 128);
        let (a9, rest) = rest.split_at_mut(n * 128);
        let (a10, rest) = rest.split_at_mut(n * 128);
        let (a11, rest) = rest.split_at_mut(n * 8);
        let (a12, rest) = rest.split_at_mut(n * 10);
        let (gr, _) = rest.split_at_mut(n * 768);
        {
            let x: &[f32] = &*input;
            let y: &mut [f32] = &mut *a0;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 1,
                in_h: 8,
                in_w: 8,
                out_channels: 4,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[0..36],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[36..40],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[0..36],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[36..40],
                    ),
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a0;
            let y: &mut [f32] = &mut *a1;
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                let (mean, rest) = stats[0..12].split_at_mut(4);
                let (var, invstd) = rest.split_at_mut(4);
                let mut sums = [0.0f64; 5];
                ::cnn_runtime::__private::ops::batchnorm::sum(&g, x, &mut sums);
                sync.sum(&mut sums);
                let count = sums[0];
                ::cnn_runtime::__private::ops::batchnorm::finish_mean(
                    count,
                    &sums[1..],
                    mean,
                );
                let squares = &mut sums[1..];
                ::cnn_runtime::__private::ops::batchnorm::sum_squares(
                    &g,
                    x,
                    mean,
                    squares,
                );
                sync.sum(squares);
                ::cnn_runtime::__private::ops::batchnorm::finish_var(
                    count,
                    0.00001f32,
                    squares,
                    var,
                    invstd,
                );
                ::cnn_runtime::__private::ops::batchnorm::normalize(
                    &g,
                    x,
                    mean,
                    invstd,
                    &self.params[40..44],
                    &self.params[44..48],
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut *a1);
        {
            let x: &[f32] = &*a1;
            let y: &mut [f32] = &mut *a2;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 4,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[48..192],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[192..196],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[48..192],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[192..196],
                    ),
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a2;
            let y: &mut [f32] = &mut *a3;
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                let (mean, rest) = stats[12..24].split_at_mut(4);
                let (var, invstd) = rest.split_at_mut(4);
                let mut sums = [0.0f64; 5];
                ::cnn_runtime::__private::ops::batchnorm::sum(&g, x, &mut sums);
                sync.sum(&mut sums);
                let count = sums[0];
                ::cnn_runtime::__private::ops::batchnorm::finish_mean(
                    count,
                    &sums[1..],
                    mean,
                );
                let squares = &mut sums[1..];
                ::cnn_runtime::__private::ops::batchnorm::sum_squares(
                    &g,
                    x,
                    mean,
                    squares,
                );
                sync.sum(squares);
                ::cnn_runtime::__private::ops::batchnorm::finish_var(
                    count,
                    0.00001f32,
                    squares,
                    var,
                    invstd,
                );
                ::cnn_runtime::__private::ops::batchnorm::normalize(
                    &g,
                    x,
                    mean,
                    invstd,
                    &self.params[196..200],
                    &self.params[200..204],
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut *a3);
        {
            let x: &[f32] = &*a3;
            let y: &mut [f32] = &mut *a4;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 4,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[204..348],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[348..352],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[204..348],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[348..352],
                    ),
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a4;
            let y: &mut [f32] = &mut *a5;
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                let (mean, rest) = stats[24..36].split_at_mut(4);
                let (var, invstd) = rest.split_at_mut(4);
                let mut sums = [0.0f64; 5];
                ::cnn_runtime::__private::ops::batchnorm::sum(&g, x, &mut sums);
                sync.sum(&mut sums);
                let count = sums[0];
                ::cnn_runtime::__private::ops::batchnorm::finish_mean(
                    count,
                    &sums[1..],
                    mean,
                );
                let squares = &mut sums[1..];
                ::cnn_runtime::__private::ops::batchnorm::sum_squares(
                    &g,
                    x,
                    mean,
                    squares,
                );
                sync.sum(squares);
                ::cnn_runtime::__private::ops::batchnorm::finish_var(
                    count,
                    0.00001f32,
                    squares,
                    var,
                    invstd,
                );
                ::cnn_runtime::__private::ops::batchnorm::normalize(
                    &g,
                    x,
                    mean,
                    invstd,
                    &self.params[352..356],
                    &self.params[356..360],
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a1;
            let y: &mut [f32] = &mut *a5;
            ::cnn_runtime::__private::ops::add::accumulate(x, y);
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut *a5);
        {
            let x: &[f32] = &*a5;
            let y: &mut [f32] = &mut *a6;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 8,
                kernel: (3, 3),
                stride: (2, 2),
                pad: (1, 1),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[360..648],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[648..656],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[360..648],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[648..656],
                    ),
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a6;
            let y: &mut [f32] = &mut *a7;
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 8,
                    s: 16,
                };
                let (mean, rest) = stats[36..60].split_at_mut(8);
                let (var, invstd) = rest.split_at_mut(8);
                let mut sums = [0.0f64; 9];
                ::cnn_runtime::__private::ops::batchnorm::sum(&g, x, &mut sums);
                sync.sum(&mut sums);
                let count = sums[0];
                ::cnn_runtime::__private::ops::batchnorm::finish_mean(
                    count,
                    &sums[1..],
                    mean,
                );
                let squares = &mut sums[1..];
                ::cnn_runtime::__private::ops::batchnorm::sum_squares(
                    &g,
                    x,
                    mean,
                    squares,
                );
                sync.sum(squares);
                ::cnn_runtime::__private::ops::batchnorm::finish_var(
                    count,
                    0.00001f32,
                    squares,
                    var,
                    invstd,
                );
                ::cnn_runtime::__private::ops::batchnorm::normalize(
                    &g,
                    x,
                    mean,
                    invstd,
                    &self.params[656..664],
                    &self.params[664..672],
                    y,
                );
            }
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut *a7);
        {
            let x: &[f32] = &*a7;
            let y: &mut [f32] = &mut *a8;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 8,
                in_h: 4,
                in_w: 4,
                out_channels: 8,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[672..1248],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1248..1256],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[672..1248],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1248..1256],
                    ),
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a8;
            let y: &mut [f32] = &mut *a9;
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 8,
                    s: 16,
                };
                let (mean, rest) = stats[60..84].split_at_mut(8);
                let (var, invstd) = rest.split_at_mut(8);
                let mut sums = [0.0f64; 9];
                ::cnn_runtime::__private::ops::batchnorm::sum(&g, x, &mut sums);
                sync.sum(&mut sums);
                let count = sums[0];
                ::cnn_runtime::__private::ops::batchnorm::finish_mean(
                    count,
                    &sums[1..],
                    mean,
                );
                let squares = &mut sums[1..];
                ::cnn_runtime::__private::ops::batchnorm::sum_squares(
                    &g,
                    x,
                    mean,
                    squares,
                );
                sync.sum(squares);
                ::cnn_runtime::__private::ops::batchnorm::finish_var(
                    count,
                    0.00001f32,
                    squares,
                    var,
                    invstd,
                );
                ::cnn_runtime::__private::ops::batchnorm::normalize(
                    &g,
                    x,
                    mean,
                    invstd,
                    &self.params[1256..1264],
                    &self.params[1264..1272],
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a5;
            let y: &mut [f32] = &mut *a10;
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 8,
                kernel: (1, 1),
                stride: (2, 2),
                pad: (0, 0),
            };
            if GEMM {
                ::cnn_runtime::__private::ops::conv::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[1272..1304],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1304..1312],
                    ),
                    y,
                    col,
                );
            } else {
                ::cnn_runtime::__private::ops::conv::forward(
                    &G,
                    n,
                    x,
                    &self.params[1272..1304],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1304..1312],
                    ),
                    y,
                );
            }
        }
        {
            let x: &[f32] = &*a10;
            let y: &mut [f32] = &mut *a9;
            ::cnn_runtime::__private::ops::add::accumulate(x, y);
        }
        ::cnn_runtime::__private::ops::relu::forward(&mut *a9);
        {
            let x: &[f32] = &*a9;
            let y: &mut [f32] = &mut *a11;
            ::cnn_runtime::__private::ops::global_avgpool::forward(8, 16, n, x, y);
        }
        {
            let x: &[f32] = &*a11;
            let y: &mut [f32] = &mut *a12;
            const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                in_features: 8,
                out_features: 10,
            };
            if GEMM {
                ::cnn_runtime::__private::ops::linear::forward_gemm(
                    &G,
                    n,
                    x,
                    &self.params[1312..1392],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1392..1402],
                    ),
                    y,
                );
            } else {
                ::cnn_runtime::__private::ops::linear::forward(
                    &G,
                    n,
                    x,
                    &self.params[1312..1392],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &self.params[1392..1402],
                    ),
                    y,
                );
            }
        }
        let loss = {
            let dy: &mut [f32] = &mut gr[n * 0..n * 10];
            match target {
                ::cnn_runtime::__private::Target::Classes(labels) => {
                    ::cnn_runtime::__private::core::assert_eq!(
                        labels.len(), n, "expected {} labels, found {}", n, labels.len()
                    );
                    ::cnn_runtime::__private::ops::cross_entropy::forward_backward(
                        n,
                        10,
                        &*a12,
                        labels,
                        dy,
                    )
                }
                ::cnn_runtime::__private::Target::Values(values) => {
                    ::cnn_runtime::__private::core::assert_eq!(
                        values.len(), n * 10, "expected {} target values, found {}", n *
                        10, values.len()
                    );
                    ::cnn_runtime::__private::ops::mse::forward_backward(
                        &*a12,
                        values,
                        dy,
                    )
                }
            }
        };
        let mut total = [n as f64];
        sync.sum(&mut total);
        if total[0] != n as f64 {
            let scale = (n as f64 / total[0]) as f32;
            for g in gr[n * 0..n * 10].iter_mut() {
                *g *= scale;
            }
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 0..n * 10,
                n * 10..n * 18,
            );
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::linear::Linear = ::cnn_runtime::__private::ops::linear::Linear {
                    in_features: 8,
                    out_features: 10,
                };
                let (dw, db) = grads[1312..1402].split_at_mut(80);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 10];
                if GEMM {
                    ::cnn_runtime::__private::ops::linear::backward_gemm(
                        &G,
                        n,
                        &*a11,
                        &self.params[1312..1392],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 8],
                        ),
                    );
                } else {
                    ::cnn_runtime::__private::ops::linear::backward(
                        &G,
                        n,
                        &*a11,
                        &self.params[1312..1392],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 8],
                        ),
                    );
                }
            }
        }
        {
            let dy: &mut [f32] = &mut gr[n * 10..n * 18];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 10..n * 18,
                n * 256..n * 384,
            );
            let _ = (&dy, &dx);
            ::cnn_runtime::__private::ops::global_avgpool::backward(
                8,
                16,
                n,
                &dy[..n * 8],
                &mut dx[..n * 128],
            );
        }
        {
            let dy: &mut [f32] = &mut gr[n * 256..n * 384];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
            ::cnn_runtime::__private::ops::relu::backward(&*a9, &mut dy[..n * 128]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 256..n * 384,
                n * 384..n * 512,
            );
            let x: &[f32] = x;
            let (dy, dx) = (x, y);
            dx.copy_from_slice(dy);
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 384..n * 512,
                n * 0..n * 256,
            );
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 8,
                    kernel: (1, 1),
                    stride: (2, 2),
                    pad: (0, 0),
                };
                let (dw, db) = grads[1272..1312].split_at_mut(32);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 128];
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::backward_gemm(
                        &G,
                        n,
                        &*a5,
                        &self.params[1272..1304],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::backward(
                        &G,
                        n,
                        &*a5,
                        &self.params[1272..1304],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                    );
                }
            }
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 256..n * 384,
                n * 384..n * 512,
            );
            let _ = (&dy, &dx);
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 8,
                    s: 16,
                };
                let (mean, rest) = stats[60..84].split_at(8);
                let invstd = &rest[8..];
                let dy: &[f32] = &dy[..n * 128];
                let mut sums = [0.0f64; 17];
                sums[0] = (n * 16) as f64;
                ::cnn_runtime::__private::ops::batchnorm::grad_sums(
                    &g,
                    &*a8,
                    mean,
                    invstd,
                    dy,
                    &mut sums[1..],
                );
                let (dw, db) = grads[1256..1272].split_at_mut(8);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                ::cnn_runtime::__private::ops::batchnorm::param_grads(
                    8,
                    &sums[1..],
                    dw,
                    db.unwrap_or_default(),
                );
                sync.sum(&mut sums);
                ::cnn_runtime::__private::ops::batchnorm::backward(
                    &g,
                    &*a8,
                    mean,
                    invstd,
                    &self.params[1256..1264],
                    dy,
                    sums[0],
                    &sums[1..],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut dx[..n * 128],
                    ),
                );
            }
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 384..n * 512,
                n * 256..n * 384,
            );
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 8,
                    in_h: 4,
                    in_w: 4,
                    out_channels: 8,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                let (dw, db) = grads[672..1256].split_at_mut(576);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 128];
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::backward_gemm(
                        &G,
                        n,
                        &*a7,
                        &self.params[672..1248],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 128],
                        ),
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::backward(
                        &G,
                        n,
                        &*a7,
                        &self.params[672..1248],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 128],
                        ),
                    );
                }
            }
        }
        {
            let dy: &mut [f32] = &mut gr[n * 256..n * 384];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
            ::cnn_runtime::__private::ops::relu::backward(&*a7, &mut dy[..n * 128]);
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 256..n * 384,
                n * 512..n * 640,
            );
            let _ = (&dy, &dx);
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 8,
                    s: 16,
                };
                let (mean, rest) = stats[36..60].split_at(8);
                let invstd = &rest[8..];
                let dy: &[f32] = &dy[..n * 128];
                let mut sums = [0.0f64; 17];
                sums[0] = (n * 16) as f64;
                ::cnn_runtime::__private::ops::batchnorm::grad_sums(
                    &g,
                    &*a6,
                    mean,
                    invstd,
                    dy,
                    &mut sums[1..],
                );
                let (dw, db) = grads[656..672].split_at_mut(8);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                ::cnn_runtime::__private::ops::batchnorm::param_grads(
                    8,
                    &sums[1..],
                    dw,
                    db.unwrap_or_default(),
                );
                sync.sum(&mut sums);
                ::cnn_runtime::__private::ops::batchnorm::backward(
                    &g,
                    &*a6,
                    mean,
                    invstd,
                    &self.params[656..664],
                    dy,
                    sums[0],
                    &sums[1..],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut dx[..n * 128],
                    ),
                );
            }
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 512..n * 640,
                n * 256..n * 512,
            );
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 8,
                    kernel: (3, 3),
                    stride: (2, 2),
                    pad: (1, 1),
                };
                let (dw, db) = grads[360..656].split_at_mut(288);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 128];
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::backward_gemm(
                        &G,
                        n,
                        &*a5,
                        &self.params[360..648],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::backward(
                        &G,
                        n,
                        &*a5,
                        &self.params[360..648],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                    );
                }
            }
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 256..n * 512,
                n * 0..n * 256,
            );
            let x: &[f32] = x;
            ::cnn_runtime::__private::ops::add::accumulate(x, y);
        }
        {
            let dy: &mut [f32] = &mut gr[n * 0..n * 256];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
            ::cnn_runtime::__private::ops::relu::backward(&*a5, &mut dy[..n * 256]);
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 0..n * 256,
                n * 256..n * 512,
            );
            let x: &[f32] = x;
            let (dy, dx) = (x, y);
            dx.copy_from_slice(dy);
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 0..n * 256,
                n * 512..n * 768,
            );
            let _ = (&dy, &dx);
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                let (mean, rest) = stats[24..36].split_at(4);
                let invstd = &rest[4..];
                let dy: &[f32] = &dy[..n * 256];
                let mut sums = [0.0f64; 9];
                sums[0] = (n * 64) as f64;
                ::cnn_runtime::__private::ops::batchnorm::grad_sums(
                    &g,
                    &*a4,
                    mean,
                    invstd,
                    dy,
                    &mut sums[1..],
                );
                let (dw, db) = grads[352..360].split_at_mut(4);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                ::cnn_runtime::__private::ops::batchnorm::param_grads(
                    4,
                    &sums[1..],
                    dw,
                    db.unwrap_or_default(),
                );
                sync.sum(&mut sums);
                ::cnn_runtime::__private::ops::batchnorm::backward(
                    &g,
                    &*a4,
                    mean,
                    invstd,
                    &self.params[352..356],
                    dy,
                    sums[0],
                    &sums[1..],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut dx[..n * 256],
                    ),
                );
            }
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 512..n * 768,
                n * 0..n * 256,
            );
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                let (dw, db) = grads[204..352].split_at_mut(144);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 256];
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::backward_gemm(
                        &G,
                        n,
                        &*a3,
                        &self.params[204..348],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::backward(
                        &G,
                        n,
                        &*a3,
                        &self.params[204..348],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                    );
                }
            }
        }
        {
            let dy: &mut [f32] = &mut gr[n * 0..n * 256];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
            ::cnn_runtime::__private::ops::relu::backward(&*a3, &mut dy[..n * 256]);
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 0..n * 256,
                n * 512..n * 768,
            );
            let _ = (&dy, &dx);
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                let (mean, rest) = stats[12..24].split_at(4);
                let invstd = &rest[4..];
                let dy: &[f32] = &dy[..n * 256];
                let mut sums = [0.0f64; 9];
                sums[0] = (n * 64) as f64;
                ::cnn_runtime::__private::ops::batchnorm::grad_sums(
                    &g,
                    &*a2,
                    mean,
                    invstd,
                    dy,
                    &mut sums[1..],
                );
                let (dw, db) = grads[196..204].split_at_mut(4);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                ::cnn_runtime::__private::ops::batchnorm::param_grads(
                    4,
                    &sums[1..],
                    dw,
                    db.unwrap_or_default(),
                );
                sync.sum(&mut sums);
                ::cnn_runtime::__private::ops::batchnorm::backward(
                    &g,
                    &*a2,
                    mean,
                    invstd,
                    &self.params[196..200],
                    dy,
                    sums[0],
                    &sums[1..],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut dx[..n * 256],
                    ),
                );
            }
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 512..n * 768,
                n * 0..n * 256,
            );
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 4,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                let (dw, db) = grads[48..196].split_at_mut(144);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 256];
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::backward_gemm(
                        &G,
                        n,
                        &*a1,
                        &self.params[48..192],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                        col,
                    );
                } else {
                    ::cnn_runtime::__private::ops::conv::backward(
                        &G,
                        n,
                        &*a1,
                        &self.params[48..192],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::Some(
                            &mut dx[..n * 256],
                        ),
                    );
                }
            }
        }
        {
            let (x, y) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 0..n * 256,
                n * 256..n * 512,
            );
            let x: &[f32] = x;
            ::cnn_runtime::__private::ops::add::accumulate(x, y);
        }
        {
            let dy: &mut [f32] = &mut gr[n * 256..n * 512];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
            ::cnn_runtime::__private::ops::relu::backward(&*a1, &mut dy[..n * 256]);
        }
        {
            let (dy, dx) = ::cnn_runtime::__private::arena_pair(
                gr,
                n * 256..n * 512,
                n * 0..n * 256,
            );
            let _ = (&dy, &dx);
            {
                let g = ::cnn_runtime::__private::ops::batchnorm::Geometry {
                    n,
                    c: 4,
                    s: 64,
                };
                let (mean, rest) = stats[0..12].split_at(4);
                let invstd = &rest[4..];
                let dy: &[f32] = &dy[..n * 256];
                let mut sums = [0.0f64; 9];
                sums[0] = (n * 64) as f64;
                ::cnn_runtime::__private::ops::batchnorm::grad_sums(
                    &g,
                    &*a0,
                    mean,
                    invstd,
                    dy,
                    &mut sums[1..],
                );
                let (dw, db) = grads[40..48].split_at_mut(4);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                ::cnn_runtime::__private::ops::batchnorm::param_grads(
                    4,
                    &sums[1..],
                    dw,
                    db.unwrap_or_default(),
                );
                sync.sum(&mut sums);
                ::cnn_runtime::__private::ops::batchnorm::backward(
                    &g,
                    &*a0,
                    mean,
                    invstd,
                    &self.params[40..44],
                    dy,
                    sums[0],
                    &sums[1..],
                    ::cnn_runtime::__private::core::option::Option::Some(
                        &mut dx[..n * 256],
                    ),
                );
            }
        }
        {
            let dy: &mut [f32] = &mut gr[n * 0..n * 256];
            let dx: &mut [f32] = &mut [];
            let _ = (&dy, &dx);
            {
                const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                    in_channels: 1,
                    in_h: 8,
                    in_w: 8,
                    out_channels: 4,
                    kernel: (3, 3),
                    stride: (1, 1),
                    pad: (1, 1),
                };
                let (dw, db) = grads[0..40].split_at_mut(36);
                let db = ::cnn_runtime::__private::core::option::Option::Some(db);
                let dy: &[f32] = &dy[..n * 256];
                if GEMM {
                    ::cnn_runtime::__private::ops::conv::backward_gemm(
                        &G,
                        n,
                        &*input,
                        &self.params[0..36],
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
                        &self.params[0..36],
                        dy,
                        dw,
                        db,
                        ::cnn_runtime::__private::core::option::Option::None,
                    );
                }
            }
        }
        let _ = &gr;
        loss
    }
}
#[allow(clippy::all)]
impl ::cnn_runtime::__private::Network for Res {
    const NAME: &'static str = "Res";
    const INPUT_SHAPE: [usize; 3] = Self::INPUT_SHAPE;
    const INPUT_LEN: usize = 64;
    const OUTPUT_LEN: usize = 10;
    const PARAM_COUNT: usize = 1402;
    const MACS: usize = 36176;
    const TENSORS: &'static [::cnn_runtime::__private::TensorInfo] = Self::TENSORS;
    const LAYERS: &'static [::cnn_runtime::__private::LayerInfo] = Self::LAYERS;
    const INFER_SCRATCH_LEN: usize = 768;
    const TRAIN_SCRATCH_LEN: usize = 3046;
    const PACKED_LEN: usize = 1216;
    type Grads = ResGrads;
    const BUFFERS: &'static [::cnn_runtime::__private::TensorInfo] = Self::BUFFERS;
    const BATCH_STATS: bool = true;
    fn buffers(&self) -> &[f32] {
        &self.buffers
    }
    fn buffers_mut(&mut self) -> &mut [f32] {
        &mut self.buffers
    }
    fn loss_and_grad_shared(
        &self,
        n: usize,
        input: &[f32],
        target: ::cnn_runtime::__private::Target<'_>,
        grads: &mut [f32],
        workspace: &mut [f32],
        seed: u64,
        exchange: &dyn ::cnn_runtime::__private::Exchange,
    ) -> f32 {
        self.__loss_and_grad::<true>(n, input, target, grads, workspace, seed, exchange)
    }
    fn batch_stats(workspace: &[f32]) -> &[f32] {
        &workspace[Self::COL_LEN..Self::COL_LEN + 84]
    }
    fn update_running_stats(&mut self, stats: &[f32], n: usize) {
        self.__update(stats, n)
    }
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
        Self::COL_LEN + n * 768
    }
    fn train_workspace_len(n: usize) -> usize {
        Self::COL_LEN + 84 + n * 2962
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
            packed.len(), 1216,
            "{}: packed weights have {} values, expected PACKED_LEN = {}", "Res", packed
            .len(), 1216
        );
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 1,
                in_h: 8,
                in_w: 8,
                out_channels: 4,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            ::cnn_runtime::__private::ops::conv::pack_folded(
                &G,
                1,
                &self.params[0..36],
                ::cnn_runtime::__private::core::option::Option::Some(
                    &self.params[36..40],
                ),
                &::cnn_runtime::__private::ops::batchnorm::Fold {
                    running_mean: &self.buffers[0..4],
                    running_var: &self.buffers[4..8],
                    eps: 0.00001f32,
                    gamma: &self.params[40..44],
                    beta: &self.params[44..48],
                },
                &mut packed[0..40],
            );
        }
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 4,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            ::cnn_runtime::__private::ops::conv::pack_folded(
                &G,
                1,
                &self.params[48..192],
                ::cnn_runtime::__private::core::option::Option::Some(
                    &self.params[192..196],
                ),
                &::cnn_runtime::__private::ops::batchnorm::Fold {
                    running_mean: &self.buffers[9..13],
                    running_var: &self.buffers[13..17],
                    eps: 0.00001f32,
                    gamma: &self.params[196..200],
                    beta: &self.params[200..204],
                },
                &mut packed[40..188],
            );
        }
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 4,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            ::cnn_runtime::__private::ops::conv::pack_folded(
                &G,
                1,
                &self.params[204..348],
                ::cnn_runtime::__private::core::option::Option::Some(
                    &self.params[348..352],
                ),
                &::cnn_runtime::__private::ops::batchnorm::Fold {
                    running_mean: &self.buffers[18..22],
                    running_var: &self.buffers[22..26],
                    eps: 0.00001f32,
                    gamma: &self.params[352..356],
                    beta: &self.params[356..360],
                },
                &mut packed[188..336],
            );
        }
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 4,
                in_h: 8,
                in_w: 8,
                out_channels: 8,
                kernel: (3, 3),
                stride: (2, 2),
                pad: (1, 1),
            };
            ::cnn_runtime::__private::ops::conv::pack_folded(
                &G,
                1,
                &self.params[360..648],
                ::cnn_runtime::__private::core::option::Option::Some(
                    &self.params[648..656],
                ),
                &::cnn_runtime::__private::ops::batchnorm::Fold {
                    running_mean: &self.buffers[27..35],
                    running_var: &self.buffers[35..43],
                    eps: 0.00001f32,
                    gamma: &self.params[656..664],
                    beta: &self.params[664..672],
                },
                &mut packed[336..632],
            );
        }
        {
            const G: ::cnn_runtime::__private::ops::conv::Conv2d = ::cnn_runtime::__private::ops::conv::Conv2d {
                in_channels: 8,
                in_h: 4,
                in_w: 4,
                out_channels: 8,
                kernel: (3, 3),
                stride: (1, 1),
                pad: (1, 1),
            };
            ::cnn_runtime::__private::ops::conv::pack_folded(
                &G,
                1,
                &self.params[672..1248],
                ::cnn_runtime::__private::core::option::Option::Some(
                    &self.params[1248..1256],
                ),
                &::cnn_runtime::__private::ops::batchnorm::Fold {
                    running_mean: &self.buffers[44..52],
                    running_var: &self.buffers[52..60],
                    eps: 0.00001f32,
                    gamma: &self.params[1256..1264],
                    beta: &self.params[1264..1272],
                },
                &mut packed[632..1216],
            );
        }
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
            packed.len(), 1216,
            "{}: packed weights have {} values, expected PACKED_LEN = {}", "Res", packed
            .len(), 1216
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
        let start = Self::COL_LEN + 84 + n * 2184;
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
        self.__loss_and_grad::<
                true,
            >(n, input, target, grads, workspace, seed, &::cnn_runtime::__private::Alone)
    }
}
impl ::cnn_runtime::__private::core::fmt::Debug for Res {
    fn fmt(
        &self,
        f: &mut ::cnn_runtime::__private::core::fmt::Formatter<'_>,
    ) -> ::cnn_runtime::__private::core::fmt::Result {
        f.debug_struct("Res").field("params", &1402).finish_non_exhaustive()
    }
}
#[allow(dead_code, clippy::all)]
impl ResGrads {
    /// All gradients zero.
    pub const fn zeroed() -> Self {
        Self { data: [0.0; 1402] }
    }
    /// The flat gradient array, in the parameters' layout.
    pub const fn as_array(&self) -> &[f32; 1402] {
        &self.data
    }
    /// `(key, shape, values)` of every gradient tensor.
    pub fn tensors(
        &self,
    ) -> impl ::cnn_runtime::__private::core::iter::Iterator<
        Item = (&'static str, &'static [usize], &[f32]),
    > + '_ {
        ::cnn_runtime::__private::network::tensors(Res::TENSORS, &self.data)
    }
    /// The gradient of the parameter with this `state_dict` key.
    pub fn tensor(
        &self,
        key: &str,
    ) -> ::cnn_runtime::__private::core::option::Option<&[f32]> {
        ::cnn_runtime::__private::network::tensor(Res::TENSORS, &self.data, key)
    }
}
impl ::cnn_runtime::__private::Gradients for ResGrads {
    const TENSORS: &'static [::cnn_runtime::__private::TensorInfo] = Res::TENSORS;
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
impl ::cnn_runtime::__private::core::fmt::Debug for ResGrads {
    fn fmt(
        &self,
        f: &mut ::cnn_runtime::__private::core::fmt::Formatter<'_>,
    ) -> ::cnn_runtime::__private::core::fmt::Result {
        f.debug_struct(stringify!(ResGrads))
            .field("params", &1402)
            .finish_non_exhaustive()
    }
}
::cnn_runtime::__private::impl_std_methods!(Res, ResGrads);
