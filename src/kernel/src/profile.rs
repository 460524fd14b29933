//! A sampling profiler: where the CPUs are when the local APIC timer
//! fires, counted per instruction address, for `cargo xtask profile`.
//!
//! Off unless the command line says `profile=<hz>`. Then every CPU keeps a
//! third deadline beside the timers' and the time slice's
//! (`PerCpu::sample_deadline_ns`, armed by `timer::program_local`); when
//! it passes, [`tick`] counts the interrupted instruction pointer (or
//! [`USER`] for user mode) in one fixed, lock-free open-addressing table
//! and re-arms; for a kernel-mode sample it also counts the return
//! address of the interrupted function's frame (its caller, read through
//! the frame pointer with a fault-tolerant load) under a caller flag, so a
//! sample in a small shared helper can be charged to who called it. A
//! program marks the phases of its run by writing a name to
//! `/proc/cairn/profile` ([`mark`]): samples are counted per phase, and the
//! phase's name is printed at once. At exit [`dump`] prints every count as
//! `profile <phase> <address> <count>` (callers as `profile caller ...`);
//! xtask symbolises them with the
//! kernel's symbol table.
//!
//! What it cannot see: code that runs with interrupts off (irq handlers,
//! irq-safe spinlock sections, the syscall entry before it enables
//! interrupts) is charged to the instruction where interrupts come back on.
//! A halted CPU is charged to its `hlt` (the idle loop), which is the
//! point: idle time shows.
//!
//! Contexts: [`tick`] in irq context (no locks, no allocation); [`mark`]
//! and [`dump`] anywhere (they print). Locks: none (atomics only).

use cairn_pc::idt::TrapFrame;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The address counted for a sample taken in user mode.
pub const USER: u64 = 1;

/// Slots in the table: distinct (phase, address) pairs it can count.
const SLOTS: usize = 16 * 1024;

/// Sampling period (ns); 0 while the profiler is off.
static PERIOD_NS: AtomicU64 = AtomicU64::new(0);
/// The phase samples are counted in (the number of [`mark`]s so far).
static PHASE: AtomicU32 = AtomicU32::new(0);
/// Samples not counted because the table was full.
static LOST: AtomicU64 = AtomicU64::new(0);

/// Set in a key's phase field for a caller count.
const CALLER: u64 = 1 << 15;

struct Slot {
    /// `(phase | CALLER?) << 48 | address & (2^48 - 1)`, 0 while free.
    key: AtomicU64,
    count: AtomicU64,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        key: AtomicU64::new(0),
        count: AtomicU64::new(0),
    }
}; SLOTS];

const ADDRESS_BITS: u64 = (1 << 48) - 1;

/// Turns the profiler on at `hz` samples per second per CPU (boot, before
/// the other CPUs start; each CPU arms its first sample the next time it
/// programs its timer).
pub fn enable(hz: u64) {
    let hz = hz.clamp(1, 100_000);
    PERIOD_NS.store(1_000_000_000 / hz, Ordering::Relaxed);
    crate::println!("profile: sampling at {hz} Hz per CPU");
}

/// The sampling period in ns, 0 when off.
pub fn period_ns() -> u64 {
    PERIOD_NS.load(Ordering::Relaxed)
}

/// Called for every local APIC timer interrupt, before its handler (irq
/// context): counts one sample if this CPU's sample deadline passed and
/// sets the next one; the handler's `program_local` then arms for it.
pub fn tick(frame: &TrapFrame) {
    let period = period_ns();
    if period == 0 {
        return;
    }
    let c = crate::percpu::this_cpu();
    let now = crate::time::now_ns();
    let due = c.sample_deadline_ns.load(Ordering::Relaxed);
    if due != 0 && due <= now {
        if frame.from_user() {
            count(USER, 0);
        } else {
            count(frame.rip, 0);
            if let Some(ret) = caller(frame.rbp) {
                count(ret, CALLER);
            }
        }
    }
    if due == 0 || due <= now {
        c.sample_deadline_ns.store(now + period, Ordering::Relaxed);
    }
}

/// This CPU's next sample deadline for `timer::program_local` (0: none),
/// starting the sampling on a CPU that has not sampled yet.
pub fn local_deadline() -> u64 {
    let period = period_ns();
    if period == 0 {
        return 0;
    }
    let c = crate::percpu::this_cpu();
    let d = c.sample_deadline_ns.load(Ordering::Relaxed);
    if d != 0 {
        return d;
    }
    let d = crate::time::now_ns() + period;
    c.sample_deadline_ns.store(d, Ordering::Relaxed);
    d
}

/// The return address in the frame at `rbp`, if `rbp` looks like a
/// kernel frame pointer and the word is mapped.
fn caller(rbp: u64) -> Option<u64> {
    if rbp % 8 != 0 || rbp < 0xffff_8000_0000_0000 {
        return None;
    }
    crate::panic::read_u64(rbp + 8).filter(|&a| a >= 0xffff_8000_0000_0000)
}

fn count(address: u64, flag: u64) {
    let phase = (u64::from(PHASE.load(Ordering::Relaxed)) & (CALLER - 1)) | flag;
    let key = (phase << 48) | (address & ADDRESS_BITS);
    let start = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize;
    for i in 0..SLOTS {
        let slot = &TABLE[(start + i) % SLOTS];
        let k = match slot
            .key
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => key,
            Err(k) => k,
        };
        if k == key {
            slot.count.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    LOST.fetch_add(1, Ordering::Relaxed);
}

/// Starts a new phase named `name` (what a program wrote to
/// `/proc/cairn/profile`); its number and name go to the console.
pub fn mark(name: &[u8]) {
    if period_ns() == 0 {
        return;
    }
    let n = PHASE.fetch_add(1, Ordering::AcqRel) + 1;
    let name = core::str::from_utf8(name).unwrap_or("?").trim();
    crate::println!("profile phase {n} {name}");
}

/// Prints every count (at exit).
pub fn dump() {
    if period_ns() == 0 {
        return;
    }
    for slot in &TABLE {
        let key = slot.key.load(Ordering::Acquire);
        let n = slot.count.load(Ordering::Relaxed);
        if key == 0 || n == 0 {
            continue;
        }
        let mut address = key & ADDRESS_BITS;
        if address & (1 << 47) != 0 {
            address |= !ADDRESS_BITS; // a kernel address: sign-extend
        }
        let phase = key >> 48;
        if phase & CALLER != 0 {
            crate::println!("profile caller {} {address:#x} {n}", phase & !CALLER);
        } else {
            crate::println!("profile {phase} {address:#x} {n}");
        }
    }
    crate::println!("profile lost {}", LOST.load(Ordering::Relaxed));
}
