//! `batchnorm(channels, eps = .., momentum = ..)`: PyTorch's `nn.BatchNorm2d`
//! after a `[C, H, W]` value and `nn.BatchNorm1d` after a flat one; the
//! channel count may be left out (`batchnorm`, like `LazyBatchNorm2d`).
//!
//! Training normalises with the statistics of the whole batch, exchanged
//! between the shares of a batch (`sync`), keeps them in the workspace's
//! statistics area for the backward pass and for the running statistics,
//! which are buffers updated once per step. Inference uses the running
//! statistics, in place. Kernels in `cnn-runtime/src/ops/batchnorm.rs`.

use super::{
    lit, param_slice, private, BackwardIo, Effect, ForwardIo, Int8Io, Int8Step, Op, Role, TensorSpec,
};
use crate::ctxt::Errors;
use crate::layer::{Accepts, Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;

/// A resolved `batchnorm`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm {
    /// `None` when left out: inferred from the input.
    pub channels: Option<usize>,
    pub channels_span: Span,
    pub eps: f32,
    pub momentum: f32,
}

/// `c` channels of `s` elements each, from the layer's input shape.
fn extent(shape: Shape) -> (usize, usize) {
    match shape {
        Shape::Chw(c, h, w) => (c, h.saturating_mul(w)),
        Shape::Flat(f) => (f, 1),
    }
}

impl BatchNorm {
    /// `let g = Geometry { .. };` and the layer's slices of the statistics
    /// area (`mean`, `var`, `invstd`, `c` each).
    fn geometry(&self, l: &LayerPlan) -> TokenStream {
        let p = private();
        let (c, s) = extent(l.shaped.input);
        let (c, s) = (lit(c), lit(s));
        quote!(let g = #p::ops::batchnorm::Geometry { n, c: #c, s: #s };)
    }

    /// The layer's `[start, end)` of the statistics area.
    fn stats_range(&self, l: &LayerPlan) -> (Literal, Literal, Literal) {
        let c = extent(l.shaped.input).0;
        let start = l.stats.unwrap_or(0);
        (lit(start), lit(c), lit(start.saturating_add(3 * c)))
    }

    /// The `Fold` of this layer's inference map, for the conv before it to
    /// take in (`conv::forward_gemm_folded`).
    pub fn fold(&self, l: &LayerPlan) -> TokenStream {
        let p = private();
        let (mean, var) = self.running(l);
        let (gamma, beta) = (param_slice(l.weight), param_slice(l.bias));
        let eps = Literal::f32_suffixed(self.eps);
        quote! {
            #p::ops::batchnorm::Fold { running_mean: #mean, running_var: #var, eps: #eps, gamma: #gamma, beta: #beta }
        }
    }

    /// `&self.buffers[..]` of the running mean and variance.
    fn running(&self, l: &LayerPlan) -> (TokenStream, TokenStream) {
        let c = extent(l.shaped.input).0;
        let b = l.buffers.unwrap_or(0);
        let (a, m, e) = (lit(b), lit(b + c), lit(b + 2 * c));
        (quote!(&self.buffers[#a..#m]), quote!(&self.buffers[#m..#e]))
    }
}

impl Op for BatchNorm {
    const KEYWORD: &'static str = "batchnorm";
    const TORCH_NAME: &'static str = "BatchNorm";
    const ARGS: &'static [Param] = &[Param::optional("channels", Accepts::Positive)];
    const OPTIONS: &'static [Param] = &[
        Param::new("eps", Accepts::PositiveFloat),
        Param::new("momentum", Accepts::Probability),
    ];
    const ELEMENT_WISE: bool = true;
    const HAS_PARAMS: bool = true;

    fn build(args: &Args) -> Self {
        let (channels, channels_span) = args.int_or_infer(0);
        BatchNorm {
            channels,
            channels_span,
            eps: args.option_float("eps").unwrap_or(1e-5),
            momentum: args.option_float("momentum").unwrap_or(0.1),
        }
    }

    fn effect(&self) -> Effect {
        Effect::Normalize
    }

    fn shape(
        &self,
        layer: &Layer,
        input: Option<Shape>,
        from: &Provenance,
        errors: &mut Errors,
    ) -> Option<(Shape, usize)> {
        let input = input?;
        let (c, _) = extent(input);
        if let Some(want) = self.channels {
            if want != c {
                let what = match input {
                    Shape::Chw(..) => "channels",
                    Shape::Flat(_) => "features",
                };
                errors.push(
                    self.channels_span,
                    format!(
                        "{}: input has {c} {what} ({}), expected {want}\nhelp: write {c} here, or `batchnorm` to infer it",
                        layer.source,
                        from.yields(input)
                    ),
                );
                // The shape goes on unchanged, so later mistakes show too.
            }
        }
        Some((input, c))
    }

    fn tensors(&self, shaped: &Shaped) -> (Vec<TensorSpec>, usize) {
        let c = shaped.fan_in_units;
        let spec = |suffix, shape: Vec<usize>, role| TensorSpec {
            suffix,
            shape,
            role,
            fan_in: c,
            fan_out: c,
        };
        let tensors = vec![
            spec("weight", vec![c], Role::NormWeight),
            spec("bias", vec![c], Role::NormBias),
            spec("running_mean", vec![c], Role::RunningMean),
            spec("running_var", vec![c], Role::RunningVar),
            spec("num_batches_tracked", vec![], Role::BatchesTracked),
        ];
        (tensors, shaped.input.len())
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn torch_name_for(&self, shaped: &Shaped) -> &'static str {
        match shaped.input {
            Shape::Chw(..) => "BatchNorm2d",
            Shape::Flat(_) => "BatchNorm1d",
        }
    }

    fn forward(&self, l: &LayerPlan, io: &ForwardIo) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let (gamma, beta) = (param_slice(l.weight), param_slice(l.bias));
        let eps = Literal::f32_suffixed(self.eps);
        if !io.train {
            let (mean, var) = self.running(l);
            let target = &io.target;
            return quote! { {
                #geometry
                #p::ops::batchnorm::forward_eval(&g, #mean, #var, #eps, #gamma, #beta, #target);
            }};
        }
        let (start, c, end) = self.stats_range(l);
        let c1 = lit(extent(l.shaped.input).0 + 1);
        quote! { {
            #geometry
            let (mean, rest) = stats[#start..#end].split_at_mut(#c);
            let (var, invstd) = rest.split_at_mut(#c);
            let mut sums = [0.0f64; #c1];
            #p::ops::batchnorm::sum(&g, x, &mut sums);
            sync.sum(&mut sums);
            let count = sums[0];
            #p::ops::batchnorm::finish_mean(count, &sums[1..], mean);
            let squares = &mut sums[1..];
            #p::ops::batchnorm::sum_squares(&g, x, mean, squares);
            sync.sum(squares);
            #p::ops::batchnorm::finish_var(count, #eps, squares, var, invstd);
            #p::ops::batchnorm::normalize(&g, x, mean, invstd, #gamma, #beta, y);
        }}
    }

    /// Folded into the conv or linear layer before it (the int8 file holds
    /// that layer's folded weights and bias), as TFLite's converter does.
    fn int8(&self, _: &LayerPlan, io: &Int8Io) -> Result<Int8Step, String> {
        if io.absorbed {
            Ok(Int8Step::Same)
        } else {
            Err("in an int8 net must directly follow a conv or linear layer, as the only reader of its output, \
                 into which it folds (as TFLite's converter folds it)"
                .to_string())
        }
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let gamma = param_slice(l.weight);
        let (start, c, end) = self.stats_range(l);
        let (channels, s) = extent(l.shaped.input);
        let sums_len = lit(2 * channels + 1);
        let (s, out_len) = (lit(s), lit(l.out_len()));
        let BackwardIo {
            x,
            dy_buffer,
            dx,
            grads_split,
            ..
        } = io;
        quote! { {
            #geometry
            let (mean, rest) = stats[#start..#end].split_at(#c);
            let invstd = &rest[#c..];
            let dy: &[f32] = &#dy_buffer[..n * #out_len];
            let mut sums = [0.0f64; #sums_len];
            sums[0] = (n * #s) as f64;
            #p::ops::batchnorm::grad_sums(&g, &*#x, mean, invstd, dy, &mut sums[1..]);
            #grads_split
            #p::ops::batchnorm::param_grads(#c, &sums[1..], dw, db.unwrap_or_default());
            sync.sum(&mut sums);
            #p::ops::batchnorm::backward(&g, &*#x, mean, invstd, #gamma, dy, sums[0], &sums[1..], #dx);
        }}
    }

    fn update(&self, l: &LayerPlan) -> TokenStream {
        let p = private();
        let (channels, s) = extent(l.shaped.input);
        let (start, c, end) = self.stats_range(l);
        let b = l.buffers.unwrap_or(0);
        let (b0, b1) = (lit(b), lit(b + 2 * channels + 1));
        let momentum = Literal::f32_suffixed(self.momentum);
        let s = lit(s);
        quote! { {
            let (mean, rest) = stats[#start..#end].split_at(#c);
            let var = &rest[..#c];
            let (running_mean, rest) = self.buffers[#b0..#b1].split_at_mut(#c);
            let (running_var, tracked) = rest.split_at_mut(#c);
            #p::ops::batchnorm::update_running(#momentum, (n * #s) as f64, mean, var, running_mean, running_var, &mut tracked[0]);
        }}
    }
}
