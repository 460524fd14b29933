//! VMware PVSCSI: a paravirtual SCSI adapter with request and completion
//! rings in guest memory, and the SCSI disks behind it.
//!
//! **What it owns.** One PCI function: its register page (BAR 0), the
//! rings-state page, a [`REQ_PAGES`]-page request ring and a completion
//! ring, one DMA page per command slot (scatter-gather list, sense buffer,
//! small data buffer for probe commands), all run by one [`DriverQueue`]
//! that every disk of the adapter shares, and its interrupt (MSI, or
//! INTx). No message ring: it only reports hot-plug, which cairn does not
//! handle.
//!
//! **SCSI** (see [`crate::scsi`]): probe scans targets `0..MAX_TARGETS`
//! and their LUNs (QEMU's pvscsi bus has `max_lun = 0`; the LUN travels in
//! byte 1 of the 8-byte LUN field); I/O, flush, sense data and retries are
//! the shared SCSI logic's. Sense key/ASC/ASCQ of a failed command are
//! logged.
//!
//! **Contexts.** `probe`: boot or kernel-lock (polls the completion ring,
//! interrupts masked). `submit`: kernel-lock or bh. Interrupt (irq): reads
//! and acknowledges the interrupt status register, hands over to the
//! queue. The bh service is the skeleton's.
//!
//! **Locks.** `drivers.pvscsi` (the queue's lock), one per adapter: the
//! rings and slots. Below it only leaf locks (heaps, inside
//! `bh_safe_alloc`).

use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::{DriverQueue, Hardware, Harvest, Issue};
use crate::scsi::{self, Cdb, Outcome, Sense, Transport, Unit};
use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, Op, Request, SECTOR_SIZE, Segment, Status};
use cairn_pc::pci::PciFunction;
use cairn_sync::LockClass;
use cairn_sync::cpu::bh_safe_alloc;
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
const DATA_LEN: usize = 1024;

pub fn matches(f: &PciFunction) -> bool {
    f.vendor == VENDOR_VMWARE && f.device == DEVICE_PVSCSI
}

/// The adapter's rings and slots (the queue's hardware).
pub struct Rings {
    index: usize,
    regs: u64,
    /// Rings-state page, request ring, completion ring.
    rings: DmaRegion,
    /// One page per slot: SG list, sense, probe data.
    slot_mem: DmaRegion,
    slots: Vec<Option<(Request, Unit)>>,
    free: Vec<u16>,
    kick_rw: bool,
    kick_other: bool,
}

pub struct Adapter {
    regs: u64,
    queue: &'static DriverQueue<Rings>,
    live: AtomicBool,
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
    cdb: Cdb,
    /// The data direction flag and total length.
    dir: u32,
    len: u64,
    /// Data: segments (scatter-gather) or one physical buffer.
    segments: &'a [Segment],
    buffer: Option<u64>,
}

fn write_reg(regs: u64, off: u64, v: u32) {
    // SAFETY: `regs` maps the adapter's register BAR (REG_SPACE bytes);
    // `off` is one of its register offsets.
    unsafe { ((regs + off) as *mut u32).write_volatile(v) }
}

fn read_reg(regs: u64, off: u64) -> u32 {
    // SAFETY: as in `write_reg`.
    unsafe { ((regs + off) as *const u32).read_volatile() }
}

/// Runs an adapter command with its descriptor dwords.
fn command(regs: u64, cmd: u32, data: &[u32]) {
    write_reg(regs, REG_COMMAND, cmd);
    for &d in data {
        write_reg(regs, REG_COMMAND_DATA, d);
    }
}

/// A completion: (slot, host status, SCSI status, sense length).
type Completion = (u16, u16, u16, u32);

impl Rings {
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

    /// Writes a request descriptor for `slot` and publishes it, noting
    /// which kick register it needs.
    fn post(&mut self, slot: u16, target: u8, lun: u16, c: &Command<'_>) {
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
            core::ptr::copy_nonoverlapping(c.cdb.bytes.as_ptr(), d.add(40), 16);
            d.add(56).write_volatile(c.cdb.len);
            d.add(57 + 1).write_volatile(lun as u8); // lun[1]
            d.add(65).write_volatile(0); // tag: simple
            d.add(66).write_volatile(0); // bus
            d.add(67).write_volatile(target);
        }
        fence(Ordering::SeqCst);
        self.rs_write(RS_REQ_PROD, prod.wrapping_add(1));
        if c.cdb.is_read_write() {
            self.kick_rw = true;
        } else {
            self.kick_other = true;
        }
    }

    /// Takes the next completion.
    fn next_completion(&mut self) -> Option<Completion> {
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
        Some((ctx.wrapping_sub(1) as u16, host, scsi, sense_len))
    }

    /// The sense data of the slot's last command.
    fn sense(&self, slot: u16, len: u32) -> Sense {
        if len == 0 {
            return Sense::default();
        }
        let (_, virt) = self.slot_page(slot);
        // SAFETY: the sense area of this slot's page, written by the device
        // for the command that just completed.
        let s = unsafe {
            core::slice::from_raw_parts((virt + SENSE_OFF as u64) as *const u8, SENSE_LEN)
        };
        scsi::parse_sense(s)
    }

    fn kick(&mut self) {
        if core::mem::take(&mut self.kick_rw) {
            write_reg(self.regs, REG_KICK_RW_IO, 0);
        }
        if core::mem::take(&mut self.kick_other) {
            write_reg(self.regs, REG_KICK_NON_RW_IO, 0);
        }
    }
}

fn host_ok(host: u16) -> bool {
    matches!(host, BTSTAT_SUCCESS | BTSTAT_LINKED | BTSTAT_LINKED_FLAG)
}

impl Hardware for Rings {
    type Tag = Unit;

    fn issue(&mut self, r: Request, u: Unit) -> Issue<Unit> {
        let Some(slot) = self.free.pop() else {
            return Issue::Busy(r, u);
        };
        let (dir, len) = match r.op {
            Op::Flush => (FLAG_DIR_NONE, 0),
            Op::Read => (FLAG_DIR_TOHOST, r.sectors * SECTOR_SIZE as u64),
            Op::Write => (FLAG_DIR_TODEVICE, r.sectors * SECTOR_SIZE as u64),
        };
        let cmd = Command {
            cdb: u.cdb.unwrap_or_else(|| scsi::cdb_for(&r)),
            dir,
            len,
            segments: if r.op == Op::Flush { &[] } else { &r.segments },
            buffer: None,
        };
        self.post(slot, u.target, u.lun, &cmd);
        self.slots[usize::from(slot)] = Some((r, u));
        Issue::Started
    }

    fn doorbell(&mut self) {
        self.kick();
    }

    fn harvest(&mut self, out: &mut Harvest<'_, Unit>) {
        while let Some((slot, host, status, sense_len)) = self.next_completion() {
            let Some((r, u)) = self.slots.get_mut(usize::from(slot)).and_then(Option::take) else {
                crate::dlog!(
                    Error,
                    "pvscsi{}: completion for idle slot {slot}",
                    self.index
                );
                continue;
            };
            self.free.push(slot);
            let sense = self.sense(slot, sense_len);
            let result = if host_ok(host) {
                scsi::outcome(status as u8, sense)
            } else {
                Outcome::Done(Status::IoError)
            };
            scsi::complete(out, r, u, result, |r, u, _| {
                crate::dlog!(
                    Warn,
                    "pvscsi{}:{}:{}: {:?} of sector {} failed: host status {host:#x}, SCSI status {status:#x}, sense key {:#x} ASC {:#04x} ASCQ {:#04x}",
                    self.index,
                    u.target,
                    u.lun,
                    r.op,
                    r.sector,
                    sense.key,
                    sense.asc,
                    sense.ascq
                )
            });
        }
    }
}

impl scsi::Poll for Rings {
    /// Runs one command in slot 0 by polling the completion ring (probe
    /// only, interrupts masked, nothing else in flight).
    fn command(
        &mut self,
        target: u16,
        lun: u16,
        cdb: &Cdb,
        data_in: usize,
    ) -> Result<(u8, Sense, Vec<u8>), Transport> {
        let data_in = data_in.min(DATA_LEN);
        let (phys, virt) = self.slot_page(0);
        let cmd = Command {
            cdb: *cdb,
            dir: if data_in > 0 {
                FLAG_DIR_TOHOST
            } else {
                FLAG_DIR_NONE
            },
            len: data_in as u64,
            segments: &[],
            buffer: (data_in > 0).then_some(phys + DATA_OFF as u64),
        };
        self.post(0, target as u8, lun, &cmd);
        self.kick();
        let e = env();
        let end = e.now_ns() + 2_000_000_000;
        loop {
            if let Some((slot, host, status, sense_len)) = self.next_completion() {
                debug_assert_eq!(slot, 0);
                if host == BTSTAT_SELTIMEO {
                    return Err(Transport::NoTarget);
                }
                if !host_ok(host) {
                    return Err(Transport::Failed);
                }
                let sense = self.sense(slot, sense_len);
                // SAFETY: slot 0's probe data buffer, just filled by the
                // device for this command.
                let data = unsafe {
                    core::slice::from_raw_parts((virt + DATA_OFF as u64) as *const u8, data_in)
                };
                return Ok((status as u8, sense, data.to_vec()));
            }
            if e.now_ns() > end {
                return Err(Transport::Failed);
            }
            core::hint::spin_loop();
        }
    }
}

fn interrupt(arg: usize) {
    // SAFETY: `arg` is a leaked, never-freed `Adapter`.
    let a = unsafe { &*(arg as *const Adapter) };
    let st = read_reg(a.regs, REG_INTR_STATUS);
    if st == 0 {
        return; // shared INTx line: not ours
    }
    write_reg(a.regs, REG_INTR_STATUS, st);
    if a.live.load(Ordering::Acquire) {
        a.queue.interrupt();
    }
}

/// Probes the adapter `f` and the disks behind it.
pub fn probe(f: &PciFunction, index: usize) -> Result<Vec<&'static dyn BlockDevice>, &'static str> {
    let e = env();
    let pa = f.address;
    e.pci_exclusive(&mut || cairn_pc::pci::enable_bus_master(pa));
    let bar = crate::pci::memory_bar(pa, 0).ok_or("no register BAR")?;
    let regs = e.map_mmio(bar, REG_SPACE);
    let rings = e
        .dma_alloc(4096 * (1 + REQ_PAGES + 1))
        .ok_or("no DMA memory for rings")?;
    let slot_mem = e.dma_alloc(4096 * DEPTH).ok_or("no DMA memory for slots")?;
    let mut hw = Rings {
        index,
        regs,
        rings,
        slot_mem,
        slots: bh_safe_alloc(|| (0..DEPTH).map(|_| None).collect()),
        free: bh_safe_alloc(|| (0..DEPTH as u16).rev().collect()),
        kick_rw: false,
        kick_other: false,
    };
    write_reg(regs, REG_INTR_MASK, 0);
    command(regs, CMD_ADAPTER_RESET, &[]);
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
    command(regs, CMD_SETUP_RINGS, &d);
    if read_reg(regs, REG_COMMAND_STATUS) == u32::MAX {
        return Err("SETUP_RINGS refused");
    }
    if hw.rs_read(RS_REQ_NUM_LOG2) as usize != REQ_ENTRIES.trailing_zeros() as usize
        || hw.rs_read(RS_CMP_NUM_LOG2) as usize != CMP_ENTRIES.trailing_zeros() as usize
    {
        crate::dlog!(Warn, "pvscsi{index}: ring sizes not as set up");
    }
    let mut found = Vec::new();
    for target in 0..MAX_TARGETS {
        let (disks, skipped) = scsi::probe_target(&mut hw, u16::from(target));
        for (lun, why) in skipped {
            crate::dlog!(Warn, "pvscsi{index}:{target}:{lun}: {why}");
        }
        found.extend(disks.into_iter().map(|d| (target, d)));
    }
    let queue = DriverQueue::leak(&CLASS, hw, DEPTH);
    let adapter: &'static Adapter = bh_safe_alloc(|| {
        Box::leak(Box::new(Adapter {
            regs,
            queue,
            live: AtomicBool::new(false),
        }))
    });
    let disks = scsi::disks(
        &crate::name("pvscsi", format_args!("{index}")),
        found,
        queue,
        scsi::Limits {
            queue_depth: DEPTH as u32,
            max_segments: MAX_SEGMENTS,
            max_sectors: MAX_SECTORS,
        },
    );
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
    write_reg(regs, REG_INTR_MASK, INTR_CMPL_MASK);
    crate::dlog!(
        Info,
        "pvscsi{index}: {} disk(s), depth {DEPTH}, {}",
        disks.len(),
        how.unwrap_or_default()
    );
    Ok(disks)
}
