//! Beginning and ending transitions on [`Vmaps`] (the protocol is in the
//! parent module's docs).
//!
//! Contexts: kernel-lock, under the caller's address-space lock. Locks:
//! none. Waking waiters is the caller's job: [`Ended::wake`] says whether
//! anyone asked.

use super::{MapFile, Transition, TransitionId, VmError, VmapState, Vmaps};

/// A transition that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Its first byte.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// True if some operation returned `MustWait` for it: wake the
    /// threads waiting on this id.
    pub wake: bool,
}

impl<F: MapFile> Vmaps<F> {
    /// Marks `[start, start + len)` in transition (clipping areas to it)
    /// before the caller drops the lock to work on it. Errors: `EINVAL`
    /// (misaligned, zero length), `ENOMEM` (part of the range unmapped),
    /// `MustWait` (part of it already in transition).
    pub fn begin_transition(&mut self, start: u64, len: u64) -> Result<TransitionId, VmError> {
        let end = self.user_range(start, len)?;
        if !self.fully_mapped(start, end) {
            return Err(VmError::NoMemory);
        }
        self.first_transition(start, end)?;
        self.split_at(start);
        self.split_at(end);
        let id = TransitionId(self.next_transition);
        self.next_transition = self.next_transition.wrapping_add(1).max(1);
        for (_, a) in self.areas.range_mut(start..end) {
            a.state = VmapState::InTransition(id);
        }
        self.transitions.insert(
            id,
            Transition {
                start,
                end,
                needs_wakeup: false,
            },
        );
        Ok(id)
    }

    /// Ends transition `id`: its areas become stable and merge with
    /// compatible neighbours again. `None` if `id` is not open (a kernel
    /// bug: ending twice).
    pub fn end_transition(&mut self, id: TransitionId) -> Option<Ended> {
        let t = self.transitions.remove(&id)?;
        for (_, a) in self.areas.range_mut(t.start..t.end) {
            if a.state == VmapState::InTransition(id) {
                a.state = VmapState::Stable;
            }
        }
        self.merge_range(t.start, t.end);
        Some(Ended {
            start: t.start,
            end: t.end,
            wake: t.needs_wakeup,
        })
    }

    /// The range of open transition `id`.
    pub fn transition_range(&self, id: TransitionId) -> Option<(u64, u64)> {
        self.transitions.get(&id).map(|t| (t.start, t.end))
    }
}
