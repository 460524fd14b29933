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
//! Checked over every interleaving (bounded preemption):
//! * no illegal transition (`Page::transition` asserts);
//! * no lost wake-up: a waiter parks until its waker unparks it; a lost
//!   one leaves the thread parked forever and loom reports the deadlock;
//! * no eviction of a page whose data is not on disk, and the writer's
//!   data is never lost (final check);
//! * no CPU copy overlapping device DMA on the frame, nor a CPU write
//!   overlapping any other access (the frame's access checker): stable
//!   pages during writeback, no readers during a fill.
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
}

impl FrameMem {
    fn write(&self, v: u32) {
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
        self.page.lock().unwrap().start_fill(FRAME, 1, &mut wakes);
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
        }
        assert!(wakes.is_empty());
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

#[test]
fn one_page_under_reader_writer_evictor_and_writeback() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let w = Arc::new(World {
            kernel: Mutex::new(()),
            page: Mutex::new(Page::new()),
            frame: FrameMem {
                value: AtomicU32::new(0),
                writers: AtomicU32::new(0),
                readers: AtomicU32::new(0),
            },
            disk: AtomicU32::new(0),
        });
        let spawn = |f: fn(&World)| {
            let w = w.clone();
            thread::spawn(move || f(&w))
        };
        let reader = {
            let w = w.clone();
            thread::spawn(move || w.reader())
        };
        let writer = spawn(World::writer);
        let evictor = spawn(World::evictor);
        let writeback = spawn(World::writeback);
        let seen = reader.join().unwrap();
        writer.join().unwrap();
        evictor.join().unwrap();
        writeback.join().unwrap();
        assert!([0, FIRST, WRITTEN].contains(&seen), "reader saw {seen}");

        let p = w.page.lock().unwrap();
        assert_eq!((p.pins(), p.leases(), p.waiters()), (0, 0, 0));
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
