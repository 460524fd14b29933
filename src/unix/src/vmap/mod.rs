//! An address space's map of virtual areas ("vmaps"): placement, mmap,
//! munmap, mprotect, mremap, merging of compatible neighbours, and
//! in-transition areas (DESIGN.md §4 rules 3-5).
//!
//! Owns: the sorted, non-overlapping set of [`Vmap`]s of one address space
//! ([`Vmaps`]), the free-range search, and the table of open transitions.
//! It does **not** own page tables, frames or files: every operation
//! returns what the caller must do to them ([`Vmap`] pieces that were
//! unmapped, [`Reprotect`] ranges, a [`Move`] of page-table entries).
//!
//! # Contexts and locks
//!
//! Kernel-lock context only (syscalls and page faults). It takes no lock:
//! the kernel keeps a `Vmaps` under its address-space lock and every method
//! runs with that lock held, so each operation — its checks, its ownership
//! tests and its changes to the map — is atomic (DESIGN.md §4 rule 4, the
//! Mystikos seed). Lock order around it: **fd table → filesystem → address
//! space**: `mmap` of a file looks the fd up (fd-table lock), takes what it
//! needs from the file (filesystem lock) and only then takes the
//! address-space lock to call [`Vmaps::mmap`]; nothing called with the
//! address-space lock held may take the fd-table or filesystem lock.
//!
//! # What the caller does with the results (seeds/004)
//!
//! * [`Vmap`] pieces returned as *unmapped* (munmap, MAP_FIXED replacing,
//!   mremap shrinking, teardown): **before releasing the address-space
//!   lock**, zap their page-table entries (and shoot down TLBs), moving the
//!   dirty bits of [`Share::Shared`] file pages into the pagecache (mark
//!   the pages dirty: spinlocks only, no I/O) and freeing private frames.
//!   Zapping under the same lock hold keeps a new mapping of the range from
//!   being zapped by mistake. Page tables themselves may be freed only for
//!   ranges with no area left. **After** releasing the lock, drop the file
//!   handles they carry (the last reference may close the file, which takes
//!   the filesystem lock: never under the address-space lock).
//! * [`Reprotect`] (mprotect): rewrite the entries' permissions under the
//!   lock. Private file pages still shared with the pagecache stay
//!   read-only in the page table whatever the protection (copy on write).
//! * [`Move`] (mremap): move the page-table entries of `len` bytes from
//!   `from` to `to` under the lock (the frames and pagecache pins travel
//!   with them).
//! * Installing entries (faults) needs the area stable: either under the
//!   lock, or with the area in transition (below).
//!
//! # In-transition areas (seeds/001, GNU Mach)
//!
//! A path that must drop the address-space lock while it works on part of
//! the map — a fault filling a page from the pagecache (which may wait for
//! I/O: §4 rule 1), msync writing back, a wiring — first **marks** that
//! range with [`Vmaps::begin_transition`]. This clips areas to the range and
//! marks them with a [`TransitionId`]. While marked:
//!
//! * no merge, split, clip or extension touches them — an mmap or mprotect
//!   of a *neighbour* leaves them exactly as they are, so the marker can
//!   keep using their bounds, backing and offset with the lock dropped;
//! * every operation that would change them (munmap, mprotect, mremap,
//!   MAP_FIXED over them, another `begin_transition`, teardown) changes
//!   **nothing** and returns [`VmError::MustWait`] with the id; the map
//!   records that the transition has a waiter.
//!
//! Protocol:
//!
//! 1. **Marker**: under the lock, `begin_transition(range)` → id; release
//!    the lock; do the work (I/O, waiting); retake the lock; install what it
//!    must (page-table entries) — the areas are guaranteed unchanged;
//!    `end_transition(id)` → [`Ended`]; if `Ended::wake`, wake every thread
//!    waiting on `(address space, id)`; release the lock.
//! 2. **Waiter**: an operation returned `MustWait(w)` under the lock; the
//!    thread queues itself on the kernel's wait queue for `(address space,
//!    w.id)` *before* releasing the lock (so the marker's wake, which needs
//!    the lock, cannot come in between: no lost wake-up), sleeps, and when
//!    woken retakes the lock and **retries the whole operation from the
//!    start** (its checks included: the map may have changed).
//! 3. Faults: a fault first checks the page-table entry; if the page is
//!    missing it calls [`Vmaps::check_access`], then `begin_transition` on
//!    that one page. A second fault on the same page gets `MustWait` and,
//!    once woken, finds the entry installed.
//!
//! Transitions never nest and a thread must not wait on its own
//! transition: while it holds one it must not copy to or from user memory
//! (a fault on its own marked page would wait for itself). A syscall that
//! copies into a mapping of the file it reads (seeds/002, Brian's
//! scenario) holds no transition and no lock during the copy, so the fault
//! it takes marks, fills and ends its own transition and the copy
//! completes. Every `begin_transition` must be ended exactly once, even
//! when the work fails (end it, then report the error).

mod edit;
mod ops;
mod remap;
mod transition;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::{Errno, PAGE_SIZE, Prot, USER_END, USER_MIN};

pub use ops::{MapRequest, Mapped, Placement};
pub use remap::{Move, RemapFlags, Remapped};
pub use transition::Ended;

/// A file handle a mapping keeps (an `Arc` to the kernel's file object, or
/// any cheap clone). Identity, not content, decides [`MapFile::same_file`].
pub trait MapFile: Clone {
    /// True if both handles name the same file (so two adjacent mappings
    /// of consecutive offsets can merge).
    fn same_file(&self, other: &Self) -> bool;
}

/// What backs an area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmapKind<F> {
    /// Zero-filled memory.
    Anonymous,
    /// A file, `offset` being the file offset of the area's first byte.
    File {
        /// The file.
        file: F,
        /// File offset of the area's start (page aligned).
        offset: u64,
    },
}

/// `MAP_PRIVATE` or `MAP_SHARED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Share {
    /// Writes are private (copy on write for files).
    Private,
    /// Writes go to the shared object (the file's pagecache).
    Shared,
}

/// Names one open transition (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransitionId(u64);

impl TransitionId {
    /// The raw value (for a wait-queue key).
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// Whether an area may be changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmapState {
    /// Normal.
    Stable,
    /// Marked by a path working on it with the lock dropped: nothing may
    /// change, split or merge it until the transition ends.
    InTransition(TransitionId),
}

/// One virtual area: `[start, end)`, page aligned, non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmap<F> {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Current protection.
    pub prot: Prot,
    /// Largest protection `mprotect` may grant (Linux's `VM_MAY*`: no
    /// WRITE for a shared mapping of a file opened read-only).
    pub max_prot: Prot,
    /// Private or shared.
    pub share: Share,
    /// What backs it.
    pub kind: VmapKind<F>,
    /// Stable or in transition.
    pub state: VmapState,
}

impl<F> Vmap<F> {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Never true (areas are non-empty); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// True if `addr` is inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The file and file offset behind `addr`, for a file area.
    pub fn file_at(&self, addr: u64) -> Option<(&F, u64)> {
        match &self.kind {
            VmapKind::File { file, offset } if self.contains(addr) => {
                Some((file, offset + (addr - self.start)))
            }
            _ => None,
        }
    }

    /// True for a shared file mapping: its dirty pages belong to the file
    /// and must reach the pagecache (and then the disk) when it is
    /// unmapped, msync'd or the file is synced — whatever its current
    /// protection (it may have been writable before an mprotect).
    pub fn needs_writeback(&self) -> bool {
        self.share == Share::Shared && matches!(self.kind, VmapKind::File { .. })
    }

    /// True while in transition.
    pub fn in_transition(&self) -> bool {
        matches!(self.state, VmapState::InTransition(_))
    }
}

/// Where an address space places mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Lowest address a mapping may use.
    pub min: u64,
    /// Mappings without a fixed address go top-down from here (e.g. just
    /// below the stack gap); if nothing fits below it, anywhere above.
    pub mmap_top: u64,
    /// One past the highest address a mapping may use.
    pub max: u64,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            min: USER_MIN,
            mmap_top: 0x7f00_0000_0000,
            max: USER_END,
        }
    }
}

/// Why an operation failed. [`VmError::errno`] gives the syscall's errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// `EINVAL`: misaligned or zero length, bad flags.
    Invalid,
    /// `ENOMEM`: no room, or the range is not (fully) mapped.
    NoMemory,
    /// `EEXIST`: MAP_FIXED_NOREPLACE over an existing mapping.
    Exists,
    /// `EACCES`: protection beyond the area's `max_prot`.
    Access,
    /// `EOVERFLOW`: file offset plus length overflows.
    Overflow,
    /// `EFAULT`: mremap of a range not inside one area.
    Fault,
    /// `EPERM`: a fixed address below [`Layout::min`].
    Permission,
    /// Part of the range is in transition: nothing was changed; wait for
    /// the transition to end, then retry (module docs).
    MustWait(Wait),
}

impl VmError {
    /// The errno to return, `None` for [`VmError::MustWait`].
    pub fn errno(&self) -> Option<Errno> {
        Some(match self {
            VmError::Invalid => Errno::EINVAL,
            VmError::NoMemory => Errno::ENOMEM,
            VmError::Exists => Errno::EEXIST,
            VmError::Access => Errno::EACCES,
            VmError::Overflow => Errno::EOVERFLOW,
            VmError::Fault => Errno::EFAULT,
            VmError::Permission => Errno::EPERM,
            VmError::MustWait(_) => return None,
        })
    }
}

/// What a caller must wait for: the transition `id`, covering
/// `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// The transition.
    pub id: TransitionId,
    /// Its first byte.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
}

/// A page-table permission change (mprotect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reprotect {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Protection before.
    pub old: Prot,
    /// Protection after.
    pub new: Prot,
    /// Private or shared.
    pub share: Share,
    /// True if file backed (private file pages stay read-only until
    /// copied on write).
    pub file_backed: bool,
}

/// Why a fault cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// No area there (`SIGSEGV`, `SEGV_MAPERR`).
    Unmapped,
    /// The area forbids this access (`SIGSEGV`, `SEGV_ACCERR`).
    Protection,
}

#[derive(Clone, Copy, Debug)]
struct Transition {
    start: u64,
    end: u64,
    needs_wakeup: bool,
}

/// Most areas one address space holds (Linux's default
/// `vm.max_map_count`): an `mmap`, `mprotect` or `munmap` that would pass
/// it fails with `ENOMEM` and changes nothing. Each area costs kernel
/// memory, so without it a program splitting a reservation page by page
/// ran a 128 MiB kernel out of memory.
pub const MAX_MAP_COUNT: usize = 65_530;

/// The vmaps of one address space. `F` is the file handle type.
#[derive(Clone, Debug)]
pub struct Vmaps<F> {
    layout: Layout,
    /// Keyed by start address.
    areas: BTreeMap<u64, Vmap<F>>,
    transitions: BTreeMap<TransitionId, Transition>,
    next_transition: u64,
}

impl<F: MapFile> Vmaps<F> {
    /// An empty address space. `layout` must be page aligned with
    /// `min <= mmap_top <= max` (values are clamped into that order).
    pub fn new(layout: Layout) -> Self {
        let min = crate::page_round_down(layout.min).max(PAGE_SIZE);
        let max = crate::page_round_down(layout.max).max(min);
        let mmap_top = crate::page_round_down(layout.mmap_top).clamp(min, max);
        Vmaps {
            layout: Layout { min, mmap_top, max },
            areas: BTreeMap::new(),
            transitions: BTreeMap::new(),
            next_transition: 1,
        }
    }

    /// The layout in force.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The area containing `addr`.
    pub fn lookup(&self, addr: u64) -> Option<&Vmap<F>> {
        self.areas
            .range(..=addr)
            .next_back()
            .map(|(_, a)| a)
            .filter(|a| a.contains(addr))
    }

    /// The area containing `addr` if it allows `access` (a fault's check;
    /// `access` is READ, WRITE or EXEC; any accessible area is readable).
    /// The area may be in transition: the caller then gets `MustWait` from
    /// [`Vmaps::begin_transition`] and waits.
    pub fn check_access(&self, addr: u64, access: Prot) -> Result<&Vmap<F>, FaultError> {
        let a = self.lookup(addr).ok_or(FaultError::Unmapped)?;
        // On x86-64 any accessible page is readable.
        let effective = if a.prot.accessible() {
            a.prot | Prot::READ
        } else {
            Prot::NONE
        };
        if effective.accessible() && effective.contains(access) {
            Ok(a)
        } else {
            Err(FaultError::Protection)
        }
    }

    /// All areas, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &Vmap<F>> {
        self.areas.values()
    }

    /// Number of areas.
    pub fn count(&self) -> usize {
        self.areas.len()
    }

    /// Number of open transitions.
    pub fn open_transitions(&self) -> usize {
        self.transitions.len()
    }

    /// Copies of the areas covering `[start, start + len)`, clipped to it —
    /// for msync, madvise and mincore. `EINVAL` if `start` is misaligned,
    /// `ENOMEM` if any page of the range is unmapped. Nothing changes.
    pub fn clipped(&self, start: u64, len: u64) -> Result<Vec<Vmap<F>>, VmError> {
        let end = self.user_range(start, len)?;
        if !self.fully_mapped(start, end) {
            return Err(VmError::NoMemory);
        }
        Ok(self
            .overlapping(start, end)
            .map(|a| edit::clip(a, start, end))
            .collect())
    }

    /// The shared file mappings in `[start, start + len)` that msync must
    /// write back (their dirty page-table bits go to the pagecache, then
    /// the file range is synced). Errors as [`Vmaps::clipped`].
    pub fn msync(&self, start: u64, len: u64) -> Result<Vec<Vmap<F>>, VmError> {
        let mut v = self.clipped(start, len)?;
        v.retain(|a| a.needs_writeback());
        Ok(v)
    }

    /// Checks the map's invariants (for debug builds and tests): areas page
    /// aligned, non-empty, sorted, non-overlapping, inside the layout;
    /// no two neighbours that could merge; every in-transition area belongs
    /// to an open transition whose range covers it, and each transition's
    /// range is exactly covered by its areas.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut prev: Option<&Vmap<F>> = None;
        for (&k, a) in &self.areas {
            if k != a.start {
                return Err("key differs from start");
            }
            if a.start >= a.end {
                return Err("empty area");
            }
            if !crate::page_aligned(a.start) || !crate::page_aligned(a.end) {
                return Err("misaligned area");
            }
            if a.start < self.layout.min || a.end > self.layout.max {
                return Err("area outside layout");
            }
            if let VmapKind::File { offset, .. } = &a.kind {
                if !crate::page_aligned(*offset) || offset.checked_add(a.len()).is_none() {
                    return Err("bad file offset");
                }
            }
            if let VmapState::InTransition(id) = a.state {
                match self.transitions.get(&id) {
                    Some(t) if t.start <= a.start && a.end <= t.end => {}
                    _ => return Err("in-transition area outside its transition"),
                }
            }
            if let Some(p) = prev {
                if p.end > a.start {
                    return Err("overlapping areas");
                }
                if edit::mergeable(p, a) {
                    return Err("unmerged compatible neighbours");
                }
            }
            prev = Some(a);
        }
        for (id, t) in &self.transitions {
            let mut at = t.start;
            for a in self.overlapping(t.start, t.end) {
                if a.start != at || a.state != VmapState::InTransition(*id) {
                    return Err("transition range not covered by its areas");
                }
                at = a.end;
            }
            if at != t.end {
                return Err("transition range not covered by its areas");
            }
        }
        Ok(())
    }

    /// Checks `start`/`len` of a syscall range: `start` page aligned,
    /// `len` rounded up to pages, the end inside the layout. Returns the
    /// end. `EINVAL` for misalignment, zero length or overflow.
    fn user_range(&self, start: u64, len: u64) -> Result<u64, VmError> {
        if !crate::page_aligned(start) || len == 0 {
            return Err(VmError::Invalid);
        }
        let len = crate::page_round_up(len).ok_or(VmError::Invalid)?;
        let end = start.checked_add(len).ok_or(VmError::Invalid)?;
        if end > self.layout.max {
            return Err(VmError::Invalid);
        }
        Ok(end)
    }
}
