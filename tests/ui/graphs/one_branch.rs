use cnn_runtime::cnn_net;

// A join needs at least two branches.
cnn_net! {
    pub Net: [2, 6, 6] => add { c: conv(2, 2, 3, pad = 1) } flatten linear(72, 2)
}

fn main() {}
