use cnn_runtime::cnn_net;

// A mistake inside a block's body fails in every use of the block: it is
// reported once, at the token, with a count of the other uses.
cnn_net! {
    block Stage(c) => conv(_, c, 3) batchnorm(7) relu;
    pub Net: [1, 12, 12] => Stage(4) Stage(4) Stage(4) flatten linear(_, 2)
}

fn main() {}
