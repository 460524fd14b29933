//! Kernel threads: their own stacks, the stack switch between a thread and
//! its CPU's run loop, and the three ways a thread leaves its CPU (yield,
//! block, exit).
//!
//! A thread runs under the kernel lock of the CPU that resumed it. It
//! leaves by switching back to the run loop with a [`SwitchReason`]; the run
//! loop finishes the switch (marks it off-CPU, requeues a yielder, frees an
//! exited thread) and only then releases the kernel lock
//! (`cairn_sync::handoff` describes and loom-checks that hand-off).
//!
//! Kernel-lock context only; takes no locks (wait queues take theirs).

use super::stack::KernelStack;
use super::{KERNEL_LOCK, Runnable, runqueue};
use crate::percpu::this_cpu;
use alloc::boxed::Box;
use alloc::sync::Arc;
use cairn_sync::handoff::ThreadSwitch;
use cairn_sync::{LockClass, SpinLock};
use core::arch::global_asm;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Size of a kernel thread's stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// Why a thread returned to its CPU's run loop.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SwitchReason {
    /// Still runnable: queue it again.
    Yield = 0,
    /// Waiting on a wait queue: its waker queues it.
    Block = 1,
    /// Finished: free it.
    Exit = 2,
}

static ENTRY_CLASS: LockClass = LockClass::new("sched.thread_entry");
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Threads that exist (made and not yet freed): kernel and user threads.
static LIVE: AtomicU64 = AtomicU64::new(0);

/// How many threads exist now (`/proc/cairn/kstats`).
pub fn live_threads() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

pub struct Thread {
    id: u64,
    name: &'static str,
    pub(crate) switch: ThreadSwitch,
    /// Stack pointer saved when the thread is switched out.
    saved_rsp: AtomicU64,
    reason: AtomicU8,
    entry: SpinLock<Option<Box<dyn FnOnce() + Send>>>,
    /// Last CPU index + 1 that resumed the thread (0: never ran).
    last_cpu: AtomicU64,
    /// User-mode state, for threads that run a user program.
    pub user: Option<crate::user::UserState>,
    /// Sleeping locks the thread holds, for the lock validator: they stay
    /// with the thread while it sleeps and moves between CPUs.
    pub(crate) sleep_locks: cairn_sync::cpu::HeldLocks,
    /// The thread's `bh_safe_alloc` nesting while it is switched out: the
    /// scope belongs to the thread, which may sleep inside one and resume
    /// on another CPU.
    alloc_scope: core::sync::atomic::AtomicU32,
    stack_top: u64,
    _stack: KernelStack,
}

impl core::fmt::Debug for Thread {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Thread({} {})", self.id, self.name)
    }
}

global_asm!(
    r#"
    .text
    .global cairn_switch_stacks
cairn_switch_stacks:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global cairn_thread_start
cairn_thread_start:
    xor ebp, ebp
    call cairn_thread_main
    ud2
"#
);

unsafe extern "C" {
    /// Saves callee-saved registers and the stack pointer into `*save`,
    /// then resumes the context whose stack pointer is `load`.
    fn cairn_switch_stacks(save: *mut u64, load: u64);
    fn cairn_thread_start();
}

impl Drop for Thread {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Thread {
    /// A new runnable thread that will run `f` (not yet queued).
    pub fn new(name: &'static str, f: impl FnOnce() + Send + 'static) -> Arc<Thread> {
        Self::with_user(name, None, f)
    }

    /// A new runnable user thread: it enters user mode with `user`'s initial
    /// registers (not yet queued). `None` when there is no memory for its
    /// kernel stack.
    pub fn new_user(name: &'static str, user: crate::user::UserState) -> Option<Arc<Thread>> {
        let stack = KernelStack::new(STACK_SIZE)?;
        Some(Self::with_stack(name, Some(user), stack, || {
            crate::user::thread_start()
        }))
    }

    fn with_user(
        name: &'static str,
        user: Option<crate::user::UserState>,
        f: impl FnOnce() + Send + 'static,
    ) -> Arc<Thread> {
        let stack = KernelStack::new(STACK_SIZE).expect("no memory for a kernel thread's stack");
        Self::with_stack(name, user, stack, f)
    }

    fn with_stack(
        name: &'static str,
        user: Option<crate::user::UserState>,
        stack: KernelStack,
        f: impl FnOnce() + Send + 'static,
    ) -> Arc<Thread> {
        // Initial frame for `cairn_switch_stacks`: six callee-saved registers
        // (zero), then the return address `cairn_thread_start`. After that
        // `ret` the stack pointer is 16-byte aligned, as the ABI wants before
        // `cairn_thread_start` calls into Rust.
        let (base, len) = stack.range();
        let aligned_top = (base + len) & !15;
        let ret_slot = aligned_top - 24;
        // SAFETY: `ret_slot` is an aligned word inside the stack, which this
        // function owns and nothing runs on yet.
        unsafe { (ret_slot as *mut u64).write(cairn_thread_start as *const () as u64) };
        let rsp = ret_slot - 48;
        LIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(Thread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            switch: ThreadSwitch::new_runnable(),
            saved_rsp: AtomicU64::new(rsp),
            reason: AtomicU8::new(SwitchReason::Yield as u8),
            entry: SpinLock::new(&ENTRY_CLASS, Some(Box::new(f))),
            last_cpu: AtomicU64::new(0),
            user,
            sleep_locks: cairn_sync::cpu::HeldLocks::new(),
            alloc_scope: core::sync::atomic::AtomicU32::new(0),
            stack_top: aligned_top,
            _stack: stack,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Index of the CPU that last resumed the thread.
    pub fn last_cpu(&self) -> Option<usize> {
        match self.last_cpu.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n as usize - 1),
        }
    }
}

/// Creates a kernel thread running `f` and queues it.
pub fn spawn(name: &'static str, f: impl FnOnce() + Send + 'static) -> Arc<Thread> {
    let t = Thread::new(name, f);
    runqueue().enqueue(Runnable::Thread(t.clone()));
    super::runloop::wake_cpu_for_work();
    t
}

/// The thread running on this CPU, if any.
pub fn current() -> Option<Arc<Thread>> {
    let p = this_cpu().current_thread.load(Ordering::Relaxed) as *const Thread;
    if p.is_null() {
        return None;
    }
    // SAFETY: `run` stores `Arc::into_raw` of the running thread and keeps
    // that reference alive until it clears the pointer; taking another
    // strong count from it is sound while it is set.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Runs `f` on the thread running on this CPU, if any, without touching
/// its reference count (any context, interrupts off or not).
pub fn with_current(f: impl FnOnce(&Thread)) {
    let p = this_cpu().current_thread.load(Ordering::Relaxed) as *const Thread;
    // SAFETY: as in `with_current_sleep_locks`: the thread outlives this
    // CPU's pointer to it, which only this CPU changes.
    if let Some(t) = unsafe { p.as_ref() } {
        f(t);
    }
}

/// Runs `f` on the sleeping locks of the thread running on this CPU, if
/// any (the lock validator's hook; any context).
pub fn with_current_sleep_locks(f: impl FnOnce(&cairn_sync::cpu::HeldLocks)) {
    let p = this_cpu().current_thread.load(Ordering::Relaxed) as *const Thread;
    // SAFETY: `run` keeps the thread alive (its leaked strong count) for as
    // long as this CPU's pointer to it is set, and the pointer is only
    // changed by this CPU, which is running this code.
    if let Some(t) = unsafe { p.as_ref() } {
        f(&t.sleep_locks);
    }
}

/// Resumes `t` on this CPU until it yields, blocks or exits. Called by the
/// run loop with the kernel lock held.
pub(super) fn run(t: Arc<Thread>) {
    let cpu = this_cpu();
    t.switch.claim();
    t.last_cpu.store(cpu.index() as u64 + 1, Ordering::Relaxed);
    if let Some(u) = &t.user {
        u.switch_in(t.stack_top);
        super::preempt::slice_started();
    }
    cpu.bh_safe_alloc_depth
        .store(t.alloc_scope.load(Ordering::Relaxed), Ordering::Relaxed);
    let raw = Arc::into_raw(t);
    cpu.current_thread.store(raw as *mut (), Ordering::Relaxed);
    // SAFETY: `raw` came from `Arc::into_raw` just above.
    let load = unsafe { (*raw).saved_rsp.load(Ordering::Relaxed) };
    // SAFETY: `load` is the stack pointer saved by the thread's last switch
    // out (or its initial frame), and `claim` guaranteed no other CPU is on
    // that stack; the run loop's own context is saved into its per-CPU slot.
    unsafe { cairn_switch_stacks(cpu.scheduler_rsp.as_ptr(), load) };
    // Back in the run loop: the thread has saved its registers.
    cpu.current_thread
        .store(core::ptr::null_mut(), Ordering::Relaxed);
    // SAFETY: the pointer stored above; this reclaims its strong count.
    let t = unsafe { Arc::from_raw(raw) };
    t.alloc_scope.store(
        cpu.bh_safe_alloc_depth.swap(0, Ordering::Relaxed),
        Ordering::Relaxed,
    );
    if let Some(u) = &t.user {
        u.switch_out();
        super::preempt::slice_stopped();
    }
    t.switch.switched_out();
    match t.reason.load(Ordering::Relaxed) {
        // Behind every thread already waiting: round-robin. A CPU that went
        // idle meanwhile is woken for it: the queue is not empty, so idling
        // would leave a runnable thread waiting beside an idle CPU.
        r if r == SwitchReason::Yield as u8 => {
            super::expired().enqueue(Runnable::Thread(t));
            super::runloop::wake_idle_cpu();
        }
        r if r == SwitchReason::Block as u8 => {}
        _ => drop(t),
    }
}

/// Leaves the CPU for `reason`. The thread's state must already say so
/// (`prepare_block` under a wait queue lock, or `prepare_yield`).
fn switch_out(reason: SwitchReason) {
    let cpu = this_cpu();
    let p = cpu.current_thread.load(Ordering::Relaxed) as *const Thread;
    assert!(!p.is_null(), "switch_out outside a thread");
    assert!(
        KERNEL_LOCK.held_by_this_cpu(),
        "thread leaving its CPU without the kernel lock"
    );
    assert_eq!(
        cairn_sync::lockdep::held_count(),
        usize::from(cairn_sync::lockdep::ENABLED),
        "thread switching out while holding a lock besides the kernel lock"
    );
    // SAFETY: the run loop keeps the thread alive while it runs.
    let t = unsafe { &*p };
    t.reason.store(reason as u8, Ordering::Relaxed);
    // SAFETY: saves this thread's context into its own slot and resumes the
    // run loop context saved by `run` on this CPU.
    unsafe {
        cairn_switch_stacks(
            t.saved_rsp.as_ptr(),
            cpu.scheduler_rsp.load(Ordering::Relaxed),
        )
    };
    // Resumed, possibly on another CPU, under its kernel lock.
}

/// Gives the CPU to other runnable work, going to the back of the queue of
/// threads that used up their turn; returns when resumed.
pub fn yield_now() {
    let t = current().expect("yield_now outside a thread");
    t.switch.prepare_yield();
    drop(t);
    switch_out(SwitchReason::Yield);
}

/// Blocks the current thread; the caller has called `prepare_block` while
/// holding the lock of the wait queue it is on, and released that lock.
pub(super) fn block_current() {
    switch_out(SwitchReason::Block);
}

/// Ends the current thread.
pub fn exit_current() -> ! {
    let t = current().expect("exit_current outside a thread");
    t.switch.prepare_exit();
    drop(t);
    switch_out(SwitchReason::Exit);
    unreachable!("an exited thread was resumed");
}

#[unsafe(no_mangle)]
extern "C" fn cairn_thread_main() -> ! {
    let t = current().expect("thread start without a thread");
    let f = t.entry.lock().take().expect("thread entry ran twice");
    drop(t);
    f();
    exit_current()
}
