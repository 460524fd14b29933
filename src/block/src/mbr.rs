//! The MBR partition table: four primary entries in sector 0, signature
//! `55 AA` at bytes 510-511. Nanos images put a boot partition first and
//! the root TFS last; cairn exposes each valid partition as a volume.
//!
//! This is the one MBR reader: the kernel's block layer and the host tools
//! (`cairn_tfs::open_root_volume`, used by dump, fsck and xtask) both parse
//! with [`parse`] and look for a root TFS in [`root_search_order`].
//!
//! **The root-volume rule** (one disk): a table [`parse`] refuses
//! (a bad status byte, overlapping entries, an entry past the end of the
//! disk, a GPT protective entry) has no partitions; otherwise the
//! partitions are tried last slot first, whatever their type byte, and the
//! first whose first sector holds a TFS header is the root; a disk whose
//! sector 0 is itself a TFS header is a bare volume. (Across several disks
//! the kernel prefers the volume whose manifest names a program: see
//! `kernel/src/fs/mounts.rs`.)
//!
//! Pure parsing; no locks, any context.

/// One primary partition entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Slot 0..=3 in the table.
    pub slot: u8,
    /// The partition type byte.
    pub kind: u8,
    pub bootable: bool,
    /// First sector (LBA).
    pub first: u64,
    /// Length in sectors.
    pub sectors: u64,
}

/// Why a partition table was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MbrError {
    /// An entry's status byte is neither 0x00 nor 0x80.
    BadStatus { slot: u8, status: u8 },
    /// An entry extends past the end of the disk.
    PastEnd { slot: u8, end: u64, disk: u64 },
    /// Two entries overlap.
    Overlap { a: u8, b: u8 },
    /// A GPT protective entry: GPT disks are not supported.
    Gpt,
}

impl core::fmt::Display for MbrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            MbrError::BadStatus { slot, status } => {
                write!(
                    f,
                    "partition {slot}: status byte {status:#04x} is not 0x00 or 0x80"
                )
            }
            MbrError::PastEnd { slot, end, disk } => write!(
                f,
                "partition {slot} ends at sector {end}, past the disk's {disk} sectors"
            ),
            MbrError::Overlap { a, b } => write!(f, "partitions {a} and {b} overlap"),
            MbrError::Gpt => f.write_str("GPT protective MBR: GPT disks are not supported"),
        }
    }
}

/// Type byte of the GPT protective entry.
pub const GPT_PROTECTIVE: u8 = 0xee;

/// Byte offset of the first of the four 16-byte entries in sector 0.
pub const TABLE_OFFSET: usize = 446;

/// The partitions of `table` in the order the root TFS is looked for
/// (the root-volume rule above): last slot first.
pub fn root_search_order(table: &[Option<Partition>; 4]) -> impl Iterator<Item = &Partition> {
    table.iter().rev().flatten()
}

/// Parses sector 0 of a disk of `disk_sectors` sectors. `Ok(None)`: no MBR
/// signature, the disk is not partitioned.
pub fn parse(
    sector0: &[u8; 512],
    disk_sectors: u64,
) -> Result<Option<[Option<Partition>; 4]>, MbrError> {
    if sector0[510] != 0x55 || sector0[511] != 0xaa {
        return Ok(None);
    }
    let mut parts = [None; 4];
    for (slot, part) in parts.iter_mut().enumerate() {
        let e = &sector0[TABLE_OFFSET + slot * 16..TABLE_OFFSET + slot * 16 + 16];
        let slot = slot as u8;
        let kind = e[4];
        let first = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
        let sectors = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
        if kind == 0 || sectors == 0 {
            continue;
        }
        if kind == GPT_PROTECTIVE {
            return Err(MbrError::Gpt);
        }
        if e[0] != 0 && e[0] != 0x80 {
            return Err(MbrError::BadStatus { slot, status: e[0] });
        }
        let end = first + sectors;
        if end > disk_sectors {
            return Err(MbrError::PastEnd {
                slot,
                end,
                disk: disk_sectors,
            });
        }
        *part = Some(Partition {
            slot,
            kind,
            bootable: e[0] == 0x80,
            first,
            sectors,
        });
    }
    for a in parts.iter().flatten() {
        for b in parts.iter().flatten() {
            if a.slot < b.slot && a.first < b.first + b.sectors && b.first < a.first + a.sectors {
                return Err(MbrError::Overlap {
                    a: a.slot,
                    b: b.slot,
                });
            }
        }
    }
    Ok(Some(parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn entry(sector: &mut [u8; 512], slot: usize, status: u8, kind: u8, first: u32, len: u32) {
        let e = &mut sector[446 + slot * 16..446 + slot * 16 + 16];
        e[0] = status;
        e[4] = kind;
        e[8..12].copy_from_slice(&first.to_le_bytes());
        e[12..16].copy_from_slice(&len.to_le_bytes());
    }

    fn signed() -> [u8; 512] {
        let mut s = [0u8; 512];
        s[510] = 0x55;
        s[511] = 0xaa;
        s
    }

    #[test]
    fn no_signature_means_unpartitioned() {
        assert_eq!(parse(&[0u8; 512], 100), Ok(None));
    }

    #[test]
    fn reads_entries() {
        let mut s = signed();
        entry(&mut s, 0, 0x80, 0x83, 2048, 4096);
        entry(&mut s, 1, 0x00, 0x83, 6144, 1000);
        let p = parse(&s, 10_000).unwrap().unwrap();
        assert_eq!(
            p[0],
            Some(Partition {
                slot: 0,
                kind: 0x83,
                bootable: true,
                first: 2048,
                sectors: 4096
            })
        );
        assert_eq!(p[1].unwrap().first, 6144);
        assert_eq!(p[2], None);
        let order: Vec<u8> = root_search_order(&p).map(|p| p.slot).collect();
        assert_eq!(order, [1, 0]);
    }

    #[test]
    fn refuses_bad_tables() {
        let mut s = signed();
        entry(&mut s, 0, 0x00, 0x83, 9000, 2000);
        assert_eq!(
            parse(&s, 10_000),
            Err(MbrError::PastEnd {
                slot: 0,
                end: 11_000,
                disk: 10_000
            })
        );
        let mut s = signed();
        entry(&mut s, 0, 0x00, 0x83, 100, 200);
        entry(&mut s, 2, 0x00, 0x83, 250, 200);
        assert_eq!(parse(&s, 10_000), Err(MbrError::Overlap { a: 0, b: 2 }));
        let mut s = signed();
        entry(&mut s, 0, 0x12, 0x83, 100, 200);
        assert!(matches!(parse(&s, 10_000), Err(MbrError::BadStatus { .. })));
        let mut s = signed();
        entry(&mut s, 0, 0x00, GPT_PROTECTIVE, 1, 9999);
        assert_eq!(parse(&s, 10_000), Err(MbrError::Gpt));
    }
}
