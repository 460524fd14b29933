//! Adapters that say what a heap's addresses are.
//!
//! * [`Backed`]: the promise, made once with `unsafe` where it is known to
//!   hold, that a heap's addresses are memory ([`BackedHeap`]). The kernel
//!   makes it for its `backed` heap (virtual pages it maps on allocation)
//!   and for direct-mapped physical memory; host tests for a std arena.
//! * [`Offset`]: a view of a heap whose addresses are shifted by a constant,
//!   e.g. physical pages seen through the kernel's direct map
//!   (`virt = phys + offset`). With [`Backed`] on top this is the `dma`
//!   heap: physically contiguous runs from the physical heap, handed out as
//!   their direct-map addresses ([`Offset::to_inner`] gives the bus address
//!   back).
//!
//! Both are transparent: same contexts and locks as the heap they wrap.

use crate::heap::{AllocError, BackedHeap, BackedSharedHeap, Heap, SharedHeap};
use crate::stats::HeapStats;

/// A heap whose addresses are known to be memory.
pub struct Backed<H>(H);

impl<H> Backed<H> {
    /// # Safety
    ///
    /// Every address `heap` hands out must keep the [`BackedHeap`] promise:
    /// at least the requested size of mapped, writable memory, owned by the
    /// caller alone until it is freed.
    pub const unsafe fn new(heap: H) -> Self {
        Backed(heap)
    }

    pub fn get(&self) -> &H {
        &self.0
    }

    /// The inner heap, e.g. to `reserve` on an id heap (reserving only makes
    /// fewer addresses available, which keeps the promise).
    pub fn get_mut(&mut self) -> &mut H {
        &mut self.0
    }
}

impl<H: Heap> Heap for Backed<H> {
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.0.alloc(size, align)
    }
    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        self.0.dealloc(addr, size)
    }
    fn stats(&self) -> HeapStats {
        self.0.stats()
    }
}

impl<H: SharedHeap> SharedHeap for Backed<H> {
    #[inline]
    #[track_caller]
    fn alloc(&self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.0.alloc(size, align)
    }
    #[inline]
    #[track_caller]
    fn dealloc(&self, addr: u64, size: u64) {
        self.0.dealloc(addr, size)
    }
    fn stats(&self) -> HeapStats {
        self.0.stats()
    }
}

// SAFETY: `Backed::new`'s caller promised it for every address of `H`.
unsafe impl<H: Heap> BackedHeap for Backed<H> {}
// SAFETY: as above.
unsafe impl<H: SharedHeap> BackedSharedHeap for Backed<H> {}

/// A heap's addresses shifted by `offset` (wrapping), e.g. physical to
/// direct-map virtual.
pub struct Offset<H> {
    inner: H,
    offset: u64,
}

impl<H> Offset<H> {
    pub const fn new(inner: H, offset: u64) -> Self {
        Offset { inner, offset }
    }

    /// The inner heap's address for one of ours (e.g. the physical address
    /// of a DMA buffer).
    pub fn to_inner(&self, addr: u64) -> u64 {
        addr.wrapping_sub(self.offset)
    }

    /// Our address for one of the inner heap's.
    pub fn from_inner(&self, addr: u64) -> u64 {
        addr.wrapping_add(self.offset)
    }

    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: Heap> Heap for Offset<H> {
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        // Alignment carries over only if the offset keeps it.
        debug_assert_eq!(self.offset & (align - 1), 0, "offset breaks alignment");
        self.inner
            .alloc(size, align)
            .map(|a| a.wrapping_add(self.offset))
    }
    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        self.inner.dealloc(addr.wrapping_sub(self.offset), size)
    }
    fn stats(&self) -> HeapStats {
        self.inner.stats()
    }
}

impl<H: SharedHeap> SharedHeap for Offset<H> {
    #[inline]
    #[track_caller]
    fn alloc(&self, size: u64, align: u64) -> Result<u64, AllocError> {
        debug_assert_eq!(self.offset & (align - 1), 0, "offset breaks alignment");
        self.inner
            .alloc(size, align)
            .map(|a| a.wrapping_add(self.offset))
    }
    #[inline]
    #[track_caller]
    fn dealloc(&self, addr: u64, size: u64) {
        self.inner.dealloc(addr.wrapping_sub(self.offset), size)
    }
    fn stats(&self) -> HeapStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdHeap;
    use std::vec;

    #[test]
    #[cfg(not(loom))]
    fn offset_view_shares_the_inner_heap() {
        use crate::{Locking, PhysicalPages};
        static PHYS_CLASS: cairn_sync::LockClass =
            cairn_sync::LockClass::new("test.backed.physical");
        let mut words = vec![0u64; PhysicalPages::storage_words(1 << 20)];
        let mut pages = PhysicalPages::new("physical");
        pages.add_memory(0x10_0000, 1 << 20, &mut words).unwrap();
        let physical = Locking::new(&PHYS_CLASS, pages);
        let dma = Offset::new(&physical, 0xffff_8000_0000_0000);
        let v = dma.alloc(3 * 4096, 8192).unwrap();
        let p = dma.to_inner(v);
        assert!((0x10_0000..0x20_0000).contains(&p));
        assert_eq!(p % 8192, 0);
        assert_eq!(dma.from_inner(p), v);
        // The pages are gone from the physical heap too.
        assert_eq!(physical.stats().allocated, 3 * 4096);
        dma.dealloc(v, 3 * 4096);
        assert_eq!(physical.stats().allocated, 0);
    }

    #[test]
    fn backed_forwards() {
        let mut words = vec![0u64; 1];
        let mut ids = IdHeap::new("ids", 8);
        ids.add_range(64, 512, &mut words).unwrap();
        // SAFETY: test only allocates and frees, never dereferences.
        let mut b = unsafe { Backed::new(ids) };
        let a = b.alloc(8, 8).unwrap();
        assert_eq!(b.stats().allocated, 8);
        b.get_mut().reserve(a + 8, 8).unwrap();
        b.dealloc(a, 8);
        assert_eq!(b.get().stats().allocated, 8);
    }
}
