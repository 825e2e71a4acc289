use cnn_runtime::cnn_net;

// In a branch a position names nothing (PyTorch names a module by its
// attribute), so a layer with parameters needs a label; a sequence of them
// too. Layers without parameters need none.
cnn_net! {
    pub Net: [2, 6, 6] =>
        add { conv(2, 2, 3, pad = 1) relu | [conv(2, 2, 1) relu] | maxpool(3, stride = 1, pad = 1) }
        flatten linear(72, 2)
}

fn main() {}
