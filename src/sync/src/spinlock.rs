//! Classed spinlocks.
//!
//! * [`SpinLock`] leaves interrupts as they are. Use it only for data never
//!   touched in irq or bh context; the validator enforces that.
//! * [`IrqSpinLock`] saves the interrupt flag, disables interrupts for as
//!   long as the guard lives and restores the flag on release. Anything
//!   shared with bh or irq context uses this one.
//!
//! Both are test-and-test-and-set locks with a `&'static LockClass`; in debug
//! builds every acquisition goes through the validator ([`crate::lockdep`])
//! with its call site (`#[track_caller]`). Never hold either across a wait for
//! I/O or a copy to or from user memory (DESIGN.md §4, rules 1 and 2).
//!
//! Callable from any context (irq and bh: `IrqSpinLock` only).

use crate::class::LockClass;
use crate::cpu::cpu;
use crate::lockdep;
use crate::primitives::{AtomicBool, Ordering, spin_loop};
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::panic::Location;

/// The raw test-and-test-and-set lock both kinds share.
struct RawSpin {
    locked: AtomicBool,
}

impl RawSpin {
    #[cfg(not(loom))]
    const fn new() -> Self {
        RawSpin {
            locked: AtomicBool::new(false),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        RawSpin {
            locked: AtomicBool::new(false),
        }
    }

    fn lock(&self) {
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
    }

    fn try_lock(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

/// A spinlock that leaves interrupts alone.
pub struct SpinLock<T: ?Sized> {
    class: &'static LockClass,
    raw: RawSpin,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`, so sharing the lock
// between threads only ever hands out one `&mut T` at a time; `T: Send` is
// needed because that access may happen on any thread.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

/// Proof that a [`SpinLock`] is held; releases it when dropped. Not `Send`:
/// a lock is released on the CPU that took it.
pub struct SpinLockGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> SpinLock<T> {
    #[cfg(not(loom))]
    pub const fn new(class: &'static LockClass, value: T) -> Self {
        SpinLock {
            class,
            raw: RawSpin::new(),
            value: UnsafeCell::new(value),
        }
    }

    #[cfg(loom)]
    pub fn new(class: &'static LockClass, value: T) -> Self {
        SpinLock {
            class,
            raw: RawSpin::new(),
            value: UnsafeCell::new(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Spins until the lock is free, then takes it.
    #[track_caller]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let site = Location::caller();
        lockdep::before_acquire(self.class, site, cpu().interrupts_enabled());
        self.raw.lock();
        lockdep::acquired(self.class, site);
        SpinLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock if it is free. A try never deadlocks, so it records no
    /// order; it is still checked for irq safety.
    #[track_caller]
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        if !self.raw.try_lock() {
            return None;
        }
        let site = Location::caller();
        lockdep::acquired(self.class, site);
        Some(SpinLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether some CPU holds the lock right now (a hint only).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    pub fn class(&self) -> &'static LockClass {
        self.class
    }

    /// Exclusive access without locking, through `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while `raw` is held by this CPU, so
        // no other reference to `value` is live.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access
        // through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        lockdep::released(self.lock.class);
        self.lock.raw.unlock();
    }
}

/// A spinlock that keeps interrupts off on its CPU while held.
pub struct IrqSpinLock<T: ?Sized> {
    inner: SpinLock<T>,
}

/// Proof that an [`IrqSpinLock`] is held. Dropping it releases the lock and
/// then restores the interrupt flag saved at acquisition.
pub struct IrqSpinLockGuard<'a, T: ?Sized> {
    guard: core::mem::ManuallyDrop<SpinLockGuard<'a, T>>,
    irqs_were_on: bool,
}

impl<T> IrqSpinLock<T> {
    #[cfg(not(loom))]
    pub const fn new(class: &'static LockClass, value: T) -> Self {
        IrqSpinLock {
            inner: SpinLock::new(class, value),
        }
    }

    #[cfg(loom)]
    pub fn new(class: &'static LockClass, value: T) -> Self {
        IrqSpinLock {
            inner: SpinLock::new(class, value),
        }
    }

    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> IrqSpinLock<T> {
    /// Disables interrupts, then spins until the lock is free and takes it.
    #[track_caller]
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let site = Location::caller();
        let c = cpu();
        let irqs_were_on = c.interrupts_enabled();
        c.disable_interrupts();
        lockdep::before_acquire(self.inner.class, site, false);
        self.inner.raw.lock();
        lockdep::acquired(self.inner.class, site);
        IrqSpinLockGuard {
            guard: core::mem::ManuallyDrop::new(SpinLockGuard {
                lock: &self.inner,
                _not_send: PhantomData,
            }),
            irqs_were_on,
        }
    }

    /// Takes the lock if it is free, with interrupts off while held.
    #[track_caller]
    pub fn try_lock(&self) -> Option<IrqSpinLockGuard<'_, T>> {
        let site = Location::caller();
        let c = cpu();
        let irqs_were_on = c.interrupts_enabled();
        c.disable_interrupts();
        if !self.inner.raw.try_lock() {
            if irqs_were_on {
                c.enable_interrupts();
            }
            return None;
        }
        lockdep::acquired(self.inner.class, site);
        Some(IrqSpinLockGuard {
            guard: core::mem::ManuallyDrop::new(SpinLockGuard {
                lock: &self.inner,
                _not_send: PhantomData,
            }),
            irqs_were_on,
        })
    }

    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    pub fn class(&self) -> &'static LockClass {
        self.inner.class
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for IrqSpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `guard` is dropped exactly once, here, and never used after.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        if self.irqs_were_on {
            cpu().enable_interrupts();
        }
    }
}
