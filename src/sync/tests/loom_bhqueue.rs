//! Loom model of the bhqueue pattern: interrupt handlers on two CPUs enqueue
//! work and wake idle CPUs; two run loops drain the queue in bh context and
//! idle (park, the model of `sti; hlt`) when it is empty.
//!
//! Checked over every interleaving (bounded preemption): each item runs
//! exactly once, and no wake-up is lost (a lost one leaves a run loop parked
//! with work queued while the main thread waits for it: loom reports a
//! deadlock or the wait exceeding its branch bound).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cairn-sync --release --test loom_bhqueue`
#![cfg(loom)]

use cairn_sync::bhqueue::{BhQueue, BhWork};
use cairn_sync::queue::ModelQueue;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

const ITEMS: usize = 2;

loom::lazy_static! {
    static ref RAN: [AtomicUsize; ITEMS] = [AtomicUsize::new(0), AtomicUsize::new(0)];
    static ref TOTAL: AtomicUsize = AtomicUsize::new(0);
}

fn item(i: usize) {
    RAN[i].fetch_add(1, Ordering::SeqCst);
    TOTAL.fetch_add(1, Ordering::SeqCst);
}

struct RunLoop {
    idle: AtomicBool,
}

#[test]
fn every_item_runs_once_and_no_wakeup_is_lost() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let q = Arc::new(BhQueue::with_queue(ModelQueue::new(ITEMS)));
        let loops: Vec<Arc<RunLoop>> = (0..2)
            .map(|_| {
                Arc::new(RunLoop {
                    idle: AtomicBool::new(false),
                })
            })
            .collect();
        let consumers: Vec<_> = loops
            .iter()
            .map(|me| {
                let (q, me) = (q.clone(), me.clone());
                thread::spawn(move || {
                    loop {
                        q.drain(usize::MAX);
                        if TOTAL.load(Ordering::SeqCst) == ITEMS {
                            break;
                        }
                        // Idle protocol: announce, re-check, then halt.
                        me.idle.store(true, Ordering::SeqCst);
                        if !q.is_empty() || TOTAL.load(Ordering::SeqCst) == ITEMS {
                            me.idle.store(false, Ordering::SeqCst);
                            continue;
                        }
                        thread::park();
                        me.idle.store(false, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let handles: Vec<thread::Thread> = consumers.iter().map(|h| h.thread().clone()).collect();
        // The interrupt handler: enqueue, then IPI idle CPUs.
        let interrupt = |q: &BhQueue<ModelQueue<BhWork>>,
                         loops: &[Arc<RunLoop>],
                         handles: &[thread::Thread],
                         i: usize| {
            q.enqueue_irqsafe(BhWork::new(item, i)).unwrap();
            for (l, h) in loops.iter().zip(handles) {
                if l.idle.load(Ordering::SeqCst) {
                    h.unpark();
                }
            }
        };
        // Loom allows four threads: two run loops, one interrupt on another
        // CPU, and the main thread as the second interrupt.
        let producer = {
            let (q, loops, handles) = (q.clone(), loops.clone(), handles.clone());
            thread::spawn(move || interrupt(&q, &loops, &handles, 0))
        };
        interrupt(&q, &loops, &handles, 1);
        // The kernel's run loops never exit; the model's do once all work has
        // run, so the last runner's peers need a final wake-up to notice.
        while TOTAL.load(Ordering::SeqCst) != ITEMS {
            thread::yield_now();
        }
        for h in &handles {
            h.unpark();
        }
        producer.join().unwrap();
        for c in consumers {
            c.join().unwrap();
        }
        for r in RAN.iter() {
            assert_eq!(r.load(Ordering::SeqCst), 1);
        }
    });
}
