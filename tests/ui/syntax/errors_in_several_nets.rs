use cnn_runtime::cnn_net;

cnn_net! {
    pub Good: [1, 8, 8] => conv(1, 2, 3) relu flatten linear(72, 4);
    pub Bad1: [1, 8, 8] => conv(3, 2, 3);
    pub Bad2: [1, 8, 8] => flatten linear(10, 4)
}

fn main() {
    // The broken nets still exist as types, so using them adds no errors.
    let good = Good::init(0);
    let _ = good.forward(&[0.0; 64]);
    let _ = Bad2::zeroed();
    let bad = Bad1::init(0);
    let _: [f32; 4] = bad.forward(&[0.0; 64]);
}
