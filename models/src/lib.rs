//! Ready networks declared with `cnn_net!`, and the pieces of the `cnn`
//! command-line tool.

use cnn_runtime::cnn_net;

cnn_net! {
    /// LeNet-5 as in Dive into Deep Learning, section 7.6: sigmoid
    /// activations and average pooling.
    pub LeNet: [1, 28, 28] =>
        conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
        conv(6, 16, 5) sigmoid avgpool(2)
        flatten
        linear(400, 120) sigmoid
        linear(120, 84) sigmoid
        linear(84, 10);

    /// LeNet with the modern choices: ReLU activations and max pooling.
    pub LeNetRelu: [1, 28, 28] =>
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
    pub Nin: [1, 28, 28] =>
        conv(1, 16, 5, pad = 2) relu conv(16, 16, 1) relu conv(16, 16, 1) relu
        maxpool(3, stride = 2)
        conv(16, 32, 3, pad = 1) relu conv(32, 32, 1) relu conv(32, 32, 1) relu
        maxpool(3, stride = 2)
        conv(32, 64, 3, pad = 1) relu conv(64, 64, 1) relu conv(64, 64, 1) relu
        maxpool(3, stride = 2)
        dropout(0.5)
        conv(64, 10, 3, pad = 1) relu conv(10, 10, 1) relu conv(10, 10, 1)
        global_avgpool flatten;

    /// VGG (Simonyan and Zisserman, 2014) as in Dive into Deep Learning,
    /// section 8.2, scaled down for 28x28 inputs: blocks of 3x3 convolutions
    /// with padding 1 and ReLU, each block closed by a 2x2 max pool, channels
    /// 16-32-64, then fully connected layers with dropout. Sized so that an
    /// epoch of Fashion-MNIST takes about a minute on two cores; with its
    /// recipe (SGD, lr 0.05, momentum 0.9, 5 epochs) it reached 0.895 test
    /// accuracy.
    pub VggSmall: [1, 28, 28] =>
        conv(1, 16, 3, pad = 1) relu maxpool(2)
        conv(16, 32, 3, pad = 1) relu conv(32, 32, 3, pad = 1) relu maxpool(2)
        conv(32, 64, 3, pad = 1) relu conv(64, 64, 3, pad = 1) relu maxpool(2)
        flatten
        linear(576, 256) relu dropout(0.5)
        linear(256, 256) relu dropout(0.5)
        linear(256, 10);

    /// AlexNet (Krizhevsky et al., 2012) as in Dive into Deep Learning,
    /// section 8.1, scaled down for 28x28 inputs: a large first kernel with
    /// stride 2, max pooling with kernel 3 and stride 2, three 3x3
    /// convolutions, and dropout between the fully connected layers. With its
    /// recipe (SGD, lr 0.05, momentum 0.9, 5 epochs) it reached 0.877 test
    /// accuracy on Fashion-MNIST.
    pub AlexNetSmall: [1, 28, 28] =>
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
    "lenet-relu" => LeNetRelu, "LeNet with ReLU and max pooling";
    "nin" => Nin, "Network in Network of D2L 8.3: 1x1 convolutions, global average pooling",
        Recipe::adam(0.002).epochs(15);
    "vgg-small" => VggSmall, "VGG of D2L 8.2, scaled down: 3x3 convolution blocks, channels 16-32-64",
        Recipe::sgd(0.05).momentum(0.9).epochs(5);
    "alexnet-small" => AlexNetSmall, "AlexNet of D2L 8.1, scaled down: 7x7 stride-2 first convolution",
        Recipe::sgd(0.05).momentum(0.9).epochs(5);
    "lenet-bn" => LeNetBn, "LeNet with batch normalization, D2L 8.5",
        Recipe::sgd(0.1).batch_size(128);
}
