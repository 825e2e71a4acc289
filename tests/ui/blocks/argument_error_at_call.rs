use cnn_runtime::cnn_net;

// A bad value passed to a block is reported at the call's argument, where
// the other instances of the block are fine.
cnn_net! {
    block Stage(c) => conv(_, c, 3, pad = 1) relu;
    pub Net: [1, 8, 8] => Stage(4) Stage(0) flatten linear(_, 2)
}

fn main() {}
