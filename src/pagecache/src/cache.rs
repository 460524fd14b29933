//! The global cache and the per-volume state.
//!
//! [`PageCache`] owns the hooks every node shares (frame allocator,
//! runqueue), the configuration, the LRU of clean pages, the count of
//! resident frames against the memory limit, the writeback clock and the
//! statistics. [`VolumeCache`] owns a volume's storage (a
//! [`cairn_block::Volume`]), its filesystem metadata hook and the list of
//! its dirty nodes.
//!
//! Contexts: constructors, [`PageCache::writeback_tick`] and
//! [`VolumeCache::sync`] kernel-lock; [`PageCache::shrink`] (and the
//! eviction inside frame allocation) kernel-lock or bh; stats any.
//!
//! Locks: `pagecache.lru` (alone to pop a victim, or under a node lock when
//! a page joins or leaves the LRU), then `pagecache.node` of the victim
//! *after* releasing the LRU lock; `pagecache.volume` under a node lock
//! only; `pagecache.volumes` alone. Frames are freed with no lock held.

use crate::frame::{Frame, FrameAllocator};
use crate::io::Held;
use crate::node::{CPage, Node};
use crate::{MetadataSync, RunQueueHook, assert_kernel_lock};
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static LRU_CLASS: LockClass = LockClass::new("pagecache.lru");
static VOLUMES_CLASS: LockClass = LockClass::new("pagecache.volumes");
pub(crate) static VOLUME_CLASS: LockClass = LockClass::new("pagecache.volume");

/// Tunables, fixed at creation.
#[derive(Copy, Clone, Debug)]
pub struct Config {
    /// Frames the cache aims to hold at most. Clean pages are evicted to
    /// stay under it; dirty, in-flight and pinned pages cannot be, so it is
    /// a target, not a hard cap (the frame allocator is the hard cap).
    pub limit_pages: usize,
    /// Periodic writeback writes pages dirty for at least this many ticks.
    pub writeback_age: u64,
    /// First readahead window, in pages, on a sequential read.
    pub readahead_initial: u32,
    /// Largest readahead window, in pages (also capped at a quarter of the
    /// memory limit).
    pub readahead_max: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limit_pages: 1 << 16,
            writeback_age: 30,
            readahead_initial: 4,
            readahead_max: 64,
        }
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub fills: AtomicU64,
    pub zero_fills: AtomicU64,
    pub readahead: AtomicU64,
    pub writeback: AtomicU64,
    pub evictions: AtomicU64,
    pub truncated: AtomicU64,
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
    pub flush_errors: AtomicU64,
    pub read_requests: AtomicU64,
    pub write_requests: AtomicU64,
    pub retries: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// A copy of the counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Pages found readable when a read or fault looked them up.
    pub hits: u64,
    /// Pages a read or fault had to wait for (filled, or in flight).
    pub misses: u64,
    /// Pages filled from disk.
    pub fills: u64,
    /// Pages filled with zeros without I/O (holes, uninited, past EOF).
    pub zero_fills: u64,
    /// Pages claimed by readahead.
    pub readahead: u64,
    /// Pages whose writeback was started.
    pub writeback: u64,
    pub evictions: u64,
    /// Pages truncated away (discarded at once, or detached while held).
    pub truncated: u64,
    /// Pages whose fill failed.
    pub read_errors: u64,
    /// Pages whose writeback failed.
    pub write_errors: u64,
    pub flush_errors: u64,
    /// Read and write requests submitted.
    pub read_requests: u64,
    pub write_requests: u64,
    /// Failed requests of several pieces retried piece by piece.
    pub retries: u64,
}

impl StatsSnapshot {
    pub fn errors(&self) -> u64 {
        self.read_errors + self.write_errors + self.flush_errors
    }
}

/// The LRU of clean pages: key (a sequence number, oldest first) → page.
/// A page is on it exactly while it is ACTIVE (pinned or not); its key is
/// stored in the page. Eviction is second-chance (CLOCK-like): the oldest
/// page is evicted if it is evictable and was not read since it was last
/// looked at; otherwise it is requeued as the newest. Hits only set the
/// page's referenced bit, so reads of cached pages cost no LRU operation.
pub(crate) struct Lru {
    next: u64,
    entries: BTreeMap<u64, (Weak<Node>, u64)>,
}

/// The global pagecache.
pub struct PageCache {
    pub(crate) config: Config,
    pub(crate) frames: Arc<dyn FrameAllocator>,
    pub(crate) runqueue: Arc<dyn RunQueueHook>,
    lru: IrqSpinLock<Lru>,
    pub(crate) volumes: IrqSpinLock<Vec<Weak<VolumeCache>>>,
    resident: AtomicUsize,
    /// Nodes that exist now (see [`PageCache::nodes`]).
    pub(crate) nodes: AtomicUsize,
    clock: AtomicU64,
    pub(crate) stats: Stats,
}

impl PageCache {
    pub fn new(
        config: Config,
        frames: Arc<dyn FrameAllocator>,
        runqueue: Arc<dyn RunQueueHook>,
    ) -> Arc<PageCache> {
        bh_safe_alloc(|| {
            Arc::new(PageCache {
                config,
                frames,
                runqueue,
                lru: IrqSpinLock::new(
                    &LRU_CLASS,
                    Lru {
                        next: 0,
                        entries: BTreeMap::new(),
                    },
                ),
                volumes: IrqSpinLock::new(&VOLUMES_CLASS, Vec::new()),
                resident: AtomicUsize::new(0),
                nodes: AtomicUsize::new(0),
                clock: AtomicU64::new(0),
                stats: Stats::default(),
            })
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Frames the cache holds now.
    pub fn resident(&self) -> usize {
        self.resident.load(Ordering::Relaxed)
    }

    /// Nodes (files with a page tree) that exist now, on every volume.
    pub fn nodes(&self) -> usize {
        self.nodes.load(Ordering::Relaxed)
    }

    /// Pages on the LRU (the clean ones, pinned or not).
    pub fn lru_len(&self) -> usize {
        self.lru.lock().entries.len()
    }

    /// Resident pages eviction cannot take: dirty, being written back or
    /// filled, or new (everything not on the LRU). Any context.
    pub fn unclean(&self) -> usize {
        self.resident().saturating_sub(self.lru_len())
    }

    /// Whether writers should be throttled: more than half the memory
    /// target is unclean (Linux's `dirty_ratio`). The kernel's writers then
    /// write back and wait before dirtying more (`balance_dirty_pages`);
    /// the pagecache itself never blocks a write for it.
    pub fn over_dirty_limit(&self) -> bool {
        self.unclean() > self.config.limit_pages / 2
    }

    /// The writeback clock (ticks of [`PageCache::writeback_tick`]).
    pub fn clock(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            hits: l(&s.hits),
            misses: l(&s.misses),
            fills: l(&s.fills),
            zero_fills: l(&s.zero_fills),
            readahead: l(&s.readahead),
            writeback: l(&s.writeback),
            evictions: l(&s.evictions),
            truncated: l(&s.truncated),
            read_errors: l(&s.read_errors),
            write_errors: l(&s.write_errors),
            flush_errors: l(&s.flush_errors),
            read_requests: l(&s.read_requests),
            retries: l(&s.retries),
            write_requests: l(&s.write_requests),
        }
    }

    /// Evicts up to `n` clean, unpinned pages, least recently used first
    /// (second chance for pages read since last looked at); returns how
    /// many went. The kernel calls it when the physical heap runs low.
    /// Kernel-lock or bh context, no pagecache lock held.
    pub fn shrink(&self, n: usize) -> usize {
        bh_safe_alloc(|| self.evict(n))
    }

    fn evict(&self, n: usize) -> usize {
        let mut evicted = 0;
        // Each entry is looked at most twice (once to clear its second
        // chance); pinned pages are requeued, so bound the scan.
        let mut budget = 2 * self.lru_len() + n;
        while evicted < n && budget > 0 {
            budget -= 1;
            let Some((key, (weak, index))) = self.lru.lock().entries.pop_first() else {
                break;
            };
            let Some(node) = weak.upgrade() else {
                continue;
            };
            let node = Held::new(node);
            let frame = {
                let mut inner = node.inner.lock();
                let mut wakes = Vec::new();
                let frame = match inner.pages.get_mut(&index) {
                    // Otherwise the page changed since it was queued (it
                    // left ACTIVE, or was re-keyed) and whoever changed it
                    // dropped the key.
                    Some(p) if p.lru_key() == Some(key) => {
                        p.set_lru_key(None);
                        if p.take_referenced() || !p.evictable() {
                            None
                        } else {
                            Some(p.evict(&mut wakes))
                        }
                    }
                    _ => None,
                };
                debug_assert!(wakes.is_empty(), "an evictable page had waiters");
                match inner.pages.get(&index) {
                    Some(p) if p.removable() => {
                        inner.pages.remove(&index);
                    }
                    // Spared: back on the LRU as the newest.
                    Some(p) if p.lru_key().is_none() && p.on_lru_state() => {
                        self.lru_sync(node.me(), &mut inner.pages, [index]);
                    }
                    _ => {}
                }
                frame
            };
            if let Some(f) = frame {
                self.free_frames([f]);
                evicted += 1;
            }
        }
        bump(&self.stats.evictions, evicted as u64);
        evicted
    }

    /// Gets `n` frames, evicting clean pages first to stay under the limit
    /// and again whenever the allocator runs dry. Returns fewer when
    /// memory is exhausted. No pagecache lock may be held.
    pub(crate) fn alloc_frames(&self, n: usize) -> Vec<Frame> {
        let over = (self.resident() + n).saturating_sub(self.config.limit_pages);
        if over > 0 {
            self.evict(over);
        }
        let mut frames = Vec::with_capacity(n);
        while frames.len() < n {
            match self.frames.alloc() {
                Some(f) => frames.push(f),
                None => {
                    if self.evict(n - frames.len()) == 0 {
                        break;
                    }
                }
            }
        }
        self.resident.fetch_add(frames.len(), Ordering::Relaxed);
        frames
    }

    pub(crate) fn free_frames(&self, frames: impl IntoIterator<Item = Frame>) {
        for f in frames {
            self.frames.free(f);
            self.resident.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Brings the LRU in line with the pages at `indices` of one node:
    /// ACTIVE pages get a key, the others lose theirs. Called under the
    /// node lock (order node → lru); takes the LRU lock only if something
    /// changes.
    pub(crate) fn lru_sync(
        &self,
        node: &Weak<Node>,
        pages: &mut BTreeMap<u64, CPage>,
        indices: impl IntoIterator<Item = u64>,
    ) {
        // The LRU's tree nodes may be freed by a removal in bh context (a
        // writeback completion): whatever calls this, they are allocated
        // bh-safe.
        bh_safe_alloc(|| self.lru_sync_inner(node, pages, indices))
    }

    fn lru_sync_inner(
        &self,
        node: &Weak<Node>,
        pages: &mut BTreeMap<u64, CPage>,
        indices: impl IntoIterator<Item = u64>,
    ) {
        let mut lru = None;
        for i in indices {
            let Some(p) = pages.get_mut(&i) else {
                continue;
            };
            match (p.lru_key(), p.on_lru_state()) {
                (Some(key), false) => {
                    let l = lru.get_or_insert_with(|| self.lru.lock());
                    l.entries.remove(&key);
                    p.set_lru_key(None);
                }
                (None, true) => {
                    let l = lru.get_or_insert_with(|| self.lru.lock());
                    let key = l.next;
                    l.next += 1;
                    l.entries.insert(key, (node.clone(), i));
                    p.set_lru_key(Some(key));
                }
                _ => {}
            }
        }
    }

    /// Drops the LRU keys of a node that is going away.
    pub(crate) fn lru_forget(&self, keys: impl IntoIterator<Item = u64>) {
        let mut l = self.lru.lock();
        for k in keys {
            l.entries.remove(&k);
        }
    }

    /// Every node with dirty pages, over all volumes (kernel-lock).
    pub(crate) fn dirty_nodes(&self) -> Vec<Arc<Node>> {
        let vols: Vec<Arc<VolumeCache>> = self
            .volumes
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        vols.iter().flat_map(|v| v.dirty_snapshot()).collect()
    }
}

/// A mounted volume as the pagecache sees it.
pub struct VolumeCache {
    pub(crate) cache: Arc<PageCache>,
    pub(crate) storage: cairn_block::Volume,
    pub(crate) meta: Arc<dyn MetadataSync>,
    /// Nodes with DIRTY or WRITING pages (or shared-writable mappings).
    /// Added to under a node lock in any context; pruned only in
    /// kernel-lock context, so a node is never dropped from here in bh.
    pub(crate) dirty: IrqSpinLock<Vec<Arc<Node>>>,
    pub(crate) max_segments: usize,
    pub(crate) max_sectors: u64,
}

impl VolumeCache {
    /// Registers a volume; kernel-lock context.
    pub fn new(
        cache: &Arc<PageCache>,
        storage: cairn_block::Volume,
        meta: Arc<dyn MetadataSync>,
    ) -> Arc<VolumeCache> {
        assert_kernel_lock("VolumeCache::new");
        bh_safe_alloc(|| {
            let info = storage.device_info();
            let max_segments = (info.max_segments as usize).max(1);
            let max_sectors = u64::from(info.max_sectors).max(crate::page::SECTORS_PER_PAGE as u64);
            let v = Arc::new(VolumeCache {
                cache: cache.clone(),
                storage,
                meta,
                dirty: IrqSpinLock::new(&VOLUME_CLASS, Vec::new()),
                max_segments,
                max_sectors,
            });
            let mut vols = cache.volumes.lock();
            vols.retain(|w| w.strong_count() > 0);
            vols.push(Arc::downgrade(&v));
            v
        })
    }

    pub fn cache(&self) -> &Arc<PageCache> {
        &self.cache
    }

    pub fn storage(&self) -> &cairn_block::Volume {
        &self.storage
    }

    /// Nodes on the dirty list now.
    pub fn dirty_nodes(&self) -> usize {
        self.dirty.lock().len()
    }

    pub(crate) fn dirty_snapshot(&self) -> Vec<Arc<Node>> {
        self.dirty.lock().clone()
    }
}

impl core::fmt::Debug for VolumeCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VolumeCache({:?})", self.storage)
    }
}
