//! Error types of the TFS crate: device errors, decode errors, mount
//! refusals and the errno-like filesystem error.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use alloc::string::String;
use core::fmt;

/// An error reported by a [`crate::BlockDevice`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The request reaches beyond the end of the device.
    OutOfRange,
    /// The buffer length is not a multiple of the 512-byte sector.
    Unaligned,
    /// The device reported a failure.
    Device,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::OutOfRange => f.write_str("request beyond the end of the device"),
            IoError::Unaligned => f.write_str("buffer is not a whole number of sectors"),
            IoError::Device => f.write_str("device I/O error"),
        }
    }
}

/// Why bytes from disk could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset within the buffer being decoded.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl DecodeError {
    pub(crate) fn new(offset: usize, reason: &'static str) -> Self {
        DecodeError { offset, reason }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.reason, self.offset)
    }
}

/// Why a volume was refused at mount (or could not be opened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountError {
    /// The device failed while the volume was read.
    Io(IoError),
    /// Sector 0 carries neither a TFS header nor an MBR with a TFS partition.
    NotTfs(String),
    /// The log could not be replayed.
    Log(String),
    /// The log replayed, but the tree or its extents are inconsistent.
    Corrupt(String),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Io(e) => write!(f, "I/O error while mounting: {e}"),
            MountError::NotTfs(why) => write!(f, "not a TFS volume: {why}"),
            MountError::Log(why) => write!(f, "log replay failed: {why}"),
            MountError::Corrupt(why) => write!(f, "filesystem is corrupt: {why}"),
        }
    }
}

impl From<IoError> for MountError {
    fn from(e: IoError) -> Self {
        MountError::Io(e)
    }
}

/// A Linux-errno-like filesystem error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    /// ENOENT: no such file or directory.
    NoEnt,
    /// EEXIST: the name already exists.
    Exist,
    /// ENOTDIR: a path component is not a directory.
    NotDir,
    /// EISDIR: the operation needs a non-directory.
    IsDir,
    /// ENOTEMPTY: the directory has entries.
    NotEmpty,
    /// ENOSPC: no space left on the volume.
    NoSpace,
    /// EIO: the device failed.
    Io,
    /// EINVAL: invalid argument (e.g. moving a directory into itself).
    Inval,
    /// ENAMETOOLONG: a name is longer than 255 bytes.
    NameTooLong,
    /// ELOOP: too many symbolic links.
    Loop,
    /// EPERM: operation not permitted (e.g. hard link to a directory).
    Perm,
    /// EFBIG: file offset or length out of range.
    FileTooBig,
    /// EROFS: the volume is read-only.
    ReadOnly,
}

impl FsError {
    /// The Linux errno value of this error.
    pub fn errno(self) -> i32 {
        match self {
            FsError::Perm => 1,
            FsError::NoEnt => 2,
            FsError::Io => 5,
            FsError::Exist => 17,
            FsError::NotDir => 20,
            FsError::IsDir => 21,
            FsError::Inval => 22,
            FsError::FileTooBig => 27,
            FsError::NoSpace => 28,
            FsError::ReadOnly => 30,
            FsError::NameTooLong => 36,
            FsError::NotEmpty => 39,
            FsError::Loop => 40,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FsError::NoEnt => "no such file or directory",
            FsError::Exist => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::NoSpace => "no space left on device",
            FsError::Io => "input/output error",
            FsError::Inval => "invalid argument",
            FsError::NameTooLong => "file name too long",
            FsError::Loop => "too many levels of symbolic links",
            FsError::Perm => "operation not permitted",
            FsError::FileTooBig => "file too large",
            FsError::ReadOnly => "read-only file system",
        };
        f.write_str(s)
    }
}

impl From<IoError> for FsError {
    fn from(_: IoError) -> Self {
        FsError::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn errno_values_match_linux() {
        assert_eq!(FsError::NoEnt.errno(), 2);
        assert_eq!(FsError::NotEmpty.errno(), 39);
        assert_eq!(FsError::NoSpace.errno(), 28);
        assert_eq!(FsError::Loop.errno(), 40);
    }

    #[test]
    fn mount_error_displays_reason() {
        let e = MountError::Log("bad frame 0x09".to_string());
        assert!(e.to_string().contains("bad frame 0x09"));
    }
}
