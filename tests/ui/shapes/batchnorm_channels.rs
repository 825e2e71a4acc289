use cnn_runtime::cnn_net;

// `batchnorm(c)` must match its input's channels (or features after
// `flatten`); leaving `c` out infers it.
cnn_net! {
    pub Net: [1, 12, 12] =>
        conv(1, 6, 3) batchnorm(8) relu flatten linear(_, 10) batchnorm(12, eps = 0.001) linear(10, 2)
}

fn main() {}
