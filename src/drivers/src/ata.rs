//! ATA disks on a PCI IDE controller in compatibility mode (PIIX3/PIIX4 on
//! QEMU `-M pc`): both channels (0x1f0/0x3f6 on ISA irq 14, 0x170/0x376 on
//! irq 15), master and slave, IDENTIFY, LBA28 and LBA48, bus-master DMA
//! (PRD tables) and PIO.
//!
//! **What it owns.** Per channel: its task-file and control ports, its half
//! of the bus-master register block, a PRD table page, the one command in
//! flight (an IDE channel runs one command at a time for both of its
//! drives), the driver queue of waiting requests and the list of finished
//! ones. Per disk ([`AtaDisk`]): its identity and which channel and drive
//! it is.
//!
//! **Transfer modes.** Bus-master DMA when the controller has the bus-master
//! BAR and every segment lies below 4 GiB; PIO otherwise (and when
//! [`FORCE_PIO`] is set, for tests). LBA28 commands when the range allows,
//! LBA48 (`*_EXT`) beyond it, for more than 256 sectors, or when
//! [`FORCE_LBA48`] is set. The drive's DMA transfer mode is left as the
//! firmware set it (QEMU does not need SET FEATURES; real PIIX hardware
//! would).
//!
//! **Contexts.** `probe`: boot or kernel-lock (polls, interrupts masked with
//! nIEN). `submit`: kernel-lock or bh (the skeleton's: a channel is "full"
//! while its one command runs). Interrupt (irq): reads the status register
//! (which de-asserts INTRQ), clears the bus-master interrupt bit, records
//! the status and hands over to the channel's queue. Its bh service
//! harvests by finishing the command (stops DMA, or moves the next PIO
//! sector), completes finished requests with the lock released, then
//! starts the next waiting request.
//!
//! **Locks.** `drivers.ata` (the channel queue's lock), one per channel:
//! the ports and the command in flight. Leaf locks below it: heaps (inside
//! `bh_safe_alloc`).

use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::{DriverQueue, Hardware, Harvest, Issue};
use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, DeviceInfo, Op, Request, Status};
use cairn_pc::cpu::{inb, inw, outb, outl, outw};
use cairn_pc::pci::{Bar, PciFunction};
use cairn_sync::LockClass;
use cairn_sync::cpu::bh_safe_alloc;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Tests: use PIO even where DMA is possible.
pub static FORCE_PIO: AtomicBool = AtomicBool::new(false);
/// Tests: use LBA48 commands even where LBA28 would do.
pub static FORCE_LBA48: AtomicBool = AtomicBool::new(false);

// Task-file registers (offsets from the command block base).
const REG_DATA: u16 = 0;
const REG_ERROR: u16 = 1;
const REG_COUNT: u16 = 2;
const REG_LBA0: u16 = 3;
const REG_LBA1: u16 = 4;
const REG_LBA2: u16 = 5;
const REG_DRIVE: u16 = 6;
const REG_STATUS: u16 = 7;
const REG_COMMAND: u16 = 7;

const ST_ERR: u8 = 0x01;
const ST_DRQ: u8 = 0x08;
const ST_DF: u8 = 0x20;
const ST_BSY: u8 = 0x80;

const CTRL_NIEN: u8 = 0x02;

const CMD_READ_PIO: u8 = 0x20;
const CMD_READ_PIO_EXT: u8 = 0x24;
const CMD_READ_DMA_EXT: u8 = 0x25;
const CMD_WRITE_PIO: u8 = 0x30;
const CMD_WRITE_PIO_EXT: u8 = 0x34;
const CMD_WRITE_DMA_EXT: u8 = 0x35;
const CMD_READ_DMA: u8 = 0xc8;
const CMD_WRITE_DMA: u8 = 0xca;
const CMD_FLUSH: u8 = 0xe7;
const CMD_FLUSH_EXT: u8 = 0xea;
const CMD_IDENTIFY: u8 = 0xec;

// Bus-master registers (offsets from the channel's half of BAR4).
const BM_COMMAND: u16 = 0;
const BM_STATUS: u16 = 2;
const BM_PRDT: u16 = 4;
const BM_START: u8 = 0x01;
const BM_READ: u8 = 0x08;
const BM_ST_ERR: u8 = 0x02;
const BM_ST_IRQ: u8 = 0x04;

/// Most sectors per request (1 MiB with LBA48; LBA28 disks: 256).
pub const MAX_SECTORS: u32 = 2048;
pub const MAX_SEGMENTS: u32 = 128;
/// PRD entries in the table page.
const PRD_ENTRIES: usize = 512;

/// The command in flight on a channel.
struct Active {
    request: Request,
    /// PIO: sectors moved so far; `None` for DMA and flush.
    pio_done: Option<u64>,
    write: bool,
}

/// A channel's registers, and what its interrupt saw (read and written
/// without the lock).
pub struct Ports {
    index: u8,
    base: u16,
    ctrl: u16,
    /// Bus-master register block, 0 without one.
    bm: u16,
    /// Status read by the last interrupt.
    irq_status: AtomicU8,
    irq_seen: AtomicBool,
}

/// One IDE channel as its queue's hardware: the PRD table and the one
/// command in flight.
pub struct Channel {
    ports: &'static Ports,
    prdt: DmaRegion,
    active: Option<Active>,
}

/// A drive of a channel: (drive 0/1, whether it takes LBA48 commands).
pub struct Drive {
    drive: u8,
    lba48: bool,
}

/// What the interrupt handler reaches.
struct ChannelIrq {
    ports: &'static Ports,
    queue: &'static DriverQueue<Channel>,
}

/// One ATA disk.
pub struct AtaDisk {
    info: DeviceInfo,
    queue: &'static DriverQueue<Channel>,
    drive: u8,
    lba48: bool,
}

static CLASS: LockClass = LockClass::new("drivers.ata");

/// Whether `f` is an IDE controller this driver can run.
pub fn matches(f: &PciFunction) -> bool {
    f.class == 0x01 && f.subclass == 0x01
}

// SAFETY (for every port helper below): the ports are the task-file,
// control and bus-master registers of a channel this driver owns; callers
// hold the channel lock (or run single-threaded at probe), so accesses are
// not interleaved with another command's.
fn rb(port: u16) -> u8 {
    // SAFETY: see above.
    unsafe { inb(port) }
}
fn wb(port: u16, v: u8) {
    // SAFETY: see above.
    unsafe { outb(port, v) }
}

impl Ports {
    fn alt_status(&self) -> u8 {
        rb(self.ctrl)
    }

    /// Busy-waits until BSY clears; false on timeout.
    fn wait_not_busy(&self, us: u64) -> bool {
        let e = env();
        let end = e.now_ns() + us * 1000;
        loop {
            if self.alt_status() & ST_BSY == 0 {
                return true;
            }
            if e.now_ns() > end {
                return false;
            }
            core::hint::spin_loop();
        }
    }

    fn wait_drq(&self, us: u64) -> Result<(), u8> {
        let e = env();
        let end = e.now_ns() + us * 1000;
        loop {
            let s = self.alt_status();
            if s & ST_BSY == 0 {
                if s & (ST_ERR | ST_DF) != 0 {
                    return Err(s);
                }
                if s & ST_DRQ != 0 {
                    return Ok(());
                }
            }
            if e.now_ns() > end {
                return Err(s);
            }
            core::hint::spin_loop();
        }
    }

    fn delay400(&self) {
        for _ in 0..4 {
            self.alt_status();
        }
    }

    /// IDENTIFY of `drive` by polling; its 256 words, or `None`.
    fn identify(&self, drive: u8) -> Option<[u16; 256]> {
        wb(self.base + REG_DRIVE, 0xa0 | (drive << 4));
        self.delay400();
        if self.alt_status() == 0xff {
            return None; // floating bus
        }
        for r in [REG_COUNT, REG_LBA0, REG_LBA1, REG_LBA2] {
            wb(self.base + r, 0);
        }
        wb(self.base + REG_COMMAND, CMD_IDENTIFY);
        self.delay400();
        if rb(self.base + REG_STATUS) == 0 {
            return None;
        }
        if !self.wait_not_busy(500_000) {
            return None;
        }
        if rb(self.base + REG_LBA1) != 0 || rb(self.base + REG_LBA2) != 0 {
            return None; // ATAPI or SATA signature: not an ATA disk
        }
        self.wait_drq(500_000).ok()?;
        let mut id = [0u16; 256];
        for w in id.iter_mut() {
            // SAFETY: the data port of this channel, DRQ set.
            *w = unsafe { inw(self.base + REG_DATA) };
        }
        rb(self.base + REG_STATUS);
        Some(id)
    }
}

/// Probes both channels of `f`; the disks found.
pub fn probe(f: &PciFunction) -> Vec<&'static dyn BlockDevice> {
    let e = env();
    let a = f.address;
    let mut bm = 0u16;
    e.pci_exclusive(&mut || {
        cairn_pc::pci::enable_bus_master(a);
        if let Some(Bar::Io { port, .. }) = cairn_pc::pci::bar(a, 4) {
            bm = port;
        }
    });
    let native = f.prog_if & 0x05;
    let mut disks: Vec<&'static dyn BlockDevice> = Vec::new();
    for ch in 0..2u8 {
        if native & (1 << (2 * ch)) != 0 {
            crate::dlog!(
                Warn,
                "ata {a}: channel {ch} in native PCI mode: not supported"
            );
            continue;
        }
        let (base, ctrl, irq) = if ch == 0 {
            (0x1f0, 0x3f6, 14)
        } else {
            (0x170, 0x376, 15)
        };
        let Some(prdt) = e.dma_alloc(PRD_ENTRIES * 8) else {
            continue;
        };
        let ports: &'static Ports = bh_safe_alloc(|| {
            Box::leak(Box::new(Ports {
                index: ch,
                base,
                ctrl,
                bm: if bm != 0 { bm + 8 * u16::from(ch) } else { 0 },
                irq_status: AtomicU8::new(0),
                irq_seen: AtomicBool::new(false),
            }))
        });
        wb(ctrl, CTRL_NIEN);
        let mut drives = Vec::new();
        for drive in 0..2u8 {
            let Some(id) = ports.identify(drive) else {
                continue;
            };
            if id[49] & (1 << 9) == 0 {
                crate::dlog!(Warn, "ata{ch}.{drive}: no LBA support, skipped");
                continue;
            }
            drives.push((drive, id));
        }
        if drives.is_empty() {
            continue;
        }
        let queue = DriverQueue::leak(
            &CLASS,
            Channel {
                ports,
                prdt,
                active: None,
            },
            16,
        );
        for (drive, id) in drives {
            let lba48 = id[83] & (1 << 10) != 0;
            let sectors = if lba48 {
                (0..4).fold(0u64, |acc, i| acc | (u64::from(id[100 + i]) << (16 * i)))
            } else {
                u64::from(id[60]) | (u64::from(id[61]) << 16)
            };
            let mut model = [0u8; 40];
            for i in 0..20 {
                model[2 * i] = (id[27 + i] >> 8) as u8;
                model[2 * i + 1] = id[27 + i] as u8;
            }
            let disk: &'static AtaDisk = bh_safe_alloc(|| {
                Box::leak(Box::new(AtaDisk {
                    info: DeviceInfo {
                        name: crate::name("ata", format_args!("{ch}.{drive}")),
                        model: crate::ascii(&model),
                        sectors,
                        queue_depth: 1,
                        max_segments: MAX_SEGMENTS,
                        max_sectors: if lba48 { MAX_SECTORS } else { 256 },
                        // ATA disks may cache writes; FLUSH CACHE is
                        // mandatory for ATA-6 and later.
                        flush: true,
                    },
                    queue,
                    drive,
                    lba48,
                }))
            });
            crate::dlog!(
                Info,
                "ata{ch}.{drive}: \"{}\", {} sectors, {}, {}",
                disk.info.model,
                sectors,
                if lba48 { "LBA48" } else { "LBA28" },
                if ports.bm != 0 {
                    "bus-master DMA"
                } else {
                    "PIO only"
                }
            );
            disks.push(disk);
        }
        let target: &'static ChannelIrq =
            bh_safe_alloc(|| Box::leak(Box::new(ChannelIrq { ports, queue })));
        let arg = target as *const ChannelIrq as usize;
        match e.route_isa(
            irq,
            IrqHandler {
                func: interrupt,
                arg,
            },
        ) {
            Some(_) => wb(ctrl, 0), // interrupts on
            None => crate::dlog!(Error, "ata{ch}: cannot route irq {irq}"),
        }
    }
    disks
}

fn interrupt(arg: usize) {
    // SAFETY: `arg` is a leaked, never-freed `ChannelIrq`.
    let c = unsafe { &*(arg as *const ChannelIrq) };
    let p = c.ports;
    // Reading the status register acknowledges the drive's interrupt.
    let status = rb(p.base + REG_STATUS);
    if p.bm != 0 {
        let bs = rb(p.bm + BM_STATUS);
        if bs & BM_ST_IRQ != 0 {
            wb(p.bm + BM_STATUS, BM_ST_IRQ);
        }
    }
    p.irq_status.store(status, Ordering::Release);
    p.irq_seen.store(true, Ordering::Release);
    c.queue.interrupt();
}

/// The sector range of a PIO transfer's `n`th sector: (segment, offset).
fn pio_locate(r: &Request, n: u64) -> (usize, usize) {
    let mut byte = n * 512;
    for (i, s) in r.segments.iter().enumerate() {
        if byte < u64::from(s.len) {
            return (i, byte as usize);
        }
        byte -= u64::from(s.len);
    }
    unreachable!("PIO sector past the request")
}

impl Ports {
    /// Moves one sector of PIO data (the data port, DRQ set).
    fn pio_sector(&self, r: &Request, n: u64, write: bool) {
        let (seg, off) = pio_locate(r, n);
        let p = (env().phys_to_virt(r.segments[seg].phys) as usize + off) as *mut u16;
        for i in 0..256 {
            // SAFETY: `p` is inside the request's segment (512 bytes from a
            // sector boundary of a segment whose length is a multiple of
            // 512), memory the submitter lent to the request; the data port
            // belongs to this channel.
            unsafe {
                if write {
                    outw(self.base + REG_DATA, p.add(i).read_volatile());
                } else {
                    p.add(i).write_volatile(inw(self.base + REG_DATA));
                }
            }
        }
    }

    /// Selects the drive and writes the task file.
    fn task_file(&self, drive: u8, lba48: bool, lba: u64, count: u64) {
        if lba48 {
            wb(self.base + REG_DRIVE, 0x40 | (drive << 4));
            wb(self.base + REG_COUNT, (count >> 8) as u8);
            wb(self.base + REG_LBA0, (lba >> 24) as u8);
            wb(self.base + REG_LBA1, (lba >> 32) as u8);
            wb(self.base + REG_LBA2, (lba >> 40) as u8);
        } else {
            wb(
                self.base + REG_DRIVE,
                0xe0 | (drive << 4) | ((lba >> 24) as u8 & 0x0f),
            );
        }
        wb(self.base + REG_COUNT, count as u8);
        wb(self.base + REG_LBA0, lba as u8);
        wb(self.base + REG_LBA1, (lba >> 8) as u8);
        wb(self.base + REG_LBA2, (lba >> 16) as u8);
    }
}

impl Channel {
    /// Advances the command in flight after an interrupt with `status`:
    /// the status it ended with, if it ended.
    fn progress(&mut self, status: u8) -> Option<(Request, Status)> {
        let p = self.ports;
        let mut a = self.active.take()?; // none: spurious
        let failed = status & (ST_ERR | ST_DF) != 0;
        let result = match a.pio_done {
            None => {
                let mut bm_err = false;
                if p.bm != 0 && a.request.op != Op::Flush {
                    wb(p.bm + BM_COMMAND, 0);
                    bm_err = rb(p.bm + BM_STATUS) & BM_ST_ERR != 0;
                    wb(p.bm + BM_STATUS, BM_ST_ERR | BM_ST_IRQ);
                }
                Some(if failed || bm_err {
                    Status::IoError
                } else {
                    Status::Ok
                })
            }
            Some(_) if failed => Some(Status::IoError),
            Some(n) if !a.write => {
                // A sector is ready to read.
                p.pio_sector(&a.request, n, false);
                let n = n + 1;
                a.pio_done = Some(n);
                (n == a.request.sectors).then_some(Status::Ok)
            }
            Some(n) => {
                // The drive took sector `n - 1`; send the next or finish.
                if n == a.request.sectors {
                    Some(Status::Ok)
                } else if p.wait_drq(100_000).is_ok() {
                    p.pio_sector(&a.request, n, true);
                    a.pio_done = Some(n + 1);
                    None
                } else {
                    Some(Status::IoError)
                }
            }
        };
        match result {
            Some(st) => {
                if st != Status::Ok {
                    let err = rb(p.base + REG_ERROR);
                    crate::dlog!(
                        Warn,
                        "ata{}: {:?} of sector {} failed: status {status:#04x} error {err:#04x}",
                        p.index,
                        a.request.op,
                        a.request.sector
                    );
                }
                Some((a.request, st))
            }
            None => {
                self.active = Some(a);
                None
            }
        }
    }

    /// Fills the PRD table for `r`; false if it cannot be described.
    fn fill_prdt(&mut self, r: &Request) -> bool {
        let mut n = 0;
        for s in &r.segments {
            let (mut phys, mut left) = (s.phys, u64::from(s.len));
            while left > 0 {
                // An entry may not cross a 64 KiB boundary.
                let chunk = left.min(0x1_0000 - (phys & 0xffff));
                if phys + chunk > 0x1_0000_0000 || n == PRD_ENTRIES {
                    return false;
                }
                let e: *mut u32 = self.prdt.ptr(n * 8);
                // SAFETY: entry `n` of the channel's PRD table page.
                unsafe {
                    e.write_volatile(phys as u32);
                    e.add(1).write_volatile((chunk & 0xffff) as u32);
                }
                n += 1;
                phys += chunk;
                left -= chunk;
            }
        }
        if n == 0 {
            return false;
        }
        let last: *mut u32 = self.prdt.ptr((n - 1) * 8 + 4);
        // SAFETY: the last entry written above: set end-of-table.
        unsafe { last.write_volatile(last.read_volatile() | 0x8000_0000) };
        true
    }

    /// Starts `r` on the idle channel; gives it back if the drive does not
    /// become ready.
    fn start(&mut self, d: &Drive, r: Request) -> Result<Active, Request> {
        let p = self.ports;
        let (drive, lba48) = (d.drive, d.lba48);
        if !p.wait_not_busy(100_000) {
            return Err(r);
        }
        p.irq_seen.store(false, Ordering::Release);
        let ext = lba48
            && (FORCE_LBA48.load(Ordering::Relaxed)
                || r.sector + r.sectors > (1 << 28)
                || r.sectors > 256);
        if r.op == Op::Flush {
            wb(p.base + REG_DRIVE, 0xa0 | (drive << 4));
            p.delay400();
            wb(
                p.base + REG_COMMAND,
                if lba48 { CMD_FLUSH_EXT } else { CMD_FLUSH },
            );
            return Ok(Active {
                request: r,
                pio_done: None,
                write: false,
            });
        }
        let write = r.op == Op::Write;
        let count = if r.sectors == 256 && !ext {
            0
        } else {
            r.sectors
        };
        let dma = p.bm != 0 && !FORCE_PIO.load(Ordering::Relaxed) && self.fill_prdt(&r);
        p.task_file(drive, ext, r.sector, count);
        if dma {
            wb(p.bm + BM_COMMAND, 0);
            wb(p.bm + BM_STATUS, BM_ST_ERR | BM_ST_IRQ);
            // SAFETY: the channel's PRD table register; the table is below
            // 4 GiB (DMA memory on a machine whose RAM is).
            unsafe { outl(p.bm + BM_PRDT, self.prdt.phys as u32) };
            wb(p.bm + BM_COMMAND, if write { 0 } else { BM_READ });
            let cmd = match (write, ext) {
                (false, false) => CMD_READ_DMA,
                (false, true) => CMD_READ_DMA_EXT,
                (true, false) => CMD_WRITE_DMA,
                (true, true) => CMD_WRITE_DMA_EXT,
            };
            wb(p.base + REG_COMMAND, cmd);
            wb(
                p.bm + BM_COMMAND,
                (if write { 0 } else { BM_READ }) | BM_START,
            );
            return Ok(Active {
                request: r,
                pio_done: None,
                write,
            });
        }
        let cmd = match (write, ext) {
            (false, false) => CMD_READ_PIO,
            (false, true) => CMD_READ_PIO_EXT,
            (true, false) => CMD_WRITE_PIO,
            (true, true) => CMD_WRITE_PIO_EXT,
        };
        wb(p.base + REG_COMMAND, cmd);
        if write {
            // The first sector goes without an interrupt.
            if p.wait_drq(100_000).is_err() {
                return Err(r);
            }
            p.pio_sector(&r, 0, true);
        }
        Ok(Active {
            request: r,
            pio_done: Some(if write { 1 } else { 0 }),
            write,
        })
    }
}

impl Hardware for Channel {
    type Tag = Drive;

    /// One command at a time per channel: busy while one runs.
    fn issue(&mut self, r: Request, d: Drive) -> Issue<Drive> {
        if self.active.is_some() {
            return Issue::Busy(r, d);
        }
        match self.start(&d, r) {
            Ok(a) => {
                self.active = Some(a);
                Issue::Started
            }
            Err(r) => Issue::Finished(r, Status::IoError),
        }
    }

    /// Commands start as they are issued: nothing to ring.
    fn doorbell(&mut self) {}

    fn harvest(&mut self, out: &mut Harvest<'_, Drive>) {
        let p = self.ports;
        if p.irq_seen.swap(false, Ordering::AcqRel) {
            let status = p.irq_status.load(Ordering::Acquire);
            if let Some((r, st)) = self.progress(status) {
                out.finish(r, st);
            }
        }
    }
}

impl BlockDevice for AtaDisk {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, r: Request) {
        let d = Drive {
            drive: self.drive,
            lba48: self.lba48,
        };
        self.queue.submit(r, d, &self.info);
    }
}
