//! PCI configuration space through ports 0xcf8/0xcfc, bus enumeration
//! (following PCI-PCI bridges), BAR decoding, capability lists, MSI and
//! MSI-X programming, bus mastering.
//!
//! The address/data port pair is shared state: callers serialise all
//! configuration access (the kernel's PCI lock). Kernel-lock or boot
//! context.

use crate::cpu::{inl, outl};

/// A function's address on the bus.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

fn address(a: PciAddress, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(a.bus) << 16)
        | (u32::from(a.device) << 11)
        | (u32::from(a.function) << 8)
        | u32::from(offset & 0xfc)
}

/// Reads the 32-bit configuration register at `offset` (4-aligned).
pub fn read32(a: PciAddress, offset: u8) -> u32 {
    // SAFETY: 0xcf8/0xcfc is the configuration mechanism #1 port pair; the
    // caller serialises its use.
    unsafe {
        outl(0xcf8, address(a, offset));
        inl(0xcfc)
    }
}

/// Writes the 32-bit configuration register at `offset`.
pub fn write32(a: PciAddress, offset: u8, v: u32) {
    // SAFETY: as in `read32`; the register belongs to a function whose
    // driver (the caller) owns it.
    unsafe {
        outl(0xcf8, address(a, offset));
        outl(0xcfc, v);
    }
}

pub fn read16(a: PciAddress, offset: u8) -> u16 {
    (read32(a, offset) >> ((offset & 2) * 8)) as u16
}

pub fn write16(a: PciAddress, offset: u8, v: u16) {
    let shift = (offset & 2) * 8;
    let old = read32(a, offset);
    let new = (old & !(0xffff << shift)) | (u32::from(v) << shift);
    write32(a, offset, new);
}

pub fn read8(a: PciAddress, offset: u8) -> u8 {
    (read32(a, offset) >> ((offset & 3) * 8)) as u8
}

/// Identity and class of a function.
#[derive(Copy, Clone, Debug)]
pub struct PciFunction {
    pub address: PciAddress,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub header_type: u8,
    pub interrupt_line: u8,
    pub interrupt_pin: u8,
}

fn function_at(a: PciAddress) -> Option<PciFunction> {
    let id = read32(a, 0);
    if id & 0xffff == 0xffff {
        return None;
    }
    let class = read32(a, 8);
    let irq = read32(a, 0x3c);
    Some(PciFunction {
        address: a,
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: (class >> 24) as u8,
        subclass: (class >> 16) as u8,
        prog_if: (class >> 8) as u8,
        header_type: read8(a, 0x0e),
        interrupt_line: irq as u8,
        interrupt_pin: (irq >> 8) as u8,
    })
}

/// Calls `f` for every function on every bus reachable from bus 0 through
/// PCI-PCI bridges.
pub fn enumerate(mut f: impl FnMut(&PciFunction)) {
    let mut visited = [false; 256];
    scan_bus(0, &mut visited, &mut f);
}

fn scan_bus(bus: u8, visited: &mut [bool; 256], f: &mut impl FnMut(&PciFunction)) {
    if visited[usize::from(bus)] {
        return;
    }
    visited[usize::from(bus)] = true;
    for device in 0..32 {
        let Some(first) = function_at(PciAddress {
            bus,
            device,
            function: 0,
        }) else {
            continue;
        };
        let functions = if first.header_type & 0x80 != 0 { 8 } else { 1 };
        for function in 0..functions {
            let Some(func) = function_at(PciAddress {
                bus,
                device,
                function,
            }) else {
                continue;
            };
            f(&func);
            // PCI-PCI bridge: header type 1, class 06:04.
            if func.header_type & 0x7f == 1 && func.class == 0x06 && func.subclass == 0x04 {
                let secondary = read8(func.address, 0x19);
                if secondary != 0 {
                    scan_bus(secondary, visited, f);
                }
            }
        }
    }
}

/// A decoded base address register.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Bar {
    Memory {
        phys: u64,
        size: u64,
        prefetchable: bool,
        is_64bit: bool,
    },
    Io {
        port: u16,
        size: u32,
    },
}

/// Decodes BAR `index` (0-5) by sizing it; `None` if unimplemented. Memory
/// and I/O decoding are off while sizing.
pub fn bar(a: PciAddress, index: u8) -> Option<Bar> {
    let off = 0x10 + 4 * index;
    let orig = read32(a, off);
    let command = read16(a, 4);
    write16(a, 4, command & !0x3);
    write32(a, off, 0xffff_ffff);
    let mask = read32(a, off);
    write32(a, off, orig);
    let result = if orig & 1 == 1 {
        let size = (!(mask & !0x3)).wrapping_add(1) & 0xffff;
        (mask != 0 && size != 0).then_some(Bar::Io {
            port: (orig & !0x3) as u16,
            size,
        })
    } else {
        let is_64bit = (orig >> 1) & 3 == 2;
        let mut phys = u64::from(orig & !0xf);
        let mut mask64 = u64::from(mask & !0xf) | 0xffff_ffff_0000_0000;
        if is_64bit && index < 5 {
            let orig_hi = read32(a, off + 4);
            write32(a, off + 4, 0xffff_ffff);
            let mask_hi = read32(a, off + 4);
            write32(a, off + 4, orig_hi);
            phys |= u64::from(orig_hi) << 32;
            mask64 = (u64::from(mask_hi) << 32) | u64::from(mask & !0xf);
        }
        let size = (!mask64).wrapping_add(1);
        (mask & !0xf != 0 && size != 0).then_some(Bar::Memory {
            phys,
            size,
            prefetchable: orig & 8 != 0,
            is_64bit,
        })
    };
    write16(a, 4, command);
    result
}

/// Turns on memory and I/O decoding and bus mastering (DMA).
pub fn enable_bus_master(a: PciAddress) {
    let c = read16(a, 4);
    write16(a, 4, c | 0x7);
}

/// Sets or clears the INTx disable bit.
pub fn set_intx_disabled(a: PciAddress, disabled: bool) {
    let c = read16(a, 4);
    write16(
        a,
        4,
        if disabled {
            c | (1 << 10)
        } else {
            c & !(1 << 10)
        },
    );
}

/// Capability ids.
pub mod capability {
    pub const MSI: u8 = 0x05;
    pub const VENDOR: u8 = 0x09;
    pub const MSIX: u8 = 0x11;
}

/// Iterates over the capability list: (id, offset).
pub fn capabilities(a: PciAddress) -> impl Iterator<Item = (u8, u8)> {
    let has_list = read16(a, 6) & (1 << 4) != 0;
    let mut next = if has_list { read8(a, 0x34) & 0xfc } else { 0 };
    let mut budget = 48; // a malformed loop ends here
    core::iter::from_fn(move || {
        if next == 0 || budget == 0 {
            return None;
        }
        budget -= 1;
        let here = next;
        let id = read8(a, here);
        next = read8(a, here + 1) & 0xfc;
        Some((id, here))
    })
}

/// Offset of capability `id`, if present.
pub fn find_capability(a: PciAddress, id: u8) -> Option<u8> {
    capabilities(a).find(|&(i, _)| i == id).map(|(_, off)| off)
}

/// Message address for an MSI/MSI-X to the CPU with APIC id `apic_id`.
pub fn msi_address(apic_id: u32) -> u64 {
    0xfee0_0000 | (u64::from(apic_id & 0xff) << 12)
}

/// Programs and enables single-message MSI: `vector` on `apic_id`. False
/// if the function has no MSI capability.
pub fn enable_msi(a: PciAddress, vector: u8, apic_id: u32) -> bool {
    let Some(cap) = find_capability(a, capability::MSI) else {
        return false;
    };
    let control = read16(a, cap + 2);
    let is_64bit = control & (1 << 7) != 0;
    write32(a, cap + 4, msi_address(apic_id) as u32);
    let data_off = if is_64bit {
        write32(a, cap + 8, 0);
        cap + 12
    } else {
        cap + 8
    };
    write16(a, data_off, u16::from(vector));
    // One message (multiple-message enable = 0), enable.
    write16(a, cap + 2, (control & !(0x7 << 4)) | 1);
    set_intx_disabled(a, true);
    true
}

/// Where a function's MSI-X table lives.
#[derive(Copy, Clone, Debug)]
pub struct MsixInfo {
    pub capability: u8,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
}

pub fn msix_info(a: PciAddress) -> Option<MsixInfo> {
    let cap = find_capability(a, capability::MSIX)?;
    let control = read16(a, cap + 2);
    let table = read32(a, cap + 4);
    Some(MsixInfo {
        capability: cap,
        table_size: (control & 0x7ff) + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
    })
}

/// Writes MSI-X table entry `entry` (the table mapped uncached at
/// `table_virt`): `vector` on `apic_id`, unmasked.
///
/// # Safety
/// `table_virt` must map the function's MSI-X table (BAR + offset) with at
/// least `entry + 1` entries.
pub unsafe fn msix_set_entry(table_virt: u64, entry: u16, vector: u8, apic_id: u32) {
    let e = table_virt + u64::from(entry) * 16;
    // SAFETY: delegated to the caller: `e` is entry `entry` of the table.
    unsafe {
        ((e) as *mut u32).write_volatile(msi_address(apic_id) as u32);
        ((e + 4) as *mut u32).write_volatile(0);
        ((e + 8) as *mut u32).write_volatile(u32::from(vector));
        ((e + 12) as *mut u32).write_volatile(0);
    }
}

/// Enables MSI-X (function mask off) and disables INTx.
pub fn msix_enable(a: PciAddress, info: &MsixInfo) {
    let control = read16(a, info.capability + 2);
    write16(a, info.capability + 2, (control | (1 << 15)) & !(1 << 14));
    set_intx_disabled(a, true);
}
