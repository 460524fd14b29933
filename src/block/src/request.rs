//! Block requests and their completions.
//!
//! Built in kernel-lock or bh context (inside `bh_safe_alloc`, which the
//! constructors enter), completed in bh context. No locks.

use crate::WriteCache;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;

/// The sector size of the interface (devices with larger native sectors
/// are not supported).
pub const SECTOR_SIZE: usize = 512;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    /// Make every completed write durable (drain the device's write cache).
    Flush,
}

/// One physically contiguous piece of a transfer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical address, 2-byte aligned at least (ATA PRDs need it).
    pub phys: u64,
    /// Length in bytes, a multiple of [`SECTOR_SIZE`].
    pub len: u32,
}

/// How a request ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The device reported an error (or timed out).
    IoError,
    /// The sector range lies (partly) outside the device or volume.
    OutOfRange,
    /// The request is malformed for this device (misaligned, too many
    /// segments, segment lengths not matching the sector count).
    Unsupported,
}

impl Status {
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }
}

/// The function a request runs when it ends, in bh context.
pub type Completion = Box<dyn FnOnce(Status) + Send>;

/// A read, write or flush of `sectors` sectors at `sector`.
pub struct Request {
    pub op: Op,
    pub sector: u64,
    pub sectors: u64,
    pub segments: Vec<Segment>,
    done: Option<Completion>,
    /// The device's write cache and what the request carries for it
    /// ([`Request::track`]).
    tracked: Option<(Arc<WriteCache>, u64)>,
}

impl Request {
    fn new(
        op: Op,
        sector: u64,
        segments: &[Segment],
        done: impl FnOnce(Status) + Send + 'static,
    ) -> Self {
        let bytes: u64 = segments.iter().map(|s| u64::from(s.len)).sum();
        bh_safe_alloc(|| Request {
            op,
            sector,
            sectors: bytes / SECTOR_SIZE as u64,
            segments: segments.to_vec(),
            done: Some(Box::new(done)),
            tracked: None,
        })
    }

    /// Reads into `segments`, starting at `sector`.
    pub fn read(
        sector: u64,
        segments: &[Segment],
        done: impl FnOnce(Status) + Send + 'static,
    ) -> Self {
        Self::new(Op::Read, sector, segments, done)
    }

    /// Writes `segments` to the disk, starting at `sector`.
    pub fn write(
        sector: u64,
        segments: &[Segment],
        done: impl FnOnce(Status) + Send + 'static,
    ) -> Self {
        Self::new(Op::Write, sector, segments, done)
    }

    /// Flushes the device's write cache.
    pub fn flush(done: impl FnOnce(Status) + Send + 'static) -> Self {
        Self::new(Op::Flush, 0, &[], done)
    }

    /// Total bytes the segments carry.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Checks the request against a device of `capacity` sectors taking at
    /// most `max_segments` segments: the status to fail it with, if any.
    pub fn check(&self, capacity: u64, max_segments: u32) -> Result<(), Status> {
        if self.op == Op::Flush {
            return Ok(());
        }
        let sector = SECTOR_SIZE as u64;
        let well_formed = !self.segments.is_empty()
            && self.segments.len() <= max_segments as usize
            && self
                .segments
                .iter()
                .all(|s| s.len > 0 && u64::from(s.len) % sector == 0 && s.phys % 2 == 0)
            && self.bytes() == self.sectors * sector;
        if !well_formed {
            return Err(Status::Unsupported);
        }
        match self.sector.checked_add(self.sectors) {
            Some(end) if end <= capacity => Ok(()),
            _ => Err(Status::OutOfRange),
        }
    }

    /// Checks the request against a device's limits (range, segment count,
    /// transfer size): the status to fail it with, if any.
    pub fn check_for(&self, info: &crate::DeviceInfo) -> Result<(), Status> {
        self.check(info.sectors, info.max_segments)?;
        if self.sectors > u64::from(info.max_sectors) {
            return Err(Status::Unsupported);
        }
        Ok(())
    }

    /// Moves the request `offset` sectors further on the device (volumes map
    /// their sectors onto the disk with it).
    pub fn offset_by(&mut self, offset: u64) {
        self.sector += offset;
    }

    /// Counts the request in `cache` when it ends (volumes call it as they
    /// submit): a flush covers the writes completed by now.
    pub fn track(&mut self, cache: &Arc<WriteCache>) {
        self.tracked = Some((cache.clone(), cache.tag(self.op)));
    }

    /// Ends the request: records it in its device's write cache, then runs
    /// its completion with `status`. Drivers call it from their bh service.
    pub fn complete(mut self, status: Status) {
        if let Some((cache, tag)) = self.tracked.take() {
            cache.ended(self.op, tag, status);
        }
        if let Some(done) = self.done.take() {
            done(status);
        }
    }
}

impl core::fmt::Debug for Request {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Request")
            .field("op", &self.op)
            .field("sector", &self.sector)
            .field("sectors", &self.sectors)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // A request dropped without completing would leave its submitter
        // waiting forever: that is a driver bug, never a silent loss.
        #[cfg(not(target_os = "none"))]
        if std::thread::panicking() {
            return;
        }
        if self.done.is_some() {
            panic!("block request dropped without completion: {self:?}");
        }
    }
}
