//! Heap tests in the kernel: the global allocator's routing, patterns that
//! detect overlapping blocks, two CPUs using `locked` while interrupts
//! allocate from it, and the negative tests of the general-heap checks.

use super::util::wait_for;
use super::{Expect, KernelTest};
use crate::percpu::this_cpu;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "heap_patterns",
        smp: &[1],
        expect: Expect::Pass,
        run: heap_patterns,
    },
    KernelTest {
        name: "heap_locked_from_irq",
        smp: &[2],
        expect: Expect::Pass,
        run: locked_from_irq,
    },
    KernelTest {
        name: "general_heap_in_bh",
        smp: &[2],
        expect: Expect::Panic("heap `general`: use at"),
        run: general_heap_in_bh,
    },
    KernelTest {
        name: "general_free_in_bh",
        smp: &[2],
        expect: Expect::Panic("heap `general`: free at"),
        run: general_free_in_bh,
    },
];

/// A tiny deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn heap_patterns() -> Result<(), String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<(Vec<u8>, u8)> = Vec::new();
    for round in 0..20_000u32 {
        if live.len() < 400 && (rng.next() % 3 != 0 || live.is_empty()) {
            let size = match rng.next() % 10 {
                0 => (rng.next() % 70_000) as usize + 1,
                1..=3 => (rng.next() % 4096) as usize + 1,
                _ => (rng.next() % 256) as usize + 1,
            };
            let tag = (round % 251) as u8;
            let v = if rng.next() % 2 == 0 {
                alloc::vec![tag; size]
            } else {
                cairn_sync::cpu::bh_safe_alloc(|| alloc::vec![tag; size])
            };
            live.push((v, tag));
        } else {
            let i = (rng.next() as usize) % live.len();
            let (v, tag) = live.swap_remove(i);
            if let Some(p) = v.iter().position(|&b| b != tag) {
                return Err(format!(
                    "round {round}: block of {} bytes overwritten at {p}",
                    v.len()
                ));
            }
        }
        // Grow one block now and then: realloc keeps the owning heap.
        if round % 97 == 0 && !live.is_empty() {
            let i = (rng.next() as usize) % live.len();
            let (v, tag) = &mut live[i];
            let extra = (rng.next() % 5000) as usize;
            v.resize(v.len() + extra, *tag);
        }
    }
    for (v, tag) in &live {
        if v.iter().any(|b| b != tag) {
            return Err("a surviving block was overwritten".into());
        }
    }
    crate::heaps::dump();
    Ok(())
}

static IRQ_ALLOCS: AtomicU64 = AtomicU64::new(0);
static IRQ_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The producing interrupt: allocates from `locked` (irq context routes
/// there), checks and frees.
fn irq_alloc(_: usize) {
    if this_cpu().index() != IRQ_CPU.load(Ordering::Relaxed) {
        return;
    }
    let n = IRQ_ALLOCS.fetch_add(1, Ordering::Relaxed);
    let b = Box::new([n as u8; 48]);
    assert!(b.iter().all(|&x| x == n as u8), "irq block overwritten");
    drop(b);
    if n >= 5000 {
        cairn_pc::apic::timer_stop();
    }
}

fn locked_from_irq() -> Result<(), String> {
    IRQ_CPU.store(this_cpu().index(), Ordering::Relaxed);
    let v = crate::irq::allocate(crate::irq::Handler {
        func: irq_alloc,
        arg: 0,
    })
    .ok_or("no vector")?;
    cairn_pc::apic::timer_periodic(v, crate::time::ns_to_apic_ticks(30_000));
    // Meanwhile both CPUs allocate from `locked` in bh-safe scopes: this
    // thread (kernel lock) and a worker draining on the other CPU (bh).
    static BH_ROUNDS: AtomicU64 = AtomicU64::new(0);
    fn bh_work(_: usize) {
        for i in 0..64u8 {
            let v = alloc::vec![i; 100 + usize::from(i)];
            assert!(v.iter().all(|&x| x == i), "bh block overwritten");
        }
        BH_ROUNDS.fetch_add(1, Ordering::Relaxed);
    }
    // No sleeping here: the kernel's timers would re-arm this CPU's APIC
    // timer and end the interrupt stream.
    let mut rounds = 0u64;
    let deadline = crate::time::now_ns() + super::util::HANG_NS;
    while IRQ_ALLOCS.load(Ordering::Relaxed) < 5000 {
        if crate::time::now_ns() > deadline {
            cairn_pc::apic::timer_stop();
            return Err(format!(
                "hang: {} interrupt allocations",
                IRQ_ALLOCS.load(Ordering::Relaxed)
            ));
        }
        if rounds % 16 == 0 {
            let _ = crate::sched::schedule_bh(cairn_sync::BhWork::new(bh_work, 0));
        }
        let v: Vec<Vec<u8>> =
            cairn_sync::cpu::bh_safe_alloc(|| (0..32u8).map(|i| alloc::vec![i; 200]).collect());
        for (i, b) in v.iter().enumerate() {
            if b.iter().any(|&x| x != i as u8) {
                return Err("kernel-lock block overwritten".into());
            }
        }
        rounds += 1;
    }
    cairn_pc::apic::timer_stop();
    wait_for("bh allocations on the other CPU", || {
        BH_ROUNDS.load(Ordering::Relaxed) > 0
    })?;
    crate::info!(
        "locked heap: {} irq allocations, {} bh rounds, {rounds} kernel-lock rounds",
        IRQ_ALLOCS.load(Ordering::Relaxed),
        BH_ROUNDS.load(Ordering::Relaxed)
    );
    Ok(())
}

fn general_heap_in_bh() -> Result<(), String> {
    fn in_bh(_: usize) {
        let _ = crate::heaps::with_general(|g| cairn_heap::Heap::alloc(g, 64, 8));
    }
    crate::sched::schedule_bh(cairn_sync::BhWork::new(in_bh, 0)).map_err(|_| "bhqueue full")?;
    crate::sched::sleep(2_000_000_000);
    Err("the general heap was used in bh context without a panic".into())
}

static LEAKED: AtomicU64 = AtomicU64::new(0);

fn general_free_in_bh() -> Result<(), String> {
    // Allocated under the kernel lock (general), freed in bh context: the
    // seeds/003 bug class.
    let b = Box::new([7u8; 64]);
    LEAKED.store(Box::into_raw(b) as u64, Ordering::Release);
    fn in_bh(_: usize) {
        let p = LEAKED.load(Ordering::Acquire) as *mut [u8; 64];
        // SAFETY: the pointer came from `Box::into_raw` in the test thread
        // and is freed once, here.
        drop(unsafe { Box::from_raw(p) });
    }
    crate::sched::schedule_bh(cairn_sync::BhWork::new(in_bh, 0)).map_err(|_| "bhqueue full")?;
    crate::sched::sleep(2_000_000_000);
    Err("general-heap memory was freed in bh context without a panic".into())
}
