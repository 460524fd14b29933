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
//! Contexts: the syscall entry, before the kernel lock ([`retire`]: under
//! it). Locks: `process.fds` (to clone the description, released before
//! the pagecache node's lock is taken); `syscall.retired` (a leaf, kernel
//! lock only).

use super::SysResult;
use crate::process::file::{FileKind, OpenFile};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::syscalls as nr;
use core::sync::atomic::Ordering;

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
        nr::PREADV => readv_cached(a[0] as i32, a[1], a[2], Some(a[3])),
        nr::READV => readv_cached(a[0] as i32, a[1], a[2], None),
        nr::LSEEK => seek(a[0] as i32, a[1] as i64, a[2] as i32),
        _ => NeedLock,
    }
}

/// Reads no larger than this go lockless; a larger read copies without
/// the kernel lock anyway (`Mount::read`) and its lock cost is amortised.
const READ_CACHED_MAX: u64 = 64 * 1024;

/// Most vectors a lockless `readv` takes (its array is copied to the stack).
const READV_CACHED_MAX_VECS: usize = crate::user::MAX_DESTINATION_VECTORS;

/// `readv` and `preadv` (`at`) of at most [`READV_CACHED_MAX_VECS`]
/// vectors and [`READ_CACHED_MAX`] bytes: the vector array is read with
/// faults disabled, then as [`read_cached`].
fn readv_cached(fd: i32, iov: u64, count: u64, at: Option<u64>) -> Lockless {
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
    read_cached(fd, &segs[..count], at)
}

/// `pread` (`at`), or `read` through the description's offset (`None`),
/// of a regular file whose pages are all cached (see the module doc), into
/// the user buffers `segs` (address, length) one after the other. A
/// `read` holds the offset's mutex if it is free (else `NeedLock`) and
/// moves the offset only once the copy is whole.
fn read_cached(fd: i32, segs: &[(u64, u64)], at: Option<u64>) -> Lockless {
    let mut len = 0u64;
    for &(base, n) in segs {
        if !crate::user::user_range_ok(base, n) {
            return Lockless::NeedLock;
        }
        len = len.saturating_add(n);
    }
    if len == 0 || len > READ_CACHED_MAX {
        return Lockless::NeedLock;
    }
    let Some(p) = crate::process::PROCESS.get() else {
        return Lockless::NeedLock;
    };
    let file = match p.fds.lock().get(fd) {
        // O_DIRECT reads go to the device (`fs::direct`), not the cache.
        Ok(f) if f.readable && !f.direct() && matches!(f.kind, FileKind::Regular(_)) => f.clone(),
        _ => return Lockless::NeedLock,
    };
    let r = read_file_cached(&file, segs, len as usize, at);
    // Not the last reference: the table's, or the retired list's, outlives
    // it (`retire`).
    drop(file);
    r
}

fn read_file_cached(file: &OpenFile, segs: &[(u64, u64)], len: usize, at: Option<u64>) -> Lockless {
    let FileKind::Regular(d) = &file.kind else {
        return Lockless::NeedLock;
    };
    let pos = match at {
        Some(_) => None,
        None => match file.pos_lock.try_lock_lockless() {
            Some(g) => Some(g),
            None => return Lockless::NeedLock,
        },
    };
    let off = at.unwrap_or_else(|| file.offset.load(Ordering::Relaxed));
    if (off as i64) < 0 {
        return Lockless::NeedLock;
    }
    let Some(pages) = d.node.read_cached(off, len) else {
        return Lockless::NeedLock;
    };
    let got = pages.len();
    let mut parts = [(0u64, 0usize); crate::user::MAX_DESTINATION_VECTORS];
    for (p, &(base, n)) in parts.iter_mut().zip(segs) {
        *p = (base, n as usize);
    }
    let copied = crate::user::UserVectorDestination::new(&parts[..segs.len()])
        .map_or(0, |mut to| {
            crate::user::with_user_faults_disabled(|| pages.copy_out(&mut to, 0))
        });
    drop(pages);
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
    let Some(p) = crate::process::PROCESS.get() else {
        return Lockless::NeedLock;
    };
    let file = match p.fds.lock().get(fd) {
        Ok(f) if matches!(f.kind, FileKind::Regular(_)) && whence <= 2 => f.clone(),
        _ => return Lockless::NeedLock,
    };
    let r = seek_file(&file, off, whence);
    // Not the last reference (see `retire`).
    drop(file);
    r
}

fn seek_file(file: &OpenFile, off: i64, whence: i32) -> Lockless {
    let FileKind::Regular(d) = &file.kind else {
        return Lockless::NeedLock;
    };
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
