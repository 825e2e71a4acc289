//! `linear(in, out, bias = b)`: PyTorch's `nn.Linear` (`y = x W^T + b`,
//! weights `[out, in]`); kernels in `cnn-runtime/src/ops/linear.rs`.

use super::{
    bias_arg, int8_stage, lit, param_slice, private, BackwardIo, Effect, ForwardIo, Int8Code, Int8Io,
    Int8Output, Int8Step, Op, Role, TensorSpec,
};
use crate::ctxt::Errors;
use crate::layer::{Accepts, Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::{Span, TokenStream};
use quote::quote;

/// A resolved `linear`.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// `None` for `_`: inferred from the input.
    pub in_features: Option<usize>,
    pub in_span: Span,
    pub out_features: usize,
    pub bias: bool,
}

impl Linear {
    /// The runtime's `Linear` geometry as a `const G`.
    fn geometry(&self, l: &LayerPlan) -> TokenStream {
        let p = private();
        let (i, o) = (lit(l.shaped.fan_in_units), lit(self.out_features));
        quote!(const G: #p::ops::linear::Linear = #p::ops::linear::Linear { in_features: #i, out_features: #o };)
    }
}

impl Op for Linear {
    const KEYWORD: &'static str = "linear";
    const TORCH_NAME: &'static str = "Linear";
    const ARGS: &'static [Param] = &[
        Param::new("in", Accepts::PositiveOrInfer),
        Param::new("out", Accepts::Positive),
    ];
    const OPTIONS: &'static [Param] = &[Param::new("bias", Accepts::Bool)];
    const ELEMENT_WISE: bool = false;
    const HAS_PARAMS: bool = true;

    fn build(args: &Args) -> Self {
        let (in_features, in_span) = args.int_or_infer(0);
        Linear {
            in_features,
            in_span,
            out_features: args.int(1),
            bias: args.flag("bias"),
        }
    }

    fn effect(&self) -> Effect {
        Effect::Compute
    }

    fn shape(
        &self,
        layer: &Layer,
        input: Option<Shape>,
        from: &Provenance,
        errors: &mut Errors,
    ) -> Option<(Shape, usize)> {
        let source = &layer.source;
        let output = Shape::Flat(self.out_features);
        // With `in` written out, the output is known even when the input is not.
        let Some(input) = input else {
            return self.in_features.map(|f| (output, f));
        };
        // After a mistake, go on with the declared output so that later
        // independent mistakes are reported in the same build.
        let features = match input {
            Shape::Flat(n) => n,
            chw => {
                errors.push(
                    layer.syntax.name.span(),
                    format!(
                        "{source}: needs a flat input, but {}\nhelp: insert `flatten` before this layer; it yields [{}]",
                        from.yields(chw),
                        chw.len()
                    ),
                );
                return Some((output, self.in_features.unwrap_or(chw.len())));
            }
        };
        if let Some(expected) = self.in_features {
            if expected != features {
                errors.push(
                    self.in_span,
                    format!(
                        "{source}: expected {features} input features, {}\nhelp: write {features} here, or `_` to infer it",
                        from.yields(input)
                    ),
                );
                return Some((output, expected));
            }
        }
        Some((output, features))
    }

    fn tensors(&self, shaped: &Shaped) -> (Vec<TensorSpec>, usize) {
        let f = shaped.fan_in_units;
        let o = self.out_features;
        let mut tensors = vec![TensorSpec {
            suffix: "weight",
            shape: vec![o, f],
            role: Role::Weight,
            fan_in: f,
            fan_out: o,
        }];
        if self.bias {
            tensors.push(TensorSpec {
                suffix: "bias",
                shape: vec![o],
                role: Role::Bias,
                fan_in: f,
                fan_out: o,
            });
        }
        (tensors, f.saturating_mul(o))
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn forward(&self, l: &LayerPlan, _: &ForwardIo) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let w = param_slice(l.weight);
        let b = bias_arg(l.bias);
        quote! {
            #geometry
            if GEMM {
                #p::ops::linear::forward_gemm(&G, n, x, #w, #b, y);
            } else {
                #p::ops::linear::forward(&G, n, x, #w, #b, y);
            }
        }
    }

    fn int8(&self, l: &LayerPlan, io: &Int8Io) -> Result<Int8Step, String> {
        let p = private();
        let Some(slots) = io.slots else {
            return Err("has no int8 tensors".to_string());
        };
        let geometry = self.geometry(l);
        // TFLite rounds a linear layer's multiplier differently with one
        // weight scale than with one per output.
        let (stage, prepare) = int8_stage(slots, io, Some(self.out_features));
        let code = quote! {
            #geometry
            #stage
            #p::ops::linear::int8::forward(&G, n, x, W, bias, &stage, y);
        };
        Ok(Int8Step::Compute(Int8Code {
            code,
            prepare,
            output: Int8Output::Own(slots.index),
            luts_taken: 0,
            means_taken: 0,
        }))
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let w = param_slice(l.weight);
        let out_len = lit(l.out_len());
        let BackwardIo {
            x,
            dy_buffer,
            dx,
            grads_split,
            ..
        } = io;
        quote! { {
            #geometry
            #grads_split
            let dy: &[f32] = &#dy_buffer[..n * #out_len];
            if GEMM {
                #p::ops::linear::backward_gemm(&G, n, &*#x, #w, dy, dw, db, #dx);
            } else {
                #p::ops::linear::backward(&G, n, &*#x, #w, dy, dw, db, #dx);
            }
        }}
    }
}
