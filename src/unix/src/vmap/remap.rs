//! mremap on [`Vmaps`]: shrinking, growing in place, moving
//! (`MREMAP_MAYMOVE`) and moving to a fixed address (`MREMAP_FIXED`).
//!
//! Contexts: kernel-lock, under the caller's address-space lock. Locks:
//! none. All checks (including in-transition source or destination) come
//! before the first edit.

use alloc::vec::Vec;

use super::{MapFile, VmError, Vmap, VmapKind, VmapState, Vmaps};

/// mremap's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemapFlags {
    /// `MREMAP_MAYMOVE`: the mapping may move if it cannot grow in place.
    pub may_move: bool,
    /// `MREMAP_FIXED` with this new address (requires `may_move`).
    pub fixed: Option<u64>,
}

/// Page-table entries to move: `len` bytes from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// Old address.
    pub from: u64,
    /// New address.
    pub to: u64,
    /// Bytes moved (the old length, or the new one if it shrank).
    pub len: u64,
}

/// A successful mremap.
#[derive(Clone, Debug)]
pub struct Remapped<F> {
    /// The mapping's (possibly new) address.
    pub addr: u64,
    /// Entries to move, if it moved.
    pub moved: Option<Move>,
    /// Pieces removed, ascending: the tail cut by shrinking, and what a
    /// fixed destination replaced.
    pub unmapped: Vec<Vmap<F>>,
}

impl<F: MapFile> Vmaps<F> {
    /// Resizes and/or moves the mapping `[old, old + old_len)`, which must
    /// lie inside one area. Errors: `EINVAL` (misalignment, zero lengths —
    /// `old_len == 0` duplication is not supported —, `fixed` without
    /// `may_move`, overlapping fixed ranges), `EPERM` (fixed below the
    /// layout), `EFAULT` (source not inside one area), `EOVERFLOW` (file
    /// offset), `ENOMEM` (cannot grow in place and may not move, or no
    /// room), `MustWait` (source or fixed destination in transition).
    pub fn mremap(
        &mut self,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: RemapFlags,
    ) -> Result<Remapped<F>, VmError> {
        if !crate::page_aligned(old) || old_len == 0 || new_len == 0 {
            return Err(VmError::Invalid);
        }
        if flags.fixed.is_some() && !flags.may_move {
            return Err(VmError::Invalid);
        }
        let old_len = crate::page_round_up(old_len).ok_or(VmError::Invalid)?;
        let new_len = crate::page_round_up(new_len).ok_or(VmError::Invalid)?;
        let old_end = old.checked_add(old_len).ok_or(VmError::Invalid)?;
        let l = self.layout;
        if old_end > l.max {
            return Err(VmError::Invalid);
        }
        let dest = match flags.fixed {
            Some(d) => {
                if !crate::page_aligned(d) {
                    return Err(VmError::Invalid);
                }
                let d_end = d.checked_add(new_len).ok_or(VmError::Invalid)?;
                if d_end > l.max {
                    return Err(VmError::Invalid);
                }
                if d < l.min {
                    return Err(VmError::Permission);
                }
                if d < old_end && old < d_end {
                    return Err(VmError::Invalid);
                }
                Some((d, d_end))
            }
            None => None,
        };
        let a = self.lookup(old).ok_or(VmError::Fault)?;
        if old_end > a.end {
            return Err(VmError::Fault);
        }
        let (area_start, area_end, state) = (a.start, a.end, a.state);
        if let VmapKind::File { offset, .. } = &a.kind {
            (offset + (old - a.start))
                .checked_add(new_len)
                .ok_or(VmError::Overflow)?;
        }
        if let VmapState::InTransition(id) = state {
            return Err(self.must_wait(id));
        }

        if let Some((d, d_end)) = dest {
            self.first_transition(d, d_end)?;
            let mut unmapped = Vec::new();
            if new_len < old_len {
                unmapped.extend(self.remove_range(old + new_len, old_end));
            }
            unmapped.extend(self.remove_range(d, d_end));
            unmapped.sort_by_key(|a| a.start);
            let len = old_len.min(new_len);
            self.move_area(old, len, d, new_len);
            return Ok(Remapped {
                addr: d,
                moved: Some(Move {
                    from: old,
                    to: d,
                    len,
                }),
                unmapped,
            });
        }
        if new_len <= old_len {
            let unmapped = if new_len < old_len {
                self.remove_range(old + new_len, old_end)
            } else {
                Vec::new()
            };
            return Ok(Remapped {
                addr: old,
                moved: None,
                unmapped,
            });
        }
        let grown = old
            .checked_add(new_len)
            .filter(|&e| old_end == area_end && e <= l.max && self.is_free(old_end, e));
        if let Some(e) = grown {
            if let Some(a) = self.areas.get_mut(&area_start) {
                a.end = e;
            }
            self.merge_at(e);
            return Ok(Remapped {
                addr: old,
                moved: None,
                unmapped: Vec::new(),
            });
        }
        if !flags.may_move {
            return Err(VmError::NoMemory);
        }
        let d = self.find_free(new_len).ok_or(VmError::NoMemory)?;
        self.move_area(old, old_len, d, new_len);
        Ok(Remapped {
            addr: d,
            moved: Some(Move {
                from: old,
                to: d,
                len: old_len,
            }),
            unmapped: Vec::new(),
        })
    }

    /// Takes `[old, old + len)` (inside one stable area) out and maps it at
    /// `[dest, dest + new_len)` (free) with the same attributes and file
    /// offset.
    fn move_area(&mut self, old: u64, len: u64, dest: u64, new_len: u64) {
        let Some(mut piece) = self.remove_range(old, old + len).into_iter().next() else {
            return;
        };
        piece.start = dest;
        piece.end = dest + new_len;
        self.insert(piece);
    }
}
