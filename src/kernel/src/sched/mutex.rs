//! A sleeping mutex for kernel threads: the holder may block (for I/O,
//! releasing the kernel lock) while others wanting it sleep instead of
//! spinning.
//!
//! Each has a [`LockClass`] and is tracked by the lock validator on the
//! holding *thread's* stack (the holder migrates between CPUs while it
//! sleeps): sleeping locks are ordered against each other and before every
//! spinlock, and taking one while holding a spinlock other than the kernel
//! lock panics (debug builds; `cairn_sync::lockdep::before_sleep_acquire`).
//! The global order is in docs/ARCHITECTURE.md. Never hold one across a copy
//! to or from user memory or a page fault that could need it (DESIGN.md §4).
//!
//! Kernel-lock context, in a thread (it may sleep); `try_lock_lockless`
//! also without the kernel lock. Uses a wait queue (`sched.waitqueue`)
//! internally.

use super::waitqueue::WaitQueue;
use cairn_sync::{LockClass, lockdep};
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

pub struct SleepMutex<T> {
    class: &'static LockClass,
    locked: AtomicBool,
    sleepers: WaitQueue,
    value: UnsafeCell<T>,
}

// SAFETY: `locked` admits one holder at a time (an atomic swap or
// compare-exchange takes it, and a release happens-before the next acquire
// through the atomic), so `value` is only ever reached through one guard.
unsafe impl<T: Send> Sync for SleepMutex<T> {}
// SAFETY: moving the mutex moves the `T` it owns.
unsafe impl<T: Send> Send for SleepMutex<T> {}

/// A [`SleepMutex`] held by code running without the kernel lock
/// ([`SleepMutex::try_lock_lockless`]).
pub struct LocklessGuard<'a, T> {
    mutex: &'a SleepMutex<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for LocklessGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: see `impl Sync`: this guard is the only access.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> Drop for LocklessGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.locked.store(false, Ordering::Release);
        self.mutex.sleepers.wake_all();
    }
}

pub struct SleepMutexGuard<'a, T> {
    mutex: &'a SleepMutex<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> SleepMutex<T> {
    pub const fn new(class: &'static LockClass, value: T) -> Self {
        SleepMutex {
            class,
            locked: AtomicBool::new(false),
            sleepers: WaitQueue::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the mutex, sleeping while another thread holds it.
    #[track_caller]
    pub fn lock(&self) -> SleepMutexGuard<'_, T> {
        assert_eq!(
            crate::context::current(),
            cairn_sync::Context::KernelLock,
            "sleeping mutex `{}` taken outside kernel-lock context",
            self.class.name()
        );
        let site = core::panic::Location::caller();
        super::thread::with_current_sleep_locks(|held| {
            lockdep::before_sleep_acquire(self.class, site, held)
        });
        while self.locked.swap(true, Ordering::Acquire) {
            self.sleepers
                .wait_until(|| !self.locked.load(Ordering::Acquire));
        }
        super::thread::with_current_sleep_locks(|held| {
            lockdep::sleep_acquired(self.class, site, held)
        });
        SleepMutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the mutex if it is free, for code that runs without the
    /// kernel lock and may not sleep (`syscall::lockless`): `None` if
    /// another thread holds it. The guard's release wakes sleepers as
    /// usual (waking is bh-safe). Not tracked by the validator: a try never
    /// waits, so it adds no order, and the caller takes no sleeping lock
    /// while holding it.
    pub fn try_lock_lockless(&self) -> Option<LocklessGuard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(LocklessGuard {
            mutex: self,
            _not_send: PhantomData,
        })
    }

    /// Whether some thread holds it (a hint).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

impl<T> Deref for SleepMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: see `impl Sync`: this guard is the only access.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for SleepMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: see `impl Sync`: this guard is the only access.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for SleepMutexGuard<'_, T> {
    fn drop(&mut self) {
        super::thread::with_current_sleep_locks(|held| {
            lockdep::sleep_released(self.mutex.class, held)
        });
        self.mutex.locked.store(false, Ordering::Release);
        self.mutex.sleepers.wake_all();
    }
}
