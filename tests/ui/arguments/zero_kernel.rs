use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv(1, 6, 0)
}

fn main() {}
