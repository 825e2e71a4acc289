use cnn_runtime::cnn_net;

cnn_net! {
    pub Empty: [1, 8, 8] => [] flatten
}

fn main() {}
