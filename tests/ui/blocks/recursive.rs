use cnn_runtime::cnn_net;

// A block cannot use itself, directly or through another block.
cnn_net! {
    block Ping(c) => conv(_, c, 1) Pong(c);
    block Pong(c) => relu Ping(c);
    pub Net: [1, 4, 4] => Ping(2) flatten linear(_, 2)
}

fn main() {}
