//! System calls that run without the kernel lock (issue 17): the entry
//! tries them first, and only if one answers [`Lockless::NeedLock`] (or is
//! not one of them) does the thread queue for the kernel lock and run the
//! ordinary handler.
//!
//! **The rules a lockless handler follows**, in the thread's own context
//! with interrupts on and no kernel lock (`context()` says RunLoop, so any
//! allocation comes from the `locked` heap):
//!
//! * it takes only the fine-grained locks the documented order allows and
//!   holds none across a user copy;
//! * it never frees `general`-heap memory (the heap's check would panic,
//!   in every build): it drops nothing whose last reference it may hold
//!   unless that object was allocated bh-safe;
//! * it never sleeps and never pages user memory in: a user copy is made
//!   with faults disabled, and a copy that fails (a page not mapped yet, or
//!   a bad pointer) makes it answer `NeedLock`, so the locked handler
//!   redoes the call from scratch and pages in (or returns EFAULT). A
//!   handler that answers `NeedLock` has changed nothing the program can
//!   see.
//!
//! **Cached `read`, `pread`, `readv` and `preadv`** ([`read_cached`],
//! [`readv_cached`]): a regular file's pages that are
//! all cached and readable are pinned under the node's lock
//! (`Node::read_cached`) and copied to the user with faults disabled; any
//! other case (a page to fill, readahead to start, a truncate pending, a
//! copy that faults) answers `NeedLock`. The handler's reference to the
//! open file, cloned from the fd table under its lock, must never be the
//! last one (the description came from the general heap): so a close
//! under the kernel lock never drops a regular file's description while
//! other references exist; it [`retire`]s it to a list that a later close
//! empties once the list's reference is the only one.
//!
//! **`lseek`** ([`seek`]) of a regular file: `SEEK_SET`/`SEEK_CUR`, and
//! `SEEK_END` when the pagecache node knows the length, under the same
//! offset mutex.
//!
//! **Cached `write`, `pwrite`, `writev` and `pwritev`** ([`write_cached`]):
//! an overwrite of pages cached ACTIVE or DIRTY, inside the file, over
//! sectors a write reserved before (`Node::write_cached`: no allocation,
//! no extent change, no growth, no fill). The pages are leased (so
//! writeback cannot start on them and a truncate waits for them) and
//! pinned, the source copied in with faults disabled, and the commit
//! marks the copied sectors dirty (a clean page joins the dirty list and
//! leaves the LRU, as under the lock) only if the dirty throttle would
//! let the writer go on (`fs::may_dirty_more`). The file's mtime/ctime:
//! the write's time is recorded on the file (`FileData::note_write`), and
//! `stat` reports it; fsync, syncfs and the last close stamp it into TFS.
//!
//! **`fstat`** ([`fstat`], and `newfstatat` with an empty path and
//! `AT_EMPTY_PATH`, glibc's `fstat`) of a regular file: the `stat` the locked path
//! last read, if nothing has locked the volume's filesystem since (every
//! `Mount::fs` moves a generation on), plus a pending write time.
//!
//! Every handler that takes a descriptor clones its description through
//! one helper, [`with_regular`].
//!
//! Contexts: the syscall entry, before the kernel lock ([`retire`]: under
//! it). Locks: `process.fds` (to clone the description, released before
//! the pagecache node's lock is taken); the description's `file.pos` by
//! `try_lock_lockless`; `pagecache.node` (and under it, for a write's
//! commit, `pagecache.lru` and `pagecache.volume`); `fs.stat` (a leaf);
//! `heap.physical` alone, by try-lock, in the dirty-throttle check;
//! `syscall.retired` (a leaf, kernel lock only).

use super::SysResult;
use crate::fs::FileData;
use crate::process::file::{FileKind, OpenFile};
use crate::sched::mutex::LocklessGuard;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::syscalls as nr;
use core::sync::atomic::{AtomicU64, Ordering};

/// Writes served without the kernel lock since boot (kstats
/// `syscalls.write_lockless`).
pub static WRITES_LOCKLESS: AtomicU64 = AtomicU64::new(0);
/// `fstat`s served without the kernel lock since boot (kstats
/// `syscalls.fstat_lockless`).
pub static FSTATS_LOCKLESS: AtomicU64 = AtomicU64::new(0);

/// What a lockless attempt came to.
pub enum Lockless {
    /// The call's result.
    Done(SysResult),
    /// Run the ordinary handler under the kernel lock.
    NeedLock,
}

/// Copies `src` to the user at `dst` without paging anything in.
fn copy_out(dst: u64, src: &[u8]) -> Result<(), ()> {
    crate::user::with_user_faults_disabled(|| crate::user::copy_to_user(dst, src)).map_err(|_| ())
}

/// A result written to user memory: `Done(Ok(0))`, or `NeedLock` if the
/// copy could not be made here.
fn written(dst: u64, bytes: &[u8]) -> Lockless {
    match copy_out(dst, bytes) {
        Ok(()) => Lockless::Done(Ok(0)),
        Err(()) => Lockless::NeedLock,
    }
}

/// Tries syscall `n` with arguments `a` without the kernel lock.
pub fn try_call(n: u64, a: [u64; 6]) -> Lockless {
    use Lockless::{Done, NeedLock};
    match n {
        nr::GETPID => Done(Ok(u64::from(super::signal::PID as u32))),
        nr::GETPPID | nr::GETUID | nr::GETGID | nr::GETEUID | nr::GETEGID => Done(Ok(0)),
        nr::GETTID => {
            let mut tid = None;
            crate::sched::thread::with_current(|t| tid = t.user.as_ref().map(|u| u.tid));
            match tid {
                Some(t) => Done(Ok(u64::from(t))),
                None => NeedLock,
            }
        }
        nr::CLOCK_GETTIME => match super::misc::clock_bytes(a[0] as i32) {
            Ok(b) => written(a[1], &b),
            Err(e) => Done(Err(e)),
        },
        nr::GETTIMEOFDAY if a[0] == 0 => Done(Ok(0)),
        nr::GETTIMEOFDAY => written(a[0], &super::misc::timeofday_bytes()),
        nr::TIME => {
            let secs = crate::time::realtime_ns() / 1_000_000_000;
            if a[0] != 0 && copy_out(a[0], &secs.to_le_bytes()).is_err() {
                return NeedLock;
            }
            Done(Ok(secs))
        }
        nr::FUTEX => super::thread::futex_lockless(a),
        nr::PREAD64 => read_cached(a[0] as i32, &[(a[1], a[2])], Some(a[3])),
        nr::READ => read_cached(a[0] as i32, &[(a[1], a[2])], None),
        nr::PREADV => with_vectors(a[1], a[2], |s| read_cached(a[0] as i32, s, Some(a[3]))),
        nr::READV => with_vectors(a[1], a[2], |s| read_cached(a[0] as i32, s, None)),
        nr::PWRITE64 => write_cached(a[0] as i32, &[(a[1], a[2])], Some(a[3])),
        nr::WRITE => write_cached(a[0] as i32, &[(a[1], a[2])], None),
        nr::PWRITEV => with_vectors(a[1], a[2], |s| write_cached(a[0] as i32, s, Some(a[3]))),
        nr::WRITEV => with_vectors(a[1], a[2], |s| write_cached(a[0] as i32, s, None)),
        nr::LSEEK => seek(a[0] as i32, a[1] as i64, a[2] as i32),
        nr::FSTAT => fstat(a[0] as i32, a[1]),
        nr::NEWFSTATAT => fstatat_empty(a[0] as i32, a[1], a[2], a[3] as i32),
        _ => NeedLock,
    }
}

/// Reads no larger than this go lockless; a larger read copies without
/// the kernel lock anyway (`Mount::read`) and its lock cost is amortised.
const READ_CACHED_MAX: u64 = 64 * 1024;

// A lockless read's or write's pages fit the pagecache's inline array (no
// allocation).
const _: () = assert!(
    READ_CACHED_MAX as usize / cairn_pagecache::PAGE_SIZE < cairn_pagecache::CACHED_MAX_PAGES
);

/// Most vectors a lockless `readv` takes (its array is copied to the stack).
const READV_CACHED_MAX_VECS: usize = crate::user::MAX_DESTINATION_VECTORS;

/// The vectors of a `readv`/`writev` family call, at most
/// [`READV_CACHED_MAX_VECS`] of them, read from the array at `iov` with
/// faults disabled and handed to `f` as (address, length); `NeedLock` if
/// there are none, too many, or the array cannot be read here.
fn with_vectors(iov: u64, count: u64, f: impl FnOnce(&[(u64, u64)]) -> Lockless) -> Lockless {
    let count = count as usize;
    if count == 0 || count > READV_CACHED_MAX_VECS {
        return Lockless::NeedLock;
    }
    let mut raw = [0u8; READV_CACHED_MAX_VECS * 16];
    let raw = &mut raw[..count * 16];
    let read = crate::user::with_user_faults_disabled(|| crate::user::copy_from_user(raw, iov));
    if read.is_err() {
        return Lockless::NeedLock;
    }
    let mut segs = [(0u64, 0u64); READV_CACHED_MAX_VECS];
    for (i, seg) in segs.iter_mut().take(count).enumerate() {
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
        *seg = (word(i * 16), word(i * 16 + 8));
    }
    f(&segs[..count])
}

/// The length of the user buffers `segs` in all, if each is in the user
/// half and the total is 1 B to [`READ_CACHED_MAX`].
fn segments_len(segs: &[(u64, u64)]) -> Option<u64> {
    let mut len = 0u64;
    for &(base, n) in segs {
        if !crate::user::user_range_ok(base, n) {
            return None;
        }
        len = len.saturating_add(n);
    }
    (len != 0 && len <= READ_CACHED_MAX).then_some(len)
}

/// Runs `f` on descriptor `fd`'s open file if it is a regular file that
/// `ok` accepts, else `NeedLock`. The description is cloned from the fd
/// table under its lock, released before `f` runs; the clone is never
/// the last reference (a close retires the description: [`retire`]).
fn with_regular(
    fd: i32,
    ok: impl FnOnce(&OpenFile) -> bool,
    f: impl FnOnce(&OpenFile, &FileData) -> Lockless,
) -> Lockless {
    let Some(p) = crate::process::PROCESS.get() else {
        return Lockless::NeedLock;
    };
    let file = match p.fds.lock().get(fd) {
        Ok(f) if matches!(f.kind, FileKind::Regular(_)) && ok(f) => f.clone(),
        _ => return Lockless::NeedLock,
    };
    let r = match &file.kind {
        FileKind::Regular(d) => f(&file, d),
        _ => Lockless::NeedLock,
    };
    // Not the last reference: the table's, or the retired list's, outlives
    // it (`retire`).
    drop(file);
    r
}

/// `pread` (`at`), or `read` through the description's offset (`None`),
/// of a regular file whose pages are all cached (see the module doc), into
/// the user buffers `segs` (address, length) one after the other. A
/// `read` holds the offset's mutex if it is free (else `NeedLock`) and
/// moves the offset only once the copy is whole.
fn read_cached(fd: i32, segs: &[(u64, u64)], at: Option<u64>) -> Lockless {
    let Some(len) = segments_len(segs) else {
        return Lockless::NeedLock;
    };
    // O_DIRECT reads go to the device (`fs::direct`), not the cache.
    with_regular(
        fd,
        |f| f.readable && !f.direct(),
        |file, d| read_file_cached(file, d, segs, len as usize, at),
    )
}

/// Where a lockless transfer starts: `at` (pread/pwrite and their
/// vector forms), or the description's offset, with its offset mutex
/// held until the guard is dropped (Linux's `f_pos_lock`: the offset
/// moves once per call). `None` when that mutex is busy or the position
/// is negative: the locked path decides those.
fn position(file: &OpenFile, at: Option<u64>) -> Option<(Option<LocklessGuard<'_, ()>>, u64)> {
    let (guard, off) = match at {
        Some(off) => (None, off),
        None => {
            let g = file.pos_lock.try_lock_lockless()?;
            (Some(g), file.offset.load(Ordering::Relaxed))
        }
    };
    ((off as i64) >= 0).then_some((guard, off))
}

fn read_file_cached(
    file: &OpenFile,
    d: &FileData,
    segs: &[(u64, u64)],
    len: usize,
    at: Option<u64>,
) -> Lockless {
    let Some((pos, off)) = position(file, at) else {
        return Lockless::NeedLock;
    };
    let copy = |pages: &cairn_pagecache::CachedPages<'_>| {
        let copied = match *segs {
            [(base, n)] => crate::user::UserDestination::new(base, n as usize)
                .map_or(0, |mut to| {
                    crate::user::with_user_faults_disabled(|| pages.copy_out(&mut to, 0))
                }),
            _ => {
                let mut parts = [(0u64, 0usize); crate::user::MAX_DESTINATION_VECTORS];
                for (p, &(base, n)) in parts.iter_mut().zip(segs) {
                    *p = (base, n as usize);
                }
                crate::user::UserVectorDestination::new(&parts[..segs.len()]).map_or(0, |mut to| {
                    crate::user::with_user_faults_disabled(|| pages.copy_out(&mut to, 0))
                })
            }
        };
        (pages.len(), copied)
    };
    let Some((got, copied)) = d.node.read_cached(off, len, copy) else {
        return Lockless::NeedLock;
    };
    if copied < got {
        return Lockless::NeedLock;
    }
    if pos.is_some() {
        file.offset.store(off + got as u64, Ordering::Relaxed);
    }
    drop(pos);
    Lockless::Done(Ok(got as u64))
}

/// `lseek` of a regular file with `SEEK_SET`, `SEEK_CUR`, or `SEEK_END`
/// when its node knows the length; the description's offset mutex held if
/// it is free (else `NeedLock`, as for anything else).
fn seek(fd: i32, off: i64, whence: i32) -> Lockless {
    with_regular(
        fd,
        |_| whence <= 2,
        |file, d| seek_file(file, d, off, whence),
    )
}

fn seek_file(file: &OpenFile, d: &FileData, off: i64, whence: i32) -> Lockless {
    let Some(_pos) = file.pos_lock.try_lock_lockless() else {
        return Lockless::NeedLock;
    };
    let base = match whence {
        0 => 0,
        1 => file.offset.load(Ordering::Relaxed) as i64,
        _ => match d.node.known_len() {
            Some(len) => len as i64,
            None => return Lockless::NeedLock,
        },
    };
    match base.checked_add(off).filter(|p| *p >= 0) {
        Some(pos) => {
            file.offset.store(pos as u64, Ordering::Relaxed);
            Lockless::Done(Ok(pos as u64))
        }
        None => Lockless::Done(Err(cairn_unix::errno::Errno::EINVAL)),
    }
}

/// `O_DSYNC` and `O_SYNC` (`__O_SYNC | O_DSYNC`): a write that must
/// reach the disk before it returns.
const O_SYNC_ANY: u32 = 0o4010000;

/// `write`, `pwrite` (`at`), `writev`, `pwritev` of 1 B-64 KiB into a
/// regular file's cached pages, none of it past the end of file and all
/// of it over storage a write reserved before (`Node::write_cached`);
/// anything else (`O_APPEND`, `O_DIRECT`, `O_SYNC`/`O_DSYNC`, growth,
/// a page to fill, allocate or wait for, a clean page past the dirty
/// limit, a pending truncate, a source not mapped yet) answers
/// `NeedLock`. The source pages are probed with faults disabled before
/// any page is leased; a copy that still stops short (another thread
/// unmapped the buffer since) commits the bytes before the stop and
/// returns their count, as Linux's short write at a fault (nothing
/// copied: `NeedLock`, nothing changed). The file's times: the write
/// records its time on the file (`FileData::note_write`), which `stat`
/// reports and fsync, syncfs and the last close stamp into TFS.
fn write_cached(fd: i32, segs: &[(u64, u64)], at: Option<u64>) -> Lockless {
    let Some(len) = segments_len(segs) else {
        return Lockless::NeedLock;
    };
    with_regular(
        fd,
        |f| {
            let flags = f.flags.load(Ordering::Relaxed);
            f.writable && !f.append() && !f.direct() && flags & O_SYNC_ANY == 0
        },
        |file, d| write_file_cached(file, d, segs, len as usize, at),
    )
}

/// Whether every page of the user buffers `segs` can be read now without
/// a fault (one byte of each, faults disabled).
fn source_mapped(segs: &[(u64, u64)]) -> bool {
    const PS: u64 = 4096;
    segs.iter().all(|&(base, n)| {
        let mut at = base;
        let end = base + n;
        while at < end {
            let mut b = [0u8; 1];
            let got =
                crate::user::with_user_faults_disabled(|| crate::user::copy_from_user(&mut b, at));
            if got.is_err() {
                return false;
            }
            at = (at / PS + 1) * PS;
        }
        true
    })
}

fn write_file_cached(
    file: &OpenFile,
    d: &FileData,
    segs: &[(u64, u64)],
    len: usize,
    at: Option<u64>,
) -> Lockless {
    let Some((pos, off)) = position(file, at) else {
        return Lockless::NeedLock;
    };
    if !source_mapped(segs) {
        return Lockless::NeedLock;
    }
    let copy = |batch: &mut cairn_pagecache::CachedWrite| {
        let mut copied = 0usize;
        for &(base, n) in segs {
            let n = n as usize;
            let Ok(mut from) = crate::user::UserSource::new(base, n) else {
                break;
            };
            let got =
                crate::user::with_user_faults_disabled(|| batch.copy_in(copied, &mut from, n));
            copied += got;
            if got < n {
                break;
            }
        }
        copied
    };
    // The throttle's verdict is asked only if a clean page would become
    // dirty. No page is NEW, so all that was copied is committed.
    let committed = d
        .node
        .write_cached(off, len, crate::fs::may_dirty_more, copy)
        .unwrap_or(0);
    if committed == 0 {
        return Lockless::NeedLock;
    }
    d.note_write();
    if pos.is_some() {
        file.offset.store(off + committed as u64, Ordering::Relaxed);
    }
    drop(pos);
    WRITES_LOCKLESS.fetch_add(1, Ordering::Relaxed);
    Lockless::Done(Ok(committed as u64))
}

/// `fstat` of a regular file whose `stat` the locked path remembered
/// and nothing has had its volume's filesystem since
/// (`FileData::remembered_stat`), with the time of a write not yet
/// stamped in TFS; `NeedLock` otherwise.
fn fstat(fd: i32, out: u64) -> Lockless {
    with_regular(
        fd,
        |_| true,
        |_, d| {
            let Some(st) = d.remembered_stat() else {
                return Lockless::NeedLock;
            };
            let mut b = [0u8; cairn_unix::abi::STAT_SIZE];
            match cairn_unix::abi::encode_stat(&st, &mut b) {
                Ok(_) => {
                    let r = written(out, &b);
                    if matches!(r, Lockless::Done(_)) {
                        FSTATS_LOCKLESS.fetch_add(1, Ordering::Relaxed);
                    }
                    r
                }
                Err(_) => Lockless::NeedLock,
            }
        },
    )
}

/// `AT_EMPTY_PATH`, and the other flags `newfstatat` takes (which change
/// nothing for an empty path): `AT_SYMLINK_NOFOLLOW`, `AT_NO_AUTOMOUNT`.
const AT_EMPTY_PATH: i32 = 0x1000;
const FSTATAT_FLAGS: i32 = AT_EMPTY_PATH | 0x100 | 0x800;

/// `newfstatat(fd, "", buf, AT_EMPTY_PATH)`, which is how glibc's
/// `fstat` asks since 2.33: [`fstat`] of `fd`. The path's first byte is
/// read with faults disabled; any other call answers `NeedLock`.
fn fstatat_empty(fd: i32, path: u64, out: u64, flags: i32) -> Lockless {
    if flags & AT_EMPTY_PATH == 0 || flags & !FSTATAT_FLAGS != 0 {
        return Lockless::NeedLock;
    }
    let mut first = [1u8; 1];
    let read =
        crate::user::with_user_faults_disabled(|| crate::user::copy_from_user(&mut first, path));
    if read.is_err() || first[0] != 0 {
        return Lockless::NeedLock;
    }
    fstat(fd, out)
}

static RETIRED_CLASS: LockClass = LockClass::new("syscall.retired");
/// Regular files' descriptions closed while other references existed.
static RETIRED: SpinLock<Vec<Arc<OpenFile>>> = SpinLock::new(&RETIRED_CLASS, Vec::new());

/// Drops a descriptor's reference to `f` (close, dup2 over it): see the
/// module doc. Descriptions on the list that only the list holds now go
/// too. Kernel-lock context, in a thread (a last drop may sleep), holding
/// no spinlock.
pub fn retire(f: Arc<OpenFile>) {
    let mut gone = Vec::new();
    {
        let mut list = RETIRED.lock();
        let regular = matches!(f.kind, FileKind::Regular(_));
        if regular && Arc::strong_count(&f) > 1 && !list.iter().any(|r| Arc::ptr_eq(r, &f)) {
            list.push(f);
        } else {
            gone.push(f);
        }
        // `f`'s drop below is not the last if the list holds it: drop the
        // other references first.
        let mut i = 0;
        while i < list.len() {
            let only_list = Arc::strong_count(&list[i])
                == 1 + gone.iter().filter(|g| Arc::ptr_eq(g, &list[i])).count();
            if only_list {
                gone.push(list.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }
    drop(gone);
}
