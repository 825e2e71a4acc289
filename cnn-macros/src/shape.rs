//! Computes every tensor shape at compile time and reports mismatches in
//! terms of layers and shapes.
//!
//! A layer whose input is unknown (an earlier layer was wrong) checks only
//! what it can, so one mistake gives one error.

use crate::ctxt::Errors;
use crate::layer::{Layer, LayerKind, Pair, Window};
use std::fmt;

/// The shape of one example: `[C, H, W]` or `[features]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Chw(usize, usize, usize),
    Flat(usize),
}

impl Shape {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    /// The dimensions as a list.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Chw(c, h, w) => vec![c, h, w],
            Shape::Flat(n) => vec![n],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Chw(c, h, w) => write!(f, "[{c}, {h}, {w}]"),
            Shape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// A layer with its resolved input and output shapes.
pub struct Shaped<'a> {
    pub layer: Layer<'a>,
    pub input: Shape,
    pub output: Shape,
    /// Input channels or features after `_` is inferred.
    pub fan_in_units: usize,
}

/// Where the current shape came from, for messages.
struct Provenance {
    /// The last layer that changed the shape, `None` for the net input.
    producer: Option<(usize, String)>,
    /// The shape before `flatten`, when `flatten` was that layer.
    flattened_from: Option<Shape>,
}

impl Provenance {
    /// "conv(1, 6, 5) at layer 0" or "the input".
    fn from(&self) -> String {
        match &self.producer {
            Some((index, source)) => format!("{source} at layer {index}"),
            None => "the input".to_string(),
        }
    }

    /// "the previous layer yields [16, 5, 5] = 400 after flatten" and the like.
    fn yields(&self, shape: Shape) -> String {
        match self.flattened_from {
            Some(chw) => format!("the previous layer yields {chw} = {} after flatten", shape.len()),
            None => format!("{} yields {shape}", self.from()),
        }
    }
}

/// Walks the layers from `input`. Returns the shaped layers when every layer
/// checked out; errors are pushed either way. Layers that failed in the
/// `layer` phase are passed as `None`.
pub fn infer<'a>(
    input: Shape,
    layers: Vec<Option<Layer<'a>>>,
    errors: &mut Errors,
) -> Option<Vec<Shaped<'a>>> {
    let mut current = Some(input);
    let mut provenance = Provenance {
        producer: None,
        flattened_from: None,
    };
    let mut shaped = Vec::new();
    let mut complete = true;
    for (index, layer) in layers.into_iter().enumerate() {
        let Some(layer) = layer else {
            current = None;
            complete = false;
            continue;
        };
        let result = step(&layer, current, &provenance, errors);
        let Some((output, fan_in_units)) = result else {
            current = None;
            complete = false;
            continue;
        };
        if !layer.kind.is_activation() && !matches!(layer.kind, LayerKind::Dropout { .. }) {
            provenance = Provenance {
                producer: Some((index, layer.source.clone())),
                flattened_from: match (layer.kind, current) {
                    (LayerKind::Flatten, Some(chw @ Shape::Chw(..))) => Some(chw),
                    _ => None,
                },
            };
        }
        match current {
            Some(input) => shaped.push(Shaped {
                layer,
                input,
                output,
                fan_in_units,
            }),
            None => complete = false,
        }
        current = Some(output);
    }
    complete.then_some(shaped)
}

/// Reports a layer that needs `[C, H, W]` but got a flat input.
fn need_chw(
    layer: &Layer,
    input: Shape,
    provenance: &Provenance,
    errors: &mut Errors,
) -> Option<(usize, usize, usize)> {
    match input {
        Shape::Chw(c, h, w) => Some((c, h, w)),
        flat => {
            errors.push(
                layer.syntax.name.span(),
                format!(
                    "{}: needs a [C, H, W] input, but {}",
                    layer.source,
                    provenance.yields(flat)
                ),
            );
            None
        }
    }
}

/// One layer: the output shape and the resolved fan-in units, or `None`
/// when the input is unknown or the layer does not fit it.
fn step(
    layer: &Layer,
    input: Option<Shape>,
    provenance: &Provenance,
    errors: &mut Errors,
) -> Option<(Shape, usize)> {
    let source = &layer.source;
    match layer.kind {
        LayerKind::Conv {
            in_channels,
            in_span,
            out_channels,
            kernel,
            stride,
            pad,
            ..
        } => {
            let (c, h, w) = need_chw(layer, input?, provenance, errors)?;
            if let Some(expected) = in_channels {
                if expected != c {
                    errors.push(
                        in_span,
                        format!(
                            "{source}: input has {c} channel{} (from {}), expected {expected}\nhelp: write {c} here, or `_` to infer it",
                            if c == 1 { "" } else { "s" },
                            provenance.from()
                        ),
                    );
                    return None;
                }
            }
            let (oh, ow) = window_output(source, "kernel", h, w, kernel, stride, pad, errors)?;
            Some((Shape::Chw(out_channels, oh, ow), c))
        }
        LayerKind::MaxPool(window) | LayerKind::AvgPool(window) => {
            let (c, h, w) = need_chw(layer, input?, provenance, errors)?;
            let Window { kernel, stride, pad } = window;
            if 2 * pad.h > kernel.h || 2 * pad.w > kernel.w {
                errors.push(
                    pad.span,
                    format!(
                        "{source}: padding {}x{} is more than half the {}x{} window (PyTorch rejects it too)",
                        pad.h, pad.w, kernel.h, kernel.w
                    ),
                );
                return None;
            }
            let (oh, ow) = window_output(source, "window", h, w, kernel, stride, pad, errors)?;
            Some((Shape::Chw(c, oh, ow), c))
        }
        LayerKind::GlobalAvgPool | LayerKind::GlobalMaxPool => {
            let (c, _, _) = need_chw(layer, input?, provenance, errors)?;
            Some((Shape::Chw(c, 1, 1), c))
        }
        LayerKind::Flatten => {
            let input = input?;
            Some((Shape::Flat(input.len()), input.len()))
        }
        LayerKind::Linear {
            in_features,
            in_span,
            out_features,
            ..
        } => {
            let output = Shape::Flat(out_features);
            // With `in` written out, the output is known even when the input is not.
            let Some(input) = input else {
                return in_features.map(|f| (output, f));
            };
            let features = match input {
                Shape::Flat(n) => n,
                chw => {
                    errors.push(
                        layer.syntax.name.span(),
                        format!(
                            "{source}: needs a flat input, but {}\nhelp: insert `flatten` before this layer; it yields [{}]",
                            provenance.yields(chw),
                            chw.len()
                        ),
                    );
                    return None;
                }
            };
            if let Some(expected) = in_features {
                if expected != features {
                    errors.push(
                        in_span,
                        format!(
                            "{source}: expected {features} input features, {}\nhelp: write {features} here, or `_` to infer it",
                            provenance.yields(input)
                        ),
                    );
                    return None;
                }
            }
            Some((output, features))
        }
        LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh | LayerKind::Dropout { .. } => {
            let input = input?;
            Some((input, 0))
        }
    }
}

/// Output size of a sliding window, with the error for a window that does
/// not fit the padded input.
#[allow(clippy::too_many_arguments)]
fn window_output(
    source: &str,
    what: &str,
    h: usize,
    w: usize,
    kernel: Pair,
    stride: Pair,
    pad: Pair,
    errors: &mut Errors,
) -> Option<(usize, usize)> {
    let (ph, pw) = (h + 2 * pad.h, w + 2 * pad.w);
    if kernel.h > ph || kernel.w > pw {
        let padded = if pad.h == 0 && pad.w == 0 {
            String::new()
        } else {
            format!(" ({h}x{w} padded by {}x{})", pad.h, pad.w)
        };
        errors.push(
            kernel.span,
            format!(
                "{source}: {what} {}x{} is larger than the input {ph}x{pw}{padded}; the output would be empty",
                kernel.h, kernel.w
            ),
        );
        return None;
    }
    Some(((ph - kernel.h) / stride.h + 1, (pw - kernel.w) / stride.w + 1))
}
