//! Xen blkfront: a virtual block device whose backend runs in another
//! domain, reached through a granted ring page and an event channel.
//!
//! **What it owns.** Per disk: the ring page and its grant, the event
//! channel, the grant table entries of requests in flight, one indirect
//! page per ring slot, the driver queue and the finished list. The grant
//! table itself is the platform's, shared by every disk behind the
//! `drivers.xen_grants` lock.
//!
//! **Handshake** (xenbus states 1..6): read `device/vbd/<id>/backend` and
//! `backend-id`; wait for the backend to reach InitWait; read its features
//! (`feature-max-indirect-segments`, `feature-flush-cache`,
//! `feature-barrier`); grant the ring, allocate the event channel, write
//! `ring-ref`, `event-channel`, `protocol` and state Initialised; wait for
//! Connected; read `sectors` and `sector-size`; write state Connected.
//!
//! **Requests.** Each request segment is cut at page boundaries into
//! (frame, first sector, last sector) pieces, each granted to the backend
//! (read-only for writes). Up to 11 pieces go in the request itself; more
//! use `BLKIF_OP_INDIRECT` with the slot's indirect page when the backend
//! offers it. Flush is `FLUSH_DISKCACHE` (or `WRITE_BARRIER`), or completes
//! at once when the backend offers neither.
//!
//! **Contexts.** Probe: boot or kernel-lock (xenstore by polling).
//! `submit`: kernel-lock or bh (the skeleton's). Event (irq): hands over
//! to the disk's queue. Its bh service harvests responses (ending their
//! grants), completes requests with the lock released, issues waiting
//! ones and notifies the backend once.
//!
//! **Locks.** `drivers.xen_blkfront` (the disk queue's lock) → then
//! `drivers.xen_grants` (IrqSpinLock, the shared grant table): both never
//! taken in irq context; no completion runs under either.

use super::XenPlatform;
use super::grant::{GrantError, GrantTable};
use super::ring::{self, FrontRing, Req, Seg, Sring};
use super::xenstore::Client;
use crate::env::{DmaRegion, IrqHandler, env};
use crate::queue::{DriverQueue, Hardware, Harvest, Issue};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use cairn_block::{BlockDevice, DeviceInfo, Op, Request, Status};
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};

static CLASS: LockClass = LockClass::new("drivers.xen_blkfront");
static GRANTS_CLASS: LockClass = LockClass::new("drivers.xen_grants");

/// The grant table all front ends share.
pub struct Grants(pub IrqSpinLock<GrantTable>);

impl Grants {
    pub fn new(t: GrantTable) -> Grants {
        Grants(IrqSpinLock::new(&GRANTS_CLASS, t))
    }
}

/// xenbus states.
pub mod state {
    pub const INITIALISING: u32 = 1;
    pub const INIT_WAIT: u32 = 2;
    pub const INITIALISED: u32 = 3;
    pub const CONNECTED: u32 = 4;
    pub const CLOSED: u32 = 6;
}

/// Most indirect pieces the front uses per request.
const MAX_PIECES: usize = 320;

struct InFlight {
    request: Request,
    grefs: Vec<u32>,
}

/// The disk's ring and grants (its queue's hardware).
pub struct Ring {
    name: String,
    platform: &'static dyn XenPlatform,
    grants: &'static Grants,
    backend_id: u16,
    /// The event channel (set once the backend end exists).
    port: u32,
    flush_op: Option<u8>,
    /// Pieces per request the backend takes indirectly (0: no indirect).
    indirect_pieces: usize,
    ring: FrontRing,
    slots: Vec<Option<InFlight>>,
    free: Vec<u16>,
    /// One indirect page per slot.
    indirect: DmaRegion,
}

pub struct BlkFront {
    info: DeviceInfo,
    queue: &'static DriverQueue<Ring>,
}

/// Why a disk could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    Xenstore(String),
    NoMemory,
    Grant(GrantError),
    NoEventChannel,
    BackendState(u32),
    BadSectorSize(u64),
}

fn xs_err(path: &str, e: super::xenstore::XsError) -> ProbeError {
    ProbeError::Xenstore(alloc::format!("{path}: {e:?}"))
}

/// Polls `path` until it reads as a state >= `want`.
fn wait_state(xs: &mut Client<'_>, path: &str, want: u32) -> Result<u32, ProbeError> {
    for _ in 0..100_000 {
        let s = xs.read_u64(path).unwrap_or(0) as u32;
        if s >= want {
            return Ok(s);
        }
        (xs.wait)();
    }
    Err(ProbeError::BackendState(
        xs.read_u64(path).unwrap_or(0) as u32
    ))
}

/// Sets up virtual block device `vbd` (its xenstore id, e.g. `768`).
pub fn probe(
    platform: &'static dyn XenPlatform,
    grants: &'static Grants,
    xs: &mut Client<'_>,
    vbd: &str,
    index: usize,
) -> Result<&'static BlkFront, ProbeError> {
    let front = alloc::format!("device/vbd/{vbd}");
    let backend = xs
        .read(&alloc::format!("{front}/backend"))
        .map_err(|e| xs_err("backend", e))?;
    let backend_id = xs
        .read_u64(&alloc::format!("{front}/backend-id"))
        .unwrap_or(0) as u16;
    xs.write(&alloc::format!("{front}/state"), "1")
        .map_err(|e| xs_err("state", e))?;
    wait_state(xs, &alloc::format!("{backend}/state"), state::INIT_WAIT)?;
    let max_indirect = xs
        .read_u64(&alloc::format!("{backend}/feature-max-indirect-segments"))
        .unwrap_or(0) as usize;
    let flush_op = if xs.read_u64(&alloc::format!("{backend}/feature-flush-cache")) == Some(1) {
        Some(ring::OP_FLUSH_DISKCACHE)
    } else if xs.read_u64(&alloc::format!("{backend}/feature-barrier")) == Some(1) {
        Some(ring::OP_WRITE_BARRIER)
    } else {
        None
    };
    let e = env();
    let ring_page = e.dma_alloc(4096).ok_or(ProbeError::NoMemory)?;
    let indirect = e
        .dma_alloc(4096 * ring::SLOTS as usize)
        .ok_or(ProbeError::NoMemory)?;
    let ring_ref = grants
        .0
        .lock()
        .grant(backend_id, ring_page.phys >> 12, false)
        .map_err(ProbeError::Grant)?;
    // SAFETY: a zeroed DMA page owned by this disk for the rest of the run.
    let sring = unsafe { Sring::new(ring_page.virt as *mut u8) };
    let indirect_pieces = max_indirect.min(MAX_PIECES);
    // Bound pieces: segments + sectors/8 <= the pieces one request holds.
    let (max_segments, max_sectors) = if indirect_pieces >= 2 {
        let half = (indirect_pieces / 2).min(256);
        ((half as u32).min(64), (8 * half as u32).min(2048))
    } else {
        (3, 64)
    };
    let name = crate::name("xvd", format_args!("{index}"));
    let queue = DriverQueue::leak(
        &CLASS,
        Ring {
            name: name.clone(),
            platform,
            grants,
            backend_id,
            port: 0,
            flush_op,
            indirect_pieces,
            ring: FrontRing::new(sring),
            slots: bh_safe_alloc(|| (0..ring::SLOTS).map(|_| None).collect()),
            free: bh_safe_alloc(|| (0..ring::SLOTS as u16).rev().collect()),
            indirect,
        },
        64,
    );
    let arg = queue as *const DriverQueue<Ring> as usize;
    let port = platform
        .alloc_unbound(backend_id, IrqHandler { func: event, arg })
        .ok_or(ProbeError::NoEventChannel)?;
    // The backend cannot signal before `event-channel` is published below.
    queue.with_hw(|hw| hw.port = port);
    for (k, v) in [
        ("ring-ref", alloc::format!("{ring_ref}")),
        ("event-channel", alloc::format!("{port}")),
        ("protocol", String::from("x86_64-abi")),
        ("state", alloc::format!("{}", state::INITIALISED)),
    ] {
        xs.write(&alloc::format!("{front}/{k}"), &v)
            .map_err(|e| xs_err(k, e))?;
    }
    let st = wait_state(xs, &alloc::format!("{backend}/state"), state::CONNECTED)?;
    if st != state::CONNECTED {
        return Err(ProbeError::BackendState(st));
    }
    let sectors = xs
        .read_u64(&alloc::format!("{backend}/sectors"))
        .unwrap_or(0);
    let sector_size = xs
        .read_u64(&alloc::format!("{backend}/sector-size"))
        .unwrap_or(512);
    if sector_size != 512 {
        return Err(ProbeError::BadSectorSize(sector_size));
    }
    let dev: &'static BlkFront = bh_safe_alloc(|| {
        Box::leak(Box::new(BlkFront {
            info: DeviceInfo {
                name,
                model: alloc::format!("xen vbd {vbd} (backend {backend})"),
                sectors,
                queue_depth: ring::SLOTS,
                max_segments,
                max_sectors,
                flush: flush_op.is_some(),
            },
            queue,
        }))
    });
    xs.write(
        &alloc::format!("{front}/state"),
        &alloc::format!("{}", state::CONNECTED),
    )
    .map_err(|e| xs_err("state", e))?;
    crate::dlog!(
        Info,
        "{}: {} sectors, backend dom{} {}, ring-ref {ring_ref}, port {port}, indirect {}, flush {:?}",
        dev.info.name,
        sectors,
        backend_id,
        backend,
        indirect_pieces,
        flush_op
    );
    Ok(dev)
}

fn event(arg: usize) {
    // SAFETY: `arg` is a leaked, never-freed `DriverQueue<Ring>`.
    let q: &'static DriverQueue<Ring> = unsafe { &*(arg as *const DriverQueue<Ring>) };
    q.interrupt();
}

/// Cuts `r`'s segments into page-bounded pieces: (frame, first, last).
fn pieces(r: &Request) -> Option<Vec<(u64, u8, u8)>> {
    let mut v = Vec::new();
    for s in &r.segments {
        if s.phys % 512 != 0 {
            return None;
        }
        let (mut p, end) = (s.phys, s.phys + u64::from(s.len));
        while p < end {
            let page_end = (p & !4095) + 4096;
            let stop = end.min(page_end);
            let first = ((p & 4095) / 512) as u8;
            let last = (((stop - 1) & 4095) / 512) as u8;
            v.push((p >> 12, first, last));
            p = stop;
        }
    }
    Some(v)
}

impl Ring {
    fn end_grants(&self, grefs: &[u32]) -> bool {
        let mut g = self.grants.0.lock();
        let mut ok = true;
        for &r in grefs {
            if g.end(r).is_err() {
                // The backend still maps it: leak the entry rather than
                // hand the page back while it can write into it.
                crate::dlog!(
                    Error,
                    "{}: grant {r} still in use by the backend",
                    self.name
                );
                ok = false;
            }
        }
        ok
    }
}

impl Hardware for Ring {
    type Tag = ();

    /// Grants `r`'s pieces and puts it on the ring; busy if there is no
    /// slot or not enough grant entries.
    fn issue(&mut self, r: Request, _: ()) -> Issue<()> {
        if self.ring.free_slots() == 0 || self.free.is_empty() {
            return Issue::Busy(r, ());
        }
        let op = match r.op {
            Op::Read => ring::OP_READ,
            Op::Write => ring::OP_WRITE,
            Op::Flush => match self.flush_op {
                Some(op) => op,
                None => return Issue::Finished(r, Status::Ok),
            },
        };
        let Some(ps) = pieces(&r) else {
            return Issue::Finished(r, Status::Unsupported);
        };
        let indirect = ps.len() > ring::MAX_DIRECT_SEGMENTS;
        if indirect && ps.len() > self.indirect_pieces {
            return Issue::Finished(r, Status::Unsupported);
        }
        let ind_pages = if indirect {
            ps.len().div_ceil(ring::SEGMENTS_PER_INDIRECT_PAGE)
        } else {
            0
        };
        let slot = *self.free.last().expect("checked above");
        let mut grefs = bh_safe_alloc(|| Vec::with_capacity(ps.len() + ind_pages));
        {
            let mut g = self.grants.0.lock();
            if g.available() < ps.len() + ind_pages {
                return Issue::Busy(r, ());
            }
            for &(frame, _, _) in &ps {
                match g.grant(self.backend_id, frame, r.op == Op::Write) {
                    Ok(gref) => grefs.push(gref),
                    Err(_) => {
                        // A frame above 16 TiB: v1 grants cannot name it.
                        for &gref in &grefs {
                            let _ = g.end(gref);
                        }
                        return Issue::Finished(r, Status::Unsupported);
                    }
                }
            }
            if indirect {
                let page = self.indirect.phys + u64::from(slot) * 4096;
                let gref = g
                    .grant(self.backend_id, page >> 12, true)
                    .expect("grants counted above");
                grefs.push(gref);
            }
        }
        self.free.pop();
        let segs: Vec<Seg> = bh_safe_alloc(|| {
            ps.iter()
                .zip(&grefs)
                .map(|(&(_, first, last), &gref)| Seg {
                    gref,
                    first_sect: first,
                    last_sect: last,
                })
                .collect()
        });
        let sector = if r.op == Op::Flush { 0 } else { r.sector };
        if indirect {
            let page: *mut u8 = self.indirect.ptr(usize::from(slot) * 4096);
            for (i, s) in segs.iter().enumerate() {
                // SAFETY: this slot's indirect page, `i` < MAX_PIECES <= 512.
                unsafe { ring::put_indirect_segment(page, i, *s) };
            }
            let ind = [*grefs.last().expect("indirect page grant")];
            self.ring.put(&Req::Indirect {
                op,
                id: u64::from(slot),
                sector,
                nr_segments: segs.len() as u16,
                pages: &ind,
            });
        } else {
            self.ring.put(&Req::Direct {
                op,
                id: u64::from(slot),
                sector,
                segs: &segs,
            });
        }
        self.slots[usize::from(slot)] = Some(InFlight { request: r, grefs });
        Issue::Started
    }

    fn doorbell(&mut self) {
        if self.ring.push() {
            self.platform.notify(self.port);
        }
    }

    fn harvest(&mut self, out: &mut Harvest<'_, ()>) {
        while let Some((id, _op, status)) = self.ring.next_response() {
            let Some(f) = self.slots.get_mut(id as usize).and_then(Option::take) else {
                crate::dlog!(Error, "{}: response for unknown id {id}", self.name);
                continue;
            };
            self.free.push(id as u16);
            let granted_back = self.end_grants(&f.grefs);
            let st = match status {
                ring::RSP_OKAY if granted_back => Status::Ok,
                _ => Status::IoError,
            };
            out.finish(f.request, st);
        }
    }
}

impl BlkFront {
    /// The disk's queue (its counters).
    pub fn queue(&self) -> &'static DriverQueue<Ring> {
        self.queue
    }
}

impl BlockDevice for BlkFront {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, r: Request) {
        self.queue.submit(r, (), &self.info);
    }
}
