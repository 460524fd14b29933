//! virtio-blk over modern virtio PCI.
//!
//! **What it owns.** One PCI function: its transport, one virtqueue of
//! [`super::RING`] commands (a [`CommandRing`] whose slots hold the
//! 16-byte `virtio_blk_req` header and the status byte) run by a
//! [`DriverQueue`], and its interrupt (MSI-X entry 0, or the INTx line as
//! fallback). Up to [`super::RING`] requests in flight, scatter-gather
//! through one indirect descriptor each, flush non-blocking.
//!
//! **Contexts.** `probe`: boot. `submit`: kernel-lock or bh (the
//! skeleton's). Interrupt (irq): INTx reads the ISR byte (which de-asserts
//! the line), MSI-X needs nothing; both hand over to the queue. The bh
//! service is the skeleton's: used chains are harvested, completed with
//! the lock released, waiting requests issued, the device notified once.
//!
//! **Locks.** `drivers.virtio_blk` (the queue's lock): the transport, the
//! virtqueue and its slots. Leaf locks below it: heaps (indirect lists,
//! inside `bh_safe_alloc`), the kernel's `pci.config` (probe only).

use super::{CommandRing, F_RING_INDIRECT_DESC, F_VERSION_1, Interrupts, IrqTarget, ResponseAt};
use crate::queue::{DriverQueue, Hardware, Harvest, Issue};
use alloc::boxed::Box;
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
    queue: &'static DriverQueue<BlkQueue>,
}

static CLASS: LockClass = LockClass::new("drivers.virtio_blk");

/// Probes `f`; the device, ready for requests.
pub fn probe(f: &PciFunction, index: usize) -> Result<&'static VirtioBlk, &'static str> {
    let wanted = F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_RING_INDIRECT_DESC | F_VERSION_1;
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
    let indirect = features & F_RING_INDIRECT_DESC != 0;
    let ring = CommandRing::new(&mut o, 0, indirect, DEPTH, 16, 1, ResponseAt::End)?;
    let max_segments = (seg_max.max(1) as usize).min(super::MAX_SEGMENTS) as u32;
    let flush = features & F_FLUSH != 0;
    let queue = DriverQueue::leak(&CLASS, BlkQueue { ring }, DEPTH);
    let irq = Interrupts::leak();
    let handler = IrqTarget::leak(irq, queue).handler();
    let how = irq.route(f, o.regs, &[(0, handler)], handler)?;
    o.transport.finish_init();
    super::keep(o.transport);
    irq.go_live();
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
            queue,
        }))
    });
    crate::dlog!(
        Info,
        "{}: {} sectors ({} MiB), depth {}, {} segments/request{}{}, {}",
        dev.info.name,
        capacity,
        capacity / 2048,
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

    fn submit(&self, r: Request) {
        self.queue.submit(r, (), &self.info);
    }
}
