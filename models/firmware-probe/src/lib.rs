//! What firmware measured under QEMU needs, shared by `models/firmware`
//! and `tools/microflow`: the instruction counter, stack painting, and
//! the start, end and failure of a run (with the panic and fault handlers),
//! reported through semihosting.
//!
//! The method (README "On a Cortex-M, under QEMU"): QEMU models no cycles;
//! with `-icount shift=0` its virtual clock advances 1 ns per instruction
//! and the MPS2 boards clock the CMSDK APB timer 0 at 25 MHz, so one tick is
//! 40 instructions, which [`calibrate`] checks. The stack's high-water mark
//! comes from painting the free stack ([`paint_stack`]).
#![no_std]

use core::arch::asm;
use core::ptr::{addr_of, read_volatile, write_volatile};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
pub use cortex_m_semihosting::{hprint, hprintln};

// ---------------------------------------------------------------------------
// Instruction counting.
//
// QEMU models no cycles. With `-icount shift=0` its virtual clock advances
// exactly 1 ns per instruction executed, and the MPS2 boards clock the CMSDK
// APB timers at 25 MHz: one timer tick is 40 instructions. `calibrate`
// checks that ratio against a loop of known length, so a run without
// `-icount shift=0` (or on a board with another clock) fails instead of
// reporting wrong counts.

/// CMSDK APB timer 0 of the MPS2 boards.
const TIMER0: usize = 0x4000_0000;
const TIMER_CTRL: usize = TIMER0;
const TIMER_VALUE: usize = TIMER0 + 0x4;
const TIMER_RELOAD: usize = TIMER0 + 0x8;

/// Instructions per timer tick under `-icount shift=0` (1 GHz of virtual
/// instructions over a 25 MHz timer).
pub const INSTRUCTIONS_PER_TICK: u64 = 40;

/// Starts timer 0 counting down from `u32::MAX` (wraps after 2^32 ticks,
/// 171 G instructions: far more than any measured call).
fn timer_start() {
    // SAFETY: TIMER0 is the MPS2 boards' CMSDK APB timer 0; these are its
    // CTRL, RELOAD and VALUE registers, and nothing else uses the timer.
    unsafe {
        write_volatile(TIMER_CTRL as *mut u32, 0);
        write_volatile(TIMER_RELOAD as *mut u32, u32::MAX);
        write_volatile(TIMER_VALUE as *mut u32, u32::MAX);
        write_volatile(TIMER_CTRL as *mut u32, 1);
    }
}

fn timer_value() -> u32 {
    // SAFETY: the VALUE register of the CMSDK APB timer 0 (see `timer_start`).
    unsafe { read_volatile(TIMER_VALUE as *const u32) }
}

/// Runs `f` and returns its result and the timer ticks it took.
#[inline(never)]
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, u32) {
    let start = timer_value();
    let r = f();
    let end = timer_value();
    (r, start.wrapping_sub(end))
}

/// Counts down `n` times in two instructions per iteration (`subs`, `bne`).
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: a register-only loop: no memory, no stack, no flags the
    // compiler relies on afterwards (flags are clobbered by default).
    unsafe {
        asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

/// Starts the timer and checks that one tick is [`INSTRUCTIONS_PER_TICK`]
/// instructions: a loop of 2,000,000 instructions must take 50,000 ticks,
/// give or take the two timer reads and the call. Prints the `calib` line;
/// fails the run if the ratio is off.
pub fn calibrate() {
    timer_start();
    const ITERATIONS: u32 = 1_000_000;
    let loop_instructions = 2 * u64::from(ITERATIONS);
    let ((), ticks) = measure(|| spin(ITERATIONS));
    hprintln!("calib {} {}", loop_instructions, ticks);
    let expected = loop_instructions / INSTRUCTIONS_PER_TICK;
    if u64::from(ticks).abs_diff(expected) > 2 {
        fail(format_args!(
            "the timer counted {ticks} ticks for {loop_instructions} instructions, not {expected}: run QEMU with -icount shift=0 on an MPS2 board"
        ));
    }
}

/// Instructions in `ticks` timer ticks.
pub fn instructions(ticks: u64) -> u64 {
    ticks * INSTRUCTIONS_PER_TICK
}

// ---------------------------------------------------------------------------
// Stack painting: fill the unused stack with a pattern, run, then find the
// lowest word that changed.

extern "C" {
    /// Top of the stack (cortex-m-rt's linker script: the end of RAM).
    static _stack_start: u32;
    /// The lowest address the stack may reach (the end of the statics).
    static _stack_end: u32;
}

const PAINT: u32 = 0x5AC3_A55C;
/// How far below the current stack pointer [`paint_stack`] paints: more
/// than any phase here needs (a phase that reaches the end fails).
const PAINT_BYTES: usize = 64 * 1024;

/// A painted stack region, from [`paint_stack`].
pub struct Painted {
    low: usize,
    /// Bytes of stack in use when it was painted (`main`'s frame and below).
    base: usize,
}

/// Paints the free stack below the current stack pointer (at most
/// `PAINT_BYTES`, never below the statics).
#[inline(never)]
pub fn paint_stack() -> Painted {
    let floor = addr_of!(_stack_end) as usize;
    let sp: usize;
    // SAFETY: reads the stack pointer into a register.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    let low = (sp.saturating_sub(PAINT_BYTES).max(floor) + 3) & !3;
    // SAFETY: writes the pattern from `low` up to the stack pointer this asm
    // block reads itself: memory between the statics and the stack pointer,
    // which no live value occupies (no interrupt is enabled to use it).
    unsafe {
        asm!(
            "mov {end}, sp",
            "2:",
            "cmp {p}, {end}",
            "bhs 3f",
            "str {pat}, [{p}], #4",
            "b 2b",
            "3:",
            p = inout(reg) low => _,
            end = out(reg) _,
            pat = in(reg) PAINT,
            options(nostack),
        );
    }
    Painted {
        low,
        base: addr_of!(_stack_start) as usize - sp,
    }
}

impl Painted {
    /// Bytes of stack used since painting, measured from the top of the
    /// stack; fails the run if the use reached the bottom of the paint.
    pub fn high_water(&self) -> usize {
        let top = addr_of!(_stack_start) as usize;
        let mut p = self.low;
        // SAFETY: reads words between the bottom of the paint and the top
        // of the stack (RAM), stopping at the first changed one.
        unsafe {
            asm!(
                "2:",
                "cmp {p}, {top}",
                "bhs 3f",
                "ldr {w}, [{p}]",
                "cmp {w}, {pat}",
                "bne 3f",
                "adds {p}, {p}, #4",
                "b 2b",
                "3:",
                p = inout(reg) p,
                top = in(reg) top,
                pat = in(reg) PAINT,
                w = out(reg) _,
                options(nostack, readonly),
            );
        }
        if p == self.low {
            fail(format_args!(
                "the stack reached the bottom of the painted {PAINT_BYTES} bytes"
            ));
        }
        top - p
    }

    /// Prints `stack PHASE HIGH_WATER BASE`: the bytes of stack used, from
    /// the top, and of those the bytes already in use at painting.
    pub fn report(&self, phase: &str) {
        hprintln!("stack {} {} {}", phase, self.high_water(), self.base);
    }
}

// ---------------------------------------------------------------------------
// Start, end, failure.

/// Prints `firmware NAME` and calibrates the instruction counter.
pub fn start(name: &str) {
    hprintln!("firmware {}", name);
    calibrate();
}

/// Prints `ok` and exits QEMU with status 0.
pub fn finish() -> ! {
    hprintln!("ok");
    exit(true)
}

/// Prints `error MESSAGE` and exits QEMU with a non-zero status.
pub fn fail(message: core::fmt::Arguments) -> ! {
    hprintln!("error {}", message);
    exit(false)
}

fn exit(success: bool) -> ! {
    debug::exit(if success { EXIT_SUCCESS } else { EXIT_FAILURE });
    // Not under a semihosting debugger: stop here.
    loop {
        cortex_m::asm::bkpt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic: {info}"))
}

// cortex-m-rt declares the fault and default handlers `unsafe fn`; these
// only report and exit.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    fail(format_args!("hard fault at pc {:#010x}", frame.pc()))
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    fail(format_args!("unexpected exception {irqn}"))
}
