//! Truncate ([`Node::truncate`]), hole punching ([`Node::punch`]: the
//! same page rules over a range) and [`Node::invalidate_clean`].
//!
//! When a file shrinks, the kernel calls `truncate` *before* the
//! filesystem frees the storage past the new end, and tells the filesystem
//! from the completion. A truncate to `new_len` works in passes, each under
//! the node lock in kernel-lock context; let `keep = ⌈new_len / PAGE_SIZE⌉`:
//!
//! * **Pages wholly past the end** (index ≥ `keep`):
//!   - settled and unheld (ACTIVE or DIRTY; no pin, lease, mapping or
//!     waiter): [`Page::discard`]ed — off the tree and the LRU, the data
//!     dropped (a dirty page is never written back), the frame freed;
//!   - settled but held (pinned by a [`Pages`] or an operation still
//!     finishing, or mapped by a [`Mapped`]): **detached** — moved out of
//!     the tree into the node's detached set, off the LRU, in its state.
//!     Its holders keep reading (and storing through a shared mapping) the
//!     old frame until they drop it; nothing else reaches it: no later
//!     read, fault or write finds it (a new page is made at that index if
//!     the file grows again), writeback never sees it (a detached DIRTY
//!     page is never written), eviction neither. The last unpin or unmap
//!     discards it and frees the frame;
//!   - busy — claimed or in flight (ALLOC, READING, WRITING) or leased by
//!     a writer (NEW, or a write between prepare and commit): waited for
//!     ([`Want::Settled`]), as sync waits, then the pass runs again;
//!   - FREE (an entry kept only by pins of a failed fill): left alone, it
//!     has no content and leaves the tree when unpinned.
//! * **The page holding the new end** (if `new_len` is not page-aligned
//!   and the page has a frame): once settled, bytes `new_len ..` of it are
//!   zeroed in the frame and its dirty sectors past the end are dropped
//!   ([`Page::truncate_tail`]); it stays dirty or clean as it was (a DIRTY
//!   page with no dirty sector left becomes ACTIVE). A busy one is waited
//!   for, like the others.
//! * The readahead state is reset, and a node with nothing left to write
//!   leaves its volume's dirty list.
//!
//! A pass that had to wait runs again when everything it waited for has
//! settled (through the runqueue, in kernel-lock context), until a pass
//! finds nothing busy; `done` then runs at once, in that same kernel-lock
//! section. No other kernel-lock code runs between the last pass and
//! `done`, and no bh completion can bring back a page past the end (none
//! has I/O in flight there), so `done` may tell the filesystem with no
//! window.
//!
//! From the start of the truncate, the node also *caps* its length at
//! `new_len` ([`Node::file_len`]): reads, faults, readahead, fills and the
//! old length a write sees are no longer than that until the backing's
//! length is seen at or below it (checked by every such operation, at the
//! start of every truncate and right after `done`). A fill of the page
//! holding the end zeroes the bytes past the length it used, so the old
//! bytes still on disk in the last sector are not read back either. So
//! while a truncate waits, and if the kernel tells the filesystem only
//! after `done` (a thread woken by it), nothing old past the new end comes
//! back into the cache in between.
//!
//! What the kernel must do (as Linux does under `i_rwsem`):
//! * keep writes (and shared write faults, which reserve) to the file out
//!   between `done` and the filesystem's truncate, if it tells the
//!   filesystem after `done` returns: such a write reserves against the
//!   old length, and the filesystem's truncate then frees what it
//!   reserved. (Writes while the truncate waits are fine: they count as
//!   before it, and the last pass drops what they wrote past the end.)
//! * apply one truncate of a file at a time (pagecache, then filesystem):
//!   a grow whose filesystem change lands before that of an earlier
//!   shrink would leave the cap at the shrink's length.
//!
//! Writeback ignores the cap (it maps through the backing's own length):
//! until the filesystem applies the truncate, the sectors past it are
//! still the file's, so writing a page there is harmless, and failing it
//! with EIO (no sector) would be wrong.
//!
//! A read racing with a truncate returns the old content (it pinned the
//! pages first: they may be detached under it, it keeps them) or the new
//! one (it started after the truncate: it sees the capped length); the
//! page holding the new end is zeroed in place, so a reader that pinned it
//! before and copies after sees zeros past the new end.
//!
//! Contexts: `truncate` kernel-lock; the passes after a wait kernel-lock
//! (through the runqueue); `invalidate_clean` kernel-lock or bh. Locks:
//! `pagecache.node`, with `pagecache.lru` (pages leave the LRU) or
//! `pagecache.volume` (the node leaves the dirty list) nested under it.
//! Frames are freed and waiters woken after the node lock is released.

use crate::cache::bump;
use crate::io::{Gather, Held, wake};
use crate::node::{MapAhead, Node, Readahead, Wakes, mask_within};
use crate::page::{PageState, Want};
use crate::run_or_defer;
use crate::{Completion, Errno, PAGE_SIZE, assert_kernel_lock};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use core::sync::atomic::Ordering;

#[cfg(doc)]
use crate::node::{Mapped, Pages};
#[cfg(doc)]
use crate::page::Page;

const PS: u64 = PAGE_SIZE as u64;

impl Node {
    /// Drops the cached data of this file past `new_len`, before the
    /// filesystem frees the storage there: see the module doc of
    /// `truncate.rs` for the rules (pages wholly past the end discarded,
    /// never written back; held ones detached, freed when their last
    /// holder lets go; busy ones waited for; the page holding the new end
    /// zeroed past it). `done` runs in kernel-lock context right after the
    /// last pass, with no other kernel-lock code in between: call the
    /// filesystem's truncate there. It gets `Ok(())` (there is no failure
    /// today; a writeback error recorded on the node stays for the next
    /// [`Node::sync`]). Growing the file (`new_len` past its end) only
    /// zeroes the tail of the last page, which holds zeros already.
    /// Kernel-lock context.
    pub fn truncate(self: &Arc<Self>, new_len: u64, done: Completion<Result<(), Errno>>) {
        assert_kernel_lock("Node::truncate");
        bh_safe_alloc(|| {
            // Lifts the cap of an earlier truncate the filesystem has
            // applied since (it may have grown the file back already). A
            // backing error leaves the cap, which is then only lower.
            let _ = self.file_len();
            self.cap.fetch_min(new_len, Ordering::AcqRel);
            self.truncate_pass(new_len, done)
        })
    }

    /// One pass (kernel-lock): see the module doc.
    fn truncate_pass(self: &Arc<Self>, new_len: u64, done: Completion<Result<(), Errno>>) {
        let cache = self.cache().clone();
        let keep = new_len.div_ceil(PS);
        let gather = Gather::new();
        let mut waits = 0;
        let mut frees = Vec::new();
        let mut wakes = Wakes::new();
        let mut truncated = 0;
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let (dropped, w) = drop_pages(
                inner,
                keep..u64::MAX,
                &gather,
                &mut frees,
                &mut wakes,
                &cache,
            );
            truncated += dropped;
            waits += w;
            let tail = (new_len % PS) as usize;
            let k = new_len / PS;
            if let (true, Some(p)) = (tail != 0, inner.pages.get_mut(&k)) {
                if !p.settled() {
                    if p.wait(Want::Settled, gather.clone()).is_none() {
                        gather.add(1);
                        waits += 1;
                    }
                } else if p.state() != PageState::Free {
                    let frame = p.frame().expect("a settled page with content has a frame");
                    frame.view().zero(tail, PAGE_SIZE - tail);
                    p.truncate_tail(mask_within(k, new_len), &mut wakes);
                    cache.lru_sync(self.me(), &mut inner.pages, [k]);
                }
            }
            inner.ra = Readahead::default();
            inner.map_ra = MapAhead::default();
            if !inner.pages.values().any(|p| p.needs_writeback()) {
                self.leave_dirty_list(inner);
            }
        }
        bump(&cache.stats.truncated, truncated);
        cache.free_frames(frees);
        wake(wakes);
        if waits == 0 {
            done.complete(&*cache.runqueue, Ok(()));
            // If `done` told the filesystem, the cap goes now (on a
            // backing error, at the next look).
            let _ = self.file_len();
            return;
        }
        let node = Held::new(self.clone());
        let runqueue = cache.runqueue.clone();
        gather.set_finish(move |_| {
            run_or_defer(&*runqueue, move || {
                bh_safe_alloc(|| {
                    let n = node.arc().clone();
                    n.truncate_pass(new_len, done);
                    drop(node);
                })
            })
        });
        gather.settle(Ok(()));
    }

    /// Drops the cached pages `[first, end)` of this file (a punched
    /// hole, before the filesystem frees its storage): as a truncate does
    /// with pages past the end — settled unheld ones discarded, never
    /// written back; held ones detached (their holders keep the old
    /// frame); busy ones waited for, then another pass. `done` runs in
    /// kernel-lock context right after the last pass, with no other
    /// kernel-lock code in between: free the storage there. The file's
    /// length does not change. Kernel-lock context.
    pub fn punch(self: &Arc<Self>, first: u64, end: u64, done: Completion<Result<(), Errno>>) {
        assert_kernel_lock("Node::punch");
        let end = end.max(first);
        bh_safe_alloc(|| {
            let cache = self.cache().clone();
            let gather = Gather::new();
            let mut frees = Vec::new();
            let mut wakes = Wakes::new();
            let waits;
            {
                let mut guard = self.inner.lock();
                let inner = &mut *guard;
                let (dropped, w) =
                    drop_pages(inner, first..end, &gather, &mut frees, &mut wakes, &cache);
                bump(&cache.stats.truncated, dropped);
                waits = w;
                if !inner.pages.values().any(|p| p.needs_writeback()) {
                    self.leave_dirty_list(inner);
                }
            }
            cache.free_frames(frees);
            wake(wakes);
            if waits == 0 {
                done.complete(&*cache.runqueue, Ok(()));
                return;
            }
            let node = Held::new(self.clone());
            let runqueue = cache.runqueue.clone();
            gather.set_finish(move |_| {
                run_or_defer(&*runqueue, move || {
                    let n = node.arc().clone();
                    n.punch(first, end, done);
                    drop(node);
                })
            });
            gather.settle(Ok(()));
        })
    }

    /// Drops every clean page of this file that nobody holds (ACTIVE, no
    /// pin, lease, mapping or waiter), as eviction would; returns how many
    /// went. Dirty, in-flight and held pages stay. Kernel-lock or bh
    /// context, no pagecache lock held.
    pub fn invalidate_clean(&self) -> usize {
        self.invalidate_clean_range(0, u64::MAX)
    }

    /// [`Node::invalidate_clean`] for pages `[first, end)` only
    /// (`POSIX_FADV_DONTNEED`).
    pub fn invalidate_clean_range(&self, first: u64, end: u64) -> usize {
        if first >= end {
            return 0;
        }
        bh_safe_alloc(|| {
            let cache = self.cache().clone();
            let mut frees = Vec::new();
            let mut wakes = Wakes::new();
            {
                let mut inner = self.inner.lock();
                let victims: Vec<u64> = inner
                    .pages
                    .range(first..end)
                    .filter(|(_, p)| p.evictable())
                    .map(|(&i, _)| i)
                    .collect();
                let mut keys = Vec::new();
                for i in victims {
                    let mut p = inner.pages.remove(&i).expect("listed page");
                    keys.extend(p.lru_key());
                    p.set_lru_key(None);
                    frees.push(p.evict(&mut wakes));
                }
                if !keys.is_empty() {
                    cache.lru_forget(keys);
                }
            }
            debug_assert!(wakes.is_empty(), "an evictable page had waiters");
            let n = frees.len();
            cache.free_frames(frees);
            n
        })
    }
}

/// Takes the settled pages of `range` out of `inner` (truncate and
/// punch): unheld ones discarded (never written back), held ones
/// detached; busy ones get a wait on `gather`. Returns (pages taken,
/// waits added).
fn drop_pages(
    inner: &mut crate::node::NodeInner,
    range: core::ops::Range<u64>,
    gather: &Arc<Gather>,
    frees: &mut Vec<crate::frame::Frame>,
    wakes: &mut Wakes,
    cache: &Arc<crate::cache::PageCache>,
) -> (u64, usize) {
    let mut keys = Vec::new();
    let mut detach_epoch = None;
    let mut waits = 0;
    let mut taken = 0;
    let listed: Vec<u64> = inner.pages.range(range).map(|(&i, _)| i).collect();
    for i in listed {
        let p = inner.pages.get_mut(&i).expect("listed page");
        if !p.settled() {
            if p.wait(Want::Settled, gather.clone()).is_none() {
                gather.add(1);
                waits += 1;
            }
            continue;
        }
        if p.state() == PageState::Free {
            continue;
        }
        let mut p = inner.pages.remove(&i).expect("listed page");
        keys.extend(p.lru_key());
        p.set_lru_key(None);
        taken += 1;
        if p.unheld() {
            frees.push(p.discard(wakes));
        } else {
            let e = *detach_epoch.get_or_insert_with(|| {
                inner.epoch += 1;
                inner.epoch
            });
            inner.detached.insert((i, e), p);
        }
    }
    if !keys.is_empty() {
        cache.lru_forget(keys);
    }
    (taken, waits)
}
