//! Single x86-64 instructions the rest of the kernel needs: port I/O, MSRs,
//! control registers, CPUID, the TSC, the interrupt flag, `hlt`.
//!
//! Each wrapper is a safe function when the instruction cannot break memory
//! safety by itself (reading CPUID, the TSC, a control register, toggling
//! interrupts); writes to MSRs, ports and CR3 are `unsafe`: the caller states
//! why the write is sound. Any context.

use core::arch::asm;

/// CPUID leaf `leaf`, subleaf `sub`: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Reads model-specific register `msr`.
///
/// # Safety
/// The MSR must exist on this CPU (reading an absent one raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; rdmsr has no memory effects.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes model-specific register `msr`.
///
/// # Safety
/// The MSR must exist and the value must not break the kernel's invariants
/// (paging, segment bases, APIC state...).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device whose driver expects this write.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// Reading the port must have no side effect the owning driver does not expect.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a 16-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 16-bit word from an I/O port.
///
/// # Safety
/// As for [`inb`].
pub unsafe fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("in ax, dx", in("dx") port, out("ax") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 32-bit word from an I/O port.
///
/// # Safety
/// As for [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Whether interrupts are enabled (RFLAGS.IF).
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: pushfq/pop only reads RFLAGS through the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Disables interrupts on this CPU.
///
/// `cli`, `sti` and `sti; hlt` are compiler barriers (their `asm!` is not
/// `nomem`): memory accesses of a section that must run with interrupts off
/// (a per-CPU flag, a queue operation) are never moved across them.
pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot violate memory safety.
    unsafe { asm!("cli", options(nostack)) };
}

/// Enables interrupts on this CPU.
pub fn enable_interrupts() {
    // SAFETY: every vector has a handler installed before the first `sti`
    // (the IDT is loaded early in boot), so taking interrupts is sound.
    unsafe { asm!("sti", options(nostack)) };
}

/// Enables interrupts and halts until the next one, atomically: an
/// interrupt that arrives between the two instructions still wakes `hlt`.
pub fn enable_interrupts_and_halt() {
    // SAFETY: as for `enable_interrupts`; `hlt` only waits.
    unsafe { asm!("sti; hlt", options(nostack)) };
}

/// Halts until the next interrupt (or NMI) with the interrupt flag as is.
pub fn halt() {
    // SAFETY: `hlt` only waits.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// Spin-loop hint.
pub fn pause() {
    core::hint::spin_loop();
}

pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Loads a new top-level page table.
///
/// # Safety
/// `pml4_phys` must be a page table that maps the running code, its stack
/// and every structure the kernel uses with the same meaning as before.
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack, preserves_flags)) };
}

pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes CR0.
///
/// # Safety
/// The new value must keep paging and protection as the kernel expects.
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// Writes CR4.
///
/// # Safety
/// As for [`write_cr0`].
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// Invalidates the TLB entry of one virtual address on this CPU.
pub fn invlpg(addr: u64) {
    // SAFETY: dropping a TLB entry only makes the CPU re-read page tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// Flushes all non-global TLB entries of this CPU.
pub fn flush_tlb() {
    let cr3 = read_cr3();
    // SAFETY: reloading the current CR3 keeps the same address space.
    unsafe { write_cr3(cr3) };
}

/// The frame pointer of the caller (for backtraces).
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let v: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, rbp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub mod msr {
    pub const APIC_BASE: u32 = 0x1b;
    pub const EFER: u32 = 0xc000_0080;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const TSC_DEADLINE: u32 = 0x6e0;
    pub const PAT: u32 = 0x277;
}

/// CPU features cairn cares about, read once.
#[derive(Copy, Clone, Debug, Default)]
pub struct Features {
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub invariant_tsc: bool,
    pub pdpe1gb: bool,
    pub nx: bool,
    pub fsgsbase: bool,
    pub hypervisor: bool,
}

pub fn features() -> Features {
    let (_, _, ecx1, _) = cpuid(1, 0);
    let (max_ext, ..) = cpuid(0x8000_0000, 0);
    let (_, _, _, edx_ext1) = if max_ext >= 0x8000_0001 {
        cpuid(0x8000_0001, 0)
    } else {
        (0, 0, 0, 0)
    };
    let (_, _, _, edx_ext7) = if max_ext >= 0x8000_0007 {
        cpuid(0x8000_0007, 0)
    } else {
        (0, 0, 0, 0)
    };
    let (_, ebx7, ..) = cpuid(7, 0);
    Features {
        x2apic: ecx1 & (1 << 21) != 0,
        tsc_deadline: ecx1 & (1 << 24) != 0,
        hypervisor: ecx1 & (1 << 31) != 0,
        invariant_tsc: edx_ext7 & (1 << 8) != 0,
        pdpe1gb: edx_ext1 & (1 << 26) != 0,
        nx: edx_ext1 & (1 << 20) != 0,
        fsgsbase: ebx7 & 1 != 0,
    }
}

/// A hardware random number (RDRAND), `None` when the CPU had none ready.
/// Call only when CPUID.1:ECX[30] says RDRAND exists.
pub fn rdrand() -> Option<u64> {
    let v: u64;
    let ok: u8;
    // SAFETY: RDRAND only writes its destination and CF; the caller checked
    // the CPU supports it.
    unsafe {
        core::arch::asm!("rdrand {}", "setc {}", out(reg) v, out(reg_byte) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(v)
}
