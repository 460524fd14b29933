//! Scheduling: the kernel lock, the bhqueue and runqueue, the per-CPU run
//! loop, kernel threads and wait queues.
//!
//! | module | owns | contexts |
//! |---|---|---|
//! | [`runloop`] | each CPU's loop: bh, then kernel-lock work, then idle | run loop |
//! | [`exit`] | bh service and preemption on the way out of interrupts and syscalls | irq exit, syscall exit |
//! | [`preempt`] | time slices, the reschedule decision, wake-up preemption | irq, bh, kernel-lock |
//! | [`thread`] | kernel threads, their stacks and the stack switch | kernel-lock |
//! | [`waitqueue`] | blocking and waking threads | block: kernel-lock; wake: any but irq |
//! | [`mutex`] | [`mutex::SleepMutex`]: a lock whose holder may sleep | kernel-lock, in a thread |
//! | [`wait`] | readiness sources and the interruptible wait of blocking syscalls | wait: kernel-lock; notify: bh or kernel-lock |
//! | [`oneshot`] | [`OneShot`]: the one completion → sleep waiter (block I/O, pagecache, sleeps) | wait: kernel-lock; deliver: bh or kernel-lock |
//!
//! Lock order: `kernel` → `sched.waitqueue` → (leaf locks: heaps, console).
//! The bhqueue and runqueue are lock-free.

pub mod exit;
pub mod mutex;
pub mod oneshot;
pub mod preempt;
pub mod runloop;
pub mod stack;
pub mod thread;
pub mod wait;
pub mod waitqueue;

use alloc::boxed::Box;
use alloc::sync::Arc;
use cairn_sync::{BhQueue, BhWork, KernelLock, RunQueue};
pub use oneshot::OneShot;
use thread::Thread;

/// The kernel lock.
pub static KERNEL_LOCK: KernelLock = KernelLock::new();

/// Capacity of the bhqueue: about one pending item per interrupt source.
const BHQUEUE_CAPACITY: usize = 1024;

static BHQUEUE: spin::Once<BhQueue> = spin::Once::new();

/// The global bhqueue (created on first use, at boot).
pub fn bhqueue() -> &'static BhQueue {
    BHQUEUE.call_once(|| BhQueue::new(BHQUEUE_CAPACITY))
}

/// Work that needs the kernel lock.
pub enum Runnable {
    /// A closure run under the kernel lock.
    Work(Box<dyn FnOnce() + Send>),
    /// A thread to resume.
    Thread(Arc<Thread>),
}

/// Kernel-lock work and woken threads: served first.
static RUNQUEUE: RunQueue<Runnable> = RunQueue::new();
/// Threads that gave their CPU up while still runnable (preempted at the end
/// of a slice, or yielding): served when the runqueue is empty, in order, so
/// a woken thread never waits behind a queue of CPU-bound ones.
static EXPIRED: RunQueue<Runnable> = RunQueue::new();

pub fn runqueue() -> &'static RunQueue<Runnable> {
    &RUNQUEUE
}

pub fn expired() -> &'static RunQueue<Runnable> {
    &EXPIRED
}

/// Queues `f` to run under the kernel lock on some CPU. Callable from bh
/// and kernel-lock context: the closure is built in a bh-safe scope, since
/// its box may be freed by whichever context drains it.
pub fn defer(f: impl FnOnce() + Send + 'static) {
    let item = cairn_sync::cpu::bh_safe_alloc(|| Runnable::Work(Box::new(f)));
    RUNQUEUE.enqueue(item);
    runloop::wake_cpu_for_work();
}

/// Queues bh work from any context (irq included). From an interrupt
/// handler that is all: the interrupt's exit services the bhqueue on this
/// CPU (or the drain it interrupted does). From bh or kernel-lock code an
/// idle CPU is woken for it (the queuing code's own exits service it too).
/// A full bhqueue is counted and reported by the run loop; the error is
/// returned so the caller can keep its own pending state.
pub fn schedule_bh(work: BhWork) -> Result<(), cairn_sync::bhqueue::QueueFull> {
    let r = bhqueue().enqueue_irqsafe(work);
    if crate::context::current() != cairn_sync::Context::Irq {
        runloop::wake_idle_cpu();
    }
    r
}

/// Blocks the current thread for at least `ns` nanoseconds (kernel-lock
/// context; the kernel lock is released while it sleeps).
pub fn sleep(ns: u64) {
    let done = OneShot::new();
    let h = done.handle();
    // The timer's handle may be the last one and is dropped in bh context:
    // the slot is allocated bh-safe.
    crate::timer::after(ns, move || h.deliver(()));
    done.wait();
}

/// Prints the scheduler's state (debug dumps, hang reports).
pub fn dump() {
    use core::sync::atomic::Ordering;
    let (next, serving, owner) = KERNEL_LOCK.debug_state();
    crate::println!(
        "sched: kernel lock next {next} serving {serving} owner {owner:?}; runqueue {}; expired {}; \
         bhqueue {}",
        RUNQUEUE.len(),
        EXPIRED.len(),
        bhqueue().len()
    );
    for c in crate::percpu::cpus() {
        crate::println!(
            "  cpu{}: online {} idle {} bh {} irq depth {} thread {:p} bh items {} (at irq exit {}) \
             preemptions {} need resched {}",
            c.index(),
            c.online.load(Ordering::Relaxed),
            c.idle.load(Ordering::Relaxed),
            c.in_bh.load(Ordering::Relaxed),
            c.irq_depth.load(Ordering::Relaxed),
            c.current_thread.load(Ordering::Relaxed),
            c.bh_items.load(Ordering::Relaxed),
            c.bh_exit_items.load(Ordering::Relaxed),
            c.preemptions.load(Ordering::Relaxed),
            c.need_resched.load(Ordering::Relaxed)
        );
    }
}
