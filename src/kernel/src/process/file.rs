//! Open file descriptions: what a file descriptor refers to, with its
//! offset and status flags. Regular files read and write through the
//! pagecache ([`crate::fs::Mount`]); directories list through TFS; the
//! console is the serial port.
//!
//! Kernel-lock context. The offset and flags are atomics only written
//! under the kernel lock (so `read` + offset update is atomic with respect
//! to other syscalls unless the read sleeps; Linux gives no stronger
//! guarantee for shared descriptions either).

use crate::fs::{FileData, Loc};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub enum FileKind {
    Regular(Arc<FileData>),
    Directory(Loc),
    /// The serial console (fds 0, 1, 2).
    Console,
}

pub struct OpenFile {
    pub kind: FileKind,
    pub offset: AtomicU64,
    /// `O_APPEND`, `O_NONBLOCK`... (the status flags F_GETFL returns).
    pub flags: AtomicU32,
    pub readable: bool,
    pub writable: bool,
}

pub const O_ACCMODE: u32 = 3;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_PATH: u32 = 0o10000000;

impl OpenFile {
    pub fn new(kind: FileKind, flags: u32) -> Arc<OpenFile> {
        let acc = flags & O_ACCMODE;
        if let FileKind::Regular(d) = &kind {
            d.mount.fs().hold(d.ino);
        }
        Arc::new(OpenFile {
            kind,
            offset: AtomicU64::new(0),
            flags: AtomicU32::new(flags & !(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)),
            readable: acc != O_WRONLY,
            writable: acc == O_WRONLY || acc == O_RDWR,
        })
    }

    pub fn console(flags: u32) -> Arc<OpenFile> {
        Self::new(FileKind::Console, flags)
    }

    /// Where it is in the tree (`None` for the console).
    pub fn loc(&self) -> Option<Loc> {
        match &self.kind {
            FileKind::Regular(d) => Some(Loc {
                mount: d.mount.id(),
                ino: d.ino,
            }),
            FileKind::Directory(l) => Some(*l),
            FileKind::Console => None,
        }
    }

    pub fn append(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & O_APPEND != 0
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if let FileKind::Regular(d) = &self.kind {
            d.mount.fs().release(d.ino);
        }
    }
}
