//! Every zoo net against PyTorch's `state_dict` of the same net built from
//! Dive into Deep Learning's own classes (`python3 tools/torch_zoo.py keys`
//! wrote `tests/fixtures/zoo_keys.json`): the same keys with the same
//! shapes, parameters and buffers alike, the same parameter count, input and
//! output. The full-size ResNet-18 is checked the same way, and built on
//! the heap and run once, without its 45 MB of weights in the repository.
//!
//! The numbers of each structure are checked against PyTorch by the small
//! fixtures of the same classes (`resnet_bn`, `googlenet_small`,
//! `densenet_bn`, `mobilenet_small`, `lenet_bn`).

use cnn_runtime::Network;
use models::{NetVisitor, ResNet18};
use serde_json::Value;

/// Keys and shapes (sorted by key: PyTorch lists a module's tensors in the
/// order its attributes were assigned, the DSL in the order the layers
/// run), parameter count, input shape, output length.
type Table = (Vec<(String, Vec<usize>)>, usize, [usize; 3], usize);

fn table<N: Network>() -> Table {
    let mut state: Vec<(String, Vec<usize>)> = N::TENSORS
        .iter()
        .chain(N::BUFFERS)
        .map(|t| (t.key.to_string(), t.shape.to_vec()))
        .collect();
    state.sort();
    (state, N::PARAM_COUNT, N::INPUT_SHAPE, N::OUTPUT_LEN)
}

struct Tabulate;

impl NetVisitor for Tabulate {
    type Output = Table;
    fn visit<N: Network>(self) -> Table {
        table::<N>()
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_u64().expect("a size") as usize)
        .collect()
}

fn expected(entry: &Value) -> Table {
    let mut state: Vec<(String, Vec<usize>)> = entry["state"]
        .as_array()
        .expect("state")
        .iter()
        .map(|kv| (kv[0].as_str().expect("key").to_string(), usizes(&kv[1])))
        .collect();
    state.sort();
    let input: [usize; 3] = usizes(&entry["input"]).try_into().expect("[C, H, W]");
    let output = usizes(&entry["output"]).iter().product();
    (
        state,
        entry["params"].as_u64().expect("params") as usize,
        input,
        output,
    )
}

fn zoo_keys() -> serde_json::Map<String, Value> {
    let path = cnn_tests::fixtures_dir().join("zoo_keys.json");
    let text = std::fs::read_to_string(&path).expect("tests/fixtures/zoo_keys.json");
    match serde_json::from_str(&text).expect("JSON") {
        Value::Object(map) => map,
        _ => panic!("zoo_keys.json is not an object"),
    }
}

#[test]
fn zoo_nets_have_pytorchs_keys_and_shapes() {
    let zoo = zoo_keys();
    let mut checked = 0;
    for (name, entry) in &zoo {
        let ours = if name == "resnet18" {
            table::<ResNet18>()
        } else {
            models::with_net(name, Tabulate).unwrap_or_else(|| panic!("no zoo net {name}"))
        };
        let theirs = expected(entry);
        assert_eq!(ours.0, theirs.0, "{name}: keys and shapes");
        assert_eq!(ours.1, theirs.1, "{name}: parameter count");
        assert_eq!(ours.2, theirs.2, "{name}: input");
        assert_eq!(ours.3, theirs.3, "{name}: output");
        checked += 1;
    }
    for graph_net in [
        "lenet-bn",
        "resnet",
        "googlenet-small",
        "densenet-small",
        "mobilenet-small",
    ] {
        assert!(zoo.contains_key(graph_net), "{graph_net} is not in zoo_keys.json");
    }
    assert!(checked >= 8, "{checked} nets checked");
}

/// 11.2M parameters: built on the heap (never on the stack), run once in
/// eval mode from PyTorch's initial state, its logits finite.
#[test]
fn full_size_resnet18_builds_on_the_heap_and_runs() {
    let mut net = ResNet18::boxed_zeroed();
    let mut rng = cnn_runtime::init::Rng::new(18);
    cnn_runtime::init::xavier_uniform(ResNet18::TENSORS, net.params_mut(), &mut rng);
    cnn_runtime::init::buffers(ResNet18::BUFFERS, net.buffers_mut());
    assert_eq!(ResNet18::PARAM_COUNT, 11_178_378);
    let x: Vec<f32> = (0..ResNet18::INPUT_LEN).map(|i| (i % 97) as f32 / 97.0).collect();
    let mut y = vec![f32::NAN; ResNet18::OUTPUT_LEN];
    net.forward_batch(&x, &mut y);
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
}

/// `summary()` of a nested net shows PyTorch's module names, indented one
/// step per level; a chain's keeps its plain layout.
#[test]
fn summary_shows_module_names_of_nested_nets() {
    let text = models::ResNet::summary();
    let header = text.lines().nth(1).expect("a header line");
    assert!(header.contains("module"), "{text}");
    let row = |module: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(module))
            .unwrap_or_else(|| panic!("no row for {module}:\n{text}"))
    };
    let stem = row("0.0");
    let block = row("1.0.conv1");
    let column = |line: &str, module: &str| line.find(module).expect("the module name");
    assert_eq!(column(block, "1.0.conv1"), column(stem, "0.0") + 2, "{text}");
    assert!(row("2.0.conv3").contains("conv(_, 32, 1, stride = 2)"), "{text}");
    assert!(!models::LeNet::summary().contains("module"));
}

/// `Network::forward_one` (batch-1 inference for generic code) is the
/// generated `forward_with`, bit for bit, and agrees with the batched path
/// on every zoo net (which may take other kernels: im2col and GEMM).
#[test]
fn boxed_zeroed_never_builds_a_net_on_the_stack() {
    struct Check;
    impl NetVisitor for Check {
        type Output = ();
        fn visit<N: Network>(self) {
            let net = cnn_runtime::train::boxed_zeroed::<N>();
            assert!(
                net.params().iter().chain(net.buffers()).all(|&v| v == 0.0),
                "{}",
                N::NAME
            );
        }
    }
    // `Box::new(N::zeroed())`, as the generic constructor was, builds the
    // net on the stack first in a debug build (CI's): AlexNetSmall's 2.5 MB
    // overflowed a test thread. This thread has 256 KiB for nets of up to
    // 45 MB (ResNet18, checked too).
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            for entry in models::NETS {
                models::with_net(entry.name, Check).expect("a registered net");
            }
            Check.visit::<ResNet18>();
        })
        .expect("a thread")
        .join()
        .expect("every net built on the heap");
}

#[test]
fn packed_inference_is_forward_batch_bit_for_bit_for_every_net() {
    struct Check;
    impl NetVisitor for Check {
        type Output = usize;
        fn visit<N: Network>(self) -> usize {
            let mut net = cnn_runtime::train::boxed_zeroed::<N>();
            let mut rng = cnn_runtime::init::Rng::new(11);
            cnn_runtime::init::xavier_uniform(N::TENSORS, net.params_mut(), &mut rng);
            // Running statistics away from (0, 1), so a fold changes the
            // weights: means near 0 (larger ones silence every ReLU),
            // variances from 0.5 to 1.5.
            cnn_runtime::init::buffers(N::BUFFERS, net.buffers_mut());
            for v in net.buffers_mut() {
                *v = match *v {
                    0.0 => 0.2 * (rng.next_f32() - 0.5),
                    1.0 => 0.5 + rng.next_f32(),
                    other => other,
                };
            }
            for n in [1, 7] {
                let x: Vec<f32> = (0..n * N::INPUT_LEN).map(|_| rng.next_f32()).collect();
                let mut plain = vec![f32::NAN; n * N::OUTPUT_LEN];
                cnn_runtime::train::forward_batch(&*net, &x, &mut plain);
                let mut packed = vec![f32::NAN; n * N::OUTPUT_LEN];
                cnn_runtime::train::Packed::new(&*net).forward_batch(&x, &mut packed);
                assert!(
                    plain.iter().zip(&packed).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} at {n} images: {plain:?} vs packed {packed:?}",
                    N::NAME
                );
                // The outputs depend on the input (no layer silenced it).
                assert!(
                    n == 1 || plain[..N::OUTPUT_LEN] != plain[N::OUTPUT_LEN..2 * N::OUTPUT_LEN],
                    "{}: the same outputs for two images: {plain:?}",
                    N::NAME
                );
            }
            N::PACKED_LEN
        }
    }
    for entry in models::NETS {
        let packed = models::with_net(entry.name, Check).expect("a registered net");
        // Every net with a batch norm after a conv packs something.
        let folds = entry.name == "resnet" || entry.name.ends_with("-bn") || entry.name == "mobilenet-small";
        assert!(!folds || packed > 0, "{}: nothing packed", entry.name);
    }
}

#[test]
fn forward_one_is_forward_with_for_every_net() {
    struct Check;
    impl NetVisitor for Check {
        type Output = ();
        fn visit<N: Network>(self) {
            let mut net = cnn_runtime::train::boxed_zeroed::<N>();
            let mut rng = cnn_runtime::init::Rng::new(7);
            cnn_runtime::init::xavier_uniform(N::TENSORS, net.params_mut(), &mut rng);
            cnn_runtime::init::buffers(N::BUFFERS, net.buffers_mut());
            let x: Vec<f32> = (0..N::INPUT_LEN).map(|_| rng.next_f32()).collect();
            // Scratch left over from another call must not matter.
            let mut scratch = vec![f32::NAN; N::INFER_SCRATCH_LEN];
            let mut one = vec![f32::NAN; N::OUTPUT_LEN];
            net.forward_one(&x, &mut one, &mut scratch);
            let mut batched = vec![f32::NAN; N::OUTPUT_LEN];
            cnn_runtime::train::forward_batch(&*net, &x, &mut batched);
            for (a, b) in one.iter().zip(&batched) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{}: {one:?} vs {batched:?}",
                    N::NAME
                );
            }
        }
    }
    for entry in models::NETS {
        models::with_net(entry.name, Check).expect("a registered net");
    }
    let net = models::LeNet::init_xavier(3);
    let x: [f32; models::LeNet::INPUT_LEN] = core::array::from_fn(|i| (i % 13) as f32 / 13.0);
    let mut out = [0.0f32; models::LeNet::OUTPUT_LEN];
    let mut scratch = vec![0.0f32; models::LeNet::INFER_SCRATCH_LEN];
    Network::forward_one(&net, &x, &mut out, &mut scratch);
    assert_eq!(out, net.forward(&x));
}
