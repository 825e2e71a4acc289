//! Weight files by extension: `.json` (the runtime's JSON format) or
//! `.safetensors`, read and written through `cnn_runtime::weights`.

use std::path::{Path, PathBuf};

use cnn_runtime::weights;
use cnn_runtime::Network;

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
/// nothing: on error `net` is unchanged.
pub fn load<N: Network>(net: &mut N, path: &Path) -> Result<(), CliError> {
    let result = match format_of(path)? {
        Format::Json => weights::load_json(N::TENSORS, path, net.params_mut()),
        Format::Safetensors => weights::load_safetensors_file(N::TENSORS, path, net.params_mut()),
    };
    result.map_err(CliError::weights(path))
}

/// Writes `weights.json` and `weights.safetensors` into `dir` (each
/// atomically) and returns their paths.
pub fn save_both<N: Network>(net: &N, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let json = dir.join("weights.json");
    weights::save_json(N::TENSORS, net.params(), &json).map_err(CliError::weights(&json))?;
    let safetensors = dir.join("weights.safetensors");
    weights::save_safetensors(N::TENSORS, net.params(), &safetensors)
        .map_err(CliError::weights(&safetensors))?;
    Ok(vec![json, safetensors])
}
