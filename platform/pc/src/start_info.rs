//! The PVH `hvm_start_info` structure the loader passes in `ebx`: memory
//! map, command line and ACPI RSDP address.
//!
//! Read through a physical-to-virtual function the caller supplies; every
//! length is bounded, nothing here trusts the loader's numbers for more
//! than what they index. Boot only.

/// `hvm_start_info.magic`.
pub const MAGIC: u32 = 0x336e_c578;

/// Memory-map entry types.
pub mod memory_type {
    pub const RAM: u32 = 1;
    pub const RESERVED: u32 = 2;
    pub const ACPI: u32 = 3;
    pub const NVS: u32 = 4;
    pub const UNUSABLE: u32 = 5;
}

/// One memory-map entry.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub size: u64,
    pub kind: u32,
}

/// Most memory-map entries kept.
pub const MAX_REGIONS: usize = 64;
/// Longest command line kept.
pub const MAX_CMDLINE: usize = 1024;

/// What cairn keeps of `hvm_start_info`.
pub struct StartInfo {
    pub regions: [MemoryRegion; MAX_REGIONS],
    pub region_count: usize,
    pub cmdline: [u8; MAX_CMDLINE],
    pub cmdline_len: usize,
    pub rsdp_phys: u64,
}

/// Why the start info was refused.
#[derive(Copy, Clone, Debug)]
pub enum StartInfoError {
    BadMagic(u32),
    NoMemoryMap,
}

fn read_u32(virt: u64) -> u32 {
    // SAFETY: callers pass addresses inside structures the loader placed in
    // mapped low memory (checked against the boot mapping by the caller).
    unsafe { (virt as *const u32).read_unaligned() }
}

fn read_u64(virt: u64) -> u64 {
    // SAFETY: as for `read_u32`.
    unsafe { (virt as *const u64).read_unaligned() }
}

impl StartInfo {
    /// Parses the structure at physical `phys`; `virt(p)` must map the
    /// first GiB of physical memory.
    pub fn parse(phys: u64, virt: impl Fn(u64) -> u64) -> Result<StartInfo, StartInfoError> {
        let base = virt(phys);
        let magic = read_u32(base);
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let version = read_u32(base + 4);
        let cmdline_phys = read_u64(base + 24);
        let rsdp_phys = read_u64(base + 32);
        let mut info = StartInfo {
            regions: [MemoryRegion::default(); MAX_REGIONS],
            region_count: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            rsdp_phys,
        };
        if version < 1 {
            return Err(StartInfoError::NoMemoryMap);
        }
        let map_phys = read_u64(base + 40);
        let entries = read_u32(base + 48) as usize;
        if map_phys == 0 || entries == 0 {
            return Err(StartInfoError::NoMemoryMap);
        }
        for i in 0..entries.min(MAX_REGIONS) {
            let e = virt(map_phys) + (i as u64) * 24;
            info.regions[i] = MemoryRegion {
                base: read_u64(e),
                size: read_u64(e + 8),
                kind: read_u32(e + 16),
            };
        }
        info.region_count = entries.min(MAX_REGIONS);
        if cmdline_phys != 0 {
            let p = virt(cmdline_phys);
            while info.cmdline_len < MAX_CMDLINE {
                // SAFETY: as for `read_u32`; the string is NUL-terminated
                // and the loop stops at MAX_CMDLINE regardless.
                let b = unsafe { ((p + info.cmdline_len as u64) as *const u8).read() };
                if b == 0 {
                    break;
                }
                info.cmdline[info.cmdline_len] = b;
                info.cmdline_len += 1;
            }
        }
        Ok(info)
    }

    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    /// The command line (`-append`), lossily as UTF-8.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}
