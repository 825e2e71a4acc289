//! End-to-end tests of the `cnn` binary: summary, a short training run on
//! the Fashion-MNIST sample (then eval, infer and a new run from its
//! weights), the NaN stop, determinism, one clean `error:` line for bad
//! input, and (at the end) checkpoints and resume, the run directory's
//! lock, outputs published as one set, and bounded option values.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The sample shipped with the crate: 5,000 train and 1,000 test images.
fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-sample")
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cnn-cli-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cnn` with `args`, never picking up a data set from the environment.
fn cnn(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnn"));
    cmd.args(args).env_remove("CNN_DATA");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run cnn")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Runs `args`, expects exit code 1 and exactly one stderr line, an
/// `error:` containing every one of `needles`; returns that line.
fn expect_error(args: &[&str], needles: &[&str]) -> String {
    let out = run(&mut cnn(args));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "cnn {args:?}\nstderr: {err}");
    assert!(!err.contains("panicked"), "cnn {args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "cnn {args:?}: expected one stderr line, got {err}"
    );
    assert!(lines[0].starts_with("error: "), "cnn {args:?}: {err}");
    for needle in needles {
        assert!(lines[0].contains(needle), "cnn {args:?}: {needle:?} not in {err}");
    }
    lines[0].to_owned()
}

/// The `test accuracy: 0.xxxx ...` line of a train or eval output.
fn accuracy_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("test accuracy: "))
        .unwrap_or_else(|| panic!("no test accuracy line in:\n{text}"))
}

fn accuracy(text: &str) -> f64 {
    let line = accuracy_line(text);
    line["test accuracy: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad accuracy line {line:?}"))
}

/// `(epoch, train_loss, test_acc)` of each row of `metrics.csv`.
fn metrics(path: &Path) -> Vec<(usize, f64, f64)> {
    let csv = std::fs::read_to_string(path).expect("read metrics.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,train_loss,train_acc,test_acc,examples_per_sec,elapsed_s")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "bad metrics row {l:?}");
            (
                f[0].parse().expect("epoch"),
                f[1].parse().expect("loss"),
                f[3].parse().expect("test acc"),
            )
        })
        .collect()
}

/// A raw IDX images file: `count` images of `rows x cols` pixels.
fn idx_images(count: u32, rows: u32, cols: u32, pixel: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [0x0000_0803u32, count, rows, cols] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend((0..(count * rows * cols) as usize).map(pixel));
    bytes
}

/// A raw IDX labels file.
fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [0x0000_0801u32, labels.len() as u32] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(labels);
    bytes
}

#[test]
fn summary_prints_the_layer_table() {
    let out = run(&mut cnn(&["summary", "lenet"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "[6, 28, 28]",
        "[6, 14, 14]",
        "[16, 10, 10]",
        "[16, 5, 5]",
        "[400]",
        "[120]",
        "[84]",
        "[10]",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(text.contains("61,706 parameters"), "{text}");

    let out = run(&mut cnn(&["summary"]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("lenet ") && text.contains("lenet-relu"), "{text}");
    assert!(text.contains("LeNetRelu"), "{text}");
}

/// Trains briefly on the sample, then evaluates, classifies and resumes
/// from the weights it wrote.
#[test]
fn train_eval_infer_resume() {
    let dir = TempDir::new("train");
    let out_dir = dir.path("run");
    let data = sample_dir();
    let common = [
        "--data",
        path_str(&data),
        "--net",
        "lenet-relu",
        "--limit-train",
        "2000",
        "--limit-test",
        "500",
        "--batch-size",
        "64",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--out",
        path_str(&out_dir),
    ];
    let out = run(cnn(&["train", "--epochs", "2"]).args(common));
    let text = stdout(&out);
    assert!(out.status.success(), "stdout:\n{text}\nstderr:\n{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("data: Fashion-MNIST, ")
            && first.contains("first 2,000 of 5,000 train, first 500 of 1,000 test"),
        "first line: {first}"
    );

    let rows = metrics(&out_dir.join("metrics.csv"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[1].1 < rows[0].1, "loss did not fall: {rows:?}");
    // Seeds 0..8, 1 or 2 threads, give 0.68..0.75 here; chance is 0.1.
    let acc = accuracy(&text);
    assert!(acc > 0.55, "final test accuracy {acc}\n{text}");
    assert!((acc - rows[1].2).abs() < 1e-4, "summary {acc} vs csv {rows:?}");
    for f in [
        "weights.json",
        "weights.safetensors",
        "metrics.csv",
        "training.svg",
    ] {
        let path = out_dir.join(f);
        assert!(path.is_file(), "{f} not written");
        assert!(text.contains(path_str(&path)), "{f} not reported:\n{text}");
    }
    let svg = std::fs::read_to_string(out_dir.join("training.svg")).expect("read svg");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
    assert!(
        text.contains("Ankle boot") && text.contains("most often mistaken for"),
        "{text}"
    );

    // Eval reports the same accuracy, from either weights file.
    for weights in ["weights.safetensors", "weights.json"] {
        let w = out_dir.join(weights);
        let out = run(&mut cnn(&[
            "eval",
            "--net",
            "lenet-relu",
            "--weights",
            path_str(&w),
            "--data",
            path_str(&data),
            "--limit-test",
            "500",
        ]));
        let eval = stdout(&out);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(accuracy_line(&eval), accuracy_line(&text), "eval of {weights}");
    }

    // LeNet has the same tensor shapes: the safetensors file names the net
    // it came from, so giving it to the wrong one is an error, not garbage.
    let wrong = expect_error(
        &[
            "eval",
            "--net",
            "lenet",
            "--weights",
            path_str(&out_dir.join("weights.safetensors")),
            "--data",
            path_str(&data),
        ],
        &[
            "weights.safetensors",
            "LeNetRelu",
            "not LeNet",
            "pass --net lenet-relu",
        ],
    );
    assert!(!wrong.contains("accuracy"), "{wrong}");

    // Infer on the (gzipped) test images: one line per image.
    let out = run(&mut cnn(&[
        "infer",
        "--net",
        "lenet-relu",
        "--weights",
        path_str(&out_dir.join("weights.safetensors")),
        path_str(&data.join("t10k-images-idx3-ubyte.gz")),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1000);
    for (i, line) in lines.iter().enumerate() {
        let mut parts = line.splitn(3, ' ');
        assert_eq!(parts.next(), Some(i.to_string().as_str()), "{line}");
        let class: usize = parts.next().and_then(|c| c.parse().ok()).expect("class id");
        assert!(class < 10, "{line}");
        assert!(!parts.next().unwrap_or("").is_empty(), "no class name: {line}");
    }

    quantize_the_run(&dir, &out_dir.join("weights.safetensors"), accuracy(&text));

    // Start a new run from the JSON weights for one more epoch (weights
    // only: `--resume` continues a run from its checkpoint).
    let resumed = dir.path("resumed");
    let weights = out_dir.join("weights.json");
    let mut args = common.to_vec();
    let out_pos = args.len() - 1;
    args[out_pos] = path_str(&resumed);
    let out = run(cnn(&["train", "--epochs", "1", "--init-weights", path_str(&weights)]).args(&args));
    let again = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(again.contains("weights: loaded from"), "{again}");
    let rows = metrics(&resumed.join("metrics.csv"));
    assert_eq!(rows.len(), 1);
    assert!(accuracy(&again) > 0.55, "{again}");
}

/// `cnn quantize` on a trained LeNet-ReLU (float test accuracy
/// `float_accuracy` on the sample's first 500 test images): the int8 file
/// loads into the int8 twin, whose predictions give the accuracy the
/// command printed, close to float's; bad values are errors that write
/// nothing.
fn quantize_the_run(dir: &TempDir, weights: &Path, float_accuracy: f64) {
    let data = sample_dir();
    let int8_file = dir.path("lenet-relu.int8.safetensors");
    let args = |calibration: &'static str, out: &Path| {
        let mut cmd = cnn(&["quantize", "--net", "lenet-relu", "--weights", path_str(weights)]);
        cmd.args([
            "--data",
            path_str(&data),
            "--limit-test",
            "500",
            "--calibration",
            calibration,
        ]);
        cmd.args(["--out", path_str(out)]);
        cmd
    };
    let out = run(&mut args("300", &int8_file));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let line = text
        .lines()
        .find(|l| l.starts_with("test accuracy (500 images): float "))
        .unwrap_or_else(|| panic!("no accuracy line in:\n{text}"));
    let numbers: Vec<f64> = line.split([' ', ',']).filter_map(|w| w.parse().ok()).collect();
    let (float, int8) = (numbers[0], numbers[1]);
    assert!(
        (float - float_accuracy).abs() < 1e-4,
        "{line} vs {float_accuracy}"
    );
    assert!((int8 - float).abs() <= 0.03, "{line}");
    assert!(text.contains("calibration: 300 training images"), "{text}");

    // The file: the int8 twin loads it and predicts what the command said.
    let net: models::LeNetReluInt8 =
        cnn_runtime::weights::int8::load_file(&int8_file).expect("the int8 file loads");
    let bytes = std::fs::read(&int8_file).unwrap();
    let meta = cnn_runtime::weights::safetensors_metadata(&bytes).unwrap();
    assert_eq!(meta.get("cnn.net").map(String::as_str), Some("LeNetRelu"));
    assert_eq!(meta.get("cnn.format").map(String::as_str), Some("int8"));
    let test = cnn_runtime::data::load_split(&data, cnn_runtime::data::Split::Test)
        .unwrap()
        .take(500);
    let predicted = cnn_runtime::int8::calibrate::predict(&net, &test.images);
    let correct = predicted
        .iter()
        .zip(&test.labels)
        .filter(|(&p, &l)| p == usize::from(l))
        .count();
    assert!(
        (correct as f64 / 500.0 - int8).abs() < 1e-4,
        "{correct} of 500 vs {line}"
    );

    // More calibration images than training images: an error, no file.
    let missing = dir.path("none.int8.safetensors");
    let out = run(&mut args("5001", &missing));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--calibration 5001: the training set has only 5,000 images"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists(), "an error wrote {}", missing.display());
    // The float weights are not overwritten, and a float net's weights
    // are not quantized as another net's.
    expect_error(
        &[
            "quantize",
            "--net",
            "lenet-relu",
            "--weights",
            path_str(weights),
            "--out",
            path_str(weights),
        ],
        &["that is the float weights file"],
    );
    expect_error(
        &[
            "quantize",
            "--net",
            "lenet",
            "--weights",
            path_str(weights),
            "--out",
            path_str(&missing),
        ],
        &["LeNetRelu", "not LeNet"],
    );
    assert!(!missing.exists());
}

#[test]
fn diverging_training_stops_and_keeps_good_weights() {
    let dir = TempDir::new("nan");
    let out_dir = dir.path("run");
    let data = sample_dir();
    let args = [
        "train",
        "--data",
        path_str(&data),
        "--net",
        "lenet-relu",
        "--lr",
        "1e30",
        "--epochs",
        "2",
        "--limit-train",
        "600",
        "--limit-test",
        "100",
        "--out",
        path_str(&out_dir),
    ];
    let line = expect_error(&args, &["epoch 1, step", "--lr", "weights.json"]);
    assert!(line.contains("NaN") || line.contains("inf"), "{line}");
    let weights = out_dir.join("weights.json");
    assert!(weights.is_file());
    assert!(out_dir.join("metrics.csv").is_file());
    let out = run(&mut cnn(&[
        "eval",
        "--net",
        "lenet-relu",
        "--weights",
        path_str(&weights),
        "--data",
        path_str(&data),
        "--limit-test",
        "100",
    ]));
    assert!(
        out.status.success(),
        "saved weights do not load: {}",
        stderr(&out)
    );
}

#[test]
fn same_seed_same_weights() {
    let dir = TempDir::new("determinism");
    let data = sample_dir();
    let train = |name: &str, seed: &str| -> Vec<u8> {
        let out_dir = dir.path(name);
        let out = run(&mut cnn(&[
            "train",
            "--data",
            path_str(&data),
            "--epochs",
            "2",
            "--limit-train",
            "300",
            "--limit-test",
            "50",
            "--batch-size",
            "64",
            "--threads",
            "1",
            "--seed",
            seed,
            "--out",
            path_str(&out_dir),
        ]));
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(out_dir.join("weights.json")).expect("read weights")
    };
    let a = train("a", "7");
    let b = train("b", "7");
    assert!(a == b, "same seed, different weights.json");
    let c = train("c", "8");
    assert!(a != c, "different seeds, same weights.json");
}

/// `CNN_MAX_ISA` caps the kernels, which the `net:` line names; a value it
/// does not know is a warning, and the run goes on with the CPU's best.
#[test]
fn max_isa_caps_the_kernels() {
    let dir = TempDir::new("max-isa");
    let data = sample_dir();
    let train = |name: &str, value: &str| -> Output {
        let out_dir = dir.path(name);
        run(cnn(&[
            "train",
            "--data",
            path_str(&data),
            "--epochs",
            "1",
            "--limit-train",
            "128",
            "--limit-test",
            "50",
            "--out",
            path_str(&out_dir),
        ])
        .env("CNN_MAX_ISA", value))
    };
    let out = train("baseline", "Baseline");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(", baseline kernels, seed 0\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(stderr(&out), "");
    let out = train("bogus", "sse9");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: CNN_MAX_ISA=sse9 is not one of baseline, avx2, avx512"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(" kernels, seed 0\n"), "{}", stdout(&out));
}

/// `cnn` alone trains LeNet with the defaults, on the data `CNN_DATA` names,
/// into `runs/lenet`.
#[test]
fn no_arguments_means_train_with_defaults() {
    let dir = TempDir::new("defaults");
    let data = dir.path("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let labels: Vec<u8> = (0..12u8).map(|i| i % 10).collect();
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(data.join(name), bytes).expect("write");
    write(
        "train-images-idx3-ubyte",
        idx_images(12, 28, 28, |i| (i * 7 % 256) as u8),
    );
    write("train-labels-idx1-ubyte", idx_labels(&labels));
    write(
        "t10k-images-idx3-ubyte",
        idx_images(4, 28, 28, |i| (i * 3 % 256) as u8),
    );
    write("t10k-labels-idx1-ubyte", idx_labels(&labels[..4]));

    let out = run(Command::new(env!("CARGO_BIN_EXE_cnn"))
        .env("CNN_DATA", &data)
        .current_dir(&dir.0));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let first = text.lines().next().unwrap_or("");
    assert!(first.contains("from CNN_DATA; 12 train, 4 test"), "{first}");
    assert!(
        text.contains("net: LeNet (61,706 parameters), SGD lr 0.9, batch 256, 10 epochs"),
        "{text}"
    );
    assert_eq!(metrics(&dir.path("runs/lenet/metrics.csv")).len(), 10);

    // A CNN_DATA that does not hold the files is an error, not a fall-back.
    let out = run(Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args([
            "eval",
            "--weights",
            path_str(&dir.path("runs/lenet/weights.json")),
        ])
        .env("CNN_DATA", dir.path("nowhere")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
}

/// README's main command on a clone without the full data set trains on
/// the embedded sample with the sample recipe, says so in its first lines,
/// and leaves chance level (0.10) far behind: at least 0.75 test accuracy
/// (seeds 0-3 measured 0.806-0.827 at 2 threads). `--sample` forces the
/// sample even where the full data set is installed.
#[test]
fn the_default_run_on_the_sample_learns() {
    let dir = TempDir::new("sample-recipe");
    let out_dir = dir.path("out");
    let out = run(&mut cnn(&[
        "train",
        "--sample",
        "--threads",
        "2",
        "--out",
        path_str(&out_dir),
    ]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("data: embedded Fashion-MNIST sample (5,000 train, 1,000 test)")
            && lines[0].contains("apt-get install dataset-fashion-mnist")
            && lines[0].ends_with("or CNN_DATA=DIR"),
        "{text}"
    );
    assert_eq!(
        lines[1],
        "recipe: the sample recipe: Adam lr 0.003, batch 64, 20 epochs; \
         D2L's (SGD lr 0.9, batch 256, 10 epochs) needs the full set"
    );
    assert!(
        lines[2].starts_with("net: LeNet (61,706 parameters), Adam lr 0.003, batch 64, 20 epochs, 2 threads"),
        "{text}"
    );
    let rows = metrics(&out_dir.join("metrics.csv"));
    assert_eq!(rows.len(), 20);
    let final_acc = accuracy(&text);
    assert!(
        final_acc >= 0.75,
        "sample recipe reached only {final_acc}:\n{text}"
    );
    assert!(
        (rows[19].2 - final_acc).abs() < 1e-4,
        "the last epoch's test accuracy is the final one"
    );
}

#[test]
fn bad_values_are_one_line_errors() {
    let data = sample_dir();
    let d = path_str(&data);
    expect_error(
        &["train", "--epochs", "0", "--data", d],
        &["--epochs", "at least 1"],
    );
    expect_error(&["train", "--lr", "nan", "--data", d], &["--lr", "NaN"]);
    expect_error(&["train", "--lr=-1", "--data", d], &["--lr"]);
    expect_error(&["train", "--lr", "inf", "--data", d], &["--lr"]);
    expect_error(&["train", "--batch-size", "0"], &["--batch-size"]);
    expect_error(&["train", "--threads", "0"], &["--threads"]);
    expect_error(&["train", "--limit-train", "0"], &["--limit-train"]);
    expect_error(&["train", "--momentum", "1.5"], &["--momentum"]);
    expect_error(
        &["train", "--optimizer", "adam", "--momentum", "0.9"],
        &["--momentum"],
    );
    expect_error(
        &["eval", "--weights", "w.json", "--limit-test", "0"],
        &["--limit-test"],
    );

    // Usage errors are clap's (exit code 2), still without a panic.
    let out = run(&mut cnn(&["train", "--net", "vgg16"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lenet-relu"), "{}", stderr(&out));
}

#[test]
fn bad_files_are_one_line_errors() {
    let dir = TempDir::new("bad-files");
    let data = sample_dir();
    let d = path_str(&data);
    let eval = |weights: &Path, needles: &[&str]| {
        expect_error(
            &[
                "eval",
                "--weights",
                path_str(weights),
                "--data",
                d,
                "--limit-test",
                "10",
            ],
            needles,
        )
    };

    let missing = dir.path("missing.safetensors");
    eval(&missing, &["missing.safetensors"]);

    let truncated = dir.path("truncated.json");
    std::fs::write(
        &truncated,
        r#"{"0.weight": {"shape": [6, 1, 5, 5], "data": [0.1, "#,
    )
    .expect("write");
    eval(&truncated, &["truncated.json", "invalid weights file"]);

    let garbage = dir.path("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").expect("write");
    eval(&garbage, &["garbage.safetensors"]);

    let unknown = dir.path("weights.bin");
    std::fs::write(&unknown, b"").expect("write");
    eval(&unknown, &["weights.bin", ".json or .safetensors"]);

    // A real weights file with one shape changed.
    let good = dir.path("good");
    let out = run(&mut cnn(&[
        "train",
        "--data",
        d,
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--limit-test",
        "10",
        "--out",
        path_str(&good),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let json = std::fs::read_to_string(good.join("weights.json")).expect("read weights");
    let reshaped = json.replacen("\"shape\": [6, 1, 5, 5]", "\"shape\": [6, 1, 3, 3]", 1);
    assert_ne!(json, reshaped, "weights.json layout changed; update this test");
    let wrong_shape = dir.path("wrong-shape.json");
    std::fs::write(&wrong_shape, reshaped).expect("write");
    eval(
        &wrong_shape,
        &["wrong-shape.json", "0.weight", "[6, 1, 5, 5]", "[6, 1, 3, 3]"],
    );

    // A data directory without the files.
    let empty = dir.path("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    expect_error(
        &["train", "--data", path_str(&empty)],
        &[path_str(&empty), "train-images-idx3-ubyte"],
    );

    // infer on a file that is not IDX, and on images of the wrong size.
    let weights = good.join("weights.safetensors");
    let junk = dir.path("junk.idx");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\n this is not an IDX file").expect("write");
    expect_error(
        &["infer", "--weights", path_str(&weights), path_str(&junk)],
        &["junk.idx", "IDX"],
    );
    let big = dir.path("big-images.idx");
    std::fs::write(&big, idx_images(2, 32, 32, |_| 0)).expect("write");
    expect_error(
        &["infer", "--weights", path_str(&weights), path_str(&big)],
        &["big-images.idx", "32x32", "[1, 28, 28]"],
    );
    let missing_images = dir.path("no-such-images.idx");
    expect_error(
        &[
            "infer",
            "--weights",
            path_str(&weights),
            path_str(&missing_images),
        ],
        &["no-such-images.idx"],
    );
}

/// The zoo is listed with its training defaults, and `cnn summary NAME`
/// shows each net's table.
#[test]
fn summary_lists_the_zoo_with_its_recipes() {
    let out = run(&mut cnn(&["summary"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "nin ",
        "vgg-small ",
        "alexnet-small ",
        "AlexNetSmall",
        "train defaults: SGD lr 0.9, batch 256, 10 epochs",
        "train defaults: SGD lr 0.1, batch 256, 10 epochs",
        "train defaults: SGD lr 0.05 momentum 0.9, batch 256, 5 epochs",
        "train defaults: Adam lr 0.002",
        "on the sample: Adam lr 0.003, batch 64, 20 epochs",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    for (net, needles) in [
        (
            "nin",
            &[
                "global_avgpool",
                "dropout(0.5)",
                "[10, 2, 2]",
                "40,518 parameters",
            ][..],
        ),
        (
            "vgg-small",
            &["[64, 3, 3]", "[576]", "dropout(0.5)", "285,546 parameters"][..],
        ),
        (
            "alexnet-small",
            &[
                "conv(1, 32, 7, stride = 2, pad = 3)",
                "maxpool(3, stride = 2",
                "694,058 parameters",
            ][..],
        ),
    ] {
        let out = run(&mut cnn(&["summary", net]));
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        for needle in needles {
            assert!(text.contains(needle), "{net}: {needle} missing from:\n{text}");
        }
    }
}

/// Every zoo net trains one tiny epoch from `cnn train --net NAME` with its
/// recipe filling in what the command line leaves out; an explicit option
/// still wins, and another optimizer falls back to the generic defaults.
#[test]
fn zoo_nets_train_with_their_recipes() {
    let dir = TempDir::new("zoo");
    let data = sample_dir();
    for (net, args, header) in [
        (
            "nin",
            &[][..],
            "net: Nin (40,518 parameters), Adam lr 0.002, batch 32, 1 epoch,",
        ),
        (
            "vgg-small",
            &[][..],
            "net: VggSmall (285,546 parameters), SGD lr 0.05 momentum 0.9, batch 32, 1 epoch,",
        ),
        (
            "alexnet-small",
            &["--optimizer", "adam"][..],
            "net: AlexNetSmall (694,058 parameters), Adam lr 0.001, batch 32, 1 epoch,",
        ),
        (
            "vgg-small",
            &["--lr", "0.01"][..],
            "net: VggSmall (285,546 parameters), SGD lr 0.01 momentum 0.9, batch 32, 1 epoch,",
        ),
        (
            "lenet-bn",
            &[][..],
            "net: LeNetBn (44,878 parameters), SGD lr 0.1, batch 32, 1 epoch,",
        ),
    ] {
        let out_dir = dir.path(net);
        let out = run(cnn(&[
            "train",
            "--net",
            net,
            "--data",
            path_str(&data),
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--limit-train",
            "96",
            "--limit-test",
            "32",
            "--out",
            path_str(&out_dir),
        ])
        .args(args));
        let text = stdout(&out);
        assert!(out.status.success(), "{net}: {text}\n{}", stderr(&out));
        assert!(
            text.contains(header),
            "{net} {args:?}: {header:?} missing from:\n{text}"
        );
        let rows = metrics(&out_dir.join("metrics.csv"));
        assert_eq!(rows.len(), 1, "{net}: {rows:?}");
        assert!(rows[0].1.is_finite(), "{net}: {rows:?}");
    }
}

/// Loader hardening end to end: a weights file of the other format than its
/// extension, a repeated key, a corrupt gzip data file: each one `error:`
/// line naming the file.
#[test]
fn hostile_weights_and_data_files_are_one_line_errors() {
    let dir = TempDir::new("hostile");
    let data = sample_dir();
    let eval = |weights: &Path, needles: &[&str]| {
        let args = ["eval", "--weights", path_str(weights), "--data", path_str(&data)];
        expect_error(&args, needles)
    };

    let json_inside = dir.path("w.safetensors");
    std::fs::write(
        &json_inside,
        "\n{\"0.weight\": {\"shape\": [6, 1, 5, 5], \"data\": []}}\n",
    )
    .expect("write");
    eval(
        &json_inside,
        &["w.safetensors: this is a JSON weights file, not safetensors; rename it to .json"],
    );

    let header = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let safetensors = [
        &(header.len() as u64).to_le_bytes()[..],
        header.as_bytes(),
        &[0; 4],
    ]
    .concat();
    let safetensors_inside = dir.path("w.json");
    std::fs::write(&safetensors_inside, safetensors).expect("write");
    eval(
        &safetensors_inside,
        &["w.json: this is a safetensors file, not JSON weights; rename it to .safetensors"],
    );

    let entry = r#"{"shape": [6], "data": [0, 0, 0, 0, 0, 0]}"#;
    let twice = dir.path("twice.json");
    std::fs::write(&twice, format!("{{\"0.bias\": {entry}, \"0.bias\": {entry}}}")).expect("write");
    eval(&twice, &["twice.json: duplicate tensor \"0.bias\""]);

    // The sample with the checksum of its training images damaged.
    let damaged = dir.path("damaged");
    std::fs::create_dir_all(&damaged).expect("mkdir");
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        let mut bytes = std::fs::read(data.join(name)).expect("read sample");
        if name.starts_with("train-images") {
            let at = bytes.len() - 8;
            bytes[at] ^= 0xff;
        }
        std::fs::write(damaged.join(name), bytes).expect("write");
    }
    let out = dir.path("out");
    expect_error(
        &[
            "train",
            "--data",
            path_str(&damaged),
            "--epochs",
            "1",
            "--out",
            path_str(&out),
        ],
        &["train-images-idx3-ubyte.gz: corrupt gzip data: "],
    );
}

// Checkpoints, resume, the run directory's lock, outputs published as one
// set, and bounded option values.

/// `cnn train` of 3 epochs over the first 600 sample images (10 steps of 64
/// per epoch), 2 threads, seed 5, into `out`; `args` add to that.
fn short_run(out: &Path, args: &[&str]) -> Output {
    let data = sample_dir();
    run(cnn(&[
        "train",
        "--data",
        path_str(&data),
        "--limit-train",
        "600",
        "--limit-test",
        "200",
        "--batch-size",
        "64",
        "--threads",
        "2",
        "--seed",
        "5",
        "--out",
        path_str(out),
    ])
    .args(args))
}

/// The deterministic columns of `metrics.csv` as written: epoch,
/// train_loss, train_acc, test_acc (examples/s and elapsed are timings).
fn deterministic_metrics(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).expect("read metrics.csv");
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect()
}

/// Both directories hold the same run: weights byte for byte, and the
/// same deterministic metrics for `epochs` epochs.
#[track_caller]
fn assert_same_run(whole: &Path, resumed: &Path, epochs: usize) {
    // The safetensors header's metadata order varies from process to
    // process (a hash map): compare its tensor bytes, and all of the JSON.
    let tensor_bytes = |bytes: Vec<u8>| -> Vec<u8> {
        let header: [u8; 8] = bytes[..8].try_into().expect("safetensors header length");
        bytes[8 + u64::from_le_bytes(header) as usize..].to_vec()
    };
    for (file, part) in [
        ("weights.safetensors", tensor_bytes as fn(Vec<u8>) -> Vec<u8>),
        ("weights.json", |b| b),
    ] {
        let a = part(std::fs::read(whole.join(file)).expect("read weights"));
        let b = part(std::fs::read(resumed.join(file)).expect("read resumed weights"));
        assert!(
            a == b,
            "{file}: the resumed run's weights differ from the uninterrupted run's"
        );
    }
    let (a, b) = (deterministic_metrics(whole), deterministic_metrics(resumed));
    assert_eq!(a.len(), epochs, "{a:?}");
    assert_eq!(a, b, "metrics.csv differs");
}

#[track_caller]
fn expect_interrupted(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(!err.contains("panicked"), "{err}");
    let line = err.lines().last().unwrap_or("").to_owned();
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} not in {err}");
    }
    line
}

/// A run stopped after epoch 1, or in the middle of epoch 2 and again in
/// epoch 3, and resumed each time, ends bit for bit as the run never
/// stopped: weights and metrics, optimizer state and shuffle order
/// included. An interrupted run publishes nothing, holds no lock, and its
/// checkpoint already serves `cnn eval`.
fn resume_is_bit_identical(optimizer: &[&str]) {
    let dir = TempDir::new("resume");
    let whole = dir.path("whole");
    let out = short_run(&whole, &[&["--epochs", "3"], optimizer].concat());
    assert!(out.status.success(), "{}", stderr(&out));

    let part = dir.path("after-epoch");
    let out = short_run(
        &part,
        &[&["--epochs", "3", "--stop-after-epochs", "1"], optimizer].concat(),
    );
    let checkpoint = part.join("checkpoint.safetensors");
    expect_interrupted(
        &out,
        &[
            "stopped by --stop-after-epochs after epoch 1 of 3",
            path_str(&checkpoint),
            &format!("cnn train --resume {}", path_str(&part)),
        ],
    );
    assert!(
        !part.join("weights.json").exists(),
        "an interrupted run publishes nothing"
    );
    assert!(
        !part.join(".cnn-train.lock").exists(),
        "the lock outlived the run"
    );
    assert_eq!(deterministic_metrics(&whole).len(), 3);
    let net = match optimizer.iter().position(|&a| a == "--net") {
        Some(i) => &optimizer[i..i + 2],
        None => &[][..],
    };
    let eval = run(cnn(&[
        "eval",
        "--weights",
        path_str(&checkpoint),
        "--data",
        path_str(&sample_dir()),
        "--limit-test",
        "200",
    ])
    .args(net));
    assert!(eval.status.success(), "eval of a checkpoint: {}", stderr(&eval));
    // Options given with the run's own values are accepted.
    let out = run(&mut cnn(&[
        "train",
        "--resume",
        path_str(&part),
        "--batch-size",
        "64",
        "--seed",
        "5",
        "--threads",
        "2",
    ]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("weights: resumed from") && text.contains("after epoch 1 of 3"),
        "{text}"
    );
    assert_same_run(&whole, &part, 3);

    let part = dir.path("mid-epoch");
    let out = short_run(
        &part,
        &[&["--epochs", "3", "--stop-after-steps", "14"], optimizer].concat(),
    );
    expect_interrupted(&out, &["at epoch 2 of 3, step 4 of 10"]);
    let out = run(&mut cnn(&[
        "train",
        "--resume",
        path_str(&part),
        "--stop-after-steps",
        "25",
    ]));
    expect_interrupted(&out, &["at epoch 3 of 3, step 5 of 10"]);
    let out = run(&mut cnn(&["train", "--resume", path_str(&part)]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_run(&whole, &part, 3);
}

#[test]
fn resume_continues_sgd_with_momentum_bit_for_bit() {
    resume_is_bit_identical(&["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"]);
}

/// Batch norm's running statistics are part of the checkpoint and of the
/// published weights: a resumed run evaluates and saves exactly as the
/// uninterrupted one.
#[test]
fn resume_continues_batch_norm_bit_for_bit() {
    resume_is_bit_identical(&["--net", "lenet-bn"]);
}

#[test]
fn resume_continues_adam_bit_for_bit() {
    resume_is_bit_identical(&["--optimizer", "adam", "--lr", "0.003"]);
}

/// `--resume` keeps the run's recipe: another value given on the command
/// line is an error naming both; a weights file is not a run; and a new
/// run cannot overwrite an interrupted one.
#[test]
fn resume_refuses_another_recipe() {
    let dir = TempDir::new("resume-refuses");
    let part = dir.path("part");
    let out = short_run(
        &part,
        &["--epochs", "2", "--optimizer", "sgd", "--stop-after-epochs", "1"],
    );
    expect_interrupted(&out, &["after epoch 1 of 2"]);
    let p = path_str(&part);
    for (extra, needles) in [
        (&["--lr", "0.5"][..], &["--lr 0.5", "(--lr 0.9)"][..]),
        (&["--net", "lenet-relu"], &["--net lenet-relu", "(--net lenet)"]),
        (&["--batch-size", "32"], &["--batch-size 32", "(--batch-size 64)"]),
        (
            &["--optimizer", "adam"],
            &["--optimizer adam", "(--optimizer sgd)"],
        ),
        (&["--seed", "6"], &["--seed 6", "(--seed 5)"]),
        (
            &["--limit-train", "500"],
            &["--limit-train 500", "(--limit-train 600)"],
        ),
        (
            &["--limit-test", "100"],
            &["--limit-test 100", "(--limit-test 200)"],
        ),
        (&["--sample"], &["--sample", "--data"]),
        (
            &["--out", path_str(&dir.path("elsewhere"))],
            &["--out", "elsewhere"],
        ),
        (&["--epochs", "1"], &["--epochs 1", "already done 1 epoch"]),
    ] {
        let line = expect_error(&[&["train", "--resume", p][..], extra].concat(), needles);
        assert!(line.contains(p), "{line}");
    }
    let weights = dir.path("weights.json");
    std::fs::write(&weights, "{}").expect("write");
    expect_error(
        &["train", "--resume", path_str(&weights)],
        &["run directory", "--init-weights"],
    );
    expect_error(
        &["train", "--resume", path_str(&dir.path("nowhere"))],
        &["nowhere", "no such run directory"],
    );
    // The same command again, without --resume, would start over.
    let out = short_run(&part, &["--epochs", "2", "--optimizer", "sgd"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("holds a run that stopped after epoch 1 of 2") && err.contains("--resume"),
        "{err}"
    );
    // None of that touched the checkpoint: the run still finishes.
    let out = run(&mut cnn(&["train", "--resume", p]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(deterministic_metrics(&part).len(), 2);
    expect_error(&["train", "--resume", p], &["already finished its 2 epochs"]);
}

/// Ctrl-C lets the step finish, saves the checkpoint and exits with 130;
/// meanwhile the running training holds the directory against a second
/// one; the resumed run equals the uninterrupted one.
#[cfg(unix)]
#[test]
fn sigint_saves_a_checkpoint_that_resumes_exactly() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = TempDir::new("sigint");
    let data = sample_dir();
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--data",
            path_str(&data),
            "--limit-train",
            "300",
            "--limit-test",
            "50",
            "--batch-size",
            "32",
            "--threads",
            "2",
            "--optimizer",
            "adam",
            "--out",
            path_str(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let part = dir.path("part");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args(&part))
        .args(["--epochs", "100"])
        .env_remove("CNN_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cnn");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !part.join("checkpoint.safetensors").exists() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("no checkpoint.safetensors appeared in {}", part.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let second: Vec<String> = args(&part);
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    expect_error(
        &second,
        &["in use by another training", &format!("process {}", child.id())],
    );
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait for cnn");
    let line = expect_interrupted(&out, &["interrupted by SIGINT", "--resume"]);
    assert!(
        !part.join(".cnn-train.lock").exists(),
        "the lock outlived the run"
    );

    // "... after epoch E of 100" or "... at epoch E of 100, step S of 10".
    let (epoch_end, rest) = match line.split_once("after epoch ") {
        Some((_, rest)) => (true, rest),
        None => (false, line.split_once("at epoch ").expect("a position").1),
    };
    let e: usize = rest
        .split(' ')
        .next()
        .and_then(|e| e.parse().ok())
        .expect("epoch");
    let epochs = if epoch_end { e + 1 } else { e };
    let out = run(&mut cnn(&[
        "train",
        "--resume",
        path_str(&part),
        "--epochs",
        &epochs.to_string(),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let whole = dir.path("whole");
    let out = run(Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args(&whole))
        .args(["--epochs", &epochs.to_string()])
        .env_remove("CNN_DATA"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_run(&whole, &part, epochs);
}

/// SIGTERM stops a run as Ctrl-C does, with status 143.
#[cfg(unix)]
#[test]
fn sigterm_saves_a_checkpoint_and_exits_143() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = TempDir::new("sigterm");
    let out_dir = dir.path("run");
    let data = sample_dir();
    let mut child = cnn(&[
        "train",
        "--data",
        path_str(&data),
        "--limit-train",
        "128",
        "--limit-test",
        "20",
        "--epochs",
        "1000",
        "--out",
        path_str(&out_dir),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn cnn");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !out_dir.join("checkpoint.safetensors").exists() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("no checkpoint.safetensors appeared in {}", out_dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait for cnn");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.starts_with("interrupted by SIGTERM ") && err.contains("--resume"),
        "{err}"
    );
    assert!(
        !out_dir.join(".cnn-train.lock").exists(),
        "the lock outlived the run"
    );
}

/// A lock held by a live process refuses a second training; a dead
/// process's lock is taken over with a warning, and its temporary files
/// are removed (a live process's are not).
#[cfg(target_os = "linux")]
#[test]
fn a_locked_run_directory_is_refused_and_a_stale_lock_taken_over() {
    let dir = TempDir::new("lock");
    let out_dir = dir.path("run");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    let lock = out_dir.join(".cnn-train.lock");
    let data = sample_dir();
    let args = [
        "train",
        "--data",
        path_str(&data),
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--limit-test",
        "10",
        "--out",
        path_str(&out_dir),
    ];
    let me = std::process::id();
    std::fs::write(&lock, format!("{me}\n")).expect("write lock");
    expect_error(
        &args,
        &[
            "in use by another training",
            &format!("process {me}"),
            ".cnn-train.lock",
        ],
    );
    assert!(lock.exists() && !out_dir.join("weights.json").exists());

    let dead = {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    };
    std::fs::write(&lock, format!("{dead} 1\n")).expect("write lock");
    let stale = out_dir.join(format!(".weights.json.{dead}.0.tmp"));
    let live = out_dir.join(format!(".metrics.csv.{me}.3.tmp"));
    std::fs::write(&stale, "half a file").expect("write");
    std::fs::write(&live, "being written").expect("write");
    let out = run(&mut cnn(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "left by process {dead}, which no longer runs; taking it over"
        )),
        "{}",
        stderr(&out)
    );
    assert!(!stale.exists(), "a dead process's temporary file was kept");
    assert!(live.exists(), "a live process's temporary file was removed");
    assert!(!lock.exists(), "the lock outlived the run");
    assert!(out_dir.join("weights.json").is_file());
}

/// Nobody, root included, can create files in /proc: the run stops before
/// it loads data or trains.
#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_out_fails_before_loading_data() {
    let data = sample_dir();
    let out = run(&mut cnn(&[
        "train",
        "--data",
        path_str(&data),
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--limit-test",
        "10",
        "--out",
        "/proc",
    ]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: --out /proc is not writable"), "{err}");
    assert_eq!(stdout(&out), "", "data was loaded or training ran first");
}

/// When the new outputs cannot all be published (here `training.png` is a
/// directory), the previous set stays whole and the error names where the
/// new one is; a later run publishes a whole set again.
#[test]
fn a_failed_publish_keeps_the_previous_outputs_whole() {
    let dir = TempDir::new("publish");
    let out_dir = dir.path("run");
    let data = sample_dir();
    let train = |seed: &str| {
        run(&mut cnn(&[
            "train",
            "--data",
            path_str(&data),
            "--epochs",
            "1",
            "--limit-train",
            "128",
            "--limit-test",
            "20",
            "--threads",
            "2",
            "--seed",
            seed,
            "--out",
            path_str(&out_dir),
        ]))
    };
    let out = train("1");
    assert!(out.status.success(), "{}", stderr(&out));
    let kept = [
        "weights.json",
        "weights.safetensors",
        "metrics.csv",
        "training.svg",
    ];
    let before: Vec<Vec<u8>> = kept
        .iter()
        .map(|f| std::fs::read(out_dir.join(f)).expect("read output"))
        .collect();
    let png = out_dir.join("training.png");
    let _ = std::fs::remove_file(&png);
    std::fs::create_dir_all(png.join("in-the-way")).expect("mkdir");

    let out = train("2");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    for needle in [
        "cannot publish",
        "training.png",
        "previous outputs there are untouched",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
    for (f, old) in kept.iter().zip(&before) {
        let now = std::fs::read(out_dir.join(f)).expect("read output");
        assert!(&now == old, "{f} changed although publishing failed");
    }
    let staging = PathBuf::from(line.rsplit(" are in ").next().expect("staging dir"));
    let new = std::fs::read(staging.join("weights.json")).expect("the new weights are where the error says");
    assert!(new != before[0], "the staged weights are the old ones");
    let eval = run(&mut cnn(&[
        "eval",
        "--weights",
        path_str(&staging.join("weights.safetensors")),
        "--data",
        path_str(&data),
        "--limit-test",
        "20",
    ]));
    assert!(eval.status.success(), "{}", stderr(&eval));

    std::fs::remove_dir_all(&png).expect("rmdir");
    let out = train("2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not published"),
        "the leftover staging dir is not mentioned: {}",
        stderr(&out)
    );
    let published = std::fs::read(out_dir.join("weights.json")).expect("read");
    assert!(published == new, "seed 2 again gave other weights");
    assert!(png.is_file());
}

/// Option values are bounded before anything is sized from them, and
/// `--threads` is capped at 4 per core with a warning.
#[test]
fn option_values_are_bounded() {
    let dir = TempDir::new("bounds");
    let out_dir = dir.path("run");
    let o = path_str(&out_dir);
    for epochs in ["18446744073709551615", "100000000000", "100001"] {
        expect_error(
            &["train", "--sample", "--epochs", epochs, "--out", o],
            &["--epochs must be at most 100,000", epochs],
        );
    }
    expect_error(
        &["train", "--sample", "--batch-size", "1000000", "--out", o],
        &["--batch-size must be at most 65,536"],
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = sample_dir();
    let out = run(&mut cnn(&[
        "train",
        "--data",
        path_str(&data),
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--limit-test",
        "10",
        "--threads",
        "1000",
        "--out",
        o,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--threads 1000 is more than 4 per core"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!(", {} thread", 4 * cores)),
        "{}",
        stdout(&out)
    );
    let weights = out_dir.join("weights.safetensors");
    for args in [
        &["eval", "--data", path_str(&data), "--limit-test", "10"][..],
        &["infer", path_str(&data.join("t10k-images-idx3-ubyte.gz"))][..],
    ] {
        let out = run(cnn(args).args(["--weights", path_str(&weights), "--threads", "1000"]));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--threads 1000"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
