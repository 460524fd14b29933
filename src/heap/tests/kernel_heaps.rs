//! The kernel's set of heaps (issue 3's `kernel_heaps`), assembled on the
//! host with the same types and lifetimes the kernel will use, so that the
//! composition is compiled and exercised here:
//!
//! | heap | type | contexts |
//! |---|---|---|
//! | physical | `Locking<PhysicalPages<'static>>` | any |
//! | virtual_huge | `Locking<IdHeap<'static>>`, 1 GiB units of kernel VA | any |
//! | virtual_page | `Locking<IdHeap<'static>>`, 4 KiB units over a range from virtual_huge | any |
//! | backed | `Locking<Backed<..>>`: virtual pages + physical pages + mapping (here: a host arena) | any |
//! | general | `KernelLockChecked<MCache<&'static Locking<Backed<..>>>>` | kernel-lock only |
//! | locked | `Locking<MCache<&'static Locking<Backed<..>>>>` | any |
//! | dma | `Backed<Offset<&'static Locking<PhysicalPages>>>`: physical runs seen through the direct map | any |
//!
//! Lock order (outermost first): kernel → locked → backed → physical.
#![cfg(not(loom))]

use cairn_heap::host::{HostArena, check, fill};
use cairn_heap::{
    Backed, BackedHeap, Heap, HeapStats, IdHeap, KernelLockChecked, Locking, MCache, Offset,
    PAGE_SIZE, PhysicalPages, SharedHeap, StatsTable,
};
use cairn_sync::cpu::Context;
use cairn_sync::cpu::host::set_context;
use cairn_sync::{KernelLock, LockClass};
use std::sync::Mutex;

static KERNEL: KernelLock = KernelLock::new();
static PHYSICAL: LockClass = LockClass::new("heap.physical");
static VIRTUAL_HUGE: LockClass = LockClass::new("heap.virtual_huge");
static VIRTUAL_PAGE: LockClass = LockClass::new("heap.virtual_page");
static BACKED: LockClass = LockClass::new("heap.backed");
static LOCKED: LockClass = LockClass::new("heap.locked");

type BackedPages = Locking<Backed<IdHeap<'static>>>;

struct KernelHeaps {
    physical: &'static Locking<PhysicalPages<'static>>,
    virtual_huge: &'static Locking<IdHeap<'static>>,
    virtual_page: &'static Locking<IdHeap<'static>>,
    backed: &'static BackedPages,
    /// The kernel keeps this where only kernel-lock code reaches it; the
    /// test models that exclusivity with a mutex.
    general: Mutex<KernelLockChecked<MCache<&'static BackedPages>>>,
    locked: &'static Locking<MCache<&'static BackedPages>>,
    dma: &'static Backed<Offset<&'static Locking<PhysicalPages<'static>>>>,
}

fn leak<T>(t: T) -> &'static mut T {
    Box::leak(Box::new(t))
}

const PHYS_MEM: u64 = 32 << 20;
const KERNEL_VA: u64 = 0xffff_8000_0000_0000;

fn init() -> KernelHeaps {
    // "Physical memory": an arena whose offsets are the physical addresses,
    // seen at `arena.base() + phys` (the direct map).
    let ram = leak(HostArena::new(PHYS_MEM, 1 << 21));
    let direct_map = ram.base();
    let mut physical = PhysicalPages::new("physical");
    let words = leak(vec![0u64; PhysicalPages::storage_words(PHYS_MEM)]);
    // As a memory map reports it: a page at 0 is not usable.
    physical
        .add_memory(PAGE_SIZE, PHYS_MEM - PAGE_SIZE, words)
        .unwrap();
    // The kernel image.
    physical.reserve(0x10_0000, 0x20_0000).unwrap();
    let physical = &*leak(Locking::new(&PHYSICAL, physical));

    let mut huge = IdHeap::new("virtual_huge", 1 << 30);
    huge.add_range(KERNEL_VA, 64 << 30, leak(vec![0u64; 1]))
        .unwrap();
    let virtual_huge = &*leak(Locking::new(&VIRTUAL_HUGE, huge));
    let span = virtual_huge.alloc(1 << 30, 1 << 30).unwrap();
    let mut pages = IdHeap::new("virtual_page", PAGE_SIZE);
    pages
        .add_range(
            span,
            1 << 30,
            leak(vec![0u64; IdHeap::words_for(1 << 30, PAGE_SIZE)]),
        )
        .unwrap();
    let virtual_page = &*leak(Locking::new(&VIRTUAL_PAGE, pages));

    // backed: in the kernel, virtual_page + physical + page tables; here an
    // arena stands in for mapped memory.
    let arena = leak(HostArena::new(64 << 20, 1 << 16));
    let backed = &*leak(Locking::new(
        &BACKED,
        arena.backed_heap("backed", PAGE_SIZE),
    ));

    let general = Mutex::new(KernelLockChecked::new(
        MCache::new("general", backed),
        &KERNEL,
    ));
    let locked = &*leak(Locking::new(&LOCKED, MCache::new("locked", backed)));
    // SAFETY: every physical page is mapped at `direct_map + phys` (the
    // arena), and the physical heap hands each to one owner at a time.
    let dma = &*leak(unsafe { Backed::new(Offset::new(physical, direct_map)) });
    KernelHeaps {
        physical,
        virtual_huge,
        virtual_page,
        backed,
        general,
        locked,
        dma,
    }
}

fn all_stats(h: &KernelHeaps) -> Vec<HeapStats> {
    vec![
        h.physical.stats(),
        h.virtual_huge.stats(),
        h.virtual_page.stats(),
        h.backed.stats(),
        h.general.lock().unwrap().stats(),
        h.locked.stats(),
    ]
}

fn uses_backed<P: BackedHeap>(_: &P) {}

#[test]
fn kernel_heaps_compose_and_serve_every_context() {
    let h = init();
    uses_backed(&h.backed);
    uses_backed(&h.dma);

    // Boot: the general heap is usable before the run loops start.
    set_context(Context::Boot);
    let boot_obj = h.general.lock().unwrap().alloc(200, 8).unwrap();

    let (to_bh, from_kernel) = std::sync::mpsc::channel::<(u64, u64)>();
    std::thread::scope(|s| {
        // CPU 0 in kernel-lock context: syscalls allocate from general, and
        // hand buffers that a bh completion will free to `locked`.
        s.spawn(|| {
            set_context(Context::KernelLock);
            let _k = KERNEL.lock();
            let mut g = h.general.lock().unwrap();
            for i in 0..1000u64 {
                let a = g.alloc(16 + i % 300, 8).unwrap();
                // SAFETY: a live allocation of at least that many bytes.
                unsafe { fill(a, 16, i as u8) };
                // SAFETY: as above.
                assert!(unsafe { check(a, 16, i as u8) });
                if i % 3 == 0 {
                    g.free(a);
                } else {
                    g.dealloc(a, 16 + i % 300);
                }
                let b = h.locked.alloc(64 + i % 2000, 8).unwrap();
                to_bh.send((b, 64 + i % 2000)).unwrap();
            }
            g.free(boot_obj);
            drop(to_bh);
        });
        // CPU 1 in bh context: completions free what the kernel side
        // allocated, through `locked`, and drivers use `dma` and `physical`.
        s.spawn(|| {
            set_context(Context::Bh);
            for (b, size) in from_kernel {
                h.locked.dealloc(b, size);
            }
            let ring = h.dma.alloc(3 * PAGE_SIZE, 16 * PAGE_SIZE).unwrap();
            let bus = h.dma.get().to_inner(ring);
            assert_eq!(bus % (16 * PAGE_SIZE), 0);
            assert!(
                bus + 3 * PAGE_SIZE <= 0x10_0000 || bus >= 0x30_0000,
                "DMA ring {bus:#x} inside the reserved kernel image"
            );
            // SAFETY: `ring` is three direct-mapped pages we own.
            unsafe { fill(ring, 3 * PAGE_SIZE, 7) };
            let page = h.physical.lock().alloc_pages(1).unwrap();
            h.physical.lock().free_pages(page, 1);
            h.dma.dealloc(ring, 3 * PAGE_SIZE);
            let va = h.virtual_page.alloc(8 * PAGE_SIZE, PAGE_SIZE).unwrap();
            h.virtual_page.dealloc(va, 8 * PAGE_SIZE);
        });
    });

    let table = format!("{}", StatsTable(&all_stats(&h)));
    println!("{table}");
    for name in [
        "physical",
        "virtual_huge",
        "virtual_page",
        "backed",
        "general",
        "locked",
    ] {
        assert!(table.contains(name), "{table}");
    }
    let general = h.general.lock().unwrap().stats();
    assert_eq!(general.allocated, 0);
    assert!(general.high_water > 0);
    assert_eq!(h.locked.stats().allocated, 0);
    // Only the kernel image and virtual_page's span remain.
    assert_eq!(h.physical.stats().allocated, 0x20_0000);
    assert_eq!(h.virtual_huge.stats().allocated, 1 << 30);
    // The panic-time path reads every heap without spinning.
    assert_eq!(h.locked.try_stats(), Some(h.locked.stats()));
    // Trimmed, the caches give everything back to `backed`.
    h.general.lock().unwrap().get_mut().trim();
    h.locked.lock().trim();
    assert_eq!(h.backed.stats().allocated, 0);
}
