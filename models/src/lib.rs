//! Ready networks declared with `cnn_net!`, and the pieces of the `cnn`
//! command-line tool.

use cnn_runtime::cnn_net;

cnn_net! {
    /// LeNet-5 as in Dive into Deep Learning, section 7.6: sigmoid
    /// activations and average pooling.
    pub LeNet, LeNetInt8: [1, 28, 28] =>
        conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
        conv(6, 16, 5) sigmoid avgpool(2)
        flatten
        linear(400, 120) sigmoid
        linear(120, 84) sigmoid
        linear(84, 10)
}

cnn_net! {
    /// LeNet with the modern choices: ReLU activations and max pooling.
    pub LeNetRelu, LeNetReluInt8: [1, 28, 28] =>
        conv(1, 6, 5, pad = 2) relu maxpool(2)
        conv(6, 16, 5) relu maxpool(2)
        flatten
        linear(400, 120) relu
        linear(120, 84) relu
        linear(84, 10)
}

cnn_net! {
    /// Network in Network (Lin et al., 2013) as in Dive into Deep Learning,
    /// section 8.3, sized for 28x28 inputs: NiN blocks of a convolution and
    /// two 1x1 convolutions, each followed by ReLU, max pooling with kernel 3
    /// and stride 2 between blocks, dropout before the last block, which
    /// yields one channel per class; global average pooling replaces the
    /// fully connected layers. Unlike D2L, the last 1x1 convolution has no
    /// ReLU: with it the class scores cannot go below 0 and a class channel
    /// that dies early stays dead (seed 1 stalled at 0.78 test accuracy).
    /// With its recipe (Adam, lr 0.002, 15 epochs) it reached 0.883 (seed 0)
    /// and 0.892 (seed 1) test accuracy on Fashion-MNIST.
    pub Nin, NinInt8: [1, 28, 28] =>
        conv(1, 16, 5, pad = 2) relu conv(16, 16, 1) relu conv(16, 16, 1) relu
        maxpool(3, stride = 2)
        conv(16, 32, 3, pad = 1) relu conv(32, 32, 1) relu conv(32, 32, 1) relu
        maxpool(3, stride = 2)
        conv(32, 64, 3, pad = 1) relu conv(64, 64, 1) relu conv(64, 64, 1) relu
        maxpool(3, stride = 2)
        dropout(0.5)
        conv(64, 10, 3, pad = 1) relu conv(10, 10, 1) relu conv(10, 10, 1)
        global_avgpool flatten
}

cnn_net! {
    /// VGG (Simonyan and Zisserman, 2014) as in Dive into Deep Learning,
    /// section 8.2, scaled down for 28x28 inputs: blocks of 3x3 convolutions
    /// with padding 1 and ReLU, each block closed by a 2x2 max pool, channels
    /// 16-32-64, then fully connected layers with dropout. Sized so that an
    /// epoch of Fashion-MNIST takes about a minute on two cores; with its
    /// recipe (SGD, lr 0.05, momentum 0.9, 5 epochs) it reached 0.895 test
    /// accuracy.
    pub VggSmall, VggSmallInt8: [1, 28, 28] =>
        conv(1, 16, 3, pad = 1) relu maxpool(2)
        conv(16, 32, 3, pad = 1) relu conv(32, 32, 3, pad = 1) relu maxpool(2)
        conv(32, 64, 3, pad = 1) relu conv(64, 64, 3, pad = 1) relu maxpool(2)
        flatten
        linear(576, 256) relu dropout(0.5)
        linear(256, 256) relu dropout(0.5)
        linear(256, 10)
}

cnn_net! {
    /// AlexNet (Krizhevsky et al., 2012) as in Dive into Deep Learning,
    /// section 8.1, scaled down for 28x28 inputs: a large first kernel with
    /// stride 2, max pooling with kernel 3 and stride 2, three 3x3
    /// convolutions, and dropout between the fully connected layers. With its
    /// recipe (SGD, lr 0.05, momentum 0.9, 5 epochs) it reached 0.877 test
    /// accuracy on Fashion-MNIST.
    pub AlexNetSmall, AlexNetSmallInt8: [1, 28, 28] =>
        conv(1, 32, 7, stride = 2, pad = 3) relu maxpool(3, stride = 2, pad = 1)
        conv(32, 64, 3, pad = 1) relu
        conv(64, 96, 3, pad = 1) relu
        conv(96, 64, 3, pad = 1) relu
        maxpool(3, stride = 2)
        flatten
        linear(576, 512) relu dropout(0.5)
        linear(512, 512) relu dropout(0.5)
        linear(512, 10)
}

cnn_net! {
    /// LeNet with batch normalization as in Dive into Deep Learning,
    /// section 8.5: a batch norm after each convolution (BatchNorm2d) and
    /// each hidden linear layer (BatchNorm1d), before the sigmoid; no
    /// padding, so the flattened features are 16 x 4 x 4. Its keys are those
    /// of D2L's `nn.Sequential` (`1.running_mean`, `10.num_batches_tracked`).
    pub LeNetBn: [1, 28, 28] =>
        conv(1, 6, 5) batchnorm sigmoid avgpool(2, stride = 2)
        conv(6, 16, 5) batchnorm sigmoid avgpool(2, stride = 2)
        flatten
        linear(256, 120) batchnorm sigmoid
        linear(120, 84) batchnorm sigmoid
        linear(84, 10)
}

cnn_net! {
    /// D2L 8.6's `Residual`: two 3x3 convolutions with batch norm, the
    /// input added back (through a 1x1 convolution when the shape changes).
    block Residual(num_channels, use_1x1conv = false, strides = 1) =>
        add {
            conv1: conv(_, num_channels, 3, pad = 1, stride = strides) bn1: batchnorm relu
            conv2: conv(num_channels, num_channels, 3, pad = 1) bn2: batchnorm
          | if use_1x1conv { conv3: conv(_, num_channels, 1, stride = strides) }
        }
        relu;

    /// ResNet as in Dive into Deep Learning, section 8.6, sized for 28x28
    /// inputs: a 3x3 stem without pooling, three stages of two `Residual`
    /// blocks (16, 32, 64 channels; the later stages halve the size with a
    /// strided 1x1 shortcut), global average pooling. Keys are those of D2L's
    /// `nn.Sequential(b1, b2, b3, b4, ...)` (`1.0.conv1.weight`,
    /// `2.0.conv3.weight`, `1.0.bn1.running_mean`).
    pub ResNet, ResNetInt8: [1, 28, 28] =>
        [conv(1, 16, 3, pad = 1) batchnorm relu]
        [Residual(16) Residual(16)]
        [Residual(32, use_1x1conv = true, strides = 2) Residual(32)]
        [Residual(64, use_1x1conv = true, strides = 2) Residual(64)]
        [global_avgpool flatten linear(64, 10)];

    /// D2L 8.6's ResNet-18, full size, for [1, 96, 96] inputs (the book
    /// resizes Fashion-MNIST to 96x96): a 7x7 stride-2 stem with max
    /// pooling, four stages of two `Residual` blocks (64, 128, 256, 512
    /// channels), 11,178,378 parameters. Its keys are those of the book's
    /// `ResNet` class (`net.0.0.weight`, `net.b2.0.conv1.weight`,
    /// `net.last.2.weight`), so a `state_dict` saved from D2L's code loads
    /// as it is. Not in the `cnn` tool's list: it needs 96x96 inputs. Its
    /// parameters take 45 MB: build it on the heap (`ResNet18::boxed_zeroed`).
    pub ResNet18: [1, 96, 96] =>
        net: [
            [conv(1, 64, 7, stride = 2, pad = 3) batchnorm relu maxpool(3, stride = 2, pad = 1)]
            b2: [Residual(64) Residual(64)]
            b3: [Residual(128, use_1x1conv = true, strides = 2) Residual(128)]
            b4: [Residual(256, use_1x1conv = true, strides = 2) Residual(256)]
            b5: [Residual(512, use_1x1conv = true, strides = 2) Residual(512)]
            last: [global_avgpool flatten linear(512, 10)]
        ];

    /// D2L 8.4's `Inception`: a 1x1 path, 1x1 then 3x3, 1x1 then 5x5, and
    /// 3x3 max pooling then 1x1, concatenated along channels.
    block Inception(c1, c2a, c2b, c3a, c3b, c4) =>
        cat {
            b1_1: conv(_, c1, 1) relu
          | b2_1: conv(_, c2a, 1) relu b2_2: conv(c2a, c2b, 3, pad = 1) relu
          | b3_1: conv(_, c3a, 1) relu b3_2: conv(c3a, c3b, 5, pad = 2) relu
          | b4_1: maxpool(3, stride = 1, pad = 1) b4_2: conv(_, c4, 1) relu
        };

    /// GoogLeNet as in Dive into Deep Learning, section 8.4, scaled down
    /// for 28x28 inputs: a 3x3 stem and max pooling to 14x14, two
    /// `Inception` blocks (64 and 96 channels out), max pooling to 7x7, two
    /// more (128 and 160), global average pooling. No batch norm, as in D2L.
    pub GoogLeNetSmall, GoogLeNetSmallInt8: [1, 28, 28] =>
        [conv(1, 32, 3, pad = 1) relu maxpool(3, stride = 2, pad = 1)]
        [Inception(16, 16, 32, 4, 8, 8) Inception(32, 24, 48, 4, 8, 8) maxpool(3, stride = 2, pad = 1)]
        [Inception(48, 24, 48, 8, 16, 16) Inception(64, 32, 64, 8, 16, 16)]
        [global_avgpool flatten linear(160, 10)];

    /// D2L 8.7's `conv_block`: batch norm, ReLU, 3x3 convolution.
    block ConvBlock(num_channels) => batchnorm relu conv(_, num_channels, 3, pad = 1);

    /// D2L 8.7's `DenseBlock` with four convolution blocks: each one's
    /// output is concatenated to its input.
    block DenseBlock(num_channels) =>
        cat { identity | net.0: ConvBlock(num_channels) }
        cat { identity | net.1: ConvBlock(num_channels) }
        cat { identity | net.2: ConvBlock(num_channels) }
        cat { identity | net.3: ConvBlock(num_channels) };

    /// D2L 8.7's `transition_block`: batch norm, ReLU, 1x1 convolution,
    /// average pooling that halves the size.
    block Transition(num_channels) =>
        batchnorm relu conv(_, num_channels, 1) avgpool(2, stride = 2);

    /// DenseNet as in Dive into Deep Learning, section 8.7, scaled down for
    /// 28x28 inputs: a 3x3 stem with max pooling to 14x14, two dense blocks
    /// of four convolutions with growth rate 16 and a transition layer
    /// between them that halves the channels and the size, then batch norm,
    /// ReLU and global average pooling. Keys as D2L's `nn.Sequential`
    /// (`1.net.0.0.running_var`, `2.2.weight`).
    pub DenseNetSmall: [1, 28, 28] =>
        [conv(1, 32, 3, pad = 1) batchnorm relu maxpool(2)]
        DenseBlock(16)
        Transition(48)
        DenseBlock(16)
        batchnorm relu global_avgpool flatten linear(112, 10);

    /// MobileNetV2's inverted residual block without the skip: a 1x1
    /// expansion, a 3x3 depthwise convolution, a 1x1 projection, each with
    /// batch norm, ReLU6 after the first two.
    block Body(inp, hidden, oup, stride = 1) =>
        conv(inp, hidden, 1, bias = false) batchnorm relu6
        conv(hidden, hidden, 3, stride = stride, pad = 1, groups = hidden, bias = false) batchnorm relu6
        conv(hidden, oup, 1, bias = false) batchnorm;

    /// MobileNetV2's inverted residual (torchvision's layout, keys
    /// `conv.0.weight`): the input added back when the stride is 1 and the
    /// channels are kept.
    block InvertedResidual(inp, hidden, oup, stride = 1, res = false) =>
        if res { add { identity | conv: Body(inp, hidden, oup, stride) } }
        else { conv: Body(inp, hidden, oup, stride) };

    /// A MobileNetV2-style net (Sandler et al., 2018) for 28x28 inputs:
    /// depthwise separable inverted residual blocks with ReLU6, expansion 4,
    /// 16-24-32 channels, two halvings of the size, a 1x1 convolution to 128
    /// channels and global average pooling.
    pub MobileNetSmall, MobileNetSmallInt8: [1, 28, 28] =>
        [conv(1, 16, 3, pad = 1, bias = false) batchnorm relu6]
        InvertedResidual(16, 64, 16, res = true)
        InvertedResidual(16, 64, 24, stride = 2)
        InvertedResidual(24, 96, 24, res = true)
        InvertedResidual(24, 96, 32, stride = 2)
        InvertedResidual(32, 128, 32, res = true)
        [conv(32, 128, 1, bias = false) batchnorm relu6]
        [global_avgpool flatten linear(128, 10)]
}

/// One net the `cnn` tool knows: the name used on the command line, the
/// Rust type and a one-line description. See [`NETS`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetEntry {
    /// Command-line name, e.g. `"lenet-relu"`.
    pub name: &'static str,
    /// Rust type name, e.g. `"LeNetRelu"`.
    pub type_name: &'static str,
    /// One line saying what the net is.
    pub about: &'static str,
    /// What `cnn train` uses for the options left out, on a full data set.
    pub recipe: Recipe,
    /// What `cnn train` uses for the options left out on the 5,000-image
    /// sample compiled into the binary: about 20 steps an epoch, too few for
    /// most full-set recipes to leave chance level.
    pub sample_recipe: Recipe,
}

/// The optimizer of a [`Recipe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipeOptimizer {
    /// Stochastic gradient descent, with the recipe's momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// Training defaults of one net: what `cnn train --net NAME` uses for
/// `--optimizer`, `--lr`, `--momentum`, `--batch-size` and `--epochs` when
/// they are left out. The learning rate and momentum apply to the recipe's
/// optimizer only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// The optimizer.
    pub optimizer: RecipeOptimizer,
    /// Its learning rate.
    pub lr: f32,
    /// SGD momentum (0 for Adam).
    pub momentum: f32,
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per optimisation step.
    pub batch_size: usize,
}

impl Recipe {
    /// D2L's LeNet recipe (section 7.6): SGD with learning rate 0.9, 10
    /// epochs. Nets registered without a recipe get this one.
    pub const D2L: Recipe = Recipe::sgd(0.9);

    /// The recipe for the embedded 5,000-image sample: Adam with learning
    /// rate 0.003, batch 64, 20 epochs (1,580 steps). On LeNet it measured
    /// 0.806-0.827 test accuracy over seeds 0-3 in about 7 s on two cores,
    /// where D2L's recipe (200 steps of SGD) stays at chance (0.10-0.11).
    pub const SAMPLE: Recipe = Recipe::adam(0.003).batch_size(64).epochs(20);

    /// SGD with learning rate `lr`, no momentum, batch 256, 10 epochs.
    pub const fn sgd(lr: f32) -> Recipe {
        Recipe {
            optimizer: RecipeOptimizer::Sgd,
            lr,
            momentum: 0.0,
            epochs: 10,
            batch_size: 256,
        }
    }

    /// Adam with learning rate `lr`, batch 256, 10 epochs.
    pub const fn adam(lr: f32) -> Recipe {
        Recipe {
            optimizer: RecipeOptimizer::Adam,
            lr,
            momentum: 0.0,
            epochs: 10,
            batch_size: 256,
        }
    }

    /// The same with SGD momentum `momentum`.
    pub const fn momentum(self, momentum: f32) -> Recipe {
        Recipe { momentum, ..self }
    }

    /// The same with `epochs` epochs.
    pub const fn epochs(self, epochs: usize) -> Recipe {
        Recipe { epochs, ..self }
    }

    /// The same with `batch_size` examples per step.
    pub const fn batch_size(self, batch_size: usize) -> Recipe {
        Recipe { batch_size, ..self }
    }
}

impl core::fmt::Display for Recipe {
    /// `SGD lr 0.05 momentum 0.9, batch 256, 5 epochs`, as `cnn summary`
    /// prints it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.optimizer {
            RecipeOptimizer::Sgd => write!(f, "SGD lr {}", self.lr)?,
            RecipeOptimizer::Adam => write!(f, "Adam lr {}", self.lr)?,
        }
        if self.momentum != 0.0 {
            write!(f, " momentum {}", self.momentum)?;
        }
        let s = if self.epochs == 1 { "" } else { "s" };
        write!(f, ", batch {}, {} epoch{s}", self.batch_size, self.epochs)
    }
}

/// Code to run with a net type chosen by name at run time: [`with_net`]
/// calls [`NetVisitor::visit`] with the type registered under that name.
pub trait NetVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with the concrete net type `N`.
    fn visit<N: cnn_runtime::Network>(self) -> Self::Output;
}

/// Builds [`NETS`] and [`with_net`] from one list, so both always agree.
macro_rules! net_registry {
    (@recipe) => { Recipe::D2L };
    (@recipe $recipe:expr) => { $recipe };
    ($($name:literal => $ty:ident, $about:literal $(, $recipe:expr)?;)*) => {
        /// Every net the `cnn` tool can train, evaluate and summarise, in the
        /// order `cnn summary` lists them. The first is the default.
        pub const NETS: &[NetEntry] = &[$(NetEntry {
            name: $name,
            type_name: stringify!($ty),
            about: $about,
            recipe: net_registry!(@recipe $($recipe)?),
            sample_recipe: Recipe::SAMPLE,
        }),*];

        /// The registry entry named `name`, if any.
        pub fn net_entry(name: &str) -> Option<&'static NetEntry> {
            NETS.iter().find(|net| net.name == name)
        }

        /// Runs `visitor` with the net registered as `name`; `None` if no
        /// net has that name.
        pub fn with_net<V: NetVisitor>(name: &str, visitor: V) -> Option<V::Output> {
            match name {
                $($name => Some(visitor.visit::<$ty>()),)*
                _ => None,
            }
        }
    };
}

// One line per net: command-line name => type, description[, training
// recipe (default: `Recipe::D2L`)]. The zoo recipes were measured on the full
// Fashion-MNIST; see the README.
net_registry! {
    "lenet" => LeNet, "LeNet-5 of D2L 7.6: sigmoid, average pooling";
    "lenet-relu" => LeNetRelu, "LeNet with ReLU and max pooling",
        Recipe::sgd(0.1);
    "nin" => Nin, "Network in Network of D2L 8.3: 1x1 convolutions, global average pooling",
        Recipe::adam(0.002).epochs(15);
    "vgg-small" => VggSmall, "VGG of D2L 8.2, scaled down: 3x3 convolution blocks, channels 16-32-64",
        Recipe::sgd(0.05).momentum(0.9).epochs(5);
    "alexnet-small" => AlexNetSmall, "AlexNet of D2L 8.1, scaled down: 7x7 stride-2 first convolution",
        Recipe::sgd(0.05).momentum(0.9).epochs(5);
    "lenet-bn" => LeNetBn, "LeNet with batch normalization, D2L 8.5",
        Recipe::sgd(0.1).batch_size(128);
    "resnet" => ResNet, "ResNet of D2L 8.6 for 28x28: residual blocks with batch norm, 16-32-64 channels",
        Recipe::adam(0.002).batch_size(128).epochs(4);
    "googlenet-small" => GoogLeNetSmall, "GoogLeNet of D2L 8.4, scaled down: four Inception blocks",
        Recipe::adam(0.002).batch_size(128).epochs(5);
    "densenet-small" => DenseNetSmall, "DenseNet of D2L 8.7, scaled down: two dense blocks, growth 16",
        Recipe::adam(0.002).batch_size(128).epochs(5);
    "mobilenet-small" => MobileNetSmall, "MobileNetV2-style: depthwise inverted residuals, ReLU6",
        Recipe::adam(0.002).batch_size(128).epochs(3);
}

/// Code to run with a float net and its int8 twin chosen by name at run
/// time: [`with_int8_net`] calls [`Int8Visitor::visit`] with both types.
pub trait Int8Visitor {
    /// What the visit returns.
    type Output;
    /// Runs with the float net `N` and its int8 twin `Q` (the same layers).
    fn visit<N: cnn_runtime::Network, Q: cnn_runtime::int8::Int8Network>(self) -> Self::Output;
}

/// Builds [`INT8_NETS`] and [`with_int8_net`] from one list.
macro_rules! int8_registry {
    ($($name:literal => $float:ident, $int8:ident;)*) => {
        /// The nets `cnn quantize` takes: those whose every layer has an
        /// int8 form (batch norms folded into the conv before them; not
        /// DenseNet, whose batch norms follow a `cat`).
        pub const INT8_NETS: &[&str] = &[$($name),*];

        /// Runs `visitor` with the net registered as `name` and its int8
        /// twin; `None` if `name` has none.
        pub fn with_int8_net<V: Int8Visitor>(name: &str, visitor: V) -> Option<V::Output> {
            match name {
                $($name => Some(visitor.visit::<$float, $int8>()),)*
                _ => None,
            }
        }
    };
}

int8_registry! {
    "lenet" => LeNet, LeNetInt8;
    "lenet-relu" => LeNetRelu, LeNetReluInt8;
    "vgg-small" => VggSmall, VggSmallInt8;
    "alexnet-small" => AlexNetSmall, AlexNetSmallInt8;
    "nin" => Nin, NinInt8;
    "resnet" => ResNet, ResNetInt8;
    "googlenet-small" => GoogLeNetSmall, GoogLeNetSmallInt8;
    "mobilenet-small" => MobileNetSmall, MobileNetSmallInt8;
}
