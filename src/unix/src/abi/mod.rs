//! Byte-exact encoders and decoders for the structures syscalls write to
//! and read from user memory, in the x86-64 Linux layout.
//!
//! Owns: the layouts of `struct stat`, `struct statx`, `timespec`,
//! `timeval`, `linux_dirent64` (getdents64 packing), `utsname`, `rlimit`,
//! the kernel's `struct sigaction`, `stack_t` and `iovec`. Each type has a
//! `SIZE`, encoders write little-endian fields at fixed offsets into a
//! `&mut [u8]` (`EINVAL` if it is too short; nothing is written then) and
//! decoders read a `&[u8]` the kernel copied from the user (`EFAULT` if
//! too short). No transmutes, no `unsafe`.
//!
//! Contexts: any (pure functions); in the kernel, kernel-lock context
//! builds a buffer here, then copies it to user memory with no spinlock
//! held (DESIGN.md §4 rule 2). Locks: none.

mod dirent;
mod misc;
mod sigaction;
mod stat;
mod time;

pub use dirent::{
    DIRENT_NAME_LIMIT, DT_BLK, DT_CHR, DT_DIR, DT_FIFO, DT_LNK, DT_REG, DT_SOCK, DT_UNKNOWN,
    Dirent, DirentWriter, dirent_reclen,
};
pub use misc::{IOV_MAX, IoVec, RLIM_INFINITY, Rlimit, StackT, Utsname, decode_iovecs};
pub use sigaction::KernelSigaction;
pub use stat::{
    FileStat, STAT_SIZE, STATX_BASIC_STATS, STATX_BTIME, STATX_DIOALIGN, STATX_SIZE, encode_stat,
    encode_statx, major, makedev, minor, statx_set_dio_align,
};
pub use time::{
    TimeSet, Timespec, Timeval, UTIME_NOW, UTIME_OMIT, decode_utimbuf, decode_utimens,
    decode_utimes,
};

use crate::Errno;

/// Checks that `out` holds `size` bytes (`EINVAL` otherwise: a kernel
/// buffer sized wrongly) and zeroes them, so padding is never stale.
pub(crate) fn out_buf(out: &mut [u8], size: usize) -> Result<&mut [u8], Errno> {
    let b = out.get_mut(..size).ok_or(Errno::EINVAL)?;
    b.fill(0);
    Ok(b)
}

/// Writes `bytes` at `off` (callers checked the length with [`out_buf`]).
pub(crate) fn put(out: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(d) = out.get_mut(off..off + bytes.len()) {
        d.copy_from_slice(bytes);
    }
}

/// Reads `N` bytes at `off`, `EFAULT` if `b` is too short.
pub(crate) fn get<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], Errno> {
    b.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Errno::EFAULT)
}

pub(crate) fn get_u64(b: &[u8], off: usize) -> Result<u64, Errno> {
    get::<8>(b, off).map(u64::from_le_bytes)
}

pub(crate) fn get_i64(b: &[u8], off: usize) -> Result<i64, Errno> {
    get::<8>(b, off).map(i64::from_le_bytes)
}

pub(crate) fn get_i32(b: &[u8], off: usize) -> Result<i32, Errno> {
    get::<4>(b, off).map(i32::from_le_bytes)
}
