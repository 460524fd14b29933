//! Signals: per-thread masks, pending queues and alternate stacks, sending
//! (to a thread or to the process), and delivery to handlers through a
//! frame on the user stack at the thread's return to user mode.
//!
//! | module | owns |
//! |---|---|
//! | here | [`ThreadSignals`], the questions other code asks (is a signal pending for this thread) |
//! | [`send`] | queueing a signal and waking its target (interruptible waits, futexes, a CPU running it) |
//! | [`deliver`] | choosing the next signal at return to user mode: ignore, end the program, or build a handler frame; `rt_sigreturn`; syscall restarts |
//! | [`frame`] | the syscall and trap register frames seen as one user context |
//! | [`timers`] | `alarm`, `setitimer(ITIMER_REAL)` and POSIX timers (`timer_create` ...) |
//!
//! **When a signal runs.** Only on the way back to user mode, under the
//! kernel lock and with no other lock held: a handler never runs while its
//! thread holds a kernel lock or a spinlock (it is user code entered by
//! rewriting the saved registers). A thread the signal is for is woken out
//! of interruptible waits (pipes, poll/epoll, locks, sleeps, futexes: they
//! return `ERESTARTSYS`/`EINTR`) and, if it runs user code on another CPU,
//! interrupted by an IPI so its interrupt exit delivers it.
//!
//! **Contexts.** Kernel-lock context, in threads, except the timers'
//! expiry (bh), which defers the send to the runqueue.
//!
//! **Locks** (SpinLocks, kernel-lock context only, never held across a user
//! copy or a sleep), in this order: `process.signals` (the sigaction
//! table) → `process.threads` → `thread.signals` → `process.sigpending`;
//! `signal.timers` is a leaf.

pub mod deliver;
pub mod frame;
pub mod send;
pub mod timers;

use crate::sched::thread::Thread;
use alloc::sync::Arc;
use cairn_sync::LockClass;
use cairn_unix::signal::{AltStack, DefaultAction, SIG_DFL, SIG_IGN, SIGKILL, SigSet};
use cairn_unix::sigpending::PendingSignals;
use core::sync::atomic::Ordering;

/// Lock class of every thread's [`ThreadSignals`].
pub static THREAD_SIGNALS_CLASS: LockClass = LockClass::new("thread.signals");

/// A user thread's signal state (kept in its `UserState`).
#[derive(Default)]
pub struct ThreadSignals {
    /// Blocked signals.
    pub mask: SigSet,
    /// Signals sent to this thread and not yet delivered.
    pub pending: PendingSignals,
    /// The alternate stack (`sigaltstack`).
    pub altstack: AltStack,
    /// The mask to put back after the next handler returns, instead of
    /// the current one (`rt_sigsuspend`, `ppoll`, `pselect6`,
    /// `epoll_pwait` run with a temporary mask).
    pub saved_mask: Option<SigSet>,
}

impl ThreadSignals {
    /// A new thread's state: `mask` inherited from its creator.
    pub fn with_mask(mask: SigSet) -> Self {
        ThreadSignals {
            mask,
            ..Default::default()
        }
    }
}

/// Whether `handler` (a `sa_handler` value) ignores `sig`, counting the
/// default action. SIGKILL is never ignored.
pub fn ignores(handler: u64, sig: u32) -> bool {
    sig != SIGKILL
        && (handler == SIG_IGN
            || (handler == SIG_DFL
                && cairn_unix::signal::default_action(sig) == DefaultAction::Ignore))
}

/// The running user thread, if the caller is one.
pub fn current_thread() -> Option<Arc<Thread>> {
    crate::sched::thread::current().filter(|t| t.user.is_some())
}

/// Whether the calling thread has a signal to take: pending for it or for
/// the process, not blocked, and not ignored. Interruptible waits end on
/// it. Kernel-lock context.
pub fn pending_for_current() -> bool {
    let Some(t) = current_thread() else {
        return false;
    };
    let u = t.user.as_ref().expect("a user thread");
    u.sig_hint.load(Ordering::Acquire) && deliverable(u)
}

/// Whether `u` has a signal to take (the full check, whatever its hint).
fn deliverable(u: &crate::user::UserState) -> bool {
    let Some(p) = crate::process::PROCESS.get() else {
        return false;
    };
    let acts = p.signals.lock();
    let ts = u.signals.lock();
    let pending = ts.pending.set().union(p.sigpending.lock().set());
    let ready = pending.without(ts.mask);
    (1..=cairn_unix::signal::NSIG)
        .filter(|&s| ready.contains(s))
        .any(|s| acts.get(s).is_ok_and(|a| !ignores(a.handler, s)))
}

/// The calling thread's blocked mask (kernel-lock context; empty outside a
/// user thread).
pub fn current_mask() -> SigSet {
    current_thread()
        .and_then(|t| t.user.as_ref().map(|u| u.signals.lock().mask))
        .unwrap_or_default()
}

/// Whether the running thread's signal hint is set (any context; a cheap
/// check the exit path makes with interrupts off before taking the kernel
/// lock to deliver).
pub fn hint_for_current() -> bool {
    let mut set = false;
    crate::sched::thread::with_current(|t| {
        set = t
            .user
            .as_ref()
            .is_some_and(|u| u.sig_hint.load(Ordering::Acquire));
    });
    set
}

/// Whether the calling thread has a signal to take ([`pending_for_current`]);
/// when it has none, its hint is cleared (and checked once more, so a
/// signal queued meanwhile is not missed), so that waits that sleep until
/// the hint is set do not wake for a signal the thread blocks.
pub fn settle_hint_for_current() -> bool {
    if pending_for_current() {
        return true;
    }
    let Some(t) = current_thread() else {
        return false;
    };
    let u = t.user.as_ref().expect("a user thread");
    u.sig_hint.store(false, Ordering::Release);
    if deliverable(u) {
        u.sig_hint.store(true, Ordering::Release);
        return true;
    }
    false
}
