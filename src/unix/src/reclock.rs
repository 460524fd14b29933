//! Advisory file locks: POSIX record locks (`fcntl` `F_SETLK`/`F_SETLKW`/
//! `F_GETLK`), open-file-description locks (`F_OFD_*`) and, as whole-file
//! ranges in a table of their own, `flock` locks.
//!
//! Owns: per-file lists of byte-range locks with their owners, conflict
//! tests, setting and clearing ranges (splitting and merging an owner's
//! locks as POSIX says), releasing an owner's locks, and the wait-for graph
//! of blocked requests with its deadlock test (`EDEADLK`).
//!
//! Owners: a process ([`Owner::Process`], POSIX locks: every descriptor of
//! the process shares them, and closing *any* descriptor of the file drops
//! them all) or an open file description ([`Owner::Description`], OFD and
//! flock locks: dropped when the description's last descriptor closes).
//! Locks of different owners conflict when they overlap and one of them is
//! a write lock; an owner never conflicts with itself.
//!
//! Deadlocks: a request that would block is refused with `EDEADLK` when an
//! owner holding a conflicting lock is (transitively) waiting for a lock
//! the requester holds. Linux checks this for process-owned locks only;
//! here every owner takes part, so a cycle through OFD locks is reported
//! instead of hanging.
//!
//! Contexts: kernel-lock (syscalls, close). Locks: none; the kernel keeps
//! the table under one lock and does the waiting itself.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::Errno;

/// Who owns a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// A process (its pid): POSIX record locks.
    Process(u32),
    /// An open file description (its id): OFD and flock locks.
    Description(u64),
}

/// Shared or exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockKind {
    /// `F_RDLCK` / `LOCK_SH`.
    Read,
    /// `F_WRLCK` / `LOCK_EX`.
    Write,
}

/// End of a range that runs to the end of any file (`l_len == 0`).
pub const TO_EOF: u64 = u64::MAX;

/// One held lock: bytes `start..end` (`end == TO_EOF`: to infinity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Who holds it.
    pub owner: Owner,
    /// Read or write.
    pub kind: LockKind,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Lock {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }

    fn conflicts(&self, owner: Owner, kind: LockKind, start: u64, end: u64) -> bool {
        self.owner != owner
            && self.overlaps(start, end)
            && (self.kind == LockKind::Write || kind == LockKind::Write)
    }
}

/// Converts a `struct flock` range (`l_start` already made absolute, and
/// `l_len`) to `start..end`: `l_len == 0` runs to the end of any file, a
/// negative `l_len` covers the bytes before `start`. `EINVAL` for a range
/// starting before 0; `EOVERFLOW` past the largest offset.
pub fn flock_range(start: i64, len: i64) -> Result<(u64, u64), Errno> {
    let (s, e) = match len {
        0 => (start, None),
        l if l > 0 => (start, Some(start.checked_add(l).ok_or(Errno::EOVERFLOW)?)),
        l => (start.checked_add(l).ok_or(Errno::EINVAL)?, Some(start)),
    };
    if s < 0 {
        return Err(Errno::EINVAL);
    }
    Ok((s as u64, e.map_or(TO_EOF, |e| e as u64)))
}

/// The locks of one file, sorted by start.
#[derive(Clone, Debug, Default)]
pub struct FileLocks {
    locks: Vec<Lock>,
}

impl FileLocks {
    /// The first lock (lowest start) conflicting with the request, if any.
    pub fn conflict(&self, owner: Owner, kind: LockKind, start: u64, end: u64) -> Option<Lock> {
        self.locks
            .iter()
            .find(|l| l.conflicts(owner, kind, start, end))
            .copied()
    }

    /// Owners holding locks that conflict with the request.
    fn blockers(&self, owner: Owner, kind: LockKind, start: u64, end: u64) -> BTreeSet<Owner> {
        self.locks
            .iter()
            .filter(|l| l.conflicts(owner, kind, start, end))
            .map(|l| l.owner)
            .collect()
    }

    /// Sets (`Some(kind)`) or clears (`None`) `start..end` for `owner`,
    /// replacing whatever the owner held there, splitting its locks that
    /// reach outside and merging touching locks of the same kind. No
    /// conflict check (callers test first).
    pub fn apply(&mut self, owner: Owner, kind: Option<LockKind>, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut out = Vec::with_capacity(self.locks.len() + 2);
        for l in self.locks.drain(..) {
            if l.owner != owner || !l.overlaps(start, end) {
                out.push(l);
                continue;
            }
            if l.start < start {
                out.push(Lock { end: start, ..l });
            }
            if l.end > end {
                out.push(Lock { start: end, ..l });
            }
        }
        if let Some(kind) = kind {
            let (mut s, mut e) = (start, end);
            out.retain(|l| {
                let touches = l.owner == owner && l.kind == kind && (l.end == s || l.start == e);
                if touches {
                    s = s.min(l.start);
                    e = e.max(l.end);
                }
                !touches
            });
            // A lock touching on the left may have been seen before the
            // one on the right extended `e` (or the reverse): one more pass.
            out.retain(|l| {
                let touches = l.owner == owner && l.kind == kind && (l.end == s || l.start == e);
                if touches {
                    s = s.min(l.start);
                    e = e.max(l.end);
                }
                !touches
            });
            out.push(Lock {
                owner,
                kind,
                start: s,
                end: e,
            });
        }
        out.sort_by_key(|l| (l.start, l.end));
        self.locks = out;
    }

    /// Drops every lock of `owner`; true if it held any.
    pub fn release(&mut self, owner: Owner) -> bool {
        let before = self.locks.len();
        self.locks.retain(|l| l.owner != owner);
        before != self.locks.len()
    }

    /// The locks, sorted by start.
    pub fn locks(&self) -> &[Lock] {
        &self.locks
    }

    /// No lock held.
    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }
}

/// Identifies a blocked request registered with [`LockTable::begin_wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WaitId(u64);

#[derive(Clone, Copy, Debug)]
struct Waiting<F> {
    id: WaitId,
    owner: Owner,
    file: F,
    kind: LockKind,
    start: u64,
    end: u64,
}

/// What a request met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// A conflicting lock is held (`EAGAIN` for `F_SETLK`; `F_SETLKW`
    /// waits).
    Blocked(Lock),
}

/// Every file's locks (files named by `F`, e.g. an inode number) and the
/// requests waiting for them.
#[derive(Clone, Debug)]
pub struct LockTable<F: Ord + Copy> {
    files: BTreeMap<F, FileLocks>,
    waiting: Vec<Waiting<F>>,
    next_wait: u64,
}

impl<F: Ord + Copy> Default for LockTable<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Ord + Copy> LockTable<F> {
    /// An empty table.
    pub const fn new() -> Self {
        LockTable {
            files: BTreeMap::new(),
            waiting: Vec::new(),
            next_wait: 1,
        }
    }

    /// `F_GETLK`: the first lock of `file` that would block the request.
    pub fn test(
        &self,
        file: F,
        owner: Owner,
        kind: LockKind,
        start: u64,
        end: u64,
    ) -> Option<Lock> {
        self.files
            .get(&file)
            .and_then(|f| f.conflict(owner, kind, start, end))
    }

    /// `F_SETLK`: sets or clears the range unless another owner's lock
    /// conflicts.
    pub fn set(
        &mut self,
        file: F,
        owner: Owner,
        kind: Option<LockKind>,
        start: u64,
        end: u64,
    ) -> Result<(), SetError> {
        if let Some(k) = kind
            && let Some(l) = self.test(file, owner, k, start, end)
        {
            return Err(SetError::Blocked(l));
        }
        let f = self.files.entry(file).or_default();
        f.apply(owner, kind, start, end);
        if f.is_empty() {
            self.files.remove(&file);
        }
        Ok(())
    }

    /// Registers a request that is about to wait, after [`Self::set`]
    /// found it blocked; `EDEADLK` (nothing registered) if an owner it
    /// would wait for is itself waiting, directly or through others, for
    /// `owner`.
    pub fn begin_wait(
        &mut self,
        file: F,
        owner: Owner,
        kind: LockKind,
        start: u64,
        end: u64,
    ) -> Result<WaitId, Errno> {
        if self.would_deadlock(file, owner, kind, start, end) {
            return Err(Errno::EDEADLK);
        }
        let id = WaitId(self.next_wait);
        self.next_wait += 1;
        self.waiting.push(Waiting {
            id,
            owner,
            file,
            kind,
            start,
            end,
        });
        Ok(id)
    }

    /// The request `id` stopped waiting (granted, interrupted or failed).
    pub fn end_wait(&mut self, id: WaitId) {
        self.waiting.retain(|w| w.id != id);
    }

    fn blockers(
        &self,
        file: F,
        owner: Owner,
        kind: LockKind,
        start: u64,
        end: u64,
    ) -> BTreeSet<Owner> {
        self.files
            .get(&file)
            .map(|f| f.blockers(owner, kind, start, end))
            .unwrap_or_default()
    }

    fn would_deadlock(&self, file: F, owner: Owner, kind: LockKind, start: u64, end: u64) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Owner> = self
            .blockers(file, owner, kind, start, end)
            .into_iter()
            .collect();
        while let Some(b) = todo.pop() {
            if b == owner {
                return true;
            }
            if !seen.insert(b) {
                continue;
            }
            for w in self.waiting.iter().filter(|w| w.owner == b) {
                todo.extend(self.blockers(w.file, w.owner, w.kind, w.start, w.end));
            }
        }
        false
    }

    /// Drops `owner`'s locks on `file` (a process's, when it closes a
    /// descriptor of the file); true if any went.
    pub fn release_file(&mut self, file: F, owner: Owner) -> bool {
        let Some(f) = self.files.get_mut(&file) else {
            return false;
        };
        let changed = f.release(owner);
        if f.is_empty() {
            self.files.remove(&file);
        }
        changed
    }

    /// Drops every lock of `owner` (a description that went); true if any.
    pub fn release_owner(&mut self, owner: Owner) -> bool {
        let mut changed = false;
        self.files.retain(|_, f| {
            changed |= f.release(owner);
            !f.is_empty()
        });
        changed
    }

    /// The locks of `file`.
    pub fn locks(&self, file: F) -> &[Lock] {
        self.files.get(&file).map_or(&[], |f| f.locks())
    }

    /// Files with locks.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Requests waiting.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }
}
