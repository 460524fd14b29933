//! Reads: [`Node::read`], [`Node::read_or_complete`] and the lockless
//! [`Node::read_cached`], with the file's adaptive [`Readahead`].
//!
//! Owns: pinning the pages of a read, claiming the missing ones (and the
//! readahead window after them) for filling, waiting for those fills
//! (concurrent readers of a page share its one fill), and building the
//! read's [`Pages`]; a read whose first pages filled and a later one
//! failed returns the good ones (a short read). Does not own: the fills
//! themselves (`fill.rs`), the [`Pages`] handle and its copies
//! (`handles.rs`), unpinning (`Node::unpin_range` in `node/mod.rs`).
//!
//! Contexts: `read` and `read_or_complete` kernel-lock (they ask the
//! backing the length and start fills, which map through it). The end of
//! a read that waited (`finish_read`) runs where its last fill completes:
//! bh, or inline under the kernel lock if the fills ended first.
//! `read_cached` any context but irq, with no kernel lock (the syscalls'
//! lockless read path): it answers only when nothing needs the backing or
//! a fill.
//!
//! Locks: `pagecache.node` only (pins and claims change no page's LRU
//! membership). Frames are allocated and fills submitted (`start_fills`)
//! after it is released; completions run with no lock held.

use super::fill::Claim;
use super::handles::{CACHED_MAX_PAGES, CachedPages, Pages};
use super::{CPage, Node, PS, Wakes, page_range};
use crate::cache::{PageCache, bump};
use crate::frame::FrameView;
use crate::io::{Gather, Held};
use crate::page::{PageState, Want};
use crate::{Completion, Errno, assert_kernel_lock};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use core::ops::Range;

/// Adaptive readahead: the window doubles on each read that starts where
/// the previous one ended and drops to nothing on a random read.
#[derive(Default, Clone, Copy)]
pub(crate) struct Readahead {
    next: u64,
    window: u64,
}

impl Readahead {
    fn advance(&mut self, first: u64, last: u64, cache: &PageCache) -> Range<u64> {
        let cfg = cache.config();
        let cap = u64::from(cfg.readahead_max).min(cfg.limit_pages as u64 / 4);
        if first == self.next {
            self.window = match self.window {
                0 => u64::from(cfg.readahead_initial),
                w => w * 2,
            }
            .min(cap);
        } else if first + 1 != self.next {
            // Not sequential (a read continuing inside the last page is).
            self.window = 0;
        }
        self.next = last + 1;
        last + 1..last + 1 + self.window
    }
}

/// Whether every page of `range` has an entry that is not FREE (claimed,
/// filling or cached): a readahead window with nothing left to fill.
fn all_claimed(pages: &BTreeMap<u64, CPage>, range: Range<u64>) -> bool {
    let mut expect = range.start;
    for (&i, p) in pages.range(range.clone()) {
        if i != expect || p.state() == PageState::Free {
            return false;
        }
        expect += 1;
    }
    expect == range.end
}

/// How a read starts: with every page readable, or waiting (on the
/// gather) for fills.
enum ReadStart {
    Ready(Pages),
    Waiting(Arc<Gather>, ReadSpan),
    /// The backing could not tell the file's length.
    Failed(Errno),
}

/// What a read pinned: pages `first ..= last` at truncate epoch `epoch`,
/// for the file bytes `offset .. end`.
#[derive(Clone, Copy)]
struct ReadSpan {
    first: u64,
    last: u64,
    epoch: u64,
    offset: u64,
    end: u64,
}

impl ReadSpan {
    /// The read's result: its pinned pages, held through `node`.
    fn pages(self, node: Held, views: Vec<FrameView>) -> Pages {
        Pages {
            node: Some(node),
            offset: self.offset,
            len: (self.end - self.offset) as usize,
            first: self.first,
            epoch: self.epoch,
            views,
        }
    }
}

impl Node {
    /// Reads `offset .. offset + len` (clipped at the file's end): gets the
    /// pages filled and pins them, then hands them to `done` as [`Pages`]
    /// for the caller to copy from. Missing pages are filled with one
    /// scatter-gather read per contiguous disk run; pages another
    /// operation is filling are waited for, not read again; a sequential
    /// reader gets readahead. Kernel-lock context.
    pub fn read(self: &Arc<Self>, offset: u64, len: usize, done: Completion<Result<Pages, Errno>>) {
        assert_kernel_lock("Node::read");
        bh_safe_alloc(|| match self.start_read(offset, len) {
            ReadStart::Ready(pages) => done.complete(&*self.cache().runqueue, Ok(pages)),
            ReadStart::Waiting(gather, span) => self.await_read(gather, span, done),
            ReadStart::Failed(e) => done.complete(&*self.cache().runqueue, Err(e)),
        })
    }

    /// [`Node::read`] with a fast path: when every page of the range is
    /// readable in the cache already, the pages come back at once, pinned,
    /// with no completion made and none run. Otherwise `done()` makes the
    /// completion that gets them, as for `read`, and this returns `None`.
    /// Readahead is started in both cases. Kernel-lock context.
    pub fn read_or_complete(
        self: &Arc<Self>,
        offset: u64,
        len: usize,
        done: impl FnOnce() -> Completion<Result<Pages, Errno>>,
    ) -> Option<Pages> {
        assert_kernel_lock("Node::read_or_complete");
        bh_safe_alloc(|| match self.start_read(offset, len) {
            ReadStart::Ready(pages) => Some(pages),
            ReadStart::Waiting(gather, span) => {
                self.await_read(gather, span, done());
                None
            }
            ReadStart::Failed(e) => {
                done().complete(&*self.cache().runqueue, Err(e));
                None
            }
        })
    }

    /// Pins the pages of `offset .. offset + len` and hands them to `copy`
    /// as [`CachedPages`] (unpinned when it returns), if the read needs
    /// nothing but them: the length is known (no truncate pending), every
    /// page of the range is readable, and the readahead this read advances
    /// has nothing left to fill. Otherwise `None`, with nothing changed and
    /// `copy` not called: the caller reads with [`Node::read_or_complete`]
    /// under the kernel lock. A read at or past the end of file, or over
    /// more than [`CACHED_MAX_PAGES`] pages, also answers `None`.
    ///
    /// Any context but irq; needs no kernel lock (the syscalls' lockless
    /// read path, on every cached `pread`): takes the node's lock once to
    /// pin and once to unpin, allocates nothing (the views sit in the
    /// handle's inline array, on this stack frame) and takes no reference
    /// (the handle borrows the node). `copy` runs with no pagecache lock
    /// held.
    #[inline]
    pub fn read_cached<R>(
        &self,
        offset: u64,
        len: usize,
        copy: impl FnOnce(&CachedPages<'_>) -> R,
    ) -> Option<R> {
        let mut pages = CachedPages {
            node: self,
            offset,
            len: 0,
            first: 0,
            epoch: 0,
            count: 0,
            views: [FrameView::NONE; CACHED_MAX_PAGES],
        };
        if !self.pin_cached(&mut pages, len) {
            return None;
        }
        Some(copy(&pages))
    }

    /// [`Node::read_cached`]'s pinning: fills in `pages` (its `offset`
    /// set, nothing pinned) for `len` bytes and answers true, or changes
    /// nothing and answers false.
    fn pin_cached(&self, pages: &mut CachedPages<'_>, len: usize) -> bool {
        let offset = pages.offset;
        let Some(known) = self.known_len() else {
            return false;
        };
        let end = offset.saturating_add(len as u64).min(known);
        if offset >= end {
            return false;
        }
        let (first, last) = (offset / PS, (end - 1) / PS);
        let count = (last - first + 1) as usize;
        if count > CACHED_MAX_PAGES {
            return false;
        }
        let file_pages = known.div_ceil(PS);
        let cache = self.cache();
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let mut ra = inner.ra;
            let ahead = ra.advance(first, last, cache);
            let ahead = ahead.start..ahead.end.min(file_pages);
            if ahead.start < ahead.end && !all_claimed(&inner.pages, ahead) {
                return false;
            }
            if count == 1 {
                // The common case (a 4 KiB pread): one lookup.
                let Some(p) = inner.pages.get_mut(&first).filter(|p| p.readable()) else {
                    return false;
                };
                p.pin();
                p.touch();
                pages.views[0] = p.frame().expect("readable page has a frame").view();
            } else {
                // One walk: every page checked before any is pinned, so a
                // `false` changes nothing.
                let mut held: [Option<&mut CPage>; CACHED_MAX_PAGES] = Default::default();
                let mut expect = first;
                for (&i, p) in inner.pages.range_mut(first..=last) {
                    if i != expect || !p.readable() {
                        return false;
                    }
                    held[(i - first) as usize] = Some(p);
                    expect += 1;
                }
                if expect != last + 1 {
                    return false;
                }
                for (view, p) in pages.views.iter_mut().zip(held.iter_mut().flatten()) {
                    p.pin();
                    p.touch();
                    *view = p.frame().expect("readable page has a frame").view();
                }
            }
            inner.ra = ra;
            pages.epoch = inner.epoch;
        }
        // Pinned: from here `pages` unpins them when dropped.
        pages.len = (end - offset) as usize;
        pages.first = first;
        pages.count = count;
        bump(&cache.stats.hits, count as u64);
        true
    }

    /// The common part of the reads: pins the pages of the range, claims
    /// and starts fills for the missing ones and readahead. All readable:
    /// the pinned pages; else what the read waits for.
    fn start_read(self: &Arc<Self>, offset: u64, len: usize) -> ReadStart {
        let cache = self.cache().clone();
        let file_len = match self.file_len() {
            Ok(l) => l,
            Err(e) => return ReadStart::Failed(e),
        };
        let end = offset.saturating_add(len as u64).min(file_len);
        if offset >= end {
            return ReadStart::Ready(Pages::empty(offset));
        }
        let (first, last) = (offset / PS, (end - 1) / PS);
        let file_pages = file_len.div_ceil(PS);
        // Made at the first page that must be waited for.
        let mut gather: Option<Arc<Gather>> = None;
        let mut claims = Vec::new();
        let mut ahead = Vec::new();
        let (mut hits, mut misses) = (0, 0);
        let epoch;
        let mut views = Vec::new();
        {
            let mut inner = self.inner.lock();
            let mut wakes = Wakes::new();
            epoch = inner.epoch;
            let ra = inner.ra.advance(first, last, &cache);
            let mut visit = |i: u64, p: &mut CPage| {
                p.pin();
                if p.state() == PageState::Free {
                    p.claim(&mut wakes);
                    claims.push(Claim::fill(i));
                }
                if p.readable() {
                    p.touch();
                    hits += 1;
                    views.push(p.frame().expect("readable page has a frame").view());
                } else {
                    let g = gather.get_or_insert_with(Gather::new);
                    // Not readable and not FREE (claimed just above if it
                    // was): the page is being filled, so this waits.
                    let now = p.wait(Want::Readable, g.clone());
                    debug_assert!(now.is_none(), "unreadable page did not wait");
                    g.add(1);
                    misses += 1;
                }
            };
            // One walk over the cached pages, then the gaps.
            let mut gaps = Vec::new();
            let mut next = first;
            for (&i, p) in inner.pages.range_mut(first..=last) {
                gaps.extend(next..i);
                next = i + 1;
                visit(i, p);
            }
            gaps.extend(next..=last);
            for i in gaps {
                visit(i, inner.pages.entry(i).or_default());
            }
            claims.sort_by_key(|c| c.index);
            for i in ra.start..ra.end.min(file_pages) {
                let p = inner.pages.entry(i).or_default();
                if p.state() == PageState::Free {
                    p.claim(&mut wakes);
                    ahead.push(Claim::fill(i));
                }
            }
            // Pins and claims change no page's LRU membership.
            debug_assert!(wakes.is_empty());
        }
        // All readable: the walk visited every page, in order, as a hit
        // (a gap is a FREE page, claimed, so a miss).
        debug_assert!(misses > 0 || views.len() as u64 == last - first + 1);
        bump(&cache.stats.hits, hits);
        bump(&cache.stats.misses, misses);
        bump(&cache.stats.readahead, ahead.len() as u64);
        // Demand pages first, in their own requests, so that the reader
        // does not wait for its readahead.
        self.start_fills(claims);
        self.start_fills(ahead);
        let span = ReadSpan {
            first,
            last,
            epoch,
            offset,
            end,
        };
        match gather {
            None => ReadStart::Ready(span.pages(Held::new(self.clone()), views)),
            Some(gather) => ReadStart::Waiting(gather, span),
        }
    }

    /// Hands the pages of a waiting read to `done` once their fills end.
    fn await_read(
        self: &Arc<Self>,
        gather: Arc<Gather>,
        span: ReadSpan,
        done: Completion<Result<Pages, Errno>>,
    ) {
        let node = Held::new(self.clone());
        gather.set_finish(move |r| node.arc().clone().finish_read(span, r, done));
        gather.settle(Ok(()));
    }

    fn finish_read(
        self: Arc<Self>,
        span: ReadSpan,
        r: Result<(), Errno>,
        done: Completion<Result<Pages, Errno>>,
    ) {
        let ReadSpan {
            first, last, epoch, ..
        } = span;
        bh_safe_alloc(|| {
            let node = Held::new(self);
            let runqueue = node.cache().runqueue.clone();
            match r {
                Ok(()) => {
                    let views = {
                        let inner = node.inner.lock();
                        // A page truncated away since it was pinned is
                        // detached, not gone: this read still gets it.
                        page_range(first, last)
                            .map(|i| {
                                let p = inner.pinned(i, epoch);
                                assert!(
                                    p.readable() && p.pins() > 0,
                                    "read finished on {:?}",
                                    p.state()
                                );
                                p.frame().expect("readable page has a frame").view()
                            })
                            .collect()
                    };
                    done.complete(&*runqueue, Ok(span.pages(node, views)));
                }
                Err(e) => {
                    // As on Linux, a read whose first pages filled returns
                    // them (a short read); only a read that starts on a
                    // failed page fails.
                    let views: Vec<FrameView> = {
                        let inner = node.inner.lock();
                        page_range(first, last)
                            .map(|i| inner.pinned(i, epoch))
                            .take_while(|p| p.readable())
                            .map(|p| p.frame().expect("readable page has a frame").view())
                            .collect()
                    };
                    let good = views.len() as u64;
                    if good > 0 {
                        if first + good <= last {
                            node.unpin_range(first + good, last, epoch, false);
                        }
                        let span = ReadSpan {
                            last: first + good - 1,
                            end: span.end.min((first + good) * PS),
                            ..span
                        };
                        done.complete(&*runqueue, Ok(span.pages(node, views)));
                    } else {
                        node.unpin_range(first, last, epoch, false);
                        done.complete(&*runqueue, Err(e));
                    }
                }
            }
        })
    }
}
