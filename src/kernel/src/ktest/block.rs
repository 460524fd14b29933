//! Block driver tests, each on a scratch disk xtask attaches (the
//! `storage=`, `disk=`, `inject=` and `queues=` words of the catalogue line, see
//! `xtask/src/disks.rs`).
//!
//! * `blk_<driver>` (virtio, ata, pvscsi, virtio_scsi, nvme): whole-disk
//!   write / read / verify from several kernel
//!   threads with many requests in flight (scatter-gather requests, a burst
//!   beyond the queue depth), flush, out-of-range and malformed requests;
//!   every completion must run in bh context.
//! * `blk_virtio`, `blk_virtio_1q`, `blk_virtio_mq2` (-smp 2),
//!   `blk_virtio_mq4` (-smp 4): QEMU's default `num-queues`, then 1, 2
//!   and 4 (the `queues=` word): the driver uses one request queue per
//!   vCPU (at most what the device offers), the whole-disk pass from
//!   threads on every vCPU verifies the data, and every queue must have
//!   carried requests and taken its own interrupts.
//! * `blk_<driver>_errors`: `blkdebug` fails reads and writes at given
//!   sectors and the first flush; those requests must end in `IoError`,
//!   the kernel keeps running and later requests succeed.
//!
//! Threads block on completions through wait queues (kernel lock released
//! while they sleep). Buffers are DMA memory, allocated once per boot.

use super::{Expect, KernelTest};
use crate::sched::OneShot;
use crate::sched::waitqueue::WaitQueue;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::{Request, Segment, Status, Volume};
use cairn_sync::Context;
use core::sync::atomic::{AtomicUsize, Ordering};

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "blk_virtio",
        smp: &[2],
        expect: Expect::Pass,
        run: || exercise("virtio-blk", 16).and_then(|()| virtio_blk_queues(None)),
    },
    KernelTest {
        name: "blk_virtio_1q",
        smp: &[2],
        expect: Expect::Pass,
        run: || exercise("virtio-blk", 8).and_then(|()| virtio_blk_queues(Some(1))),
    },
    KernelTest {
        name: "blk_virtio_mq2",
        smp: &[2],
        expect: Expect::Pass,
        run: || exercise("virtio-blk", 8).and_then(|()| virtio_blk_queues(Some(2))),
    },
    KernelTest {
        name: "blk_virtio_mq4",
        smp: &[4],
        expect: Expect::Pass,
        run: || exercise("virtio-blk", 8).and_then(|()| virtio_blk_queues(Some(4))),
    },
    KernelTest {
        name: "blk_virtio_errors",
        smp: &[2],
        expect: Expect::Pass,
        run: || errors("virtio-blk", 4),
    },
    KernelTest {
        name: "blk_ata",
        smp: &[2],
        expect: Expect::Pass,
        run: || exercise("ata", 8),
    },
    KernelTest {
        name: "blk_ata_errors",
        smp: &[2],
        expect: Expect::Pass,
        run: || errors("ata", 4),
    },
    KernelTest {
        name: "blk_pvscsi",
        smp: &[2],
        expect: Expect::Pass,
        run: || exercise("pvscsi", 16),
    },
    KernelTest {
        name: "blk_pvscsi_errors",
        smp: &[2],
        expect: Expect::Pass,
        run: || errors("pvscsi", 4),
    },
    KernelTest {
        name: "blk_virtio_scsi",
        smp: &[2],
        expect: Expect::Pass,
        run: || exercise("virtio-scsi", 16),
    },
    KernelTest {
        name: "blk_virtio_scsi_errors",
        smp: &[2],
        expect: Expect::Pass,
        run: || errors("virtio-scsi", 4),
    },
    KernelTest {
        name: "blk_virtio_scsi_events",
        smp: &[2],
        expect: Expect::Pass,
        run: virtio_scsi_events,
    },
    KernelTest {
        name: "blk_nvme",
        smp: &[1, 2, 4],
        expect: Expect::Pass,
        run: || exercise("nvme", 16),
    },
    KernelTest {
        name: "blk_nvme_errors",
        smp: &[2],
        expect: Expect::Pass,
        run: || errors("nvme", 4),
    },
];

/// Sectors where the error tests inject failures.
const BAD_READ: u64 = 2048;
const BAD_WRITE: u64 = 4096;

/// The disk words of each test's catalogue line.
pub fn catalogue_words(name: &str) -> Option<&'static str> {
    Some(match name {
        "blk_virtio" => "storage=virtio disk=16",
        "blk_virtio_1q" => "storage=virtio disk=8 queues=1",
        "blk_virtio_mq2" => "storage=virtio disk=8 queues=2",
        "blk_virtio_mq4" => "storage=virtio disk=8 queues=4",
        "blk_virtio_errors" => "storage=virtio disk=4 inject=read@2048,write@4096,flush",
        "blk_ata" => "storage=ata disk=8",
        "blk_ata_errors" => "storage=ata disk=4 inject=read@2048,write@4096,flush",
        "blk_pvscsi" => "storage=pvscsi disk=16",
        "blk_pvscsi_errors" => "storage=pvscsi disk=4 inject=read@2048,write@4096,flush",
        "blk_virtio_scsi" => "storage=virtio-scsi disk=16",
        "blk_virtio_scsi_errors" => "storage=virtio-scsi disk=4 inject=read@2048,write@4096,flush",
        "blk_virtio_scsi_events" => "storage=virtio-scsi disk=4 qmp",
        "blk_nvme" => "storage=nvme disk=16",
        "blk_nvme_errors" => "storage=nvme disk=4 inject=read@2048,write@4096,flush",
        _ => return None,
    })
}

/// Completions that ran outside bh context.
static WRONG_CONTEXT: AtomicUsize = AtomicUsize::new(0);

/// Where a test waits for any of several requests (or helper threads):
/// every test completion wakes it.
static TEST_WAIT: WaitQueue = WaitQueue::new();

/// Sleeps until `cond()`, re-checked at every test completion.
fn wait_until(cond: impl FnMut() -> bool) {
    TEST_WAIT.wait_until(cond);
}

/// A request's completion for a thread to wait on, checking the context.
fn waiter() -> (OneShot<Status>, impl FnOnce(Status) + Send + 'static) {
    let w = OneShot::new();
    let c = w.completion();
    let done = move |s: Status| {
        if cairn_sync::context() != Context::Bh {
            WRONG_CONTEXT.fetch_add(1, Ordering::Relaxed);
        }
        c(s);
        TEST_WAIT.wake_all();
    };
    (w, done)
}

/// Submits one request built by `make` and sleeps until it ends.
fn io(v: &Volume, make: impl FnOnce(Box<dyn FnOnce(Status) + Send>) -> Request) -> Status {
    let (w, done) = waiter();
    let done: Box<dyn FnOnce(Status) + Send> = cairn_sync::cpu::bh_safe_alloc(|| Box::new(done));
    v.submit(make(done));
    w.wait()
}

use alloc::boxed::Box;

fn find(prefix: &str) -> Result<Volume, String> {
    crate::block::volumes()
        .into_iter()
        .find(|v| v.name().starts_with(prefix) && v.first_sector() == 0)
        .ok_or_else(|| format!("no {prefix} disk found"))
}

/// DMA buffer memory for a test.
struct Buf {
    phys: u64,
    virt: u64,
    bytes: usize,
}

impl Buf {
    fn new(bytes: usize) -> Result<Buf, String> {
        let (phys, virt) =
            crate::heaps::dma::alloc(bytes).ok_or_else(|| format!("no {bytes} bytes of DMA"))?;
        Ok(Buf { phys, virt, bytes })
    }

    // DMA memory is written by devices behind `&self` anyway; the test
    // never holds two views of one range.
    #[allow(clippy::mut_from_ref)]
    fn words(&self, offset: usize, bytes: usize) -> &mut [u64] {
        assert!(offset + bytes <= self.bytes);
        // SAFETY: the range lies in this buffer, which no request uses while
        // the test touches it (requests are waited for first).
        unsafe {
            core::slice::from_raw_parts_mut((self.virt as usize + offset) as *mut u64, bytes / 8)
        }
    }
}

fn pattern(sector: u64, word: usize, seed: u64) -> u64 {
    (sector << 24) ^ (word as u64) ^ (seed << 52) ^ 0x5a5a_0000_0000
}

/// Fills `bytes` at `offset` of `b` with the pattern of `sector`...
fn fill(b: &Buf, offset: usize, bytes: usize, sector: u64, seed: u64) {
    for (i, w) in b.words(offset, bytes).iter_mut().enumerate() {
        *w = pattern(sector + (i / 64) as u64, i % 64, seed);
    }
}

fn verify(b: &Buf, offset: usize, bytes: usize, sector: u64, seed: u64) -> Result<(), String> {
    for (i, w) in b.words(offset, bytes).iter().enumerate() {
        let want = pattern(sector + (i / 64) as u64, i % 64, seed);
        if *w != want {
            return Err(format!(
                "sector {} word {}: read {w:#x}, wrote {want:#x}",
                sector + (i / 64) as u64,
                i % 64
            ));
        }
    }
    Ok(())
}

const PAGE: usize = 4096;

/// The segments of chunk `slot` in a buffer of `window` chunks of `pages`
/// pages: its pages are taken in reverse order, so that a request's
/// segments are scattered (page `k` of the chunk is buffer page
/// `slot * pages + pages - 1 - k`), and adjacent ones are not merged.
fn segments(b: &Buf, slot: usize, pages: usize) -> Vec<Segment> {
    (0..pages)
        .map(|k| Segment {
            phys: b.phys + ((slot * pages + pages - 1 - k) * PAGE) as u64,
            len: PAGE as u32,
        })
        .collect()
}

/// Byte offset in the buffer of page `k` of chunk `slot`.
fn page_offset(slot: usize, pages: usize, k: usize) -> usize {
    (slot * pages + pages - 1 - k) * PAGE
}

/// One thread's share of the whole-disk pass: chunks `first..end` of
/// `pages` pages, `window` requests in flight.
fn region(
    v: &Volume,
    first: u64,
    end: u64,
    pages: usize,
    window: usize,
    b: &Buf,
    seed: u64,
) -> Result<(), String> {
    let sectors_per_chunk = (pages * PAGE / 512) as u64;
    for write in [true, false] {
        let mut chunk = first;
        while chunk < end {
            let batch: Vec<u64> = (chunk..end.min(chunk + window as u64)).collect();
            let mut waits = Vec::new();
            for (slot, &c) in batch.iter().enumerate() {
                let sector = c * sectors_per_chunk;
                if write {
                    for k in 0..pages {
                        fill(
                            b,
                            page_offset(slot, pages, k),
                            PAGE,
                            sector + (k * 8) as u64,
                            seed,
                        );
                    }
                }
                let segs = segments(b, slot, pages);
                let (w, done) = waiter();
                let r = if write {
                    Request::write(sector, &segs, done)
                } else {
                    for k in 0..pages {
                        b.words(page_offset(slot, pages, k), PAGE).fill(0xdead_beef);
                    }
                    Request::read(sector, &segs, done)
                };
                v.submit(r);
                waits.push(w);
            }
            wait_until(|| waits.iter().all(|w| w.peek().is_some()));
            for (slot, (&c, w)) in batch.iter().zip(&waits).enumerate() {
                let st = w.peek().unwrap_or(Status::IoError);
                let sector = c * sectors_per_chunk;
                if st != Status::Ok {
                    return Err(format!(
                        "{} of sector {sector}: {st:?}",
                        if write { "write" } else { "read" }
                    ));
                }
                if !write {
                    for k in 0..pages {
                        verify(
                            b,
                            page_offset(slot, pages, k),
                            PAGE,
                            sector + (k * 8) as u64,
                            seed,
                        )?;
                    }
                }
            }
            chunk += batch.len() as u64;
        }
    }
    Ok(())
}

static ERROR_CLASS: cairn_sync::LockClass = cairn_sync::LockClass::new("ktest.blk_error");

const THREADS: usize = 4;
const WINDOW: usize = 8;

fn exercise(prefix: &str, mib: u64) -> Result<(), String> {
    WRONG_CONTEXT.store(0, Ordering::Relaxed);
    let v = find(prefix)?;
    let info = v.device_info().clone();
    if v.sectors() != mib * 2048 {
        return Err(format!(
            "{}: {} sectors, expected {}",
            v.name(),
            v.sectors(),
            mib * 2048
        ));
    }
    let pages = 16usize
        .min(info.max_segments as usize)
        .min(info.max_sectors as usize / 8)
        .max(1);
    let chunk_sectors = (pages * PAGE / 512) as u64;
    let chunks = v.sectors() / chunk_sectors;
    let start = crate::time::now_ns();
    // Whole disk, THREADS kernel threads, WINDOW requests each in flight.
    let failures = cairn_sync::cpu::bh_safe_alloc(|| Arc::new(AtomicUsize::new(0)));
    let finished = cairn_sync::cpu::bh_safe_alloc(|| Arc::new(AtomicUsize::new(0)));
    let first_error = Arc::new(cairn_sync::SpinLock::new(&ERROR_CLASS, None::<String>));
    for t in 0..THREADS {
        let v = v.clone();
        let b = Buf::new(WINDOW * pages * PAGE)?;
        let (failures, finished, first_error) =
            (failures.clone(), finished.clone(), first_error.clone());
        let per = chunks.div_ceil(THREADS as u64);
        let (first, end) = (
            (t as u64 * per).min(chunks),
            ((t as u64 + 1) * per).min(chunks),
        );
        crate::sched::thread::spawn("blk-test", move || {
            if let Err(e) = region(&v, first, end, pages, WINDOW, &b, 7) {
                failures.fetch_add(1, Ordering::AcqRel);
                first_error.lock().get_or_insert(e);
            }
            finished.fetch_add(1, Ordering::AcqRel);
            TEST_WAIT.wake_all();
        });
    }
    wait_until(|| finished.load(Ordering::Acquire) == THREADS);
    if failures.load(Ordering::Acquire) != 0 {
        return Err(first_error.lock().clone().unwrap_or_default());
    }
    let pass_ms = (crate::time::now_ns() - start) / 1_000_000;
    crate::info!(
        "{}: whole disk ({} MiB) written and verified by {THREADS} threads, {} x {} KiB scatter-gather requests, {} in flight, in {pass_ms} ms",
        v.name(),
        mib,
        chunks,
        pages * 4,
        THREADS * WINDOW
    );

    // A burst beyond the queue depth: one-sector reads, all submitted at once.
    let burst = (info.queue_depth as usize * 2 + 8).min(300);
    let b = Buf::new(burst * 512)?;
    let mut waits = Vec::new();
    for i in 0..burst {
        let (w, done) = waiter();
        let sector = (i as u64 * 37) % v.sectors();
        v.submit(Request::read(
            sector,
            &[Segment {
                phys: b.phys + (i * 512) as u64,
                len: 512,
            }],
            done,
        ));
        waits.push((sector, w));
    }
    wait_until(|| waits.iter().all(|(_, w)| w.peek().is_some()));
    for (i, (sector, w)) in waits.iter().enumerate() {
        if w.peek() != Some(Status::Ok) {
            return Err(format!("burst read of sector {sector}: {:?}", w.peek()));
        }
        verify(&b, i * 512, 512, *sector, 7)?;
    }

    if prefix == "ata" {
        ata_extra(&v, pages)?;
        second_disk("ata1.1", pages)?;
    }
    if prefix == "pvscsi" {
        second_disk("pvscsi0:2:0", pages)?;
    }
    if prefix == "virtio-scsi" {
        // Another target, and a second LUN of it.
        second_disk("virtio-scsi0:2:0", pages)?;
        second_disk("virtio-scsi0:2:5", pages)?;
    }
    if prefix == "nvme" {
        nvme_extra(&v, pages)?;
    }

    // Flush.
    let st = io(&v, Request::flush);
    if st != Status::Ok {
        return Err(format!("flush: {st:?}"));
    }

    // Out of range and malformed requests end with an error status.
    let one = [Segment {
        phys: b.phys,
        len: 512,
    }];
    let two = [Segment {
        phys: b.phys,
        len: 1024,
    }];
    let cases: [(&str, u64, &[Segment], bool, Status); 5] = [
        (
            "read across the end",
            v.sectors() - 1,
            &two,
            false,
            Status::OutOfRange,
        ),
        (
            "read at the end",
            v.sectors(),
            &one,
            false,
            Status::OutOfRange,
        ),
        (
            "write far past the end",
            u64::MAX - 1,
            &two,
            true,
            Status::OutOfRange,
        ),
        (
            "odd-length segment",
            0,
            &[Segment {
                phys: b.phys,
                len: 100,
            }],
            false,
            Status::Unsupported,
        ),
        (
            "read of the last sector",
            v.sectors() - 1,
            &one,
            false,
            Status::Ok,
        ),
    ];
    for (what, sector, segs, write, want) in cases {
        let st = io(&v, |done| {
            if write {
                Request::write(sector, segs, done)
            } else {
                Request::read(sector, segs, done)
            }
        });
        if st != want {
            return Err(format!("{what}: {st:?}, expected {want:?}"));
        }
    }
    let wrong = WRONG_CONTEXT.load(Ordering::Relaxed);
    if wrong != 0 {
        return Err(format!("{wrong} completion(s) ran outside bh context"));
    }
    Ok(())
}

fn errors(prefix: &str, mib: u64) -> Result<(), String> {
    WRONG_CONTEXT.store(0, Ordering::Relaxed);
    let v = find(prefix)?;
    if v.sectors() != mib * 2048 {
        return Err(format!("{}: {} sectors", v.name(), v.sectors()));
    }
    let b = Buf::new(16 * PAGE)?;
    let seg = |pages: usize| {
        [Segment {
            phys: b.phys,
            len: (pages * PAGE) as u32,
        }]
    };
    let check = |what: &str, st: Status, want: Status| -> Result<(), String> {
        if st == want {
            crate::info!("{}: {what}: {st:?} as expected", v.name());
            Ok(())
        } else {
            Err(format!("{what}: {st:?}, expected {want:?}"))
        }
    };
    fill(&b, 0, PAGE, 0, 3);
    check(
        "write of sectors 0..8",
        io(&v, |d| Request::write(0, &seg(1), d)),
        Status::Ok,
    )?;
    check(
        "first flush (injected)",
        io(&v, Request::flush),
        Status::IoError,
    )?;
    check(
        "read of sector 2048 (injected)",
        io(&v, |d| Request::read(BAD_READ, &seg(1), d)),
        Status::IoError,
    )?;
    check(
        "read of sectors 2040..2056 (injected)",
        io(&v, |d| Request::read(BAD_READ - 8, &seg(2), d)),
        Status::IoError,
    )?;
    check(
        "write of sector 4096 (injected)",
        io(&v, |d| Request::write(BAD_WRITE, &seg(1), d)),
        Status::IoError,
    )?;
    // The kernel and the device carry on.
    b.words(0, PAGE).fill(0);
    check(
        "read of sectors 0..8",
        io(&v, |d| Request::read(0, &seg(1), d)),
        Status::Ok,
    )?;
    verify(&b, 0, PAGE, 0, 3)?;
    fill(&b, 0, 4 * PAGE, 100, 4);
    check(
        "write of sectors 100..132",
        io(&v, |d| Request::write(100, &seg(4), d)),
        Status::Ok,
    )?;
    check("second flush", io(&v, Request::flush), Status::Ok)?;
    b.words(0, 4 * PAGE).fill(0);
    check(
        "read of sectors 100..132",
        io(&v, |d| Request::read(100, &seg(4), d)),
        Status::Ok,
    )?;
    verify(&b, 0, 4 * PAGE, 100, 4)?;
    check(
        "read of sector 3000",
        io(&v, |d| Request::read(3000, &seg(1), d)),
        Status::Ok,
    )?;
    check(
        "read of sector 2048 again (injected)",
        io(&v, |d| Request::read(BAD_READ, &seg(1), d)),
        Status::IoError,
    )?;
    let wrong = WRONG_CONTEXT.load(Ordering::Relaxed);
    if wrong != 0 {
        return Err(format!("{wrong} completion(s) ran outside bh context"));
    }
    Ok(())
}

/// ATA only: a PIO pass with LBA48 commands over the first MiB, and the
/// second disk (secondary channel, slave).
fn ata_extra(v: &Volume, pages: usize) -> Result<(), String> {
    use cairn_drivers::ata::{FORCE_LBA48, FORCE_PIO};
    let b = Buf::new(WINDOW * pages * PAGE)?;
    let chunks = (2048 / (pages * 8)) as u64;
    FORCE_PIO.store(true, Ordering::Relaxed);
    FORCE_LBA48.store(true, Ordering::Relaxed);
    let r = region(v, 0, chunks, pages, WINDOW, &b, 9);
    FORCE_PIO.store(false, Ordering::Relaxed);
    FORCE_LBA48.store(false, Ordering::Relaxed);
    r.map_err(|e| format!("PIO/LBA48 pass: {e}"))?;
    // The DMA/LBA28 path reads what PIO wrote.
    region_read_only(v, chunks, pages, &b, 9)?;
    crate::info!("{}: PIO + LBA48 pass over the first MiB verified", v.name());
    Ok(())
}

/// Asks xtask to send `command` (QMP JSON) to QEMU (the `qmp` catalogue
/// word opens the socket; xtask sends each such console line once).
fn qmp(command: &str) {
    crate::println!("ktest: qmp {command}");
}

/// Sleeps until `cond` holds; an error naming `what` after a minute.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let end = crate::time::now_ns() + 60_000_000_000;
    while !cond() {
        if crate::time::now_ns() > end {
            return Err(format!("{what}: nothing after 60 s"));
        }
        crate::sched::sleep(10_000_000);
    }
    Ok(())
}

/// virtio-scsi's event queue against QEMU's own events: twelve resizes of
/// the disk (more than the 8 event buffers: each must be posted again)
/// each raise a parameter-change event; I/O goes on (the UNIT ATTENTION the
/// change leaves is retried); a hot-plugged and unplugged disk raises
/// transport-reset events; no event is missed.
fn virtio_scsi_events() -> Result<(), String> {
    let a = crate::block::virtio_scsi_adapter(0).ok_or("no virtio-scsi adapter")?;
    let v = find("virtio-scsi0:0:0")?;
    let (start, _) = a.event_counts();
    for i in 0..12u64 {
        let size = (5 + i) << 20;
        qmp(&format!(
            r#"{{"execute":"block_resize","arguments":{{"device":"d0","size":{size}}}}}"#
        ));
        wait_for("parameter-change event", || a.event_counts().0 > start + i)?;
    }
    let retried = a.queue().stats.retried.load(Ordering::Relaxed);
    let b = Buf::new(PAGE)?;
    fill(&b, 0, PAGE, 64, 5);
    let seg = [Segment {
        phys: b.phys,
        len: PAGE as u32,
    }];
    let st = io(&v, |d| Request::write(64, &seg, d));
    if st != Status::Ok {
        return Err(format!("write after the resizes: {st:?}"));
    }
    b.words(0, PAGE).fill(0);
    let st = io(&v, |d| Request::read(64, &seg, d));
    if st != Status::Ok {
        return Err(format!("read after the resizes: {st:?}"));
    }
    verify(&b, 0, PAGE, 64, 5)?;
    let retried = a.queue().stats.retried.load(Ordering::Relaxed) - retried;
    if retried == 0 {
        return Err("the capacity change's UNIT ATTENTION was never seen".into());
    }
    let before = a.event_counts().0;
    qmp(
        r#"{"execute":"device_add","arguments":{"driver":"scsi-hd","bus":"vs0.0","drive":"d9","scsi-id":5,"id":"hp0"}}"#,
    );
    wait_for("hot-plug event", || a.event_counts().0 > before)?;
    qmp(r#"{"execute":"device_del","arguments":{"id":"hp0"}}"#);
    wait_for("hot-unplug event", || a.event_counts().0 > before + 1)?;
    let (seen, missed) = a.event_counts();
    if missed != 0 {
        return Err(format!("{missed} event(s) missed"));
    }
    crate::info!(
        "virtio-scsi0: {} events handled, {retried} UNIT ATTENTION retried, none missed",
        seen - start
    );
    Ok(())
}

/// Makes every vCPU submit to `v` (on `dev`): the scheduler runs threads
/// on whichever CPU takes them (one global runqueue, no pinning), so the
/// whole-disk pass may leave a vCPU out. One thread per vCPU yields until
/// it runs on a CPU whose queue pair has carried nothing yet and reads a
/// page there (kernel code is not preempted between the check and the
/// submission); an error if that has not happened within a minute.
fn submit_from_every_cpu<H: cairn_drivers::queue::Hardware>(
    v: &Volume,
    name: &str,
    queues: &'static [&'static cairn_drivers::queue::DriverQueue<H>],
) -> Result<(), String>
where
    cairn_drivers::queue::DriverQueue<H>: Sync,
{
    let unused = || queues.iter().filter(|q| q.stats.snapshot()[0] == 0).count();
    let left = unused();
    if left == 0 {
        return Ok(());
    }
    let cpus = crate::percpu::cpus().len();
    let end = crate::time::now_ns() + 60_000_000_000;
    let finished = cairn_sync::cpu::bh_safe_alloc(|| Arc::new(AtomicUsize::new(0)));
    let failures = cairn_sync::cpu::bh_safe_alloc(|| Arc::new(AtomicUsize::new(0)));
    for _ in 0..cpus {
        let v = v.clone();
        let b = Buf::new(PAGE)?;
        let (finished, failures) = (finished.clone(), failures.clone());
        crate::sched::thread::spawn("blk-cover", move || {
            let seg = [Segment {
                phys: b.phys,
                len: PAGE as u32,
            }];
            while unused() != 0 && crate::time::now_ns() < end {
                let cpu = crate::percpu::this_cpu().index();
                if queues[cpu % queues.len()].stats.snapshot()[0] == 0
                    && io(&v, |d| Request::read(0, &seg, d)) != Status::Ok
                {
                    failures.fetch_add(1, Ordering::AcqRel);
                    break;
                }
                crate::sched::thread::yield_now();
            }
            finished.fetch_add(1, Ordering::AcqRel);
            TEST_WAIT.wake_all();
        });
    }
    wait_until(|| finished.load(Ordering::Acquire) == cpus);
    if failures.load(Ordering::Acquire) != 0 {
        return Err("a read submitted from an idle vCPU failed".into());
    }
    let still = unused();
    if still != 0 {
        // Runnable threads kept yielding for a minute and some vCPU never
        // ran one: the scheduler left it idle beside queued work.
        return Err(format!(
            "{still} vCPU(s) ran none of {cpus} yielding threads in 60 s"
        ));
    }
    crate::info!("{name}: {left} vCPU(s) the whole-disk pass left out submitted a read each");
    Ok(())
}

/// virtio-blk only: one request queue per vCPU when the device offers
/// several (`num-queues`), else one; every queue carried requests (the
/// whole-disk pass, written and verified by threads on every vCPU, plus a
/// read from each vCPU it left out) and got its own interrupts.
/// `offered`: the device's `num-queues` (`None`: QEMU's default, one per
/// vCPU).
fn virtio_blk_queues(offered: Option<usize>) -> Result<(), String> {
    let v = find("virtio-blk")?;
    let v = &v;
    let dev = crate::block::virtio_blk_device(0).ok_or("virtio-blk0 is not registered")?;
    let cpus = crate::percpu::cpus().len();
    let qs = dev.queues();
    let want = offered.map_or(cpus, |n| n.min(cpus));
    if qs.len() != want {
        return Err(format!(
            "{} request queue(s) for {cpus} vCPUs (device offers {offered:?})",
            qs.len()
        ));
    }
    submit_from_every_cpu(v, "virtio-blk0", qs)?;
    for (i, q) in qs.iter().enumerate() {
        let [submitted, completed, _, interrupts, _, _] = q.stats.snapshot();
        crate::info!(
            "virtio-blk0 queue {i}: {submitted} submitted, {completed} completed, {interrupts} interrupts"
        );
        if submitted == 0 || interrupts == 0 {
            return Err(format!("request queue {i} was never used"));
        }
    }
    Ok(())
}

/// NVMe only: the second controller's namespaces 1 and 3 (found through
/// Identify), one I/O queue pair per vCPU each taking requests, and
/// requests whose segments PRPs cannot describe in one command.
fn nvme_extra(v: &Volume, pages: usize) -> Result<(), String> {
    second_disk("nvme1n1", pages)?;
    second_disk("nvme1n3", pages)?;
    if find("nvme1n2").is_ok() {
        return Err("nvme1n2 exists: namespace 2 was never attached".into());
    }
    // Every vCPU's queue pair carried requests and got its own interrupts.
    let dev = crate::block::nvme_controller(0).ok_or("nvme0 is not registered")?;
    let cpus = crate::percpu::cpus().len();
    let qs = dev.queues();
    if qs.len() != cpus {
        return Err(format!("{} I/O queue pairs for {cpus} vCPUs", qs.len()));
    }
    submit_from_every_cpu(v, "nvme0", dev.queues())?;
    for (i, q) in qs.iter().enumerate() {
        let [submitted, completed, _, interrupts, _, _] = q.stats.snapshot();
        crate::info!(
            "nvme0 queue {}: {submitted} submitted, {completed} completed, {interrupts} interrupts",
            i + 1
        );
        if submitted == 0 || interrupts == 0 {
            return Err(format!("queue pair {} was never used", i + 1));
        }
    }
    // One request cut into three commands: a sector ending mid-page, a
    // page, then a segment starting mid-page. Its sectors must land where
    // a plain read finds them.
    let b = Buf::new(8 * PAGE)?;
    let first = 4096u64;
    fill(&b, 0, 8 * PAGE, first, 21);
    let whole = [Segment {
        phys: b.phys,
        len: 8 * PAGE as u32,
    }];
    let w = io(v, |d| Request::write(first, &whole, d));
    if w != Status::Ok {
        return Err(format!("plain write: {w:?}"));
    }
    let odd = Buf::new(4 * PAGE)?;
    let segs = [
        Segment {
            phys: odd.phys,
            len: 512,
        },
        Segment {
            phys: odd.phys + PAGE as u64,
            len: PAGE as u32,
        },
        Segment {
            phys: odd.phys + 2 * PAGE as u64 + 1024,
            len: 2048,
        },
    ];
    let st = io(v, |d| Request::read(first + 8, &segs, d));
    if st != Status::Ok {
        return Err(format!("read cut into three commands: {st:?}"));
    }
    verify(&odd, 0, 512, first + 8, 21)?;
    verify(&odd, PAGE, PAGE, first + 9, 21)?;
    verify(&odd, 2 * PAGE + 1024, 2048, first + 17, 21)?;
    crate::info!("{}: a request cut into three commands read back", v.name());
    let _ = pages;
    Ok(())
}

/// The second disk xtask attaches (ATA: secondary channel, slave; pvscsi:
/// target 2): written and verified whole.
fn second_disk(name: &str, pages: usize) -> Result<(), String> {
    let second = find(name)?;
    let b = Buf::new(WINDOW * pages * PAGE)?;
    region(
        &second,
        0,
        second.sectors() / (pages as u64 * 8),
        pages,
        WINDOW,
        &b,
        11,
    )
    .map_err(|e| format!("{name}: {e}"))?;
    crate::info!("{}: whole disk verified", second.name());
    Ok(())
}

/// Reads back chunks `0..chunks` and checks the pattern of `seed`.
fn region_read_only(
    v: &Volume,
    chunks: u64,
    pages: usize,
    b: &Buf,
    seed: u64,
) -> Result<(), String> {
    for c in 0..chunks {
        let sector = c * (pages * 8) as u64;
        let segs = segments(b, 0, pages);
        let st = io(v, |d| Request::read(sector, &segs, d));
        if st != Status::Ok {
            return Err(format!("read of sector {sector}: {st:?}"));
        }
        for k in 0..pages {
            verify(
                b,
                page_offset(0, pages, k),
                PAGE,
                sector + (k * 8) as u64,
                seed,
            )?;
        }
    }
    Ok(())
}

/// `cargo xtask bench blk`: throughput of the first whole disk, printed as
/// `blkbench <workload> qd=<n> ops=<n> bytes=<n> ns=<n>` lines. Not part
/// of the test runs (no CPU counts in the catalogue).
pub static BENCH: &[KernelTest] = &[KernelTest {
    name: "blk_bench",
    smp: &[],
    expect: Expect::Pass,
    run: bench,
}];

fn bench() -> Result<(), String> {
    let v = crate::block::volumes()
        .into_iter()
        .find(|v| v.first_sector() == 0)
        .ok_or("no disk")?;
    let big = Buf::new(1 << 20)?;
    let small = Buf::new(32 * PAGE)?;
    let disk_sectors = v.sectors();
    for (name, write, bytes, total) in [
        ("seq-read-1m", false, 1usize << 20, 64u64 << 20),
        ("seq-write-1m", true, 1 << 20, 64 << 20),
        ("rand-read-4k", false, PAGE, 8 << 20),
        ("rand-write-4k", true, PAGE, 8 << 20),
    ] {
        for qd in [1usize, 32] {
            let ops = total / bytes as u64;
            let sectors = (bytes / 512) as u64;
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let mut next = 0u64;
            let mut issued = 0u64;
            let mut finished = 0u64;
            let mut slots: Vec<Option<OneShot<Status>>> = (0..qd).map(|_| None).collect();
            let start = crate::time::now_ns();
            while finished < ops {
                for (i, s) in slots.iter_mut().enumerate() {
                    if let Some(w) = s
                        && let Some(st) = w.peek()
                    {
                        if st != Status::Ok {
                            return Err(format!("{name}: {st:?}"));
                        }
                        finished += 1;
                        *s = None;
                    }
                    if s.is_none() && issued < ops {
                        let sector = if bytes == PAGE {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            (rng % (disk_sectors / sectors)) * sectors
                        } else {
                            let s0 = next;
                            next = (next + sectors) % (disk_sectors - disk_sectors % sectors);
                            s0
                        };
                        let phys = if bytes == PAGE {
                            small.phys + (i * PAGE) as u64
                        } else {
                            big.phys
                        };
                        let seg = [Segment {
                            phys,
                            len: bytes as u32,
                        }];
                        let (w, done) = waiter();
                        v.submit(if write {
                            Request::write(sector, &seg, done)
                        } else {
                            Request::read(sector, &seg, done)
                        });
                        *s = Some(w);
                        issued += 1;
                    }
                }
                wait_until(|| {
                    slots.iter().flatten().any(|w| w.peek().is_some()) || finished >= ops
                });
            }
            let ns = crate::time::now_ns() - start;
            crate::println!(
                "blkbench {name} qd={qd} ops={ops} bytes={} ns={ns}",
                ops * bytes as u64
            );
        }
    }
    Ok(())
}
