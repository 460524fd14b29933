//! VMware PVSCSI: a paravirtual SCSI adapter with request and completion
//! rings in guest memory, and the SCSI disks behind it.
//!
//! **What it owns.** One PCI function: its register page (BAR 0), the
//! rings-state page, a [`REQ_PAGES`]-page request ring and a completion
//! ring, one DMA page per command slot (scatter-gather list, sense buffer,
//! small data buffer for probe commands), the driver queue of waiting
//! requests and its interrupt (MSI, or INTx). No message ring: it only
//! reports hot-plug, which cairn does not handle.
//!
//! **SCSI.** Probe scans targets `0..MAX_TARGETS` on LUN 0 (QEMU's pvscsi
//! bus has `max_lun = 0`; the LUN travels in byte 1 of the 8-byte LUN
//! field): INQUIRY (direct-access devices only), TEST UNIT READY until the
//! power-on UNIT ATTENTION has been reported, READ CAPACITY(16). I/O uses
//! READ/WRITE(10) while the LBA fits 32 bits and the count 16 bits, (16)
//! otherwise; flush is SYNCHRONIZE CACHE(10). CHECK CONDITION carries sense
//! data (fixed or descriptor format): UNIT ATTENTION is retried, ILLEGAL
//! REQUEST / LBA OUT OF RANGE ends in `OutOfRange`, anything else in
//! `IoError`, and the sense key/ASC/ASCQ are logged.
//!
//! **Contexts.** `probe`: boot or kernel-lock (polls the completion ring,
//! interrupts masked). `submit`: kernel-lock or bh. Interrupt (irq): reads
//! and acknowledges the interrupt status register, requests the bh
//! service. Service (bh): consumes the completion ring, completes requests
//! with the lock released, then issues waiting requests.
//!
//! **Locks.** `drivers.pvscsi` (IrqSpinLock), one per adapter: the rings,
//! slots and queues; never taken in irq context, never held while a
//! completion runs. Below it only leaf locks (heaps, inside
//! `bh_safe_alloc`).

use crate::env::{DmaRegion, IrqHandler, env};
use crate::{BhService, Stats};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, DeviceInfo, Op, Request, SECTOR_SIZE, Status};
use cairn_pc::pci::PciFunction;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicBool, Ordering, fence};

const VENDOR_VMWARE: u16 = 0x15ad;
const DEVICE_PVSCSI: u16 = 0x07c0;

// Registers (BAR 0).
const REG_COMMAND: u64 = 0x0;
const REG_COMMAND_DATA: u64 = 0x4;
const REG_COMMAND_STATUS: u64 = 0x8;
const REG_INTR_STATUS: u64 = 0x100c;
const REG_INTR_MASK: u64 = 0x2010;
const REG_KICK_NON_RW_IO: u64 = 0x3014;
const REG_KICK_RW_IO: u64 = 0x4018;
const REG_SPACE: u64 = 0x8000;

const CMD_ADAPTER_RESET: u32 = 1;
const CMD_SETUP_RINGS: u32 = 3;
const INTR_CMPL_MASK: u32 = 0x3;

const FLAG_SG_LIST: u32 = 1 << 0;
const FLAG_DIR_NONE: u32 = 1 << 2;
const FLAG_DIR_TOHOST: u32 = 1 << 3;
const FLAG_DIR_TODEVICE: u32 = 1 << 4;

const BTSTAT_SUCCESS: u16 = 0x00;
const BTSTAT_LINKED: u16 = 0x0a;
const BTSTAT_LINKED_FLAG: u16 = 0x0b;
const BTSTAT_SELTIMEO: u16 = 0x11;
const SDSTAT_GOOD: u16 = 0x00;
const SDSTAT_CHECK: u16 = 0x02;

/// Request ring pages (32 descriptors of 128 bytes each per page).
pub const REQ_PAGES: usize = 2;
const REQ_ENTRIES: usize = REQ_PAGES * 32;
/// Completion ring: one page of 128 32-byte descriptors (more than the
/// request ring can have outstanding).
const CMP_ENTRIES: usize = 128;
/// Command slots = requests in flight.
pub const DEPTH: usize = REQ_ENTRIES;
pub const MAX_SEGMENTS: u32 = 128;
pub const MAX_SECTORS: u32 = 2048;
/// Targets probed on bus 0.
pub const MAX_TARGETS: u8 = 16;
const SENSE_OFF: usize = 2048;
const SENSE_LEN: usize = 252;
const DATA_OFF: usize = 3072;
/// UNIT ATTENTION retries per request.
const RETRIES: u8 = 3;

pub fn matches(f: &PciFunction) -> bool {
    f.vendor == VENDOR_VMWARE && f.device == DEVICE_PVSCSI
}

struct Slot {
    request: Request,
    target: u8,
    lun: u8,
    retries: u8,
}

struct Inner {
    /// Rings-state page, request ring, completion ring.
    rings: DmaRegion,
    /// One page per slot: SG list, sense, probe data.
    slot_mem: DmaRegion,
    slots: Vec<Option<Slot>>,
    free: Vec<u16>,
    waiting: VecDeque<(u8, u8, u8, Request)>,
    done: VecDeque<(Request, Status)>,
}

pub struct Adapter {
    index: usize,
    regs: u64,
    inner: IrqSpinLock<Inner>,
    service: BhService,
    live: AtomicBool,
    pub stats: Stats,
}

/// One SCSI disk (target, LUN) behind an adapter.
pub struct ScsiDisk {
    info: DeviceInfo,
    adapter: &'static Adapter,
    target: u8,
    lun: u8,
}

static CLASS: LockClass = LockClass::new("drivers.pvscsi");

// Rings-state fields (u32 offsets in bytes).
const RS_REQ_PROD: usize = 0;
const RS_REQ_NUM_LOG2: usize = 8;
const RS_CMP_PROD: usize = 12;
const RS_CMP_CONS: usize = 16;
const RS_CMP_NUM_LOG2: usize = 20;

/// A SCSI command for the request ring.
struct Command<'a> {
    cdb: [u8; 16],
    cdb_len: u8,
    /// (flag, bytes): the data direction and total length.
    dir: u32,
    len: u64,
    /// Data: segments (scatter-gather) or one physical buffer.
    segments: &'a [cairn_block::Segment],
    buffer: Option<u64>,
}

impl Adapter {
    fn write_reg(&self, off: u64, v: u32) {
        // SAFETY: `regs` maps the adapter's register BAR (REG_SPACE bytes);
        // `off` is one of its register offsets.
        unsafe { ((self.regs + off) as *mut u32).write_volatile(v) }
    }

    fn read_reg(&self, off: u64) -> u32 {
        // SAFETY: as in `write_reg`.
        unsafe { ((self.regs + off) as *const u32).read_volatile() }
    }

    /// Runs an adapter command with its descriptor dwords.
    fn command(&self, cmd: u32, data: &[u32]) {
        self.write_reg(REG_COMMAND, cmd);
        for &d in data {
            self.write_reg(REG_COMMAND_DATA, d);
        }
    }
}

impl Inner {
    fn rs(&self, off: usize) -> *mut u32 {
        self.rings.ptr(off)
    }

    fn rs_read(&self, off: usize) -> u32 {
        // SAFETY: a field of the rings-state page, shared with the device.
        unsafe { self.rs(off).read_volatile() }
    }

    fn rs_write(&self, off: usize, v: u32) {
        // SAFETY: as in `rs_read`.
        unsafe { self.rs(off).write_volatile(v) }
    }

    fn slot_page(&self, slot: u16) -> (u64, u64) {
        let off = usize::from(slot) * 4096;
        (
            self.slot_mem.phys + off as u64,
            self.slot_mem.virt + off as u64,
        )
    }

    /// Writes a request descriptor for `slot` and publishes it; whether
    /// it is a read/write (which kick register to use).
    fn post(&mut self, slot: u16, target: u8, lun: u8, c: &Command<'_>) -> bool {
        let (slot_phys, slot_virt) = self.slot_page(slot);
        let prod = self.rs_read(RS_REQ_PROD);
        let idx = prod as usize & (REQ_ENTRIES - 1);
        let d: *mut u8 = self.rings.ptr(4096 + idx * 128);
        let (data_addr, flags) = if let Some(b) = c.buffer {
            (b, 0)
        } else if c.segments.is_empty() {
            (0, 0)
        } else {
            for (i, s) in c.segments.iter().enumerate() {
                let e = (slot_virt + (i * 16) as u64) as *mut u64;
                // SAFETY: element `i` (< MAX_SEGMENTS) of this slot's SG
                // page.
                unsafe {
                    e.write_volatile(s.phys);
                    e.add(1).write_volatile(u64::from(s.len));
                }
            }
            (slot_phys, FLAG_SG_LIST)
        };
        // SAFETY: descriptor `idx` of the request ring, which the device
        // does not read until the producer index below moves past it.
        unsafe {
            core::ptr::write_bytes(d, 0, 128);
            (d as *mut u64).write_volatile(u64::from(slot) + 1); // context
            (d.add(8) as *mut u64).write_volatile(data_addr);
            (d.add(16) as *mut u64).write_volatile(c.len);
            (d.add(24) as *mut u64).write_volatile(slot_phys + SENSE_OFF as u64);
            (d.add(32) as *mut u32).write_volatile(SENSE_LEN as u32);
            (d.add(36) as *mut u32).write_volatile(flags | c.dir);
            core::ptr::copy_nonoverlapping(c.cdb.as_ptr(), d.add(40), 16);
            d.add(56).write_volatile(c.cdb_len);
            d.add(57 + 1).write_volatile(lun); // lun[1]
            d.add(65).write_volatile(0); // tag: simple
            d.add(66).write_volatile(0); // bus
            d.add(67).write_volatile(target);
        }
        fence(Ordering::SeqCst);
        self.rs_write(RS_REQ_PROD, prod.wrapping_add(1));
        c.cdb[0] == 0x28 || c.cdb[0] == 0x2a || c.cdb[0] == 0x88 || c.cdb[0] == 0x8a
    }

    /// Takes the next completion: (slot, host status, SCSI status, sense
    /// length).
    fn next_completion(&mut self) -> Option<(u16, u16, u16, u32)> {
        let cons = self.rs_read(RS_CMP_CONS);
        if cons == self.rs_read(RS_CMP_PROD) {
            return None;
        }
        fence(Ordering::SeqCst);
        let idx = cons as usize & (CMP_ENTRIES - 1);
        let d: *const u8 = self.rings.ptr(4096 * (1 + REQ_PAGES) + idx * 32);
        // SAFETY: descriptor `idx` of the completion ring, published by the
        // device (its producer index is past it).
        let (ctx, sense_len, host, scsi) = unsafe {
            (
                (d as *const u64).read_volatile(),
                (d.add(16) as *const u32).read_volatile(),
                (d.add(20) as *const u16).read_volatile(),
                (d.add(22) as *const u16).read_volatile(),
            )
        };
        fence(Ordering::SeqCst);
        self.rs_write(RS_CMP_CONS, cons.wrapping_add(1));
        Some(((ctx - 1) as u16, host, scsi, sense_len))
    }

    /// (key, ASC, ASCQ) from the slot's sense buffer.
    fn sense(&self, slot: u16, len: u32) -> (u8, u8, u8) {
        if len == 0 {
            return (0, 0, 0);
        }
        let (_, virt) = self.slot_page(slot);
        // SAFETY: the sense area of this slot's page, written by the device
        // for the command that just completed.
        let s = unsafe {
            core::slice::from_raw_parts((virt + SENSE_OFF as u64) as *const u8, SENSE_LEN)
        };
        match s[0] & 0x7f {
            0x72 | 0x73 => (s[1] & 0xf, s[2], s[3]),
            _ => (s[2] & 0xf, s[12], s[13]),
        }
    }
}

/// The CDB of a block request.
fn cdb_for(r: &Request) -> ([u8; 16], u8) {
    let mut c = [0u8; 16];
    match r.op {
        Op::Flush => {
            c[0] = 0x35; // SYNCHRONIZE CACHE(10): whole device
            (c, 10)
        }
        op => {
            let write = op == Op::Write;
            if r.sector + r.sectors <= u64::from(u32::MAX) && r.sectors <= 0xffff {
                c[0] = if write { 0x2a } else { 0x28 };
                c[2..6].copy_from_slice(&(r.sector as u32).to_be_bytes());
                c[7..9].copy_from_slice(&(r.sectors as u16).to_be_bytes());
                (c, 10)
            } else {
                c[0] = if write { 0x8a } else { 0x88 };
                c[2..10].copy_from_slice(&r.sector.to_be_bytes());
                c[10..14].copy_from_slice(&(r.sectors as u32).to_be_bytes());
                (c, 16)
            }
        }
    }
}

/// A probe command's (host status, SCSI status, sense, data address).
type PollResult = (u16, u16, (u8, u8, u8), u64);

/// Outcome of a command from its completion.
fn outcome(host: u16, scsi: u16, sense: (u8, u8, u8)) -> Result<(), (Status, bool)> {
    if !matches!(host, BTSTAT_SUCCESS | BTSTAT_LINKED | BTSTAT_LINKED_FLAG) {
        return Err((Status::IoError, false));
    }
    match scsi {
        SDSTAT_GOOD => Ok(()),
        SDSTAT_CHECK => match sense {
            (0x6, _, _) => Err((Status::IoError, true)), // UNIT ATTENTION: retry
            (0x5, 0x21, _) => Err((Status::OutOfRange, false)),
            _ => Err((Status::IoError, false)),
        },
        _ => Err((Status::IoError, false)),
    }
}

impl Adapter {
    /// Runs one command synchronously by polling (probe only, interrupts
    /// masked): (host status, SCSI status, sense).
    fn poll(&self, target: u8, lun: u8, cdb: &[u8], dir: u32, len: usize) -> Option<PollResult> {
        let mut inner = self.inner.lock();
        let (phys, virt) = inner.slot_page(0);
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let cmd = Command {
            cdb: c,
            cdb_len: cdb.len() as u8,
            dir,
            len: len as u64,
            segments: &[],
            buffer: (len > 0).then_some(phys + DATA_OFF as u64),
        };
        let rw = inner.post(0, target, lun, &cmd);
        self.write_reg(
            if rw {
                REG_KICK_RW_IO
            } else {
                REG_KICK_NON_RW_IO
            },
            0,
        );
        let e = env();
        let end = e.now_ns() + 2_000_000_000;
        loop {
            if let Some((slot, host, scsi, sense_len)) = inner.next_completion() {
                debug_assert_eq!(slot, 0);
                let sense = inner.sense(slot, sense_len);
                return Some((host, scsi, sense, virt + DATA_OFF as u64));
            }
            if e.now_ns() > end {
                return None;
            }
            core::hint::spin_loop();
        }
    }

    /// Puts a request on the ring in a free slot; gives it back if none.
    fn issue(
        &self,
        inner: &mut Inner,
        target: u8,
        lun: u8,
        retries: u8,
        r: Request,
    ) -> Result<bool, Request> {
        let Some(slot) = inner.free.pop() else {
            return Err(r);
        };
        let (cdb, cdb_len) = cdb_for(&r);
        let (dir, len) = match r.op {
            Op::Flush => (FLAG_DIR_NONE, 0),
            Op::Read => (FLAG_DIR_TOHOST, r.sectors * SECTOR_SIZE as u64),
            Op::Write => (FLAG_DIR_TODEVICE, r.sectors * SECTOR_SIZE as u64),
        };
        let cmd = Command {
            cdb,
            cdb_len,
            dir,
            len,
            segments: if r.op == Op::Flush { &[] } else { &r.segments },
            buffer: None,
        };
        let rw = inner.post(slot, target, lun, &cmd);
        inner.slots[usize::from(slot)] = Some(Slot {
            request: r,
            target,
            lun,
            retries,
        });
        Ok(rw)
    }

    fn harvest(&self) {
        let mut inner = self.inner.lock();
        let mut retry = false;
        while let Some((slot, host, scsi, sense_len)) = inner.next_completion() {
            let Some(s) = inner
                .slots
                .get_mut(usize::from(slot))
                .and_then(Option::take)
            else {
                crate::dlog!(
                    Error,
                    "pvscsi{}: completion for idle slot {slot}",
                    self.index
                );
                continue;
            };
            inner.free.push(slot);
            let sense = inner.sense(slot, sense_len);
            match outcome(host, scsi, sense) {
                Ok(()) => bh_safe_alloc(|| inner.done.push_back((s.request, Status::Ok))),
                Err((_, true)) if s.retries > 0 => {
                    retry = true;
                    bh_safe_alloc(|| {
                        inner
                            .waiting
                            .push_front((s.target, s.lun, s.retries - 1, s.request))
                    });
                }
                Err((st, _)) => {
                    crate::dlog!(
                        Warn,
                        "pvscsi{}:{}:{}: {:?} of sector {} failed: host status {host:#x}, SCSI status {scsi:#x}, sense key {:#x} ASC {:#04x} ASCQ {:#04x}",
                        self.index,
                        s.target,
                        s.lun,
                        s.request.op,
                        s.request.sector,
                        sense.0,
                        sense.1,
                        sense.2
                    );
                    bh_safe_alloc(|| inner.done.push_back((s.request, st)));
                }
            }
        }
        let _ = retry;
    }

    fn complete_finished(&self) {
        self.stats
            .complete_each(|| self.inner.lock().done.pop_front());
    }

    fn issue_waiting(&self) {
        let mut inner = self.inner.lock();
        let (mut rw, mut other) = (false, false);
        while let Some((t, l, retries, r)) = inner.waiting.pop_front() {
            match self.issue(&mut inner, t, l, retries, r) {
                Ok(true) => rw = true,
                Ok(false) => other = true,
                Err(r) => {
                    inner.waiting.push_front((t, l, retries, r));
                    break;
                }
            }
        }
        drop(inner);
        if rw {
            self.write_reg(REG_KICK_RW_IO, 0);
        }
        if other {
            self.write_reg(REG_KICK_NON_RW_IO, 0);
        }
    }
}

fn interrupt(arg: usize) {
    // SAFETY: `arg` is a leaked, never-freed `Adapter`.
    let a = unsafe { &*(arg as *const Adapter) };
    let st = a.read_reg(REG_INTR_STATUS);
    if st == 0 {
        return; // shared INTx line: not ours
    }
    a.write_reg(REG_INTR_STATUS, st);
    Stats::count(&a.stats.interrupts);
    if a.live.load(Ordering::Acquire) {
        a.service.request(service, arg);
    }
}

fn service(arg: usize) {
    // SAFETY: as in `interrupt`.
    let a = unsafe { &*(arg as *const Adapter) };
    a.service.begin();
    a.harvest();
    a.complete_finished();
    a.issue_waiting();
}

/// Probes the adapter `f` and the disks behind it.
pub fn probe(f: &PciFunction, index: usize) -> Result<Vec<&'static dyn BlockDevice>, &'static str> {
    let e = env();
    let pa = f.address;
    e.pci_exclusive(&mut || cairn_pc::pci::enable_bus_master(pa));
    let bar = crate::virtio_blk::memory_bar(pa, 0).ok_or("no register BAR")?;
    let regs = e.map_mmio(bar, REG_SPACE);
    let rings = e
        .dma_alloc(4096 * (1 + REQ_PAGES + 1))
        .ok_or("no DMA memory for rings")?;
    let slot_mem = e.dma_alloc(4096 * DEPTH).ok_or("no DMA memory for slots")?;
    let adapter: &'static Adapter = bh_safe_alloc(|| {
        Box::leak(Box::new(Adapter {
            index,
            regs,
            inner: IrqSpinLock::new(
                &CLASS,
                Inner {
                    rings,
                    slot_mem,
                    slots: (0..DEPTH).map(|_| None).collect(),
                    free: (0..DEPTH as u16).rev().collect(),
                    waiting: VecDeque::with_capacity(DEPTH),
                    done: VecDeque::with_capacity(DEPTH),
                },
            ),
            service: BhService::new(),
            live: AtomicBool::new(false),
            stats: Stats::new(),
        }))
    });
    adapter.write_reg(REG_INTR_MASK, 0);
    adapter.command(CMD_ADAPTER_RESET, &[]);
    // SETUP_RINGS: page counts, the state page, the ring pages.
    let mut d = [0u32; 2 + 2 + 64 + 64];
    d[0] = REQ_PAGES as u32;
    d[1] = 1;
    let ppn = |p: u64| p >> 12;
    d[2] = ppn(rings.phys) as u32;
    d[3] = (ppn(rings.phys) >> 32) as u32;
    for i in 0..REQ_PAGES {
        let p = ppn(rings.phys + 4096 * (1 + i) as u64);
        d[4 + 2 * i] = p as u32;
        d[5 + 2 * i] = (p >> 32) as u32;
    }
    let p = ppn(rings.phys + 4096 * (1 + REQ_PAGES) as u64);
    d[4 + 64] = p as u32;
    d[5 + 64] = (p >> 32) as u32;
    adapter.command(CMD_SETUP_RINGS, &d);
    if adapter.read_reg(REG_COMMAND_STATUS) == u32::MAX {
        return Err("SETUP_RINGS refused");
    }
    {
        let inner = adapter.inner.lock();
        if inner.rs_read(RS_REQ_NUM_LOG2) as usize != REQ_ENTRIES.trailing_zeros() as usize
            || inner.rs_read(RS_CMP_NUM_LOG2) as usize != CMP_ENTRIES.trailing_zeros() as usize
        {
            crate::dlog!(Warn, "pvscsi{index}: ring sizes not as set up");
        }
    }
    let mut disks: Vec<&'static dyn BlockDevice> = Vec::new();
    for target in 0..MAX_TARGETS {
        let lun = 0;
        let Some((host, scsi, _, data)) =
            adapter.poll(target, lun, &[0x12, 0, 0, 0, 96, 0], FLAG_DIR_TOHOST, 96)
        else {
            return Err("INQUIRY timed out");
        };
        if host == BTSTAT_SELTIMEO || host != BTSTAT_SUCCESS || scsi != SDSTAT_GOOD {
            continue;
        }
        // SAFETY: the probe data buffer of slot 0, just filled by INQUIRY.
        let inq = unsafe { core::slice::from_raw_parts(data as *const u8, 96) };
        if inq[0] & 0x1f != 0 || inq[0] >> 5 != 0 {
            continue; // not a connected direct-access device
        }
        let mut model = crate::ascii(&inq[8..16]);
        model.push(' ');
        model.push_str(&crate::ascii(&inq[16..32]));
        // Let the power-on UNIT ATTENTION be reported.
        for _ in 0..4 {
            match adapter.poll(target, lun, &[0; 6], FLAG_DIR_NONE, 0) {
                Some((_, SDSTAT_GOOD, _, _)) => break,
                _ => continue,
            }
        }
        let mut cap = None;
        for _ in 0..3 {
            let rc16 = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
            if let Some((BTSTAT_SUCCESS, SDSTAT_GOOD, _, data)) =
                adapter.poll(target, lun, &rc16, FLAG_DIR_TOHOST, 32)
            {
                // SAFETY: slot 0's probe buffer, just filled.
                let b = unsafe { core::slice::from_raw_parts(data as *const u8, 32) };
                let last = u64::from_be_bytes(b[0..8].try_into().unwrap_or([0; 8]));
                let block = u32::from_be_bytes(b[8..12].try_into().unwrap_or([0; 4]));
                cap = Some((last + 1, block));
                break;
            }
        }
        let Some((blocks, block)) = cap else {
            crate::dlog!(Warn, "pvscsi{index}:{target}:{lun}: READ CAPACITY failed");
            continue;
        };
        if block as usize != SECTOR_SIZE {
            crate::dlog!(
                Warn,
                "pvscsi{index}:{target}:{lun}: {block}-byte blocks not supported"
            );
            continue;
        }
        let disk: &'static ScsiDisk = bh_safe_alloc(|| {
            Box::leak(Box::new(ScsiDisk {
                info: DeviceInfo {
                    name: crate::name("pvscsi", format_args!("{index}:{target}:{lun}")),
                    model: model.clone(),
                    sectors: blocks,
                    queue_depth: DEPTH as u32,
                    max_segments: MAX_SEGMENTS,
                    max_sectors: MAX_SECTORS,
                    flush: true,
                },
                adapter,
                target,
                lun,
            }))
        });
        crate::dlog!(
            Info,
            "pvscsi{index}:{target}:{lun}: \"{model}\", {blocks} sectors"
        );
        disks.push(disk);
    }
    let arg = adapter as *const Adapter as usize;
    let h = IrqHandler {
        func: interrupt,
        arg,
    };
    let mut how = None;
    if let Some(v) = e.alloc_vector(h) {
        let mut ok = false;
        let apic = e.msi_target();
        e.pci_exclusive(&mut || ok = cairn_pc::pci::enable_msi(pa, v, apic));
        if ok {
            how = Some(crate::name("MSI vector ", format_args!("{v:#x}")));
        }
    }
    if how.is_none() {
        let v = e
            .route_pci_intx(f.interrupt_line, h)
            .ok_or("cannot route INTx")?;
        how = Some(crate::name("INTx vector ", format_args!("{v:#x}")));
    }
    adapter.live.store(true, Ordering::Release);
    adapter.write_reg(REG_INTR_MASK, INTR_CMPL_MASK);
    crate::dlog!(
        Info,
        "pvscsi{index}: {} disk(s), depth {DEPTH}, {}",
        disks.len(),
        how.unwrap_or_default()
    );
    Ok(disks)
}

impl BlockDevice for ScsiDisk {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, r: Request) {
        let a = self.adapter;
        Stats::count(&a.stats.submitted);
        let arg = a as *const Adapter as usize;
        let check = r.check_for(&self.info);
        let mut inner = a.inner.lock();
        if let Err(st) = check {
            bh_safe_alloc(|| inner.done.push_back((r, st)));
            drop(inner);
            a.service.request(service, arg);
            return;
        }
        if !inner.waiting.is_empty() {
            Stats::count(&a.stats.queued);
            bh_safe_alloc(|| inner.waiting.push_back((self.target, self.lun, RETRIES, r)));
            return;
        }
        match a.issue(&mut inner, self.target, self.lun, RETRIES, r) {
            Ok(rw) => {
                drop(inner);
                a.write_reg(
                    if rw {
                        REG_KICK_RW_IO
                    } else {
                        REG_KICK_NON_RW_IO
                    },
                    0,
                );
            }
            Err(r) => {
                Stats::count(&a.stats.queued);
                bh_safe_alloc(|| inner.waiting.push_back((self.target, self.lun, RETRIES, r)));
            }
        }
    }
}
