//! File and directory system calls over the mounted TFS volumes and the
//! special tree: open/close, read and write (plain, positioned, vectored),
//! seek, stat family, truncate, fallocate, fsync, directory operations,
//! links, the working directory, fcntl/dup, ioctl, statfs.
//!
//! A path is first offered to the special tree (`crate::special::lookup`:
//! `/dev`, `/proc`, `/sys`); otherwise it is walked with `fs::walk::Walker`
//! across mount points, and the operation runs in the volume its walk ended
//! in (under the `fs` mutex the walk holds). Renames and hard links between
//! volumes fail with EXDEV; a mount point cannot be renamed or removed
//! (EBUSY); `stat` reports each volume's own `st_dev`, `statfs` its own
//! figures.
//!
//! Lock order (docs/ARCHITECTURE.md "Locks"): the fd table and the working
//! directory are read and released ([`start_dir`]) before any `fs` mutex
//! is taken, and a file refused by the fd table (EMFILE) is dropped after
//! the table's lock; neither lock is held while user memory is copied
//! (reads and writes go through `fs::Mount`, which copies with no lock
//! held); one volume's `fs` mutex at a time.
//!
//! Kernel-lock context, in the calling thread.

use super::{SysResult, copy_in, copy_out, user_string};
use crate::fs::walk::{Walker, fs_errno};
use crate::fs::{Loc, Mount, Tfs};
use crate::process::file::{self, Dst, FileKind, OpenFile, Src};
use crate::process::{self, current};
use crate::special::Target;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use cairn_tfs::{FileType, FsError, Ino};
use cairn_unix::abi::{
    DT_DIR, DT_LNK, DT_REG, Dirent, DirentWriter, FileStat, IOV_MAX, IoVec, STAT_SIZE, STATX_SIZE,
    decode_iovecs, encode_stat, encode_statx, makedev,
};
use cairn_unix::errno::Errno;
use cairn_unix::path::{Last, Namespace, NodeKind, PATH_MAX, Walk, walk};
use core::sync::atomic::Ordering;

pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
pub const AT_REMOVEDIR: i32 = 0x200;
pub const AT_SYMLINK_FOLLOW: i32 = 0x400;
pub const AT_EMPTY_PATH: i32 = 0x1000;
/// faccessat2: check with the effective ids (cairn has one user, root).
pub const AT_EACCESS: i32 = 0x200;
pub const AT_NO_AUTOMOUNT: i32 = 0x800;
/// statx's `AT_STATX_FORCE_SYNC` | `AT_STATX_DONT_SYNC` (both: `EINVAL`).
pub const AT_STATX_SYNC_TYPE: i32 = 0x6000;
/// The flags the stat family accepts (Linux's `vfs_statx`): anything
/// else is `EINVAL`.
const STAT_FLAGS: i32 = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE;

fn fs_err(e: FsError) -> Errno {
    fs_errno(e)
}

/// The errno of a TFS error.
pub fn tfs_err(e: FsError) -> Errno {
    fs_errno(e)
}

pub fn pc_err(e: cairn_pagecache::Errno) -> Errno {
    Errno::from_raw(e.0).unwrap_or(Errno::EIO)
}

/// The open file at `fd`.
pub fn get_file(fd: i32) -> Result<Arc<OpenFile>, Errno> {
    current()
        .fds
        .lock()
        .get(fd)
        .cloned()
        .map_err(|_| Errno::EBADF)
}

/// The directory a `*at` call starts from: (where, its path). Taken before
/// any `fs` mutex: the fd table and the working directory are never locked
/// under one (docs/ARCHITECTURE.md, lock order), and the descriptor's
/// reference is dropped here, before a walk (the last reference of a
/// regular file takes its volume's `fs` mutex to release the file).
/// Without a root filesystem there is no TFS path: `ENOENT`.
pub(super) fn start_dir(dirfd: i32) -> Result<(Loc, Vec<u8>), Errno> {
    crate::fs::root().ok_or(Errno::ENOENT)?;
    if dirfd == AT_FDCWD {
        let c = current().cwd.lock();
        return Ok((c.dir, c.path.as_bytes().to_vec()));
    }
    let f = get_file(dirfd)?;
    match f.kind {
        FileKind::Directory(loc) => Ok((loc, Vec::new())),
        _ => Err(Errno::ENOTDIR),
    }
}

/// Resolves `path` from `start` (a [`start_dir`]); the walker goes on
/// holding the volume the walk ended in.
pub(super) fn resolve(
    wk: &mut Walker,
    start: &(Loc, Vec<u8>),
    path: &[u8],
    follow: bool,
) -> Result<Walk<Loc>, Errno> {
    walk(wk, &start.0, &start.1, path, follow)
}

pub(super) fn existing(w: &Walk<Loc>) -> Result<(Loc, NodeKind), Errno> {
    w.target.ok_or(Errno::ENOENT)
}

fn name_of(w: &Walk<Loc>) -> Result<&[u8], Errno> {
    match &w.last {
        Last::Name(n) => Ok(n),
        Last::Root | Last::Dot | Last::DotDot => Err(Errno::EINVAL),
    }
}

pub fn openat(dirfd: i32, path: u64, flags: u32, _mode: u32) -> SysResult {
    let path = user_string(path, PATH_MAX)?;
    let follow = flags & file::O_NOFOLLOW == 0;
    let kind = match crate::special::lookup(dirfd, &path, follow) {
        None => open_tfs(dirfd, &path, flags, follow)?,
        Some(Err(e)) => return Err(e),
        Some(Ok(Target::Node(n))) => {
            if flags & file::O_CREAT != 0 && flags & file::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            crate::special::open(&n, flags)?
        }
        Some(Ok(Target::File(f))) => crate::special::proc::reopen(&f, flags)?,
        Some(Ok(Target::Tfs(p))) => open_tfs(AT_FDCWD, &p, flags, true)?,
    };
    let f = OpenFile::new(kind, flags);
    let r = current().fds.lock().alloc(f, flags & file::O_CLOEXEC != 0);
    // A refused file (EMFILE) is dropped here, after the fd table's lock:
    // its release takes its volume's `fs` mutex, which sleeps.
    r.map(|fd| fd as u64).map_err(|(e, _f)| e)
}

/// Kernel memory a new file, directory or symlink costs at most (its TFS
/// index entries and tuples, a pagecache node), for [`room_for_new_node`].
const NEW_NODE_BYTES: u64 = 16 * 1024;

/// TFS keeps every file's metadata in kernel memory: a new file,
/// directory or symlink is refused with ENOSPC (as on a volume out of
/// inodes) when it would take the kernel heaps below the metadata floor
/// (`heaps::global::room_for_metadata`), instead of exhausting memory.
pub fn room_for_new_node() -> Result<(), Errno> {
    if crate::heaps::global::room_for_metadata(NEW_NODE_BYTES) {
        Ok(())
    } else {
        Err(Errno::ENOSPC)
    }
}

/// Opens (or creates) `path` in the TFS volumes.
fn open_tfs(dirfd: i32, path: &[u8], flags: u32, follow: bool) -> Result<FileKind, Errno> {
    let start = start_dir(dirfd)?;
    let mut wk = Walker::new();
    let w = resolve(&mut wk, &start, path, follow)?;
    let (loc, created) = match w.target {
        Some(_) if flags & file::O_CREAT != 0 && flags & file::O_EXCL != 0 => {
            return Err(Errno::EEXIST);
        }
        Some((loc, _)) => (loc, false),
        None if flags & file::O_CREAT != 0 => {
            if w.trailing_slash {
                return Err(Errno::EISDIR);
            }
            let name = name_of(&w)?.to_vec();
            let dir = w.parent;
            room_for_new_node()?;
            let ino = wk.fs(dir.mount).create(dir.ino, &name).map_err(fs_err)?;
            (
                Loc {
                    mount: dir.mount,
                    ino,
                },
                true,
            )
        }
        None => return Err(Errno::ENOENT),
    };
    let st = wk.fs(loc.mount).stat(loc.ino).map_err(fs_err)?;
    let acc = flags & file::O_ACCMODE;
    crate::special::proc::remember_path(loc, w.canonical.clone());
    match st.kind {
        FileType::Directory => {
            if acc != 0 || flags & file::O_TRUNC != 0 {
                return Err(Errno::EISDIR);
            }
            Ok(FileKind::Directory(loc))
        }
        FileType::Symlink => Err(Errno::ELOOP),
        FileType::Regular => {
            if flags & file::O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            let m = loc.volume();
            if flags & file::O_TRUNC != 0 && acc != 0 && !created && st.size > 0 {
                wk.release();
                truncate_ino(m, loc.ino, 0)?;
            }
            Ok(FileKind::Regular(m.file(wk.fs(loc.mount), loc.ino)))
        }
    }
}

pub fn close(fd: i32) -> SysResult {
    let f = current().fds.lock().close(fd).map_err(|_| Errno::EBADF)?;
    closed(f);
    Ok(0)
}

/// A descriptor of `f` was closed (close, dup2/dup3 over it): the
/// process's record locks on the file go, then the reference (retired
/// while a lockless read may hold another: `lockless::retire`).
pub fn closed(f: Arc<OpenFile>) {
    crate::process::locks::closed(&f);
    super::lockless::retire(f);
}

fn read_at(f: &OpenFile, off: u64, buf: u64, len: usize) -> Result<usize, Errno> {
    if !f.readable {
        return Err(Errno::EBADF);
    }
    match &f.kind {
        FileKind::Regular(d) if f.direct() => d.mount.direct_read(d, off, buf, len).map_err(pc_err),
        FileKind::Regular(d) => d.mount.read(d, off, buf, len).map_err(pc_err),
        FileKind::Directory(_) => Err(Errno::EISDIR),
        FileKind::Console => Ok(0),
        FileKind::Object(o) => o.read(f, off, Dst::User(buf), len),
    }
}

fn write_at(f: &OpenFile, off: u64, buf: u64, len: usize) -> Result<usize, Errno> {
    if !f.writable {
        return Err(Errno::EBADF);
    }
    match &f.kind {
        FileKind::Regular(d) if f.direct() => {
            d.mount.direct_write(d, off, buf, len).map_err(pc_err)
        }
        FileKind::Regular(d) => d.mount.write(d, off, buf, len).map_err(pc_err),
        FileKind::Directory(_) => Err(Errno::EISDIR),
        FileKind::Object(o) => o.write(f, off, Src::User(buf), len),
        FileKind::Console => {
            let mut chunk = [0u8; 512];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(chunk.len());
                let got = crate::user::copy_from_user_prefix(&mut chunk[..n], buf + done as u64);
                if got == 0 {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EFAULT)
                    };
                }
                crate::console::write_bytes(&chunk[..got]);
                done += got;
                if got < n {
                    break;
                }
            }
            Ok(done)
        }
    }
}

/// The size of the file behind `f` (what `SEEK_END` counts from).
pub fn file_size(f: &OpenFile) -> Result<u64, Errno> {
    match &f.kind {
        FileKind::Object(o) => Ok(o.size()),
        _ => match f.loc() {
            Some(loc) => loc.volume().fs().length(loc.ino).map_err(fs_err),
            None => Ok(0),
        },
    }
}

/// Reads and writes move the description's offset.
fn moves_offset(f: &OpenFile) -> bool {
    match &f.kind {
        FileKind::Regular(_) => true,
        FileKind::Object(o) => o.seekable(),
        _ => false,
    }
}

/// Holds `f`'s offset for the call if reads and writes move it.
fn hold_offset(f: &OpenFile) -> Option<crate::sched::mutex::SleepMutexGuard<'_, ()>> {
    moves_offset(f).then(|| f.pos_lock.lock())
}

/// Most bytes one read or write moves (Linux's `MAX_RW_COUNT`: `INT_MAX`
/// rounded down to a page); a larger request is a short one.
pub const MAX_RW_COUNT: u64 = (i32::MAX as u64) & !0xfff;

/// Checks a read or write of `len` bytes at `off` before anything is done
/// (Linux's `rw_verify_area`): a negative offset, or one whose end would
/// pass the largest file offset, is EINVAL. Returns the length to move,
/// at most [`MAX_RW_COUNT`]. Every path into the filesystem's read and
/// write goes through here, so their offset arithmetic cannot overflow.
pub fn verify_area(off: u64, len: u64) -> Result<usize, Errno> {
    verify_area_inner(off, len)
}

/// [`verify_area`] for a read or write through the user buffer `buf`: a
/// buffer that leaves the user half is EFAULT first, as Linux's
/// `access_ok` in `vfs_read`/`vfs_write` (a write of `(size_t)-1` bytes),
/// after a negative offset (`pread64`'s own first check).
fn verify_buffer_area(buf: u64, off: u64, len: u64) -> Result<usize, Errno> {
    if (off as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    if !crate::user::user_range_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    verify_area_inner(off, len)
}

fn verify_area_inner(off: u64, len: u64) -> Result<usize, Errno> {
    if (off as i64) < 0 || off.checked_add(len).is_none_or(|end| end > i64::MAX as u64) {
        return Err(Errno::EINVAL);
    }
    Ok(len.min(MAX_RW_COUNT) as usize)
}

pub fn read(fd: i32, buf: u64, len: u64) -> SysResult {
    read_file(&*get_file(fd)?, buf, len)
}

/// read(2) on an open file, at (and moving) its offset.
pub fn read_file(f: &OpenFile, buf: u64, len: u64) -> SysResult {
    let _pos = hold_offset(f);
    let off = f.offset.load(Ordering::Relaxed);
    let len = verify_buffer_area(buf, off, len)?;
    let n = read_at(f, off, buf, len)?;
    if moves_offset(f) {
        f.offset
            .store(off.saturating_add(n as u64), Ordering::Relaxed);
    }
    Ok(n as u64)
}

pub fn write(fd: i32, buf: u64, len: u64) -> SysResult {
    write_file(&*get_file(fd)?, buf, len)
}

/// write(2) on an open file, at (and moving) its offset.
pub fn write_file(f: &OpenFile, buf: u64, len: u64) -> SysResult {
    let _pos = hold_offset(f);
    let off = if f.append() {
        file_size(f)?
    } else {
        f.offset.load(Ordering::Relaxed)
    };
    let len = verify_buffer_area(buf, off, len)?;
    let n = write_at(f, off, buf, len)?;
    if moves_offset(f) {
        f.offset
            .store(off.saturating_add(n as u64), Ordering::Relaxed);
    }
    Ok(n as u64)
}

/// Positioned I/O needs a seekable file (`ESPIPE` for pipes and such).
fn positioned(fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = get_file(fd)?;
    seekable(&f)?;
    Ok(f)
}

fn seekable(f: &OpenFile) -> Result<(), Errno> {
    match &f.kind {
        FileKind::Object(o) if !o.seekable() => Err(Errno::ESPIPE),
        _ => Ok(()),
    }
}

pub fn pread(fd: i32, buf: u64, len: u64, off: u64) -> SysResult {
    let len = verify_buffer_area(buf, off, len)?;
    let f = positioned(fd)?;
    Ok(read_at(&f, off, buf, len)? as u64)
}

/// pread(2) on an open file.
pub fn pread_file(f: &OpenFile, buf: u64, len: u64, off: u64) -> SysResult {
    let len = verify_buffer_area(buf, off, len)?;
    seekable(f)?;
    Ok(read_at(f, off, buf, len)? as u64)
}

pub fn pwrite(fd: i32, buf: u64, len: u64, off: u64) -> SysResult {
    let len = verify_buffer_area(buf, off, len)?;
    let f = positioned(fd)?;
    Ok(write_at(&f, off, buf, len)? as u64)
}

/// pwrite(2) on an open file.
pub fn pwrite_file(f: &OpenFile, buf: u64, len: u64, off: u64) -> SysResult {
    let len = verify_buffer_area(buf, off, len)?;
    seekable(f)?;
    Ok(write_at(f, off, buf, len)? as u64)
}

pub(crate) fn iovecs(iov: u64, count: u64) -> Result<Vec<IoVec>, Errno> {
    if count as usize > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; count as usize * IoVec::SIZE];
    copy_in(&mut raw, iov)?;
    let mut vecs = decode_iovecs(&raw, count as usize)?;
    // At most MAX_RW_COUNT bytes in all, as Linux (the rest is a short
    // transfer): what a call returns then always fits the offset.
    let mut left = MAX_RW_COUNT;
    for v in &mut vecs {
        v.len = v.len.min(left);
        left -= v.len;
    }
    Ok(vecs)
}

pub fn readv(fd: i32, iov: u64, count: u64, at: Option<u64>) -> SysResult {
    readv_file(&*get_file(fd)?, iov, count, at)
}

/// readv(2) (`at`: preadv(2)) on an open file.
pub fn readv_file(f: &OpenFile, iov: u64, count: u64, at: Option<u64>) -> SysResult {
    if at.is_some() {
        seekable(f)?;
    }
    let vecs = iovecs(iov, count)?;
    let _pos = if at.is_none() { hold_offset(f) } else { None };
    let mut off = at.unwrap_or_else(|| f.offset.load(Ordering::Relaxed));
    let mut left = verify_area(off, vecs.iter().map(|v| v.len).sum())? as u64;
    let mut total = 0u64;
    for v in vecs {
        let want = v.len.min(left);
        left -= want;
        let n = match read_at(f, off, v.base, want as usize) {
            Ok(n) => n as u64,
            Err(_) if total > 0 => break,
            Err(e) => return Err(e),
        };
        total += n;
        off += n;
        if n < v.len || left == 0 {
            break;
        }
    }
    if at.is_none() && moves_offset(f) {
        f.offset.store(off, Ordering::Relaxed);
    }
    Ok(total)
}

pub fn writev(fd: i32, iov: u64, count: u64, at: Option<u64>) -> SysResult {
    writev_file(&*get_file(fd)?, iov, count, at)
}

/// writev(2) (`at`: pwritev(2)) on an open file.
pub fn writev_file(f: &OpenFile, iov: u64, count: u64, at: Option<u64>) -> SysResult {
    if at.is_some() {
        seekable(f)?;
    }
    let vecs = iovecs(iov, count)?;
    let _pos = if at.is_none() { hold_offset(f) } else { None };
    let mut off = match at {
        Some(o) => o,
        None if f.append() => file_size(f)?,
        None => f.offset.load(Ordering::Relaxed),
    };
    let mut left = verify_area(off, vecs.iter().map(|v| v.len).sum())? as u64;
    let mut total = 0u64;
    for v in vecs {
        let want = v.len.min(left);
        left -= want;
        // A fault (or error) after some bytes were written ends the call
        // with the count so far, as Linux; before any, it is the result.
        let n = match write_at(f, off, v.base, want as usize) {
            Ok(n) => n as u64,
            Err(_) if total > 0 => break,
            Err(e) => return Err(e),
        };
        total += n;
        off += n;
        if n < v.len || left == 0 {
            break;
        }
    }
    if at.is_none() && moves_offset(f) {
        f.offset.store(off, Ordering::Relaxed);
    }
    Ok(total)
}

/// preadv2 / pwritev2: offset -1 uses (and moves) the file offset;
/// `RWF_HIPRI` is a hint; `RWF_DSYNC`/`RWF_SYNC` sync the file after a
/// write; `RWF_APPEND` writes at the end; `RWF_NOWAIT` is refused
/// (`EOPNOTSUPP`: cairn cannot promise not to wait).
pub fn rw_v2(fd: i32, iov: u64, count: u64, off: u64, flags: u32, write: bool) -> SysResult {
    const RWF_HIPRI: u32 = 1;
    const RWF_DSYNC: u32 = 2;
    const RWF_SYNC: u32 = 4;
    const RWF_NOWAIT: u32 = 8;
    const RWF_APPEND: u32 = 16;
    if flags & !(RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND) != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if flags & RWF_NOWAIT != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let at = if off as i64 == -1 {
        None
    } else if (off as i64) < 0 {
        return Err(Errno::EINVAL);
    } else {
        Some(off)
    };
    if !write {
        return readv(fd, iov, count, at);
    }
    let at = if flags & RWF_APPEND != 0 {
        Some(file_size(&*get_file(fd)?)?)
    } else {
        at
    };
    let n = writev(fd, iov, count, at)?;
    if flags & (RWF_DSYNC | RWF_SYNC) != 0 {
        fsync(fd)?;
    }
    Ok(n)
}

pub fn lseek(fd: i32, off: i64, whence: i32) -> SysResult {
    let f = positioned(fd)?;
    let _pos = hold_offset(&f);
    let base = match whence {
        0 => 0,
        1 => f.offset.load(Ordering::Relaxed) as i64,
        2 => file_size(&f)? as i64,
        3 | 4 => {
            // SEEK_DATA / SEEK_HOLE: from the extents for TFS files; any
            // other seekable file is all data.
            let pos = match &f.kind {
                FileKind::Regular(d) => seek_data_hole(d, off, whence == 4)?,
                _ => {
                    let len = file_size(&f)? as i64;
                    if off >= len || off < 0 {
                        return Err(Errno::ENXIO);
                    }
                    if whence == 3 { off as u64 } else { len as u64 }
                }
            };
            f.offset.store(pos, Ordering::Relaxed);
            return Ok(pos);
        }
        _ => return Err(Errno::EINVAL),
    };
    let pos = base
        .checked_add(off)
        .filter(|p| *p >= 0)
        .ok_or(Errno::EINVAL)?;
    f.offset.store(pos as u64, Ordering::Relaxed);
    Ok(pos as u64)
}

/// The `st_dev` of volume `mount` (the root is 8:0, as before volumes).
pub fn dev_of(mount: u16) -> u64 {
    makedev(8, 16 * u32::from(mount))
}

/// `stat` of `loc`, with a write's time not yet stamped in TFS
/// (`FileData::note_write`) as its mtime and ctime.
fn stat_of(fs: &Tfs, loc: Loc) -> Result<FileStat, Errno> {
    let st = stat_tfs(fs, loc)?;
    Ok(crate::fs::with_write_time(
        st,
        loc.volume().pending_write_time(loc.ino),
    ))
}

fn stat_tfs(fs: &Tfs, loc: Loc) -> Result<FileStat, Errno> {
    let st = fs.stat(loc.ino).map_err(fs_err)?;
    let (as_, an) = st.atime.secs_nanos();
    let (ms, mn) = st.mtime.secs_nanos();
    Ok(FileStat {
        dev: dev_of(loc.mount),
        ino: u64::from(loc.ino.0) + 1,
        nlink: u64::from(st.nlink),
        mode: st.mode,
        uid: 0,
        gid: 0,
        rdev: 0,
        size: st.size as i64,
        blksize: 4096,
        blocks: st.blocks as i64,
        atime: (as_ as i64, an),
        mtime: (ms as i64, mn),
        ctime: (ms as i64, mn),
        btime: None,
    })
}

fn console_stat() -> FileStat {
    FileStat {
        dev: makedev(0, 5),
        ino: 1,
        nlink: 1,
        mode: 0o20620,
        uid: 0,
        gid: 0,
        rdev: makedev(136, 0),
        size: 0,
        blksize: 1024,
        blocks: 0,
        atime: (0, 0),
        mtime: (0, 0),
        ctime: (0, 0),
        btime: None,
    }
}

fn stat_loc(loc: Loc) -> Result<FileStat, Errno> {
    stat_of(&loc.volume().fs(), loc)
}

fn stat_file(f: &OpenFile) -> Result<FileStat, Errno> {
    match (&f.kind, f.loc()) {
        (FileKind::Object(o), _) => Ok(o.stat()),
        (FileKind::Regular(d), _) => {
            // Remembered for the lockless fstat with the generation it
            // was read at (`FileData::remembered_stat`).
            let fs = d.mount.fs();
            let generation = d.mount.fs_generation();
            let st = stat_tfs(&fs, d.loc())?;
            drop(fs);
            d.remember_stat(generation, st);
            Ok(d.with_pending_times(st))
        }
        (_, Some(loc)) => stat_loc(loc),
        (_, None) => Ok(console_stat()),
    }
}

fn stat_fd(fd: i32) -> Result<FileStat, Errno> {
    stat_file(&*get_file(fd)?)
}

fn stat_path(dirfd: i32, path: u64, flags: i32) -> Result<FileStat, Errno> {
    let p = user_string(path, PATH_MAX)?;
    if p.is_empty() {
        if flags & AT_EMPTY_PATH != 0 {
            return if dirfd == AT_FDCWD {
                crate::fs::root().ok_or(Errno::ENOENT)?;
                let dir = current().cwd.lock().dir;
                stat_loc(dir)
            } else {
                stat_fd(dirfd)
            };
        }
        return Err(Errno::ENOENT);
    }
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    let (dirfd, p) = match crate::special::lookup(dirfd, &p, follow) {
        None => (dirfd, p),
        Some(Err(e)) => return Err(e),
        Some(Ok(Target::Node(n))) => return Ok(n.node.stat()),
        Some(Ok(Target::File(f))) => return stat_file(&f),
        Some(Ok(Target::Tfs(p))) => (AT_FDCWD, p),
    };
    let start = start_dir(dirfd)?;
    let mut wk = Walker::new();
    let w = resolve(&mut wk, &start, &p, follow)?;
    let (loc, _) = existing(&w)?;
    stat_of(wk.fs(loc.mount), loc)
}

pub fn fstat(fd: i32, out: u64) -> SysResult {
    let st = stat_fd(fd)?;
    let mut b = [0u8; STAT_SIZE];
    encode_stat(&st, &mut b)?;
    copy_out(out, &b)?;
    Ok(0)
}

pub fn fstatat(dirfd: i32, path: u64, out: u64, flags: i32) -> SysResult {
    if flags & !STAT_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let st = stat_path(dirfd, path, flags)?;
    let mut b = [0u8; STAT_SIZE];
    encode_stat(&st, &mut b)?;
    copy_out(out, &b)?;
    Ok(0)
}

pub fn statx(dirfd: i32, path: u64, flags: i32, mask: u32, out: u64) -> SysResult {
    const STATX_RESERVED: u32 = 0x8000_0000;
    if flags & !STAT_FLAGS != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || mask & STATX_RESERVED != 0
    {
        return Err(Errno::EINVAL);
    }
    let st = stat_path(dirfd, path, flags)?;
    let mut b = [0u8; STATX_SIZE];
    encode_statx(&st, mask, &mut b)?;
    // Direct I/O alignment of TFS regular files (the special files have
    // major 1, the console none).
    const S_IFMT: u32 = 0o170000;
    const S_IFREG: u32 = 0o100000;
    if mask & cairn_unix::abi::STATX_DIOALIGN != 0
        && st.mode & S_IFMT == S_IFREG
        && cairn_unix::abi::major(st.dev) == 8
    {
        let a = crate::fs::direct::DIO_ALIGN as u32;
        cairn_unix::abi::statx_set_dio_align(&mut b, a, a);
    }
    copy_out(out, &b)?;
    Ok(0)
}

/// Truncates `ino` to `len`: the cached pages past the end go first (no
/// writeback can then touch storage the filesystem frees), then TFS.
fn truncate_ino(m: &'static Mount, ino: Ino, len: u64) -> Result<(), Errno> {
    let file = m.file(&mut m.fs(), ino);
    m.truncate(&file, len).map_err(pc_err)
}

pub fn ftruncate(fd: i32, len: i64) -> SysResult {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let f = get_file(fd)?;
    if !f.writable {
        return Err(Errno::EINVAL);
    }
    match f.kind {
        FileKind::Regular(ref d) => truncate_ino(d.mount, d.ino, len as u64).map(|_| 0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn truncate_path(path: u64, len: i64) -> SysResult {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let p = user_string(path, PATH_MAX)?;
    let start = start_dir(AT_FDCWD)?;
    let (loc, kind) = {
        let mut wk = Walker::new();
        existing(&resolve(&mut wk, &start, &p, true)?)?
    };
    if kind == NodeKind::Directory {
        return Err(Errno::EISDIR);
    }
    truncate_ino(loc.volume(), loc.ino, len as u64).map(|_| 0)
}

/// `fallocate` modes (Linux's `FALLOC_FL_*`).
const FALLOC_KEEP_SIZE: i32 = 0x01;
const FALLOC_PUNCH_HOLE: i32 = 0x02;
const FALLOC_ZERO_RANGE: i32 = 0x10;

/// fallocate: mode 0 and `KEEP_SIZE` preallocate (uninited extents);
/// `PUNCH_HOLE|KEEP_SIZE` frees the range (the file keeps its length);
/// `ZERO_RANGE` (with or without `KEEP_SIZE`) makes the range read as
/// zeros, its whole sectors preallocated. Other modes are `EOPNOTSUPP`,
/// as on a Linux filesystem without them (a punch without `KEEP_SIZE`
/// too, as Linux's `vfs_fallocate`).
pub fn fallocate(fd: i32, mode: i32, off: u64, len: u64) -> SysResult {
    fallocate_args(mode, off, len)?;
    fallocate_file(&*get_file(fd)?, mode, off, len)
}

/// fallocate(2) on an open file.
pub fn fallocate_file(f: &OpenFile, mode: i32, off: u64, len: u64) -> SysResult {
    fallocate_args(mode, off, len)?;
    if !f.writable {
        return Err(Errno::EBADF);
    }
    let FileKind::Regular(ref d) = f.kind else {
        return Err(Errno::ENODEV);
    };
    fallocate_regular(d, mode, off, len)
}

/// fallocate's argument checks, made before the descriptor is looked up.
fn fallocate_args(mode: i32, off: u64, len: u64) -> Result<(), Errno> {
    if (off as i64) < 0 || (len as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let supported = [
        0,
        FALLOC_KEEP_SIZE,
        FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE,
        FALLOC_ZERO_RANGE,
        FALLOC_ZERO_RANGE | FALLOC_KEEP_SIZE,
    ];
    if !supported.contains(&mode) {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(())
}

fn fallocate_regular(d: &Arc<crate::fs::FileData>, mode: i32, off: u64, len: u64) -> SysResult {
    let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
    if (end as i64) < 0 {
        return Err(Errno::EFBIG);
    }
    let keep_size = mode & FALLOC_KEEP_SIZE != 0;
    if mode & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE) != 0 {
        zero_range(d, off, end)?;
    }
    if mode & FALLOC_PUNCH_HOLE != 0 {
        return Ok(0);
    }
    let r = d
        .mount
        .fs()
        .fallocate(d.ino, off, len, keep_size)
        .map_err(fs_err);
    d.node.length_changed();
    r.map(|()| 0)
}

/// Makes bytes `[off, end)` of `d` read as zeros with their whole pages'
/// storage freed: the partial pages at the edges are zeroed by writing
/// zeros (within the file's length only: the length does not change), the
/// whole pages between are dropped from the cache and punched out of TFS
/// ([`Mount::punch`]). A mapping of a punched page keeps seeing the old
/// page until it is unmapped.
fn zero_range(d: &crate::fs::FileData, off: u64, end: u64) -> Result<(), Errno> {
    const PS: u64 = cairn_pagecache::PAGE_SIZE as u64;
    // Nothing lies past TFS's largest file (a huge punch is clamped).
    const MAX_BYTES: u64 = 1 << 62;
    let end = end.min(MAX_BYTES);
    let size = d.mount.fs().length(d.ino).map_err(fs_err)?;
    let first_whole = off.next_multiple_of(PS);
    let end_whole = end / PS * PS;
    let zero = |from: u64, to: u64| -> Result<(), Errno> {
        let to = to.min(size);
        if from >= to {
            return Ok(());
        }
        let zeros = vec![0u8; (to - from) as usize];
        d.mount
            .write_kernel(d, from, &zeros)
            .map(|_| ())
            .map_err(pc_err)
    };
    if first_whole >= end_whole {
        return zero(off, end);
    }
    zero(off, first_whole)?;
    zero(end_whole, end)?;
    d.mount.punch(d, first_whole, end_whole).map_err(pc_err)
}

/// `SEEK_DATA` (`hole` false) or `SEEK_HOLE` (`hole` true) from `off` in
/// `d`, from TFS's extents: written extents are data, holes are holes, and
/// preallocated (uninited) extents are data only where the pagecache holds
/// a page (written and not yet written back, or read), as Linux's
/// filesystems do for unwritten extents. `ENXIO` at or past the end (and
/// for `SEEK_DATA` with no data after `off`); the end of the file is a hole.
fn seek_data_hole(d: &crate::fs::FileData, off: i64, hole: bool) -> Result<u64, Errno> {
    const PS: u64 = cairn_pagecache::PAGE_SIZE as u64;
    let (size, maps) = {
        let fs = d.mount.fs();
        let size = fs.length(d.ino).map_err(fs_err)?;
        if off < 0 || off as u64 >= size {
            return Err(Errno::ENXIO);
        }
        let off = off as u64;
        (size, fs.map(d.ino, off, size - off).map_err(fs_err)?)
    };
    let off = off as u64;
    // The pages the cache holds (only asked for when a preallocated
    // extent needs them).
    let mut cached: Option<alloc::collections::BTreeSet<u64>> = None;
    for m in maps {
        let (from, to) = (m.offset.max(off), (m.offset + m.len).min(size));
        if from >= to {
            continue;
        }
        match m.kind {
            cairn_tfs::MappingKind::Disk { .. } if !hole => return Ok(from),
            cairn_tfs::MappingKind::Hole if hole => return Ok(from),
            cairn_tfs::MappingKind::Uninited { .. } => {
                let pages = cached.get_or_insert_with(|| {
                    d.node
                        .page_infos()
                        .into_iter()
                        .filter(|(_, p)| p.state != cairn_pagecache::PageState::Free)
                        .map(|(i, _)| i)
                        .collect()
                });
                let (first, last) = (from / PS, (to - 1) / PS);
                if hole {
                    // The first page of the run the cache does not hold.
                    let mut i = first;
                    for &c in pages.range(first..=last) {
                        if c != i {
                            break;
                        }
                        i += 1;
                    }
                    if i <= last {
                        return Ok((i * PS).max(from));
                    }
                } else if let Some(&c) = pages.range(first..=last).next() {
                    return Ok((c * PS).max(from));
                }
            }
            _ => {}
        }
    }
    if hole { Ok(size) } else { Err(Errno::ENXIO) }
}

/// `posix_fadvise`/`fadvise64`: `POSIX_FADV_DONTNEED` starts writeback of
/// the file's dirty pages (not waited for) and drops the clean, unmapped,
/// unused pages wholly inside the range, as Linux does; the next read of
/// them goes to the device. The other advice is checked and ignored (the
/// pagecache does its own readahead). `ESPIPE` for pipes, `EINVAL` for
/// unknown advice or a negative length.
pub fn fadvise64(fd: i32, off: i64, len: i64, advice: i32) -> SysResult {
    const DONTNEED: i32 = 4;
    const PS: u64 = cairn_pagecache::PAGE_SIZE as u64;
    let f = get_file(fd)?;
    if matches!(f.kind, FileKind::Object(ref o) if !o.seekable()) {
        return Err(Errno::ESPIPE);
    }
    if !(0..=5).contains(&advice) || len < 0 {
        return Err(Errno::EINVAL);
    }
    let FileKind::Regular(ref d) = f.kind else {
        return Ok(0);
    };
    if advice == DONTNEED {
        let off = off.max(0) as u64;
        // len 0: to the end of the file.
        let end = if len == 0 {
            u64::MAX
        } else {
            off.saturating_add(len as u64)
        };
        d.node.start_writeback();
        // Pages partly outside the range stay (Linux rounds inward too).
        let first = off.div_ceil(PS);
        let last = if end == u64::MAX { u64::MAX } else { end / PS };
        d.node.invalidate_clean_range(first, last);
    }
    Ok(0)
}

pub fn fsync(fd: i32) -> SysResult {
    fsync_file(&*get_file(fd)?)
}

/// fsync(2) on an open file.
pub fn fsync_file(f: &OpenFile) -> SysResult {
    match f.kind {
        FileKind::Regular(ref d) => d.mount.fsync(d).map(|_| 0).map_err(pc_err),
        FileKind::Directory(loc) => loc.volume().sync().map(|_| 0).map_err(pc_err),
        FileKind::Console => Ok(0),
        FileKind::Object(_) => Err(Errno::EINVAL),
    }
}

/// sync(): every volume.
pub fn sync() -> Result<(), Errno> {
    crate::fs::sync_all().map_err(pc_err)
}

/// syncfs(fd): the volume `fd` is on (every volume for the console and
/// the special files).
pub fn syncfs(fd: i32) -> SysResult {
    match get_file(fd)?.loc() {
        Some(loc) => loc.volume().sync().map_err(pc_err)?,
        None => sync()?,
    }
    Ok(0)
}

pub fn mkdirat(dirfd: i32, path: u64, _mode: u32) -> SysResult {
    let p = user_string(path, PATH_MAX)?;
    let start = start_dir(dirfd)?;
    let mut wk = Walker::new();
    let w = resolve(&mut wk, &start, &p, false)?;
    if w.target.is_some() {
        return Err(Errno::EEXIST);
    }
    let name = name_of(&w)?.to_vec();
    room_for_new_node()?;
    wk.fs(w.parent.mount)
        .mkdir(w.parent.ino, &name)
        .map_err(fs_err)?;
    Ok(0)
}

pub fn unlinkat(dirfd: i32, path: u64, flags: i32) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let p = user_string(path, PATH_MAX)?;
    // An AF_UNIX socket's filesystem name lives in the socket name table
    // only (`ipc::unix`): unlinking it removes it.
    if flags == 0 && dirfd == AT_FDCWD && crate::ipc::unix::unlink_name(&p) {
        return Ok(0);
    }
    let start = start_dir(dirfd)?;
    let mut wk = Walker::new();
    let w = resolve(&mut wk, &start, &p, false)?;
    let (target, kind) = existing(&w)?;
    let name = name_of(&w)?.to_vec();
    if target.is_mount_point() {
        return Err(Errno::EBUSY);
    }
    let fs = wk.fs(w.parent.mount);
    if flags & AT_REMOVEDIR != 0 {
        if kind != NodeKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        fs.rmdir(w.parent.ino, &name).map_err(fs_err)?;
    } else {
        if kind == NodeKind::Directory {
            return Err(Errno::EISDIR);
        }
        fs.unlink(w.parent.ino, &name).map_err(fs_err)?;
        // Its last name may be gone: a file nobody holds is reaped now
        // (its dirty pages are garbage, never written back).
        wk.release();
        target.volume().reap(target.ino, 0);
    }
    Ok(0)
}

pub fn renameat2(olddir: i32, old: u64, newdir: i32, new: u64, flags: u32) -> SysResult {
    const NOREPLACE: u32 = 1;
    const EXCHANGE: u32 = 2;
    // RENAME_WHITEOUT (4) and anything else: EINVAL, as on a Linux
    // filesystem without whiteouts; NOREPLACE with EXCHANGE is EINVAL.
    if flags & !(NOREPLACE | EXCHANGE) != 0 || flags == NOREPLACE | EXCHANGE {
        return Err(Errno::EINVAL);
    }
    let (op, np) = (user_string(old, PATH_MAX)?, user_string(new, PATH_MAX)?);
    let (old_start, new_start) = (start_dir(olddir)?, start_dir(newdir)?);
    let mut wk = Walker::new();
    let wo = resolve(&mut wk, &old_start, &op, false)?;
    let (from, _) = existing(&wo)?;
    let wn = resolve(&mut wk, &new_start, &np, false)?;
    if flags & NOREPLACE != 0 && wn.target.is_some() {
        return Err(Errno::EEXIST);
    }
    if flags & EXCHANGE != 0 && wn.target.is_none() {
        return Err(Errno::ENOENT);
    }
    let (on, nn) = (name_of(&wo)?.to_vec(), name_of(&wn)?.to_vec());
    if from.is_mount_point() || wn.target.is_some_and(|(t, _)| t.is_mount_point()) {
        return Err(Errno::EBUSY);
    }
    if wo.parent.mount != wn.parent.mount {
        return Err(Errno::EXDEV);
    }
    if flags & EXCHANGE != 0 {
        // Both names stay: nothing loses its last name.
        wk.fs(wo.parent.mount)
            .exchange(wo.parent.ino, &on, wn.parent.ino, &nn)
            .map_err(fs_err)?;
        return Ok(0);
    }
    wk.fs(wo.parent.mount)
        .rename(wo.parent.ino, &on, wn.parent.ino, &nn)
        .map_err(fs_err)?;
    // A file renamed over may have lost its last name: reaped if unheld.
    if let Some((replaced, _)) = wn.target {
        wk.release();
        replaced.volume().reap(replaced.ino, 0);
    }
    Ok(0)
}

pub fn linkat(olddir: i32, old: u64, newdir: i32, new: u64, flags: i32) -> SysResult {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let (op, np) = (user_string(old, PATH_MAX)?, user_string(new, PATH_MAX)?);
    let (old_start, new_start) = (start_dir(olddir)?, start_dir(newdir)?);
    let mut wk = Walker::new();
    let wo = resolve(&mut wk, &old_start, &op, flags & AT_SYMLINK_FOLLOW != 0)?;
    let (from, kind) = existing(&wo)?;
    if kind == NodeKind::Directory {
        return Err(Errno::EPERM);
    }
    let wn = resolve(&mut wk, &new_start, &np, false)?;
    if wn.target.is_some() {
        return Err(Errno::EEXIST);
    }
    let nn = name_of(&wn)?.to_vec();
    if from.mount != wn.parent.mount {
        return Err(Errno::EXDEV);
    }
    wk.fs(from.mount)
        .link(from.ino, wn.parent.ino, &nn)
        .map_err(fs_err)?;
    Ok(0)
}

pub fn symlinkat(target: u64, newdir: i32, new: u64) -> SysResult {
    let (t, np) = (user_string(target, PATH_MAX)?, user_string(new, PATH_MAX)?);
    let start = start_dir(newdir)?;
    let mut wk = Walker::new();
    let wn = resolve(&mut wk, &start, &np, false)?;
    if wn.target.is_some() {
        return Err(Errno::EEXIST);
    }
    let nn = name_of(&wn)?.to_vec();
    room_for_new_node()?;
    wk.fs(wn.parent.mount)
        .symlink(wn.parent.ino, &nn, &t)
        .map_err(fs_err)?;
    Ok(0)
}

pub fn readlinkat(dirfd: i32, path: u64, buf: u64, len: u64) -> SysResult {
    let p = user_string(path, PATH_MAX)?;
    let (dirfd, p) = match crate::special::lookup(dirfd, &p, false) {
        None => (dirfd, p),
        Some(Err(e)) => return Err(e),
        Some(Ok(Target::Node(n))) => {
            let target = n.node.readlink().ok_or(Errno::EINVAL)?;
            let k = target.len().min(len as usize);
            copy_out(buf, &target[..k])?;
            return Ok(k as u64);
        }
        Some(Ok(Target::File(_))) => return Err(Errno::EINVAL),
        Some(Ok(Target::Tfs(p))) => (AT_FDCWD, p),
    };
    let start = start_dir(dirfd)?;
    let target = {
        let mut wk = Walker::new();
        let w = resolve(&mut wk, &start, &p, false)?;
        let (loc, kind) = existing(&w)?;
        if kind != NodeKind::Symlink {
            return Err(Errno::EINVAL);
        }
        wk.read_link(&loc)?
    };
    let n = target.len().min(len as usize);
    copy_out(buf, &target[..n])?;
    Ok(n as u64)
}

/// access, faccessat (`flags` 0) and faccessat2: whether `path` exists
/// (cairn's one user is root and TFS keeps no modes, so every access is
/// allowed). `EINVAL` for a mode beyond `R_OK|W_OK|X_OK` or flags beyond
/// `AT_EACCESS|AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH`, as Linux.
pub fn faccessat(dirfd: i32, path: u64, mode: i32, flags: i32) -> SysResult {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    stat_path(dirfd, path, flags & !AT_EACCESS).map(|_| 0)
}

/// A directory entry: inode number, `DT_*`, name.
type Entry = (u64, u8, Vec<u8>);

pub fn getdents64(fd: i32, buf: u64, len: u64) -> SysResult {
    getdents_common(fd, buf, len, false)
}

/// The legacy getdents: `struct linux_dirent`, `d_type` in the record's
/// last byte.
pub fn getdents(fd: i32, buf: u64, len: u64) -> SysResult {
    getdents_common(fd, buf, len, true)
}

fn getdents_common(fd: i32, buf: u64, len: u64, legacy: bool) -> SysResult {
    let f = get_file(fd)?;
    // (inode, type, name) of every entry but "." and "..", and the inode
    // numbers of those two.
    let (entries, this, parent): (Vec<Entry>, u64, u64) = match &f.kind {
        FileKind::Directory(dir) => {
            let mut wk = Walker::new();
            let list = wk.fs(dir.mount).readdir(dir.ino).map_err(fs_err)?;
            let parent = wk.parent(dir)?;
            let entries = list
                .into_iter()
                .map(|e| {
                    let kind = match e.kind {
                        FileType::Directory => DT_DIR,
                        FileType::Symlink => DT_LNK,
                        FileType::Regular => DT_REG,
                    };
                    (u64::from(e.ino.0) + 1, kind, e.name)
                })
                .collect();
            (
                entries,
                u64::from(dir.ino.0) + 1,
                u64::from(parent.ino.0) + 1,
            )
        }
        FileKind::Object(o) => {
            let list = o.readdir().ok_or(Errno::ENOTDIR)?;
            let ino = o.stat().ino;
            let entries = list.into_iter().map(|e| (e.ino, e.kind, e.name)).collect();
            (entries, ino, ino)
        }
        _ => return Err(Errno::ENOTDIR),
    };
    let pos = f.offset.load(Ordering::Relaxed) as usize;
    let mut out = vec![0u8; (len as usize).min(64 * 1024)];
    let mut w = if legacy {
        DirentWriter::legacy(&mut out)
    } else {
        DirentWriter::new(&mut out)
    };
    // Positions: 0 ".", 1 "..", then entry k at k + 2.
    let mut k = pos;
    loop {
        let (ino, kind, name): (u64, u8, &[u8]) = match k {
            0 => (this, DT_DIR, b"."),
            1 => (parent, DT_DIR, b".."),
            _ => match entries.get(k - 2) {
                Some(e) => (e.0, e.1, &e.2),
                None => break,
            },
        };
        let d = Dirent {
            ino,
            next: (k + 1) as i64,
            kind,
            name,
        };
        // A name no dirent can carry (over DIRENT_NAME_LIMIT, or with NUL
        // or '/': a damaged image) is left out (`Err`); the listing goes on
        // past it.
        if let Ok(false) = w.push(&d) {
            break;
        }
        k += 1;
    }
    let (n, resume) = w.finish()?;
    if let Some(r) = resume {
        f.offset.store(r as u64, Ordering::Relaxed);
    }
    copy_out(buf, &out[..n])?;
    Ok(n as u64)
}

pub fn getcwd(buf: u64, len: u64) -> SysResult {
    let path = current().cwd.lock().path.clone();
    let need = path.len() + 1;
    if (len as usize) < need {
        return Err(Errno::ERANGE);
    }
    let mut b = path.into_bytes();
    b.push(0);
    copy_out(buf, &b)?;
    Ok(need as u64)
}

pub fn chdir(path: u64) -> SysResult {
    let p = user_string(path, PATH_MAX)?;
    let start = start_dir(AT_FDCWD)?;
    let w = resolve(&mut Walker::new(), &start, &p, true)?;
    let (dir, kind) = existing(&w)?;
    if kind != NodeKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    let path = alloc::string::String::from_utf8_lossy(&w.canonical).into_owned();
    *current().cwd.lock() = process::Cwd { dir, path };
    Ok(0)
}

pub fn fchdir(fd: i32) -> SysResult {
    let f = get_file(fd)?;
    let FileKind::Directory(dir) = f.kind else {
        // Special directories cannot be the working directory.
        return Err(Errno::ENOTDIR);
    };
    drop(f);
    // The path goes with the directory (getcwd, relative special paths).
    let path = Walker::new().path_of(dir)?;
    let path = alloc::string::String::from_utf8_lossy(&path).into_owned();
    *current().cwd.lock() = process::Cwd { dir, path };
    Ok(0)
}

pub fn dup(fd: i32) -> SysResult {
    current().fds.lock().dup(fd).map(|f| f as u64)
}

pub fn dup3(old: i32, new: i32, flags: i32, dup2: bool) -> SysResult {
    if dup2 {
        if old == new {
            get_file(old)?;
            return Ok(new as u64);
        }
        let (fd, replaced) = current().fds.lock().dup2(old, new)?;
        if let Some(r) = replaced {
            closed(r);
        }
        return Ok(fd as u64);
    }
    if flags & !(file::O_CLOEXEC as i32) != 0 {
        return Err(Errno::EINVAL);
    }
    let (fd, replaced) =
        current()
            .fds
            .lock()
            .dup3(old, new, flags & file::O_CLOEXEC as i32 != 0)?;
    if let Some(r) = replaced {
        closed(r);
    }
    Ok(fd as u64)
}

pub fn fcntl(fd: i32, cmd: i32, arg: u64) -> SysResult {
    const F_DUPFD: i32 = 0;
    const F_GETFD: i32 = 1;
    const F_SETFD: i32 = 2;
    const F_GETFL: i32 = 3;
    const F_SETFL: i32 = 4;
    const F_DUPFD_CLOEXEC: i32 = 1030;
    const F_SETPIPE_SZ: i32 = 1031;
    const F_GETPIPE_SZ: i32 = 1032;
    const F_ADD_SEALS: i32 = 1033;
    const F_GET_SEALS: i32 = 1034;
    use crate::process::locks;
    let p = current();
    match cmd {
        locks::F_GETLK
        | locks::F_SETLK
        | locks::F_SETLKW
        | locks::F_OFD_GETLK
        | locks::F_OFD_SETLK
        | locks::F_OFD_SETLKW => locks::fcntl(&*get_file(fd)?, cmd, arg),
        F_ADD_SEALS => super::memfd::add_seals(&*get_file(fd)?, arg as u32),
        F_GET_SEALS => super::memfd::get_seals(&*get_file(fd)?),
        F_GETPIPE_SZ | F_SETPIPE_SZ => {
            let f = get_file(fd)?;
            let pipe = f
                .downcast::<crate::ipc::pipe::PipeEnd>()
                .ok_or(Errno::EBADF)?;
            if cmd == F_GETPIPE_SZ {
                Ok(pipe.capacity() as u64)
            } else {
                pipe.set_capacity(arg as usize).map(|c| c as u64)
            }
        }
        F_DUPFD | F_DUPFD_CLOEXEC => p
            .fds
            .lock()
            .dup_from(fd, arg as i32, cmd == F_DUPFD_CLOEXEC)
            .map(|f| f as u64),
        F_GETFD => p.fds.lock().cloexec(fd).map(u64::from),
        F_SETFD => p.fds.lock().set_cloexec(fd, arg & 1 != 0).map(|_| 0),
        F_GETFL => {
            let f = get_file(fd)?;
            let acc = match (f.readable, f.writable) {
                (true, true) => file::O_RDWR,
                (false, true) => file::O_WRONLY,
                _ => 0,
            };
            Ok(u64::from(f.flags.load(Ordering::Relaxed) | acc))
        }
        F_SETFL => {
            let f = get_file(fd)?;
            let settable = file::O_APPEND | file::O_NONBLOCK | file::O_DIRECT;
            let keep = f.flags.load(Ordering::Relaxed) & !settable;
            f.flags
                .store(keep | (arg as u32 & settable), Ordering::Relaxed);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn ioctl(fd: i32, req: u64, arg: u64) -> SysResult {
    const TCGETS: u64 = 0x5401;
    const TIOCGWINSZ: u64 = 0x5413;
    const FIONBIO: u64 = 0x5421;
    const FIONCLEX: u64 = 0x5450;
    const FIOCLEX: u64 = 0x5451;
    let f = get_file(fd)?;
    match (&f.kind, req) {
        (_, FIONBIO) => {
            let mut b = [0u8; 4];
            copy_in(&mut b, arg)?;
            if i32::from_le_bytes(b) != 0 {
                f.flags.fetch_or(file::O_NONBLOCK, Ordering::Relaxed);
            } else {
                f.flags.fetch_and(!file::O_NONBLOCK, Ordering::Relaxed);
            }
            Ok(0)
        }
        (_, FIOCLEX | FIONCLEX) => current()
            .fds
            .lock()
            .set_cloexec(fd, req == FIOCLEX)
            .map(|_| 0),
        (FileKind::Console, TCGETS | TIOCGWINSZ) => Err(Errno::ENOTTY),
        (FileKind::Object(o), _) => o.ioctl(&f, req, arg),
        _ => Err(Errno::ENOTTY),
    }
}

/// `struct statfs` of the volume `m`: its own size, free space and a
/// file system id of its own.
fn statfs_encode(m: &Mount, out: u64) -> SysResult {
    let s = m.fs().statfs();
    let mut b = [0u8; 120];
    let put = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, 0x5446_5331); // f_type ("TFS1")
    put(&mut b, 8, u64::from(s.block_size));
    put(&mut b, 16, s.blocks);
    put(&mut b, 24, s.free_blocks);
    put(&mut b, 32, s.free_blocks);
    put(&mut b, 40, s.files);
    put(&mut b, 48, u64::MAX / 2);
    put(&mut b, 56, dev_of(m.id())); // f_fsid
    put(&mut b, 64, u64::from(s.name_max));
    put(&mut b, 72, u64::from(s.block_size));
    copy_out(out, &b)?;
    Ok(0)
}

/// statfs(path): the volume `path` is on; the special tree reports the
/// root volume's figures.
pub fn statfs_path(path: u64, out: u64) -> SysResult {
    let p = user_string(path, PATH_MAX)?;
    let p = match crate::special::lookup(AT_FDCWD, &p, true) {
        None => p,
        Some(Err(e)) => return Err(e),
        Some(Ok(Target::Tfs(p))) => p,
        Some(Ok(_)) => {
            return statfs_encode(crate::fs::root().ok_or(Errno::ENOENT)?, out);
        }
    };
    let start = start_dir(AT_FDCWD)?;
    let loc = {
        let mut wk = Walker::new();
        existing(&resolve(&mut wk, &start, &p, true)?)?.0
    };
    statfs_encode(loc.volume(), out)
}

pub fn fstatfs(fd: i32, out: u64) -> SysResult {
    // The console and special files report the root volume's figures.
    let m = match get_file(fd)?.loc() {
        Some(loc) => loc.volume(),
        None => crate::fs::root().ok_or(Errno::ENOENT)?,
    };
    statfs_encode(m, out)
}
