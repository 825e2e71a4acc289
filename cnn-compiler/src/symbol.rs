//! "Did you mean" suggestions: the names users bring from PyTorch, Keras or
//! papers, and edit distance. The keywords themselves come from the op
//! registry, `ops::KEYWORDS`.

/// Names users bring from PyTorch, Keras or papers, mapped to ours.
const ALIASES: &[(&str, &str)] = &[
    ("conv2d", "conv"),
    ("convolution", "conv"),
    ("lazyconv2d", "conv"),
    ("maxpool2d", "maxpool"),
    ("max_pool", "maxpool"),
    ("max_pool2d", "maxpool"),
    ("avgpool2d", "avgpool"),
    ("avg_pool", "avgpool"),
    ("avg_pool2d", "avgpool"),
    ("adaptiveavgpool2d", "global_avgpool"),
    ("adaptivemaxpool2d", "global_maxpool"),
    ("globalavgpool", "global_avgpool"),
    ("globalmaxpool", "global_maxpool"),
    ("dense", "linear"),
    ("fc", "linear"),
    ("fully_connected", "linear"),
    ("lazylinear", "linear"),
    ("reshape", "flatten"),
    ("logistic", "sigmoid"),
    ("relu_6", "relu6"),
    ("batchnorm2d", "batchnorm"),
    ("batchnorm1d", "batchnorm"),
    ("lazybatchnorm2d", "batchnorm"),
    ("lazybatchnorm1d", "batchnorm"),
    ("batch_norm", "batchnorm"),
    ("bn", "batchnorm"),
    ("batchnormalization", "batchnorm"),
];

/// The known word closest to `word`, if one is close enough to suggest.
pub fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == lower) {
        if let Some(k) = known.iter().find(|k| *k == target) {
            return Some(k);
        }
    }
    known
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(distance, k)| {
            *distance <= (k.len() / 3).max(1) || lower.contains(k) || k.contains(lower.as_str())
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keywords are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::KEYWORDS as LAYERS;

    #[test]
    fn suggests_close_and_aliased_names() {
        assert_eq!(nearest("conv2d", LAYERS), Some("conv"));
        assert_eq!(nearest("lineer", LAYERS), Some("linear"));
        assert_eq!(nearest("maxpol", LAYERS), Some("maxpool"));
        assert_eq!(nearest("dense", LAYERS), Some("linear"));
        assert_eq!(nearest("BatchNorm2d", LAYERS), Some("batchnorm"));
        assert_eq!(nearest("bn", LAYERS), Some("batchnorm"));
        assert_eq!(nearest("residual", LAYERS), None);
    }
}
