//! Loom model of bh service at interrupt exit (`BhQueue::service_at_irq_exit`)
//! against the run loop's own drain and idle protocol.
//!
//! Two CPUs. CPU 1 runs user code: an interrupt queues bh work there and the
//! interrupt's exit must leave nothing of it waiting in the queue before the
//! CPU returns to user mode (it ran it, or another CPU is running it): that
//! is the bounded-latency guarantee that lets bh work run while every CPU
//! spins in user mode. CPU 0 runs its run loop: it drains the bhqueue in bh
//! context and idles (announce, re-check, `sti; hlt`). Its interrupt (from
//! a device, the main thread) can arrive at any point where its interrupts
//! are on, including in the middle of its own drain; the handler runs
//! inline on CPU 0, queues work and calls the exit service, which must not
//! start a second drain on top of the interrupted one (the bh flag) and
//! must not lose the work either (the run loop's re-check before halting).
//!
//! Checked over every interleaving (bounded preemption): each item runs
//! exactly once; CPU 1's item has left the queue when CPU 1 returns to user
//! mode; CPU 0 never nests two drains; no wake-up is lost (a lost one parks
//! CPU 0 forever with work queued: loom reports the deadlock).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cairn-sync --release --test loom_irq_exit`
#![cfg(loom)]

use cairn_sync::bhqueue::{BhQueue, BhWork};
use cairn_sync::queue::ModelQueue;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

const ITEMS: usize = 2;
const BUDGET: usize = 8;

loom::lazy_static! {
    static ref RAN: [AtomicUsize; ITEMS] = [AtomicUsize::new(0), AtomicUsize::new(0)];
    static ref TOTAL: AtomicUsize = AtomicUsize::new(0);
}

fn item(i: usize) {
    RAN[i].fetch_add(1, Ordering::SeqCst);
    TOTAL.fetch_add(1, Ordering::SeqCst);
}

type Queue = BhQueue<ModelQueue<BhWork>>;

/// One CPU's flags: the bh flag, the idle flag and a pending interrupt.
struct Cpu {
    in_bh: AtomicBool,
    idle: AtomicBool,
    irq_pending: AtomicBool,
}

impl Cpu {
    fn new() -> Arc<Cpu> {
        Arc::new(Cpu {
            in_bh: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            irq_pending: AtomicBool::new(false),
        })
    }
}

/// The interrupt's handler and exit on `cpu`: queue item `i`, then service
/// the bhqueue at exit.
fn interrupt(q: &Queue, cpu: &Cpu, i: usize) {
    q.enqueue_irqsafe(BhWork::new(item, i)).unwrap();
    let interrupted_a_drain = cpu.in_bh.load(Ordering::SeqCst);
    let ran = q.service_at_irq_exit(&cpu.in_bh, BUDGET);
    assert!(
        !(interrupted_a_drain && ran > 0),
        "bh work ran nested in the drain the interrupt stopped"
    );
    assert_eq!(
        cpu.in_bh.load(Ordering::SeqCst),
        interrupted_a_drain,
        "bh flag changed by the exit service"
    );
}

/// CPU 0 takes its interrupt here if one is pending (interrupts are on).
fn interrupts_on(q: &Queue, cpu0: &Cpu) {
    if cpu0.irq_pending.swap(false, Ordering::SeqCst) {
        interrupt(q, cpu0, 0);
    }
}

/// CPU 0's run loop: drain, then idle, until all work has run.
fn run_loop(q: &Queue, cpu0: &Cpu) {
    loop {
        cpu0.in_bh.store(true, Ordering::SeqCst);
        interrupts_on(q, cpu0);
        while let Some(w) = q.dequeue() {
            (w.run)(w.arg);
            interrupts_on(q, cpu0);
        }
        cpu0.in_bh.store(false, Ordering::SeqCst);
        interrupts_on(q, cpu0);
        if TOTAL.load(Ordering::SeqCst) == ITEMS {
            return;
        }
        // Idle: interrupts off, announce, re-check, then `sti; hlt`, which
        // takes a pending interrupt at once (a parked thread's unpark token).
        cpu0.idle.store(true, Ordering::SeqCst);
        if q.is_empty() && TOTAL.load(Ordering::SeqCst) != ITEMS {
            thread::park();
        }
        cpu0.idle.store(false, Ordering::SeqCst);
        interrupts_on(q, cpu0);
    }
}

#[test]
fn bh_work_leaves_the_queue_before_user_mode_and_is_never_lost() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.max_branches = 100_000;
    b.check(|| {
        let q = Arc::new(BhQueue::with_queue(ModelQueue::new(ITEMS)));
        let (cpu0, cpu1) = (Cpu::new(), Cpu::new());
        let run_loop_cpu = {
            let (q, cpu0) = (q.clone(), cpu0.clone());
            thread::spawn(move || run_loop(&q, &cpu0))
        };
        let user_cpu = {
            let (q, cpu1) = (q.clone(), cpu1.clone());
            thread::spawn(move || {
                interrupt(&q, &cpu1, 1);
                // Back to user mode: nothing of ours may wait in the queue.
                assert!(
                    !q.queue().contains(&BhWork::new(item, 1)),
                    "returned to user mode with its bh work still queued"
                );
                assert!(!cpu1.in_bh.load(Ordering::SeqCst));
            })
        };
        // A device raises CPU 0's interrupt: pending, then the CPU wakes
        // from `hlt` (or takes it at its next interrupts-on point).
        // (A swap, not a store: loom 0.7 lets a swap elsewhere read a value
        // older than a plain store it is ordered after.)
        cpu0.irq_pending.swap(true, Ordering::SeqCst);
        run_loop_cpu.thread().unpark();
        user_cpu.join().unwrap();
        // The model's run loop exits once everything ran; a run loop parked
        // after the last item needs a final nudge to notice.
        while TOTAL.load(Ordering::SeqCst) != ITEMS {
            thread::yield_now();
        }
        run_loop_cpu.thread().unpark();
        run_loop_cpu.join().unwrap();
        for r in RAN.iter() {
            assert_eq!(r.load(Ordering::SeqCst), 1);
        }
    });
}
