//! Process-level calls real programs make: getrusage, times, prctl,
//! wait4/waitid, the scheduler queries and settings (affinity, policy,
//! priority), membarrier, mlock/munlock/mlockall/munlockall.
//!
//! What is kept but changes nothing (listed in docs/SYSCALLS.md): CPU
//! affinity, nice values and the timer slack are remembered and read back,
//! but every thread still runs on any CPU at the same priority; CPU time
//! is not accounted, so getrusage and times report the time since the
//! program started as user time. mlock makes pages resident; nothing in
//! cairn ever pages a mapped page out, so locking needs no more.
//!
//! Kernel-lock context, in the calling thread. Lock: `process.sched`
//! (SpinLock, kernel-lock only, a leaf).

use super::{SysResult, copy_in, copy_out, user_string};
use crate::process::current;
use alloc::collections::BTreeMap;
use alloc::vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

static SCHED_CLASS: LockClass = LockClass::new("process.sched");
/// Thread id → the affinity mask it set (threads that set none run
/// anywhere).
static AFFINITY: SpinLock<BTreeMap<u32, u64>> = SpinLock::new(&SCHED_CLASS, BTreeMap::new());
/// The program's nice value.
static NICE: AtomicI32 = AtomicI32::new(0);
static TIMER_SLACK: AtomicU64 = AtomicU64::new(50_000);
static NO_NEW_PRIVS: AtomicBool = AtomicBool::new(false);
static DUMPABLE: AtomicBool = AtomicBool::new(true);
static MEMBARRIER_PRIVATE: AtomicBool = AtomicBool::new(false);
static MEMBARRIER_SYNC_CORE: AtomicBool = AtomicBool::new(false);
/// When the program started (monotonic ns), for CPU-time stand-ins.
static START_NS: AtomicU64 = AtomicU64::new(0);

/// Records the program's start (exec).
pub fn program_started() {
    START_NS.store(crate::time::now_ns(), Ordering::Relaxed);
}

fn run_ns() -> u64 {
    crate::time::now_ns().saturating_sub(START_NS.load(Ordering::Relaxed))
}

fn my_tid() -> u32 {
    crate::sched::thread::current()
        .and_then(|t| t.user.as_ref().map(|u| u.tid))
        .unwrap_or(1)
}

/// The thread a scheduler call names: 0 is the caller; the program's pid
/// (1) and its thread ids are accepted.
fn target_tid(pid: i64) -> Result<u32, Errno> {
    match pid {
        0 => Ok(my_tid()),
        p if p < 0 => Err(Errno::EINVAL),
        p if p <= i64::from(u32::MAX) => Ok(p as u32),
        _ => Err(Errno::ESRCH),
    }
}

fn online_mask() -> u64 {
    let n = crate::cpu_count();
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

pub fn getrusage(who: i32, out: u64) -> SysResult {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let ns = match who {
        RUSAGE_SELF | RUSAGE_THREAD => run_ns(),
        RUSAGE_CHILDREN => 0,
        _ => return Err(Errno::EINVAL),
    };
    let mut b = [0u8; 144];
    b[0..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    b[8..16].copy_from_slice(&((ns % 1_000_000_000 / 1000) as i64).to_le_bytes());
    if who != RUSAGE_CHILDREN {
        // ru_maxrss, in KiB.
        let rss = current().aspace.resident_pages() * 4;
        b[32..40].copy_from_slice(&rss.to_le_bytes());
    }
    copy_out(out, &b)?;
    Ok(0)
}

pub fn times(out: u64) -> SysResult {
    const HZ: u64 = 100;
    let ticks = crate::time::now_ns() / (1_000_000_000 / HZ);
    if out != 0 {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&(run_ns() / (1_000_000_000 / HZ)).to_le_bytes());
        copy_out(out, &b)?;
    }
    Ok(ticks)
}

pub fn prctl(option: i32, a2: u64, _a3: u64, _a4: u64, _a5: u64) -> SysResult {
    const PR_SET_PDEATHSIG: i32 = 1;
    const PR_GET_PDEATHSIG: i32 = 2;
    const PR_GET_DUMPABLE: i32 = 3;
    const PR_SET_DUMPABLE: i32 = 4;
    const PR_GET_KEEPCAPS: i32 = 7;
    const PR_SET_KEEPCAPS: i32 = 8;
    const PR_SET_NAME: i32 = 15;
    const PR_GET_NAME: i32 = 16;
    const PR_GET_SECCOMP: i32 = 21;
    const PR_CAPBSET_READ: i32 = 23;
    const PR_SET_TIMERSLACK: i32 = 29;
    const PR_GET_TIMERSLACK: i32 = 30;
    const PR_SET_CHILD_SUBREAPER: i32 = 36;
    const PR_GET_CHILD_SUBREAPER: i32 = 37;
    const PR_SET_NO_NEW_PRIVS: i32 = 38;
    const PR_GET_NO_NEW_PRIVS: i32 = 39;
    const PR_SET_THP_DISABLE: i32 = 41;
    const PR_GET_THP_DISABLE: i32 = 42;
    let put_int = |addr: u64, v: i32| copy_out(addr, &v.to_le_bytes());
    match option {
        PR_SET_PDEATHSIG => {
            if a2 > 64 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PR_GET_PDEATHSIG | PR_GET_CHILD_SUBREAPER => put_int(a2, 0).map(|_| 0),
        PR_GET_DUMPABLE => Ok(u64::from(DUMPABLE.load(Ordering::Relaxed))),
        PR_SET_DUMPABLE => match a2 {
            0 | 1 => {
                DUMPABLE.store(a2 == 1, Ordering::Relaxed);
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        },
        PR_GET_KEEPCAPS | PR_GET_SECCOMP | PR_GET_THP_DISABLE => Ok(0),
        PR_SET_KEEPCAPS | PR_SET_CHILD_SUBREAPER | PR_SET_THP_DISABLE => Ok(0),
        PR_SET_NAME => {
            let mut name = user_string(a2, 4096)?;
            name.truncate(15);
            crate::special::proc::set_comm(my_tid(), &name);
            Ok(0)
        }
        PR_GET_NAME => {
            let mut b = [0u8; 16];
            let n = crate::special::proc::comm(my_tid());
            b[..n.len().min(15)].copy_from_slice(&n[..n.len().min(15)]);
            copy_out(a2, &b)?;
            Ok(0)
        }
        PR_CAPBSET_READ => {
            if a2 > 40 {
                return Err(Errno::EINVAL);
            }
            Ok(1)
        }
        PR_SET_TIMERSLACK => {
            TIMER_SLACK.store(if a2 == 0 { 50_000 } else { a2 }, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_TIMERSLACK => Ok(TIMER_SLACK.load(Ordering::Relaxed)),
        PR_SET_NO_NEW_PRIVS => {
            if a2 != 1 {
                return Err(Errno::EINVAL);
            }
            NO_NEW_PRIVS.store(true, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => Ok(u64::from(NO_NEW_PRIVS.load(Ordering::Relaxed))),
        _ => Err(Errno::EINVAL),
    }
}

/// wait4/waitid: the program has no children (one process per image).
pub fn wait_children() -> SysResult {
    Err(Errno::ECHILD)
}

pub fn sched_setaffinity(pid: i64, len: u64, mask: u64) -> SysResult {
    let tid = target_tid(pid)?;
    let n = (len as usize).min(128);
    if n == 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; n];
    copy_in(&mut b, mask)?;
    let mut m = 0u64;
    for (i, byte) in b.iter().take(8).enumerate() {
        m |= u64::from(*byte) << (8 * i);
    }
    let m = m & online_mask();
    if m == 0 {
        return Err(Errno::EINVAL);
    }
    AFFINITY.lock().insert(tid, m);
    Ok(0)
}

pub fn sched_getaffinity(pid: i64, len: u64, mask: u64) -> SysResult {
    let tid = target_tid(pid)?;
    let n = crate::cpu_count();
    let bytes = n.div_ceil(64) * 8;
    if (len as usize) < bytes || len % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    let m = AFFINITY
        .lock()
        .get(&tid)
        .copied()
        .unwrap_or_else(online_mask);
    let mut b = vec![0u8; bytes];
    for c in 0..n.min(64) {
        if m & (1 << c) != 0 {
            b[c / 8] |= 1 << (c % 8);
        }
    }
    copy_out(mask, &b)?;
    Ok(bytes as u64)
}

const SCHED_OTHER: i32 = 0;
const SCHED_FIFO: i32 = 1;
const SCHED_RR: i32 = 2;
const SCHED_BATCH: i32 = 3;
const SCHED_IDLE: i32 = 5;

pub fn sched_getscheduler(pid: i64) -> SysResult {
    target_tid(pid)?;
    Ok(SCHED_OTHER as u64)
}

pub fn sched_getparam(pid: i64, param: u64) -> SysResult {
    target_tid(pid)?;
    if param == 0 {
        return Err(Errno::EINVAL);
    }
    copy_out(param, &0i32.to_le_bytes())?;
    Ok(0)
}

/// sched_setscheduler / sched_setparam: the normal policies with priority
/// 0 are what every thread has; real-time policies are refused.
pub fn sched_setscheduler(pid: i64, policy: i32, param: u64) -> SysResult {
    target_tid(pid)?;
    let mut b = [0u8; 4];
    copy_in(&mut b, param)?;
    let prio = i32::from_le_bytes(b);
    match policy & !0x4000_0000 {
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE if prio == 0 => Ok(0),
        SCHED_FIFO | SCHED_RR if (1..=99).contains(&prio) => Err(Errno::EPERM),
        -1 if prio == 0 => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_priority_max(policy: i32) -> SysResult {
    match policy {
        SCHED_FIFO | SCHED_RR => Ok(99),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_priority_min(policy: i32) -> SysResult {
    match policy {
        SCHED_FIFO | SCHED_RR => Ok(1),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_rr_get_interval(pid: i64, out: u64) -> SysResult {
    target_tid(pid)?;
    let mut b = [0u8; 16];
    b[8..16].copy_from_slice(&100_000_000i64.to_le_bytes());
    copy_out(out, &b)?;
    Ok(0)
}

fn check_prio_target(which: i32, who: i64) -> Result<(), Errno> {
    const PRIO_PROCESS: i32 = 0;
    const PRIO_PGRP: i32 = 1;
    const PRIO_USER: i32 = 2;
    match which {
        PRIO_PROCESS | PRIO_PGRP | PRIO_USER => {}
        _ => return Err(Errno::EINVAL),
    }
    if who < 0 {
        return Err(Errno::ESRCH);
    }
    Ok(())
}

pub fn getpriority(which: i32, who: i64) -> SysResult {
    check_prio_target(which, who)?;
    // The kernel ABI returns 20 - nice (1..40); glibc converts back.
    Ok((20 - NICE.load(Ordering::Relaxed)) as u64)
}

pub fn setpriority(which: i32, who: i64, prio: i32) -> SysResult {
    check_prio_target(which, who)?;
    NICE.store(prio.clamp(-20, 19), Ordering::Relaxed);
    Ok(0)
}

pub fn membarrier(cmd: i32, flags: u32, _cpu: i32) -> SysResult {
    const QUERY: i32 = 0;
    const GLOBAL: i32 = 1;
    const GLOBAL_EXPEDITED: i32 = 2;
    const REGISTER_GLOBAL_EXPEDITED: i32 = 4;
    const PRIVATE_EXPEDITED: i32 = 8;
    const REGISTER_PRIVATE_EXPEDITED: i32 = 16;
    const PRIVATE_EXPEDITED_SYNC_CORE: i32 = 32;
    const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 64;
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let barrier = || {
        // An IPI to every other CPU and a wait for its answer: each runs an
        // interrupt (serialising, a full barrier) before the call returns.
        crate::smp::shootdown();
        Ok(0)
    };
    match cmd {
        QUERY => Ok((GLOBAL
            | GLOBAL_EXPEDITED
            | REGISTER_GLOBAL_EXPEDITED
            | PRIVATE_EXPEDITED
            | REGISTER_PRIVATE_EXPEDITED
            | PRIVATE_EXPEDITED_SYNC_CORE
            | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) as u64),
        GLOBAL | GLOBAL_EXPEDITED => barrier(),
        REGISTER_GLOBAL_EXPEDITED => Ok(0),
        REGISTER_PRIVATE_EXPEDITED => {
            MEMBARRIER_PRIVATE.store(true, Ordering::Relaxed);
            Ok(0)
        }
        REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
            MEMBARRIER_SYNC_CORE.store(true, Ordering::Relaxed);
            Ok(0)
        }
        PRIVATE_EXPEDITED if MEMBARRIER_PRIVATE.load(Ordering::Relaxed) => barrier(),
        PRIVATE_EXPEDITED_SYNC_CORE if MEMBARRIER_SYNC_CORE.load(Ordering::Relaxed) => barrier(),
        PRIVATE_EXPEDITED | PRIVATE_EXPEDITED_SYNC_CORE => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

const PAGE: u64 = 4096;

/// Faults every accessible page of `[start, end)` in.
fn make_resident(start: u64, end: u64) -> Result<(), Errno> {
    let aspace = &current().aspace;
    let areas = aspace.with_vmaps(|v| v.clipped(start, end - start))?;
    for a in areas {
        if !a.prot.accessible() {
            continue;
        }
        let mut page = a.start;
        while page < a.end {
            aspace
                .fault(page, false, false)
                .map_err(|_| Errno::ENOMEM)?;
            page += PAGE;
        }
    }
    Ok(())
}

fn page_range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
    let start = addr & !(PAGE - 1);
    let end = addr
        .checked_add(len)
        .and_then(|e| e.checked_next_multiple_of(PAGE))
        .ok_or(Errno::ENOMEM)?;
    Ok((start, end))
}

pub fn mlock(addr: u64, len: u64, flags: u32) -> SysResult {
    const MLOCK_ONFAULT: u32 = 1;
    if flags & !MLOCK_ONFAULT != 0 {
        return Err(Errno::EINVAL);
    }
    let (start, end) = page_range(addr, len)?;
    if start == end {
        return Ok(0);
    }
    if flags & MLOCK_ONFAULT != 0 {
        current()
            .aspace
            .with_vmaps(|v| v.clipped(start, end - start).map(|_| ()))?;
        return Ok(0);
    }
    make_resident(start, end)?;
    Ok(0)
}

pub fn munlock(addr: u64, len: u64) -> SysResult {
    let (start, end) = page_range(addr, len)?;
    if start < end {
        current()
            .aspace
            .with_vmaps(|v| v.clipped(start, end - start).map(|_| ()))?;
    }
    Ok(0)
}

pub fn mlockall(flags: i32) -> SysResult {
    const MCL_CURRENT: i32 = 1;
    const MCL_FUTURE: i32 = 2;
    const MCL_ONFAULT: i32 = 4;
    if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MCL_CURRENT != 0 && flags & MCL_ONFAULT == 0 {
        let areas: alloc::vec::Vec<(u64, u64)> = current()
            .aspace
            .with_vmaps(|v| Ok(v.iter().map(|a| (a.start, a.end)).collect()))?;
        for (s, e) in areas {
            // Areas may have changed since: skip what is gone.
            match make_resident(s, e) {
                Ok(()) | Err(Errno::ENOMEM) => {}
                Err(x) => return Err(x),
            }
        }
    }
    Ok(0)
}

/// `getcpu`: the CPU the thread runs on now (node 0; cairn has one NUMA
/// node). The answer may be stale by the time the program reads it, as on
/// Linux.
pub fn getcpu(cpu: u64, node: u64) -> SysResult {
    let index = crate::percpu::this_cpu().index() as u32;
    if cpu != 0 {
        super::copy_out(cpu, &index.to_le_bytes())?;
    }
    if node != 0 {
        super::copy_out(node, &0u32.to_le_bytes())?;
    }
    Ok(0)
}
