//! Direct I/O (`O_DIRECT`): reads and writes between the program's pages
//! and the device, past the pagecache.
//!
//! A transfer must be aligned to the device's logical block size
//! ([`DIO_ALIGN`], 512 bytes on every device cairn drives: the block
//! interface's sector) in its user address, file offset and length, else
//! `EINVAL`, as Linux. The user pages are pinned
//! ([`crate::process::aspace::AddressSpace::pin_user`]) and handed to the
//! block layer as the request's segments: no copy. A buffer in a shared
//! file mapping (pagecache frames) goes through a bounce buffer from the
//! `dma` heap instead.
//!
//! Coherence with the pagecache, as Linux's `iomap_dio_rw`: before either
//! transfer the file's dirty pages are written back and waited for (a
//! direct read sees buffered writes; an older buffered write cannot land
//! over a direct one later); after a direct write the clean, unmapped
//! cached pages of its range are dropped, so the next buffered read goes
//! to the device. A page mapped shared or in use at that moment keeps its
//! old content (Linux fails to invalidate those too).
//!
//! Storage: a direct write reserves TFS extents for holes first (`ENOSPC`
//! there), writes, then records the range written ([`Tfs::mark_written`])
//! and grows the length; those metadata updates reach the disk with the
//! next log commit (fsync, fdatasync, syncfs or the periodic writeback),
//! ordered after the data, as a buffered write's.
//!
//! Contexts: kernel-lock, in a thread (sleeps for I/O with the kernel lock
//! released). Locks: the file's `fs.truncate` mutex across the whole
//! transfer (a truncate or hole punch waits for it, so the storage is not
//! freed and reused under the I/O); under it the volume's `fs` mutex for
//! extent lookups and updates, never held across the I/O, and `aspace`
//! and `aspace.pins` while pinning.

use super::{FileData, Mount, Tfs, errno_of, wait_for};
use crate::block;
use crate::process::aspace::PinnedUser;
use alloc::vec::Vec;
use cairn_block::{DeviceInfo, Request, SECTOR_SIZE, Segment, Status};
use cairn_pagecache::{Errno, PAGE_SIZE};
use cairn_tfs::{Mapping, MappingKind};

#[cfg(doc)]
use cairn_tfs::Filesystem;

/// Alignment of a direct transfer's address, offset and length.
pub const DIO_ALIGN: u64 = SECTOR_SIZE as u64;

const PS: u64 = PAGE_SIZE as u64;
/// Bounce buffer size (buffers in shared file mappings).
const BOUNCE: usize = 256 * 1024;
/// Most user memory pinned at once: a larger transfer goes in windows.
const PIN_WINDOW: u64 = 8 * 1024 * 1024;

/// Where the transfer's bytes are for the device.
enum Buffer {
    Pinned(PinnedUser),
    /// A kernel DMA buffer of `len` bytes standing for the user's.
    Bounce {
        phys: u64,
        virt: u64,
        len: usize,
    },
}

impl Buffer {
    fn segments(&self, from: u64, len: u64) -> Vec<Segment> {
        match self {
            Buffer::Pinned(p) => p.segments(from, len),
            Buffer::Bounce { phys, .. } => alloc::vec![Segment {
                phys: phys + from,
                len: len as u32,
            }],
        }
    }

    fn zero(&self, from: u64, len: u64) {
        match self {
            Buffer::Pinned(p) => p.zero(from, len),
            Buffer::Bounce { virt, .. } => {
                // SAFETY: bytes of the DMA buffer this object owns (freed
                // when it drops), through the direct map; no request is in
                // flight on them now.
                unsafe { core::ptr::write_bytes((*virt + from) as *mut u8, 0, len as usize) }
            }
        }
    }

    fn bounce_bytes(&mut self) -> Option<&mut [u8]> {
        match self {
            Buffer::Pinned(_) => None,
            Buffer::Bounce { virt, len, .. } => {
                // SAFETY: the DMA buffer this object owns, through the
                // direct map; no request is in flight on it while this
                // borrow lives (transfers borrow `self` shared and wait
                // for completion).
                let b = unsafe { core::slice::from_raw_parts_mut(*virt as *mut u8, *len) };
                Some(b)
            }
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Buffer::Bounce { phys, virt, len } = *self {
            crate::heaps::dma::free(phys, virt, len);
        }
    }
}

/// `EINVAL` unless address, offset and length are all [`DIO_ALIGN`]ed.
pub fn check_aligned(addr: u64, off: u64, len: u64) -> Result<(), Errno> {
    if (addr | off | len) % DIO_ALIGN != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn user(e: cairn_unix::errno::Errno) -> Errno {
    Errno(e.raw())
}

impl Mount {
    /// Writes `file`'s dirty pages back and waits (the pagecache's data
    /// passes only; no log commit). A file with no cached page has nothing
    /// to write or wait for (the common case of a file only ever accessed
    /// directly: the passes would look its length up under `fs` twice).
    pub(super) fn write_back_cached(&self, file: &FileData) -> Result<(), Errno> {
        if file.node.cached_pages() == 0 {
            return Ok(());
        }
        wait_for(|c| file.node.write_back(c))
    }

    /// The user range as device segments: pinned, or a bounce buffer of at
    /// most [`BOUNCE`] bytes at `at` (the caller transfers in pieces).
    fn buffer(&self, addr: u64, len: u64, device_writes: bool) -> Result<Buffer, Errno> {
        let p = crate::process::current();
        if let Some(pinned) = p.aspace.pin_user(addr, len, device_writes).map_err(user)? {
            return Ok(Buffer::Pinned(pinned));
        }
        let n = (len as usize).min(BOUNCE);
        let (phys, virt) = crate::heaps::dma::alloc(n).ok_or(Errno::ENOMEM)?;
        Ok(Buffer::Bounce { phys, virt, len: n })
    }

    /// Moves `len` bytes between `buf` (from byte `from` of it) and the
    /// device at `sector`, in requests the device takes.
    fn transfer(
        &self,
        buf: &Buffer,
        from: u64,
        len: u64,
        sector: u64,
        write: bool,
    ) -> Result<(), Errno> {
        let segs = buf.segments(from, len);
        for (at, req) in requests(self.volume().device_info(), &segs, sector) {
            let status = block::wait_io(
                |c| {
                    if write {
                        Request::write(at, &req, c)
                    } else {
                        Request::read(at, &req, c)
                    }
                },
                self.volume(),
            );
            if status != Status::Ok {
                return Err(Errno::EIO);
            }
        }
        Ok(())
    }

    /// A direct read of up to `len` bytes at `off` into user memory at
    /// `dst` (aligned: [`check_aligned`]); short at the end of the file.
    pub fn direct_read(
        &'static self,
        file: &FileData,
        off: u64,
        dst: u64,
        len: usize,
    ) -> Result<usize, Errno> {
        check_aligned(dst, off, len as u64)?;
        if len == 0 {
            return Ok(0);
        }
        // No truncate or punch frees (and reuses) the storage under the
        // transfer (Linux's `inode_dio_wait`).
        let _storage = file.truncating.lock();
        self.write_back_cached(file)?;
        let size = self.fs().length(file.ino).map_err(errno_of)?;
        if off >= size {
            return Ok(0);
        }
        let n = (len as u64).min(size - off);
        let whole = n.next_multiple_of(DIO_ALIGN);
        let mut done = 0u64;
        while done < whole {
            let mut buf = self.buffer(dst + done, (whole - done).min(PIN_WINDOW), true)?;
            let piece = match &buf {
                Buffer::Pinned(p) => p.len(),
                Buffer::Bounce { len, .. } => *len as u64,
            };
            let maps = self
                .fs()
                .map(file.ino, off + done, piece)
                .map_err(errno_of)?;
            for run in runs(maps, off + done, piece, false) {
                match run? {
                    (at, n, Some(sector)) => self.transfer(&buf, at, n, sector, false)?,
                    (at, n, None) => buf.zero(at, n),
                }
            }
            if let Some(b) = buf.bounce_bytes() {
                let k = (piece.min(n.saturating_sub(done))) as usize;
                crate::user::copy_to_user(dst + done, &b[..k]).map_err(|_| Errno::EFAULT)?;
            }
            done += piece;
        }
        Ok(n as usize)
    }

    /// A direct write of `len` bytes from user memory at `src` to `off`
    /// (aligned: [`check_aligned`]). Returns `len`.
    pub fn direct_write(
        &'static self,
        file: &FileData,
        off: u64,
        src: u64,
        len: usize,
    ) -> Result<usize, Errno> {
        check_aligned(src, off, len as u64)?;
        if len == 0 {
            return Ok(0);
        }
        let _storage = file.truncating.lock();
        self.write_back_cached(file)?;
        let len = len as u64;
        self.fs().allocate(file.ino, off, len).map_err(errno_of)?;
        let mut done = 0u64;
        while done < len {
            let mut buf = self.buffer(src + done, (len - done).min(PIN_WINDOW), false)?;
            let piece = match &buf {
                Buffer::Pinned(p) => p.len(),
                Buffer::Bounce { len, .. } => *len as u64,
            };
            if let Some(b) = buf.bounce_bytes() {
                crate::user::copy_from_user(b, src + done).map_err(|_| Errno::EFAULT)?;
            }
            let maps = self
                .fs()
                .map(file.ino, off + done, piece)
                .map_err(errno_of)?;
            for run in runs(maps, off + done, piece, true) {
                if let (at, n, Some(sector)) = run? {
                    self.transfer(&buf, at, n, sector, true)?;
                }
            }
            drop(buf);
            done += piece;
        }
        let extended = finish_write(&mut self.fs(), file, off, len);
        // The node keeps the file's length: it may have grown.
        file.node.length_changed();
        extended?;
        // Buffered readers see the new data: the cached copies go.
        file.node
            .invalidate_clean_range(off / PS, (off + len).div_ceil(PS));
        Ok(len as usize)
    }
}

/// After a direct write's data is on the device: the range is initialized
/// and the file at least `off + len` long (logged for the next commit).
pub(super) fn finish_write(fs: &mut Tfs, file: &FileData, off: u64, len: u64) -> Result<(), Errno> {
    fs.mark_written(file.ino, off, len).map_err(errno_of)?;
    // Not a growing truncate: that would drop the extents past the old
    // end that other direct writes in flight reserved (`fs/inflight.rs`).
    fs.grow_length(file.ino, off + len).map_err(errno_of)
}

/// The runs of bytes `[from, from + len)` of a file that TFS's `maps`
/// describe, for a direct transfer: (byte of the transfer, bytes, the
/// run's first sector). A read's run without a sector (a hole, or
/// storage never written) reads as zeros; a write's storage was reserved
/// before, so a hole under it is a filesystem error (`EIO`).
pub(super) fn runs(
    maps: Vec<Mapping>,
    from: u64,
    len: u64,
    write: bool,
) -> impl Iterator<Item = Result<(u64, u64, Option<u64>), Errno>> {
    maps.into_iter().filter_map(move |m| {
        let start = m.offset.max(from);
        let stop = (m.offset + m.len).min(from + len);
        if start >= stop {
            return None;
        }
        let sector = match m.kind {
            MappingKind::Disk { sector } => Some(sector),
            MappingKind::Uninited { sector } if write => Some(sector),
            MappingKind::Hole if write => return Some(Err(Errno::EIO)),
            MappingKind::Hole | MappingKind::Uninited { .. } => None,
        };
        let sector = sector.map(|s| s + (start - m.offset) / DIO_ALIGN);
        Some(Ok((start - from, stop - start, sector)))
    })
}

/// The block requests that move `segs` between memory and the disk from
/// `sector` on, each with its first sector: at most the device's segment
/// count and transfer size apiece (a longer segment is split across
/// requests), in disk order. Used by the synchronous transfer above and
/// by the in-flight one ([`super::inflight`]).
pub(super) fn requests(
    info: &DeviceInfo,
    segs: &[Segment],
    sector: u64,
) -> Vec<(u64, Vec<Segment>)> {
    let max_bytes = (u64::from(info.max_sectors) * DIO_ALIGN).max(PS);
    let max_segs = (info.max_segments as usize).max(1);
    let mut out = Vec::new();
    // Cursor: segment `idx`, `inner` bytes of it already taken.
    let (mut idx, mut inner) = (0usize, 0u64);
    let mut at = sector;
    while idx < segs.len() {
        let mut req: Vec<Segment> = Vec::new();
        let mut bytes = 0u64;
        while idx < segs.len() && req.len() < max_segs && bytes < max_bytes {
            let s = segs[idx];
            let rest = u64::from(s.len) - inner;
            let take = rest.min(max_bytes - bytes);
            req.push(Segment {
                phys: s.phys + inner,
                len: take as u32,
            });
            bytes += take;
            if take < rest {
                inner += take;
            } else {
                idx += 1;
                inner = 0;
            }
        }
        out.push((at, req));
        at += bytes / DIO_ALIGN;
    }
    out
}
