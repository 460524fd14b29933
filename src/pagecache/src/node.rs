//! One cached file: its page tree and the operations on it.
//!
//! [`Node`] owns the file's pages (index → [`Page`] in a `BTreeMap`), its
//! readahead state and its sticky writeback error, all behind the node
//! lock. It implements reads (batched fills, concurrent readers sharing one
//! fill, adaptive readahead), writes (space reservation, whole-page
//! overwrites without reading, read-modify-write of partial pages, dirty
//! sectors) and fault fills for mmap. Writeback lives in `writeback.rs`.
//!
//! Results come back as pinned handles — [`Pages`] (read), [`WriteBatch`]
//! (write), [`Mapped`] (fault) — and the caller copies through them with
//! **no pagecache lock held**. A copy may therefore fault into this same
//! file and wait for another fill of it (seeds/002, Brian's scenario);
//! nothing here is held but pins, which block eviction only.
//!
//! Contexts: `read`, `write`, `fault`, [`WriteBatch::commit`] kernel-lock
//! (they call the [`Backing`] and submit I/O). Fill completions bh
//! (asserted). Dropping [`Pages`] or [`Mapped`] kernel-lock or bh.
//!
//! Truncate (`truncate.rs`) takes pages past a new end out of the tree.
//! One still held by a pin or a mapping moves to the node's *detached* set
//! instead, keyed by (index, truncate epoch), and its holders reach it
//! there: every pin records the node's truncate epoch, and a pinned page
//! absent from the tree is the detached one of its index with the smallest
//! epoch above the pin's (`NodeInner::locate`). So operations that finish
//! after a truncate ([`Pages`] built by a read that waited, a fault's
//! [`Mapped`], unpins) get exactly the page they pinned, never a newer page
//! at the same index. Reads, faults, fills and writes use
//! `Node::file_len`, the backing's length capped by a truncate the
//! filesystem has not applied yet.
//!
//! Locks: `pagecache.node`, and nested under it `pagecache.lru` (a page
//! joins or leaves the LRU) or `pagecache.volume` (the node joins its
//! volume's dirty list). Frames are allocated (which may evict, taking other
//! nodes' locks) and freed, requests submitted and waiters woken only after
//! the node lock is released.

use crate::cache::{PageCache, VolumeCache, bump};
use crate::frame::{Frame, FrameView, RawDestination};
use crate::io::{self, Gather, Held, Piece, wake};
use crate::page::{PageState, SECTORS_PER_PAGE, Want};
use crate::{
    Backing, Completion, Errno, PAGE_SIZE, Page, SECTOR_SIZE, assert_bh, assert_kernel_lock,
};
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use cairn_block::{Request, Status};
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

static NODE_CLASS: LockClass = LockClass::new("pagecache.node");

const PS: u64 = PAGE_SIZE as u64;

pub(crate) type CPage = Page<Arc<Gather>, Frame>;
pub(crate) type Wakes = crate::page::Wakes<Arc<Gather>>;

/// A file in the pagecache.
pub struct Node {
    volume: Arc<VolumeCache>,
    backing: Arc<dyn Backing>,
    pub(crate) inner: IrqSpinLock<NodeInner>,
    /// The length of a truncate the filesystem has not applied yet
    /// (`u64::MAX`: none): reads, faults, readahead and fills see the file
    /// no longer than this until the backing's length drops to it. Set by
    /// [`Node::truncate`], cleared by [`Node::file_len`].
    pub(crate) cap: AtomicU64,
    /// The backing's length as last learned ([`UNKNOWN_LEN`]: ask it), so
    /// a cached read does not ask the filesystem (which takes its mutex).
    /// Grown by this node's own reserves; forgotten by
    /// [`Node::length_changed`] when the filesystem changes it otherwise.
    len: AtomicU64,
    /// Bumped by every change of the length, so an answer the backing gave
    /// before a change is not kept after it (see [`Node::backing_len`]).
    len_gen: AtomicU64,
    me: Weak<Node>,
}

/// [`Node`]'s `len` when the backing must be asked.
const UNKNOWN_LEN: u64 = u64::MAX;

pub(crate) struct NodeInner {
    pub(crate) pages: BTreeMap<u64, CPage>,
    /// Pages truncated away while held (pinned by a read, mapped, or
    /// pinned by an operation still finishing), keyed by (index, the
    /// epoch of the truncate pass that took them out of `pages`).
    /// Their holders still reach them (see [`NodeInner::locate`]); nothing
    /// else does: no read, fault, writeback, LRU or dirty list sees them.
    /// The last unpin discards them and frees their frames.
    pub(crate) detached: BTreeMap<(u64, u64), CPage>,
    /// The truncate epoch: bumped by each truncate pass that detaches
    /// pages. Every pin records the epoch it was taken at.
    pub(crate) epoch: u64,
    /// A writeback error not yet reported by a sync of this node.
    pub(crate) error: Option<Errno>,
    pub(crate) on_dirty_list: bool,
    pub(crate) ra: Readahead,
    /// The readahead of faults on mappings of the file, apart from `ra`
    /// (which `read()` moves), so that neither disturbs the other.
    pub(crate) map_ra: MapAhead,
}

impl NodeInner {
    /// Where the page of `index` that someone pinned at epoch `epoch` is
    /// now: `None` in `pages`, `Some(e)` in `detached` under `(index, e)`.
    /// A pinned page leaves `pages` only by being detached, and the first
    /// pass after `epoch` that detached something at `index` detached the
    /// pinned page (it was the one there), so it is the detached entry of
    /// `index` with the smallest epoch above `epoch`, if any.
    fn locate(&self, index: u64, epoch: u64) -> Option<u64> {
        if epoch == self.epoch {
            return None;
        }
        self.detached
            .range((index, epoch + 1)..=(index, u64::MAX))
            .next()
            .map(|(&(_, g), _)| g)
    }

    /// The page of `index` pinned at epoch `epoch`.
    fn pinned(&self, index: u64, epoch: u64) -> &CPage {
        match self.locate(index, epoch) {
            Some(g) => &self.detached[&(index, g)],
            None => self.pages.get(&index).expect("pinned page has an entry"),
        }
    }

    fn pinned_mut(&mut self, index: u64, epoch: u64) -> &mut CPage {
        match self.locate(index, epoch) {
            Some(g) => self.detached.get_mut(&(index, g)).expect("located"),
            None => self
                .pages
                .get_mut(&index)
                .expect("pinned page has an entry"),
        }
    }
}

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

/// Readahead for faults on mappings ([`Node::fault_ahead`]): a fault a
/// little past the previous one (the pages between were mapped around it
/// or read ahead) doubles the window, up to the cache's readahead limit;
/// any other fault reads the fault-around window after it.
#[derive(Default, Clone, Copy)]
pub(crate) struct MapAhead {
    last: u64,
    window: u64,
}

impl MapAhead {
    fn advance(&mut self, index: u64, around: u64, cache: &PageCache) -> Range<u64> {
        let cfg = cache.config();
        let cap = u64::from(cfg.readahead_max)
            .min(cfg.limit_pages as u64 / 4)
            .max(around);
        let reach = self.window.max(around) + 1;
        let sequential = index > self.last && index <= self.last.saturating_add(reach);
        self.window = if sequential && self.window > 0 {
            (self.window * 2).min(cap)
        } else {
            around
        };
        self.last = index;
        index + 1..(index + 1).saturating_add(self.window)
    }
}

/// What a claimed page is for.
enum ClaimKind {
    /// Fill it from disk (or zeros).
    Fill,
    /// A writer overwrites bytes `keep` of it; zero the rest. `owner` is
    /// settled once the page is NEW (or failed).
    New {
        keep: Range<usize>,
        owner: Arc<Gather>,
    },
}

/// A page this operation took from FREE to ALLOC and must drive on.
struct Claim {
    index: u64,
    kind: ClaimKind,
    frame: Option<Frame>,
}

impl Claim {
    fn fill(index: u64) -> Claim {
        Claim {
            index,
            kind: ClaimKind::Fill,
            frame: None,
        }
    }
}

/// How a page is being mapped by [`Node::fault`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// A write fault.
    pub write: bool,
    /// A shared (`MAP_SHARED`) mapping; otherwise private.
    pub shared: bool,
}

/// A snapshot of one page, for tests and debugging.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PageInfo {
    pub state: PageState,
    pub pins: u32,
    pub leases: u32,
    pub dirty: u8,
    pub on_lru: bool,
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

fn page_range(first: u64, last: u64) -> core::ops::RangeInclusive<u64> {
    first..=last
}

/// Bytes of page `index` that `offset .. end` covers, page-relative.
fn coverage(index: u64, offset: u64, end: u64) -> Range<usize> {
    let ps = index * PS;
    let s = offset.clamp(ps, ps + PS) - ps;
    let e = end.clamp(ps, ps + PS) - ps;
    s as usize..e.max(s) as usize
}

/// Sectors of page `index` inside a file of `len` bytes.
pub(crate) fn mask_within(index: u64, len: u64) -> u8 {
    let ps = index * PS;
    if len <= ps {
        return 0;
    }
    io::sector_mask(0, (len - ps).min(PS) as usize)
}

impl Node {
    /// A node for a file of `volume`; kernel-lock context.
    pub fn new(volume: &Arc<VolumeCache>, backing: Arc<dyn Backing>) -> Arc<Node> {
        assert_kernel_lock("Node::new");
        volume.cache().nodes.fetch_add(1, Ordering::Relaxed);
        bh_safe_alloc(|| {
            Arc::new_cyclic(|me| Node {
                volume: volume.clone(),
                backing,
                inner: IrqSpinLock::new(
                    &NODE_CLASS,
                    NodeInner {
                        pages: BTreeMap::new(),
                        detached: BTreeMap::new(),
                        epoch: 0,
                        error: None,
                        on_dirty_list: false,
                        ra: Readahead::default(),
                        map_ra: MapAhead::default(),
                    },
                ),
                cap: AtomicU64::new(u64::MAX),
                len: AtomicU64::new(UNKNOWN_LEN),
                len_gen: AtomicU64::new(0),
                me: me.clone(),
            })
        })
    }

    pub fn volume(&self) -> &Arc<VolumeCache> {
        &self.volume
    }

    pub fn backing(&self) -> &Arc<dyn Backing> {
        &self.backing
    }

    pub(crate) fn cache(&self) -> &Arc<PageCache> {
        self.volume.cache()
    }

    pub(crate) fn me(&self) -> &Weak<Node> {
        &self.me
    }

    /// Entries in the page tree.
    pub fn cached_pages(&self) -> usize {
        self.inner.lock().pages.len()
    }

    /// Whether the node holds nothing its file's next user needs: no page
    /// (cached or detached), no writeback error a sync has not reported,
    /// not on its volume's dirty list. A node like that which nobody else
    /// references can be dropped: a new node for the file reads the same
    /// data from the backing. Any context.
    pub fn is_idle(&self) -> bool {
        let inner = self.inner.lock();
        inner.pages.is_empty()
            && inner.detached.is_empty()
            && inner.error.is_none()
            && !inner.on_dirty_list
    }

    /// Pages truncated away while held, not yet released by their holders.
    pub fn detached_pages(&self) -> usize {
        self.inner.lock().detached.len()
    }

    /// The backing's length: the one learned before if no change since,
    /// else the backing's answer (kept unless the length changed while it
    /// was asked: a truncate or another reserve may run while the backing
    /// sleeps on its mutex). Kernel-lock context.
    pub(crate) fn backing_len(&self) -> Result<u64, Errno> {
        let known = self.len.load(Ordering::Acquire);
        if known != UNKNOWN_LEN {
            return Ok(known);
        }
        let generation = self.len_gen.load(Ordering::Acquire);
        let len = self.backing.length()?;
        if self
            .len
            .compare_exchange(UNKNOWN_LEN, len, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && self.len_gen.load(Ordering::Acquire) != generation
        {
            self.len.store(UNKNOWN_LEN, Ordering::Release);
        }
        Ok(len)
    }

    /// The file's length if the node knows it and no truncate is pending
    /// (what `file_len` would answer without asking the backing). Any
    /// context.
    pub fn known_len(&self) -> Option<u64> {
        let known = self.len.load(Ordering::Acquire);
        (known != UNKNOWN_LEN && self.cap.load(Ordering::Acquire) == u64::MAX).then_some(known)
    }

    /// A reserve of this node's made the backing's length at least `end`.
    fn extended_to(&self, end: u64) {
        self.len_gen.fetch_add(1, Ordering::AcqRel);
        self.len.fetch_max(end, Ordering::AcqRel); // UNKNOWN_LEN stays
    }

    /// The filesystem changed the file's length other than by
    /// [`Backing::reserve`] (its truncate, fallocate): the node asks the
    /// backing again. The kernel calls it right after the change. Any
    /// context.
    pub fn length_changed(&self) {
        self.len_gen.fetch_add(1, Ordering::AcqRel);
        self.len.store(UNKNOWN_LEN, Ordering::Release);
    }

    /// The file's length as reads, faults, readahead, fills and writes see
    /// it: the backing's, but no longer than a truncate the filesystem has
    /// not applied yet (the cap is lifted once the backing's length is at
    /// or below it). Kernel-lock context (it asks the backing; its error
    /// is the caller's). Writeback
    /// asks the backing directly: until the filesystem frees the sectors
    /// past a pending truncate they are still the file's to write.
    pub(crate) fn file_len(&self) -> Result<u64, Errno> {
        let len = self.backing_len()?;
        let cap = self.cap.load(Ordering::Acquire);
        if len <= cap {
            if cap != u64::MAX {
                // The filesystem caught up; a newer, lower cap set
                // meanwhile stays.
                let _ =
                    self.cap
                        .compare_exchange(cap, u64::MAX, Ordering::AcqRel, Ordering::Acquire);
            }
            Ok(len)
        } else {
            Ok(cap)
        }
    }

    /// A snapshot of page `index`, if it has an entry.
    pub fn page_info(&self, index: u64) -> Option<PageInfo> {
        let inner = self.inner.lock();
        inner.pages.get(&index).map(|p| PageInfo {
            state: p.state(),
            pins: p.pins(),
            leases: p.leases(),
            dirty: p.dirty_mask(),
            on_lru: p.lru_key().is_some(),
        })
    }

    /// Every page entry: (index, snapshot).
    pub fn page_infos(&self) -> Vec<(u64, PageInfo)> {
        let inner = self.inner.lock();
        inner
            .pages
            .iter()
            .map(|(&i, p)| {
                (
                    i,
                    PageInfo {
                        state: p.state(),
                        pins: p.pins(),
                        leases: p.leases(),
                        dirty: p.dirty_mask(),
                        on_lru: p.lru_key().is_some(),
                    },
                )
            })
            .collect()
    }

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

    /// The pinned pages of `offset .. offset + len` if the read needs
    /// nothing but them: the length is known (no truncate pending), every
    /// page of the range is readable, and the readahead this read advances
    /// has nothing left to fill. Otherwise `None`, with nothing changed:
    /// the caller reads with [`Node::read_or_complete`] under the kernel
    /// lock. A read at or past the end of file also answers `None`.
    ///
    /// Any context but irq; needs no kernel lock (the syscalls' lockless
    /// read path): takes only the node's lock, allocates only bh-safe, and
    /// the pages' last unpin and the node's last reference are safe
    /// anywhere ([`Pages`], `io::release`).
    pub fn read_cached(self: &Arc<Self>, offset: u64, len: usize) -> Option<Pages> {
        let known = self.known_len()?;
        let end = offset.saturating_add(len as u64).min(known);
        if offset >= end {
            return None;
        }
        let (first, last) = (offset / PS, (end - 1) / PS);
        let file_pages = known.div_ceil(PS);
        let cache = self.cache().clone();
        bh_safe_alloc(|| {
            let mut views = Vec::with_capacity((last - first + 1) as usize);
            let epoch;
            {
                let mut guard = self.inner.lock();
                let inner = &mut *guard;
                let mut ra = inner.ra;
                let ahead = ra.advance(first, last, &cache);
                let mut expect = first;
                for (&i, p) in inner.pages.range(first..=last) {
                    if i != expect || !p.readable() {
                        return None;
                    }
                    expect += 1;
                }
                if expect != last + 1 {
                    return None;
                }
                let ahead = ahead.start..ahead.end.min(file_pages);
                if ahead.start < ahead.end
                    && inner.pages.range(ahead.clone()).count() as u64 != ahead.end - ahead.start
                    || inner
                        .pages
                        .range(ahead)
                        .any(|(_, p)| p.state() == PageState::Free)
                {
                    return None;
                }
                inner.ra = ra;
                epoch = inner.epoch;
                for (_, p) in inner.pages.range_mut(first..=last) {
                    p.pin();
                    p.touch();
                    views.push(p.frame().expect("readable page has a frame").view());
                }
            }
            bump(&cache.stats.hits, last - first + 1);
            let span = ReadSpan {
                first,
                last,
                epoch,
                offset,
                end,
            };
            Some(span.pages(Held::new(self.clone()), views))
        })
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

    /// Drops the pins (and with `unmap_shared` the shared-writable
    /// mappings) of pages `first ..= last`, pinned at epoch `epoch`.
    /// A detached page (truncated away meanwhile) whose last holder this
    /// was is discarded and its frame freed.
    fn unpin_range(&self, first: u64, last: u64, epoch: u64, unmap_shared: bool) {
        bh_safe_alloc(|| {
            let mut frees = Vec::new();
            {
                let mut guard = self.inner.lock();
                let inner = &mut *guard;
                let mut gone = 0;
                let mut wakes = Wakes::new();
                if epoch == inner.epoch {
                    // No truncate pass since the pins: every pinned page is
                    // in `pages`, and every entry of the range is one.
                    let mut seen = 0;
                    for (_, p) in inner.pages.range_mut(first..=last) {
                        p.unpin();
                        if unmap_shared {
                            p.unmap_shared_writable();
                        }
                        gone += usize::from(p.removable());
                        seen += 1;
                    }
                    debug_assert_eq!(seen, last - first + 1, "a pinned page has no entry");
                } else {
                    for i in page_range(first, last) {
                        let at = inner.locate(i, epoch);
                        let p = inner.pinned_mut(i, epoch);
                        p.unpin();
                        if unmap_shared {
                            p.unmap_shared_writable();
                        }
                        match at {
                            None => gone += usize::from(p.removable()),
                            Some(g) if p.unheld() => {
                                let mut p = inner.detached.remove(&(i, g)).expect("located");
                                frees.push(p.discard(&mut wakes));
                            }
                            Some(_) => {}
                        }
                    }
                }
                debug_assert!(wakes.is_empty(), "an unheld page had waiters");
                // Pins do not affect LRU membership; only FREE entries leave.
                if gone > 0 {
                    inner
                        .pages
                        .retain(|i, p| !(first..=last).contains(i) || !p.removable());
                }
            }
            self.cache().free_frames(frees);
        })
    }

    /// Takes claimed (ALLOC) pages to READING, ACTIVE, NEW or, when no
    /// frame can be had, FREE, and submits their fills. No lock held on
    /// entry; kernel-lock context (it maps through the backing).
    fn start_fills(self: &Arc<Self>, mut claims: Vec<Claim>) {
        if claims.is_empty() {
            return;
        }
        let cache = self.cache().clone();
        let need = claims.iter().filter(|c| c.frame.is_none()).count();
        let mut frames = cache.alloc_frames(need);
        for c in claims.iter_mut().filter(|c| c.frame.is_none()) {
            c.frame = frames.pop();
        }
        debug_assert!(frames.is_empty());
        // A backing error fails the fills that needed its answer: all of
        // them for the length, a run of pages for its map.
        let (file_len, len_err) = match self.file_len() {
            Ok(l) => (l, None),
            Err(e) => (0, Some(e)),
        };
        let mut failed: Vec<Option<Errno>> = alloc::vec![None; claims.len()];
        let mut pieces = Vec::new();
        let mut counts = alloc::vec![0u32; claims.len()];
        let mut k = 0;
        while k < claims.len() {
            let fillable = |c: &Claim| matches!(c.kind, ClaimKind::Fill) && c.frame.is_some();
            if !fillable(&claims[k]) {
                k += 1;
                continue;
            }
            let mut j = k;
            while j + 1 < claims.len()
                && fillable(&claims[j + 1])
                && claims[j + 1].index == claims[j].index + 1
            {
                j += 1;
            }
            let start = claims[k].index * PS;
            let count = (j - k + 1) * SECTORS_PER_PAGE;
            let maps = match len_err.map_or_else(
                || self.backing.map(start, (count as u64) * SECTOR_SIZE),
                Err,
            ) {
                Ok(maps) => maps,
                Err(e) => {
                    failed[k..=j].fill(Some(e));
                    k = j + 1;
                    continue;
                }
            };
            // Uninited sectors read as zeros: what is on disk there is
            // whatever the sector held before it was allocated to this
            // file (another file's data, once freed sectors are reused).
            let kinds: Vec<io::Sector> = io::classify(&maps, start, count, file_len)
                .into_iter()
                .map(|s| match s {
                    io::Sector::Uninited(_) => io::Sector::Zero,
                    s => s,
                })
                .collect();
            for (n, c) in claims[k..=j].iter_mut().enumerate() {
                let frame = c.frame.as_mut().expect("fillable claim has a frame");
                let sectors = &kinds[n * SECTORS_PER_PAGE..(n + 1) * SECTORS_PER_PAGE];
                let before = pieces.len();
                let zeros = io::page_pieces(c.index, frame.phys(), sectors, u8::MAX, &mut pieces);
                counts[k + n] = (pieces.len() - before) as u32;
                for s in zeros {
                    frame.zero(s * SECTOR_SIZE as usize, SECTOR_SIZE as usize);
                }
            }
            k = j + 1;
        }
        for c in claims.iter_mut() {
            if let (ClaimKind::New { keep, .. }, Some(frame)) = (&c.kind, c.frame.as_mut()) {
                frame.zero(0, keep.start);
                frame.zero(keep.end, PAGE_SIZE - keep.end);
            }
        }
        let mut wakes = Wakes::new();
        let mut owners = Vec::new();
        let mut zero_fills = 0;
        let mut frees = Vec::new();
        {
            let mut inner = self.inner.lock();
            let indices: Vec<u64> = claims.iter().map(|c| c.index).collect();
            for ((c, &n), fail) in claims.into_iter().zip(counts.iter()).zip(failed) {
                let p = inner
                    .pages
                    .get_mut(&c.index)
                    .expect("claimed page has an entry");
                if let Some(e) = fail {
                    p.claim_failed(e, &mut wakes);
                    frees.extend(c.frame);
                    continue;
                }
                match (c.frame, c.kind) {
                    (None, ClaimKind::Fill) => p.alloc_failed(&mut wakes),
                    (None, ClaimKind::New { owner, .. }) => {
                        p.alloc_failed(&mut wakes);
                        owners.push((owner, Err(Errno::ENOMEM)));
                    }
                    (Some(f), ClaimKind::Fill) => {
                        zero_fills += u64::from(n == 0);
                        p.start_fill(f, n, &mut wakes);
                    }
                    (Some(f), ClaimKind::New { owner, .. }) => {
                        p.start_new(f, &mut wakes);
                        owners.push((owner, Ok(())));
                    }
                }
            }
            cache.lru_sync(&self.me, &mut inner.pages, indices.iter().copied());
            for i in indices {
                if inner.pages.get(&i).is_some_and(|p| p.removable()) {
                    inner.pages.remove(&i);
                }
            }
        }
        bump(&cache.stats.zero_fills, zero_fills);
        cache.free_frames(frees);
        wake(wakes);
        wake(owners);
        self.submit_fills(pieces, file_len);
    }

    /// Submits fill pieces; `file_len` is the length they were classified
    /// with.
    fn submit_fills(self: &Arc<Self>, pieces: Vec<Piece>, file_len: u64) {
        let vol = &self.volume;
        for run in io::batch(pieces, vol.max_segments, vol.max_sectors) {
            self.submit_fill_run(run, file_len);
        }
    }

    /// Submits one fill request. A failed request of several pieces is
    /// retried piece by piece (`retry_fill`), so that a bad
    /// sector fails only the page that holds it; its pages stay READING
    /// meanwhile, each piece still settling its page once. Kernel-lock or
    /// bh context (a retry is submitted from the completion).
    fn submit_fill_run(self: &Arc<Self>, run: Vec<Piece>, file_len: u64) {
        let segs = io::segments(&run);
        let node = Held::new(self.clone());
        let disk = run[0].disk;
        let req = Request::read(disk, &segs, move |status| {
            assert_bh("pagecache fill completion");
            bh_safe_alloc(|| {
                if !status.is_ok() && run.len() > 1 {
                    bump(&node.cache().stats.retries, 1);
                    node.arc().retry_fill(run, file_len);
                } else {
                    let indices: Vec<u64> = run.iter().map(|p| p.index).collect();
                    node.fill_done(&indices, status, file_len);
                }
            });
        });
        bump(&self.cache().stats.read_requests, 1);
        self.volume.storage.submit(req);
    }

    /// Reads the pieces of a failed fill request again, one at a time:
    /// each is submitted when the one before it has completed, so the
    /// device cannot merge them back into one request that fails whole.
    fn retry_fill(self: &Arc<Self>, mut pieces: Vec<Piece>, file_len: u64) {
        let p = pieces.remove(0);
        let segs = io::segments(&[p]);
        let node = Held::new(self.clone());
        let req = Request::read(p.disk, &segs, move |status| {
            assert_bh("pagecache fill retry completion");
            bh_safe_alloc(|| {
                node.fill_done(&[p.index], status, file_len);
                if !pieces.is_empty() {
                    node.arc().retry_fill(pieces, file_len);
                }
            });
        });
        bump(&self.cache().stats.read_requests, 1);
        self.volume.storage.submit(req);
    }

    /// A fill request ended (bh): each of its pieces is done. A filled
    /// page holding the end of file (`file_len`, as the fill saw it) gets
    /// its bytes past the end zeroed: the disk has zeros there, except
    /// while a truncate to `file_len` is pending, when it still has the
    /// old data (the filesystem zeroes it when it applies the truncate).
    fn fill_done(&self, indices: &[u64], status: Status, file_len: u64) {
        let cache = self.cache();
        let ok = status.is_ok();
        let now = cache.clock();
        let mut wakes = Wakes::new();
        let mut frees = Vec::new();
        let (mut filled, mut failed) = (0, 0);
        {
            let mut inner = self.inner.lock();
            for &i in indices {
                let p = inner
                    .pages
                    .get_mut(&i)
                    .expect("page in flight has an entry");
                let (finished, frame) = p.io_done(ok, now, &mut wakes);
                if finished {
                    if p.state() == PageState::Active {
                        filled += 1;
                        let tail = (file_len % PS) as usize;
                        if i == file_len / PS && tail != 0 {
                            // Nobody has seen the page yet: its waiters
                            // are woken below, after the lock.
                            let f = p.frame().expect("a filled page has a frame");
                            f.view().zero(tail, PAGE_SIZE - tail);
                        }
                    } else {
                        failed += 1;
                    }
                }
                frees.extend(frame);
            }
            cache.lru_sync(&self.me, &mut inner.pages, indices.iter().copied());
            for i in indices {
                if inner.pages.get(i).is_some_and(|p| p.removable()) {
                    inner.pages.remove(i);
                }
            }
        }
        bump(&cache.stats.fills, filled);
        bump(&cache.stats.read_errors, failed);
        cache.free_frames(frees);
        wake(wakes);
    }

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
    fn release_write(self: &Arc<Self>, b: &WriteBatch, copied: usize) -> usize {
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

    /// Puts the node on its volume's dirty list (under the node lock).
    pub(crate) fn note_dirty(&self, inner: &mut NodeInner) {
        if !inner.on_dirty_list {
            inner.on_dirty_list = true;
            let me = self.me.upgrade().expect("a live node");
            self.volume.dirty.lock().push(me);
        }
    }

    /// A page fault on page `index` of a mapping of this file: gets the
    /// page filled and pins it, then hands `done` a [`Mapped`] to install.
    /// A write fault on a shared mapping reserves the page's space, marks it
    /// dirty and makes it writable (it is then written back on every sync
    /// while mapped, as there is no PTE dirty tracking). Private mappings
    /// get the page read-only; the caller copies it for copy-on-write.
    /// Past the end of file: EFAULT (SIGBUS). Kernel-lock context.
    pub fn fault(
        self: &Arc<Self>,
        index: u64,
        access: Access,
        done: Completion<Result<Mapped, Errno>>,
    ) {
        assert_kernel_lock("Node::fault");
        bh_safe_alloc(|| self.fault_inner(index, access, done))
    }

    /// Map-around: pins, for read-only mappings, those of the `count`
    /// pages from `first` that are readable in the cache right now (never
    /// waiting, never starting I/O, never past the end of file). After a
    /// read fault the caller maps them next to the faulting page, so a
    /// program walking a shared mapping takes one fault per run of cached
    /// pages, not one per page. Only when the node knows the file's length
    /// and no truncate is pending ([`Node::known_len`]; else nothing): it
    /// never asks the backing, so never takes the filesystem's mutex. Any
    /// context but irq (the unlocked fault path calls it); takes the node
    /// lock, allocates only bh-safe.
    pub fn map_resident(self: &Arc<Self>, first: u64, count: u64) -> Vec<Mapped> {
        let file_pages = self.known_len().unwrap_or(0).div_ceil(PS);
        let end = first.saturating_add(count).min(file_pages);
        if first >= end {
            return Vec::new();
        }
        bh_safe_alloc(|| {
            let mut found = Vec::new();
            let epoch;
            {
                let mut inner = self.inner.lock();
                epoch = inner.epoch;
                for (&i, p) in inner.pages.range_mut(first..end) {
                    if p.readable() {
                        // A pin changes no LRU membership (see `read`).
                        p.pin();
                        p.touch();
                        let view = p.frame().expect("readable page has a frame").view();
                        found.push((i, view));
                    }
                }
            }
            bump(&self.cache().stats.hits, found.len() as u64);
            found
                .into_iter()
                .map(|(index, view)| Mapped {
                    node: Some(Held::new(self.clone())),
                    index,
                    epoch,
                    view,
                    writable: false,
                })
                .collect()
        })
    }

    /// Page `index` pinned read-only for a mapping, if that needs nothing
    /// but the pin: the node knows the file's length, no truncate is
    /// pending, the page lies inside the file and is readable in the cache.
    /// Otherwise `None`, with nothing changed: the caller faults with
    /// [`Node::fault`] under the kernel lock. For a read fault on a shared
    /// mapping, or the copy a private mapping makes; never for a shared
    /// write (which reserves space and marks the page dirty).
    ///
    /// Any context but irq; needs no kernel lock (the unlocked fault
    /// path): takes only the node's lock, allocates only bh-safe, and the
    /// [`Mapped`]'s drop is safe anywhere.
    pub fn map_cached(self: &Arc<Self>, index: u64) -> Option<Mapped> {
        let known = self.known_len()?;
        if index.checked_mul(PS)? >= known {
            return None;
        }
        bh_safe_alloc(|| {
            let (view, epoch) = {
                let mut inner = self.inner.lock();
                let epoch = inner.epoch;
                let p = inner.pages.get_mut(&index).filter(|p| p.readable())?;
                p.pin();
                p.touch();
                (p.frame().expect("readable page has a frame").view(), epoch)
            };
            bump(&self.cache().stats.hits, 1);
            Some(Mapped {
                node: Some(Held::new(self.clone())),
                index,
                epoch,
                view,
                writable: false,
            })
        })
    }

    /// Readahead after a fault on page `index` of a mapping, started once
    /// the fault's own fill is (so the faulting thread does not wait
    /// behind it): fills the missing pages of the window after `index`
    /// without pinning them. `around` pages for a fault that does not
    /// continue a sequential walk; the window doubles (to the cache's
    /// readahead limit) while faults move forward. Its state is the
    /// node's mapping readahead, apart from the one `read()` advances.
    /// Kernel-lock context (fills map through the backing).
    pub fn fault_ahead(self: &Arc<Self>, index: u64, around: u64) {
        assert_kernel_lock("Node::fault_ahead");
        let Ok(file_len) = self.file_len() else {
            return;
        };
        let file_pages = file_len.div_ceil(PS);
        let cache = self.cache().clone();
        bh_safe_alloc(|| {
            let mut ahead = Vec::new();
            {
                let mut inner = self.inner.lock();
                let mut wakes = Wakes::new();
                let range = inner.map_ra.advance(index, around, &cache);
                for i in range.start..range.end.min(file_pages) {
                    if inner
                        .pages
                        .get(&i)
                        .is_some_and(|p| p.state() != PageState::Free)
                    {
                        continue;
                    }
                    let p = inner.pages.entry(i).or_default();
                    p.claim(&mut wakes);
                    ahead.push(Claim::fill(i));
                }
                // Claims change no page's LRU membership.
                debug_assert!(wakes.is_empty());
            }
            bump(&cache.stats.readahead, ahead.len() as u64);
            self.start_fills(ahead);
        })
    }

    fn fault_inner(
        self: &Arc<Self>,
        index: u64,
        access: Access,
        done: Completion<Result<Mapped, Errno>>,
    ) {
        let cache = self.cache().clone();
        let file_len = match self.file_len() {
            Ok(l) => l,
            Err(e) => {
                done.complete(&*cache.runqueue, Err(e));
                return;
            }
        };
        let ps = index * PS;
        if ps >= file_len {
            done.complete(&*cache.runqueue, Err(Errno::EFAULT));
            return;
        }
        let shared_write = access.write && access.shared;
        if shared_write {
            if let Err(e) = self.backing.reserve(ps, (file_len - ps).min(PS)) {
                done.complete(&*cache.runqueue, Err(e));
                return;
            }
            self.extended_to(ps + (file_len - ps).min(PS));
        }
        let gather = Gather::new();
        let mut claims = Vec::new();
        let epoch;
        {
            let mut inner = self.inner.lock();
            let mut wakes = Wakes::new();
            epoch = inner.epoch;
            let p = inner.pages.entry(index).or_default();
            p.pin();
            if p.state() == PageState::Free {
                p.claim(&mut wakes);
                claims.push(Claim::fill(index));
            }
            match p.wait(Want::Readable, gather.clone()) {
                None => {
                    gather.add(1);
                    bump(&cache.stats.misses, 1);
                }
                Some(_) => {
                    p.touch();
                    bump(&cache.stats.hits, 1)
                }
            }
        }
        self.start_fills(claims);
        let node = Held::new(self.clone());
        let mask = mask_within(index, file_len);
        gather.set_finish(move |r| {
            node.arc()
                .clone()
                .finish_fault(index, epoch, shared_write, mask, r, done)
        });
        gather.settle(Ok(()));
    }

    fn finish_fault(
        self: Arc<Self>,
        index: u64,
        epoch: u64,
        shared_write: bool,
        mask: u8,
        r: Result<(), Errno>,
        done: Completion<Result<Mapped, Errno>>,
    ) {
        bh_safe_alloc(|| {
            let node = Held::new(self);
            let cache = node.cache().clone();
            match r {
                Ok(()) => {
                    let view = {
                        let mut guard = node.inner.lock();
                        let inner = &mut *guard;
                        let mut wakes = Wakes::new();
                        let detached = inner.locate(index, epoch).is_some();
                        let p = inner.pinned_mut(index, epoch);
                        assert!(p.readable(), "fault finished on {:?}", p.state());
                        let view = p.frame().expect("readable page has a frame").view();
                        if shared_write {
                            p.map_shared_writable();
                            // A page truncated away while this fault
                            // waited is mapped as it was, but its stores
                            // are never written back.
                            if !detached {
                                p.mark_dirty(mask, cache.clock(), &mut wakes);
                                node.note_dirty(inner);
                            }
                        }
                        debug_assert!(wakes.is_empty());
                        if !detached {
                            cache.lru_sync(node.me(), &mut inner.pages, [index]);
                        }
                        view
                    };
                    let m = Mapped {
                        node: Some(node),
                        index,
                        epoch,
                        view,
                        writable: shared_write,
                    };
                    done.complete(&*cache.runqueue, Ok(m));
                }
                Err(e) => {
                    node.unpin_range(index, index, epoch, false);
                    done.complete(&*cache.runqueue, Err(e));
                }
            }
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.volume.cache().nodes.fetch_sub(1, Ordering::Relaxed);
        // The last reference is dropped under the kernel lock (`Held`
        // defers it there), so freeing the backing is allowed. Nothing pins
        // the pages (pins hold a reference) and no I/O is in flight (it
        // does too); dirty pages keep the node on its volume's dirty list.
        #[cfg(not(target_os = "none"))]
        if std::thread::panicking() {
            return;
        }
        let cache = self.volume.cache().clone();
        let inner = self.inner.get_mut();
        assert!(
            inner.detached.is_empty(),
            "node dropped with detached pages (their holders keep it alive)"
        );
        let mut frees = Vec::new();
        let mut keys = Vec::new();
        let mut wakes = Wakes::new();
        for (_, mut p) in core::mem::take(&mut inner.pages) {
            keys.extend(p.lru_key());
            match p.state() {
                PageState::Active => frees.push(p.evict(&mut wakes)),
                PageState::Free => {}
                s => panic!("node dropped with a {s:?} page"),
            }
        }
        cache.lru_forget(keys);
        cache.free_frames(frees);
    }
}

/// Pinned, readable pages of a read, from file offset `offset` for `len`
/// bytes. Copy out with [`Pages::read_at`] / [`Pages::copy_to`] /
/// [`Pages::copy_out`] with no pagecache lock held; dropping it unpins the pages (any context but irq).
pub struct Pages {
    node: Option<Held>,
    offset: u64,
    len: usize,
    first: u64,
    /// The node's truncate epoch when the pages were pinned.
    epoch: u64,
    views: Vec<FrameView>,
}

impl Pages {
    fn empty(offset: u64) -> Pages {
        Pages {
            node: None,
            offset,
            len: 0,
            first: offset / PS,
            epoch: 0,
            views: Vec::new(),
        }
    }

    /// Bytes available (the request clipped at the end of file).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Page indices and the file ranges of this read they hold, in order.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, Range<u64>)> + '_ {
        let end = self.offset + self.len as u64;
        (0..self.views.len() as u64).map(move |k| {
            let i = self.first + k;
            let r = coverage(i, self.offset, end);
            (i, i * PS + r.start as u64..i * PS + r.end as u64)
        })
    }

    /// Copies the bytes at `pos` (relative to [`Pages::offset`]) into
    /// `dst`; `pos + dst.len()` must not exceed [`Pages::len`].
    pub fn read_at(&self, pos: usize, dst: &mut [u8]) {
        assert!(pos + dst.len() <= self.len, "read past the pinned range");
        let mut file = self.offset + pos as u64;
        let mut done = 0;
        while done < dst.len() {
            let k = (file / PS - self.first) as usize;
            let in_page = (file % PS) as usize;
            let n = (PAGE_SIZE - in_page).min(dst.len() - done);
            self.views[k].read(in_page, &mut dst[done..done + n]);
            done += n;
            file += n as u64;
        }
    }

    /// Copies all the bytes straight from the pinned frames into `dst`
    /// from its byte `at` on, page by page, stopping at the first short
    /// copy. Returns the bytes copied. The pages stay pinned throughout, so `dst` may fault and
    /// sleep (even on a mapping of this very file: a pin excludes only
    /// eviction, never another reader or a fault).
    pub fn copy_out(&self, dst: &mut impl RawDestination, at: usize) -> usize {
        let mut done = 0;
        for (k, (_, range)) in self.chunks().enumerate() {
            let n = (range.end - range.start) as usize;
            let in_page = (range.start % PS) as usize;
            let got = self.views[k].copy_out(in_page, n, dst, at + done);
            done += got;
            if got < n {
                break;
            }
        }
        done
    }

    /// Copies everything (or as much as fits) into `dst`; returns bytes.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = self.len.min(dst.len());
        self.read_at(0, &mut dst[..n]);
        n
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let last = self.first + self.views.len() as u64 - 1;
            node.unpin_range(self.first, last, self.epoch, false);
        }
    }
}

/// Leased, pinned pages of a write. Copy in with [`WriteBatch::write_at`]
/// (no pagecache lock held), then [`WriteBatch::commit`] the bytes copied,
/// under the kernel lock. Dropping it uncommitted aborts (commits 0 bytes),
/// which must also happen under the kernel lock.
///
/// A copy into a batch must not fault into a page of this same batch that
/// the batch took NEW (it would wait for this very commit): the syscall
/// layer faults the source in before calling `write`, or stops at the
/// first fault, commits what it copied and retries (as Linux does).
pub struct WriteBatch {
    node: Option<Held>,
    offset: u64,
    len: usize,
    first: u64,
    views: Vec<FrameView>,
    owned: Vec<bool>,
    finished: bool,
}

impl WriteBatch {
    fn empty(offset: u64) -> WriteBatch {
        WriteBatch {
            node: None,
            offset,
            len: 0,
            first: offset / PS,
            views: Vec::new(),
            owned: Vec::new(),
            finished: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Copies `src` to position `pos` of the batch (relative to
    /// [`WriteBatch::offset`]).
    pub fn write_at(&mut self, pos: usize, src: &[u8]) {
        assert!(pos + src.len() <= self.len, "write past the leased range");
        let mut file = self.offset + pos as u64;
        let mut done = 0;
        while done < src.len() {
            let k = (file / PS - self.first) as usize;
            let in_page = (file % PS) as usize;
            let n = (PAGE_SIZE - in_page).min(src.len() - done);
            self.views[k].write(in_page, &src[done..done + n]);
            done += n;
            file += n as u64;
        }
    }

    /// Copies `len` bytes of `src` (from its byte 0) to position `pos` of
    /// the batch, page by page; stops where `src` does. Returns the bytes
    /// copied, for [`WriteBatch::commit`]. A source that may fault on a
    /// page of this batch must not demand-page (see the type's doc): the
    /// kernel copies with user faults disabled, commits what it got and
    /// faults the rest in outside the batch.
    pub fn copy_in(&mut self, pos: usize, src: &mut impl crate::RawSource, len: usize) -> usize {
        assert!(pos + len <= self.len, "write past the leased range");
        let mut file = self.offset + pos as u64;
        let mut done = 0;
        while done < len {
            let k = (file / PS - self.first) as usize;
            let in_page = (file % PS) as usize;
            let n = (PAGE_SIZE - in_page).min(len - done);
            let got = self.views[k].copy_in(in_page, n, src, done);
            done += got;
            if got < n {
                break;
            }
            file += n as u64;
        }
        done
    }

    /// Copies as much of `src` as the batch holds; returns bytes copied.
    pub fn copy_from(&mut self, src: &[u8]) -> usize {
        let n = self.len.min(src.len());
        self.write_at(0, &src[..n]);
        n
    }

    /// Commits the first `copied` bytes as dirty and releases the pages;
    /// returns the bytes committed (less than `copied` if a NEW page was
    /// only partly copied: it is dropped rather than exposing garbage).
    /// Kernel-lock context.
    pub fn commit(mut self, copied: usize) -> usize {
        self.finish(copied)
    }

    fn finish(&mut self, copied: usize) -> usize {
        if self.finished {
            return 0;
        }
        self.finished = true;
        let Some(node) = self.node.take() else {
            return 0;
        };
        assert_kernel_lock("WriteBatch::commit");
        let arc = node.arc().clone();
        let n = bh_safe_alloc(|| arc.release_write(self, copied));
        drop(arc);
        drop(node);
        n
    }
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        self.finish(0);
    }
}

/// A faulted-in page, pinned for as long as it is mapped. Dropping it is
/// the unmap (any context but irq).
pub struct Mapped {
    node: Option<Held>,
    index: u64,
    /// The node's truncate epoch when the page was pinned.
    epoch: u64,
    view: FrameView,
    writable: bool,
}

impl Mapped {
    /// The frame to put in the page table.
    pub fn phys(&self) -> u64 {
        self.view.phys()
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// Whether the page may be mapped writable (a shared write fault).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether the page is still the file's page at its index and inside
    /// the file: not truncated or punched away since it was pinned (a page
    /// taken out while held is detached, see the module doc), and no
    /// pending truncate ends at or below it. A fault checks it under its
    /// address space's lock before it installs the page: a truncate caps
    /// the length, detaches, then removes the mappings of the pages past
    /// the end under that lock, so a page installed after that removal
    /// must not be one the truncate took away. Any context but irq; takes
    /// the node lock.
    pub fn current(&self) -> bool {
        let Some(node) = &self.node else {
            return false;
        };
        if self.index.saturating_mul(PS) >= node.cap.load(Ordering::Acquire) {
            return false;
        }
        node.inner.lock().locate(self.index, self.epoch).is_none()
    }

    /// Copies out of the page (a private mapping's copy-on-write, or a
    /// user load).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) {
        self.view.read(offset, dst);
    }

    /// A store through a shared writable mapping (what user code does
    /// through the PTE; host tests call it).
    pub fn write_at(&self, offset: usize, src: &[u8]) {
        assert!(self.writable, "store through a read-only mapping");
        self.view.write(offset, src);
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.unpin_range(self.index, self.index, self.epoch, self.writable);
        }
    }
}
