//! Training firmware: LeNet loaded with the PyTorch fixture's weights into
//! RAM. Prints the fixture inputs' logits and per-example losses (the host
//! compares them with PyTorch's float64 results), then trains with batch-1
//! SGD steps on the included test images and prints each step's loss, the
//! logits afterwards, the instructions per forward pass and per training
//! step, and the stack's high-water mark of each (see the crate docs).
#![no_std]
#![no_main]

use cnn_firmware::{
    data, hprint, hprintln, instructions, load_test_image, measure, paint_stack, print_bits, read_f32s,
    LeNet, LeNetGrads,
};
use cnn_runtime::optim::{SgdConfig, SgdWith};
use cnn_runtime::Target;
use core::hint::black_box;
use cortex_m_rt::entry;

/// Training steps, one test image each.
const STEPS: usize = 8;
/// SGD learning rate.
const LR: f32 = 0.1;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` references, handed out once.
    static mut NET: LeNet = LeNet::zeroed();
    static mut GRADS: LeNetGrads = LeNetGrads::zeroed();
    static mut TRAIN_SCRATCH: [f32; LeNet::TRAIN_SCRATCH_LEN] = [0.0; LeNet::TRAIN_SCRATCH_LEN];
    static mut INFER_SCRATCH: [f32; LeNet::INFER_SCRATCH_LEN] = [0.0; LeNet::INFER_SCRATCH_LEN];
    static mut IMAGE: [f32; LeNet::INPUT_LEN] = [0.0; LeNet::INPUT_LEN];

    cnn_firmware::start("lenet-train");
    hprintln!("sgd {:08x} {}", LR.to_bits(), STEPS);
    let net: &mut LeNet = NET;

    // The fixture's weights, tensor by tensor, by state_dict key.
    let mut loaded = 0;
    for (key, at, len) in data::FIXTURE_TENSORS {
        let Some(tensor) = net.tensor_mut(key) else {
            cnn_firmware::fail(format_args!("LeNet has no tensor {key}"));
        };
        read_f32s(&data::FIXTURE_PARAMS[at * 4..(at + len) * 4], tensor);
        loaded += len;
    }
    if loaded != LeNet::PARAM_COUNT {
        cnn_firmware::fail(format_args!(
            "the fixture has {loaded} parameters, LeNet {}",
            LeNet::PARAM_COUNT
        ));
    }

    let stack = paint_stack();
    let mut ticks = 0u64;
    for i in 0..data::FIXTURE_BATCH {
        read_f32s(
            &data::FIXTURE_INPUT[i * LeNet::INPUT_LEN * 4..(i + 1) * LeNet::INPUT_LEN * 4],
            &mut *IMAGE,
        );
        let (logits, t) = measure(|| net.forward_with(black_box(&*IMAGE), black_box(&mut *INFER_SCRATCH)));
        ticks += u64::from(t);
        hprint!("fixture {}", i);
        print_bits(&logits);
        hprintln!();
    }
    hprintln!("instr forward {} {}", data::FIXTURE_BATCH, instructions(ticks));
    stack.report("forward");

    let stack = paint_stack();
    for i in 0..data::FIXTURE_BATCH {
        read_f32s(
            &data::FIXTURE_INPUT[i * LeNet::INPUT_LEN * 4..(i + 1) * LeNet::INPUT_LEN * 4],
            &mut *IMAGE,
        );
        let label = [data::FIXTURE_LABELS[i]];
        let loss = net.loss_and_grad_with(&*IMAGE, Target::Classes(&label), GRADS, TRAIN_SCRATCH);
        hprintln!("fixture_loss {} {:08x}", i, loss.to_bits());
    }

    let mut opt = SgdWith::new(SgdConfig::new(LR), &mut []);
    let mut ticks = 0u64;
    for step in 0..STEPS {
        load_test_image(step % data::TEST_IMAGES, IMAGE);
        let label = [data::TEST_LABELS[step % data::TEST_IMAGES]];
        let (loss, t) = measure(|| {
            net.train_step_with(
                black_box(&*IMAGE),
                Target::Classes(&label),
                GRADS,
                TRAIN_SCRATCH,
                &mut opt,
            )
        });
        ticks += u64::from(t);
        hprintln!(
            "loss {} {} {:08x}",
            step,
            step % data::TEST_IMAGES,
            loss.to_bits()
        );
    }
    hprintln!("instr train {} {}", STEPS, instructions(ticks));
    stack.report("train");

    load_test_image(0, IMAGE);
    let logits = net.forward_with(&*IMAGE, INFER_SCRATCH);
    hprint!("after 0");
    print_bits(&logits);
    hprintln!();
    cnn_firmware::finish()
}
