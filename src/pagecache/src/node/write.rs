//! Writes: [`Node::write`] and the commit of a [`WriteBatch`]
//! (`release_write`).
//!
//! Owns: reserving the space with the backing (ENOSPC is the write's
//! error), getting the pages ready — whole pages (and pages whose
//! uncovered bytes all lie past the old end of file) taken NEW without
//! reading, partial pages filled first — leasing and pinning them, and on
//! commit marking the copied sectors dirty, aborting NEW pages not fully
//! copied (refilling them if others wait) and releasing the leases; the
//! lockless overwrite of cached, reserved pages ([`Node::write_cached`]).
//! Does not own: the fills (`fill.rs`), the [`WriteBatch`] handle and its
//! copies (`handles.rs`), writeback (`writeback.rs`).
//!
//! Contexts: `write` kernel-lock (it calls the backing). Its end
//! (`finish_write`) runs where the last fill or NEW page it waits for
//! settles: bh, or inline under the kernel lock if nothing was left to
//! wait for; a failed write defers its release to the kernel lock
//! (`run_or_defer`: releasing may start I/O). `release_write` kernel-lock
//! ([`WriteBatch::commit`] asserts it). The lockless overwrite
//! `write_cached` and its commit (`commit_cached`) any context but irq,
//! no kernel lock: it has no NEW page, so its commit frees nothing and
//! starts no fill, and the wake-ups of its leases' waiters are deferred
//! to the kernel lock (`run_or_defer`).
//!
//! Locks: the backing is called with no lock held. Then `pagecache.node`,
//! and under it `pagecache.volume` (`note_dirty`: the node joins its
//! volume's dirty list) and `pagecache.lru` (`lru_sync`). Frames are freed,
//! waiters woken and refills started after the node lock is released.

use super::fill::{Claim, ClaimKind};
use super::handles::{CACHED_MAX_PAGES, CachedWrite, WriteBatch};
use super::{CPage, Node, PS, Wakes, coverage, page_range};
use crate::frame::FrameView;
use crate::io::{self, Gather, Held, wake};
use crate::page::{PageState, Want};
use crate::{Completion, Errno, PAGE_SIZE, assert_kernel_lock, in_kernel_lock, run_or_defer};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;

/// What leasing a lockless overwrite's pages came to.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Lease {
    Leased,
    /// A page would become dirty: the caller's throttle decides.
    Clean,
    Refused,
}

impl Node {
    /// Writes `offset .. offset + len`: reserves the space with the
    /// filesystem (ENOSPC is reported here), gets the pages ready — whole
    /// pages (and pages whose uncovered bytes all lie past the old end of
    /// file) are taken NEW without reading, partial pages are filled first —
    /// leases and pins them, and hands `done` a [`WriteBatch`] to copy into
    /// and commit. Kernel-lock context.
    pub fn write(
        self: &Arc<Self>,
        offset: u64,
        len: usize,
        done: Completion<Result<WriteBatch, Errno>>,
    ) {
        assert_kernel_lock("Node::write");
        bh_safe_alloc(|| self.write_inner(offset, len, done))
    }

    fn write_inner(
        self: &Arc<Self>,
        offset: u64,
        len: usize,
        done: Completion<Result<WriteBatch, Errno>>,
    ) {
        let cache = self.cache().clone();
        if len == 0 {
            done.complete(&*cache.runqueue, Ok(WriteBatch::empty(offset)));
            return;
        }
        // The syscall layer refuses ranges past the largest file offset;
        // this only keeps the arithmetic below from overflowing.
        let Some(end) = offset
            .checked_add(len as u64)
            .filter(|&e| e <= i64::MAX as u64)
        else {
            done.complete(&*cache.runqueue, Err(Errno::EFBIG));
            return;
        };
        let old_len = match self.file_len() {
            Ok(l) => l,
            Err(e) => {
                done.complete(&*cache.runqueue, Err(e));
                return;
            }
        };
        if let Err(e) = self.backing.reserve(offset, len as u64) {
            done.complete(&*cache.runqueue, Err(e));
            return;
        }
        self.extended_to(end);
        let (first, last) = (offset / PS, (end - 1) / PS);
        let gather = Gather::new();
        let mut claims = Vec::new();
        let mut owned = alloc::vec![false; (last - first + 1) as usize];
        {
            let mut inner = self.inner.lock();
            let mut wakes = Wakes::new();
            for i in page_range(first, last) {
                let p = inner.pages.entry(i).or_default();
                p.pin();
                p.lease();
                if p.state() == PageState::Free {
                    p.claim(&mut wakes);
                    let keep = coverage(i, offset, end);
                    let ps = i * PS;
                    let head_gone = keep.start == 0 || ps >= old_len;
                    let tail_gone = keep.end == PAGE_SIZE || ps + keep.end as u64 >= old_len;
                    if head_gone && tail_gone {
                        owned[(i - first) as usize] = true;
                        gather.add(1);
                        claims.push(Claim {
                            index: i,
                            kind: ClaimKind::New {
                                keep,
                                owner: gather.clone(),
                            },
                            frame: None,
                        });
                        continue;
                    }
                    claims.push(Claim::fill(i));
                }
                match p.wait(Want::Writable, gather.clone()) {
                    None => gather.add(1),
                    Some(r) => debug_assert!(r.is_ok()),
                }
            }
            debug_assert!(wakes.is_empty());
        }
        self.start_fills(claims);
        let node = Held::new(self.clone());
        gather.set_finish(move |r| {
            node.arc()
                .clone()
                .finish_write(first, last, offset, len, owned, r, done)
        });
        gather.settle(Ok(()));
    }

    /// A lockless overwrite of `offset .. offset + len`: leases and pins
    /// its pages, lends them to `copy` as a [`CachedWrite`] (with no
    /// pagecache lock held), commits the bytes `copy` reports as copied
    /// (from the range's start) as dirty exactly as a locked write's commit
    /// does, and returns that count. `None`, with nothing changed and
    /// `copy` not called, unless the write needs nothing but the pages
    /// (the caller writes with [`Node::write`] under the kernel lock): the
    /// length is known, no truncate is pending and the range lies inside
    /// the file (no growth), it spans at most [`CACHED_MAX_PAGES`] pages,
    /// and every page of it is cached ACTIVE or DIRTY (not being written
    /// back: a writer waits for that) with the range's sectors reserved
    /// already (`Page::backed_mask`: no allocation). A page that is ACTIVE
    /// would become dirty: only if `may_dirty` (the caller's dirty-throttle
    /// verdict) says so; it is asked at most once, with no pagecache lock
    /// held, and only when the range holds such a page. The leases keep
    /// writeback (`begin_writeback` skips leased pages) and truncate (it
    /// waits for them to settle) off the pages while `copy` runs.
    ///
    /// Any context but irq; needs no kernel lock (the syscalls' lockless
    /// write path, on every cached `pwrite`): takes the node's lock once
    /// to lease (twice when it asks `may_dirty`) and once to commit, and
    /// allocates nothing unless the commit has waiters to wake (the views
    /// sit in the handle's inline array; wake-ups run in the runqueue's
    /// worker, or inline under the kernel lock).
    #[inline]
    pub fn write_cached(
        &self,
        offset: u64,
        len: usize,
        may_dirty: impl FnOnce() -> bool,
        copy: impl FnOnce(&mut CachedWrite) -> usize,
    ) -> Option<usize> {
        let known = self.known_len()?;
        let end = offset.checked_add(len as u64)?;
        if len == 0 || end > known {
            return None;
        }
        let mut batch = CachedWrite {
            offset,
            len,
            first: offset / PS,
            count: 0,
            views: [FrameView::NONE; CACHED_MAX_PAGES],
        };
        match self.lease_cached(&mut batch, false) {
            Lease::Leased => {}
            Lease::Refused => return None,
            Lease::Clean => {
                if !may_dirty() || self.lease_cached(&mut batch, true) != Lease::Leased {
                    return None;
                }
            }
        }
        let copied = copy(&mut batch).min(len);
        self.commit_cached(&batch, copied);
        Some(copied)
    }

    /// [`Node::write_cached`]'s leasing: leases and pins the pages of
    /// `b`'s range and fills in its views and `count`, or changes nothing
    /// and tells why not. An ACTIVE page is taken only `may_dirty`.
    fn lease_cached(&self, b: &mut CachedWrite, may_dirty: bool) -> Lease {
        let end = b.offset + b.len as u64;
        let (first, last) = (b.first, (end - 1) / PS);
        let count = (last - first + 1) as usize;
        if count > CACHED_MAX_PAGES {
            return Lease::Refused;
        }
        let check = |i: u64, p: &CPage| {
            let cov = coverage(i, b.offset, end);
            let need = io::sector_mask(cov.start, cov.end);
            if !p.writable() || p.backed_mask() & need != need {
                Lease::Refused
            } else if p.state() != PageState::Dirty && !may_dirty {
                Lease::Clean
            } else {
                Lease::Leased
            }
        };
        let mut guard = self.inner.lock();
        // A truncate caps the length before its first pass takes this
        // lock: either it is seen here, or the pass comes after these
        // leases and waits for them.
        if self.cap.load(core::sync::atomic::Ordering::Acquire) != u64::MAX {
            return Lease::Refused;
        }
        let inner = &mut *guard;
        let mut held: [Option<&mut CPage>; CACHED_MAX_PAGES] = Default::default();
        if count == 1 {
            // The common case (a 4 KiB pwrite): one lookup.
            let Some(p) = inner.pages.get_mut(&first) else {
                return Lease::Refused;
            };
            held[0] = Some(p);
        } else {
            let mut expect = first;
            for (&i, p) in inner.pages.range_mut(first..=last) {
                if i != expect {
                    return Lease::Refused;
                }
                held[(i - first) as usize] = Some(p);
                expect += 1;
            }
            if expect != last + 1 {
                return Lease::Refused;
            }
        }
        // Every page checked before any is leased: a refusal changes
        // nothing.
        for (k, p) in held.iter().flatten().enumerate() {
            match check(first + k as u64, p) {
                Lease::Leased => {}
                no => return no,
            }
        }
        for (view, p) in b.views.iter_mut().zip(held.iter_mut().flatten()) {
            p.pin();
            p.lease();
            *view = p.frame().expect("writable page has a frame").view();
        }
        b.count = count;
        Lease::Leased
    }

    /// Ends a lockless overwrite: marks the first `copied` bytes of `b`'s
    /// range dirty (a clean page joins the dirty list and leaves the LRU),
    /// releases the leases and pins. Its pages were ACTIVE or DIRTY and
    /// stay so (none NEW, none goes FREE), so it frees nothing and starts
    /// no I/O; the waiters of its leases (a sync's or truncate's wait for
    /// the page) may run kernel-lock completions: outside the kernel lock
    /// they are woken in the runqueue's worker.
    fn commit_cached(&self, b: &CachedWrite, copied: usize) {
        let cache = self.cache();
        let now = cache.clock();
        let (first, last) = (b.first, b.first + b.count as u64 - 1);
        let done_end = b.offset + copied as u64;
        // The wake-ups may outlive this call (the worker drops them).
        bh_safe_alloc(|| {
            let mut wakes = Wakes::new();
            {
                let mut guard = self.inner.lock();
                let inner = &mut *guard;
                let (mut dirtied, mut cleaned_out) = (false, false);
                let mut settle = |i: u64, p: &mut CPage| {
                    let done = coverage(i, b.offset, done_end);
                    if !done.is_empty() {
                        assert!(p.writable(), "committing into a {:?} page", p.state());
                        let mask = io::sector_mask(done.start, done.end);
                        cleaned_out |= p.mark_dirty(mask, now, &mut wakes);
                        dirtied = true;
                    }
                    p.unlease(&mut wakes);
                    p.unpin();
                };
                if first == last {
                    let p = inner.pages.get_mut(&first);
                    settle(first, p.expect("leased page has an entry"));
                } else {
                    for (&i, p) in inner.pages.range_mut(first..=last) {
                        settle(i, p);
                    }
                }
                if dirtied {
                    self.note_dirty(inner);
                }
                // A page that was clean leaves the LRU (nothing else
                // changed any page's LRU membership).
                if cleaned_out {
                    cache.lru_sync(&self.me, &mut inner.pages, page_range(first, last));
                }
            }
            if wakes.is_empty() {
                return;
            }
            if in_kernel_lock() {
                wake(wakes);
            } else {
                run_or_defer(&*cache.runqueue, move || wake(wakes));
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_write(
        self: Arc<Self>,
        first: u64,
        last: u64,
        offset: u64,
        len: usize,
        owned: Vec<bool>,
        r: Result<(), Errno>,
        done: Completion<Result<WriteBatch, Errno>>,
    ) {
        bh_safe_alloc(|| {
            let node = Held::new(self);
            let runqueue = node.cache().runqueue.clone();
            let mut batch = WriteBatch {
                node: None,
                offset,
                len,
                first,
                views: Vec::new(),
                owned,
                finished: false,
            };
            match r {
                Ok(()) => {
                    batch.views = {
                        let inner = node.inner.lock();
                        page_range(first, last)
                            .zip(batch.owned.iter())
                            .map(|(i, &own)| {
                                let p = &inner.pages[&i];
                                let ok = p.writable() || (own && p.state() == PageState::New);
                                assert!(ok && p.leases() > 0, "write finished on {:?}", p.state());
                                p.frame().expect("writable page has a frame").view()
                            })
                            .collect()
                    };
                    batch.node = Some(node);
                    done.complete(&*runqueue, Ok(batch));
                }
                Err(e) => {
                    // Release leases (and refill NEW pages others wait on)
                    // under the kernel lock: that may start I/O.
                    batch.node = Some(node);
                    crate::run_or_defer(&*runqueue, move || {
                        batch.commit(0);
                    });
                    done.complete(&*runqueue, Err(e));
                }
            }
        })
    }

    /// Ends a write: commits `copied` bytes (from the batch's start) as
    /// dirty, releases the leases, aborts NEW pages not fully copied.
    /// Returns the bytes committed.
    pub(super) fn release_write(self: &Arc<Self>, b: &WriteBatch, copied: usize) -> usize {
        let cache = self.cache().clone();
        let end = b.offset + b.len as u64;
        let last = (end - 1) / PS;
        let mut committed_end = b.offset + copied.min(b.len) as u64;
        // A NEW page not fully copied has no valid content: it is aborted,
        // and nothing from it on is committed.
        for (i, &own) in page_range(b.first, last).zip(b.owned.iter()) {
            let cov = coverage(i, b.offset, end);
            let cov_end = i * PS + cov.end as u64;
            if own && committed_end < cov_end {
                committed_end = committed_end.min(i * PS + cov.start as u64);
                break;
            }
        }
        let now = cache.clock();
        let mut wakes = Wakes::new();
        let mut frees = Vec::new();
        let mut refills = Vec::new();
        let mut dirtied = false;
        {
            let mut inner = self.inner.lock();
            for (i, &own) in page_range(b.first, last).zip(b.owned.iter()) {
                let cov = coverage(i, b.offset, end);
                let done = coverage(i, b.offset, committed_end);
                let p = inner.pages.get_mut(&i).expect("leased page has an entry");
                if own && p.state() == PageState::New {
                    if done == cov {
                        p.mark_dirty(io::sector_mask(cov.start, cov.end), now, &mut wakes);
                        dirtied = true;
                    } else {
                        let (to, frame) = p.abort_new(&mut wakes);
                        let frame = frame.expect("a NEW page has a frame");
                        if to == PageState::Alloc {
                            refills.push(Claim {
                                index: i,
                                kind: ClaimKind::Fill,
                                frame: Some(frame),
                            });
                        } else {
                            frees.push(frame);
                        }
                    }
                } else if !done.is_empty() {
                    assert!(p.writable(), "committing into a {:?} page", p.state());
                    p.mark_dirty(io::sector_mask(done.start, done.end), now, &mut wakes);
                    dirtied = true;
                }
                p.unlease(&mut wakes);
                p.unpin();
            }
            if dirtied {
                self.note_dirty(&mut inner);
            }
            cache.lru_sync(&self.me, &mut inner.pages, page_range(b.first, last));
            for i in page_range(b.first, last) {
                if inner.pages.get(&i).is_some_and(|p| p.removable()) {
                    inner.pages.remove(&i);
                }
            }
        }
        cache.free_frames(frees);
        wake(wakes);
        self.start_fills(refills);
        (committed_end.saturating_sub(b.offset)) as usize
    }
}
