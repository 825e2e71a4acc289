//! The host side of `tools/firmware.sh`: reads what the Cortex-M firmware
//! (`models/firmware`) printed under QEMU, computes the same on the host's
//! `std` path, and checks that
//!
//! - the PyTorch LeNet fixture's logits match PyTorch's float64 outputs
//!   (1e-5 relative or 1e-6 absolute, as `tests/parity.rs`) and the mean of
//!   the per-example losses matches PyTorch's loss;
//! - every class equals the host's, and logits and training losses match the
//!   host's within libm-versus-std rounding (1e-5 + 1e-4 relative, as
//!   `tests/embedded.rs`);
//! - the same firmware printed the same bits on every CPU it ran on.
//!
//! ```text
//! cargo run -p cnn-tests --example firmware_host -- target/qemu/m4f-lenet.out ...
//! ```
//!
//! Each file's stem names the run in the messages. Exits non-zero if any
//! check fails; the last line is `firmware: N passed, N failed`.

use cnn_runtime::data::{load_split, Dataset, Split};
use cnn_runtime::optim::{SgdConfig, SgdWith};
use cnn_runtime::Target;
use models::{LeNet, LeNetGrads};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The residual net exactly as `tests/no-std` (which the firmware runs)
/// declares it; its `#![no_std]` only applies at a crate root.
#[allow(dead_code, unused_attributes)]
#[path = "../no-std/src/lib.rs"]
mod no_std_nets;
use no_std_nets::{Residual, ResidualGrads};

/// The firmware's instruction counter: timer ticks of 40 instructions.
const INSTRUCTIONS_PER_TICK: u64 = 40;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One firmware run: its lines split into fields.
struct Run {
    label: String,
    name: String,
    lines: Vec<Vec<String>>,
}

impl Run {
    fn read(path: &Path) -> Run {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .filter(|l: &Vec<String>| !l.is_empty())
            .collect();
        let name = lines
            .iter()
            .find(|l| l[0] == "firmware")
            .and_then(|l| l.get(1).cloned())
            .unwrap_or_default();
        let label = path.file_stem().unwrap().to_string_lossy().into_owned();
        Run { label, name, lines }
    }

    /// Lines that start with `tag`, without the tag.
    fn tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a [String]> + 'a {
        self.lines.iter().filter(move |l| l[0] == tag).map(|l| &l[1..])
    }

    /// The fields of the line `tag index ...`, after the index.
    fn indexed<'a>(&'a self, tag: &'a str, index: usize) -> Option<&'a [String]> {
        self.tagged(tag)
            .find(|l| l.first().is_some_and(|i| *i == index.to_string()))
            .map(|l| &l[1..])
    }

    /// The values a firmware prints as data, in order: what must be the
    /// same bits on every CPU.
    fn values(&self) -> Vec<&Vec<String>> {
        let tags = ["class", "fixture", "fixture_loss", "loss", "after", "int8"];
        self.lines
            .iter()
            .filter(|l| tags.contains(&l[0].as_str()))
            .collect()
    }
}

fn bits(s: &str) -> f32 {
    f32::from_bits(u32::from_str_radix(s, 16).unwrap_or_else(|_| panic!("not f32 bits: {s}")))
}

fn floats(fields: &[String]) -> Vec<f32> {
    fields.iter().map(|s| bits(s)).collect()
}

/// Firmware and host agree within libm-versus-std rounding.
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 + 1e-4 * b.abs()
}

/// The largest difference, and whether every pair is `close`.
fn compare(firmware: &[f32], host: &[f32]) -> (f32, bool) {
    let ok = firmware.len() == host.len() && firmware.iter().zip(host).all(|(&a, &b)| close(a, b));
    let worst = firmware
        .iter()
        .zip(host)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    (worst, ok)
}

#[derive(Default)]
struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("FAILED: {what}");
        }
    }
}

struct Host {
    test: Dataset,
}

impl Host {
    fn image(&self, i: usize) -> &[f32; LeNet::INPUT_LEN] {
        self.test.images[i * LeNet::INPUT_LEN..(i + 1) * LeNet::INPUT_LEN]
            .try_into()
            .unwrap()
    }

    fn crop(&self, i: usize, at: usize, size: usize) -> [f32; Residual::INPUT_LEN] {
        assert_eq!(
            size * size,
            Residual::INPUT_LEN,
            "the residual net's input is {size}x{size}"
        );
        let image = self.image(i);
        std::array::from_fn(|k| image[(at + k / size) * 28 + at + k % size])
    }
}

/// Checks the `class I LABEL PRED LOGITS..` lines against `host(i)`.
fn check_classes(
    run: &Run,
    host: &Host,
    checks: &mut Checks,
    logits_of: impl Fn(usize) -> Vec<f32>,
) -> String {
    let mut worst = 0.0f32;
    let (mut count, mut right) = (0, 0);
    for line in run.tagged("class") {
        let i: usize = line[0].parse().unwrap();
        let (label, class): (u8, usize) = (line[1].parse().unwrap(), line[2].parse().unwrap());
        let logits = floats(&line[3..]);
        let expected = logits_of(i);
        let (diff, ok) = compare(&logits, &expected);
        worst = worst.max(diff);
        checks.check(
            ok,
            format_args!("{}: image {i}: logits {logits:?}, host {expected:?}", run.label),
        );
        checks.check(
            class == cnn_runtime::train::argmax(&expected),
            format_args!(
                "{}: image {i}: class {class}, host {}",
                run.label,
                cnn_runtime::train::argmax(&expected)
            ),
        );
        checks.check(
            label == host.test.labels[i],
            format_args!(
                "{}: image {i}: label {label}, the sample says {}",
                run.label, host.test.labels[i]
            ),
        );
        count += 1;
        right += usize::from(class == usize::from(label));
    }
    checks.check(count > 0, format_args!("{}: no class lines", run.label));
    format!("{count} images, classes = host's ({right} labels right), logits within {worst:.1e}")
}

/// The `loss STEP IMAGE LOSS` lines: which test image each step trained
/// on, and the loss it returned.
fn steps(run: &Run) -> Vec<(usize, f32)> {
    run.tagged("loss")
        .map(|l| (l[1].parse().unwrap(), bits(&l[2])))
        .collect()
}

/// Checks the training losses against the host's, in order.
fn check_losses(run: &Run, host_losses: &[f32], checks: &mut Checks) -> String {
    let losses: Vec<f32> = steps(run).into_iter().map(|(_, loss)| loss).collect();
    let (worst, ok) = compare(&losses, host_losses);
    let (_, count) = sgd(run);
    checks.check(
        ok && losses.len() == count && count > 0,
        format_args!(
            "{}: training losses {losses:?} ({count} steps), host {host_losses:?}",
            run.label
        ),
    );
    let shown: Vec<String> = losses.iter().map(|l| format!("{l:.4}")).collect();
    format!(
        "{} SGD steps, losses = host's within {worst:.1e} ({})",
        losses.len(),
        shown.join(" ")
    )
}

fn check_after(run: &Run, host_logits: &[f32], checks: &mut Checks) {
    let after = run.indexed("after", 0).map(floats).unwrap_or_default();
    let (_, ok) = compare(&after, host_logits);
    checks.check(
        ok,
        format_args!(
            "{}: logits after training {after:?}, host {host_logits:?}",
            run.label
        ),
    );
}

/// `sgd LR STEPS`.
fn sgd(run: &Run) -> (f32, usize) {
    let line = run.tagged("sgd").next().expect("an sgd line");
    (bits(&line[0]), line[1].parse().unwrap())
}

fn lenet(run: &Run, host: &Host, checks: &mut Checks) -> String {
    let mut net = Box::new(LeNet::zeroed());
    net.load_safetensors_file(root().join("models/weights/lenet-fashion.safetensors"))
        .unwrap();
    check_classes(run, host, checks, |i| net.forward(host.image(i)).to_vec())
}

/// An int8 net of the int8 fixture `fixture`: every output equals
/// TensorFlow Lite Micro's for the same int8 input, and the class is its
/// first largest output.
fn int8_outputs(run: &Run, checks: &mut Checks, fixture: &str) -> String {
    let fx = cnn_tests::load_int8(fixture);
    let images = fx["images"].as_array().unwrap();
    let lines: Vec<&[String]> = run.tagged("int8").collect();
    checks.check(!lines.is_empty(), format_args!("{}: no int8 outputs", run.label));
    let mut equal = 0;
    for line in &lines {
        let i: usize = line[0].parse().unwrap();
        let expected: Vec<i64> = cnn_tests::json_ints(&images[i]["output"]);
        let got: Vec<i64> = line[3..].iter().map(|v| v.parse().unwrap()).collect();
        let first_max = (0..expected.len()).fold(0, |b, k| if expected[k] > expected[b] { k } else { b });
        let label = images[i]["label"].as_u64().unwrap().to_string();
        let ok = got == expected && line[1] == label && line[2] == first_max.to_string();
        equal += usize::from(ok);
        checks.check(
            ok,
            format_args!(
                "{}: image {i}: int8 outputs {got:?} (class {}), TFLite Micro's {expected:?}",
                run.label, line[2]
            ),
        );
    }
    format!(
        "{equal} of {} images give TensorFlow Lite Micro's int8 outputs exactly",
        lines.len()
    )
}

fn lenet_train(run: &Run, host: &Host, checks: &mut Checks) -> String {
    let fx = cnn_tests::load("lenet");
    let mut net = Box::new(LeNet::zeroed());
    net.load_json_str(&fx.weights_json).unwrap();

    // PyTorch's float64 outputs, with parity.rs's tolerance, and the host.
    let mut logits = Vec::new();
    for i in 0..fx.batch {
        let line = run.indexed("fixture", i).unwrap_or_default();
        logits.extend(floats(line));
        let x = &fx.input[i * LeNet::INPUT_LEN..(i + 1) * LeNet::INPUT_LEN];
        let host_logits = net.forward(x.try_into().unwrap());
        let (_, ok) = compare(&floats(line), &host_logits);
        checks.check(
            ok,
            format_args!(
                "{}: fixture {i}: logits {line:?}, host {host_logits:?}",
                run.label
            ),
        );
    }
    let (rel, abs) = (1e-5, 1e-6);
    let mut worst = 0.0f64;
    let torch_ok = logits.len() == fx.output.len()
        && logits.iter().zip(&fx.output).all(|(&a, &e)| {
            let err = (f64::from(a) - e).abs();
            worst = worst.max(err);
            err <= abs || err <= rel * e.abs()
        });
    checks.check(
        torch_ok,
        format_args!(
            "{}: fixture logits {logits:?} are not within {rel:e} relative or {abs:e} absolute of PyTorch's {:?}",
            run.label, fx.output
        ),
    );

    // Per-example losses at the fixture's weights: their mean is PyTorch's.
    let mut grads = Box::new(LeNetGrads::zeroed());
    let mut scratch = vec![0.0; LeNet::TRAIN_SCRATCH_LEN];
    let mut sum = 0.0f64;
    for i in 0..fx.batch {
        let loss = run
            .indexed("fixture_loss", i)
            .map(|l| bits(&l[0]))
            .unwrap_or(f32::NAN);
        sum += f64::from(loss);
        let x = &fx.input[i * LeNet::INPUT_LEN..(i + 1) * LeNet::INPUT_LEN];
        let host_loss = net.loss_and_grad_with(
            x.try_into().unwrap(),
            Target::Classes(&[fx.labels[i]]),
            &mut grads,
            (&mut scratch[..]).try_into().unwrap(),
        );
        checks.check(
            close(loss, host_loss),
            format_args!(
                "{}: fixture example {i}: loss {loss}, host {host_loss}",
                run.label
            ),
        );
    }
    let mean = sum / fx.batch as f64;
    checks.check(
        (mean - fx.loss).abs() <= rel * fx.loss.abs(),
        format_args!("{}: fixture mean loss {mean}, PyTorch {}", run.label, fx.loss),
    );

    // The SGD steps on the std path.
    let (lr, _) = sgd(run);
    let mut opt = SgdWith::new(SgdConfig::new(lr), &mut []);
    let host_losses: Vec<f32> = steps(run)
        .into_iter()
        .map(|(i, _)| {
            net.train_step_with(
                host.image(i),
                Target::Classes(&[host.test.labels[i]]),
                &mut grads,
                (&mut scratch[..]).try_into().unwrap(),
                &mut opt,
            )
        })
        .collect();
    let trained = check_losses(run, &host_losses, checks);
    check_after(run, &net.forward(host.image(0)), checks);
    format!(
        "fixture logits = PyTorch float64 within {worst:.1e}, mean loss {mean:.6} (PyTorch {:.6}); {trained}",
        fx.loss
    )
}

fn residual(run: &Run, host: &Host, checks: &mut Checks) -> String {
    let init = run.tagged("init").next().expect("an init line");
    let (seed, at, size): (u64, usize, usize) = (
        init[0].parse().unwrap(),
        init[2].parse().unwrap(),
        init[3].parse().unwrap(),
    );
    let mut net = Box::new(Residual::init(seed));
    let classes = check_classes(run, host, checks, |i| {
        net.forward(&host.crop(i, at, size)).to_vec()
    });

    let (lr, _) = sgd(run);
    let mut opt = SgdWith::new(SgdConfig::new(lr), &mut []);
    let mut grads = Box::new(ResidualGrads::zeroed());
    let mut scratch = vec![0.0; Residual::TRAIN_SCRATCH_LEN];
    let host_losses: Vec<f32> = steps(run)
        .into_iter()
        .map(|(i, _)| {
            net.train_step_with(
                &host.crop(i, at, size),
                Target::Classes(&[host.test.labels[i]]),
                &mut grads,
                (&mut scratch[..]).try_into().unwrap(),
                &mut opt,
            )
        })
        .collect();
    let trained = check_losses(run, &host_losses, checks);
    check_after(run, &net.forward(&host.crop(0, at, size)), checks);
    format!("{classes}; {trained}")
}

fn main() {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    assert!(!paths.is_empty(), "usage: firmware_host OUTPUT...");
    let host = Host {
        test: load_split(&root().join("models/data/fashion-mnist-sample"), Split::Test).unwrap(),
    };
    let mut checks = Checks::default();
    let mut by_name: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for path in &paths {
        let run = Run::read(path);
        checks.check(
            run.lines.last().is_some_and(|l| l[0] == "ok"),
            format_args!("{}: the run did not end with `ok`", run.label),
        );
        for error in run.tagged("error") {
            checks.check(false, format_args!("{}: {}", run.label, error.join(" ")));
        }
        let calib = run
            .tagged("calib")
            .next()
            .map(|l| (l[0].parse::<u64>().unwrap(), l[1].parse::<u64>().unwrap()));
        checks.check(
            calib.is_some_and(|(instructions, ticks)| {
                (instructions / INSTRUCTIONS_PER_TICK).abs_diff(ticks) <= 2
            }),
            format_args!(
                "{}: calibration {calib:?}: not {INSTRUCTIONS_PER_TICK} instructions per tick",
                run.label
            ),
        );
        let counted = |kind: &str| {
            run.tagged("instr").any(|l| {
                l[0] == kind
                    && l[1].parse::<u64>().is_ok_and(|n| n > 0)
                    && l[2].parse::<u64>().is_ok_and(|n| n > 0)
            })
        };
        checks.check(
            counted("forward"),
            format_args!("{}: no instructions per forward pass", run.label),
        );
        checks.check(
            ["lenet", "lenet-int8", "residual-int8"].contains(&run.name.as_str()) || counted("train"),
            format_args!("{}: no instructions per training step", run.label),
        );
        checks.check(
            run.tagged("stack").next().is_some()
                && run
                    .tagged("stack")
                    .all(|l| l[1].parse::<u64>().is_ok_and(|n| n > 0)),
            format_args!("{}: no stack high-water mark", run.label),
        );
        let summary = match run.name.as_str() {
            "lenet" => lenet(&run, &host, &mut checks),
            "lenet-train" => lenet_train(&run, &host, &mut checks),
            "lenet-int8" => int8_outputs(&run, &mut checks, "lenet_sigmoid"),
            "residual-int8" => int8_outputs(&run, &mut checks, "residual_cat"),
            "residual" => residual(&run, &host, &mut checks),
            other => {
                checks.check(false, format_args!("{}: unknown firmware {other:?}", run.label));
                continue;
            }
        };
        println!("{}: {summary}", run.label);
        by_name.entry(run.name.clone()).or_default().push(run);
    }
    // One binary, several CPUs: the same IEEE arithmetic, the same bits.
    for runs in by_name.values() {
        for other in &runs[1..] {
            checks.check(
                other.values() == runs[0].values(),
                format_args!("{} and {} printed different values", runs[0].label, other.label),
            );
        }
    }
    println!("firmware: {} passed, {} failed", checks.passed, checks.failed);
    if checks.failed > 0 {
        std::process::exit(1);
    }
}
