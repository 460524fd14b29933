//! Kernel timers: one-shot and periodic callbacks at a monotonic deadline.
//!
//! All pending timers sit in one deadline-ordered heap. Any CPU that adds
//! an earlier deadline arms its own local APIC timer for it; when a local
//! timer fires, its handler (irq) queues the timer service on the bhqueue
//! (once: a pending flag coalesces), and the service (bh) runs every
//! expired callback without the lock, re-queues periodic ones and arms the
//! CPU it runs on for the next deadline. So at every moment some CPU's
//! timer is armed for the earliest deadline; stale arms only cause an
//! empty service run.
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

/// Runs `f` every `period_ns` (first time one period from now), in bh
/// context, until cancelled.
pub fn every(period_ns: u64, f: impl FnMut() + Send + 'static) -> TimerId {
    let period = period_ns.max(1);
    add(period, bh_safe_alloc(|| Action::Every(period, Box::new(f))))
}

fn add(after_ns: u64, action: Action) -> TimerId {
    let id = TimerId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let deadline = crate::time::now_ns() + after_ns;
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

/// Arms this CPU's APIC timer for `deadline`.
fn arm(deadline: u64) {
    let now = crate::time::now_ns();
    if deadline <= now {
        request_service();
    } else {
        cairn_pc::apic::timer_oneshot(
            crate::irq::TIMER,
            crate::time::ns_to_apic_ticks(deadline - now),
        );
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

/// The local APIC timer's handler (irq context).
pub fn interrupt(_: usize) {
    request_service();
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
                e.deadline = e.deadline.max(now) + period;
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
