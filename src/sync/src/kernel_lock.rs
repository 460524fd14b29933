//! The kernel lock: one fair (ticket) spinlock owned by a CPU, under which
//! syscalls, runqueue work and kernel threads run.
//!
//! A CPU's run loop takes it after draining the bhqueue and releases it
//! before idling or entering user mode. A kernel thread runs under the lock
//! of the CPU that resumed it and never owns a guard itself: when it blocks,
//! it switches back to the run loop, which releases the lock
//! ([`crate::handoff`]). The owner is recorded, so "does this CPU hold the
//! kernel lock" is one load; heaps and the context query rely on it.
//!
//! Never taken in irq or bh context (asserted); it is the outermost lock
//! (class `kernel`), taken with interrupts enabled.

use crate::class::LockClass;
use crate::cpu::cpu;
use crate::lockdep;
use crate::primitives::{AtomicU32, AtomicUsize, Ordering, spin_loop};
use core::marker::PhantomData;
use core::panic::Location;

/// The validator's class for the kernel lock.
pub static KERNEL_LOCK_CLASS: LockClass = LockClass::new("kernel");

const NO_OWNER: usize = usize::MAX;

/// The fair, CPU-owned big kernel lock.
pub struct KernelLock {
    next_ticket: AtomicU32,
    now_serving: AtomicU32,
    owner: AtomicUsize,
    /// Acquisitions that found the lock taken (a contention figure).
    contended: AtomicU32,
}

/// Proof that this CPU holds the kernel lock; releases it when dropped.
pub struct KernelLockGuard<'a> {
    lock: &'a KernelLock,
    _not_send: PhantomData<*mut ()>,
}

impl KernelLock {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        KernelLock {
            next_ticket: AtomicU32::new(0),
            now_serving: AtomicU32::new(0),
            owner: AtomicUsize::new(NO_OWNER),
            contended: AtomicU32::new(0),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        KernelLock {
            next_ticket: AtomicU32::new(0),
            now_serving: AtomicU32::new(0),
            owner: AtomicUsize::new(NO_OWNER),
            contended: AtomicU32::new(0),
        }
    }

    fn assert_context(&self) {
        let ctx = cpu().context();
        assert!(
            !ctx.is_irq_or_bh(),
            "kernel lock taken in {ctx:?} context (irq and bh code must never take it)"
        );
        assert!(
            !self.held_by_this_cpu(),
            "kernel lock taken by CPU {} which already holds it",
            cpu().id()
        );
    }

    /// Takes the lock in ticket order.
    #[track_caller]
    pub fn lock(&self) -> KernelLockGuard<'_> {
        let site = Location::caller();
        self.assert_context();
        lockdep::before_acquire(&KERNEL_LOCK_CLASS, site, cpu().interrupts_enabled());
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if self.now_serving.load(Ordering::Acquire) != ticket {
            self.contended.fetch_add(1, Ordering::Relaxed);
            while self.now_serving.load(Ordering::Acquire) != ticket {
                spin_loop();
            }
        }
        self.owner.store(cpu().id(), Ordering::Relaxed);
        lockdep::acquired(&KERNEL_LOCK_CLASS, site);
        KernelLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock only if nobody holds or waits for it.
    #[track_caller]
    pub fn try_lock(&self) -> Option<KernelLockGuard<'_>> {
        self.assert_context();
        let serving = self.now_serving.load(Ordering::Relaxed);
        self.next_ticket
            .compare_exchange(
                serving,
                serving.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        self.owner.store(cpu().id(), Ordering::Relaxed);
        lockdep::acquired(&KERNEL_LOCK_CLASS, Location::caller());
        Some(KernelLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether the calling CPU holds the lock.
    pub fn held_by_this_cpu(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == cpu().id()
    }

    /// The CPU holding the lock, if any (a snapshot).
    pub fn owner(&self) -> Option<usize> {
        match self.owner.load(Ordering::Relaxed) {
            NO_OWNER => None,
            cpu => Some(cpu),
        }
    }

    /// How many acquisitions had to wait.
    pub fn contended(&self) -> u32 {
        self.contended.load(Ordering::Relaxed)
    }
}

#[cfg(not(loom))]
impl Default for KernelLock {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KernelLockGuard<'_> {
    fn drop(&mut self) {
        lockdep::released(&KERNEL_LOCK_CLASS);
        self.lock.owner.store(NO_OWNER, Ordering::Relaxed);
        let next = self
            .lock
            .now_serving
            .load(Ordering::Relaxed)
            .wrapping_add(1);
        self.lock.now_serving.store(next, Ordering::Release);
    }
}
