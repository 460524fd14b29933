//! The PCI functions found at boot, and serialised access to configuration
//! space for the drivers that own them.
//!
//! Enumeration walks bus 0 and every bus behind a PCI-PCI bridge once, at
//! boot; the list is then read-only. Configuration accesses go through the
//! `pci.config` lock (the 0xcf8/0xcfc pair is one shared register window).
//!
//! Kernel-lock or boot context. Lock: `pci.config` (IrqSpinLock), a leaf.

use alloc::vec::Vec;
use cairn_pc::pci::{self, Bar, PciAddress, PciFunction};
use cairn_sync::{IrqSpinLock, LockClass};

static CONFIG_CLASS: LockClass = LockClass::new("pci.config");
static CONFIG: IrqSpinLock<()> = IrqSpinLock::new(&CONFIG_CLASS, ());
static FUNCTIONS: spin::Once<Vec<PciFunction>> = spin::Once::new();

/// Enumerates every bus (once) and logs what it finds.
pub fn init() {
    FUNCTIONS.call_once(|| {
        let mut v = Vec::new();
        let _g = CONFIG.lock();
        pci::enumerate(|f| v.push(*f));
        v
    });
    for f in functions() {
        crate::debug!(
            "pci {} {:04x}:{:04x} class {:02x}.{:02x}.{:02x} irq line {} pin {}",
            f.address,
            f.vendor,
            f.device,
            f.class,
            f.subclass,
            f.prog_if,
            f.interrupt_line,
            f.interrupt_pin
        );
    }
}

/// Every function found at boot.
pub fn functions() -> &'static [PciFunction] {
    FUNCTIONS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// Functions with the given vendor and device ids.
pub fn find(vendor: u16, device: u16) -> impl Iterator<Item = &'static PciFunction> {
    functions()
        .iter()
        .filter(move |f| f.vendor == vendor && f.device == device)
}

pub fn read32(a: PciAddress, offset: u8) -> u32 {
    let _g = CONFIG.lock();
    pci::read32(a, offset)
}

pub fn write32(a: PciAddress, offset: u8, v: u32) {
    let _g = CONFIG.lock();
    pci::write32(a, offset, v)
}

pub fn read16(a: PciAddress, offset: u8) -> u16 {
    let _g = CONFIG.lock();
    pci::read16(a, offset)
}

pub fn write16(a: PciAddress, offset: u8, v: u16) {
    let _g = CONFIG.lock();
    pci::write16(a, offset, v)
}

pub fn bar(a: PciAddress, index: u8) -> Option<Bar> {
    let _g = CONFIG.lock();
    pci::bar(a, index)
}

pub fn enable_bus_master(a: PciAddress) {
    let _g = CONFIG.lock();
    pci::enable_bus_master(a)
}

/// Runs `f` with configuration space to itself (multi-step programming:
/// MSI, MSI-X).
pub fn with_config<R>(f: impl FnOnce() -> R) -> R {
    let _g = CONFIG.lock();
    f()
}
