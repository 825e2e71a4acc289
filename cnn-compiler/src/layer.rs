//! Syntax to typed layers: every argument checked and resolved to numbers.
//!
//! Each layer keyword has a signature (positional parameters and options,
//! declared by its op in `ops/`); a layer with a bad argument is reported and
//! becomes `None`, so the shape phase treats its output as unknown instead of
//! piling on errors. The op then builds itself from [`Args`].

use crate::ctxt::Errors;
use crate::ops::{self, LayerKind};
use crate::parse::{ArgSyntax, LayerSyntax, ValueSyntax};
use crate::symbol;
use proc_macro2::Span;
use std::borrow::Cow;

/// A `(height, width)` pair resolved from `k` or `(kh, kw)`.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub h: usize,
    pub w: usize,
    /// Where it was written (or the layer name when defaulted).
    pub span: Span,
}

/// A checked layer: what it computes plus where it came from.
pub struct Layer<'a> {
    pub kind: LayerKind,
    /// As written, or with a block's parameters substituted.
    pub syntax: Cow<'a, LayerSyntax>,
    /// `syntax.render()`, kept for messages and the summary table.
    pub source: String,
}

/// What a parameter accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
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
    /// A positive number, e.g. `1e-5`.
    PositiveFloat,
}

/// One positional parameter or option of a layer keyword.
pub struct Param {
    name: &'static str,
    accepts: Accepts,
    /// A positional parameter that may be left out (with everything after
    /// it): `batchnorm` or `batchnorm(64)`.
    optional: bool,
}

impl Param {
    /// The parameter `name`, accepting `accepts`.
    pub const fn new(name: &'static str, accepts: Accepts) -> Param {
        Param {
            name,
            accepts,
            optional: false,
        }
    }

    /// A positional parameter that may be left out.
    pub const fn optional(name: &'static str, accepts: Accepts) -> Param {
        Param {
            name,
            accepts,
            optional: true,
        }
    }
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
pub fn resolve<'a>(syntax: Cow<'a, LayerSyntax>, errors: &mut Errors) -> Option<Layer<'a>> {
    let keyword = syntax.name.to_string();
    let Some((positional, options)) = ops::signature(&keyword) else {
        let mut message = format!(
            "unknown layer `{keyword}`; expected one of: {}",
            ops::KEYWORDS.join(", ")
        );
        if let Some(near) = symbol::nearest(&keyword, ops::KEYWORDS) {
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
    let required = positional[position.min(positional.len())..]
        .iter()
        .any(|p| !p.optional);
    if position < positional.len() && required {
        let missing: Vec<&str> = positional[position..]
            .iter()
            .filter(|p| !p.optional)
            .map(|p| p.name)
            .collect();
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

    let args = Args {
        given,
        options,
        opt_given,
        name_span: syntax.name.span(),
    };
    let kind = ops::build(&keyword, &args)?;
    Some(Layer { kind, syntax, source })
}

/// The checked arguments of one layer, for its op to build itself from.
/// Every required argument is present and of the accepted kind; an option
/// left out reads as its default.
pub struct Args {
    given: Vec<Option<Value>>,
    options: &'static [Param],
    opt_given: Vec<Option<Value>>,
    name_span: Span,
}

impl Args {
    /// The span of the layer's keyword, for defaulted values.
    pub fn name_span(&self) -> Span {
        self.name_span
    }

    /// Positional argument `i`, an integer.
    pub fn int(&self, i: usize) -> usize {
        match self.given[i] {
            Some(Value::Int(v, _)) => v,
            _ => 0,
        }
    }

    /// Positional argument `i`, an integer or `_` (`None`), with its span.
    pub fn int_or_infer(&self, i: usize) -> (Option<usize>, Span) {
        match self.given[i] {
            Some(Value::Int(v, span)) => (Some(v), span),
            Some(Value::Infer(span)) => (None, span),
            _ => (None, self.name_span),
        }
    }

    /// Positional argument `i`, a number.
    pub fn float(&self, i: usize) -> f32 {
        match self.given[i] {
            Some(Value::Float(p)) => p,
            _ => 0.0,
        }
    }

    /// Positional argument `i` as a `(h, w)` pair (an integer `k` is `(k, k)`).
    pub fn pair(&self, i: usize) -> Option<Pair> {
        as_pair(self.given[i])
    }

    /// Option `name` as a pair, if given.
    pub fn option_pair(&self, name: &str) -> Option<Pair> {
        as_pair(self.option(name))
    }

    /// Option `name`, an integer, with where it was written, if given.
    pub fn option_int(&self, name: &str) -> Option<(usize, Span)> {
        match self.option(name) {
            Some(Value::Int(v, span)) => Some((v, span)),
            _ => None,
        }
    }

    /// Option `name`, a number, if given.
    pub fn option_float(&self, name: &str) -> Option<f32> {
        match self.option(name) {
            Some(Value::Float(v)) => Some(v),
            _ => None,
        }
    }

    /// Option `name`, a flag defaulting to `true`.
    pub fn flag(&self, name: &str) -> bool {
        match self.option(name) {
            Some(Value::Bool(b)) => b,
            _ => true,
        }
    }

    /// `(v, v)` at the keyword's span: a default.
    pub fn default_pair(&self, v: usize) -> Pair {
        Pair {
            h: v,
            w: v,
            span: self.name_span,
        }
    }

    fn option(&self, name: &str) -> Option<Value> {
        self.options
            .iter()
            .position(|o| o.name == name)
            .and_then(|i| self.opt_given[i])
    }
}

fn as_pair(v: Option<Value>) -> Option<Pair> {
    match v {
        Some(Value::Pair(p)) => Some(p),
        Some(Value::Int(v, span)) => Some(Pair { h: v, w: v, span }),
        _ => None,
    }
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
        Accepts::PositiveFloat => "a positive number, e.g. `1e-5`",
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
        (Accepts::PositiveFloat, ValueSyntax::Float(f)) => match f.base10_parse::<f32>() {
            Ok(v) if v > 0.0 && v.is_finite() && f.suffix().is_empty() => Some(Value::Float(v)),
            _ => mismatch(errors),
        },
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
            let inner = Param::new(
                name,
                if param.accepts == Accepts::PositivePair {
                    Accepts::Positive
                } else {
                    Accepts::NonNegativePair
                },
            );
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
