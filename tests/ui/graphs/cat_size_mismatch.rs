use cnn_runtime::cnn_net;

// `cat` stacks channels: every branch must keep the same height and width.
cnn_net! {
    pub Net: [3, 8, 8] =>
        cat { a: conv(3, 4, 3, pad = 1) | b: conv(3, 4, 3) | maxpool(2) }
        flatten linear(_, 2)
}

fn main() {}
