//! The per-CPU run loop: every CPU, once booted, runs this forever.
//!
//! 1. **bh**: drain the bhqueue without the kernel lock, interrupts on.
//! 2. **kernel lock**: if the runqueue or the expired queue has work, queue
//!    for the kernel lock with a ticket and, until it is this CPU's turn,
//!    keep draining the bhqueue: a CPU never idles in a lock spin while bh
//!    work waits (the holder may be waiting for those completions). Then run
//!    queued closures and resume queued threads, the runqueue (kernel-lock
//!    work, woken threads) before the expired queue (threads that used up a
//!    slice); a holder that sees another CPU queued hands the lock over
//!    between work items, so runnable threads spread over the CPUs in ticket
//!    order.
//! 3. **idle**: with interrupts off, announce idleness, re-check both
//!    queues, then `sti; hlt` atomically. A CPU waiting for its kernel-lock
//!    ticket halts the same way; the releaser wakes it. Producers wake idle CPUs with an
//!    IPI after queueing ([`wake_idle_cpu`]); the announce/re-check order is
//!    the protocol the bhqueue loom model verifies.
//!
//! Runs in run-loop, bh and (step 2) kernel-lock context.

use super::{KERNEL_LOCK, Runnable, bhqueue, expired, runqueue, thread};
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
        if super::preempt::cpu_wanted() {
            let mut ticket = KERNEL_LOCK.take_ticket();
            cpu.awaiting_kernel_lock.store(true, Ordering::SeqCst);
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
            cpu.awaiting_kernel_lock.store(false, Ordering::Relaxed);
            for _ in 0..RUNQUEUE_BUDGET {
                match runqueue().dequeue().or_else(|| expired().dequeue()) {
                    Some(Runnable::Work(f)) => f(),
                    Some(Runnable::Thread(t)) => thread::run(t),
                    None => break,
                }
                if KERNEL_LOCK.wanted() {
                    break;
                }
            }
            drop(k);
            wake_kernel_lock_waiters();
        }
        halt_unless(super::preempt::cpu_wanted);
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

/// Spins a thread makes for the kernel lock before it halts instead.
const LOCK_SPINS: u32 = 200;

/// Takes the kernel lock without a guard for a thread coming in from user
/// mode (syscall, exception, preemption), in ticket order. It spins briefly,
/// then halts until its turn instead of spinning: with more vCPUs than host
/// cores (TCG `-smp 4` on 2 cores, a loaded host) a spinning waiter takes
/// the host time the holder needs, and a syscall-heavy program collapsed
/// to a few hundred syscalls a second across 4 vCPUs before this. Releasers
/// wake halted waiters ([`release_kernel_lock_held`] and the run loop);
/// bh work queued meanwhile is serviced here or at interrupt exits.
/// Interrupts on, kernel lock not held.
pub fn acquire_kernel_lock_unguarded() {
    let cpu = this_cpu();
    let mut ticket = KERNEL_LOCK.take_ticket();
    let mut spins = 0;
    let guard = loop {
        match KERNEL_LOCK.redeem(ticket) {
            Ok(g) => break g,
            Err(t) => ticket = t,
        }
        if spins < LOCK_SPINS {
            spins += 1;
            core::hint::spin_loop();
            continue;
        }
        if !bhqueue().is_empty() {
            super::exit::service_bh_waiting();
            continue;
        }
        // Announce, re-check, halt: pairs with the fence in
        // `wake_kernel_lock_waiters`.
        cairn_pc::cpu::disable_interrupts();
        cpu.awaiting_kernel_lock.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if KERNEL_LOCK.is_turn(&ticket) || !bhqueue().is_empty() {
            cairn_pc::cpu::enable_interrupts();
        } else {
            cairn_pc::cpu::enable_interrupts_and_halt();
        }
        cpu.awaiting_kernel_lock.store(false, Ordering::Relaxed);
    };
    core::mem::forget(guard);
}

/// Wakes one idle CPU other than this one (if any) to look at the queues;
/// false if none is idle. Any context.
pub fn wake_idle_cpu() -> bool {
    let me = this_cpu().index();
    match cpus().iter().find(|c| {
        c.index() != me && c.online.load(Ordering::Acquire) && c.idle.load(Ordering::SeqCst)
    }) {
        Some(c) => {
            cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::WAKEUP);
            true
        }
        None => false,
    }
}

/// After queueing kernel-lock work or a woken thread: wakes an idle CPU for
/// it, or, with none idle, asks a busy one to give its thread up
/// (wake-up preemption, `preempt::kick`). Bh and kernel-lock context.
pub fn wake_cpu_for_work() {
    if !wake_idle_cpu() {
        super::preempt::kick();
    }
}

/// After a release of the kernel lock: wakes the CPUs halted waiting for
/// their turn. Pairs with the fence in `halt_unless`: a waiter that announced
/// itself idle before the release is seen here and woken; one that
/// announces later sees its turn in its re-check. Every release must call
/// this (or [`release_kernel_lock_held`]), or a waiter whose turn came sleeps
/// on while the next ticket holder spins.
fn wake_kernel_lock_waiters() {
    fence(Ordering::SeqCst);
    if !KERNEL_LOCK.has_waiters() {
        return;
    }
    let me = this_cpu().index();
    for c in cpus() {
        if c.index() != me && c.awaiting_kernel_lock.load(Ordering::SeqCst) {
            cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::WAKEUP);
        }
    }
}

/// Runs `f` with the kernel lock released, then takes it back (in ticket
/// order, like a syscall entry) before returning: for long copies between
/// pinned page frames and user memory, which need no kernel state and are
/// most of a large read's or write's time, so that other CPUs' syscalls run
/// meanwhile (issue 17). The caller is kernel-lock code in a thread holding
/// no spinlock (a sleeping mutex is fine); `f` runs in the thread's own
/// context without the lock: it may not sleep, page user memory in (copy
/// with faults disabled and retry under the lock), or free general-heap
/// memory (debug builds check all three).
pub fn without_kernel_lock<R>(f: impl FnOnce() -> R) -> R {
    assert!(
        KERNEL_LOCK.held_by_this_cpu() && super::thread::current().is_some(),
        "without_kernel_lock outside a kernel-lock thread"
    );
    debug_assert_eq!(
        cairn_sync::lockdep::held_count(),
        usize::from(cairn_sync::lockdep::ENABLED),
        "without_kernel_lock with a spinlock held"
    );
    release_kernel_lock_held();
    let r = f();
    acquire_kernel_lock_unguarded();
    r
}

/// Releases the kernel lock this CPU took without a guard (a thread on its
/// way back to user mode) and wakes whoever waits for it.
pub fn release_kernel_lock_held() {
    KERNEL_LOCK.release_held();
    wake_kernel_lock_waiters();
}
