//! NVMe over PCI (AWS Nitro's disks; QEMU `-device nvme`): the controller,
//! its admin queue, one I/O queue pair per vCPU with an MSI-X vector each,
//! and its namespaces as block devices.
//!
//! | module | owns |
//! |---|---|
//! | here | controller bring-up, admin commands, namespace discovery, [`Namespace`] |
//! | [`queue`] | a submission/completion queue pair; the I/O queue as the skeleton's hardware |
//! | [`prp`] | cutting a request into PRP-describable commands |
//!
//! **Bring-up** (NVMe 1.4 §7.6.1): disable the controller and wait for
//! CSTS.RDY to clear, set up the admin queue (AQA/ASQ/ACQ), enable with
//! 4 KiB pages and 64/16-byte entries, wait for RDY; Identify Controller
//! (model, serial, MDTS, NN, volatile write cache); Set Features "Number
//! of Queues" for one pair per vCPU; per pair Create I/O Completion Queue
//! (interrupt vector = its MSI-X entry, aimed at that vCPU) and Create I/O
//! Submission Queue; Identify the active namespace list and each namespace
//! (size, LBA format: 512-byte blocks only). Admin commands are polled at
//! probe; after it the admin queue is idle.
//!
//! **I/O.** A request goes to the queue pair of the vCPU submitting it.
//! READ (0x02) / WRITE (0x01) per piece of the request ([`prp`]: page-frame
//! lists are one command, PRP lists in a per-command page), FLUSH (0x00)
//! when the controller has a volatile write cache (otherwise the skeleton
//! completes flushes at once). Status: success `Ok`, LBA Out of Range
//! `OutOfRange`, anything else `IoError` (logged with its type and code).
//!
//! **Contexts.** `probe`: boot or kernel-lock. `submit`: kernel-lock or bh
//! (the skeleton's). Interrupts (irq, MSI-X, no acknowledgement): hand
//! over to their queue. The bh service is the skeleton's.
//!
//! **Locks.** `drivers.nvme` (each I/O queue's lock), never nested: a
//! request takes one queue's. Leaf locks below it (heaps inside
//! `bh_safe_alloc`).

pub mod prp;
pub mod queue;

use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::DriverQueue;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, DeviceInfo, Request};
use cairn_pc::pci::{Bar, PciFunction};
use cairn_sync::LockClass;
use cairn_sync::cpu::bh_safe_alloc;
use queue::{IoQueue, Pair, Sqe};

const CLASS_STORAGE: u8 = 0x01;
const SUBCLASS_NVM: u8 = 0x08;
const PROG_IF_NVME: u8 = 0x02;

// Controller registers.
const REG_CAP: u64 = 0x00;
const REG_VS: u64 = 0x08;
const REG_CC: u64 = 0x14;
const REG_CSTS: u64 = 0x1c;
const REG_AQA: u64 = 0x24;
const REG_ASQ: u64 = 0x28;
const REG_ACQ: u64 = 0x30;
const DOORBELLS: u64 = 0x1000;

const CC_EN: u32 = 1;
/// I/O submission (2^6 = 64 bytes) and completion (2^4 = 16) entry sizes.
const CC_ENTRY_SIZES: u32 = (6 << 16) | (4 << 20);
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 2;

// Admin opcodes.
const ADMIN_CREATE_SQ: u8 = 0x01;
const ADMIN_CREATE_CQ: u8 = 0x05;
const ADMIN_IDENTIFY: u8 = 0x06;
const ADMIN_SET_FEATURES: u8 = 0x09;
const FEATURE_QUEUES: u32 = 0x07;
const CNS_NAMESPACE: u32 = 0x00;
const CNS_CONTROLLER: u32 = 0x01;
const CNS_ACTIVE_NAMESPACES: u32 = 0x02;

const ADMIN_ENTRIES: u16 = 16;
/// Entries of each I/O queue (one fewer commands in flight).
pub const IO_ENTRIES: u16 = 128;
/// Most I/O queue pairs.
pub const MAX_QUEUES: usize = 16;
/// Most namespaces attached per controller.
pub const MAX_NAMESPACES: usize = 16;
/// Most sectors per request (1 MiB; larger than the controller's MDTS
/// is fine: the request is cut into several commands).
pub const MAX_SECTORS: u32 = 2048;
pub const MAX_SEGMENTS: u32 = 128;

static CLASS: LockClass = LockClass::new("drivers.nvme");

/// Whether `f` is an NVMe controller.
pub fn matches(f: &PciFunction) -> bool {
    f.class == CLASS_STORAGE && f.subclass == SUBCLASS_NVM && f.prog_if == PROG_IF_NVME
}

/// The controller's registers.
#[derive(Copy, Clone)]
pub struct Regs {
    base: u64,
    /// Doorbell stride in bytes.
    stride: u64,
}

impl Regs {
    fn read32(&self, off: u64) -> u32 {
        // SAFETY: `base` maps the controller's register BAR; `off` is one
        // of its registers.
        unsafe { ((self.base + off) as *const u32).read_volatile() }
    }
    fn write32(&self, off: u64, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { ((self.base + off) as *mut u32).write_volatile(v) }
    }
    fn read64(&self, off: u64) -> u64 {
        u64::from(self.read32(off)) | (u64::from(self.read32(off + 4)) << 32)
    }
    fn write64(&self, off: u64, v: u64) {
        self.write32(off, v as u32);
        self.write32(off + 4, (v >> 32) as u32);
    }

    /// The submission tail and completion head doorbells of queue `qid`.
    fn doorbells(&self, qid: u16) -> (u64, u64) {
        let sq = self.base + DOORBELLS + 2 * u64::from(qid) * self.stride;
        (sq, sq + self.stride)
    }
}

/// A controller (its queues; its namespaces hold it).
pub struct Controller {
    index: usize,
    queues: Vec<&'static DriverQueue<IoQueue>>,
}

/// One namespace: a block device.
pub struct Namespace {
    info: DeviceInfo,
    ctrl: &'static Controller,
    nsid: u32,
}

/// The admin queue, polled.
struct Admin {
    pair: Pair,
    /// One page for Identify data.
    data: DmaRegion,
    timeout_ns: u64,
}

impl Admin {
    /// Runs `cmd` and waits for it: completion dword 0, or the status
    /// field.
    fn run(&mut self, mut cmd: Sqe) -> Result<u32, String> {
        cmd.cid = 0;
        self.pair.push(&cmd);
        self.pair.ring_sq();
        let e = env();
        let end = e.now_ns() + self.timeout_ns;
        loop {
            if let Some(c) = self.pair.pop() {
                self.pair.ring_cq();
                return if c.status == 0 {
                    Ok(c.dw0)
                } else {
                    Err(crate::name(
                        "admin command ",
                        format_args!("{:#04x}: {}", cmd.opcode, queue::status_text(c.status)),
                    ))
                };
            }
            if e.now_ns() > end {
                return Err(crate::name(
                    "admin command ",
                    format_args!("{:#04x} timed out", cmd.opcode),
                ));
            }
            core::hint::spin_loop();
        }
    }

    fn identify(&mut self, cns: u32, nsid: u32) -> Result<&[u8], String> {
        let mut c = Sqe::new(ADMIN_IDENTIFY);
        c.nsid = nsid;
        c.prp1 = self.data.phys;
        c.cdw10 = cns;
        self.run(c)?;
        // SAFETY: the Identify data page, just written by the controller
        // and read only here, while no other command uses it.
        Ok(unsafe { core::slice::from_raw_parts(self.data.virt as *const u8, 4096) })
    }
}

fn le32(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn le64(d: &[u8], at: usize) -> u64 {
    u64::from(le32(d, at)) | (u64::from(le32(d, at + 4)) << 32)
}

/// Waits until CSTS.RDY is `ready`.
fn wait_ready(r: Regs, ready: bool, timeout_ns: u64) -> Result<(), &'static str> {
    let e = env();
    let end = e.now_ns() + timeout_ns;
    loop {
        let csts = r.read32(REG_CSTS);
        if csts & CSTS_CFS != 0 && ready {
            return Err("controller fatal status");
        }
        if (csts & CSTS_RDY != 0) == ready {
            return Ok(());
        }
        if e.now_ns() > end {
            return Err(if ready {
                "controller did not become ready"
            } else {
                "controller did not stop"
            });
        }
        e.delay_us(10);
    }
}

/// What [`probe`] found.
pub struct Probed {
    pub controller: &'static Controller,
    /// Its namespaces, ready for requests.
    pub disks: Vec<&'static dyn BlockDevice>,
}

/// Probes controller `f` and its namespaces.
pub fn probe(f: &PciFunction, index: usize) -> Result<Probed, String> {
    let e = env();
    let a = f.address;
    e.pci_exclusive(&mut || cairn_pc::pci::enable_bus_master(a));
    let mut bar = None;
    e.pci_exclusive(&mut || bar = cairn_pc::pci::bar(a, 0));
    let Some(Bar::Memory { phys, size, .. }) = bar else {
        return Err("no register BAR".into());
    };
    let base = e.map_mmio(phys, size.min(1 << 16));
    let probe = Regs { base, stride: 4 };
    let cap = probe.read64(REG_CAP);
    let regs = Regs {
        base,
        stride: 4 << ((cap >> 32) & 0xf),
    };
    let mqes = (cap & 0xffff) as u16 + 1;
    let timeout_ns = ((cap >> 24) & 0xff).max(1) * 500_000_000;
    let mps_min = (cap >> 48) & 0xf;
    if mps_min != 0 {
        return Err("controller does not take 4 KiB pages".into());
    }
    if (cap >> 37) & 1 == 0 {
        return Err("controller lacks the NVM command set".into());
    }
    // Reset, then the admin queue.
    if regs.read32(REG_CC) & CC_EN != 0 {
        regs.write32(REG_CC, 0);
    }
    wait_ready(regs, false, timeout_ns)?;
    let admin_pair = Pair::new(regs, 0, ADMIN_ENTRIES)?;
    regs.write32(
        REG_AQA,
        (u32::from(ADMIN_ENTRIES - 1) << 16) | u32::from(ADMIN_ENTRIES - 1),
    );
    regs.write64(REG_ASQ, admin_pair.sq_phys());
    regs.write64(REG_ACQ, admin_pair.cq_phys());
    regs.write32(REG_CC, CC_EN | CC_ENTRY_SIZES);
    wait_ready(regs, true, timeout_ns)?;
    let mut admin = Admin {
        pair: admin_pair,
        data: e.dma_alloc(4096).ok_or("no DMA memory")?,
        timeout_ns,
    };
    let id = admin.identify(CNS_CONTROLLER, 0)?;
    let serial = crate::ascii(&id[4..24]);
    let model = crate::ascii(&id[24..64]);
    let mdts = id[77];
    let namespaces = le32(id, 516);
    let volatile_cache = id[525] & 1 != 0;
    // Largest transfer per command: 2^MDTS pages (0: no limit), capped so
    // that one PRP list page (512 entries) always suffices.
    let max_transfer = if mdts == 0 || mdts >= 9 {
        2 << 20
    } else {
        4096u64 << mdts
    };

    // One I/O queue pair per vCPU, as many as the controller and its
    // MSI-X table allow (entry 0 stays with the idle admin queue).
    let msix = crate::pci::Msix::find(a).ok_or("no MSI-X")?;
    let cpus = e.cpu_count().max(1);
    let want = cpus
        .min(MAX_QUEUES)
        .min(usize::from(msix.entries()).saturating_sub(1))
        .max(1);
    let mut c = queue::Sqe::new(ADMIN_SET_FEATURES);
    c.cdw10 = FEATURE_QUEUES;
    c.cdw11 = ((want as u32 - 1) << 16) | (want as u32 - 1);
    let granted = admin.run(c)?;
    let n = want
        .min((granted & 0xffff) as usize + 1)
        .min((granted >> 16) as usize + 1);
    let entries = IO_ENTRIES.min(mqes);
    // The queues and their vectors first: the controller refuses a
    // completion queue whose vector is not an enabled MSI-X entry.
    let mut queues = Vec::new();
    let mut vectors = Vec::new();
    let mut pairs = Vec::new();
    for qid in 1..=n as u16 {
        let pair = Pair::new(regs, qid, entries)?;
        pairs.push((qid, pair.sq_phys(), pair.cq_phys()));
        let name = crate::name("nvme", format_args!("{index}q{qid}"));
        let q = DriverQueue::leak(
            &CLASS,
            IoQueue::new(pair, name, max_transfer)?,
            usize::from(entries),
        );
        // Completions of the queue used by vCPU `qid - 1` interrupt it.
        let cpu = usize::from(qid - 1) % cpus;
        let h = IrqHandler {
            func: io_interrupt,
            arg: q as *const DriverQueue<IoQueue> as usize,
        };
        let v = msix
            .route(qid, h, e.cpu_apic_id(cpu))
            .ok_or("no interrupt vector")?;
        vectors.push((v, cpu));
        queues.push(q);
    }
    msix.enable();
    for (qid, sq, cq) in pairs {
        let mut c = Sqe::new(ADMIN_CREATE_CQ);
        c.prp1 = cq;
        c.cdw10 = (u32::from(entries - 1) << 16) | u32::from(qid);
        c.cdw11 = (u32::from(qid) << 16) | 0b11; // vector = qid, IEN, PC
        admin.run(c)?;
        let mut c = Sqe::new(ADMIN_CREATE_SQ);
        c.prp1 = sq;
        c.cdw10 = (u32::from(entries - 1) << 16) | u32::from(qid);
        c.cdw11 = (u32::from(qid) << 16) | 1; // completion queue, PC
        admin.run(c)?;
    }
    let ctrl: &'static Controller =
        bh_safe_alloc(|| Box::leak(Box::new(Controller { index, queues })));

    // Namespaces.
    let list: Vec<u32> = {
        let d = admin.identify(CNS_ACTIVE_NAMESPACES, 0)?;
        (0..1024)
            .map(|i| le32(d, 4 * i))
            .take_while(|&id| id != 0)
            .take(MAX_NAMESPACES)
            .collect()
    };
    let mut disks: Vec<&'static dyn BlockDevice> = Vec::new();
    for nsid in list {
        let d = admin.identify(CNS_NAMESPACE, nsid)?;
        let blocks = le64(d, 0);
        let format = usize::from(d[26] & 0xf);
        let lbads = d[128 + 4 * format + 2];
        let meta = u16::from_le_bytes([d[128 + 4 * format], d[128 + 4 * format + 1]]);
        if lbads != 9 || meta != 0 {
            crate::dlog!(
                Warn,
                "nvme{index}n{nsid}: {}-byte blocks with {meta} metadata bytes: not supported",
                1u64 << lbads
            );
            continue;
        }
        let ns: &'static Namespace = bh_safe_alloc(|| {
            Box::leak(Box::new(Namespace {
                info: DeviceInfo {
                    name: crate::name("nvme", format_args!("{index}n{nsid}")),
                    model: crate::name(&model, format_args!(" ({serial})")),
                    sectors: blocks,
                    queue_depth: (u32::from(entries) - 1) * n as u32,
                    max_segments: MAX_SEGMENTS,
                    max_sectors: MAX_SECTORS,
                    flush: volatile_cache,
                },
                ctrl,
                nsid,
            }))
        });
        crate::dlog!(
            Info,
            "{}: \"{}\", {} sectors ({} MiB)",
            ns.info.name,
            ns.info.model,
            blocks,
            blocks / 2048
        );
        disks.push(ns);
    }
    e.dma_free(admin.data);
    let vs = regs.read32(REG_VS);
    crate::dlog!(
        Info,
        "nvme{index}: NVMe {}.{}, {namespaces} namespace(s), {} attached, {n} I/O queue pair(s) of {entries} (vector, vCPU) {vectors:x?}, max transfer {} KiB{}",
        vs >> 16,
        (vs >> 8) & 0xff,
        disks.len(),
        max_transfer >> 10,
        if volatile_cache {
            ", volatile write cache"
        } else {
            ""
        }
    );
    Ok(Probed {
        controller: ctrl,
        disks,
    })
}

/// An I/O completion queue's MSI-X handler.
fn io_interrupt(arg: usize) {
    // SAFETY: `arg` is a leaked `DriverQueue<IoQueue>` (set in `probe`).
    let q: &'static DriverQueue<IoQueue> = unsafe { &*(arg as *const DriverQueue<IoQueue>) };
    q.interrupt();
}

impl Controller {
    /// The I/O queues, one per vCPU (their counters).
    pub fn queues(&self) -> &[&'static DriverQueue<IoQueue>] {
        &self.queues
    }

    pub fn index(&self) -> usize {
        self.index
    }
}

impl Namespace {
    pub fn controller(&self) -> &'static Controller {
        self.ctrl
    }
}

impl BlockDevice for Namespace {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// On the submitting vCPU's queue pair.
    fn submit(&self, r: Request) {
        let qs = &self.ctrl.queues;
        let q = qs[env().cpu_index() % qs.len()];
        q.submit(r, self.nsid, &self.info);
    }
}
