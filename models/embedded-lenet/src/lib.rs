//! LeNet on a microcontroller, shaped as firmware: `#![no_std]`, no `alloc`,
//! every buffer a `static` whose size the macro computed, the trained
//! parameters in read-only memory (`LeNet::TRAINED`), and on-device training
//! of a RAM copy with a heap-free SGD step.
//!
//! The C ABI below is what a firmware's main loop would call; the host test
//! `tests/tests/integration/embedded.rs` links the static library into a C program and
//! checks it against the `std` path.
#![no_std]

use cnn_runtime::optim::{SgdConfig, SgdWith};
use cnn_runtime::{cnn_net, Target};
use core::ptr::addr_of_mut;

cnn_net! {
    /// LeNet-5 (D2L 7.6), trained on Fashion-MNIST by `cargo run --release`.
    pub LeNet: [1, 28, 28] weights = "../weights/lenet-fashion.safetensors" =>
        conv(1, 6, 5, pad = 2) sigmoid avgpool(2)
        conv(6, 16, 5) sigmoid avgpool(2)
        flatten
        linear(400, 120) sigmoid
        linear(120, 84) sigmoid
        linear(84, 10)
}

/// The memory this firmware needs, checked by the compiler: inference
/// scratch and the trainable copy's buffers in RAM, the trained parameters
/// in flash.
const _: () = assert!(LeNet::INFER_SCRATCH_BYTES <= 32 * 1024 && LeNet::PARAM_BYTES <= 256 * 1024);

static mut INFER_SCRATCH: [f32; LeNet::INFER_SCRATCH_LEN] = [0.0; LeNet::INFER_SCRATCH_LEN];
static mut TRAIN_SCRATCH: [f32; LeNet::TRAIN_SCRATCH_LEN] = [0.0; LeNet::TRAIN_SCRATCH_LEN];
static mut TRAINABLE: LeNet = LeNet::zeroed();
static mut GRADS: LeNetGrads = LeNetGrads::zeroed();
static mut STARTED: bool = false;

fn argmax(logits: &[f32; 10]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Classifies one 28x28 image (784 floats in [0, 1]) with the baked
/// weights; writes the 10 logits to `logits` if it is not null.
///
/// # Safety
/// `image` points to 784 readable floats; `logits` is null or points to 10
/// writable floats; not called concurrently with itself.
#[no_mangle]
pub unsafe extern "C" fn lenet_classify(image: *const f32, logits: *mut f32) -> u32 {
    // SAFETY: the caller guarantees 784 readable floats at `image`.
    let image = unsafe { &*(image as *const [f32; LeNet::INPUT_LEN]) };
    // SAFETY: single-threaded by contract, so no other reference to the static exists.
    let scratch = unsafe { &mut *addr_of_mut!(INFER_SCRATCH) };
    let out = LeNet::TRAINED.forward_with(image, scratch);
    if !logits.is_null() {
        // SAFETY: the caller guarantees 10 writable floats at `logits`.
        unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), logits, out.len()) };
    }
    argmax(&out)
}

/// One SGD step (learning rate `lr`) of the trainable RAM copy on one
/// labelled image; the copy starts from the baked weights. Returns the loss
/// before the step.
///
/// # Safety
/// As [`lenet_classify`]; `label` < 10.
#[no_mangle]
pub unsafe extern "C" fn lenet_train_step(image: *const f32, label: u32, lr: f32) -> f32 {
    // SAFETY: the caller guarantees 784 readable floats at `image`.
    let image = unsafe { &*(image as *const [f32; LeNet::INPUT_LEN]) };
    // SAFETY: single-threaded by contract: these are the only live references to the statics.
    let (net, grads, scratch, started) = unsafe {
        (
            &mut *addr_of_mut!(TRAINABLE),
            &mut *addr_of_mut!(GRADS),
            &mut *addr_of_mut!(TRAIN_SCRATCH),
            &mut *addr_of_mut!(STARTED),
        )
    };
    if !*started {
        net.params_mut().copy_from_slice(LeNet::TRAINED.params());
        *started = true;
    }
    let mut opt = SgdWith::new(SgdConfig::new(lr), &mut []);
    let label = [label.min(9) as u8];
    net.train_step_with(image, Target::Classes(&label), grads, scratch, &mut opt)
}

/// Replaces the trainable RAM copy's parameters with `params`
/// (`PARAM_COUNT` floats in `state_dict` order), e.g. weights received over
/// a radio link.
///
/// # Safety
/// `params` points to `LeNet::PARAM_COUNT` readable floats; not called
/// concurrently with the other functions.
#[no_mangle]
pub unsafe extern "C" fn lenet_load_params(params: *const f32) {
    // SAFETY: the caller guarantees PARAM_COUNT readable floats at `params`.
    let params = unsafe { core::slice::from_raw_parts(params, LeNet::PARAM_COUNT) };
    // SAFETY: single-threaded by contract.
    let (net, started) = unsafe { (&mut *addr_of_mut!(TRAINABLE), &mut *addr_of_mut!(STARTED)) };
    net.params_mut().copy_from_slice(params);
    *started = true;
}

/// Classifies with the trainable copy (after [`lenet_train_step`] calls).
///
/// # Safety
/// As [`lenet_classify`].
#[no_mangle]
pub unsafe extern "C" fn lenet_trainable_classify(image: *const f32, logits: *mut f32) -> u32 {
    // SAFETY: the caller guarantees 784 readable floats at `image`.
    let image = unsafe { &*(image as *const [f32; LeNet::INPUT_LEN]) };
    // SAFETY: single-threaded by contract.
    let (net, scratch) = unsafe { (&*addr_of_mut!(TRAINABLE), &mut *addr_of_mut!(INFER_SCRATCH)) };
    let out = net.forward_with(image, scratch);
    if !logits.is_null() {
        // SAFETY: the caller guarantees 10 writable floats at `logits`.
        unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), logits, out.len()) };
    }
    argmax(&out)
}

/// The bytes of RAM and flash this library's net needs, for the firmware's
/// linker script and for the README table.
///
/// # Safety
/// Each pointer is null or points to a writable `u32`.
#[no_mangle]
pub unsafe extern "C" fn lenet_memory(infer_scratch: *mut u32, train_scratch: *mut u32, params: *mut u32) {
    let values = [
        LeNet::INFER_SCRATCH_BYTES,
        LeNet::TRAIN_SCRATCH_BYTES,
        LeNet::PARAM_BYTES,
    ];
    for (ptr, value) in [infer_scratch, train_scratch, params].into_iter().zip(values) {
        if !ptr.is_null() {
            // SAFETY: the caller guarantees non-null pointers are writable.
            unsafe { *ptr = value as u32 };
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // A firmware would reset here; the host harness just stops.
    loop {
        core::hint::spin_loop();
    }
}
