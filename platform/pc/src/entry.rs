//! Boot entry: the PVH ELF note, the 32-bit PVH entry that builds the boot
//! page tables and enters long mode, and the real-mode trampoline that
//! brings application processors to the same point.
//!
//! Boot page tables (in `.boot32.bss`, below 4 GiB): the first GiB of
//! physical memory identity-mapped and mapped again at [`KERNEL_BASE`]
//! with 2 MiB pages. They live only until the kernel loads its own tables
//! (the bootstrap CPU right after entry; each AP on arrival).
//!
//! The bootstrap CPU enters Rust at `cairn_start_bsp(start_info_phys)`. An
//! AP leaves the trampoline for a stub in the kernel image (mapped by both
//! table trees) that loads the kernel page tables before touching the stack
//! the mailbox names, then calls the mailbox's entry with its argument.
//! Interrupts are off on entry; no locks.

use core::arch::global_asm;

/// Virtual address of physical address 0 in the kernel image mapping
/// (the linker script places the kernel at `KERNEL_BASE + 1 MiB`).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// Physical address the AP trampoline is copied to (SIPI vector 0x08).
pub const TRAMPOLINE_PHYS: u64 = 0x8000;

/// Offsets of the mailbox words inside the trampoline page.
pub mod mailbox {
    /// Top of the stack the AP starts on (virtual).
    pub const STACK: usize = 0xf00;
    /// `extern "C" fn(arg: u64) -> !` the AP calls (virtual).
    pub const ENTRY: usize = 0xf08;
    /// The argument passed to it.
    pub const ARG: usize = 0xf10;
    /// Physical address of the boot PML4 (below 4 GiB).
    pub const CR3: usize = 0xf18;
    /// Physical address of the kernel PML4 the AP switches to before it
    /// touches its stack.
    pub const KERNEL_CR3: usize = 0xf20;
}

global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32
    .p2align 2

    .section .boot32.bss, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt_low:
    .skip 4096
boot_pdpt_high:
    .skip 4096
boot_pd:
    .skip 4096

    .section .boot32.data, "aw"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot_stack, "aw", @nobits
    .p2align 12
boot_stack_bottom:
    .skip 65536
    .global boot_stack_top
boot_stack_top:

    .text
"#
);

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .p2align 12
    .global ap_trampoline_start
    .global ap_trampoline_end
ap_trampoline_start:
    .code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (tramp_gdt_ptr - ap_trampoline_start + 0x8000)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(tramp32 - ap_trampoline_start + 0x8000)
    .code32
tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (0x8000 + 0xf18), %eax
    movl %eax, %cr3
    movl $0x80000001, %eax
    cpuid
    xorl %esi, %esi
    testl $(1 << 20), %edx
    jz 5f
    movl $0x800, %esi
5:
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    orl %esi, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    ljmpl $0x18, $(tramp64 - ap_trampoline_start + 0x8000)
    .code64
tramp64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq (0x8000 + 0xf00), %rsp
    movq (0x8000 + 0xf10), %rdi
    movq (0x8000 + 0xf08), %rax
    movq (0x8000 + 0xf20), %rbx
    movabsq $ap_high_entry, %rcx
    jmpq *%rcx
    .p2align 3
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
tramp_gdt_end:
tramp_gdt_ptr:
    .word tramp_gdt_end - tramp_gdt - 1
    .long tramp_gdt - ap_trampoline_start + 0x8000
ap_trampoline_end:

    .text
    .code64
    .global ap_high_entry
ap_high_entry:
    movq %rbx, %cr3
    xorl %ebp, %ebp
    callq *%rax
4:
    hlt
    jmp 4b
    .section .boot32.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %edi
    xorl %ecx, %ecx
2:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd+4(,%ecx,8)
    incl %ecx
    cmpl $512, %ecx
    jne 2b
    movl $boot_pd, %eax
    orl $3, %eax
    movl %eax, boot_pdpt_low
    movl %eax, boot_pdpt_high + 510 * 8
    movl $boot_pdpt_low, %eax
    orl $3, %eax
    movl %eax, boot_pml4
    movl $boot_pdpt_high, %eax
    orl $3, %eax
    movl %eax, boot_pml4 + 511 * 8
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    lgdtl boot_gdt_ptr
    ljmpl $0x08, $boot_long_mode

    .code64
boot_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp
    movl %edi, %edi
    xorl %ebp, %ebp
    movabsq $cairn_start_bsp, %rax
    callq *%rax
3:
    hlt
    jmp 3b

    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static boot_pml4: u8;
}

/// The AP trampoline's machine code, to be copied to [`TRAMPOLINE_PHYS`].
pub fn ap_trampoline() -> &'static [u8] {
    let start = &raw const ap_trampoline_start;
    let end = &raw const ap_trampoline_end;
    let len = end as usize - start as usize;
    assert!(len <= mailbox::STACK, "AP trampoline overlaps its mailbox");
    // SAFETY: both symbols delimit the trampoline bytes in `.rodata`, which
    // is mapped and never written.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Physical address of the boot PML4 (the image is linked at
/// `KERNEL_BASE + physical`).
pub fn boot_pml4_phys() -> u64 {
    let v = &raw const boot_pml4 as u64;
    if v >= KERNEL_BASE { v - KERNEL_BASE } else { v }
}
