use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 8, 8] => flatten conv(_, 4, 3)
}

fn main() {}
