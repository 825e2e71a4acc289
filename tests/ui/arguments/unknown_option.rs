use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv(1, 6, 5, strid = 2) maxpool(2, padding = 1) relu
}

fn main() {}
