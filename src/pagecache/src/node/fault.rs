//! Faults on mappings of the file: [`Node::fault`], map-around
//! ([`Node::map_resident`]), the lockless [`Node::map_cached`], and the
//! mapping readahead [`Node::fault_ahead`] with its state [`MapAhead`].
//!
//! Owns: pinning the faulting page (filling it if needed), for a write
//! fault on a shared mapping reserving its space, marking it dirty and
//! letting it be mapped writable, and building the fault's [`Mapped`]. A
//! page truncated away while its fault waited is still mapped as it was
//! (it is detached), but its stores are never written back. Does not own:
//! the fills (`fill.rs`), the [`Mapped`] handle (`handles.rs`), unpinning
//! on unmap (`Node::unpin_range` in `node/mod.rs`).
//!
//! Contexts: `fault` and `fault_ahead` kernel-lock (they ask the backing
//! and start fills). The end of a fault that waited (`finish_fault`) runs
//! where its fill completes: bh, or inline under the kernel lock if the
//! page was readable or its fill ended first. `map_resident` and
//! `map_cached` any context but irq, with no kernel lock (the unlocked
//! fault path): they never ask the backing, and answer only when the node
//! knows the length and no truncate is pending.
//!
//! Locks: the backing is called with no lock held. Then `pagecache.node`,
//! and in `finish_fault` under it `pagecache.volume` (`note_dirty`) and
//! `pagecache.lru` (`lru_sync`). Fills start after the node lock is
//! released.

use super::fill::Claim;
use super::handles::Mapped;
use super::{Node, PS, Wakes, mask_within};
use crate::cache::{PageCache, bump};
use crate::io::{Gather, Held};
use crate::page::{PageState, Want};
use crate::{Completion, Errno, assert_kernel_lock};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use core::ops::Range;

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

/// How a page is being mapped by [`Node::fault`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// A write fault.
    pub write: bool,
    /// A shared (`MAP_SHARED`) mapping; otherwise private.
    pub shared: bool,
}

impl Node {
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
