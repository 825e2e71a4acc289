//! Tokens to syntax. Nothing is checked here beyond the grammar: every layer
//! keeps its tokens so later phases can point at the exact argument at fault.
//!
//! ```text
//! input   := item (';' item)* ';'?
//! item    := net | block
//! net     := attr* vis IDENT (',' IDENT)? ':' '[' INT ',' INT ',' INT ']' 'int8'? ('weights' '=' STR)? '=>' chain
//!                                               (`pub A, B: ..`: B is A's int8 twin, its
//!                                                tensors loaded at run time)
//! block   := attr* 'block' IDENT '(' (IDENT ('=' value)?),* ')' '=>' chain
//!                                               (used as a layer: `Residual(64, strides = 2)`)
//! chain   := node (','? node)*                  (an nn.Sequential)
//! node    := (label ':')? unit
//! label   := (IDENT | INT) ('.' (IDENT | INT))*  (a key path: `conv1`, `0`, `net.0`)
//! unit    := layer | '[' chain ']'              ([..]: a nested nn.Sequential)
//!          | ('add' | 'cat') '{' chain ('|' chain)+ '}'
//!                                               (branches read the node's input;
//!                                                outputs summed or concatenated)
//!          | 'if' IDENT '{' chain '}' ('else' '{' chain '}')?
//!                                               (in a block, on a `true`/`false` parameter)
//! layer   := IDENT ('(' arg (',' arg)* ','? ')')?
//! arg     := value | IDENT '=' value
//! value   := INT | FLOAT | BOOL | '_' | '(' value ',' value ')' | '-' literal
//! ```

use crate::ops::JoinKind;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::discouraged::Speculative;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{
    braced, bracketed, parenthesized, token, Attribute, Ident, LitBool, LitFloat, LitInt, LitStr, Token,
    Visibility,
};

/// Everything inside `cnn_net! { ... }`.
pub struct Input {
    pub nets: Vec<NetSyntax>,
    /// Reusable blocks, usable by every net of the invocation.
    pub blocks: Vec<BlockSyntax>,
}

/// `block Name(param, param = default) => chain`: a parameterised sequence
/// used like a layer; each use is a nested sequence (one key level) with
/// the arguments substituted.
pub struct BlockSyntax {
    pub name: Ident,
    pub params: Vec<BlockParam>,
    pub chain: ChainSyntax,
}

/// One parameter of a block, with its default if it has one.
pub struct BlockParam {
    pub name: Ident,
    pub default: Option<ValueSyntax>,
}

/// One `vis Name: [C, H, W] => layers` declaration.
pub struct NetSyntax {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub shape_bracket: token::Bracket,
    pub shape: Vec<LitInt>,
    /// `int8`: an int8 net (its tensors baked from `weights`, or loaded at
    /// run time without it).
    pub int8: Option<kw::int8>,
    /// `weights = "file.safetensors"`: parameters baked in at compile time.
    pub weights: Option<LitStr>,
    pub arrow: Token![=>],
    pub chain: ChainSyntax,
}

/// A sequence of nodes, run one after the other: an `nn.Sequential`.
pub struct ChainSyntax {
    pub nodes: Vec<NodeSyntax>,
}

/// One element of a chain, with its optional label.
pub struct NodeSyntax {
    /// `conv1:` or `0:`: the node's key segment instead of its position.
    pub label: Option<LabelSyntax>,
    pub unit: UnitSyntax,
}

/// A node's label: `conv1`, `0`, or a dotted path such as `net.0` (the
/// segments PyTorch's module path would have).
pub struct LabelSyntax {
    segments: Vec<(String, Span)>,
}

/// What a node is.
pub enum UnitSyntax {
    /// One layer.
    Layer(LayerSyntax),
    /// `[ chain ]`: a nested sequence, one key level.
    Seq {
        bracket: token::Bracket,
        chain: ChainSyntax,
    },
    /// `if flag { chain } else { chain }` inside a block: the chain chosen
    /// by a `true`/`false` block parameter; adds no key level.
    If {
        flag: Ident,
        then: ChainSyntax,
        otherwise: ChainSyntax,
    },
    /// `add { chain | chain }` or `cat { chain | .. }`: branches that all
    /// read the node's input, their outputs summed or concatenated along
    /// channels. An empty branch passes the input through.
    Join {
        kind: JoinKind,
        /// `add` or `cat`, as written.
        keyword: Ident,
        branches: Vec<ChainSyntax>,
    },
}

/// One layer as written: `conv(1, 6, 5, pad = 2)` or `relu`.
#[derive(Clone)]
pub struct LayerSyntax {
    pub name: Ident,
    pub paren: Option<token::Paren>,
    pub args: Vec<ArgSyntax>,
}

/// A positional or named argument.
#[derive(Clone)]
pub enum ArgSyntax {
    Positional(ValueSyntax),
    Named {
        name: Ident,
        eq: Token![=],
        value: ValueSyntax,
    },
}

/// An argument value, kept loose so the layer phase can say what is wrong.
#[derive(Clone)]
pub enum ValueSyntax {
    Int(LitInt),
    Float(LitFloat),
    Bool(LitBool),
    Infer(Token![_]),
    Pair {
        paren: token::Paren,
        first: Box<ValueSyntax>,
        second: Box<ValueSyntax>,
    },
    /// Anything else (a negative number, a path, a tuple of three...): kept
    /// only to be reported.
    Other(TokenStream),
}

mod kw {
    syn::custom_keyword!(weights);
    syn::custom_keyword!(int8);
    syn::custom_keyword!(add);
    syn::custom_keyword!(cat);
    syn::custom_keyword!(block);
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut nets = Vec::new();
        if input.is_empty() {
            return Err(
                input.error("expected a net declaration, e.g. `pub LeNet: [1, 28, 28] => conv(1, 6, 5) ...`")
            );
        }
        let mut blocks = Vec::new();
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            if input.peek(kw::block) && input.peek2(Ident) {
                blocks.push(BlockSyntax::parse_after(attrs, input)?);
            } else {
                let (net, twin) = NetSyntax::parse_after(attrs, input)?;
                nets.push(net);
                nets.extend(twin);
            }
            stray_bar(input)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![;]>()?;
        }
        Ok(Input { nets, blocks })
    }
}

impl BlockSyntax {
    /// The block after its attributes (doc comments, which document the
    /// invocation's source only: a block generates no item).
    fn parse_after(attrs: Vec<Attribute>, input: ParseStream) -> syn::Result<Self> {
        if let Some(attr) = attrs.iter().find(|a| !a.path().is_ident("doc")) {
            return Err(syn::Error::new_spanned(
                attr,
                "a block takes doc comments only: it generates no item an attribute could apply to",
            ));
        }
        input.parse::<kw::block>()?;
        let name: Ident = input.parse()?;
        if !input.peek(token::Paren) {
            return Err(input.error(format!(
                "expected the parameters of block `{name}` in parentheses, e.g. `block {name}(c, strides = 1) => ..`"
            )));
        }
        let content;
        parenthesized!(content in input);
        let mut params = Vec::new();
        while !content.is_empty() {
            let name = Ident::parse_any(&content)?;
            let default = if content.peek(Token![=]) {
                content.parse::<Token![=]>()?;
                Some(content.parse()?)
            } else {
                None
            };
            params.push(BlockParam { name, default });
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        input.parse::<Token![=>]>()?;
        let chain = input.parse()?;
        Ok(BlockSyntax { name, params, chain })
    }
}

impl Parse for NetSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        Ok(NetSyntax::parse_after(attrs, input)?.0)
    }
}

impl NetSyntax {
    /// The net after its attributes, and its int8 twin if it names one
    /// (`pub A, B: ..`): the same layers (parsed again from the same
    /// tokens, so messages point at them), declared `int8` without a file.
    fn parse_after(attrs: Vec<Attribute>, input: ParseStream) -> syn::Result<(Self, Option<Self>)> {
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse()?;
        let twin = if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            let twin: Ident = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected the name of `{name}`'s int8 twin after the comma, e.g. `pub {name}, {name}Int8: ..`"),
                )
            })?;
            Some(twin)
        } else {
            None
        };
        input.parse::<Token![:]>()?;
        if !input.peek(token::Bracket) {
            return Err(input.error("expected the input shape `[C, H, W]`, e.g. `[1, 28, 28]`"));
        }
        let content;
        let shape_bracket = bracketed!(content in input);
        let dims = Punctuated::<LitInt, Token![,]>::parse_terminated(&content)?;
        let shape: Vec<LitInt> = dims.into_iter().collect();
        let int8 = input.parse::<Option<kw::int8>>()?;
        let weights = if input.peek(kw::weights) {
            input.parse::<kw::weights>()?;
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        if let (Some(twin), Some(int8)) = (&twin, &int8) {
            return Err(syn::Error::new(
                int8.span,
                format!("`{name}` has an int8 twin (`{twin}`), so it is the float net: leave out `int8`"),
            ));
        }
        let arrow: Token![=>] = input.parse()?;
        let twin = match twin {
            Some(twin) => {
                let fork = input.fork();
                let chain = fork.parse()?;
                let doc = format!(
                    "[`{name}`] with int8 tensors loaded at run time (`from_parts`, or \
                     `cnn_runtime::weights::int8::load` of the file `cnn quantize` writes)."
                );
                let mut twin_attrs: Vec<Attribute> = vec![syn::parse_quote!(#[doc = #doc])];
                twin_attrs.extend(attrs.iter().filter(|a| !a.path().is_ident("doc")).cloned());
                Some(NetSyntax {
                    attrs: twin_attrs,
                    vis: vis.clone(),
                    int8: Some(kw::int8(twin.span())),
                    name: twin,
                    shape_bracket,
                    shape: shape.clone(),
                    weights: None,
                    arrow,
                    chain,
                })
            }
            None => None,
        };
        let chain = input.parse()?;
        let net = NetSyntax {
            attrs,
            vis,
            name,
            shape_bracket,
            shape,
            int8,
            weights,
            arrow,
            chain,
        };
        Ok((net, twin))
    }
}

impl Parse for ChainSyntax {
    /// Nodes up to the end of the input, a `;` or a `|` (which ends a
    /// branch of `add { .. }` or `cat { .. }`).
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut nodes = Vec::new();
        while !input.is_empty() && !input.peek(Token![;]) && !input.peek(Token![|]) {
            nodes.push(input.parse()?);
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(ChainSyntax { nodes })
    }
}

/// A `|` where a chain ended outside `add { .. }` or `cat { .. }`.
fn stray_bar(input: ParseStream) -> syn::Result<()> {
    if input.peek(Token![|]) {
        return Err(input.error(
            "`|` separates branches only inside `add { .. }` or `cat { .. }`, e.g. `add { conv(_, 8, 3, pad = 1) | identity }`",
        ));
    }
    Ok(())
}

impl Parse for NodeSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let fork = input.fork();
        let label = match LabelSyntax::parse_on(&fork) {
            Some(label) if fork.peek(Token![:]) && !fork.peek(Token![::]) => {
                input.advance_to(&fork);
                input.parse::<Token![:]>()?;
                Some(label)
            }
            _ => None,
        };
        let unit = if input.peek(token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let chain = content.parse()?;
            stray_bar(&content)?;
            UnitSyntax::Seq { bracket, chain }
        } else if (input.peek(kw::add) || input.peek(kw::cat)) && input.peek2(token::Brace) {
            let kind = if input.peek(kw::add) {
                JoinKind::Add
            } else {
                JoinKind::Cat
            };
            let keyword = Ident::parse_any(input)?;
            let content;
            braced!(content in input);
            let mut branches = vec![content.parse::<ChainSyntax>()?];
            while !content.is_empty() {
                if !content.peek(Token![|]) {
                    return Err(content.error(format!(
                        "expected `|` between the branches of `{keyword} {{ .. }}`, or its closing `}}`"
                    )));
                }
                content.parse::<Token![|]>()?;
                branches.push(content.parse()?);
            }
            UnitSyntax::Join {
                kind,
                keyword,
                branches,
            }
        } else if input.peek(Token![if]) {
            input.parse::<Token![if]>()?;
            let flag: Ident = input.parse()?;
            let content;
            braced!(content in input);
            let then = content.parse()?;
            stray_bar(&content)?;
            let otherwise = if input.peek(Token![else]) {
                input.parse::<Token![else]>()?;
                let content;
                braced!(content in input);
                let chain = content.parse()?;
                stray_bar(&content)?;
                chain
            } else {
                ChainSyntax { nodes: Vec::new() }
            };
            UnitSyntax::If {
                flag,
                then,
                otherwise,
            }
        } else {
            UnitSyntax::Layer(input.parse()?)
        };
        Ok(NodeSyntax { label, unit })
    }
}

impl LabelSyntax {
    /// A label's segments, if `input` starts with one: `IDENT` or `INT`,
    /// then `.` and more of them (`net.0.1` lexes its tail as the float
    /// `0.1`, split back into segments).
    fn parse_on(input: ParseStream) -> Option<LabelSyntax> {
        let mut segments = Vec::new();
        loop {
            if input.peek(LitInt) {
                let int: LitInt = input.parse().ok()?;
                segments.push((int.base10_digits().to_string(), int.span()));
            } else if input.peek(Ident::peek_any) {
                let ident = Ident::parse_any(input).ok()?;
                segments.push((ident.to_string(), ident.span()));
            } else if !segments.is_empty() && input.peek(LitFloat) {
                let float: LitFloat = input.parse().ok()?;
                let digits = float.base10_digits();
                if !float.suffix().is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return None;
                }
                segments.extend(digits.split('.').map(|d| (d.to_string(), float.span())));
            } else {
                return None;
            }
            if !input.peek(Token![.]) || input.peek(Token![..]) {
                return Some(LabelSyntax { segments });
            }
            input.parse::<Token![.]>().ok()?;
        }
    }

    /// The key segment: `conv1`, `0`, `net.0`.
    pub fn segment(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|(s, _)| s.as_str()).collect();
        names.join(".")
    }

    /// Where it was written (its first segment).
    pub fn span(&self) -> Span {
        self.segments.first().map_or_else(Span::call_site, |s| s.1)
    }
}

impl Parse for LayerSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if !lookahead.peek(Ident::peek_any) {
            return Err(input.error("expected a layer, e.g. `conv(1, 6, 5)`, `relu` or `flatten`"));
        }
        let name = Ident::parse_any(input)?;
        let (paren, args) = if input.peek(token::Paren) {
            let content;
            let paren = parenthesized!(content in input);
            let args = Punctuated::<ArgSyntax, Token![,]>::parse_terminated(&content)?;
            (Some(paren), args.into_iter().collect())
        } else {
            (None, Vec::new())
        };
        Ok(LayerSyntax { name, paren, args })
    }
}

impl Parse for ArgSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Ident::peek_any) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let name = Ident::parse_any(input)?;
            let eq = input.parse()?;
            let value = input.parse()?;
            return Ok(ArgSyntax::Named { name, eq, value });
        }
        Ok(ArgSyntax::Positional(input.parse()?))
    }
}

impl Parse for ValueSyntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitInt) {
            return Ok(ValueSyntax::Int(input.parse()?));
        }
        if input.peek(LitFloat) {
            return Ok(ValueSyntax::Float(input.parse()?));
        }
        if input.peek(LitBool) {
            return Ok(ValueSyntax::Bool(input.parse()?));
        }
        if input.peek(Token![_]) {
            return Ok(ValueSyntax::Infer(input.parse()?));
        }
        if input.peek(token::Paren) {
            let fork = input.fork();
            let content;
            let paren = parenthesized!(content in fork);
            let items = Punctuated::<ValueSyntax, Token![,]>::parse_terminated(&content);
            if let Ok(items) = items {
                if items.len() == 2 && !items.trailing_punct() {
                    let mut items = items.into_iter();
                    let (first, second) = (items.next(), items.next());
                    if let (Some(first), Some(second)) = (first, second) {
                        let _: TokenStream = input.parse::<proc_macro2::Group>()?.into_token_stream();
                        return Ok(ValueSyntax::Pair {
                            paren,
                            first: Box::new(first),
                            second: Box::new(second),
                        });
                    }
                }
            }
        }
        // Anything else up to the next top-level comma: reported later with
        // its own span.
        let mut tokens = TokenStream::new();
        while !input.is_empty() && !input.peek(Token![,]) {
            let tt: proc_macro2::TokenTree = input.parse()?;
            tokens.extend(std::iter::once(tt));
        }
        Ok(ValueSyntax::Other(tokens))
    }
}

impl ToTokens for ValueSyntax {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            ValueSyntax::Int(v) => v.to_tokens(tokens),
            ValueSyntax::Float(v) => v.to_tokens(tokens),
            ValueSyntax::Bool(v) => v.to_tokens(tokens),
            ValueSyntax::Infer(v) => v.to_tokens(tokens),
            ValueSyntax::Pair { paren, first, second } => paren.surround(tokens, |inner| {
                first.to_tokens(inner);
                <Token![,]>::default().to_tokens(inner);
                second.to_tokens(inner);
            }),
            ValueSyntax::Other(v) => v.to_tokens(tokens),
        }
    }
}

impl ToTokens for ArgSyntax {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            ArgSyntax::Positional(v) => v.to_tokens(tokens),
            ArgSyntax::Named { name, eq, value } => {
                name.to_tokens(tokens);
                eq.to_tokens(tokens);
                value.to_tokens(tokens);
            }
        }
    }
}

impl ToTokens for LayerSyntax {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.name.to_tokens(tokens);
        if let Some(paren) = &self.paren {
            paren.surround(tokens, |inner| {
                for (i, arg) in self.args.iter().enumerate() {
                    if i > 0 {
                        <Token![,]>::default().to_tokens(inner);
                    }
                    arg.to_tokens(inner);
                }
            });
        }
    }
}

impl ValueSyntax {
    /// The value as the user would write it, normalised: `5`, `(3, 5)`, `_`.
    pub fn render(&self) -> String {
        match self {
            ValueSyntax::Int(v) => v.base10_digits().to_string(),
            ValueSyntax::Float(v) => v.base10_digits().to_string(),
            ValueSyntax::Bool(v) => v.value.to_string(),
            ValueSyntax::Infer(_) => "_".to_string(),
            ValueSyntax::Pair { first, second, .. } => format!("({}, {})", first.render(), second.render()),
            ValueSyntax::Other(tokens) => tokens.to_string(),
        }
    }

    /// The span of the value's first token (good enough to point at it).
    pub fn span(&self) -> Span {
        match self {
            ValueSyntax::Int(v) => v.span(),
            ValueSyntax::Float(v) => v.span(),
            ValueSyntax::Bool(v) => v.span,
            ValueSyntax::Infer(v) => v.span,
            ValueSyntax::Pair { paren, .. } => paren.span.join(),
            ValueSyntax::Other(tokens) => tokens
                .clone()
                .into_iter()
                .next()
                .map_or_else(Span::call_site, |t| t.span()),
        }
    }
}

impl LayerSyntax {
    /// The layer as the user wrote it, normalised: `conv(1, 6, 5, pad = 2)`.
    pub fn render(&self) -> String {
        let mut s = self.name.to_string();
        if self.paren.is_some() {
            let args: Vec<String> = self
                .args
                .iter()
                .map(|arg| match arg {
                    ArgSyntax::Positional(v) => v.render(),
                    ArgSyntax::Named { name, value, .. } => format!("{name} = {}", value.render()),
                })
                .collect();
            s.push('(');
            s.push_str(&args.join(", "));
            s.push(')');
        }
        s
    }
}
