//! cairn's vDSO: `__vdso_clock_gettime`, `__vdso_gettimeofday`,
//! `__vdso_time` and `__vdso_getcpu`, which glibc calls instead of the
//! system calls when the auxiliary vector names a vDSO (`AT_SYSINFO_EHDR`).
//!
//! Built by the kernel's `build.rs` into a shared object (`linux-vdso.so.1`,
//! symbols versioned `LINUX_2.6` as Linux's) with no relocations, and
//! mapped read-execute into the program by `process/vdso.rs`, with the
//! read-only data page [`Data`] right after it (`__vvar_page`, found
//! RIP-relative). The clocks compute exactly what `time.rs` computes: the
//! monotonic clock is `(tsc - tsc_base) * ns_per_tsc >> 32` nanoseconds,
//! the wall clock `realtime_base` plus that; any other clock, a program
//! without the data (`tsc_base` 0) and `getcpu` take the system call.
//!
//! User mode, any thread; no locks, no memory but the data page and the
//! caller's buffers. No panics, no calls into `core` beyond inlined
//! arithmetic (the link fails on any undefined symbol).
#![no_std]
#![allow(clippy::missing_safety_doc)]

use core::arch::asm;

/// The data page, as `process/vdso.rs` writes it.
#[repr(C)]
pub struct Data {
    /// Layout version (1).
    pub version: u64,
    /// TSC at calibration (`time.rs`'s `TSC_BASE`).
    pub tsc_base: u64,
    /// Nanoseconds per TSC tick, 32.32 fixed point.
    pub ns_per_tsc: u64,
    /// Wall-clock nanoseconds at calibration.
    pub realtime_base: u64,
}

#[repr(C)]
pub struct Timespec {
    sec: i64,
    nsec: i64,
}

#[repr(C)]
pub struct Timeval {
    sec: i64,
    usec: i64,
}

const SYS_GETTIMEOFDAY: u64 = 96;
const SYS_TIME: u64 = 201;
const SYS_CLOCK_GETTIME: u64 = 228;
const SYS_GETCPU: u64 = 309;

fn data() -> &'static Data {
    let p: *const Data;
    // SAFETY: `__vvar_page` is the page the kernel maps (readable) right
    // after this object; lea only computes its address.
    unsafe { asm!("lea {}, [rip + __vvar_page]", out(reg) p, options(nomem, nostack, pure)) };
    // SAFETY: the page holds a `Data`, written before the program starts
    // and never changed.
    unsafe { &*p }
}

/// A system call with three arguments.
unsafe fn syscall3(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller passes a system call and its arguments; the
    // kernel clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b, in("rdx") c,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Nanoseconds since calibration, or `None` without clock data.
fn monotonic_ns() -> Option<u64> {
    let d = data();
    if d.version != 1 || d.tsc_base == 0 {
        return None;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: lfence orders the TSC read after earlier loads (as Linux's
    // rdtsc_ordered); rdtsc only reads the counter.
    unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    let tsc = (u64::from(hi) << 32) | u64::from(lo);
    let delta = tsc.saturating_sub(d.tsc_base);
    Some(((u128::from(delta) * u128::from(d.ns_per_tsc)) >> 32) as u64)
}

fn realtime_ns() -> Option<u64> {
    monotonic_ns().map(|n| n.wrapping_add(data().realtime_base))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __vdso_clock_gettime(clock: i32, ts: *mut Timespec) -> i64 {
    let ns = match clock {
        0 | 5 => realtime_ns(),         // REALTIME, REALTIME_COARSE
        1 | 4 | 6 | 7 => monotonic_ns(), // MONOTONIC, _RAW, _COARSE, BOOTTIME
        _ => None,
    };
    match ns {
        Some(ns) => {
            // SAFETY: the caller's buffer (a bad pointer faults as the
            // caller's own store would).
            unsafe {
                (*ts).sec = (ns / 1_000_000_000) as i64;
                (*ts).nsec = (ns % 1_000_000_000) as i64;
            }
            0
        }
        // SAFETY: the system call checks its arguments.
        None => unsafe { syscall3(SYS_CLOCK_GETTIME, clock as i64 as u64, ts as u64, 0) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __vdso_gettimeofday(tv: *mut Timeval, tz: *mut u64) -> i64 {
    let Some(ns) = realtime_ns() else {
        // SAFETY: the system call checks its arguments.
        return unsafe { syscall3(SYS_GETTIMEOFDAY, tv as u64, tz as u64, 0) };
    };
    if !tv.is_null() {
        // SAFETY: the caller's buffer.
        unsafe {
            (*tv).sec = (ns / 1_000_000_000) as i64;
            (*tv).usec = ((ns % 1_000_000_000) / 1000) as i64;
        }
    }
    if !tz.is_null() {
        // SAFETY: the caller's `struct timezone` (two ints): UTC.
        unsafe { *tz = 0 };
    }
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __vdso_time(t: *mut i64) -> i64 {
    let Some(ns) = realtime_ns() else {
        // SAFETY: the system call checks its argument.
        return unsafe { syscall3(SYS_TIME, t as u64, 0, 0) };
    };
    let s = (ns / 1_000_000_000) as i64;
    if !t.is_null() {
        // SAFETY: the caller's buffer.
        unsafe { *t = s };
    }
    s
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __vdso_getcpu(cpu: *mut u32, node: *mut u32, cache: *mut u8) -> i64 {
    // SAFETY: the system call checks its arguments.
    unsafe { syscall3(SYS_GETCPU, cpu as u64, node as u64, cache as u64) }
}
