//! `conv(in, out, k, stride = s, pad = p, bias = b, groups = g)`: PyTorch's
//! `nn.Conv2d` (cross-correlation, zero padding, OIHW weights, `groups`
//! splitting the channels; depthwise when `g == in`); kernels in
//! `cnn-runtime/src/ops/conv.rs` and `conv/`.

use super::window::{pair_lits, window_output};
use super::{
    bias_arg, int8_stage, lit, param_slice, private, BackwardIo, Effect, ForwardIo, Fused, Int8Code, Int8Io,
    Int8Output, Int8Step, Op, Role, TensorSpec,
};
use crate::ctxt::Errors;
use crate::layer::{Accepts, Args, Layer, Pair, Param};
use crate::plan::LayerPlan;
use crate::shape::{need_chw, Provenance, Shape, Shaped};
use proc_macro2::{Span, TokenStream};
use quote::quote;

/// A resolved `conv`.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    /// `None` for `_`: inferred from the input.
    pub in_channels: Option<usize>,
    pub in_span: Span,
    pub out_channels: usize,
    pub kernel: Pair,
    pub stride: Pair,
    pub pad: Pair,
    pub bias: bool,
    /// Channel groups (1: an ordinary conv).
    pub groups: usize,
    /// Where `groups` was written (or the keyword).
    pub groups_span: Span,
}

impl Conv {
    /// The runtime's `Conv2d` geometry (of one group) as a `const G`.
    fn geometry(&self, l: &LayerPlan) -> TokenStream {
        let p = private();
        let Shape::Chw(c, h, w) = l.shaped.input else {
            return TokenStream::new();
        };
        let (c, h, w) = (lit(c / self.groups), lit(h), lit(w));
        let o = lit(self.out_channels / self.groups);
        let (k, s, pd) = (
            pair_lits(self.kernel),
            pair_lits(self.stride),
            pair_lits(self.pad),
        );
        quote! {
            const G: #p::ops::conv::Conv2d = #p::ops::conv::Conv2d {
                in_channels: #c, in_h: #h, in_w: #w, out_channels: #o, kernel: #k, stride: #s, pad: #pd,
            };
        }
    }

    /// The inference pass of this layer with the batch norm after it
    /// folded in (`bn`, a `batchnorm::Fold` expression) and the activation
    /// after that, if any, applied to its output: for the `GEMM` passes,
    /// whose `col` has room for the folded weights (`col_len`). With the
    /// net's packed weights (`packed`), from their `range` (`(offset,
    /// len)`, [`Conv::pack`]) instead of folding them.
    pub fn forward_folded(
        &self,
        l: &LayerPlan,
        bn: TokenStream,
        act: Option<Fused>,
        range: (usize, usize),
    ) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let (w, b, groups) = (param_slice(l.weight), bias_arg(l.bias), lit(self.groups));
        let act = match act {
            None => quote!(None),
            Some(Fused::Relu) => quote!(Relu),
            Some(Fused::Relu6) => quote!(Relu6),
        };
        let (start, len) = (lit(range.0), lit(range.1));
        let end = lit(range.0.saturating_add(range.1));
        quote! {
            #geometry
            const _: () = #p::core::assert!(#p::ops::conv::packed_len(&G, #groups) == #len, "conv: packed layout");
            match packed {
                #p::core::option::Option::Some(packed) => {
                    #p::ops::conv::forward_packed(&G, #groups, n, x, &packed[#start..#end], #p::quant::Activation::#act, y, col);
                }
                #p::core::option::Option::None => {
                    #p::ops::conv::forward_gemm_folded(&G, #groups, n, x, #w, #b, &#bn, #p::quant::Activation::#act, y, col);
                }
            }
        }
    }

    /// The floats of this layer's packed weights with a batch norm folded
    /// in (`conv::packed_len`): the folded weights and bias, then, for an
    /// ungrouped conv that Winograd's path takes, its transformed filters
    /// (`U`: 16 points x outputs padded to 8 x inputs).
    pub fn packed_len(&self, l: &LayerPlan) -> usize {
        let folded = l.weight.map_or(0, |w| w.1).saturating_add(self.out_channels);
        let winograd = match (l.shaped.input, l.shaped.output) {
            (Shape::Chw(c, ..), Shape::Chw(o, oh, ow))
                if self.groups == 1 && self.winograd_takes(c, o, oh, ow) =>
            {
                let op = o.checked_next_multiple_of(8).unwrap_or(usize::MAX);
                op.saturating_mul(c).saturating_mul(16)
            }
            _ => 0,
        };
        folded.saturating_add(winograd)
    }

    /// The floats of this layer's packed weights without a batch norm
    /// after it (`conv::winograd_filters_len`): the transformed filters of
    /// an ungrouped conv that Winograd's path takes, else 0.
    pub fn filters_len(&self, l: &LayerPlan) -> usize {
        if self.groups != 1 {
            return 0;
        }
        let folded = l.weight.map_or(0, |w| w.1).saturating_add(self.out_channels);
        self.packed_len(l).saturating_sub(folded)
    }

    /// The statement `Network::pack` runs for this layer when no batch
    /// norm folds into it: its transformed filters into `packed[range]`
    /// (`conv::pack_filters`).
    pub fn pack_filters(&self, l: &LayerPlan, range: (usize, usize)) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let w = param_slice(l.weight);
        let (start, end) = (lit(range.0), lit(range.0.saturating_add(range.1)));
        quote! {{
            #geometry
            #p::ops::conv::pack_filters(&G, #w, &mut packed[#start..#end]);
        }}
    }

    /// The `GEMM` inference pass of this layer on its transformed filters
    /// in `packed[range]` (`conv::forward_gemm_filters`).
    pub fn forward_filters(&self, l: &LayerPlan, range: (usize, usize)) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let (w, b) = (param_slice(l.weight), bias_arg(l.bias));
        let (start, len) = (lit(range.0), lit(range.1));
        let end = lit(range.0.saturating_add(range.1));
        quote! {
            #geometry
            const _: () = #p::core::assert!(#p::ops::conv::winograd_filters_len(&G) == #len, "conv: packed layout");
            #p::ops::conv::forward_gemm_filters(&G, n, x, #w, #b, &packed[#start..#end], y, col);
        }
    }

    /// The statement `Network::pack` runs for this layer and the batch
    /// norm after it (`bn`, a `batchnorm::Fold` expression): its packed
    /// weights into `packed[range]` (`conv::pack_folded`).
    pub fn pack(&self, l: &LayerPlan, bn: TokenStream, range: (usize, usize)) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let (w, b, groups) = (param_slice(l.weight), bias_arg(l.bias), lit(self.groups));
        let (start, end) = (lit(range.0), lit(range.0.saturating_add(range.1)));
        quote! {{
            #geometry
            #p::ops::conv::pack_folded(&G, #groups, #w, #b, &#bn, &mut packed[#start..#end]);
        }}
    }
}

impl Conv {
    /// The scratch the runtime's F(2x2, 3x3) forward pass takes for one
    /// group of images of `c` planes to `o` planes of `oh x ow` (the fewest
    /// whose tiles fill 3 vectors of 16, as AVX-512 runs them: AVX2's 3
    /// vectors of 8 never take more; `conv::winograd_scratch_len`
    /// is the larger of this for the conv and for its input gradient as a
    /// forward pass; a test in `tests/` holds the two to each other): 3x3,
    /// stride-1 convs with 8 or more input and output channels and 16 or
    /// more 2x2 output tiles; 0 for others. The filters `U` (16 points x
    /// outputs padded to 8 x inputs), the transformed tiles `V` and the
    /// products `M` (per channel,
    /// vectors of 16 tiles x 16 points, plus 16 floats of skew each), each
    /// buffer rounded to a cache line, and a line to align the first.
    fn winograd_len(&self, c: usize, o: usize, oh: usize, ow: usize) -> usize {
        if !self.winograd_takes(c, o, oh, ow) {
            return 0;
        }
        let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
        let rows = match tw {
            0..=4 => 4,
            5..=8 => 2,
            _ => 1,
        };
        let up = |n: usize, m: usize| n.checked_next_multiple_of(m).unwrap_or(usize::MAX);
        let op = up(o, 8);
        // Vectors of 16 tiles: per tile row (wide planes), or per 2 or 4
        // tile rows.
        let per_row = if rows == 1 { tw.div_ceil(16) } else { 1 };
        let vectors = th.div_ceil(rows).saturating_mul(per_row);
        // Images enough for the 3 vectors of a GEMM register tile.
        let group_vectors = vectors.saturating_mul(3usize.div_ceil(vectors.max(1)));
        let buffers = [
            op.saturating_mul(c).saturating_mul(16),
            c.saturating_mul(group_vectors).saturating_mul(272),
            op.saturating_mul(group_vectors).saturating_mul(272),
        ];
        buffers
            .iter()
            .fold(15usize, |sum, &len| sum.saturating_add(up(len, 16)))
    }
}

impl Conv {
    /// Whether the runtime's F(2x2, 3x3) path takes this conv (one group)
    /// from `c` planes to `o` planes of `oh x ow` (`conv::winograd_takes`):
    /// 3x3, stride 1, 8 or more input and output channels, 16 or more 2x2
    /// output tiles.
    fn winograd_takes(&self, c: usize, o: usize, oh: usize, ow: usize) -> bool {
        (self.kernel.h, self.kernel.w) == (3, 3)
            && (self.stride.h, self.stride.w) == (1, 1)
            && c >= 8
            && o >= 8
            && oh.div_ceil(2).saturating_mul(ow.div_ceil(2)) >= 16
    }
}

impl Op for Conv {
    const KEYWORD: &'static str = "conv";
    const TORCH_NAME: &'static str = "Conv2d";
    const ARGS: &'static [Param] = &[
        Param::new("in", Accepts::PositiveOrInfer),
        Param::new("out", Accepts::Positive),
        Param::new("kernel", Accepts::PositivePair),
    ];
    const OPTIONS: &'static [Param] = &[
        Param::new("stride", Accepts::PositivePair),
        Param::new("pad", Accepts::NonNegativePair),
        Param::new("bias", Accepts::Bool),
        Param::new("groups", Accepts::Positive),
    ];
    const ELEMENT_WISE: bool = false;
    const HAS_PARAMS: bool = true;

    fn build(args: &Args) -> Self {
        let (in_channels, in_span) = args.int_or_infer(0);
        let one = args.default_pair(1);
        Conv {
            in_channels,
            in_span,
            out_channels: args.int(1),
            kernel: args.pair(2).unwrap_or(one),
            stride: args.option_pair("stride").unwrap_or(one),
            pad: args.option_pair("pad").unwrap_or(args.default_pair(0)),
            bias: args.flag("bias"),
            groups: args.option_int("groups").map_or(1, |(g, _)| g),
            groups_span: args
                .option_int("groups")
                .map_or(args.name_span(), |(_, span)| span),
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
        let (c, h, w) = need_chw(layer, input?, from, errors)?;
        let mut channels = c;
        if let Some(expected) = self.in_channels {
            if expected != c {
                errors.push(
                    self.in_span,
                    format!(
                        "{source}: input has {c} channel{} (from {}), expected {expected}\nhelp: write {c} here, or `_` to infer it",
                        if c == 1 { "" } else { "s" },
                        from.from()
                    ),
                );
                // Go on as declared, so later independent mistakes show too.
                channels = expected;
            }
        }
        let groups = self.groups;
        if !channels.is_multiple_of(groups) || !self.out_channels.is_multiple_of(groups) {
            errors.push(
                self.groups_span,
                format!(
                    "{source}: groups = {groups} must divide both the input channels ({channels}) and the output channels ({})",
                    self.out_channels
                ),
            );
            return None;
        }
        let (oh, ow) = window_output(source, "kernel", h, w, self.kernel, self.stride, self.pad, errors)?;
        Some((Shape::Chw(self.out_channels, oh, ow), channels))
    }

    fn tensors(&self, shaped: &Shaped) -> (Vec<TensorSpec>, usize) {
        // Each filter sees one group's channels; fans as PyTorch computes
        // them from the weight's shape `[O, C/G, KH, KW]`.
        let c = shaped.fan_in_units / self.groups;
        let area = self.kernel.h.saturating_mul(self.kernel.w);
        let (fan_in, fan_out) = (c.saturating_mul(area), self.out_channels.saturating_mul(area));
        let mut tensors = vec![TensorSpec {
            suffix: "weight",
            shape: vec![self.out_channels, c, self.kernel.h, self.kernel.w],
            role: Role::Weight,
            fan_in,
            fan_out,
        }];
        if self.bias {
            tensors.push(TensorSpec {
                suffix: "bias",
                shape: vec![self.out_channels],
                role: Role::Bias,
                fan_in,
                fan_out,
            });
        }
        (tensors, shaped.output.len().saturating_mul(fan_in))
    }

    /// One group's im2col columns or the Winograd paths' scratch (forward
    /// pass, input gradient), whichever is longer, then room for the weights and bias with a batch norm
    /// folded in (`conv::fold_len`, [`Conv::forward_folded`]).
    fn col_len(&self, shaped: &Shaped) -> usize {
        match shaped.output {
            Shape::Chw(o, oh, ow) => {
                let c = shaped.fan_in_units / self.groups;
                let filter = [self.kernel.h, self.kernel.w]
                    .iter()
                    .fold(c, |a, &b| a.saturating_mul(b));
                let im2col = filter.saturating_mul(oh).saturating_mul(ow);
                let winograd = match shaped.input {
                    Shape::Chw(_, h, w) if self.groups == 1 => {
                        // The forward pass, and the input gradient as the
                        // forward pass of the transposed conv (padded
                        // `2 - pad`).
                        let dx = if self.pad.h <= 2 && self.pad.w <= 2 {
                            self.winograd_len(o, c, h, w)
                        } else {
                            0
                        };
                        self.winograd_len(c, o, oh, ow).max(dx)
                    }
                    _ => 0,
                };
                let folded = self.out_channels.saturating_mul(filter.saturating_add(1));
                im2col.max(winograd).saturating_add(folded)
            }
            Shape::Flat(_) => 0,
        }
    }

    fn forward(&self, l: &LayerPlan, _: &ForwardIo) -> TokenStream {
        let p = private();
        let geometry = self.geometry(l);
        let w = param_slice(l.weight);
        let b = bias_arg(l.bias);
        if self.groups > 1 {
            let groups = lit(self.groups);
            return quote! {
                #geometry
                if GEMM {
                    #p::ops::conv::forward_grouped_gemm(&G, #groups, n, x, #w, #b, y, col);
                } else {
                    #p::ops::conv::forward_grouped(&G, #groups, n, x, #w, #b, y);
                }
            };
        }
        quote! {
            #geometry
            if GEMM {
                #p::ops::conv::forward_gemm(&G, n, x, #w, #b, y, col);
            } else {
                #p::ops::conv::forward(&G, n, x, #w, #b, y);
            }
        }
    }

    fn int8(&self, l: &LayerPlan, io: &Int8Io) -> Result<Int8Step, String> {
        let p = private();
        let Some(slots) = io.slots else {
            return Err("has no int8 tensors".to_string());
        };
        let Shape::Chw(c, h, w) = l.shaped.input else {
            return Err("needs a [C, H, W] input".to_string());
        };
        let (c, h, w, o) = (lit(c), lit(h), lit(w), lit(self.out_channels));
        let (k, s, pd) = (
            pair_lits(self.kernel),
            pair_lits(self.stride),
            pair_lits(self.pad),
        );
        let groups = lit(self.groups);
        let (stage, prepare) = int8_stage(slots, io, None);
        let code = quote! {
            const G: #p::ops::conv::Conv2d = #p::ops::conv::Conv2d {
                in_channels: #c, in_h: #h, in_w: #w, out_channels: #o, kernel: #k, stride: #s, pad: #pd,
            };
            #stage
            #p::ops::conv::int8::forward(&G, #groups, n, x, W, bias, &stage, y);
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
        if self.groups > 1 {
            let groups = lit(self.groups);
            return quote! { {
                #geometry
                #grads_split
                let dy: &[f32] = &#dy_buffer[..n * #out_len];
                if GEMM {
                    #p::ops::conv::backward_grouped_gemm(&G, #groups, n, &*#x, #w, dy, dw, db, #dx, col);
                } else {
                    #p::ops::conv::backward_grouped(&G, #groups, n, &*#x, #w, dy, dw, db, #dx);
                }
            }};
        }
        quote! { {
            #geometry
            #grads_split
            let dy: &[f32] = &#dy_buffer[..n * #out_len];
            if GEMM {
                #p::ops::conv::backward_gemm(&G, n, &*#x, #w, dy, dw, db, #dx, col);
            } else {
                #p::ops::conv::backward(&G, n, &*#x, #w, dy, dw, db, #dx);
            }
        }}
    }
}
