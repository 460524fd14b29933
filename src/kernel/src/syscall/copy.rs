//! Copies between descriptors inside the kernel: sendfile and
//! copy_file_range (through the pagecache, a chunk at a time, no user
//! buffer), and sync_file_range.
//!
//! Kernel-lock context, in the calling thread; no lock is held across a
//! chunk (reads and writes sleep for I/O).

use super::fs::{MAX_RW_COUNT, file_size, get_file, pc_err, verify_area};
use super::{SysResult, copy_in, copy_out};
use crate::process::file::{Dst, FileKind, OpenFile, Src};
use alloc::sync::Arc;
use alloc::vec;
use cairn_unix::errno::Errno;
use core::sync::atomic::Ordering;

/// Bytes moved per step.
const CHUNK: usize = 256 * 1024;

/// Reads into a kernel buffer at `off` (ignored by unseekable files).
fn read_into(f: &OpenFile, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    if !f.readable {
        return Err(Errno::EBADF);
    }
    match &f.kind {
        FileKind::Regular(d) => d.mount.read_kernel(d, off, buf).map_err(pc_err),
        FileKind::Object(o) => {
            let len = buf.len();
            o.read(f, off, Dst::Kernel(buf), len)
        }
        FileKind::Console => Ok(0),
        FileKind::Directory(_) => Err(Errno::EISDIR),
    }
}

/// Writes a kernel buffer at `off` (ignored by unseekable files).
fn write_from(f: &OpenFile, off: u64, buf: &[u8]) -> Result<usize, Errno> {
    if !f.writable {
        return Err(Errno::EBADF);
    }
    match &f.kind {
        FileKind::Regular(d) => d.mount.write_kernel(d, off, buf).map_err(pc_err),
        FileKind::Object(o) => o.write(f, off, Src::Kernel(buf), buf.len()),
        FileKind::Console => {
            crate::console::write_bytes(buf);
            Ok(buf.len())
        }
        FileKind::Directory(_) => Err(Errno::EISDIR),
    }
}

fn seekable(f: &OpenFile) -> bool {
    match &f.kind {
        FileKind::Regular(_) => true,
        FileKind::Object(o) => o.seekable(),
        _ => false,
    }
}

fn read_offset(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_in(&mut b, addr)?;
    let v = i64::from_le_bytes(b);
    if v < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(v as u64)
}

/// The output offset of a write through `f`'s own offset.
fn out_offset(f: &OpenFile) -> Result<u64, Errno> {
    if f.append() {
        file_size(f)
    } else {
        Ok(f.offset.load(Ordering::Relaxed))
    }
}

pub fn sendfile(out_fd: i32, in_fd: i32, offp: u64, count: u64) -> SysResult {
    let (inf, outf) = (get_file(in_fd)?, get_file(out_fd)?);
    if !seekable(&inf) {
        return Err(Errno::EINVAL);
    }
    if !outf.writable || !inf.readable {
        return Err(Errno::EBADF);
    }
    let mut in_off = if offp != 0 {
        read_offset(offp)?
    } else {
        inf.offset.load(Ordering::Relaxed)
    };
    let count = verify_area(in_off, count)?;
    let total = pump(&inf, &mut in_off, &outf, None, count)?;
    if offp != 0 {
        copy_out(offp, &in_off.to_le_bytes())?;
    } else {
        inf.offset.store(in_off, Ordering::Relaxed);
    }
    Ok(total as u64)
}

/// Moves up to `count` bytes from `inf` at `*in_off` to `outf` (at
/// `*out_off`, or its own offset when `None`); stops at end of input or
/// at a short write. Errors only if nothing moved.
fn pump(
    inf: &Arc<OpenFile>,
    in_off: &mut u64,
    outf: &Arc<OpenFile>,
    mut out_off: Option<&mut u64>,
    count: usize,
) -> Result<usize, Errno> {
    let mut buf = vec![0u8; CHUNK.min(count.max(1))];
    let mut total = 0usize;
    while total < count {
        let want = (count - total).min(buf.len());
        let got = match read_into(inf, *in_off, &mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        };
        let at = match &out_off {
            Some(o) => **o,
            None => out_offset(outf)?,
        };
        let put = match write_from(outf, at, &buf[..got]) {
            Ok(n) => n,
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        };
        match &mut out_off {
            Some(o) => **o += put as u64,
            None if seekable(outf) => {
                outf.offset.store(at + put as u64, Ordering::Relaxed);
            }
            None => {}
        }
        *in_off += put as u64;
        total += put;
        if put < got || got < want {
            break;
        }
    }
    Ok(total)
}

pub fn copy_file_range(
    in_fd: i32,
    off_in: u64,
    out_fd: i32,
    off_out: u64,
    len: u64,
    flags: u32,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    // At most MAX_RW_COUNT bytes per call, as Linux: offsets are below
    // 2^63, so `offset + len` cannot overflow (a huge len panicked in the
    // overlap check, fuzz seed 11).
    let len = len.min(super::fs::MAX_RW_COUNT);
    let (inf, outf) = (get_file(in_fd)?, get_file(out_fd)?);
    let (FileKind::Regular(di), FileKind::Regular(dout)) = (&inf.kind, &outf.kind) else {
        return Err(Errno::EINVAL);
    };
    if !inf.readable || !outf.writable || outf.append() {
        return Err(Errno::EBADF);
    }
    let mut ioff = if off_in != 0 {
        read_offset(off_in)?
    } else {
        inf.offset.load(Ordering::Relaxed)
    };
    let mut ooff = if off_out != 0 {
        read_offset(off_out)?
    } else {
        outf.offset.load(Ordering::Relaxed)
    };
    // Offsets must not wrap (Linux: EOVERFLOW), then at most MAX_RW_COUNT.
    let past_max = |off: u64| off.checked_add(len).is_none_or(|e| e > i64::MAX as u64);
    if past_max(ioff) || past_max(ooff) {
        return Err(Errno::EOVERFLOW);
    }
    if alloc::sync::Arc::ptr_eq(di, dout) && ioff < ooff + len && ooff < ioff + len {
        return Err(Errno::EINVAL);
    }
    let len = len.min(MAX_RW_COUNT);
    let total = pump(&inf, &mut ioff, &outf, Some(&mut ooff), len as usize)?;
    if off_in != 0 {
        copy_out(off_in, &ioff.to_le_bytes())?;
    } else {
        inf.offset.store(ioff, Ordering::Relaxed);
    }
    if off_out != 0 {
        copy_out(off_out, &ooff.to_le_bytes())?;
    } else {
        outf.offset.store(ooff, Ordering::Relaxed);
    }
    Ok(total as u64)
}

/// sync_file_range: any request to write or wait syncs the whole file (a
/// superset of the range, and of what `SYNC_FILE_RANGE_WRITE` alone
/// promises); flags 0 does nothing, as on Linux.
pub fn sync_file_range(fd: i32, off: i64, nbytes: i64, flags: u32) -> SysResult {
    const ALL: u32 = 1 | 2 | 4;
    if flags & !ALL != 0 || off < 0 || nbytes < 0 || off.checked_add(nbytes).is_none() {
        return Err(Errno::EINVAL);
    }
    let f = get_file(fd)?;
    match &f.kind {
        FileKind::Regular(d) => {
            if flags != 0 {
                d.mount.fsync(d).map_err(pc_err)?;
            }
            Ok(0)
        }
        FileKind::Directory(_) => Ok(0),
        _ => Err(Errno::ESPIPE),
    }
}
