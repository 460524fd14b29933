//! User threads: the state a thread keeps for user mode (registers of its
//! first entry, x87/SSE state, FS base, thread id), switching that state
//! with the thread, and every way back into the kernel from user mode
//! (syscall, exception, interrupt, preemption).
//!
//! A user thread is a kernel thread whose body enters user mode. Coming in,
//! it takes the kernel lock (`sched::runloop::acquire_kernel_lock_unguarded`:
//! in ticket order, halting while it waits); going out, it releases it
//! (`release_held`) and runs the exit work (bh service, preemption:
//! `sched::exit`); a thread that blocks or yields in between switches to
//! its run loop with the lock held, as every thread does. Its kernel stack
//! is empty while it runs user code, so the syscall stub and the TSS start
//! at its top.
//!
//! Contexts: the entry points run in the thread's own context; switch-in and
//! switch-out hooks run in the run loop under the kernel lock.
//!
//! Locks: `user.fpu` (a leaf, taken only by the CPU switching the thread).

pub mod entry;
pub mod fpu;

use crate::percpu::this_cpu;
use cairn_pagecache::RawDestination;
use cairn_pc::cpu::{msr, wrmsr};
use cairn_pc::idt::TrapFrame;
use cairn_sync::{LockClass, SpinLock};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
pub use entry::UserRegs;
use fpu::FpuState;

static FPU_CLASS: LockClass = LockClass::new("user.fpu");
static INITIAL_CLASS: LockClass = LockClass::new("user.initial_regs");

/// What a thread keeps for user mode.
pub struct UserState {
    pub tid: u32,
    /// FS base (TLS), set by `arch_prctl` or `clone(CLONE_SETTLS)`.
    pub fs_base: AtomicU64,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: cleared and futex-woken
    /// at thread exit.
    pub clear_child_tid: AtomicU64,
    fpu: SpinLock<FpuState>,
    /// Registers of the first entry into user mode.
    initial: SpinLock<Option<UserRegs>>,
    /// Signal mask, pending signals, alternate stack (`crate::signal`).
    pub signals: SpinLock<crate::signal::ThreadSignals>,
    /// Set when a signal this thread does not block may be pending: the
    /// exit to user mode looks (and clears it) under the kernel lock.
    pub sig_hint: AtomicBool,
}

impl UserState {
    /// A new thread's state; `mask` is the signal mask it inherits.
    pub fn new(
        tid: u32,
        initial: UserRegs,
        fs_base: u64,
        mask: cairn_unix::signal::SigSet,
    ) -> UserState {
        UserState {
            tid,
            fs_base: AtomicU64::new(fs_base),
            clear_child_tid: AtomicU64::new(0),
            fpu: SpinLock::new(&FPU_CLASS, FpuState::initial()),
            initial: SpinLock::new(&INITIAL_CLASS, Some(initial)),
            signals: SpinLock::new(
                &crate::signal::THREAD_SIGNALS_CLASS,
                crate::signal::ThreadSignals::with_mask(mask),
            ),
            sig_hint: AtomicBool::new(false),
        }
    }

    /// The run loop is about to resume the thread on this CPU.
    pub fn switch_in(&self, kernel_stack_top: u64) {
        self.fpu.lock().restore();
        // SAFETY: FS_BASE only affects user-mode FS-relative accesses (the
        // kernel uses GS); the value is the thread's own.
        unsafe {
            wrmsr(msr::FS_BASE, self.fs_base.load(Ordering::Relaxed));
            // The user's GS base, swapped in by `swapgs` on the way out.
            wrmsr(msr::KERNEL_GS_BASE, 0);
        }
        this_cpu().set_kernel_entry_stack(kernel_stack_top);
    }

    /// The thread has left this CPU.
    pub fn switch_out(&self) {
        self.fpu.lock().save();
    }
}

/// Body of every user thread: enter user mode with the thread's initial
/// registers (kernel-lock context, on the thread's own stack).
pub fn thread_start() -> ! {
    let regs = {
        let t = crate::sched::thread::current().expect("user thread without a thread");
        let u = t.user.as_ref().expect("thread_start on a kernel thread");
        u.initial.lock().take().expect("user thread started twice")
    };
    return_to_user(regs)
}

/// Leaves the kernel for user mode with `regs`: releases the kernel lock
/// and enters user mode from a frame at the top of the thread's stack.
fn return_to_user(regs: UserRegs) -> ! {
    let top = this_cpu().kernel_stack_top.load(Ordering::Relaxed);
    let frame = (top - core::mem::size_of::<UserRegs>() as u64) & !15;
    // Everything on this stack below the frame is abandoned by the entry.
    let frame_ptr = frame as *mut UserRegs;
    // SAFETY: `frame` lies at the top of this thread's kernel stack (below
    // `kernel_stack_top`), above every live frame of the current call chain
    // (which starts lower on the same stack), and is aligned.
    unsafe { frame_ptr.write(regs) };
    crate::sched::runloop::release_kernel_lock_held();
    // SAFETY: written just above.
    entry::enter_user(unsafe { &*frame_ptr })
}

/// Called by the syscall stub with the saved user registers. Returns true
/// when the way out must restore every register (`iretq`): after
/// `rt_sigreturn`, whose restored context may have live `rcx` and `r11`.
#[unsafe(no_mangle)]
extern "C" fn cairn_syscall(regs: &mut UserRegs) -> bool {
    // Interrupts on before waiting for the lock: its holder may be waiting
    // for this CPU to answer a TLB shoot-down.
    cairn_pc::cpu::enable_interrupts();
    if let crate::syscall::lockless::Lockless::Done(r) = crate::syscall::lockless::try_call(
        regs.orig_rax,
        [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
    ) {
        regs.rax = match r {
            Ok(v) => v,
            Err(e) => e.as_neg() as u64,
        };
        cairn_pc::cpu::disable_interrupts();
        crate::sched::exit::to_user_mode(regs);
        return false;
    }
    crate::sched::runloop::acquire_kernel_lock_unguarded();
    let full_restore = regs.orig_rax == cairn_unix::syscalls::RT_SIGRETURN;
    if full_restore {
        crate::signal::deliver::sigreturn(regs);
    } else {
        crate::syscall::dispatch(regs);
    }
    leave_kernel(regs);
    full_restore
}

/// The common way back to user mode from a syscall or exception, under the
/// kernel lock: yield while still holding it if asked to reschedule,
/// deliver pending signals into `frame`, release the lock, then the exit
/// work with interrupts off (`sched::exit::to_user_mode`).
fn leave_kernel(frame: &mut dyn crate::signal::frame::UserFrame) {
    if crate::sched::preempt::take_need_resched() {
        this_cpu().preemptions.fetch_add(1, Ordering::Relaxed);
        crate::sched::thread::yield_now();
    }
    crate::signal::deliver::deliver(frame);
    cairn_pc::cpu::disable_interrupts();
    crate::sched::runloop::release_kernel_lock_held();
    crate::sched::exit::to_user_mode(frame);
}

/// An exception taken in user mode (the trap path calls it). Page faults
/// go to the address space; an unserved fault raises its signal.
pub fn exception(frame: &mut TrapFrame) {
    let cr2 = cairn_pc::cpu::read_cr2();
    cairn_pc::cpu::enable_interrupts();
    // The first touch of an anonymous page, or of a file page the
    // pagecache holds, needs no kernel lock (issue 17).
    if frame.vector == 14
        && let Some(p) = crate::process::PROCESS.get()
        && p.aspace
            .fault_unlocked(cr2, frame.error & 2 != 0, frame.error & 16 != 0)
            .is_some()
    {
        cairn_pc::cpu::disable_interrupts();
        crate::sched::exit::to_user_mode(frame);
        return;
    }
    crate::sched::runloop::acquire_kernel_lock_unguarded();
    crate::syscall::user_exception(frame);
    leave_kernel(frame);
}

/// Per-CPU set-up for user mode (every CPU at start-up).
pub fn init_cpu() {
    entry::init_cpu();
    fpu::init_cpu();
}

/// The user range `[addr, addr + len)` is invalid (kernel half, or wraps).
#[derive(Debug)]
pub struct BadAddress;

/// Whether `[addr, addr + len)` lies in the user half without wrapping
/// (Linux's `access_ok`: checked before anything else of a read or write).
pub fn user_range_ok(addr: u64, len: u64) -> bool {
    addr.checked_add(len)
        .is_some_and(|end| end <= cairn_pc::paging::USER_END)
}

fn check_user_range(addr: u64, len: usize) -> Result<(), BadAddress> {
    match addr.checked_add(len as u64) {
        Some(end) if end <= cairn_pc::paging::USER_END => Ok(()),
        _ => Err(BadAddress),
    }
}

/// Copies user memory at `src` into `dst`. Faults on unmapped user pages
/// (after demand paging) give `BadAddress`, never a kernel fault.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), BadAddress> {
    check_user_range(src, dst.len())?;
    if copy_from_user_prefix(dst, src) == dst.len() {
        Ok(())
    } else {
        Err(BadAddress)
    }
}

/// Copies as much of user memory at `src` into `dst` as is readable, from
/// the start: returns how many bytes were copied (less than `dst.len()`
/// when the range runs into an unreachable page or the kernel half). A
/// write from such a buffer writes that much (a short count, as Linux).
pub fn copy_from_user_prefix(dst: &mut [u8], src: u64) -> usize {
    let reachable = cairn_pc::paging::USER_END.saturating_sub(src);
    let len = dst
        .len()
        .min(usize::try_from(reachable).unwrap_or(usize::MAX));
    // `src..src + len` lies in the user half (clamped above) and is read
    // through the fix-up table, so a fault only ends the copy; `dst` is a
    // kernel buffer we own.
    // SAFETY: see the three lines above.
    let left = unsafe { cairn_pc::fixup::copy_fallible(dst.as_mut_ptr(), src as *const u8, len) };
    len - left
}

/// Like [`copy_from_user`], but a page that is not mapped yet is not paged
/// in (the copy fails instead of sleeping): for reads under a lock.
pub fn copy_from_user_nofault(dst: &mut [u8], src: u64) -> Result<(), BadAddress> {
    with_user_faults_disabled(|| copy_from_user(dst, src))
}

/// Runs `f` with demand paging of user memory disabled on this CPU: a user
/// copy stops at the first page not mapped yet instead of faulting it in
/// (for copies made without the kernel lock).
pub fn with_user_faults_disabled<R>(f: impl FnOnce() -> R) -> R {
    let c = this_cpu();
    c.pagefault_disabled.fetch_add(1, Ordering::Relaxed);
    let r = f();
    // The thread may not have moved: nothing in `f` sleeps or yields.
    this_cpu()
        .pagefault_disabled
        .fetch_sub(1, Ordering::Relaxed);
    r
}

/// How many bytes of user memory from `addr` (at most `len`) can be read:
/// pages each of them in (a byte read per page, which demand-pages and may
/// sleep) and stops at the first page that cannot be reached. Writes call
/// it before reserving file space, so a buffer running into a hole writes,
/// and extends the file by, exactly its readable prefix (Linux's
/// `fault_in_iov_iter_readable`).
pub fn fault_in_readable(addr: u64, len: usize) -> usize {
    let mut at = addr;
    let end = addr.saturating_add(len as u64);
    while at < end {
        let mut probe = [0u8; 1];
        if copy_from_user(&mut probe, at).is_err() {
            break;
        }
        at = (at | 0xfff) + 1;
    }
    (at.min(end) - addr) as usize
}

/// Copies `src` to user memory at `dst`.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), BadAddress> {
    check_user_range(dst, src.len())?;
    // SAFETY: `dst` is a checked user range (user pages are the program's,
    // writes there cannot corrupt the kernel), written through the fix-up
    // table; `src` is a kernel buffer.
    let left = unsafe { cairn_pc::fixup::copy_fallible(dst as *mut u8, src.as_ptr(), src.len()) };
    if left == 0 { Ok(()) } else { Err(BadAddress) }
}

/// User memory at `base` for `len` bytes, as the destination of a
/// pagecache copy: file reads copy straight from the pinned page frames
/// into the program's buffer. A fault demand-pages (and may sleep) as in
/// [`copy_to_user`]; an unreachable page ends the copy short.
pub struct UserDestination {
    base: u64,
    len: usize,
}

impl UserDestination {
    pub fn new(base: u64, len: usize) -> Result<Self, BadAddress> {
        check_user_range(base, len)?;
        Ok(UserDestination { base, len })
    }
}

/// Most buffers a [`UserVectorDestination`] holds.
pub const MAX_DESTINATION_VECTORS: usize = 8;

/// Several user buffers filled one after the other (a `readv`'s vectors)
/// as one pagecache destination: byte `at` is in the first buffer that
/// reaches past it. A copy stops short at the first unreachable byte.
pub struct UserVectorDestination {
    parts: [(u64, usize); MAX_DESTINATION_VECTORS],
    count: usize,
}

impl UserVectorDestination {
    /// `parts` (address, length), at most [`MAX_DESTINATION_VECTORS`].
    pub fn new(parts: &[(u64, usize)]) -> Result<Self, BadAddress> {
        let mut d = UserVectorDestination {
            parts: [(0, 0); MAX_DESTINATION_VECTORS],
            count: parts.len(),
        };
        if parts.len() > MAX_DESTINATION_VECTORS {
            return Err(BadAddress);
        }
        for (slot, &(base, len)) in d.parts.iter_mut().zip(parts) {
            check_user_range(base, len)?;
            *slot = (base, len);
        }
        Ok(d)
    }
}

impl RawDestination for UserVectorDestination {
    unsafe fn copy_from(&mut self, at: usize, src: *const u8, len: usize) -> usize {
        let mut start = 0; // of the current part, in the whole destination
        let mut done = 0;
        for &(base, part_len) in &self.parts[..self.count] {
            let pos = at + done;
            if done == len {
                break;
            }
            if pos >= start + part_len {
                start += part_len;
                continue;
            }
            let n = (start + part_len - pos).min(len - done);
            let mut part = UserDestination {
                base,
                len: part_len,
            };
            // SAFETY: the caller keeps `src..src + len` readable for the
            // call, so its sub-range from `done` is too; the part checks its
            // own bounds.
            let got = unsafe { part.copy_from(pos - start, src.wrapping_add(done), n) };
            done += got;
            if got < n {
                break;
            }
            start += part_len;
        }
        done
    }
}

/// User memory at `base` for `len` bytes, as the source of a pagecache
/// copy: file writes copy straight from the program's buffer into the
/// leased page frames. Made with faults disabled by its user
/// (`Mount::write`): a page not mapped yet ends the copy short.
pub struct UserSource {
    base: u64,
    len: usize,
}

impl UserSource {
    pub fn new(base: u64, len: usize) -> Result<Self, BadAddress> {
        check_user_range(base, len)?;
        Ok(UserSource { base, len })
    }
}

impl cairn_pagecache::RawSource for UserSource {
    unsafe fn copy_to(&mut self, at: usize, dst: *mut u8, len: usize) -> usize {
        assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "copy past the user buffer"
        );
        // SAFETY: the source lies inside the user range checked in `new`
        // and is read through the fix-up table (an unreachable page stops
        // the copy); the caller keeps `dst..dst + len` writable and
        // unaliased for the call, and `copy_fallible` writes it with
        // string instructions only.
        let left = unsafe {
            cairn_pc::fixup::copy_fallible(dst, (self.base + at as u64) as *const u8, len)
        };
        len - left
    }
}

impl RawDestination for UserDestination {
    unsafe fn copy_from(&mut self, at: usize, src: *const u8, len: usize) -> usize {
        assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "copy past the user buffer"
        );
        // SAFETY: the destination lies inside the user range checked in
        // `new` (writes there cannot corrupt the kernel) and is written
        // through the fix-up table; the caller keeps `src..src + len`
        // readable for the call, and `copy_fallible` reads it with string
        // instructions only, never through a Rust reference.
        let left =
            unsafe { cairn_pc::fixup::copy_fallible((self.base + at as u64) as *mut u8, src, len) };
        len - left
    }
}
