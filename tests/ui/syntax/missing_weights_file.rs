// A weights file that is not there is one error at its name: code that uses
// the net (its `TRAINED` value, its scratch size) adds none.
use cnn_runtime::cnn_net;

cnn_net! {
    pub Net: [1, 28, 28] weights = "no/such/file.safetensors" =>
        conv(1, 6, 5, pad = 2) relu flatten linear(4704, 10)
}

fn main() {
    let mut scratch = [0i8; Net::INFER_SCRATCH_BYTES];
    let _ = (Net::TRAINED, &mut scratch, Net::PARAM_BYTES);
}
