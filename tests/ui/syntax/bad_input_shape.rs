use cnn_runtime::cnn_net;

cnn_net! {
    pub A: [1, 28] => flatten;
    pub B: [1, 0, 28] => flatten
}

fn main() {}
