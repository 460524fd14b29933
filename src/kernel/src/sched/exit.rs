//! What runs on the way out of an interrupt, an exception or a syscall: bh
//! service and preemption. This is what keeps bh work, timers and the
//! scheduler live while every CPU is busy in user mode or in a long kernel
//! path that never returns to its run loop.
//!
//! * **Bh service at interrupt exit** (Linux's `irq_exit` → softirq). After
//!   an interrupt's handler and EOI, with the irq depth back at zero, the
//!   CPU drains the bhqueue in bh context, without the kernel lock, before
//!   returning to whatever it interrupted ([`interrupt_exit`]). Work an
//!   interrupt queues therefore runs before the interrupted code resumes,
//!   whatever that code is doing. It is safe on top of any code that had
//!   interrupts on: the lock validator's irq-safety rule makes every lock bh
//!   work takes an irq-disabling one, so the interrupted code holds none of
//!   them; the bhqueue and runqueue are used with interrupts off, so no
//!   queue operation is re-entered; the bh flag keeps a drain from nesting
//!   in another (an interrupt that stops the run loop's own drain leaves the
//!   new work to it), and `context()` says bh while it runs, so the general
//!   heap stays out of reach even on top of a kernel-lock holder. Nested
//!   service runs on a per-CPU stack of its own and starts a nested section
//!   of the validator's held-lock stack. The protocol is loom-checked
//!   against the run loop's drain and idle (`src/sync/tests/loom_irq_exit.rs`).
//! * **Preemption at return to user mode** ([`to_user_mode`]). A thread
//!   whose CPU was asked to reschedule (`preempt`) takes the kernel lock and
//!   yields before it returns to user mode; bh work queued meanwhile is
//!   serviced the same way, in a loop, so the last check before `sysretq` or
//!   `iretq` is made with interrupts off.
//!
//! Contexts: called with interrupts off by the trap path (irq depth zero)
//! and by the syscall and exception paths (kernel lock released). Locks: the
//! kernel lock, only to yield; everything else is bh work's own.

use super::bhqueue;
use crate::percpu::this_cpu;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::Ordering;

/// Bh items one interrupt exit runs at most; the rest wait for the next
/// exit or a run loop (a storm of work cannot keep a CPU from its thread).
const EXIT_BH_BUDGET: usize = 256;

/// Size of each CPU's stack for bh work run at an interrupt's exit from
/// kernel mode (on top of whatever kernel code was interrupted).
const BH_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct BhStack([u8; BH_STACK_SIZE]);

struct BhStacks([UnsafeCell<BhStack>; cairn_pc::acpi::MAX_CPUS]);

// SAFETY: CPU `i` only ever runs on stack `i`, and only one nested bh
// service at a time (the bh flag keeps it from nesting).
unsafe impl Sync for BhStacks {}

static BH_STACKS: BhStacks =
    BhStacks([const { UnsafeCell::new(BhStack([0; BH_STACK_SIZE])) }; cairn_pc::acpi::MAX_CPUS]);

global_asm!(
    r#"
    .text
    .global cairn_call_on_stack
// rdi: argument, rsi: function, rdx: top of the stack to run it on.
// The old frame pointer is pushed first, so backtraces walk through.
cairn_call_on_stack:
    push rbp
    mov rbp, rsp
    mov rsp, rdx
    call rsi
    mov rsp, rbp
    pop rbp
    ret
"#
);

unsafe extern "C" {
    fn cairn_call_on_stack(arg: usize, f: extern "C" fn(usize), stack_top: u64);
}

/// The end of an interrupt (the trap path calls it after the handler and the
/// EOI, interrupts off, irq depth zero): bh service, then, towards user
/// mode, preemption. Returns with interrupts off.
pub fn interrupt_exit(from_user: bool) {
    let c = this_cpu();
    if c.booting.load(Ordering::Relaxed) || !c.online.load(Ordering::Relaxed) {
        return;
    }
    if from_user {
        // The thread's kernel stack is empty: service right on it.
        to_user_mode();
    } else if !c.in_bh.load(Ordering::Relaxed) && !bhqueue().is_empty() {
        let top = BH_STACKS.0[c.index()].get() as u64 + BH_STACK_SIZE as u64;
        // SAFETY: the stack belongs to this CPU and is unused (the bh flag is
        // clear, so no service runs on it; interrupts are off until the
        // service sets the flag); `service_bh_nested` neither unwinds nor
        // returns a value, and the assembly restores the interrupted stack.
        unsafe { cairn_call_on_stack(0, service_bh_nested, top) };
    }
}

extern "C" fn service_bh_nested(_: usize) {
    service_bh();
}

/// Drains the bhqueue for a thread waiting for the kernel lock (it holds
/// nothing and has interrupts on, as at an exit).
pub fn service_bh_waiting() {
    cairn_pc::cpu::disable_interrupts();
    service_bh();
    cairn_pc::cpu::enable_interrupts();
}

/// Drains the bhqueue at an exit, in a nested validator section.
fn service_bh() {
    let c = this_cpu();
    let saved = c.held_locks.enter_nested();
    let ran = bhqueue().service_at_irq_exit(&c.in_bh, EXIT_BH_BUDGET) as u64;
    c.held_locks.leave_nested(saved);
    c.bh_items.fetch_add(ran, Ordering::Relaxed);
    c.bh_exit_items.fetch_add(ran, Ordering::Relaxed);
}

/// Everything due before a thread returns to user mode, called with
/// interrupts off and without the kernel lock: service bh work, and yield
/// if this CPU was asked to reschedule; repeat until neither is due, so the
/// final check happens with interrupts off. Returns with interrupts off.
pub fn to_user_mode() {
    loop {
        if !bhqueue().is_empty() {
            service_bh();
        }
        if !super::preempt::take_need_resched() {
            return;
        }
        cairn_pc::cpu::enable_interrupts();
        super::runloop::acquire_kernel_lock_unguarded();
        this_cpu().preemptions.fetch_add(1, Ordering::Relaxed);
        super::thread::yield_now();
        cairn_pc::cpu::disable_interrupts();
        crate::sched::runloop::release_kernel_lock_held();
    }
}
