//! File descriptor tables, generic over the kernel's open-file type.
//!
//! Owns: the mapping fd → (open file, `FD_CLOEXEC`), lowest-free
//! allocation, dup/dup2/dup3/`F_DUPFD` semantics and the `RLIMIT_NOFILE`
//! limit. Closing returns the file instead of releasing it: the caller
//! drops it (which may flush or close the file in the filesystem) **after**
//! releasing the fd-table lock, since the fd table is first in the lock
//! order fd table → filesystem → address space (DESIGN.md §4 rule 4).
//!
//! Contexts: kernel-lock (syscalls; exit). Locks: none — the kernel keeps
//! the table under its fd-table lock (or the kernel lock alone).

use alloc::vec::Vec;

use crate::Errno;

/// Linux's default soft `RLIMIT_NOFILE`.
pub const DEFAULT_NOFILE: usize = 1024;
/// The most descriptors a table ever allows (Linux's `nr_open` default).
pub const NR_OPEN: usize = 1 << 20;

#[derive(Clone, Debug)]
struct Slot<T> {
    file: T,
    cloexec: bool,
}

/// One process's descriptors.
#[derive(Clone, Debug)]
pub struct FdTable<T> {
    slots: Vec<Option<Slot<T>>>,
    /// No free slot below this index.
    low_free: usize,
    open: usize,
    limit: usize,
}

impl<T> Default for FdTable<T> {
    fn default() -> Self {
        Self::new(DEFAULT_NOFILE)
    }
}

impl<T> FdTable<T> {
    /// An empty table allowing descriptors `0..limit` (capped at
    /// [`NR_OPEN`]).
    pub fn new(limit: usize) -> Self {
        FdTable {
            slots: Vec::new(),
            low_free: 0,
            open: 0,
            limit: limit.min(NR_OPEN),
        }
    }

    /// The current limit (`RLIMIT_NOFILE` soft value).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets the limit (prlimit64/setrlimit). `EPERM` above [`NR_OPEN`].
    /// Descriptors already open above the new limit stay open; only new
    /// allocations obey it.
    pub fn set_limit(&mut self, limit: u64) -> Result<(), Errno> {
        let l = usize::try_from(limit).map_err(|_| Errno::EPERM)?;
        if l > NR_OPEN {
            return Err(Errno::EPERM);
        }
        self.limit = l;
        Ok(())
    }

    /// Number of open descriptors.
    pub fn count(&self) -> usize {
        self.open
    }

    fn index(fd: i32) -> Result<usize, Errno> {
        usize::try_from(fd).map_err(|_| Errno::EBADF)
    }

    fn slot(&self, fd: i32) -> Result<&Slot<T>, Errno> {
        let i = Self::index(fd)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    /// The open file of `fd`; `EBADF` if none.
    pub fn get(&self, fd: i32) -> Result<&T, Errno> {
        self.slot(fd).map(|s| &s.file)
    }

    /// Lowest free descriptor ≥ `min` below the limit.
    fn free_from(&self, min: usize) -> Option<usize> {
        let start = min.max(self.low_free);
        let found = (start..self.slots.len().min(self.limit)).find(|&i| self.slots[i].is_none());
        let fd = found.unwrap_or_else(|| start.max(self.slots.len()));
        (fd < self.limit).then_some(fd)
    }

    fn place(&mut self, fd: usize, file: T, cloexec: bool) -> Option<T> {
        if self.slots.len() <= fd {
            self.slots.resize_with(fd + 1, || None);
        }
        let old = self.slots[fd].replace(Slot { file, cloexec });
        if old.is_none() {
            self.open += 1;
        }
        if fd == self.low_free {
            self.low_free = fd + 1;
        }
        old.map(|s| s.file)
    }

    fn as_fd(i: usize) -> i32 {
        // Every index is below the limit, itself at most NR_OPEN.
        i32::try_from(i).unwrap_or(i32::MAX)
    }

    /// Installs `file` at the lowest free descriptor. `EMFILE` if none is
    /// below the limit (the file is handed back with the error so the
    /// caller can release it outside the lock).
    pub fn alloc(&mut self, file: T, cloexec: bool) -> Result<i32, (Errno, T)> {
        self.alloc_from(0, file, cloexec)
    }

    /// Installs `file` at the lowest free descriptor ≥ `min` (`F_DUPFD`).
    /// `EINVAL` if `min` is negative or not below the limit, `EMFILE` if
    /// no descriptor is free.
    pub fn alloc_from(&mut self, min: i32, file: T, cloexec: bool) -> Result<i32, (Errno, T)> {
        let Ok(min) = usize::try_from(min) else {
            return Err((Errno::EINVAL, file));
        };
        if min >= self.limit {
            return Err((Errno::EINVAL, file));
        }
        match self.free_from(min) {
            Some(fd) => {
                self.place(fd, file, cloexec);
                Ok(Self::as_fd(fd))
            }
            None => Err((Errno::EMFILE, file)),
        }
    }

    /// Closes `fd` and returns its file for the caller to release.
    pub fn close(&mut self, fd: i32) -> Result<T, Errno> {
        let i = Self::index(fd)?;
        let slot = self
            .slots
            .get_mut(i)
            .and_then(Option::take)
            .ok_or(Errno::EBADF)?;
        self.open -= 1;
        self.low_free = self.low_free.min(i);
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        Ok(slot.file)
    }

    /// `FD_CLOEXEC` of `fd` (`F_GETFD`).
    pub fn cloexec(&self, fd: i32) -> Result<bool, Errno> {
        self.slot(fd).map(|s| s.cloexec)
    }

    /// Sets `FD_CLOEXEC` of `fd` (`F_SETFD`).
    pub fn set_cloexec(&mut self, fd: i32, on: bool) -> Result<(), Errno> {
        let i = Self::index(fd)?;
        let s = self
            .slots
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)?;
        s.cloexec = on;
        Ok(())
    }

    /// Open descriptors, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (Self::as_fd(i), &s.file)))
    }

    /// Removes every descriptor (exit) and returns the files, ascending by
    /// descriptor, for the caller to release outside the lock.
    pub fn take_all(&mut self) -> Vec<(i32, T)> {
        let slots = core::mem::take(&mut self.slots);
        self.open = 0;
        self.low_free = 0;
        slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (Self::as_fd(i), s.file)))
            .collect()
    }

    /// Closes the `FD_CLOEXEC` descriptors (exec) and returns their files.
    pub fn close_on_exec(&mut self) -> Vec<(i32, T)> {
        let fds: Vec<i32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.cloexec))
            .map(|(i, _)| Self::as_fd(i))
            .collect();
        fds.into_iter()
            .filter_map(|fd| self.close(fd).ok().map(|f| (fd, f)))
            .collect()
    }
}

impl<T: Clone> FdTable<T> {
    /// `dup`: a new lowest descriptor for `fd`'s file, `FD_CLOEXEC` clear.
    pub fn dup(&mut self, fd: i32) -> Result<i32, Errno> {
        let f = self.get(fd)?.clone();
        self.alloc(f, false).map_err(|(e, _)| e)
    }

    /// `fcntl(F_DUPFD / F_DUPFD_CLOEXEC)`.
    pub fn dup_from(&mut self, fd: i32, min: i32, cloexec: bool) -> Result<i32, Errno> {
        let f = self.get(fd)?.clone();
        self.alloc_from(min, f, cloexec).map_err(|(e, _)| e)
    }

    /// `dup2`: makes `new` refer to `old`'s file (closing what `new` had,
    /// returned for the caller to release). `old == new` only checks that
    /// `old` is open. `EBADF` if `old` is not open or `new` is negative or
    /// not below the limit.
    pub fn dup2(&mut self, old: i32, new: i32) -> Result<(i32, Option<T>), Errno> {
        let f = self.get(old)?.clone();
        if old == new {
            return Ok((new, None));
        }
        self.install(new, f, false)
    }

    /// `dup3`: like dup2 with `O_CLOEXEC` as `cloexec`; `EINVAL` if
    /// `old == new`.
    pub fn dup3(&mut self, old: i32, new: i32, cloexec: bool) -> Result<(i32, Option<T>), Errno> {
        if old == new {
            return Err(Errno::EINVAL);
        }
        let f = self.get(old)?.clone();
        self.install(new, f, cloexec)
    }

    fn install(&mut self, new: i32, f: T, cloexec: bool) -> Result<(i32, Option<T>), Errno> {
        let i = Self::index(new)?;
        if i >= self.limit {
            return Err(Errno::EBADF);
        }
        let old = self.place(i, f, cloexec);
        Ok((new, old))
    }
}
