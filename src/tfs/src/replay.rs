//! Log replay: reads the header sector and follows the extension chain,
//! decoding every frame into a [`Store`] until `END_OF_LOG`, the way Nanos's
//! `log_read_complete` does — but every read is bounds-checked, every chain
//! walk bounded (extensions may not overlap, so a link loop is refused), and
//! any inconsistency ends the replay with a reason instead of a halt.
//! Each extension is read only as far as the log goes (64 KiB first, then
//! doubling), so the sectors after `END_OF_LOG` are never read.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::codec::{self, DecodeStats, Encoding};
use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::dictionary::{Dictionary, Entity};
use crate::frame::*;
use crate::store::{NodeId, Store};
use crate::varint;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Where the durable log ends: the extension holding `END_OF_LOG`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// The last extension of the chain.
    pub ext: Span,
    /// Byte offset of the `END_OF_LOG` frame in that extension.
    pub eol: usize,
    /// The sector holding `eol`, as it is on disk.
    pub sector: Vec<u8>,
    /// True if every byte after `eol` in that sector is `END_OF_SEGMENT`.
    pub padded: bool,
    /// Encoding of the last extension.
    pub encoding: Encoding,
}

/// Everything a replay yields.
#[derive(Debug)]
pub struct Replayed {
    /// The replayed values.
    pub store: Store,
    /// The chain's numbering, ready for appending.
    pub dict: Dictionary,
    /// Dictionary entry 1.
    pub root: NodeId,
    /// Entry counts (for the compaction heuristic).
    pub stats: DecodeStats,
    /// UUID and label.
    pub volume: VolumeId,
    /// The extensions in chain order, the header sector first.
    pub chain: Vec<Span>,
    /// Where appending resumes.
    pub tail: Tail,
}

/// A replay failure: a reason and where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError(pub String);

impl core::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(ext: Span, at: usize, what: &str) -> Result<T, ReplayError> {
    Err(ReplayError(format!(
        "{what} (extension at sector {}, byte {at})",
        ext.start
    )))
}

/// The first read of an extension; each later read is at least as large
/// as everything read before it (so a full 512 KiB extension takes four).
const FIRST_READ: usize = 64 * 1024;

/// One log extension, read from the device only as far as the replay
/// goes: a log mostly ends early in its last extension, and the sectors
/// after `END_OF_LOG` are never read.
struct Extension {
    span: Span,
    /// The first bytes of the extension (whole sectors).
    bytes: Vec<u8>,
}

impl Extension {
    fn open<D: BlockDevice>(dev: &D, span: Span) -> Result<Self, ReplayError> {
        let mut ext = Extension {
            span,
            bytes: Vec::new(),
        };
        ext.ensure(dev, 1)?;
        Ok(ext)
    }

    /// Length of the whole extension in bytes.
    fn len(&self) -> usize {
        self.span.bytes()
    }

    /// Reads the extension up to byte `end` at least (or to its end).
    #[inline]
    fn ensure<D: BlockDevice>(&mut self, dev: &D, end: usize) -> Result<(), ReplayError> {
        if end <= self.bytes.len() {
            return Ok(());
        }
        self.read_to(dev, end)
    }

    #[inline(never)]
    fn read_to<D: BlockDevice>(&mut self, dev: &D, end: usize) -> Result<(), ReplayError> {
        let have = self.bytes.len();
        let end = end.min(self.len());
        if end <= have {
            return Ok(());
        }
        let want = end
            .max(have + have.max(FIRST_READ))
            .next_multiple_of(SECTOR_SIZE)
            .min(self.len());
        if self.bytes.capacity() == 0 {
            self.bytes.reserve_exact(self.len());
        }
        self.bytes.resize(want, 0);
        let at = self.span.start + (have / SECTOR_SIZE) as u64;
        dev.read(at, &mut self.bytes[have..]).map_err(|e| {
            ReplayError(format!(
                "cannot read log extension at sector {}: {e} (sector {at})",
                self.span.start
            ))
        })
    }
}

struct Split {
    bytes: Vec<u8>,
    remaining: u64,
}

/// Replays the log of the TFS volume on `dev`.
pub fn replay<D: BlockDevice>(dev: &D) -> Result<Replayed, ReplayError> {
    let volume_sectors = dev.sector_count();
    if volume_sectors < HEADER_SECTORS {
        return Err(ReplayError(String::from("volume is empty")));
    }
    let mut ext = Span {
        start: 0,
        sectors: HEADER_SECTORS,
    };
    let mut log = Extension::open(dev, ext)?;
    let header = match parse_extension_header(&log.bytes, true) {
        Ok(h) => h,
        Err(e) => return fail(ext, e.offset, e.reason),
    };
    let volume = header.volume.unwrap_or_default();
    let mut encoding = header.encoding;
    let mut pos = header.frames_at;
    let mut chain = vec![ext];
    let mut store = Store::new();
    let mut dict = Dictionary::new();
    let mut stats = DecodeStats::default();
    let mut split: Option<Split> = None;
    let mut decoder = codec::Decoder::default();

    loop {
        let at = pos;
        log.ensure(dev, pos + MAX_FRAME_HEADER)?;
        let buf = &log.bytes;
        let Some(&frame) = buf.get(pos) else {
            return fail(ext, at, "extension ends without END_OF_LOG or a link");
        };
        pos += 1;
        match frame {
            END_OF_SEGMENT => {}
            END_OF_LOG => {
                if split.is_some() {
                    return fail(ext, at, "log ends inside a split tuple");
                }
                break;
            }
            LOG_EXTENSION_LINK => {
                let (start, sectors) =
                    match (varint::pop(buf, &mut pos), varint::pop(buf, &mut pos)) {
                        (Ok(s), Ok(c)) => (s, c),
                        _ => return fail(ext, at, "truncated extension link"),
                    };
                if sectors == 0 {
                    return fail(ext, at, "zero-length extension");
                }
                if sectors > MAX_EXTENSION_SECTORS {
                    return fail(ext, at, "extension link with a hostile length");
                }
                let next = Span { start, sectors };
                if start == 0
                    || start
                        .checked_add(sectors)
                        .is_none_or(|e| e > volume_sectors)
                {
                    return fail(ext, at, "extension link points outside the volume");
                }
                if chain.iter().any(|s| s.overlaps(&next)) {
                    return fail(
                        ext,
                        at,
                        "extension link loops back or overlaps another extension",
                    );
                }
                log = Extension::open(dev, next)?;
                ext = next;
                let h = match parse_extension_header(&log.bytes, false) {
                    Ok(h) => h,
                    Err(e) => return fail(ext, e.offset, e.reason),
                };
                if h.sectors != sectors {
                    return fail(ext, 0, "extension length disagrees with its link");
                }
                encoding = h.encoding;
                pos = h.frames_at;
                chain.push(ext);
            }
            TUPLE_AVAILABLE => {
                if split.is_some() {
                    return fail(ext, at, "TUPLE_AVAILABLE while a split tuple is pending");
                }
                let (total, seg) = match (varint::pop(buf, &mut pos), varint::pop(buf, &mut pos)) {
                    (Ok(t), Ok(s)) => (t, s),
                    _ => return fail(ext, at, "truncated TUPLE_AVAILABLE frame"),
                };
                if seg > total || total > MAX_TUPLE_BYTES {
                    return fail(ext, at, "TUPLE_AVAILABLE with an invalid length");
                }
                let seg = seg as usize;
                if pos + seg >= log.len() {
                    return fail(ext, at, "tuple runs past the end of its extension");
                }
                log.ensure(dev, pos + seg)?;
                let buf = &log.bytes;
                if seg as u64 == total {
                    let entry = &buf[pos..pos + seg];
                    match decoder.decode(entry, &mut store, &mut dict, encoding, &mut stats) {
                        Ok((_, used)) if used == seg => {}
                        Ok(_) => return fail(ext, at, "entry length disagrees with its encoding"),
                        Err(e) => return fail(ext, pos + e.offset, e.reason),
                    }
                } else {
                    split = Some(Split {
                        bytes: buf[pos..pos + seg].to_vec(),
                        remaining: total - seg as u64,
                    });
                }
                pos += seg;
            }
            TUPLE_EXTENDED => {
                let Ok(len) = varint::pop(buf, &mut pos) else {
                    return fail(ext, at, "truncated TUPLE_EXTENDED frame");
                };
                let Some(s) = split.as_mut() else {
                    return fail(ext, at, "TUPLE_EXTENDED without a split tuple");
                };
                if len > s.remaining || pos as u64 + len > log.len() as u64 {
                    return fail(ext, at, "TUPLE_EXTENDED exceeds the remainder of its tuple");
                }
                let len = len as usize;
                log.ensure(dev, pos + len)?;
                s.bytes.extend_from_slice(&log.bytes[pos..pos + len]);
                s.remaining -= len as u64;
                pos += len;
                if s.remaining == 0 {
                    let Some(s) = split.take() else {
                        return fail(ext, at, "lost split tuple");
                    };
                    match decoder.decode(&s.bytes, &mut store, &mut dict, encoding, &mut stats) {
                        Ok((_, used)) if used == s.bytes.len() => {}
                        Ok(_) => {
                            return fail(ext, at, "split entry length disagrees with its encoding");
                        }
                        Err(e) => return fail(ext, at, e.reason),
                    }
                }
            }
            other => {
                return fail(ext, at, &format!("unknown frame identifier 0x{other:02x}"));
            }
        }
    }
    let eol = pos - 1;
    let sector_start = eol / SECTOR_SIZE * SECTOR_SIZE;
    log.ensure(dev, sector_start + SECTOR_SIZE)?;
    let sector = log.bytes[sector_start..sector_start + SECTOR_SIZE].to_vec();
    let padded = sector[eol - sector_start + 1..]
        .iter()
        .all(|&b| b == END_OF_SEGMENT);
    let root = match dict.lookup(1) {
        Some(Entity::Node(n)) if store.is_tuple(n) => n,
        _ => {
            return Err(ReplayError(String::from(
                "log holds no root tuple (dictionary entry 1)",
            )));
        }
    };
    Ok(Replayed {
        store,
        dict,
        root,
        stats,
        volume,
        chain,
        tail: Tail {
            ext,
            eol,
            sector,
            padded,
            encoding,
        },
    })
}
