//! The `cnn` command-line tool.

fn main() {
    print!("{}", models::LeNet::summary());
}
