//! One read, write or sync request on an open file, run at once in the
//! calling thread: the execution shared by Linux AIO (`aio.rs`) and
//! io_uring (`uring.rs`). Reads and writes go through the same paths as
//! read/pread/readv/preadv and their write twins (`fs.rs`), so `O_DIRECT`
//! files go straight to the device (`fs/direct.rs`) and buffered ones
//! through the pagecache; a sync is fsync. The result is what a
//! completion event carries: a count, or a negative errno.
//!
//! Owns nothing. Kernel-lock context, in a thread (sleeps for I/O); takes
//! the locks of the paths it calls (`file.pos`, `fs.truncate`, `fs`, ...)
//! and must be called with no spinlock held.

use super::SysResult;
use crate::fs::inflight::{Landing, Start};
use crate::process::file::{FileKind, OpenFile};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_unix::errno::Errno;

/// `RWF_HIPRI`: a hint.
pub const RWF_HIPRI: u32 = 1;
/// `RWF_DSYNC`: the write is synced before it completes.
pub const RWF_DSYNC: u32 = 2;
/// `RWF_SYNC`: as `RWF_DSYNC` (cairn's fsync is its fdatasync).
pub const RWF_SYNC: u32 = 4;

/// What a request does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// `len` bytes into the buffer at `buf`.
    Read,
    /// `len` bytes from the buffer at `buf`.
    Write,
    /// Into the `len` iovecs at `buf`.
    Readv,
    /// From the `len` iovecs at `buf`.
    Writev,
    /// fsync / fdatasync.
    Sync,
}

/// A request; user addresses are checked by the paths it runs.
pub struct Request<'a> {
    pub file: &'a OpenFile,
    pub op: Op,
    pub buf: u64,
    pub len: u64,
    /// The file offset; `None`: the description's own (which moves).
    pub offset: Option<u64>,
    /// `RWF_*` flags (only [`RWF_HIPRI`], [`RWF_DSYNC`], [`RWF_SYNC`];
    /// the caller refuses the others).
    pub rw_flags: u32,
}

/// The `RWF_*` flags a request may carry; others are `EOPNOTSUPP`.
pub fn check_rw_flags(flags: u32) -> Result<(), Errno> {
    if flags & !(RWF_HIPRI | RWF_DSYNC | RWF_SYNC) != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(())
}

/// A completion's result: a count, or a negative errno (`ERESTARTSYS`,
/// which a request reported by event cannot restart, is `EINTR`).
pub fn result_of(r: SysResult) -> i64 {
    match r {
        Ok(n) => n as i64,
        Err(Errno::ERESTARTSYS) => -i64::from(Errno::EINTR.raw()),
        Err(e) => -i64::from(e.raw()),
    }
}

impl Request<'_> {
    /// Starts the request if it can go in flight, an `O_DIRECT` read or
    /// write (plain or vectored) of a regular file at an explicit offset
    /// without `RWF_DSYNC`/`RWF_SYNC` (`fs/inflight.rs`): `None`, and
    /// `landing` gets the result (kernel-lock context, later, in the
    /// `dio` lander thread or now). Otherwise the request runs now, in the
    /// calling thread, and its result is returned (`landing` dropped
    /// unused). `hold` is the request's file (`self.file`), kept open
    /// until the transfer lands.
    pub fn start(
        &self,
        hold: &Arc<OpenFile>,
        landing: Box<dyn FnOnce(i64) + Send + Sync>,
    ) -> Option<i64> {
        let write = match self.op {
            Op::Read | Op::Readv => false,
            Op::Write | Op::Writev => true,
            Op::Sync => return Some(self.run()),
        };
        let (FileKind::Regular(data), Some(off)) = (&self.file.kind, self.offset) else {
            return Some(self.run());
        };
        let allowed = if write {
            self.file.writable
        } else {
            self.file.readable
        };
        if !self.file.direct()
            || !allowed
            || self.rw_flags & (RWF_DSYNC | RWF_SYNC) != 0
            || (off as i64) < 0
        {
            return Some(self.run());
        }
        let iov: Vec<(u64, u64)> = match self.op {
            Op::Read | Op::Write => alloc::vec![(self.buf, self.len)],
            _ => {
                if self.len as usize > crate::fs::inflight::MAX_IOVECS {
                    return Some(self.run());
                }
                match super::fs::iovecs(self.buf, self.len) {
                    Ok(v) => v
                        .iter()
                        .filter(|v| v.len > 0)
                        .map(|v| (v.base, v.len))
                        .collect(),
                    Err(_) => return Some(self.run()),
                }
            }
        };
        let total: u64 = iov.iter().map(|v| v.1).sum();
        if super::fs::verify_area(off, total).ok() != Some(total as usize)
            || iov.iter().any(|&(b, l)| !crate::user::user_range_ok(b, l))
        {
            return Some(self.run());
        }
        let mut landing: Option<Landing> =
            Some(Box::new(move |r: Result<usize, cairn_pagecache::Errno>| {
                landing(result_of(r.map(|n| n as u64).map_err(super::fs::pc_err)))
            }));
        match data
            .mount
            .start_direct(data, hold, write, off, &iov, &mut landing)
        {
            Start::InFlight => None,
            Start::Done(r) => Some(result_of(r.map(|n| n as u64).map_err(super::fs::pc_err))),
            Start::Synchronous => Some(self.run()),
        }
    }

    /// Runs the request: its result as a completion carries it (a count,
    /// or a negative errno).
    pub fn run(&self) -> i64 {
        result_of(self.run_result())
    }

    /// Runs the request.
    pub fn run_result(&self) -> SysResult {
        use super::fs;
        let f = self.file;
        // A file with no positions (a pipe, a socket) ignores the offset,
        // as Linux's stream files.
        let at = match &f.kind {
            FileKind::Object(o) if !o.seekable() => None,
            FileKind::Console => None,
            _ => self.offset,
        };
        let r = match (self.op, at) {
            (Op::Read, Some(off)) => fs::pread_file(f, self.buf, self.len, off),
            (Op::Read, None) => fs::read_file(f, self.buf, self.len),
            (Op::Write, Some(off)) => fs::pwrite_file(f, self.buf, self.len, off),
            (Op::Write, None) => fs::write_file(f, self.buf, self.len),
            (Op::Readv, at) => fs::readv_file(f, self.buf, self.len, at),
            (Op::Writev, at) => fs::writev_file(f, self.buf, self.len, at),
            (Op::Sync, _) => fs::fsync_file(f),
        };
        match r {
            Ok(n)
                if matches!(self.op, Op::Write | Op::Writev)
                    && self.rw_flags & (RWF_DSYNC | RWF_SYNC) != 0 =>
            {
                fs::fsync_file(f).map(|_| n)
            }
            r => r,
        }
    }
}
