#![deny(deprecated)]
use cnn_runtime::cnn_net;

// 1.25 MB of parameters, 4 MB of forward scratch: past the 1 MiB stack
// limit, `init` and `forward` warn where they are called.
cnn_net! {
    pub Big: [1, 28, 28] => flatten linear(784, 400);
    pub Wide: [1, 128, 128] => conv(1, 64, 3, pad = 1) relu
}

fn main() {
    let big = Big::init(0);
    let wide = Wide::boxed_init(0);
    let _ = wide.forward(&[0.0; 16384]);
    drop(big);
}
