//! `cnn quantize`: post-training int8 quantization of trained float
//! weights, with TensorFlow Lite's scheme (see
//! `cnn_runtime::int8::calibrate`). It calibrates on training images,
//! writes the int8 file (which `cnn_net!` bakes with `weights = "..."`, or
//! `cnn_runtime::weights::int8::load` reads at run time) and prints the
//! float and int8 test accuracy, the int8 one from the very integer code a
//! baked net runs.

use cnn_runtime::data::Split;
use cnn_runtime::int8::calibrate::{calibrate, predict, quantize};
use cnn_runtime::int8::Int8Network;
use cnn_runtime::weights::{self, WeightsError};
use cnn_runtime::Network;

use super::args::QuantizeConfig;
use super::dataset::{self, Source};
use super::error::CliError;
use super::report::thousands;
use super::train;

/// Calibration images go through the float net this many at a time.
const CALIBRATION_BATCH: usize = 256;

/// Runs `cnn quantize` for the float net `N` and its int8 twin `Q`.
pub fn command<N: Network, Q: Int8Network>(config: &QuantizeConfig) -> Result<(), CliError> {
    cnn_runtime::train::set_threads(config.threads);
    let net = train::initial_net::<N>(0, Some(&config.weights))?;
    let source = Source::choose(config.data.as_deref());
    let data = dataset::load(&source, true, None, config.limit_test)?;
    say!("{}", data.description);
    let Some(train_set) = &data.train else {
        unreachable!("dataset::load returns the training split when asked")
    };
    train::check_dataset::<N>(train_set, &source, Split::Train)?;
    train::check_dataset::<N>(&data.test, &source, Split::Test)?;
    let count = config.calibration;
    if count > train_set.len() {
        return Err(CliError::InvalidArg(format!(
            "--calibration {count}: the training set has only {} images",
            thousands(train_set.len())
        )));
    }

    // Evenly spread over the training set: every class, no seed to pick.
    let len = N::INPUT_LEN;
    let mut images = Vec::with_capacity(count * len);
    for i in 0..count {
        let k = i * train_set.len() / count;
        images.extend_from_slice(&train_set.images[k * len..(k + 1) * len]);
    }
    let ranges = calibrate(&*net, &images, CALIBRATION_BATCH);
    let tensors = quantize::<N, Q>(&*net, &ranges).map_err(|e| CliError::Mismatch(e.to_string()))?;
    let int8 = Q::from_parts(&tensors.parts()).map_err(|e| CliError::Weights {
        path: config.out.clone(),
        source: WeightsError::Int8(e),
    })?;
    let input = int8.input_quant();
    say!(
        "calibration: {} training images, evenly spread; input range [{}, {}] -> scale {}, zero point {}",
        thousands(count),
        ranges.input.0,
        ranges.input.1,
        input.scale,
        input.zero_point
    );

    let calibration = count.to_string();
    let metadata = [
        (weights::NET_METADATA_KEY, N::NAME),
        ("cnn.calibration_images", calibration.as_str()),
    ];
    weights::int8::save(
        Q::INT8_LAYERS,
        Q::INT8_POINTS,
        &tensors.parts(),
        &metadata,
        &config.out,
    )
    .map_err(CliError::weights(&config.out))?;
    let bytes = tensors.weights.len() + 4 * tensors.biases.len();
    say!(
        "wrote {} ({} int8 weights, {} int32 biases: {} bytes of parameters, {}x smaller than f32)",
        config.out.display(),
        thousands(tensors.weights.len()),
        thousands(tensors.biases.len()),
        thousands(bytes),
        format_ratio(N::PARAM_COUNT * 4, bytes)
    );

    // Each net's predictions once: accuracies and agreement come from them.
    let float_predicted = cnn_runtime::train::predict(&*net, &data.test.images);
    let predicted = predict(&int8, &data.test.images);
    let labels = &data.test.labels;
    let accuracy = |classes: &[usize]| {
        let correct = classes
            .iter()
            .zip(labels)
            .filter(|(&p, &l)| p == usize::from(l))
            .count();
        correct as f64 / labels.len() as f64
    };
    let (float, int8_accuracy) = (accuracy(&float_predicted), accuracy(&predicted));
    let agree = predicted
        .iter()
        .zip(&float_predicted)
        .filter(|(a, b)| a == b)
        .count();
    let total = data.test.len();
    say!(
        "test accuracy ({} images): float {float:.4}, int8 {int8_accuracy:.4} ({:+.2} points); \
         the two agree on {:.2}% of the images",
        thousands(total),
        100.0 * (int8_accuracy - float),
        100.0 * agree as f64 / total as f64
    );
    Ok(())
}

/// `a / b` with one decimal.
fn format_ratio(a: usize, b: usize) -> String {
    format!("{:.1}", a as f64 / b.max(1) as f64)
}
