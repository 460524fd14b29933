//! File data: extent lookup ([`Filesystem::map`]), allocation at write
//! time ([`Filesystem::allocate`], first fit, 32 MiB extents halving down to
//! 1 MiB on failure as Nanos's `create_extent` does, then the largest free
//! run, so a fragmented volume fills up), clearing `uninited`
//! once data is on disk ([`Filesystem::mark_written`]), direct reads and
//! writes for tools and tests, truncate and fallocate.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use super::index::{Extent, FileInfo, MAX_EXTENT_SECTORS};
use super::{Filesystem, Ino, LOG_RESERVE, Mapping, MappingKind};
use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::error::FsError;
use crate::frame::Span;
use crate::store::{Integer, NodeId, Value, decimal};
use crate::symbol::known;
use alloc::vec;
use alloc::vec::Vec;

const SECTOR: u64 = SECTOR_SIZE as u64;
/// Allocation stops halving at this many sectors (Nanos `MIN_EXTENT_ALLOC_SIZE`, 1 MiB).
const MIN_ALLOC_SECTORS: u64 = 2048;
/// Largest file length accepted.
const MAX_FILE_BYTES: u64 = 1 << 62;

fn int(n: u64) -> Value {
    Value::Int(Integer::from_u64(n))
}

fn block_range(off: u64, len: u64) -> Result<(u64, u64), FsError> {
    let end = off
        .checked_add(len)
        .filter(|&e| e <= MAX_FILE_BYTES)
        .ok_or(FsError::FileTooBig)?;
    Ok((off / SECTOR, end.div_ceil(SECTOR)))
}

impl<D: BlockDevice> Filesystem<D> {
    fn file(&self, ino: Ino) -> Result<&FileInfo, FsError> {
        match self.files.get(&ino.0) {
            Some(f) => Ok(f),
            None if self.dirs.contains_key(&ino.0) => Err(FsError::IsDir),
            None if self.symlinks.contains(&ino.0) => Err(FsError::Inval),
            None => Err(FsError::NoEnt),
        }
    }

    /// Where the sectors covering bytes `[offset, offset+len)` of `ino`
    /// live, in order and without gaps (sector-aligned: the first mapping
    /// starts at `offset` rounded down, the last ends rounded up).
    pub fn map(&self, ino: Ino, offset: u64, len: u64) -> Result<Vec<Mapping>, FsError> {
        let f = self.file(ino)?;
        let (first, end) = block_range(offset, len)?;
        Ok(map_blocks(f, first, end))
    }

    /// Current length of `ino` in bytes.
    pub fn length(&self, ino: Ino) -> Result<u64, FsError> {
        Ok(self.file(ino)?.length)
    }

    fn take_log_reserves(&mut self) -> Result<(), FsError> {
        if self.log_reserves_taken {
            return Ok(());
        }
        if self.next_extend.is_none() {
            let s = self.space.allocate(LOG_RESERVE).ok_or(FsError::NoSpace)?;
            self.next_extend = Some(Span {
                start: s,
                sectors: LOG_RESERVE,
            });
        }
        if self.next_new.is_none() {
            let s = self.space.allocate(LOG_RESERVE).ok_or(FsError::NoSpace)?;
            self.next_new = Some(Span {
                start: s,
                sectors: LOG_RESERVE,
            });
        }
        self.log_reserves_taken = true;
        Ok(())
    }

    /// First-fit storage for up to `want` sectors: tries `hint` (to extend
    /// contiguously), then halves from `want` down to 1 MiB; below that
    /// (a nearly full or fragmented volume) takes the largest free run, so
    /// a write fails with ENOSPC only when no sector is free (the caller
    /// allocates the rest of its range from further runs).
    fn allocate_storage(&mut self, want: u64, hint: Option<u64>) -> Result<(u64, u64), FsError> {
        self.take_log_reserves()?;
        if let Some(h) = hint {
            if self.space.reserve(h, want) {
                return Ok((h, want));
            }
        }
        let mut n = want;
        loop {
            if let Some(s) = self.space.allocate(n) {
                return Ok((s, n));
            }
            if n <= MIN_ALLOC_SECTORS {
                break;
            }
            n /= 2;
        }
        let (start, len) = self.space.largest_free().ok_or(FsError::NoSpace)?;
        let n = len.min(want);
        if !self.space.reserve(start, n) {
            return Err(FsError::NoSpace);
        }
        Ok((start, n))
    }

    fn ensure_extents_tuple(&mut self, node: NodeId) -> NodeId {
        if let Some(e) = self.files.get(&node).and_then(|f| f.extents_tuple) {
            return e;
        }
        let e = self.store.new_tuple();
        if self.logged(node) {
            self.log_set(node, known::EXTENTS, Some(Value::Tuple(e)));
        } else {
            self.store.set(node, known::EXTENTS, Some(Value::Tuple(e)));
        }
        if let Some(f) = self.files.get_mut(&node) {
            f.extents_tuple = Some(e);
        }
        e
    }

    fn put_extent(&mut self, node: NodeId, key: u64, x: &Extent) {
        let e = self.ensure_extents_tuple(node);
        let name = decimal(key);
        let sym = self.sym(&name);
        let logged = self.logged(node);
        if logged {
            self.log_set(e, sym, Some(Value::Tuple(x.tuple)));
        } else {
            self.store.set(e, sym, Some(Value::Tuple(x.tuple)));
        }
        if let Some(f) = self.files.get_mut(&node) {
            f.extents.insert(key, *x);
        }
    }

    fn new_extent(
        &mut self,
        node: NodeId,
        key: u64,
        start: u64,
        length: u64,
        allocated: u64,
        uninited: bool,
    ) {
        let t = self.store.new_tuple();
        self.store.set(t, known::OFFSET, Some(int(start)));
        self.store.set(t, known::LENGTH, Some(int(length)));
        self.store.set(t, known::ALLOCATED, Some(int(allocated)));
        if uninited {
            self.store.set(t, known::UNINITED, Some(Value::Flag));
        }
        let x = Extent {
            start,
            length,
            allocated,
            uninited,
            tuple: t,
        };
        self.put_extent(node, key, &x);
    }

    fn drop_extent(&mut self, node: NodeId, key: u64) {
        if self
            .files
            .get_mut(&node)
            .and_then(|f| f.extents.remove(&key))
            .is_none()
        {
            return;
        }
        if let Some(e) = self.files.get(&node).and_then(|f| f.extents_tuple) {
            let sym = self.sym(&decimal(key));
            if self.logged(node) {
                self.log_set(e, sym, None);
            } else {
                self.store.set(e, sym, None);
            }
        }
    }

    fn update_extent(&mut self, node: NodeId, key: u64, length: u64, allocated: u64) {
        let Some(x) = self
            .files
            .get(&node)
            .and_then(|f| f.extents.get(&key))
            .copied()
        else {
            return;
        };
        let logged = self.logged(node);
        for (sym, old, new) in [
            (known::LENGTH, x.length, length),
            (known::ALLOCATED, x.allocated, allocated),
        ] {
            if old != new {
                if logged {
                    self.log_set(x.tuple, sym, Some(int(new)));
                } else {
                    self.store.set(x.tuple, sym, Some(int(new)));
                }
            }
        }
        if let Some(x) = self
            .files
            .get_mut(&node)
            .and_then(|f| f.extents.get_mut(&key))
        {
            x.length = length;
            x.allocated = allocated;
        }
    }

    /// Creates extents for every unallocated sector in `[first, end)`;
    /// `uninited` extents read as zeros until [`Self::mark_written`].
    /// An allocation grows the previous extent in place when that extent is
    /// of the same kind (initialized or uninited) and the storage after it
    /// is free, as Nanos's `extend` does: a file written sequentially in
    /// small pieces keeps a few large extents, not one per write (every
    /// extent is a tuple in memory until the store is rewritten).
    fn fill_holes(
        &mut self,
        node: NodeId,
        first: u64,
        end: u64,
        uninited: bool,
    ) -> Result<(), FsError> {
        let holes: Vec<(u64, u64)> = {
            let f = self.files.get(&node).ok_or(FsError::NoEnt)?;
            map_blocks(f, first, end)
                .into_iter()
                .filter(|m| m.kind == MappingKind::Hole)
                .map(|m| (m.offset / SECTOR, (m.offset + m.len) / SECTOR))
                .collect()
        };
        for (h0, h1) in holes {
            let mut b = h0;
            while b < h1 {
                let prev = self
                    .files
                    .get(&node)
                    .and_then(|f| f.extents.range(..b).next_back().map(|(&k, x)| (k, *x)));
                let want = (h1 - b).min(MAX_EXTENT_SECTORS);
                if let Some((pk, p)) = prev {
                    let adjacent = pk + p.length == b && p.length == p.allocated;
                    let room = MAX_EXTENT_SECTORS - p.length.min(MAX_EXTENT_SECTORS);
                    if adjacent && uninited == p.uninited && room > 0 {
                        let grow = want.min(room);
                        self.take_log_reserves()?;
                        if self.space.reserve(p.start + p.allocated, grow) {
                            self.update_extent(node, pk, p.length + grow, p.allocated + grow);
                            b += grow;
                            continue;
                        }
                    }
                }
                let hint = prev
                    .filter(|(pk, p)| pk + p.length == b)
                    .map(|(_, p)| p.start + p.allocated);
                let (start, got) = self.allocate_storage(want, hint)?;
                self.new_extent(node, b, start, got, got, uninited);
                b += got;
            }
        }
        Ok(())
    }

    /// Reserves storage for bytes `[offset, offset+len)` of `ino` at write
    /// time (so a full volume fails the write, not the writeback). New
    /// extents are `uninited` until [`Self::mark_written`].
    pub fn allocate(&mut self, ino: Ino, offset: u64, len: u64) -> Result<(), FsError> {
        self.file(ino)?;
        if len == 0 {
            return Ok(());
        }
        let (first, end) = block_range(offset, len)?;
        self.fill_holes(ino.0, first, end, true)
    }

    /// Records that whole sectors covering `[offset, offset+len)` of `ino`
    /// now hold written data: `uninited` extents there are split at the
    /// range edges and the written part is marked initialized (and merged
    /// into an initialized neighbour when contiguous). Call it after the
    /// write completed; the update reaches the disk with the next commit,
    /// which orders it after the data.
    pub fn mark_written(&mut self, ino: Ino, offset: u64, len: u64) -> Result<(), FsError> {
        self.file(ino)?;
        if len == 0 {
            return Ok(());
        }
        let (first, end) = block_range(offset, len)?;
        let node = ino.0;
        let mut hits = overlapping(&self.files[&node], first, end);
        hits.retain(|(_, x)| x.uninited);
        for (key, x) in hits {
            let xe = key + x.length;
            let a = first.max(key);
            let b = end.min(xe);
            if a == key && b == xe {
                let logged = self.logged(node);
                if logged {
                    self.log_set(x.tuple, known::UNINITED, None);
                } else {
                    self.store.set(x.tuple, known::UNINITED, None);
                }
                if let Some(e) = self
                    .files
                    .get_mut(&node)
                    .and_then(|f| f.extents.get_mut(&key))
                {
                    e.uninited = false;
                }
            } else {
                let spare = x.allocated - x.length;
                let mut pieces: Vec<(u64, u64, bool)> = Vec::new();
                if a > key {
                    pieces.push((key, a - key, true));
                }
                pieces.push((a, b - a, false));
                if b < xe {
                    pieces.push((b, xe - b, true));
                }
                let n = pieces.len();
                for (i, (k, l, u)) in pieces.into_iter().enumerate() {
                    let alloc = if i + 1 == n { l + spare } else { l };
                    self.new_extent(node, k, x.start + (k - key), l, alloc, u);
                }
            }
            self.merge_with_previous(node, a);
        }
        Ok(())
    }

    fn merge_with_previous(&mut self, node: NodeId, key: u64) {
        let Some(f) = self.files.get(&node) else {
            return;
        };
        let Some(x) = f.extents.get(&key).copied() else {
            return;
        };
        let Some((pk, p)) = f.extents.range(..key).next_back().map(|(&k, p)| (k, *p)) else {
            return;
        };
        if x.uninited || p.uninited || pk + p.length != key || p.length != p.allocated {
            return;
        }
        if p.start + p.allocated != x.start || p.length + x.length > MAX_EXTENT_SECTORS {
            return;
        }
        self.drop_extent(node, key);
        self.update_extent(node, pk, p.length + x.length, p.allocated + x.allocated);
    }

    /// Sets the length of `ino` (a truncate: shrinking frees whole extents
    /// past the end, trims the last one and zeroes the on-disk tail of the
    /// last partial sector; growing leaves a hole).
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        let old = self.file(ino)?.length;
        if len > MAX_FILE_BYTES {
            return Err(FsError::FileTooBig);
        }
        let node = ino.0;
        let keep = len.div_ceil(SECTOR);
        let affected: Vec<(u64, Extent)> = {
            let f = &self.files[&node];
            f.extents
                .iter()
                .filter(|(k, x)| **k + x.length > keep)
                .map(|(&k, x)| (k, *x))
                .collect()
        };
        for (key, x) in affected {
            if key >= keep {
                self.drop_extent(node, key);
                self.pending_free.push((x.start, x.allocated));
            } else {
                let l = keep - key;
                self.update_extent(node, key, l, l);
                self.pending_free.push((x.start + l, x.allocated - l));
            }
        }
        if len < old && len % SECTOR != 0 {
            let last = len / SECTOR;
            if let Some(m) = map_blocks(&self.files[&node], last, last + 1).first() {
                if let MappingKind::Disk { sector } = m.kind {
                    let mut buf = vec![0u8; SECTOR_SIZE];
                    self.dev.read(sector, &mut buf)?;
                    buf[(len % SECTOR) as usize..].fill(0);
                    self.dev.write(sector, &buf)?;
                }
            }
        }
        self.set_file_length(node, len);
        Ok(())
    }

    /// Raises the length of `ino` to `len` if it is shorter, touching no
    /// extent (a direct write's completion: unlike a growing
    /// [`Self::truncate`], it keeps extents past the old end, which other
    /// direct writes still in flight have reserved).
    pub fn grow_length(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        let old = self.file(ino)?.length;
        if len > MAX_FILE_BYTES {
            return Err(FsError::FileTooBig);
        }
        if len > old {
            self.set_file_length(ino.0, len);
        }
        Ok(())
    }

    /// Same as [`Self::truncate`] (the pagecache's name for it).
    pub fn set_length(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        self.truncate(ino, len)
    }

    fn set_file_length(&mut self, node: NodeId, len: u64) {
        let changed = self.files.get(&node).is_some_and(|f| f.length != len)
            || self.store.get(node, known::FILELENGTH).is_none();
        if changed {
            if self.logged(node) {
                self.log_set(node, known::FILELENGTH, Some(int(len)));
            } else {
                self.store.set(node, known::FILELENGTH, Some(int(len)));
            }
        }
        if let Some(f) = self.files.get_mut(&node) {
            f.length = len;
        }
        self.touch(node);
    }

    /// Gives an empty regular file an empty `extents` tuple and a zero
    /// `filelength`, the two updates Nanos's mkfs writes for an empty file.
    pub fn init_empty_file(&mut self, ino: Ino) -> Result<(), FsError> {
        self.file(ino)?;
        self.ensure_extents_tuple(ino.0);
        self.log_set(ino.0, known::FILELENGTH, Some(int(0)));
        Ok(())
    }

    /// Preallocates `[offset, offset+len)` of `ino` as uninited extents,
    /// extending the length unless `keep_size`.
    pub fn fallocate(
        &mut self,
        ino: Ino,
        offset: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<(), FsError> {
        let old = self.file(ino)?.length;
        if len == 0 {
            return Err(FsError::Inval);
        }
        let (first, end) = block_range(offset, len)?;
        self.fill_holes(ino.0, first, end, true)?;
        if !keep_size && offset + len > old {
            self.set_file_length(ino.0, offset + len);
        }
        Ok(())
    }

    /// Frees the storage of whole sectors `[offset, offset+len)` of `ino`
    /// (`FALLOC_FL_PUNCH_HOLE`): extents there are split at the range
    /// edges, the part inside dropped and its storage freed with the next
    /// commit; the range then reads as zeros. The length does not change.
    /// `offset` and `len` must be sector-aligned (the caller zeroes partial
    /// sectors itself); the range may pass the end of the file (extents
    /// preallocated there are freed too).
    pub fn punch(&mut self, ino: Ino, offset: u64, len: u64) -> Result<(), FsError> {
        self.file(ino)?;
        if offset % SECTOR != 0 || len % SECTOR != 0 {
            return Err(FsError::Inval);
        }
        if len == 0 {
            return Ok(());
        }
        let (first, end) = block_range(offset, len)?;
        let node = ino.0;
        let hits = overlapping(&self.files[&node], first, end);
        for (key, x) in hits {
            let xe = key + x.length;
            let a = first.max(key);
            let b = end.min(xe);
            // Storage past the extent's length (allocated, unused) stays
            // with a piece after the range, or is freed with the range.
            let spare = x.allocated - x.length;
            self.drop_extent(node, key);
            if a > key {
                self.new_extent(node, key, x.start, a - key, a - key, x.uninited);
            }
            let freed_end = if b < xe {
                self.new_extent(
                    node,
                    b,
                    x.start + (b - key),
                    xe - b,
                    xe - b + spare,
                    x.uninited,
                );
                b - key
            } else {
                x.allocated
            };
            self.pending_free
                .push((x.start + (a - key), freed_end - (a - key)));
        }
        self.touch(node);
        Ok(())
    }

    /// Reads from `ino` at `offset` into `buf` straight from the device;
    /// returns the bytes read (short at end of file).
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let f = self.file(ino)?;
        if offset >= f.length || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(f.length - offset) as usize;
        let (first, end) = block_range(offset, n as u64)?;
        for m in map_blocks(f, first, end) {
            let seg_start = m.offset.max(offset);
            let seg_end = (m.offset + m.len).min(offset + n as u64);
            let out = &mut buf[(seg_start - offset) as usize..(seg_end - offset) as usize];
            match m.kind {
                MappingKind::Disk { sector } => {
                    let first_sector = sector + (seg_start - m.offset) / SECTOR;
                    let skip = (seg_start % SECTOR) as usize;
                    let sectors = (skip + out.len()).div_ceil(SECTOR_SIZE);
                    let mut tmp = vec![0u8; sectors * SECTOR_SIZE];
                    self.dev.read(first_sector, &mut tmp)?;
                    out.copy_from_slice(&tmp[skip..skip + out.len()]);
                }
                MappingKind::Hole | MappingKind::Uninited { .. } => out.fill(0),
            }
        }
        Ok(n)
    }

    /// Writes `data` to `ino` at `offset` straight to the device (tools and
    /// tests; the kernel goes through the pagecache with [`Self::allocate`]
    /// and [`Self::mark_written`]); extends the length as needed.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        let old_len = self.file(ino)?.length;
        if data.is_empty() {
            return Ok(0);
        }
        let node = ino.0;
        let end_byte = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::FileTooBig)?;
        let (first, end) = block_range(offset, data.len() as u64)?;
        let mut buf = vec![0u8; ((end - first) * SECTOR) as usize];
        let head = (offset % SECTOR) as usize;
        let tail_partial = end_byte % SECTOR != 0;
        for (blk, partial) in [(first, head != 0), (end - 1, tail_partial)] {
            if !partial {
                continue;
            }
            if let Some(m) = map_blocks(&self.files[&node], blk, blk + 1).first() {
                if let MappingKind::Disk { sector } = m.kind {
                    let at = ((blk - first) * SECTOR) as usize;
                    self.dev.read(sector, &mut buf[at..at + SECTOR_SIZE])?;
                }
            }
        }
        buf[head..head + data.len()].copy_from_slice(data);
        self.fill_holes(node, first, end, false)?;
        for m in map_blocks(&self.files[&node], first, end) {
            let at = (m.offset / SECTOR - first) as usize * SECTOR_SIZE;
            let bytes = &buf[at..at + m.len as usize];
            match m.kind {
                MappingKind::Disk { sector } | MappingKind::Uninited { sector } => {
                    self.dev.write(sector, bytes)?
                }
                MappingKind::Hole => return Err(FsError::Io),
            }
        }
        self.mark_written(ino, first * SECTOR, (end - first) * SECTOR)?;
        if end_byte > old_len {
            self.set_file_length(node, end_byte);
        } else {
            self.touch(node);
        }
        Ok(data.len())
    }

    /// All extents of `ino`, by first file sector.
    pub fn extents(&self, ino: Ino) -> Result<Vec<(u64, Extent)>, FsError> {
        Ok(self
            .file(ino)?
            .extents
            .iter()
            .map(|(&k, x)| (k, *x))
            .collect())
    }
}

/// The extents of `f` that overlap file sectors `[first, end)`, by first
/// sector (copies: the caller splits and replaces them).
fn overlapping(f: &FileInfo, first: u64, end: u64) -> Vec<(u64, Extent)> {
    let from = f
        .extents
        .range(..first)
        .next_back()
        .map(|(&k, _)| k)
        .unwrap_or(first);
    f.extents
        .range(from..end)
        .filter(|(k, x)| **k + x.length > first)
        .map(|(&k, x)| (k, *x))
        .collect()
}

/// Mappings of file sectors `[first, end)`.
pub(crate) fn map_blocks(f: &FileInfo, first: u64, end: u64) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut b = first;
    let from = f
        .extents
        .range(..=first)
        .next_back()
        .map(|(&k, _)| k)
        .unwrap_or(first);
    for (&k, x) in f.extents.range(from..end) {
        let xe = k + x.length;
        if xe <= b {
            continue;
        }
        if k > b {
            out.push(Mapping {
                offset: b * SECTOR,
                len: (k - b) * SECTOR,
                kind: MappingKind::Hole,
            });
            b = k;
        }
        let stop = xe.min(end);
        let kind = if x.uninited {
            MappingKind::Uninited {
                sector: x.start + (b - k),
            }
        } else {
            MappingKind::Disk {
                sector: x.start + (b - k),
            }
        };
        out.push(Mapping {
            offset: b * SECTOR,
            len: (stop - b) * SECTOR,
            kind,
        });
        b = stop;
    }
    if b < end {
        out.push(Mapping {
            offset: b * SECTOR,
            len: (end - b) * SECTOR,
            kind: MappingKind::Hole,
        });
    }
    out
}
