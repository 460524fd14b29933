//! `struct linux_dirent64` and getdents64 packing.
//!
//! Contexts: any. Locks: none.
//!
//! Record layout: `d_ino: u64 @0`, `d_off: i64 @8`, `d_reclen: u16 @16`,
//! `d_type: u8 @18`, `d_name @19` (NUL-terminated), the record padded to a
//! multiple of 8. `d_off` is the directory position *after* the entry:
//! the file position to store so that the next getdents64 resumes with the
//! following entry, which is what [`DirentWriter::finish`] returns.
//!
//! The legacy `struct linux_dirent` ([`DirentWriter::legacy`], for
//! `getdents`): `d_ino: u64 @0`, `d_off: i64 @8`, `d_reclen: u16 @16`,
//! `d_name @18` (NUL-terminated), padding to a multiple of 8, and `d_type`
//! in the record's last byte.

use super::put;
use crate::Errno;

/// Unknown type.
pub const DT_UNKNOWN: u8 = 0;
/// FIFO.
pub const DT_FIFO: u8 = 1;
/// Character device.
pub const DT_CHR: u8 = 2;
/// Directory.
pub const DT_DIR: u8 = 4;
/// Block device.
pub const DT_BLK: u8 = 6;
/// Regular file.
pub const DT_REG: u8 = 8;
/// Symbolic link.
pub const DT_LNK: u8 = 10;
/// Socket.
pub const DT_SOCK: u8 = 12;

const NAME_OFF: usize = 19;
/// Where the name starts in a legacy `linux_dirent`.
const LEGACY_NAME_OFF: usize = 18;

/// Longest name [`DirentWriter::push`] packs. Linux's getdents64 packs a
/// name of any length its filesystem holds (`d_reclen` is 16 bits); names
/// over `NAME_MAX` (255) cannot be created through Linux's system calls
/// but exist in images made by other tools (Nanos's mkfs), and a listing
/// shows them, as Linux would. Longer than a path cannot be useful.
pub const DIRENT_NAME_LIMIT: usize = crate::path::PATH_MAX - 1;

/// Record length for a name of `name_len` bytes (header, name, NUL,
/// padding to 8).
pub const fn dirent_reclen(name_len: usize) -> usize {
    (NAME_OFF + name_len + 1 + 7) & !7
}

/// Record length of a legacy `linux_dirent` (header, name, NUL, the
/// `d_type` byte, padding to 8).
pub const fn legacy_dirent_reclen(name_len: usize) -> usize {
    (LEGACY_NAME_OFF + name_len + 2 + 7) & !7
}

/// One directory entry to pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// Inode number.
    pub ino: u64,
    /// Directory position after this entry (resume cookie).
    pub next: i64,
    /// `DT_*` type.
    pub kind: u8,
    /// Name (1..=[`DIRENT_NAME_LIMIT`] bytes, no NUL or '/'; "." and ".."
    /// allowed).
    pub name: &'a [u8],
}

/// Packs entries into a getdents64 buffer.
#[derive(Debug)]
pub struct DirentWriter<'a> {
    buf: &'a mut [u8],
    used: usize,
    resume: Option<i64>,
    overflowed: bool,
    legacy: bool,
}

impl<'a> DirentWriter<'a> {
    /// Packs into `buf` (the kernel's copy of the user buffer).
    pub fn new(buf: &'a mut [u8]) -> Self {
        DirentWriter {
            buf,
            used: 0,
            resume: None,
            overflowed: false,
            legacy: false,
        }
    }

    /// Packs legacy `linux_dirent` records (getdents) into `buf`.
    pub fn legacy(buf: &'a mut [u8]) -> Self {
        DirentWriter {
            legacy: true,
            ..DirentWriter::new(buf)
        }
    }

    /// Adds `e`. `Ok(true)` if it was packed, `Ok(false)` if it does not
    /// fit (stop; it will be the first entry of the next call).
    /// `ENAMETOOLONG` for names over [`DIRENT_NAME_LIMIT`] bytes, `EINVAL`
    /// for empty names or names with NUL or '/' (a filesystem bug, never
    /// user input): entries that cannot be listed; the caller skips them.
    pub fn push(&mut self, e: &Dirent<'_>) -> Result<bool, Errno> {
        if e.name.len() > DIRENT_NAME_LIMIT {
            return Err(Errno::ENAMETOOLONG);
        }
        if e.name.is_empty() || e.name.iter().any(|&c| c == 0 || c == b'/') {
            return Err(Errno::EINVAL);
        }
        let len = if self.legacy {
            legacy_dirent_reclen(e.name.len())
        } else {
            dirent_reclen(e.name.len())
        };
        let Some(rec) = self.buf.get_mut(self.used..self.used + len) else {
            self.overflowed = true;
            return Ok(false);
        };
        rec.fill(0);
        put(rec, 0, &e.ino.to_le_bytes());
        put(rec, 8, &e.next.to_le_bytes());
        put(rec, 16, &(len as u16).to_le_bytes());
        if self.legacy {
            put(rec, LEGACY_NAME_OFF, e.name);
            put(rec, len - 1, &[e.kind]);
        } else {
            put(rec, 18, &[e.kind]);
            put(rec, NAME_OFF, e.name);
        }
        self.used += len;
        self.resume = Some(e.next);
        Ok(true)
    }

    /// Bytes packed so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Ends the call: the byte count to return and the position to store
    /// (`None`: nothing was packed, keep the position). `EINVAL` if the
    /// buffer could not hold even the first entry.
    pub fn finish(self) -> Result<(usize, Option<i64>), Errno> {
        if self.used == 0 && self.overflowed {
            return Err(Errno::EINVAL);
        }
        Ok((self.used, self.resume))
    }
}
