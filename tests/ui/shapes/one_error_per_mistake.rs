use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv(2, 6, 5) sigmoid conv(6, 16, 5) flatten linear(400, 10)
}

fn main() {}
