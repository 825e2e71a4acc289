use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv(1, 6, 5, 2) relu(0)
}

fn main() {}
