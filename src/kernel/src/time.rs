//! Time: the monotonic clock (the TSC, calibrated once against the PIT) and
//! the local APIC timer's rate.
//!
//! `now_ns` counts nanoseconds since calibration and is callable from any
//! context, on any CPU (QEMU keeps the TSCs of its vCPUs in step). No locks.

use cairn_pc::cpu::rdtsc;
use core::sync::atomic::{AtomicU64, Ordering};

static TSC_BASE: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point multiplier.
static NS_PER_TSC_FP: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per second.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer ticks per second (divider 1).
static APIC_HZ: AtomicU64 = AtomicU64::new(0);

/// Length of the calibration window.
const CALIBRATION_US: u64 = 10_000;

/// Measures the TSC and APIC timer rates against the PIT. Bootstrap CPU,
/// interrupts off, APIC enabled.
pub fn calibrate() {
    cairn_pc::apic::timer_start_free_running();
    let apic0 = cairn_pc::apic::timer_current();
    let tsc0 = rdtsc();
    cairn_pc::pit::wait_micros(CALIBRATION_US);
    let tsc1 = rdtsc();
    let apic1 = cairn_pc::apic::timer_current();
    cairn_pc::apic::timer_stop();
    let tsc_hz = (tsc1 - tsc0) * 1_000_000 / CALIBRATION_US;
    let apic_hz = u64::from(apic0 - apic1) * 1_000_000 / CALIBRATION_US;
    TSC_HZ.store(tsc_hz.max(1), Ordering::Relaxed);
    APIC_HZ.store(apic_hz.max(1), Ordering::Relaxed);
    NS_PER_TSC_FP.store(
        ((1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1))) as u64,
        Ordering::Relaxed,
    );
    TSC_BASE.store(tsc0, Ordering::Release);
}

/// Wall-clock nanoseconds since the epoch at calibration (from the RTC).
static REALTIME_BASE_NS: AtomicU64 = AtomicU64::new(0);

/// Reads the RTC for the wall clock (boot, after `calibrate`).
pub fn init_realtime() {
    let secs = cairn_pc::rtc::unix_time().unwrap_or(0);
    let base = (secs * 1_000_000_000).saturating_sub(now_ns());
    REALTIME_BASE_NS.store(base, Ordering::Relaxed);
}

/// Wall-clock time in nanoseconds since 1970.
pub fn realtime_ns() -> u64 {
    REALTIME_BASE_NS.load(Ordering::Relaxed) + now_ns()
}

/// Nanoseconds since calibration (0 before).
pub fn now_ns() -> u64 {
    let base = TSC_BASE.load(Ordering::Acquire);
    if base == 0 {
        return 0;
    }
    let delta = rdtsc().saturating_sub(base);
    ((u128::from(delta) * u128::from(NS_PER_TSC_FP.load(Ordering::Relaxed))) >> 32) as u64
}

/// What the vDSO's data page carries (`process/vdso.rs`): the TSC at
/// calibration, nanoseconds per tick (32.32 fixed point) and the wall
/// clock's base, so that user-mode clocks compute exactly [`now_ns`] and
/// [`realtime_ns`]. The values are set once at boot; whatever changes them
/// later must update the data page too.
pub fn vdso_params() -> (u64, u64, u64) {
    (
        TSC_BASE.load(Ordering::Acquire),
        NS_PER_TSC_FP.load(Ordering::Relaxed),
        REALTIME_BASE_NS.load(Ordering::Relaxed),
    )
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn apic_timer_hz() -> u64 {
    APIC_HZ.load(Ordering::Relaxed)
}

/// APIC timer ticks for `ns` nanoseconds (at least 1, at most `u32::MAX`).
pub fn ns_to_apic_ticks(ns: u64) -> u32 {
    let t = u128::from(ns) * u128::from(apic_timer_hz()) / 1_000_000_000;
    t.clamp(1, u128::from(u32::MAX)) as u32
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    if TSC_BASE.load(Ordering::Acquire) == 0 {
        cairn_pc::pit::wait_micros(us);
        return;
    }
    let end = now_ns() + us * 1000;
    while now_ns() < end {
        core::hint::spin_loop();
    }
}
