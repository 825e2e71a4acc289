use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [6, 8, 8] => conv(6, 4, 3, groups = 3) relu
}

fn main() {}
