use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 8, 8] => flatten linear(64, 10) global_avgpool
}

fn main() {}
