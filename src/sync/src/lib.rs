//! Execution contexts and the locks that depend on them.
//!
//! cairn runs kernel code in four contexts (DESIGN.md §2): **irq** (interrupt
//! handlers), **bh** (the run loop draining the bhqueue, kernel lock not held),
//! **kernel-lock** (syscalls, runqueue closures, kernel threads) and **user**.
//! Heaps and locks assert on the current context, so this crate owns:
//!
//! | module | owns | callable from |
//! |---|---|---|
//! | [`cpu`] | the platform hooks: CPU id, interrupt flag, current [`Context`], per-CPU held-lock stack | any |
//! | [`class`] | [`LockClass`]: the name every lock is validated under | any |
//! | [`lockdep`] | the lock-order validator and the irq-safety check (debug builds) | any |
//! | [`spinlock`] | [`SpinLock`] (interrupts untouched) and [`IrqSpinLock`] (interrupts off while held) | any; irq/bh only the irq-saving one |
//! | [`kernel_lock`] | [`KernelLock`]: the fair, CPU-owned big lock | run loop only (never irq/bh) |
//! | [`bhqueue`] | [`BhQueue`]: the bounded irq-safe MPMC queue of bh work | enqueue: any; drain: bh |
//! | [`runqueue`] | [`RunQueue`]: the unbounded queue drained under the kernel lock | enqueue: bh and kernel-lock; drain: kernel-lock |
//! | [`queue`] | the queue trait the two queues share (and loom swaps) | any |
//! | [`handoff`] | [`handoff::ThreadSwitch`]: the on-CPU flag that makes a thread safe to resume elsewhere | kernel-lock and bh |
//!
//! Lock order, outermost first: the kernel lock, then any classed spinlock in
//! the order the validator has recorded. The validator's own bookkeeping uses
//! an unvalidated raw spinlock with interrupts off and is a leaf.
//!
//! On the host (every target but `x86_64-unknown-none`) the hooks default to a
//! simulated CPU per OS thread, so the same code runs in unit tests, property
//! tests and loom models.
#![no_std]

#[cfg(not(target_os = "none"))]
extern crate std;

extern crate alloc;

pub mod bhqueue;
pub mod class;
pub mod cpu;
pub mod handoff;
pub mod kernel_lock;
pub mod lockdep;
mod primitives;
pub mod queue;
pub mod runqueue;
pub mod spinlock;

pub use bhqueue::{BhQueue, BhWork};
pub use class::LockClass;
pub use cpu::{Context, context};
pub use kernel_lock::{KernelLock, KernelLockGuard};
pub use runqueue::RunQueue;
pub use spinlock::{IrqSpinLock, IrqSpinLockGuard, SpinLock, SpinLockGuard};
