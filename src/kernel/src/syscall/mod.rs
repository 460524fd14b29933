//! System calls of the user program: dispatch by number, and the handling
//! of exceptions raised in user mode.
//!
//! Kernel-lock context (the entry path takes the lock before calling in).
//! Unsupported calls return ENOSYS and are logged once per number.

use crate::user::UserRegs;
use cairn_pc::idt::TrapFrame;
use core::sync::atomic::{AtomicU64, Ordering};

const ENOSYS: i64 = 38;
const EFAULT: i64 = 14;
const EBADF: i64 = 9;

/// One bit per syscall number below 512: "ENOSYS already logged".
static REPORTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn report_unsupported(nr: u64) {
    let (w, b) = ((nr / 64) as usize, nr % 64);
    if w >= REPORTED.len() || REPORTED[w].fetch_or(1 << b, Ordering::Relaxed) & (1 << b) == 0 {
        crate::warn!("unsupported syscall {nr}: ENOSYS");
    }
}

/// Runs the syscall in `regs` (number in rax, arguments in rdi, rsi, rdx,
/// r10, r8, r9) and puts its result in rax.
pub fn dispatch(regs: &mut UserRegs) {
    let nr = regs.rax;
    let r: i64 = match nr {
        1 => write(regs.rdi, regs.rsi, regs.rdx),
        60 | 231 => crate::panic::exit(regs.rdi as u32 & 0xff),
        _ => {
            report_unsupported(nr);
            -ENOSYS
        }
    };
    regs.rax = r as u64;
}

fn write(fd: u64, buf: u64, len: u64) -> i64 {
    if fd != 1 && fd != 2 {
        return -EBADF;
    }
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        if crate::user::copy_from_user(&mut chunk[..n], buf + done).is_err() {
            return if done > 0 { done as i64 } else { -EFAULT };
        }
        crate::print!(
            "{}",
            core::str::from_utf8(&chunk[..n]).unwrap_or("<non-UTF-8 output>")
        );
        done += n as u64;
    }
    done as i64
}

/// An exception in user mode: for now every one is fatal (page faults get
/// demand paging with the address-space layer).
pub fn user_exception(frame: &mut TrapFrame) {
    let (signal, name) = match frame.vector {
        0 | 16 | 19 => (8, "SIGFPE"),
        6 => (4, "SIGILL"),
        3 => (5, "SIGTRAP"),
        _ => (11, "SIGSEGV"),
    };
    let cr2 = if frame.vector == 14 {
        cairn_pc::cpu::read_cr2()
    } else {
        0
    };
    crate::println!(
        "cairn: program killed by {name}: {} at RIP {:#x}, address {cr2:#x}",
        cairn_pc::idt::vector::name(frame.vector),
        frame.rip
    );
    crate::panic::exit(128 + signal)
}
