use cnn_runtime::cnn_net;

// `|` separates branches only inside `add { .. }` and `cat { .. }`.
cnn_net! {
    pub Net: [2, 6, 6] => conv(2, 2, 3, pad = 1) | identity
}

fn main() {}
