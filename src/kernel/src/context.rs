//! The kernel's answer to `cairn_sync`'s questions about the running CPU:
//! its index, interrupt flag, [`Context`] and held locks.
//!
//! The context is derived, never stored: interrupt depth > 0 is irq; the bh
//! flag (set by the run loop's drain and by bh service at an interrupt's
//! exit) is bh; this CPU owning the kernel lock is kernel-lock; the boot
//! flag is boot; otherwise the CPU is in its run loop.
//!
//! Any context; no locks.

use crate::percpu::this_cpu;
use crate::sched::KERNEL_LOCK;
use cairn_sync::Context;
use cairn_sync::cpu::{Cpu, HeldLocks};
use core::sync::atomic::Ordering;

struct PcCpu;

impl Cpu for PcCpu {
    fn id(&self) -> usize {
        this_cpu().index()
    }
    fn interrupts_enabled(&self) -> bool {
        cairn_pc::cpu::interrupts_enabled()
    }
    fn disable_interrupts(&self) {
        cairn_pc::cpu::disable_interrupts();
    }
    fn enable_interrupts(&self) {
        cairn_pc::cpu::enable_interrupts();
    }
    fn context(&self) -> Context {
        current()
    }
    fn held_locks(&self) -> &HeldLocks {
        &this_cpu().held_locks
    }
    fn with_thread_held_locks(&self, f: &mut dyn FnMut(&HeldLocks)) {
        crate::sched::thread::with_current_sleep_locks(|held| f(held));
    }
    fn bh_safe_alloc_scope(&self, enter: bool) {
        let d = &this_cpu().bh_safe_alloc_depth;
        if enter {
            d.fetch_add(1, Ordering::Relaxed);
        } else {
            d.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

static HOOKS: &dyn Cpu = &PcCpu;

/// Hands the hooks to `cairn_sync`. Called on the bootstrap CPU once its
/// per-CPU data is installed.
pub fn install() {
    cairn_sync::cpu::install(&HOOKS);
}

/// The context of the calling CPU.
pub fn current() -> Context {
    let c = this_cpu();
    if c.irq_depth.load(Ordering::Relaxed) > 0 {
        Context::Irq
    } else if c.in_bh.load(Ordering::Relaxed) {
        // Before the kernel lock: bh work run at an interrupt's exit may sit
        // on top of code that holds it, and is still bh work.
        Context::Bh
    } else if KERNEL_LOCK.held_by_this_cpu() {
        Context::KernelLock
    } else if c.booting.load(Ordering::Relaxed) {
        Context::Boot
    } else {
        Context::RunLoop
    }
}
