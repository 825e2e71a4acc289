use cnn_runtime::cnn_net;

// `if` tests a `true`/`false` parameter of the enclosing block.
cnn_net! {
    block Shortcut(c, project = false) =>
        add { a: conv(_, c, 3, pad = 1) | if projekt { b: conv(_, c, 1) } };
    block Flagged(c) => if c { relu };
    pub Net: [2, 4, 4] => if on { relu } Shortcut(2) Flagged(3) flatten linear(_, 2)
}

fn main() {}
