//! The local APIC of each CPU, in x2APIC mode (MSRs) when the CPU offers it,
//! otherwise xAPIC mode (memory-mapped at the address the kernel maps).
//!
//! Provides: enabling with a spurious vector, end-of-interrupt, the local
//! APIC id, IPIs (fixed, INIT, start-up), and the timer in one-shot or
//! periodic mode. The mode is chosen once at boot for every CPU.
//! Any context on the owning CPU (IPIs and EOI from irq context too); no
//! locks: every register touched belongs to the calling CPU's APIC.

use crate::cpu::{self, msr, rdmsr, wrmsr};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

mod reg {
    pub const ID: u32 = 0x20;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xb0;
    pub const SVR: u32 = 0xf0;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3e0;
}

const MASKED: u32 = 1 << 16;
const TIMER_PERIODIC: u32 = 1 << 17;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0xb;

static X2APIC: AtomicBool = AtomicBool::new(false);
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);

/// Physical address of the xAPIC registers when the firmware left the
/// default.
pub const XAPIC_DEFAULT_PHYS: u64 = 0xfee0_0000;

/// Chooses the mode for every CPU: x2APIC if `use_x2apic`, else xAPIC with
/// registers mapped (uncached) at `xapic_virt`.
pub fn select_mode(use_x2apic: bool, xapic_virt: u64) {
    X2APIC.store(use_x2apic, Ordering::Relaxed);
    XAPIC_VIRT.store(xapic_virt, Ordering::Relaxed);
}

pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

fn read(r: u32) -> u32 {
    if is_x2apic() {
        // SAFETY: in x2APIC mode, MSR 0x800 + offset/16 is the register.
        unsafe { rdmsr(0x800 + (r >> 4)) as u32 }
    } else {
        let p = (XAPIC_VIRT.load(Ordering::Relaxed) + u64::from(r)) as *const u32;
        // SAFETY: `select_mode` was given an uncached mapping of this CPU's
        // APIC page; `r` is a register offset inside it.
        unsafe { p.read_volatile() }
    }
}

fn write(r: u32, v: u32) {
    if is_x2apic() {
        // SAFETY: as in `read`; the register is the calling CPU's own.
        unsafe { wrmsr(0x800 + (r >> 4), u64::from(v)) }
    } else {
        let p = (XAPIC_VIRT.load(Ordering::Relaxed) + u64::from(r)) as *mut u32;
        // SAFETY: as in `read`.
        unsafe { p.write_volatile(v) }
    }
}

/// Enables this CPU's APIC with `spurious` as its spurious vector and
/// `error` as its error vector; masks LINT0 (the legacy PIC is unused).
pub fn enable(spurious: u8, error: u8) {
    // SAFETY: APIC_BASE exists on every x86-64 CPU; setting the enable bits
    // (and x2APIC mode when chosen) keeps the base address.
    unsafe {
        let base = rdmsr(msr::APIC_BASE);
        let mut v = base | (1 << 11);
        if is_x2apic() {
            v |= 1 << 10;
        }
        wrmsr(msr::APIC_BASE, v);
    }
    write(reg::TPR, 0);
    write(reg::LVT_LINT0, MASKED);
    write(reg::LVT_ERROR, u32::from(error));
    write(reg::ESR, 0);
    write(reg::SVR, 0x100 | u32::from(spurious));
}

/// Signals end of interrupt for the vector being serviced.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// This CPU's local APIC id.
pub fn id() -> u32 {
    if is_x2apic() {
        read(reg::ID)
    } else {
        read(reg::ID) >> 24
    }
}

fn send_icr(dest: u32, low: u32) {
    // xAPIC mode writes two registers: an interrupt between them that sends
    // its own IPI would redirect ours. Keep interrupts off for the pair.
    let was_on = cpu::interrupts_enabled();
    cpu::disable_interrupts();
    if is_x2apic() {
        // SAFETY: the x2APIC ICR is one MSR; writing it sends the IPI.
        unsafe { wrmsr(0x830, (u64::from(dest) << 32) | u64::from(low)) };
    } else {
        write(reg::ICR_HIGH, dest << 24);
        write(reg::ICR_LOW, low);
        while read(reg::ICR_LOW) & (1 << 12) != 0 {
            cpu::pause();
        }
    }
    if was_on {
        cpu::enable_interrupts();
    }
}

/// Sends fixed interrupt `vector` to the CPU with APIC id `dest`.
pub fn send_ipi(dest: u32, vector: u8) {
    send_icr(dest, u32::from(vector) | (1 << 14));
}

/// Sends an INIT IPI (assert) to `dest`.
pub fn send_init(dest: u32) {
    send_icr(dest, 0x4500);
}

/// Sends a start-up IPI to `dest`: the AP starts in real mode at
/// `page << 12`.
pub fn send_startup(dest: u32, page: u8) {
    send_icr(dest, 0x4600 | u32::from(page));
}

/// Arms this CPU's timer to fire `vector` once after `ticks` timer ticks
/// (`ticks` 0 stops it).
pub fn timer_oneshot(vector: u8, ticks: u32) {
    write(reg::TIMER_DIVIDE, DIVIDE_BY_1);
    write(reg::LVT_TIMER, u32::from(vector));
    write(reg::TIMER_INITIAL, ticks);
}

/// Arms this CPU's timer to fire `vector` every `ticks` ticks.
pub fn timer_periodic(vector: u8, ticks: u32) {
    write(reg::TIMER_DIVIDE, DIVIDE_BY_1);
    write(reg::LVT_TIMER, u32::from(vector) | TIMER_PERIODIC);
    write(reg::TIMER_INITIAL, ticks);
}

/// Stops this CPU's timer.
pub fn timer_stop() {
    write(reg::LVT_TIMER, MASKED);
    write(reg::TIMER_INITIAL, 0);
}

/// The timer's current count (for calibration).
pub fn timer_current() -> u32 {
    read(reg::TIMER_CURRENT)
}

/// Starts the timer counting down from `u32::MAX`, masked (for calibration).
pub fn timer_start_free_running() {
    write(reg::TIMER_DIVIDE, DIVIDE_BY_1);
    write(reg::LVT_TIMER, MASKED);
    write(reg::TIMER_INITIAL, u32::MAX);
}
