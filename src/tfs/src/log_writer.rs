//! Appending to the log and committing it crash-safely.
//!
//! Updates are staged as encoded entries and written by [`LogWriter::flush`]
//! in two steps separated by device flushes: first every byte that is not
//! yet reachable from the durable log (new sectors after the sector holding
//! `END_OF_LOG`, new extensions and the link to them), then one commit
//! write that makes them reachable. The commit is either the rewrite of the
//! `END_OF_LOG` sector in which exactly one byte changes (`END_OF_LOG`
//! becomes `END_OF_SEGMENT`; everything after it in that sector was already
//! `END_OF_SEGMENT` padding), so even a torn write leaves old or new; or, for
//! a fresh chain (mkfs, compaction), the rewrite of the 512-byte header
//! sector, the commit point Nanos uses too. Nanos's reader accepts all of
//! this: padding is made of `END_OF_SEGMENT` frames.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::codec::{DecodeStats, Encoding};
use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::dictionary::Dictionary;
use crate::error::FsError;
use crate::frame::*;
use crate::replay::Tail;
use crate::varint;
use alloc::vec;
use alloc::vec::Vec;

/// Smallest tuple segment worth starting in an extension.
const MIN_SEGMENT: usize = 32;

/// The writing side of a log chain.
#[derive(Debug)]
pub struct LogWriter {
    /// Extensions of the chain, header sector first.
    pub chain: Vec<Span>,
    /// Where the durable log ends (for a fresh chain: its first extension,
    /// not yet written).
    pub tail: Tail,
    /// True until the chain has been committed by its header sector.
    pub fresh: bool,
    /// Numbering shared with every reader of this chain.
    pub dict: Dictionary,
    /// Encoded entries waiting for the next flush.
    pub staged: Vec<Vec<u8>>,
    /// Bytes in `staged`.
    pub staged_bytes: usize,
    /// UUID and label, rewritten with the header sector.
    pub volume: VolumeId,
    /// Byte written after `END_OF_LOG` up to the sector end.
    pub pad: u8,
    /// Entry counts since the chain began (compaction heuristic).
    pub stats: DecodeStats,
}

/// What a flush did, for the caller's space accounting.
#[derive(Debug, Default)]
pub struct FlushOutcome {
    /// Extensions added to the chain.
    pub new_extensions: Vec<Span>,
}

struct Extending {
    ext: Span,
    base: usize,
    buf: Vec<u8>,
    frame_limit: usize,
    in_place: bool,
}

impl LogWriter {
    /// A new, uncommitted chain whose first extension is `first`.
    pub fn fresh(volume: VolumeId, first: Span, pad: u8) -> Self {
        LogWriter {
            chain: vec![
                Span {
                    start: 0,
                    sectors: HEADER_SECTORS,
                },
                first,
            ],
            tail: Tail {
                ext: first,
                eol: 0,
                sector: vec![0; SECTOR_SIZE],
                padded: false,
                encoding: Encoding::V5,
            },
            fresh: true,
            dict: Dictionary::new(),
            staged: Vec::new(),
            staged_bytes: 0,
            volume,
            pad,
            stats: DecodeStats::default(),
        }
    }

    /// Stages one encoded entry.
    pub fn stage(&mut self, entry: Vec<u8>) {
        self.staged_bytes += entry.len();
        self.staged.push(entry);
    }

    /// True if a flush has something to write.
    pub fn dirty(&self) -> bool {
        self.fresh || !self.staged.is_empty()
    }

    /// The header sector: volume header, link to the first extension,
    /// `END_OF_LOG`, zeros.
    pub fn header_sector(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(SECTOR_SIZE);
        push_extension_header(&mut s, HEADER_SECTORS, Some(&self.volume));
        s.push(LOG_EXTENSION_LINK);
        varint::push(&mut s, self.chain[1].start);
        varint::push(&mut s, self.chain[1].sectors);
        s.push(END_OF_LOG);
        s.resize(SECTOR_SIZE, 0);
        s
    }

    fn start(&self) -> Result<Extending, FsError> {
        let ext = self.tail.ext;
        let ext_bytes = ext.bytes();
        if self.fresh {
            let mut buf = Vec::new();
            push_extension_header(&mut buf, ext.sectors, None);
            return Ok(Extending {
                ext,
                base: 0,
                buf,
                frame_limit: ext_bytes - SECTOR_SIZE,
                in_place: false,
            });
        }
        let eol = self.tail.eol;
        let first_fresh = (eol / SECTOR_SIZE + 1) * SECTOR_SIZE;
        if first_fresh + SECTOR_SIZE <= ext_bytes {
            let frame_limit = match self.tail.encoding {
                Encoding::V5 => ext_bytes - SECTOR_SIZE,
                Encoding::V4 => 0,
            };
            return Ok(Extending {
                ext,
                base: first_fresh,
                buf: Vec::new(),
                frame_limit,
                in_place: false,
            });
        }
        // A log written by Nanos may end in the last sector of its
        // extension: link from the END_OF_LOG position itself.
        if eol + MAX_FRAME_HEADER + 1 > ext_bytes {
            return Err(FsError::NoSpace);
        }
        let sector_start = eol / SECTOR_SIZE * SECTOR_SIZE;
        let buf = self.tail.sector[..eol - sector_start].to_vec();
        Ok(Extending {
            ext,
            base: sector_start,
            buf,
            frame_limit: 0,
            in_place: true,
        })
    }

    /// Writes the staged entries and commits them (see the module doc).
    /// `allocate` supplies new extensions of [`EXTENSION_SECTORS`]. On error
    /// nothing is committed and the staged entries are kept; extensions that
    /// were allocated are returned through `Err` for the caller to free.
    pub fn flush<D: BlockDevice>(
        &mut self,
        dev: &D,
        allocate: &mut dyn FnMut() -> Option<Span>,
    ) -> Result<FlushOutcome, (FsError, Vec<Span>)> {
        let mut new_extensions = Vec::new();
        if !self.dirty() {
            return Ok(FlushOutcome::default());
        }
        match self.write_out(dev, allocate, &mut new_extensions) {
            Ok(()) => Ok(FlushOutcome { new_extensions }),
            Err(e) => Err((e, new_extensions)),
        }
    }

    fn write_out<D: BlockDevice>(
        &mut self,
        dev: &D,
        allocate: &mut dyn FnMut() -> Option<Span>,
        new_extensions: &mut Vec<Span>,
    ) -> Result<(), FsError> {
        let mut epoch: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut commit: Option<(u64, Vec<u8>)> = None;
        let mut cur = self.start()?;
        let pad = self.pad;
        let finish = |cur: &mut Extending,
                      epoch: &mut Vec<(u64, Vec<u8>)>,
                      commit: &mut Option<(u64, Vec<u8>)>| {
            let mut bytes = core::mem::take(&mut cur.buf);
            let padded_len = bytes.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
            bytes.resize(padded_len, pad);
            let sector = cur.ext.start + (cur.base / SECTOR_SIZE) as u64;
            if cur.in_place {
                *commit = Some((sector, bytes));
            } else {
                epoch.push((sector, bytes));
            }
        };
        for entry in &self.staged {
            let total = entry.len();
            let mut off = 0;
            while off < total {
                let pos = cur.base + cur.buf.len();
                let room = cur.frame_limit.saturating_sub(pos + MAX_FRAME_HEADER);
                let rest = total - off;
                if room < rest && room < MIN_SEGMENT {
                    let next = allocate().ok_or(FsError::NoSpace)?;
                    new_extensions.push(next);
                    cur.buf.push(LOG_EXTENSION_LINK);
                    varint::push(&mut cur.buf, next.start);
                    varint::push(&mut cur.buf, next.sectors);
                    cur.buf.push(END_OF_LOG);
                    finish(&mut cur, &mut epoch, &mut commit);
                    let mut buf = Vec::new();
                    push_extension_header(&mut buf, next.sectors, None);
                    cur = Extending {
                        ext: next,
                        base: 0,
                        buf,
                        frame_limit: next.bytes() - SECTOR_SIZE,
                        in_place: false,
                    };
                    continue;
                }
                let take = room.min(rest);
                if off == 0 {
                    cur.buf.push(TUPLE_AVAILABLE);
                    varint::push(&mut cur.buf, total as u64);
                } else {
                    cur.buf.push(TUPLE_EXTENDED);
                }
                varint::push(&mut cur.buf, take as u64);
                cur.buf.extend_from_slice(&entry[off..off + take]);
                off += take;
            }
        }
        cur.buf.push(END_OF_LOG);
        let eol = cur.base + cur.buf.len() - 1;
        let last_ext = cur.ext;
        let last_in_place = cur.in_place;
        finish(&mut cur, &mut epoch, &mut commit);
        let last_chunk = if last_in_place {
            commit.as_ref()
        } else {
            epoch.last()
        };
        let tail_sector_bytes = {
            let (sector, bytes) = last_chunk.ok_or(FsError::Io)?;
            let eol_sector = last_ext.start + (eol / SECTOR_SIZE) as u64;
            let at = (eol_sector - sector) as usize * SECTOR_SIZE;
            bytes[at..at + SECTOR_SIZE].to_vec()
        };
        if commit.is_none() {
            let tail_sector = self.tail.ext.start + (self.tail.eol / SECTOR_SIZE) as u64;
            if self.fresh {
                commit = Some((0, self.header_sector()));
            } else {
                let mut sector = self.tail.sector.clone();
                let at = self.tail.eol % SECTOR_SIZE;
                if !self.tail.padded {
                    for b in &mut sector[at + 1..] {
                        *b = END_OF_SEGMENT;
                    }
                    epoch.push((tail_sector, sector.clone()));
                }
                sector[at] = END_OF_SEGMENT;
                commit = Some((tail_sector, sector));
            }
        }
        for (sector, bytes) in &epoch {
            dev.write(*sector, bytes)?;
        }
        dev.flush()?;
        if let Some((sector, bytes)) = &commit {
            dev.write(*sector, bytes)?;
        }
        dev.flush()?;
        self.chain.extend_from_slice(new_extensions);
        self.tail = Tail {
            ext: last_ext,
            eol,
            sector: tail_sector_bytes,
            padded: pad == END_OF_SEGMENT,
            encoding: Encoding::V5,
        };
        self.fresh = false;
        self.staged.clear();
        self.staged_bytes = 0;
        Ok(())
    }
}
