//! The firmware-shaped crate `models/embedded-lenet` (`#![no_std]`, no
//! `alloc`, `panic = "abort"`, weights baked into read-only memory, libm
//! maths) built as a static library, linked into a C program, and checked
//! against the `std` path: same classes, logits and training losses within
//! libm-versus-std rounding.

use cnn_runtime::data::{load_split, Split};
use cnn_runtime::optim::{SgdConfig, SgdWith};
use cnn_runtime::Target;
use models::{LeNet, LeNetGrads};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The C harness linked against the static library, built once per run.
fn harness() -> PathBuf {
    static HARNESS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HARNESS.get_or_init(build_harness).clone()
}

/// Builds the static library and links the C harness.
fn build_harness() -> PathBuf {
    let crate_dir = root().join("models/embedded-lenet");
    let target = crate_dir.join("target");
    // Its own workspace and target dir: no lock shared with this test run.
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(crate_dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target),
    );
    let harness = target.join("harness");
    run(Command::new("cc")
        .arg(crate_dir.join("host/main.c"))
        .arg(target.join("release/libembedded_lenet.a"))
        .args(["-lm", "-o"])
        .arg(&harness));
    harness
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn no_std_build_matches_the_pytorch_fixture() {
    // The same fixture the std build is checked against (tests/parity.rs),
    // through the no_std build with libm maths.
    let fx = cnn_tests::load("lenet");
    let mut net = Box::new(LeNet::zeroed());
    net.load_json_str(&fx.weights_json).unwrap();
    let harness = harness();
    let dir = harness.parent().unwrap().join("fixture-data");
    std::fs::create_dir_all(&dir).unwrap();
    write_f32(&dir.join("params.f32"), net.params());
    write_f32(&dir.join("images.f32"), &fx.input);
    let output = run(Command::new(&harness)
        .arg("fixture")
        .arg(dir.join("params.f32"))
        .arg(dir.join("images.f32"))
        .arg(fx.batch.to_string()));
    let logits: Vec<f32> = output
        .lines()
        .flat_map(|l| {
            l.split(' ')
                .skip(3)
                .map(|v| v.parse::<f32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    cnn_tests::assert_close("no_std LeNet forward", &logits, &fx.output, 1e-5, 1e-6);
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 + 1e-4 * b.abs()
}

#[test]
fn static_library_matches_the_std_path() {
    // Built once for both tests: each linking its own copy raced, one test
    // running the harness while the other was still writing it.
    let harness = harness();
    let data = load_split(&root().join("models/data/fashion-mnist-sample"), Split::Test).unwrap();
    let n = 16;
    let images = &data.images[..n * LeNet::INPUT_LEN];
    let labels = &data.labels[..n];
    let dir = harness.parent().unwrap().join("harness-data");
    std::fs::create_dir_all(&dir).unwrap();
    write_f32(&dir.join("images.f32"), images);
    std::fs::write(dir.join("labels.u8"), labels).unwrap();
    let (steps, lr) = (6, 0.1f32);
    let output = run(Command::new(&harness)
        .arg(dir.join("images.f32"))
        .arg(dir.join("labels.u8"))
        .args([n.to_string(), steps.to_string(), lr.to_string()]));

    // The std path, from the same weights file.
    let mut net = Box::new(LeNet::zeroed());
    net.load_safetensors_file(root().join("models/weights/lenet-fashion.safetensors"))
        .unwrap();
    let lines: Vec<Vec<&str>> = output.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        lines[0][1..],
        [
            LeNet::INFER_SCRATCH_BYTES.to_string(),
            LeNet::TRAIN_SCRATCH_BYTES.to_string(),
            LeNet::PARAM_BYTES.to_string()
        ]
    );

    let check = |tag: &str, net: &LeNet| {
        let mut correct = 0;
        for (i, x) in images.chunks(LeNet::INPUT_LEN).enumerate() {
            let line = lines
                .iter()
                .find(|l| l[0] == tag && l[1] == i.to_string())
                .expect("harness line");
            let expected = net.forward(x.try_into().unwrap());
            let logits: Vec<f32> = line[3..].iter().map(|v| v.parse().unwrap()).collect();
            for (a, b) in logits.iter().zip(&expected) {
                assert!(close(*a, *b), "{tag} image {i}: static library {a}, std {b}");
            }
            let class: usize = line[2].parse().unwrap();
            assert_eq!(class, cnn_runtime::train::argmax(&expected), "{tag} image {i}");
            correct += usize::from(class == usize::from(labels[i]));
        }
        correct
    };
    let correct = check("baked", &net);
    assert!(
        correct >= 10,
        "the trained weights classify {correct} of {n} test images"
    );

    // On-device training: the same SGD steps on the std path.
    let mut grads = Box::new(LeNetGrads::zeroed());
    let mut scratch = vec![0.0; LeNet::TRAIN_SCRATCH_LEN];
    for s in 0..steps {
        let x = &images[s * LeNet::INPUT_LEN..(s + 1) * LeNet::INPUT_LEN];
        let mut opt = SgdWith::new(SgdConfig::new(lr), &mut []);
        let loss = net.train_step_with(
            x.try_into().unwrap(),
            Target::Classes(&[labels[s]]),
            &mut grads,
            (&mut scratch[..]).try_into().unwrap(),
            &mut opt,
        );
        let line = lines
            .iter()
            .find(|l| l[0] == "loss" && l[1] == s.to_string())
            .expect("loss line");
        let theirs: f32 = line[2].parse().unwrap();
        assert!(
            close(theirs, loss),
            "step {s}: static library loss {theirs}, std {loss}"
        );
    }
    check("trained", &net);
}
