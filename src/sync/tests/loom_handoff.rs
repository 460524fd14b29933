//! Loom model of the kernel-lock hand-off of a blocking thread.
//!
//! CPU A runs thread T under the kernel lock. T checks its wake-up condition
//! under its wait queue's lock and, if unset, blocks: queues itself,
//! `prepare_block`, switches to A's run loop, which marks T switched out and
//! only then releases the kernel lock. A waker in bh context (no kernel lock)
//! sets the condition and wakes T onto the runqueue, then IPIs CPU C. C takes
//! the kernel lock, dequeues T, `claim`s it and runs it to completion.
//!
//! Checked over every interleaving: T completes exactly once, its stack is
//! never in use on two CPUs, and the wake-up is never lost (C would park
//! forever: loom reports the deadlock).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cairn-sync --release --test loom_handoff`
#![cfg(loom)]

use cairn_sync::handoff::ThreadSwitch;
use cairn_sync::queue::ModelQueue;
use cairn_sync::{KernelLock, RunQueue};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

struct World {
    kernel: KernelLock,
    runqueue: RunQueue<usize, ModelQueue<usize>>,
    /// The wait queue: whether T is on it.
    waitq: Mutex<bool>,
    /// T's wake-up condition.
    condition: AtomicBool,
    t: ThreadSwitch,
    /// Set while some CPU executes on T's stack.
    t_stack_in_use: AtomicBool,
    t_completed: AtomicUsize,
}

impl World {
    /// T's body from a given point: runs on a CPU holding the kernel lock.
    /// Returns true if T blocked (its CPU must switch out).
    fn run_t(&self) -> bool {
        let mut wq = self.waitq.lock().unwrap();
        if self.condition.load(Ordering::SeqCst) {
            drop(wq);
            self.t_completed.fetch_add(1, Ordering::SeqCst);
            self.t.prepare_exit();
            return false;
        }
        *wq = true;
        self.t.prepare_block();
        drop(wq);
        true
    }

    /// The CPU leaves T's stack (its registers are saved).
    fn switch_out(&self) {
        assert!(self.t_stack_in_use.swap(false, Ordering::SeqCst));
        self.t.switched_out();
    }

    /// The CPU enters T's stack.
    fn switch_in(&self) {
        self.t.claim();
        assert!(
            !self.t_stack_in_use.swap(true, Ordering::SeqCst),
            "T's stack in use on two CPUs"
        );
    }
}

#[test]
fn blocked_thread_is_resumed_once_on_another_cpu() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let w = Arc::new(World {
            kernel: KernelLock::new(),
            runqueue: RunQueue::with_queue(ModelQueue::new(4)),
            waitq: Mutex::new(false),
            condition: AtomicBool::new(false),
            t: ThreadSwitch::new_runnable(),
            t_stack_in_use: AtomicBool::new(false),
            t_completed: AtomicUsize::new(0),
        });

        // CPU C: the run loop that may resume T.
        let c = {
            let w = w.clone();
            thread::spawn(move || {
                loop {
                    {
                        let _k = w.kernel.lock();
                        if let Some(_t) = w.runqueue.dequeue() {
                            w.switch_in();
                            assert!(!w.run_t(), "T blocked again after its wake-up");
                            w.t_stack_in_use.store(false, Ordering::SeqCst);
                            w.t.switched_out();
                        }
                    }
                    if w.t_completed.load(Ordering::SeqCst) == 1 {
                        break;
                    }
                    thread::park();
                }
            })
        };
        let c_handle = c.thread().clone();

        // CPU A: starts T under the kernel lock.
        let a = {
            let (w, c_handle) = (w.clone(), c_handle.clone());
            thread::spawn(move || {
                let k = w.kernel.lock();
                w.switch_in();
                if w.run_t() {
                    w.switch_out();
                } else {
                    w.t_stack_in_use.store(false, Ordering::SeqCst);
                    w.t.switched_out();
                    c_handle.unpark();
                }
                drop(k);
            })
        };

        // The waker, in bh context on CPU B.
        let waker = {
            let w = w.clone();
            thread::spawn(move || {
                w.condition.store(true, Ordering::SeqCst);
                let mut wq = w.waitq.lock().unwrap();
                if *wq {
                    *wq = false;
                    if w.t.wake() {
                        w.runqueue.enqueue(0);
                    }
                }
                drop(wq);
                c_handle.unpark();
            })
        };

        a.join().unwrap();
        waker.join().unwrap();
        c.join().unwrap();
        assert_eq!(w.t_completed.load(Ordering::SeqCst), 1);
        assert!(!w.t_stack_in_use.load(Ordering::SeqCst));
    });
}
