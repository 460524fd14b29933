//! Log framing constants and the extension header (Nanos `tlog.c`): each
//! extension starts with magic `NVMTFS`, a varint version and a varint
//! length in sectors; the first one (sector 0) adds a 16-byte UUID and a
//! NUL-terminated label of at most 32 bytes. Frames follow.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::codec::Encoding;
use crate::error::DecodeError;
use crate::varint;
use alloc::vec::Vec;

/// Magic bytes at the start of every log extension.
pub const MAGIC: &[u8; 6] = b"NVMTFS";
/// The version cairn writes.
pub const VERSION: u64 = 5;
/// The older version cairn still reads.
pub const VERSION_4: u64 = 4;

/// Frame: end of the log (a later flush overwrites it).
pub const END_OF_LOG: u8 = 1;
/// Frame: varint total length, varint segment length, segment bytes.
pub const TUPLE_AVAILABLE: u8 = 2;
/// Frame: varint length, bytes continuing a split tuple.
pub const TUPLE_EXTENDED: u8 = 3;
/// Frame: no content (also the padding cairn writes after `END_OF_LOG`).
pub const END_OF_SEGMENT: u8 = 4;
/// Frame: varint sector, varint sector count of the next extension.
pub const LOG_EXTENSION_LINK: u8 = 5;

/// UUID bytes in the volume header.
pub const UUID_LEN: usize = 16;
/// Label bytes including the terminating NUL (Nanos `VOLUME_LABEL_MAX_LEN`).
pub const LABEL_MAX: usize = 32;
/// Sectors of the first extension, the volume header (`TFS_LOG_INITIAL_SIZE`).
pub const HEADER_SECTORS: u64 = 1;
/// Sectors of every other extension (`TFS_LOG_DEFAULT_EXTENSION_SIZE`, 512 KiB).
pub const EXTENSION_SECTORS: u64 = 1024;
/// Largest extension cairn will read (refuses hostile lengths).
pub const MAX_EXTENSION_SECTORS: u64 = 65536;
/// Largest tuple split over extensions (`TFS_LOG_MAX_TUPLE_STAGING_BYTES`).
pub const MAX_TUPLE_BYTES: u64 = 32 << 20;
/// Longest frame header: type byte and two varints.
pub const MAX_FRAME_HEADER: usize = 1 + 2 * varint::MAX_VARINT_BYTES;

/// Identity of a volume, from its header.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VolumeId {
    /// 16 random bytes chosen at mkfs.
    pub uuid: [u8; UUID_LEN],
    /// Label, without the NUL (at most 31 bytes).
    pub label: Vec<u8>,
}

/// A run of sectors holding one log extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First sector.
    pub start: u64,
    /// Number of sectors.
    pub sectors: u64,
}

impl Span {
    /// One past the last sector.
    pub fn end(&self) -> u64 {
        self.start + self.sectors
    }
    /// True if the two spans share a sector.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end() && other.start < self.end()
    }
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.sectors as usize * crate::device::SECTOR_SIZE
    }
}

/// Appends an extension header; `volume` is given for the first extension.
pub fn push_extension_header(out: &mut Vec<u8>, sectors: u64, volume: Option<&VolumeId>) {
    out.extend_from_slice(MAGIC);
    varint::push(out, VERSION);
    varint::push(out, sectors);
    if let Some(v) = volume {
        out.extend_from_slice(&v.uuid);
        let n = v.label.len().min(LABEL_MAX - 1);
        out.extend_from_slice(&v.label[..n]);
        out.push(0);
    }
}

/// A parsed extension header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionHeader {
    /// Value encoding of the frames that follow.
    pub encoding: Encoding,
    /// Length field, in sectors.
    pub sectors: u64,
    /// UUID and label (first extension only).
    pub volume: Option<VolumeId>,
    /// Offset of the first frame.
    pub frames_at: usize,
}

/// Parses the header at the start of `buf`; `first` for sector 0.
pub fn parse_extension_header(buf: &[u8], first: bool) -> Result<ExtensionHeader, DecodeError> {
    if buf.len() < MAGIC.len() || &buf[..MAGIC.len()] != MAGIC {
        return Err(DecodeError::new(0, "TFS magic mismatch"));
    }
    let mut pos = MAGIC.len();
    let version = varint::pop(buf, &mut pos)?;
    let encoding = match version {
        VERSION => Encoding::V5,
        VERSION_4 => Encoding::V4,
        _ => return Err(DecodeError::new(MAGIC.len(), "unsupported TFS version")),
    };
    let sectors = varint::pop(buf, &mut pos)?;
    let volume = if first {
        let uuid_end = pos + UUID_LEN;
        let Some(uuid_bytes) = buf.get(pos..uuid_end) else {
            return Err(DecodeError::new(pos, "header ends inside the UUID"));
        };
        let mut uuid = [0u8; UUID_LEN];
        uuid.copy_from_slice(uuid_bytes);
        pos = uuid_end;
        let window = &buf[pos..buf.len().min(pos + LABEL_MAX)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            return Err(DecodeError::new(
                pos,
                "invalid label (no NUL within 32 bytes)",
            ));
        };
        let label = window[..nul].to_vec();
        pos += nul + 1;
        Some(VolumeId { uuid, label })
    } else {
        None
    };
    Ok(ExtensionHeader {
        encoding,
        sectors,
        volume,
        frames_at: pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn header_matches_the_bytes_seen_on_a_nanos_image() {
        let v = VolumeId {
            uuid: [0xab; 16],
            label: Vec::new(),
        };
        let mut out = Vec::new();
        push_extension_header(&mut out, 1, Some(&v));
        let mut expected = b"NVMTFS".to_vec();
        expected.extend_from_slice(&[0x05, 0x01]);
        expected.extend_from_slice(&[0xab; 16]);
        expected.push(0x00);
        assert_eq!(out, expected);
        let h = parse_extension_header(&out, true).unwrap();
        assert_eq!(h.volume, Some(v));
        assert_eq!(h.frames_at, out.len());
    }

    #[test]
    fn refuses_bad_magic_version_and_label() {
        assert!(parse_extension_header(b"NVMTFX\x05\x01", false).is_err());
        assert!(parse_extension_header(b"NVMTFS\x06\x01", false).is_err());
        let mut b = b"NVMTFS\x05\x01".to_vec();
        b.extend_from_slice(&[1; 16]);
        b.extend_from_slice(&[b'x'; 40]);
        assert!(parse_extension_header(&b, true).is_err());
        let v4 = parse_extension_header(b"NVMTFS\x04\x88\x00", false).unwrap();
        assert_eq!((v4.encoding, v4.sectors), (Encoding::V4, 1024));
    }
}
