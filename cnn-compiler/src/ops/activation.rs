//! What `relu`, `relu6`, `sigmoid` and `tanh` share (their whole `Op` impl,
//! through [`activation_op!`]): element-wise, in place, shape
//! kept; the backward reads the stored output (`y`), never the input.

use super::{lit, private, BackwardIo, ForwardIo, Int8Code, Int8Io, Int8Output, Int8Step, Quant};
use crate::plan::LayerPlan;
use crate::shape::Shape;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// The shape rule: the output is the input.
pub fn shape(input: Option<Shape>) -> Option<(Shape, usize)> {
    Some((input?, 0))
}

/// `ops::<module>::forward(target)`.
pub fn forward(module: &str, io: &ForwardIo) -> TokenStream {
    let p = private();
    let module = Ident::new(module, proc_macro2::Span::call_site());
    let target = &io.target;
    quote!(#p::ops::#module::forward(#target);)
}

/// `ops::<module>::backward(y, dy)`, with `dy` transformed in place.
pub fn backward(module: &str, l: &LayerPlan, io: &BackwardIo) -> TokenStream {
    let p = private();
    let module = Ident::new(module, proc_macro2::Span::call_site());
    let out_len = lit(l.out_len());
    let BackwardIo { y, dy_buffer, .. } = io;
    quote!(#p::ops::#module::backward(&*#y, &mut #dy_buffer[..n * #out_len]);)
}

/// An int8 relu or relu6: the clamp of the conv or linear layer before it,
/// where TFLite fuses it; alone it would need its own output quantization,
/// which the int8 file does not carry.
pub fn int8_fused(keyword: &str, io: &Int8Io) -> Result<Int8Step, String> {
    if io.absorbed {
        Ok(Int8Step::Same)
    } else {
        Err(format!(
            "in an int8 net `{keyword}` must directly follow a conv or linear layer or an `add`, as the only reader \
             of its output, whose clamp it becomes (as TFLite fuses it)"
        ))
    }
}

/// An int8 sigmoid or tanh: TFLite Micro's fixed-point method, in place,
/// with the output quantization TFLite fixes for it.
pub fn int8_fixed_point(keyword: &str, output: Quant, io: &Int8Io) -> Result<Int8Step, String> {
    let p = private();
    let module = Ident::new(keyword, proc_macro2::Span::call_site());
    let (lut, layer, input) = (lit(io.lut), lit(io.layer), lit(io.input));
    // The function of all 256 inputs, computed once: inference looks it up.
    let code = quote! {
        #p::quant::lookup(&self.luts[#lut], target);
    };
    let prepare = quote! {
        luts[#lut] = match #p::quant::Q4Input::try_prepare(quants[#input].scale, quants[#input].zero_point) {
            #p::core::option::Option::Some(q) => #p::ops::#module::int8::table(&q),
            #p::core::option::Option::None => {
                return #p::core::result::Result::Err(#p::int8::Int8Error::ScaleOutOfRange { layer: #layer });
            }
        };
    };
    Ok(Int8Step::InPlace(Int8Code {
        code,
        prepare,
        output: Int8Output::Fixed(output),
        luts_taken: 1,
        means_taken: 0,
    }))
}

/// An element-wise activation op: its struct and its `Op` impl, from the
/// keyword (also the runtime module's name), PyTorch's module name, and its
/// int8 step (`fused`: relu and relu6; `Quant` output: sigmoid and tanh).
macro_rules! activation_op {
    ($(#[$doc:meta])* $name:ident, $keyword:literal, $torch:literal, int8 = $($int8:tt)*) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name;

        impl $crate::ops::Op for $name {
            const KEYWORD: &'static str = $keyword;
            const TORCH_NAME: &'static str = $torch;
            const ARGS: &'static [$crate::layer::Param] = &[];
            const OPTIONS: &'static [$crate::layer::Param] = &[];
            const ELEMENT_WISE: bool = true;
            const HAS_PARAMS: bool = false;

            fn build(_: &$crate::layer::Args) -> Self {
                $name
            }

            fn effect(&self) -> $crate::ops::Effect {
                $crate::ops::Effect::InPlace
            }

            fn shape(
                &self,
                _: &$crate::layer::Layer,
                input: Option<$crate::shape::Shape>,
                _: &$crate::shape::Provenance,
                _: &mut $crate::ctxt::Errors,
            ) -> Option<($crate::shape::Shape, usize)> {
                $crate::ops::activation::shape(input)
            }

            fn tensors(&self, _: &$crate::shape::Shaped) -> (Vec<$crate::ops::TensorSpec>, usize) {
                (Vec::new(), 0)
            }

            fn col_len(&self, _: &$crate::shape::Shaped) -> usize {
                0
            }

            fn forward(&self, _: &$crate::plan::LayerPlan, io: &$crate::ops::ForwardIo) -> proc_macro2::TokenStream {
                $crate::ops::activation::forward($keyword, io)
            }

            fn backward(
                &self,
                l: &$crate::plan::LayerPlan,
                io: &$crate::ops::BackwardIo,
            ) -> proc_macro2::TokenStream {
                $crate::ops::activation::backward($keyword, l, io)
            }

            fn int8(
                &self,
                _: &$crate::plan::LayerPlan,
                io: &$crate::ops::Int8Io,
            ) -> Result<$crate::ops::Int8Step, String> {
                $crate::ops::activation::activation_op!(@int8 $keyword, io, $($int8)*)
            }
        }
    };
    (@int8 $keyword:literal, $io:ident, fused) => {
        $crate::ops::activation::int8_fused($keyword, $io)
    };
    (@int8 $keyword:literal, $io:ident, fixed_point($scale:expr, $zero_point:expr)) => {
        $crate::ops::activation::int8_fixed_point(
            $keyword,
            $crate::ops::Quant { scale: $scale, zero_point: $zero_point },
            $io,
        )
    };
}
pub(crate) use activation_op;
