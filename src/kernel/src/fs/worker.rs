//! Kernel-lock workers: a long-lived kernel thread that runs queued work in
//! order. The pagecache has one (its deferred kernel-lock work: syscall
//! continuations, and `mark_written` after a writeback); each volume has
//! one for its TFS log commits (`hooks::TfsMetadata`).
//!
//! Those closures call the filesystem's backing, which takes the `fs`
//! sleeping mutex; on the runqueue (no thread) a contended mutex could not
//! be waited for, so they run here, in a thread that may sleep.
//!
//! Work is queued from bh or kernel-lock context (allocated bh-safe: the
//! worker frees it); it runs in kernel-lock context. Uses a wait queue.

use crate::sched::waitqueue::WaitQueue;
use alloc::boxed::Box;
use crossbeam_queue::SegQueue;

type Work = Box<dyn FnOnce() + Send>;

pub struct Worker {
    queue: SegQueue<Work>,
    sleepers: WaitQueue,
}

impl Worker {
    /// Creates the worker and starts its thread (kernel-lock context).
    pub fn start(name: &'static str) -> &'static Worker {
        let w: &'static Worker = Box::leak(Box::new(Worker {
            queue: SegQueue::new(),
            sleepers: WaitQueue::new(),
        }));
        crate::sched::thread::spawn(name, move || {
            loop {
                w.sleepers.wait_until(|| !w.queue.is_empty());
                while let Some(work) = w.queue.pop() {
                    work();
                }
            }
        });
        w
    }

    /// Queues `work` (bh or kernel-lock context).
    pub fn defer(&self, work: Work) {
        cairn_sync::cpu::bh_safe_alloc(|| self.queue.push(work));
        self.sleepers.wake_all();
    }
}
