//! mmap, munmap, mprotect and teardown on [`Vmaps`].
//!
//! Contexts: kernel-lock, under the caller's address-space lock. Locks:
//! none. Each operation checks everything (arguments, ownership, and that
//! no area it would change is in transition) before its first edit, so a
//! failed or `MustWait` operation leaves the map unchanged.

use alloc::vec::Vec;

use super::{MapFile, Prot, Reprotect, Share, VmError, Vmap, VmapKind, VmapState, Vmaps};

/// Where mmap puts a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere (top-down below [`super::Layout::mmap_top`]).
    Anywhere,
    /// At this address if that range is free, else anywhere.
    Hint(u64),
    /// `MAP_FIXED`: exactly here, replacing what is there.
    Fixed(u64),
    /// `MAP_FIXED_NOREPLACE`: exactly here, `EEXIST` if anything is there.
    FixedNoReplace(u64),
}

/// An mmap request.
#[derive(Clone, Debug)]
pub struct MapRequest<F> {
    /// Length in bytes (rounded up to pages).
    pub len: u64,
    /// Protection.
    pub prot: Prot,
    /// Largest protection a later mprotect may set; must contain `prot`
    /// (`EACCES` otherwise). For a shared file mapping of a file opened
    /// without write access, leave WRITE out.
    pub max_prot: Prot,
    /// Private or shared.
    pub share: Share,
    /// Anonymous or a file and page-aligned offset.
    pub kind: VmapKind<F>,
    /// Where.
    pub placement: Placement,
}

/// A successful mmap.
#[derive(Clone, Debug)]
pub struct Mapped<F> {
    /// Address of the new mapping.
    pub addr: u64,
    /// What `MAP_FIXED` replaced (see the parent module for what to do).
    pub unmapped: Vec<Vmap<F>>,
}

impl<F: MapFile> Vmaps<F> {
    /// Creates a mapping. Errors: `EINVAL` (zero length, misaligned fixed
    /// address or file offset), `EACCES` (`prot` beyond `max_prot`),
    /// `EOVERFLOW` (offset + length), `EPERM` (fixed below the layout),
    /// `ENOMEM` (no room, fixed beyond the layout), `EEXIST`
    /// (no-replace), `MustWait` (MAP_FIXED over an area in transition),
    /// `ENOMEM` past [`super::MAX_MAP_COUNT`] areas.
    pub fn mmap(&mut self, req: MapRequest<F>) -> Result<Mapped<F>, VmError> {
        if req.len == 0 {
            return Err(VmError::Invalid);
        }
        let len = crate::page_round_up(req.len).ok_or(VmError::NoMemory)?;
        if !req.max_prot.contains(req.prot) {
            return Err(VmError::Access);
        }
        if let VmapKind::File { offset, .. } = &req.kind {
            if !crate::page_aligned(*offset) {
                return Err(VmError::Invalid);
            }
            offset.checked_add(len).ok_or(VmError::Overflow)?;
        }
        let l = self.layout;
        let (addr, unmapped) = match req.placement {
            Placement::Fixed(a) | Placement::FixedNoReplace(a) => {
                if !crate::page_aligned(a) {
                    return Err(VmError::Invalid);
                }
                if a < l.min {
                    return Err(VmError::Permission);
                }
                let end = a.checked_add(len).ok_or(VmError::NoMemory)?;
                if end > l.max {
                    return Err(VmError::NoMemory);
                }
                if matches!(req.placement, Placement::FixedNoReplace(_)) {
                    if !self.is_free(a, end) {
                        return Err(VmError::Exists);
                    }
                    self.room_for_areas(a, end, 1)?;
                    (a, Vec::new())
                } else {
                    self.first_transition(a, end)?;
                    self.room_for_areas(a, end, 1)?;
                    (a, self.remove_range(a, end))
                }
            }
            Placement::Hint(h) => {
                let usable = crate::page_round_up(h)
                    .filter(|&h| h >= l.min)
                    .and_then(|h| Some((h, h.checked_add(len)?)))
                    .filter(|&(h, e)| e <= l.max && self.is_free(h, e));
                match usable {
                    Some((h, _)) => (h, Vec::new()),
                    None => (self.find_free(len).ok_or(VmError::NoMemory)?, Vec::new()),
                }
            }
            Placement::Anywhere => (self.find_free(len).ok_or(VmError::NoMemory)?, Vec::new()),
        };
        if unmapped.is_empty() {
            self.room_for_areas(addr, addr + len, 1)?;
        }
        self.insert(Vmap {
            start: addr,
            end: addr + len,
            prot: req.prot,
            max_prot: req.max_prot,
            share: req.share,
            kind: req.kind,
            state: VmapState::Stable,
        });
        Ok(Mapped { addr, unmapped })
    }

    /// Unmaps `[start, start + len)` (holes are fine), splitting areas that
    /// stick out, and returns the removed pieces, ascending. Errors:
    /// `EINVAL` (misaligned start, zero length, beyond the layout),
    /// `MustWait` (part of the range is in transition), `ENOMEM` when a
    /// split would pass [`super::MAX_MAP_COUNT`] areas.
    pub fn munmap(&mut self, start: u64, len: u64) -> Result<Vec<Vmap<F>>, VmError> {
        let end = self.user_range(start, len)?;
        self.first_transition(start, end)?;
        self.room_for_areas(start, end, 0)?;
        Ok(self.remove_range(start, end))
    }

    /// Changes the protection of `[start, start + len)`, splitting and
    /// re-merging areas, and returns the page-table changes. A zero length
    /// succeeds and does nothing. Errors: `EINVAL` (misaligned, bad
    /// range), `ENOMEM` (part of the range unmapped), `MustWait`, `EACCES`
    /// (beyond an area's `max_prot`; past [`super::MAX_MAP_COUNT`] areas).
    /// On error nothing changes.
    pub fn mprotect(
        &mut self,
        start: u64,
        len: u64,
        prot: Prot,
    ) -> Result<Vec<Reprotect>, VmError> {
        if len == 0 {
            return if crate::page_aligned(start) {
                Ok(Vec::new())
            } else {
                Err(VmError::Invalid)
            };
        }
        let end = self.user_range(start, len)?;
        if !self.fully_mapped(start, end) {
            return Err(VmError::NoMemory);
        }
        self.first_transition(start, end)?;
        if self
            .overlapping(start, end)
            .any(|a| !a.max_prot.contains(prot))
        {
            return Err(VmError::Access);
        }
        self.room_for_areas(start, end, 0)?;
        self.split_at(start);
        self.split_at(end);
        let mut changes = Vec::new();
        for (_, a) in self.areas.range_mut(start..end) {
            if a.prot != prot {
                changes.push(Reprotect {
                    start: a.start,
                    end: a.end,
                    old: a.prot,
                    new: prot,
                    share: a.share,
                    file_backed: matches!(a.kind, VmapKind::File { .. }),
                });
                a.prot = prot;
            }
        }
        self.merge_range(start, end);
        Ok(changes)
    }

    /// Removes every area (process exit, or exec replacing the image) and
    /// returns them. `MustWait` if any area is in transition: the kernel
    /// waits for it like any other operation (module docs).
    pub fn teardown(&mut self) -> Result<Vec<Vmap<F>>, VmError> {
        let l = self.layout;
        self.first_transition(l.min, l.max)?;
        let all = core::mem::take(&mut self.areas);
        Ok(all.into_values().collect())
    }
}
