//! The user register frames a signal is delivered through: the syscall
//! stub's [`UserRegs`] and the trap stubs' [`TrapFrame`], both seen as a
//! `cairn_unix::sigframe::UserContext`.
//!
//! Kernel-lock context (delivery and `rt_sigreturn`). No locks.

use crate::user::UserRegs;
use cairn_pc::idt::TrapFrame;
use cairn_unix::sigframe::UserContext;

/// A saved user context the kernel may rewrite before returning to user
/// mode.
pub trait UserFrame {
    /// The registers as a signal frame saves them.
    fn context(&self) -> UserContext;
    /// Replaces the registers (the caller checked RIP and RSP).
    fn set_context(&mut self, c: &UserContext);
    /// The frame of a syscall, whose result may need a restart fix-up.
    fn as_syscall(&mut self) -> Option<&mut UserRegs> {
        None
    }
}

impl UserFrame for UserRegs {
    fn context(&self) -> UserContext {
        UserContext {
            r8: self.r8,
            r9: self.r9,
            r10: self.r10,
            r11: self.r11,
            r12: self.r12,
            r13: self.r13,
            r14: self.r14,
            r15: self.r15,
            rdi: self.rdi,
            rsi: self.rsi,
            rbp: self.rbp,
            rbx: self.rbx,
            rdx: self.rdx,
            rax: self.rax,
            rcx: self.rcx,
            rsp: self.rsp,
            rip: self.rip,
            rflags: self.rflags,
        }
    }

    fn set_context(&mut self, c: &UserContext) {
        self.r8 = c.r8;
        self.r9 = c.r9;
        self.r10 = c.r10;
        self.r11 = c.r11;
        self.r12 = c.r12;
        self.r13 = c.r13;
        self.r14 = c.r14;
        self.r15 = c.r15;
        self.rdi = c.rdi;
        self.rsi = c.rsi;
        self.rbp = c.rbp;
        self.rbx = c.rbx;
        self.rdx = c.rdx;
        self.rax = c.rax;
        self.rcx = c.rcx;
        self.rsp = c.rsp;
        self.rip = c.rip;
        self.rflags = c.rflags;
        self.cs = crate::user::entry::USER_CS;
        self.ss = crate::user::entry::USER_SS;
    }

    fn as_syscall(&mut self) -> Option<&mut UserRegs> {
        Some(self)
    }
}

impl UserFrame for TrapFrame {
    fn context(&self) -> UserContext {
        UserContext {
            r8: self.r8,
            r9: self.r9,
            r10: self.r10,
            r11: self.r11,
            r12: self.r12,
            r13: self.r13,
            r14: self.r14,
            r15: self.r15,
            rdi: self.rdi,
            rsi: self.rsi,
            rbp: self.rbp,
            rbx: self.rbx,
            rdx: self.rdx,
            rax: self.rax,
            rcx: self.rcx,
            rsp: self.rsp,
            rip: self.rip,
            rflags: self.rflags,
        }
    }

    fn set_context(&mut self, c: &UserContext) {
        self.r8 = c.r8;
        self.r9 = c.r9;
        self.r10 = c.r10;
        self.r11 = c.r11;
        self.r12 = c.r12;
        self.r13 = c.r13;
        self.r14 = c.r14;
        self.r15 = c.r15;
        self.rdi = c.rdi;
        self.rsi = c.rsi;
        self.rbp = c.rbp;
        self.rbx = c.rbx;
        self.rdx = c.rdx;
        self.rax = c.rax;
        self.rcx = c.rcx;
        self.rsp = c.rsp;
        self.rip = c.rip;
        self.rflags = c.rflags;
        self.cs = crate::user::entry::USER_CS;
        self.ss = crate::user::entry::USER_SS;
    }
}
