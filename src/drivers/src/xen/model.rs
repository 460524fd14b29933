//! Host tests of blkfront against a model of the other side: a xenstore
//! daemon (read/write/directory over the xenstore ring), a blkback that
//! serves the blkif ring through grant references only (checking every
//! grant's domain, permission and direction, marking it busy while it
//! copies), and event channels that run the front's handler.
//!
//! "Physical" addresses are host addresses here (the test `DriverEnv`
//! maps them one to one), so grant frames are host page numbers.

use super::XenPlatform;
use super::blkfront::{self, Grants};
use super::grant::{self, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING, GrantTable};
use super::ring::{self, REQ_PROD, RSP_PROD, Sring};
use super::xenstore::{self, Client, Interface};
use crate::env::IrqHandler;
use crate::testenv::{page_alloc, phys, run_bh, setup, virt};
use cairn_block::{BlockDevice, Request, Segment, Status};
use std::boxed::Box;
use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::vec::Vec;
use std::{format, vec};

// ---- the model of the other side ----

const XS_PORT: u32 = 1;
const BACKEND: u16 = 0;
const FRONT: &str = "device/vbd/768";
const BACK: &str = "backend/vbd/0/768";

/// The xenstore page, shared by the test's front and the model store.
struct SharedIface(Interface);
// SAFETY: each test drives its front and its model from one thread.
unsafe impl Sync for SharedIface {}

struct Model {
    store: Mutex<BTreeMap<String, String>>,
    xs: SharedIface,
    grants: &'static Grants,
    disk: Mutex<Vec<u8>>,
    fail_sector: Option<u64>,
    handlers: Mutex<Vec<IrqHandler>>,
    /// Back-end ring state: (ring page, req_cons).
    ring: Mutex<Option<(u64, u32)>>,
    requests: AtomicUsize,
    indirect: AtomicUsize,
    flushes: AtomicUsize,
}

fn grants_table() -> &'static Grants {
    let entries = 2048u32;
    let base = page_alloc(entries as usize * 8) as *mut grant::Entry;
    // SAFETY: a zeroed, leaked allocation of `entries` entries.
    let t = unsafe { GrantTable::new(base, entries) };
    Box::leak(Box::new(Grants::new(t)))
}

impl Model {
    fn new(
        sectors: u64,
        max_indirect: u32,
        flush: bool,
        fail_sector: Option<u64>,
    ) -> &'static Model {
        let mut s = BTreeMap::new();
        for (k, v) in [
            (format!("{FRONT}/backend"), BACK.to_string()),
            (format!("{FRONT}/backend-id"), BACKEND.to_string()),
            (format!("{FRONT}/state"), "1".into()),
            (format!("{BACK}/state"), "2".into()),
            (format!("{BACK}/sectors"), sectors.to_string()),
            (format!("{BACK}/sector-size"), "512".into()),
            (
                format!("{BACK}/feature-flush-cache"),
                if flush { "1" } else { "0" }.into(),
            ),
        ] {
            s.insert(k, v);
        }
        if max_indirect > 0 {
            s.insert(
                format!("{BACK}/feature-max-indirect-segments"),
                max_indirect.to_string(),
            );
        }
        // SAFETY: a zeroed, leaked page.
        let xs = SharedIface(unsafe { Interface::new(page_alloc(4096) as *mut u8) });
        Box::leak(Box::new(Model {
            store: Mutex::new(s),
            xs,
            grants: grants_table(),
            disk: Mutex::new(vec![0u8; sectors as usize * 512]),
            fail_sector,
            handlers: Mutex::new(Vec::new()),
            ring: Mutex::new(None),
            requests: AtomicUsize::new(0),
            indirect: AtomicUsize::new(0),
            flushes: AtomicUsize::new(0),
        }))
    }

    /// The host address a grant lets the backend use, checking it.
    fn map_grant(&self, gref: u32, device_writes: bool) -> u64 {
        let g = self.grants.0.lock();
        let (flags, domid, frame) = g.read(gref);
        assert!(flags & GTF_PERMIT_ACCESS != 0, "grant {gref} not permitted");
        assert_eq!(domid, BACKEND, "grant {gref} for the wrong domain");
        if device_writes {
            assert!(
                flags & GTF_READONLY == 0,
                "grant {gref} read-only for a read"
            );
        }
        g.set_busy(
            gref,
            if device_writes {
                GTF_WRITING
            } else {
                GTF_READING
            },
        );
        virt(u64::from(frame) << 12)
    }

    fn unmap_grant(&self, gref: u32) {
        self.grants.0.lock().set_busy(gref, 0);
    }

    fn xenstore(&self) {
        let bytes = self.xs.0.take_requests();
        let mut at = 0;
        while at + 16 <= bytes.len() {
            let (kind, id, len) = xenstore::header(&bytes[at..at + 16]);
            let body = &bytes[at + 16..at + 16 + len];
            at += 16 + len;
            let mut parts = body.splitn(2, |&c| c == 0);
            let path = String::from_utf8_lossy(parts.next().unwrap_or(&[])).to_string();
            let reply = match kind {
                xenstore::XS_READ => match self.store.lock().unwrap().get(&path) {
                    Some(v) => (kind, v.as_bytes().to_vec()),
                    None => (xenstore::XS_ERROR, b"ENOENT\0".to_vec()),
                },
                xenstore::XS_WRITE => {
                    let value = String::from_utf8_lossy(parts.next().unwrap_or(&[])).to_string();
                    self.store
                        .lock()
                        .unwrap()
                        .insert(path.clone(), value.clone());
                    if path == format!("{FRONT}/state") && value == "3" {
                        self.connect();
                    }
                    (kind, b"OK\0".to_vec())
                }
                xenstore::XS_DIRECTORY => {
                    let prefix = format!("{path}/");
                    let mut names: Vec<String> = self
                        .store
                        .lock()
                        .unwrap()
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .map(|k| k.split('/').next().unwrap_or("").to_string())
                        .collect();
                    names.dedup();
                    let mut b = Vec::new();
                    for n in names {
                        b.extend_from_slice(n.as_bytes());
                        b.push(0);
                    }
                    (kind, b)
                }
                _ => (xenstore::XS_ERROR, b"EINVAL\0".to_vec()),
            };
            self.xs
                .0
                .put_response(&xenstore::message(reply.0, id, &reply.1));
        }
    }

    /// blkback's connect: map the ring through its grant, go Connected.
    fn connect(&self) {
        let s = self.store.lock().unwrap().clone();
        let ring_ref: u32 = s[&format!("{FRONT}/ring-ref")].parse().unwrap();
        let port: u32 = s[&format!("{FRONT}/event-channel")].parse().unwrap();
        assert_eq!(s[&format!("{FRONT}/protocol")], "x86_64-abi");
        assert!(port >= 10, "front published an unallocated port");
        let page = self.map_grant(ring_ref, true);
        *self.ring.lock().unwrap() = Some((page, 0));
        self.store
            .lock()
            .unwrap()
            .insert(format!("{BACK}/state"), "4".into());
    }

    /// blkback: serves every queued request.
    fn serve(&self) {
        let Some((page, mut cons)) = *self.ring.lock().unwrap() else {
            panic!("event on the blkif port before connect");
        };
        // SAFETY: the granted ring page (a live host allocation).
        let sring = unsafe { Sring::new(page as *mut u8) };
        let prod = sring.idx(REQ_PROD);
        while cons != prod {
            let s = sring.slot(cons);
            // SAFETY: a request slot below req_prod.
            let (op, id, sector) = unsafe {
                (
                    s.read_volatile(),
                    (s.add(8) as *const u64).read_volatile(),
                    (s.add(16) as *const u64).read_volatile(),
                )
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut segs = Vec::new();
            let real_op;
            if op == ring::OP_INDIRECT {
                self.indirect.fetch_add(1, Ordering::Relaxed);
                // SAFETY: as above.
                let (iop, n) = unsafe {
                    (
                        s.add(1).read_volatile(),
                        (s.add(2) as *const u16).read_volatile(),
                    )
                };
                real_op = iop;
                let pages = (n as usize).div_ceil(512);
                for p in 0..pages {
                    // SAFETY: as above.
                    let gref = unsafe { (s.add(28 + 4 * p) as *const u32).read_volatile() };
                    let ind = self.map_grant(gref, false);
                    for i in 0..(n as usize - p * 512).min(512) {
                        let e = (ind + 8 * i as u64) as *const u8;
                        // SAFETY: an entry of the granted indirect page.
                        unsafe {
                            segs.push((
                                (e as *const u32).read_volatile(),
                                e.add(4).read_volatile(),
                                e.add(5).read_volatile(),
                            ));
                        }
                    }
                    self.unmap_grant(gref);
                }
            } else {
                real_op = op;
                // SAFETY: as above.
                let n = unsafe { s.add(1).read_volatile() } as usize;
                assert!(n <= ring::MAX_DIRECT_SEGMENTS);
                for i in 0..n {
                    let e = s.wrapping_add(24 + 8 * i);
                    // SAFETY: segment `i` of the request slot.
                    unsafe {
                        segs.push((
                            (e as *const u32).read_volatile(),
                            e.add(4).read_volatile(),
                            e.add(5).read_volatile(),
                        ));
                    }
                }
            }
            let status = self.io(real_op, sector, &segs);
            // The response overwrites the request's slot.
            let r = sring.slot(sring.idx(RSP_PROD));
            // SAFETY: the slot of the oldest unanswered request.
            unsafe {
                (r as *mut u64).write_volatile(id);
                r.add(8).write_volatile(real_op);
                (r.add(10) as *mut i16).write_volatile(status);
            }
            sring.set_idx(RSP_PROD, sring.idx(RSP_PROD).wrapping_add(1));
            cons = cons.wrapping_add(1);
        }
        // RING_FINAL_CHECK_FOR_REQUESTS: ask for an event at the next one.
        sring.set_idx(ring::REQ_EVENT, cons.wrapping_add(1));
        self.ring.lock().unwrap().as_mut().unwrap().1 = cons;
    }

    fn io(&self, op: u8, sector: u64, segs: &[(u32, u8, u8)]) -> i16 {
        if op == ring::OP_FLUSH_DISKCACHE {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            return ring::RSP_OKAY;
        }
        let mut disk = self.disk.lock().unwrap();
        let mut cursor = sector * 512;
        let mut status = ring::RSP_OKAY;
        for &(gref, first, last) in segs {
            assert!(
                first <= last && last < 8,
                "bad sector range {first}..{last}"
            );
            let page = self.map_grant(gref, op == ring::OP_READ);
            let len = (usize::from(last - first) + 1) * 512;
            let at = cursor as usize;
            let bad = self
                .fail_sector
                .is_some_and(|b| (cursor / 512..(cursor + len as u64) / 512).contains(&b));
            if at + len > disk.len() || bad {
                status = ring::RSP_ERROR;
            } else {
                let p = (page + u64::from(first) * 512) as *mut u8;
                // SAFETY: inside the granted page.
                let buf = unsafe { core::slice::from_raw_parts_mut(p, len) };
                match op {
                    ring::OP_READ => buf.copy_from_slice(&disk[at..at + len]),
                    ring::OP_WRITE => disk[at..at + len].copy_from_slice(buf),
                    _ => status = ring::RSP_EOPNOTSUPP,
                }
            }
            self.unmap_grant(gref);
            cursor += len as u64;
        }
        status
    }
}

impl XenPlatform for Model {
    fn notify(&self, port: u32) {
        if port == XS_PORT {
            self.xenstore();
            return;
        }
        self.serve();
        let h = self.handlers.lock().unwrap()[(port - 10) as usize];
        cairn_sync::cpu::host::set_context(cairn_sync::Context::Irq);
        (h.func)(h.arg);
        cairn_sync::cpu::host::set_context(cairn_sync::Context::KernelLock);
    }

    fn alloc_unbound(&self, remote: u16, h: IrqHandler) -> Option<u32> {
        assert_eq!(remote, BACKEND);
        let mut hs = self.handlers.lock().unwrap();
        hs.push(h);
        Some(9 + hs.len() as u32)
    }
}

/// Connects a front to `m` (the caller holds the test environment).
fn connect(m: &'static Model) -> &'static blkfront::BlkFront {
    cairn_sync::cpu::host::set_context(cairn_sync::Context::KernelLock);
    let kick = || m.notify(XS_PORT);
    let wait = || {};
    let mut xs = Client::new(&m.xs.0, &kick, &wait);
    xs.patience = 10;
    assert_eq!(xs.directory("device/vbd").unwrap(), vec!["768".to_string()]);
    blkfront::probe(m, m.grants, &mut xs, "768", 0).expect("probe")
}

/// A page-aligned host buffer.
fn buffer(bytes: usize) -> u64 {
    page_alloc(bytes)
}

struct Done(Arc<Mutex<Option<Status>>>);

fn waiter() -> (Done, impl FnOnce(Status) + Send + 'static) {
    let s = Arc::new(Mutex::new(None));
    let s2 = s.clone();
    (Done(s), move |st| {
        assert_eq!(
            cairn_sync::context(),
            cairn_sync::Context::Bh,
            "completion outside bh"
        );
        *s2.lock().unwrap() = Some(st);
    })
}

impl Done {
    fn get(&self) -> Option<Status> {
        *self.0.lock().unwrap()
    }
}

fn fill(addr: u64, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: inside a live test buffer.
        unsafe {
            ((addr as usize + i) as *mut u8).write((i as u8).wrapping_mul(7).wrapping_add(seed))
        };
    }
}

fn check(addr: u64, len: usize, seed: u8) -> bool {
    (0..len).all(|i| {
        // SAFETY: inside a live test buffer.
        unsafe {
            ((addr as usize + i) as *const u8).read()
                == (i as u8).wrapping_mul(7).wrapping_add(seed)
        }
    })
}

#[test]
fn handshake_connects_and_reads_features() {
    let _env = setup();
    let m = Model::new(4096, 256, true, None);
    let d = connect(m);
    let s = m.store.lock().unwrap().clone();
    assert_eq!(s[&format!("{FRONT}/state")], "4");
    assert_eq!(s[&format!("{BACK}/state")], "4");
    assert_eq!(d.info().sectors, 4096);
    assert!(d.info().flush);
    assert_eq!(d.info().queue_depth, ring::SLOTS);
    assert!(
        d.info().max_sectors >= 1024,
        "indirect requests allow large transfers"
    );
}

#[test]
fn many_requests_direct_and_indirect_round_trip() {
    let _env = setup();
    let m = Model::new(16384, 256, true, None);
    let d = connect(m);
    let before = m.grants.0.lock().available();
    // 96 requests (three times the ring) of 1..16 pages, scattered pages.
    let n = 96;
    let bufs: Vec<(u64, usize, u64)> = (0..n)
        .map(|i| {
            let pages = 1 + i % 16;
            (buffer(pages * 4096), pages, (i as u64) * 128)
        })
        .collect();
    for write in [true, false] {
        let mut waits = Vec::new();
        for (i, &(b, pages, sector)) in bufs.iter().enumerate() {
            // Segments in reverse page order: one per page.
            let segs: Vec<Segment> = (0..pages)
                .rev()
                .map(|k| Segment {
                    phys: phys(b) + (k * 4096) as u64,
                    len: 4096,
                })
                .collect();
            let (w, done) = waiter();
            if write {
                for k in 0..pages {
                    fill(b + (k * 4096) as u64, 4096, (i + k) as u8);
                }
                d.submit(Request::write(sector, &segs, done));
            } else {
                for k in 0..pages {
                    fill(b + (k * 4096) as u64, 4096, 0xee);
                }
                d.submit(Request::read(sector, &segs, done));
            }
            assert!(w.get().is_none(), "completed inside submit");
            waits.push(w);
        }
        for _ in 0..1000 {
            run_bh();
            if waits.iter().all(|w| w.get().is_some()) {
                break;
            }
        }
        assert!(waits.iter().all(|w| w.get() == Some(Status::Ok)));
        if !write {
            for (i, &(b, pages, _)) in bufs.iter().enumerate() {
                for k in 0..pages {
                    assert!(
                        check(b + (k * 4096) as u64, 4096, (i + k) as u8),
                        "request {i} page {k}"
                    );
                }
            }
        }
    }
    assert!(
        m.indirect.load(Ordering::Relaxed) > 0,
        "no indirect request was used"
    );
    assert!(m.requests.load(Ordering::Relaxed) >= 2 * n);
    assert_eq!(m.grants.0.lock().available(), before, "grants leaked");
    // Flush reaches the backend.
    let (w, done) = waiter();
    d.submit(Request::flush(done));
    run_bh();
    assert_eq!(w.get(), Some(Status::Ok));
    assert_eq!(m.flushes.load(Ordering::Relaxed), 1);
}

#[test]
fn backend_without_indirect_limits_requests() {
    let _env = setup();
    let m = Model::new(1024, 0, false, None);
    let d = connect(m);
    assert!(d.info().max_sectors * 8 / 8 <= 64 && d.info().max_segments <= 3);
    let b = buffer(8 * 4096);
    fill(b, 8 * 4096, 3);
    let (w, done) = waiter();
    d.submit(Request::write(
        8,
        &[Segment {
            phys: phys(b),
            len: 8 * 4096,
        }],
        done,
    ));
    run_bh();
    assert_eq!(w.get(), Some(Status::Ok));
    assert_eq!(m.indirect.load(Ordering::Relaxed), 0);
    // Too large for this backend: refused, in bh context.
    let big = buffer(16 * 4096);
    let (w, done) = waiter();
    d.submit(Request::read(
        0,
        &[Segment {
            phys: phys(big),
            len: 16 * 4096,
        }],
        done,
    ));
    assert!(w.get().is_none());
    run_bh();
    assert_eq!(w.get(), Some(Status::Unsupported));
    // Flush without a backend feature completes at once (in bh).
    let (w, done) = waiter();
    d.submit(Request::flush(done));
    run_bh();
    assert_eq!(w.get(), Some(Status::Ok));
}

#[test]
fn errors_and_out_of_range_reach_the_caller() {
    let _env = setup();
    let m = Model::new(1024, 64, true, Some(100));
    let d = connect(m);
    let before = m.grants.0.lock().available();
    let b = phys(buffer(4096));
    let cases: [(u64, u64, u32, Status); 4] = [
        (96, b, 4096, Status::IoError),       // covers the failing sector
        (1020, b, 4096, Status::OutOfRange),  // runs past the end
        (0, b + 2, 512, Status::Unsupported), // not sector-aligned in memory
        (200, b, 4096, Status::Ok),           // the backend keeps working
    ];
    for (sector, phys, len, want) in cases {
        let (w, done) = waiter();
        d.submit(Request::read(sector, &[Segment { phys, len }], done));
        assert!(w.get().is_none(), "completed inside submit");
        run_bh();
        assert_eq!(w.get(), Some(want), "read at {sector}");
    }
    assert_eq!(m.grants.0.lock().available(), before, "grants leaked");
}

#[test]
fn grant_table_refuses_to_end_busy_grants() {
    let base = page_alloc(4096) as *mut grant::Entry;
    // SAFETY: a zeroed page of 512 entries.
    let mut t = unsafe { GrantTable::new(base, 512) };
    let r = t.grant(3, 0x1234, true).unwrap();
    assert_eq!(t.read(r), (GTF_PERMIT_ACCESS | GTF_READONLY, 3, 0x1234));
    t.set_busy(r, GTF_READING);
    assert_eq!(t.end(r), Err(grant::GrantError::InUse));
    t.set_busy(r, 0);
    assert_eq!(t.end(r), Ok(()));
    assert_eq!(t.read(r).0, 0);
    let all: Vec<u32> = (0..t.available())
        .map(|_| t.grant(0, 1, false).unwrap())
        .collect();
    assert_eq!(all.len(), 512 - grant::FIRST_REF as usize);
    assert_eq!(t.grant(0, 1, false), Err(grant::GrantError::Exhausted));
}

#[test]
fn xenstore_reports_missing_keys() {
    let _env = setup();
    let m = Model::new(8, 0, false, None);
    let kick = || m.notify(XS_PORT);
    let wait = || {};
    let mut xs = Client::new(&m.xs.0, &kick, &wait);
    assert_eq!(
        xs.read("no/such/key"),
        Err(xenstore::XsError::Store("ENOENT".into()))
    );
    xs.write("a/b", "c").unwrap();
    assert_eq!(xs.read("a/b").unwrap(), "c");
    // Many round trips wrap the 1 KiB rings.
    for i in 0..200 {
        xs.write("a/n", &format!("{i}")).unwrap();
        assert_eq!(xs.read_u64("a/n"), Some(i));
    }
}

#[test]
fn front_ring_notifies_only_when_the_backend_asks() {
    // SAFETY: a zeroed, leaked page.
    let mut f = ring::FrontRing::new(unsafe { Sring::new(page_alloc(4096) as *mut u8) });
    let segs = [ring::Seg {
        gref: 9,
        first_sect: 0,
        last_sect: 7,
    }];
    f.put(&ring::Req::Direct {
        op: ring::OP_READ,
        id: 1,
        sector: 0,
        segs: &segs,
    });
    assert!(f.push(), "req_event = 1: the first request notifies");
    f.put(&ring::Req::Direct {
        op: ring::OP_READ,
        id: 2,
        sector: 8,
        segs: &segs,
    });
    assert!(!f.push(), "the backend has not asked for another event");
    f.sring.set_idx(ring::REQ_EVENT, 3);
    f.put(&ring::Req::Direct {
        op: ring::OP_READ,
        id: 3,
        sector: 16,
        segs: &segs,
    });
    assert!(f.push());
    assert_eq!(f.free_slots(), ring::SLOTS - 3);
    let _ = AtomicBool::new(false);
}
