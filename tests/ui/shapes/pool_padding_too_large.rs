use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 8, 8] => maxpool(2, pad = 2)
}

fn main() {}
