//! Grant table v1: the front end lends pages to a backend domain by
//! writing `(flags, domid, frame)` entries into the table the hypervisor
//! shares with it.
//!
//! The table is memory set up by the platform (mapped grant-table frames);
//! this module only manages entries and a free list. Reference 0..8 are
//! reserved by convention (the toolstack uses them).
//!
//! Contexts: any but irq. Lock: owned by the caller (blkfront keeps its
//! table under its device lock).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, Ordering};

pub const GTF_PERMIT_ACCESS: u16 = 1;
pub const GTF_READONLY: u16 = 1 << 2;
pub const GTF_READING: u16 = 1 << 3;
pub const GTF_WRITING: u16 = 1 << 4;

/// First reference handed out.
pub const FIRST_REF: u32 = 8;

/// One v1 entry as laid out in memory.
#[repr(C)]
pub struct Entry {
    pub flags: AtomicU16,
    pub domid: u16,
    pub frame: u32,
}

/// A grant table over `entries` entries at `base`.
pub struct GrantTable {
    base: *mut Entry,
    entries: u32,
    free: Vec<u32>,
}

// SAFETY: the table memory is shared with the hypervisor, not with other
// threads: the owner serialises access.
unsafe impl Send for GrantTable {}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// No free reference.
    Exhausted,
    /// The backend still has the page mapped (reading or writing).
    InUse,
    /// The frame number does not fit a v1 entry (32 bits).
    FrameTooHigh,
}

impl GrantTable {
    /// # Safety
    /// `base` must point at `entries` writable, zero-initialised entries
    /// that stay valid for the table's life and are used by nothing else in
    /// this domain.
    pub unsafe fn new(base: *mut Entry, entries: u32) -> GrantTable {
        GrantTable {
            base,
            entries,
            free: (FIRST_REF..entries).rev().collect(),
        }
    }

    fn entry(&self, r: u32) -> &Entry {
        assert!(r < self.entries);
        // SAFETY: `r` is inside the table given to `new`.
        unsafe { &*self.base.add(r as usize) }
    }

    /// Free references.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Lets `domid` access `frame` (read-only if `readonly`); the reference.
    pub fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Result<u32, GrantError> {
        let frame = u32::try_from(frame).map_err(|_| GrantError::FrameTooHigh)?;
        let r = self.free.pop().ok_or(GrantError::Exhausted)?;
        // SAFETY: `r` is a free entry inside the table; the hypervisor only
        // looks at an entry whose PERMIT flag is set, which is written last.
        unsafe {
            let e = self.base.add(r as usize);
            (*e).domid = domid;
            (*e).frame = frame;
        }
        core::sync::atomic::fence(Ordering::Release);
        self.entry(r).flags.store(
            GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 },
            Ordering::Release,
        );
        Ok(r)
    }

    /// Ends access through `r` unless the backend still uses it.
    pub fn end(&mut self, r: u32) -> Result<(), GrantError> {
        let f = &self.entry(r).flags;
        let mut cur = f.load(Ordering::Acquire);
        loop {
            if cur & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantError::InUse);
            }
            match f.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(c) => cur = c,
            }
        }
        self.free.push(r);
        Ok(())
    }

    /// The entry of `r`: (flags, domid, frame) — for backend models.
    pub fn read(&self, r: u32) -> (u16, u16, u32) {
        let e = self.entry(r);
        (e.flags.load(Ordering::Acquire), e.domid, e.frame)
    }

    /// Sets or clears backend-owned flags (READING/WRITING) — for models.
    pub fn set_busy(&self, r: u32, busy: u16) {
        let e = self.entry(r);
        let f = e.flags.load(Ordering::Acquire) & !(GTF_READING | GTF_WRITING);
        e.flags.store(f | busy, Ordering::Release);
    }
}
