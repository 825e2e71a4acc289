//! `global_avgpool`: PyTorch's `nn.AdaptiveAvgPool2d(1)`, the mean of each
//! channel; kernels in `cnn-runtime/src/ops/global_avgpool.rs`.

use super::global_pool::{self, channels_and_plane};
use super::{
    lit, private, BackwardIo, Effect, ForwardIo, Int8Code, Int8Io, Int8Output, Int8Step, Op, TensorSpec,
};
use crate::ctxt::Errors;
use crate::layer::{Args, Layer, Param};
use crate::plan::LayerPlan;
use crate::shape::{Provenance, Shape, Shaped};
use proc_macro2::TokenStream;
use quote::quote;

/// `global_avgpool` (no arguments).
#[derive(Clone, Copy, Debug)]
pub struct GlobalAvgPool;

impl Op for GlobalAvgPool {
    const KEYWORD: &'static str = "global_avgpool";
    const TORCH_NAME: &'static str = "AdaptiveAvgPool2d";
    const ARGS: &'static [Param] = &[];
    const OPTIONS: &'static [Param] = &[];
    const ELEMENT_WISE: bool = false;
    const HAS_PARAMS: bool = false;

    fn build(_: &Args) -> Self {
        GlobalAvgPool
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
        global_pool::shape(layer, input, from, errors)
    }

    fn tensors(&self, _: &Shaped) -> (Vec<TensorSpec>, usize) {
        (Vec::new(), 0)
    }

    fn col_len(&self, _: &Shaped) -> usize {
        0
    }

    fn forward(&self, l: &LayerPlan, _: &ForwardIo) -> TokenStream {
        let p = private();
        let (c, s) = channels_and_plane(l);
        quote! { #p::ops::global_avgpool::forward(#c, #s, n, x, y); }
    }

    /// TFLite's MEAN over H and W: its own output quantization (a point of
    /// the int8 file), the division folded into the requantization.
    fn int8(&self, l: &LayerPlan, io: &Int8Io) -> Result<Int8Step, String> {
        let p = private();
        let (c, s) = channels_and_plane(l);
        let Some(point) = io.point else {
            return Err("has no quantization point (a bug of cnn_net!)".to_string());
        };
        let (m, k, input) = (lit(io.mean), lit(point), lit(io.input));
        let code = quote! {
            #p::ops::global_avgpool::int8::forward(#c, #s, n, x, &self.means[#m], y);
        };
        let prepare = quote! {
            means[#m] = match #p::ops::global_avgpool::int8::MeanParams::try_prepare(quants[#input], points[#k], #s) {
                #p::core::option::Option::Some(params) => params,
                #p::core::option::Option::None => {
                    return #p::core::result::Result::Err(#p::int8::Int8Error::PointOutOfRange { point: #k });
                }
            };
        };
        Ok(Int8Step::Compute(Int8Code {
            code,
            prepare,
            output: Int8Output::Point(point),
            luts_taken: 0,
            means_taken: 1,
        }))
    }

    fn backward(&self, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
        let p = private();
        let (c, s) = channels_and_plane(l);
        let (in_len, out_len) = (lit(l.in_len()), lit(l.out_len()));
        let BackwardIo {
            dy_buffer, dx_buffer, ..
        } = io;
        quote!(#p::ops::global_avgpool::backward(#c, #s, n, &#dy_buffer[..n * #out_len], &mut #dx_buffer[..n * #in_len]);)
    }
}
