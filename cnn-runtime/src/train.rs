//! Batched inference and training for any generated net, on top of the
//! allocation-free core every net implements ([`Network::forward_n`],
//! [`Network::loss_and_grad_n`]).
//!
//! Work is split across [`threads`] workers by examples: each worker runs
//! the net on a contiguous share of the batch with its own buffers, and the
//! shares' losses and gradients are added in worker order, weighted by
//! share size. The result is therefore bit-identical for the same thread
//! count, and differs between thread counts only by float reassociation of
//! that final sum (relative differences around 1e-6). The calling thread
//! computes the first share and persistent workers the others
//! ([`crate::workspace::run_jobs`]), so no thread is spawned per step.

use crate::network::{Alone, Exchange, Network, Target};
use crate::optim::Optimizer;
use crate::workspace::{run_jobs, with_buffers, Buffers};
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Examples per forward chunk at most: bounds the workspace of
/// `forward_batch` whatever the batch size, and keeps a chunk's activations
/// in the core's L2 cache from one layer to the next (LeNet: 32 x 23.5 KB;
/// batch-256 inference measured 5% faster than with chunks of 256). Nets
/// with larger activations take fewer examples per chunk:
/// [`forward_chunk`].
pub const FORWARD_CHUNK: usize = 32;

/// Bytes of activations a forward chunk may span: [`forward_chunk`].
pub const FORWARD_CHUNK_BYTES: usize = 1 << 20;

/// Examples per chunk of `forward_batch` for `N`: as many as keep the
/// chunk's scratch (`INFER_SCRATCH_LEN` f32 per example) within
/// [`FORWARD_CHUNK_BYTES`], from 1 to [`FORWARD_CHUNK`]. MobileNetSmall
/// (490 KB per example) runs 2 at a time: chunks of 32 spanned 16 MB, which
/// went to memory at every layer (one thread, batch 256: 1,000-1,560
/// images/s in chunks of 1 to 8 against 700-780 in chunks of 32, on a
/// shared machine); ResNet (147 KB) runs 6, LeNet still 32.
pub fn forward_chunk<N: Network>() -> usize {
    (FORWARD_CHUNK_BYTES / (4 * N::INFER_SCRATCH_LEN).max(1)).clamp(1, FORWARD_CHUNK)
}

/// Examples per training micro-batch: each worker computes its share of a
/// batch this many examples at a time and adds up the gradients, weighted
/// by size, so a micro-batch's activations stay in L2 between layers and
/// the training workspace does not grow with the batch (LeNet at batch
/// 256, one thread: 1.8 MB instead of 14 MB; training measured 6% faster
/// at one thread and 4% at two).
pub const TRAIN_CHUNK: usize = 32;

/// Seeds of the dropout masks of a micro-batch starting at example
/// `first` of the batch (`seed` itself for the first).
fn chunk_seed(seed: u64, first: usize) -> u64 {
    seed ^ (first as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Sets how many threads batched inference and training use (at least 1).
pub fn set_threads(threads: usize) {
    THREADS.store(threads.max(1), Ordering::Relaxed);
}

/// How many threads batched inference and training use (default 1).
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Splits `n` examples into at most `workers` contiguous shares, the larger
/// ones first; shares never go below a few examples, where threads cost more
/// than they give.
fn shares(n: usize, workers: usize) -> impl Iterator<Item = (usize, usize)> {
    split(n, workers.min(n.div_ceil(8)))
}

/// Splits `n` items into `workers` contiguous runs, the longer ones first.
fn split(n: usize, workers: usize) -> impl Iterator<Item = (usize, usize)> {
    let workers = workers.max(1);
    let base = n / workers;
    let extra = n % workers;
    (0..workers).scan(0, move |start, i| {
        let len = base + usize::from(i < extra);
        let share = (*start, len);
        *start += len;
        Some(share)
    })
}

/// Runs `N` on `input.len() / INPUT_LEN` examples, writing `OUTPUT_LEN`
/// values per example into `output`.
///
/// # Panics
/// If `input.len()` is not a multiple of `N::INPUT_LEN` or `output` does not
/// have room for exactly one output per example.
pub fn forward_batch<N: Network>(net: &N, input: &[f32], output: &mut [f32]) {
    forward_batch_packed(net, None, input, output);
}

/// [`forward_batch`] through [`Network::forward_n_packed`] when `packed`
/// holds the net's packed weights.
fn forward_batch_packed<N: Network>(net: &N, packed: Option<&[f32]>, input: &[f32], output: &mut [f32]) {
    assert!(
        input.len().is_multiple_of(N::INPUT_LEN),
        "{}::forward_batch: input has {} values, expected a multiple of INPUT_LEN = {}",
        N::NAME,
        input.len(),
        N::INPUT_LEN
    );
    let n = input.len() / N::INPUT_LEN;
    assert_eq!(
        output.len(),
        n * N::OUTPUT_LEN,
        "{}::forward_batch: output has {} values, expected {} ({} examples x OUTPUT_LEN = {})",
        N::NAME,
        output.len(),
        n * N::OUTPUT_LEN,
        n,
        N::OUTPUT_LEN
    );
    if n == 0 {
        return;
    }
    // Chunks small enough that every thread gets one: a batch of 256 on two
    // threads runs as two chunks of 128.
    let chunk = forward_chunk::<N>().min(n.div_ceil(threads().max(1))).max(1);
    let workers = threads().min(n.div_ceil(chunk)).max(1);
    with_buffers(workers, |buffers| {
        for b in buffers.iter_mut() {
            b.reserve(N::forward_workspace_len(chunk), 0, 0);
        }
        let run = |b: &mut Buffers, input: &[f32], output: &mut [f32]| {
            for (x, y) in input
                .chunks(chunk * N::INPUT_LEN)
                .zip(output.chunks_mut(chunk * N::OUTPUT_LEN))
            {
                let n = x.len() / N::INPUT_LEN;
                match packed {
                    Some(packed) => net.forward_n_packed(n, x, y, &mut b.workspace, packed),
                    None => net.forward_n(n, x, y, &mut b.workspace),
                }
            }
        };
        if workers == 1 {
            run(&mut buffers[0], input, output);
            return;
        }
        // Whole chunks per worker, so every chunk is computed exactly as
        // with one thread.
        let chunks = n.div_ceil(chunk);
        let mut input = input;
        let mut output = &mut *output;
        let mut jobs = Vec::with_capacity(workers);
        for ((_, count), b) in split(chunks, workers).zip(buffers.iter_mut()) {
            let examples = (count * chunk).min(input.len() / N::INPUT_LEN);
            let (x, x_rest) = input.split_at(examples * N::INPUT_LEN);
            let (y, y_rest) = std::mem::take(&mut output).split_at_mut(examples * N::OUTPUT_LEN);
            input = x_rest;
            output = y_rest;
            let mut y = Some(y);
            jobs.push(move || {
                if let Some(y) = y.take() {
                    run(b, x, y);
                }
            });
        }
        run_jobs(&mut jobs);
    });
}

/// A net's weights packed for inference ([`Network::pack`]): every conv
/// with a batch norm after it has it folded in and every conv on
/// Winograd's path (where it runs) its filters transformed, once, instead
/// of in every call of
/// [`forward_batch`] (ResNet's batch-1 latency spent a fifth of its time
/// on that). It borrows the net, so the weights cannot change under it:
/// pack again after training. Same outputs as [`forward_batch`], bit for
/// bit.
///
/// ```
/// # cnn_runtime::cnn_net!(Net: [1, 8, 8] => conv(1, 4, 3, pad = 1) batchnorm(4) relu flatten linear(256, 2));
/// let net = Net::boxed_init(0);
/// let packed = net.packed(); // or cnn_runtime::train::Packed::new(&*net)
/// let (x, mut a, mut b) = ([0.5; 64], [0.0; 2], [0.0; 2]);
/// packed.forward_batch(&x, &mut a);
/// net.forward_batch(&x, &mut b);
/// assert_eq!(a, b);
/// ```
pub struct Packed<'a, N: Network> {
    net: &'a N,
    packed: Vec<f32>,
}

impl<'a, N: Network> Packed<'a, N> {
    /// Packs `net`'s weights ([`Network::PACKED_LEN`] floats).
    pub fn new(net: &'a N) -> Self {
        let mut packed = vec![0.0; N::PACKED_LEN];
        net.pack(&mut packed);
        Packed { net, packed }
    }

    /// The net whose weights these are.
    pub fn net(&self) -> &'a N {
        self.net
    }

    /// [`forward_batch`] on the packed weights: the same outputs, threads
    /// and chunks.
    ///
    /// # Panics
    /// As [`forward_batch`].
    pub fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
        forward_batch_packed(self.net, Some(&self.packed), input, output);
    }
}

impl<N: Network> core::fmt::Debug for Packed<'_, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Packed")
            .field("net", &N::NAME)
            .field("packed", &self.packed.len())
            .finish()
    }
}

/// Mean loss of `N` over a batch and its gradient, written into `grads`
/// (`PARAM_COUNT` values, overwritten). `seed` drives training-mode
/// randomness (dropout masks).
///
/// # Panics
/// On inconsistent lengths, naming what was expected.
pub fn loss_and_grad<N: Network>(
    net: &N,
    input: &[f32],
    target: Target<'_>,
    grads: &mut [f32],
    seed: u64,
) -> f32 {
    loss_grad_outputs(net, input, target, grads, seed, None)
}

/// [`loss_and_grad`] that also copies the outputs (logits) of the training
/// forward pass into `outputs` (`OUTPUT_LEN` per example), for training
/// accuracy without a second forward pass.
fn loss_grad_outputs<N: Network>(
    net: &N,
    input: &[f32],
    target: Target<'_>,
    grads: &mut [f32],
    seed: u64,
    outputs: Option<&mut [f32]>,
) -> f32 {
    loss_grad_stats(net, input, target, grads, seed, outputs, None)
}

/// [`loss_grad_outputs`] that also copies the batch statistics of a net
/// with batch norm into `stats`, for the running-statistics update.
#[allow(clippy::too_many_arguments)]
fn loss_grad_stats<N: Network>(
    net: &N,
    input: &[f32],
    target: Target<'_>,
    grads: &mut [f32],
    seed: u64,
    outputs: Option<&mut [f32]>,
    stats: Option<&mut Vec<f32>>,
) -> f32 {
    let n = batch_len::<N>("loss_and_grad", input, target);
    assert_eq!(
        grads.len(),
        N::PARAM_COUNT,
        "{}::loss_and_grad: gradient buffer has {} values, expected PARAM_COUNT = {}",
        N::NAME,
        grads.len(),
        N::PARAM_COUNT
    );
    if let Some(out) = &outputs {
        assert_eq!(
            out.len(),
            n * N::OUTPUT_LEN,
            "{}: outputs buffer has the wrong length",
            N::NAME
        );
    }
    let workers = threads();
    if N::BATCH_STATS {
        return batch_stats_loss_and_grad(net, input, target, grads, seed, outputs, stats, workers);
    }
    with_buffers(workers, |buffers| {
        // Counted before collecting so the one-thread path allocates nothing.
        if shares(n, workers).count() == 1 {
            let b = &mut buffers[0];
            b.reserve(N::train_workspace_len(n.min(TRAIN_CHUNK)), 0, micro_len::<N>(n));
            let Buffers {
                workspace,
                micro_grads,
                ..
            } = b;
            return share_loss_and_grad(
                net,
                0,
                input,
                target,
                grads,
                workspace,
                micro_grads,
                seed,
                outputs,
            );
        }
        let shares: Vec<(usize, usize)> = shares(n, workers).collect();
        for (b, &(_, len)) in buffers.iter_mut().zip(&shares) {
            b.reserve(
                N::train_workspace_len(len.min(TRAIN_CHUNK)),
                N::PARAM_COUNT,
                micro_len::<N>(len),
            );
        }
        let mut losses = vec![0.0f32; shares.len()];
        let mut jobs = Vec::with_capacity(shares.len());
        let mut outputs = outputs;
        for ((b, &(start, len)), loss) in buffers.iter_mut().zip(&shares).zip(losses.iter_mut()) {
            let x = &input[start * N::INPUT_LEN..(start + len) * N::INPUT_LEN];
            let t = slice_target::<N>(target, start, len);
            let mut out = next_part(&mut outputs, len * N::OUTPUT_LEN);
            jobs.push(move || {
                let Buffers {
                    workspace,
                    grads,
                    micro_grads,
                } = &mut *b;
                let grads = &mut grads[..N::PARAM_COUNT];
                let out = out.as_deref_mut();
                *loss = share_loss_and_grad(net, start, x, t, grads, workspace, micro_grads, seed, out);
            });
        }
        run_jobs(&mut jobs);
        drop(jobs);
        // Each share returned its own mean; weight by share size, in order.
        let mut total = 0.0f32;
        grads.fill(0.0);
        for ((b, &(_, len)), loss) in buffers.iter().zip(&shares).zip(&losses) {
            let weight = len as f32 / n as f32;
            total += weight * loss;
            for (g, w) in grads.iter_mut().zip(&b.grads[..N::PARAM_COUNT]) {
                *g += weight * w;
            }
        }
        total
    })
}

/// [`loss_grad_stats`] for a net with batch norm: the batch's statistics
/// couple its examples, so each share runs whole (no micro-batches) and the
/// shares, all at once, exchange their per-channel sums through one
/// [`Shared`] exchange. Each share's gradient is its part of the batch's:
/// they add up.
#[allow(clippy::too_many_arguments)]
fn batch_stats_loss_and_grad<N: Network>(
    net: &N,
    input: &[f32],
    target: Target<'_>,
    grads: &mut [f32],
    seed: u64,
    outputs: Option<&mut [f32]>,
    stats: Option<&mut Vec<f32>>,
    workers: usize,
) -> f32 {
    let n = input.len() / N::INPUT_LEN;
    with_buffers(workers, |buffers| {
        let shares: Vec<(usize, usize)> = shares(n, workers).collect();
        let count = shares.len().max(1);
        for (b, &(_, len)) in buffers.iter_mut().zip(&shares) {
            let grads_len = if count > 1 { N::PARAM_COUNT } else { 0 };
            b.reserve(N::train_workspace_len(len), grads_len, 0);
        }
        let loss = if count == 1 {
            let b = &mut buffers[0];
            let loss = net.loss_and_grad_shared(
                n,
                input,
                target,
                grads,
                &mut b.workspace,
                chunk_seed(seed, 0),
                &Alone,
            );
            if let Some(out) = outputs {
                out.copy_from_slice(N::train_outputs(n, input, &b.workspace));
            }
            loss
        } else {
            let shared = Shared::new(count);
            let mut losses = vec![0.0f32; count];
            let mut jobs = Vec::with_capacity(count);
            let mut outputs = outputs;
            for (index, ((b, &(start, len)), loss)) in
                buffers.iter_mut().zip(&shares).zip(losses.iter_mut()).enumerate()
            {
                let x = &input[start * N::INPUT_LEN..(start + len) * N::INPUT_LEN];
                let t = slice_target::<N>(target, start, len);
                let mut out = next_part(&mut outputs, len * N::OUTPUT_LEN);
                let share = Share {
                    shared: &shared,
                    index,
                };
                jobs.push(move || {
                    let Buffers { workspace, grads, .. } = &mut *b;
                    let grads = &mut grads[..N::PARAM_COUNT];
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        net.loss_and_grad_shared(len, x, t, grads, workspace, chunk_seed(seed, start), &share)
                    }));
                    match result {
                        Ok(l) => *loss = l,
                        Err(payload) => {
                            share.shared.fail();
                            std::panic::resume_unwind(payload);
                        }
                    }
                    if let Some(out) = out.as_deref_mut() {
                        out.copy_from_slice(N::train_outputs(len, x, workspace));
                    }
                });
            }
            run_jobs(&mut jobs);
            drop(jobs);
            // The shares' gradients are parts of the batch's: add them, in
            // share order; each loss is its share's mean.
            grads.fill(0.0);
            let mut total = 0.0f32;
            for ((b, &(_, len)), loss) in buffers.iter().zip(&shares).zip(&losses) {
                total += len as f32 / n as f32 * loss;
                for (g, w) in grads.iter_mut().zip(&b.grads[..N::PARAM_COUNT]) {
                    *g += w;
                }
            }
            total
        };
        if let Some(stats) = stats {
            stats.clear();
            stats.extend_from_slice(N::batch_stats(&buffers[0].workspace));
        }
        loss
    })
}

/// The exchange between the shares of one batch, running at the same time
/// (one [`run_jobs`] job each): each [`Exchange::sum`] waits for every
/// share, then returns the sum of their vectors added in share order.
struct Shared {
    parties: usize,
    round: std::sync::Mutex<Round>,
    turn: std::sync::Condvar,
}

/// The state of the exchange in progress.
struct Round {
    /// Each share's vector of this round.
    slots: Vec<Vec<f64>>,
    arrived: usize,
    /// Rounds completed so far.
    generation: u64,
    /// The sum of the last completed round.
    total: Vec<f64>,
    /// A share panicked: the others must not wait for it.
    failed: bool,
}

impl Shared {
    fn new(parties: usize) -> Shared {
        Shared {
            parties,
            round: std::sync::Mutex::new(Round {
                slots: vec![Vec::new(); parties],
                arrived: 0,
                generation: 0,
                total: Vec::new(),
                failed: false,
            }),
            turn: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Round> {
        self.round
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every waiting share, which then panics too.
    fn fail(&self) {
        self.lock().failed = true;
        self.turn.notify_all();
    }
}

/// Share `index` of a [`Shared`] exchange.
struct Share<'a> {
    shared: &'a Shared,
    index: usize,
}

impl Exchange for Share<'_> {
    fn sum(&self, values: &mut [f64]) {
        let shared = self.shared;
        let mut round = shared.lock();
        assert!(!round.failed, "another share of this batch failed");
        round.slots[self.index].clear();
        round.slots[self.index].extend_from_slice(values);
        round.arrived += 1;
        let generation = round.generation;
        if round.arrived == shared.parties {
            let Round { slots, total, .. } = &mut *round;
            total.clear();
            total.resize(values.len(), 0.0);
            for slot in slots.iter() {
                assert_eq!(
                    slot.len(),
                    total.len(),
                    "shares exchanged vectors of different lengths"
                );
                for (t, v) in total.iter_mut().zip(slot) {
                    *t += v;
                }
            }
            round.arrived = 0;
            round.generation += 1;
            shared.turn.notify_all();
        } else {
            while round.generation == generation {
                assert!(!round.failed, "another share of this batch failed");
                round = shared
                    .turn
                    .wait(round)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        values.copy_from_slice(&round.total);
    }
}

/// The first `len` values of `rest` (a share's outputs), leaving the others
/// in `rest`; `None` when no outputs are wanted.
fn next_part<'a>(rest: &mut Option<&'a mut [f32]>, len: usize) -> Option<&'a mut [f32]> {
    let (mine, others) = rest.take()?.split_at_mut(len);
    *rest = Some(others);
    Some(mine)
}

/// The gradient buffer [`share_loss_and_grad`] needs for a share of `n`.
fn micro_len<N: Network>(n: usize) -> usize {
    if n > TRAIN_CHUNK {
        N::PARAM_COUNT
    } else {
        0
    }
}

/// Mean loss and gradient (written into `grads`) of a share of a batch
/// whose first example is example `first` of the batch, computed
/// [`TRAIN_CHUNK`] examples at a time: each micro-batch's gradient goes
/// through `micro_grads` and is added to `grads` weighted by its share of
/// the examples. Also copies the logits into `outputs` if given.
#[allow(clippy::too_many_arguments)]
fn share_loss_and_grad<N: Network>(
    net: &N,
    first: usize,
    input: &[f32],
    target: Target<'_>,
    grads: &mut [f32],
    workspace: &mut [f32],
    micro_grads: &mut [f32],
    seed: u64,
    mut outputs: Option<&mut [f32]>,
) -> f32 {
    let n = input.len() / N::INPUT_LEN;
    if n <= TRAIN_CHUNK {
        // One micro-batch (or none: an empty batch is the net's to handle).
        let loss = net.loss_and_grad_n(n, input, target, grads, workspace, chunk_seed(seed, first));
        if let Some(out) = outputs {
            out.copy_from_slice(N::train_outputs(n, input, workspace));
        }
        return loss;
    }
    let micro = &mut micro_grads[..N::PARAM_COUNT];
    let mut total = 0.0f32;
    for (i, (start, len)) in (0..n)
        .step_by(TRAIN_CHUNK)
        .map(|s| (s, TRAIN_CHUNK.min(n - s)))
        .enumerate()
    {
        let x = &input[start * N::INPUT_LEN..(start + len) * N::INPUT_LEN];
        let t = slice_target::<N>(target, start, len);
        let loss = net.loss_and_grad_n(len, x, t, micro, workspace, chunk_seed(seed, first + start));
        let weight = len as f32 / n as f32;
        total += weight * loss;
        if i == 0 {
            for (g, d) in grads.iter_mut().zip(&*micro) {
                *g = weight * d;
            }
        } else {
            for (g, d) in grads.iter_mut().zip(&*micro) {
                *g += weight * d;
            }
        }
        if let Some(out) = outputs.as_deref_mut() {
            out[start * N::OUTPUT_LEN..(start + len) * N::OUTPUT_LEN]
                .copy_from_slice(N::train_outputs(len, x, workspace));
        }
    }
    total
}

/// One optimisation step on a batch: gradient of the mean loss, then
/// `opt` updates the parameters. Returns the loss. After the first call with
/// a given batch size, a single-threaded step allocates nothing.
pub fn train_step<N: Network, O: Optimizer + ?Sized>(
    net: &mut N,
    input: &[f32],
    target: Target<'_>,
    opt: &mut O,
    seed: u64,
) -> f32 {
    step_impl(net, input, target, opt, seed, None)
}

/// [`train_step`] that also writes the outputs (logits) the step computed
/// before the update into `outputs` (`OUTPUT_LEN` per example): training
/// accuracy for free.
pub fn train_step_with_outputs<N: Network, O: Optimizer + ?Sized>(
    net: &mut N,
    input: &[f32],
    target: Target<'_>,
    opt: &mut O,
    seed: u64,
    outputs: &mut [f32],
) -> f32 {
    step_impl(net, input, target, opt, seed, Some(outputs))
}

fn step_impl<N: Network, O: Optimizer + ?Sized>(
    net: &mut N,
    input: &[f32],
    target: Target<'_>,
    opt: &mut O,
    seed: u64,
    outputs: Option<&mut [f32]>,
) -> f32 {
    GRADS.with(|cell| {
        let mut grads = cell.take();
        grads.resize(N::PARAM_COUNT, 0.0);
        let mut stats = STATS.with(|s| s.take());
        let loss = loss_grad_stats(net, input, target, &mut grads, seed, outputs, Some(&mut stats));
        opt.step(net.params_mut(), &grads);
        if N::BATCH_STATS {
            net.update_running_stats(&stats, input.len() / N::INPUT_LEN);
        }
        STATS.with(|s| s.set(stats));
        cell.set(grads);
        loss
    })
}

thread_local! {
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The batch statistics of the last step, kept to reuse the allocation.
    static STATS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A fresh dropout seed for each call on this thread: a hash of the
/// thread's step count, so a program that makes the same calls gets the same
/// masks, and consecutive steps get different ones.
pub fn next_step_seed() -> u64 {
    STEPS.with(|steps| {
        let step = steps.get();
        steps.set(step + 1);
        step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

thread_local! {
    static GRADS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Examples in a batch, checking the target agrees.
fn batch_len<N: Network>(what: &str, input: &[f32], target: Target<'_>) -> usize {
    checked_batch_len(N::NAME, N::INPUT_LEN, N::OUTPUT_LEN, what, input, target)
}

/// [`batch_len`] for a net of these sizes, compiled once rather than per net.
fn checked_batch_len(
    name: &str,
    input_len: usize,
    output_len: usize,
    what: &str,
    input: &[f32],
    target: Target<'_>,
) -> usize {
    assert!(
        input.len().is_multiple_of(input_len),
        "{name}::{what}: input has {} values, expected a multiple of INPUT_LEN = {input_len}",
        input.len(),
    );
    let n = input.len() / input_len;
    match target {
        Target::Classes(labels) => assert_eq!(
            labels.len(),
            n,
            "{name}::{what}: {} labels for {n} examples",
            labels.len(),
        ),
        Target::Values(values) => assert_eq!(
            values.len(),
            n * output_len,
            "{name}::{what}: {} target values for {n} examples, expected {}",
            values.len(),
            n * output_len
        ),
    }
    n
}

fn slice_target<'a, N: Network>(target: Target<'a>, start: usize, len: usize) -> Target<'a> {
    match target {
        Target::Classes(labels) => Target::Classes(&labels[start..start + len]),
        Target::Values(values) => {
            Target::Values(&values[start * N::OUTPUT_LEN..(start + len) * N::OUTPUT_LEN])
        }
    }
}

/// The arg-max of each example's outputs: predicted classes. The weights
/// are packed once for the whole set ([`Packed`]).
pub fn predict<N: Network>(net: &N, input: &[f32]) -> Vec<usize> {
    let n = input.len() / N::INPUT_LEN;
    let mut logits = vec![0.0f32; n * N::OUTPUT_LEN];
    Packed::new(net).forward_batch(input, &mut logits);
    logits.chunks(N::OUTPUT_LEN).map(argmax).collect()
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// The inherent `std` methods of a generated net; see `impl_std_methods!`.
#[macro_export]
#[doc(hidden)]
macro_rules! __std_methods_body {
    ($net:ident, $grads:ident) => {
        impl $net {
            /// The layer table (shapes, parameters, MACs, bytes) as text.
            pub fn summary() -> $crate::__private::std::string::String {
                let mut text = $crate::__private::std::string::String::new();
                let _ = Self::write_summary(&mut text);
                text
            }

            /// A zeroed net allocated directly on the heap: never built on
            /// the stack, whatever its size.
            pub fn boxed_zeroed() -> $crate::__private::std::boxed::Box<Self> {
                // SAFETY: `cnn_net!` generates `Self` as a struct of
                // `params: [f32; PARAM_COUNT]` and, with batch norms,
                // `buffers: [f32; BUFFER_COUNT]`; all-zero bytes are `0.0`
                // in every element, a valid value (and `Self::zeroed()`).
                unsafe { $crate::train::box_zeroed::<Self>() }
            }

            /// [`Self::init`] on the heap: PyTorch's default initialisation
            /// from `seed`, never building the net on the stack.
            pub fn boxed_init(seed: u64) -> $crate::__private::std::boxed::Box<Self> {
                let mut net = Self::boxed_zeroed();
                $crate::init::pytorch_default(
                    Self::TENSORS,
                    net.params_mut(),
                    &mut $crate::init::Rng::new(seed),
                );
                net
            }

            /// [`Self::init_xavier`] on the heap: Xavier-uniform weights
            /// from `seed`, never building the net on the stack.
            pub fn boxed_init_xavier(seed: u64) -> $crate::__private::std::boxed::Box<Self> {
                let mut net = Self::boxed_zeroed();
                $crate::init::xavier_uniform(
                    Self::TENSORS,
                    net.params_mut(),
                    &mut $crate::init::Rng::new(seed),
                );
                net
            }

            /// Runs `input.len() / INPUT_LEN` examples at once (im2col and
            /// GEMM, split across `cnn_runtime::train::threads()` threads)
            /// into `output` (`OUTPUT_LEN` per example).
            ///
            /// # Panics
            /// If `input.len()` is not a multiple of `INPUT_LEN` or `output`
            /// has the wrong length; the message names the expected sizes.
            pub fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
                $crate::train::forward_batch(self, input, output)
            }

            /// The weights packed for inference (`cnn_runtime::train::Packed`):
            /// each batch norm folded into the conv before it and the
            /// Winograd filters transformed, once, for many
            /// `forward_batch` calls with the same outputs, bit for bit.
            pub fn packed(&self) -> $crate::train::Packed<'_, Self> {
                $crate::train::Packed::new(self)
            }

            /// Predicted class (arg-max) of each example in `input`.
            pub fn predict(&self, input: &[f32]) -> $crate::__private::std::vec::Vec<usize> {
                $crate::train::predict(self, input)
            }

            /// Mean softmax cross-entropy over the batch (PyTorch
            /// `nn.CrossEntropyLoss()`) and its gradient with respect to
            /// every parameter, overwritten into `grads`.
            pub fn loss_and_grad(&self, input: &[f32], labels: &[u8], grads: &mut $grads) -> f32 {
                let grads = <$grads as $crate::Gradients>::as_mut_slice(grads);
                $crate::train::loss_and_grad(self, input, $crate::Target::Classes(labels), grads, 0)
            }

            /// Like [`Self::loss_and_grad`] for any target (class labels or
            /// values for mean squared error), with a seed for dropout.
            pub fn loss_and_grad_target(
                &self,
                input: &[f32],
                target: $crate::Target<'_>,
                grads: &mut $grads,
                seed: u64,
            ) -> f32 {
                let grads = <$grads as $crate::Gradients>::as_mut_slice(grads);
                $crate::train::loss_and_grad(self, input, target, grads, seed)
            }

            /// One optimisation step on a batch with class labels: returns
            /// the mean loss before the update. Dropout layers draw a new
            /// mask each call (seeded by this thread's step count, see
            /// `cnn_runtime::train::next_step_seed`); pass a seed to
            /// `cnn_runtime::train::train_step` to control it.
            pub fn train_step<O: $crate::optim::Optimizer + ?Sized>(
                &mut self,
                input: &[f32],
                labels: &[u8],
                opt: &mut O,
            ) -> f32 {
                let seed = $crate::train::next_step_seed();
                $crate::train::train_step(self, input, $crate::Target::Classes(labels), opt, seed)
            }

            /// The parameters in the JSON weights format: one object mapping
            /// each PyTorch `state_dict` key to `{"shape": [..], "data": [..]}`.
            pub fn to_json_string(&self) -> $crate::__private::std::string::String {
                $crate::weights::with_state(self, |t, d| $crate::weights::to_json_string(t, d))
            }

            /// Loads parameters from the JSON weights format. All or
            /// nothing: on error the net is unchanged.
            pub fn load_json_str(
                &mut self,
                json: &str,
            ) -> ::core::result::Result<(), $crate::weights::WeightsError> {
                $crate::weights::load_state(self, |t, d| $crate::weights::load_json_str(t, json, d))
            }

            /// Writes the JSON weights file atomically (temp file, then rename).
            pub fn save_json(
                &self,
                path: impl ::core::convert::AsRef<$crate::__private::std::path::Path>,
            ) -> ::core::result::Result<(), $crate::weights::WeightsError> {
                $crate::weights::with_state(self, |t, d| $crate::weights::save_json(t, d, path.as_ref()))
            }

            /// Reads a JSON weights file. All or nothing.
            pub fn load_json(
                &mut self,
                path: impl ::core::convert::AsRef<$crate::__private::std::path::Path>,
            ) -> ::core::result::Result<(), $crate::weights::WeightsError> {
                $crate::weights::load_state(self, |t, d| $crate::weights::load_json(t, path.as_ref(), d))
            }

            /// The parameters as a safetensors file (F32, `state_dict` keys),
            /// loadable with `safetensors.torch.load_file`.
            pub fn to_safetensors(&self) -> $crate::__private::std::vec::Vec<u8> {
                $crate::weights::with_state(self, |t, d| $crate::weights::to_safetensors(t, d))
            }

            /// Loads parameters from safetensors bytes, e.g. a PyTorch
            /// `state_dict` saved with `safetensors.torch.save_file`. All or nothing.
            pub fn load_safetensors(
                &mut self,
                bytes: &[u8],
            ) -> ::core::result::Result<(), $crate::weights::WeightsError> {
                $crate::weights::load_state(self, |t, d| $crate::weights::load_safetensors(t, bytes, d))
            }

            /// Writes a safetensors file atomically.
            pub fn save_safetensors(
                &self,
                path: impl ::core::convert::AsRef<$crate::__private::std::path::Path>,
            ) -> ::core::result::Result<(), $crate::weights::WeightsError> {
                $crate::weights::with_state(self, |t, d| {
                    $crate::weights::save_safetensors(t, d, path.as_ref())
                })
            }

            /// Reads a safetensors file. All or nothing.
            pub fn load_safetensors_file(
                &mut self,
                path: impl ::core::convert::AsRef<$crate::__private::std::path::Path>,
            ) -> ::core::result::Result<(), $crate::weights::WeightsError> {
                $crate::weights::load_state(self, |t, d| {
                    $crate::weights::load_safetensors_file(t, path.as_ref(), d)
                })
            }
        }

        impl $grads {
            /// The gradients in the JSON weights format (same keys as the parameters).
            pub fn to_json_string(&self) -> $crate::__private::std::string::String {
                $crate::weights::to_json_string(
                    <Self as $crate::Gradients>::TENSORS,
                    <Self as $crate::Gradients>::as_slice(self),
                )
            }

            /// The gradients as safetensors bytes.
            pub fn to_safetensors(&self) -> $crate::__private::std::vec::Vec<u8> {
                $crate::weights::to_safetensors(
                    <Self as $crate::Gradients>::TENSORS,
                    <Self as $crate::Gradients>::as_slice(self),
                )
            }
        }
    };
}

/// A `T` whose bytes are all zero, allocated directly on the heap (never
/// built on the stack and moved, as `Box::new` may be in a debug build).
///
/// # Safety
/// All-zero bytes must be a valid `T` (true of the nets `cnn_net!`
/// generates: `[f32; N]` fields).
#[doc(hidden)]
pub unsafe fn box_zeroed<T>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    if layout.size() == 0 {
        // SAFETY: a zero-sized `T` has no bytes, so the caller's promise
        // makes a dangling, aligned pointer a valid `Box<T>`.
        return unsafe { Box::from_raw(std::ptr::NonNull::<T>::dangling().as_ptr()) };
    }
    // SAFETY: `layout` has a non-zero size, as `alloc_zeroed` requires.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `ptr` was allocated by the global allocator with `T`'s layout
    // and holds zero bytes, a valid `T` by the caller's promise.
    unsafe { Box::from_raw(ptr) }
}

/// A zeroed `N` allocated directly on the heap, never built on the stack
/// for a generated net ([`Network::boxed_zeroed`]).
pub fn boxed_zeroed<N: Network>() -> Box<N> {
    N::boxed_zeroed()
}
