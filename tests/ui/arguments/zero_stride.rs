use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] => conv(1, 6, 3, stride = (1, 0)) maxpool(2, stride = 0)
}

fn main() {}
