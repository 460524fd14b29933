//! The one completion → sleep waiter: a [`OneShot`] carries one value from
//! whatever completes an operation (a block request's completion in bh
//! context, a pagecache completion, a timer) to the thread that sleeps
//! until it arrives. Block I/O waits ([`crate::block::wait_io`]),
//! pagecache waits ([`crate::fs::wait_for`]) and [`super::sleep`] are
//! built on it.
//!
//! Owns the slot (a done flag, the value, a wait queue); does not own what
//! delivers into it.
//!
//! **Contexts.** [`OneShot::deliver`], [`OneShot::peek`],
//! [`OneShot::is_done`]: bh or kernel-lock context. [`OneShot::wait`]:
//! kernel-lock context in a thread (it sleeps; the kernel lock is released
//! meanwhile). The slot is allocated bh-safe: the delivering side may drop
//! the last reference in bh context.
//!
//! **Locks.** `sched.oneshot` (IrqSpinLock, a leaf, held only to move the
//! value in or out), then `sched.waitqueue` to wake the sleeper; never both
//! at once.

use super::waitqueue::WaitQueue;
use alloc::sync::Arc;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicBool, Ordering};

static ONESHOT_CLASS: LockClass = LockClass::new("sched.oneshot");

struct Slot<T> {
    done: AtomicBool,
    value: IrqSpinLock<Option<T>>,
    sleepers: WaitQueue,
}

/// A value delivered once, waited for by a thread. Handles made with
/// [`OneShot::handle`] share the slot: one goes to the delivering side.
pub struct OneShot<T>(Arc<Slot<T>>);

impl<T: Send + 'static> OneShot<T> {
    /// A new, empty slot (bh-safe allocation).
    pub fn new() -> Self {
        OneShot(bh_safe_alloc(|| {
            Arc::new(Slot {
                done: AtomicBool::new(false),
                value: IrqSpinLock::new(&ONESHOT_CLASS, None),
                sleepers: WaitQueue::new(),
            })
        }))
    }

    /// Another handle to the same slot (for the delivering side).
    pub fn handle(&self) -> OneShot<T> {
        OneShot(self.0.clone())
    }

    /// Delivers the value and wakes the sleeper (bh or kernel-lock). A
    /// second delivery replaces a value not yet taken.
    pub fn deliver(&self, v: T) {
        *self.0.value.lock() = Some(v);
        self.0.done.store(true, Ordering::Release);
        self.0.sleepers.wake_all();
    }

    /// A completion closure that delivers here (for the block layer's
    /// requests and other callback-style completions).
    pub fn completion(&self) -> impl FnOnce(T) + Send + 'static + use<T> {
        let h = self.handle();
        move |v| h.deliver(v)
    }

    /// Whether the value has been delivered.
    pub fn is_done(&self) -> bool {
        self.0.done.load(Ordering::Acquire)
    }

    /// The delivered value, without waiting or taking it.
    pub fn peek(&self) -> Option<T>
    where
        T: Copy,
    {
        if self.is_done() {
            *self.0.value.lock()
        } else {
            None
        }
    }

    /// Sleeps until the value arrives and takes it (kernel-lock context, in
    /// a thread).
    pub fn wait(self) -> T {
        self.0.sleepers.wait_until(|| self.is_done());
        let v = self.0.value.lock().take();
        v.expect("a completed OneShot holds its value")
    }
}

impl<T: Send + 'static> Default for OneShot<T> {
    fn default() -> Self {
        Self::new()
    }
}
