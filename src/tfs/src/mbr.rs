//! Disk layouts: a bare TFS at sector 0, or an MBR whose last TFS partition
//! (type 0x83 holding a TFS header) is the root, as on Nanos images
//! (`storage.h`: partition entries at byte 446, signature 0x55AA, Nanos's
//! boot and root filesystems both typed 0x83, the root last).
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::device::{BlockDevice, Partition, SECTOR_SIZE};
use crate::error::MountError;
use crate::frame::MAGIC;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Partition type Nanos gives its TFS partitions.
pub const TFS_PARTITION_TYPE: u8 = 0x83;
/// Offset of the first partition entry in the MBR.
pub const PARTITION_TABLE: usize = 446;

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

/// The four entries of an MBR, or `None` without the 0x55AA signature.
pub fn parse_mbr(sector0: &[u8]) -> Option<[PartitionEntry; 4]> {
    if sector0.len() < SECTOR_SIZE || sector0[510] != 0x55 || sector0[511] != 0xaa {
        return None;
    }
    let mut out = [PartitionEntry {
        active: false,
        kind: 0,
        lba_start: 0,
        sectors: 0,
    }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let b = &sector0[PARTITION_TABLE + 16 * i..PARTITION_TABLE + 16 * (i + 1)];
        e.active = b[0] == 0x80;
        e.kind = b[4];
        e.lba_start = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        e.sectors = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
    }
    Some(out)
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
/// TFS header, else the last 0x83 partition of its MBR whose first sector
/// holds one.
pub fn open_root_volume<D: BlockDevice>(dev: D) -> Result<Partition<D>, MountError> {
    let total = dev.sector_count();
    if total == 0 {
        return Err(MountError::NotTfs(String::from("device is empty")));
    }
    let mut s0 = vec![0u8; SECTOR_SIZE];
    dev.read(0, &mut s0)?;
    if s0.starts_with(MAGIC) {
        return Ok(Partition::new(dev, 0, total)?);
    }
    let Some(entries) = parse_mbr(&s0) else {
        return Err(MountError::NotTfs(String::from(
            "sector 0 holds neither a TFS header nor an MBR",
        )));
    };
    let mut probe = vec![0u8; SECTOR_SIZE];
    for e in entries.iter().rev() {
        let (start, count) = (u64::from(e.lba_start), u64::from(e.sectors));
        if e.kind != TFS_PARTITION_TYPE
            || start == 0
            || count == 0
            || start.saturating_add(count) > total
        {
            continue;
        }
        dev.read(start, &mut probe)?;
        if probe.starts_with(MAGIC) {
            return Ok(Partition::new(dev, start, count)?);
        }
    }
    Err(MountError::NotTfs(String::from(
        "the MBR has no partition of type 0x83 holding a TFS volume",
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
        assert_eq!(parse_mbr(&mbr).unwrap()[..2], entries);
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
