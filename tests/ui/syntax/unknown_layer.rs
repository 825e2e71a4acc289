use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv2d(1, 6, 5) BatchNorm2d flatten dense(_, 10)
}

fn main() {}
