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
use crate::process::file::{FileKind, OpenFile};
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

impl Request<'_> {
    /// Runs the request: its result as a completion carries it (a count,
    /// or a negative errno).
    pub fn run(&self) -> i64 {
        match self.run_result() {
            Ok(n) => n as i64,
            // A restart cannot redo a request that is reported by event.
            Err(Errno::ERESTARTSYS) => -i64::from(Errno::EINTR.raw()),
            Err(e) => -i64::from(e.raw()),
        }
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
