//! The program's advisory file locks: POSIX record locks and OFD locks
//! (`fcntl` `F_GETLK`/`F_SETLK`/`F_SETLKW` and their `F_OFD_*` forms) and
//! `flock`, over `cairn_unix::reclock` tables.
//!
//! Owners and lifetimes (POSIX and Linux):
//! * `F_SETLK`/`F_SETLKW` locks belong to the process. Closing **any**
//!   descriptor of a file drops all of the process's locks on it, even if
//!   other descriptors of it stay open ([`closed`]); SQLite's unix VFS
//!   is built around this rule.
//! * `F_OFD_*` and `flock` locks belong to the open file description and
//!   go when its last descriptor closes ([`release_description`], from
//!   `OpenFile`'s drop).
//! * POSIX/OFD locks and flock locks live in separate tables and never
//!   conflict with each other (as on Linux).
//!
//! Blocking requests sleep in `sched::wait::wait_event` (interruptible:
//! `EINTR` once signals can interrupt) until a lock changes; a request
//! that would close a cycle of waiting owners fails with `EDEADLK`.
//!
//! Kernel-lock context, in the calling thread. Lock: `process.locks`
//! (SpinLock, kernel-lock only), taken after the fd table and never held
//! while user memory is copied, while sleeping, or while waiters are
//! notified.

use super::file::{FileKind, OpenFile};
use crate::sched::wait::{Pollable, wait_event};
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;
use cairn_unix::reclock::{LockKind, LockTable, Owner, SetError, TO_EOF, flock_range};
use core::sync::atomic::Ordering;

static LOCKS_CLASS: LockClass = LockClass::new("process.locks");

struct Tables {
    /// POSIX and OFD record locks.
    records: LockTable<u64>,
    /// flock locks (whole-file ranges).
    flocks: LockTable<u64>,
}

static TABLES: SpinLock<Tables> = SpinLock::new(
    &LOCKS_CLASS,
    Tables {
        records: LockTable::new(),
        flocks: LockTable::new(),
    },
);

/// Notified whenever a lock is dropped or narrowed: blocked requests retry.
static CHANGED: Pollable = Pollable::new();

/// The process as a lock owner (its pid, `getpid()`'s 1).
const PROCESS: Owner = Owner::Process(1);

/// The key a file's locks are filed under: its volume and inode for TFS
/// files (`Loc::key`, below bit 48), the object's address for others
/// (pipes, special files).
fn key(f: &OpenFile) -> u64 {
    match &f.kind {
        FileKind::Regular(_) | FileKind::Directory(_) => f.loc().map_or(0, |l| l.key()),
        FileKind::Console => 1 << 62,
        FileKind::Object(o) => (alloc::sync::Arc::as_ptr(o) as *const u8 as u64) | (1 << 63),
    }
}

/// The description `f` is going away: its OFD and flock locks go.
pub fn release_description(f: &OpenFile) {
    let owner = Owner::Description(f.id());
    let changed = {
        let mut t = TABLES.lock();
        let a = t.records.release_owner(owner);
        let b = t.flocks.release_owner(owner);
        a || b
    };
    if changed {
        CHANGED.notify();
    }
}

/// A descriptor of `f` was closed: the process's record locks on the file
/// go, whatever other descriptors remain.
pub fn closed(f: &OpenFile) {
    let changed = TABLES.lock().records.release_file(key(f), PROCESS);
    if changed {
        CHANGED.notify();
    }
}

pub const F_GETLK: i32 = 5;
pub const F_SETLK: i32 = 6;
pub const F_SETLKW: i32 = 7;
pub const F_OFD_GETLK: i32 = 36;
pub const F_OFD_SETLK: i32 = 37;
pub const F_OFD_SETLKW: i32 = 38;

const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;

/// `struct flock` (x86-64): type, whence, start, len, pid.
struct Flock {
    kind: i16,
    whence: i16,
    start: i64,
    len: i64,
    pid: i32,
}

const FLOCK_SIZE: usize = 32;

impl Flock {
    fn decode(b: &[u8; FLOCK_SIZE]) -> Flock {
        let i16_at = |o: usize| i16::from_le_bytes([b[o], b[o + 1]]);
        let i64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            i64::from_le_bytes(x)
        };
        let mut p = [0u8; 4];
        p.copy_from_slice(&b[24..28]);
        Flock {
            kind: i16_at(0),
            whence: i16_at(2),
            start: i64_at(8),
            len: i64_at(16),
            pid: i32::from_le_bytes(p),
        }
    }

    fn encode(&self) -> [u8; FLOCK_SIZE] {
        let mut b = [0u8; FLOCK_SIZE];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.whence.to_le_bytes());
        b[8..16].copy_from_slice(&self.start.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..28].copy_from_slice(&self.pid.to_le_bytes());
        b
    }
}

/// `fcntl(fd, F_[OFD_]GETLK / SETLK / SETLKW, &flock)`.
pub fn fcntl(f: &OpenFile, cmd: i32, arg: u64) -> Result<u64, Errno> {
    let mut raw = [0u8; FLOCK_SIZE];
    crate::syscall::copy_in(&mut raw, arg)?;
    let fl = Flock::decode(&raw);
    let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
    if ofd && fl.pid != 0 {
        return Err(Errno::EINVAL);
    }
    let owner = if ofd {
        Owner::Description(f.id())
    } else {
        PROCESS
    };
    let base: i64 = match fl.whence {
        0 => 0,
        1 => f.offset.load(Ordering::Relaxed) as i64,
        2 => crate::syscall::fs::file_size(f)? as i64,
        _ => return Err(Errno::EINVAL),
    };
    let start = base.checked_add(fl.start).ok_or(Errno::EOVERFLOW)?;
    let (s, e) = flock_range(start, fl.len)?;
    let kind = match fl.kind {
        F_RDLCK => Some(LockKind::Read),
        F_WRLCK => Some(LockKind::Write),
        F_UNLCK => None,
        _ => return Err(Errno::EINVAL),
    };
    let file = key(f);
    match cmd {
        F_GETLK | F_OFD_GETLK => {
            let Some(k) = kind else {
                return Err(Errno::EINVAL);
            };
            let found = TABLES.lock().records.test(file, owner, k, s, e);
            let out = match found {
                None => Flock {
                    kind: F_UNLCK,
                    ..fl
                },
                Some(l) => Flock {
                    kind: if l.kind == LockKind::Write {
                        F_WRLCK
                    } else {
                        F_RDLCK
                    },
                    whence: 0,
                    start: l.start as i64,
                    len: if l.end == TO_EOF {
                        0
                    } else {
                        (l.end - l.start) as i64
                    },
                    pid: match l.owner {
                        Owner::Process(p) => p as i32,
                        Owner::Description(_) => -1,
                    },
                },
            };
            crate::syscall::copy_out(arg, &out.encode())?;
            Ok(0)
        }
        _ => {
            match kind {
                Some(LockKind::Read) if !f.readable => return Err(Errno::EBADF),
                Some(LockKind::Write) if !f.writable => return Err(Errno::EBADF),
                _ => {}
            }
            let wait = matches!(cmd, F_SETLKW | F_OFD_SETLKW);
            set(false, file, owner, kind, s, e, wait)
        }
    }
}

/// Sets or clears a range in the record (`flock == false`) or flock
/// table, waiting while it is blocked if `wait`.
fn set(
    flock: bool,
    file: u64,
    owner: Owner,
    kind: Option<LockKind>,
    s: u64,
    e: u64,
    wait: bool,
) -> Result<u64, Errno> {
    let attempt = || {
        let mut t = TABLES.lock();
        let table = if flock { &mut t.flocks } else { &mut t.records };
        table.set(file, owner, kind, s, e)
    };
    let Err(SetError::Blocked(_)) = attempt() else {
        // Any change may unblock someone (an unlock, a downgrade, a split).
        CHANGED.notify();
        return Ok(0);
    };
    let Some(k) = kind.filter(|_| wait) else {
        return Err(Errno::EAGAIN);
    };
    let id = {
        let mut t = TABLES.lock();
        let table = if flock { &mut t.flocks } else { &mut t.records };
        table.begin_wait(file, owner, k, s, e)?
    };
    let r = wait_event(&[&CHANGED], None, || attempt().ok());
    {
        let mut t = TABLES.lock();
        let table = if flock { &mut t.flocks } else { &mut t.records };
        table.end_wait(id);
    }
    match r {
        Ok(()) => {
            CHANGED.notify();
            Ok(0)
        }
        Err(why) => Err(match why {
            crate::sched::wait::WaitError::Interrupted => Errno::ERESTARTSYS,
            crate::sched::wait::WaitError::TimedOut => Errno::EAGAIN,
        }),
    }
}

const LOCK_SH: i32 = 1;
const LOCK_EX: i32 = 2;
const LOCK_NB: i32 = 4;
const LOCK_UN: i32 = 8;

/// `flock(fd, op)`.
pub fn flock(f: &OpenFile, op: i32) -> Result<u64, Errno> {
    let owner = Owner::Description(f.id());
    let file = key(f);
    let kind = match op & !LOCK_NB {
        LOCK_SH => Some(LockKind::Read),
        LOCK_EX => Some(LockKind::Write),
        LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    let nb = op & LOCK_NB != 0;
    match set(true, file, owner, kind, 0, TO_EOF, false) {
        Err(Errno::EAGAIN) => {
            // Linux converts a held lock by dropping it first (flock(2)):
            // a conversion that cannot be granted at once loses the old
            // lock, and two holders of a shared lock both asking for an
            // exclusive one do not deadlock.
            set(true, file, owner, None, 0, TO_EOF, false)?;
            if nb {
                return Err(Errno::EAGAIN);
            }
            set(true, file, owner, kind, 0, TO_EOF, true)
        }
        r => r,
    }
}
