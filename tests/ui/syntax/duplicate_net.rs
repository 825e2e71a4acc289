use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 4, 4] => flatten linear(16, 2);
    pub Net: [1, 4, 4] => flatten linear(16, 3)
}

fn main() {}
