use cnn_runtime::cnn_net;

// eps must be a positive number; momentum a number in [0, 1).
cnn_net! {
    pub Net: [1, 6, 6] => conv(1, 2, 3) batchnorm(eps = 0, momentum = 1.5) flatten linear(_, 2)
}

fn main() {}
