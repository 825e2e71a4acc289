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
