//! Negative tests: each must end in a kernel panic whose message the runner
//! checks, proving the validators and the exception reporting fire.

use super::{Expect, KernelTest};
use crate::sched::mutex::SleepMutex;
use alloc::string::String;
use cairn_sync::{IrqSpinLock, LockClass, SpinLock};

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "lockdep_inversion",
        smp: &[2],
        expect: Expect::Panic("lock order inversion: acquiring `ktest.a`"),
        run: lockdep_inversion,
    },
    KernelTest {
        name: "lockdep_irq_unsafe",
        smp: &[2],
        expect: Expect::Panic(
            "irq-unsafe lock: `ktest.bh_shared` acquired with interrupts enabled",
        ),
        run: lockdep_irq_unsafe,
    },
    KernelTest {
        name: "kernel_lock_in_bh",
        smp: &[2],
        expect: Expect::Panic("kernel lock taken in Bh context"),
        run: kernel_lock_in_bh,
    },
    KernelTest {
        name: "lockdep_sleep_under_spinlock",
        smp: &[2],
        expect: Expect::Panic("sleeping lock `ktest.sleep` acquired"),
        run: lockdep_sleep_under_spinlock,
    },
    KernelTest {
        name: "lockdep_sleep_inversion",
        smp: &[2],
        expect: Expect::Panic("lock order inversion: acquiring `ktest.sleep_a`"),
        run: lockdep_sleep_inversion,
    },
    KernelTest {
        name: "unhandled_page_fault",
        smp: &[1],
        expect: Expect::Panic(
            "unhandled page fault (#PF) (vector 14) in kernel mode, error code 0x2, CR2=0xffffe000dead0008",
        ),
        run: unhandled_page_fault,
    },
];

static A: LockClass = LockClass::new("ktest.a");
static B: LockClass = LockClass::new("ktest.b");

fn lockdep_inversion() -> Result<(), String> {
    let a = SpinLock::new(&A, ());
    let b = SpinLock::new(&B, ());
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    let _ga = b.lock();
    let _gb = a.lock();
    Err("the validator let an inversion through".into())
}

static BH_SHARED: LockClass = LockClass::new("ktest.bh_shared");
static SHARED_IRQSAFE: IrqSpinLock<u64> = IrqSpinLock::new(&BH_SHARED, 0);
static SHARED_PLAIN: SpinLock<u64> = SpinLock::new(&BH_SHARED, 0);
static BH_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn lockdep_irq_unsafe() -> Result<(), String> {
    fn in_bh(_: usize) {
        *SHARED_IRQSAFE.lock() += 1;
        BH_DONE.store(true, core::sync::atomic::Ordering::Release);
    }
    crate::sched::schedule_bh(cairn_sync::BhWork::new(in_bh, 0)).map_err(|_| "bhqueue full")?;
    super::util::wait_for("the bh item", || {
        BH_DONE.load(core::sync::atomic::Ordering::Acquire)
    })?;
    // Same class, interrupts enabled, kernel-lock context: must panic.
    *SHARED_PLAIN.lock() += 1;
    Err("the validator let an irq-unsafe acquisition through".into())
}

fn kernel_lock_in_bh() -> Result<(), String> {
    fn in_bh(_: usize) {
        let _k = crate::sched::KERNEL_LOCK.lock();
    }
    crate::sched::schedule_bh(cairn_sync::BhWork::new(in_bh, 0)).map_err(|_| "bhqueue full")?;
    crate::sched::sleep(2_000_000_000);
    Err("taking the kernel lock in bh context did not panic".into())
}

fn unhandled_page_fault() -> Result<(), String> {
    let p = 0xffff_e000_dead_0008u64 as *mut u64;
    // SAFETY: deliberately not sound: the address is unmapped and the write
    // must fault; the test expects the kernel to report it and panic.
    unsafe { p.write_volatile(1) };
    Err("a write to an unmapped address did not fault".into())
}

static SLEEP: LockClass = LockClass::new("ktest.sleep");
static SPIN_OUTER: LockClass = LockClass::new("ktest.spin_outer");

/// A sleeping mutex taken under a spinlock: the holder of a spinlock may
/// not sleep, so the validator refuses even an uncontended acquisition.
fn lockdep_sleep_under_spinlock() -> Result<(), String> {
    let m = SleepMutex::new(&SLEEP, ());
    let s = SpinLock::new(&SPIN_OUTER, ());
    let _g = s.lock();
    let _m = m.lock();
    Err("a sleeping mutex was taken under a spinlock".into())
}

static SLEEP_A: LockClass = LockClass::new("ktest.sleep_a");
static SLEEP_B: LockClass = LockClass::new("ktest.sleep_b");

/// Two sleeping mutexes in both orders, with a sleep in between (the
/// thread may come back on another CPU: the order is the thread's).
fn lockdep_sleep_inversion() -> Result<(), String> {
    let a = SleepMutex::new(&SLEEP_A, ());
    let b = SleepMutex::new(&SLEEP_B, ());
    {
        let _a = a.lock();
        crate::sched::sleep(1_000_000);
        let _b = b.lock();
    }
    let _b = b.lock();
    crate::sched::sleep(1_000_000);
    let _a = a.lock();
    Err("the validator let a sleeping-mutex inversion through".into())
}
