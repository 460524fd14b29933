//! Helpers for in-kernel tests: waiting with a hang detector, and running a
//! function on a given CPU in irq context.

use crate::percpu::cpu;
use alloc::format;
use alloc::string::String;
use cairn_pc::acpi::MAX_CPUS;
use core::sync::atomic::{AtomicUsize, Ordering};

/// How long a test waits for something before declaring a hang.
pub const HANG_NS: u64 = 20_000_000_000;

/// Waits (sleeping 1 ms at a time) until `cond()`, or fails naming `what`
/// after [`HANG_NS`]: a hang detector, not a performance assertion.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = crate::time::now_ns() + HANG_NS;
    while !cond() {
        if crate::time::now_ns() > deadline {
            crate::sched::dump();
            return Err(format!("hang: {what}"));
        }
        crate::sched::sleep(1_000_000);
    }
    Ok(())
}

static CALL: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
static CALL_ARG: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

fn test_vector(_: usize) {
    let me = crate::percpu::this_cpu().index();
    let f = CALL[me].swap(0, Ordering::AcqRel);
    if f != 0 {
        // SAFETY: CALL only holds values stored by `call_on` from `fn(usize)`.
        let f: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
        f(CALL_ARG[me].load(Ordering::Acquire));
    }
}

/// Installs the test vector's handler.
pub fn init() {
    crate::irq::set_handler(
        crate::irq::TEST,
        crate::irq::Handler {
            func: test_vector,
            arg: 0,
        },
    );
}

/// Runs `f(arg)` on CPU `index` in irq context (via the test IPI) and waits
/// until it has started.
pub fn call_on(index: usize, f: fn(usize), arg: usize) -> Result<(), String> {
    CALL_ARG[index].store(arg, Ordering::Release);
    CALL[index].store(f as usize, Ordering::Release);
    let me = crate::percpu::this_cpu().index();
    if index == me {
        let was = cairn_pc::cpu::interrupts_enabled();
        cairn_pc::cpu::disable_interrupts();
        test_vector(0);
        if was {
            cairn_pc::cpu::enable_interrupts();
        }
    } else {
        cairn_pc::apic::send_ipi(cpu(index).apic_id(), crate::irq::TEST);
    }
    wait_for("test IPI delivery", || {
        CALL[index].load(Ordering::Acquire) == 0
    })
}
