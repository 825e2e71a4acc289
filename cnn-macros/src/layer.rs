//! Syntax to typed layers: every argument checked and resolved to numbers.
//!
//! Each layer keyword has a signature (positional parameters and options);
//! a layer with a bad argument is reported and becomes `None`, so the shape
//! phase treats its output as unknown instead of piling on errors.

use crate::ctxt::Errors;
use crate::parse::{ArgSyntax, LayerSyntax, ValueSyntax};
use crate::symbol;
use proc_macro2::Span;

/// A `(height, width)` pair resolved from `k` or `(kh, kw)`.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub h: usize,
    pub w: usize,
    /// Where it was written (or the layer name when defaulted).
    pub span: Span,
}

/// What a layer computes, with every number resolved.
#[derive(Clone, Copy, Debug)]
pub enum LayerKind {
    Conv {
        /// `None` for `_`: inferred from the input.
        in_channels: Option<usize>,
        in_span: Span,
        out_channels: usize,
        kernel: Pair,
        stride: Pair,
        pad: Pair,
        bias: bool,
    },
    MaxPool(Window),
    AvgPool(Window),
    GlobalAvgPool,
    GlobalMaxPool,
    Flatten,
    Linear {
        in_features: Option<usize>,
        in_span: Span,
        out_features: usize,
        bias: bool,
    },
    Relu,
    Sigmoid,
    Tanh,
    Dropout {
        p: f32,
    },
}

/// Kernel, stride and padding of a pooling window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub kernel: Pair,
    pub stride: Pair,
    pub pad: Pair,
}

/// A checked layer: what it computes plus where it came from.
pub struct Layer<'a> {
    pub kind: LayerKind,
    pub syntax: &'a LayerSyntax,
    /// `syntax.render()`, kept for messages and the summary table.
    pub source: String,
}

impl LayerKind {
    /// The DSL keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            LayerKind::Conv { .. } => "conv",
            LayerKind::MaxPool(_) => "maxpool",
            LayerKind::AvgPool(_) => "avgpool",
            LayerKind::GlobalAvgPool => "global_avgpool",
            LayerKind::GlobalMaxPool => "global_maxpool",
            LayerKind::Flatten => "flatten",
            LayerKind::Linear { .. } => "linear",
            LayerKind::Relu => "relu",
            LayerKind::Sigmoid => "sigmoid",
            LayerKind::Tanh => "tanh",
            LayerKind::Dropout { .. } => "dropout",
        }
    }

    /// The PyTorch module this layer corresponds to.
    pub fn torch_name(&self) -> &'static str {
        match self {
            LayerKind::Conv { .. } => "Conv2d",
            LayerKind::MaxPool(_) => "MaxPool2d",
            LayerKind::AvgPool(_) => "AvgPool2d",
            LayerKind::GlobalAvgPool => "AdaptiveAvgPool2d",
            LayerKind::GlobalMaxPool => "AdaptiveMaxPool2d",
            LayerKind::Flatten => "Flatten",
            LayerKind::Linear { .. } => "Linear",
            LayerKind::Relu => "ReLU",
            LayerKind::Sigmoid => "Sigmoid",
            LayerKind::Tanh => "Tanh",
            LayerKind::Dropout { .. } => "Dropout",
        }
    }

    /// True for element-wise activations.
    pub fn is_activation(&self) -> bool {
        matches!(self, LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh)
    }
}

/// What a parameter accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accepts {
    /// A positive integer.
    Positive,
    /// A positive integer or `_`.
    PositiveOrInfer,
    /// A positive integer or a `(h, w)` pair of them.
    PositivePair,
    /// A non-negative integer or a pair of them.
    NonNegativePair,
    /// `true` or `false`.
    Bool,
    /// A probability in [0, 1).
    Probability,
}

struct Param {
    name: &'static str,
    accepts: Accepts,
}

const fn param(name: &'static str, accepts: Accepts) -> Param {
    Param { name, accepts }
}

const CONV_ARGS: &[Param] = &[
    param("in", Accepts::PositiveOrInfer),
    param("out", Accepts::Positive),
    param("kernel", Accepts::PositivePair),
];
const CONV_OPTIONS: &[Param] = &[
    param("stride", Accepts::PositivePair),
    param("pad", Accepts::NonNegativePair),
    param("bias", Accepts::Bool),
];
const POOL_ARGS: &[Param] = &[param("kernel", Accepts::PositivePair)];
const POOL_OPTIONS: &[Param] = &[
    param("stride", Accepts::PositivePair),
    param("pad", Accepts::NonNegativePair),
];
const LINEAR_ARGS: &[Param] = &[
    param("in", Accepts::PositiveOrInfer),
    param("out", Accepts::Positive),
];
const LINEAR_OPTIONS: &[Param] = &[param("bias", Accepts::Bool)];
const DROPOUT_ARGS: &[Param] = &[param("p", Accepts::Probability)];

/// Positional parameters (all required) and options of a keyword.
fn signature(keyword: &str) -> Option<(&'static [Param], &'static [Param])> {
    Some(match keyword {
        "conv" => (CONV_ARGS, CONV_OPTIONS),
        "maxpool" | "avgpool" => (POOL_ARGS, POOL_OPTIONS),
        "linear" => (LINEAR_ARGS, LINEAR_OPTIONS),
        "dropout" => (DROPOUT_ARGS, &[]),
        "global_avgpool" | "global_maxpool" | "flatten" | "relu" | "sigmoid" | "tanh" => (&[], &[]),
        _ => return None,
    })
}

/// A resolved argument value.
#[derive(Clone, Copy)]
enum Value {
    Int(usize, Span),
    Infer(Span),
    Pair(Pair),
    Bool(bool),
    Float(f32),
}

/// Checks a layer's keyword and arguments; reports every problem.
pub fn resolve<'a>(syntax: &'a LayerSyntax, errors: &mut Errors) -> Option<Layer<'a>> {
    let keyword = syntax.name.to_string();
    let Some((positional, options)) = signature(&keyword) else {
        let mut message = format!(
            "unknown layer `{keyword}`; expected one of: {}",
            symbol::LAYERS.join(", ")
        );
        if let Some(near) = symbol::nearest(&keyword, symbol::LAYERS) {
            message.push_str(&format!("\nhelp: did you mean `{near}`?"));
        }
        errors.push(syntax.name.span(), message);
        return None;
    };
    let source = syntax.render();
    let before = errors.count();

    if positional.is_empty() && options.is_empty() {
        if let Some(paren) = &syntax.paren {
            errors.push(
                paren.span.join(),
                format!("`{keyword}` takes no arguments; write `{keyword}`"),
            );
            return None;
        }
    }

    let mut given: Vec<Option<Value>> = vec![None; positional.len()];
    let mut opt_given: Vec<Option<Value>> = vec![None; options.len()];
    let mut position = 0;
    let mut named_seen = false;
    for arg in &syntax.args {
        match arg {
            ArgSyntax::Positional(value) => {
                if named_seen {
                    errors.push_spanned(
                        value,
                        format!("{source}: positional arguments must come before options like `stride = 2`"),
                    );
                    continue;
                }
                match positional.get(position) {
                    Some(p) => given[position] = check_value(&source, p, value, errors),
                    None => errors.push_spanned(
                        value,
                        format!(
                            "{source}: too many arguments; `{keyword}` takes {} ({}){}",
                            positional.len(),
                            names(positional),
                            options_hint(options)
                        ),
                    ),
                }
                position += 1;
            }
            ArgSyntax::Named { name, value, .. } => {
                named_seen = true;
                let option = name.to_string();
                match options.iter().position(|o| o.name == option) {
                    Some(i) => {
                        if opt_given[i].is_some() {
                            errors.push(name.span(), format!("{source}: duplicate option `{option}`"));
                        } else if let Some(v) = check_value(&source, &options[i], value, errors) {
                            opt_given[i] = Some(v);
                        }
                    }
                    None => {
                        let known: Vec<&str> = options.iter().map(|o| o.name).collect();
                        let mut message = if known.is_empty() {
                            format!("{source}: unknown option `{option}`; `{keyword}` takes no options")
                        } else {
                            format!(
                                "{source}: unknown option `{option}`; `{keyword}` accepts {}",
                                quoted(&known)
                            )
                        };
                        if let Some(near) = symbol::nearest(&option, &known) {
                            message.push_str(&format!("\nhelp: did you mean `{near}`?"));
                        }
                        errors.push(name.span(), message);
                    }
                }
            }
        }
    }
    if position < positional.len() {
        let missing: Vec<&str> = positional[position..].iter().map(|p| p.name).collect();
        let span = syntax
            .paren
            .as_ref()
            .map_or(syntax.name.span(), |p| p.span.join());
        errors.push(
            span,
            format!(
                "{source}: missing argument{} {}; `{keyword}` takes ({})",
                if missing.len() > 1 { "s" } else { "" },
                quoted(&missing),
                names(positional)
            ),
        );
    }
    if errors.count() > before {
        return None;
    }

    let name_span = syntax.name.span();
    let int = |i: usize| match given[i] {
        Some(Value::Int(v, _)) => v,
        _ => 0,
    };
    let maybe = |i: usize| match given[i] {
        Some(Value::Int(v, span)) => (Some(v), span),
        Some(Value::Infer(span)) => (None, span),
        _ => (None, name_span),
    };
    let pair = |v: Option<Value>| match v {
        Some(Value::Pair(p)) => Some(p),
        Some(Value::Int(v, span)) => Some(Pair { h: v, w: v, span }),
        _ => None,
    };
    let opt = |name: &str| {
        options
            .iter()
            .position(|o| o.name == name)
            .and_then(|i| opt_given[i])
    };
    let flag = |name: &str| match opt(name) {
        Some(Value::Bool(b)) => b,
        _ => true,
    };
    let zero = Pair {
        h: 0,
        w: 0,
        span: name_span,
    };
    let window = || {
        let kernel = pair(given[0]).unwrap_or(zero);
        Window {
            kernel,
            stride: pair(opt("stride")).unwrap_or(Pair {
                span: name_span,
                ..kernel
            }),
            pad: pair(opt("pad")).unwrap_or(zero),
        }
    };

    let kind = match keyword.as_str() {
        "conv" => {
            let (in_channels, in_span) = maybe(0);
            let one = Pair {
                h: 1,
                w: 1,
                span: name_span,
            };
            LayerKind::Conv {
                in_channels,
                in_span,
                out_channels: int(1),
                kernel: pair(given[2]).unwrap_or(one),
                stride: pair(opt("stride")).unwrap_or(one),
                pad: pair(opt("pad")).unwrap_or(zero),
                bias: flag("bias"),
            }
        }
        "maxpool" => LayerKind::MaxPool(window()),
        "avgpool" => LayerKind::AvgPool(window()),
        "linear" => {
            let (in_features, in_span) = maybe(0);
            LayerKind::Linear {
                in_features,
                in_span,
                out_features: int(1),
                bias: flag("bias"),
            }
        }
        "dropout" => LayerKind::Dropout {
            p: match given[0] {
                Some(Value::Float(p)) => p,
                _ => 0.0,
            },
        },
        "global_avgpool" => LayerKind::GlobalAvgPool,
        "global_maxpool" => LayerKind::GlobalMaxPool,
        "flatten" => LayerKind::Flatten,
        "relu" => LayerKind::Relu,
        "sigmoid" => LayerKind::Sigmoid,
        _ => LayerKind::Tanh,
    };
    Some(Layer { kind, syntax, source })
}

fn names(params: &[Param]) -> String {
    params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn options_hint(options: &[Param]) -> String {
    if options.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = options.iter().map(|o| format!("{} = ..", o.name)).collect();
        format!(" and the options {}", names.join(", "))
    }
}

/// Checks one value against what its parameter accepts.
fn check_value(source: &str, param: &Param, value: &ValueSyntax, errors: &mut Errors) -> Option<Value> {
    let name = param.name;
    let expected = match param.accepts {
        Accepts::Positive => "a positive integer",
        Accepts::PositiveOrInfer => "a positive integer or `_`",
        Accepts::PositivePair => "a positive integer or a `(height, width)` pair",
        Accepts::NonNegativePair => "a non-negative integer or a `(height, width)` pair",
        Accepts::Bool => "`true` or `false`",
        Accepts::Probability => "a number in [0, 1), e.g. `0.5`",
    };
    let found = value.render();
    let mismatch = |errors: &mut Errors| {
        let found = if found.is_empty() {
            "nothing".to_string()
        } else {
            format!("`{found}`")
        };
        errors.push_spanned(
            value,
            format!("{source}: `{name}` must be {expected}, found {found}"),
        );
        None
    };
    match (param.accepts, value) {
        (Accepts::Bool, ValueSyntax::Bool(b)) => Some(Value::Bool(b.value)),
        (Accepts::Probability, ValueSyntax::Float(f)) => match f.base10_parse::<f32>() {
            Ok(p) if (0.0..1.0).contains(&p) => Some(Value::Float(p)),
            _ => mismatch(errors),
        },
        (Accepts::Probability, ValueSyntax::Int(i)) if i.base10_digits() == "0" => Some(Value::Float(0.0)),
        (Accepts::PositiveOrInfer, ValueSyntax::Infer(u)) => Some(Value::Infer(u.span)),
        (
            Accepts::Positive | Accepts::PositiveOrInfer | Accepts::PositivePair | Accepts::NonNegativePair,
            ValueSyntax::Int(lit),
        ) => {
            let Ok(v) = lit.base10_parse::<usize>() else {
                return mismatch(errors);
            };
            if !lit.suffix().is_empty() {
                return mismatch(errors);
            }
            if v == 0 && param.accepts != Accepts::NonNegativePair {
                errors.push(
                    lit.span(),
                    format!("{source}: `{name}` must be at least 1, found 0"),
                );
                return None;
            }
            Some(Value::Int(v, lit.span()))
        }
        (Accepts::PositivePair | Accepts::NonNegativePair, ValueSyntax::Pair { first, second, .. }) => {
            let inner = Param {
                name,
                accepts: if param.accepts == Accepts::PositivePair {
                    Accepts::Positive
                } else {
                    Accepts::NonNegativePair
                },
            };
            let h = check_value(source, &inner, first, errors);
            let w = check_value(source, &inner, second, errors);
            match (h, w) {
                (Some(Value::Int(h, _)), Some(Value::Int(w, _))) => Some(Value::Pair(Pair {
                    h,
                    w,
                    span: value.span(),
                })),
                _ => None,
            }
        }
        _ => mismatch(errors),
    }
}
