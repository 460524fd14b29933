//! I/O plumbing shared by fills and writeback.
//!
//! * [`Held`]: a node reference that may be dropped in bh context (the last
//!   reference is then dropped under the kernel lock, via the runqueue).
//! * [`Gather`]: one operation waiting for several pages and requests; the
//!   last to settle runs its finish closure, wherever that happens.
//! * Sector classification of a page range from the filesystem's mappings,
//!   and batching of per-page pieces into scatter-gather requests, one per
//!   contiguous disk run (split at the device's segment and sector limits).
//!
//! Contexts: `Gather::settle` and `Held` drops run in kernel-lock or bh;
//! the rest is pure computation. Locks: `pagecache.gather` only, alone.

use crate::node::Node;
use crate::page::SECTORS_PER_PAGE;
use crate::{Errno, Extent, Mapping, SECTOR_SIZE, in_kernel_lock, run_or_defer};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::Segment;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

static GATHER_CLASS: LockClass = LockClass::new("pagecache.gather");

/// A node reference safe to drop in any context.
pub(crate) struct Held(Option<Arc<Node>>);

impl Held {
    pub(crate) fn new(node: Arc<Node>) -> Held {
        Held(Some(node))
    }

    pub(crate) fn arc(&self) -> &Arc<Node> {
        self.0.as_ref().expect("held node")
    }
}

impl core::ops::Deref for Held {
    type Target = Node;
    fn deref(&self) -> &Node {
        self.arc()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(node) = self.0.take() {
            release(node);
        }
    }
}

/// Drops a node reference. Outside the kernel lock, the last reference is
/// not dropped here: the node (whose backing came from the kernel-lock
/// heap) goes to the runqueue and is dropped there.
pub(crate) fn release(node: Arc<Node>) {
    if in_kernel_lock() {
        // The common case: no runqueue to look up.
        drop(node);
        return;
    }
    let runqueue = node.volume().cache().runqueue.clone();
    if let Some(last) = Arc::into_inner(node) {
        run_or_defer(&*runqueue, move || drop(last));
    }
}

type Finish = Box<dyn FnOnce(Result<(), Errno>) + Send>;

/// An operation waiting for pages and requests. Starts with one pending
/// settle (the initiator's), so it cannot finish before the initiator has
/// registered everything and installed the finish closure.
pub(crate) struct Gather {
    pending: AtomicUsize,
    error: AtomicI32,
    finish: IrqSpinLock<Option<Finish>>,
}

impl Gather {
    pub(crate) fn new() -> Arc<Gather> {
        bh_safe_alloc(|| {
            Arc::new(Gather {
                pending: AtomicUsize::new(1),
                error: AtomicI32::new(0),
                finish: IrqSpinLock::new(&GATHER_CLASS, None),
            })
        })
    }

    /// `n` more settles to wait for. Only before the initiator's settle.
    pub(crate) fn add(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::Relaxed);
    }

    /// Installs what runs when everything settled (before the initiator's
    /// own settle).
    pub(crate) fn set_finish(&self, f: impl FnOnce(Result<(), Errno>) + Send + 'static) {
        let f: Finish = bh_safe_alloc(|| Box::new(f));
        *self.finish.lock() = Some(f);
    }

    /// One awaited page or request is done; the first error wins. Call
    /// with no pagecache lock held.
    pub(crate) fn settle(&self, r: Result<(), Errno>) {
        if let Err(e) = r {
            let _ = self
                .error
                .compare_exchange(0, e.0, Ordering::AcqRel, Ordering::Acquire);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let f = self.finish.lock().take().expect("gather finished twice");
            let r = match self.error.load(Ordering::Acquire) {
                0 => Ok(()),
                e => Err(Errno(e)),
            };
            f(r);
        }
    }
}

/// Runs the settles collected under a node lock, after it was dropped.
pub(crate) fn wake(wakes: Vec<(Arc<Gather>, Result<(), Errno>)>) {
    for (g, r) in wakes {
        g.settle(r);
    }
}

/// What one sector of a file is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Sector {
    Disk(u64),
    Uninited(u64),
    /// A hole, or past the end of the file.
    Zero,
}

/// Classifies the `count` sectors of the file from byte `start` (a
/// sector multiple), given the filesystem's mappings of that range.
pub(crate) fn classify(maps: &[Mapping], start: u64, count: usize, file_len: u64) -> Vec<Sector> {
    let mut out = Vec::with_capacity(count);
    let mut m = 0;
    for k in 0..count as u64 {
        let off = start + k * SECTOR_SIZE;
        if off >= file_len.next_multiple_of(SECTOR_SIZE) {
            out.push(Sector::Zero);
            continue;
        }
        while m < maps.len() && maps[m].offset + maps[m].len <= off {
            m += 1;
        }
        let s = match maps.get(m) {
            Some(map) if map.offset <= off => {
                let delta = (off - map.offset) / SECTOR_SIZE;
                match map.extent {
                    Extent::Disk { sector } => Sector::Disk(sector + delta),
                    Extent::Uninited { sector } => Sector::Uninited(sector + delta),
                    Extent::Hole => Sector::Zero,
                }
            }
            _ => Sector::Zero,
        };
        out.push(s);
    }
    out
}

/// A run of sectors of one page that goes to or comes from disk.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Piece {
    /// First disk sector.
    pub disk: u64,
    pub sectors: u64,
    /// Physical address of its first byte in the frame.
    pub phys: u64,
    /// The page it belongs to.
    pub index: u64,
    /// File byte offset of its first byte.
    pub file_off: u64,
    /// Written to an uninited extent (needs `mark_written`).
    pub uninited: bool,
}

/// Splits the sectors of page `index` selected by `mask` into pieces of
/// disk-contiguous sectors. `kinds` are the page's 8 sectors. Returns the
/// pieces and the selected sectors that have no disk location.
pub(crate) fn page_pieces(
    index: u64,
    phys: u64,
    kinds: &[Sector],
    mask: u8,
    out: &mut Vec<Piece>,
) -> Vec<usize> {
    debug_assert_eq!(kinds.len(), SECTORS_PER_PAGE);
    let mut holes = Vec::new();
    let mut cur: Option<Piece> = None;
    for (s, kind) in kinds.iter().enumerate() {
        let selected = mask & (1 << s) != 0;
        let loc = match (selected, kind) {
            (true, Sector::Disk(d)) => Some((*d, false)),
            (true, Sector::Uninited(d)) => Some((*d, true)),
            (true, Sector::Zero) => {
                holes.push(s);
                None
            }
            (false, _) => None,
        };
        match (loc, cur.as_mut()) {
            (Some((d, u)), Some(c)) if c.disk + c.sectors == d && c.uninited == u => {
                c.sectors += 1;
            }
            (Some((d, u)), _) => {
                if let Some(c) = cur.take() {
                    out.push(c);
                }
                let byte = s as u64 * SECTOR_SIZE;
                cur = Some(Piece {
                    disk: d,
                    sectors: 1,
                    phys: phys + byte,
                    index,
                    file_off: index * crate::PAGE_SIZE as u64 + byte,
                    uninited: u,
                });
            }
            (None, _) => {
                if let Some(c) = cur.take() {
                    out.push(c);
                }
            }
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    holes
}

/// Sorts pieces by disk sector and cuts them into requests: each request
/// covers one contiguous disk run, with at most `max_segments` segments and
/// `max_sectors` sectors.
pub(crate) fn batch(
    mut pieces: Vec<Piece>,
    max_segments: usize,
    max_sectors: u64,
) -> Vec<Vec<Piece>> {
    pieces.sort_by_key(|p| p.disk);
    let mut runs: Vec<Vec<Piece>> = Vec::new();
    let mut segs = 0usize;
    let mut sectors = 0u64;
    let mut last_phys_end = u64::MAX;
    for p in pieces {
        let joins = runs.last().is_some_and(|run| {
            let l = run.last().expect("non-empty run");
            let merges_segment = last_phys_end == p.phys;
            l.disk + l.sectors == p.disk
                && sectors + p.sectors <= max_sectors
                && (merges_segment || segs < max_segments)
        });
        if joins {
            if last_phys_end != p.phys {
                segs += 1;
            }
            sectors += p.sectors;
            runs.last_mut().expect("run").push(p);
        } else {
            segs = 1;
            sectors = p.sectors;
            runs.push(alloc::vec![p]);
        }
        last_phys_end = p.phys + p.sectors * SECTOR_SIZE;
    }
    runs
}

/// The scatter-gather list of a run: physically adjacent pieces share a
/// segment.
pub(crate) fn segments(run: &[Piece]) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    for p in run {
        let len = (p.sectors * SECTOR_SIZE) as u32;
        match segs.last_mut() {
            Some(s) if s.phys + u64::from(s.len) == p.phys => s.len += len,
            _ => segs.push(Segment { phys: p.phys, len }),
        }
    }
    segs
}

/// The dirty mask of the sectors that byte range `start .. end` of a page
/// touches.
pub(crate) fn sector_mask(start: usize, end: usize) -> u8 {
    if start >= end {
        return 0;
    }
    let first = start / SECTOR_SIZE as usize;
    let last = (end - 1) / SECTOR_SIZE as usize;
    let mut m = 0u8;
    for s in first..=last {
        m |= 1 << s;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn classify_maps_extents_and_eof() {
        let maps = [
            Mapping {
                offset: 0,
                len: 1024,
                extent: Extent::Disk { sector: 100 },
            },
            Mapping {
                offset: 2048,
                len: 512,
                extent: Extent::Uninited { sector: 7 },
            },
        ];
        let k = classify(&maps, 0, 8, 3000);
        assert_eq!(
            k,
            vec![
                Sector::Disk(100),
                Sector::Disk(101),
                Sector::Zero,
                Sector::Zero,
                Sector::Uninited(7),
                Sector::Zero,
                Sector::Zero,
                Sector::Zero
            ]
        );
    }

    #[test]
    fn pieces_merge_contiguous_sectors_and_report_holes() {
        let kinds = [
            Sector::Disk(10),
            Sector::Disk(11),
            Sector::Disk(20),
            Sector::Uninited(21),
            Sector::Zero,
            Sector::Disk(30),
            Sector::Disk(31),
            Sector::Disk(32),
        ];
        let mut out = Vec::new();
        let holes = page_pieces(2, 0x1000, &kinds, 0b1111_1111, &mut out);
        assert_eq!(holes, vec![4]);
        let got: Vec<(u64, u64, u64, bool)> = out
            .iter()
            .map(|p| (p.disk, p.sectors, p.phys, p.uninited))
            .collect();
        assert_eq!(
            got,
            vec![
                (10, 2, 0x1000, false),
                (20, 1, 0x1400, false),
                (21, 1, 0x1600, true),
                (30, 3, 0x1a00, false)
            ]
        );
        let mut out = Vec::new();
        assert!(page_pieces(2, 0x1000, &kinds, 0b0000_0001, &mut out).is_empty());
        assert_eq!(out.len(), 1);
    }

    fn piece(disk: u64, sectors: u64, phys: u64) -> Piece {
        Piece {
            disk,
            sectors,
            phys,
            index: 0,
            file_off: 0,
            uninited: false,
        }
    }

    #[test]
    fn batch_cuts_at_gaps_and_limits() {
        let ps = vec![
            piece(16, 8, 0x3000),
            piece(0, 8, 0x1000),
            piece(8, 8, 0x2000),
            piece(40, 8, 0x9000),
        ];
        let runs = batch(ps.clone(), 16, 1024);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].len(), 3);
        assert_eq!(
            segments(&runs[0]),
            vec![Segment {
                phys: 0x1000,
                len: 3 * 4096
            }]
        );
        // Two segments at most: frames 0x1000 and 0x2000 are adjacent, so
        // the first run holds three pages in one segment; cap sectors at 16.
        let runs = batch(ps.clone(), 16, 16);
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1, 1]);
        let scattered = vec![
            piece(0, 8, 0x5000),
            piece(8, 8, 0x1000),
            piece(16, 8, 0x8000),
        ];
        let runs = batch(scattered, 2, 1024);
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(segments(&runs[0]).len(), 2);
    }

    #[test]
    fn masks_cover_touched_sectors() {
        assert_eq!(sector_mask(0, 4096), 0xff);
        assert_eq!(sector_mask(100, 101), 0b1);
        assert_eq!(sector_mask(511, 513), 0b11);
        assert_eq!(sector_mask(5, 5), 0);
    }
}
