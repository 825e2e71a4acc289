//! int8 nets: `weights = "file.safetensors"` naming an int8 file (TFLite's
//! post-training quantization scheme) compiles the net to integer-only
//! inference, bit for bit as TensorFlow Lite Micro runs the same model.
//!
//! # The int8 file
//! A safetensors file whose metadata has `"cnn.format": "int8"`, holding,
//! under the net's `state_dict` keys:
//! - `input.scale` (F32, one value) and `input.zero_point` (I32, one
//!   value): the quantization of the net's input;
//! - for every conv and linear layer `K`: `K.weight` (I8, the float
//!   weight's shape; symmetric, zero point 0), `K.bias` (I32 `[out]`, if the
//!   layer has a bias; scale `input scale * weight scale`, zero point 0),
//!   `K.weight_scale` (F32, one per output channel, or one for all), and
//!   `K.output_scale` (F32) and `K.output_zero_point` (I32): its output's
//!   quantization, after a fused relu or relu6.
//!
//! The other layers keep their input's quantization (pools, flatten), or
//! take the one TFLite fixes (sigmoid: `1/256, -128`; tanh: `1/128, 0`); a
//! relu or relu6 must follow a conv or linear layer, whose clamp it
//! becomes.
//!
//! # The generated net
//! A unit struct with integer-only `forward_with` over caller-owned int8
//! buffers (`INFER_SCRATCH_BYTES` of scratch, planned exactly as the float
//! net's), the quantization of its input and output as constants, and
//! `quantize_input` / `dequantize_output` / `forward` (f32 in and out, the
//! scratch on the stack) / `forward_batch` helpers. Weights and biases are
//! `static`s (flash on a microcontroller); the requantization multipliers
//! are computed by the runtime's `const fn`s when the user's crate
//! compiles. No heap, no float in `forward_with`.

use crate::ctxt::Errors;
use crate::expand::{bind_xy, slot_expr};
use crate::ops::{lit, Fused, Int8Io, Int8Output, Int8Slots, Int8Step, Int8Tensors, LayerKind, Quant};
use crate::parse::NetSyntax;
use crate::plan::{InferStep, NetPlan};
use crate::weights::WeightsFile;
use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use safetensors::Dtype;
use std::collections::HashMap;

/// The metadata key and value that mark an int8 file (the runtime's
/// `weights::INT8_FORMAT`, which refuses such a file for a float net).
pub const FORMAT: (&str, &str) = ("cnn.format", "int8");

/// One tensor of an int8 file.
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The int8 file of a net, read.
pub struct Int8File {
    tensors: HashMap<String, Tensor>,
    /// The absolute path read, for rebuild tracking.
    path: String,
    /// The path as the user wrote it, for messages.
    relative: String,
}

/// `file` as an int8 file, if it is one (`Ok(None)` for any other file:
/// the float loader checks those).
pub fn read(file: &WeightsFile) -> Result<Option<Int8File>, String> {
    let relative = &file.relative;
    if !relative.ends_with(".safetensors") {
        return Ok(None);
    }
    let Ok((_, metadata)) = safetensors::SafeTensors::read_metadata(&file.bytes) else {
        return Ok(None);
    };
    let is_int8 = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(FORMAT.0))
        .is_some_and(|f| f == FORMAT.1);
    if !is_int8 {
        return Ok(None);
    }
    let parsed = safetensors::SafeTensors::deserialize(&file.bytes)
        .map_err(|e| format!("weights file `{relative}`: not a safetensors file: {e}"))?;
    let tensors = parsed
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let t = Tensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (key, t)
        })
        .collect();
    Ok(Some(Int8File {
        tensors,
        path: file.path.clone(),
        relative: relative.clone(),
    }))
}

impl Int8File {
    /// Takes tensor `key` of `dtype` with `len` elements in a shape among
    /// `shapes` (any shape of `len` elements if empty), or reports why not.
    fn take(
        &mut self,
        key: &str,
        dtype: Dtype,
        shapes: &[&[usize]],
        errors: &mut Vec<String>,
    ) -> Option<Vec<u8>> {
        let relative = &self.relative;
        let Some(t) = self.tensors.remove(key) else {
            let shape = shapes
                .first()
                .map(|s| format!(" (expected shape {s:?})"))
                .unwrap_or_default();
            errors.push(format!(
                "int8 weights file `{relative}`: missing tensor \"{key}\"{shape}"
            ));
            return None;
        };
        if t.dtype != dtype {
            errors.push(format!(
                "int8 weights file `{relative}`: tensor \"{key}\": dtype {:?}, expected {dtype:?}",
                t.dtype
            ));
            return None;
        }
        if !shapes.contains(&t.shape.as_slice()) {
            let expected: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
            errors.push(format!(
                "int8 weights file `{relative}`: tensor \"{key}\": expected shape {}, found {:?}",
                expected.join(" or "),
                t.shape
            ));
            return None;
        }
        Some(t.bytes)
    }

    fn take_i8(&mut self, key: &str, shape: &[usize], errors: &mut Vec<String>) -> Option<Vec<i8>> {
        let bytes = self.take(key, Dtype::I8, &[shape], errors)?;
        Some(bytes.iter().map(|&b| b as i8).collect())
    }

    fn take_i32(&mut self, key: &str, shapes: &[&[usize]], errors: &mut Vec<String>) -> Option<Vec<i32>> {
        let bytes = self.take(key, Dtype::I32, shapes, errors)?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    /// Scales: F32, positive and finite.
    fn take_scales(&mut self, key: &str, shapes: &[&[usize]], errors: &mut Vec<String>) -> Option<Vec<f32>> {
        let bytes = self.take(key, Dtype::F32, shapes, errors)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            errors.push(format!(
                "int8 weights file `{}`: tensor \"{key}\": scale {i} is {}, expected a positive finite number",
                self.relative, values[i]
            ));
            return None;
        }
        Some(values)
    }

    /// A value's quantization from `{prefix}.{scale}` and
    /// `{prefix}.{zero_point}`.
    fn take_quant(&mut self, scale: &str, zero_point: &str, errors: &mut Vec<String>) -> Option<Quant> {
        const ONE: &[&[usize]] = &[&[], &[1]];
        let scale = self.take_scales(scale, ONE, errors);
        let zp = self.take_i32(zero_point, ONE, errors)?[0];
        if !(-128..=127).contains(&zp) {
            errors.push(format!(
                "int8 weights file `{}`: tensor \"{zero_point}\": zero point {zp} is outside the int8 range",
                self.relative
            ));
            return None;
        }
        Some(Quant {
            scale: scale?[0],
            zero_point: zp,
        })
    }
}

/// A conv's or linear layer's place in an int8 net.
struct Weighted<'a> {
    key: &'a str,
    layer: usize,
    weight_shape: &'a [usize],
    slots: Int8Slots,
    /// The layer whose float output its output quantization describes.
    output_layer: usize,
}

/// The int8 tensors of each conv and linear layer of `plan` from `file`
/// (in the order of `weighted`), and the input's quantization; every
/// problem goes to `messages`.
fn layer_tensors(
    weighted: &[Weighted],
    file: &mut Int8File,
    messages: &mut Vec<String>,
) -> (Vec<Option<Int8Tensors>>, Option<Quant>) {
    let input = file.take_quant("input.scale", "input.zero_point", messages);
    let mut layers = Vec::new();
    for l in weighted {
        let key = l.key;
        let out = l.weight_shape[0];
        let w = file.take_i8(&format!("{key}.weight"), l.weight_shape, messages);
        let bias = l
            .slots
            .bias
            .is_some()
            .then(|| file.take_i32(&format!("{key}.bias"), &[&[out]], messages));
        let scales = file.take_scales(&format!("{key}.weight_scale"), &[&[out], &[1]], messages);
        let output = file.take_quant(
            &format!("{key}.output_scale"),
            &format!("{key}.output_zero_point"),
            messages,
        );
        layers.push(match (w, bias, scales, output) {
            (Some(weight), None, Some(weight_scale), Some(output)) => Some(Int8Tensors {
                weight,
                bias: None,
                weight_scale,
                output,
            }),
            (Some(weight), Some(Some(bias)), Some(weight_scale), Some(output)) => Some(Int8Tensors {
                weight,
                bias: Some(bias),
                weight_scale,
                output,
            }),
            _ => None,
        });
    }
    let mut extra: Vec<&String> = file.tensors.keys().collect();
    extra.sort();
    for key in extra {
        messages.push(format!(
            "int8 weights file `{}`: unexpected tensor \"{key}\" (the net has no such parameter or quantization)",
            file.relative
        ));
    }
    (layers, input)
}

/// Every conv and linear layer of `plan` with its slots in the net's
/// arrays, and the arrays' lengths (weights, biases, channels).
fn layout<'a>(plan: &'a NetPlan<'_>) -> (Vec<Weighted<'a>>, [usize; 3]) {
    let mut weighted = Vec::new();
    let (mut w, mut b, mut c) = (0, 0, 0);
    for (i, l) in plan.layers.iter().enumerate() {
        if !matches!(l.kind(), LayerKind::Conv(_) | LayerKind::Linear(_)) {
            continue;
        }
        let key = &l.shaped.key;
        let Some(weight) = plan.tensors.iter().find(|t| t.key == format!("{key}.weight")) else {
            continue;
        };
        let (len, out) = (weight.shape.iter().product::<usize>(), weight.shape[0]);
        let bias = l.bias.is_some().then(|| (b, b + out));
        let fuses = matches!(
            plan.layers.get(i + 1).map(|n| n.kind()),
            Some(LayerKind::Relu(_) | LayerKind::Relu6(_))
        );
        weighted.push(Weighted {
            key,
            layer: i,
            weight_shape: &weight.shape,
            slots: Int8Slots {
                index: weighted.len(),
                weight: (w, w + len),
                bias,
                channels: (c, c + out),
            },
            output_layer: if fuses { i + 1 } else { i },
        });
        w += len;
        b += if bias.is_some() { out } else { 0 };
        c += out;
    }
    (weighted, [w, b, c])
}

/// `Name`'s int8 code: its tensors baked from `file`, or loaded at run time
/// without one; `None` after reporting every problem at `span`.
pub fn emit(
    net: &NetSyntax,
    plan: &NetPlan,
    span: Span,
    mut file: Option<Int8File>,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let before = errors.count();
    let what = match &file {
        Some(f) => format!("int8 weights file `{}`", f.relative),
        None => format!("`int8` net `{}`", net.name),
    };
    if plan.graph.is_some() {
        errors.push(
            span,
            format!("{what}: int8 nets are chains of layers for now (no `add` or `cat`)"),
        );
        return None;
    }
    let (weighted, [weights_len, biases_len, channels]) = layout(plan);

    // The file's tensors, checked against the layout.
    let baked = match &mut file {
        Some(file) => {
            let mut messages = Vec::new();
            let (tensors, input) = layer_tensors(&weighted, file, &mut messages);
            for m in messages {
                errors.push(span, m);
            }
            let input = input?;
            if errors.count() != before {
                return None;
            }
            let tensors: Vec<Int8Tensors> = tensors.into_iter().flatten().collect();
            Some((tensors, input))
        }
        None => None,
    };

    // Each layer's step and preparation, in order.
    let p = quote!(::cnn_runtime::__private);
    let count = plan.layers.len();
    let mut steps: Vec<Option<Int8Step>> = Vec::with_capacity(count);
    let mut prepare = TokenStream::new();
    let mut luts = 0;
    let mut next_weighted = weighted.iter().peekable();
    for (i, l) in plan.layers.iter().enumerate() {
        let next = plan.layers.get(i + 1).map(|n| n.kind());
        let computes = matches!(l.kind(), LayerKind::Conv(_) | LayerKind::Linear(_));
        let fused = match next {
            Some(LayerKind::Relu(_)) if computes => Some(Fused::Relu),
            Some(LayerKind::Relu6(_)) if computes => Some(Fused::Relu6),
            _ => None,
        };
        let absorbed = i > 0
            && matches!(l.kind(), LayerKind::Relu(_) | LayerKind::Relu6(_))
            && matches!(
                plan.layers[i - 1].kind(),
                LayerKind::Conv(_) | LayerKind::Linear(_)
            );
        let slots = if computes && next_weighted.peek().is_some_and(|w| w.key == l.shaped.key) {
            next_weighted.next().map(|w| &w.slots)
        } else {
            None
        };
        let io = Int8Io {
            layer: i,
            slots,
            fused,
            absorbed,
            lut: luts,
        };
        let (this, next_quant) = (lit(i), lit(i + 1));
        match l.kind().int8(l, &io) {
            Ok(step) => {
                let output = match &step {
                    Int8Step::Compute(c) | Int8Step::InPlace(c) => {
                        luts += c.luts_taken;
                        let code = &c.prepare;
                        prepare.extend(quote!({ #code }));
                        match c.output {
                            Int8Output::Input => quote!(quants[#this]),
                            Int8Output::Own(k) => {
                                let k = lit(k);
                                quote!(outputs[#k])
                            }
                            Int8Output::Fixed(q) => {
                                let (s, z) = (
                                    Literal::f32_suffixed(q.scale),
                                    Literal::i32_suffixed(q.zero_point),
                                );
                                quote!(#p::quant::Quant { scale: #s, zero_point: #z })
                            }
                        }
                    }
                    Int8Step::Same => quote!(quants[#this]),
                };
                prepare.extend(quote!(quants[#next_quant] = #output;));
                steps.push(Some(step));
            }
            Err(why) => {
                errors.push(
                    span,
                    format!(
                        "int8 net `{}`: layer {} `{}` {why}",
                        net.name, l.shaped.key, l.shaped.layer.source
                    ),
                );
                steps.push(None);
            }
        }
    }
    if errors.count() != before {
        return None;
    }

    // The steps of the float plan, printed with int8 kernels.
    let i8_type = quote!(i8);
    let mut body = TokenStream::new();
    for step in &plan.infer_steps {
        match *step {
            InferStep::Compute { layer, src, dst } => {
                let l = &plan.layers[layer];
                let bind = bind_xy(src, l.in_len(), dst, l.out_len(), &i8_type);
                match &steps[layer] {
                    Some(Int8Step::Compute(c)) => {
                        let code = &c.code;
                        body.extend(quote!({ #bind #code }));
                    }
                    // A float compute step is an int8 compute step for
                    // every op that has one; the rest print nothing.
                    _ => body.extend(quote!({ #bind y.copy_from_slice(x); })),
                }
            }
            InferStep::Copy { src, dst, len } => {
                let bind = bind_xy(src, len, dst, len, &i8_type);
                body.extend(quote!({ #bind y.copy_from_slice(x); }));
            }
            InferStep::InPlace { layer, slot } => {
                if let Some(Int8Step::InPlace(c)) = &steps[layer] {
                    let target = slot_expr(slot, plan.layers[layer].out_len(), true);
                    let code = &c.code;
                    body.extend(quote!({ let target: &mut [i8] = #target; #code }));
                }
            }
        }
    }

    let NetSyntax { attrs, vis, name, .. } = net;
    let lit_usize = Literal::usize_unsuffixed;
    let (input_len, output_len) = (lit_usize(plan.input_len), lit_usize(plan.output_len));
    let scratch = lit_usize(plan.infer_scratch);
    let dims = plan.input_shape.dims();
    let macs = lit_usize(plan.macs);
    let (wn, bn, cn, kn, ln, sn) = (
        lit(weights_len),
        lit(biases_len),
        lit(channels),
        lit(weighted.len()),
        lit(count + 1),
        lit(luts),
    );
    let name_str = name.to_string();
    let layer_infos = weighted.iter().map(|w| {
        let (key, shape, bias, layer, output_layer) = (
            w.key,
            w.weight_shape.iter().map(|&d| lit(d)),
            w.slots.bias.is_some(),
            lit(w.layer),
            lit(w.output_layer),
        );
        quote!(#p::int8::Int8LayerInfo {
            key: #key, weight_shape: &[#(#shape),*], bias: #bias, layer: #layer, output_layer: #output_layer,
        })
    });

    let (doc_struct, baked_items, include) = match (&baked, &file) {
        (Some((tensors, input)), Some(file)) => {
            let weights = tensors
                .iter()
                .flat_map(|t| &t.weight)
                .map(|&v| Literal::i8_unsuffixed(v));
            let biases = tensors
                .iter()
                .flat_map(|t| t.bias.iter().flatten())
                .map(|&v| Literal::i32_unsuffixed(v));
            let mut scales = Vec::new();
            let mut per_tensor = Vec::new();
            for (t, w) in tensors.iter().zip(&weighted) {
                let out = w.weight_shape[0];
                per_tensor.push(t.weight_scale.len() == 1);
                for c in 0..out {
                    scales.push(Literal::f32_suffixed(
                        t.weight_scale[c.min(t.weight_scale.len() - 1)],
                    ));
                }
            }
            let outputs = tensors.iter().map(|t| quant_tokens(t.output));
            let input_q = quant_tokens(*input);
            let (in_scale, in_zp) = (
                Literal::f32_suffixed(input.scale),
                Literal::i32_suffixed(input.zero_point),
            );
            let path = &file.path;
            let message = format!(
                "{name_str}: the scales of int8 weights file `{}` are out of the range TFLite's int8 arithmetic takes",
                file.relative
            );
            let doc = format!(
                "`{name_str}` with int8 weights from `{}`: integer-only inference with TensorFlow Lite's int8 \
                 semantics (bit for bit as TensorFlow Lite Micro runs the same model).",
                file.relative
            );
            let items = quote! {
                /// The net with the file's tensors, built when this crate
                /// compiles (in flash on a microcontroller).
                pub const TRAINED: &'static #name = &match Self::__derive(
                    &[#(#scales),*],
                    &[#(#per_tensor),*],
                    &[#(#outputs),*],
                    #input_q,
                ) {
                    #p::core::result::Result::Ok((requant, clamps, quants, luts)) => #name {
                        weights: [#(#weights),*],
                        biases: [#(#biases),*],
                        requant,
                        clamps,
                        quants,
                        luts,
                    },
                    #p::core::result::Result::Err(_) => #p::core::panic!(#message),
                };
                /// The input's quantization: `real = INPUT_SCALE * (q - INPUT_ZERO_POINT)`.
                pub const INPUT_SCALE: f32 = #in_scale;
                /// See [`Self::INPUT_SCALE`].
                pub const INPUT_ZERO_POINT: i32 = #in_zp;
                /// The output's quantization.
                pub const OUTPUT_SCALE: f32 = Self::TRAINED.quants[#count].scale;
                /// See [`Self::OUTPUT_SCALE`].
                pub const OUTPUT_ZERO_POINT: i32 = Self::TRAINED.quants[#count].zero_point;
            };
            // Rebuild when the weights file changes.
            let include = quote!(
                const _: &[u8] = include_bytes!(#path);
            );
            (doc, items, include)
        }
        _ => {
            let doc = format!(
                "`{name_str}`, an int8 net whose tensors are loaded at run time (`from_parts`, or \
                 `cnn_runtime::weights::int8::load` from a file `cnn quantize` writes): integer-only inference \
                 with TensorFlow Lite's int8 semantics."
            );
            (doc, TokenStream::new(), TokenStream::new())
        }
    };
    let count_lit = lit(count);
    Some(quote! {
        #(#attrs)*
        #[doc = #doc_struct]
        #[derive(Clone)]
        #vis struct #name {
            weights: [i8; #wn],
            biases: [i32; #bn],
            requant: [#p::quant::Requant; #cn],
            clamps: [#p::quant::Clamp; #kn],
            quants: [#p::quant::Quant; #ln],
            luts: [[i8; 256]; #sn],
        }

        #[allow(clippy::all)]
        impl #name {
            #baked_items
            /// `[C, H, W]` of one input.
            pub const INPUT_SHAPE: [usize; 3] = [#(#dims),*];
            /// Values of one input.
            pub const INPUT_LEN: usize = #input_len;
            /// Values of one output.
            pub const OUTPUT_LEN: usize = #output_len;
            /// Bytes of scratch `forward_with` needs, exactly.
            pub const INFER_SCRATCH_BYTES: usize = #scratch;
            /// Bytes of read-only data: the net's int8 weights, int32
            /// biases, requantization multipliers (two `i32`s per output
            /// channel), clamps and quantizations.
            pub const PARAM_BYTES: usize = #p::core::mem::size_of::<Self>();
            /// Multiply-accumulates of one forward pass.
            pub const MACS: usize = #macs;
            /// Its conv and linear layers: what an int8 file holds for each.
            pub const INT8_LAYERS: &'static [#p::int8::Int8LayerInfo] = &[#(#layer_infos),*];

            /// What inference derives from the parts once: the
            /// requantization multipliers, clamps, every layer's output
            /// quantization (`quants[0]` is the input's) and the
            /// sigmoid/tanh tables.
            #[allow(unused_mut, unused_variables, clippy::type_complexity)]
            const fn __derive(
                weight_scales: &[f32],
                per_tensor: &[bool],
                outputs: &[#p::quant::Quant],
                input: #p::quant::Quant,
            ) -> #p::core::result::Result<
                (
                    [#p::quant::Requant; #cn],
                    [#p::quant::Clamp; #kn],
                    [#p::quant::Quant; #ln],
                    [[i8; 256]; #sn],
                ),
                #p::int8::Int8Error,
            > {
                if weight_scales.len() != #cn || per_tensor.len() != #kn || outputs.len() != #kn {
                    return #p::core::result::Result::Err(#p::int8::Int8Error::Lengths);
                }
                let mut requant = [#p::quant::Requant::ZERO; #cn];
                let mut clamps = [#p::quant::Clamp::FULL; #kn];
                let mut quants = [#p::quant::Quant::UNIT; #ln];
                let mut luts = [[0i8; 256]; #sn];
                quants[0] = input;
                #prepare
                #p::core::result::Result::Ok((requant, clamps, quants, luts))
            }

            /// The net of `parts` (e.g. read from an int8 file by
            /// `cnn_runtime::weights::int8::load`), computing what inference
            /// derives from them exactly as a baked net does.
            ///
            /// # Errors
            ///
            /// If the parts' lengths do not fit this net, or a scale is
            /// out of the range TFLite's int8 arithmetic takes.
            pub fn from_parts(parts: &#p::int8::Int8Parts<'_>) -> #p::core::result::Result<Self, #p::int8::Int8Error> {
                if parts.weights.len() != #wn || parts.biases.len() != #bn {
                    return #p::core::result::Result::Err(#p::int8::Int8Error::Lengths);
                }
                let (requant, clamps, quants, luts) =
                    Self::__derive(parts.weight_scales, parts.per_tensor, parts.outputs, parts.input)?;
                let mut net = Self { weights: [0; #wn], biases: [0; #bn], requant, clamps, quants, luts };
                net.weights.copy_from_slice(parts.weights);
                net.biases.copy_from_slice(parts.biases);
                #p::core::result::Result::Ok(net)
            }

            /// The input's quantization.
            pub fn input_quant(&self) -> #p::quant::Quant {
                self.quants[0]
            }

            /// The output's quantization.
            pub fn output_quant(&self) -> #p::quant::Quant {
                self.quants[#count_lit]
            }

            /// Integer-only inference on one quantized input, with the
            /// caller's scratch. No heap, no floating point.
            pub fn forward_with(
                &self,
                input: &[i8; #input_len],
                output: &mut [i8; #output_len],
                scratch: &mut [i8; #scratch],
            ) {
                self.__forward(1, input, output, scratch);
            }

            #[inline]
            fn __forward(&self, n: usize, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
                #p::core::assert!(
                    input.len() == n * #input_len && output.len() == n * #output_len && scratch.len() >= n * #scratch,
                    "{}: buffers do not fit {} examples", #name_str, n
                );
                let scratch = &mut scratch[..n * #scratch];
                let _ = (&input, &output, &scratch);
                #body
            }

            /// `x` quantized with the input's scale and zero point, rounded
            /// as TensorFlow Lite rounds.
            pub fn quantize_input(&self, x: &[f32; #input_len]) -> [i8; #input_len] {
                let mut q = [0i8; #input_len];
                let quant = self.quants[0];
                #p::quant::quantize_slice(x, quant.scale, quant.zero_point, &mut q);
                q
            }

            /// The real values of an output.
            pub fn dequantize_output(&self, y: &[i8; #output_len]) -> [f32; #output_len] {
                let mut out = [0.0f32; #output_len];
                let quant = self.quants[#count_lit];
                #p::quant::dequantize_slice(y, quant.scale, quant.zero_point, &mut out);
                out
            }

            /// Quantizes `x`, runs [`Self::forward_with`] with scratch on the
            /// stack, and dequantizes the output.
            pub fn forward(&self, x: &[f32; #input_len]) -> [f32; #output_len] {
                let q = self.quantize_input(x);
                let mut y = [0i8; #output_len];
                let mut scratch = [0i8; #scratch];
                self.forward_with(&q, &mut y, &mut scratch);
                self.dequantize_output(&y)
            }

            /// [`Self::forward`] on each example of `input`
            /// (`INPUT_LEN` values each) into `output` (`OUTPUT_LEN` each).
            ///
            /// # Panics
            ///
            /// If the lengths do not hold the same number of examples.
            pub fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
                #p::core::assert!(
                    input.len() % #input_len == 0 && output.len() == input.len() / #input_len * #output_len,
                    "{}: {} input values and room for {} outputs do not hold whole examples",
                    #name_str, input.len(), output.len()
                );
                for (x, y) in input.chunks_exact(#input_len).zip(output.chunks_exact_mut(#output_len)) {
                    let x: &[f32; #input_len] = x.try_into().expect("a whole example");
                    y.copy_from_slice(&self.forward(x));
                }
            }
        }

        impl #p::int8::Int8Network for #name {
            const NAME: &'static str = #name_str;
            const INPUT_LEN: usize = #input_len;
            const OUTPUT_LEN: usize = #output_len;
            const INFER_SCRATCH_BYTES: usize = #scratch;
            const INT8_LAYERS: &'static [#p::int8::Int8LayerInfo] = Self::INT8_LAYERS;

            fn from_parts(parts: &#p::int8::Int8Parts<'_>) -> #p::core::result::Result<Self, #p::int8::Int8Error> {
                Self::from_parts(parts)
            }
            fn input_quant(&self) -> #p::quant::Quant {
                self.quants[0]
            }
            fn output_quant(&self) -> #p::quant::Quant {
                self.quants[#count_lit]
            }
            fn layer_quants(&self) -> &[#p::quant::Quant] {
                &self.quants
            }
            fn forward_n(&self, n: usize, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
                self.__forward(n, input, output, scratch)
            }
        }

        impl #p::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut #p::core::fmt::Formatter<'_>) -> #p::core::fmt::Result {
                f.debug_struct(#name_str)
                    .field("input", &self.quants[0])
                    .field("output", &self.quants[#count_lit])
                    .finish_non_exhaustive()
            }
        }

        #include
    })
}

/// A `Quant` value in generated code.
fn quant_tokens(q: Quant) -> TokenStream {
    let (s, z) = (
        Literal::f32_suffixed(q.scale),
        Literal::i32_suffixed(q.zero_point),
    );
    quote!(::cnn_runtime::__private::quant::Quant { scale: #s, zero_point: #z })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::LitStr;

    /// A safetensors file of `tensors` (key, dtype, shape, little-endian
    /// bytes) with `format` in its metadata.
    fn file(name: &str, format: (&str, &str), tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> String {
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(k, d, s, b)| {
                (
                    k.to_string(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        let metadata = Some(HashMap::from([(format.0.to_string(), format.1.to_string())]));
        let bytes = safetensors::serialize(views, metadata).unwrap();
        let dir = std::env::temp_dir().join(format!("cnn-int8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn i32s(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The int8 tensors of `conv(1, 2, 1) relu flatten linear(2, 3)` on
    /// `[1, 1, 1]`, with `edit` applied.
    fn tensors(
        edit: impl FnOnce(&mut Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)>),
    ) -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
        let mut t = vec![
            ("input.scale", Dtype::F32, vec![], f32s(&[0.5])),
            ("input.zero_point", Dtype::I32, vec![], i32s(&[-128])),
            ("0.weight", Dtype::I8, vec![2, 1, 1, 1], vec![1, 2]),
            ("0.bias", Dtype::I32, vec![2], i32s(&[0, 1])),
            ("0.weight_scale", Dtype::F32, vec![2], f32s(&[0.1, 0.2])),
            ("0.output_scale", Dtype::F32, vec![], f32s(&[0.25])),
            ("0.output_zero_point", Dtype::I32, vec![], i32s(&[-128])),
            ("3.weight", Dtype::I8, vec![3, 2], vec![1, 2, 3, 4, 5, 6]),
            ("3.bias", Dtype::I32, vec![3], i32s(&[0, 1, 2])),
            ("3.weight_scale", Dtype::F32, vec![1], f32s(&[0.1])),
            ("3.output_scale", Dtype::F32, vec![], f32s(&[0.5])),
            ("3.output_zero_point", Dtype::I32, vec![], i32s(&[3])),
        ];
        edit(&mut t);
        t
    }

    /// The errors of the net compiled with the file of `tensors`.
    fn errors(name: &str, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<String> {
        errors_of(name, "conv(1, 2, 1) relu flatten linear(2, 3)", tensors)
    }

    fn errors_of(name: &str, layers: &str, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<String> {
        let path = file(name, FORMAT, tensors);
        let source = format!("pub Net: [1, 1, 1] weights = {path:?} => {layers}");
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(&source).expect("tokens"), &mut messages);
        messages
    }

    /// The string of every `compile_error!` in `tokens`.
    fn collect_messages(tokens: TokenStream, out: &mut Vec<String>) {
        let mut after_compile_error = false;
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Ident(i) => after_compile_error = i == "compile_error",
                proc_macro2::TokenTree::Group(g) if after_compile_error => {
                    let lit: LitStr = syn::parse2(g.stream()).expect("a message");
                    out.push(lit.value());
                    after_compile_error = false;
                }
                proc_macro2::TokenTree::Group(g) => collect_messages(g.stream(), out),
                _ => {}
            }
        }
    }

    #[test]
    fn a_good_file_compiles() {
        assert_eq!(errors("good.safetensors", &tensors(|_| {})), Vec::<String>::new());
    }

    #[test]
    fn bad_int8_files_are_errors_naming_the_tensor_all_at_once() {
        let bad = tensors(|t| {
            t.retain(|(k, ..)| *k != "0.weight_scale" && *k != "input.zero_point");
            for (k, d, s, b) in t.iter_mut() {
                match *k {
                    "0.weight" => *s = vec![2, 1, 1, 2],
                    "0.output_scale" => *b = f32s(&[0.0]),
                    "3.output_scale" => *b = f32s(&[-1.0]),
                    "3.bias" => *d = Dtype::F32,
                    "3.output_zero_point" => *b = i32s(&[200]),
                    _ => {}
                }
            }
            t.push(("3.extra", Dtype::F32, vec![1], f32s(&[1.0])));
        });
        // The shape does not match its bytes: give the wrong-shape weight
        // the right number of bytes.
        let bad: Vec<_> = bad
            .into_iter()
            .map(|(k, d, s, b)| {
                if k == "0.weight" {
                    (k, d, s, vec![1, 2, 3, 4])
                } else {
                    (k, d, s, b)
                }
            })
            .collect();
        let errors = errors("bad.safetensors", &bad);
        let expected = [
            "missing tensor \"input.zero_point\"",
            "tensor \"0.weight\": expected shape [2, 1, 1, 1], found [2, 1, 1, 2]",
            "missing tensor \"0.weight_scale\"",
            "tensor \"0.output_scale\": scale 0 is 0, expected a positive finite number",
            "tensor \"3.bias\": dtype F32, expected I32",
            "tensor \"3.output_scale\": scale 0 is -1, expected a positive finite number",
            "tensor \"3.output_zero_point\": zero point 200 is outside the int8 range",
            "unexpected tensor \"3.extra\"",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (e, x) in errors.iter().zip(expected) {
            assert!(e.contains(x), "{e:?} should contain {x:?}");
        }
    }

    #[test]
    fn ops_without_an_int8_form_are_named() {
        let errors = errors_of(
            "ops.safetensors",
            "conv(1, 2, 1) batchnorm flatten linear(2, 3)",
            &tensors(|_| {}),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("layer 1 `batchnorm` has no int8 form"),
            "{}",
            errors[0]
        );

        // TFLite's int8 average pool leaves padding out of the count.
        let errors = errors_of(
            "avgpool.safetensors",
            "conv(1, 2, 1) avgpool(3, stride = 1, pad = 1) flatten linear(2, 3)",
            &tensors(|t| {
                for (k, _, s, b) in t.iter_mut() {
                    if *k == "3.weight" {
                        *s = vec![3, 2];
                        *b = vec![1; 6];
                    }
                }
            }),
        );
        assert!(
            errors.len() == 1
                && errors[0]
                    .contains("layer 1 `avgpool(3, stride = 1, pad = 1)` with padding has no int8 form"),
            "{errors:?}"
        );

        let errors = errors_of(
            "relu.safetensors",
            "conv(1, 2, 1) flatten relu linear(2, 3)",
            &tensors(|_| {}),
        );
        assert!(
            errors[0].contains("layer 2 `relu` in an int8 net `relu` must directly follow"),
            "{errors:?}"
        );
    }

    #[test]
    fn float_files_are_not_int8() {
        let path = file(
            "float.safetensors",
            ("cnn.net", "Net"),
            &[("0.weight", Dtype::F32, vec![1], f32s(&[1.0]))],
        );
        let file = WeightsFile {
            relative: path.clone(),
            bytes: std::fs::read(&path).unwrap(),
            path,
        };
        assert!(read(&file).unwrap().is_none());
    }

    #[test]
    fn an_int8_net_refuses_a_float_file_and_graphs() {
        let path = file(
            "float2.safetensors",
            ("cnn.net", "Net"),
            &[("0.weight", Dtype::F32, vec![1], f32s(&[1.0]))],
        );
        let source =
            format!("pub Net: [1, 1, 1] int8 weights = {path:?} => conv(1, 2, 1) relu flatten linear(2, 3)");
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(&source).expect("tokens"), &mut messages);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("is not an int8 file") && messages[0].contains("cnn quantize"),
            "{messages:?}"
        );

        let source = "pub Net: [1, 4, 4] int8 => conv(1, 2, 1) add { identity | c: conv(2, 2, 1) } flatten linear(32, 3)";
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(source).expect("tokens"), &mut messages);
        assert!(
            messages.len() == 1 && messages[0].contains("`int8` net `Net`: int8 nets are chains"),
            "{messages:?}"
        );

        // Without a file, a chain compiles.
        let source = "pub Net: [1, 4, 4] int8 => conv(1, 2, 1) relu flatten linear(32, 3) sigmoid";
        let mut messages = Vec::new();
        collect_messages(crate::expand_str(source).expect("tokens"), &mut messages);
        assert_eq!(messages, Vec::<String>::new());
    }
}
