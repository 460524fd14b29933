//! Host tests of the driver queue skeleton against a model device: a
//! number of command slots, commands the test finishes when it wants
//! (with any status, or "start me again"), and counters of what the
//! device saw.

use super::*;
use crate::testenv::{pending_bh, run_bh, setup};
use cairn_block::Segment;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::vec;
use std::vec::Vec;

static CLASS: LockClass = LockClass::new("drivers.test_queue");

/// What the model does with a finished command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Status(Status),
    Retry,
}

struct Model {
    slots: usize,
    in_flight: Vec<(Request, u32)>,
    finished: Vec<(Request, u32, End)>,
    /// Sectors in the order the device started them (flush: u64::MAX).
    started: Vec<u64>,
    doorbells: usize,
    /// Requests at this sector are refused by the hardware.
    refuse: Option<u64>,
}

impl Model {
    fn new(slots: usize) -> Model {
        Model {
            slots,
            in_flight: Vec::new(),
            finished: Vec::new(),
            started: Vec::new(),
            doorbells: 0,
            refuse: None,
        }
    }

    /// Finishes the `n` oldest commands with `end`.
    fn finish(&mut self, n: usize, end: End) {
        for (r, tag) in self.in_flight.drain(..n.min(self.in_flight.len())) {
            self.finished.push((r, tag, end));
        }
    }
}

impl Hardware for Model {
    type Tag = u32;

    fn issue(&mut self, r: Request, tag: u32) -> Issue<u32> {
        if Some(r.sector) == self.refuse {
            return Issue::Finished(r, Status::Unsupported);
        }
        if self.in_flight.len() == self.slots {
            return Issue::Busy(r, tag);
        }
        self.started.push(if r.op == Op::Flush {
            u64::MAX
        } else {
            r.sector
        });
        self.in_flight.push((r, tag));
        Issue::Started
    }

    fn doorbell(&mut self) {
        self.doorbells += 1;
    }

    fn harvest(&mut self, out: &mut Harvest<'_, u32>) {
        for (r, tag, end) in self.finished.drain(..) {
            match end {
                End::Status(s) => out.finish(r, s),
                End::Retry => out.retry(r, tag + 1),
            }
        }
    }
}

fn info(sectors: u64, flush: bool) -> DeviceInfo {
    DeviceInfo {
        name: "model0".into(),
        model: "model".into(),
        sectors,
        queue_depth: 4,
        max_segments: 4,
        max_sectors: 64,
        flush,
    }
}

const BUF: u64 = 0x10_0000;

/// Completion statuses, in completion order, and the context each ran in.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(u64, Status, cairn_sync::Context)>>>);

impl Log {
    fn done(&self, id: u64) -> impl FnOnce(Status) + Send + 'static + use<> {
        let me = self.0.clone();
        move |s| me.lock().unwrap().push((id, s, cairn_sync::context()))
    }
    fn ids(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|e| e.0).collect()
    }
    fn status_of(&self, id: u64) -> Option<Status> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.0 == id)
            .map(|e| e.1)
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn read(sector: u64, done: impl FnOnce(Status) + Send + 'static) -> Request {
    Request::read(
        sector,
        &[Segment {
            phys: BUF,
            len: 512,
        }],
        done,
    )
}

#[test]
fn a_full_device_queues_in_order_and_rings_once_per_batch() {
    let _env = setup();
    let q = DriverQueue::leak(&CLASS, Model::new(4), 16);
    let info = info(1000, true);
    let log = Log::default();
    for s in 0..10 {
        q.submit(read(s, log.done(s)), 0, &info);
    }
    assert_eq!(log.len(), 0, "a completion ran inside submit");
    assert_eq!(pending_bh(), 0, "nothing finished: no bh work");
    q.with_hw(|m| {
        assert_eq!(m.started, [0, 1, 2, 3]);
        assert_eq!(m.doorbells, 4, "one doorbell per started submit");
    });
    assert_eq!(q.backlog(), (6, 0));
    assert_eq!(q.stats.queued.load(Ordering::Relaxed), 6);

    // The device finishes two: both complete, the next two start in one
    // batch, and a new submit does not overtake the four still waiting.
    q.with_hw(|m| m.finish(2, End::Status(Status::Ok)));
    q.interrupt();
    q.interrupt(); // coalesced with the first
    assert_eq!(pending_bh(), 1);
    q.submit(read(100, log.done(100)), 0, &info);
    run_bh();
    assert_eq!(log.ids(), [0, 1]);
    q.with_hw(|m| {
        assert_eq!(m.started, [0, 1, 2, 3, 4, 5]);
        assert_eq!(m.doorbells, 5, "one doorbell for the batch");
    });
    for _ in 0..10 {
        q.with_hw(|m| m.finish(4, End::Status(Status::Ok)));
        q.interrupt();
        run_bh();
    }
    q.with_hw(|m| assert_eq!(m.started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]));
    assert_eq!(log.ids(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]);
    assert!(
        log.0
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.2 == cairn_sync::Context::Bh),
        "every completion runs in bh context"
    );
    let [sub, comp, err, irqs, _, _] = q.stats.snapshot();
    assert_eq!((sub, comp, err, irqs), (11, 11, 0, 12));
}

#[test]
fn bad_requests_end_in_bh_without_reaching_the_device() {
    let _env = setup();
    let q = DriverQueue::leak(&CLASS, Model::new(4), 16);
    let log = Log::default();
    let no_cache = info(1000, false);
    let odd = Request::read(
        0,
        &[Segment {
            phys: BUF,
            len: 100,
        }],
        log.done(1),
    );
    q.submit(odd, 0, &no_cache);
    q.submit(read(1000, log.done(2)), 0, &no_cache);
    q.submit(read(u64::MAX - 1, log.done(3)), 0, &no_cache);
    q.submit(Request::flush(log.done(4)), 0, &no_cache);
    assert_eq!(log.len(), 0, "completed inside submit");
    run_bh();
    assert_eq!(log.status_of(1), Some(Status::Unsupported));
    assert_eq!(log.status_of(2), Some(Status::OutOfRange));
    assert_eq!(log.status_of(3), Some(Status::OutOfRange));
    assert_eq!(log.status_of(4), Some(Status::Ok), "nothing to flush");
    q.with_hw(|m| assert!(m.started.is_empty() && m.doorbells == 0));
    assert_eq!(q.stats.errors.load(Ordering::Relaxed), 3);

    // With a write cache the flush reaches the device.
    q.submit(Request::flush(log.done(5)), 0, &info(1000, true));
    q.with_hw(|m| assert_eq!(m.started, [u64::MAX]));
    // A request the hardware itself refuses ends in bh, too.
    q.with_hw(|m| m.refuse = Some(7));
    q.submit(read(7, log.done(6)), 0, &no_cache);
    assert_eq!(log.status_of(6), None);
    run_bh();
    assert_eq!(log.status_of(6), Some(Status::Unsupported));
}

#[test]
fn a_completion_may_submit_to_its_own_queue() {
    // Completions run with the queue lock released: a chain where each
    // completion submits the next request must not deadlock (or trip the
    // lock validator's recursion check).
    let _env = setup();
    let q = DriverQueue::leak(&CLASS, Model::new(2), 16);
    let count = Arc::new(AtomicUsize::new(0));
    fn chain(q: &'static DriverQueue<Model>, n: u64, count: Arc<AtomicUsize>) -> Request {
        read(n, move |s| {
            assert_eq!(s, Status::Ok);
            count.fetch_add(1, Ordering::SeqCst);
            if n < 50 {
                q.submit(chain(q, n + 1, count.clone()), 0, &info(1000, true));
            }
        })
    }
    q.submit(chain(q, 0, count.clone()), 0, &info(1000, true));
    for _ in 0..100 {
        q.with_hw(|m| m.finish(2, End::Status(Status::Ok)));
        q.interrupt();
        run_bh();
    }
    assert_eq!(count.load(Ordering::SeqCst), 51);
}

#[test]
fn retried_commands_start_again_before_waiting_ones() {
    let _env = setup();
    let q = DriverQueue::leak(&CLASS, Model::new(2), 16);
    let info = info(1000, true);
    let log = Log::default();
    let tags = Arc::new(Mutex::new(Vec::new()));
    for s in 0..4 {
        q.submit(read(s, log.done(s)), 10 * s as u32, &info);
    }
    // Both in-flight commands come back "start me again" (a UNIT
    // ATTENTION); they keep their order and go before 2 and 3.
    q.with_hw(|m| m.finish(2, End::Retry));
    q.interrupt();
    run_bh();
    assert_eq!(log.len(), 0);
    q.with_hw(|m| {
        assert_eq!(m.started, [0, 1, 0, 1]);
        tags.lock()
            .unwrap()
            .extend(m.in_flight.iter().map(|(_, t)| *t));
    });
    assert_eq!(
        *tags.lock().unwrap(),
        [1, 11],
        "the retry carries its new tag"
    );
    assert_eq!(q.stats.retried.load(Ordering::Relaxed), 2);
    q.with_hw(|m| m.finish(1, End::Status(Status::IoError)));
    q.interrupt();
    run_bh();
    assert_eq!(log.status_of(0), Some(Status::IoError));
    q.with_hw(|m| assert_eq!(m.started, [0, 1, 0, 1, 2]));
}

#[test]
fn many_threads_submit_while_the_device_finishes() {
    let _env = setup();
    let q = DriverQueue::leak(&CLASS, Model::new(8), 64);
    const THREADS: u64 = 4;
    const EACH: u64 = 300;
    let counts: Arc<Vec<AtomicU32>> =
        Arc::new((0..THREADS * EACH).map(|_| AtomicU32::new(0)).collect());
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let counts = counts.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let id = t * EACH + i;
                    let c = counts.clone();
                    q.submit(
                        read(id % 1000, move |s| {
                            assert_eq!(s, Status::Ok);
                            c[id as usize].fetch_add(1, Ordering::SeqCst);
                        }),
                        0,
                        &info(1000, true),
                    );
                }
            })
        })
        .collect();
    // This thread is the device and the bh: finish what is in flight,
    // interrupt, run the service, until everything completed.
    let total = || counts.iter().map(|c| c.load(Ordering::SeqCst)).sum::<u32>();
    let mut rounds = 0;
    while total() < (THREADS * EACH) as u32 {
        q.with_hw(|m| {
            let n = m.in_flight.len();
            m.finish(n, End::Status(Status::Ok));
        });
        q.interrupt();
        run_bh();
        rounds += 1;
        assert!(rounds < 1_000_000, "requests lost: {} done", total());
        std::thread::yield_now();
    }
    for s in submitters {
        s.join().unwrap();
    }
    assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == 1));
    assert_eq!(q.backlog(), (0, 0));
    q.with_hw(|m| assert_eq!(m.started.len(), (THREADS * EACH) as usize));
    let _ = vec![0u8; 0];
}
