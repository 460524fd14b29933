//! The `dma` heap: physically contiguous, zeroed, page-aligned memory for
//! devices, handed out through the direct map. Any context (the physical
//! heap's lock is irq-safe).

use super::PHYSICAL;
use cairn_heap::HeapStats;
use cairn_pc::paging::DIRECT_MAP_BASE;
use core::sync::atomic::{AtomicU64, Ordering};

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static HIGH_WATER: AtomicU64 = AtomicU64::new(0);
static OBJECTS: AtomicU64 = AtomicU64::new(0);

/// `bytes` (rounded up to 4 KiB pages) of zeroed, page-aligned, physically
/// contiguous memory: (physical, virtual) addresses. `None` when no run of
/// that size is free.
pub fn alloc(bytes: usize) -> Option<(u64, u64)> {
    let len = (bytes as u64).next_multiple_of(4096).max(4096);
    let phys = PHYSICAL.lock().alloc_contiguous(len, 4096).ok()?;
    let virt = DIRECT_MAP_BASE + phys;
    // SAFETY: the pages were just allocated for this caller, and the direct
    // map covers all RAM with write access.
    unsafe { core::ptr::write_bytes(virt as *mut u8, 0, len as usize) };
    let now = ALLOCATED.fetch_add(len, Ordering::Relaxed) + len;
    HIGH_WATER.fetch_max(now, Ordering::Relaxed);
    OBJECTS.fetch_add(1, Ordering::Relaxed);
    Some((phys, virt))
}

/// Returns memory from [`alloc`] (same size).
pub fn free(phys: u64, _virt: u64, bytes: usize) {
    let len = (bytes as u64).next_multiple_of(4096).max(4096);
    PHYSICAL.lock().free_pages(phys, len / 4096);
    ALLOCATED.fetch_sub(len, Ordering::Relaxed);
    OBJECTS.fetch_sub(1, Ordering::Relaxed);
}

pub fn stats() -> Option<HeapStats> {
    let mut s = PHYSICAL.try_stats()?;
    s.name = "dma";
    s.allocated = ALLOCATED.load(Ordering::Relaxed);
    s.high_water = HIGH_WATER.load(Ordering::Relaxed);
    s.objects = OBJECTS.load(Ordering::Relaxed);
    Some(s)
}
