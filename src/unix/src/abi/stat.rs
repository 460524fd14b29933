//! `struct stat` (144 bytes) and `struct statx` (256 bytes), both from one
//! filesystem-neutral [`FileStat`].
//!
//! Contexts: any. Locks: none.

use super::{out_buf, put};
use crate::Errno;

/// Size of x86-64 `struct stat`.
pub const STAT_SIZE: usize = 144;
/// Size of `struct statx`.
pub const STATX_SIZE: usize = 256;
/// `STATX_BASIC_STATS`: type, mode, nlink, uid, gid, atime, mtime, ctime,
/// ino, size, blocks.
pub const STATX_BASIC_STATS: u32 = 0x7ff;
/// `STATX_BTIME`.
pub const STATX_BTIME: u32 = 0x800;
/// `STATX_DIOALIGN`: `stx_dio_mem_align` and `stx_dio_offset_align`.
pub const STATX_DIOALIGN: u32 = 0x2000;

/// Linux's device-number encoding (glibc `makedev`).
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (major as u64, minor as u64);
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

/// The major number of an encoded device.
pub const fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

/// The minor number of an encoded device.
pub const fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// What stat and statx report about a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStat {
    /// Device of the filesystem ([`makedev`] encoding).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Link count.
    pub nlink: u64,
    /// Type and permission bits (`S_IFREG | 0644`, ...).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device for device files.
    pub rdev: u64,
    /// Size in bytes.
    pub size: i64,
    /// Preferred I/O size.
    pub blksize: i64,
    /// 512-byte blocks allocated.
    pub blocks: i64,
    /// Access time (seconds, nanoseconds).
    pub atime: (i64, u32),
    /// Modification time.
    pub mtime: (i64, u32),
    /// Status-change time.
    pub ctime: (i64, u32),
    /// Birth time, if known.
    pub btime: Option<(i64, u32)>,
}

/// Encodes `struct stat` into `out[..144]`.
pub fn encode_stat(st: &FileStat, out: &mut [u8]) -> Result<usize, Errno> {
    let b = out_buf(out, STAT_SIZE)?;
    put(b, 0, &st.dev.to_le_bytes());
    put(b, 8, &st.ino.to_le_bytes());
    put(b, 16, &st.nlink.to_le_bytes());
    put(b, 24, &st.mode.to_le_bytes());
    put(b, 28, &st.uid.to_le_bytes());
    put(b, 32, &st.gid.to_le_bytes());
    put(b, 40, &st.rdev.to_le_bytes());
    put(b, 48, &st.size.to_le_bytes());
    put(b, 56, &st.blksize.to_le_bytes());
    put(b, 64, &st.blocks.to_le_bytes());
    for (off, t) in [(72, st.atime), (88, st.mtime), (104, st.ctime)] {
        put(b, off, &t.0.to_le_bytes());
        put(b, off + 8, &i64::from(t.1).to_le_bytes());
    }
    Ok(STAT_SIZE)
}

/// Encodes `struct statx` into `out[..256]`. `stx_mask` reports the basic
/// stats, plus `STATX_BTIME` when a birth time is known (Linux may return
/// more than `requested` asked for; `requested` only drops BTIME).
pub fn encode_statx(st: &FileStat, requested: u32, out: &mut [u8]) -> Result<usize, Errno> {
    let b = out_buf(out, STATX_SIZE)?;
    let btime = st.btime.filter(|_| requested & STATX_BTIME != 0);
    let mask = STATX_BASIC_STATS | if btime.is_some() { STATX_BTIME } else { 0 };
    put(b, 0, &mask.to_le_bytes());
    put(
        b,
        4,
        &(st.blksize.clamp(0, i64::from(u32::MAX)) as u32).to_le_bytes(),
    );
    // stx_attributes (8) stays 0.
    put(
        b,
        16,
        &(st.nlink.min(u64::from(u32::MAX)) as u32).to_le_bytes(),
    );
    put(b, 20, &st.uid.to_le_bytes());
    put(b, 24, &st.gid.to_le_bytes());
    put(b, 28, &((st.mode & 0xffff) as u16).to_le_bytes());
    put(b, 32, &st.ino.to_le_bytes());
    put(b, 40, &st.size.to_le_bytes());
    put(b, 48, &st.blocks.to_le_bytes());
    // stx_attributes_mask (56) stays 0.
    let times = [
        (64, Some(st.atime)),
        (80, btime),
        (96, Some(st.ctime)),
        (112, Some(st.mtime)),
    ];
    for (off, t) in times {
        if let Some((s, ns)) = t {
            put(b, off, &s.to_le_bytes());
            put(b, off + 8, &ns.to_le_bytes());
        }
    }
    put(b, 128, &major(st.rdev).to_le_bytes());
    put(b, 132, &minor(st.rdev).to_le_bytes());
    put(b, 136, &major(st.dev).to_le_bytes());
    put(b, 140, &minor(st.dev).to_le_bytes());
    Ok(STATX_SIZE)
}

/// Adds direct I/O alignment to an encoded `struct statx`: sets
/// `STATX_DIOALIGN` in `stx_mask` and `stx_dio_mem_align` (@152) and
/// `stx_dio_offset_align` (@156).
pub fn statx_set_dio_align(b: &mut [u8; STATX_SIZE], mem: u32, offset: u32) {
    let mask = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | STATX_DIOALIGN;
    put(b, 0, &mask.to_le_bytes());
    put(b, 152, &mem.to_le_bytes());
    put(b, 156, &offset.to_le_bytes());
}
