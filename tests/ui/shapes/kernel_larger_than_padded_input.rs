use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [3, 4, 4] => conv(3, 8, (3, 7), pad = 1)
}

fn main() {}
