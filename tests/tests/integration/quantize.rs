//! `int8::calibrate::quantize` on a graph net with every int8 graph
//! feature: batch norms folded into the conv before them, a residual `add`
//! with a fused relu, a `cat` whose branches must share one quantization,
//! `global_avgpool` (a point with its own quantization) and
//! `global_maxpool`. The int8 twin built from the quantized tensors must
//! compute what the float net computes, to within the int8 grid.

use cnn_runtime::init::{self, Rng};
use cnn_runtime::int8::calibrate::{calibrate, quantize};
use cnn_runtime::int8::Int8Network;
use cnn_runtime::quant;
use cnn_runtime::{cnn_net, Network, TensorRole};

/// One layer list for the float net and its int8 twin.
macro_rules! twins {
    ($($layers:tt)*) => {
        cnn_net! {
            pub Float: [2, 8, 8] => $($layers)*;
            pub Int8: [2, 8, 8] int8 => $($layers)*
        }
    };
}

twins! {
    stem: conv(2, 8, 3, pad = 1) bn: batchnorm relu
    res: add { c1: conv(8, 8, 3, pad = 1) b1: batchnorm relu c2: conv(8, 8, 3, pad = 1) b2: batchnorm | identity } relu
    mix: cat { a: conv(8, 4, 1) relu | b: conv(8, 4, 3, pad = 1) relu6 }
    maxpool(2)
    add { global_avgpool | global_maxpool }
    flatten head: linear(8, 5)
}

/// A float net with PyTorch's initialization and running statistics away
/// from their defaults (so the folds do something).
fn seeded() -> Box<Float> {
    let mut net = Box::new(Float::zeroed());
    let mut rng = Rng::new(11);
    init::pytorch_default(Float::TENSORS, net.params_mut(), &mut rng);
    for t in Float::TENSORS {
        if t.key.ends_with(".weight") && t.shape.len() == 1 {
            // Batch norm's gamma, away from 1.
            rng.fill_uniform(t.slice_mut(net.params_mut()), 0.5, 1.5);
        }
    }
    for t in Float::BUFFERS {
        let (lo, hi) = match t.role {
            TensorRole::RunningVar => (0.5, 2.0),
            _ => (-0.5, 0.5),
        };
        rng.fill_uniform(t.slice_mut(net.buffers_mut()), lo, hi);
    }
    net
}

fn images(n: usize, seed: u64) -> Vec<f32> {
    let mut x = vec![0.0; n * Float::INPUT_LEN];
    Rng::new(seed).fill_uniform(&mut x, -1.0, 1.0);
    x
}

#[test]
fn a_quantized_graph_net_computes_the_float_net() {
    let float = seeded();
    let ranges = calibrate(&*float, &images(256, 1), 32);
    // The layers' outputs, then the three joins'.
    assert_eq!(ranges.outputs.len(), Float::LAYERS.len() + 3);

    let tensors = quantize::<Float, Int8>(&float, &ranges).expect("quantizes");
    // Five convs and the head, each with a bias (the folds give the convs
    // theirs); two adds and the MEAN.
    assert_eq!(Int8::INT8_LAYERS.len(), 6);
    assert!(Int8::INT8_LAYERS.iter().all(|l| l.bias));
    assert_eq!(Int8::INT8_LAYERS.iter().filter(|l| l.fold.is_some()).count(), 3);
    assert_eq!(Int8::INT8_POINTS.len(), 3);
    // The cat's branches share one quantization: TFLite copies bytes.
    let (a, b) = (Int8::INT8_LAYERS[3], Int8::INT8_LAYERS[4]);
    assert_eq!((a.key, b.key), ("mix.a", "mix.b"));
    assert_eq!(a.tie, b.tie);
    assert_eq!(tensors.outputs[3], tensors.outputs[4]);

    let int8 = Int8::from_parts(&tensors.parts()).expect("an int8 net");
    let n = 64;
    let x = images(n, 2);
    let mut expected = vec![0.0f32; n * Float::OUTPUT_LEN];
    let mut workspace = vec![0.0f32; Float::forward_workspace_len(n)];
    float.forward_n(n, &x, &mut expected, &mut workspace);

    let input = int8.input_quant();
    let mut q = vec![0i8; x.len()];
    quant::quantize_slice(&x, input.scale, input.zero_point, &mut q);
    let mut y = vec![0i8; expected.len()];
    let mut scratch = vec![0i8; n * Int8::INFER_SCRATCH_BYTES];
    int8.forward_n(n, &q, &mut y, &mut scratch);
    let output = int8.output_quant();
    let mut got = vec![0.0f32; y.len()];
    quant::dequantize_slice(&y, output.scale, output.zero_point, &mut got);

    // Within a few steps of the output's int8 grid: each layer rounds to
    // its own grid, and the errors add up through nine int8 ops.
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let spread = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        worst <= 4.0 * output.scale,
        "int8 outputs differ from float by up to {worst} (output scale {}, outputs up to {spread})",
        output.scale
    );
}
