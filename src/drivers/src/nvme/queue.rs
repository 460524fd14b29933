//! NVMe queue pairs: a submission queue of 64-byte commands and a
//! completion queue of 16-byte entries with a phase bit, in physically
//! contiguous DMA memory, and their doorbells ([`Pair`]); the I/O queue
//! pair as the driver queue skeleton's hardware ([`IoQueue`]).
//!
//! An I/O queue of `E` entries keeps at most `E - 1` commands in flight
//! (so its submission queue never overflows: a command's slot is free
//! again once the controller fetched it, before it completes). Each
//! command id owns one PRP list page. A request cut into several commands
//! ([`super::prp`]) completes when its last command does, with the worst
//! status of its commands.
//!
//! Contexts: under the owner's lock (the skeleton's queue lock for I/O
//! queues, probe for the admin queue). No locks of its own.

use super::Regs;
use super::prp::{self, PAGE};
use crate::env::{DmaRegion, env};
use crate::queue::{Hardware, Harvest, Issue};
use alloc::string::String;
use alloc::vec::Vec;
use cairn_block::{Op, Request, Status};
use cairn_sync::cpu::bh_safe_alloc;
use core::sync::atomic::{Ordering, fence};

const OP_FLUSH: u8 = 0x00;
const OP_WRITE: u8 = 0x01;
const OP_READ: u8 = 0x02;

/// Status code type 0 (generic), code 0x80: LBA Out of Range.
const SC_LBA_OUT_OF_RANGE: u16 = 0x80;

/// A submission queue entry (the fields cairn uses).
#[derive(Copy, Clone, Debug, Default)]
pub struct Sqe {
    pub opcode: u8,
    pub cid: u16,
    pub nsid: u32,
    pub prp1: u64,
    pub prp2: u64,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
}

impl Sqe {
    pub fn new(opcode: u8) -> Sqe {
        Sqe {
            opcode,
            ..Sqe::default()
        }
    }

    fn dwords(&self) -> [u32; 16] {
        let mut d = [0u32; 16];
        d[0] = u32::from(self.opcode) | (u32::from(self.cid) << 16);
        d[1] = self.nsid;
        d[6] = self.prp1 as u32;
        d[7] = (self.prp1 >> 32) as u32;
        d[8] = self.prp2 as u32;
        d[9] = (self.prp2 >> 32) as u32;
        d[10] = self.cdw10;
        d[11] = self.cdw11;
        d[12] = self.cdw12;
        d
    }
}

/// A completion queue entry.
#[derive(Copy, Clone, Debug)]
pub struct Cqe {
    pub dw0: u32,
    pub cid: u16,
    /// Status field without the phase bit: code in bits 7:0, code type in
    /// bits 10:8, 0 = success.
    pub status: u16,
}

/// Status code type and code, for logs.
pub fn status_text(status: u16) -> String {
    crate::name(
        "status type ",
        format_args!("{} code {:#04x}", (status >> 8) & 7, status & 0xff),
    )
}

/// A submission and completion queue pair.
pub struct Pair {
    qid: u16,
    entries: u16,
    sq: DmaRegion,
    cq: DmaRegion,
    sq_tail: u16,
    cq_head: u16,
    phase: bool,
    sq_db: u64,
    cq_db: u64,
}

impl Pair {
    /// Memory for queue pair `qid` of `entries` entries.
    pub fn new(regs: Regs, qid: u16, entries: u16) -> Result<Pair, &'static str> {
        let e = env();
        let sq = e
            .dma_alloc(usize::from(entries) * 64)
            .ok_or("no DMA memory for a submission queue")?;
        let cq = e
            .dma_alloc(usize::from(entries) * 16)
            .ok_or("no DMA memory for a completion queue")?;
        let (sq_db, cq_db) = regs.doorbells(qid);
        Ok(Pair {
            qid,
            entries,
            sq,
            cq,
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            sq_db,
            cq_db,
        })
    }

    pub fn sq_phys(&self) -> u64 {
        self.sq.phys
    }

    pub fn cq_phys(&self) -> u64 {
        self.cq.phys
    }

    /// Writes `c` at the tail (the controller sees it at the next
    /// [`Pair::ring_sq`]).
    pub fn push(&mut self, c: &Sqe) {
        let slot: *mut u32 = self.sq.ptr(usize::from(self.sq_tail) * 64);
        for (i, d) in c.dwords().iter().enumerate() {
            // SAFETY: entry `sq_tail` of this queue's submission ring,
            // which the controller does not read until the tail doorbell
            // moves past it.
            unsafe { slot.add(i).write_volatile(*d) };
        }
        self.sq_tail = (self.sq_tail + 1) % self.entries;
    }

    /// Publishes the commands pushed so far.
    pub fn ring_sq(&mut self) {
        fence(Ordering::SeqCst);
        // SAFETY: this queue's submission tail doorbell in the mapped BAR.
        unsafe { (self.sq_db as *mut u32).write_volatile(u32::from(self.sq_tail)) };
    }

    /// The next completion, if the controller posted one.
    pub fn pop(&mut self) -> Option<Cqe> {
        let e: *const u32 = self.cq.ptr(usize::from(self.cq_head) * 16);
        // SAFETY: entry `cq_head` of this queue's completion ring; the
        // phase bit says whether the controller wrote it this round.
        let dw3 = unsafe { e.add(3).read_volatile() };
        if (dw3 >> 16) & 1 != u32::from(self.phase) {
            return None;
        }
        fence(Ordering::SeqCst);
        // SAFETY: as above; the entry is complete once its phase matches.
        let dw0 = unsafe { e.read_volatile() };
        self.cq_head += 1;
        if self.cq_head == self.entries {
            self.cq_head = 0;
            self.phase = !self.phase;
        }
        Some(Cqe {
            dw0,
            cid: dw3 as u16,
            status: ((dw3 >> 17) & 0x7ff) as u16,
        })
    }

    /// Tells the controller the completions up to the head are consumed.
    pub fn ring_cq(&mut self) {
        // SAFETY: this queue's completion head doorbell in the mapped BAR.
        unsafe { (self.cq_db as *mut u32).write_volatile(u32::from(self.cq_head)) };
    }
}

/// A request and its commands still on the controller.
struct Parent {
    request: Request,
    remaining: u16,
    status: Status,
}

/// An I/O queue pair: the skeleton's hardware. The tag is the namespace.
pub struct IoQueue {
    name: String,
    pair: Pair,
    /// One PRP list page per command id.
    lists: DmaRegion,
    /// The request (index into `parents`) of each command id.
    cids: Vec<Option<u16>>,
    free_cids: Vec<u16>,
    parents: Vec<Option<Parent>>,
    free_parents: Vec<u16>,
    max_transfer: u64,
}

impl IoQueue {
    pub fn new(pair: Pair, name: String, max_transfer: u64) -> Result<IoQueue, &'static str> {
        let depth = usize::from(pair.entries) - 1;
        let lists = env()
            .dma_alloc(depth * PAGE as usize)
            .ok_or("no DMA memory for PRP lists")?;
        Ok(IoQueue {
            name,
            pair,
            lists,
            cids: bh_safe_alloc(|| (0..depth).map(|_| None).collect()),
            free_cids: bh_safe_alloc(|| (0..depth as u16).rev().collect()),
            parents: bh_safe_alloc(|| (0..depth).map(|_| None).collect()),
            free_parents: bh_safe_alloc(|| (0..depth as u16).rev().collect()),
            max_transfer,
        })
    }

    /// The PRP2 value for `entries`: none, the second page, or a list in
    /// command `cid`'s list page.
    fn prp2(&mut self, cid: u16, entries: &[u64]) -> u64 {
        match entries.len() {
            0 | 1 => 0,
            2 => entries[1],
            n => {
                debug_assert!(n - 1 <= PAGE as usize / 8);
                let list: *mut u64 = self.lists.ptr(usize::from(cid) * PAGE as usize);
                for (i, &p) in entries[1..].iter().enumerate() {
                    // SAFETY: entry `i` (< 512) of command `cid`'s list
                    // page, which only that command uses while in flight.
                    unsafe { list.add(i).write_volatile(p) };
                }
                self.lists.phys + u64::from(cid) * PAGE
            }
        }
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.cids.len() - self.free_cids.len()
    }
}

impl Hardware for IoQueue {
    type Tag = u32;

    fn issue(&mut self, r: Request, nsid: u32) -> Issue<u32> {
        let pieces = match r.op {
            Op::Flush => Vec::new(),
            _ => match bh_safe_alloc(|| prp::plan(&r.segments, self.max_transfer)) {
                Ok(p) => p,
                Err(_) => return Issue::Finished(r, Status::Unsupported),
            },
        };
        let commands = pieces.len().max(1);
        if commands > self.cids.len() {
            return Issue::Finished(r, Status::Unsupported);
        }
        if commands > self.free_cids.len() || self.free_parents.is_empty() {
            return Issue::Busy(r, nsid);
        }
        let parent = self.free_parents.pop().expect("checked above");
        if r.op == Op::Flush {
            let cid = self.free_cids.pop().expect("checked above");
            let mut c = Sqe::new(OP_FLUSH);
            c.cid = cid;
            c.nsid = nsid;
            self.cids[usize::from(cid)] = Some(parent);
            self.pair.push(&c);
        }
        for p in &pieces {
            let cid = self.free_cids.pop().expect("checked above");
            let mut c = Sqe::new(if r.op == Op::Write { OP_WRITE } else { OP_READ });
            c.cid = cid;
            c.nsid = nsid;
            c.prp1 = p.entries[0];
            c.prp2 = self.prp2(cid, &p.entries);
            let lba = r.sector + p.sector;
            c.cdw10 = lba as u32;
            c.cdw11 = (lba >> 32) as u32;
            c.cdw12 = p.sectors - 1;
            self.cids[usize::from(cid)] = Some(parent);
            self.pair.push(&c);
        }
        self.parents[usize::from(parent)] = Some(Parent {
            request: r,
            remaining: commands as u16,
            status: Status::Ok,
        });
        Issue::Started
    }

    fn doorbell(&mut self) {
        self.pair.ring_sq();
    }

    fn harvest(&mut self, out: &mut Harvest<'_, u32>) {
        let mut any = false;
        while let Some(c) = self.pair.pop() {
            any = true;
            let Some(parent) = self.cids.get_mut(usize::from(c.cid)).and_then(Option::take) else {
                crate::dlog!(
                    Error,
                    "{}: completion for idle command {}",
                    self.name,
                    c.cid
                );
                continue;
            };
            self.free_cids.push(c.cid);
            let Some(p) = self.parents[usize::from(parent)].as_mut() else {
                crate::dlog!(Error, "{}: command {} without a request", self.name, c.cid);
                continue;
            };
            if c.status != 0 {
                let st = if c.status == SC_LBA_OUT_OF_RANGE {
                    Status::OutOfRange
                } else {
                    Status::IoError
                };
                if p.status == Status::Ok {
                    p.status = st;
                }
                crate::dlog!(
                    Warn,
                    "{}: {:?} of sector {} failed: {}",
                    self.name,
                    p.request.op,
                    p.request.sector,
                    status_text(c.status)
                );
            }
            p.remaining -= 1;
            if p.remaining == 0 {
                let p = self.parents[usize::from(parent)]
                    .take()
                    .expect("checked above");
                self.free_parents.push(parent);
                out.finish(p.request, p.status);
            }
        }
        if any {
            self.pair.ring_cq();
        }
    }
}

impl Pair {
    /// This pair's queue id.
    pub fn qid(&self) -> u16 {
        self.qid
    }
}
