//! The kernel lock: one fair (ticket) spinlock owned by a CPU, under which
//! syscalls, runqueue work and kernel threads run.
//!
//! A CPU's run loop queues for it with a ticket after draining the bhqueue
//! (and keeps draining while it waits its turn), and releases it before
//! idling or entering user mode. A kernel thread runs under the lock
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
    /// Acquisitions (or tries) that found the lock taken.
    contended: AtomicU32,
}

/// A place in the kernel lock's queue, taken by a run loop that wants the
/// lock but must keep draining the bhqueue while it waits (see
/// [`KernelLock::take_ticket`]).
#[must_use = "a ticket must be redeemed: the lock is handed to it in turn"]
pub struct Ticket {
    number: u32,
    site: &'static Location<'static>,
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
        if self
            .next_ticket
            .compare_exchange(
                serving,
                serving.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            self.contended.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.owner.store(cpu().id(), Ordering::Relaxed);
        lockdep::acquired(&KERNEL_LOCK_CLASS, Location::caller());
        Some(KernelLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the lock without a guard, for a thread coming in from user mode
    /// (syscall, fault, preemption): the thread will either release it with
    /// [`KernelLock::release_held`] on its way back to user mode or switch to
    /// its CPU's run loop still holding it, where the run loop's guard
    /// releases it.
    #[track_caller]
    pub fn acquire_unguarded(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases the lock this CPU holds without dropping the guard that took
    /// it: a thread about to enter user mode under a run-loop guard. The
    /// thread must take it back ([`KernelLock::acquire_unguarded`]) before it
    /// returns to the run loop.
    pub fn release_held(&self) {
        assert!(
            self.held_by_this_cpu(),
            "release_held by CPU {} which does not hold the kernel lock",
            cpu().id()
        );
        drop(KernelLockGuard {
            lock: self,
            _not_send: PhantomData,
        });
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

    /// Queues for the lock without waiting: the lock is handed over in
    /// ticket order, and [`KernelLock::redeem`] takes it once it is this
    /// ticket's turn. Between tries the caller does other work (the run loop
    /// drains the bhqueue), which a plain `lock` could not.
    #[track_caller]
    pub fn take_ticket(&self) -> Ticket {
        let site = Location::caller();
        self.assert_context();
        lockdep::before_acquire(&KERNEL_LOCK_CLASS, site, cpu().interrupts_enabled());
        let number = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if self.now_serving.load(Ordering::Acquire) != number {
            self.contended.fetch_add(1, Ordering::Relaxed);
        }
        Ticket { number, site }
    }

    /// Takes the lock if it is `ticket`'s turn; otherwise hands the ticket
    /// back to try again.
    pub fn redeem(&self, ticket: Ticket) -> Result<KernelLockGuard<'_>, Ticket> {
        if self.now_serving.load(Ordering::Acquire) != ticket.number {
            return Err(ticket);
        }
        self.owner.store(cpu().id(), Ordering::Relaxed);
        lockdep::acquired(&KERNEL_LOCK_CLASS, ticket.site);
        Ok(KernelLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether it is `ticket`'s turn (so [`KernelLock::redeem`] succeeds).
    pub fn is_turn(&self, ticket: &Ticket) -> bool {
        self.now_serving.load(Ordering::Acquire) == ticket.number
    }

    /// Whether any CPU holds a ticket not yet served (after a release: the
    /// releaser then wakes halted waiters).
    pub fn has_waiters(&self) -> bool {
        self.next_ticket.load(Ordering::Relaxed) != self.now_serving.load(Ordering::Relaxed)
    }

    /// Whether another CPU is queued for the lock: the holder's run loop
    /// then hands it over between work items.
    pub fn wanted(&self) -> bool {
        let queued = self
            .next_ticket
            .load(Ordering::Relaxed)
            .wrapping_sub(self.now_serving.load(Ordering::Relaxed));
        queued > 1
    }

    /// (next ticket, ticket being served, owner) for debug dumps.
    pub fn debug_state(&self) -> (u32, u32, Option<usize>) {
        (
            self.next_ticket.load(Ordering::Relaxed),
            self.now_serving.load(Ordering::Relaxed),
            self.owner(),
        )
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
