//! Shared helpers for the integration tests: reading the PyTorch fixtures
//! that `tools/gen_fixtures.py` wrote into `tests/fixtures/`.

use serde_json::Value;
use std::path::PathBuf;

/// One PyTorch reference case.
pub struct Fixture {
    /// Case name (the file stem).
    pub name: String,
    /// The DSL text the net was built from, `"[C, H, W] => layers"`.
    pub net: String,
    /// Examples in the batch.
    pub batch: usize,
    /// The weights object, in the runtime's JSON weights format.
    pub weights_json: String,
    /// `batch * INPUT_LEN` inputs (f32-exact).
    pub input: Vec<f32>,
    /// `batch * OUTPUT_LEN` outputs of PyTorch, computed in float64.
    pub output: Vec<f64>,
    /// One class label per example.
    pub labels: Vec<u8>,
    /// PyTorch's mean cross-entropy loss, float64.
    pub loss: f64,
    /// Gradient of the loss for every parameter key, float64.
    pub grads: Vec<(String, Vec<f64>)>,
    /// Batch-norm cases: the learning rate, the number of SGD steps in
    /// train mode, and every parameter and buffer after them.
    pub after_sgd: Option<(f32, usize, Tensors)>,
}

/// `(key, values)` of every tensor of a state.
pub type Tensors = Vec<(String, Vec<f64>)>;

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// The int8 fixture `tests/fixtures/int8/<name>.json`
/// (`tools/gen_int8_fixtures.py`: TFLite's parameters and TFLite Micro's
/// outputs), as JSON.
pub fn load_int8(name: &str) -> Value {
    let path = fixtures_dir().join("int8").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A JSON array of integers as `T`s.
///
/// # Panics
///
/// If it is not one, or a value does not fit `T`.
pub fn json_ints<T: TryFrom<i64>>(v: &Value) -> Vec<T> {
    v.as_array()
        .expect("an array of integers")
        .iter()
        .map(|x| {
            T::try_from(x.as_i64().expect("an integer")).unwrap_or_else(|_| panic!("{x} is out of range"))
        })
        .collect()
}

/// Reads `tests/fixtures/<name>.json`.
pub fn load(name: &str) -> Fixture {
    let path = fixtures_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let grads = v["grads"]
        .as_object()
        .expect("grads object")
        .iter()
        .map(|(k, t)| (k.clone(), floats(&t["data"])))
        .collect();
    Fixture {
        name: name.to_string(),
        net: v["net"].as_str().expect("net").to_string(),
        batch: v["batch"].as_u64().expect("batch") as usize,
        weights_json: v["weights"].to_string(),
        input: floats(&v["input"]).into_iter().map(|x| x as f32).collect(),
        output: floats(&v["output"]),
        labels: floats(&v["labels"]).into_iter().map(|x| x as u8).collect(),
        loss: v["loss"].as_f64().expect("loss"),
        grads,
        after_sgd: v.get("after_sgd").map(|a| {
            let state = a["state"]
                .as_object()
                .expect("state object")
                .iter()
                .map(|(k, t)| (k.clone(), floats(&t["data"])))
                .collect();
            (
                a["lr"].as_f64().expect("lr") as f32,
                a["steps"].as_u64().expect("steps") as usize,
                state,
            )
        }),
    }
}

/// Asserts `actual` matches `expected` element-wise within `rel` relative
/// or `abs` absolute error, naming the index of the worst miss.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f64], rel: f64, abs: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (a as f64 - e).abs();
        let ok = err <= abs || err <= rel * e.abs();
        if !ok && worst.is_none_or(|(_, w)| err > w) {
            worst = Some((i, err));
        }
    }
    if let Some((i, err)) = worst {
        panic!(
            "{what}: element {i} is {} but PyTorch gives {} (error {err:e}, allowed {rel:e} relative or {abs:e} absolute)",
            actual[i], expected[i]
        );
    }
}

/// Holds the process-wide thread count at a value for as long as it lives.
///
/// [`cnn_runtime::train::set_threads`] is process-wide and the tests of a
/// binary run at once, so every test that sets it goes through [`threads`]:
/// one at a time, and back to one thread when the guard drops (a failed
/// assertion included).
pub struct Threads {
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// Sets the thread count to `n` until the returned guard drops; waits for
/// any other test holding one.
pub fn threads(n: usize) -> Threads {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cnn_runtime::train::set_threads(n);
    Threads { _serial: serial }
}

impl Drop for Threads {
    fn drop(&mut self) {
        cnn_runtime::train::set_threads(1);
    }
}
