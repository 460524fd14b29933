//! Time, sleeps, identity, limits and randomness system calls (signals are
//! in [`super::signal`]).
//!
//! Kernel-lock context, in the calling thread.

use super::{SysResult, copy_in, copy_out};
use crate::process::current;
use cairn_unix::abi::{Rlimit, Timespec, Timeval, Utsname};
use cairn_unix::errno::Errno;
use core::sync::atomic::{AtomicU64, Ordering};

fn timespec_of(ns: u64) -> Timespec {
    Timespec {
        sec: (ns / 1_000_000_000) as i64,
        nsec: (ns % 1_000_000_000) as i64,
    }
}

fn clock_ns(clock: i32) -> Result<u64, Errno> {
    match clock {
        0 | 5 | 8 => Ok(crate::time::realtime_ns()), // REALTIME, _COARSE, _ALARM
        1 | 4 | 6 | 7 | 9 => Ok(crate::time::now_ns()), // MONOTONIC, _RAW, _COARSE, BOOTTIME
        2 | 3 => Ok(crate::time::now_ns()),          // process/thread CPU time (approximate)
        _ => Err(Errno::EINVAL),
    }
}

/// The `timespec` `clock_gettime(clock)` writes.
pub fn clock_bytes(clock: i32) -> Result<[u8; Timespec::SIZE], Errno> {
    let ns = clock_ns(clock)?;
    let mut b = [0u8; Timespec::SIZE];
    timespec_of(ns).encode(&mut b)?;
    Ok(b)
}

pub fn clock_gettime(clock: i32, out: u64) -> SysResult {
    copy_out(out, &clock_bytes(clock)?)?;
    Ok(0)
}

pub fn clock_getres(clock: i32, out: u64) -> SysResult {
    clock_ns(clock)?;
    if out != 0 {
        let mut b = [0u8; Timespec::SIZE];
        timespec_of(1).encode(&mut b)?;
        copy_out(out, &b)?;
    }
    Ok(0)
}

/// The `timeval` `gettimeofday` writes.
pub fn timeofday_bytes() -> [u8; Timeval::SIZE] {
    let ns = crate::time::realtime_ns();
    let tv = Timeval {
        sec: (ns / 1_000_000_000) as i64,
        usec: ((ns % 1_000_000_000) / 1000) as i64,
    };
    let mut b = [0u8; Timeval::SIZE];
    // The buffer is exactly the size the encoder needs.
    let _ = tv.encode(&mut b);
    b
}

pub fn gettimeofday(out: u64) -> SysResult {
    if out != 0 {
        copy_out(out, &timeofday_bytes())?;
    }
    Ok(0)
}

pub fn time(out: u64) -> SysResult {
    let secs = crate::time::realtime_ns() / 1_000_000_000;
    if out != 0 {
        copy_out(out, &secs.to_le_bytes())?;
    }
    Ok(secs)
}

/// Sleeps until the monotonic `deadline` unless a signal interrupts:
/// then `EINTR`, with the time left written to `rem` (relative sleeps).
fn sleep_until(deadline: u64, rem: u64) -> SysResult {
    match crate::sched::wait::sleep_until(deadline) {
        Ok(()) => Ok(0),
        Err(_) => {
            if rem != 0 {
                let left = deadline.saturating_sub(crate::time::now_ns());
                let mut b = [0u8; Timespec::SIZE];
                timespec_of(left).encode(&mut b)?;
                copy_out(rem, &b)?;
            }
            Err(Errno::EINTR)
        }
    }
}

pub fn nanosleep(req: u64, rem: u64) -> SysResult {
    let mut b = [0u8; Timespec::SIZE];
    copy_in(&mut b, req)?;
    let t = Timespec::decode_valid(&b)?;
    let ns = (t.sec as u64).saturating_mul(1_000_000_000) + t.nsec as u64;
    sleep_until(crate::time::now_ns().saturating_add(ns), rem)
}

pub fn clock_nanosleep(clock: i32, flags: i32, req: u64, rem: u64) -> SysResult {
    const TIMER_ABSTIME: i32 = 1;
    clock_ns(clock)?;
    let mut b = [0u8; Timespec::SIZE];
    copy_in(&mut b, req)?;
    let t = Timespec::decode_valid(&b)?;
    let ns = (t.sec as u64).saturating_mul(1_000_000_000) + t.nsec as u64;
    let deadline = if flags & TIMER_ABSTIME != 0 {
        let offset = clock_ns(clock)?.saturating_sub(crate::time::now_ns());
        ns.saturating_sub(offset)
    } else {
        crate::time::now_ns().saturating_add(ns)
    };
    // An absolute sleep reports no remaining time.
    sleep_until(deadline, if flags & TIMER_ABSTIME != 0 { 0 } else { rem })
}

static RANDOM_STATE: AtomicU64 = AtomicU64::new(0);

/// 64 random bits: RDRAND when the CPU has it, else a xorshift stream
/// seeded from the TSC.
pub fn random_u64() -> u64 {
    let (_, _, ecx, _) = cairn_pc::cpu::cpuid(1, 0);
    if ecx & (1 << 30) != 0 {
        for _ in 0..10 {
            if let Some(v) = cairn_pc::cpu::rdrand() {
                return v;
            }
        }
    }
    let mut x = RANDOM_STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = cairn_pc::cpu::rdtsc() | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RANDOM_STATE.store(x, Ordering::Relaxed);
    x
}

pub fn getrandom(buf: u64, len: u64) -> SysResult {
    let len = len.min(1 << 20) as usize;
    let mut b = alloc::vec![0u8; len];
    for chunk in b.chunks_mut(8) {
        let r = random_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    copy_out(buf, &b)?;
    Ok(len as u64)
}

pub fn uname(out: u64) -> SysResult {
    let u = Utsname {
        sysname: b"Linux",
        nodename: b"cairn",
        release: b"6.1.0-cairn",
        version: b"#1 SMP cairn",
        machine: b"x86_64",
        domainname: b"(none)",
    };
    let mut b = [0u8; Utsname::SIZE];
    u.encode(&mut b)?;
    copy_out(out, &b)?;
    Ok(0)
}

pub fn prlimit(pid: u64, resource: i32, new: u64, old: u64) -> SysResult {
    const RLIMIT_STACK: i32 = 3;
    const RLIMIT_NPROC: i32 = 6;
    const RLIMIT_NOFILE: i32 = 7;
    if pid != 0 && pid != 1 {
        return Err(Errno::ESRCH);
    }
    let cur = match resource {
        RLIMIT_STACK => Rlimit {
            cur: crate::process::exec::STACK_SIZE,
            max: crate::process::exec::STACK_SIZE,
        },
        RLIMIT_NPROC => {
            let n = crate::process::max_threads();
            Rlimit { cur: n, max: n }
        }
        RLIMIT_NOFILE => {
            let l = current().fds.lock().limit() as u64;
            Rlimit { cur: l, max: 4096 }
        }
        0..=15 => Rlimit {
            cur: u64::MAX,
            max: u64::MAX,
        },
        _ => return Err(Errno::EINVAL),
    };
    if old != 0 {
        let mut b = [0u8; Rlimit::SIZE];
        cur.encode(&mut b)?;
        copy_out(old, &b)?;
    }
    if new != 0 {
        let mut b = [0u8; Rlimit::SIZE];
        copy_in(&mut b, new)?;
        let n = Rlimit::decode(&b)?;
        if resource == RLIMIT_NOFILE {
            current().fds.lock().set_limit(n.cur.min(4096))?;
        }
    }
    Ok(0)
}

pub fn sysinfo(out: u64) -> SysResult {
    let mut b = [0u8; 112];
    let uptime = crate::time::now_ns() / 1_000_000_000;
    b[0..8].copy_from_slice(&uptime.to_le_bytes());
    let phys = crate::heaps::PHYSICAL.try_stats();
    if let Some(s) = phys {
        b[32..40].copy_from_slice(&s.total.to_le_bytes());
        b[40..48].copy_from_slice(&(s.total - s.allocated).to_le_bytes());
    }
    b[80..82].copy_from_slice(&1u16.to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    copy_out(out, &b)?;
    Ok(0)
}
