//! Weight files by extension: `.json` (the runtime's JSON format) or
//! `.safetensors`, read and written through `cnn_runtime::weights`.

use std::path::{Path, PathBuf};

use cnn_runtime::weights;
use cnn_runtime::Network;

use super::checkpoint;
use super::error::CliError;
use cnn_runtime::weights::WeightsError;

/// The two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Safetensors,
}

fn format_of(path: &Path) -> Result<Format, CliError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Ok(Format::Json),
        Some(e) if e.eq_ignore_ascii_case("safetensors") => Ok(Format::Safetensors),
        _ => Err(CliError::weights(path)(WeightsError::Parse(
            "unknown weights format: expected a .json or .safetensors file".to_owned(),
        ))),
    }
}

/// Loads `path` into `net`, choosing the format by extension. All or
/// nothing: on error `net` is unchanged. A safetensors file that names the
/// net it was saved from ([`weights::NET_METADATA_KEY`], written by
/// [`save_both`]) must name `N`: nets with the same tensor shapes (`lenet`
/// and `lenet-relu`) would otherwise load each other's weights silently.
/// Files without the name (PyTorch's, JSON) are not checked. A training
/// checkpoint (`checkpoint.safetensors`) gives its weights.
pub fn load<N: Network>(net: &mut N, path: &Path) -> Result<(), CliError> {
    let result = match format_of(path)? {
        Format::Json => weights::load_state(net, |t, d| weights::load_json(t, path, d)),
        Format::Safetensors => {
            let bytes = std::fs::read(path).map_err(CliError::io("cannot read", path))?;
            let meta = weights::safetensors_metadata(&bytes).map_err(CliError::weights(path))?;
            if let Some(saved) = meta.get(weights::NET_METADATA_KEY).filter(|&s| s != N::NAME) {
                return Err(wrong_net::<N>(path, saved));
            }
            if meta.contains_key(checkpoint::VERSION_KEY) {
                let mut failure = None;
                let loaded = weights::load_state(net, |t, d| {
                    checkpoint::load_weights(t, &bytes, d).map_err(|message| {
                        failure = Some(message);
                        weights::WeightsError::Parse(String::new())
                    })
                });
                return loaded.map_err(|_| CliError::Checkpoint {
                    path: path.to_owned(),
                    message: failure.unwrap_or_default(),
                });
            }
            weights::load_state(net, |t, d| weights::load_safetensors(t, &bytes, d))
        }
    };
    result.map_err(CliError::weights(path))
}

/// The error for weights of net type `saved` given to a command for `N`,
/// naming the `--net` values of both.
fn wrong_net<N: Network>(path: &Path, saved: &str) -> CliError {
    let cli_name = |type_name: &str| {
        models::NETS
            .iter()
            .find(|net| net.type_name == type_name)
            .map(|net| net.name)
    };
    let hint = match cli_name(saved) {
        Some(name) => format!("; pass --net {name}"),
        None => String::new(),
    };
    CliError::Mismatch(format!(
        "{} holds weights saved from the net {saved}, not {} (--net {}){hint}",
        path.display(),
        N::NAME,
        cli_name(N::NAME).unwrap_or(N::NAME),
    ))
}

/// Writes `weights.json` and `weights.safetensors` into `dir` (each
/// atomically) and returns their paths. The safetensors file records the
/// net's name in its metadata.
pub fn save_both<N: Network>(net: &N, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let json = dir.join("weights.json");
    weights::with_state(net, |t, d| weights::save_json(t, d, &json)).map_err(CliError::weights(&json))?;
    let safetensors = dir.join("weights.safetensors");
    let name = [(weights::NET_METADATA_KEY, N::NAME)];
    weights::with_state(net, |t, d| {
        weights::save_safetensors_with(t, d, &name, &safetensors)
    })
    .map_err(CliError::weights(&safetensors))?;
    Ok(vec![json, safetensors])
}
