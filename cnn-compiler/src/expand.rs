//! Codegen: prints the plan as Rust.
//!
//! Per net `Name` it emits the parameter type `Name` (one flat
//! `[f32; PARAM_COUNT]`), the gradient type `NameGrads`, inherent consts and
//! no-heap methods, the `Network`/`Gradients` impls, and a call to the
//! runtime's `impl_std_methods!` for the `std` conveniences. The forward and
//! training bodies are written once, generic over `const GEMM: bool`: the
//! batch-1 no-heap path instantiates the direct kernels, the batched path
//! the im2col + GEMM ones.

pub(crate) mod graph;
mod outline;

use crate::ctxt::Errors;
use crate::lower;
use crate::ops::{BackwardIo, Effect, ForwardIo, LayerKind};
use crate::parse::{BlockSyntax, Input, NetSyntax};
use crate::plan::{self, Buffer, InferStep, NetPlan, Slot};
use crate::shape::{self, Shape, MAX_ELEMENTS};
use crate::weights::{self, Baked};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

/// Expands a whole invocation: every net, plus every error at once.
pub fn expand(input: &Input) -> TokenStream {
    expand_nets(&input.nets, &input.blocks)
}

/// Expands `nets`, which may use `blocks`.
fn expand_nets(nets: &[NetSyntax], blocks: &[BlockSyntax]) -> TokenStream {
    let mut out = TokenStream::new();
    let mut errors = Errors::default();
    check_blocks(blocks, &mut errors);
    // Each net defines `Name` and `NameGrads`: a second net with either
    // name is one error at its name, and is not expanded.
    let mut defined = std::collections::HashSet::new();
    for net in nets {
        let name = net.name.to_string();
        let grads = format!("{name}Grads");
        if defined.contains(&name) || defined.contains(&grads) {
            let taken = if defined.contains(&name) { &name } else { &grads };
            errors.push(
                net.name.span(),
                format!("the name `{taken}` is already defined by an earlier net of this `cnn_net!`; rename this net"),
            );
            continue;
        }
        defined.insert(name);
        defined.insert(grads);
        out.extend(expand_net(net, blocks, &mut errors));
    }
    out.extend(errors.into_compile_error());
    out
}

/// Reports block declarations that cannot be used: two blocks of one name,
/// a block named like a layer, a parameter declared twice.
fn check_blocks(blocks: &[BlockSyntax], errors: &mut Errors) {
    let mut seen = std::collections::HashSet::new();
    for block in blocks {
        let name = block.name.to_string();
        if !seen.insert(name.clone()) {
            errors.push(
                block.name.span(),
                format!("block `{name}` is declared twice in this `cnn_net!`; rename one"),
            );
        }
        if crate::ops::KEYWORDS.contains(&name.as_str()) {
            errors.push(
                block.name.span(),
                format!("block `{name}` has the name of a layer; rename it, e.g. `{name}Block`"),
            );
        }
        let mut params = std::collections::HashSet::new();
        for p in &block.params {
            if !params.insert(p.name.to_string()) {
                errors.push(p.name.span(), format!("parameter `{}` is declared twice", p.name));
            }
        }
        if block.chain.nodes.is_empty() {
            errors.push(
                block.name.span(),
                format!("block `{name}` has no layers; add at least one after `=>`"),
            );
        }
    }
}

fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

/// Checks and plans one net; on any error emits a stub type instead.
fn expand_net(net: &NetSyntax, blocks: &[BlockSyntax], errors: &mut Errors) -> TokenStream {
    let before = errors.count();
    let input = input_shape(net, errors);
    if net.chain.nodes.is_empty() {
        errors.push(
            net.arrow.spans[0],
            format!("net `{}` has no layers; add at least one after `=>`", net.name),
        );
    }
    let program = lower::lower(net, blocks, errors);
    let instances = outline::Instances::of(&program);
    let shaped = match input {
        Some(input) => shape::infer(input, program, errors),
        None => None,
    };
    match (input, shaped) {
        (Some(input), Some(shaped)) if errors.count() == before => {
            let plan = plan::plan(input, shaped);
            if !fits(net, &plan, errors) {
                return fallback(net);
            }
            if let (Some(int8), None) = (&net.int8, &net.weights) {
                // Tensors loaded at run time.
                return crate::int8::emit(net, &plan, int8.span, None, errors)
                    .unwrap_or_else(|| fallback(net));
            }
            let baked = match &net.weights {
                Some(lit) => {
                    // Read once; an int8 file makes an int8 net.
                    let Some(file) = weights::read(lit, errors) else {
                        return fallback(net);
                    };
                    match crate::int8::read(&file) {
                        Ok(Some(int8)) => {
                            return crate::int8::emit(net, &plan, lit.span(), Some(int8), errors)
                                .unwrap_or_else(|| fallback(net));
                        }
                        Ok(None) if net.int8.is_some() => {
                            errors.push(
                                lit.span(),
                                format!(
                                    "`int8` net `{}`: weights file `{}` is not an int8 file (its metadata lacks \
                                     \"cnn.format\": \"int8\"); make one from float weights with `cnn quantize`",
                                    net.name,
                                    lit.value()
                                ),
                            );
                            return fallback(net);
                        }
                        Ok(None) => {}
                        Err(message) => {
                            errors.push(lit.span(), message);
                            return fallback(net);
                        }
                    }
                    let tables = (
                        (&plan.tensors[..], plan.param_count),
                        (&plan.buffers[..], plan.buffer_count),
                    );
                    match weights::load(lit, &file, tables.0, tables.1, errors) {
                        Some(baked) => Some(baked),
                        None => return fallback(net),
                    }
                }
                None => None,
            };
            let mut code = emit_net(net, &plan, &instances);
            if let Some(baked) = baked {
                code.extend(emit_baked(net, &baked));
            }
            code
        }
        _ => fallback(net),
    }
}

/// Checks the net-wide counts against [`MAX_ELEMENTS`] (each layer's own
/// were checked by the shape phase); reports each one past it at the net's
/// name.
fn fits(net: &NetSyntax, plan: &NetPlan, errors: &mut Errors) -> bool {
    let counts = [
        ("parameters", plan.param_count),
        ("inference scratch elements", plan.infer_scratch),
        (
            "training scratch elements",
            plan.train_scratch().saturating_add(plan.stats_len),
        ),
        ("im2col elements", plan.col_len),
    ];
    let mut ok = true;
    for (what, count) in counts {
        if count > MAX_ELEMENTS {
            errors.push(
                net.name.span(),
                format!(
                    "net `{}` is too large: {} {what}, at most {MAX_ELEMENTS}",
                    net.name,
                    if count == usize::MAX {
                        "more than a usize can count of".to_string()
                    } else {
                        count.to_string()
                    }
                ),
            );
            ok = false;
        }
    }
    if plan.macs == usize::MAX {
        errors.push(
            net.name.span(),
            format!(
                "net `{}` is too large: its multiply-accumulates overflow a usize",
                net.name
            ),
        );
        ok = false;
    }
    ok
}

fn input_shape(net: &NetSyntax, errors: &mut Errors) -> Option<Shape> {
    let span = net.shape_bracket.span.join();
    if net.shape.len() != 3 {
        errors.push(
            span,
            format!(
                "expected the input shape as [C, H, W], found {} dimension(s)",
                net.shape.len()
            ),
        );
        return None;
    }
    let mut dims = [0usize; 3];
    let mut ok = true;
    for (dim, lit) in dims.iter_mut().zip(&net.shape) {
        match lit.base10_parse::<usize>() {
            Ok(v) if v > 0 && lit.suffix().is_empty() => *dim = v,
            _ => {
                errors.push(
                    lit.span(),
                    format!("input dimensions must be positive integers, found `{lit}`"),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let shape = Shape::Chw(dims[0], dims[1], dims[2]);
    if shape.len() > MAX_ELEMENTS {
        errors.push(
            span,
            format!(
                "the input {shape} has {}; at most {MAX_ELEMENTS} elements fit",
                shape::element_count(shape.len())
            ),
        );
        return None;
    }
    Some(shape)
}

/// `Name::TRAINED`: the baked parameters as a constant reference, which the
/// compiler places in read-only memory (flash on a microcontroller).
fn emit_baked(net: &NetSyntax, baked: &Baked) -> TokenStream {
    let name = &net.name;
    let values = baked.values.iter().map(|&v| Literal::f32_suffixed(v));
    let buffers = if baked.buffers.is_empty() {
        TokenStream::new()
    } else {
        let b = baked.buffers.iter().map(|&v| Literal::f32_suffixed(v));
        quote!(, buffers: [#(#b),*])
    };
    let path = &baked.path;
    let doc = format!(
        "The parameters (and batch norm's running statistics) baked in at compile time from `{}`: \
         read-only memory, no RAM.",
        net.weights.as_ref().map(|w| w.value()).unwrap_or_default()
    );
    quote! {
        impl #name {
            #[doc = #doc]
            pub const TRAINED: &'static #name = &#name { params: [#(#values),*] #buffers };
        }
        // Rebuild when the weights file changes.
        const _: &[u8] = include_bytes!(#path);
    }
}

/// A stub with the same names, so a mistake in the net does not also
/// produce "cannot find type" errors wherever the net is used.
fn fallback(net: &NetSyntax) -> TokenStream {
    let NetSyntax { attrs, vis, name, .. } = net;
    let grads = format_ident!("{}Grads", name);
    quote! {
        #(#attrs)*
        #vis struct #name;
        #[doc(hidden)]
        #vis struct #grads;
        #[allow(dead_code, unused_variables, missing_docs)]
        impl #name {
            pub const INPUT_SHAPE: [usize; 3] = [0; 3];
            pub const INPUT_LEN: usize = 0;
            pub const OUTPUT_LEN: usize = 0;
            pub const PARAM_COUNT: usize = 0;
            pub const MACS: usize = 0;
            pub const INFER_SCRATCH_LEN: usize = 0;
            pub const TRAIN_SCRATCH_LEN: usize = 0;
            pub const INFER_SCRATCH_BYTES: usize = 0;
            pub const TRAIN_SCRATCH_BYTES: usize = 0;
            pub const PARAM_BYTES: usize = 0;
            pub const TRAINED: &'static Self = &Self;
            pub fn zeroed() -> Self { Self }
            pub fn quantize_input<T>(&self, input: T) -> ! { ::cnn_runtime::__private::core::unreachable!() }
            pub fn dequantize_output<T>(&self, output: T) -> ! { ::cnn_runtime::__private::core::unreachable!() }
            pub fn init(seed: u64) -> Self { Self }
            pub fn init_xavier(seed: u64) -> Self { Self }
            pub fn forward<T>(&self, input: T) -> ! { ::cnn_runtime::__private::core::unreachable!() }
            pub fn forward_with<T, S>(&self, input: T, scratch: S) -> ! { ::cnn_runtime::__private::core::unreachable!() }
            pub fn forward_batch<T, O>(&self, input: T, output: O) { ::cnn_runtime::__private::core::unreachable!() }
            pub fn loss_and_grad<T, L, G>(&self, input: T, labels: L, grads: G) -> ! { ::cnn_runtime::__private::core::unreachable!() }
            pub fn train_step<T, L, O>(&mut self, input: T, labels: L, opt: O) -> ! { ::cnn_runtime::__private::core::unreachable!() }
            pub fn summary() -> ! { ::cnn_runtime::__private::core::unreachable!() }
        }
        #[allow(dead_code, missing_docs)]
        impl #grads {
            pub fn zeroed() -> Self { Self }
        }
    }
}

/// The generated code of a net that checked out.
fn emit_net(net: &NetSyntax, plan: &NetPlan, instances: &outline::Instances) -> TokenStream {
    let NetSyntax { attrs, vis, name, .. } = net;
    let grads = format_ident!("{}Grads", name);
    let p = quote!(::cnn_runtime::__private);
    let name_str = name.to_string();

    let param_count = lit(plan.param_count);
    let input_len = lit(plan.input_len);
    let output_len = lit(plan.output_len);
    let macs = lit(plan.macs);
    let infer_scratch = lit(plan.infer_scratch);
    let train_scratch = lit(plan.train_scratch());
    // Batch norm: buffers beside the parameters, and the batch statistics
    // at the front of the training workspace (after the im2col buffer).
    let norm = Norm::of(plan);
    let train_total = lit(plan.stats_len.saturating_add(plan.train_scratch()));
    let Norm {
        stats_plus,
        field: buffers_field,
        zero: buffers_zero,
        init: buffers_init,
        consts: buffer_consts,
        alone,
        sync_param,
        stats_split,
        step_update,
        update_fn,
        trait_items,
    } = &norm;
    let col_len = lit(plan.col_len);
    let [c, h, w] = match plan.input_shape {
        Shape::Chw(c, h, w) => [c, h, w].map(lit),
        Shape::Flat(_) => [0, 0, 0].map(lit),
    };

    let tensors = plan.tensors.iter().map(tensor_info);
    let layers = plan.layers.iter().map(|l| {
        let (index, params, macs, scratch) =
            (lit(l.index), lit(l.params()), lit(l.macs), lit(l.infer_scratch));
        let keyword = l.kind().keyword();
        let torch = l.kind().torch_name_for(&l.shaped);
        let source = &l.shaped.layer.source;
        let module = &l.shaped.key;
        let shape = l.shaped.output.dims().into_iter().map(lit);
        quote! {
            #p::LayerInfo {
                index: #index, keyword: #keyword, torch_name: #torch, source: #source, module: #module,
                output_shape: &[#(#shape),*], params: #params, macs: #macs, infer_scratch: #scratch,
            }
        }
    });

    let (init_warning, forward_warning) = stack_warnings(&name_str, plan);
    // Alike block instances share one function per body.
    let mut outliner = outline::Outliner::default();
    let forward_env = outline::Env {
        params: quote!(
            n: usize, input: &[f32], output: &mut [f32], scratch: &mut [f32], col: &mut [f32],
            mut trace: #p::network::Trace<'_>, packed: #p::core::option::Option<&[f32]>
        ),
        args: quote!(n, input, &mut *output, &mut *scratch, &mut *col, #p::network::reborrow(&mut trace), packed),
    };
    let mut packing = Packing::default();
    let forward_steps = match &plan.graph {
        Some(g) => graph::forward_steps(plan, g, instances, &mut packing),
        None => forward_steps(plan, instances, &mut packing),
    };
    let Packing {
        len: packed_len,
        code: pack_code,
    } = packing;
    let packed_len = lit(packed_len);
    let forward_body = outliner.outline(forward_steps, &forward_env);
    let train_outputs = match plan.train_output {
        Buffer::Input => quote!(&input[..n * #output_len]),
        Buffer::Act(k) => {
            let before = lit(plan.acts[..k].iter().fold(0usize, |a, &b| a.saturating_add(b)));
            quote! {
                let _ = input;
                let start = Self::COL_LEN + #stats_plus n * #before;
                &workspace[start..start + n * #output_len]
            }
        }
    };
    let train_env = {
        let (mut params, mut args) = (
            quote!(n: usize, input: &[f32], grads: &mut [f32], col: &mut [f32], seed: u64),
            quote!(n, input, &mut *grads, &mut *col, seed),
        );
        if plan.stats_len > 0 || plan.buffer_count > 0 {
            params.extend(quote!(, stats: &mut [f32], sync: &dyn #p::Exchange));
            args.extend(quote!(, &mut *stats, sync));
        }
        if plan.graph.is_some() {
            params.extend(quote!(, gr: &mut [f32]));
            args.extend(quote!(, &mut *gr));
        }
        outline::Env { params, args }
    };
    let train_body = match &plan.graph {
        Some(g) => graph::train_body(plan, g, instances, &mut outliner, &train_env),
        None => train_body(plan, instances, &mut outliner, &train_env),
    };
    let shared_fns = outliner.fns;

    let doc_grads = format!("Gradients of every parameter of [`{name}`]: the same tensors, keys and layout.");
    let doc_input = format!(
        "`[C, H, W]` of one input: `[{}]`.",
        plan.input_shape
            .dims()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let doc_output = format!(
        "Outputs per example: {} (shape {}).",
        plan.output_len, plan.output_shape
    );

    quote! {
        #(#attrs)*
        #[derive(Clone)]
        #vis struct #name {
            params: [f32; #param_count],
            #buffers_field
        }

        #[doc = #doc_grads]
        #[derive(Clone)]
        #vis struct #grads {
            data: [f32; #param_count],
        }

        #[allow(dead_code, clippy::all)]
        impl #name {
            #[doc = #doc_input]
            pub const INPUT_SHAPE: [usize; 3] = [#c, #h, #w];
            /// Elements of one input example (`C * H * W`).
            pub const INPUT_LEN: usize = #input_len;
            #[doc = #doc_output]
            pub const OUTPUT_LEN: usize = #output_len;
            /// Number of trainable parameters.
            pub const PARAM_COUNT: usize = #param_count;
            /// Bytes of all parameters (f32).
            pub const PARAM_BYTES: usize = #param_count * 4;
            /// Multiply-accumulates of one forward pass of one example.
            pub const MACS: usize = #macs;
            /// f32 elements of scratch [`Self::forward_with`] needs: the largest pair of buffers alive at once.
            pub const INFER_SCRATCH_LEN: usize = #infer_scratch;
            /// Bytes of [`Self::INFER_SCRATCH_LEN`].
            pub const INFER_SCRATCH_BYTES: usize = #infer_scratch * 4;
            /// f32 elements of scratch [`Self::loss_and_grad_with`] needs (one example).
            pub const TRAIN_SCRATCH_LEN: usize = #train_total;
            /// Bytes of [`Self::TRAIN_SCRATCH_LEN`].
            pub const TRAIN_SCRATCH_BYTES: usize = #train_total * 4;
            #buffer_consts
            /// Every parameter tensor, in PyTorch `state_dict` order.
            pub const TENSORS: &'static [#p::TensorInfo] = &[#(#tensors),*];
            /// Every layer: keyword, output shape, parameters, MACs.
            pub const LAYERS: &'static [#p::LayerInfo] = &[#(#layers),*];
            const COL_LEN: usize = #col_len;

            /// A net with every parameter zero.
            pub const fn zeroed() -> Self {
                Self { params: [0.0; #param_count] #buffers_zero }
            }

            /// A net initialised like PyTorch's default for `nn.Conv2d` and
            /// `nn.Linear` (uniform in +-1/sqrt(fan_in)), deterministic in `seed`.
            #init_warning
            pub fn init(seed: u64) -> Self {
                let mut net = Self::zeroed();
                #p::init::pytorch_default(Self::TENSORS, &mut net.params, &mut #p::init::Rng::new(seed));
                #buffers_init
                net
            }

            /// Weights Xavier-uniform (`nn.init.xavier_uniform_`), biases as
            /// PyTorch's default: Dive into Deep Learning's `init_cnn`.
            #init_warning
            pub fn init_xavier(seed: u64) -> Self {
                let mut net = Self::zeroed();
                #p::init::xavier_uniform(Self::TENSORS, &mut net.params, &mut #p::init::Rng::new(seed));
                #buffers_init
                net
            }

            /// Wraps a flat parameter array (in [`Self::TENSORS`] order).
            pub const fn from_params(params: [f32; #param_count]) -> Self {
                Self { params #buffers_zero }
            }

            /// The flat parameter array.
            pub const fn params(&self) -> &[f32; #param_count] {
                &self.params
            }

            /// The flat parameter array, mutable.
            pub fn params_mut(&mut self) -> &mut [f32; #param_count] {
                &mut self.params
            }

            /// `(key, shape, values)` of every parameter tensor, in `state_dict` order.
            pub fn tensors(&self) -> impl ::cnn_runtime::__private::core::iter::Iterator<Item = (&'static str, &'static [usize], &[f32])> + '_ {
                #p::network::tensors(Self::TENSORS, &self.params)
            }

            /// The tensor with this `state_dict` key.
            pub fn tensor(&self, key: &str) -> ::cnn_runtime::__private::core::option::Option<&[f32]> {
                #p::network::tensor(Self::TENSORS, &self.params, key)
            }

            /// The tensor with this `state_dict` key, mutable.
            pub fn tensor_mut(&mut self, key: &str) -> ::cnn_runtime::__private::core::option::Option<&mut [f32]> {
                #p::network::tensor_mut(Self::TENSORS, &mut self.params, key)
            }

            /// Writes the layer table (shapes, parameters, MACs, bytes).
            pub fn write_summary<W: ::cnn_runtime::__private::core::fmt::Write>(out: &mut W) -> ::cnn_runtime::__private::core::fmt::Result {
                #p::network::write_summary::<Self, W>(out)
            }

            /// Forward pass of one example. No heap: the scratch lives on the
            /// stack ([`Self::INFER_SCRATCH_BYTES`] bytes).
            #forward_warning
            pub fn forward(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                let mut scratch = [0.0f32; #infer_scratch];
                self.forward_with(input, &mut scratch)
            }

            /// Forward pass of one example on caller-provided scratch (which
            /// may be a `static`).
            pub fn forward_with(&self, input: &[f32; #input_len], scratch: &mut [f32; #infer_scratch]) -> [f32; #output_len] {
                let mut output = [0.0f32; #output_len];
                self.__forward::<false>(1, input, &mut output, scratch, #p::core::option::Option::None, #p::core::option::Option::None);
                output
            }

            /// Loss of one example and its gradient with respect to every
            /// parameter (overwritten into `grads`), on caller-provided
            /// scratch: no heap, usable without `std` or `alloc`.
            pub fn loss_and_grad_with(
                &self,
                input: &[f32; #input_len],
                target: #p::Target<'_>,
                grads: &mut #grads,
                scratch: &mut [f32; #train_total],
            ) -> f32 {
                self.__loss_and_grad::<false>(1, input, target, &mut grads.data, scratch, 0 #alone)
            }

            /// One optimisation step on one example, without heap: gradient
            /// into `grads`, then `opt` updates the parameters. Returns the loss.
            pub fn train_step_with<O: #p::Optimizer>(
                &mut self,
                input: &[f32; #input_len],
                target: #p::Target<'_>,
                grads: &mut #grads,
                scratch: &mut [f32; #train_total],
                opt: &mut O,
            ) -> f32 {
                let loss = self.loss_and_grad_with(input, target, grads, scratch);
                opt.step(&mut self.params, &grads.data);
                #step_update
                loss
            }
            #update_fn

            /// The inference forward pass; `trace` sees every layer's output
            /// (`None` on the ordinary paths: each visit is a test of it).
            #[inline]
            fn __forward<const GEMM: bool>(
                &self,
                n: usize,
                input: &[f32],
                output: &mut [f32],
                workspace: &mut [f32],
                mut trace: #p::network::Trace<'_>,
                packed: #p::core::option::Option<&[f32]>,
            ) {
                #p::core::assert_eq!(input.len(), n * #input_len, "{}: input has {} values, expected {} ({} x {})", #name_str, input.len(), n * #input_len, n, #input_len);
                #p::core::assert_eq!(output.len(), n * #output_len, "{}: output has room for {} values, expected {} ({} x {})", #name_str, output.len(), n * #output_len, n, #output_len);
                let col_len = if GEMM { Self::COL_LEN } else { 0 };
                #p::core::assert!(workspace.len() >= col_len + n * #infer_scratch, "{}: workspace too small", #name_str);
                let (col, scratch) = workspace.split_at_mut(col_len);
                let scratch = &mut scratch[..n * #infer_scratch];
                let _ = (&col, &scratch, packed);
                #forward_body
            }

            #[inline]
            fn __loss_and_grad<const GEMM: bool>(
                &self,
                n: usize,
                input: &[f32],
                target: #p::Target<'_>,
                grads: &mut [f32],
                workspace: &mut [f32],
                seed: u64,
                #sync_param
            ) -> f32 {
                #p::core::assert_eq!(input.len(), n * #input_len, "{}: input has {} values, expected {} ({} x {})", #name_str, input.len(), n * #input_len, n, #input_len);
                #p::core::assert_eq!(grads.len(), #param_count, "{}: gradient buffer has {} values, expected {}", #name_str, grads.len(), #param_count);
                let col_len = if GEMM { Self::COL_LEN } else { 0 };
                #p::core::assert!(workspace.len() >= col_len + #stats_plus n * #train_scratch, "{}: workspace too small", #name_str);
                let _ = seed;
                grads.fill(0.0);
                let (col, rest) = workspace.split_at_mut(col_len);
                let _ = &col;
                #stats_split
                #train_body
            }

            #shared_fns
        }

        #[allow(clippy::all)]
        impl #p::Network for #name {
            const NAME: &'static str = #name_str;
            const INPUT_SHAPE: [usize; 3] = Self::INPUT_SHAPE;
            const INPUT_LEN: usize = #input_len;
            const OUTPUT_LEN: usize = #output_len;
            const PARAM_COUNT: usize = #param_count;
            const MACS: usize = #macs;
            const TENSORS: &'static [#p::TensorInfo] = Self::TENSORS;
            const LAYERS: &'static [#p::LayerInfo] = Self::LAYERS;
            const INFER_SCRATCH_LEN: usize = #infer_scratch;
            const TRAIN_SCRATCH_LEN: usize = #train_total;
            const PACKED_LEN: usize = #packed_len;
            type Grads = #grads;
            #trait_items

            fn zeroed() -> Self {
                Self::zeroed()
            }
            #p::impl_std_network_items!();
            fn params(&self) -> &[f32] {
                &self.params
            }
            fn params_mut(&mut self) -> &mut [f32] {
                &mut self.params
            }
            fn forward_workspace_len(n: usize) -> usize {
                Self::COL_LEN + n * #infer_scratch
            }
            fn train_workspace_len(n: usize) -> usize {
                Self::COL_LEN + #stats_plus n * #train_scratch
            }
            fn forward_n(&self, n: usize, input: &[f32], output: &mut [f32], workspace: &mut [f32]) {
                self.__forward::<true>(n, input, output, workspace, #p::core::option::Option::None, #p::core::option::Option::None)
            }
            fn pack(&self, packed: &mut [f32]) {
                #p::core::assert_eq!(packed.len(), #packed_len, "{}: packed weights have {} values, expected PACKED_LEN = {}", #name_str, packed.len(), #packed_len);
                #pack_code
            }
            fn forward_n_packed(&self, n: usize, input: &[f32], output: &mut [f32], workspace: &mut [f32], packed: &[f32]) {
                #p::core::assert_eq!(packed.len(), #packed_len, "{}: packed weights have {} values, expected PACKED_LEN = {}", #name_str, packed.len(), #packed_len);
                self.__forward::<true>(n, input, output, workspace, #p::core::option::Option::None, #p::core::option::Option::Some(packed))
            }
            fn forward_one(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) {
                self.__forward::<false>(1, input, output, scratch, #p::core::option::Option::None, #p::core::option::Option::None)
            }
            fn forward_traced(
                &self,
                n: usize,
                input: &[f32],
                output: &mut [f32],
                workspace: &mut [f32],
                visit: &mut dyn ::cnn_runtime::__private::core::ops::FnMut(usize, &[f32]),
            ) {
                self.__forward::<true>(n, input, output, workspace, #p::core::option::Option::Some(visit), #p::core::option::Option::None)
            }
            fn train_outputs<'a>(n: usize, input: &'a [f32], workspace: &'a [f32]) -> &'a [f32] {
                #train_outputs
            }
            fn loss_and_grad_n(
                &self,
                n: usize,
                input: &[f32],
                target: #p::Target<'_>,
                grads: &mut [f32],
                workspace: &mut [f32],
                seed: u64,
            ) -> f32 {
                self.__loss_and_grad::<true>(n, input, target, grads, workspace, seed #alone)
            }
        }

        impl ::cnn_runtime::__private::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::cnn_runtime::__private::core::fmt::Formatter<'_>) -> ::cnn_runtime::__private::core::fmt::Result {
                f.debug_struct(#name_str).field("params", &#param_count).finish_non_exhaustive()
            }
        }

        #[allow(dead_code, clippy::all)]
        impl #grads {
            /// All gradients zero.
            pub const fn zeroed() -> Self {
                Self { data: [0.0; #param_count] }
            }
            /// The flat gradient array, in the parameters' layout.
            pub const fn as_array(&self) -> &[f32; #param_count] {
                &self.data
            }
            /// `(key, shape, values)` of every gradient tensor.
            pub fn tensors(&self) -> impl ::cnn_runtime::__private::core::iter::Iterator<Item = (&'static str, &'static [usize], &[f32])> + '_ {
                #p::network::tensors(#name::TENSORS, &self.data)
            }
            /// The gradient of the parameter with this `state_dict` key.
            pub fn tensor(&self, key: &str) -> ::cnn_runtime::__private::core::option::Option<&[f32]> {
                #p::network::tensor(#name::TENSORS, &self.data, key)
            }
        }

        impl #p::Gradients for #grads {
            const TENSORS: &'static [#p::TensorInfo] = #name::TENSORS;
            fn zeroed() -> Self {
                Self::zeroed()
            }
            fn as_slice(&self) -> &[f32] {
                &self.data
            }
            fn as_mut_slice(&mut self) -> &mut [f32] {
                &mut self.data
            }
        }

        impl ::cnn_runtime::__private::core::fmt::Debug for #grads {
            fn fmt(&self, f: &mut ::cnn_runtime::__private::core::fmt::Formatter<'_>) -> ::cnn_runtime::__private::core::fmt::Result {
                f.debug_struct(stringify!(#grads)).field("params", &#param_count).finish_non_exhaustive()
            }
        }

        #p::impl_std_methods!(#name, #grads);
    }
}

/// The `TensorInfo` row of a parameter or buffer tensor.
fn tensor_info(t: &plan::Tensor) -> TokenStream {
    let p = quote!(::cnn_runtime::__private);
    let key = &t.key;
    let shape = t.shape.iter().map(|&d| lit(d));
    let (offset, len, fan_in, fan_out) = (lit(t.offset), lit(t.len), lit(t.fan_in), lit(t.fan_out));
    let role = format_ident!("{}", t.role.variant());
    quote! {
        #p::TensorInfo {
            key: #key, shape: &[#(#shape),*], offset: #offset, len: #len,
            role: #p::TensorRole::#role, fan_in: #fan_in, fan_out: #fan_out,
        }
    }
}

/// What batch norm adds to a net's code; every stream is empty for a net
/// without it, so other nets' expansions do not change.
struct Norm {
    /// `STATS_LEN +` in workspace sizes.
    stats_plus: TokenStream,
    /// The `buffers` field of the net.
    field: TokenStream,
    /// `, buffers: [0.0; B]` in constructors.
    zero: TokenStream,
    /// Running variances to 1, in `init` and `init_xavier`.
    init: TokenStream,
    /// `BUFFERS` and `BUFFER_COUNT`.
    consts: TokenStream,
    /// `, &Alone`: the exchange of a batch that is not split.
    alone: TokenStream,
    /// `sync: &dyn Exchange` of `__loss_and_grad`.
    sync_param: TokenStream,
    /// Carves the statistics area off the training workspace.
    stats_split: TokenStream,
    /// The running-statistics update after a no-heap step.
    step_update: TokenStream,
    /// `fn __update`: every layer's buffer update.
    update_fn: TokenStream,
    /// The `Network` items for buffers and shared batches.
    trait_items: TokenStream,
}

impl Norm {
    fn of(plan: &NetPlan) -> Norm {
        if plan.stats_len == 0 && plan.buffer_count == 0 {
            let none = TokenStream::new;
            return Norm {
                stats_plus: none(),
                field: none(),
                zero: none(),
                init: none(),
                consts: none(),
                alone: none(),
                sync_param: none(),
                stats_split: none(),
                step_update: none(),
                update_fn: none(),
                trait_items: none(),
            };
        }
        let p = quote!(::cnn_runtime::__private);
        let (stats, count) = (lit(plan.stats_len), lit(plan.buffer_count));
        let buffers = plan.buffers.iter().map(tensor_info);
        let updates = plan.layers.iter().map(|l| l.kind().update(l));
        Norm {
            stats_plus: quote!(#stats +),
            field: quote!(buffers: [f32; #count],),
            zero: quote!(, buffers: [0.0; #count]),
            init: quote!(#p::init::buffers(Self::BUFFERS, &mut net.buffers);),
            consts: quote! {
                /// Every buffer tensor (batch norm's running statistics and
                /// step counts), in `state_dict` order: their own array,
                /// which optimizers never touch.
                pub const BUFFERS: &'static [#p::TensorInfo] = &[#(#buffers),*];
                /// Elements of the buffer array.
                pub const BUFFER_COUNT: usize = #count;
                const STATS_LEN: usize = #stats;
            },
            alone: quote!(, &#p::Alone),
            sync_param: quote!(sync: &dyn #p::Exchange,),
            stats_split: quote!(let (stats, rest) = rest.split_at_mut(#stats);),
            step_update: quote!(self.__update(&scratch[..#stats], 1);),
            update_fn: quote! {
                /// Updates the running statistics from the batch statistics
                /// of a training pass over `n` examples.
                fn __update(&mut self, stats: &[f32], n: usize) {
                    #(#updates)*
                }
            },
            trait_items: quote! {
                const BUFFERS: &'static [#p::TensorInfo] = Self::BUFFERS;
                const BATCH_STATS: bool = true;
                fn buffers(&self) -> &[f32] {
                    &self.buffers
                }
                fn buffers_mut(&mut self) -> &mut [f32] {
                    &mut self.buffers
                }
                fn loss_and_grad_shared(
                    &self,
                    n: usize,
                    input: &[f32],
                    target: #p::Target<'_>,
                    grads: &mut [f32],
                    workspace: &mut [f32],
                    seed: u64,
                    exchange: &dyn #p::Exchange,
                ) -> f32 {
                    self.__loss_and_grad::<true>(n, input, target, grads, workspace, seed, exchange)
                }
                fn batch_stats(workspace: &[f32]) -> &[f32] {
                    &workspace[Self::COL_LEN..Self::COL_LEN + #stats]
                }
                fn update_running_stats(&mut self, stats: &[f32], n: usize) {
                    self.__update(stats, n)
                }
            },
        }
    }
}

/// The most stack, in bytes, a generated method may use for values it
/// builds itself (`init` and `init_xavier` return the whole net by value;
/// `forward` keeps its scratch and output on the stack): 1 MiB, half of a
/// spawned thread's default 2 MiB stack. Past it the method is marked
/// `#[deprecated]` with a note naming the heap or static alternative, so
/// each call site gets a warning instead of a stack overflow at run time.
pub const STACK_LIMIT_BYTES: usize = 1 << 20;

/// `#[deprecated]` attributes for `init`/`init_xavier` and `forward` when
/// they would use more than [`STACK_LIMIT_BYTES`] of stack.
fn stack_warnings(name: &str, plan: &NetPlan) -> (TokenStream, TokenStream) {
    let params = plan.param_count.saturating_mul(4);
    let init = if params > STACK_LIMIT_BYTES {
        let note = format!(
            "`{name}::init` and `init_xavier` build the net's {params} bytes of parameters on the stack, \
             more than cnn_net!'s {STACK_LIMIT_BYTES}-byte limit: use `{name}::boxed_init(seed)` or \
             `boxed_init_xavier(seed)` (std), or initialise a `static` with `params_mut()`"
        );
        quote!(#[deprecated(note = #note)])
    } else {
        TokenStream::new()
    };
    let scratch = plan
        .infer_scratch
        .saturating_add(plan.output_len)
        .saturating_mul(4);
    let forward = if scratch > STACK_LIMIT_BYTES {
        let note = format!(
            "`{name}::forward` keeps {scratch} bytes of scratch and output on the stack, more than \
             cnn_net!'s {STACK_LIMIT_BYTES}-byte limit: use `forward_with` with a `static` or boxed \
             scratch of `INFER_SCRATCH_LEN` elements, or `forward_batch` (std)"
        );
        quote!(#[deprecated(note = #note)])
    } else {
        TokenStream::new()
    };
    (init, forward)
}

/// Borrows of an inference slot: `input`, `output` or a scratch end (of
/// any element type: the int8 nets print the same plan).
pub(crate) fn slot_expr(slot: Slot, len: usize, mutable: bool) -> TokenStream {
    let p = quote!(::cnn_runtime::__private);
    let len = lit(len);
    match (slot, mutable) {
        (Slot::Input, _) => quote!(input),
        (Slot::Output, true) => quote!(&mut *output),
        (Slot::Output, false) => quote!(&*output),
        (Slot::Front | Slot::Back, true) => {
            let front = slot == Slot::Front;
            quote!(#p::region(scratch, #front, n * #len))
        }
        (Slot::Front | Slot::Back, false) => {
            let front = slot == Slot::Front;
            quote!(&*#p::region(scratch, #front, n * #len))
        }
    }
}

/// `let x = ..; let y = ..;` for a step reading `src` and writing `dst`,
/// slices of `elem` (`f32`, or `i8` in int8 nets).
pub(crate) fn bind_xy(
    src: Slot,
    src_len: usize,
    dst: Slot,
    dst_len: usize,
    elem: &TokenStream,
) -> TokenStream {
    let p = quote!(::cnn_runtime::__private);
    let in_scratch = |s: Slot| matches!(s, Slot::Front | Slot::Back);
    if in_scratch(src) && in_scratch(dst) {
        let front = src == Slot::Front;
        let (a, b) = (lit(src_len), lit(dst_len));
        return quote!(let (x, y) = #p::ping_pong(scratch, #front, n * #a, n * #b););
    }
    let x = slot_expr(src, src_len, false);
    let y = slot_expr(dst, dst_len, true);
    quote!(let x: &[#elem] = #x; let y: &mut [#elem] = #y;)
}

/// The inference steps of a chain, each with its block instance. After
/// each layer's step its output goes to the trace; layers that print no
/// step (views) are traced where they stand, from the slot of their input.
fn forward_steps(
    plan: &NetPlan,
    instances: &outline::Instances,
    packing: &mut Packing,
) -> Vec<(Option<outline::Tag>, TokenStream)> {
    let mut steps = Vec::new();
    // Where the value being passed along lives, and the next layer to trace.
    let mut current = Slot::Input;
    let mut traced = 0;
    let trace_views = |upto: usize, current: Slot, traced: &mut usize, steps: &mut Vec<_>| {
        for layer in *traced..upto {
            let l = &plan.layers[layer];
            debug_assert!(
                matches!(l.effect(), Effect::View | Effect::TrainCopy),
                "only views print no inference step"
            );
            let values = slot_expr(current, l.out_len(), false);
            steps.push((instances.layer(plan, layer), trace_visit(layer, values)));
        }
        *traced = (*traced).max(upto);
    };
    let layer_of = |step: &InferStep| match *step {
        InferStep::Compute { layer, .. } | InferStep::InPlace { layer, .. } => Some(layer),
        InferStep::Copy { .. } => None,
    };
    // The batch norm (and activation) the conv before it takes in
    // (`fold_batchnorm`).
    let mut folded = Vec::new();
    for (s, step) in plan.infer_steps.iter().enumerate() {
        // A copy belongs to the layer that runs in place after it; the
        // final one (a net of views only) comes after every layer.
        let at = plan.infer_steps[s..]
            .iter()
            .find_map(layer_of)
            .unwrap_or(plan.layers.len());
        trace_views(at, current, &mut traced, &mut steps);
        let code = match *step {
            InferStep::Compute { layer, src, dst } => {
                let l = &plan.layers[layer];
                let bind = bind_xy(src, l.in_len(), dst, l.out_len(), &quote!(f32));
                let mut call = l.kind().forward(
                    l,
                    &ForwardIo {
                        target: TokenStream::new(),
                        train: false,
                    },
                );
                // The layers after it in place on its output.
                let [next, act] = [1, 2].map(|k| match plan.infer_steps.get(s + k) {
                    Some(&InferStep::InPlace { layer, slot }) if slot == dst => Some(layer),
                    _ => None,
                });
                let taken;
                (call, taken) = packed_step(plan, layer, next, act, call, packing);
                folded = taken.unwrap_or(folded);
                current = dst;
                let visit = trace_visit(layer, slot_expr(dst, l.out_len(), false));
                quote!({ #bind #call } #visit)
            }
            InferStep::Copy { src, dst, len } => {
                let bind = bind_xy(src, len, dst, len, &quote!(f32));
                current = dst;
                quote!({ #bind y.copy_from_slice(x); })
            }
            InferStep::InPlace { layer, slot } => {
                let l = &plan.layers[layer];
                let target = slot_expr(slot, l.out_len(), true);
                let mut call = l.kind().forward(l, &ForwardIo { target, train: false });
                if folded.contains(&layer) {
                    call = unless_folded(call);
                }
                current = slot;
                let visit = trace_visit(layer, slot_expr(slot, l.out_len(), false));
                quote!(#call #visit)
            }
        };
        let tag = match layer_of(step) {
            Some(layer) => {
                traced = layer + 1;
                instances.layer(plan, layer)
            }
            None => None,
        };
        steps.push((tag, code));
    }
    trace_views(plan.layers.len(), current, &mut traced, &mut steps);
    steps
}

/// The inference code of layer `conv` (its `call`) whose output the layer
/// `bn` then normalises in place, and `act` (the layer after `bn`, also in
/// place there, if any) then maps: when they are a conv and a batch norm,
/// the conv's `call` or, on the `GEMM` passes without a trace, the two in
/// one (the batch norm folded into the conv's weights,
/// `conv::forward_gemm_folded`), with `act` when it is a relu or relu6; and
/// the layers it took in, whose steps to wrap in [`unless_folded`]. `None`
/// for other layers.
fn fold_batchnorm(
    plan: &NetPlan,
    conv: usize,
    bn: usize,
    act: Option<usize>,
    call: &TokenStream,
    packing: &mut Packing,
) -> Option<(TokenStream, Vec<usize>)> {
    let fused = match act.map(|a| plan.layers[a].kind()) {
        Some(LayerKind::Relu(_)) => Some(crate::ops::Fused::Relu),
        Some(LayerKind::Relu6(_)) => Some(crate::ops::Fused::Relu6),
        _ => None,
    };
    let (conv_plan, bn_plan) = (&plan.layers[conv], &plan.layers[bn]);
    match (conv_plan.kind(), bn_plan.kind()) {
        (LayerKind::Conv(c), LayerKind::BatchNorm(b)) => {
            let range = packing.take(c.packed_len(conv_plan));
            packing.code.extend(c.pack(conv_plan, b.fold(bn_plan), range));
            let folded = c.forward_folded(conv_plan, b.fold(bn_plan), fused, range);
            let taken = core::iter::once(bn)
                .chain(act.filter(|_| fused.is_some()))
                .collect();
            Some((
                quote!(if GEMM && trace.is_none() { #folded } else { #call }),
                taken,
            ))
        }
        _ => None,
    }
}

/// The packed weights of a net's inference (`Network::pack`): their layout
/// as the folds of [`fold_batchnorm`] take their parts, in program order,
/// and the statements that fill them.
#[derive(Default)]
pub struct Packing {
    /// Floats so far (`PACKED_LEN`).
    len: usize,
    /// The body of `pack`.
    code: TokenStream,
}

impl Packing {
    /// The next `len` floats, as `(offset, len)`.
    fn take(&mut self, len: usize) -> (usize, usize) {
        let at = self.len;
        self.len = self.len.saturating_add(len);
        (at, len)
    }
}

/// The inference code of the computing layer `layer` (its `call`), with
/// `next` and `act` the layers after it in place on its output, if any:
/// when `next` is a batch norm the conv takes in, the two in one
/// ([`fold_batchnorm`]) and the layers it took; otherwise
/// [`pack_filters`]'s code and `None`.
fn packed_step(
    plan: &NetPlan,
    layer: usize,
    next: Option<usize>,
    act: Option<usize>,
    call: TokenStream,
    packing: &mut Packing,
) -> (TokenStream, Option<Vec<usize>>) {
    match next.and_then(|next| fold_batchnorm(plan, layer, next, act, &call, packing)) {
        Some((code, taken)) => (code, Some(taken)),
        None => (pack_filters(plan, layer, call, packing), None),
    }
}

/// The inference code of layer `layer` (its `call`) when no batch norm
/// after it folds in: for a conv that Winograd's path takes, on the `GEMM`
/// passes with the net's packed weights, on filters transformed once
/// (`conv::forward_gemm_filters`, their part of the packed weights taken
/// here); otherwise `call` itself.
fn pack_filters(plan: &NetPlan, layer: usize, call: TokenStream, packing: &mut Packing) -> TokenStream {
    let l = &plan.layers[layer];
    let LayerKind::Conv(c) = l.kind() else {
        return call;
    };
    let len = c.filters_len(l);
    if len == 0 {
        return call;
    }
    let range = packing.take(len);
    packing.code.extend(c.pack_filters(l, range));
    let packed = c.forward_filters(l, range);
    quote! {
        match packed {
            ::cnn_runtime::__private::core::option::Option::Some(packed) if GEMM => { #packed }
            _ => { #call }
        }
    }
}

/// A batch norm's (or the activation's after it) inference `call`, on the
/// passes where the conv before it did not take it in ([`fold_batchnorm`]).
fn unless_folded(call: TokenStream) -> TokenStream {
    quote!(if !(GEMM && trace.is_none()) { #call })
}

/// Hands layer `layer`'s output (the slice expression `values`; a join's
/// is numbered `LAYERS.len() + j`) to the trace of `__forward`, if there is
/// one: `values` is only evaluated then, so an untraced pass does no more
/// than test `trace`.
fn trace_visit(layer: usize, values: TokenStream) -> TokenStream {
    let layer = lit(layer);
    quote! {
        if let ::cnn_runtime::__private::core::option::Option::Some(visit) = trace.as_mut() {
            visit(#layer, #values);
        }
    }
}

/// `a3`, or `input` for the caller's buffer.
fn buffer_ident(buffer: Buffer) -> TokenStream {
    match buffer {
        Buffer::Input => quote!(input),
        Buffer::Act(k) => {
            let ident = format_ident!("a{}", k);
            quote!(#ident)
        }
    }
}

fn train_body(
    plan: &NetPlan,
    instances: &outline::Instances,
    outliner: &mut outline::Outliner,
    env: &outline::Env,
) -> TokenStream {
    let mut body = TokenStream::new();
    // Carve the workspace: activations, then two gradient buffers.
    for (k, len) in plan.acts.iter().enumerate() {
        let ident = format_ident!("a{}", k);
        let len = lit(*len);
        body.extend(quote!(let (#ident, rest) = rest.split_at_mut(n * #len);));
    }
    let (g0_len, g1_len) = (lit(plan.grad_lens[0]), lit(plan.grad_lens[1]));
    body.extend(quote! {
        let (g0, rest) = rest.split_at_mut(n * #g0_len);
        let (g1, _) = rest.split_at_mut(n * #g1_len);
    });

    // Forward, keeping every buffer.
    let mut steps = Vec::new();
    for (i, (l, io)) in plan.layers.iter().zip(&plan.train_io).enumerate() {
        let mut body = TokenStream::new();
        let x = buffer_ident(io.x);
        let y = buffer_ident(io.y);
        let in_place = ForwardIo {
            target: quote!(&mut *#y),
            train: true,
        };
        match l.effect() {
            Effect::Compute | Effect::Normalize => {
                let call = l.kind().forward(
                    l,
                    &ForwardIo {
                        target: TokenStream::new(),
                        train: true,
                    },
                );
                body.extend(quote!({ let x: &[f32] = &*#x; let y: &mut [f32] = &mut *#y; #call }));
            }
            Effect::InPlace => {
                if io.copy {
                    body.extend(quote!(#y.copy_from_slice(&*#x);));
                }
                body.extend(l.kind().forward(l, &in_place));
            }
            Effect::TrainCopy => {
                body.extend(quote!(#y.copy_from_slice(&*#x);));
                body.extend(l.kind().forward(l, &in_place));
            }
            Effect::View => {}
        }
        steps.push((instances.layer(plan, i), body));
    }
    body.extend(outliner.outline(steps, env));

    // Loss and its gradient with respect to the output.
    let out = buffer_ident(plan.train_output);
    let out_len = lit(plan.output_len);
    let loss = loss_and_dy(plan, &out, quote!(&mut g0[..n * #out_len]));
    body.extend(quote!(let loss = #loss;));
    body.extend(scale_for_shares(plan, quote!(g0[..n * #out_len])));

    // Backward, last layer first; stops once no earlier layer has parameters.
    let mut steps = Vec::new();
    let mut current_is_g0 = true;
    for (i, (l, io)) in plan.layers.iter().zip(&plan.train_io).enumerate().rev() {
        if !plan.params_before(i + 1) {
            break;
        }
        let (g_cur, g_other) = if current_is_g0 {
            (quote!(g0), quote!(g1))
        } else {
            (quote!(g1), quote!(g0))
        };
        let in_len = lit(l.in_len());
        let needs_dx = plan.params_before(i);
        let dx = if needs_dx {
            quote!(::cnn_runtime::__private::core::option::Option::Some(&mut #g_other[..n * #in_len]))
        } else {
            quote!(::cnn_runtime::__private::core::option::Option::None)
        };
        let grads_split = grads_split(l);
        let step = l.kind().backward(
            l,
            &BackwardIo {
                x: buffer_ident(io.x),
                y: buffer_ident(io.y),
                dy_buffer: g_cur,
                dx_buffer: g_other,
                dx,
                grads_split,
            },
        );
        steps.push((instances.layer(plan, i), step));
        if l.computes_in_training() {
            current_is_g0 = !current_is_g0;
        }
    }
    body.extend(outliner.outline(steps, env));
    // Nets whose backward pass never reaches a buffer leave it unused.
    body.extend(quote!(let _ = (&g0, &g1); loss));
    body
}

/// The mean loss of the `n` outputs in buffer `out` against `target`,
/// with its gradient written into the slice expression `dy`.
fn loss_and_dy(plan: &NetPlan, out: &TokenStream, dy: TokenStream) -> TokenStream {
    let p = quote!(::cnn_runtime::__private);
    let out_len = lit(plan.output_len);
    quote! {
        match target {
            #p::Target::Classes(labels) => {
                #p::core::assert_eq!(labels.len(), n, "expected {} labels, found {}", n, labels.len());
                #p::ops::cross_entropy::forward_backward(n, #out_len, &*#out, labels, #dy)
            }
            #p::Target::Values(values) => {
                #p::core::assert_eq!(values.len(), n * #out_len, "expected {} target values, found {}", n * #out_len, values.len());
                #p::ops::mse::forward_backward(&*#out, values, #dy)
            }
        }
    }
}

/// With batch norm the examples of a batch are not independent: a batch
/// split into shares needs `dL/dy` of the whole batch's mean loss, so each
/// share scales its own mean's gradient by its share of the examples (the
/// total comes through the exchange). Nothing for other nets.
fn scale_for_shares(plan: &NetPlan, dy: TokenStream) -> TokenStream {
    if plan.stats_len == 0 {
        return TokenStream::new();
    }
    quote! {
        let mut total = [n as f64];
        sync.sum(&mut total);
        if total[0] != n as f64 {
            let scale = (n as f64 / total[0]) as f32;
            for g in #dy.iter_mut() {
                *g *= scale;
            }
        }
    }
}

/// `let dw = ..; let db = ..;`: a layer's slices of the gradient array.
fn grads_split(l: &plan::LayerPlan) -> TokenStream {
    match (l.weight, l.bias) {
        (Some((w_off, w_len)), Some((_, b_len))) => {
            let (a, m, e) = (lit(w_off), lit(w_len), lit(w_off + w_len + b_len));
            quote!(let (dw, db) = grads[#a..#e].split_at_mut(#m); let db = ::cnn_runtime::__private::core::option::Option::Some(db);)
        }
        (Some((w_off, w_len)), None) => {
            let (a, e) = (lit(w_off), lit(w_off + w_len));
            quote!(let dw = &mut grads[#a..#e]; let db = ::cnn_runtime::__private::core::option::Option::None;)
        }
        _ => TokenStream::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole expansion of D2L's LeNet, pretty-printed, so a reviewer can
    /// read what the macro turns a layer list into. Re-record after an
    /// intended change with `UPDATE_SNAPSHOTS=1 cargo test -p cnn-compiler`.
    #[test]
    fn lenet_expansion_snapshot() {
        let input: Input = syn::parse_quote! {
            /// LeNet-5 as in Dive into Deep Learning, section 7.6
            pub LeNet: [1, 28, 28] =>
                conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
                conv(6, 16, 5) sigmoid avgpool(2)
                flatten
                linear(400, 120) sigmoid
                linear(120, 84) sigmoid
                linear(84, 10)
        };
        check_snapshot(&input, "lenet.rs");
    }

    /// The same for a net with a block, a residual `add` (an identity and a
    /// 1x1-conv shortcut) and batch norm: `snapshots/residual.rs`.
    #[test]
    fn residual_expansion_snapshot() {
        let input: Input = syn::parse_quote! {
            /// D2L 8.6's `Residual`.
            block Residual(num_channels, use_1x1conv = false, strides = 1) =>
                add {
                    conv1: conv(_, num_channels, 3, pad = 1, stride = strides) bn1: batchnorm relu
                    conv2: conv(num_channels, num_channels, 3, pad = 1) bn2: batchnorm
                  | if use_1x1conv { conv3: conv(_, num_channels, 1, stride = strides) }
                }
                relu;

            /// Two residual blocks.
            pub Res: [1, 8, 8] =>
                [conv(1, 4, 3, pad = 1) batchnorm relu]
                [Residual(4) Residual(8, use_1x1conv = true, strides = 2)]
                [global_avgpool flatten linear(8, 10)]
        };
        check_snapshot(&input, "residual.rs");
    }

    /// Compares the pretty-printed expansion of `input` with
    /// `snapshots/<file>` (re-recorded with `UPDATE_SNAPSHOTS=1`).
    fn check_snapshot(input: &Input, file: &str) {
        let parsed: syn::File = syn::parse2(expand(input)).expect("the expansion parses as Rust items");
        let text = prettyplease::unparse(&parsed);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("snapshots")
            .join(file);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let recorded = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            recorded == text,
            "the expansion of snapshots/{file} changed; review it and re-record with UPDATE_SNAPSHOTS=1 ({})",
            path.display()
        );
    }

    /// Alike block instances share one function per body (inference,
    /// training forward, backward): each further use adds a call and its
    /// own rows of the tensor and layer tables, not a copy of the code.
    #[test]
    fn alike_block_instances_share_code() {
        let expansion = |uses: usize| {
            let calls = vec!["Residual(4)"; uses].join(" ");
            let source = format!(
                "block Residual(c) => add {{ conv1: conv(_, c, 3, pad = 1) bn1: batchnorm relu \
                 conv2: conv(c, c, 3, pad = 1) bn2: batchnorm | identity }} relu; \
                 pub Net: [1, 8, 8] => conv(1, 4, 3, pad = 1) {calls} global_avgpool flatten linear(4, 2)"
            );
            let input: Input = syn::parse_str(&source).expect("parses");
            let tokens = expand(&input);
            assert!(!tokens.to_string().contains("compile_error"), "{tokens}");
            let file: syn::File = syn::parse2(tokens).expect("the expansion parses as Rust items");
            prettyplease::unparse(&file)
        };
        // Call sites of the kernels: conv forward (batched and direct) and
        // backward, batch norm in eval and in training mode.
        let kernels = |text: &str| {
            [
                "conv::forward(",
                "conv::backward(",
                "batchnorm::forward_eval(",
                "batchnorm::normalize(",
            ]
            .map(|k| text.matches(k).count())
        };
        let (one, two, eight) = (expansion(1), expansion(2), expansion(8));
        assert_eq!(
            one.matches("fn __shared").count(),
            0,
            "a single use is not outlined"
        );
        assert_eq!(two.matches("fn __shared").count(), 3, "one function per body");
        assert_eq!(
            eight.matches("fn __shared").count(),
            3,
            "more alike uses add no functions"
        );
        // The first conv (forward in training and at inference; backward
        // once) plus one copy of the block's code.
        assert_eq!(kernels(&two), [2 + 4, 1 + 2, 2, 2], "{two}");
        assert_eq!(kernels(&eight), kernels(&two));
        let lines = |t: &str| t.lines().count();
        println!(
            "Residual: the second use adds {} lines, each further use {} (tables and calls)",
            lines(&two) - lines(&one),
            (lines(&eight) - lines(&two)) / 6
        );
    }

    /// The layer indices that `__forward` and the shared functions hand to
    /// the trace, in the order the pretty-printed expansion shows them
    /// (`o[..]` for an index a shared function takes from its caller).
    fn traced_layers(text: &str) -> Vec<String> {
        text.split("visit(")
            .skip(1)
            .map(|rest| rest.split(',').next().unwrap_or_default().trim().to_string())
            .collect()
    }

    fn pretty(input: &Input) -> String {
        let tokens = expand(input);
        assert!(!tokens.to_string().contains("compile_error"), "{tokens}");
        let file: syn::File = syn::parse2(tokens).expect("the expansion parses as Rust items");
        prettyplease::unparse(&file)
    }

    /// Every layer is traced once, in order, including those that print no
    /// step of their own: views of the caller's input (`flatten`,
    /// `identity`), `dropout` at inference, activations after a copy, and
    /// the identity branch of a join; and every join's output.
    #[test]
    fn every_layer_is_traced_once_in_order() {
        let chain = pretty(&syn::parse_quote! {
            pub Chain: [1, 4, 4] => flatten identity relu linear(16, 3) dropout(0.5) relu
        });
        let all = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(traced_layers(&chain), all(6), "{chain}");

        let graph = pretty(&syn::parse_quote! {
            pub Graph: [2, 6, 6] =>
                conv(2, 4, 3, pad = 1) relu
                add { c1: conv(4, 4, 3, pad = 1) b1: batchnorm relu c2: conv(4, 4, 3, pad = 1) | identity } relu
                cat { identity | c3: conv(4, 2, 3, pad = 1) relu } flatten dropout(0.5) linear(216, 5)
        });
        // Each join's output after its last part, numbered after the 14
        // layers: the add (14) before the relu that reads it (7), the cat
        // (15) before flatten (11).
        let order: Vec<String> = [0, 1, 2, 3, 4, 5, 6, 14, 7, 8, 9, 10, 15, 11, 12, 13]
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(traced_layers(&graph), order, "{graph}");
    }

    /// Alike block instances trace through their shared function: it
    /// takes the trace by value and the layer index from its offsets.
    #[test]
    fn shared_functions_carry_the_trace() {
        let text = pretty(&syn::parse_quote! {
            block Twice(c) => conv(_, c, 3, pad = 1) relu conv(c, c, 3, pad = 1) relu;
            pub Net: [2, 6, 6] => conv(2, 2, 1) Twice(2) Twice(2) flatten linear(72, 3)
        });
        let shared = text
            .split("fn __shared")
            .skip(1)
            .find(|f| f.contains("visit("))
            .expect("the inference steps are shared");
        assert!(
            shared.contains("mut trace: ::cnn_runtime::__private::network::Trace<'_>"),
            "{shared}"
        );
        let shared_body = shared.split("fn __").next().unwrap_or_default();
        let indices = traced_layers(shared_body);
        assert!(
            indices.len() == 4 && indices.iter().all(|i| i.starts_with("o[")),
            "{indices:?}"
        );
        assert_eq!(
            text.matches("::cnn_runtime::__private::network::reborrow(&mut trace)")
                .count(),
            2,
            "{text}"
        );
        // The stem before them, the flatten and linear after.
        let own = traced_layers(&text).into_iter().filter(|l| !l.starts_with('o'));
        assert_eq!(own.collect::<Vec<_>>(), ["0", "9", "10"], "{text}");
    }

    /// Every net of the `models` zoo expands without errors to code that
    /// parses; prints the size of each expansion (pretty-printed lines) for
    /// the compile-cost figures in README:
    /// `cargo test -p cnn-compiler zoo_expansion_sizes -- --nocapture`.
    #[test]
    fn zoo_expansion_sizes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/src/lib.rs");
        let source = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&source).unwrap();
        let mut names = Vec::new();
        for item in &file.items {
            let syn::Item::Macro(m) = item else { continue };
            if !m.mac.path.is_ident("cnn_net") {
                continue;
            }
            let tokens = m.mac.tokens.clone();
            let input: Input = syn::parse2(tokens).expect("the zoo parses");
            for net in &input.nets {
                let name = net.name.to_string();
                let tokens = expand_nets(std::slice::from_ref(net), &input.blocks);
                assert!(!tokens.to_string().contains("compile_error"), "{name} has errors");
                let file: syn::File = syn::parse2(tokens).expect("the expansion parses as Rust items");
                let lines = prettyplease::unparse(&file).lines().count();
                println!("{name}: {lines} lines generated");
                names.push(name);
            }
        }
        assert_eq!(
            names,
            [
                "LeNet",
                "LeNetInt8",
                "LeNetRelu",
                "LeNetReluInt8",
                "Nin",
                "NinInt8",
                "VggSmall",
                "VggSmallInt8",
                "AlexNetSmall",
                "AlexNetSmallInt8",
                "LeNetBn",
                "ResNet",
                "ResNetInt8",
                "ResNet18",
                "GoogLeNetSmall",
                "GoogLeNetSmallInt8",
                "DenseNetSmall",
                "MobileNetSmall",
                "MobileNetSmallInt8"
            ]
        );
    }

    #[test]
    fn errors_expand_to_compile_errors_and_a_stub() {
        let input: Input = syn::parse_quote! { pub Bad: [1, 8, 8] => conv(2, 4, 3) flatten linear(10, 2) };
        let text = expand(&input).to_string();
        assert!(text.contains("compile_error"), "{text}");
        assert!(text.contains("input has 1 channel"), "{text}");
        assert!(text.contains("pub struct Bad"), "the stub keeps the type: {text}");
    }

    /// The compile errors of `input`, in order.
    fn messages(input: Input) -> Vec<String> {
        let text = expand(&input).to_string();
        text.split("compile_error ! {")
            .skip(1)
            .map(|m| m.split('"').nth(1).unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn numbers_too_large_are_errors_never_wraps() {
        let m = messages(syn::parse_quote! { pub A: [4294967295, 4294967295, 4294967295] => relu });
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("at most 4294967296 elements fit"), "{m:?}");

        let m = messages(syn::parse_quote! { pub B: [3, 18446744073709551615, 2] => relu });
        assert!(m[0].contains("more elements than a usize can count"), "{m:?}");

        // Padding past usize: saturates, then is reported as too large.
        let m = messages(syn::parse_quote! { pub C: [1, 8, 8] => conv(1, 2, 3, pad = 18446744073709551615) });
        assert!(m.iter().any(|m| m.contains("at most 4294967296")), "{m:?}");

        // A weight tensor past the limit, with every value fine on its own.
        let m = messages(syn::parse_quote! { pub D: [1, 4, 4] => flatten linear(16, 4294967296) });
        assert!(
            m.iter().any(|m| m.contains("its weight [4294967296, 16]")),
            "{m:?}"
        );

        // Parameters summed over layers past the limit.
        let m = messages(syn::parse_quote! {
            pub E: [1, 1, 1] => flatten linear(1, 2147483647) linear(2147483647, 2) linear(2, 2147483647)
        });
        assert!(m.iter().any(|m| m.contains("too large")), "{m:?}");
    }

    #[test]
    fn a_name_declared_twice_is_one_error() {
        let m = messages(syn::parse_quote! {
            pub A: [1, 4, 4] => flatten linear(16, 2);
            pub A: [1, 4, 4] => flatten linear(16, 3);
            pub AGrads: [1, 4, 4] => relu
        });
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("`A` is already defined"), "{m:?}");
        assert!(m[1].contains("`AGrads` is already defined"), "{m:?}");
    }

    #[test]
    fn independent_mistakes_are_all_reported() {
        let m = messages(syn::parse_quote! {
            pub A: [1, 28, 28] => conv(3, 16, 5) relu maxpool(2) conv(8, 4, 3) flatten linear(999, 10)
        });
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("input has 1 channel"), "{m:?}");
        // conv(3, 16, 5) still yields 16 channels.
        assert!(m[1].contains("input has 16 channels"), "{m:?}");
        assert!(m[2].contains("expected 400 input features"), "{m:?}");
    }

    #[test]
    fn big_nets_warn_where_they_use_the_stack() {
        let small = expand(&syn::parse_quote! { pub S: [1, 28, 28] => flatten linear(784, 10) }).to_string();
        assert!(!small.contains("deprecated"), "{small}");
        // 784 * 400 weights: 1.25 MB by value; the forward scratch is small.
        let big = expand(&syn::parse_quote! { pub B: [1, 28, 28] => flatten linear(784, 400) }).to_string();
        assert_eq!(
            big.matches("deprecated (note = \"`B::init`").count(),
            2,
            "init and init_xavier"
        );
        assert!(!big.contains("`B::forward` keeps"), "forward's scratch is small");
        // 64 x 128 x 128 activations: 4 MB of forward scratch.
        let wide =
            expand(&syn::parse_quote! { pub W: [1, 128, 128] => conv(1, 64, 3, pad = 1) relu }).to_string();
        assert!(wide.contains("`W::forward` keeps"), "forward's scratch is 4 MB");
    }
}
