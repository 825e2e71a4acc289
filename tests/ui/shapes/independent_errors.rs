use cnn_runtime::cnn_net;

// Each layer goes on with the shape it declares, so every independent
// mistake is reported in one build.
cnn_net! {
    pub Net: [1, 28, 28] => conv(3, 16, 5) relu maxpool(2) conv(8, 4, 3) flatten linear(999, 10)
}

fn main() {}
