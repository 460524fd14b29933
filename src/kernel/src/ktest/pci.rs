//! PCI enumeration tests.

use super::{Expect, KernelTest};
use alloc::format;
use alloc::string::String;

pub static TESTS: &[KernelTest] = &[KernelTest {
    name: "pci",
    smp: &[1],
    expect: Expect::Pass,
    run: pci,
}];

fn pci() -> Result<(), String> {
    let fs = crate::pci::functions();
    let host = fs
        .iter()
        .find(|f| f.address.bus == 0 && f.address.device == 0 && f.address.function == 0)
        .ok_or("no function at 00:00.0")?;
    if (host.class, host.subclass) != (0x06, 0x00) {
        return Err(format!(
            "00:00.0 is class {:02x}.{:02x}, not a host bridge",
            host.class, host.subclass
        ));
    }
    if !fs.iter().any(|f| f.class == 0x06 && f.subclass == 0x01) {
        return Err("no ISA/LPC bridge".into());
    }
    if let Some(f) = fs.iter().find(|f| f.vendor == 0xffff || f.vendor == 0) {
        return Err(format!("bogus function {}", f.address));
    }
    // Every memory BAR the firmware assigned lies below 4 GiB on QEMU and is
    // a power of two in size.
    for f in fs {
        for i in 0..6 {
            if let Some(cairn_pc::pci::Bar::Memory { phys, size, .. }) =
                crate::pci::bar(f.address, i)
            {
                if !size.is_power_of_two() {
                    return Err(format!("{} BAR{i}: size {size:#x}", f.address));
                }
                if phys != 0 && phys % size != 0 {
                    return Err(format!(
                        "{} BAR{i}: {phys:#x} not aligned to {size:#x}",
                        f.address
                    ));
                }
            }
        }
    }
    crate::info!("pci: {} functions", fs.len());
    Ok(())
}
