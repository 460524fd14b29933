//! Thread system calls: clone and clone3 (threads only), futex (with
//! WAKE_OP), set_tid_address, arch_prctl, gettid, sched_yield.
//!
//! The futex protocol (no lost wake-ups) is the one `cairn_unix::futex`
//! documents: the word is read under the table lock without sleeping
//! (page faults disabled; a word that needs paging in is faulted in first
//! with the lock released, then the read is retried).
//!
//! Kernel-lock context, in the calling thread.

use super::SysResult;
use crate::process::{FutexWaiter, current};
use crate::user::UserRegs;
use alloc::sync::Arc;
use cairn_unix::errno::Errno;
use cairn_unix::futex::MATCH_ANY;
use core::sync::atomic::{AtomicBool, Ordering};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;

pub fn clone(flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64, regs: &UserRegs) -> SysResult {
    let thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    if flags & thread != thread {
        // One process per image: only threads can be created.
        return Err(Errno::ENOSYS);
    }
    let mut child = *regs;
    child.rax = 0;
    if stack != 0 {
        child.rsp = stack;
    }
    let fs_base = if flags & CLONE_SETTLS != 0 {
        tls
    } else {
        crate::sched::thread::current()
            .and_then(|t| t.user.as_ref().map(|u| u.fs_base.load(Ordering::Relaxed)))
            .unwrap_or(0)
    };
    let (tid, t) = crate::process::spawn_thread(child, fs_base)?;
    if let Some(u) = &t.user {
        if flags & CLONE_CHILD_CLEARTID != 0 {
            u.clear_child_tid.store(ctid, Ordering::Relaxed);
        }
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        super::copy_out(ptid, &tid.to_le_bytes())?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        super::copy_out(ctid, &tid.to_le_bytes())?;
    }
    Ok(u64::from(tid))
}

/// `clone3(args, size)` for threads (the flags `clone` accepts); anything
/// else is `ENOSYS`, which glibc answers by falling back to `clone`.
pub fn clone3(args: u64, size: u64, regs: &UserRegs) -> SysResult {
    const VER0: u64 = 64;
    if !(VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 88];
    let n = (size as usize).min(b.len());
    super::copy_in(&mut b[..n], args)?;
    let at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let (flags, child_tid, parent_tid, exit_signal) = (at(0), at(16), at(24), at(32));
    let (stack, stack_size, tls) = (at(40), at(48), at(56));
    let set_tid_size = if n >= 80 { at(72) } else { 0 };
    if set_tid_size != 0 || (stack != 0 && stack_size == 0) || (stack == 0 && stack_size != 0) {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_THREAD != 0 && exit_signal != 0 {
        return Err(Errno::EINVAL);
    }
    let top = stack.checked_add(stack_size).ok_or(Errno::EINVAL)?;
    clone(flags, top, parent_tid, child_tid, tls, regs)
}

pub fn set_tid_address(addr: u64) -> SysResult {
    let t = crate::sched::thread::current().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    u.clear_child_tid.store(addr, Ordering::Relaxed);
    Ok(u64::from(u.tid))
}

pub fn gettid() -> SysResult {
    let t = crate::sched::thread::current().ok_or(Errno::EINVAL)?;
    Ok(u64::from(t.user.as_ref().map_or(0, |u| u.tid)))
}

pub fn arch_prctl(code: i32, addr: u64) -> SysResult {
    const ARCH_SET_FS: i32 = 0x1002;
    const ARCH_GET_FS: i32 = 0x1003;
    let t = crate::sched::thread::current().ok_or(Errno::EINVAL)?;
    let u = t.user.as_ref().ok_or(Errno::EINVAL)?;
    match code {
        ARCH_SET_FS => {
            if addr >= cairn_pc::paging::USER_END {
                return Err(Errno::EPERM);
            }
            u.fs_base.store(addr, Ordering::Relaxed);
            // SAFETY: FS_BASE only affects this thread's user-mode
            // FS-relative accesses; the value is a user address.
            unsafe { cairn_pc::cpu::wrmsr(cairn_pc::cpu::msr::FS_BASE, addr) };
            Ok(0)
        }
        ARCH_GET_FS => {
            super::copy_out(addr, &u.fs_base.load(Ordering::Relaxed).to_le_bytes())?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_yield() -> SysResult {
    crate::sched::thread::yield_now();
    Ok(0)
}

/// Reads the futex word with page faults disabled: `None` if the page
/// would need to be paged in (the caller faults it in and retries).
fn read_word_nofault(addr: u64) -> Result<Option<u32>, Errno> {
    let mut b = [0u8; 4];
    match crate::user::copy_from_user_nofault(&mut b, addr) {
        Ok(()) => Ok(Some(u32::from_le_bytes(b))),
        Err(crate::user::BadAddress) => {
            // Fault it in (sleeping if needed, lock released), then retry.
            super::copy_in(&mut b, addr)?;
            Ok(None)
        }
    }
}

/// The futex calls that need no kernel lock: a WAKE with nobody waiting
/// (0), a WAIT whose word already differs (EAGAIN). Anything else, and any
/// address the locked path must judge, goes to the locked handler.
pub fn futex_lockless(a: [u64; 6]) -> super::lockless::Lockless {
    use super::lockless::Lockless::{Done, NeedLock};
    const WAIT: i32 = 0;
    const WAKE: i32 = 1;
    const WAIT_BITSET: i32 = 9;
    const WAKE_BITSET: i32 = 10;
    const PRIVATE: i32 = 128;
    const CLOCK_REALTIME: i32 = 256;
    let (addr, op, val) = (a[0], a[1] as i32, a[2] as u32);
    if addr % 4 != 0 || addr >= cairn_pc::paging::USER_END - 4 {
        return NeedLock;
    }
    let Some(p) = crate::process::PROCESS.get() else {
        return NeedLock;
    };
    match op & !(PRIVATE | CLOCK_REALTIME) {
        WAKE | WAKE_BITSET if p.futex.lock().waiters(addr) == 0 => Done(Ok(0)),
        WAIT | WAIT_BITSET => {
            let mut b = [0u8; 4];
            match crate::user::copy_from_user_nofault(&mut b, addr) {
                Ok(()) if u32::from_le_bytes(b) != val => Done(Err(Errno::EAGAIN)),
                _ => NeedLock,
            }
        }
        _ => NeedLock,
    }
}

/// Wakes up to `n` waiters of `addr`; returns how many.
pub fn futex_wake(addr: u64, n: i32) -> usize {
    futex_wake_bitset(addr, n, MATCH_ANY).unwrap_or(0)
}

fn futex_wake_bitset(addr: u64, n: i32, bitset: u32) -> Result<usize, Errno> {
    let p = current();
    let woken = p.futex.lock().wake(addr, n, bitset)?;
    let count = woken.len();
    for w in woken {
        w.woken.store(true, Ordering::Release);
    }
    if count > 0 {
        p.futex_sleepers.wake_all();
    }
    Ok(count)
}

fn futex_wait(addr: u64, expected: u32, timeout: u64, bitset: u32, absolute: bool) -> SysResult {
    let p = current();
    let deadline = if timeout != 0 {
        let mut ts = [0u8; 16];
        super::copy_in(&mut ts, timeout)?;
        let t = cairn_unix::abi::Timespec::decode_valid(&ts)?;
        let ns = (t.sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.nsec as u64);
        Some(if absolute {
            // Absolute timeouts are on the monotonic clock (glibc's default
            // for FUTEX_WAIT_BITSET without CLOCK_REALTIME).
            ns
        } else {
            crate::time::now_ns().saturating_add(ns)
        })
    } else {
        None
    };
    let waiter = cairn_sync::cpu::bh_safe_alloc(|| {
        Arc::new(FutexWaiter {
            woken: AtomicBool::new(false),
        })
    });
    let id = loop {
        let mut table = p.futex.lock();
        match read_word_nofault(addr)? {
            Some(current) => {
                break table.wait(addr, current, expected, bitset, waiter.clone())?;
            }
            None => {
                drop(table);
                continue;
            }
        }
    };
    if let Some(d) = deadline {
        let w = waiter.clone();
        crate::timer::after(d.saturating_sub(crate::time::now_ns()), move || {
            // A timeout only wakes the sleeper; it cancels itself below.
            let _ = &w;
            current().futex_sleepers.wake_all();
        });
    }
    loop {
        p.futex_sleepers.wait_until(|| {
            waiter.woken.load(Ordering::Acquire)
                || deadline.is_some_and(|d| crate::time::now_ns() >= d)
                || crate::signal::hint_for_current()
        });
        if waiter.woken.load(Ordering::Acquire) {
            return Ok(0);
        }
        let timed_out = deadline.is_some_and(|d| crate::time::now_ns() >= d);
        // A signal to take ends the wait: restarted after the handler (or
        // if none runs) without a timeout, EINTR with one, as Linux.
        let interrupted = !timed_out && crate::signal::settle_hint_for_current();
        if !timed_out && !interrupted {
            continue; // the hint was for a signal this thread blocks
        }
        if p.futex.lock().cancel(id).is_some() {
            return Err(if timed_out {
                Errno::ETIMEDOUT
            } else if deadline.is_some() {
                Errno::EINTR
            } else {
                Errno::ERESTARTSYS
            });
        }
        // A wake won the race.
        return Ok(0);
    }
}

/// `FUTEX_WAKE_OP`: applies the operation `encoded` names to the word at
/// `addr2` (atomically, returning its old value), wakes up to `n` waiters
/// of `addr`, and, if the old value passes the encoded comparison, up to
/// `n2` waiters of `addr2`.
fn futex_wake_op(addr: u64, n: i32, n2: i32, addr2: u64, encoded: u32) -> SysResult {
    let sext12 = |v: u32| ((v << 20) as i32) >> 20;
    let op = (encoded >> 28) & 7;
    let shift = encoded >> 31 != 0;
    let cmp = (encoded >> 24) & 0xf;
    let mut oparg = sext12((encoded >> 12) & 0xfff);
    let cmparg = sext12(encoded & 0xfff);
    if shift {
        if !(0..32).contains(&oparg) {
            return Err(Errno::EINVAL);
        }
        oparg = 1 << oparg;
    }
    if op > 4 || cmp > 5 {
        return Err(Errno::ENOSYS);
    }
    let arg = oparg as u32;
    let old = current().aspace.atomic_update_u32(addr2, |v| match op {
        0 => arg,
        1 => v.wrapping_add(arg),
        2 => v | arg,
        3 => v & !arg,
        _ => v ^ arg,
    })?;
    let mut woken = futex_wake_bitset(addr, n, MATCH_ANY)?;
    let o = old as i32;
    let pass = match cmp {
        0 => o == cmparg,
        1 => o != cmparg,
        2 => o < cmparg,
        3 => o <= cmparg,
        4 => o > cmparg,
        _ => o >= cmparg,
    };
    if pass {
        woken += futex_wake_bitset(addr2, n2, MATCH_ANY)?;
    }
    Ok(woken as u64)
}

/// Checks a futex word's address as Linux's `get_futex_key`: `EINVAL` if
/// misaligned, `EFAULT` if the word is not in the user half; for a shared
/// (not `FUTEX_PRIVATE_FLAG`) futex the word must also be mapped (Linux
/// pins its page), so it is read once (demand-paging it): `EFAULT` if it
/// cannot be. cairn runs one process, so past this check shared and
/// private futexes are the same.
fn futex_key(addr: u64, shared: bool) -> Result<(), Errno> {
    if addr % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    if addr
        .checked_add(4)
        .is_none_or(|end| end > cairn_pc::paging::USER_END)
    {
        return Err(Errno::EFAULT);
    }
    if shared {
        super::copy_in(&mut [0u8; 4], addr)?;
    }
    Ok(())
}

pub fn futex(addr: u64, op: i32, val: u32, timeout: u64, addr2: u64, val3: u32) -> SysResult {
    const WAIT: i32 = 0;
    const WAKE: i32 = 1;
    const REQUEUE: i32 = 3;
    const CMP_REQUEUE: i32 = 4;
    const WAKE_OP: i32 = 5;
    const WAIT_BITSET: i32 = 9;
    const WAKE_BITSET: i32 = 10;
    const PRIVATE: i32 = 128;
    const CLOCK_REALTIME: i32 = 256;
    let cmd = op & !(PRIVATE | CLOCK_REALTIME);
    let p = current();
    let shared = op & PRIVATE == 0;
    if matches!(
        cmd,
        WAIT | WAIT_BITSET | WAKE | WAKE_BITSET | WAKE_OP | REQUEUE | CMP_REQUEUE
    ) {
        futex_key(addr, shared)?;
    }
    if matches!(cmd, WAKE_OP | REQUEUE | CMP_REQUEUE) {
        futex_key(addr2, shared)?;
    }
    match cmd {
        WAIT => futex_wait(addr, val, timeout, MATCH_ANY, false),
        WAIT_BITSET => futex_wait(addr, val, timeout, val3, true),
        WAKE => futex_wake_bitset(addr, val as i32, MATCH_ANY).map(|n| n as u64),
        WAKE_BITSET => futex_wake_bitset(addr, val as i32, val3).map(|n| n as u64),
        WAKE_OP => futex_wake_op(addr, val as i32, timeout as i32, addr2, val3),
        REQUEUE | CMP_REQUEUE => {
            let nr_requeue = timeout as i32;
            let r = loop {
                let mut table = p.futex.lock();
                if cmd == REQUEUE {
                    break table.requeue(addr, addr2, val as i32, nr_requeue)?;
                }
                match read_word_nofault(addr)? {
                    Some(cur) => {
                        break table.cmp_requeue(addr, addr2, val as i32, nr_requeue, cur, val3)?;
                    }
                    None => continue,
                }
            };
            let total = r.total();
            for w in r.woken {
                w.woken.store(true, Ordering::Release);
            }
            p.futex_sleepers.wake_all();
            Ok(total as u64)
        }
        _ => Err(Errno::ENOSYS),
    }
}
