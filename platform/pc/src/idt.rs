//! The interrupt descriptor table and the entry stubs of all 256 vectors.
//!
//! Every vector enters a 16-byte stub that pushes a zero error code where
//! the CPU pushes none, then the vector number, and jumps to one common
//! path that swaps GS when coming from user mode, saves all general
//! registers into a [`TrapFrame`] and calls the kernel's
//! `cairn_trap(&mut TrapFrame)`. The kernel may change the frame (a
//! fixed-up fault resumes elsewhere) before the stub restores it and
//! returns with `iretq`.
//!
//! Double fault, NMI and machine check run on their own IST stacks. All
//! vectors are interrupt gates (interrupts off on entry). The table is
//! shared by all CPUs and written once at boot. Irq context; no locks.

use crate::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CS};
use core::arch::{asm, global_asm};

/// The registers of the interrupted code, as the stubs save them.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// Whether the trap interrupted user mode.
    pub fn from_user(&self) -> bool {
        self.cs & 3 != 0
    }
}

/// CPU exception vectors.
pub mod vector {
    pub const DIVIDE_ERROR: u8 = 0;
    pub const DEBUG: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BREAKPOINT: u8 = 3;
    pub const OVERFLOW: u8 = 4;
    pub const BOUND_RANGE: u8 = 5;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DEVICE_NOT_AVAILABLE: u8 = 7;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const INVALID_TSS: u8 = 10;
    pub const SEGMENT_NOT_PRESENT: u8 = 11;
    pub const STACK_FAULT: u8 = 12;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
    pub const X87_FLOATING_POINT: u8 = 16;
    pub const ALIGNMENT_CHECK: u8 = 17;
    pub const MACHINE_CHECK: u8 = 18;
    pub const SIMD_FLOATING_POINT: u8 = 19;
    pub const VIRTUALIZATION: u8 = 20;
    pub const CONTROL_PROTECTION: u8 = 21;
    pub const HYPERVISOR_INJECTION: u8 = 28;
    pub const VMM_COMMUNICATION: u8 = 29;
    pub const SECURITY: u8 = 30;
    /// First vector not reserved for exceptions.
    pub const FIRST_EXTERNAL: u8 = 32;

    /// The exception's name, for reports.
    pub fn name(v: u64) -> &'static str {
        match v {
            0 => "divide error (#DE)",
            1 => "debug (#DB)",
            2 => "non-maskable interrupt",
            3 => "breakpoint (#BP)",
            4 => "overflow (#OF)",
            5 => "bound range exceeded (#BR)",
            6 => "invalid opcode (#UD)",
            7 => "device not available (#NM)",
            8 => "double fault (#DF)",
            10 => "invalid TSS (#TS)",
            11 => "segment not present (#NP)",
            12 => "stack-segment fault (#SS)",
            13 => "general protection (#GP)",
            14 => "page fault (#PF)",
            16 => "x87 floating-point (#MF)",
            17 => "alignment check (#AC)",
            18 => "machine check (#MC)",
            19 => "SIMD floating-point (#XM)",
            20 => "virtualization (#VE)",
            21 => "control protection (#CP)",
            28 => "hypervisor injection (#HV)",
            29 => "VMM communication (#VC)",
            30 => "security (#SX)",
            _ if v < 32 => "reserved exception",
            _ => "external interrupt",
        }
    }
}

global_asm!(
    r#"
    .section .text.trap_stubs, "ax"
    .p2align 4
    .global trap_stubs_start
trap_stubs_start:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    push vec
    .else
    push 0
    push vec
    .endif
    jmp trap_common
    .set vec, vec + 1
    .endr

trap_common:
    test qword ptr [rsp + 24], 3
    jz 2f
    swapgs
2:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call cairn_trap
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    test qword ptr [rsp + 24], 3
    jz 3f
    swapgs
3:
    add rsp, 16
    iretq
    .text
"#
);

unsafe extern "C" {
    static trap_stubs_start: u8;
}

#[repr(C)]
#[derive(Copy, Clone)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Table([Gate; 256]);

static mut IDT: Table = Table(
    [Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    }; 256],
);

/// Fills the shared IDT with the 256 stubs. Call once, on the bootstrap
/// CPU, before any CPU loads it.
pub fn init() {
    let base = &raw const trap_stubs_start as u64;
    for v in 0..256usize {
        let addr = base + 16 * v as u64;
        let ist = match v as u8 {
            vector::DOUBLE_FAULT => IST_DOUBLE_FAULT,
            vector::NMI => IST_NMI,
            vector::MACHINE_CHECK => IST_MACHINE_CHECK,
            _ => 0,
        };
        let gate = Gate {
            offset_low: addr as u16,
            selector: KERNEL_CS,
            ist,
            attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
        // SAFETY: `init` runs once on the bootstrap CPU before any CPU loads
        // the table, so nothing reads it concurrently.
        unsafe { IDT.0[v] = gate };
    }
}

/// Loads the shared IDT on this CPU.
pub fn load() {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (core::mem::size_of::<Table>() - 1) as u16,
        base: &raw const IDT as u64,
    };
    // SAFETY: the table is static and was filled by `init`.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}
