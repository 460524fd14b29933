//! Host tests with std threads (each a simulated CPU): a `Locking<MCache>`
//! used from several threads at once, some in bh context, with objects
//! freed on another thread than the one that allocated them; and a stack of
//! locked heaps (mcache → backed → its arena) as the kernel builds it.
//!
//! Checked: every allocation is usable memory no other thread touches (a
//! per-allocation pattern survives until its free), accounting returns to
//! zero, everything goes back to the parent, and (debug builds) the lock
//! validator sees no order inversion or irq-unsafe use.
#![cfg(not(loom))]

use cairn_heap::host::{HostArena, check, fill};
use cairn_heap::mcache::MAX_OBJECT;
use cairn_heap::{BackedHeap, Heap, Locking, MCache, PhysicalPages, SharedHeap};
use cairn_sync::LockClass;
use cairn_sync::cpu::Context;
use cairn_sync::cpu::host::set_context;
use std::sync::mpsc;

static LOCKED_CLASS: LockClass = LockClass::new("test.heap.locked");
static BACKED_CLASS: LockClass = LockClass::new("test.heap.backed");
static STACK_LOCKED_CLASS: LockClass = LockClass::new("test.heap.stack.locked");
static PHYSICAL_CLASS: LockClass = LockClass::new("test.heap.physical");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn size(&mut self) -> u64 {
        match self.next() % 16 {
            0 => MAX_OBJECT + self.next() % 20_000,
            1..=3 => 1 + self.next() % MAX_OBJECT,
            _ => 1 + self.next() % 256,
        }
    }
}

/// Allocates, patterns, checks and frees through `heap` for `ops` steps,
/// keeping up to 32 allocations live; every fourth allocation is sent to
/// `give` for another thread to free, and what arrives on `take` is freed
/// here (by size or without, alternately).
fn run_thread<P: BackedHeap + Send>(
    heap: &Locking<MCache<P>>,
    seed: u64,
    ops: usize,
    give: mpsc::Sender<(u64, u64, u8)>,
    take: mpsc::Receiver<(u64, u64, u8)>,
) {
    let mut rng = Rng(seed);
    let mut live: Vec<(u64, u64, u8)> = Vec::new();
    let free = |(addr, size, tag): (u64, u64, u8), by_size: bool| {
        // SAFETY: `addr` is a live allocation of `size` bytes that this
        // thread now owns.
        let intact = unsafe { check(addr, size, tag) };
        assert!(intact, "allocation {addr:#x} damaged");
        if by_size {
            heap.dealloc(addr, size);
        } else {
            heap.lock().free(addr);
        }
    };
    for i in 0..ops {
        while let Ok(item) = take.try_recv() {
            free(item, i % 2 == 0);
        }
        if live.len() < 32 && rng.next() % 3 != 0 {
            let size = rng.size();
            let addr = heap.alloc(size, 8).expect("arena large enough");
            let tag = rng.next() as u8;
            // SAFETY: a fresh allocation of `size` bytes from a backed heap.
            unsafe { fill(addr, size, tag) };
            if i % 4 == 0 {
                give.send((addr, size, tag)).unwrap();
            } else {
                live.push((addr, size, tag));
            }
        } else if !live.is_empty() {
            let item = live.swap_remove((rng.next() % live.len() as u64) as usize);
            free(item, rng.next() % 2 == 0);
        }
    }
    for item in live {
        free(item, true);
    }
    drop(give);
    // Whatever the neighbour still sends until it finishes.
    for item in take {
        free(item, false);
    }
}

#[test]
fn locked_mcache_from_four_threads_with_cross_thread_frees() {
    let mut arena = HostArena::new(64 << 20, 1 << 16);
    let locked = Locking::new(
        &LOCKED_CLASS,
        MCache::new("locked", arena.backed_heap("backed", 4096)),
    );
    const THREADS: usize = 4;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel()).unzip();
    std::thread::scope(|s| {
        for (t, take) in receivers.into_iter().enumerate() {
            // Thread t gives to thread t + 1.
            let give = senders[(t + 1) % THREADS].clone();
            let locked = &locked;
            s.spawn(move || {
                // Half the CPUs run bh completions, half kernel-lock work.
                set_context(if t % 2 == 0 {
                    Context::Bh
                } else {
                    Context::KernelLock
                });
                run_thread(locked, 0x9e37_79b9 + t as u64, 20_000, give, take);
            });
        }
        drop(senders);
    });
    let mut m = locked.into_inner();
    assert_eq!(m.stats().allocated, 0);
    assert!(m.stats().high_water > 0);
    m.trim();
    assert_eq!(m.parent().stats().allocated, 0);
}

#[test]
fn stacked_locked_heaps_as_the_kernel_builds_them() {
    // backed: a locked id heap over the arena; locked: an mcache behind its
    // own lock whose parent is `&backed` (lock order: locked → backed).
    let mut arena = HostArena::new(32 << 20, 1 << 16);
    let backed = Locking::new(&BACKED_CLASS, arena.backed_heap("backed", 4096));
    let locked = Locking::new(&STACK_LOCKED_CLASS, MCache::new("locked", &backed));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel()).unzip();
    std::thread::scope(|s| {
        for (t, take) in receivers.into_iter().enumerate() {
            let give = senders[(t + 1) % 2].clone();
            let (locked, backed) = (&locked, &backed);
            s.spawn(move || {
                set_context(Context::Bh);
                // The backed heap is also used directly, in between.
                let page = backed.alloc(8192, 4096).unwrap();
                run_thread(locked, 77 + t as u64, 10_000, give, take);
                backed.dealloc(page, 8192);
            });
        }
        drop(senders);
    });
    locked.lock().trim();
    assert_eq!(locked.stats().allocated, 0);
    assert_eq!(backed.stats().allocated, 0);
}

#[test]
fn physical_pages_from_threads_never_overlap() {
    const MEM: u64 = 16 << 20;
    let mut words = vec![0u64; PhysicalPages::storage_words(MEM)];
    let mut pages = PhysicalPages::new("physical");
    pages.add_memory(0x100_0000, MEM, &mut words).unwrap();
    let physical = Locking::new(&PHYSICAL_CLASS, pages);
    // Ownership map: one slot per page, set by the thread that holds it.
    let owners: Vec<std::sync::atomic::AtomicU8> = (0..MEM / 4096)
        .map(|_| std::sync::atomic::AtomicU8::new(0))
        .collect();
    std::thread::scope(|s| {
        for t in 1..=3u8 {
            let (physical, owners) = (&physical, &owners);
            s.spawn(move || {
                use std::sync::atomic::Ordering::SeqCst;
                set_context(if t == 1 { Context::Irq } else { Context::Bh });
                let mut rng = Rng(u64::from(t) * 1234567);
                let mut held = Vec::new();
                for _ in 0..5_000 {
                    if held.len() < 16 && rng.next() % 2 == 0 {
                        let n = 1 + rng.next() % 8;
                        let a = if rng.next() % 4 == 0 {
                            physical
                                .lock()
                                .alloc_contiguous(n * 4096, 4096 << (rng.next() % 4))
                        } else {
                            physical.lock().alloc_pages(n)
                        }
                        .unwrap();
                        for p in 0..n {
                            let slot = ((a - 0x100_0000) / 4096 + p) as usize;
                            assert_eq!(owners[slot].swap(t, SeqCst), 0, "page {a:#x} owned twice");
                        }
                        held.push((a, n));
                    } else if let Some((a, n)) = held.pop() {
                        for p in 0..n {
                            let slot = ((a - 0x100_0000) / 4096 + p) as usize;
                            assert_eq!(owners[slot].swap(0, SeqCst), t);
                        }
                        physical.lock().free_pages(a, n);
                    }
                }
                for (a, n) in held {
                    for p in 0..n {
                        owners[((a - 0x100_0000) / 4096 + p) as usize].store(0, SeqCst);
                    }
                    physical.lock().free_pages(a, n);
                }
            });
        }
    });
    assert_eq!(physical.stats().allocated, 0);
    assert!(physical.stats().high_water > 0);
}
