//! One cached file: its page tree and the operations on it.
//!
//! [`Node`] owns the file's pages (index → [`Page`] in a `BTreeMap`), its
//! readahead state and its sticky writeback error, all behind the node
//! lock. The operations on it are split by job, one file each:
//!
//! | file | owns |
//! |---|---|
//! | `node/mod.rs` (this) | [`Node`] and `NodeInner`: construction, the length (`file_len`, `known_len`, the truncate cap), [`PageInfo`], where a pinned page is (`locate`, `pinned`), unpinning (`unpin_range`), the dirty list (`note_dirty`), dropping a node, and the small page-range helpers the others share |
//! | `read.rs` | reads: pinning a range and claiming its missing pages for fills (concurrent readers of a page share its one fill), adaptive readahead (`Readahead`), the lockless cached read |
//! | `fill.rs` | fills: claimed pages taken to READING/NEW, their scatter-gather requests, piecewise retry, completion |
//! | `write.rs` | writes: space reservation, whole-page overwrites without reading, read-modify-write of partial pages, commit of dirty sectors, the lockless overwrite of cached reserved pages (`write_cached`) |
//! | `fault.rs` | faults on mappings: fault fills, map-around, the lockless cached fault, mapping readahead (`MapAhead`) |
//! | `handles.rs` | [`Pages`], [`WriteBatch`], [`Mapped`]: what a caller holds while it copies |
//!
//! Writeback lives in `writeback.rs`, truncate in `truncate.rs`.
//!
//! Results come back as pinned handles — [`Pages`] (read), [`WriteBatch`]
//! (write), [`Mapped`] (fault) — and the caller copies through them with
//! **no pagecache lock held**. A copy may therefore fault into this same
//! file and wait for another fill of it (seeds/002, Brian's scenario);
//! nothing here is held but pins, which block eviction only.
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
//! Contexts: `read`, `write`, `fault`, [`WriteBatch::commit`] kernel-lock
//! (they call the [`Backing`] and submit I/O). Fill completions bh
//! (asserted). Dropping [`Pages`] or [`Mapped`] kernel-lock or bh. Each
//! file's doc says which of its functions run where. Here: `Node::new`
//! and `file_len` kernel-lock (the latter asks the backing);
//! `known_len`, `length_changed`, `page_info`, `unpin_range` and
//! `note_dirty` any context but irq; the node's drop kernel-lock (`Held`
//! defers the last reference there).
//!
//! Locks: `pagecache.node`, and nested under it `pagecache.lru` (a page
//! joins or leaves the LRU) or `pagecache.volume` (the node joins its
//! volume's dirty list, `note_dirty`). Frames are allocated (which may
//! evict, taking other nodes' locks) and freed, requests submitted and
//! waiters woken only after the node lock is released. `unpin_range` takes
//! the node lock alone and frees the frames of detached pages after it.

mod fault;
mod fill;
mod handles;
mod read;
mod write;

pub use fault::Access;
pub(crate) use fault::MapAhead;
pub use handles::{CACHED_MAX_PAGES, CachedPages, CachedWrite, Mapped, Pages, WriteBatch};
pub(crate) use read::Readahead;

use crate::cache::{PageCache, VolumeCache};
use crate::frame::Frame;
use crate::io::{self, Gather};
use crate::page::PageState;
use crate::{Backing, Errno, PAGE_SIZE, Page, assert_kernel_lock};
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
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

/// A snapshot of one page, for tests and debugging.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PageInfo {
    pub state: PageState,
    pub pins: u32,
    pub leases: u32,
    pub dirty: u8,
    pub on_lru: bool,
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
                if epoch == inner.epoch && first == last {
                    // The common case (a one-page read or fault): one
                    // lookup.
                    let p = inner
                        .pages
                        .get_mut(&first)
                        .expect("a pinned page has an entry");
                    p.unpin();
                    if unmap_shared {
                        p.unmap_shared_writable();
                    }
                    if p.removable() {
                        inner.pages.remove(&first);
                    }
                } else if epoch == inner.epoch {
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

    /// Puts the node on its volume's dirty list (under the node lock).
    pub(crate) fn note_dirty(&self, inner: &mut NodeInner) {
        if !inner.on_dirty_list {
            inner.on_dirty_list = true;
            let me = self.me.upgrade().expect("a live node");
            self.volume.dirty.lock().push(me);
        }
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
