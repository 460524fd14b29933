//! The hang report: what every CPU was doing when the test runner gave up.
//!
//! When a boot outlives its timeout, xtask injects an NMI into every vCPU
//! (QEMU monitor `nmi`) before killing QEMU. Each CPU then reports, one after
//! another in CPU order: its context, the interrupted RIP and mode, its held
//! locks, and the frame-pointer backtrace of the interrupted code; CPU 0
//! adds the scheduler's state. The runner symbolises the backtraces. The
//! report writes to the serial port without the console lock (a hung CPU
//! may hold it) and then returns to the interrupted code.
//!
//! NMI context (on its own IST stack): no locks, no allocation.

use crate::console::emergency;
use crate::percpu::{cpus, this_cpu};
use cairn_pc::idt::TrapFrame;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The CPU whose turn it is to report.
static TURN: AtomicUsize = AtomicUsize::new(0);

/// Spins a CPU waits for its turn before reporting anyway.
const TURN_SPINS: u64 = 200_000_000;

/// The NMI handler: reports this CPU and returns.
pub fn nmi(frame: &TrapFrame) {
    let me = this_cpu().index();
    let mut spins = 0u64;
    while TURN.load(Ordering::Acquire) != me && spins < TURN_SPINS {
        core::hint::spin_loop();
        spins += 1;
    }
    let c = this_cpu();
    emergency(format_args!(
        "\ncairn: hang report cpu{me}: {:?} context, interrupted {} code at RIP {:#x}, \
         thread {:p}, irq depth {}, bh {}, idle {}\n",
        crate::context::current(),
        if frame.from_user() { "user" } else { "kernel" },
        frame.rip,
        c.current_thread.load(Ordering::Relaxed),
        c.irq_depth.load(Ordering::Relaxed),
        c.in_bh.load(Ordering::Relaxed),
        c.idle.load(Ordering::Relaxed),
    ));
    let held = &c.held_locks;
    for i in 0..held.depth() {
        if let Some((class, site)) = held.get(i) {
            emergency(format_args!(
                "  holds lock class #{class} taken at {}:{}\n",
                site.file(),
                site.line()
            ));
        }
    }
    if !frame.from_user() {
        emergency(format_args!("  #{:<2} {:#018x}\n", "-", frame.rip));
        crate::panic::backtrace(frame.rbp);
    }
    if me == 0 {
        crate::sched::dump();
    }
    TURN.store((me + 1) % cpus().len().max(1), Ordering::Release);
}
