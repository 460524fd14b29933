//! Wait queues: a kernel thread sleeps on one until a condition holds;
//! wakers (bh context, or kernel-lock context) wake its sleepers.
//!
//! The condition is checked under the queue's lock before the thread
//! enqueues itself, and wakers change the condition before taking the lock,
//! so a wake-up between the check and the sleep is never lost. The sleeper
//! releases the kernel lock while it sleeps (its CPU's run loop does,
//! after switching out).
//!
//! `wait_until`: kernel-lock context (a thread). `wake_*`: bh or
//! kernel-lock context. Lock: `sched.waitqueue` (IrqSpinLock), taken after
//! the kernel lock, before leaf locks.

use super::thread::{Thread, block_current, current};
use super::{Runnable, runqueue};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use cairn_sync::{IrqSpinLock, LockClass};

static WAITQUEUE_CLASS: LockClass = LockClass::new("sched.waitqueue");

pub struct WaitQueue {
    sleepers: IrqSpinLock<VecDeque<Arc<Thread>>>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue {
            sleepers: IrqSpinLock::new(&WAITQUEUE_CLASS, VecDeque::new()),
        }
    }

    /// Sleeps until `condition()` is true. `condition` runs under the queue's
    /// lock with interrupts off: it must be quick and take no lock.
    pub fn wait_until(&self, mut condition: impl FnMut() -> bool) {
        loop {
            let mut sleepers = self.sleepers.lock();
            if condition() {
                return;
            }
            let me = current().expect("wait_until outside a thread");
            me.switch.prepare_block();
            // The buffer grows here, under the kernel lock, but may be freed
            // in bh context (a wait queue inside an object whose last
            // reference a completion drops): allocate it bh-safe.
            cairn_sync::cpu::bh_safe_alloc(|| sleepers.push_back(me));
            drop(sleepers);
            block_current();
        }
    }

    /// Wakes every sleeper.
    pub fn wake_all(&self) {
        let mut woke = false;
        let mut sleepers = self.sleepers.lock();
        while let Some(t) = sleepers.pop_front() {
            if t.switch.wake() {
                runqueue().enqueue(Runnable::Thread(t));
                woke = true;
            }
        }
        drop(sleepers);
        if woke {
            super::runloop::wake_cpu_for_work();
        }
    }

    /// Wakes the longest sleeper, if any.
    pub fn wake_one(&self) {
        let t = self.sleepers.lock().pop_front();
        if let Some(t) = t
            && t.switch.wake()
        {
            runqueue().enqueue(Runnable::Thread(t));
            super::runloop::wake_cpu_for_work();
        }
    }

    pub fn has_sleepers(&self) -> bool {
        !self.sleepers.lock().is_empty()
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
