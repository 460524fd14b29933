//! User-mode tests: a small program embedded in the kernel image enters
//! ring 3, makes system calls (good and bad pointers, an unknown number),
//! uses SSE, and exits; another dies of a fault.

use super::{Expect, KernelTest};
use alloc::string::String;
use cairn_pc::paging::flags;
use core::arch::global_asm;

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "user_mode",
        smp: &[1, 2],
        expect: Expect::Exit(0),
        run: user_mode,
    },
    KernelTest {
        name: "user_fault",
        smp: &[1],
        expect: Expect::Exit(139),
        run: user_fault,
    },
];

global_asm!(
    r#"
    .section .rodata.ktest_user, "a"
    .global ktest_user_start
    .global ktest_user_end
    .global ktest_fault_start
    .global ktest_fault_end
ktest_user_start:
    movl $1, %eax
    movl $1, %edi
    leaq 10f(%rip), %rsi
    movl $(11f - 10f), %edx
    syscall
    cmpq $(11f - 10f), %rax
    jne 20f
    movl $1, %eax
    movl $1, %edi
    movabsq $0xffff800000000000, %rsi
    movl $4, %edx
    syscall
    cmpq $-14, %rax
    jne 20f
    movl $400, %eax
    syscall
    cmpq $-38, %rax
    jne 20f
    movl $0x3f800000, %eax
    movd %eax, %xmm0
    addss %xmm0, %xmm0
    movd %xmm0, %eax
    cmpl $0x40000000, %eax
    jne 20f
    movl $231, %eax
    xorl %edi, %edi
    syscall
20:
    movl $231, %eax
    movl $1, %edi
    syscall
10:
    .ascii "hello from user mode\n"
11:
ktest_user_end:
ktest_fault_start:
    xorl %eax, %eax
    movq (%rax), %rax
ktest_fault_end:
    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static ktest_user_start: u8;
    static ktest_user_end: u8;
    static ktest_fault_start: u8;
    static ktest_fault_end: u8;
}

const CODE: u64 = 0x40_0000;
const STACK_TOP: u64 = 0x7fff_0000;

fn run_blob(start: *const u8, end: *const u8) -> Result<(), String> {
    crate::process::ensure_bare();
    let len = end as usize - start as usize;
    // SAFETY: the two symbols delimit the blob in the kernel's rodata.
    let code = unsafe { core::slice::from_raw_parts(start, len) };
    let (code_phys, code_virt) = crate::heaps::dma::alloc(4096).ok_or("no memory")?;
    // SAFETY: a fresh page of ours, mapped by the direct map.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), code_virt as *mut u8, len) };
    let (stack_phys, _) = crate::heaps::dma::alloc(4096).ok_or("no memory")?;
    crate::mm::kernel_map::map_page(CODE, code_phys, flags::USER)
        .map_err(|e| alloc::format!("{e:?}"))?;
    crate::mm::kernel_map::map_page(
        STACK_TOP - 4096,
        stack_phys,
        flags::USER | flags::WRITABLE | flags::NO_EXECUTE,
    )
    .map_err(|e| alloc::format!("{e:?}"))?;
    let regs = crate::user::UserRegs {
        rip: CODE,
        rsp: STACK_TOP - 64,
        rflags: crate::user::entry::USER_RFLAGS,
        ..Default::default()
    };
    let t = crate::sched::thread::Thread::new_user(
        "user-test",
        crate::user::UserState::new(1, regs, 0, cairn_unix::signal::SigSet::EMPTY),
    )
    .ok_or("no memory for the thread")?;
    crate::sched::runqueue().enqueue(crate::sched::Runnable::Thread(t));
    crate::sched::runloop::wake_cpu_for_work();
    // The program's exit ends the test (exit status 0 on success).
    crate::sched::sleep(super::util::HANG_NS);
    Err("the user program did not exit".into())
}

fn user_mode() -> Result<(), String> {
    run_blob(&raw const ktest_user_start, &raw const ktest_user_end)
}

fn user_fault() -> Result<(), String> {
    run_blob(&raw const ktest_fault_start, &raw const ktest_fault_end)
}
