//! The boundary with user mode: the `syscall` entry stub, the common exit
//! through `sysretq`, and the per-CPU MSRs that route `syscall` here.
//!
//! On `syscall` the CPU has user RSP and interrupts masked (SFMASK). The
//! stub swaps to the kernel GS, parks the user RSP in per-CPU data, moves to
//! the running thread's kernel stack top and saves every user register
//! into a [`UserRegs`] there, then calls `cairn_syscall(&mut UserRegs)`. The
//! same frame, possibly edited (return value, a signal handler's context, a
//! new context for a fresh thread), is restored on the way out;
//! `cairn_enter_user` enters user mode from such a frame without a prior
//! syscall (a new thread's first entry). The usual way out is `sysretq`,
//! which clobbers `rcx` and `r11`, as the Linux ABI allows; when
//! `cairn_syscall` returns true (after `rt_sigreturn` restored a context in
//! which they are live) the stub restores every register and uses `iretq`.
//!
//! Interrupts are off from the exit path's `cli` until `sysretq`, so no
//! interrupt sees the user GS base with a kernel CS. Thread context.

use crate::percpu::PerCpu;
use cairn_pc::cpu::{msr, rdmsr, wrmsr};
use core::arch::global_asm;
use core::mem::offset_of;

/// A user thread's registers as the syscall stub saves them (and as
/// `cairn_enter_user` restores them), lowest address first. The last five
/// words are an `iretq` frame, so a return that must restore every
/// register (after `rt_sigreturn`) can use `iretq` instead of `sysretq`,
/// which clobbers `rcx` and `r11`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    /// Keeps the frame a multiple of 16 bytes, so the stack is aligned
    /// as the ABI wants when the stub calls into Rust.
    pub pad: u64,
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rax: u64,
    /// The syscall number (`rax` at entry): restarting a syscall needs it.
    pub orig_rax: u64,
    /// The user's `rcx` and `r11`: at `syscall` they hold RIP and RFLAGS;
    /// restored only by the `iretq` return.
    pub rcx: u64,
    pub r11: u64,
    /// User RIP (in `rcx` at `syscall`).
    pub rip: u64,
    /// User CS (for `iretq`).
    pub cs: u64,
    /// User RFLAGS (in `r11` at `syscall`).
    pub rflags: u64,
    pub rsp: u64,
    /// User SS (for `iretq`).
    pub ss: u64,
}

global_asm!(
    r#"
    .text
    .global cairn_syscall_entry
cairn_syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kstack}]
    push {user_ss}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push r11
    push rcx
    push rax
    push rax
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    mov rdi, rsp
    xor ebp, ebp
    cld
    call cairn_syscall
    mov rdi, rsp
    test al, al
    jnz cairn_enter_user_iret
    .global cairn_enter_user
cairn_enter_user:
    cli
    lea rsp, [rdi + 8]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    pop rax
    add rsp, 24
    pop rcx
    add rsp, 8
    pop r11
    pop rsp
    swapgs
    sysretq

    .global cairn_enter_user_iret
cairn_enter_user_iret:
    cli
    lea rsp, [rdi + 8]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    pop rax
    add rsp, 8
    pop rcx
    pop r11
    swapgs
    iretq
"#,
    user_rsp = const offset_of!(PerCpu, syscall_user_rsp),
    kstack = const offset_of!(PerCpu, kernel_stack_top),
    user_cs = const USER_CS,
    user_ss = const USER_SS,
);

unsafe extern "C" {
    fn cairn_syscall_entry();
    fn cairn_enter_user(regs: *const UserRegs) -> !;
}

/// The user code segment selector (GDT entry 4, RPL 3).
pub const USER_CS: u64 = 0x23;
/// The user data/stack segment selector (GDT entry 3, RPL 3).
pub const USER_SS: u64 = 0x1b;

/// RFLAGS bits cleared on `syscall`: IF (interrupts stay off until the stub
/// has switched stacks), DF, TF, AC.
const SFMASK: u64 = (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18);

/// Points this CPU's `syscall` at the stub (every CPU, at start-up).
pub fn init_cpu() {
    // SAFETY: EFER.SCE enables `syscall`; STAR selects the GDT's kernel
    // (0x08) and user (0x10 + 16 | 3 = 0x23 code, 0x1b data) segments in the
    // order `sysret` expects; LSTAR is the stub above; SFMASK masks IF.
    unsafe {
        wrmsr(msr::EFER, rdmsr(msr::EFER) | 1);
        wrmsr(msr::STAR, (0x10u64 << 48) | (0x08u64 << 32));
        wrmsr(msr::LSTAR, cairn_syscall_entry as *const () as u64);
        wrmsr(msr::SFMASK, SFMASK);
    }
}

/// User RFLAGS for a fresh context: IF set, reserved bit 1 set.
pub const USER_RFLAGS: u64 = 0x202;

/// Enters user mode with `regs`, which must sit at the top of the running
/// thread's kernel stack (everything below it is abandoned: hold nothing
/// that needs dropping). The kernel lock must already be released.
pub fn enter_user(regs: &UserRegs) -> ! {
    assert!(
        regs.rip < cairn_pc::paging::USER_END && regs.rsp < cairn_pc::paging::USER_END,
        "entering user mode at a kernel address"
    );
    // SAFETY: the frame holds user addresses (checked) and user RFLAGS;
    // `sysretq` drops to ring 3 with the GDT's user selectors, and the stub
    // swaps GS back to the user's.
    unsafe { cairn_enter_user(regs) }
}

// The stub calls into Rust with the stack pointer at the frame: the frame
// must keep the ABI's 16-byte alignment.
const _: () = assert!(core::mem::size_of::<UserRegs>() % 16 == 0);
