use cnn_runtime::cnn_net;

// Branches add no key level: their labels share the enclosing sequence's
// keys, so two `conv1`s (or a branch label repeating a sibling's) collide.
cnn_net! {
    pub Net: [2, 6, 6] =>
        conv1: conv(2, 2, 3, pad = 1)
        add { conv1: conv(2, 2, 3, pad = 1) | conv2: conv(2, 2, 1) | conv2: conv(2, 2, 1) }
        flatten linear(72, 2)
}

fn main() {}
