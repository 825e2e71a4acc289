//! `forward_traced` shows every layer's output: for each layer `i` of a
//! chain and of a graph net, the traced values equal, bit for bit, the
//! output of a separately declared net made of the layers that compute
//! layer `i`'s value (a prefix of a chain; the value's ancestors in a
//! graph), with the same parameters, through the same batched path.

use cnn_runtime::init::{self, Rng};
use cnn_runtime::{cnn_net, network, Network};

cnn_net! {
    /// LeNet's kinds of layer, small: conv, sigmoid (in place), avgpool,
    /// flatten and dropout (views at inference), linear.
    pub Chain: [1, 12, 12] =>
        conv(1, 4, 5, pad = 2) sigmoid avgpool(2)
        conv(4, 8, 3) sigmoid avgpool(2)
        flatten dropout(0.5) linear(32, 16) sigmoid linear(16, 10);
    Chain0: [1, 12, 12] => conv(1, 4, 5, pad = 2);
    Chain1: [1, 12, 12] => conv(1, 4, 5, pad = 2) sigmoid;
    Chain2: [1, 12, 12] => conv(1, 4, 5, pad = 2) sigmoid avgpool(2);
    Chain3: [1, 12, 12] => conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3);
    Chain4: [1, 12, 12] => conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid;
    Chain5: [1, 12, 12] => conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid avgpool(2);
    Chain6: [1, 12, 12] => conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid avgpool(2) flatten;
    Chain7: [1, 12, 12] =>
        conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid avgpool(2) flatten dropout(0.5);
    Chain8: [1, 12, 12] =>
        conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid avgpool(2) flatten dropout(0.5)
        linear(32, 16);
    Chain9: [1, 12, 12] =>
        conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid avgpool(2) flatten dropout(0.5)
        linear(32, 16) sigmoid;
    Chain10: [1, 12, 12] =>
        conv(1, 4, 5, pad = 2) sigmoid avgpool(2) conv(4, 8, 3) sigmoid avgpool(2) flatten dropout(0.5)
        linear(32, 16) sigmoid linear(16, 10);

    /// Views of the caller's input, an activation that must copy it first,
    /// and layers after the last computing one (on the caller's output).
    pub Odd: [1, 4, 4] => flatten identity relu linear(16, 3) dropout(0.5) relu;
    Odd0: [1, 4, 4] => flatten;
    Odd1: [1, 4, 4] => flatten identity;
    Odd2: [1, 4, 4] => flatten identity relu;
    Odd3: [1, 4, 4] => flatten identity relu linear(16, 3);
    Odd4: [1, 4, 4] => flatten identity relu linear(16, 3) dropout(0.5);
    Odd5: [1, 4, 4] => flatten identity relu linear(16, 3) dropout(0.5) relu;

    /// A residual `add` (with batch norm, and an identity shortcut) and a
    /// `cat` with an identity branch; every layer with tensors is labelled
    /// so the smaller nets below share its keys.
    pub Graph: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        mix: cat { identity | c3: conv(4, 2, 3, pad = 1) relu }
        flatten dropout(0.5) head: linear(216, 5);
    Graph0: [2, 6, 6] => stem: conv(2, 4, 3, pad = 1);
    Graph1: [2, 6, 6] => stem: conv(2, 4, 3, pad = 1) relu;
    Graph2: [2, 6, 6] => stem: conv(2, 4, 3, pad = 1) relu res.c1: conv(4, 4, 3, pad = 1);
    Graph3: [2, 6, 6] => stem: conv(2, 4, 3, pad = 1) relu res.c1: conv(4, 4, 3, pad = 1) res.b1: batchnorm;
    Graph4: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu res.c1: conv(4, 4, 3, pad = 1) res.b1: batchnorm relu;
    Graph5: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu res.c1: conv(4, 4, 3, pad = 1) res.b1: batchnorm relu
        res.c2: conv(4, 4, 3, pad = 1);
    // The add's shortcut: the value after the stem.
    Graph6: [2, 6, 6] => stem: conv(2, 4, 3, pad = 1) relu identity;
    Graph7: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu;
    Graph8: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        identity;
    Graph9: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        mix.c3: conv(4, 2, 3, pad = 1);
    Graph10: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        mix.c3: conv(4, 2, 3, pad = 1) relu;
    Graph11: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        mix: cat { identity | c3: conv(4, 2, 3, pad = 1) relu }
        flatten;
    Graph12: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        mix: cat { identity | c3: conv(4, 2, 3, pad = 1) relu }
        flatten dropout(0.5);
    Graph13: [2, 6, 6] =>
        stem: conv(2, 4, 3, pad = 1) relu
        res: add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
        mix: cat { identity | c3: conv(4, 2, 3, pad = 1) relu }
        flatten dropout(0.5) head: linear(216, 5)
}

/// Examples per batch: more than one, so the example-major layout counts.
const N: usize = 3;

/// A net with seeded parameters and running statistics away from their
/// defaults (so batch norm does something at inference).
fn seeded<T: Network>(seed: u64) -> Box<T> {
    let mut net = Box::new(T::zeroed());
    let mut rng = Rng::new(seed);
    init::pytorch_default(T::TENSORS, net.params_mut(), &mut rng);
    for t in T::BUFFERS {
        let (lo, hi) = match t.role {
            cnn_runtime::TensorRole::RunningVar => (0.5, 2.0),
            _ => (-0.5, 0.5),
        };
        rng.fill_uniform(t.slice_mut(net.buffers_mut()), lo, hi);
    }
    net
}

fn input<T: Network>(seed: u64) -> Vec<f32> {
    let mut x = vec![0.0; N * T::INPUT_LEN];
    Rng::new(seed).fill_uniform(&mut x, -1.0, 1.0);
    x
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn forward<T: Network>(net: &T, x: &[f32]) -> Vec<f32> {
    let mut out = vec![f32::NAN; N * T::OUTPUT_LEN];
    let mut workspace = vec![f32::NAN; T::forward_workspace_len(N)];
    net.forward_n(N, x, &mut out, &mut workspace);
    out
}

/// Every layer's visit of a traced pass; checks the order, the count, each
/// layer's length, and that the output is `forward_n`'s (bit for bit, or to
/// rounding with batch norms, which `forward_n` folds into the convs).
fn trace<T: Network>(net: &T, x: &[f32]) -> Vec<Vec<f32>> {
    let (layers, joins) = trace_all(net, x);
    assert_eq!(joins, Vec::<Vec<f32>>::new(), "{}: a chain has no joins", T::NAME);
    layers
}

/// The visits of a traced pass: each layer's values and each join's (the
/// joins in their order, after the layers that compute their inputs).
fn trace_all<T: Network>(net: &T, x: &[f32]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut out = vec![f32::NAN; N * T::OUTPUT_LEN];
    let mut workspace = vec![f32::NAN; T::forward_workspace_len(N)];
    let mut visits: Vec<(usize, Vec<f32>)> = Vec::new();
    net.forward_traced(N, x, &mut out, &mut workspace, &mut |layer, values| {
        visits.push((layer, values.to_vec()))
    });
    let plain = forward(net, x);
    if T::BUFFERS.is_empty() {
        assert_eq!(bits(&out), bits(&plain), "{}: traced output", T::NAME);
    } else {
        // The untraced pass folds each batch norm into the conv before it.
        for (a, b) in out.iter().zip(&plain) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{}: traced output {a} vs {b}",
                T::NAME
            );
        }
    }
    let layers = T::LAYERS.len();
    let (visits, joins): (Vec<_>, Vec<_>) = visits.into_iter().partition(|v| v.0 < layers);
    let order: Vec<usize> = visits.iter().map(|v| v.0).collect();
    assert_eq!(order, (0..layers).collect::<Vec<_>>(), "{}: visit order", T::NAME);
    let join_order: Vec<usize> = joins.iter().map(|v| v.0).collect();
    assert_eq!(
        join_order,
        (layers..layers + joins.len()).collect::<Vec<_>>(),
        "{}: join visit order",
        T::NAME
    );
    let joins = joins.into_iter().map(|v| v.1).collect();
    for ((layer, values), info) in visits.iter().zip(T::LAYERS) {
        let len: usize = info.output_shape.iter().product();
        assert_eq!(
            values.len(),
            N * len,
            "{}: layer {layer} ({})",
            T::NAME,
            info.source
        );
    }
    (visits.into_iter().map(|v| v.1).collect(), joins)
}

/// `P` with the parameters and buffers of `full` under the same keys.
fn with_tensors_of<P: Network, T: Network>(full: &T) -> Box<P> {
    let mut part = Box::new(P::zeroed());
    for t in P::TENSORS {
        let values = network::tensor(T::TENSORS, full.params(), t.key)
            .unwrap_or_else(|| panic!("{} has no tensor {}", T::NAME, t.key));
        t.slice_mut(part.params_mut()).copy_from_slice(values);
    }
    for t in P::BUFFERS {
        let values = network::tensor(T::BUFFERS, full.buffers(), t.key)
            .unwrap_or_else(|| panic!("{} has no buffer {}", T::NAME, t.key));
        t.slice_mut(part.buffers_mut()).copy_from_slice(values);
    }
    part
}

/// Layer `layer`'s traced values are the output of `P`, the net that
/// computes that layer's value (bit for bit, or to rounding where `P` has
/// batch norms).
fn check<P: Network, T: Network>(full: &T, traced: &[Vec<f32>], layer: usize, x: &[f32]) {
    let info = &T::LAYERS[layer];
    assert_eq!(
        P::LAYERS.last().map(|l| l.output_shape),
        Some(info.output_shape),
        "{} computes layer {layer} ({}) of {}",
        P::NAME,
        info.source,
        T::NAME
    );
    let part = with_tensors_of::<P, T>(full);
    let expected = forward(&*part, x);
    let worst = traced[layer]
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // `P`'s untraced pass folds its batch norms into the convs: rounding.
    let exact = bits(&traced[layer]) == bits(&expected);
    let close = worst <= 1e-5 * expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    assert!(
        exact || (!P::BUFFERS.is_empty() && close),
        "{} layer {layer} ({}): traced values differ from {}'s output by up to {worst}",
        T::NAME,
        info.source,
        P::NAME
    );
}

/// A chain's prefix nets take a prefix of its parameter vector.
fn check_prefix<P: Network, T: Network>(full: &T, traced: &[Vec<f32>], layer: usize, x: &[f32]) {
    let part = with_tensors_of::<P, T>(full);
    assert_eq!(part.params(), &full.params()[..P::PARAM_COUNT], "{}", P::NAME);
    check::<P, T>(full, traced, layer, x);
}

#[test]
fn a_chain_traces_every_layer() {
    let net = seeded::<Chain>(1);
    let x = input::<Chain>(2);
    let traced = trace(&*net, &x);
    check_prefix::<Chain0, _>(&*net, &traced, 0, &x);
    check_prefix::<Chain1, _>(&*net, &traced, 1, &x);
    check_prefix::<Chain2, _>(&*net, &traced, 2, &x);
    check_prefix::<Chain3, _>(&*net, &traced, 3, &x);
    check_prefix::<Chain4, _>(&*net, &traced, 4, &x);
    check_prefix::<Chain5, _>(&*net, &traced, 5, &x);
    check_prefix::<Chain6, _>(&*net, &traced, 6, &x);
    check_prefix::<Chain7, _>(&*net, &traced, 7, &x);
    check_prefix::<Chain8, _>(&*net, &traced, 8, &x);
    check_prefix::<Chain9, _>(&*net, &traced, 9, &x);
    check_prefix::<Chain10, _>(&*net, &traced, 10, &x);
}

#[test]
fn views_and_copies_of_the_input_are_traced() {
    let net = seeded::<Odd>(3);
    let x = input::<Odd>(4);
    let traced = trace(&*net, &x);
    // The views of the input are the input itself.
    assert_eq!(bits(&traced[0]), bits(&x));
    assert_eq!(bits(&traced[1]), bits(&x));
    check_prefix::<Odd0, _>(&*net, &traced, 0, &x);
    check_prefix::<Odd1, _>(&*net, &traced, 1, &x);
    check_prefix::<Odd2, _>(&*net, &traced, 2, &x);
    check_prefix::<Odd3, _>(&*net, &traced, 3, &x);
    check_prefix::<Odd4, _>(&*net, &traced, 4, &x);
    check_prefix::<Odd5, _>(&*net, &traced, 5, &x);
}

#[test]
fn a_graph_traces_every_layer() {
    let net = seeded::<Graph>(5);
    let x = input::<Graph>(6);
    let (traced, joins) = trace_all(&*net, &x);
    // The add's output is what the relu after it (layer 7) rectifies, the
    // cat's what flatten (layer 11) passes on.
    assert_eq!(joins.len(), 2);
    let rectified: Vec<f32> = joins[0].iter().map(|&v| v.max(0.0)).collect();
    assert_eq!(bits(&rectified), bits(&traced[7]));
    assert_eq!(bits(&joins[1]), bits(&traced[11]));
    check::<Graph0, _>(&*net, &traced, 0, &x);
    check::<Graph1, _>(&*net, &traced, 1, &x);
    check::<Graph2, _>(&*net, &traced, 2, &x);
    check::<Graph3, _>(&*net, &traced, 3, &x);
    check::<Graph4, _>(&*net, &traced, 4, &x);
    check::<Graph5, _>(&*net, &traced, 5, &x);
    check::<Graph6, _>(&*net, &traced, 6, &x);
    check::<Graph7, _>(&*net, &traced, 7, &x);
    check::<Graph8, _>(&*net, &traced, 8, &x);
    check::<Graph9, _>(&*net, &traced, 9, &x);
    check::<Graph10, _>(&*net, &traced, 10, &x);
    check::<Graph11, _>(&*net, &traced, 11, &x);
    check::<Graph12, _>(&*net, &traced, 12, &x);
    check::<Graph13, _>(&*net, &traced, 13, &x);
}

/// Alike block instances run one shared function, which traces too.
#[test]
fn shared_block_code_traces_each_instance() {
    cnn_net! {
        block Twice(c) => conv(_, c, 3, pad = 1) relu conv(c, c, 3, pad = 1) relu;
        pub Blocks: [2, 6, 6] => conv(2, 2, 1) Twice(2) Twice(2) flatten linear(72, 3);
        Blocks4: [2, 6, 6] => conv(2, 2, 1) Twice(2);
        Blocks8: [2, 6, 6] => conv(2, 2, 1) Twice(2) Twice(2)
    }
    let net = seeded::<Blocks>(7);
    let x = input::<Blocks>(8);
    let traced = trace(&*net, &x);
    check_prefix::<Blocks4, _>(&*net, &traced, 4, &x);
    check_prefix::<Blocks8, _>(&*net, &traced, 8, &x);
    // The two instances computed different values.
    assert_ne!(bits(&traced[4]), bits(&traced[8]));
}
