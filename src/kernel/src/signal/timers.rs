//! Timers that send signals: `alarm` and `setitimer(ITIMER_REAL)` (one
//! real-time interval timer sending SIGALRM to the process), and POSIX
//! timers (`timer_create` on CLOCK_REALTIME, CLOCK_MONOTONIC or
//! CLOCK_BOOTTIME, notifying by a signal to the process, by a signal to one
//! thread (SIGEV_THREAD_ID, which glibc's SIGEV_THREAD timers use), or not
//! at all).
//!
//! Each armed timer is one kernel timer (`crate::timer::at`) whose callback
//! (bh) defers the send to the runqueue (signals are sent under the kernel
//! lock) and re-arms a periodic timer at its next period after now, counting
//! the periods it missed as overruns. A generation number makes a callback
//! of a timer that was re-armed or deleted meanwhile do nothing. CPU-time
//! timers (ITIMER_VIRTUAL, ITIMER_PROF, CPU clocks) are refused with
//! `EINVAL`: cairn keeps no per-thread CPU time.
//!
//! Kernel-lock context (the syscalls and the deferred expiry); the kernel
//! timer callback itself is bh and touches nothing but the runqueue. Lock:
//! `signal.timers`, a leaf.

use super::send;
use alloc::collections::BTreeMap;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;
use cairn_unix::sigframe::{SigFields, SigInfo, code};
use cairn_unix::signal::{SIGALRM, check};

static TIMERS_CLASS: LockClass = LockClass::new("signal.timers");

/// Whom an expiry notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// Nobody (SIGEV_NONE: the program polls `timer_gettime`).
    None,
    /// The process, with this signal (SIGEV_SIGNAL).
    Process(u32),
    /// Thread `tid`, with this signal (SIGEV_THREAD_ID).
    Thread(u32, u32),
}

/// One armed or disarmed timer.
struct Timer {
    notify: Notify,
    /// On CLOCK_REALTIME (absolute times are wall-clock times).
    wall: bool,
    /// `sigev_value` (POSIX timers) passed in `si_value`.
    value: u64,
    /// Monotonic deadline of the next expiry, 0 when disarmed.
    deadline: u64,
    /// Period in ns, 0 for a one-shot.
    interval: u64,
    /// Bumped on every (re)arm or delete: stale callbacks see a change.
    generation: u64,
    /// Periods missed before the last expiry was sent.
    overrun: u32,
    kernel_timer: Option<crate::timer::TimerId>,
}

/// Timer id of the `alarm`/ITIMER_REAL timer in [`TIMERS`]; POSIX timer
/// ids (as the program sees them) are their key.
const REAL_TIMER: i64 = -1;

static TIMERS: SpinLock<BTreeMap<i64, Timer>> = SpinLock::new(&TIMERS_CLASS, BTreeMap::new());
static NEXT_ID: SpinLock<i64> = SpinLock::new(&TIMERS_CLASS, 0);

/// (remaining ns until the next expiry, interval ns) of timer `id`.
fn remaining(t: &Timer) -> (u64, u64) {
    let left = if t.deadline == 0 {
        0
    } else {
        t.deadline.saturating_sub(crate::time::now_ns()).max(1)
    };
    (left, t.interval)
}

/// Arms (or, with `deadline` 0, disarms) timer `id`; returns what it had.
fn arm(id: i64, deadline: u64, interval: u64) -> Result<(u64, u64), Errno> {
    let (old, cancel, generation) = {
        let mut timers = TIMERS.lock();
        let t = timers.get_mut(&id).ok_or(Errno::EINVAL)?;
        let old = remaining(t);
        t.generation += 1;
        t.deadline = deadline;
        t.interval = interval;
        t.overrun = 0;
        (old, t.kernel_timer.take(), t.generation)
    };
    if let Some(k) = cancel {
        crate::timer::cancel(k);
    }
    if deadline != 0 {
        schedule(id, deadline, generation);
    }
    Ok(old)
}

/// Starts the kernel timer of expiry `generation` of timer `id`.
fn schedule(id: i64, deadline: u64, generation: u64) {
    let k = crate::timer::at(deadline, move || {
        crate::sched::defer(move || expire(id, generation));
    });
    if let Some(t) = TIMERS.lock().get_mut(&id)
        && t.generation == generation
    {
        t.kernel_timer = Some(k);
    }
}

/// An expiry, under the kernel lock: send, then re-arm a periodic timer.
fn expire(id: i64, generation: u64) {
    let now = crate::time::now_ns();
    let (notify, value, overrun, next) = {
        let mut timers = TIMERS.lock();
        let Some(t) = timers.get_mut(&id) else { return };
        if t.generation != generation || t.deadline == 0 {
            return;
        }
        let mut next = 0;
        let mut missed = 0u32;
        if t.interval != 0 {
            next = t.deadline.saturating_add(t.interval);
            if next <= now {
                let behind = (now - next) / t.interval + 1;
                missed = behind.min(u64::from(u32::MAX)) as u32;
                next = next.saturating_add(behind.saturating_mul(t.interval));
            }
        }
        t.overrun = missed;
        t.deadline = next;
        (t.notify, t.value, missed, next)
    };
    let tid = if id == REAL_TIMER { 0 } else { id as i32 };
    let info = |sig: u32| SigInfo {
        signo: sig,
        errno: 0,
        code: if id == REAL_TIMER {
            code::SI_KERNEL
        } else {
            code::SI_TIMER
        },
        fields: if id == REAL_TIMER {
            SigFields::None
        } else {
            SigFields::Timer {
                tid,
                overrun: overrun as i32,
                value,
            }
        },
    };
    let _ = match notify {
        Notify::None => Ok(()),
        Notify::Process(sig) => send::to_process(info(sig)),
        Notify::Thread(tid, sig) => {
            // The thread list's lock is released before the send (which
            // takes `process.signals`, ordered before it).
            let target = crate::process::current().threads.lock().get(&tid).cloned();
            match target {
                Some(t) => send::to_thread(&t, info(sig)),
                None => Ok(()),
            }
        }
    };
    if next != 0 {
        schedule(id, next, generation);
    }
}

fn real_timer() {
    TIMERS.lock().entry(REAL_TIMER).or_insert(Timer {
        notify: Notify::Process(SIGALRM),
        wall: false,
        value: 0,
        deadline: 0,
        interval: 0,
        generation: 0,
        overrun: 0,
        kernel_timer: None,
    });
}

/// `alarm(secs)`: SIGALRM after `secs` seconds (0 cancels); returns the
/// seconds left of the previous alarm, rounded up.
pub fn alarm(secs: u32) -> u64 {
    real_timer();
    let deadline = if secs == 0 {
        0
    } else {
        crate::time::now_ns() + u64::from(secs) * 1_000_000_000
    };
    let (left, _) = arm(REAL_TIMER, deadline, 0).unwrap_or((0, 0));
    left.div_ceil(1_000_000_000)
}

/// `setitimer(ITIMER_REAL)`: arms the SIGALRM timer `value` ns from now
/// (0 disarms), repeating every `interval` ns; returns (remaining,
/// interval) of what it replaced.
pub fn set_real(value: u64, interval: u64) -> (u64, u64) {
    real_timer();
    let deadline = if value == 0 {
        0
    } else {
        crate::time::now_ns().saturating_add(value)
    };
    arm(REAL_TIMER, deadline, interval).unwrap_or((0, 0))
}

/// `getitimer(ITIMER_REAL)`: (remaining, interval).
pub fn get_real() -> (u64, u64) {
    real_timer();
    TIMERS.lock().get(&REAL_TIMER).map_or((0, 0), remaining)
}

/// `timer_create`: a new disarmed POSIX timer on the wall clock (`wall`)
/// or the monotonic one; its id.
pub fn create(notify: Notify, value: u64, wall: bool) -> Result<i32, Errno> {
    match notify {
        Notify::Process(s) | Notify::Thread(_, s) => check(s)?,
        Notify::None => {}
    }
    let id = {
        let mut n = NEXT_ID.lock();
        let id = *n;
        *n += 1;
        id
    };
    if id > i64::from(i32::MAX) {
        return Err(Errno::EAGAIN);
    }
    let value = if value == u64::MAX { id as u64 } else { value };
    TIMERS.lock().insert(
        id,
        Timer {
            notify,
            wall,
            value,
            deadline: 0,
            interval: 0,
            generation: 0,
            overrun: 0,
            kernel_timer: None,
        },
    );
    Ok(id as i32)
}

fn posix_id(id: i32) -> Result<i64, Errno> {
    (id >= 0).then_some(i64::from(id)).ok_or(Errno::EINVAL)
}

/// `timer_settime`: arms at monotonic `deadline` (0 disarms) with
/// `interval`; (remaining, interval) of the old setting.
pub fn settime(id: i32, deadline: u64, interval: u64) -> Result<(u64, u64), Errno> {
    arm(posix_id(id)?, deadline, interval)
}

/// Whether POSIX timer `id` runs on the wall clock.
pub fn is_wall(id: i32) -> Result<bool, Errno> {
    TIMERS
        .lock()
        .get(&posix_id(id)?)
        .map(|t| t.wall)
        .ok_or(Errno::EINVAL)
}

/// `timer_gettime`: (remaining, interval).
pub fn gettime(id: i32) -> Result<(u64, u64), Errno> {
    TIMERS
        .lock()
        .get(&posix_id(id)?)
        .map(remaining)
        .ok_or(Errno::EINVAL)
}

/// `timer_getoverrun`: periods missed before the last expiry was sent.
pub fn getoverrun(id: i32) -> Result<u32, Errno> {
    TIMERS
        .lock()
        .get(&posix_id(id)?)
        .map(|t| t.overrun)
        .ok_or(Errno::EINVAL)
}

/// `timer_delete`.
pub fn delete(id: i32) -> Result<(), Errno> {
    let t = TIMERS.lock().remove(&posix_id(id)?).ok_or(Errno::EINVAL)?;
    if let Some(k) = t.kernel_timer {
        crate::timer::cancel(k);
    }
    Ok(())
}
