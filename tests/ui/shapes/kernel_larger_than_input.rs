use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 8, 8] => conv(1, 4, 5) maxpool(2) conv(4, 4, 3)
}

fn main() {}
