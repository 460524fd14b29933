//! The blkif shared ring (x86_64 ABI): one page with four indices and 32
//! 112-byte slots, each a request (front to back) or, once answered, a
//! response (back to front).
//!
//! | field | offset |
//! |---|---|
//! | `req_prod`, `req_event`, `rsp_prod`, `rsp_event` | 0, 4, 8, 12 |
//! | slots | 64 + 112 * i |
//!
//! Request (`BLKIF_OP_READ/WRITE/FLUSH_DISKCACHE`): `operation` @0,
//! `nr_segments` @1, `handle` @2, `id` @8, `sector_number` @16, 11
//! segments @24 (`gref` u32, `first_sect` u8, `last_sect` u8, pad u16).
//! Indirect (`BLKIF_OP_INDIRECT`): `operation` @0, `indirect_op` @1,
//! `nr_segments` u16 @2, `id` @8, `sector_number` @16, `handle` @24,
//! `indirect_grefs[8]` @28; the indirect pages hold 512 segments each.
//! Response: `id` @0, `operation` @8, `status` i16 @10.
//!
//! No locks; the owner serialises.

use core::sync::atomic::{Ordering, fence};

pub const OP_READ: u8 = 0;
pub const OP_WRITE: u8 = 1;
pub const OP_WRITE_BARRIER: u8 = 2;
pub const OP_FLUSH_DISKCACHE: u8 = 3;
pub const OP_INDIRECT: u8 = 6;
pub const RSP_OKAY: i16 = 0;
pub const RSP_ERROR: i16 = -1;
pub const RSP_EOPNOTSUPP: i16 = -2;

pub const SLOTS: u32 = 32;
const SLOT_BYTES: usize = 112;
const HEADER: usize = 64;
pub const MAX_DIRECT_SEGMENTS: usize = 11;
pub const MAX_INDIRECT_PAGES: usize = 8;
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 512;

/// One page-bounded piece of a transfer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Seg {
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
}

/// A request to put on the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req<'a> {
    Direct {
        op: u8,
        id: u64,
        sector: u64,
        segs: &'a [Seg],
    },
    Indirect {
        op: u8,
        id: u64,
        sector: u64,
        nr_segments: u16,
        pages: &'a [u32],
    },
}

/// The shared page.
pub struct Sring {
    page: *mut u8,
}

// SAFETY: shared with the backend domain only; the owner serialises.
unsafe impl Send for Sring {}

impl Sring {
    /// # Safety
    /// `page` must be a zeroed 4 KiB page that outlives the value.
    pub unsafe fn new(page: *mut u8) -> Sring {
        Sring { page }
    }

    pub fn idx(&self, off: usize) -> u32 {
        // SAFETY: an index word in the header.
        unsafe { (self.page.add(off) as *const u32).read_volatile() }
    }

    pub fn set_idx(&self, off: usize, v: u32) {
        // SAFETY: as in `idx`.
        unsafe { (self.page.add(off) as *mut u32).write_volatile(v) }
    }

    pub fn slot(&self, i: u32) -> *mut u8 {
        // SAFETY: slot `i % SLOTS` lies inside the page.
        unsafe { self.page.add(HEADER + (i % SLOTS) as usize * SLOT_BYTES) }
    }
}

pub const REQ_PROD: usize = 0;
pub const REQ_EVENT: usize = 4;
pub const RSP_PROD: usize = 8;
pub const RSP_EVENT: usize = 12;

/// The front end's private ring state.
pub struct FrontRing {
    pub sring: Sring,
    pub req_prod_pvt: u32,
    pub rsp_cons: u32,
}

impl FrontRing {
    /// Initialises the shared page (SHARED_RING_INIT) and the front state.
    pub fn new(sring: Sring) -> FrontRing {
        sring.set_idx(REQ_PROD, 0);
        sring.set_idx(RSP_PROD, 0);
        sring.set_idx(REQ_EVENT, 1);
        sring.set_idx(RSP_EVENT, 1);
        FrontRing {
            sring,
            req_prod_pvt: 0,
            rsp_cons: 0,
        }
    }

    /// Slots not yet holding an unanswered request.
    pub fn free_slots(&self) -> u32 {
        SLOTS - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes `r` into the next slot (not yet visible to the backend).
    pub fn put(&mut self, r: &Req<'_>) {
        assert!(self.free_slots() > 0, "blkif ring overflow");
        let s = self.sring.slot(self.req_prod_pvt);
        // SAFETY: a slot the backend does not own (it is past req_prod).
        unsafe {
            core::ptr::write_bytes(s, 0, SLOT_BYTES);
            match *r {
                Req::Direct {
                    op,
                    id,
                    sector,
                    segs,
                } => {
                    assert!(segs.len() <= MAX_DIRECT_SEGMENTS);
                    s.write_volatile(op);
                    s.add(1).write_volatile(segs.len() as u8);
                    (s.add(8) as *mut u64).write_volatile(id);
                    (s.add(16) as *mut u64).write_volatile(sector);
                    for (i, g) in segs.iter().enumerate() {
                        let e = s.add(24 + 8 * i);
                        (e as *mut u32).write_volatile(g.gref);
                        e.add(4).write_volatile(g.first_sect);
                        e.add(5).write_volatile(g.last_sect);
                    }
                }
                Req::Indirect {
                    op,
                    id,
                    sector,
                    nr_segments,
                    pages,
                } => {
                    assert!(pages.len() <= MAX_INDIRECT_PAGES);
                    s.write_volatile(OP_INDIRECT);
                    s.add(1).write_volatile(op);
                    (s.add(2) as *mut u16).write_volatile(nr_segments);
                    (s.add(8) as *mut u64).write_volatile(id);
                    (s.add(16) as *mut u64).write_volatile(sector);
                    for (i, &g) in pages.iter().enumerate() {
                        (s.add(28 + 4 * i) as *mut u32).write_volatile(g);
                    }
                }
            }
        }
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
    }

    /// Publishes the requests put so far; whether the backend must be
    /// notified (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY).
    pub fn push(&mut self) -> bool {
        let old = self.sring.idx(REQ_PROD);
        let new = self.req_prod_pvt;
        fence(Ordering::SeqCst);
        self.sring.set_idx(REQ_PROD, new);
        fence(Ordering::SeqCst);
        let event = self.sring.idx(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Takes the next response: (id, operation, status).
    pub fn next_response(&mut self) -> Option<(u64, u8, i16)> {
        if self.rsp_cons == self.sring.idx(RSP_PROD) {
            // RING_FINAL_CHECK_FOR_RESPONSES: ask for an event at the next
            // response, then look again.
            self.sring.set_idx(RSP_EVENT, self.rsp_cons.wrapping_add(1));
            fence(Ordering::SeqCst);
            if self.rsp_cons == self.sring.idx(RSP_PROD) {
                return None;
            }
        }
        fence(Ordering::SeqCst);
        let s = self.sring.slot(self.rsp_cons);
        // SAFETY: a slot the backend has answered (before rsp_prod).
        let r = unsafe {
            (
                (s as *const u64).read_volatile(),
                s.add(8).read_volatile(),
                (s.add(10) as *const i16).read_volatile(),
            )
        };
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Some(r)
    }
}

/// Writes indirect segment `i` into an indirect page.
///
/// # Safety
/// `page` must be a 4 KiB page owned by the request; `i < 512`.
pub unsafe fn put_indirect_segment(page: *mut u8, i: usize, s: Seg) {
    // SAFETY: delegated: entry `i` of 8 bytes lies in the page.
    unsafe {
        let e = page.add(8 * i);
        (e as *mut u32).write_volatile(s.gref);
        e.add(4).write_volatile(s.first_sect);
        e.add(5).write_volatile(s.last_sect);
        (e.add(6) as *mut u16).write_volatile(0);
    }
}
