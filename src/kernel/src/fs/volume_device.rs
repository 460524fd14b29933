//! [`VolumeDevice`]: TFS's blocking `BlockDevice` over a block-layer volume,
//! for the filesystem's own metadata I/O (mount replay, log commits).
//! File data does not come here: it goes through the pagecache.
//!
//! Each call builds requests on a bounce buffer from the `dma` heap (the
//! callers' buffers live anywhere and need not be sector-aligned in
//! physical memory), submits them and sleeps until they complete: the
//! kernel lock is released meanwhile.
//!
//! Kernel-lock context, in a thread. No locks of its own.

use crate::block;
use cairn_block::{Request, SECTOR_SIZE, Segment, Status, Volume};
use cairn_tfs::{BlockDevice, IoError};

/// Largest transfer per request (bounce buffer size).
const CHUNK: usize = 64 * 1024;

pub struct VolumeDevice {
    volume: Volume,
}

impl VolumeDevice {
    pub fn new(volume: Volume) -> Self {
        VolumeDevice { volume }
    }

    pub fn volume(&self) -> &Volume {
        &self.volume
    }

    fn chunk_len(&self) -> usize {
        let info = self.volume.device_info();
        let by_sectors = info.max_sectors as usize * SECTOR_SIZE;
        let by_segments = info.max_segments as usize * 4096;
        CHUNK
            .min(by_sectors.max(SECTOR_SIZE))
            .min(by_segments.max(4096))
    }

    fn transfer(
        &self,
        sector: u64,
        len: usize,
        mut io: impl FnMut(usize, &mut [u8]),
        write: bool,
    ) -> Result<(), IoError> {
        if len % SECTOR_SIZE != 0 {
            return Err(IoError::Unaligned);
        }
        // A bounce buffer must be physically contiguous: when RAM is too
        // fragmented for the largest, a smaller one does (more requests).
        let mut chunk = self.chunk_len();
        let (phys, virt) = loop {
            match crate::heaps::dma::alloc(chunk) {
                Some(b) => break b,
                None if chunk > 4096 => chunk = (chunk / 2).next_multiple_of(4096),
                None => return Err(IoError::Device),
            }
        };
        // SAFETY: a fresh DMA buffer of `chunk` bytes owned by this call,
        // reached through the direct map; freed below after every request
        // that uses it completed.
        let bounce = unsafe { core::slice::from_raw_parts_mut(virt as *mut u8, chunk) };
        let mut result = Ok(());
        let mut done = 0;
        while done < len {
            let n = chunk.min(len - done);
            if write {
                io(done, &mut bounce[..n]);
            }
            let segs = [Segment {
                phys,
                len: n as u32,
            }];
            let at = sector + (done / SECTOR_SIZE) as u64;
            let status = block::wait_io(
                |c| {
                    if write {
                        Request::write(at, &segs, c)
                    } else {
                        Request::read(at, &segs, c)
                    }
                },
                &self.volume,
            );
            if status != Status::Ok {
                result = Err(if status == Status::OutOfRange {
                    IoError::OutOfRange
                } else {
                    IoError::Device
                });
                break;
            }
            if !write {
                io(done, &mut bounce[..n]);
            }
            done += n;
        }
        crate::heaps::dma::free(phys, virt, chunk);
        result
    }
}

impl BlockDevice for VolumeDevice {
    fn sector_count(&self) -> u64 {
        self.volume.sectors()
    }

    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let len = buf.len();
        self.transfer(
            sector,
            len,
            |at, bounce| buf[at..at + bounce.len()].copy_from_slice(bounce),
            false,
        )
    }

    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        self.transfer(
            sector,
            buf.len(),
            |at, bounce| bounce.copy_from_slice(&buf[at..at + bounce.len()]),
            true,
        )
    }

    /// Flushes the device if a write completed since its last flush (a
    /// commit's two flushes stay: each follows writes).
    fn flush(&self) -> Result<(), IoError> {
        if !self.volume.needs_flush() {
            return Ok(());
        }
        match block::wait_io(Request::flush, &self.volume) {
            Status::Ok => Ok(()),
            _ => Err(IoError::Device),
        }
    }
}
