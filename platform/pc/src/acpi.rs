//! ACPI table discovery, as much as cairn needs: the RSDP, the RSDT/XSDT,
//! and the MADT's processors, I/O APICs and interrupt source overrides.
//!
//! Tables come from firmware; every length and checksum is verified before
//! use and malformed tables are refused with a reason, never trusted for a
//! read past their end. Boot only; reads through the caller's
//! physical-to-virtual function.

/// Most CPUs cairn starts.
pub const MAX_CPUS: usize = 64;
const MAX_IOAPICS: usize = 8;
const MAX_OVERRIDES: usize = 24;

/// A processor entry (local APIC or local x2APIC).
#[derive(Copy, Clone, Debug, Default)]
pub struct Processor {
    pub apic_id: u32,
    pub enabled: bool,
}

#[derive(Copy, Clone, Debug, Default)]
pub struct IoApicInfo {
    pub id: u8,
    pub phys: u64,
    pub gsi_base: u32,
}

/// An ISA irq that arrives on another GSI or with other polarity/trigger.
#[derive(Copy, Clone, Debug, Default)]
pub struct InterruptOverride {
    pub isa_irq: u8,
    pub gsi: u32,
    /// MPS INTI flags: bits 0-1 polarity (3 = active low), bits 2-3 trigger
    /// (3 = level).
    pub flags: u16,
}

/// What the MADT says.
#[derive(Clone, Debug)]
pub struct Madt {
    pub local_apic_phys: u64,
    pub processors: [Processor; MAX_CPUS],
    pub processor_count: usize,
    pub ioapics: [IoApicInfo; MAX_IOAPICS],
    pub ioapic_count: usize,
    pub overrides: [InterruptOverride; MAX_OVERRIDES],
    pub override_count: usize,
}

impl Default for Madt {
    fn default() -> Self {
        Madt {
            local_apic_phys: 0,
            processors: [Processor::default(); MAX_CPUS],
            processor_count: 0,
            ioapics: [IoApicInfo::default(); MAX_IOAPICS],
            ioapic_count: 0,
            overrides: [InterruptOverride::default(); MAX_OVERRIDES],
            override_count: 0,
        }
    }
}

impl Madt {
    pub fn processors(&self) -> &[Processor] {
        &self.processors[..self.processor_count]
    }
    pub fn ioapics(&self) -> &[IoApicInfo] {
        &self.ioapics[..self.ioapic_count]
    }
    pub fn overrides(&self) -> &[InterruptOverride] {
        &self.overrides[..self.override_count]
    }

    /// GSI and (level, active-low) mode of ISA irq `irq`.
    pub fn isa_irq(&self, irq: u8) -> (u32, bool, bool) {
        match self.overrides().iter().find(|o| o.isa_irq == irq) {
            Some(o) => {
                let polarity = o.flags & 3;
                let trigger = (o.flags >> 2) & 3;
                (o.gsi, trigger == 3, polarity == 3)
            }
            None => (u32::from(irq), false, false),
        }
    }
}

/// Why ACPI discovery failed.
#[derive(Copy, Clone, Debug)]
pub enum AcpiError {
    NoRsdp,
    BadChecksum(&'static str),
    BadLength(&'static str),
    NoMadt,
}

fn bytes<'a>(virt: u64, len: usize) -> &'a [u8] {
    // SAFETY: callers pass firmware table addresses inside the mapped low
    // memory window with lengths they have bounded (at most 64 KiB).
    unsafe { core::slice::from_raw_parts(virt as *const u8, len) }
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

/// Longest table accepted.
const MAX_TABLE: u32 = 64 * 1024;

/// Finds the RSDP: at `hint` if non-zero, else in the BIOS area.
fn find_rsdp(hint: u64, virt: &impl Fn(u64) -> u64) -> Result<u64, AcpiError> {
    if hint != 0 && bytes(virt(hint), 8) == b"RSD PTR " {
        return Ok(hint);
    }
    let mut p = 0xe0000u64;
    while p < 0x100000 {
        if bytes(virt(p), 8) == b"RSD PTR " && checksum_ok(bytes(virt(p), 20)) {
            return Ok(p);
        }
        p += 16;
    }
    Err(AcpiError::NoRsdp)
}

/// A verified table: (virtual address, length).
fn table(
    phys: u64,
    virt: &impl Fn(u64) -> u64,
    what: &'static str,
) -> Result<&'static [u8], AcpiError> {
    let header = bytes(virt(phys), 36);
    let len = le32(header, 4);
    if !(36..=MAX_TABLE).contains(&len) {
        return Err(AcpiError::BadLength(what));
    }
    let t = bytes(virt(phys), len as usize);
    if !checksum_ok(t) {
        return Err(AcpiError::BadChecksum(what));
    }
    Ok(t)
}

/// Reads the MADT through the RSDP (at `rsdp_hint` when the loader gave it).
pub fn read_madt(rsdp_hint: u64, virt: impl Fn(u64) -> u64) -> Result<Madt, AcpiError> {
    let rsdp_phys = find_rsdp(rsdp_hint, &virt)?;
    let rsdp = bytes(virt(rsdp_phys), 36);
    if !checksum_ok(&rsdp[..20]) {
        return Err(AcpiError::BadChecksum("RSDP"));
    }
    let (root, entry_size) = if rsdp[15] >= 2 && le64(rsdp, 24) != 0 {
        (table(le64(rsdp, 24), &virt, "XSDT")?, 8)
    } else {
        (table(u64::from(le32(rsdp, 16)), &virt, "RSDT")?, 4)
    };
    let entries = (root.len() - 36) / entry_size;
    let madt = (0..entries)
        .map(|i| {
            let at = 36 + i * entry_size;
            if entry_size == 8 {
                le64(root, at)
            } else {
                u64::from(le32(root, at))
            }
        })
        .find(|&p| bytes(virt(p), 4) == b"APIC")
        .ok_or(AcpiError::NoMadt)?;
    let t = table(madt, &virt, "MADT")?;
    if t.len() < 44 {
        return Err(AcpiError::BadLength("MADT"));
    }
    let mut m = Madt {
        local_apic_phys: u64::from(le32(t, 36)),
        ..Madt::default()
    };
    let mut at = 44;
    while at + 2 <= t.len() {
        let (kind, len) = (t[at], t[at + 1] as usize);
        if len < 2 || at + len > t.len() {
            return Err(AcpiError::BadLength("MADT entry"));
        }
        let e = &t[at..at + len];
        match kind {
            0 if len >= 8 && m.processor_count < MAX_CPUS => {
                m.processors[m.processor_count] = Processor {
                    apic_id: u32::from(e[3]),
                    enabled: le32(e, 4) & 1 != 0,
                };
                m.processor_count += 1;
            }
            1 if len >= 12 && m.ioapic_count < MAX_IOAPICS => {
                m.ioapics[m.ioapic_count] = IoApicInfo {
                    id: e[2],
                    phys: u64::from(le32(e, 4)),
                    gsi_base: le32(e, 8),
                };
                m.ioapic_count += 1;
            }
            2 if len >= 10 && m.override_count < MAX_OVERRIDES => {
                m.overrides[m.override_count] = InterruptOverride {
                    isa_irq: e[3],
                    gsi: le32(e, 4),
                    flags: u16::from_le_bytes([e[8], e[9]]),
                };
                m.override_count += 1;
            }
            5 if len >= 12 => m.local_apic_phys = le64(e, 4),
            9 if len >= 16 && m.processor_count < MAX_CPUS => {
                m.processors[m.processor_count] = Processor {
                    apic_id: le32(e, 4),
                    enabled: le32(e, 8) & 1 != 0,
                };
                m.processor_count += 1;
            }
            _ => {}
        }
        at += len;
    }
    Ok(m)
}
