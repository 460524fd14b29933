//! A [`Window`]: a range of kernel virtual space whose pages an id heap hands
//! out, mapped to RAM on demand in 2 MiB pages taken from the physical heap.
//!
//! Mappings are only ever added, never removed: freed pages stay mapped for
//! reuse, so no TLB shoot-down is ever needed (which would be impossible
//! under the irq-safe lock that guards a window). The RAM a window maps is
//! its high-water mark; allocation is first fit so that the mark follows
//! the most memory ever live, not the total ever allocated.
//!
//! Used under its `Locking` wrapper's lock (any context); takes
//! `mm.page_tables` and `heap.physical` inside it.

use cairn_heap::{AllocError, Heap, HeapStats, IdHeap};
use cairn_pc::paging::{HUGE_PAGE_SIZE, flags};

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
        while self.mapped_end < end {
            let phys = super::PHYSICAL
                .lock()
                .alloc_contiguous(HUGE_PAGE_SIZE, HUGE_PAGE_SIZE)?;
            let f = flags::WRITABLE | flags::NO_EXECUTE | flags::GLOBAL;
            if crate::mm::kernel_map::map_huge_page(self.mapped_end, phys, f).is_err() {
                super::PHYSICAL
                    .lock()
                    .free_pages(phys, HUGE_PAGE_SIZE / 4096);
                return Err(AllocError);
            }
            self.mapped_end += HUGE_PAGE_SIZE;
        }
        Ok(())
    }
}

impl Heap for Window {
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        // First fit from the base, not the id heap's next fit: next fit
        // walks the whole (4 GiB) window before reusing a freed range, so
        // the RAM a window maps would grow with every byte ever allocated
        // through it (a writer of small pieces with no fsync mapped 16 MiB
        // more per writeback cycle until the kernel heap could not grow:
        // issue 11 item 5). First fit keeps the mapped RAM at the most ever
        // live, fragmentation aside.
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
