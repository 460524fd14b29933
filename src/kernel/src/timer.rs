//! Kernel timers: one-shot and periodic callbacks at a monotonic deadline.
//!
//! All pending timers sit in one deadline-ordered heap. Any CPU that adds
//! an earlier deadline arms its own local APIC timer for it; when a local
//! timer fires, its handler (irq) queues the timer service on the bhqueue
//! (once: a pending flag coalesces), and the service (bh) runs every
//! expired callback without the lock, in deadline order, re-queues periodic
//! ones and arms the CPU it runs on for the next deadline. So at every
//! moment some CPU's timer is armed for the earliest deadline; stale arms
//! only cause an empty service run. A callback never runs before its
//! deadline (the service checks the clock, whatever the APIC did), and bh
//! service at interrupt exit runs the service within the interrupt that
//! queued it even when every CPU is busy in user mode.
//!
//! Each CPU's one local APIC timer serves two deadlines, kept per CPU: the
//! heap's (above) and the running thread's time slice (`sched::preempt`),
//! and a third when the sampling profiler is on (`profile`).
//! [`program_local`] arms it for the earliest; the interrupt handler checks
//! each against the clock.
//!
//! Callbacks run in bh context. Adding and cancelling: any context but irq.
//! Every allocation here is made in a bh-safe scope, since the service
//! frees fired callbacks in bh context.
//!
//! Lock: `timers` (IrqSpinLock), a leaf: never held while a callback runs.

use crate::sched::schedule_bh;
use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{BhWork, IrqSpinLock, LockClass};
use core::cmp::Reverse;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Identifies a timer for [`cancel`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(u64);

enum Action {
    Once(Box<dyn FnOnce() + Send>),
    Every(u64, Box<dyn FnMut() + Send>),
}

struct Entry {
    deadline: u64,
    id: TimerId,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.deadline, self.id) == (o.deadline, o.id)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        (self.deadline, self.id).cmp(&(o.deadline, o.id))
    }
}

static TIMERS_CLASS: LockClass = LockClass::new("timers");
static TIMERS: IrqSpinLock<BinaryHeap<Reverse<Entry>>> =
    IrqSpinLock::new(&TIMERS_CLASS, BinaryHeap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static SERVICE_PENDING: AtomicBool = AtomicBool::new(false);
/// One CPU at a time runs the service, so callbacks run in deadline order;
/// a service requested meanwhile sets `SERVICE_AGAIN` for the runner.
static SERVICE_RUNNING: AtomicBool = AtomicBool::new(false);
static SERVICE_AGAIN: AtomicBool = AtomicBool::new(false);
/// Callbacks run, for tests and the debug dump.
static FIRED: AtomicU64 = AtomicU64::new(0);

/// Runs `f` once, in bh context, no earlier than `after_ns` from now.
pub fn after(after_ns: u64, f: impl FnOnce() + Send + 'static) -> TimerId {
    add(after_ns, bh_safe_alloc(|| Action::Once(Box::new(f))))
}

/// Runs `f` once, in bh context, no earlier than the monotonic time
/// `deadline_ns` ([`crate::time::now_ns`]); at once (in bh) if it passed.
pub fn at(deadline_ns: u64, f: impl FnOnce() + Send + 'static) -> TimerId {
    let id = TimerId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    insert(Entry {
        deadline: deadline_ns,
        id,
        action: bh_safe_alloc(|| Action::Once(Box::new(f))),
    });
    id
}

/// Runs `f` every `period_ns` (first time one period from now), in bh
/// context, until cancelled.
pub fn every(period_ns: u64, f: impl FnMut() + Send + 'static) -> TimerId {
    let period = period_ns.max(1);
    add(period, bh_safe_alloc(|| Action::Every(period, Box::new(f))))
}

fn add(after_ns: u64, action: Action) -> TimerId {
    let id = TimerId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    // Saturating: a program may ask for a time no clock reaches (a
    // timerfd armed for `i64::MAX` seconds panicked here, fuzz seed 2).
    let deadline = crate::time::now_ns().saturating_add(after_ns);
    insert(Entry {
        deadline,
        id,
        action,
    });
    id
}

fn insert(e: Entry) {
    let deadline = e.deadline;
    let earliest = bh_safe_alloc(|| {
        let mut t = TIMERS.lock();
        t.push(Reverse(e));
        t.peek().map(|r| r.0.deadline)
    });
    if earliest == Some(deadline) {
        arm(deadline);
    }
}

/// Cancels a pending timer; false if it already fired (a one-shot) or is
/// unknown. A periodic timer whose callback is running stops after it.
pub fn cancel(id: TimerId) -> bool {
    // The removed callback was allocated bh-safe, so it may be freed here
    // whatever the context (the heap locks are leaves below `timers`).
    let mut t = TIMERS.lock();
    let before = t.len();
    t.retain(|e| e.0.id != id);
    before != t.len()
}

/// Arms this CPU's local timer for the heap's `deadline` (or queues the
/// service at once if it passed).
fn arm(deadline: u64) {
    if deadline <= crate::time::now_ns() {
        request_service();
        return;
    }
    crate::percpu::this_cpu()
        .timer_deadline_ns
        .store(deadline, Ordering::Relaxed);
    program_local();
}

/// Arms this CPU's local APIC timer for the earlier of its two deadlines
/// (the heap's and the time slice's), or stops it if it has neither. Any
/// context; runs with interrupts off so the interrupt handler, which also
/// reprograms, cannot interleave.
pub fn program_local() {
    let on = cairn_pc::cpu::interrupts_enabled();
    cairn_pc::cpu::disable_interrupts();
    let c = crate::percpu::this_cpu();
    let deadline = [
        c.timer_deadline_ns.load(Ordering::Relaxed),
        c.slice_deadline_ns.load(Ordering::Relaxed),
        crate::profile::local_deadline(),
    ]
    .into_iter()
    .filter(|&d| d != 0)
    .min();
    match deadline {
        None => cairn_pc::apic::timer_stop(),
        Some(d) => {
            let now = crate::time::now_ns();
            // A passed deadline fires after one APIC tick.
            cairn_pc::apic::timer_oneshot(
                crate::irq::TIMER,
                crate::time::ns_to_apic_ticks(d.saturating_sub(now)),
            );
        }
    }
    if on {
        cairn_pc::cpu::enable_interrupts();
    }
}

fn request_service() {
    if !SERVICE_PENDING.swap(true, Ordering::AcqRel)
        && schedule_bh(BhWork::new(service, 0)).is_err()
    {
        // Reported by the run loop; let the next interrupt try again.
        SERVICE_PENDING.store(false, Ordering::Release);
    }
}

/// The local APIC timer's handler (irq context): queues the timer service
/// if this CPU's heap deadline passed, ends the time slice if that passed
/// (the preemption decision is made here, in irq context, never as bh
/// work), then re-arms for whatever remains. An early or stale interrupt
/// only re-arms.
pub fn interrupt(_: usize) {
    let c = crate::percpu::this_cpu();
    let now = crate::time::now_ns();
    let heap = c.timer_deadline_ns.load(Ordering::Relaxed);
    if heap != 0 && heap <= now {
        c.timer_deadline_ns.store(0, Ordering::Relaxed);
        request_service();
    }
    let slice = c.slice_deadline_ns.load(Ordering::Relaxed);
    if slice != 0 && slice <= now {
        crate::sched::preempt::slice_ended(now);
    }
    program_local();
}

/// Runs expired timers (bh context), one CPU at a time.
fn service(_: usize) {
    SERVICE_PENDING.store(false, Ordering::Release);
    SERVICE_AGAIN.store(true, Ordering::Release);
    while SERVICE_AGAIN.load(Ordering::Acquire) {
        if SERVICE_RUNNING.swap(true, Ordering::AcqRel) {
            return; // the running service will see SERVICE_AGAIN
        }
        SERVICE_AGAIN.store(false, Ordering::Release);
        run_expired();
        SERVICE_RUNNING.store(false, Ordering::Release);
    }
}

fn run_expired() {
    loop {
        let now = crate::time::now_ns();
        let next = {
            let mut t = TIMERS.lock();
            match t.peek() {
                Some(e) if e.0.deadline <= now => t.pop().map(|r| r.0),
                _ => None,
            }
        };
        let Some(mut e) = next else { break };
        FIRED.fetch_add(1, Ordering::Relaxed);
        match e.action {
            Action::Once(f) => f(),
            Action::Every(period, ref mut f) => {
                f();
                e.deadline = e.deadline.max(now).saturating_add(period);
                insert(e);
            }
        }
    }
    let next = TIMERS.lock().peek().map(|e| e.0.deadline);
    if let Some(d) = next {
        arm(d);
    }
}

/// Callbacks run since boot.
pub fn fired() -> u64 {
    FIRED.load(Ordering::Relaxed)
}
