use cnn_runtime::cnn_net;

// Every count the macro derives saturates and is checked: a "too large"
// error on the user's tokens, never a panic or a wrapped constant.
cnn_net! {
    pub Huge: [4294967295, 4294967295, 4294967295] => relu;
    pub Wide: [1, 4, 4] => flatten linear(16, 4294967296);
    pub Padded: [1, 8, 8] => conv(1, 2, 3, pad = 18446744073709551615)
}

fn main() {}
