//! PCI helpers the drivers share: memory BARs and MSI-X tables, through
//! [`crate::env::DriverEnv`] (configuration space stays serialised by the
//! kernel's `pci.config` lock).
//!
//! Probe context only (boot or kernel-lock). No locks of its own.

use crate::env::{IrqHandler, env};
use cairn_pc::pci::{Bar, MsixInfo, PciAddress};

/// Physical address of memory BAR `index`, if it is one and assigned.
pub fn memory_bar(a: PciAddress, index: u8) -> Option<u64> {
    let mut bar = None;
    env().pci_exclusive(&mut || bar = cairn_pc::pci::bar(a, index));
    match bar {
        Some(Bar::Memory { phys, .. }) if phys != 0 => Some(phys),
        _ => None,
    }
}

/// A function's MSI-X table, mapped.
pub struct Msix {
    address: PciAddress,
    info: MsixInfo,
    table: u64,
}

impl Msix {
    /// The MSI-X table of `a`, if it has one.
    pub fn find(a: PciAddress) -> Option<Msix> {
        let mut info = None;
        env().pci_exclusive(&mut || info = cairn_pc::pci::msix_info(a));
        let info = info?;
        let phys = memory_bar(a, info.table_bar)? + u64::from(info.table_offset);
        let table = env().map_mmio(phys, u64::from(info.table_size) * 16);
        Some(Msix {
            address: a,
            info,
            table,
        })
    }

    /// Entries in the table.
    pub fn entries(&self) -> u16 {
        self.info.table_size
    }

    /// Points entry `entry` at a new vector running `h` on the CPU with
    /// APIC id `apic`; the vector, or `None` (no vector free, no such
    /// entry).
    pub fn route(&self, entry: u16, h: IrqHandler, apic: u32) -> Option<u8> {
        if entry >= self.info.table_size {
            return None;
        }
        let vector = env().alloc_vector(h)?;
        // SAFETY: `table` maps this function's MSI-X table, which has more
        // than `entry` entries (checked above).
        unsafe { cairn_pc::pci::msix_set_entry(self.table, entry, vector, apic) };
        Some(vector)
    }

    /// Turns MSI-X on (and INTx off).
    pub fn enable(&self) {
        let (a, info) = (self.address, self.info);
        env().pci_exclusive(&mut || cairn_pc::pci::msix_enable(a, &info));
    }
}
