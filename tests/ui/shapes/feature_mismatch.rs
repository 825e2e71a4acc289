use cnn_runtime::cnn_net;

cnn_net! {
    pub LeNet: [1, 28, 28] =>
        conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
        conv(6, 16, 5) sigmoid avgpool(2)
        flatten
        linear(300, 120) sigmoid
        linear(120, 84) sigmoid
        linear(84, 10)
}

fn main() {}
