//! What the virtio drivers share, on the `virtio-drivers` crate's modern
//! PCI transport (`PciTransport`) and its low-level `VirtQueue`:
//!
//! | item | owns |
//! |---|---|
//! | [`EnvHal`] | the crate's HAL over [`crate::env::DriverEnv`] (DMA, MMIO, physical addresses) |
//! | [`open`] | finding the function's structures, feature negotiation up to FEATURES_OK; [`Notifier`]: a virtqueue's doorbell |
//! | [`Interrupts`] | MSI-X (one entry per virtqueue) or the INTx line and its ISR byte |
//! | [`CommandRing`] | a virtqueue of commands: per-slot header and response in DMA memory, scatter-gather data, the request of each slot |
//!
//! | module | device |
//! |---|---|
//! | [`blk`] | virtio-blk |
//! | [`scsi`] | virtio-scsi |
//! | [`net`] | virtio-net (two buffer rings of its own, no `CommandRing`) |
//!
//! **Why not the crate's device drivers.** `VirtIOBlk` (0.13) fixes its
//! queue at 16 entries, takes one virtual buffer per request (no
//! scatter-gather) and flushes by spinning for its own token; the crate
//! has no virtio-scsi driver. So the drivers build their own command
//! headers and add `[header, data..., response]` chains to the `VirtQueue`
//! directly: one indirect descriptor per command when the device offers
//! `RING_INDIRECT_DESC`. `RING_EVENT_IDX` is not negotiated: the crate's
//! `should_notify` compares the 16-bit indices without wrap-around.
//!
//! **Contexts.** `open` and the interrupt set-up: probe (boot or
//! kernel-lock). [`CommandRing`]: under its owner's lock (kernel-lock or
//! bh). [`Interrupts::ours`]: irq.
//!
//! **Locks.** None of its own; each device's queue lock covers its rings.

pub mod blk;
pub mod net;
pub mod scsi;

use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::{DriverQueue, Hardware, Issue};
use alloc::string::String;
use alloc::vec::Vec;
use cairn_block::{Op, Request, Segment, Status};
use cairn_pc::pci::{PciAddress, PciFunction};
use cairn_sync::cpu::bh_safe_alloc;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

pub const VENDOR: u16 = 0x1af4;

/// Descriptors in a command ring (one per command with indirect
/// descriptors).
pub const RING: usize = 128;
/// Most data segments one command carries.
pub const MAX_SEGMENTS: usize = 64;

/// Feature bits every virtio driver here wants.
pub const F_RING_INDIRECT_DESC: u64 = 1 << 28;
pub const F_VERSION_1: u64 = 1 << 32;

/// virtio PCI capability config types.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
/// Offsets in the common configuration structure.
const COMMON_MSIX_CONFIG: u64 = 16;
const COMMON_QUEUE_SELECT: u64 = 22;
const COMMON_QUEUE_MSIX_VECTOR: u64 = 26;
const COMMON_QUEUE_NOTIFY_OFF: u64 = 30;
const NO_VECTOR: u16 = 0xffff;

/// The `virtio-drivers` HAL over [`crate::env::DriverEnv`].
pub struct EnvHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, physically contiguous
// memory owned by the caller until `dma_dealloc`; `mmio_phys_to_virt` maps
// the device range uncached at an address nothing else owns as memory;
// `share` returns the physical address of memory that stays where it is
// (no bounce buffers: the device sees the caller's memory).
unsafe impl Hal for EnvHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match env().dma_alloc(pages * 4096) {
            Some(r) => (r.phys, NonNull::new(r.virt as *mut u8).expect("null DMA")),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        env().dma_free(DmaRegion {
            phys: paddr,
            virt: vaddr.as_ptr() as u64,
            bytes: pages * 4096,
        });
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        NonNull::new(env().map_mmio(paddr, size as u64) as *mut u8).expect("null MMIO mapping")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let virt = buffer.as_ptr() as *mut u8 as u64;
        env()
            .virt_to_phys(virt)
            .expect("virtio: buffer without a physical address")
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Configuration space access through the kernel's serialised accessors.
#[derive(Copy, Clone)]
struct EnvConfig;

impl ConfigurationAccess for EnvConfig {
    fn read_word(&self, f: DeviceFunction, offset: u8) -> u32 {
        env().pci_read32(pci_address(f), offset)
    }
    fn write_word(&mut self, f: DeviceFunction, offset: u8, data: u32) {
        env().pci_write32(pci_address(f), offset, data)
    }
    unsafe fn unsafe_clone(&self) -> Self {
        EnvConfig
    }
}

fn pci_address(f: DeviceFunction) -> PciAddress {
    PciAddress {
        bus: f.bus,
        device: f.device,
        function: f.function,
    }
}

/// A virtio vendor capability: (bar, offset, length), and where the
/// capability itself is in configuration space.
fn virtio_cap(a: PciAddress, cfg_type: u8) -> Option<((u8, u32, u32), u8)> {
    let e = env();
    if (e.pci_read32(a, 4) >> 16) & (1 << 4) == 0 {
        return None;
    }
    let mut next = (e.pci_read32(a, 0x34) & 0xfc) as u8;
    let mut budget = 48;
    while next != 0 && budget > 0 {
        budget -= 1;
        let head = e.pci_read32(a, next);
        if head & 0xff == 0x09 && (head >> 24) as u8 == cfg_type {
            let bar = e.pci_read32(a, next + 4) as u8;
            let off = e.pci_read32(a, next + 8);
            let len = e.pci_read32(a, next + 12);
            return Some(((bar, off, len), next));
        }
        next = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// Maps a virtio structure (bar, offset, length): its virtual address.
fn map_cap(a: PciAddress, cap: (u8, u32, u32)) -> Option<u64> {
    let phys = crate::pci::memory_bar(a, cap.0)? + u64::from(cap.1);
    Some(env().map_mmio(phys, u64::from(cap.2.max(1))))
}

/// An opened virtio PCI function, features negotiated (FEATURES_OK set,
/// DRIVER_OK not yet).
pub struct Opened {
    pub transport: PciTransport,
    /// Features both sides have.
    pub features: u64,
    pub regs: Regs,
}

/// The structures interrupt set-up and notification need, mapped.
#[derive(Copy, Clone)]
pub struct Regs {
    /// The common configuration structure.
    common: u64,
    /// The ISR status byte.
    isr: u64,
    /// The notification area and its length.
    notify: u64,
    notify_len: u64,
    /// `notify_off_multiplier`.
    multiplier: u32,
}

impl Regs {
    /// The doorbell of virtqueue `queue` (probe: selects the queue in the
    /// common configuration, before DRIVER_OK).
    pub fn notifier(&self, queue: u16) -> Result<Notifier, &'static str> {
        // SAFETY: `common` maps the common configuration structure; the
        // device is not live yet and nothing else selects a queue.
        let off = unsafe {
            ((self.common + COMMON_QUEUE_SELECT) as *mut u16).write_volatile(queue);
            ((self.common + COMMON_QUEUE_NOTIFY_OFF) as *const u16).read_volatile()
        };
        let at = u64::from(off) * u64::from(self.multiplier);
        if at + 2 > self.notify_len {
            return Err("queue notify address outside the notify structure");
        }
        Ok(Notifier {
            addr: self.notify + at,
            queue,
        })
    }
}

/// Where to write a virtqueue's index to notify the device of new
/// buffers: one MMIO write, from any context that owns the queue.
#[derive(Copy, Clone)]
pub struct Notifier {
    addr: u64,
    queue: u16,
}

impl Notifier {
    pub fn notify(&self) {
        // SAFETY: `addr` is this queue's notify address inside the mapped
        // notification structure (checked at set-up).
        unsafe { (self.addr as *mut u16).write_volatile(self.queue) }
    }
}

/// Opens `f`: bus mastering on, the transport, features `wanted`
/// negotiated.
pub fn open(f: &PciFunction, wanted: u64) -> Result<Opened, &'static str> {
    let a = f.address;
    env().pci_exclusive(&mut || cairn_pc::pci::enable_bus_master(a));
    let mut root = PciRoot::new(EnvConfig);
    let df = DeviceFunction {
        bus: a.bus,
        device: a.device,
        function: a.function,
    };
    let mut transport =
        PciTransport::new::<EnvHal, _>(&mut root, df).map_err(|_| "not a modern virtio device")?;
    let features = transport
        .begin_init(Features::from_bits_retain(wanted))
        .bits();
    let common =
        map_cap(a, virtio_cap(a, CAP_COMMON).ok_or("no common cfg")?.0).ok_or("common cfg BAR")?;
    let isr = map_cap(a, virtio_cap(a, CAP_ISR).ok_or("no ISR cfg")?.0).ok_or("ISR BAR")?;
    let (notify_cap, at) = virtio_cap(a, CAP_NOTIFY).ok_or("no notify cfg")?;
    let notify = map_cap(a, notify_cap).ok_or("notify cfg BAR")?;
    let multiplier = env().pci_read32(a, at + 16);
    Ok(Opened {
        transport,
        features,
        regs: Regs {
            common,
            isr,
            notify,
            notify_len: u64::from(notify_cap.2),
            multiplier,
        },
    })
}

bitflags::bitflags! {
    /// Feature bits as the crate's `begin_init` wants them.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const _ = !0;
    }
}

/// How a device interrupts: MSI-X (no acknowledgement needed) or INTx
/// (reading the ISR byte acknowledges and de-asserts the line). Routed at
/// probe, then made live: until then interrupts are acknowledged but not
/// handed to the queues (a probe may poll its queues meanwhile). Read in
/// irq context.
pub struct Interrupts {
    /// ISR byte address with INTx; 0 with MSI-X; `u64::MAX` before set-up.
    isr: AtomicU64,
    live: AtomicBool,
}

impl Interrupts {
    pub const fn new() -> Interrupts {
        Interrupts {
            isr: AtomicU64::new(u64::MAX),
            live: AtomicBool::new(false),
        }
    }

    /// A new, not yet routed, instance for the rest of the run.
    pub fn leak() -> &'static Interrupts {
        bh_safe_alloc(|| alloc::boxed::Box::leak(alloc::boxed::Box::new(Interrupts::new())))
    }

    /// Whether an interrupt is this device's and live (irq context): with
    /// INTx, reading the ISR byte acknowledges it and says whether it was
    /// the device's.
    pub fn ours(&self) -> bool {
        let mine = match self.isr.load(Ordering::Acquire) {
            0 => true,
            u64::MAX => false, // before set-up finished
            isr => {
                // SAFETY: `isr` maps the device's ISR status byte.
                unsafe { (isr as *const u8).read_volatile() != 0 }
            }
        };
        mine && self.live.load(Ordering::Acquire)
    }

    /// From now on interrupts reach the queues.
    pub fn go_live(&self) {
        self.live.store(true, Ordering::Release);
    }

    /// Routes the device's interrupts: MSI-X entry `i` to virtqueue
    /// `queues[i].0`, running `queues[i].1` on CPU `queues[i].2` (or, for
    /// `None`, the CPU `msi_target` names); or, without MSI-X, the INTx
    /// line running `intx` for all of them. Before DRIVER_OK;
    /// [`Interrupts::go_live`] after. A description for the log.
    pub fn route(
        &self,
        f: &PciFunction,
        o: Regs,
        queues: &[(u16, IrqHandler, Option<usize>)],
        intx: IrqHandler,
    ) -> Result<String, &'static str> {
        let e = env();
        if let Some(msix) = crate::pci::Msix::find(f.address)
            && msix.entries() as usize >= queues.len()
        {
            let mut vectors = Vec::new();
            for (entry, &(queue, h, cpu)) in queues.iter().enumerate() {
                let target = cpu.map_or_else(|| e.msi_target(), |c| e.cpu_apic_id(c));
                let Some(v) = msix.route(entry as u16, h, target) else {
                    break;
                };
                // SAFETY: `common` maps the common configuration structure;
                // the device is not live yet (no DRIVER_OK) and the
                // transport selects no queue meanwhile.
                let taken = unsafe {
                    ((o.common + COMMON_MSIX_CONFIG) as *mut u16).write_volatile(NO_VECTOR);
                    ((o.common + COMMON_QUEUE_SELECT) as *mut u16).write_volatile(queue);
                    ((o.common + COMMON_QUEUE_MSIX_VECTOR) as *mut u16)
                        .write_volatile(entry as u16);
                    ((o.common + COMMON_QUEUE_MSIX_VECTOR) as *const u16).read_volatile()
                        == entry as u16
                };
                if !taken {
                    break;
                }
                vectors.push(v);
            }
            if vectors.len() == queues.len() {
                msix.enable();
                self.isr.store(0, Ordering::Release);
                return Ok(crate::name("MSI-X vectors ", format_args!("{vectors:x?}")));
            }
        }
        let v = e
            .route_pci_intx(f.interrupt_line, intx)
            .ok_or("cannot route INTx")?;
        self.isr.store(o.isr, Ordering::Release);
        Ok(crate::name(
            "INTx irq ",
            format_args!("{} vector {v:#x}", f.interrupt_line),
        ))
    }
}

impl Default for Interrupts {
    fn default() -> Self {
        Self::new()
    }
}

/// What one virtqueue's interrupt handler reaches: the device's interrupt
/// mode and the queue the virtqueue feeds.
pub struct IrqTarget<H: Hardware> {
    pub irq: &'static Interrupts,
    pub queue: &'static DriverQueue<H>,
}

impl<H: Hardware> IrqTarget<H> {
    /// Leaked for the rest of the run: its address is a handler argument.
    pub fn leak(irq: &'static Interrupts, queue: &'static DriverQueue<H>) -> &'static Self {
        bh_safe_alloc(|| alloc::boxed::Box::leak(alloc::boxed::Box::new(IrqTarget { irq, queue })))
    }

    /// The handler that hands this target's interrupts to its queue.
    pub fn handler(&'static self) -> IrqHandler {
        IrqHandler {
            func: queue_interrupt::<H>,
            arg: self as *const Self as usize,
        }
    }
}

/// A virtqueue's interrupt (irq context): hands over to its queue if the
/// interrupt is the device's.
fn queue_interrupt<H: Hardware>(arg: usize) {
    // SAFETY: `arg` is a leaked `IrqTarget<H>` (`IrqTarget::handler`).
    let t: &'static IrqTarget<H> = unsafe { &*(arg as *const IrqTarget<H>) };
    if t.irq.ours() {
        t.queue.interrupt();
    }
}

/// Leaves the device running for the rest of the run: dropping the
/// transport would reset it.
pub fn keep(transport: PciTransport) {
    core::mem::forget(transport);
}

/// Where a command's response goes in its chain.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum ResponseAt {
    /// After the data (virtio-blk's status byte).
    End,
    /// Before the data (virtio-scsi's response).
    Start,
}

/// The layout of a ring's commands.
#[derive(Copy, Clone)]
struct Layout {
    header: usize,
    response: usize,
    at: ResponseAt,
}

/// The chain of the command whose header and response start at `p`, with
/// `data`, as the slices the virtqueue takes.
fn with_chain<R>(
    p: *mut u8,
    l: Layout,
    data: &[Segment],
    write: bool,
    f: impl for<'a> FnOnce(&'a [&'a [u8]], &'a mut [&'a mut [u8]]) -> R,
) -> R {
    let e = env();
    let empty: &[u8] = &[];
    let mut ins: [&[u8]; MAX_SEGMENTS + 1] = [empty; MAX_SEGMENTS + 1];
    let mut outs: [&mut [u8]; MAX_SEGMENTS + 1] = core::array::from_fn(|_| &mut [][..]);
    // SAFETY: `p` is a slot's header and response bytes of a ring's
    // command memory, which only this slot's command uses while it is in
    // flight; the slices only carry their addresses and lengths to the
    // virtqueue.
    let (hdr, resp) = unsafe {
        (
            core::slice::from_raw_parts(p as *const u8, l.header),
            core::slice::from_raw_parts_mut(p.add(l.header), l.response),
        )
    };
    ins[0] = hdr;
    let (mut ni, mut no) = (1, 0);
    let mut resp = Some(resp);
    if l.at == ResponseAt::Start {
        outs[0] = resp.take().expect("response");
        no = 1;
    }
    for s in data {
        let v = e.phys_to_virt(s.phys) as *mut u8;
        // SAFETY: the segment is memory the submitter lent to the request
        // until it completes; the CPU does not touch it here.
        let buf = unsafe { core::slice::from_raw_parts_mut(v, s.len as usize) };
        if write {
            ins[ni] = buf;
            ni += 1;
        } else {
            outs[no] = buf;
            no += 1;
        }
    }
    if let Some(r) = resp {
        outs[no] = r;
        no += 1;
    }
    f(&ins[..ni], &mut outs[..no])
}

/// One virtqueue of commands. Each slot has `header` device-readable bytes
/// and `response` device-writable bytes in DMA memory; a command's chain
/// is `[header, data out...]` readable and `[data in..., response]` (or
/// `[response, data in...]`) writable.
pub struct CommandRing<T> {
    pub queue: VirtQueue<EnvHal, RING>,
    index: u16,
    notifier: Notifier,
    mem: DmaRegion,
    layout: Layout,
    /// The request (and its tag) in each slot.
    slots: Vec<Option<(Request, T)>>,
    /// Slot of each ring token (head descriptor).
    by_token: Vec<Option<u16>>,
    free: Vec<u16>,
}

const SLOT_ALIGN: usize = 64;

impl<T> CommandRing<T> {
    /// Sets up virtqueue `index` of the device `o` opened, for `depth`
    /// commands.
    pub fn new(
        o: &mut Opened,
        index: u16,
        indirect: bool,
        depth: usize,
        header: usize,
        response: usize,
        at: ResponseAt,
    ) -> Result<CommandRing<T>, &'static str> {
        let queue = bh_safe_alloc(|| VirtQueue::new(&mut o.transport, index, indirect, false))
            .map_err(|_| "virtqueue set-up failed")?;
        let notifier = o.regs.notifier(index)?;
        let slot = (header + response).next_multiple_of(SLOT_ALIGN);
        let mem = env().dma_alloc(depth * slot).ok_or("no DMA memory")?;
        Ok(CommandRing {
            queue,
            index,
            notifier,
            mem,
            layout: Layout {
                header,
                response,
                at,
            },
            slots: bh_safe_alloc(|| (0..depth).map(|_| None).collect()),
            by_token: bh_safe_alloc(|| (0..RING).map(|_| None).collect()),
            free: bh_safe_alloc(|| (0..depth as u16).rev().collect()),
        })
    }

    fn slot_ptr(&self, slot: u16) -> *mut u8 {
        let size = (self.layout.header + self.layout.response).next_multiple_of(SLOT_ALIGN);
        self.mem.ptr(usize::from(slot) * size)
    }

    /// Puts `r` in a free slot, lets `fill` write the slot's header (and
    /// clears the response), and adds its chain. `Busy` when no slot or no
    /// descriptor is free.
    pub fn issue(
        &mut self,
        r: Request,
        tag: T,
        fill: impl FnOnce(&mut [u8], &Request),
    ) -> Issue<T> {
        if r.segments.len() > MAX_SEGMENTS {
            return Issue::Finished(r, Status::Unsupported);
        }
        let Some(slot) = self.free.pop() else {
            return Issue::Busy(r, tag);
        };
        let p = self.slot_ptr(slot);
        let l = self.layout;
        // SAFETY: the free slot's command memory belongs to this call.
        unsafe {
            core::ptr::write_bytes(p, 0, l.header + l.response);
            fill(core::slice::from_raw_parts_mut(p, l.header), &r);
        }
        let write = r.op == Op::Write;
        let queue = &mut self.queue;
        // Indirect lists are boxed here and freed by `pop_used` in bh
        // context: allocate them bh-safe.
        let added = bh_safe_alloc(|| {
            with_chain(p, l, &r.segments, write, |ins, outs| {
                // SAFETY: the buffers stay valid and untouched by the CPU
                // until `pop_used` returns them (the request and its slot
                // are held in `slots` until then).
                unsafe { queue.add(ins, outs) }
            })
        });
        match added {
            Ok(token) => {
                self.by_token[usize::from(token)] = Some(slot);
                self.slots[usize::from(slot)] = Some((r, tag));
                Issue::Started
            }
            Err(virtio_drivers::Error::QueueFull) => {
                self.free.push(slot);
                Issue::Busy(r, tag)
            }
            Err(_) => {
                self.free.push(slot);
                Issue::Finished(r, Status::Unsupported)
            }
        }
    }

    /// Notifies the device if it asked to be.
    pub fn notify(&mut self) {
        if self.queue.should_notify() {
            self.notifier.notify();
        }
    }

    /// Takes the next command the device used: its request, tag, and
    /// `read(response, whether the chain came back whole)`.
    pub fn pop<R>(&mut self, read: impl FnOnce(&[u8], bool) -> R) -> Option<(Request, T, R)> {
        let token = self.queue.peek_used()?;
        let Some(slot) = self.by_token[usize::from(token)].take() else {
            panic!(
                "virtio: used token {token} of queue {} was never issued",
                self.index
            );
        };
        let (r, tag) = self.slots[usize::from(slot)]
            .take()
            .expect("virtio: slot without request");
        let write = r.op == Op::Write;
        let (p, l) = (self.slot_ptr(slot), self.layout);
        let queue = &mut self.queue;
        let popped = bh_safe_alloc(|| {
            with_chain(p, l, &r.segments, write, |ins, outs| {
                // SAFETY: the same buffers `issue` added for this token.
                unsafe { queue.pop_used(token, ins, outs) }
            })
        });
        // SAFETY: the device has returned the chain: the response bytes
        // are ours to read until the slot is reused.
        let resp = unsafe { core::slice::from_raw_parts(p.add(l.header), l.response) };
        let out = read(resp, popped.is_ok());
        self.free.push(slot);
        Some((r, tag, out))
    }

    /// Commands on the device.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}
