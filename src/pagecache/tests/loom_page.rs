//! Loom model of ONE page's state machine (the crate's real
//! [`cairn_pagecache::Page`], its transitions and waiter lists) driven by
//! four CPUs. The page sits behind a loom mutex standing in for its
//! `IrqSpinLock` (loom cannot explore spin loops within its branch budget;
//! the spinlock itself is cairn-sync's to verify):
//!
//! * a reader (kernel-lock): pins, claims and fills the page (the fill's
//!   DMA and completion run as the device, without the kernel lock) or
//!   waits for someone else's fill, then copies out;
//! * a writer (kernel-lock), twice: leases, claims the page NEW or waits
//!   until it is writable, copies in, commits DIRTY;
//! * an evictor (bh, `shrink`): evicts the page if it is evictable;
//! * writeback (kernel-lock start, device completion): DIRTY → WRITING,
//!   DMA to disk, WRITING → ACTIVE.
//!
//! A second model swaps the evictor for a truncator (kernel-lock, as
//! `Node::truncate`): it waits until the page is settled (no claim, I/O or
//! lease), then discards it if nobody holds it, or else zeroes it and drops
//! its dirty sectors as for the page holding the new end (a held page past
//! the end is detached by the node, which one page cannot model; its state
//! does not change).
//!
//! Checked over every interleaving (bounded preemption):
//! * no illegal transition (`Page::transition` asserts);
//! * no lost wake-up: a waiter parks until its waker unparks it; a lost
//!   one leaves the thread parked forever and loom reports the deadlock;
//! * no eviction of a page whose data is not on disk, and the writer's
//!   data is never lost (final check);
//! * no CPU copy overlapping device DMA on the frame, nor a CPU write
//!   overlapping any other access (the frame's access checker): stable
//!   pages during writeback, no readers during a fill;
//! * no access to the frame while no page holds it (after eviction or a
//!   truncate's discard, before the next claim attaches it).
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p cairn-pagecache --release --test loom_page`
#![cfg(loom)]

use cairn_pagecache::page::{Page, PageState, Wakes, Want};
use loom::sync::Mutex;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use loom::thread;
use std::sync::Arc;

/// The only frame; its id is what the page holds.
const FRAME: u32 = 7;
/// What the writer's two writes write; the disk starts at 0.
const FIRST: u32 = 1;
const WRITTEN: u32 = 2;

/// A waiter: its thread parks until `done`.
struct Waiter {
    done: AtomicBool,
    ok: AtomicBool,
    thread: thread::Thread,
}

type W = Arc<Waiter>;

/// The frame's memory, with an access checker: a CPU write must not
/// overlap any other access, and nothing may overlap a DMA write.
struct FrameMem {
    value: AtomicU32,
    writers: AtomicU32,
    readers: AtomicU32,
    /// Attached to the page (between a claim's fill or NEW and the
    /// eviction or discard that hands it back).
    live: AtomicBool,
}

impl FrameMem {
    fn new() -> Self {
        FrameMem {
            value: AtomicU32::new(0),
            writers: AtomicU32::new(0),
            readers: AtomicU32::new(0),
            live: AtomicBool::new(false),
        }
    }

    fn attach(&self) {
        assert!(!self.live.swap(true, SeqCst), "frame attached twice");
    }

    fn detach(&self) {
        assert!(self.live.swap(false, SeqCst), "freeing a free frame");
    }

    fn write(&self, v: u32) {
        assert!(self.live.load(SeqCst), "write to a freed frame");
        assert_eq!(
            self.writers.fetch_add(1, SeqCst),
            0,
            "two writers on the frame"
        );
        assert_eq!(self.readers.load(SeqCst), 0, "frame written while read");
        self.value.store(v, SeqCst);
        self.writers.fetch_sub(1, SeqCst);
    }

    fn read(&self) -> u32 {
        assert!(self.live.load(SeqCst), "read of a freed frame");
        self.readers.fetch_add(1, SeqCst);
        assert_eq!(self.writers.load(SeqCst), 0, "frame read while written");
        let v = self.value.load(SeqCst);
        self.readers.fetch_sub(1, SeqCst);
        v
    }
}

struct World {
    /// The kernel lock: held by syscall-side code, never across a wait.
    kernel: Mutex<()>,
    page: Mutex<Page<W, u32>>,
    frame: FrameMem,
    disk: AtomicU32,
}

fn waiter() -> W {
    Arc::new(Waiter {
        done: AtomicBool::new(false),
        ok: AtomicBool::new(false),
        thread: thread::current(),
    })
}

fn wake(wakes: Wakes<W>) {
    for (w, r) in wakes {
        w.ok.store(r.is_ok(), SeqCst);
        w.done.store(true, SeqCst);
        w.thread.unpark();
    }
}

fn wait_for(w: &W) {
    while !w.done.load(SeqCst) {
        thread::park();
    }
    assert!(w.ok.load(SeqCst), "a waiter was failed");
}

impl World {
    /// The device side of a fill this CPU claimed: DMA, then completion.
    fn fill(&self) {
        let mut wakes = Wakes::new();
        {
            let mut p = self.page.lock().unwrap();
            p.start_fill(FRAME, 1, &mut wakes);
            self.frame.attach();
        }
        assert!(wakes.is_empty(), "woken before the fill");
        self.frame.write(self.disk.load(SeqCst));
        let (done, freed) = self.page.lock().unwrap().io_done(true, 0, &mut wakes);
        assert!(done && freed.is_none());
        wake(wakes);
    }

    fn reader(&self) -> u32 {
        let me = waiter();
        let k = self.kernel.lock().unwrap();
        let (claimed, waits) = {
            let mut p = self.page.lock().unwrap();
            let mut wakes = Wakes::new();
            p.pin();
            let claimed = p.state() == PageState::Free;
            if claimed {
                p.claim(&mut wakes);
            }
            (claimed, p.wait(Want::Readable, me.clone()).is_none())
        };
        drop(k);
        if claimed {
            self.fill();
        }
        if waits {
            wait_for(&me);
        }
        let k = self.kernel.lock().unwrap();
        let v = self.frame.read();
        self.page.lock().unwrap().unpin();
        drop(k);
        v
    }

    /// Two writes in a row: the second may meet the writeback of the first.
    fn writer(&self) {
        self.write(FIRST);
        self.write(WRITTEN);
    }

    fn write(&self, value: u32) {
        let me = waiter();
        let k = self.kernel.lock().unwrap();
        let mut wakes = Wakes::new();
        let waits = {
            let mut p = self.page.lock().unwrap();
            p.pin();
            p.lease();
            if p.state() == PageState::Free {
                p.claim(&mut wakes);
                p.start_new(FRAME, &mut wakes);
                self.frame.attach();
                false
            } else {
                p.wait(Want::Writable, me.clone()).is_none()
            }
        };
        drop(k);
        if waits {
            wait_for(&me);
        }
        let k = self.kernel.lock().unwrap();
        self.frame.write(value);
        {
            let mut p = self.page.lock().unwrap();
            p.mark_dirty(0xff, 0, &mut wakes);
            p.unlease(&mut wakes);
            p.unpin();
        }
        drop(k);
        wake(wakes);
    }

    fn evictor(&self) {
        let mut wakes = Wakes::new();
        let mut p = self.page.lock().unwrap();
        if p.evictable() {
            assert_eq!(
                self.frame.read(),
                self.disk.load(SeqCst),
                "evicting a page whose data is not on disk"
            );
            assert_eq!(p.evict(&mut wakes), FRAME);
            self.frame.detach();
        }
        assert!(wakes.is_empty());
    }

    /// `Node::truncate` on this one page: wait until settled, then discard
    /// it (unheld) or zero it and drop its dirty sectors (held).
    fn truncator(&self) {
        loop {
            let me = waiter();
            let k = self.kernel.lock().unwrap();
            let waits = {
                let mut p = self.page.lock().unwrap();
                let mut wakes = Wakes::new();
                if !p.settled() {
                    assert!(p.wait(Want::Settled, me.clone()).is_none());
                    true
                } else {
                    // As the node does: every settled page but a FREE one
                    // has content to drop (`discard` and `truncate_tail`
                    // assert that it is ACTIVE or DIRTY).
                    if p.state() != PageState::Free {
                        if p.unheld() {
                            assert_eq!(p.discard(&mut wakes), FRAME);
                            self.frame.detach();
                        } else {
                            self.frame.write(0);
                            p.truncate_tail(0, &mut wakes);
                            assert_eq!(p.state(), PageState::Active);
                        }
                    }
                    assert!(wakes.is_empty(), "a settled page had waiters to wake");
                    false
                }
            };
            drop(k);
            if !waits {
                return;
            }
            wait_for(&me);
        }
    }

    fn writeback(&self) {
        let mut wakes = Wakes::new();
        let k = self.kernel.lock().unwrap();
        let started = {
            let mut p = self.page.lock().unwrap();
            let s = p.begin_writeback(0, 0, &mut wakes).is_some();
            if s {
                p.set_io_pending(1);
            }
            s
        };
        drop(k);
        if started {
            self.disk.store(self.frame.read(), SeqCst);
            self.page.lock().unwrap().io_done(true, 0, &mut wakes);
        }
        wake(wakes);
    }
}

fn world() -> Arc<World> {
    Arc::new(World {
        kernel: Mutex::new(()),
        page: Mutex::new(Page::new()),
        frame: FrameMem::new(),
        disk: AtomicU32::new(0),
    })
}

/// Runs the reader, the writer, `third` and writeback on one page, checks
/// that the reader saw a value the page held and that nothing is left
/// pinned, leased or waiting; returns the world for the caller's checks.
fn reader_writer_writeback_and(third: fn(&World)) -> Arc<World> {
    let w = world();
    let spawn = |f: fn(&World)| {
        let w = w.clone();
        thread::spawn(move || f(&w))
    };
    let reader = {
        let w = w.clone();
        thread::spawn(move || w.reader())
    };
    let writer = spawn(World::writer);
    let third = spawn(third);
    let writeback = spawn(World::writeback);
    let seen = reader.join().unwrap();
    writer.join().unwrap();
    third.join().unwrap();
    writeback.join().unwrap();
    assert!([0, FIRST, WRITTEN].contains(&seen), "reader saw {seen}");
    {
        let p = w.page.lock().unwrap();
        assert_eq!((p.pins(), p.leases(), p.waiters()), (0, 0, 0));
    }
    w
}

#[test]
fn one_page_under_reader_writer_evictor_and_writeback() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let w = reader_writer_writeback_and(World::evictor);
        let p = w.page.lock().unwrap();
        match p.state() {
            PageState::Dirty => assert_eq!(w.frame.read(), WRITTEN),
            PageState::Active => {
                assert_eq!(w.frame.read(), WRITTEN);
                assert_eq!(w.disk.load(SeqCst), WRITTEN, "clean page not on disk");
            }
            PageState::Free => assert_eq!(w.disk.load(SeqCst), WRITTEN, "written data lost"),
            s => panic!("page left {s:?}"),
        }
    });
}

#[test]
fn one_page_under_reader_writer_writeback_and_truncate() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let w = reader_writer_writeback_and(World::truncator);
        let p = w.page.lock().unwrap();
        assert!(
            matches!(
                p.state(),
                PageState::Free | PageState::Active | PageState::Dirty
            ),
            "page left {:?}",
            p.state()
        );
        assert_eq!(
            p.state() != PageState::Free,
            w.frame.live.load(SeqCst),
            "a page without its frame, or a frame without its page"
        );
    });
}
