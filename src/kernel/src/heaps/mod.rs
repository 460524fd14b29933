//! `kernel_heaps`: every heap the kernel allocates from, and the rules that
//! say which one a context may use (DESIGN.md §3, seeds/003).
//!
//! | heap | what | contexts | lock class |
//! |---|---|---|---|
//! | `physical` | 4 KiB pages of RAM ([`PhysicalPages`]) | any | `heap.physical` |
//! | `virtual_huge` | 1 GiB ranges of kernel virtual space | any | `heap.virtual_huge` |
//! | `virtual_page` | 4 KiB ranges of kernel virtual space (stacks, mappings) | any | `heap.virtual_page` |
//! | `backed`, `backed.locked` | [`Window`]s: kernel virtual memory mapped on demand, one per mcache | any | `heap.backed`, `heap.backed.locked` |
//! | `general` | mcache over `backed`, **no lock**: kernel-lock context only, checked on every call | kernel-lock | (the kernel lock) |
//! | `locked` | mcache over `backed.locked`, behind an irq-safe lock | any, irq included | `heap.locked` |
//! | `dma` | physically contiguous pages through the direct map | any | `heap.physical` |
//!
//! **How `Box`, `Vec` and `Arc` get their heap** ([`global`]): the global
//! allocator routes by context. Under the kernel lock (and outside any
//! `bh_safe_alloc` scope) it uses `general`; everywhere else — bh, irq, the
//! run loop, boot, and inside `cairn_sync::cpu::bh_safe_alloc` — it uses
//! `locked`. A free is routed by address: `general` and `locked` draw from
//! separate virtual windows, so the address says which heap owns a block.
//! Freeing `general` memory outside the kernel lock (a bh completion
//! dropping the last reference to an object a syscall allocated: the bug
//! class of seeds/003) panics at the free, naming the context; the fix is to
//! allocate such objects inside `bh_safe_alloc`. A reallocation stays in the
//! heap of the original block.
//!
//! Lock order: `heap.locked` → `heap.backed.*` → `mm.page_tables` →
//! `heap.physical` (a leaf). Windows never unmap (no TLB shoot-down is ever
//! needed under these locks); an mcache keeps empty pages for reuse.

pub mod dma;
pub mod global;
pub mod window;

use crate::mm::kernel_map;
use crate::sched::KERNEL_LOCK;
use cairn_heap::{
    Backed, Heap, HeapStats, IdHeap, KernelLockChecked, Locking, MCache, PhysicalPages, SharedHeap,
};
use cairn_pc::paging::{KERNEL_VIRT_BASE, KERNEL_VIRT_END};
use cairn_pc::start_info::{MemoryRegion, memory_type};
use cairn_sync::LockClass;
use core::cell::UnsafeCell;
use window::Window;

/// Most RAM the physical heap can manage (its bitmap is static).
pub const MAX_RAM: u64 = 64 << 30;
/// Size of each mcache's virtual window.
pub const WINDOW_SIZE: u64 = 4 << 30;
/// Span of `virtual_page`.
const VIRTUAL_PAGE_SPAN: u64 = 4 << 30;

static PHYSICAL_CLASS: LockClass = LockClass::new("heap.physical");
static VIRTUAL_HUGE_CLASS: LockClass = LockClass::new("heap.virtual_huge");
static VIRTUAL_PAGE_CLASS: LockClass = LockClass::new("heap.virtual_page");
static BACKED_CLASS: LockClass = LockClass::new("heap.backed");
static BACKED_LOCKED_CLASS: LockClass = LockClass::new("heap.backed.locked");
static LOCKED_CLASS: LockClass = LockClass::new("heap.locked");

pub static PHYSICAL: Locking<PhysicalPages<'static>> =
    Locking::new(&PHYSICAL_CLASS, PhysicalPages::new("physical"));
pub(crate) static VIRTUAL_HUGE: Locking<IdHeap<'static>> =
    Locking::new(&VIRTUAL_HUGE_CLASS, IdHeap::new("virtual_huge", 1 << 30));
pub(crate) static VIRTUAL_PAGE: Locking<IdHeap<'static>> =
    Locking::new(&VIRTUAL_PAGE_CLASS, IdHeap::new("virtual_page", 4096));
// SAFETY: a `Window` hands out only addresses it has mapped to RAM it owns
// (see `window`), so it keeps the `BackedHeap` promise.
pub(crate) static BACKED: Locking<Backed<Window>> =
    Locking::new(&BACKED_CLASS, unsafe { Backed::new(Window::new("backed")) });
// SAFETY: as for `BACKED`.
static BACKED_LOCKED: Locking<Backed<Window>> = Locking::new(&BACKED_LOCKED_CLASS, unsafe {
    Backed::new(Window::new("backed.locked"))
});

type WindowCache = MCache<&'static Locking<Backed<Window>>>;

pub(crate) static LOCKED: Locking<WindowCache> =
    Locking::new(&LOCKED_CLASS, MCache::new("locked", &BACKED_LOCKED));

/// The general heap: an mcache with no lock of its own.
pub(crate) struct General(UnsafeCell<KernelLockChecked<WindowCache>>);

// SAFETY: the only access is `with_general`, which checks (in every build)
// that the calling CPU holds the kernel lock, so at most one CPU at a time
// touches the cell, and never from an interrupt (irq context is checked too).
unsafe impl Sync for General {}

pub(crate) static GENERAL: General = General(UnsafeCell::new(KernelLockChecked::new(
    MCache::new("general", &BACKED),
    &KERNEL_LOCK,
)));

/// Runs `f` on the general heap. Panics, naming the caller and the context,
/// unless this CPU holds the kernel lock and is not in an interrupt.
#[track_caller]
pub fn with_general<R>(f: impl FnOnce(&mut KernelLockChecked<WindowCache>) -> R) -> R {
    let ctx = crate::context::current();
    if ctx != cairn_sync::Context::KernelLock {
        general_misuse("use", ctx, core::panic::Location::caller());
    }
    // SAFETY: see `impl Sync for General`: checked just above.
    let g = unsafe { &mut *GENERAL.0.get() };
    g.check("use");
    f(g)
}

#[cold]
#[inline(never)]
fn general_misuse(op: &str, ctx: cairn_sync::Context, site: &core::panic::Location<'_>) -> ! {
    panic!(
        "heap `general`: {op} at {site} in {ctx:?} context without the kernel lock (the general \
         heap is for kernel-lock context only: allocate inside bh_safe_alloc)"
    )
}

static mut PHYSICAL_BITMAP: [u64; PhysicalPages::storage_words(MAX_RAM)] =
    [0; PhysicalPages::storage_words(MAX_RAM)];
static mut VIRTUAL_HUGE_BITMAP: [u64; IdHeap::words_for(
    KERNEL_VIRT_END - KERNEL_VIRT_BASE,
    1 << 30,
)] = [0; IdHeap::words_for(KERNEL_VIRT_END - KERNEL_VIRT_BASE, 1 << 30)];
static mut VIRTUAL_PAGE_BITMAP: [u64; IdHeap::words_for(VIRTUAL_PAGE_SPAN, 4096)] =
    [0; IdHeap::words_for(VIRTUAL_PAGE_SPAN, 4096)];
static mut BACKED_BITMAP: [u64; IdHeap::words_for(WINDOW_SIZE, 4096)] =
    [0; IdHeap::words_for(WINDOW_SIZE, 4096)];
static mut BACKED_LOCKED_BITMAP: [u64; IdHeap::words_for(WINDOW_SIZE, 4096)] =
    [0; IdHeap::words_for(WINDOW_SIZE, 4096)];

/// Builds every heap from the memory map and hands page-table frames over
/// to the physical heap. Bootstrap CPU, once, after the kernel page tables.
pub fn init(map: &[MemoryRegion]) {
    // SAFETY: `init` runs once, on the bootstrap CPU before any other CPU
    // starts; each static bitmap is borrowed here exactly once and then
    // owned by its heap for the rest of the run.
    // (`&mut *&raw mut` is how edition 2024 borrows a `static mut`.)
    #[allow(clippy::deref_addrof)]
    let (phys_bits, huge_bits, page_bits, backed_bits, locked_bits) = unsafe {
        (
            &mut *(&raw mut PHYSICAL_BITMAP),
            &mut *(&raw mut VIRTUAL_HUGE_BITMAP),
            &mut *(&raw mut VIRTUAL_PAGE_BITMAP),
            &mut *(&raw mut BACKED_BITMAP),
            &mut *(&raw mut BACKED_LOCKED_BITMAP),
        )
    };
    // The page-table frames handed out so far (read before taking the
    // physical heap's lock: `mm.page_tables` comes before `heap.physical`).
    let mut early_used = [(0u64, 0u64); 8];
    let early_count = kernel_map::with_early_frames(|e| {
        let used = e.used();
        early_used[..used.len()].copy_from_slice(used);
        used.len()
    });
    {
        let mut phys = PHYSICAL.lock();
        let mut storage: &'static mut [u64] = phys_bits;
        for r in map.iter().filter(|r| r.kind == memory_type::RAM) {
            let end = (r.base + r.size).min(MAX_RAM);
            if end <= r.base {
                continue;
            }
            let words = PhysicalPages::storage_words(end - r.base);
            if words > storage.len() {
                crate::warn!("heaps: RAM above {} GiB left unused", MAX_RAM >> 30);
                break;
            }
            let (mine, rest) = storage.split_at_mut(words);
            storage = rest;
            if let Err(e) = phys.add_memory(r.base, end - r.base, mine) {
                crate::warn!(
                    "heaps: RAM region {:#x}+{:#x} refused: {e:?}",
                    r.base,
                    r.size
                );
            }
        }
        // Low memory (real-mode structures, the AP trampoline), the kernel
        // image and the page-table frames handed out so far stay reserved.
        reserve_span(&mut phys, map, 0, crate::mm::early::LOW_MEMORY_END);
        let (img_start, img_end) = crate::mm::image_phys_range();
        reserve_span(&mut phys, map, img_start, img_end);
        for &(start, end) in &early_used[..early_count] {
            reserve_span(&mut phys, map, start, end);
        }
    }
    kernel_map::set_frame_source(kernel_map::FrameSource {
        alloc: || PHYSICAL.lock().alloc_pages(1).ok(),
        free: |p| PHYSICAL.lock().free_pages(p, 1),
    });
    let mut huge = VIRTUAL_HUGE.lock();
    huge.add_range(
        KERNEL_VIRT_BASE,
        KERNEL_VIRT_END - KERNEL_VIRT_BASE,
        huge_bits,
    )
    .expect("virtual_huge range");
    let span =
        |h: &mut IdHeap<'static>, size| h.alloc(size, 1 << 30).expect("kernel virtual space");
    let page_base = span(&mut huge, VIRTUAL_PAGE_SPAN);
    let backed_base = span(&mut huge, WINDOW_SIZE);
    let locked_base = span(&mut huge, WINDOW_SIZE);
    drop(huge);
    crate::debug!(
        "heaps: virtual_page {page_base:#x}, backed {backed_base:#x}, backed.locked {locked_base:#x}"
    );
    VIRTUAL_PAGE
        .lock()
        .add_range(page_base, VIRTUAL_PAGE_SPAN, page_bits)
        .expect("virtual_page range");
    BACKED
        .lock()
        .get_mut()
        .init(backed_base, WINDOW_SIZE, backed_bits);
    BACKED_LOCKED
        .lock()
        .get_mut()
        .init(locked_base, WINDOW_SIZE, locked_bits);
    global::set_windows(
        (backed_base, backed_base + WINDOW_SIZE),
        (locked_base, locked_base + WINDOW_SIZE),
    );
}

/// Reserves the pages of `[start, end)` that lie in RAM regions (the parts
/// in holes need no reservation). A page already allocated would be a boot
/// bug: panic.
fn reserve_span(phys: &mut PhysicalPages<'static>, map: &[MemoryRegion], start: u64, end: u64) {
    for r in map.iter().filter(|r| r.kind == memory_type::RAM) {
        let lo = start.max(r.base.next_multiple_of(4096)) & !4095;
        let hi = end
            .min((r.base + r.size) & !4095)
            .next_multiple_of(4096)
            .min((r.base + r.size) & !4095);
        if lo < hi {
            if let Err(e) = phys.reserve(lo, hi - lo) {
                panic!("heaps: cannot reserve {lo:#x}..{hi:#x}: {e:?}");
            }
        }
    }
}

/// A range of `pages` kernel virtual pages (unmapped), e.g. for a stack
/// with guard pages or a device mapping.
pub fn virtual_pages(pages: u64) -> Option<u64> {
    VIRTUAL_PAGE.alloc(pages * 4096, 4096).ok()
}

/// Returns a range from [`virtual_pages`].
pub fn free_virtual_pages(base: u64, pages: u64) {
    VIRTUAL_PAGE.dealloc(base, pages * 4096)
}

/// Statistics of every heap; `None` for one whose lock is busy (the panic
/// path must not wait) or, for `general`, when this CPU is not under the
/// kernel lock.
pub fn stats() -> [Option<HeapStats>; 8] {
    let general = (crate::context::current() == cairn_sync::Context::KernelLock)
        .then(|| with_general(|g| g.stats()));
    [
        PHYSICAL.try_stats(),
        VIRTUAL_HUGE.try_stats(),
        VIRTUAL_PAGE.try_stats(),
        BACKED.try_stats(),
        BACKED_LOCKED.try_stats(),
        general,
        LOCKED.try_stats(),
        dma::stats(),
    ]
}

/// Prints the heap table (debug dumps).
pub fn dump() {
    for s in stats() {
        match s {
            Some(s) => crate::println!("  {s}"),
            None => crate::println!("  (heap busy or not reachable from this context)"),
        }
    }
}

/// The heap table, printed by the panic handler (without waiting on locks).
pub fn report_at_panic() {
    crate::console::emergency(format_args!("heaps:\n"));
    for s in stats().into_iter().flatten() {
        crate::console::emergency(format_args!("  {s}\n"));
    }
}
