use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv(1, 6, 5, pad = 2, pad = 1)
}

fn main() {}
