//! Dive into Deep Learning, section 7.6.1, "LeNet": the shape of a 28x28
//! image as it passes through each layer of LeNet-5. D2L finds the shapes
//! by running a random `(1, 1, 28, 28)` tensor through the net; `cnn_net!`
//! has already worked them out at compile time (and rejects a net whose
//! shapes do not fit), so we print them from the net's `LAYERS` table.
//!
//! The `_` input sizes play the part of D2L's `nn.LazyConv2d` and
//! `nn.LazyLinear`: the macro infers them from the previous layer.
//!
//! Run with `cargo run -p models --example lenet_shapes`.

use cnn_runtime::cnn_net;

cnn_net! {
    /// D2L's `LeNet().net`: sigmoid activations and average pooling.
    LeNet: [1, 28, 28] =>
        conv(_, 6, 5, pad = 2) sigmoid avgpool(2, stride = 2)
        conv(_, 16, 5) sigmoid avgpool(2, stride = 2)
        flatten
        linear(_, 120) sigmoid
        linear(_, 84) sigmoid
        linear(_, 10)
}

/// D2L's `layer_summary((1, 1, 28, 28))`: each layer's PyTorch class name
/// and output shape, with the batch dimension of 1 in front.
fn shape_walk() -> Vec<(&'static str, Vec<usize>)> {
    LeNet::LAYERS
        .iter()
        .map(|l| (l.torch_name, [1].iter().chain(l.output_shape).copied().collect()))
        .collect()
}

fn main() {
    for (name, shape) in shape_walk() {
        println!("{name} output shape:\t {shape:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_d2l() {
        let expected: &[(&str, &[usize])] = &[
            ("Conv2d", &[1, 6, 28, 28]),
            ("Sigmoid", &[1, 6, 28, 28]),
            ("AvgPool2d", &[1, 6, 14, 14]),
            ("Conv2d", &[1, 16, 10, 10]),
            ("Sigmoid", &[1, 16, 10, 10]),
            ("AvgPool2d", &[1, 16, 5, 5]),
            ("Flatten", &[1, 400]),
            ("Linear", &[1, 120]),
            ("Sigmoid", &[1, 120]),
            ("Linear", &[1, 84]),
            ("Sigmoid", &[1, 84]),
            ("Linear", &[1, 10]),
        ];
        let walk = shape_walk();
        assert_eq!(walk.len(), expected.len());
        for ((name, shape), (d2l_name, d2l_shape)) in walk.iter().zip(expected) {
            assert_eq!((*name, shape.as_slice()), (*d2l_name, *d2l_shape));
        }
        assert_eq!(LeNet::OUTPUT_LEN, 10);
    }

    #[test]
    fn is_the_lenet_the_models_crate_ships() {
        let shapes = |layers: &[cnn_runtime::LayerInfo]| {
            layers
                .iter()
                .map(|l| (l.torch_name, l.output_shape, l.params))
                .collect::<Vec<_>>()
        };
        assert_eq!(shapes(LeNet::LAYERS), shapes(models::LeNet::LAYERS));
        // D2L's LeNet has 61,706 parameters.
        assert_eq!(LeNet::PARAM_COUNT, 61_706);
    }
}
