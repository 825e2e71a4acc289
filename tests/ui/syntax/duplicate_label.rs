use cnn_runtime::cnn_net;

// A label must not repeat another node's key segment in the same sequence,
// whether that segment is a label or a position.
cnn_net! {
    pub Net: [1, 8, 8] => body: [conv(1, 2, 3) 0: relu] body: [flatten linear(72, 2)]
}

fn main() {}
