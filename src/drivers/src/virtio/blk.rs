//! virtio-blk over modern virtio PCI.
//!
//! **What it owns.** One PCI function: its transport, one request
//! virtqueue per vCPU when the device offers `VIRTIO_BLK_F_MQ` (QEMU's
//! `num-queues`; as many as the device has and no more than the vCPUs,
//! else one), each of [`super::RING`] commands (a [`CommandRing`] whose
//! slots hold the 16-byte `virtio_blk_req` header and the status byte) run
//! by its own [`DriverQueue`], and the interrupts: MSI-X entry `i` for
//! virtqueue `i`, aimed at vCPU `i`, or one INTx line for all as fallback.
//! A request goes to the submitting vCPU's virtqueue, so its completion
//! interrupts that vCPU. Up to [`super::RING`] requests in flight per
//! queue, scatter-gather through one indirect descriptor each, flush
//! non-blocking (a flush on one queue covers writes completed on any).
//!
//! **Contexts.** `probe`: boot. `submit`: kernel-lock or bh (the
//! skeleton's). Interrupt (irq): INTx reads the ISR byte (which de-asserts
//! the line) and hands over to every queue, MSI-X needs nothing and hands
//! over to its queue. The bh service is the skeleton's: used chains are
//! harvested, completed with the lock released, waiting requests issued,
//! the device notified once.
//!
//! **Locks.** `drivers.virtio_blk` (each queue's lock; never two at once):
//! the virtqueue and its slots. Leaf locks below it: heaps (indirect
//! lists, inside `bh_safe_alloc`), the kernel's `pci.config` (probe only).

use super::{CommandRing, F_RING_INDIRECT_DESC, F_VERSION_1, Interrupts, IrqTarget, ResponseAt};
use crate::env::{IrqHandler, env};
use crate::queue::{DriverQueue, Hardware, Harvest, Issue};
use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, DeviceInfo, Op, Request, Status};
use cairn_pc::pci::PciFunction;
use cairn_sync::LockClass;
use cairn_sync::cpu::bh_safe_alloc;
use virtio_drivers::transport::Transport;

/// Requests in flight at once (one ring slot each with indirect
/// descriptors).
pub const DEPTH: usize = super::RING;
/// Most sectors per request (1 MiB).
pub const MAX_SECTORS: u32 = 2048;

const DEVICE_MODERN: u16 = 0x1042;
const DEVICE_TRANSITIONAL: u16 = 0x1001;

const F_SEG_MAX: u64 = 1 << 2;
const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;
const F_MQ: u64 = 1 << 12;

/// Most request virtqueues used (one per vCPU).
pub const MAX_QUEUES: usize = 64;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;

/// Whether `f` is a virtio block device.
pub fn matches(f: &PciFunction) -> bool {
    f.vendor == super::VENDOR && (f.device == DEVICE_MODERN || f.device == DEVICE_TRANSITIONAL)
}

/// The hardware queue: the request virtqueue.
pub struct BlkQueue {
    ring: CommandRing<()>,
}

impl Hardware for BlkQueue {
    type Tag = ();

    fn issue(&mut self, r: Request, _: ()) -> Issue<()> {
        self.ring.issue(r, (), |hdr, r| {
            let kind = match r.op {
                Op::Read => T_IN,
                Op::Write => T_OUT,
                Op::Flush => T_FLUSH,
            };
            let sector = if r.op == Op::Flush { 0 } else { r.sector };
            hdr[0..4].copy_from_slice(&kind.to_le_bytes());
            hdr[8..16].copy_from_slice(&sector.to_le_bytes());
        })
    }

    fn doorbell(&mut self) {
        self.ring.notify();
    }

    fn harvest(&mut self, out: &mut Harvest<'_, ()>) {
        while let Some((r, (), ok)) = self.ring.pop(|status, whole| whole && status[0] == S_OK) {
            out.finish(r, if ok { Status::Ok } else { Status::IoError });
        }
    }
}

pub struct VirtioBlk {
    info: DeviceInfo,
    /// Request queues; vCPU `i` submits to `queues[i % len]`.
    queues: Vec<&'static DriverQueue<BlkQueue>>,
    irq: &'static Interrupts,
}

/// The INTx handler: one line for every queue.
fn intx(arg: usize) {
    // SAFETY: `arg` is a leaked, never-freed `VirtioBlk` (`probe`).
    let d = unsafe { &*(arg as *const VirtioBlk) };
    if d.irq.ours() {
        for q in &d.queues {
            q.interrupt();
        }
    }
}

static CLASS: LockClass = LockClass::new("drivers.virtio_blk");

/// Probes `f`; the device, ready for requests.
pub fn probe(f: &PciFunction, index: usize) -> Result<&'static VirtioBlk, &'static str> {
    let wanted = F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_MQ | F_RING_INDIRECT_DESC | F_VERSION_1;
    let mut o = super::open(f, wanted)?;
    let features = o.features;
    let t = &mut o.transport;
    let cap_lo: u32 = t.read_config_space(0).map_err(|_| "config space")?;
    let cap_hi: u32 = t.read_config_space(4).map_err(|_| "config space")?;
    let capacity = u64::from(cap_lo) | (u64::from(cap_hi) << 32);
    let seg_max: u32 = if features & F_SEG_MAX != 0 {
        t.read_config_space(12).unwrap_or(1)
    } else {
        super::MAX_SEGMENTS as u32
    };
    let blk_size: u32 = if features & F_BLK_SIZE != 0 {
        t.read_config_space(20).unwrap_or(512)
    } else {
        512
    };
    if blk_size != 512 {
        return Err("only 512-byte logical blocks are supported");
    }
    // `num_queues` (virtio_blk_config offset 34) with VIRTIO_BLK_F_MQ.
    let offered: u16 = if features & F_MQ != 0 {
        t.read_config_space(34).unwrap_or(1)
    } else {
        1
    };
    let cpus = env().cpu_count().max(1);
    let n = usize::from(offered).min(cpus).clamp(1, MAX_QUEUES);
    let indirect = features & F_RING_INDIRECT_DESC != 0;
    let mut queues = Vec::new();
    for q in 0..n as u16 {
        let ring = CommandRing::new(&mut o, q, indirect, DEPTH, 16, 1, ResponseAt::End)?;
        queues.push(DriverQueue::leak(&CLASS, BlkQueue { ring }, DEPTH));
    }
    let max_segments = (seg_max.max(1) as usize).min(super::MAX_SEGMENTS) as u32;
    let flush = features & F_FLUSH != 0;
    let irq = Interrupts::leak();
    let dev: &'static VirtioBlk = bh_safe_alloc(|| {
        Box::leak(Box::new(VirtioBlk {
            info: DeviceInfo {
                name: crate::name("virtio-blk", format_args!("{index}")),
                model: crate::name("virtio-blk ", format_args!("{}", f.address)),
                sectors: capacity,
                queue_depth: DEPTH as u32,
                max_segments: if indirect {
                    max_segments
                } else {
                    max_segments.min(8)
                },
                max_sectors: MAX_SECTORS,
                flush,
            },
            queues,
            irq,
        }))
    });
    // Virtqueue `i`'s completions interrupt vCPU `i`, which submits to it.
    let vectors: Vec<(u16, IrqHandler, Option<usize>)> = dev
        .queues
        .iter()
        .enumerate()
        .map(|(i, &q)| (i as u16, IrqTarget::leak(irq, q).handler(), Some(i)))
        .collect();
    let all = IrqHandler {
        func: intx,
        arg: dev as *const VirtioBlk as usize,
    };
    let how = irq.route(f, o.regs, &vectors, all)?;
    o.transport.finish_init();
    super::keep(o.transport);
    irq.go_live();
    crate::dlog!(
        Info,
        "{}: {} sectors ({} MiB), {} queue(s) of depth {} (device offers {offered}), {} segments/request{}{}, {}",
        dev.info.name,
        capacity,
        capacity / 2048,
        n,
        DEPTH,
        dev.info.max_segments,
        if indirect { ", indirect" } else { "" },
        if flush { ", flush" } else { "" },
        how
    );
    Ok(dev)
}

impl BlockDevice for VirtioBlk {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// On the submitting vCPU's queue.
    fn submit(&self, r: Request) {
        let q = self.queues[env().cpu_index() % self.queues.len()];
        q.submit(r, (), &self.info);
    }
}

impl VirtioBlk {
    /// The request queues, one per vCPU (their counters).
    pub fn queues(&self) -> &[&'static DriverQueue<BlkQueue>] {
        &self.queues
    }
}
