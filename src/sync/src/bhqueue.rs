//! The bhqueue: bounded, irq-safe MPMC queue of bottom-half work.
//!
//! Interrupt handlers do the minimum (acknowledge the device) and enqueue a
//! [`BhWork`]: a function pointer and a word, so that enqueueing never
//! allocates and an item owns nothing that could be freed in the wrong
//! context. Every CPU's run loop drains the queue in bh context, without the
//! kernel lock, with interrupts enabled between items.
//!
//! **Why both ends disable interrupts.** The queue is lock-free across CPUs,
//! but not re-entrant on one CPU: a push that finds a slot whose previous
//! item was claimed by a pop that has not yet published the slot waits for
//! that pop. If the pop were interrupted on the same CPU by a handler that
//! pushes, the handler would wait forever for code it interrupted. So every
//! push and pop runs with local interrupts off (only for the one operation).
//!
//! **A full queue is an error, never a silent drop.** `enqueue_irqsafe`
//! hands the item back and counts it; the run loop reports new failures on
//! the console. Producers are expected to coalesce (a device enqueues one
//! "service me" item while its pending flag is set, not one per request), so
//! the queue holds about one item per source and a full queue means a bug.
//!
//! Enqueue from any context; dequeue from bh context.

use crate::cpu::cpu;
use crate::primitives::{AtomicBool, AtomicU64, Ordering};
use crate::queue::WorkQueue;
use crossbeam_queue::ArrayQueue;

/// One item of bottom-half work: `run(arg)`.
#[derive(Copy, Clone)]
pub struct BhWork {
    pub run: fn(usize),
    pub arg: usize,
}

impl BhWork {
    pub const fn new(run: fn(usize), arg: usize) -> Self {
        BhWork { run, arg }
    }
}

impl core::fmt::Debug for BhWork {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BhWork({:p}, {:#x})", self.run as *const (), self.arg)
    }
}

/// The bhqueue was full; the work item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull(pub BhWork);

impl PartialEq for BhWork {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::fn_addr_eq(self.run, other.run) && self.arg == other.arg
    }
}
impl Eq for BhWork {}

/// The bounded bh work queue; `Q` is swapped only by loom models.
pub struct BhQueue<Q: WorkQueue<BhWork> = ArrayQueue<BhWork>> {
    queue: Q,
    enqueued: AtomicU64,
    full: AtomicU64,
    reported_full: AtomicU64,
}

impl BhQueue<ArrayQueue<BhWork>> {
    /// A queue of `capacity` items (allocated here, once).
    pub fn new(capacity: usize) -> Self {
        Self::with_queue(ArrayQueue::new(capacity))
    }
}

impl<Q: WorkQueue<BhWork>> BhQueue<Q> {
    pub fn with_queue(queue: Q) -> Self {
        BhQueue {
            queue,
            enqueued: AtomicU64::new(0),
            full: AtomicU64::new(0),
            reported_full: AtomicU64::new(0),
        }
    }

    /// Queues `work` with local interrupts off for the push. On a full queue
    /// the item comes back in the error and the failure is counted.
    #[must_use = "a full bhqueue must be handled: the work was not queued"]
    pub fn enqueue_irqsafe(&self, work: BhWork) -> Result<(), QueueFull> {
        let r = with_irqs_off(|| self.queue.push(work));
        match r {
            Ok(()) => {
                self.enqueued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(w) => {
                self.full.fetch_add(1, Ordering::Relaxed);
                Err(QueueFull(w))
            }
        }
    }

    /// Takes the oldest item (local interrupts off for the pop).
    pub fn dequeue(&self) -> Option<BhWork> {
        with_irqs_off(|| self.queue.pop())
    }

    /// Runs up to `budget` items on this CPU; returns how many ran. The
    /// caller (the run loop) has put the CPU in bh context.
    pub fn drain(&self, budget: usize) -> usize {
        let mut ran = 0;
        while ran < budget {
            let Some(w) = self.dequeue() else { break };
            (w.run)(w.arg);
            ran += 1;
        }
        ran
    }

    /// Runs queued work at the end of an interrupt, before returning to the
    /// code it interrupted (Linux's `irq_exit` → softirq), so that bh work
    /// runs within one interrupt of being queued even on a CPU that never
    /// returns to its run loop (user code spinning, a long kernel path).
    ///
    /// Call with interrupts off, irq depth back at zero, and `in_bh` this
    /// CPU's bh flag. If the flag is set the interrupt stopped a drain on
    /// this CPU, which will see the new work (its run loop re-checks the
    /// queue before it halts): nothing runs. Otherwise the CPU enters bh
    /// context, drains with interrupts on until the queue is empty or
    /// `budget` items ran, and returns with interrupts off and the flag
    /// clear. The emptiness check that ends the loop is made with
    /// interrupts off, so work queued by a later interrupt on this CPU is
    /// serviced at that interrupt's own exit; work queued elsewhere has its
    /// producer's exit or an idle CPU woken for it.
    ///
    /// The caller keeps everything else the interrupted code had: it runs
    /// this on a stack of its own and starts a nested lock-validator section.
    /// Returns how many items ran.
    pub fn service_at_irq_exit(&self, in_bh: &AtomicBool, budget: usize) -> usize {
        if in_bh.load(Ordering::Relaxed) {
            return 0;
        }
        let c = cpu();
        let mut ran = 0;
        while ran < budget && !self.is_empty() {
            in_bh.store(true, Ordering::Relaxed);
            c.enable_interrupts();
            ran += self.drain(budget - ran);
            c.disable_interrupts();
            in_bh.store(false, Ordering::Relaxed);
        }
        ran
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The underlying queue (models inspect it).
    #[cfg(loom)]
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Items ever queued.
    pub fn enqueued(&self) -> u64 {
        self.enqueued.load(Ordering::Relaxed)
    }

    /// Enqueues ever refused because the queue was full.
    pub fn full_count(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    /// Refusals since the last call that returned `Some`: the run loop prints
    /// them, so that each one is reported once.
    pub fn unreported_full(&self) -> Option<u64> {
        let now = self.full.load(Ordering::Relaxed);
        let before = self.reported_full.swap(now, Ordering::Relaxed);
        (now > before).then(|| now - before)
    }
}

/// Runs `f` with this CPU's interrupts off, restoring the flag after.
pub(crate) fn with_irqs_off<R>(f: impl FnOnce() -> R) -> R {
    let c = cpu();
    let on = c.interrupts_enabled();
    if on {
        c.disable_interrupts();
    }
    let r = f();
    if on {
        c.enable_interrupts();
    }
    r
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::vec::Vec;

    static RAN: AtomicUsize = AtomicUsize::new(0);
    fn count(arg: usize) {
        RAN.fetch_add(arg, core::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn full_queue_is_refused_and_counted() {
        let q = BhQueue::new(2);
        let w = BhWork::new(count, 1);
        q.enqueue_irqsafe(w).unwrap();
        q.enqueue_irqsafe(w).unwrap();
        assert_eq!(q.enqueue_irqsafe(w), Err(QueueFull(w)));
        assert_eq!(q.full_count(), 1);
        assert_eq!(q.unreported_full(), Some(1));
        assert_eq!(q.unreported_full(), None);
        assert_eq!(q.enqueued(), 2);
    }

    #[test]
    fn enqueue_restores_interrupt_flag() {
        let q = BhQueue::new(1);
        let c = cpu();
        c.enable_interrupts();
        q.enqueue_irqsafe(BhWork::new(count, 0)).unwrap();
        assert!(c.interrupts_enabled());
        c.disable_interrupts();
        let _ = q.enqueue_irqsafe(BhWork::new(count, 0));
        assert!(!c.interrupts_enabled());
        c.enable_interrupts();
    }

    #[test]
    fn every_item_runs_once_across_threads() {
        static SEEN: [AtomicUsize; 4000] = [const { AtomicUsize::new(0) }; 4000];
        fn mark(i: usize) {
            SEEN[i].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        let q = Arc::new(BhQueue::new(64));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in (p * 2000)..(p * 2000 + 2000) {
                        let mut w = BhWork::new(mark, i);
                        while let Err(QueueFull(back)) = q.enqueue_irqsafe(w) {
                            w = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        // Consumers run until the producers are done and the queue is empty
        // (not for a count of empty rounds: on a loaded host the producers
        // may not run for a long while, and a full queue would then wait
        // forever for consumers that left).
        let producing = Arc::new(core::sync::atomic::AtomicBool::new(true));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (q, producing) = (q.clone(), producing.clone());
                std::thread::spawn(move || {
                    while producing.load(core::sync::atomic::Ordering::Acquire) || !q.is_empty() {
                        if q.drain(16) == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for t in producers {
            t.join().unwrap();
        }
        producing.store(false, core::sync::atomic::Ordering::Release);
        for t in consumers {
            t.join().unwrap();
        }
        q.drain(usize::MAX);
        for (i, s) in SEEN.iter().enumerate() {
            assert_eq!(s.load(core::sync::atomic::Ordering::Relaxed), 1, "item {i}");
        }
    }
}
