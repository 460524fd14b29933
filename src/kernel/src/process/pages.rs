//! An address space's page records (what backs each mapped page), split
//! into [`SHARDS`] shards with a lock each, so that faults in different
//! parts of the address space install their pages at the same time (issue
//! 17). The records of one leaf (`cairn_unix::pagemap`, 256 KiB of address
//! space) are all in one shard: leaf `n` is in shard `n % SHARDS`.
//!
//! **What it does not own.** The vmaps (the `aspace` lock), the page-table
//! entries and what the records hold: `process::aspace` keeps a record and
//! its entry in step under the record's shard lock.
//!
//! **Lock.** `aspace.pages` (one class for every shard; SpinLock), taken
//! after `aspace` if both are held, and never two shards at once; under it
//! `pagecache.node`, `aspace.pins`, `mm.page_tables`, heap locks. Callers
//! in any thread context, with or without the kernel lock.

use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock, SpinLockGuard};
use cairn_unix::pagemap::{LEAF_SPAN, PageMap};

/// Shards of the page records.
pub const SHARDS: usize = 16;

pub(crate) static PAGES_CLASS: LockClass = LockClass::new("aspace.pages");

/// Page records keyed by page address, sharded by leaf (module doc).
pub struct Pages<T> {
    shards: [SpinLock<PageMap<T>>; SHARDS],
}

impl<T> Default for Pages<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The shard holding the leaf of `addr`.
fn shard_of(addr: u64) -> usize {
    ((addr / LEAF_SPAN) % SHARDS as u64) as usize
}

impl<T> Pages<T> {
    pub fn new() -> Self {
        Pages {
            shards: core::array::from_fn(|_| SpinLock::new(&PAGES_CLASS, PageMap::new())),
        }
    }

    /// The records of the leaf of page `addr` (and of the other leaves of
    /// its shard), locked.
    pub fn lock(&self, addr: u64) -> SpinLockGuard<'_, PageMap<T>> {
        self.shards[shard_of(addr)].lock()
    }

    /// Records held (each shard locked in turn: a snapshot only if nothing
    /// changes them meanwhile).
    pub fn count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Calls `f(records, from, to)` for each leaf holding records in
    /// `[start, end)`, in address order, with its shard locked and `[from,
    /// to)` the part of the range in that leaf; `f` returns where to go on
    /// from (`to` to go on to the next leaf, `end` to stop). One shard lock
    /// is held at a time.
    pub fn for_each_leaf(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut PageMap<T>, u64, u64) -> u64,
    ) {
        let mut at = start;
        while at < end {
            // The leaf of `at`, when it exists, comes first; otherwise the
            // lowest next leaf of any shard.
            let own = self.lock(at).next_leaf(at, end);
            let next = if own == Some(at & !(LEAF_SPAN - 1)) {
                own
            } else {
                self.shards
                    .iter()
                    .filter_map(|s| s.lock().next_leaf(at, end))
                    .min()
            };
            let Some(base) = next else {
                return;
            };
            let (from, to) = (at.max(base), (base + LEAF_SPAN).min(end));
            let mut map = self.lock(base);
            at = f(&mut map, from, to);
        }
    }

    /// The addresses of the records in `[start, end)`.
    pub fn addresses(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        self.for_each_leaf(start, end, |map, from, to| {
            out.extend(map.range(from, to).map(|(a, _)| a));
            to
        });
        out
    }
}
