//! The per-CPU run loop: every CPU, once booted, runs this forever.
//!
//! 1. **bh**: drain the bhqueue without the kernel lock, interrupts on.
//! 2. **kernel lock**: if the runqueue has work, queue for the kernel lock
//!    with a ticket and, until it is this CPU's turn, keep draining the
//!    bhqueue: a CPU never idles in a lock spin while bh work waits (the
//!    holder may be waiting for those completions). Then run queued closures
//!    and resume queued threads; a holder that sees another CPU queued hands
//!    the lock over between work items, so runnable threads spread over the
//!    CPUs in ticket order.
//! 3. **idle**: with interrupts off, announce idleness, re-check both
//!    queues, then `sti; hlt` atomically. A CPU waiting for its kernel-lock
//!    ticket halts the same way; the releaser wakes it. Producers wake idle CPUs with an
//!    IPI after queueing ([`wake_idle_cpu`]); the announce/re-check order is
//!    the protocol the bhqueue loom model verifies.
//!
//! Runs in run-loop, bh and (step 2) kernel-lock context.

use super::{KERNEL_LOCK, Runnable, bhqueue, runqueue, thread};
use crate::percpu::{cpus, this_cpu};
use core::sync::atomic::{Ordering, fence};

/// Bh items run before looking at the runqueue again.
const BH_BUDGET: usize = 64;
/// Runqueue items run before releasing the kernel lock.
const RUNQUEUE_BUDGET: usize = 64;

/// Enters the run loop on this CPU; never returns.
pub fn run() -> ! {
    let cpu = this_cpu();
    cpu.booting.store(false, Ordering::Relaxed);
    cpu.online.store(true, Ordering::Release);
    loop {
        drain_bh();
        if !runqueue().is_empty() {
            let mut ticket = KERNEL_LOCK.take_ticket();
            let k = loop {
                match KERNEL_LOCK.redeem(ticket) {
                    Ok(k) => break k,
                    Err(t) => {
                        ticket = t;
                        drain_bh();
                        halt_unless(|| KERNEL_LOCK.is_turn(&ticket));
                    }
                }
            };
            for _ in 0..RUNQUEUE_BUDGET {
                match runqueue().dequeue() {
                    Some(Runnable::Work(f)) => f(),
                    Some(Runnable::Thread(t)) => thread::run(t),
                    None => break,
                }
                if KERNEL_LOCK.wanted() {
                    break;
                }
            }
            drop(k);
            // Pairs with the fence in `halt_unless`: a waiter that announced
            // itself idle before our release is seen here and woken; one
            // that announces later sees its turn in its re-check.
            fence(Ordering::SeqCst);
            if KERNEL_LOCK.has_waiters() {
                wake_all_idle_cpus();
            }
        }
        halt_unless(|| !runqueue().is_empty());
    }
}

fn drain_bh() {
    let cpu = this_cpu();
    cpu.in_bh.store(true, Ordering::Relaxed);
    cairn_pc::cpu::enable_interrupts();
    let ran = bhqueue().drain(BH_BUDGET);
    cpu.in_bh.store(false, Ordering::Relaxed);
    cpu.bh_items.fetch_add(ran as u64, Ordering::Relaxed);
    if let Some(n) = bhqueue().unreported_full() {
        crate::error!("bhqueue full: {n} work item(s) refused since the last report");
    }
}

/// Halts until an interrupt unless bh work is queued or `ready()` holds:
/// announce idleness, re-check, then `sti; hlt` atomically. Whoever makes
/// `ready()` true (queues work, releases the kernel lock) wakes idle CPUs
/// after doing so, so the wake-up is never lost. Waiting CPUs halt rather
/// than spin: with more vCPUs than host cores a spinning vCPU would take the
/// host time the lock holder needs.
fn halt_unless(ready: impl Fn() -> bool) {
    let cpu = this_cpu();
    cairn_pc::cpu::disable_interrupts();
    cpu.idle.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    if bhqueue().is_empty() && !ready() {
        cairn_pc::cpu::enable_interrupts_and_halt();
    } else {
        cairn_pc::cpu::enable_interrupts();
    }
    cpu.idle.store(false, Ordering::SeqCst);
}

/// Wakes one idle CPU other than this one (if any) to look at the queues.
/// Any context.
pub fn wake_idle_cpu() {
    let me = this_cpu().index();
    if let Some(c) = cpus().iter().find(|c| {
        c.index() != me && c.online.load(Ordering::Acquire) && c.idle.load(Ordering::SeqCst)
    }) {
        cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::WAKEUP);
    }
}

/// Wakes every idle CPU (after queueing several items).
pub fn wake_all_idle_cpus() {
    let me = this_cpu().index();
    for c in cpus() {
        if c.index() != me && c.online.load(Ordering::Acquire) && c.idle.load(Ordering::SeqCst) {
            cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::WAKEUP);
        }
    }
}
