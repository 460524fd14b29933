//! virtio-scsi over modern virtio PCI: a SCSI host adapter whose targets
//! and logical units are disks (Nanos's default disk on GCP).
//!
//! **What it owns.** One PCI function: its transport (kept, never used
//! after probe), the request virtqueue (queue 2) as a [`CommandRing`] run
//! by one [`DriverQueue`] every disk of the adapter shares, the event
//! virtqueue (queue 1) with [`EVENTS`] posted event buffers and its own bh
//! service, and the interrupts (MSI-X: entry 0 events, entry 1 requests;
//! or one INTx line for both). The control queue (queue 0: task management)
//! is not set up: cairn never aborts or resets a command.
//!
//! **Commands.** Each request slot holds a `virtio_scsi_req_cmd` header
//! (8-byte LUN `1, target, 0x40 | lun >> 8, lun`, a tag, the CDB of
//! `cdb_size` bytes) and a `virtio_scsi_resp_cmd` response (sense length,
//! residual, status, response code, `sense_size` bytes of sense), then the
//! data. CDBs, sense data and what a status means are [`crate::scsi`]'s: a
//! UNIT ATTENTION (the power-on one, a capacity change) is retried, LBA OUT
//! OF RANGE is `OutOfRange`, the rest `IoError`. Response codes other than
//! OK end the request in `IoError` (BUSY is retried).
//!
//! **Probe.** Targets `0..=max_target` (at most [`MAX_TARGETS`]) and their
//! LUNs through [`crate::scsi::probe_target`], by polling the request
//! queue before interrupts are live.
//!
//! **Events.** Hot-plug and parameter-change events (`VIRTIO_SCSI_F_HOTPLUG`,
//! `VIRTIO_SCSI_F_CHANGE`) arrive on the event queue; the event service
//! (bh) logs each (a unit added or removed, a parameter change with its
//! ASC/ASCQ such as "capacity data has changed", events missed), counts
//! them, and posts the buffer again. A resized disk keeps the size it had
//! at boot; a hot-plugged one is not attached (cairn probes at boot only).
//!
//! **Contexts.** `probe`: boot or kernel-lock. `submit`: kernel-lock or bh
//! (the skeleton's). Interrupts (irq): hand over to the request queue or
//! request the event service. Services: bh.
//!
//! **Locks.** `drivers.virtio_scsi` (the request queue's lock) and
//! `drivers.virtio_scsi.events` (the event ring), never nested; leaf locks
//! below them (heaps inside `bh_safe_alloc`).

use super::{
    CommandRing, F_RING_INDIRECT_DESC, F_VERSION_1, Interrupts, IrqTarget, Notifier, Opened,
    ResponseAt,
};
use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::{BhService, DriverQueue, Hardware, Harvest, Issue};
use crate::scsi::{self, Cdb, Outcome, Sense, Transport, Unit};
use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, Request, Segment, Status};
use cairn_pc::pci::PciFunction;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicU64, Ordering};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport as _;

const DEVICE_MODERN: u16 = 0x1048;
const DEVICE_TRANSITIONAL: u16 = 0x1004;

const F_HOTPLUG: u64 = 1 << 1;
const F_CHANGE: u64 = 1 << 2;

const EVENT_QUEUE: u16 = 1;
const REQUEST_QUEUE: u16 = 2;

/// Requests in flight at once.
pub const DEPTH: usize = super::RING;
/// Most sectors per request (1 MiB; less if the device says so).
pub const MAX_SECTORS: u32 = 2048;
/// Most targets probed.
pub const MAX_TARGETS: u16 = 256;
/// Event buffers kept posted.
pub const EVENTS: usize = 8;

/// The CDB and sense sizes cairn asks for (the device's defaults).
const CDB_SIZE: usize = 32;
const SENSE_SIZE: usize = 96;
const HEADER: usize = 19 + CDB_SIZE;
const RESPONSE: usize = 12 + SENSE_SIZE;

// Response codes.
const S_OK: u8 = 0;
const S_BAD_TARGET: u8 = 3;
const S_BUSY: u8 = 5;

// Events.
const T_NO_EVENT: u32 = 0;
const T_TRANSPORT_RESET: u32 = 1;
const T_ASYNC_NOTIFY: u32 = 2;
const T_PARAM_CHANGE: u32 = 3;
const T_EVENTS_MISSED: u32 = 0x8000_0000;
const EVT_RESET_HARD: u32 = 0;
const EVT_RESET_RESCAN: u32 = 1;
const EVT_RESET_REMOVED: u32 = 2;
const EVENT_BYTES: usize = 16;

/// Whether `f` is a virtio SCSI host.
pub fn matches(f: &PciFunction) -> bool {
    f.vendor == super::VENDOR && (f.device == DEVICE_MODERN || f.device == DEVICE_TRANSITIONAL)
}

/// The request virtqueue (the queue's hardware).
pub struct Requests {
    index: usize,
    ring: CommandRing<Unit>,
    next_tag: u64,
}

/// The response fields cairn reads.
#[derive(Copy, Clone, Debug)]
struct Response {
    response: u8,
    status: u8,
    sense: Sense,
}

fn parse_response(r: &[u8], whole: bool) -> Response {
    if !whole {
        return Response {
            response: 0xff,
            status: 0,
            sense: Sense::default(),
        };
    }
    let sense_len = (u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize).min(SENSE_SIZE);
    Response {
        response: r[11],
        status: r[10],
        sense: scsi::parse_sense(&r[12..12 + sense_len]),
    }
}

impl Requests {
    fn header(&mut self, hdr: &mut [u8], u: &Unit, r: &Request) {
        hdr[0] = 1;
        hdr[1] = u.target;
        hdr[2] = 0x40 | (u.lun >> 8) as u8;
        hdr[3] = u.lun as u8;
        hdr[8..16].copy_from_slice(&self.next_tag.to_le_bytes());
        self.next_tag = self.next_tag.wrapping_add(1);
        let cdb = u.cdb.unwrap_or_else(|| scsi::cdb_for(r));
        hdr[19..19 + cdb.bytes.len()].copy_from_slice(&cdb.bytes);
    }
}

impl Hardware for Requests {
    type Tag = Unit;

    fn issue(&mut self, r: Request, u: Unit) -> Issue<Unit> {
        let mut hdr = [0u8; HEADER];
        self.header(&mut hdr, &u, &r);
        self.ring.issue(r, u, |h, _| h.copy_from_slice(&hdr))
    }

    fn doorbell(&mut self) {
        self.ring.notify();
    }

    fn harvest(&mut self, out: &mut Harvest<'_, Unit>) {
        while let Some((r, u, resp)) = self.ring.pop(parse_response) {
            let result = match resp.response {
                S_OK => scsi::outcome(resp.status, resp.sense),
                S_BUSY => Outcome::Retry,
                _ => Outcome::Done(Status::IoError),
            };
            scsi::complete(out, r, u, result, |r, u, _| {
                crate::dlog!(
                    Warn,
                    "virtio-scsi{}:{}:{}: {:?} of sector {} failed: response {}, SCSI status {:#x}, sense key {:#x} ASC {:#04x} ASCQ {:#04x}",
                    self.index,
                    u.target,
                    u.lun,
                    r.op,
                    r.sector,
                    resp.response,
                    resp.status,
                    resp.sense.key,
                    resp.sense.asc,
                    resp.sense.ascq
                )
            });
        }
    }
}

/// Synchronous commands on the request queue for the probe (nothing else
/// in flight, interrupts not yet delivered to the queue).
struct Prober<'a> {
    hw: &'a mut Requests,
    data: DmaRegion,
}

impl scsi::Poll for Prober<'_> {
    fn command(
        &mut self,
        target: u16,
        lun: u16,
        cdb: &Cdb,
        data_in: usize,
    ) -> Result<(u8, Sense, Vec<u8>), Transport> {
        let data_in = data_in.min(self.data.bytes);
        let carrier = if data_in > 0 {
            Request::read(
                0,
                &[Segment {
                    phys: self.data.phys,
                    len: data_in as u32,
                }],
                |_| {},
            )
        } else {
            Request::flush(|_| {})
        };
        let unit = Unit {
            target: target as u8,
            lun,
            retries: 0,
            cdb: Some(*cdb),
        };
        match self.hw.issue(carrier, unit) {
            Issue::Started => self.hw.doorbell(),
            Issue::Busy(r, _) | Issue::Finished(r, _) => {
                r.complete(Status::IoError);
                return Err(Transport::Failed);
            }
        }
        let e = env();
        let end = e.now_ns() + 2_000_000_000;
        loop {
            if let Some((r, _, resp)) = self.hw.ring.pop(parse_response) {
                r.complete(Status::Ok);
                return match resp.response {
                    S_OK => {
                        // SAFETY: the probe buffer, just filled by the
                        // device for this command (nothing else uses it).
                        let d = unsafe {
                            core::slice::from_raw_parts(self.data.virt as *const u8, data_in)
                        };
                        Ok((resp.status, resp.sense, d.to_vec()))
                    }
                    S_BAD_TARGET => Err(Transport::NoTarget),
                    _ => Err(Transport::Failed),
                };
            }
            if e.now_ns() > end {
                // The command stays in its slot: the device still owns it.
                return Err(Transport::Failed);
            }
            core::hint::spin_loop();
        }
    }
}

/// A `virtio_scsi_event`.
#[derive(Copy, Clone, Debug)]
struct Event {
    event: u32,
    target: u8,
    lun: u16,
    reason: u32,
}

/// The event virtqueue and its posted buffers.
struct EventRing {
    queue: VirtQueue<super::EnvHal, EVENTS>,
    notifier: Notifier,
    mem: DmaRegion,
    /// Buffer of each token.
    by_token: [Option<u8>; EVENTS],
}

impl EventRing {
    /// Event buffer `i`, as the slice the virtqueue takes.
    ///
    /// # Safety
    /// No other slice of buffer `i` may be alive: the ring hands them out
    /// one at a time (to `add`, to `pop_used`, to reading the event).
    unsafe fn buffer(&self, i: u8) -> &'static mut [u8] {
        // SAFETY: buffer `i` of the event page, owned by this ring; the
        // caller keeps slices of it from overlapping in time.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.mem.ptr::<u8>(usize::from(i) * EVENT_BYTES),
                EVENT_BYTES,
            )
        }
    }

    fn post(&mut self, i: u8) {
        // SAFETY: the buffer is not posted: this is its only slice.
        let buf = unsafe { self.buffer(i) };
        buf.fill(0);
        let queue = &mut self.queue;
        // SAFETY: the buffer stays posted, untouched by the CPU, until
        // `pop_used` returns it.
        match bh_safe_alloc(|| unsafe { queue.add(&[], &mut [buf]) }) {
            Ok(token) => self.by_token[usize::from(token)] = Some(i),
            Err(_) => crate::dlog!(Error, "virtio-scsi: cannot post event buffer {i}"),
        }
    }

    /// Takes the next used event: its buffer and the event (`None` if the
    /// chain did not come back whole).
    fn pop(&mut self) -> Option<(u8, Option<Event>)> {
        let token = self.queue.peek_used()?;
        let i = self.by_token[usize::from(token)].take()?;
        // SAFETY: the buffer `post` added for this token; its only slice.
        let buf = unsafe { self.buffer(i) };
        let queue = &mut self.queue;
        // SAFETY: as above.
        let popped = bh_safe_alloc(|| unsafe { queue.pop_used(token, &[], &mut [buf]) });
        // SAFETY: returned by the device; the slice above is gone.
        let e = unsafe { self.buffer(i) };
        let event = popped.ok().map(|_| Event {
            event: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
            target: e[5],
            lun: (u16::from(e[6] & 0x3f) << 8) | u16::from(e[7]),
            reason: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
        });
        Some((i, event))
    }
}

pub struct Adapter {
    index: usize,
    queue: &'static DriverQueue<Requests>,
    irq: &'static Interrupts,
    events: IrqSpinLock<EventRing>,
    event_service: BhService,
    /// Events received (and `EVENTS_MISSED` reports).
    pub events_seen: AtomicU64,
    pub events_missed: AtomicU64,
}

static CLASS: LockClass = LockClass::new("drivers.virtio_scsi");
static EVENTS_CLASS: LockClass = LockClass::new("drivers.virtio_scsi.events");

/// The INTx handler: one line for both queues.
fn intx(arg: usize) {
    // SAFETY: `arg` is a leaked, never-freed `Adapter`.
    let a = unsafe { &*(arg as *const Adapter) };
    if a.irq.ours() {
        a.queue.interrupt();
        a.event_service.request(events, arg);
    }
}

/// The event queue's MSI-X handler.
fn event_interrupt(arg: usize) {
    // SAFETY: as in `intx`.
    let a = unsafe { &*(arg as *const Adapter) };
    if a.irq.ours() {
        a.event_service.request(events, arg);
    }
}

/// The event service (bh): logs each used event and posts its buffer again.
fn events(arg: usize) {
    // SAFETY: as in `intx`.
    let a = unsafe { &*(arg as *const Adapter) };
    a.event_service.begin();
    let mut ring = a.events.lock();
    let mut posted = false;
    while let Some((i, event)) = ring.pop() {
        if let Some(ev) = event
            && ev.event != T_NO_EVENT
        {
            a.events_seen.fetch_add(1, Ordering::Relaxed);
            if ev.event & T_EVENTS_MISSED != 0 {
                a.events_missed.fetch_add(1, Ordering::Relaxed);
            }
            report(a.index, ev);
        }
        ring.post(i);
        posted = true;
    }
    if posted && ring.queue.should_notify() {
        ring.notifier.notify();
    }
}

fn report(index: usize, ev: Event) {
    let Event {
        event,
        target,
        lun,
        reason,
    } = ev;
    if event & T_EVENTS_MISSED != 0 {
        crate::dlog!(
            Warn,
            "virtio-scsi{index}: events were missed (the device's event queue ran dry)"
        );
    }
    match event & !T_EVENTS_MISSED {
        T_TRANSPORT_RESET => match reason {
            EVT_RESET_RESCAN => crate::dlog!(
                Warn,
                "virtio-scsi{index}:{target}:{lun}: unit added (hot-plug: not attached; cairn probes disks at boot)"
            ),
            EVT_RESET_REMOVED => crate::dlog!(
                Warn,
                "virtio-scsi{index}:{target}:{lun}: unit removed: its requests will fail"
            ),
            EVT_RESET_HARD => crate::dlog!(
                Warn,
                "virtio-scsi{index}:{target}:{lun}: the target was reset"
            ),
            r => crate::dlog!(
                Warn,
                "virtio-scsi{index}:{target}:{lun}: transport reset, reason {r}"
            ),
        },
        T_PARAM_CHANGE => crate::dlog!(
            Warn,
            "virtio-scsi{index}:{target}:{lun}: parameters changed: ASC {:#04x} ASCQ {:#04x}{}",
            reason & 0xff,
            (reason >> 8) & 0xff,
            if reason & 0xffff == 0x092a {
                " (capacity data has changed; the volume keeps its size until reboot)"
            } else {
                ""
            }
        ),
        T_ASYNC_NOTIFY => crate::dlog!(
            Info,
            "virtio-scsi{index}:{target}:{lun}: asynchronous notification {reason:#x}"
        ),
        T_NO_EVENT => {}
        other => crate::dlog!(
            Warn,
            "virtio-scsi{index}:{target}:{lun}: unknown event {other:#x} reason {reason:#x}"
        ),
    }
}

/// Reads the configuration and asks for the CDB and sense sizes cairn
/// builds its commands for: (seg_max, max_sectors, max_target).
fn configure(o: &mut Opened) -> Result<(u32, u32, u16), &'static str> {
    let t = &mut o.transport;
    let seg_max: u32 = t.read_config_space(4).map_err(|_| "config space")?;
    let max_sectors: u32 = t.read_config_space(8).map_err(|_| "config space")?;
    let max_target: u16 = t.read_config_space(30).map_err(|_| "config space")?;
    t.write_config_space(20, SENSE_SIZE as u32)
        .map_err(|_| "config space")?;
    t.write_config_space(24, CDB_SIZE as u32)
        .map_err(|_| "config space")?;
    let sense: u32 = t.read_config_space(20).map_err(|_| "config space")?;
    let cdb: u32 = t.read_config_space(24).map_err(|_| "config space")?;
    if sense as usize != SENSE_SIZE || cdb as usize != CDB_SIZE {
        return Err("device refuses the CDB and sense sizes");
    }
    Ok((seg_max, max_sectors, max_target))
}

/// What [`probe`] found.
pub struct Probed {
    pub adapter: &'static Adapter,
    /// Its disks, ready for requests.
    pub disks: Vec<&'static dyn BlockDevice>,
}

/// Probes the adapter `f` and the disks behind it.
pub fn probe(f: &PciFunction, index: usize) -> Result<Probed, &'static str> {
    let e = env();
    let wanted = F_HOTPLUG | F_CHANGE | F_RING_INDIRECT_DESC | F_VERSION_1;
    let mut o = super::open(f, wanted)?;
    let indirect = o.features & F_RING_INDIRECT_DESC != 0;
    let (seg_max, max_sectors, max_target) = configure(&mut o)?;
    let events_queue = bh_safe_alloc(|| {
        VirtQueue::<super::EnvHal, EVENTS>::new(&mut o.transport, EVENT_QUEUE, false, false)
    })
    .map_err(|_| "event virtqueue set-up failed")?;
    let events_notifier = o.regs.notifier(EVENT_QUEUE)?;
    let events_mem = e.dma_alloc(EVENTS * EVENT_BYTES).ok_or("no DMA memory")?;
    let ring = CommandRing::new(
        &mut o,
        REQUEST_QUEUE,
        indirect,
        DEPTH,
        HEADER,
        RESPONSE,
        ResponseAt::Start,
    )?;
    let hw = Requests {
        index,
        ring,
        next_tag: 1,
    };
    let queue_irq = Interrupts::leak();
    // The adapter's address is its interrupt handlers' argument: build it
    // around the queue, whose hardware the probe below borrows back.
    let queue = DriverQueue::leak(&CLASS, hw, DEPTH);
    let adapter: &'static Adapter = bh_safe_alloc(|| {
        Box::leak(Box::new(Adapter {
            index,
            queue,
            irq: queue_irq,
            events: IrqSpinLock::new(
                &EVENTS_CLASS,
                EventRing {
                    queue: events_queue,
                    notifier: events_notifier,
                    mem: events_mem,
                    by_token: [None; EVENTS],
                },
            ),
            event_service: BhService::new(),
            events_seen: AtomicU64::new(0),
            events_missed: AtomicU64::new(0),
        }))
    });
    let arg = adapter as *const Adapter as usize;
    let how = queue_irq.route(
        f,
        o.regs,
        &[
            (
                EVENT_QUEUE,
                IrqHandler {
                    func: event_interrupt,
                    arg,
                },
                None,
            ),
            (
                REQUEST_QUEUE,
                IrqTarget::leak(queue_irq, queue).handler(),
                None,
            ),
        ],
        IrqHandler { func: intx, arg },
    )?;
    o.transport.finish_init();
    {
        let mut ring = adapter.events.lock();
        for i in 0..EVENTS as u8 {
            ring.post(i);
        }
        ring.notifier.notify();
    }
    // Interrupts are acknowledged but not handed to the queue until it is
    // live: the probe polls meanwhile.
    let data = e.dma_alloc(4096).ok_or("no DMA memory")?;
    let found = queue.with_hw(|hw| {
        let mut found = Vec::new();
        let mut p = Prober { hw, data };
        for target in 0..=max_target.min(MAX_TARGETS - 1) {
            let (disks, skipped) = scsi::probe_target(&mut p, target);
            for (lun, why) in skipped {
                crate::dlog!(Warn, "virtio-scsi{index}:{target}:{lun}: {why}");
            }
            found.extend(disks.into_iter().map(|d| (target as u8, d)));
        }
        found
    });
    e.dma_free(data);
    queue_irq.go_live();
    // Events that came during the probe raised no live interrupt.
    adapter.event_service.request(events, arg);
    super::keep(o.transport);
    let max_segments = (seg_max.max(1) as usize).min(super::MAX_SEGMENTS) as u32;
    let max_sectors = if max_sectors == 0 {
        MAX_SECTORS
    } else {
        max_sectors.min(MAX_SECTORS)
    };
    let disks = scsi::disks(
        &crate::name("virtio-scsi", format_args!("{index}")),
        found,
        queue,
        scsi::Limits {
            queue_depth: DEPTH as u32,
            max_segments: if indirect {
                max_segments
            } else {
                max_segments.min(8)
            },
            max_sectors,
        },
    );
    crate::dlog!(
        Info,
        "virtio-scsi{index}: {} disk(s) on targets 0..={}, depth {DEPTH}, {}",
        disks.len(),
        max_target.min(MAX_TARGETS - 1),
        how
    );
    Ok(Probed { adapter, disks })
}

impl Adapter {
    /// The request queue (its counters).
    pub fn queue(&self) -> &'static DriverQueue<Requests> {
        self.queue
    }

    /// (events received, `EVENTS_MISSED` reports).
    pub fn event_counts(&self) -> (u64, u64) {
        (
            self.events_seen.load(Ordering::Relaxed),
            self.events_missed.load(Ordering::Relaxed),
        )
    }
}
