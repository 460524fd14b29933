//! virtio-blk over modern virtio PCI, on the `virtio-drivers` crate.
//!
//! **What it owns.** One PCI function: its transport (`PciTransport`), one
//! virtqueue of [`RING`] descriptors driven through the crate's low-level
//! `VirtQueue` API, a DMA page of per-command headers and status bytes, the
//! driver queue of requests waiting for a free command slot, and its
//! interrupt (MSI-X entry 0, or the INTx line as fallback).
//!
//! **Why not `VirtIOBlk`.** The crate's `VirtIOBlk` (0.13) fixes its queue
//! at 16 entries, takes one virtual buffer per request (a scatter-gather
//! request would need a bounce copy or one virtio request per segment), and
//! offers flush only as a blocking call that spins for its own token, which
//! breaks with other requests in flight. So the driver builds its own
//! `virtio_blk_req` headers and adds `[header, segments..., status]` chains
//! to the `VirtQueue` directly: real scatter-gather (one indirect
//! descriptor per request when the device offers `RING_INDIRECT_DESC`),
//! non-blocking flush, [`DEPTH`] requests in flight. `RING_EVENT_IDX` is
//! not negotiated: the crate's `should_notify` compares the 16-bit indices
//! without wrap-around.
//!
//! **Contexts.** `probe`: boot. `submit`: kernel-lock or bh. Interrupt
//! (irq): INTx reads the ISR status byte (which de-asserts the line);
//! MSI-X needs no acknowledgement; both then request the bh service. The
//! service (bh) pops used chains, completes their requests with the lock
//! released, then issues waiting requests and notifies the device once.
//!
//! **Locks.** `drivers.virtio_blk` (IrqSpinLock): the transport, the
//! virtqueue, the slots and both queues. Never taken in irq context, never
//! held while a completion runs. Leaf locks below it: heaps (indirect
//! lists, queue growth, inside `bh_safe_alloc`), the kernel's `pci.config`
//! (probe only).

use crate::env::{DmaRegion, IrqHandler, env};
use crate::{BhService, Stats};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bitflags::bitflags;
use cairn_block::{BlockDevice, DeviceInfo, Op, Request, Status};
use cairn_pc::pci::{Bar, PciAddress, PciFunction};
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Descriptors in the ring.
pub const RING: usize = 128;
/// Requests in flight at once (one ring slot each with indirect
/// descriptors).
pub const DEPTH: usize = RING;
/// Most segments per request.
pub const MAX_SEGMENTS: usize = 64;
/// Most sectors per request (1 MiB).
pub const MAX_SECTORS: u32 = 2048;
/// Bytes of command memory per slot: the 16-byte header, then the status.
const SLOT_BYTES: usize = 32;

const VIRTIO_VENDOR: u16 = 0x1af4;
const VIRTIO_BLK_MODERN: u16 = 0x1042;
const VIRTIO_BLK_TRANSITIONAL: u16 = 0x1001;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;

/// virtio PCI capability config types.
const CAP_COMMON: u8 = 1;
const CAP_ISR: u8 = 3;
/// Offsets in the common configuration structure.
const COMMON_MSIX_CONFIG: u64 = 16;
const COMMON_QUEUE_SELECT: u64 = 22;
const COMMON_QUEUE_MSIX_VECTOR: u64 = 26;
const NO_VECTOR: u16 = 0xffff;

bitflags! {
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const SEG_MAX = 1 << 2;
        const RO = 1 << 5;
        const BLK_SIZE = 1 << 6;
        const FLUSH = 1 << 9;
        const RING_INDIRECT_DESC = 1 << 28;
        const VERSION_1 = 1 << 32;
    }
}

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

/// Whether `f` is a virtio block device.
pub fn matches(f: &PciFunction) -> bool {
    f.vendor == VIRTIO_VENDOR
        && (f.device == VIRTIO_BLK_MODERN || f.device == VIRTIO_BLK_TRANSITIONAL)
}

struct Inner {
    transport: PciTransport,
    queue: VirtQueue<EnvHal, RING>,
    /// Headers and status bytes, [`SLOT_BYTES`] per slot.
    cmd_mem: DmaRegion,
    /// The request in each slot.
    slots: Vec<Option<Request>>,
    /// Slot of each ring token (head descriptor).
    by_token: Vec<Option<u16>>,
    free: Vec<u16>,
    waiting: VecDeque<Request>,
    done: VecDeque<(Request, Status)>,
    flush: bool,
}

pub struct VirtioBlk {
    info: DeviceInfo,
    inner: IrqSpinLock<Inner>,
    service: BhService,
    /// ISR status byte (INTx), 0 with MSI-X. Set once at probe.
    isr: AtomicU64,
    msix: AtomicBool,
    pub stats: Stats,
}

static CLASS: LockClass = LockClass::new("drivers.virtio_blk");

/// A virtio vendor capability: (bar, offset, length).
fn virtio_cap(a: PciAddress, cfg_type: u8) -> Option<(u8, u32, u32)> {
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
            return Some((bar, off, len));
        }
        next = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// Physical address of memory BAR `index`.
pub(crate) fn memory_bar(a: PciAddress, index: u8) -> Option<u64> {
    let mut bar = None;
    env().pci_exclusive(&mut || bar = cairn_pc::pci::bar(a, index));
    match bar {
        Some(Bar::Memory { phys, .. }) if phys != 0 => Some(phys),
        _ => None,
    }
}

/// Maps a virtio structure (bar, offset, length): its virtual address.
fn map_cap(a: PciAddress, cap: (u8, u32, u32)) -> Option<u64> {
    let phys = memory_bar(a, cap.0)? + u64::from(cap.1);
    Some(env().map_mmio(phys, u64::from(cap.2.max(1))))
}

/// Sets up MSI-X entry 0 for `handler`; the vector, or `None`.
pub(crate) fn setup_msix(a: PciAddress, handler: IrqHandler) -> Option<u8> {
    let e = env();
    let mut info = None;
    e.pci_exclusive(&mut || info = cairn_pc::pci::msix_info(a));
    let info = info?;
    let table = memory_bar(a, info.table_bar)? + u64::from(info.table_offset);
    let table_virt = e.map_mmio(table, u64::from(info.table_size) * 16);
    let vector = e.alloc_vector(handler)?;
    let apic = e.msi_target();
    // SAFETY: `table_virt` maps this function's MSI-X table, which has at
    // least one entry.
    unsafe { cairn_pc::pci::msix_set_entry(table_virt, 0, vector, apic) };
    e.pci_exclusive(&mut || cairn_pc::pci::msix_enable(a, &info));
    Some(vector)
}

/// Probes `f`; the device, ready for requests.
pub fn probe(f: &PciFunction, index: usize) -> Result<&'static VirtioBlk, &'static str> {
    let e = env();
    let a = f.address;
    e.pci_exclusive(&mut || cairn_pc::pci::enable_bus_master(a));
    let mut root = PciRoot::new(EnvConfig);
    let df = DeviceFunction {
        bus: a.bus,
        device: a.device,
        function: a.function,
    };
    let mut transport =
        PciTransport::new::<EnvHal, _>(&mut root, df).map_err(|_| "not a modern virtio device")?;
    let wanted = Features::SEG_MAX
        | Features::BLK_SIZE
        | Features::FLUSH
        | Features::RING_INDIRECT_DESC
        | Features::VERSION_1;
    let features = transport.begin_init(wanted);
    let cap_lo: u32 = transport.read_config_space(0).map_err(|_| "config space")?;
    let cap_hi: u32 = transport.read_config_space(4).map_err(|_| "config space")?;
    let capacity = u64::from(cap_lo) | (u64::from(cap_hi) << 32);
    let seg_max: u32 = if features.contains(Features::SEG_MAX) {
        transport.read_config_space(12).unwrap_or(1)
    } else {
        MAX_SEGMENTS as u32
    };
    let blk_size: u32 = if features.contains(Features::BLK_SIZE) {
        transport.read_config_space(20).unwrap_or(512)
    } else {
        512
    };
    if blk_size != 512 {
        return Err("only 512-byte logical blocks are supported");
    }
    let indirect = features.contains(Features::RING_INDIRECT_DESC);
    let queue =
        bh_safe_alloc(|| VirtQueue::<EnvHal, RING>::new(&mut transport, 0, indirect, false))
            .map_err(|_| "virtqueue set-up failed")?;
    let common =
        map_cap(a, virtio_cap(a, CAP_COMMON).ok_or("no common cfg")?).ok_or("common cfg BAR")?;
    let isr = map_cap(a, virtio_cap(a, CAP_ISR).ok_or("no ISR cfg")?).ok_or("ISR BAR")?;
    let cmd_mem = e.dma_alloc(DEPTH * SLOT_BYTES).ok_or("no DMA memory")?;
    // The device lives for the rest of the run: its address is the
    // interrupt handler's and the bh service's argument.
    let max_segments = (seg_max.max(1) as usize).min(MAX_SEGMENTS) as u32;
    let dev: &'static VirtioBlk = bh_safe_alloc(|| {
        Box::leak(Box::new(VirtioBlk {
            info: DeviceInfo {
                name: crate::name("virtio-blk", format_args!("{index}")),
                model: crate::name("virtio-blk ", format_args!("{a}")),
                sectors: capacity,
                queue_depth: DEPTH as u32,
                max_segments: if indirect {
                    max_segments
                } else {
                    max_segments.min(8)
                },
                max_sectors: MAX_SECTORS,
                flush: features.contains(Features::FLUSH),
            },
            inner: IrqSpinLock::new(
                &CLASS,
                Inner {
                    transport,
                    queue,
                    cmd_mem,
                    slots: (0..DEPTH).map(|_| None).collect(),
                    by_token: (0..RING).map(|_| None).collect(),
                    free: (0..DEPTH as u16).rev().collect(),
                    waiting: VecDeque::with_capacity(DEPTH),
                    done: VecDeque::with_capacity(DEPTH),
                    flush: features.contains(Features::FLUSH),
                },
            ),
            service: BhService::new(),
            isr: AtomicU64::new(0),
            msix: AtomicBool::new(false),
            stats: Stats::new(),
        }))
    });
    let arg = dev as *const VirtioBlk as usize;
    let handler = IrqHandler {
        func: interrupt,
        arg,
    };
    // SAFETY: `common` maps the common configuration structure; queue 0 is
    // the only queue and the transport selects nothing else, so writing the
    // selector and the vector registers here cannot race its accesses (the
    // device is not yet live: DRIVER_OK comes below).
    let msix_vector = setup_msix(a, handler).filter(|_| unsafe {
        ((common + COMMON_MSIX_CONFIG) as *mut u16).write_volatile(NO_VECTOR);
        ((common + COMMON_QUEUE_SELECT) as *mut u16).write_volatile(0);
        ((common + COMMON_QUEUE_MSIX_VECTOR) as *mut u16).write_volatile(0);
        ((common + COMMON_QUEUE_MSIX_VECTOR) as *const u16).read_volatile() == 0
    });
    let how = match msix_vector {
        Some(v) => {
            dev.msix.store(true, Ordering::Release);
            crate::name("MSI-X vector ", format_args!("{v:#x}"))
        }
        None => {
            dev.isr.store(isr, Ordering::Release);
            let v = e
                .route_pci_intx(f.interrupt_line, handler)
                .ok_or("cannot route INTx")?;
            crate::name(
                "INTx irq ",
                format_args!("{} vector {v:#x}", f.interrupt_line),
            )
        }
    };
    dev.inner.lock().transport.finish_init();
    crate::dlog!(
        Info,
        "{}: {} sectors ({} MiB), depth {}, {} segments/request{}{}, {}",
        dev.info.name,
        capacity,
        capacity / 2048,
        DEPTH,
        dev.info.max_segments,
        if indirect { ", indirect" } else { "" },
        if dev.info.flush { ", flush" } else { "" },
        how
    );
    Ok(dev)
}

fn interrupt(arg: usize) {
    // SAFETY: `arg` is the address of a leaked, never-freed `VirtioBlk`.
    let dev = unsafe { &*(arg as *const VirtioBlk) };
    if !dev.msix.load(Ordering::Acquire) {
        let isr = dev.isr.load(Ordering::Acquire);
        if isr == 0 {
            return; // INTx before probe finished: not set up yet
        }
        // SAFETY: `isr` maps the device's ISR status byte; reading it
        // acknowledges (and de-asserts) the interrupt.
        let isr = unsafe { (isr as *const u8).read_volatile() };
        if isr == 0 {
            return; // a shared line: not ours
        }
    }
    Stats::count(&dev.stats.interrupts);
    dev.service.request(service, arg);
}

fn service(arg: usize) {
    // SAFETY: as in `interrupt`.
    let dev = unsafe { &*(arg as *const VirtioBlk) };
    dev.service.begin();
    dev.harvest();
    dev.complete_finished();
    dev.issue_waiting();
}

/// The header, data and status buffers of a request, as the slices the
/// virtqueue takes.
fn with_buffers<R>(
    cmd: *mut u8,
    r: &Request,
    f: impl for<'a> FnOnce(&'a [&'a [u8]], &'a mut [&'a mut [u8]]) -> R,
) -> R {
    let e = env();
    let empty: &[u8] = &[];
    let mut ins: [&[u8]; MAX_SEGMENTS + 1] = [empty; MAX_SEGMENTS + 1];
    let mut outs: [&mut [u8]; MAX_SEGMENTS + 1] = core::array::from_fn(|_| &mut [][..]);
    // SAFETY: `cmd` points at this request's slot in the command memory
    // (16 header bytes, then the status byte), which only this request uses
    // while it is in flight.
    let (hdr, status) = unsafe {
        (
            core::slice::from_raw_parts(cmd as *const u8, 16),
            core::slice::from_raw_parts_mut(cmd.add(16), 1),
        )
    };
    ins[0] = hdr;
    let (mut ni, mut no) = (1, 0);
    for s in &r.segments {
        let p = e.phys_to_virt(s.phys) as *mut u8;
        // SAFETY: the segment is memory the submitter handed to the request
        // until it completes; the slice only carries its address and length
        // to the virtqueue (the CPU does not touch the bytes here).
        let buf = unsafe { core::slice::from_raw_parts_mut(p, s.len as usize) };
        if r.op == Op::Write {
            ins[ni] = buf;
            ni += 1;
        } else {
            outs[no] = buf;
            no += 1;
        }
    }
    outs[no] = status;
    no += 1;
    f(&ins[..ni], &mut outs[..no])
}

impl Inner {
    /// Puts `r` on the ring; gives it back if there is no room.
    fn issue(&mut self, r: Request) -> Result<(), Request> {
        let Some(slot) = self.free.pop() else {
            return Err(r);
        };
        let cmd: *mut u8 = self.cmd_mem.ptr(usize::from(slot) * SLOT_BYTES);
        let kind = match r.op {
            Op::Read => T_IN,
            Op::Write => T_OUT,
            Op::Flush => T_FLUSH,
        };
        // SAFETY: the slot's 17 bytes of command memory belong to this
        // (free) slot.
        unsafe {
            (cmd as *mut u32).write_volatile(kind);
            (cmd.add(4) as *mut u32).write_volatile(0);
            (cmd.add(8) as *mut u64).write_volatile(if r.op == Op::Flush { 0 } else { r.sector });
            cmd.add(16).write_volatile(0xff);
        }
        let queue = &mut self.queue;
        // Indirect lists are boxed here and freed by `pop_used` in bh
        // context: allocate them bh-safe.
        let added = bh_safe_alloc(|| {
            with_buffers(cmd, &r, |ins, outs| {
                // SAFETY: the buffers stay valid and untouched by the CPU
                // until `pop_used` returns them (the request and its slot
                // are held in `slots` until then).
                unsafe { queue.add(ins, outs) }
            })
        });
        match added {
            Ok(token) => {
                self.by_token[usize::from(token)] = Some(slot);
                self.slots[usize::from(slot)] = Some(r);
                Ok(())
            }
            Err(virtio_drivers::Error::QueueFull) => {
                self.free.push(slot);
                Err(r)
            }
            Err(_) => {
                self.free.push(slot);
                bh_safe_alloc(|| self.done.push_back((r, Status::Unsupported)));
                Ok(())
            }
        }
    }

    fn notify(&mut self) {
        if self.queue.should_notify() {
            self.transport.notify(0);
        }
    }
}

impl VirtioBlk {
    /// Moves every used chain's request to the finished list.
    fn harvest(&self) {
        let mut inner = self.inner.lock();
        while let Some(token) = inner.queue.peek_used() {
            let Some(slot) = inner.by_token[usize::from(token)].take() else {
                panic!("virtio-blk: used token {token} was never issued");
            };
            let r = inner.slots[usize::from(slot)]
                .take()
                .expect("virtio-blk: slot without request");
            let cmd: *mut u8 = inner.cmd_mem.ptr(usize::from(slot) * SLOT_BYTES);
            let queue = &mut inner.queue;
            let popped = bh_safe_alloc(|| {
                with_buffers(cmd, &r, |ins, outs| {
                    // SAFETY: the same buffers `issue` added for this token.
                    unsafe { queue.pop_used(token, ins, outs) }
                })
            });
            // SAFETY: the device has returned the chain: the status byte is
            // ours to read.
            let st = unsafe { cmd.add(16).read_volatile() };
            let status = match (popped, st) {
                (Ok(_), S_OK) => Status::Ok,
                _ => Status::IoError,
            };
            inner.free.push(slot);
            bh_safe_alloc(|| inner.done.push_back((r, status)));
        }
    }

    /// Completes finished requests, the lock released around each
    /// completion.
    fn complete_finished(&self) {
        self.stats
            .complete_each(|| self.inner.lock().done.pop_front());
    }

    fn issue_waiting(&self) {
        let mut inner = self.inner.lock();
        let mut issued = false;
        while let Some(r) = inner.waiting.pop_front() {
            match inner.issue(r) {
                Ok(()) => issued = true,
                Err(r) => {
                    inner.waiting.push_front(r);
                    break;
                }
            }
        }
        if issued {
            inner.notify();
        }
    }
}

impl BlockDevice for VirtioBlk {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, r: Request) {
        Stats::count(&self.stats.submitted);
        let arg = self as *const VirtioBlk as usize;
        let check = r.check_for(&self.info);
        let mut inner = self.inner.lock();
        if let Err(status) = check {
            bh_safe_alloc(|| inner.done.push_back((r, status)));
            drop(inner);
            self.service.request(service, arg);
            return;
        }
        if r.op == Op::Flush && !inner.flush {
            bh_safe_alloc(|| inner.done.push_back((r, Status::Ok)));
            drop(inner);
            self.service.request(service, arg);
            return;
        }
        if !inner.waiting.is_empty() {
            Stats::count(&self.stats.queued);
            bh_safe_alloc(|| inner.waiting.push_back(r));
            return;
        }
        match inner.issue(r) {
            Ok(()) => {
                let rejected = !inner.done.is_empty();
                inner.notify();
                drop(inner);
                if rejected {
                    self.service.request(service, arg);
                }
            }
            Err(r) => {
                Stats::count(&self.stats.queued);
                bh_safe_alloc(|| inner.waiting.push_back(r));
            }
        }
    }
}
