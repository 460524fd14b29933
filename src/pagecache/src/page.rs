//! The page state machine: one cached page of a file, its state, pins,
//! write leases, dirty sectors, in-flight I/O count and waiters.
//!
//! Owns [`Page`], [`PageState`] and the transition table. Every state change
//! goes through [`Page::transition`], which asserts that the edge is in
//! [`TRANSITIONS`] and that the frame invariant holds (FREE and ALLOC carry
//! no frame, every other state does); the named operations below (`claim`,
//! `start_fill`, `io_done`, `commit`, `evict`, ...) are the only callers.
//!
//! `Page` is plain data: callers hold the lock that protects it (the node
//! lock `pagecache.node` in `node/mod.rs`; a loom mutex-free spinlock in
//! `tests/loom_page.rs`), so it is usable from every context that may take
//! that lock: kernel-lock and bh. It takes no locks itself and never
//! allocates except when a waiter is queued.
//!
//! | from \ to | FREE | ALLOC | READING | NEW | ACTIVE | DIRTY | WRITING |
//! |---|---|---|---|---|---|---|---|
//! | FREE (evicted / absent) | | claim | | | | | |
//! | ALLOC (claimed, getting a frame) | no frame (ENOMEM) | | fill sent | whole-page write | all zeros, no I/O | | |
//! | READING (fill in flight) | fill failed (EIO) | | | | fill done | | |
//! | NEW (writer will overwrite) | abort, nobody waits | abort, readers wait: refill | | | | commit | |
//! | ACTIVE (clean, valid) | evict (no pins, on LRU), or truncated away (unheld) | | | | | write / shared fault | |
//! | DIRTY | truncated away (unheld): discarded, never written | | | | truncated: no dirty sector left inside the file | | writeback sent (no lease) |
//! | WRITING (writeback in flight) | | | | | written | failed or redirtied | |
//!
//! What waits on what ([`Want`]):
//! * readers (`read`, `fault`) wait until ACTIVE, DIRTY or WRITING, and fail
//!   if the page drops to FREE (the fill failed);
//! * writers wait until ACTIVE or DIRTY (a NEW page of another writer, a
//!   fill, or a writeback in flight all block them);
//! * sync waits until the page is neither WRITING nor under a write lease;
//! * truncate waits until the page is settled: no claim or I/O (not ALLOC,
//!   READING or WRITING) and no write lease (hence not NEW either).
//!
//! Truncate (`Node::truncate` in `truncate.rs`) adds two edges out of DIRTY:
//! an unheld page wholly past the new end is [`Page::discard`]ed (ACTIVE or
//! DIRTY → FREE, its data dropped, never written back), and the page that
//! holds the new end loses its dirty sectors past it
//! ([`Page::truncate_tail`]), going back to ACTIVE if none is left. A held
//! page (pinned or mapped) wholly past the new end keeps its state: the
//! node detaches it from its tree and discards it when the last pin goes.
//!
//! A waiter is queued and woken under the same lock as the state, so a
//! wake-up cannot be lost: either the waiter sees the final state at
//! registration, or it is on the list when the transition collects it.

use crate::Errno;
use alloc::vec::Vec;

/// Sectors (512 bytes) per page.
pub const SECTORS_PER_PAGE: usize = crate::PAGE_SIZE / 512;
/// A dirty mask with every sector of the page set.
pub const FULL_MASK: u8 = u8::MAX;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageState {
    /// No frame: never read, evicted, or a failed fill. The page's entry
    /// exists only while someone pins or waits on it.
    Free,
    /// Claimed by one operation that is getting a frame for it.
    Alloc,
    /// A fill from disk is in flight.
    Reading,
    /// A writer will overwrite every byte that is not zero; until it
    /// commits, the content is not valid.
    New,
    /// Clean and valid.
    Active,
    /// Valid and newer than the disk.
    Dirty,
    /// Valid; a writeback of it is in flight.
    Writing,
}

use PageState::*;

/// Every legal transition with its cause: the table of the module doc.
pub const TRANSITIONS: &[(PageState, PageState, &str)] = &[
    (Free, Alloc, "claimed by a read, write, fault or readahead"),
    (Alloc, Free, "no frame could be had (ENOMEM)"),
    (Alloc, Reading, "fill submitted"),
    (Alloc, New, "whole-page write: nothing to read"),
    (
        Alloc,
        Active,
        "hole, uninited or past EOF: zeroed without I/O",
    ),
    (Reading, Free, "fill failed (EIO)"),
    (Reading, Active, "fill completed"),
    (New, Dirty, "writer committed"),
    (New, Alloc, "writer aborted while readers wait: refill"),
    (New, Free, "writer aborted, nobody waits"),
    (Active, Dirty, "write committed or shared-writable fault"),
    (Active, Free, "evicted, or truncated away"),
    (Dirty, Writing, "writeback submitted"),
    (Dirty, Free, "truncated away: discarded, never written back"),
    (
        Dirty,
        Active,
        "truncated: every dirty sector lay past the new end",
    ),
    (Writing, Active, "writeback completed"),
    (
        Writing,
        Dirty,
        "writeback failed, or redirtied while in flight",
    ),
];

/// Whether `from → to` is in [`TRANSITIONS`].
pub fn legal(from: PageState, to: PageState) -> bool {
    TRANSITIONS.iter().any(|&(f, t, _)| f == from && t == to)
}

/// What a waiter waits for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// Content valid to read: ACTIVE, DIRTY or WRITING.
    Readable,
    /// Content valid and no I/O on the frame: ACTIVE or DIRTY.
    Writable,
    /// Not WRITING and no write lease (sync's wait for busy pages).
    Idle,
    /// No claim or I/O (not ALLOC, READING or WRITING) and no write lease
    /// (truncate's wait for busy pages).
    Settled,
}

/// Waiters woken by a mutation, with their outcome; the caller runs them
/// once it has dropped the lock.
pub type Wakes<W> = Vec<(W, Result<(), Errno>)>;

/// One page of a file. `W` is the waiter token (the crate uses its I/O
/// gathers; the loom model its own), `F` the frame type.
#[derive(Debug)]
pub struct Page<W, F> {
    state: PageState,
    frame: Option<F>,
    /// References that block eviction: readers' and writers' batches,
    /// mappings.
    pins: u32,
    /// Writers between preparation and commit (each also holds a pin).
    leases: u32,
    /// Shared writable mappings: the page is rewritten on every sync.
    shared_maps: u32,
    /// Dirty sectors (bit `s` = sector `s` of the page).
    dirty: u8,
    /// Sectors the writeback in flight carries.
    wb_mask: u8,
    /// Sectors dirtied (by a shared-writable fault) while WRITING.
    redirty: u8,
    /// Sectors whose storage the filesystem has reserved, as far as the
    /// page knows: every sector ever marked dirty (a write or a
    /// shared-writable fault reserves before it dirties). Kept across
    /// writeback; cleared when the page loses its frame (FREE, ALLOC) and,
    /// past a new end of file, by truncate. A lockless overwrite
    /// (`Node::write_cached`) takes only sectors in it: they need no
    /// allocation.
    backed: u8,
    /// Writeback clock tick at which the page became dirty.
    dirtied_at: u64,
    /// Pieces of the current fill or writeback still in flight.
    io_pending: u32,
    io_failed: bool,
    /// Its key on the LRU while it is on it (while ACTIVE).
    lru: Option<u64>,
    /// Read since the LRU last looked at it (second chance).
    referenced: bool,
    waiters: Vec<(Want, W)>,
}

impl<W, F> Default for Page<W, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W, F> Page<W, F> {
    pub const fn new() -> Self {
        Page {
            state: Free,
            frame: None,
            pins: 0,
            leases: 0,
            shared_maps: 0,
            dirty: 0,
            wb_mask: 0,
            redirty: 0,
            backed: 0,
            dirtied_at: 0,
            io_pending: 0,
            io_failed: false,
            lru: None,
            referenced: false,
            waiters: Vec::new(),
        }
    }

    pub fn state(&self) -> PageState {
        self.state
    }
    pub fn frame(&self) -> Option<&F> {
        self.frame.as_ref()
    }
    pub fn pins(&self) -> u32 {
        self.pins
    }
    pub fn leases(&self) -> u32 {
        self.leases
    }
    pub fn shared_maps(&self) -> u32 {
        self.shared_maps
    }
    pub fn dirty_mask(&self) -> u8 {
        self.dirty
    }
    /// Sectors known to have storage reserved (see the field).
    pub fn backed_mask(&self) -> u8 {
        self.backed
    }
    pub fn dirtied_at(&self) -> u64 {
        self.dirtied_at
    }
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }
    pub fn lru_key(&self) -> Option<u64> {
        self.lru
    }
    pub fn set_lru_key(&mut self, key: Option<u64>) {
        self.lru = key;
    }

    /// Content valid for readers.
    pub fn readable(&self) -> bool {
        matches!(self.state, Active | Dirty | Writing)
    }

    /// Content valid and no I/O on the frame.
    pub fn writable(&self) -> bool {
        matches!(self.state, Active | Dirty)
    }

    /// Neither WRITING nor leased.
    pub fn idle(&self) -> bool {
        self.state != Writing && self.leases == 0
    }

    /// Nobody is getting it a frame, no I/O is in flight on it and no
    /// writer leases it (so it is not NEW either): FREE, ACTIVE or DIRTY.
    pub fn settled(&self) -> bool {
        matches!(self.state, Free | Active | Dirty) && self.leases == 0
    }

    /// Nobody holds it: no pin, lease or mapping, nobody waiting.
    pub fn unheld(&self) -> bool {
        self.pins == 0 && self.leases == 0 && self.shared_maps == 0 && self.waiters.is_empty()
    }

    /// Holds modified data, or may at any time (mapped shared-writable).
    pub fn needs_writeback(&self) -> bool {
        matches!(self.state, Dirty | Writing) || self.shared_maps > 0
    }

    /// Belongs on the LRU: clean. Pinned clean pages stay on it (pins and
    /// unpins then cost no LRU operation); eviction skips them.
    pub fn on_lru_state(&self) -> bool {
        self.state == Active
    }

    /// A hit: gives the page a second chance on the LRU.
    pub fn touch(&mut self) {
        self.referenced = true;
    }

    /// Clears and returns the second-chance bit.
    pub fn take_referenced(&mut self) -> bool {
        core::mem::take(&mut self.referenced)
    }

    /// May be evicted now: clean, unpinned, unmapped, nobody waiting.
    pub fn evictable(&self) -> bool {
        self.state == Active && self.unheld()
    }

    /// The entry may leave the page tree.
    pub fn removable(&self) -> bool {
        self.state == Free && self.pins == 0 && self.waiters.is_empty()
    }

    /// THE transition function: changes the state, asserts legality and the
    /// frame invariant, hands back the frame when entering FREE or ALLOC,
    /// and collects the waiters the new state satisfies (`failure` is what
    /// waiters learn when the page drops to FREE).
    pub fn transition(
        &mut self,
        to: PageState,
        failure: Option<Errno>,
        wakes: &mut Wakes<W>,
    ) -> Option<F> {
        let from = self.state;
        assert!(
            legal(from, to),
            "illegal page transition {from:?} -> {to:?}"
        );
        assert!(
            failure.is_none() || to == Free,
            "a failure is only reported by dropping to FREE"
        );
        match (from, to) {
            (Active, Free) => assert!(
                self.evictable(),
                "evicting a pinned, leased, mapped or awaited page"
            ),
            (Dirty, Writing) => assert_eq!(self.leases, 0, "writeback of a leased page"),
            (Dirty, Free) => assert!(
                self.unheld(),
                "discarding a pinned, leased, mapped or awaited page"
            ),
            (Reading | Writing, _) => assert_eq!(self.io_pending, 0, "I/O still in flight"),
            _ => {}
        }
        self.state = to;
        let freed = match to {
            Free | Alloc => {
                self.backed = 0;
                self.frame.take()
            }
            _ => {
                assert!(self.frame.is_some(), "page {to:?} without a frame");
                None
            }
        };
        self.collect_wakes(failure, wakes);
        freed
    }

    /// Moves every waiter the current state satisfies to `wakes`.
    fn collect_wakes(&mut self, failure: Option<Errno>, wakes: &mut Wakes<W>) {
        if self.waiters.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.waiters.len() {
            if let Some(r) = self.outcome(self.waiters[i].0, failure) {
                let (_, w) = self.waiters.swap_remove(i);
                wakes.push((w, r));
            } else {
                i += 1;
            }
        }
    }

    /// What a waiter for `want` gets now, or `None` if it must keep waiting.
    pub fn outcome(&self, want: Want, failure: Option<Errno>) -> Option<Result<(), Errno>> {
        let fail = failure.unwrap_or(Errno::EIO);
        match want {
            Want::Readable if self.readable() => Some(Ok(())),
            Want::Writable if self.writable() => Some(Ok(())),
            Want::Readable | Want::Writable if self.state == Free => Some(Err(fail)),
            Want::Readable | Want::Writable => None,
            Want::Idle if self.idle() => Some(Ok(())),
            Want::Idle => None,
            Want::Settled if self.settled() => Some(Ok(())),
            Want::Settled => None,
        }
    }

    /// Queues `w` until `want` holds; returns its outcome instead if it
    /// holds already (the caller then proceeds without waiting).
    pub fn wait(&mut self, want: Want, w: W) -> Option<Result<(), Errno>> {
        if let Some(r) = self.outcome(want, None) {
            return Some(r);
        }
        self.waiters.push((want, w));
        None
    }

    pub fn pin(&mut self) {
        self.pins += 1;
    }

    pub fn unpin(&mut self) {
        assert!(self.pins > 0, "unpinning an unpinned page");
        self.pins -= 1;
    }

    /// A writer's lease; the writer also pins.
    pub fn lease(&mut self) {
        self.leases += 1;
    }

    /// Ends a lease; wakes sync waiters once the page is idle.
    pub fn unlease(&mut self, wakes: &mut Wakes<W>) {
        assert!(self.leases > 0, "releasing a lease never taken");
        self.leases -= 1;
        self.collect_wakes(None, wakes);
    }

    pub fn map_shared_writable(&mut self) {
        self.shared_maps += 1;
    }

    pub fn unmap_shared_writable(&mut self) {
        assert!(self.shared_maps > 0, "unmapping a page never mapped shared");
        self.shared_maps -= 1;
    }

    /// FREE → ALLOC: this caller now owns getting the page a frame.
    pub fn claim(&mut self, wakes: &mut Wakes<W>) {
        self.transition(Alloc, None, wakes);
    }

    /// ALLOC → READING (with `pieces` disk reads in flight) or, when
    /// nothing is on disk, ALLOC → ACTIVE.
    pub fn start_fill(&mut self, frame: F, pieces: u32, wakes: &mut Wakes<W>) {
        self.attach(frame);
        if pieces == 0 {
            self.transition(Active, None, wakes);
        } else {
            self.transition(Reading, None, wakes);
            self.io_pending = pieces;
            self.io_failed = false;
        }
    }

    /// ALLOC → NEW: a writer will overwrite the page.
    pub fn start_new(&mut self, frame: F, wakes: &mut Wakes<W>) {
        self.attach(frame);
        self.transition(New, None, wakes);
    }

    fn attach(&mut self, frame: F) {
        assert_eq!(self.state, Alloc, "frames attach to claimed pages only");
        assert!(self.frame.is_none(), "page already has a frame");
        self.frame = Some(frame);
    }

    /// ALLOC → FREE: no frame for the claim; waiters fail with ENOMEM.
    pub fn alloc_failed(&mut self, wakes: &mut Wakes<W>) {
        self.claim_failed(Errno::ENOMEM, wakes);
    }

    /// ALLOC → FREE: the claim cannot be filled (no frame, or the
    /// filesystem could not map it); waiters fail with `e`.
    pub fn claim_failed(&mut self, e: Errno, wakes: &mut Wakes<W>) {
        self.transition(Free, Some(e), wakes);
    }

    /// One piece of the fill or writeback in flight ended. When the last
    /// one ends: READING → ACTIVE / FREE (the frame is handed back), or
    /// WRITING → ACTIVE / DIRTY (a failed writeback keeps its sectors
    /// dirty). Returns `(finished, frame to free)`.
    pub fn io_done(&mut self, ok: bool, now: u64, wakes: &mut Wakes<W>) -> (bool, Option<F>) {
        assert!(
            matches!(self.state, Reading | Writing) && self.io_pending > 0,
            "I/O completion for a {:?} page with {} pieces in flight",
            self.state,
            self.io_pending
        );
        self.io_pending -= 1;
        self.io_failed |= !ok;
        if self.io_pending > 0 {
            return (false, None);
        }
        let failed = core::mem::take(&mut self.io_failed);
        match self.state {
            Reading if failed => (true, self.transition(Free, Some(Errno::EIO), wakes)),
            Reading => (true, self.transition(Active, None, wakes)),
            _ => {
                let mask = core::mem::take(&mut self.wb_mask);
                if failed {
                    self.dirty |= mask;
                }
                self.dirty |= core::mem::take(&mut self.redirty);
                if self.dirty != 0 {
                    self.dirtied_at = now;
                    self.transition(Dirty, None, wakes);
                } else {
                    self.transition(Active, None, wakes);
                }
                (true, None)
            }
        }
    }

    /// A writer's commit of `mask` (or a shared-writable fault):
    /// NEW/ACTIVE → DIRTY, DIRTY gains sectors, WRITING is redirtied.
    /// Returns whether the page became dirty just now.
    pub fn mark_dirty(&mut self, mask: u8, now: u64, wakes: &mut Wakes<W>) -> bool {
        // Whoever dirties a sector reserved its storage first.
        self.backed |= mask;
        match self.state {
            New | Active => {
                self.dirty = mask;
                self.dirtied_at = now;
                self.transition(Dirty, None, wakes);
                true
            }
            Dirty => {
                self.dirty |= mask;
                false
            }
            Writing => {
                self.redirty |= mask;
                false
            }
            s => panic!("marking a {s:?} page dirty"),
        }
    }

    /// A writer that claimed this page NEW gives up before filling it:
    /// NEW → ALLOC when readers wait (the caller refills it with the frame
    /// returned), otherwise NEW → FREE (the caller frees the frame).
    pub fn abort_new(&mut self, wakes: &mut Wakes<W>) -> (PageState, Option<F>) {
        assert_eq!(self.state, New, "aborting a page that is not NEW");
        let to = if self.waiters.is_empty() { Free } else { Alloc };
        let frame = self.transition(to, None, wakes);
        (to, frame)
    }

    /// DIRTY → WRITING if no writer holds a lease; returns the sectors to
    /// write. A shared-writable ACTIVE page is dirtied first with
    /// `shared_mask` (it may have been stored to through its mapping).
    pub fn begin_writeback(
        &mut self,
        shared_mask: u8,
        now: u64,
        wakes: &mut Wakes<W>,
    ) -> Option<u8> {
        if self.state == Active && self.shared_maps > 0 && shared_mask != 0 {
            self.mark_dirty(shared_mask, now, wakes);
        }
        if self.state != Dirty || self.leases > 0 {
            return None;
        }
        let mask = core::mem::take(&mut self.dirty);
        self.wb_mask = mask;
        self.transition(Writing, None, wakes);
        Some(mask)
    }

    /// Counts the writeback pieces just submitted (after `begin_writeback`).
    pub fn set_io_pending(&mut self, pieces: u32) {
        assert_eq!(self.state, Writing);
        self.io_pending = pieces;
        self.io_failed = false;
    }

    /// ACTIVE → FREE; panics unless the page is evictable.
    pub fn evict(&mut self, wakes: &mut Wakes<W>) -> F {
        self.transition(Free, None, wakes)
            .expect("an ACTIVE page has a frame")
    }

    /// Truncate drops the page: ACTIVE or DIRTY → FREE, its data (dirty
    /// or not) discarded, never written back; returns the frame to free.
    /// Panics unless the page is unheld (no pin, lease, mapping or waiter).
    pub fn discard(&mut self, wakes: &mut Wakes<W>) -> F {
        assert!(
            matches!(self.state, Active | Dirty),
            "discarding a {:?} page",
            self.state
        );
        self.dirty = 0;
        self.referenced = false;
        self.transition(Free, None, wakes)
            .expect("an ACTIVE or DIRTY page has a frame")
    }

    /// Truncate keeps only the sectors in `inside` (those of the page that
    /// still lie in the file) dirty: the others are past the new end and
    /// must never be written. A DIRTY page left with no dirty sector goes
    /// back to ACTIVE. Only on a settled page with content (ACTIVE or
    /// DIRTY: no I/O in flight, no lease).
    pub fn truncate_tail(&mut self, inside: u8, wakes: &mut Wakes<W>) {
        assert!(
            matches!(self.state, Active | Dirty) && self.settled(),
            "truncating a {:?} page with {} leases",
            self.state,
            self.leases
        );
        // The filesystem frees the storage past the new end.
        self.backed &= inside;
        if self.state == Dirty {
            self.dirty &= inside;
            if self.dirty == 0 {
                self.transition(Active, None, wakes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    type P = Page<u32, u32>;

    const ALL: [PageState; 7] = [Free, Alloc, Reading, New, Active, Dirty, Writing];

    /// A page in `s`, reached through legal transitions only.
    fn page_in(s: PageState) -> P {
        let mut p = P::new();
        let w = &mut Vec::new();
        match s {
            Free => {}
            Alloc => p.claim(w),
            Reading => {
                p.claim(w);
                p.start_fill(7, 1, w);
            }
            New => {
                p.claim(w);
                p.start_new(7, w);
            }
            Active => {
                p.claim(w);
                p.start_fill(7, 0, w);
            }
            Dirty => {
                p = page_in(Active);
                p.mark_dirty(1, 0, w);
            }
            Writing => {
                p = page_in(Dirty);
                p.begin_writeback(0, 0, w);
                p.set_io_pending(1);
            }
        }
        assert_eq!(p.state(), s);
        p
    }

    #[test]
    fn every_legal_transition_is_accepted() {
        for &(from, to, why) in TRANSITIONS {
            let mut p = page_in(from);
            p.io_pending = 0;
            if to == Alloc && from == Free {
                p.claim(&mut Vec::new());
            } else {
                if matches!(from, Alloc) && to != Free {
                    p.attach(9);
                }
                p.transition(to, None, &mut Vec::new());
            }
            assert_eq!(p.state(), to, "{why}");
        }
    }

    #[test]
    fn every_illegal_transition_panics() {
        for from in ALL {
            for to in ALL {
                if legal(from, to) {
                    continue;
                }
                let r = std::panic::catch_unwind(|| {
                    let mut p = page_in(from);
                    p.io_pending = 0;
                    p.transition(to, None, &mut Vec::new());
                });
                let msg = r.expect_err("illegal transition accepted");
                let msg = msg
                    .downcast_ref::<std::string::String>()
                    .map(|s| s.as_str())
                    .unwrap_or("");
                assert!(
                    msg.contains("illegal page transition"),
                    "{from:?}->{to:?}: {msg}"
                );
            }
        }
    }

    #[test]
    fn eviction_refuses_pinned_leased_mapped_or_awaited_pages() {
        let setups: [fn(&mut P); 4] = [
            |p| p.pin(),
            |p| p.lease(),
            |p| p.map_shared_writable(),
            |p| {
                p.waiters.push((Want::Idle, 1));
            },
        ];
        for setup in setups {
            let r = std::panic::catch_unwind(|| {
                let mut p = page_in(Active);
                setup(&mut p);
                assert!(!p.evictable());
                p.evict(&mut Vec::new());
            });
            assert!(r.is_err());
        }
        for s in [Free, Alloc, Reading, New, Dirty, Writing] {
            assert!(!page_in(s).evictable(), "{s:?} counted evictable");
        }
        let mut p = page_in(Active);
        assert!(p.evictable());
        assert_eq!(p.evict(&mut Vec::new()), 7);
        assert!(p.removable());
    }

    #[test]
    fn frame_invariant_is_asserted() {
        // Leaving ALLOC for a state with content needs a frame.
        let r = std::panic::catch_unwind(|| {
            let mut p = page_in(Alloc);
            p.transition(Active, None, &mut Vec::new());
        });
        assert!(r.is_err());
    }

    #[test]
    fn fill_wakes_readers_and_writers_or_fails_them() {
        let mut p = page_in(Alloc);
        assert_eq!(p.wait(Want::Readable, 1), None);
        assert_eq!(p.wait(Want::Writable, 2), None);
        let mut w = Vec::new();
        p.start_fill(5, 2, &mut w);
        assert!(w.is_empty(), "woken before the fill ended");
        assert_eq!(p.io_done(true, 0, &mut w), (false, None));
        assert!(w.is_empty());
        assert_eq!(p.io_done(true, 0, &mut w), (true, None));
        w.sort_by_key(|x| x.0);
        assert_eq!(w, vec![(1, Ok(())), (2, Ok(()))]);

        let mut p = page_in(Alloc);
        p.wait(Want::Readable, 1);
        let mut w = Vec::new();
        p.start_fill(5, 1, &mut w);
        assert_eq!(p.io_done(false, 0, &mut w), (true, Some(5)));
        assert_eq!(p.state(), Free);
        assert_eq!(w, vec![(1, Err(Errno::EIO))]);
    }

    #[test]
    fn writers_wait_out_writeback_readers_do_not() {
        let mut p = page_in(Writing);
        assert_eq!(p.wait(Want::Readable, 1), Some(Ok(())));
        assert_eq!(p.wait(Want::Writable, 2), None);
        let mut w = Vec::new();
        assert_eq!(p.io_done(true, 0, &mut w), (true, None));
        assert_eq!(p.state(), Active);
        assert_eq!(w, vec![(2, Ok(()))]);
    }

    #[test]
    fn failed_writeback_keeps_sectors_dirty() {
        let mut p = page_in(Active);
        let mut w = Vec::new();
        p.mark_dirty(0b0110, 3, &mut w);
        assert_eq!(p.begin_writeback(0, 4, &mut w), Some(0b0110));
        p.set_io_pending(2);
        assert_eq!(p.dirty_mask(), 0);
        assert_eq!(p.io_done(false, 5, &mut w), (false, None));
        assert_eq!(p.io_done(true, 5, &mut w), (true, None));
        assert_eq!(p.state(), Dirty);
        assert_eq!(p.dirty_mask(), 0b0110);
    }

    #[test]
    fn leased_pages_are_not_written_back_and_sync_waits_for_the_lease() {
        let mut p = page_in(Dirty);
        p.lease();
        let mut w = Vec::new();
        assert_eq!(p.begin_writeback(0, 0, &mut w), None);
        assert_eq!(p.wait(Want::Idle, 3), None);
        p.unlease(&mut w);
        assert_eq!(w, vec![(3, Ok(()))]);
        assert!(p.begin_writeback(0, 0, &mut w).is_some());
    }

    #[test]
    fn shared_fault_during_writeback_redirties() {
        let mut p = page_in(Writing);
        let mut w = Vec::new();
        assert!(!p.mark_dirty(0b11, 1, &mut w));
        p.io_done(true, 2, &mut w);
        assert_eq!(p.state(), Dirty);
        assert_eq!(p.dirty_mask(), 0b11);
    }

    #[test]
    fn truncate_waits_until_settled() {
        // Claimed, filling, NEW or written back: not settled; the waiter
        // is woken once the page is.
        for s in [Alloc, Reading, New, Writing] {
            assert!(!page_in(s).settled(), "{s:?} counted settled");
        }
        let mut p = page_in(Reading);
        assert_eq!(p.wait(Want::Settled, 1), None);
        let mut w = Vec::new();
        p.io_done(true, 0, &mut w);
        assert_eq!(w, vec![(1, Ok(()))]);
        // A failed fill settles too (FREE).
        let mut p = page_in(Reading);
        p.wait(Want::Settled, 2);
        let mut w = Vec::new();
        p.io_done(false, 0, &mut w);
        assert_eq!(w, vec![(2, Ok(()))]);
        // A lease keeps an ACTIVE or DIRTY page unsettled until released.
        let mut p = page_in(Dirty);
        p.lease();
        assert_eq!(p.wait(Want::Settled, 3), None);
        let mut w = Vec::new();
        p.unlease(&mut w);
        assert_eq!(w, vec![(3, Ok(()))]);
        let mut p = page_in(Writing);
        assert_eq!(p.wait(Want::Settled, 4), None);
        let mut w = Vec::new();
        p.io_done(true, 0, &mut w);
        assert_eq!(w, vec![(4, Ok(()))]);
    }

    #[test]
    fn discard_drops_clean_or_dirty_unheld_pages_only() {
        for s in [Active, Dirty] {
            let mut p = page_in(s);
            assert_eq!(p.discard(&mut Vec::new()), 7);
            assert_eq!((p.state(), p.dirty_mask()), (Free, 0));
            assert!(p.removable());
        }
        for s in [Alloc, Reading, New, Writing] {
            let r = std::panic::catch_unwind(|| page_in(s).discard(&mut Vec::new()));
            assert!(r.is_err(), "{s:?} discarded");
        }
        let holds: [fn(&mut P); 3] = [|p| p.pin(), |p| p.lease(), |p| p.map_shared_writable()];
        for hold in holds {
            let r = std::panic::catch_unwind(|| {
                let mut p = page_in(Dirty);
                hold(&mut p);
                assert!(!p.unheld());
                p.discard(&mut Vec::new());
            });
            assert!(r.is_err(), "a held page was discarded");
        }
    }

    #[test]
    fn truncate_tail_keeps_inside_sectors_dirty() {
        let mut p = page_in(Active);
        let mut w = Vec::new();
        p.mark_dirty(0b1000_0011, 0, &mut w);
        p.truncate_tail(0b0000_0001, &mut w);
        assert_eq!((p.state(), p.dirty_mask()), (Dirty, 0b1));
        p.truncate_tail(0b0111_1110, &mut w);
        assert_eq!((p.state(), p.dirty_mask()), (Active, 0));
        p.truncate_tail(0, &mut w);
        assert_eq!(p.state(), Active);
        let r = std::panic::catch_unwind(|| {
            let mut p = page_in(Dirty);
            p.lease();
            p.truncate_tail(0, &mut Vec::new());
        });
        assert!(r.is_err(), "truncated under a lease");
    }

    #[test]
    fn backed_sectors_follow_dirtying_writeback_truncate_and_eviction() {
        let mut p = page_in(Active);
        let mut w = Vec::new();
        assert_eq!(p.backed_mask(), 0, "a fill knows of no reservation");
        p.mark_dirty(0b0011, 0, &mut w);
        assert_eq!(p.backed_mask(), 0b0011);
        p.begin_writeback(0, 0, &mut w);
        p.set_io_pending(1);
        p.io_done(true, 0, &mut w);
        assert_eq!((p.state(), p.backed_mask()), (Active, 0b0011));
        p.truncate_tail(0b0001, &mut w);
        assert_eq!(p.backed_mask(), 0b0001);
        p.evict(&mut w);
        assert_eq!(p.backed_mask(), 0);
    }

    #[test]
    fn aborted_new_page_refills_only_for_waiters() {
        let mut p = page_in(New);
        let mut w = Vec::new();
        assert_eq!(p.abort_new(&mut w), (Free, Some(7)));
        let mut p = page_in(New);
        assert_eq!(p.wait(Want::Readable, 1), None);
        assert_eq!(p.abort_new(&mut w), (Alloc, Some(7)));
        assert!(w.is_empty(), "readers must wait for the refill");
    }
}
