//! Heap benchmarks, figures only (nothing is asserted):
//! `cargo bench -p cairn-heap --bench heaps`
//!
//! * `alloc_free_hot/<heap>/<size>`: one alloc + free of `size` bytes per
//!   iteration, the same slot over and over.
//! * `alloc_free_batch/<heap>/<size>`: allocate 256, then free the 256 in
//!   allocation order; the figure is per alloc+free pair.
//!   `<heap>` is cairn's mcache and, over an arena of the same size, talc,
//!   buddy_system_allocator and linked_list_allocator (all align 8).
//! * `alloc_free_mixed/<heap>`: a live set of 2048 allocations of random
//!   sizes (1 B to 4 KiB); each iteration frees a random one and allocates
//!   a new random size in its place (the heap stays fragmented).
//! * `id_heap_fragmented/...`: a 64 Ki-page id heap with a random half of
//!   its pages allocated; alloc + free of 1 page and of 4 aligned pages
//!   (next-fit walks the heap), against the same heap unfragmented.
//! * `locking/...`: mcache alloc + free of 64 B bare, through `Locking`
//!   uncontended, and through `Locking` from 2 threads at once (wall time
//!   per pair over both threads).

use cairn_heap::host::HostArena;
use cairn_heap::{Heap, IdHeap, Locking, MCache, SharedHeap};
use cairn_sync::LockClass;
use core::alloc::Layout;
use core::ptr::NonNull;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const ARENA: u64 = 16 << 20;
const SIZES: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];
const BATCH: usize = 256;

/// The common face of the four allocators.
trait Alloc {
    fn alloc(&mut self, size: usize) -> *mut u8;
    /// # Safety
    /// `p` came from `alloc(size)` of this allocator and is freed once.
    unsafe fn free(&mut self, p: *mut u8, size: usize);
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

impl<P: cairn_heap::BackedHeap> Alloc for MCache<P> {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        Heap::alloc(self, size as u64, 8).expect("arena") as *mut u8
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        Heap::dealloc(self, p as u64, size as u64)
    }
}

struct Talc(talc::base::Talc<talc::source::Manual, talc::DefaultBinning>);

impl Alloc for Talc {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: a non-zero layout.
        unsafe { self.0.allocate(layout(size)) }
            .expect("arena")
            .as_ptr()
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.0.deallocate(p, layout(size)) }
    }
}

struct Buddy(buddy_system_allocator::Heap<32>);

impl Alloc for Buddy {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.0.alloc(layout(size)).expect("arena").as_ptr()
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.0.dealloc(NonNull::new_unchecked(p), layout(size)) }
    }
}

struct LinkedList(linked_list_allocator::Heap);

impl Alloc for LinkedList {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.0
            .allocate_first_fit(layout(size))
            .expect("arena")
            .as_ptr()
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.0.deallocate(NonNull::new_unchecked(p), layout(size)) }
    }
}

fn talc_over(arena: &HostArena) -> Talc {
    let mut t = talc::base::Talc::new(talc::source::Manual);
    // SAFETY: the arena's memory is ours for the benchmark's duration.
    unsafe { t.claim(arena.base() as *mut u8, arena.len() as usize) }.expect("claim");
    Talc(t)
}

fn buddy_over(arena: &HostArena) -> Buddy {
    let mut h = buddy_system_allocator::Heap::<32>::new();
    // SAFETY: as above.
    unsafe { h.init(arena.base() as usize, arena.len() as usize) };
    Buddy(h)
}

fn linked_list_over(arena: &HostArena) -> LinkedList {
    let mut h = linked_list_allocator::Heap::empty();
    // SAFETY: as above.
    unsafe { h.init(arena.base() as *mut u8, arena.len() as usize) };
    LinkedList(h)
}

fn hot(c: &mut Criterion, name: &str, a: &mut dyn Alloc) {
    let mut g = c.benchmark_group("alloc_free_hot");
    for size in SIZES {
        g.bench_function(format!("{name}/{size}"), |b| {
            b.iter(|| {
                let p = a.alloc(black_box(size));
                // SAFETY: just allocated with `size`.
                unsafe { a.free(black_box(p), size) };
            })
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion, name: &str, a: &mut dyn Alloc) {
    let mut g = c.benchmark_group("alloc_free_batch");
    let mut ptrs = vec![core::ptr::null_mut(); BATCH];
    for size in SIZES {
        g.bench_function(format!("{name}/{size}"), |b| {
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(BATCH as u64);
                let start = Instant::now();
                for _ in 0..rounds {
                    for p in ptrs.iter_mut() {
                        *p = a.alloc(black_box(size));
                    }
                    for &p in ptrs.iter() {
                        // SAFETY: allocated above with `size`, freed once.
                        unsafe { a.free(black_box(p), size) };
                    }
                }
                // Per alloc+free pair, as criterion counts `iters`.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (rounds * BATCH as u64) as f64)
            })
        });
    }
    g.finish();
}

fn mixed(c: &mut Criterion, name: &str, a: &mut dyn Alloc) {
    const LIVE: usize = 2048;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<(*mut u8, usize)> = (0..LIVE)
        .map(|_| {
            let size = 1 + (rng.next() % 4096) as usize;
            (a.alloc(size), size)
        })
        .collect();
    c.bench_function(&format!("alloc_free_mixed/{name}"), |b| {
        b.iter(|| {
            let slot = &mut live[(rng.next() % LIVE as u64) as usize];
            // SAFETY: the slot holds a live allocation of its size.
            unsafe { a.free(slot.0, slot.1) };
            let size = 1 + (rng.next() % 4096) as usize;
            *slot = (a.alloc(black_box(size)), size);
        })
    });
    for (p, size) in live {
        // SAFETY: every slot is live and freed once.
        unsafe { a.free(p, size) };
    }
}

fn allocators(c: &mut Criterion) {
    let mut arena = HostArena::new(ARENA, 1 << 16);
    let mut mcache = MCache::new("general", arena.backed_heap("backed", 4096));
    hot(c, "mcache", &mut mcache);
    batch(c, "mcache", &mut mcache);
    mixed(c, "mcache", &mut mcache);
    drop(mcache);

    let arena = HostArena::new(ARENA, 1 << 16);
    let mut t = talc_over(&arena);
    hot(c, "talc", &mut t);
    batch(c, "talc", &mut t);
    mixed(c, "talc", &mut t);

    let arena = HostArena::new(ARENA, 1 << 16);
    let mut bd = buddy_over(&arena);
    hot(c, "buddy", &mut bd);
    batch(c, "buddy", &mut bd);
    mixed(c, "buddy", &mut bd);

    let arena = HostArena::new(ARENA, 1 << 16);
    let mut ll = linked_list_over(&arena);
    hot(c, "linked_list", &mut ll);
    batch(c, "linked_list", &mut ll);
    mixed(c, "linked_list", &mut ll);
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn id_heap(c: &mut Criterion) {
    const PAGES: u64 = 64 * 1024;
    let mut g = c.benchmark_group("id_heap_fragmented");
    for fragmented in [false, true] {
        let mut words = vec![0u64; IdHeap::words_for(PAGES * 4096, 4096)];
        let mut h = IdHeap::new("pages", 4096);
        h.add_range(0x1_0000_0000, PAGES * 4096, &mut words)
            .unwrap();
        if fragmented {
            // Every page allocated, then a random half freed: single free
            // pages and short runs scattered over the heap.
            let all: Vec<u64> = (0..PAGES).map(|_| h.alloc(4096, 4096).unwrap()).collect();
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            for a in all {
                if rng.next() % 2 == 0 {
                    h.dealloc(a, 4096);
                }
            }
        }
        let state = if fragmented { "half_random" } else { "empty" };
        for (pages, align) in [(1u64, 4096u64), (4, 4 * 4096)] {
            g.bench_function(format!("{state}/{pages}_pages"), |b| {
                b.iter(|| {
                    let a = h.alloc(black_box(pages * 4096), align).unwrap();
                    h.dealloc(black_box(a), pages * 4096);
                })
            });
        }
    }
    g.finish();
}

static BENCH_CLASS: LockClass = LockClass::new("bench.locked");

fn locking(c: &mut Criterion) {
    let mut g = c.benchmark_group("locking");
    let mut arena = HostArena::new(ARENA, 1 << 16);
    let mut bare = MCache::new("general", arena.backed_heap("backed", 4096));
    g.bench_function("mcache_bare/64", |b| {
        b.iter(|| {
            let a = Heap::alloc(&mut bare, black_box(64), 8).unwrap();
            Heap::dealloc(&mut bare, black_box(a), 64);
        })
    });
    drop(bare);

    let mut arena = HostArena::new(ARENA, 1 << 16);
    let locked = Locking::new(
        &BENCH_CLASS,
        MCache::new("locked", arena.backed_heap("backed", 4096)),
    );
    g.bench_function("mcache_locking_1_thread/64", |b| {
        b.iter(|| {
            let a = locked.alloc(black_box(64), 8).unwrap();
            locked.dealloc(black_box(a), 64);
        })
    });
    g.bench_function("mcache_locking_2_threads/64", |b| {
        b.iter_custom(|iters| contended(&locked, 2, iters))
    });
    g.finish();
}

/// `iters` alloc+free pairs split over `threads` threads on one heap;
/// returns the wall time (per pair, times `iters`).
fn contended<H: SharedHeap>(heap: &H, threads: usize, iters: u64) -> Duration {
    let per = iters.div_ceil(threads as u64);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..per {
                        let a = heap.alloc(black_box(64), 8).unwrap();
                        heap.dealloc(black_box(a), 64);
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start
            .elapsed()
            .mul_f64(iters as f64 / (per * threads as u64) as f64)
    })
}

criterion_group!(benches, allocators, id_heap, locking);
criterion_main!(benches);
