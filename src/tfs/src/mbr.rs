//! Disk layouts: a bare TFS at sector 0, or an MBR whose root TFS is found
//! by the one root-volume rule of `cairn_block::mbr` (the MBR reader shared
//! with the kernel): a valid table's partitions, last slot first, the first
//! holding a TFS header; as on Nanos images, whose boot and root
//! filesystems are both typed 0x83, the root last. This module also writes
//! MBRs for mkfs ([`build_mbr`]).
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::device::{BlockDevice, Partition, SECTOR_SIZE};
use crate::error::MountError;
use crate::frame::MAGIC;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Partition type Nanos gives its TFS partitions.
pub const TFS_PARTITION_TYPE: u8 = 0x83;
/// Offset of the first partition entry in the MBR.
pub const PARTITION_TABLE: usize = cairn_block::mbr::TABLE_OFFSET;

/// One MBR partition entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionEntry {
    /// Bootable flag (0x80).
    pub active: bool,
    /// Partition type.
    pub kind: u8,
    /// First sector.
    pub lba_start: u32,
    /// Sectors.
    pub sectors: u32,
}

fn chs(sector: u64) -> [u8; 3] {
    // Nanos `mbr_chs`: 63 sectors per track, 255 heads, capped at cylinder 1023.
    let (mut cyl, mut head, mut sec) = (sector / 63 / 255, (sector / 63) % 255, (sector % 63) + 1);
    if cyl > 1023 {
        cyl = 1023;
        head = 254;
        sec = 63;
    }
    [head as u8, ((cyl >> 8) as u8) | sec as u8, cyl as u8]
}

/// Builds an MBR sector with the given entries (at most four).
pub fn build_mbr(entries: &[PartitionEntry]) -> Vec<u8> {
    let mut s = vec![0u8; SECTOR_SIZE];
    for (i, e) in entries.iter().take(4).enumerate() {
        let b = &mut s[PARTITION_TABLE + 16 * i..PARTITION_TABLE + 16 * (i + 1)];
        b[0] = if e.active { 0x80 } else { 0 };
        b[1..4].copy_from_slice(&chs(u64::from(e.lba_start)));
        b[4] = e.kind;
        let last = u64::from(e.lba_start) + u64::from(e.sectors).saturating_sub(1);
        b[5..8].copy_from_slice(&chs(last));
        b[8..12].copy_from_slice(&e.lba_start.to_le_bytes());
        b[12..16].copy_from_slice(&e.sectors.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Finds the root TFS volume of `dev`: the whole device if sector 0 holds a
/// TFS header, else the partition the root-volume rule of
/// `cairn_block::mbr` picks (a valid table's partitions, last slot first,
/// the first whose first sector holds a TFS header).
pub fn open_root_volume<D: BlockDevice>(dev: D) -> Result<Partition<D>, MountError> {
    let total = dev.sector_count();
    if total == 0 {
        return Err(MountError::NotTfs(String::from("device is empty")));
    }
    let mut s0 = [0u8; SECTOR_SIZE];
    dev.read(0, &mut s0)?;
    if s0.starts_with(MAGIC) {
        return Ok(Partition::new(dev, 0, total)?);
    }
    let table = match cairn_block::mbr::parse(&s0, total) {
        Ok(Some(table)) => table,
        Ok(None) => {
            return Err(MountError::NotTfs(String::from(
                "sector 0 holds neither a TFS header nor an MBR",
            )));
        }
        Err(e) => {
            return Err(MountError::NotTfs(format!("partition table refused: {e}")));
        }
    };
    let mut probe = vec![0u8; SECTOR_SIZE];
    for p in cairn_block::mbr::root_search_order(&table) {
        dev.read(p.first, &mut probe)?;
        if probe.starts_with(MAGIC) {
            return Ok(Partition::new(dev, p.first, p.sectors)?);
        }
    }
    Err(MountError::NotTfs(String::from(
        "no partition of the MBR holds a TFS volume",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    #[test]
    fn mbr_round_trip_and_last_tfs_partition_wins() {
        let dev = MemDevice::new(64);
        let entries = [
            PartitionEntry {
                active: true,
                kind: 0x83,
                lba_start: 8,
                sectors: 8,
            },
            PartitionEntry {
                active: true,
                kind: 0x83,
                lba_start: 16,
                sectors: 40,
            },
        ];
        let mbr = build_mbr(&entries);
        let parsed = cairn_block::mbr::parse(mbr.as_slice().try_into().unwrap(), 64)
            .unwrap()
            .unwrap();
        for (p, e) in parsed.iter().zip(&entries) {
            let p = p.unwrap();
            assert_eq!(
                (p.bootable, p.kind, p.first, p.sectors),
                (
                    e.active,
                    e.kind,
                    u64::from(e.lba_start),
                    u64::from(e.sectors)
                )
            );
        }
        dev.write(0, &mbr).unwrap();
        let mut hdr = vec![0u8; 512];
        hdr[..6].copy_from_slice(MAGIC);
        dev.write(8, &hdr).unwrap();
        dev.write(16, &hdr).unwrap();
        let vol = open_root_volume(&dev).unwrap();
        assert_eq!((vol.start(), vol.sector_count()), (16, 40));
        dev.write(16, &[0u8; 512]).unwrap();
        assert_eq!(open_root_volume(&dev).unwrap().start(), 8);
    }

    #[test]
    fn bare_volume_and_refusals() {
        let dev = MemDevice::new(4);
        assert!(matches!(open_root_volume(&dev), Err(MountError::NotTfs(_))));
        let mut hdr = vec![0u8; 512];
        hdr[..6].copy_from_slice(MAGIC);
        dev.write(0, &hdr).unwrap();
        assert_eq!(open_root_volume(&dev).unwrap().sector_count(), 4);
        // An entry pointing past the device is ignored, not trusted.
        let bad = MemDevice::new(4);
        bad.write(
            0,
            &build_mbr(&[PartitionEntry {
                active: true,
                kind: 0x83,
                lba_start: 2,
                sectors: 99,
            }]),
        )
        .unwrap();
        assert!(open_root_volume(&bad).is_err());
    }

    #[test]
    fn chs_matches_nanos_for_small_and_capped_offsets() {
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(63), [1, 1, 0]);
        // Nanos ORs the cylinder's high bits into the sector byte unshifted.
        assert_eq!(chs(u64::from(u32::MAX)), [254, 63, 0xff]);
    }
}
