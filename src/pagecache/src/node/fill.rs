//! Fills: taking the pages an operation claimed (FREE → ALLOC, a
//! [`Claim`]) to READING, ACTIVE (all zeros), NEW (a writer overwrites
//! them) or back to FREE, and reading them from disk.
//!
//! Owns: frames for claimed pages, the backing's map of their sectors
//! (uninited sectors and holes read as zeros), one scatter-gather request
//! per contiguous disk run, the retry piece by piece of a failed request
//! (one bad sector fails only its page), and the completion that makes
//! pages ACTIVE (zeroing past the end of file) or fails them with EIO.
//! Does not own: what to claim and who waits (reads, writes, faults:
//! `read.rs`, `write.rs`, `fault.rs`), sector classification and request
//! batching (`io.rs`).
//!
//! Contexts: `start_fills` kernel-lock (it maps through the backing);
//! `submit_fill_run` kernel-lock or bh (a retry is submitted from a
//! completion); `retry_fill` and `fill_done` bh (the request completions
//! assert it).
//!
//! Locks: frames are allocated (which may evict, taking other nodes' locks
//! and `pagecache.lru`) before the node lock is taken. Then
//! `pagecache.node`, and under it `pagecache.lru` (`lru_sync`: filled
//! pages join the LRU). Frames are freed, waiters and owners woken, and
//! requests submitted after the node lock is released.

use super::{Node, PS, Wakes};
use crate::cache::bump;
use crate::frame::Frame;
use crate::io::{self, Gather, Held, Piece, wake};
use crate::page::{PageState, SECTORS_PER_PAGE};
use crate::{Errno, PAGE_SIZE, SECTOR_SIZE, assert_bh};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::{Request, Status};
use cairn_sync::cpu::bh_safe_alloc;
use core::ops::Range;

/// What a claimed page is for.
pub(super) enum ClaimKind {
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
pub(super) struct Claim {
    pub(super) index: u64,
    pub(super) kind: ClaimKind,
    pub(super) frame: Option<Frame>,
}

impl Claim {
    pub(super) fn fill(index: u64) -> Claim {
        Claim {
            index,
            kind: ClaimKind::Fill,
            frame: None,
        }
    }
}

impl Node {
    /// Takes claimed (ALLOC) pages to READING, ACTIVE, NEW or, when no
    /// frame can be had, FREE, and submits their fills. No lock held on
    /// entry; kernel-lock context (it maps through the backing).
    pub(super) fn start_fills(self: &Arc<Self>, mut claims: Vec<Claim>) {
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
}
