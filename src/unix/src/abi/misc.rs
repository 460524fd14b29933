//! Small fixed structures: `utsname`, `rlimit`, `iovec`, `stack_t`.
//!
//! Contexts: any. Locks: none.

use alloc::vec::Vec;

use super::{get_i32, get_u64, out_buf, put};
use crate::Errno;

/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;
/// Most iovecs one readv/writev takes (`UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;

/// `struct utsname`: six 65-byte NUL-terminated fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utsname<'a> {
    /// `sysname` ("Linux": programs test it).
    pub sysname: &'a [u8],
    /// `nodename`.
    pub nodename: &'a [u8],
    /// `release` (glibc checks it is not too old, e.g. "6.1.0").
    pub release: &'a [u8],
    /// `version`.
    pub version: &'a [u8],
    /// `machine` ("x86_64").
    pub machine: &'a [u8],
    /// `domainname`.
    pub domainname: &'a [u8],
}

impl Utsname<'_> {
    /// Encoded size.
    pub const SIZE: usize = 6 * 65;

    /// Writes it into `out[..390]`; fields are cut to 64 bytes (and at an
    /// inner NUL).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Errno> {
        let b = out_buf(out, Self::SIZE)?;
        let fields = [
            self.sysname,
            self.nodename,
            self.release,
            self.version,
            self.machine,
            self.domainname,
        ];
        for (i, f) in fields.iter().enumerate() {
            let f = f.split(|&c| c == 0).next().unwrap_or(&[]);
            put(b, i * 65, &f[..f.len().min(64)]);
        }
        Ok(Self::SIZE)
    }
}

/// `struct rlimit` (`rlimit64`: the same on x86-64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}

impl Rlimit {
    /// Encoded size.
    pub const SIZE: usize = 16;

    /// Writes it into `out[..16]`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Errno> {
        let b = out_buf(out, Self::SIZE)?;
        put(b, 0, &self.cur.to_le_bytes());
        put(b, 8, &self.max.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Reads one; `EINVAL` if `cur > max`.
    pub fn decode(b: &[u8]) -> Result<Self, Errno> {
        let r = Rlimit {
            cur: get_u64(b, 0)?,
            max: get_u64(b, 8)?,
        };
        if r.cur > r.max {
            return Err(Errno::EINVAL);
        }
        Ok(r)
    }
}

/// `struct iovec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoVec {
    /// User address.
    pub base: u64,
    /// Length.
    pub len: u64,
}

impl IoVec {
    /// Encoded size.
    pub const SIZE: usize = 16;
}

/// Decodes `count` iovecs from `b` (the kernel's copy of the array).
/// `EINVAL` if `count` exceeds [`IOV_MAX`] or the total length exceeds
/// `isize::MAX`; `EFAULT` if `b` is short. Callers should check `count`
/// with this same rule *before* copying the array in.
pub fn decode_iovecs(b: &[u8], count: usize) -> Result<Vec<IoVec>, Errno> {
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut out = Vec::with_capacity(count);
    let mut total: u64 = 0;
    for i in 0..count {
        let v = IoVec {
            base: get_u64(b, i * 16)?,
            len: get_u64(b, i * 16 + 8)?,
        };
        total = total.checked_add(v.len).ok_or(Errno::EINVAL)?;
        if total > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push(v);
    }
    Ok(out)
}

/// `stack_t` for sigaltstack: `ss_sp @0`, `ss_flags: i32 @8`,
/// `ss_size @16`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackT {
    /// Base address.
    pub sp: u64,
    /// `SS_ONSTACK` (1) / `SS_DISABLE` (2).
    pub flags: i32,
    /// Size.
    pub size: u64,
}

impl StackT {
    /// Encoded size.
    pub const SIZE: usize = 24;

    /// Writes it into `out[..24]`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Errno> {
        let b = out_buf(out, Self::SIZE)?;
        put(b, 0, &self.sp.to_le_bytes());
        put(b, 8, &self.flags.to_le_bytes());
        put(b, 16, &self.size.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Reads one.
    pub fn decode(b: &[u8]) -> Result<Self, Errno> {
        Ok(StackT {
            sp: get_u64(b, 0)?,
            flags: get_i32(b, 8)?,
            size: get_u64(b, 16)?,
        })
    }
}
