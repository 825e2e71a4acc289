use cnn_runtime::cnn_net;

// Block arguments are checked like a function call's: missing, unknown
// (with a suggestion), surplus, and repeated arguments are each an error.
cnn_net! {
    block Stage(c, strides = 1) => conv(_, c, 3, pad = 1, stride = strides) relu;
    pub Net: [1, 8, 8] =>
        Stage() Stage(4, stride = 2) Stage(4, 2, 9) Stage(4, strides = 1, strides = 2)
        flatten linear(_, 2)
}

fn main() {}
