//! Delivery: at a thread's return to user mode, take its pending signals in
//! order and act on each: ignore it, end the program (a fatal default), or
//! run its handler by writing a frame on the user stack and rewriting the
//! saved registers to enter the handler; `rt_sigreturn` undoes that. Also
//! the syscall restart rules (`ERESTARTSYS` and friends), and synchronous
//! faults turned into signals.
//!
//! Handler frames nest like Linux's: with several signals pending, each
//! handler's frame is built on top of the previous one, and the last one
//! runs first. The x87/SSE state of the interrupted code is saved in the
//! frame and the handler starts with a clean one; `rt_sigreturn` restores
//! it (MXCSR's reserved bits cleared, so a corrupt frame cannot fault the
//! kernel). A frame that cannot be written (bad stack, no `SA_RESTORER`)
//! or read back ends the program with SIGSEGV, as on Linux.
//!
//! Kernel-lock context, in the thread concerned, with no spinlock held
//! (user memory is written and read here, and may fault in). Locks: see
//! [`super`].

use super::frame::UserFrame;
use super::ignores;
use crate::process::current;
use crate::user::UserRegs;
use crate::user::fpu::FpuState;
use cairn_unix::errno::Errno;
use cairn_unix::sigframe::{
    FPSTATE_SIZE, SigInfo, UC_OFFSET, UCONTEXT_SIZE, code, decode_ucontext, on_altstack,
    plan_frame, restored_altstack,
};
use cairn_unix::signal::{
    SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SIG_DFL, SIGBUS, SIGFPE, SIGILL,
    SIGSEGV, SIGTRAP, SS_AUTODISARM, SS_DISABLE, SigAction, SigSet,
};
use core::sync::atomic::Ordering;

/// What to do with the signal taken from the queue.
enum Step {
    /// Ignored: nothing.
    Skip,
    /// A fatal default: end the program.
    Die(u32),
    /// Run `action`'s handler; `saved` is the mask `rt_sigreturn` restores.
    Handler {
        info: SigInfo,
        action: SigAction,
        saved: SigSet,
    },
}

/// Takes the next deliverable signal of the calling thread and decides
/// what it does; `None` when nothing is pending and unblocked.
fn next_step() -> Option<Step> {
    let t = super::current_thread()?;
    let u = t.user.as_ref()?;
    let p = current();
    let mut acts = p.signals.lock();
    let mut ts = u.signals.lock();
    let mut shared = p.sigpending.lock();
    let mask = ts.mask;
    // The thread's own queue first on a tie (a fault beats a kill).
    let info = match (ts.pending.next(mask), shared.next(mask)) {
        (None, None) => return None,
        (Some(a), Some(b)) if b < a && !cairn_unix::sigpending::SYNCHRONOUS.contains(a) => {
            shared.take_signal(b)
        }
        (Some(a), _) => ts.pending.take_signal(a),
        (None, Some(b)) => shared.take_signal(b),
    }?;
    drop(shared);
    let sig = info.signo;
    let action = acts.get(sig).ok()?;
    if sig == cairn_unix::signal::SIGKILL {
        return Some(Step::Die(sig));
    }
    if ignores(action.handler, sig) {
        return Some(Step::Skip);
    }
    if action.handler == SIG_DFL {
        return Some(match cairn_unix::signal::default_action(sig) {
            cairn_unix::signal::DefaultAction::Terminate
            | cairn_unix::signal::DefaultAction::CoreDump => Step::Die(sig),
            _ => Step::Skip, // stop/continue: no job control
        });
    }
    let saved = ts.saved_mask.take().unwrap_or(mask);
    let mut blocked = mask.union(action.mask);
    if action.flags & SA_NODEFER == 0 {
        blocked = blocked.with(sig);
    }
    ts.mask = blocked.without(SigSet::UNBLOCKABLE);
    if action.flags & SA_RESETHAND != 0 {
        let _ = acts.rt_sigaction(sig, Some(SigAction::default()), 8);
    }
    Some(Step::Handler {
        info,
        action,
        saved,
    })
}

/// The restart fix-up of a syscall frame whose result is a restart code:
/// restart it (back to the `syscall` instruction with its number), or turn
/// the code into `EINTR` because a handler without `SA_RESTART` runs.
fn fix_restart(frame: &mut dyn UserFrame, handler: Option<&SigAction>) {
    let Some(regs) = frame.as_syscall() else {
        return;
    };
    if regs.orig_rax == u64::MAX {
        return;
    }
    let Some(e) = Errno::from_syscall_return(regs.rax as i64).filter(|e| e.is_restart()) else {
        return;
    };
    let restart = match handler {
        None => true,
        Some(a) => {
            e == Errno::ERESTARTNOINTR || (e == Errno::ERESTARTSYS && a.flags & SA_RESTART != 0)
        }
    };
    if restart {
        regs.rax = regs.orig_rax;
        regs.rip -= 2; // `syscall` is two bytes
    } else {
        regs.rax = Errno::EINTR.as_neg() as u64;
    }
}

/// Delivers the calling thread's pending signals before it returns to user
/// mode through `frame` (kernel-lock context, no spinlock held). May end
/// the program.
pub fn deliver(frame: &mut dyn UserFrame) {
    // The common case, on every syscall's way out: nothing to deliver.
    while super::hint_for_current() {
        let Some(t) = super::current_thread() else {
            return;
        };
        let u = t.user.as_ref().expect("a user thread");
        if !u.sig_hint.swap(false, Ordering::AcqRel) {
            break;
        }
        let Some(step) = next_step() else {
            break;
        };
        // Look again after this one: more may be pending.
        u.sig_hint.store(true, Ordering::Release);
        drop(t);
        match step {
            Step::Skip => {}
            Step::Die(sig) => crate::syscall::fatal_signal(sig, "signal delivered"),
            Step::Handler {
                info,
                action,
                saved,
            } => {
                fix_restart(frame, Some(&action));
                if let Err(why) = enter_handler(frame, &info, &action, saved) {
                    crate::syscall::fatal_signal(
                        SIGSEGV,
                        &alloc::format!("cannot run the handler of signal {}: {why}", info.signo),
                    );
                }
            }
        }
    }
    fix_restart(frame, None);
}

/// Writes the frame of `info`'s handler and points `frame` at the handler.
fn enter_handler(
    frame: &mut dyn UserFrame,
    info: &SigInfo,
    action: &SigAction,
    saved: SigSet,
) -> Result<(), &'static str> {
    let t = super::current_thread().ok_or("no thread")?;
    let u = t.user.as_ref().ok_or("no thread")?;
    if action.flags & SA_RESTORER == 0 {
        return Err("no SA_RESTORER (x86-64 handlers return through sa_restorer)");
    }
    if action.handler >= cairn_pc::paging::USER_END {
        return Err("handler address outside user space");
    }
    let alt = u.signals.lock().altstack;
    let ctx = frame.context();
    let plan = plan_frame(
        &ctx,
        info,
        action.handler,
        action.restorer,
        saved,
        &alt,
        action.flags & SA_ONSTACK != 0,
    )
    .map_err(|_| "the stack has no room for a frame")?;
    let mut fpu = FpuState::initial();
    fpu.save();
    crate::user::copy_to_user(plan.fpstate, fpu.bytes())
        .map_err(|_| "the signal stack is not writable")?;
    crate::user::copy_to_user(plan.frame, &plan.bytes)
        .map_err(|_| "the signal stack is not writable")?;
    if plan.on_altstack && alt.flags & SS_AUTODISARM != 0 {
        u.signals.lock().altstack = cairn_unix::signal::AltStack::default();
    }
    // The handler starts with a clean x87/SSE state.
    FpuState::initial().restore();
    frame.set_context(&plan.handler);
    Ok(())
}

/// `rt_sigreturn`: restores the context the handler's frame saved (at the
/// user RSP, just above the popped return address). A frame that cannot be
/// read or would enter the kernel ends the program with SIGSEGV. The
/// caller returns to user mode restoring every register (`iretq`).
pub fn sigreturn(regs: &mut UserRegs) {
    let uc_addr = regs.rsp.wrapping_sub(8).wrapping_add(UC_OFFSET);
    let mut uc = [0u8; UCONTEXT_SIZE];
    if crate::user::copy_from_user(&mut uc, uc_addr).is_err() {
        crate::syscall::fatal_signal(SIGSEGV, "rt_sigreturn: the signal frame is not readable");
    }
    let r = match decode_ucontext(&uc, cairn_pc::paging::USER_END) {
        Ok(r) => r,
        Err(_) => crate::syscall::fatal_signal(
            SIGSEGV,
            "rt_sigreturn: the frame's RIP or RSP lies outside user space",
        ),
    };
    let mut fpu = FpuState::initial();
    if r.fpstate != 0 {
        let mut image = [0u8; FPSTATE_SIZE as usize];
        if crate::user::copy_from_user(&mut image, r.fpstate).is_err() {
            crate::syscall::fatal_signal(SIGSEGV, "rt_sigreturn: the FPU state is not readable");
        }
        fpu = FpuState::from_user_image(&image);
    }
    fpu.restore();
    if let Some(t) = super::current_thread()
        && let Some(u) = &t.user
    {
        let mut ts = u.signals.lock();
        ts.mask = r.mask.without(SigSet::UNBLOCKABLE);
        let on = on_altstack(&ts.altstack, regs.rsp);
        ts.altstack = restored_altstack(&ts.altstack, &r.stack, on);
        if ts.altstack.flags & SS_DISABLE != 0 && r.stack.flags & SS_DISABLE == 0 {
            // An autodisarmed stack comes back with the frame's uc_stack.
            ts.altstack = restored_altstack(&ts.altstack, &r.stack, false);
        }
        drop(ts);
        super::send::recheck_current();
    }
    regs.set_context(&r.regs);
    // The restored RAX is the interrupted code's, never a syscall result
    // to fix up.
    regs.orig_rax = u64::MAX;
}

/// A synchronous fault of the calling thread (`vector` at `rip`, fault
/// address `addr`): queue its signal so the exit path runs the handler,
/// or, if the signal is blocked or ignored (or has no handler), end the
/// program now, as Linux forces.
pub fn fault(vector: u64, rip: u64, addr: u64, mapped: bool, what: &str) {
    let (sig, code, at) = match vector {
        14 if mapped => (SIGSEGV, code::SEGV_ACCERR, addr),
        14 => (SIGSEGV, code::SEGV_MAPERR, addr),
        0 => (SIGFPE, code::FPE_INTDIV, rip),
        16 | 19 => (SIGFPE, code::FPE_FLTINV, rip),
        6 => (SIGILL, code::ILL_ILLOPN, rip),
        1 | 3 => (SIGTRAP, code::TRAP_BRKPT, rip),
        _ => (SIGSEGV, code::SI_KERNEL, 0),
    };
    fault_signal(SigInfo::fault(sig, code, at), what);
}

/// A SIGBUS for an access past the end of a mapped file at `addr`.
pub fn bus_error(addr: u64, what: &str) {
    fault_signal(SigInfo::fault(SIGBUS, code::BUS_ADRERR, addr), what);
}

fn fault_signal(info: SigInfo, what: &str) {
    let sig = info.signo;
    let handled = super::current_thread().is_some_and(|t| {
        let u = t.user.as_ref().expect("a user thread");
        let action = current().signals.lock().get(sig).unwrap_or_default();
        let mut ts = u.signals.lock();
        let ok =
            !ts.mask.contains(sig) && !ignores(action.handler, sig) && action.handler != SIG_DFL;
        if ok && ts.pending.push(info).is_ok() {
            drop(ts);
            u.sig_hint.store(true, Ordering::Release);
            true
        } else {
            false
        }
    });
    if !handled {
        crate::syscall::fatal_signal(sig, what);
    }
}
