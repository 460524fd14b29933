//! The physical page allocator: an [`IdHeap`] in 4 KiB pages over the
//! usable ranges of the memory map, with what the kernel needs on top:
//! ranges trimmed to whole pages as the firmware reports them, reservations
//! widened to whole pages (kernel image, boot structures), single pages, and
//! physically contiguous aligned runs for DMA (optionally below a limit,
//! e.g. 4 GiB for 32-bit devices).
//!
//! Its addresses are physical: not dereferenceable, so it is not a
//! [`BackedHeap`](crate::BackedHeap). Seen through the direct map
//! ([`Offset`](crate::Offset) + [`Backed`](crate::Backed)) it is the `dma`
//! heap.
//!
//! Contexts: takes no lock, needs `&mut`; the kernel's `physical` heap is a
//! `Locking<PhysicalPages>` (class `heap.physical`, the innermost heap lock:
//! nothing is called while holding it), usable from any context.

use crate::heap::{AllocError, Heap};
use crate::id_heap::{IdHeap, RangeError, ReserveError};
use crate::stats::HeapStats;

/// The page size of the physical allocator.
pub const PAGE_SIZE: u64 = 4096;

/// Physical pages over memory-map ranges. See the module docs.
pub struct PhysicalPages<'a> {
    ids: IdHeap<'a>,
}

impl<'a> PhysicalPages<'a> {
    pub const fn new(name: &'static str) -> Self {
        PhysicalPages {
            ids: IdHeap::new(name, PAGE_SIZE),
        }
    }

    /// Words of bitmap storage for a memory range of `len` bytes (the bound
    /// for any `base`: trimming only removes pages).
    pub const fn storage_words(len: u64) -> usize {
        IdHeap::words_for(len, PAGE_SIZE)
    }

    /// Adds the whole pages of `[base, base + len)`, as a memory map
    /// reports it (any alignment). Returns the bytes added.
    pub fn add_memory(
        &mut self,
        base: u64,
        len: u64,
        storage: &'a mut [u64],
    ) -> Result<u64, RangeError> {
        let start = base
            .checked_add(PAGE_SIZE - 1)
            .ok_or(RangeError::Misaligned)?
            & !(PAGE_SIZE - 1);
        let end = base.checked_add(len).ok_or(RangeError::Misaligned)? & !(PAGE_SIZE - 1);
        if end <= start {
            return Err(RangeError::Empty);
        }
        self.ids.add_range(start, end - start, storage)?;
        Ok(end - start)
    }

    /// Marks the pages covering `[base, base + len)` allocated.
    pub fn reserve(&mut self, base: u64, len: u64) -> Result<(), ReserveError> {
        self.ids.reserve(base, len)
    }

    /// `count` contiguous pages, page-aligned.
    pub fn alloc_pages(&mut self, count: u64) -> Result<u64, AllocError> {
        self.ids.alloc_units(count * PAGE_SIZE, PAGE_SIZE)
    }

    /// A physically contiguous run of `bytes` (rounded up to pages) aligned
    /// to `align` (at least a page), e.g. a DMA ring.
    pub fn alloc_contiguous(&mut self, bytes: u64, align: u64) -> Result<u64, AllocError> {
        self.ids.alloc_units(bytes, align.max(PAGE_SIZE))
    }

    /// Like [`PhysicalPages::alloc_contiguous`], entirely below `limit`
    /// (e.g. `1 << 32` for a device with 32-bit DMA addresses).
    pub fn alloc_contiguous_below(
        &mut self,
        bytes: u64,
        align: u64,
        limit: u64,
    ) -> Result<u64, AllocError> {
        self.ids.alloc_in(bytes, align.max(PAGE_SIZE), 0, limit)
    }

    /// Frees `count` pages at `addr` (from `alloc_pages` or a reservation).
    #[track_caller]
    pub fn free_pages(&mut self, addr: u64, count: u64) {
        self.ids.dealloc(addr, count * PAGE_SIZE);
    }

    /// Bytes not allocated.
    pub fn free_bytes(&self) -> u64 {
        self.ids.free_bytes()
    }

    /// The id heap underneath, for hints and queries.
    pub fn id_heap(&mut self) -> &mut IdHeap<'a> {
        &mut self.ids
    }
}

impl Heap for PhysicalPages<'_> {
    /// Whole pages, aligned to at least a page.
    #[inline]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.alloc_contiguous(size, align)
    }
    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        self.ids.dealloc(addr, size)
    }
    fn stats(&self) -> HeapStats {
        self.ids.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn memory_map_ranges_are_trimmed_to_pages() {
        // A firmware-style map: low memory with a hole, and a high range.
        let mut low = vec![0u64; PhysicalPages::storage_words(0x9_fc00)];
        let mut high = vec![0u64; PhysicalPages::storage_words(0x7ee_0000)];
        let mut p = PhysicalPages::new("physical");
        assert_eq!(
            p.add_memory(0x500, 0x9_fc00 - 0x500, &mut low),
            Ok(0x9_e000)
        );
        assert_eq!(
            p.add_memory(0x10_0000 + 1, 0x7ee_0000, &mut high),
            Ok(0x7ee_0000 - 0x1000)
        );
        assert_eq!(p.stats().total, 0x9_e000 + 0x7ed_f000);
        let mut tiny = vec![0u64; 1];
        assert_eq!(
            p.add_memory(0xa_0001, 0x800, &mut tiny),
            Err(RangeError::Empty)
        );
    }

    #[test]
    fn pages_reservations_and_dma_runs() {
        let mut words = vec![0u64; PhysicalPages::storage_words(64 << 20)];
        let mut p = PhysicalPages::new("physical");
        p.add_memory(0x10_0000, 64 << 20, &mut words).unwrap();
        // The kernel image: 1 MiB .. 3.5 MiB.
        p.reserve(0x10_0000, 0x28_0000).unwrap();
        let page = p.alloc_pages(1).unwrap();
        assert!(page >= 0x38_0000);
        assert_eq!(page % PAGE_SIZE, 0);
        let ring = p.alloc_contiguous(5 * PAGE_SIZE, 0x1_0000).unwrap();
        assert_eq!(ring % 0x1_0000, 0);
        let low = p
            .alloc_contiguous_below(PAGE_SIZE, PAGE_SIZE, 0x40_0000)
            .unwrap();
        assert!(low + PAGE_SIZE <= 0x40_0000);
        assert_eq!(
            p.alloc_contiguous_below(PAGE_SIZE, PAGE_SIZE, 0x10_0000),
            Err(AllocError)
        );
        assert_eq!(p.stats().allocated, 0x28_0000 + 7 * PAGE_SIZE);
        p.free_pages(page, 1);
        p.dealloc(ring, 5 * PAGE_SIZE);
        p.free_pages(low, 1);
        p.free_pages(0x10_0000, 0x28_0000 / PAGE_SIZE);
        assert_eq!(p.stats().allocated, 0);
        assert_eq!(p.free_bytes(), 64 << 20);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut words = vec![0u64; PhysicalPages::storage_words(16 * PAGE_SIZE)];
        let mut p = PhysicalPages::new("physical");
        p.add_memory(0, 16 * PAGE_SIZE, &mut words).unwrap();
        let all = p.alloc_pages(16).unwrap();
        assert_eq!(p.alloc_pages(1), Err(AllocError));
        p.free_pages(all, 16);
        assert!(p.alloc_pages(16).is_ok());
    }

    #[test]
    #[should_panic(expected = "id heap `physical`: bad free of 0x5000 (+0x1000): double free")]
    fn double_free_of_a_page_panics_naming_the_heap() {
        let mut words = vec![0u64; PhysicalPages::storage_words(16 * PAGE_SIZE)];
        let mut p = PhysicalPages::new("physical");
        p.add_memory(0, 16 * PAGE_SIZE, &mut words).unwrap();
        p.reserve(0x5000, PAGE_SIZE).unwrap();
        p.free_pages(0x5000, 1);
        p.free_pages(0x5000, 1);
    }
}
