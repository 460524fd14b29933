//! The map's primitive edits: clipping, splitting, merging, removing and
//! inserting areas, the in-transition checks that guard them, and the
//! free-range search.
//!
//! Contexts: kernel-lock, under the caller's address-space lock (see the
//! parent module). Locks: none. Every edit here is only ever applied to
//! **stable** areas: the public operations check the whole range for
//! in-transition areas before the first edit ([`Vmaps::first_transition`]),
//! and merging refuses in-transition areas ([`mergeable`]).

use alloc::vec::Vec;

use super::{MapFile, Transition, TransitionId, VmError, Vmap, VmapKind, VmapState, Vmaps, Wait};

/// True if `a` (ending where `b` starts) and `b` can become one area:
/// both stable, same protections and sharing, and the same backing with
/// contiguous offsets.
pub(super) fn mergeable<F: MapFile>(a: &Vmap<F>, b: &Vmap<F>) -> bool {
    a.end == b.start
        && a.state == VmapState::Stable
        && b.state == VmapState::Stable
        && a.prot == b.prot
        && a.max_prot == b.max_prot
        && a.share == b.share
        && match (&a.kind, &b.kind) {
            (VmapKind::Anonymous, VmapKind::Anonymous) => true,
            (
                VmapKind::File {
                    file: fa,
                    offset: oa,
                },
                VmapKind::File {
                    file: fb,
                    offset: ob,
                },
            ) => fa.same_file(fb) && oa.checked_add(a.len()) == Some(*ob),
            _ => false,
        }
}

/// A copy of `a` restricted to `[start, end)` (which must overlap it).
pub(super) fn clip<F: MapFile>(a: &Vmap<F>, start: u64, end: u64) -> Vmap<F> {
    let s = a.start.max(start);
    let e = a.end.min(end);
    let mut c = a.clone();
    c.start = s;
    c.end = e;
    if let VmapKind::File { offset, .. } = &mut c.kind {
        *offset += s - a.start;
    }
    c
}

impl<F: MapFile> Vmaps<F> {
    /// Areas overlapping `[start, end)`, ascending.
    pub(super) fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Vmap<F>> {
        let before = self
            .areas
            .range(..start)
            .next_back()
            .map(|(_, a)| a)
            .filter(move |a| a.end > start);
        before
            .into_iter()
            .chain(self.areas.range(start..end.max(start)).map(|(_, a)| a))
    }

    /// True if every byte of `[start, end)` is in some area.
    pub(super) fn fully_mapped(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for a in self.overlapping(start, end) {
            if a.start > at {
                return false;
            }
            at = a.end;
        }
        at >= end
    }

    /// True if no area overlaps `[start, end)`.
    pub(super) fn is_free(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).next().is_none()
    }

    /// The first in-transition area overlapping `[start, end)`, as the
    /// `MustWait` error to return; records that the transition has a
    /// waiter (the caller is about to sleep on it).
    pub(super) fn first_transition(&mut self, start: u64, end: u64) -> Result<(), VmError> {
        let id = self.overlapping(start, end).find_map(|a| match a.state {
            VmapState::InTransition(id) => Some(id),
            VmapState::Stable => None,
        });
        match id {
            None => Ok(()),
            Some(id) => Err(self.must_wait(id)),
        }
    }

    /// The `MustWait` error for `id`, marking it as having a waiter.
    pub(super) fn must_wait(&mut self, id: TransitionId) -> VmError {
        let t: &mut Transition = match self.transitions.get_mut(&id) {
            Some(t) => t,
            // Not reachable: every marked area has an open transition
            // (checked by `check_invariants`). Waiting on nothing would
            // hang, so report the range as busy without a wake-up promise.
            None => {
                return VmError::MustWait(Wait {
                    id,
                    start: 0,
                    end: 0,
                });
            }
        };
        t.needs_wakeup = true;
        VmError::MustWait(Wait {
            id,
            start: t.start,
            end: t.end,
        })
    }

    /// `NoMemory` unless `[start, end)` can be cut out (up to two splits)
    /// and `added` areas more be made within [`super::MAX_MAP_COUNT`].
    pub(super) fn room_for_areas(&self, start: u64, end: u64, added: usize) -> Result<(), VmError> {
        let inside = |addr: u64| {
            self.areas
                .range(..addr)
                .next_back()
                .is_some_and(|(_, a)| a.end > addr)
        };
        let splits = usize::from(inside(start)) + usize::from(inside(end));
        if self.areas.len() + splits + added > super::MAX_MAP_COUNT {
            return Err(VmError::NoMemory);
        }
        Ok(())
    }

    /// Splits the area strictly containing `addr` in two at `addr`. The
    /// caller has checked that it is stable.
    pub(super) fn split_at(&mut self, addr: u64) {
        let Some((_, a)) = self.areas.range_mut(..addr).next_back() else {
            return;
        };
        if a.end <= addr {
            return;
        }
        let upper = clip(a, addr, a.end);
        a.end = addr;
        self.areas.insert(addr, upper);
    }

    /// Merges the area ending at `addr` with the one starting there, if
    /// they are compatible (never if either is in transition).
    pub(super) fn merge_at(&mut self, addr: u64) {
        let ok = match (self.areas.range(..addr).next_back(), self.areas.get(&addr)) {
            (Some((_, a)), Some(b)) => mergeable(a, b),
            _ => false,
        };
        if !ok {
            return;
        }
        if let Some(b) = self.areas.remove(&addr) {
            if let Some((_, a)) = self.areas.range_mut(..addr).next_back() {
                a.end = b.end;
            }
        }
    }

    /// Merges at every area boundary in `[start, end]`.
    pub(super) fn merge_range(&mut self, start: u64, end: u64) {
        let keys: Vec<u64> = self.areas.range(start..=end).map(|(&k, _)| k).collect();
        for k in keys {
            self.merge_at(k);
        }
    }

    /// Removes everything in `[start, end)` (splitting areas that stick
    /// out) and returns the removed pieces, ascending. The caller has
    /// checked that no area there is in transition.
    pub(super) fn remove_range(&mut self, start: u64, end: u64) -> Vec<Vmap<F>> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.areas.range(start..end).map(|(&k, _)| k).collect();
        keys.into_iter()
            .filter_map(|k| self.areas.remove(&k))
            .collect()
    }

    /// Inserts `a` into a free range and merges it with its neighbours.
    pub(super) fn insert(&mut self, a: Vmap<F>) {
        let (s, e) = (a.start, a.end);
        self.areas.insert(s, a);
        self.merge_at(e);
        self.merge_at(s);
    }

    /// A free, page-aligned range of `len` bytes: the highest one below
    /// `mmap_top`, else the lowest one above it.
    pub(super) fn find_free(&self, len: u64) -> Option<u64> {
        let l = self.layout;
        // Gaps top-down: (lo, hi).
        let gaps = || {
            let mut hi = l.max;
            let mut it = self.areas.values().rev();
            let mut done = false;
            core::iter::from_fn(move || {
                if done {
                    return None;
                }
                match it.next() {
                    Some(a) => {
                        let gap = (a.end.max(l.min), hi.max(l.min));
                        hi = a.start;
                        Some(gap)
                    }
                    None => {
                        done = true;
                        Some((l.min, hi.max(l.min)))
                    }
                }
            })
        };
        for (lo, hi) in gaps() {
            let h = hi.min(l.mmap_top);
            if h >= lo && h - lo >= len {
                return Some(h - len);
            }
        }
        let mut best = None;
        for (lo, hi) in gaps() {
            if hi >= lo && hi - lo >= len {
                best = Some(lo);
            }
        }
        best
    }
}
