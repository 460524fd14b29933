//! Loom model of the `Locking` wrapper: two CPUs allocate and free through
//! one `Locking<IdHeap>`, one through the `SharedHeap` calls, the other
//! also through the guard (`lock().alloc_in`, the id-heap method path).
//!
//! The id heap is instrumented (`Tracked`): every call runs between an
//! "inside" flag swap and its reset, with a loom-tracked cell access at each
//! end, so two CPUs inside the heap at once fail the flag assertion, and
//! calls the lock does not order are a loom causality error. Checked over
//! every interleaving (bounded preemption): no id is owned by two CPUs
//! (ownership marks per id), every allocation succeeds (the heap is large
//! enough for both), and the accounting ends at zero allocated with a
//! high-water mark between one CPU's and both CPUs' demand.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p cairn-heap --release --test loom_locking`
#![cfg(loom)]

use cairn_heap::{AllocError, Heap, HeapStats, IdHeap, Locking, SharedHeap};
use cairn_sync::LockClass;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::thread;

static CLASS: LockClass = LockClass::new("loom.heap.ids");

const IDS: u64 = 8;

/// Interleavings explored (a std atomic: outside the model).
static EXPLORED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Tracked {
    heap: IdHeap<'static>,
    inside: AtomicBool,
    cell: UnsafeCell<()>,
}

impl Tracked {
    fn enter(&self) {
        assert!(
            !self.inside.swap(true, SeqCst),
            "two CPUs inside the heap at once"
        );
        self.cell.with_mut(|_| ());
    }

    fn exit(&self) {
        self.cell.with_mut(|_| ());
        self.inside.store(false, SeqCst);
    }

    fn alloc_in(&mut self, size: u64, align: u64, lo: u64, hi: u64) -> Result<u64, AllocError> {
        self.enter();
        let r = self.heap.alloc_in(size, align, lo, hi);
        self.exit();
        r
    }
}

impl Heap for Tracked {
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.enter();
        let r = self.heap.alloc(size, align);
        self.exit();
        r
    }

    fn dealloc(&mut self, addr: u64, size: u64) {
        self.enter();
        self.heap.dealloc(addr, size);
        self.exit();
    }

    fn stats(&self) -> HeapStats {
        self.enter();
        let s = self.heap.stats();
        self.exit();
        s
    }
}

struct World {
    heap: Locking<Tracked>,
    /// Which CPU (1 or 2) owns each id, 0 if none.
    owner: [AtomicUsize; IDS as usize],
}

impl World {
    fn take(&self, cpu: usize, addr: u64, n: u64) {
        for id in addr..addr + n {
            let prev = self.owner[id as usize].swap(cpu, SeqCst);
            assert_eq!(
                prev, 0,
                "id {id} handed to CPU {cpu} while CPU {prev} owns it"
            );
        }
    }

    fn give_back(&self, cpu: usize, addr: u64, n: u64) {
        for id in addr..addr + n {
            assert_eq!(self.owner[id as usize].swap(0, SeqCst), cpu);
        }
    }
}

fn new_world() -> Arc<World> {
    let storage: &'static mut [u64] = Box::leak(vec![0u64; 1].into_boxed_slice());
    let mut ids = IdHeap::new("loom-ids", 1);
    ids.add_range(0, IDS, storage).unwrap();
    Arc::new(World {
        heap: Locking::new(
            &CLASS,
            Tracked {
                heap: ids,
                inside: AtomicBool::new(false),
                cell: UnsafeCell::new(()),
            },
        ),
        owner: core::array::from_fn(|_| AtomicUsize::new(0)),
    })
}

#[test]
fn two_cpus_never_share_an_id_and_accounting_balances() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(6);
    b.check(|| {
        EXPLORED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let w = new_world();

        // CPU 1: a run of two aligned ids and a single id, through the
        // `SharedHeap` interface.
        let cpu1 = {
            let w = w.clone();
            thread::spawn(move || {
                let a = w.heap.alloc(2, 2).expect("room for both CPUs");
                w.take(1, a, 2);
                let b = w.heap.alloc(1, 1).expect("room for both CPUs");
                w.take(1, b, 1);
                w.give_back(1, a, 2);
                w.heap.dealloc(a, 2);
                w.give_back(1, b, 1);
                w.heap.dealloc(b, 1);
            })
        };

        // CPU 2: the same through the guard, with an id-heap method.
        let a = w
            .heap
            .lock()
            .alloc_in(2, 1, 0, IDS)
            .expect("room for both CPUs");
        w.take(2, a, 2);
        let s = w.heap.stats();
        assert!(
            s.allocated >= 2 && s.allocated <= 5,
            "allocated {}",
            s.allocated
        );
        w.give_back(2, a, 2);
        w.heap.lock().dealloc(a, 2);

        cpu1.join().unwrap();
        let s = w.heap.stats();
        assert_eq!(s.allocated, 0);
        assert!(
            (3..=5).contains(&s.high_water),
            "high water {}",
            s.high_water
        );
    });
    let n = EXPLORED.load(std::sync::atomic::Ordering::Relaxed);
    println!("loom explored {n} interleavings");
    assert!(
        n > 100,
        "the model should branch on the lock ({n} interleavings)"
    );
}
