use cnn_runtime::cnn_net;

// The branches of `add` are summed, so they must agree; a strided main
// branch needs a strided 1x1 conv on the shortcut.
cnn_net! {
    pub Net: [4, 8, 8] =>
        add { conv1: conv(4, 8, 3, pad = 1, stride = 2) relu conv2: conv(8, 8, 3, pad = 1) | identity }
        relu global_avgpool flatten linear(8, 2)
}

fn main() {}
