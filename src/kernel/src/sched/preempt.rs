//! Preemption of user threads: time slices, the decision to reschedule, and
//! wake-up preemption.
//!
//! A user thread runs until it blocks, exits, or is asked to give its CPU
//! up at its next return to user mode (`need_resched`, acted on by
//! [`super::exit`]). Two things ask, both without the kernel lock:
//!
//! * **The slice tick** (irq context). When the run loop resumes a thread it
//!   starts a slice of [`SLICE_NS`] ([`slice_started`]), one of the two
//!   deadlines of the CPU's local timer (`timer::program_local`). When it
//!   passes, [`slice_ended`] decides in the timer's interrupt: if anything
//!   waits for a CPU (runnable threads or kernel-lock work) the thread must
//!   yield; otherwise it gets another slice. The decision is never bh work,
//!   so it happens even when bh work is starved.
//! * **Wake-up preemption** (bh or kernel-lock context). When a thread is
//!   woken or work is queued and no CPU is idle, [`kick`] asks the CPU whose
//!   thread has run longest (at least [`WAKE_GRANULARITY_NS`]) to give it up
//!   now rather than at its slice's end, so a woken sleeper or I/O waiter
//!   runs within one slice, usually much sooner.
//!
//! A thread that yields goes to the back of the *expired* queue; woken
//! threads and kernel-lock work go to the runqueue, which the run loop
//! serves first ([`super::runloop`]). With more runnable threads than CPUs
//! they all progress round-robin, a slice each.
//!
//! Contexts: [`slice_ended`] irq; [`kick`] bh and kernel-lock; the slice
//! bookkeeping is the run loop's, under the kernel lock. No locks: per-CPU
//! atomics, each written by its own CPU except `need_resched`, which any
//! CPU may set (the IPI that follows makes the target look).

use crate::percpu::{cpus, this_cpu};
use core::sync::atomic::Ordering;

/// The time slice (quantum) of a user thread while others wait for a CPU.
pub const SLICE_NS: u64 = 10_000_000;

/// A thread that has run at least this long may be preempted for a thread
/// just woken; younger ones keep the CPU until their slice ends.
pub const WAKE_GRANULARITY_NS: u64 = 1_000_000;

/// Whether any thread or kernel-lock work waits for a CPU.
pub fn cpu_wanted() -> bool {
    !super::runqueue().is_empty() || !super::expired().is_empty()
}

/// The run loop is about to resume a thread on this CPU: start its slice.
/// Kernel-lock context, in the run loop.
pub fn slice_started() {
    let c = this_cpu();
    let now = crate::time::now_ns();
    c.need_resched.store(false, Ordering::Relaxed);
    c.slice_start_ns.store(now, Ordering::Relaxed);
    c.slice_deadline_ns.store(now + SLICE_NS, Ordering::Relaxed);
    crate::timer::program_local();
}

/// The thread left this CPU (blocked, yielded or exited): no slice runs.
/// The local timer keeps any heap deadline; a stale slice interrupt finds
/// nothing to do. Kernel-lock context, in the run loop.
pub fn slice_stopped() {
    let c = this_cpu();
    c.slice_start_ns.store(0, Ordering::Relaxed);
    c.slice_deadline_ns.store(0, Ordering::Relaxed);
}

/// The running thread's slice ended at `now` (irq context, from the local
/// timer's interrupt, which re-arms the timer afterwards).
pub fn slice_ended(now: u64) {
    let c = this_cpu();
    if c.slice_start_ns.load(Ordering::Relaxed) == 0 {
        c.slice_deadline_ns.store(0, Ordering::Relaxed);
        return;
    }
    if cpu_wanted() {
        // Yield at the next return to user mode; the next slice starts when
        // the thread is resumed.
        c.slice_deadline_ns.store(0, Ordering::Relaxed);
        c.need_resched.store(true, Ordering::Relaxed);
    } else {
        c.slice_deadline_ns.store(now + SLICE_NS, Ordering::Relaxed);
    }
}

/// Work was queued for a CPU and none is idle: ask the CPU whose thread has
/// run longest, if at least [`WAKE_GRANULARITY_NS`], to give it up now.
/// This CPU is a candidate like any other (bh work at an interrupt's exit
/// runs on top of a user thread). Bh and kernel-lock context.
pub fn kick() {
    let now = crate::time::now_ns();
    let me = this_cpu().index();
    let oldest = cpus()
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire) && !c.need_resched.load(Ordering::Relaxed))
        .filter_map(|c| {
            let start = c.slice_start_ns.load(Ordering::Relaxed);
            (start != 0 && now.saturating_sub(start) >= WAKE_GRANULARITY_NS).then_some((start, c))
        })
        .min_by_key(|&(start, _)| start);
    if let Some((_, c)) = oldest {
        c.need_resched.store(true, Ordering::Relaxed);
        if c.index() != me {
            cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::RESCHED);
        }
    }
}

/// The reschedule IPI's handler (irq context): `need_resched` is already
/// set; the interrupt's exit to user mode acts on it.
pub fn resched_interrupt(_: usize) {}

/// Takes this CPU's request to reschedule, if any (kernel-lock context or
/// interrupts off).
pub fn take_need_resched() -> bool {
    this_cpu().need_resched.swap(false, Ordering::Relaxed)
}
