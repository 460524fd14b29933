//! Writeback: periodic ([`PageCache::writeback_tick`]) and on demand
//! ([`Node::sync`], [`VolumeCache::sync`]).
//!
//! A writeback pass over a node takes every DIRTY page that no writer
//! leases to WRITING (a shared-writable mapped page is dirtied first: it
//! may have been stored to), maps its dirty sectors through the backing
//! and submits one scatter-gather write per contiguous disk run. The bh
//! completion takes the pages to ACTIVE, or back to DIRTY with EIO
//! recorded on the node if the write failed (a failed request of several
//! pieces is first retried piece by piece, so only the pages on the bad
//! sectors stay dirty); runs that wrote uninited
//! extents first go through the runqueue to call `mark_written` under the
//! kernel lock (and the pages stay WRITING, hence unevictable, until then,
//! so an evicted page is never re-read as zeros from a still-uninited
//! extent).
//!
//! Sync of a node: pass 1 writes what is dirty and waits for pages that
//! were busy (WRITING, or leased by a writer copying into them); pass 2
//! writes what those left dirty; then the volume's metadata hook; then a
//! device flush. It reports the node's recorded error (EIO) once and clears
//! it, so a failed writeback is reported by the next fsync even if it was a
//! periodic one. Sync of a volume does the data passes of every dirty node,
//! then metadata, then flush; it reports an error if any of it failed, and
//! leaves the nodes' errors for their own fsync.
//!
//! Contexts: passes start in kernel-lock context (they call the backing);
//! write completions run in bh (asserted); the continuation between passes
//! goes through the runqueue when it starts in bh. Locks: `pagecache.node`,
//! with `pagecache.volume` nested when a clean node leaves the dirty list
//! (only here and in truncate, only in kernel-lock context).
//!
//! Writeback maps through the backing's own length, not the node's
//! truncate cap (`Node::file_len`): until the filesystem applies a pending
//! truncate, the sectors past it are still the file's, so a dirty page
//! there is written rather than failed with EIO (truncate then discards
//! it).

use crate::cache::{PageCache, VolumeCache, bump};
use crate::io::{self, Gather, Held, Piece};
use crate::node::{Node, NodeInner, Wakes, mask_within};
use crate::page::{SECTORS_PER_PAGE, Want};
use crate::{
    Completion, Errno, PAGE_SIZE, SECTOR_SIZE, assert_bh, assert_kernel_lock, run_or_defer,
};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::{Request, Status};
use cairn_sync::cpu::bh_safe_alloc;

const PS: u64 = PAGE_SIZE as u64;

type Done = Box<dyn FnOnce(Result<(), Errno>) + Send>;

/// Which dirty pages a pass takes.
#[derive(Copy, Clone)]
enum Filter {
    /// Every dirty page; with `shared`, shared-writable mapped pages too
    /// (sync's first pass: its second only finishes what was busy).
    All { shared: bool },
    /// Pages dirty since clock tick `t` or earlier.
    DirtySince(u64),
}

impl Node {
    /// One writeback pass (kernel-lock). `wait_busy`: also wait for pages
    /// that are WRITING or leased. `done` runs once every write it started
    /// (and every wait) has ended, in bh or kernel-lock context; it gets
    /// EIO if a write of this pass failed. Returns pages started.
    fn writeback_pass(self: &Arc<Self>, filter: Filter, wait_busy: bool, done: Done) -> usize {
        assert_kernel_lock("pagecache writeback");
        let cache = self.cache().clone();
        let now = cache.clock();
        let file_len = match self.backing_len() {
            Ok(l) => l,
            Err(e) => {
                // Nothing can be mapped: the pages stay dirty, the error
                // waits for fsync on the node.
                self.inner.lock().error = Some(e);
                done(Err(e));
                return 0;
            }
        };
        let gather = Gather::new();
        let mut started: Vec<(u64, u8, u64)> = Vec::new();
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let mut wakes = Wakes::new();
            let mut any_dirty = false;
            for (&i, p) in inner.pages.iter_mut() {
                let take = match filter {
                    Filter::All { .. } => true,
                    Filter::DirtySince(t) => p.dirtied_at() <= t,
                };
                let shared_mask = match filter {
                    Filter::All { shared: true } if p.shared_maps() > 0 => mask_within(i, file_len),
                    _ => 0,
                };
                if take {
                    if let Some(mask) = p.begin_writeback(shared_mask, now, &mut wakes) {
                        let phys = p.frame().expect("a WRITING page has a frame").phys();
                        started.push((i, mask, phys));
                    }
                }
                if wait_busy && p.needs_writeback() && !p.idle() {
                    let w = p.wait(Want::Idle, gather.clone());
                    if w.is_none() {
                        gather.add(1);
                    }
                }
                any_dirty |= p.needs_writeback();
            }
            debug_assert!(wakes.is_empty());
            if !any_dirty {
                self.leave_dirty_list(inner);
            }
        }
        let count = started.len();
        bump(&cache.stats.writeback, count as u64);
        self.submit_writeback(started, file_len, &gather);
        gather.set_finish(done);
        gather.settle(Ok(()));
        count
    }

    /// Takes the node off its volume's dirty list (under the node lock,
    /// kernel-lock context only: the list may hold the last reference but
    /// one, never the last, as the caller has the node). The caller saw
    /// that no page needs writeback.
    pub(crate) fn leave_dirty_list(&self, inner: &mut NodeInner) {
        if inner.on_dirty_list {
            inner.on_dirty_list = false;
            let me = self.me().as_ptr();
            self.volume()
                .dirty
                .lock()
                .retain(|n| !core::ptr::eq(Arc::as_ptr(n), me));
        }
    }

    /// Maps the dirty sectors of pages just taken to WRITING and submits
    /// their writes; each request settles `gather` once.
    fn submit_writeback(
        self: &Arc<Self>,
        started: Vec<(u64, u8, u64)>,
        file_len: u64,
        gather: &Arc<Gather>,
    ) {
        if started.is_empty() {
            return;
        }
        let mut pieces: Vec<Piece> = Vec::new();
        // Per page: pieces submitted, pieces failed already, and why.
        let mut counts: Vec<(u64, u32, u32, Errno)> = Vec::new();
        let mut k = 0;
        while k < started.len() {
            let mut j = k;
            while j + 1 < started.len() && started[j + 1].0 == started[j].0 + 1 {
                j += 1;
            }
            let start = started[k].0 * PS;
            let count = (j - k + 1) * SECTORS_PER_PAGE;
            let maps = match self.backing().map(start, count as u64 * SECTOR_SIZE) {
                Ok(maps) => maps,
                Err(e) => {
                    // Unmappable: these pages fail (stay dirty) with `e`.
                    counts.extend(started[k..=j].iter().map(|&(i, ..)| (i, 0, 1, e)));
                    k = j + 1;
                    continue;
                }
            };
            let kinds = io::classify(&maps, start, count, file_len);
            for (n, &(i, mask, phys)) in started[k..=j].iter().enumerate() {
                let sectors = &kinds[n * SECTORS_PER_PAGE..(n + 1) * SECTORS_PER_PAGE];
                let before = pieces.len();
                let holes = io::page_pieces(i, phys, sectors, mask, &mut pieces);
                // A dirty sector with no disk location breaks the reserve
                // contract: that piece fails (EIO), it is never dropped.
                let n = (pieces.len() - before) as u32;
                counts.push((i, n, holes.len() as u32, Errno::EIO));
            }
            k = j + 1;
        }
        let now = self.cache().clock();
        let mut wakes = Wakes::new();
        let mut failed = 0;
        {
            let mut inner = self.inner.lock();
            for &(i, n, bad, e) in &counts {
                let p = inner.pages.get_mut(&i).expect("WRITING page has an entry");
                p.set_io_pending(n + bad);
                for _ in 0..bad {
                    if p.io_done(false, now, &mut wakes).0 {
                        failed += 1;
                    }
                }
                if bad > 0 {
                    inner.error = Some(e);
                }
            }
        }
        bump(&self.cache().stats.write_errors, failed);
        io::wake(wakes);
        let vol = self.volume().clone();
        let runs = io::batch(pieces, vol.max_segments, vol.max_sectors);
        gather.add(runs.len());
        for run in runs {
            self.submit_write_run(run, gather.clone());
        }
    }

    /// Submits one writeback request, which settles `g` once. A failed
    /// request of several pieces is retried piece by piece (`retry_write`),
    /// each settling `g` once instead, so that a bad
    /// sector keeps only the page holding it dirty. Kernel-lock or bh.
    fn submit_write_run(self: &Arc<Self>, run: Vec<Piece>, g: Arc<Gather>) {
        let segs = io::segments(&run);
        let node = Held::new(self.clone());
        let disk = run[0].disk;
        let req = Request::write(disk, &segs, move |status| {
            assert_bh("pagecache writeback completion");
            bh_safe_alloc(|| {
                if !status.is_ok() && run.len() > 1 {
                    bump(&node.cache().stats.retries, 1);
                    // The first retried piece settles `g` in this
                    // request's place.
                    node.arc().retry_write(run, g);
                } else {
                    Node::write_done(node, run, status, g)
                }
            });
        });
        bump(&self.cache().stats.write_requests, 1);
        self.volume().storage.submit(req);
    }

    /// Writes the pieces of a failed writeback request again, one at a
    /// time (each submitted when the one before it has completed, so the
    /// device cannot merge them back into one request that fails whole);
    /// each settles `g` once, the first in the failed request's place.
    fn retry_write(self: &Arc<Self>, mut pieces: Vec<Piece>, g: Arc<Gather>) {
        let p = pieces.remove(0);
        let segs = io::segments(&[p]);
        let node = Held::new(self.clone());
        let req = Request::write(p.disk, &segs, move |status| {
            assert_bh("pagecache writeback retry completion");
            bh_safe_alloc(|| {
                if !pieces.is_empty() {
                    // Before this piece settles: `g` must not finish.
                    g.add(1);
                    node.arc().retry_write(pieces, g.clone());
                }
                Node::write_done(node, alloc::vec![p], status, g)
            });
        });
        bump(&self.cache().stats.write_requests, 1);
        self.volume().storage.submit(req);
    }

    /// A writeback request ended (bh).
    fn write_done(node: Held, run: Vec<Piece>, status: Status, g: Arc<Gather>) {
        let indices: Vec<u64> = run.iter().map(|p| p.index).collect();
        let r = if status.is_ok() {
            Ok(())
        } else {
            Err(Errno::EIO)
        };
        if r.is_ok() && run.iter().any(|p| p.uninited) {
            // The extents become initialised before the pages can be
            // evicted: they stay WRITING until this has run. If the
            // filesystem cannot record it, the pages stay dirty (written
            // and marked again later) and the node keeps the error.
            let runqueue = node.cache().runqueue.clone();
            run_or_defer(&*runqueue, move || {
                let mut r = Ok(());
                for (off, len) in written_runs(&run) {
                    r = r.and(node.backing().mark_written(off, len));
                }
                node.pages_written(&indices, r, &g);
            });
        } else {
            node.pages_written(&indices, r, &g);
        }
    }

    fn pages_written(&self, indices: &[u64], r: Result<(), Errno>, g: &Gather) {
        let cache = self.cache();
        let now = cache.clock();
        let ok = r.is_ok();
        let mut wakes = Wakes::new();
        let mut failed = 0;
        {
            let mut inner = self.inner.lock();
            for &i in indices {
                let p = inner.pages.get_mut(&i).expect("WRITING page has an entry");
                if p.io_done(ok, now, &mut wakes).0 && !ok {
                    failed += 1;
                }
            }
            if let Err(e) = r {
                inner.error = Some(e);
            }
            cache.lru_sync(self.me(), &mut inner.pages, indices.iter().copied());
        }
        bump(&cache.stats.write_errors, failed);
        io::wake(wakes);
        g.settle(r);
    }

    /// Starts writing this node's dirty pages back and returns without
    /// waiting (`POSIX_FADV_DONTNEED`, as Linux's `WB_SYNC_NONE`
    /// writeback); an error is recorded on the node for the next fsync.
    /// Kernel-lock context.
    pub fn start_writeback(self: &Arc<Self>) {
        assert_kernel_lock("Node::start_writeback");
        bh_safe_alloc(|| self.sync_data(Box::new(|_| {})));
    }

    /// Writes this node's dirty pages back (both data passes of a sync,
    /// no metadata commit or flush) and then runs `done` with the first
    /// error of them (direct I/O's writeback before its transfer; the
    /// error stays recorded on the node for fsync too). Kernel-lock
    /// context.
    pub fn write_back(self: &Arc<Self>, done: Completion<Result<(), Errno>>) {
        assert_kernel_lock("Node::write_back");
        bh_safe_alloc(|| {
            let runqueue = self.cache().runqueue.clone();
            self.sync_data(Box::new(move |r| done.complete(&*runqueue, r)));
        })
    }

    /// Both data passes of a sync (kernel-lock); `done` in any context.
    fn sync_data(self: &Arc<Self>, done: Done) {
        let node = Held::new(self.clone());
        let runqueue = self.cache().runqueue.clone();
        self.writeback_pass(
            Filter::All { shared: true },
            true,
            bh_safe_alloc(|| {
                Box::new(move |r1: Result<(), Errno>| {
                    let rq = runqueue.clone();
                    run_or_defer(&*rq, move || {
                        bh_safe_alloc(|| {
                            let n = node.arc().clone();
                            n.writeback_pass(
                                Filter::All { shared: false },
                                false,
                                Box::new(move |r2| done(r1.and(r2))),
                            );
                            drop(node);
                        })
                    });
                })
            }),
        );
    }

    /// fsync: writes this node's dirty pages, then the volume's metadata,
    /// then flushes the device. Reports EIO once if any writeback of this
    /// node failed since the last sync (periodic ones included), or if the
    /// metadata or flush failed. Kernel-lock context.
    pub fn sync(self: &Arc<Self>, done: Completion<Result<(), Errno>>) {
        assert_kernel_lock("Node::sync");
        bh_safe_alloc(|| {
            let node = Held::new(self.clone());
            let volume = self.volume().clone();
            self.sync_data(Box::new(move |_data| {
                // Data errors are on the node; they are taken below.
                finish_sync(volume, move |r| {
                    let recorded = node.inner.lock().error.take();
                    let r = match recorded {
                        Some(e) => Err(e),
                        None => r,
                    };
                    let runqueue = node.cache().runqueue.clone();
                    done.complete(&*runqueue, r);
                    drop(node);
                });
            }));
        })
    }
}

/// Metadata, then a flush if the device holds a write completed since its
/// last flush (the filesystem's commit flushes after its own writes, and a
/// sync with nothing written needs none), then `done` with the first error
/// of those two.
fn finish_sync(volume: Arc<VolumeCache>, done: impl FnOnce(Result<(), Errno>) + Send + 'static) {
    let runqueue = volume.cache().runqueue.clone();
    run_or_defer(&*runqueue, move || {
        bh_safe_alloc(|| {
            let v = volume.clone();
            volume
                .meta
                .sync_metadata(Box::new(move |meta: Result<(), Errno>| {
                    if !v.storage.needs_flush() {
                        done(meta);
                        return;
                    }
                    bh_safe_alloc(|| {
                        let stats_cache = v.cache().clone();
                        let req = Request::flush(move |status| {
                            assert_bh("pagecache flush completion");
                            let flush = if status.is_ok() {
                                Ok(())
                            } else {
                                bump(&stats_cache.stats.flush_errors, 1);
                                Err(Errno::EIO)
                            };
                            done(meta.and(flush));
                        });
                        v.storage.submit(req);
                    })
                }));
        })
    });
}

impl VolumeCache {
    /// The data passes of every dirty node of the volume, no metadata
    /// commit and no flush: what a writer throttled past the dirty limit
    /// waits for (Linux's `balance_dirty_pages`, which never forces a
    /// journal commit or a cache flush either). `done` gets the first
    /// error; every error also stays recorded on its node for the next
    /// fsync. Kernel-lock context.
    pub fn write_back(self: &Arc<Self>, done: Completion<Result<(), Errno>>) {
        assert_kernel_lock("VolumeCache::write_back");
        bh_safe_alloc(|| {
            let nodes = self.dirty_snapshot();
            let gather = Gather::new();
            gather.add(nodes.len());
            for n in &nodes {
                let g = gather.clone();
                n.sync_data(Box::new(move |r| g.settle(r)));
            }
            let runqueue = self.cache().runqueue.clone();
            gather.set_finish(move |data| done.complete(&*runqueue, data));
            gather.settle(Ok(()));
        })
    }

    /// syncfs: the data passes of every dirty node, then metadata, then a
    /// device flush. EIO if any writeback of this sync, the metadata or the
    /// flush failed, or a node holds an unreported writeback error (which
    /// stays for that node's own fsync). Kernel-lock context.
    pub fn sync(self: &Arc<Self>, done: Completion<Result<(), Errno>>) {
        assert_kernel_lock("VolumeCache::sync");
        bh_safe_alloc(|| {
            let nodes = self.dirty_snapshot();
            let gather = Gather::new();
            gather.add(nodes.len());
            for n in &nodes {
                let g = gather.clone();
                n.sync_data(Box::new(move |r| g.settle(r)));
            }
            let volume = self.clone();
            let held: Vec<Held> = nodes.into_iter().map(Held::new).collect();
            gather.set_finish(move |data| {
                let pending = held
                    .iter()
                    .find_map(|n| n.inner.lock().error)
                    .map_or(Ok(()), Err);
                drop(held);
                let runqueue = volume.cache().runqueue.clone();
                finish_sync(volume, move |r| {
                    let r = data.and(pending).and(r);
                    done.complete(&*runqueue, r);
                });
            });
            gather.settle(Ok(()));
        })
    }
}

impl PageCache {
    /// The periodic writeback, called by a kernel timer under the kernel
    /// lock: advances the clock one tick and starts writeback of every
    /// page dirty for at least `writeback_age` ticks (errors go to the
    /// nodes, for their next fsync). Returns pages started.
    pub fn writeback_tick(&self) -> usize {
        assert_kernel_lock("PageCache::writeback_tick");
        bh_safe_alloc(|| {
            let now = self.tick();
            let Some(since) = now.checked_sub(self.config.writeback_age) else {
                return 0;
            };
            self.dirty_nodes()
                .into_iter()
                .map(|n| n.writeback_pass(Filter::DirtySince(since), false, Box::new(|_| {})))
                .sum()
        })
    }
}

/// The file byte ranges of `run`'s pieces written to uninited extents,
/// contiguous pieces joined: one `Backing::mark_written` per range, not
/// per page (a filesystem records each call as extent splits and merges).
fn written_runs(run: &[Piece]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for p in run.iter().filter(|p| p.uninited) {
        let len = p.sectors * SECTOR_SIZE;
        match out.last_mut() {
            Some((off, l)) if *off + *l == p.file_off => *l += len,
            _ => out.push((p.file_off, len)),
        }
    }
    out
}
