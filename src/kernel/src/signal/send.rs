//! Sending signals: queue on a thread or on the process, then make sure the
//! target notices (it checks at its next return to user mode).
//!
//! A signal its disposition ignores is discarded at once (unless blocked:
//! then it stays pending, as POSIX says). A process-directed signal waits in
//! the process's queue for whichever thread first does not block it; the
//! sender picks such a thread (the caller itself if it can) and wakes it.
//! Waking a thread means: end its interruptible wait, end its futex wait,
//! and, if it runs on another CPU, interrupt that CPU so its interrupt exit
//! delivers the signal.
//!
//! Kernel-lock context. Locks: see [`super`] (`process.signals` →
//! `process.threads` → `thread.signals` → `process.sigpending`).

use super::ignores;
use crate::process::current;
use crate::sched::thread::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_unix::errno::Errno;
use cairn_unix::sigframe::SigInfo;
use core::sync::atomic::Ordering;

/// Whether the process's disposition of `sig` ignores it.
fn ignored(sig: u32) -> Result<bool, Errno> {
    let a = current().signals.lock().get(sig)?;
    Ok(ignores(a.handler, sig))
}

/// Queues `info` for thread `t` (`tgkill`, faults, timers aimed at a
/// thread). `EAGAIN` when a real-time queue is full.
pub fn to_thread(t: &Arc<Thread>, info: SigInfo) -> Result<(), Errno> {
    let u = t.user.as_ref().ok_or(Errno::ESRCH)?;
    let ignored = ignored(info.signo)?;
    let mut ts = u.signals.lock();
    let blocked = ts.mask.contains(info.signo);
    if ignored && !blocked {
        return Ok(());
    }
    ts.pending.push(info)?;
    drop(ts);
    current().sig_arrived.notify();
    if !blocked {
        u.sig_hint.store(true, Ordering::Release);
        wake(t);
    }
    Ok(())
}

/// Queues `info` for the process (`kill`, `alarm`, process timers) and
/// wakes a thread that does not block it.
pub fn to_process(info: SigInfo) -> Result<(), Errno> {
    let p = current();
    let ignored = ignored(info.signo)?;
    let threads: Vec<Arc<Thread>> = p.threads.lock().values().cloned().collect();
    let me = super::current_thread();
    let unblocked = |t: &Arc<Thread>| {
        t.user
            .as_ref()
            .is_some_and(|u| !u.signals.lock().mask.contains(info.signo))
    };
    let target = me
        .filter(|t| unblocked(t))
        .or_else(|| threads.iter().find(|t| unblocked(t)).cloned());
    if ignored && target.is_some() {
        // Some thread would take it and ignore it: discard it now. (Blocked
        // by every thread, it stays pending, as POSIX says.)
        return Ok(());
    }
    p.sigpending.lock().push(info)?;
    p.sig_arrived.notify();
    if let Some(t) = target {
        if let Some(u) = &t.user {
            u.sig_hint.store(true, Ordering::Release);
        }
        wake(&t);
    }
    Ok(())
}

/// Makes thread `t` look at its signals soon: out of an interruptible or
/// futex wait, or, running user code on another CPU, through an interrupt.
pub fn wake(t: &Arc<Thread>) {
    crate::sched::wait::interrupt_thread(t.id());
    current().futex_sleepers.wake_all();
    let me = crate::percpu::this_cpu().index();
    let ptr = Arc::as_ptr(t) as *mut ();
    for c in crate::percpu::cpus() {
        if c.index() != me && c.current_thread.load(Ordering::Acquire) == ptr {
            cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::RESCHED);
        }
    }
}

/// After the calling thread's mask changed: if a signal it no longer blocks
/// is pending (for it or the process), look at signals before returning to
/// user mode.
pub fn recheck_current() {
    if let Some(t) = super::current_thread()
        && let Some(u) = &t.user
    {
        let ts = u.signals.lock();
        let pending = ts.pending.set().union(current().sigpending.lock().set());
        if pending.without(ts.mask) != cairn_unix::signal::SigSet::EMPTY {
            u.sig_hint.store(true, Ordering::Release);
        }
    }
}
