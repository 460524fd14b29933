//! The scheduling state of one thread, and the hand-off rule that lets a
//! thread block on one CPU and be resumed on another.
//!
//! A thread runs on a CPU that holds the kernel lock. To block, it marks
//! itself [`RunState::Blocked`] while holding its wait queue's lock (so a
//! waker either finds it on the queue or its condition check already saw
//! the wake-up), then switches to its CPU's run loop, which calls
//! [`ThreadSwitch::switched_out`] once the thread's registers are saved, and
//! only then releases the kernel lock. A waker (bh context, no kernel lock)
//! flips `Blocked → Runnable` and queues the thread on the runqueue exactly
//! once. The CPU that later dequeues it (under the kernel lock) calls
//! [`ThreadSwitch::claim`], which waits until the previous CPU has switched
//! out: a thread's stack is never in use on two CPUs.
//!
//! With one kernel lock the wait in `claim` is normally already satisfied
//! (the previous CPU cleared `on_cpu` before releasing the lock); it is kept
//! as the rule that does not depend on that, and the loom model
//! (`tests/loom_handoff.rs`) checks both the no-double-run and the
//! no-lost-wake-up properties of this protocol together with the kernel lock.
//!
//! Callable from kernel-lock context (block, claim, switched_out) and bh
//! context (wake); takes no locks.

use crate::primitives::{AtomicBool, AtomicU32, Ordering, spin_loop};

/// Where a thread is in its life on the run queues.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RunState {
    /// Executing on some CPU.
    Running = 0,
    /// Waiting for a wake-up; on a wait queue, not on the runqueue.
    Blocked = 1,
    /// On the runqueue (or about to be), waiting for a CPU.
    Runnable = 2,
    /// Finished; never runs again.
    Exited = 3,
}

impl RunState {
    fn from_u32(v: u32) -> RunState {
        match v {
            0 => RunState::Running,
            1 => RunState::Blocked,
            2 => RunState::Runnable,
            _ => RunState::Exited,
        }
    }
}

/// The shared scheduling word of a thread plus its on-CPU flag.
pub struct ThreadSwitch {
    state: AtomicU32,
    on_cpu: AtomicBool,
}

impl ThreadSwitch {
    /// A new thread, runnable and not on any CPU.
    pub fn new_runnable() -> Self {
        ThreadSwitch {
            state: AtomicU32::new(RunState::Runnable as u32),
            on_cpu: AtomicBool::new(false),
        }
    }

    pub fn state(&self) -> RunState {
        RunState::from_u32(self.state.load(Ordering::Acquire))
    }

    /// The running thread is about to block. Call with the wait queue's lock
    /// held, after adding the thread to it.
    pub fn prepare_block(&self) {
        let prev = self.state.swap(RunState::Blocked as u32, Ordering::AcqRel);
        assert_eq!(
            RunState::from_u32(prev),
            RunState::Running,
            "only a running thread can block"
        );
    }

    /// The running thread yields: it goes straight back to the runqueue once
    /// its CPU has switched out of it.
    pub fn prepare_yield(&self) {
        let prev = self.state.swap(RunState::Runnable as u32, Ordering::AcqRel);
        assert_eq!(RunState::from_u32(prev), RunState::Running);
    }

    /// The running thread has finished.
    pub fn prepare_exit(&self) {
        self.state.store(RunState::Exited as u32, Ordering::Release);
    }

    /// Wakes a blocked thread. Returns true exactly once per block: the
    /// caller must then queue the thread on the runqueue.
    pub fn wake(&self) -> bool {
        self.state
            .compare_exchange(
                RunState::Blocked as u32,
                RunState::Runnable as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The CPU has saved the thread's registers and left its stack.
    pub fn switched_out(&self) {
        self.on_cpu.store(false, Ordering::Release);
    }

    /// A CPU that dequeued this thread takes it: waits until the previous CPU
    /// has switched out, then marks it running here.
    pub fn claim(&self) {
        while self.on_cpu.load(Ordering::Acquire) {
            spin_loop();
        }
        self.on_cpu.store(true, Ordering::Relaxed);
        let prev = self.state.swap(RunState::Running as u32, Ordering::AcqRel);
        assert_eq!(
            RunState::from_u32(prev),
            RunState::Runnable,
            "a thread was resumed without being runnable"
        );
    }

    /// Whether some CPU is executing on the thread's stack.
    pub fn on_cpu(&self) -> bool {
        self.on_cpu.load(Ordering::Acquire)
    }
}
