//! timerfd: a timer read as a file. Expirations are counted from the
//! deadline and the interval when the file is read or polled (no tick
//! is missed however late the reader is); a kernel timer
//! (`crate::timer`) only announces each deadline to sleepers and pollers,
//! re-arming itself for periodic timers. `settime` starts a new
//! generation: announcements of an older one are ignored.
//!
//! Contexts: syscalls in kernel-lock context; the announcement in bh
//! context. So the object is allocated bh-safe (the timer may drop the
//! last reference) and its state lock `ipc.timerfd` is an IrqSpinLock (a
//! leaf; announcements are made after it is released).

use crate::process::file::{Dst, FileOps, OpenFile, poll};
use crate::sched::wait::{Pollable, WaitError, wait_event};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;

static TIMERFD_CLASS: LockClass = LockClass::new("ipc.timerfd");

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const CLOCK_REALTIME_ALARM: i32 = 8;
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;

#[derive(Default)]
struct State {
    /// Monotonic deadline of the next expiration; `None`: disarmed.
    next: Option<u64>,
    interval: u64,
    generation: u64,
    timer: Option<crate::timer::TimerId>,
}

pub struct TimerFd {
    realtime: bool,
    state: IrqSpinLock<State>,
    ready: Pollable,
    ino: u64,
    me: Weak<TimerFd>,
}

/// A disarmed timer on `clock` (one of the `CLOCK_*` above).
pub fn new(clock: i32) -> Result<Arc<TimerFd>, Errno> {
    let realtime = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => false,
        _ => return Err(Errno::EINVAL),
    };
    let ino = crate::special::new_ino();
    Ok(bh_safe_alloc(|| {
        Arc::new_cyclic(|me| TimerFd {
            realtime,
            state: IrqSpinLock::new(&TIMERFD_CLASS, State::default()),
            ready: Pollable::new(),
            ino,
            me: me.clone(),
        })
    }))
}

/// Takes the expirations due by `now` from `st`.
fn take_expired(st: &mut State, now: u64) -> u64 {
    match st.next {
        Some(d) if now >= d => match (now - d).checked_div(st.interval) {
            None => {
                st.next = None;
                1
            }
            Some(k) => {
                st.next = Some(d.saturating_add((k + 1).saturating_mul(st.interval)));
                k + 1
            }
        },
        _ => 0,
    }
}

/// Pending expirations without taking them.
fn pending(st: &State, now: u64) -> u64 {
    match st.next {
        Some(d) if now >= d => (now - d).checked_div(st.interval).unwrap_or(0) + 1,
        _ => 0,
    }
}

/// A new announcement for `generation` at monotonic `deadline`.
fn schedule(t: &Arc<TimerFd>, generation: u64, deadline: u64) -> crate::timer::TimerId {
    let weak = Arc::downgrade(t);
    crate::timer::after(deadline.saturating_sub(crate::time::now_ns()), move || {
        announce(&weak, generation)
    })
}

/// The kernel timer fired (bh context).
fn announce(weak: &Weak<TimerFd>, generation: u64) {
    let Some(t) = weak.upgrade() else {
        return;
    };
    let again = {
        let st = t.state.lock();
        if st.generation != generation {
            return;
        }
        match st.next {
            Some(d) if st.interval > 0 => {
                let now = crate::time::now_ns();
                let k = if now >= d {
                    (now - d) / st.interval + 1
                } else {
                    0
                };
                Some(d.saturating_add(k.saturating_mul(st.interval)))
            }
            _ => None,
        }
    };
    if let Some(d) = again {
        let id = schedule(&t, generation, d);
        let mut st = t.state.lock();
        if st.generation == generation {
            st.timer = Some(id);
        } else {
            drop(st);
            crate::timer::cancel(id);
        }
    }
    t.ready.notify();
}

/// `struct itimerspec` as (interval, value), nanoseconds.
pub type Spec = (u64, u64);

impl TimerFd {
    fn now(&self) -> u64 {
        crate::time::now_ns()
    }

    /// Monotonic deadline → the timer's clock, and back.
    fn offset(&self) -> u64 {
        if self.realtime {
            crate::time::realtime_ns().saturating_sub(crate::time::now_ns())
        } else {
            0
        }
    }

    /// `timerfd_settime`: arms (value > 0) or disarms; returns the old
    /// setting as `gettime` would.
    pub fn settime(&self, absolute: bool, interval: u64, value: u64) -> Spec {
        let now = self.now();
        let old = self.gettime();
        let deadline = (value > 0).then(|| {
            if absolute {
                value.saturating_sub(self.offset())
            } else {
                now.saturating_add(value)
            }
        });
        let (old_timer, generation) = {
            let mut st = self.state.lock();
            st.generation += 1;
            st.next = deadline;
            st.interval = interval;
            (st.timer.take(), st.generation)
        };
        if let Some(id) = old_timer {
            crate::timer::cancel(id);
        }
        if let (Some(d), Some(me)) = (deadline, self.me.upgrade()) {
            let id = schedule(&me, generation, d);
            let mut st = self.state.lock();
            if st.generation == generation {
                st.timer = Some(id);
            }
        }
        self.ready.notify();
        old
    }

    /// `timerfd_gettime`: (interval, time to the next expiration).
    pub fn gettime(&self) -> Spec {
        let now = self.now();
        let st = self.state.lock();
        let left = match st.next {
            None => 0,
            Some(d) if d > now => d - now,
            Some(d) if st.interval > 0 => st.interval - (now - d) % st.interval,
            // Expired, unread one-shot: nothing left to wait.
            Some(_) => 1,
        };
        (st.interval, if st.next.is_some() { left } else { 0 })
    }
}

impl FileOps for TimerFd {
    fn read(&self, f: &OpenFile, _off: u64, mut dst: Dst<'_>, len: usize) -> Result<usize, Errno> {
        if len < 8 {
            return Err(Errno::EINVAL);
        }
        let nonblock = f.nonblocking();
        let n = wait_event(&[&self.ready], None, || {
            let n = take_expired(&mut self.state.lock(), self.now());
            if n > 0 {
                return Some(Ok(n));
            }
            nonblock.then_some(Err(Errno::EAGAIN))
        })
        .map_err(|e| match e {
            WaitError::Interrupted => Errno::ERESTARTSYS,
            WaitError::TimedOut => Errno::EAGAIN,
        })??;
        dst.put(0, &n.to_le_bytes())?;
        Ok(8)
    }

    fn poll(&self) -> u16 {
        if pending(&self.state.lock(), self.now()) > 0 {
            poll::POLLIN | poll::POLLRDNORM
        } else {
            0
        }
    }

    fn pollable(&self) -> Option<&Pollable> {
        Some(&self.ready)
    }

    fn stat(&self) -> FileStat {
        crate::special::stat_of(self.ino, 0o600, 0, 0)
    }

    fn name(&self) -> Vec<u8> {
        b"anon_inode:[timerfd]".to_vec()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
