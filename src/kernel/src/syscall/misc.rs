//! Time, identity, limits, randomness and signal-disposition system calls.
//!
//! Signals are bookkeeping plus fatal delivery: dispositions and masks are
//! kept (`cairn_unix::signal`); a fatal signal (a fault, `abort`'s SIGABRT,
//! SIGALRM from `alarm`) ends the program with 128+N and a one-line report.
//! Handlers are never invoked (no signal frames yet).
//!
//! Kernel-lock context, in the calling thread (timer expiry: bh, deferred
//! to the runqueue).

use super::{SysResult, copy_in, copy_out};
use crate::process::current;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::{KernelSigaction, Rlimit, StackT, Timespec, Timeval, Utsname};
use cairn_unix::errno::Errno;
use cairn_unix::signal::{AltStack, SigSet, ThreadMask};
use core::sync::atomic::{AtomicU64, Ordering};

static MASK_CLASS: LockClass = LockClass::new("process.sigmask");
/// The signal mask (one for the program: cairn delivers no signals to
/// handlers, so per-thread masks change nothing observable).
static MASK: SpinLock<Option<ThreadMask>> = SpinLock::new(&MASK_CLASS, None);
static ALTSTACK_CLASS: LockClass = LockClass::new("process.altstack");
static ALTSTACK: SpinLock<Option<AltStack>> = SpinLock::new(&ALTSTACK_CLASS, None);

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

pub fn clock_gettime(clock: i32, out: u64) -> SysResult {
    let ns = clock_ns(clock)?;
    let mut b = [0u8; Timespec::SIZE];
    timespec_of(ns).encode(&mut b)?;
    copy_out(out, &b)?;
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

pub fn gettimeofday(out: u64) -> SysResult {
    if out != 0 {
        let ns = crate::time::realtime_ns();
        let tv = Timeval {
            sec: (ns / 1_000_000_000) as i64,
            usec: ((ns % 1_000_000_000) / 1000) as i64,
        };
        let mut b = [0u8; Timeval::SIZE];
        tv.encode(&mut b)?;
        copy_out(out, &b)?;
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

fn sleep_until(deadline: u64) {
    let now = crate::time::now_ns();
    if deadline > now {
        crate::sched::sleep(deadline - now);
    }
}

pub fn nanosleep(req: u64, _rem: u64) -> SysResult {
    let mut b = [0u8; Timespec::SIZE];
    copy_in(&mut b, req)?;
    let t = Timespec::decode_valid(&b)?;
    let ns = (t.sec as u64).saturating_mul(1_000_000_000) + t.nsec as u64;
    sleep_until(crate::time::now_ns().saturating_add(ns));
    Ok(0)
}

pub fn clock_nanosleep(clock: i32, flags: i32, req: u64, _rem: u64) -> SysResult {
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
    sleep_until(deadline);
    Ok(0)
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
    const RLIMIT_NOFILE: i32 = 7;
    if pid != 0 && pid != 1 {
        return Err(Errno::ESRCH);
    }
    let cur = match resource {
        RLIMIT_STACK => Rlimit {
            cur: crate::process::exec::STACK_SIZE,
            max: crate::process::exec::STACK_SIZE,
        },
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

pub fn rt_sigaction(sig: i32, act: u64, old: u64, sigsetsize: u64) -> SysResult {
    let new = if act != 0 {
        let mut b = [0u8; KernelSigaction::SIZE];
        copy_in(&mut b, act)?;
        Some(KernelSigaction::decode(&b)?)
    } else {
        None
    };
    let prev = current()
        .signals
        .lock()
        .rt_sigaction(sig as u32, new, sigsetsize)?;
    if old != 0 {
        let mut b = [0u8; KernelSigaction::SIZE];
        KernelSigaction::encode(&prev, &mut b)?;
        copy_out(old, &b)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(how: i32, set: u64, old: u64, sigsetsize: u64) -> SysResult {
    let new = if set != 0 {
        let mut b = [0u8; 8];
        copy_in(&mut b, set)?;
        Some(SigSet::from_bits(u64::from_le_bytes(b)))
    } else {
        None
    };
    let prev = MASK
        .lock()
        .get_or_insert_with(ThreadMask::default)
        .rt_sigprocmask(how, new, sigsetsize)?;
    if old != 0 {
        copy_out(old, &prev.bits().to_le_bytes())?;
    }
    Ok(0)
}

pub fn sigaltstack(new: u64, old: u64) -> SysResult {
    let n = if new != 0 {
        let mut b = [0u8; 24];
        copy_in(&mut b, new)?;
        let sp = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
        let flags = i32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
        let size = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default());
        Some(AltStack { sp, size, flags })
    } else {
        None
    };
    let mut s = ALTSTACK.lock();
    let mut cur = s.unwrap_or_default();
    let prev = cur.sigaltstack(n, false)?;
    *s = Some(cur);
    drop(s);
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

static ALARM: SpinLock<Option<(crate::timer::TimerId, u64)>> = SpinLock::new(&ALARM_CLASS, None);
static ALARM_CLASS: LockClass = LockClass::new("process.alarm");

pub fn alarm(secs: u32) -> SysResult {
    let prev = ALARM.lock().take();
    let remaining = match prev {
        Some((id, deadline)) => {
            crate::timer::cancel(id);
            deadline
                .saturating_sub(crate::time::now_ns())
                .div_ceil(1_000_000_000)
        }
        None => 0,
    };
    if secs > 0 {
        let ns = u64::from(secs) * 1_000_000_000;
        let id = crate::timer::after(ns, || {
            // Ending the program syncs the filesystem (it sleeps): do it
            // in a thread of its own.
            crate::sched::defer(|| {
                crate::sched::thread::spawn("sigalrm", || super::fatal_signal(14, "alarm expired"));
            });
        });
        *ALARM.lock() = Some((id, crate::time::now_ns() + ns));
    }
    Ok(remaining)
}

pub fn kill(n: u64, a: [u64; 6]) -> SysResult {
    let sig = match n {
        cairn_unix::syscalls::TGKILL => a[2],
        _ => a[1],
    } as u32;
    if sig == 0 {
        return Ok(0);
    }
    send_self(sig).map(|_| 0)
}

/// A signal the program sent itself, or the kernel raised for it
/// (SIGPIPE): its default action ends the program; ignored, it does
/// nothing; a handler is reported as unsupported.
pub fn send_self(sig: u32) -> Result<(), Errno> {
    let fatal = {
        let acts = current().signals.lock();
        let mut mask = MASK.lock();
        let mask = mask.get_or_insert_with(ThreadMask::default);
        cairn_unix::signal::deliver(&acts, mask, sig, cairn_unix::signal::Origin::Sent)?
    };
    match fatal {
        cairn_unix::signal::Delivery::Terminate(_) => super::fatal_signal(
            sig,
            if sig == cairn_unix::signal::SIGPIPE {
                "write to a pipe with no reader"
            } else {
                "signal sent by the program"
            },
        ),
        cairn_unix::signal::Delivery::Handler(_) => {
            crate::warn!("signal {sig} has a handler: handlers are not supported, ignored");
            Ok(())
        }
        _ => Ok(()),
    }
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
