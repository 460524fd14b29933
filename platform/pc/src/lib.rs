//! The PC platform: everything in cairn that touches x86-64 PC hardware
//! directly, below the kernel's abstractions.
//!
//! | module | owns |
//! |---|---|
//! | [`entry`] | PVH ELF note, 32-bit entry, boot page tables, AP trampoline |
//! | [`start_info`] | the PVH `hvm_start_info`: memory map, command line, RSDP |
//! | [`cpu`] | single instructions: ports, MSRs, control registers, CPUID, TSC, `hlt` |
//! | [`gdt`] | per-CPU GDT and TSS with IST stacks |
//! | [`idt`] | the IDT, the 256 entry stubs and the [`idt::TrapFrame`] |
//! | [`fixup`] | the exception fix-up table, fallible copies, fault probes |
//! | [`paging`] | four-level page tables and the address-space layout |
//! | [`apic`], [`ioapic`], [`pic`] | interrupt controllers |
//! | [`acpi`] | RSDP, RSDT/XSDT, MADT |
//! | [`pit`] | the calibration reference clock |
//! | [`rtc`] | the CMOS clock (wall-clock time at boot) |
//! | [`smp`] | INIT-SIPI-SIPI start of application processors |
//! | [`pci`] | configuration space, enumeration, BARs, MSI/MSI-X |
//! | [`serial`] | the COM1 console |
//! | [`debug_exit`] | QEMU's isa-debug-exit |
//!
//! Nothing here allocates or takes a lock; where hardware state is shared
//! (PCI configuration ports, an I/O APIC's index register, page tables) the
//! module says which kernel lock its callers hold. Almost all of cairn's
//! `unsafe` lives here, each block with the reason it holds.
#![no_std]

pub mod acpi;
pub mod apic;
pub mod cpu;
pub mod debug_exit;
// The boot code, entry stubs and fix-up table are position-dependent
// assembly linked by the kernel's linker script: kernel target only (host
// builds, which link position-independent test binaries, leave them out).
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod fixup;
pub mod gdt;
#[cfg(target_os = "none")]
pub mod idt;
pub mod ioapic;
pub mod paging;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod serial;
#[cfg(target_os = "none")]
pub mod smp;
pub mod start_info;
