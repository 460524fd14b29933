//! Scheduling tests: timers, the bhqueue fed from interrupts, kernel-lock
//! contention, thread block and wake-up.

use super::util::wait_for;
use super::{Expect, KernelTest};
use crate::percpu::{cpus, this_cpu};
use crate::sched::waitqueue::WaitQueue;
use crate::sched::{KERNEL_LOCK, bhqueue, schedule_bh, thread};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_pc::acpi::MAX_CPUS;
use cairn_sync::BhWork;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "timer",
        smp: &[1, 2],
        expect: Expect::Pass,
        run: timers,
    },
    KernelTest {
        name: "bhqueue_from_irq",
        smp: &[1, 2, 4],
        expect: Expect::Pass,
        run: bhqueue_from_irq,
    },
    KernelTest {
        name: "kernel_lock_contention",
        smp: &[2, 4],
        expect: Expect::Pass,
        run: kernel_lock_contention,
    },
    KernelTest {
        name: "thread_block_wake",
        smp: &[1, 2, 4],
        expect: Expect::Pass,
        run: thread_block_wake,
    },
    KernelTest {
        name: "oneshot",
        smp: &[1, 2],
        expect: Expect::Pass,
        run: oneshot,
    },
];

/// The one completion → sleep waiter: a value delivered before the wait is
/// taken at once; values delivered from bh context (timer callbacks) wake
/// their threads, many at once, each with its own value.
fn oneshot() -> Result<(), String> {
    use crate::sched::OneShot;
    let early = OneShot::new();
    early.handle().deliver(alloc::vec![1u8, 2, 3]);
    if !early.is_done() || early.wait() != [1, 2, 3] {
        return Err("a value delivered before the wait was lost".into());
    }
    const THREADS: usize = 8;
    let wrong_context = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let all_done: OneShot<()> = OneShot::new();
    for t in 0..THREADS {
        let (wrong_context, finished, failures, all_done) = (
            wrong_context.clone(),
            finished.clone(),
            failures.clone(),
            all_done.handle(),
        );
        thread::spawn("oneshot-test", move || {
            let w: OneShot<alloc::vec::Vec<usize>> = OneShot::new();
            let h = w.handle();
            let wc = wrong_context.clone();
            crate::timer::after(1_000_000 * (1 + t as u64 % 3), move || {
                if cairn_sync::context() != cairn_sync::Context::Bh {
                    wc.fetch_add(1, Ordering::Relaxed);
                }
                h.deliver(alloc::vec![t; t + 1]);
            });
            if w.wait() != alloc::vec![t; t + 1] {
                failures.fetch_add(1, Ordering::AcqRel);
            }
            if finished.fetch_add(1, Ordering::AcqRel) + 1 == THREADS {
                all_done.deliver(());
            }
        });
    }
    all_done.wait();
    if failures.load(Ordering::Acquire) != 0 {
        return Err(format!(
            "{} threads got another value",
            failures.load(Ordering::Acquire)
        ));
    }
    if wrong_context.load(Ordering::Acquire) != 0 {
        return Err("a timer callback ran outside bh context".into());
    }
    Ok(())
}

fn timers() -> Result<(), String> {
    struct Fired {
        order: cairn_sync::IrqSpinLock<Vec<(u64, u64)>>,
    }
    static ORDER_CLASS: cairn_sync::LockClass = cairn_sync::LockClass::new("ktest.timer_order");
    let fired = cairn_sync::cpu::bh_safe_alloc(|| {
        Arc::new(Fired {
            order: cairn_sync::IrqSpinLock::new(&ORDER_CLASS, Vec::with_capacity(16)),
        })
    });
    // Absolute deadlines from one start: on a loaded host the loop below
    // may take longer than the gaps between them (then the earlier ones are
    // overdue when the later ones are added, and must still fire in
    // deadline order among those pending together).
    // With interrupts off here, this CPU's timer (armed by each insert)
    // cannot fire before all five are in.
    let start = crate::time::now_ns();
    let delays = [5_000_000u64, 1_000_000, 3_000_000, 8_000_000, 2_000_000];
    cairn_pc::cpu::disable_interrupts();
    for d in delays {
        let f = fired.clone();
        crate::timer::at(start + d, move || {
            let now = crate::time::now_ns();
            cairn_sync::cpu::bh_safe_alloc(|| f.order.lock().push((d, now)));
        });
    }
    cairn_pc::cpu::enable_interrupts();
    let cancelled = Arc::new(AtomicBool::new(false));
    let c2 = cancelled.clone();
    let victim = crate::timer::after(4_000_000, move || c2.store(true, Ordering::Release));
    if !crate::timer::cancel(victim) {
        return Err("cancel of a pending timer failed".into());
    }
    let ticks = Arc::new(AtomicU64::new(0));
    let t2 = ticks.clone();
    let periodic = crate::timer::every(2_000_000, move || {
        t2.fetch_add(1, Ordering::AcqRel);
    });
    wait_for("five one-shot timers", || {
        fired.order.lock().len() == delays.len()
    })?;
    wait_for("five periodic ticks", || ticks.load(Ordering::Acquire) >= 5)?;
    if !crate::timer::cancel(periodic) {
        return Err("cancel of the periodic timer failed".into());
    }
    let stopped_at = ticks.load(Ordering::Acquire);
    crate::sched::sleep(10_000_000);
    if ticks.load(Ordering::Acquire) > stopped_at + 1 {
        return Err("periodic timer kept firing after cancel".into());
    }
    if cancelled.load(Ordering::Acquire) {
        return Err("a cancelled timer fired".into());
    }
    let order = fired.order.lock().clone();
    let mut sorted = delays.to_vec();
    sorted.sort_unstable();
    let got: Vec<u64> = order.iter().map(|&(d, _)| d).collect();
    if got != sorted {
        return Err(format!(
            "timers fired in order {got:?}, expected {sorted:?} (at {order:?}, start {start})"
        ));
    }
    for (d, at) in order {
        if at < start + d {
            return Err(format!("a {d} ns timer fired after only {} ns", at - start));
        }
    }
    Ok(())
}

const IRQ_ITEMS: usize = 3000;
static PRODUCED: AtomicUsize = AtomicUsize::new(0);
static RAN: [AtomicU64; IRQ_ITEMS] = [const { AtomicU64::new(0) }; IRQ_ITEMS];
static RAN_ON: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static PRODUCER_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

fn consume(i: usize) {
    RAN[i].fetch_add(1, Ordering::AcqRel);
    RAN_ON[this_cpu().index()].fetch_add(1, Ordering::AcqRel);
}

/// The producing interrupt: the local APIC timer of the test's CPU.
fn produce(_: usize) {
    if this_cpu().index() != PRODUCER_CPU.load(Ordering::Relaxed) {
        return;
    }
    let i = PRODUCED.load(Ordering::Relaxed);
    if i >= IRQ_ITEMS {
        cairn_pc::apic::timer_stop();
        return;
    }
    if schedule_bh(BhWork::new(consume, i)).is_ok() {
        PRODUCED.store(i + 1, Ordering::Relaxed);
    }
}

fn bhqueue_from_irq() -> Result<(), String> {
    let me = this_cpu().index();
    PRODUCER_CPU.store(me, Ordering::Relaxed);
    let v = crate::irq::allocate(crate::irq::Handler {
        func: produce,
        arg: 0,
    })
    .ok_or("no vector")?;
    let full_before = bhqueue().full_count();
    let exit_items_before = this_cpu().bh_exit_items.load(Ordering::Relaxed);
    // Interrupts every ~20 us on this CPU, while this thread keeps the CPU
    // busy under the kernel lock and never returns to its run loop: each
    // interrupt's exit must run the work it queued (on -smp 1 nothing else
    // could), other CPUs may help.
    cairn_pc::apic::timer_periodic(v, crate::time::ns_to_apic_ticks(20_000));
    let deadline = crate::time::now_ns() + super::util::HANG_NS;
    while PRODUCED.load(Ordering::Acquire) < IRQ_ITEMS {
        if crate::time::now_ns() > deadline {
            cairn_pc::apic::timer_stop();
            return Err(format!(
                "hang: {} items produced",
                PRODUCED.load(Ordering::Acquire)
            ));
        }
        core::hint::spin_loop();
    }
    cairn_pc::apic::timer_stop();
    let ran_while_busy: u64 = RAN_ON.iter().map(|n| n.load(Ordering::Acquire)).sum();
    let at_exit = this_cpu().bh_exit_items.load(Ordering::Relaxed) - exit_items_before;
    wait_for("every bh item to run", || {
        RAN.iter().all(|r| r.load(Ordering::Acquire) >= 1)
    })?;
    if let Some(i) = RAN.iter().position(|r| r.load(Ordering::Acquire) != 1) {
        return Err(format!(
            "item {i} ran {} times",
            RAN[i].load(Ordering::Acquire)
        ));
    }
    // Everything but what other CPUs were still running when production
    // ended ran while the producer never left its kernel-lock loop.
    let cpus_now = cpus().len() as u64;
    if ran_while_busy + cpus_now < IRQ_ITEMS as u64 {
        return Err(format!(
            "only {ran_while_busy} of {IRQ_ITEMS} bh items ran while the producing CPU was busy \
             under the kernel lock"
        ));
    }
    if at_exit == 0 {
        return Err("no bh item ran at an interrupt's exit on the busy CPU".into());
    }
    crate::info!(
        "bhqueue: {IRQ_ITEMS} items from irqs on cpu{me}; {at_exit} run at its interrupt exits; \
         ran per CPU {:?}; full refusals {}",
        cpus()
            .iter()
            .map(|c| RAN_ON[c.index()].load(Ordering::Relaxed))
            .collect::<Vec<_>>(),
        bhqueue().full_count() - full_before
    );
    Ok(())
}

static SHARED: AtomicU64 = AtomicU64::new(0);
static CPUS_SEEN: AtomicU64 = AtomicU64::new(0);

fn kernel_lock_contention() -> Result<(), String> {
    let threads = 4 * crate::cpu_count();
    let rounds = 300u64;
    let done = Arc::new(AtomicUsize::new(0));
    let contended_before = KERNEL_LOCK.contended();
    for _ in 0..threads {
        let done = done.clone();
        thread::spawn("contender", move || {
            for _ in 0..rounds {
                // A read-modify-write that is only atomic because the kernel
                // lock serialises every CPU running kernel-lock code.
                let v = SHARED.load(Ordering::Relaxed);
                for _ in 0..50 {
                    core::hint::spin_loop();
                }
                SHARED.store(v + 1, Ordering::Relaxed);
                CPUS_SEEN.fetch_or(1 << this_cpu().index(), Ordering::Relaxed);
                thread::yield_now();
            }
            done.fetch_add(1, Ordering::AcqRel);
        });
    }
    wait_for("contending threads", || {
        done.load(Ordering::Acquire) == threads
    })
    .map_err(|e| {
        format!(
            "{e}: {} of {threads} done, SHARED {}, runqueue {}, lock owner {:?}",
            done.load(Ordering::Acquire),
            SHARED.load(Ordering::Relaxed),
            crate::sched::runqueue().len(),
            KERNEL_LOCK.owner()
        )
    })?;
    let total = SHARED.load(Ordering::Relaxed);
    if total != threads as u64 * rounds {
        return Err(format!(
            "lost updates: {total} of {}",
            threads as u64 * rounds
        ));
    }
    let cpus_used = CPUS_SEEN.load(Ordering::Relaxed).count_ones();
    if cpus_used < 2 {
        return Err(format!(
            "threads ran on {cpus_used} CPU only (contended {}, bh per cpu {:?})",
            KERNEL_LOCK.contended() - contended_before,
            cpus()
                .iter()
                .map(|c| c.bh_items.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        ));
    }
    crate::info!(
        "kernel lock: {threads} threads x {rounds} rounds on {cpus_used} CPUs, {} contended acquisitions",
        KERNEL_LOCK.contended() - contended_before
    );
    Ok(())
}

struct Ping {
    queue: WaitQueue,
    go: AtomicU64,
    acked: AtomicU64,
    resumed_on: AtomicU64,
}

fn thread_block_wake() -> Result<(), String> {
    let p = cairn_sync::cpu::bh_safe_alloc(|| {
        Arc::new(Ping {
            queue: WaitQueue::new(),
            go: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            resumed_on: AtomicU64::new(0),
        })
    });
    let rounds = 200u64;
    let sleeper = {
        let p = p.clone();
        thread::spawn("sleeper", move || {
            for r in 1..=rounds {
                p.queue.wait_until(|| p.go.load(Ordering::Acquire) >= r);
                assert!(
                    KERNEL_LOCK.held_by_this_cpu(),
                    "resumed without the kernel lock"
                );
                p.resumed_on
                    .fetch_or(1 << this_cpu().index(), Ordering::Relaxed);
                p.acked.store(r, Ordering::Release);
            }
        })
    };
    // Wake it from bh context: an interrupt (the test IPI) queues bh work
    // whose handler wakes the sleeper.
    static PING: spin::Once<Arc<Ping>> = spin::Once::new();
    PING.call_once(|| p.clone());
    fn bh_wake(_: usize) {
        let p = PING.get().expect("ping");
        assert_eq!(crate::context::current(), cairn_sync::Context::Bh);
        p.go.fetch_add(1, Ordering::AcqRel);
        p.queue.wake_all();
    }
    fn irq_queue_bh(_: usize) {
        let _ = schedule_bh(BhWork::new(bh_wake, 0));
    }
    for r in 1..=rounds {
        let target = (r as usize) % crate::cpu_count();
        super::util::call_on(target, irq_queue_bh, 0)?;
        wait_for("the sleeper to resume", || {
            p.acked.load(Ordering::Acquire) >= r
        })?;
    }
    wait_for("the sleeper to exit", || Arc::strong_count(&sleeper) == 1)?;
    crate::info!(
        "block/wake: {rounds} rounds, sleeper resumed on CPU mask {:#x}",
        p.resumed_on.load(Ordering::Relaxed)
    );
    Ok(())
}
