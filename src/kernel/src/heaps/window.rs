//! A [`Window`]: a range of kernel virtual space whose pages an id heap hands
//! out, mapped to RAM on demand in 2 MiB pages taken from the physical heap.
//! When no free, aligned 2 MiB run is left (the pagecache and programs'
//! pages scatter 4 KiB frames over all of RAM), the window maps 4 KiB pages
//! one by one instead, so a heap can still grow into whatever RAM is free.
//! A block is then physically contiguous only within its 4 KiB pages: an
//! mcache object (at most 4 KiB, power-of-two sized and aligned) never
//! crosses one, which is what a driver handing a small block to a device
//! (virtio's indirect descriptor lists) relies on; larger device buffers
//! come from the `dma` heap.
//!
//! Mappings are only ever added, never removed: freed pages stay mapped for
//! reuse, so no TLB shoot-down is ever needed (which would be impossible
//! under the irq-safe lock that guards a window). The RAM a window maps is
//! its high-water mark: allocation is first fit from the window's base, so
//! that mark follows the most ever in use at once, not how much was ever
//! allocated.
//!
//! Used under its `Locking` wrapper's lock (any context); takes
//! `mm.page_tables` and `heap.physical` inside it.

use cairn_heap::{AllocError, Heap, HeapStats, IdHeap};
use cairn_pc::paging::{HUGE_PAGE_SIZE, flags};

const PAGE: u64 = 4096;

pub struct Window {
    ids: IdHeap<'static>,
    base: u64,
    size: u64,
    /// `[base, mapped_end)` is mapped.
    mapped_end: u64,
}

impl Window {
    pub const fn new(name: &'static str) -> Self {
        Window {
            ids: IdHeap::new(name, 4096),
            base: 0,
            size: 0,
            mapped_end: 0,
        }
    }

    /// Gives the window its virtual range and the id heap's bitmap.
    pub fn init(&mut self, base: u64, size: u64, bitmap: &'static mut [u64]) {
        self.ids
            .add_range(base, size, bitmap)
            .expect("window range");
        self.base = base;
        self.size = size;
        self.mapped_end = base;
    }

    fn ensure_mapped(&mut self, end: u64) -> Result<(), AllocError> {
        let f = flags::WRITABLE | flags::NO_EXECUTE | flags::GLOBAL;
        while self.mapped_end < end {
            // A free 2 MiB run if RAM has one, else page by page.
            if self.mapped_end % HUGE_PAGE_SIZE == 0
                && let Some(phys) = free_huge_run()
            {
                if crate::mm::kernel_map::map_huge_page(self.mapped_end, phys, f).is_err() {
                    super::PHYSICAL
                        .lock()
                        .free_pages(phys, HUGE_PAGE_SIZE / PAGE);
                    return Err(AllocError);
                }
                self.mapped_end += HUGE_PAGE_SIZE;
                continue;
            }
            let phys = super::PHYSICAL.lock().alloc_pages(1)?;
            if crate::mm::kernel_map::map_page(self.mapped_end, phys, f).is_err() {
                super::PHYSICAL.lock().free_pages(phys, 1);
                return Err(AllocError);
            }
            self.mapped_end += PAGE;
        }
        Ok(())
    }
}

/// A free, aligned 2 MiB run of RAM. (A function so that the physical
/// heap's guard is dropped before the caller maps the run, which may take
/// that lock again for a page table.)
fn free_huge_run() -> Option<u64> {
    super::PHYSICAL
        .lock()
        .alloc_contiguous(HUGE_PAGE_SIZE, HUGE_PAGE_SIZE)
        .ok()
}

impl Heap for Window {
    /// First fit from the window's base: the lowest free range, so freed
    /// memory that is already mapped is reused before the window grows.
    /// (Next fit, the id heap's default, walks its hint up through the
    /// whole window: every large allocation of an alloc/free cycle, such
    /// as a thread's stack, landed past the last one and mapped fresh RAM
    /// until the guest ran out.)
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        let a = self
            .ids
            .alloc_in(size, align, self.base, self.base + self.size)?;
        if let Err(e) = self.ensure_mapped(a + size) {
            self.ids.dealloc(a, size);
            return Err(e);
        }
        Ok(a)
    }

    fn dealloc(&mut self, addr: u64, size: u64) {
        self.ids.dealloc(addr, size);
    }

    fn stats(&self) -> HeapStats {
        let mut s = self.ids.stats();
        // Total: what the window has mapped (its RAM), not its virtual size.
        s.total = self.mapped_end - self.base;
        s
    }
}
