use cnn_runtime::cnn_net;

// A misspelt block is suggested from the blocks and the layers.
cnn_net! {
    block Residual(c) => add { a: conv(_, c, 3, pad = 1) | identity } relu;
    pub Net: [2, 4, 4] => Residul(2) flatten linear(_, 2)
}

fn main() {}
