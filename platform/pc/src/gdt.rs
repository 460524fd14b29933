//! Per-CPU global descriptor table and task-state segment.
//!
//! Layout (selectors): 0x08 kernel code, 0x10 kernel data, 0x1b user data,
//! 0x23 user code (the order `sysret` requires), 0x28 the TSS. The TSS holds
//! the kernel stack for entries from user mode (`rsp0`) and the interrupt
//! stacks: IST1 double fault, IST2 NMI, IST3 machine check.
//!
//! Each CPU loads its own pair once at start-up; `rsp0` is rewritten on
//! every switch to a user thread. Any context on the owning CPU; no locks.

use core::arch::asm;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x1b;
pub const USER_CS: u16 = 0x23;
pub const TSS_SELECTOR: u16 = 0x28;

/// IST slot numbers (1-based, as the IDT names them).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

/// The 64-bit task-state segment.
#[repr(C, packed(4))]
pub struct Tss {
    _reserved0: u32,
    pub rsp: [u64; 3],
    _reserved1: u64,
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    pub iomap_base: u16,
}

impl Tss {
    pub const fn new() -> Self {
        Tss {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: core::mem::size_of::<Tss>() as u16,
        }
    }
}

impl Default for Tss {
    fn default() -> Self {
        Self::new()
    }
}

/// One CPU's descriptor table.
#[repr(C, align(16))]
pub struct Gdt {
    entries: [u64; 7],
}

impl Gdt {
    pub const fn new() -> Self {
        Gdt {
            entries: [
                0,
                0x00af_9a00_0000_ffff, // kernel code, 64-bit
                0x00cf_9200_0000_ffff, // kernel data
                0x00cf_f200_0000_ffff, // user data (DPL 3)
                0x00af_fa00_0000_ffff, // user code, 64-bit (DPL 3)
                0,
                0,
            ],
        }
    }
}

impl Default for Gdt {
    fn default() -> Self {
        Self::new()
    }
}

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Loads `gdt` with `tss` in its TSS slot on this CPU, reloads the segment
/// registers and the task register.
///
/// # Safety
/// Both must stay alive and unmoved for as long as the CPU runs (per-CPU
/// statics), and `tss` must not be loaded on another CPU (a busy TSS
/// cannot be loaded twice).
pub unsafe fn load(gdt: &'static mut Gdt, tss: &'static Tss) {
    let base = tss as *const Tss as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    gdt.entries[5] = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    gdt.entries[6] = base >> 32;
    let ptr = Pointer {
        limit: (core::mem::size_of::<Gdt>() - 1) as u16,
        base: gdt as *const Gdt as u64,
    };
    // SAFETY: the table above is valid and 'static; reloading CS with a far
    // return to the next instruction, then the data selectors and the task
    // register, only switches to equivalent descriptors. GS and FS are
    // zeroed; their bases are set through MSRs afterwards.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) KERNEL_DS,
            tss = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}
