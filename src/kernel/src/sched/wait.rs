//! Event waits for system calls: readiness sources ([`Pollable`]), the
//! per-wait [`Waiter`] they wake, and the one **interruptible wait** every
//! blocking file operation goes through ([`wait_event`]): pipe and eventfd
//! reads and writes, timerfd reads, poll/select/epoll, `F_SETLKW` and
//! `flock`.
//!
//! A wait subscribes its [`Waiter`] to the sources it depends on, then
//! loops: *arm* the waiter (clear its wake flag), test the condition,
//! sleep until the waiter is woken, the deadline passes or the thread is
//! interrupted. A source's [`Pollable::notify`] runs after the state
//! change it announces, so a change between the test and the sleep finds
//! the flag set and the sleep returns at once: no wake-up is lost.
//!
//! **Signals (hook for the signal code).** A wait also ends, with
//! [`WaitError::Interrupted`], when [`signal_pending`] says the calling
//! thread has a signal to take; [`interrupt_thread`] wakes a thread that is
//! sleeping in a wait so it looks. Today no signal is ever pending (cairn
//! delivers none to handlers): the signal code makes `signal_pending` real
//! and calls `interrupt_thread` when it queues a signal; the callers turn
//! `Interrupted` into `EINTR` (or restart) as their syscall wants.
//!
//! **Contexts.** [`wait_event`]: kernel-lock context, in a thread (it
//! sleeps; the kernel lock is released meanwhile). [`Pollable::notify`]
//! and [`Waiter::wake`]: bh or kernel-lock context (timerfd expiry is bh).
//! Waiters and subscriber lists are allocated bh-safe: bh code may drop
//! their last reference.
//!
//! **Locks.** `wait.subscribers` (IrqSpinLock, one per source) →
//! `sched.waitqueue`; a notifier copies the subscriber list and releases
//! the lock before waking anyone. `wait.active` (kernel-lock only, a leaf)
//! maps threads to the waiter they sleep on.

use super::waitqueue::WaitQueue;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass, SpinLock};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static SUBSCRIBERS_CLASS: LockClass = LockClass::new("wait.subscribers");
static ACTIVE_CLASS: LockClass = LockClass::new("wait.active");

/// What one wait sleeps on: a flag set by its sources (or its deadline, or
/// an interruption) and the queue its thread sleeps in.
pub struct Waiter {
    woken: AtomicBool,
    timed_out: AtomicBool,
    interrupted: AtomicBool,
    queue: WaitQueue,
    /// A source to notify in turn when this waiter is woken (an epoll
    /// instance's own readiness, for a poll on the epoll descriptor).
    forward: Option<Weak<Pollable>>,
}

impl Waiter {
    /// A new waiter (bh-safe: a source may drop the last reference).
    pub fn new() -> Arc<Waiter> {
        Self::build(None)
    }

    /// A waiter that also notifies `to` whenever it is woken.
    pub fn forwarding(to: Weak<Pollable>) -> Arc<Waiter> {
        Self::build(Some(to))
    }

    fn build(forward: Option<Weak<Pollable>>) -> Arc<Waiter> {
        bh_safe_alloc(|| {
            Arc::new(Waiter {
                woken: AtomicBool::new(false),
                timed_out: AtomicBool::new(false),
                interrupted: AtomicBool::new(false),
                queue: WaitQueue::new(),
                forward,
            })
        })
    }

    /// Marks the waiter woken and wakes its thread (bh or kernel-lock).
    pub fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.queue.wake_all();
        if let Some(p) = self.forward.as_ref().and_then(Weak::upgrade) {
            p.notify();
        }
    }

    /// Clears the wake flag before the condition is tested again.
    pub fn arm(&self) {
        self.woken.store(false, Ordering::Release);
    }

    fn stop(&self) -> bool {
        self.woken.load(Ordering::Acquire)
            || self.timed_out.load(Ordering::Acquire)
            || self.interrupted.load(Ordering::Acquire)
    }
}

/// A readiness source: a pipe, an eventfd, a timerfd, an epoll instance,
/// the record-lock table. Waiters subscribe; state changes notify them.
pub struct Pollable {
    subscribers: IrqSpinLock<Vec<Weak<Waiter>>>,
    /// Bumped by every notification: edge-triggered epoll reports a source
    /// again only after it changed.
    generation: AtomicU64,
}

impl Default for Pollable {
    fn default() -> Self {
        Self::new()
    }
}

impl Pollable {
    pub const fn new() -> Self {
        Pollable {
            subscribers: IrqSpinLock::new(&SUBSCRIBERS_CLASS, Vec::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Subscribes `w` (until [`Pollable::unsubscribe`], or until `w` is
    /// dropped: dead entries are pruned here). Subscribing twice is once.
    pub fn subscribe(&self, w: &Arc<Waiter>) {
        let weak = Arc::downgrade(w);
        let p = Arc::as_ptr(w);
        bh_safe_alloc(|| {
            let mut s = self.subscribers.lock();
            s.retain(|x| x.strong_count() > 0);
            if !s.iter().any(|x| x.as_ptr() == p) {
                s.push(weak);
            }
        });
    }

    pub fn unsubscribe(&self, w: &Arc<Waiter>) {
        let p = Arc::as_ptr(w);
        bh_safe_alloc(|| {
            self.subscribers
                .lock()
                .retain(|x| x.strong_count() > 0 && x.as_ptr() != p)
        });
    }

    /// Announces a state change (after making it): wakes every subscriber.
    pub fn notify(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let live: Vec<Arc<Waiter>> = bh_safe_alloc(|| {
            self.subscribers
                .lock()
                .iter()
                .filter_map(Weak::upgrade)
                .collect()
        });
        for w in &live {
            w.wake();
        }
        bh_safe_alloc(|| drop(live));
    }

    /// Notifications so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Subscribes a waiter to a source for as long as it lives.
pub struct Subscription<'a> {
    source: &'a Pollable,
    waiter: Arc<Waiter>,
}

impl<'a> Subscription<'a> {
    pub fn new(source: &'a Pollable, waiter: &Arc<Waiter>) -> Self {
        source.subscribe(waiter);
        Subscription {
            source,
            waiter: waiter.clone(),
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        self.source.unsubscribe(&self.waiter);
    }
}

/// Why a wait ended without its condition.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// A signal is pending for the thread ([`signal_pending`]).
    Interrupted,
}

impl WaitError {
    /// The errno a syscall returns for it (`ETIMEDOUT` / `EINTR`).
    pub fn errno(self) -> cairn_unix::errno::Errno {
        match self {
            WaitError::TimedOut => cairn_unix::errno::Errno::ETIMEDOUT,
            WaitError::Interrupted => cairn_unix::errno::Errno::EINTR,
        }
    }
}

/// Whether the calling thread has a signal to take, which ends its
/// interruptible waits. The signal code replaces this body; until then no
/// signal is ever pending.
pub fn signal_pending() -> bool {
    false
}

/// Threads sleeping in [`wait_event`] (by kernel thread id), so that the
/// signal code can wake one.
static ACTIVE: SpinLock<BTreeMap<u64, Arc<Waiter>>> = SpinLock::new(&ACTIVE_CLASS, BTreeMap::new());

/// Wakes thread `thread_id` out of an interruptible wait, if it is in one,
/// so it checks [`signal_pending`] (kernel-lock context).
pub fn interrupt_thread(thread_id: u64) {
    let w = ACTIVE.lock().get(&thread_id).cloned();
    if let Some(w) = w {
        w.interrupted.store(true, Ordering::Release);
        w.queue.wake_all();
    }
}

/// Sleeps until `ready` returns a value, waking whenever one of `sources`
/// notifies (each wake re-runs `ready`), until the monotonic `deadline`
/// (`None`: no limit) or an interruption. `ready` runs with no lock held
/// and may take locks and copy user memory; its first call is immediate.
///
/// Kernel-lock context, in a thread.
pub fn wait_event<R>(
    sources: &[&Pollable],
    deadline: Option<u64>,
    mut ready: impl FnMut() -> Option<R>,
) -> Result<R, WaitError> {
    let w = Waiter::new();
    let _subs: Vec<Subscription<'_>> = sources.iter().map(|s| Subscription::new(s, &w)).collect();
    wait_with(&w, deadline, &mut ready)
}

/// [`wait_event`] with a waiter the caller has already subscribed
/// (epoll keeps one subscribed to every watched source).
pub fn wait_with<R>(
    w: &Arc<Waiter>,
    deadline: Option<u64>,
    ready: &mut dyn FnMut() -> Option<R>,
) -> Result<R, WaitError> {
    let me = super::thread::current().map(|t| t.id());
    let timer = deadline.map(|d| {
        let t = w.clone();
        crate::timer::after(d.saturating_sub(crate::time::now_ns()), move || {
            t.timed_out.store(true, Ordering::Release);
            t.queue.wake_all();
        })
    });
    if let Some(id) = me {
        ACTIVE.lock().insert(id, w.clone());
    }
    let r = loop {
        w.arm();
        // Cleared before `signal_pending` is asked: an interruption after
        // the question sets it again and the sleep below returns.
        w.interrupted.store(false, Ordering::Release);
        if let Some(v) = ready() {
            break Ok(v);
        }
        if deadline.is_some_and(|d| crate::time::now_ns() >= d)
            || w.timed_out.load(Ordering::Acquire)
        {
            break Err(WaitError::TimedOut);
        }
        if signal_pending() {
            break Err(WaitError::Interrupted);
        }
        w.queue.wait_until(|| w.stop());
    };
    if let Some(id) = me {
        ACTIVE.lock().remove(&id);
    }
    if let Some(id) = timer {
        crate::timer::cancel(id);
    }
    r
}

/// Sleeps until the monotonic `deadline` unless interrupted (nanosleep
/// with a pending signal).
pub fn sleep_until(deadline: u64) -> Result<(), WaitError> {
    match wait_event(&[], Some(deadline), || None::<()>) {
        Err(WaitError::TimedOut) => Ok(()),
        r => r,
    }
}
