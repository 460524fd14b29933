//! Futex wait queues, generic over the kernel's waiter handle (a thread
//! reference).
//!
//! Owns: per-address FIFO queues of waiters with their bitsets; wait
//! (after the caller's value check), wake (plain and bitset), requeue and
//! cmp_requeue, and cancellation for timeouts and signals. It never sleeps,
//! wakes or reads user memory: it returns the handles to wake.
//!
//! Contexts: kernel-lock (syscalls, timer expiry run from the runqueue).
//! Locks: none; the kernel keeps the table under one lock — the kernel
//! lock, or a futex-table lock — called *the table lock* below.
//!
//! # No lost wake-ups: the protocol
//!
//! `FUTEX_WAIT(uaddr, val)` in the kernel:
//!
//! 1. Take the table lock.
//! 2. Read the 32-bit word at `uaddr`. The read must happen **without
//!    releasing the lock** between it and step 3. If the page is not
//!    present and filling it would sleep (which releases the kernel lock),
//!    do not count that read: fault the page in, then go back to step 1.
//!    An unreadable word is `EFAULT`.
//! 3. [`FutexTable::wait`] with the value read and `val`: `EAGAIN` if they
//!    differ; otherwise the waiter is queued and gets a [`WaitId`].
//! 4. Mark the thread blocked, arm the timeout if any, then release the
//!    lock and sleep (marking blocked before releasing makes a wake that
//!    comes right after the release find a blocked thread to make
//!    runnable).
//! 5. On wake-up: if woken by [`FutexTable::wake`]/requeue, return 0. On a
//!    timeout or signal, take the lock and [`FutexTable::cancel`]: `Some`
//!    means still queued → `ETIMEDOUT`/`EINTR`; `None` means a wake won the
//!    race → return 0 (the wake was consumed).
//!
//! `FUTEX_WAKE` runs after the waker's user-space store to the word. It
//! takes the table lock, so it runs either before step 1 of a waiter (which
//! then reads the new value and gets `EAGAIN`) or after step 3 (the waiter
//! is queued and is woken). `FUTEX_CMP_REQUEUE` reads its word under the
//! lock the same way and passes it to [`FutexTable::cmp_requeue`].
//!
//! Keys are user addresses: cairn runs one process per address space, so
//! private and shared futexes are the same thing.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::Errno;

/// `FUTEX_BITSET_MATCH_ANY`: the bitset of plain wait and wake.
pub const MATCH_ANY: u32 = u32::MAX;

/// Names one queued waiter (for [`FutexTable::cancel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitId(u64);

#[derive(Clone, Debug)]
struct Waiter<W> {
    id: WaitId,
    bitset: u32,
    handle: W,
}

/// What a requeue did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requeued<W> {
    /// Handles to wake, in queue order.
    pub woken: Vec<W>,
    /// How many waiters moved to the second address.
    pub requeued: usize,
}

impl<W> Requeued<W> {
    /// The syscall's return value: woken + requeued.
    pub fn total(&self) -> usize {
        self.woken.len() + self.requeued
    }
}

/// The futex queues of one address space.
#[derive(Clone, Debug)]
pub struct FutexTable<W> {
    queues: BTreeMap<u64, VecDeque<Waiter<W>>>,
    /// Where each queued waiter is.
    index: BTreeMap<WaitId, u64>,
    next: u64,
}

impl<W> Default for FutexTable<W> {
    fn default() -> Self {
        Self::new()
    }
}

fn check_addr(addr: u64) -> Result<(), Errno> {
    if addr % 4 != 0 {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

impl<W> FutexTable<W> {
    /// An empty table.
    pub fn new() -> Self {
        FutexTable {
            queues: BTreeMap::new(),
            index: BTreeMap::new(),
            next: 0,
        }
    }

    /// Waiters queued on `addr`.
    pub fn waiters(&self, addr: u64) -> usize {
        self.queues.get(&addr).map_or(0, VecDeque::len)
    }

    /// Waiters queued in total.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True if nobody waits.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Step 3 of the protocol: queues `handle` on `addr` if `current` (the
    /// word read under the table lock) equals `expected`. `EINVAL` for a
    /// misaligned address or a zero bitset, `EAGAIN` if the values differ.
    pub fn wait(
        &mut self,
        addr: u64,
        current: u32,
        expected: u32,
        bitset: u32,
        handle: W,
    ) -> Result<WaitId, Errno> {
        check_addr(addr)?;
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        if current != expected {
            return Err(Errno::EAGAIN);
        }
        let id = WaitId(self.next);
        self.next += 1;
        self.queues
            .entry(addr)
            .or_default()
            .push_back(Waiter { id, bitset, handle });
        self.index.insert(id, addr);
        Ok(id)
    }

    /// Removes a waiter whose wait ended by timeout or signal. `None` if it
    /// is no longer queued (a wake already took it: the caller reports
    /// success).
    pub fn cancel(&mut self, id: WaitId) -> Option<W> {
        let addr = self.index.remove(&id)?;
        let q = self.queues.get_mut(&addr)?;
        let pos = q.iter().position(|w| w.id == id)?;
        let w = q.remove(pos);
        if q.is_empty() {
            self.queues.remove(&addr);
        }
        w.map(|w| w.handle)
    }

    /// `FUTEX_WAKE_BITSET` (and `FUTEX_WAKE` with [`MATCH_ANY`]): removes
    /// and returns, oldest first, up to `n` waiters on `addr` whose bitset
    /// shares a bit with `bitset`. As in Linux, `n <= 0` still wakes one.
    /// `EINVAL` for a misaligned address or a zero bitset.
    pub fn wake(&mut self, addr: u64, n: i32, bitset: u32) -> Result<Vec<W>, Errno> {
        check_addr(addr)?;
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        let n = usize::try_from(n).unwrap_or(0).max(1);
        let mut out = Vec::new();
        let Some(q) = self.queues.get_mut(&addr) else {
            return Ok(out);
        };
        let mut keep = VecDeque::with_capacity(q.len());
        while let Some(w) = q.pop_front() {
            if out.len() < n && w.bitset & bitset != 0 {
                self.index.remove(&w.id);
                out.push(w.handle);
            } else {
                keep.push_back(w);
            }
        }
        if keep.is_empty() {
            self.queues.remove(&addr);
        } else {
            *q = keep;
        }
        Ok(out)
    }

    /// `FUTEX_REQUEUE`: wakes up to `nr_wake` waiters of `from` (oldest
    /// first) and moves up to `nr_requeue` of the rest, in order, to the
    /// tail of `to`'s queue. `EINVAL` for negative counts or misaligned
    /// addresses. Requeueing to the same address only wakes.
    pub fn requeue(
        &mut self,
        from: u64,
        to: u64,
        nr_wake: i32,
        nr_requeue: i32,
    ) -> Result<Requeued<W>, Errno> {
        check_addr(from)?;
        check_addr(to)?;
        let nr_wake = usize::try_from(nr_wake).map_err(|_| Errno::EINVAL)?;
        let nr_requeue = usize::try_from(nr_requeue).map_err(|_| Errno::EINVAL)?;
        let mut res = Requeued {
            woken: Vec::new(),
            requeued: 0,
        };
        let Some(mut q) = self.queues.remove(&from) else {
            return Ok(res);
        };
        while res.woken.len() < nr_wake {
            let Some(w) = q.pop_front() else { break };
            self.index.remove(&w.id);
            res.woken.push(w.handle);
        }
        if from != to {
            let mut moved = VecDeque::new();
            while res.requeued < nr_requeue {
                let Some(w) = q.pop_front() else { break };
                self.index.insert(w.id, to);
                moved.push_back(w);
                res.requeued += 1;
            }
            if !moved.is_empty() {
                self.queues.entry(to).or_default().append(&mut moved);
            }
        }
        if !q.is_empty() {
            self.queues.insert(from, q);
        }
        Ok(res)
    }

    /// `FUTEX_CMP_REQUEUE`: [`FutexTable::requeue`] if `current` (the word
    /// at `from`, read under the table lock) equals `expected`, else
    /// `EAGAIN` with nothing changed.
    pub fn cmp_requeue(
        &mut self,
        from: u64,
        to: u64,
        nr_wake: i32,
        nr_requeue: i32,
        current: u32,
        expected: u32,
    ) -> Result<Requeued<W>, Errno> {
        check_addr(from)?;
        check_addr(to)?;
        if nr_wake < 0 || nr_requeue < 0 {
            return Err(Errno::EINVAL);
        }
        if current != expected {
            return Err(Errno::EAGAIN);
        }
        self.requeue(from, to, nr_wake, nr_requeue)
    }

    /// Removes every waiter (address-space teardown) and returns their
    /// handles so the kernel can end their waits.
    pub fn take_all(&mut self) -> Vec<W> {
        self.index.clear();
        core::mem::take(&mut self.queues)
            .into_values()
            .flatten()
            .map(|w| w.handle)
            .collect()
    }
}
