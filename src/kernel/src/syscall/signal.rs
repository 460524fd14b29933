//! Signal system calls: dispositions (`rt_sigaction`), per-thread masks
//! (`rt_sigprocmask`), the alternate stack, sending (`kill`, `tgkill`,
//! `tkill`, `rt_sigqueueinfo`, `rt_tgsigqueueinfo`), waiting
//! (`rt_sigsuspend`, `pause`, `rt_sigtimedwait`), `rt_sigpending`, and the
//! temporary masks of `ppoll`/`pselect6`/`epoll_pwait`
//! ([`with_temporary_mask`]). Delivery and `rt_sigreturn` are in
//! `crate::signal::deliver`.
//!
//! Kernel-lock context, in the calling thread. Locks: `crate::signal`'s.

use super::{SysResult, copy_in, copy_out};
use crate::process::current;
use crate::sched::wait::{self, WaitError};
use crate::signal::{current_thread, send};
use cairn_unix::abi::{KernelSigaction, StackT, Timespec};
use cairn_unix::errno::Errno;
use cairn_unix::sigframe::{SigFields, SigInfo, code, on_altstack};
use cairn_unix::signal::{AltStack, SIGSET_SIZE, SigSet, ThreadMask, check};
use core::sync::atomic::Ordering;

/// The process id user space sees (one process per image).
pub const PID: i32 = 1;

fn read_sigset(addr: u64, size: u64) -> Result<SigSet, Errno> {
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 8];
    copy_in(&mut b, addr)?;
    Ok(SigSet::from_bits(u64::from_le_bytes(b)))
}

pub fn rt_sigaction(sig: i32, act: u64, old: u64, sigsetsize: u64) -> SysResult {
    let new = if act != 0 {
        let mut b = [0u8; KernelSigaction::SIZE];
        copy_in(&mut b, act)?;
        Some(KernelSigaction::decode(&b)?)
    } else {
        None
    };
    let p = current();
    let prev = p.signals.lock().rt_sigaction(sig as u32, new, sigsetsize)?;
    if let Some(a) = new
        && crate::signal::ignores(a.handler, sig as u32)
    {
        // Setting a signal to be ignored discards what is pending of it.
        let one = SigSet::EMPTY.with(sig as u32);
        for t in p.threads.lock().values() {
            if let Some(u) = &t.user {
                u.signals.lock().pending.discard(one);
            }
        }
        p.sigpending.lock().discard(one);
    }
    if old != 0 {
        let mut b = [0u8; KernelSigaction::SIZE];
        KernelSigaction::encode(&prev, &mut b)?;
        copy_out(old, &b)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(how: i32, set: u64, old: u64, sigsetsize: u64) -> SysResult {
    let new = if set != 0 {
        Some(read_sigset(set, sigsetsize)?)
    } else {
        None
    };
    let t = current_thread().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    let prev = {
        let mut ts = u.signals.lock();
        let mut m = ThreadMask::from(ts.mask);
        let prev = m.rt_sigprocmask(how, new, sigsetsize)?;
        ts.mask = m.blocked();
        prev
    };
    send::recheck_current();
    if old != 0 {
        copy_out(old, &prev.bits().to_le_bytes())?;
    }
    Ok(0)
}

pub fn sigaltstack(new: u64, old: u64) -> SysResult {
    let n = if new != 0 {
        let mut b = [0u8; StackT::SIZE];
        copy_in(&mut b, new)?;
        let s = StackT::decode(&b)?;
        Some(AltStack {
            sp: s.sp,
            size: s.size,
            flags: s.flags,
        })
    } else {
        None
    };
    let t = current_thread().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    // The stack pointer of the caller: on its alternate stack, the stack
    // may not change (EPERM) and `old` says SS_ONSTACK.
    let sp = user_sp();
    let prev = {
        let mut ts = u.signals.lock();
        let on = on_altstack(&ts.altstack, sp);
        ts.altstack.sigaltstack(n, on)?
    };
    if old != 0 {
        let st = StackT {
            sp: prev.sp,
            flags: prev.flags,
            size: prev.size,
        };
        let mut b = [0u8; StackT::SIZE];
        st.encode(&mut b)?;
        copy_out(old, &b)?;
    }
    Ok(0)
}

/// The calling thread's user stack pointer at its syscall.
fn user_sp() -> u64 {
    crate::percpu::this_cpu()
        .syscall_user_rsp
        .load(Ordering::Relaxed)
}

/// The thread with id `tid` of this process.
fn thread_of(tid: i32) -> Result<alloc::sync::Arc<crate::sched::thread::Thread>, Errno> {
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    current()
        .threads
        .lock()
        .get(&(tid as u32))
        .cloned()
        .ok_or(Errno::ESRCH)
}

/// `kill(pid, sig)`: this process is pid 1 (0 and -1 name it too); signal
/// 0 only checks.
pub fn kill(pid: i32, sig: i32) -> SysResult {
    if !(pid == PID || pid == 0 || pid == -1) {
        return Err(Errno::ESRCH);
    }
    if sig == 0 {
        return Ok(0);
    }
    check(sig as u32)?;
    send::to_process(SigInfo::user(sig as u32, code::SI_USER)).map(|()| 0)
}

/// `tgkill(tgid, tid, sig)` and `tkill(tid, sig)` (`tgid` -1).
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> SysResult {
    if tgid != -1 && tgid != PID {
        return Err(if tgid <= 0 {
            Errno::EINVAL
        } else {
            Errno::ESRCH
        });
    }
    let t = thread_of(tid)?;
    if sig == 0 {
        return Ok(0);
    }
    check(sig as u32)?;
    send::to_thread(&t, SigInfo::user(sig as u32, code::SI_TKILL)).map(|()| 0)
}

/// The `siginfo_t` of `rt_sigqueueinfo`: a program may only send codes
/// below 0 other than SI_TKILL (as Linux enforces), with its value.
fn queued_info(sig: i32, uinfo: u64) -> Result<SigInfo, Errno> {
    check(sig as u32)?;
    let mut b = [0u8; 32];
    copy_in(&mut b, uinfo)?;
    let si_code = i32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
    if si_code >= 0 || si_code == code::SI_TKILL {
        return Err(Errno::EPERM);
    }
    Ok(SigInfo {
        signo: sig as u32,
        errno: 0,
        code: si_code,
        fields: SigFields::Sender {
            pid: PID,
            uid: 0,
            value: u64::from_le_bytes(b[24..32].try_into().unwrap_or_default()),
        },
    })
}

pub fn rt_sigqueueinfo(pid: i32, sig: i32, uinfo: u64) -> SysResult {
    if pid != PID {
        return Err(Errno::ESRCH);
    }
    send::to_process(queued_info(sig, uinfo)?).map(|()| 0)
}

pub fn rt_tgsigqueueinfo(tgid: i32, tid: i32, sig: i32, uinfo: u64) -> SysResult {
    if tgid != PID {
        return Err(Errno::ESRCH);
    }
    let t = thread_of(tid)?;
    send::to_thread(&t, queued_info(sig, uinfo)?).map(|()| 0)
}

pub fn rt_sigpending(set: u64, size: u64) -> SysResult {
    if size > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let t = current_thread().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    let pending = {
        let ts = u.signals.lock();
        let shared = current().sigpending.lock().set();
        ts.pending.set().union(shared).bits() & ts.mask.bits()
    };
    copy_out(set, &pending.to_le_bytes()[..size as usize])?;
    Ok(0)
}

/// Runs `f` with the calling thread's mask replaced by `mask` (`ppoll`,
/// `pselect6`, `epoll_pwait`, `rt_sigsuspend`). If `f` is interrupted by
/// a signal, the old mask comes back only after that signal's handler
/// (it is saved for the frame); otherwise at once.
pub fn with_temporary_mask<R>(
    mask: Option<SigSet>,
    f: impl FnOnce() -> Result<R, Errno>,
) -> Result<R, Errno> {
    let Some(mask) = mask else {
        return f();
    };
    let t = current_thread().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    let old = {
        let mut ts = u.signals.lock();
        let old = ts.mask;
        ts.mask = mask.without(SigSet::UNBLOCKABLE);
        old
    };
    send::recheck_current();
    let r = f();
    let mut ts = u.signals.lock();
    if matches!(r, Err(e) if e == Errno::EINTR || e.is_restart()) {
        // The handler runs with the temporary mask in force; its frame
        // restores the old one.
        ts.saved_mask = Some(old);
    } else {
        ts.mask = old;
    }
    r
}

/// Sleeps until a signal arrives (`rt_sigsuspend` with the mask applied,
/// `pause`): always `EINTR`, after the handler.
fn until_signal() -> Result<u64, Errno> {
    match wait::wait_event(&[], None, || None::<()>) {
        Err(WaitError::Interrupted) => Err(Errno::EINTR),
        _ => Err(Errno::EINTR),
    }
}

pub fn rt_sigsuspend(mask: u64, size: u64) -> SysResult {
    let m = read_sigset(mask, size)?;
    with_temporary_mask(Some(m), until_signal)
}

pub fn pause() -> SysResult {
    until_signal()
}

/// `rt_sigtimedwait(set, info, timeout)`: takes a pending signal of `set`
/// (usually blocked) without running a handler; waits up to `timeout`
/// (`EAGAIN` after it) unless another signal interrupts (`EINTR`).
pub fn rt_sigtimedwait(set: u64, info: u64, timeout: u64, size: u64) -> SysResult {
    let wanted = read_sigset(set, size)?.without(SigSet::UNBLOCKABLE);
    let deadline = if timeout != 0 {
        let mut b = [0u8; Timespec::SIZE];
        copy_in(&mut b, timeout)?;
        let t = Timespec::decode_valid(&b)?;
        let ns = (t.sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.nsec as u64);
        Some(crate::time::now_ns().saturating_add(ns))
    } else {
        None
    };
    let t = current_thread().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    let blocked_others = SigSet::from_bits(!wanted.bits());
    let take = || {
        let mut ts = u.signals.lock();
        let mut got = ts.pending.take(blocked_others);
        if got.is_none() {
            got = current().sigpending.lock().take(blocked_others);
        }
        got
    };
    // While waiting, the wanted signals are unblocked for the wake-up test
    // only: they are taken here, never delivered to a handler.
    let got = match take() {
        Some(i) => i,
        None => match wait::wait_event(&[&current().sig_arrived], deadline, take) {
            Ok(i) => i,
            Err(WaitError::TimedOut) => return Err(Errno::EAGAIN),
            Err(WaitError::Interrupted) => return Err(Errno::EINTR),
        },
    };
    if info != 0 {
        copy_out(info, &got.encode())?;
    }
    Ok(u64::from(got.signo))
}

const NS: u64 = 1_000_000_000;

/// A `timeval` pair (`struct itimerval`) or `timespec` pair (`struct
/// itimerspec`): (interval, value) in ns; `usec` picks the unit.
fn read_timer_pair(addr: u64, usec: bool) -> Result<(u64, u64), Errno> {
    let mut b = [0u8; 32];
    copy_in(&mut b, addr)?;
    let field = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let ns = |sec: i64, frac: i64| -> Result<u64, Errno> {
        let limit = if usec { 1_000_000 } else { NS as i64 };
        if sec < 0 || !(0..limit).contains(&frac) {
            return Err(Errno::EINVAL);
        }
        let frac_ns = if usec {
            frac as u64 * 1000
        } else {
            frac as u64
        };
        Ok((sec as u64).saturating_mul(NS).saturating_add(frac_ns))
    };
    Ok((ns(field(0), field(8))?, ns(field(16), field(24))?))
}

fn write_timer_pair(addr: u64, interval: u64, value: u64, usec: bool) -> Result<(), Errno> {
    if addr == 0 {
        return Ok(());
    }
    let mut b = [0u8; 32];
    let frac = |ns: u64| if usec { (ns % NS) / 1000 } else { ns % NS };
    b[0..8].copy_from_slice(&(interval / NS).to_le_bytes());
    b[8..16].copy_from_slice(&frac(interval).to_le_bytes());
    b[16..24].copy_from_slice(&(value / NS).to_le_bytes());
    b[24..32].copy_from_slice(&frac(value).to_le_bytes());
    copy_out(addr, &b)
}

const ITIMER_REAL: i32 = 0;

pub fn alarm(secs: u32) -> SysResult {
    Ok(crate::signal::timers::alarm(secs))
}

pub fn setitimer(which: i32, new: u64, old: u64) -> SysResult {
    if which != ITIMER_REAL {
        // CPU-time timers need per-thread CPU accounting (docs/SYSCALLS.md).
        return Err(Errno::EINVAL);
    }
    let (interval, value) = if new != 0 {
        read_timer_pair(new, true)?
    } else {
        (0, 0)
    };
    let (left, prev_interval) = crate::signal::timers::set_real(value, interval);
    write_timer_pair(old, prev_interval, left, true)?;
    Ok(0)
}

pub fn getitimer(which: i32, out: u64) -> SysResult {
    if which != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (left, interval) = crate::signal::timers::get_real();
    write_timer_pair(out, interval, left, true)?;
    Ok(0)
}

/// The clocks POSIX timers run on: REALTIME, MONOTONIC, BOOTTIME (and
/// their _ALARM forms); (is it the wall clock).
fn timer_clock(clock: i32) -> Result<bool, Errno> {
    match clock {
        0 | 8 => Ok(true),
        1 | 7 | 9 => Ok(false),
        _ => Err(Errno::EINVAL),
    }
}

pub fn timer_create(clock: i32, sevp: u64, out: u64) -> SysResult {
    use crate::signal::timers::Notify;
    let wall = timer_clock(clock)?;
    const SIGEV_SIGNAL: i32 = 0;
    const SIGEV_NONE: i32 = 1;
    const SIGEV_THREAD_ID: i32 = 4;
    let (notify, value) = if sevp == 0 {
        (Notify::Process(cairn_unix::signal::SIGALRM), u64::MAX)
    } else {
        let mut b = [0u8; 20];
        copy_in(&mut b, sevp)?;
        let value = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
        let signo = i32::from_le_bytes(b[8..12].try_into().unwrap_or_default()) as u32;
        let how = i32::from_le_bytes(b[12..16].try_into().unwrap_or_default());
        let tid = i32::from_le_bytes(b[16..20].try_into().unwrap_or_default());
        let notify = match how {
            SIGEV_NONE => Notify::None,
            SIGEV_SIGNAL => Notify::Process(signo),
            SIGEV_THREAD_ID => {
                thread_of(tid)?;
                Notify::Thread(tid as u32, signo)
            }
            _ => return Err(Errno::EINVAL),
        };
        (notify, value)
    };
    let id = crate::signal::timers::create(notify, value, wall)?;
    if let Err(e) = copy_out(out, &id.to_le_bytes()) {
        let _ = crate::signal::timers::delete(id);
        return Err(e);
    }
    Ok(0)
}

pub fn timer_settime(id: i32, flags: i32, new: u64, old: u64) -> SysResult {
    const TIMER_ABSTIME: i32 = 1;
    if new == 0 {
        return Err(Errno::EFAULT);
    }
    let (interval, value) = read_timer_pair(new, false)?;
    let now = crate::time::now_ns();
    let deadline = if value == 0 {
        0
    } else if flags & TIMER_ABSTIME != 0 {
        // An absolute time on the timer's clock, as a monotonic deadline
        // (the wall clock is the monotonic one plus a fixed offset).
        let d = if crate::signal::timers::is_wall(id)? {
            value.saturating_sub(crate::time::realtime_ns().saturating_sub(now))
        } else {
            value
        };
        d.max(1)
    } else {
        now.saturating_add(value)
    };
    let (left, prev_interval) = crate::signal::timers::settime(id, deadline, interval)?;
    write_timer_pair(old, prev_interval, left, false)?;
    Ok(0)
}

pub fn timer_gettime(id: i32, out: u64) -> SysResult {
    let (left, interval) = crate::signal::timers::gettime(id)?;
    write_timer_pair(out, interval, left, false)?;
    Ok(0)
}

pub fn timer_getoverrun(id: i32) -> SysResult {
    crate::signal::timers::getoverrun(id).map(u64::from)
}

pub fn timer_delete(id: i32) -> SysResult {
    crate::signal::timers::delete(id).map(|()| 0)
}
