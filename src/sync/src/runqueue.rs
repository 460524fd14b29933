//! The runqueue: unbounded FIFO of work that needs the kernel lock.
//!
//! Bh completions that belong to a syscall, woken threads and deferred kernel
//! work are pushed here and run by whichever CPU next holds the kernel lock.
//! It is unbounded (crossbeam's `SegQueue`) because its producers, bh code,
//! have no way to wait for room without risking a deadlock with the lock
//! holder; its blocks come from the heap of the pushing context (locked in
//! bh, general under the kernel lock) and are freed by pops under the kernel
//! lock, which may free either.
//!
//! Interrupt handlers never touch it (they use the bhqueue), but bh work run
//! at an interrupt's exit may push while the code it interrupted was inside
//! a push or pop on the same CPU. `SegQueue` is lock-free across CPUs but
//! not re-entrant on one (a push may wait for a block another push is
//! installing), so every push and pop runs with local interrupts off, as
//! the bhqueue's do.
//!
//! Push from bh or kernel-lock context; pop under the kernel lock.

use crate::primitives::{AtomicU64, Ordering};
use crate::queue::WorkQueue;
use crossbeam_queue::SegQueue;

/// The queue of kernel-lock work items `T`; `Q` is swapped only by loom models.
pub struct RunQueue<T, Q: WorkQueue<T> = SegQueue<T>> {
    queue: Q,
    enqueued: AtomicU64,
    _item: core::marker::PhantomData<fn(T) -> T>,
}

#[cfg(not(loom))]
impl<T: Send> RunQueue<T, SegQueue<T>> {
    pub const fn new() -> Self {
        RunQueue {
            queue: SegQueue::new(),
            enqueued: AtomicU64::new(0),
            _item: core::marker::PhantomData,
        }
    }
}

#[cfg(not(loom))]
impl<T: Send> Default for RunQueue<T, SegQueue<T>> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, Q: WorkQueue<T>> RunQueue<T, Q> {
    pub fn with_queue(queue: Q) -> Self {
        RunQueue {
            queue,
            enqueued: AtomicU64::new(0),
            _item: core::marker::PhantomData,
        }
    }

    /// Appends `item`.
    pub fn enqueue(&self, item: T) {
        if crate::bhqueue::with_irqs_off(|| self.queue.push(item)).is_err() {
            // Only the bounded loom model queue can refuse.
            panic!("runqueue refused an item");
        }
        self.enqueued.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the oldest item; the caller holds the kernel lock.
    pub fn dequeue(&self) -> Option<T> {
        crate::bhqueue::with_irqs_off(|| self.queue.pop())
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Items ever queued.
    pub fn enqueued(&self) -> u64 {
        self.enqueued.load(Ordering::Relaxed)
    }
}
