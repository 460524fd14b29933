//! The two queue shapes the run loop uses, behind one small trait so that the
//! loom models can swap in a model-checkable queue.
//!
//! * [`crossbeam_queue::ArrayQueue`]: bounded, lock-free, never allocates
//!   after creation: the bhqueue (interrupt handlers enqueue into it).
//! * [`crossbeam_queue::SegQueue`]: unbounded, allocates blocks as it grows:
//!   the runqueue (enqueued from bh and kernel-lock context only).
//!
//! Under loom both are replaced by [`ModelQueue`], a loom mutex around a
//! `VecDeque`: crossbeam's own algorithms are crossbeam's to verify; the
//! models here check cairn's protocol around them.

use crossbeam_queue::{ArrayQueue, SegQueue};

/// A multi-producer multi-consumer FIFO.
pub trait WorkQueue<T>: Sync {
    /// Appends `item`, or hands it back if the queue is full.
    fn push(&self, item: T) -> Result<(), T>;
    /// Removes the oldest item.
    fn pop(&self) -> Option<T>;
    /// Number of items queued (a snapshot).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Send> WorkQueue<T> for ArrayQueue<T> {
    fn push(&self, item: T) -> Result<(), T> {
        ArrayQueue::push(self, item)
    }
    fn pop(&self) -> Option<T> {
        ArrayQueue::pop(self)
    }
    fn len(&self) -> usize {
        ArrayQueue::len(self)
    }
}

impl<T: Send> WorkQueue<T> for SegQueue<T> {
    fn push(&self, item: T) -> Result<(), T> {
        SegQueue::push(self, item);
        Ok(())
    }
    fn pop(&self) -> Option<T> {
        SegQueue::pop(self)
    }
    fn len(&self) -> usize {
        SegQueue::len(self)
    }
}

/// A bounded FIFO made of loom primitives, for model checking.
#[cfg(loom)]
pub struct ModelQueue<T> {
    items: loom::sync::Mutex<std::collections::VecDeque<T>>,
    capacity: usize,
}

#[cfg(loom)]
impl<T> ModelQueue<T> {
    pub fn new(capacity: usize) -> Self {
        ModelQueue {
            items: loom::sync::Mutex::new(std::collections::VecDeque::new()),
            capacity,
        }
    }
}

#[cfg(loom)]
impl<T: PartialEq> ModelQueue<T> {
    /// Whether `item` is queued (models assert where work is waiting).
    pub fn contains(&self, item: &T) -> bool {
        self.items.lock().unwrap().contains(item)
    }
}

#[cfg(loom)]
impl<T: Send> WorkQueue<T> for ModelQueue<T> {
    fn push(&self, item: T) -> Result<(), T> {
        let mut q = self.items.lock().unwrap();
        if q.len() == self.capacity {
            return Err(item);
        }
        q.push_back(item);
        Ok(())
    }
    fn pop(&self) -> Option<T> {
        self.items.lock().unwrap().pop_front()
    }
    fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
}
