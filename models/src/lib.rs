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

/// One net the `cnn` tool knows: the name used on the command line, the
/// Rust type and a one-line description. See [`NETS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetEntry {
    /// Command-line name, e.g. `"lenet-relu"`.
    pub name: &'static str,
    /// Rust type name, e.g. `"LeNetRelu"`.
    pub type_name: &'static str,
    /// One line saying what the net is.
    pub about: &'static str,
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
    ($($name:literal => $ty:ident, $about:literal;)*) => {
        /// Every net the `cnn` tool can train, evaluate and summarise, in the
        /// order `cnn summary` lists them. The first is the default.
        pub const NETS: &[NetEntry] = &[$(NetEntry {
            name: $name,
            type_name: stringify!($ty),
            about: $about,
        }),*];

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

// One line per net: command-line name => type, description.
net_registry! {
    "lenet" => LeNet, "LeNet-5 of D2L 7.6: sigmoid, average pooling";
    "lenet-relu" => LeNetRelu, "LeNet with ReLU and max pooling";
}
