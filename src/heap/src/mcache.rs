//! The mcache: a general-purpose heap of one object cache per power-of-two
//! size class, [`MIN_OBJECT`] (32 B) to [`MAX_OBJECT`] (4 KiB), over one
//! [`BackedHeap`] parent; larger requests go to the parent directly.
//!
//! Sizes and pages. Every class uses [`CACHE_PAGE_SIZE`] (64 KiB) pages
//! from the parent, aligned to their size, so an object's page is its
//! address masked with one constant. With 64 KiB pages the in-page header
//! and bitmap cost at most one object per page: 6% for the largest class
//! (4 KiB objects, 15 per page), under 1% up to 512 B (32 B objects: 2038
//! per page). That lets 4 KiB buffers, the most common large kernel
//! allocation, come from a cache instead of a page allocation each, and the
//! parent sees only 64 KiB aligned requests, one per 15 to 2038 objects.
//! (4 KiB pages would cap objects at 256 B for the same waste.) Objects of
//! class `2^k` are `2^k`-aligned.
//!
//! Requests map to the class of `size` (rounded up to a power of two) when
//! `align` is at most that; a request whose alignment exceeds its class, and
//! anything above 4 KiB, is a large allocation from the parent (rare: Rust
//! layouts have sizes that are multiples of their alignment).
//!
//! Free with or without the size. The address registry (an open-addressing
//! table in memory from the parent, no allocator needed) maps each cache
//! page to its class and each large allocation to its size, so:
//! * `free(addr)` finds the object's page by masking and its class in the
//!   registry, or the large allocation and its size;
//! * `dealloc(addr, size)` checks `size` against what it finds: a size of
//!   another class, or not the size of a large allocation, panics naming the
//!   heap ("wrong size"); an address found nowhere is a foreign pointer.
//!   The page's own checks (header magic and owner, object boundary, double
//!   free) follow, see [`objcache`](crate::objcache). All checks are on in
//!   every build.
//!
//! Contexts: takes no lock and needs `&mut`. The kernel's `general` heap is
//! an unlocked mcache used only under the kernel lock
//! ([`KernelLockChecked`](crate::KernelLockChecked) asserts it); `locked` is
//! a second one behind [`Locking`](crate::Locking), for bh and irq context.
//! It calls its parent (which may take the parent's own lock) only to get
//! or return a page, a large allocation or registry memory.

use crate::addr_map::AddrMap;
use crate::heap::{AllocError, BackedHeap, Heap, check_align};
use crate::objcache::{CacheCore, foreign_free, free_failed};
use crate::stats::{Accounting, HeapStats};
use core::fmt;

/// The size of every cache page (and its alignment).
pub const CACHE_PAGE_SIZE: u64 = 64 * 1024;
/// The smallest object.
pub const MIN_OBJECT: u64 = 32;
/// The largest object served from a cache; larger requests go to the parent.
pub const MAX_OBJECT: u64 = 4096;
/// Number of size classes: 32, 64, ..., 4096.
pub const CLASSES: usize = (MAX_OBJECT.trailing_zeros() - MIN_OBJECT.trailing_zeros() + 1) as usize;

/// Registry values with this bit are cache pages (low bits: the class);
/// others are large allocations (the value is the size).
const PAGE_TAG: u64 = 1 << 63;

/// The class of a request of `size` bytes (any size up to [`MAX_OBJECT`]).
#[inline]
const fn class_of(size: u64) -> usize {
    // Bits needed for size - 1: 32 → 5, 33 → 6, ... (0 and 1 → 0).
    let bits = 64 - size.saturating_sub(1).leading_zeros();
    bits.saturating_sub(MIN_OBJECT.trailing_zeros()) as usize
}

#[inline]
const fn class_size(class: usize) -> u64 {
    MIN_OBJECT << class
}

const fn class_cache(name: &'static str, class: usize) -> CacheCore {
    CacheCore::new(name, class_size(class), class_size(class), CACHE_PAGE_SIZE)
}

/// One size class's figures, for the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassStats {
    pub object_size: u64,
    pub objects_in_use: u64,
    pub pages: u64,
    pub objects_per_page: u32,
}

/// A power-of-two object-cache heap. See the module docs.
pub struct MCache<P: BackedHeap> {
    name: &'static str,
    parent: P,
    classes: [CacheCore; CLASSES],
    /// Cache pages (→ class) and large allocations (→ size).
    registry: AddrMap,
    large_bytes: u64,
    large_count: u64,
    acct: Accounting,
}

impl<P: BackedHeap> MCache<P> {
    /// An empty mcache taking pages and large allocations from `parent`.
    pub const fn new(name: &'static str, parent: P) -> Self {
        MCache {
            name,
            parent,
            classes: [
                class_cache(name, 0),
                class_cache(name, 1),
                class_cache(name, 2),
                class_cache(name, 3),
                class_cache(name, 4),
                class_cache(name, 5),
                class_cache(name, 6),
                class_cache(name, 7),
            ],
            registry: AddrMap::new(),
            large_bytes: 0,
            large_count: 0,
            acct: Accounting::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn parent(&self) -> &P {
        &self.parent
    }

    /// Empty pages each class keeps for reuse (default
    /// [`DEFAULT_MAX_CACHED_EMPTY`](crate::objcache::DEFAULT_MAX_CACHED_EMPTY)).
    pub fn set_max_cached_empty(&mut self, pages: u32) {
        for c in &mut self.classes {
            c.set_max_cached_empty(pages);
        }
    }

    /// Frees what `alloc` returned, without its size (malloc-style).
    /// Panics, naming the heap, on a foreign pointer or a double free.
    #[inline]
    #[track_caller]
    pub fn free(&mut self, addr: u64) {
        let page = addr & !(CACHE_PAGE_SIZE - 1);
        match self.registry.get(page) {
            Some(v) if v & PAGE_TAG != 0 => self.free_small((v & !PAGE_TAG) as usize, page, addr),
            _ => self.free_large(addr, None),
        }
    }

    /// The usable size of the allocation at `addr` (its class size, or the
    /// size of a large allocation), if `addr` is in this heap.
    pub fn allocation_size(&self, addr: u64) -> Option<u64> {
        let page = addr & !(CACHE_PAGE_SIZE - 1);
        match self.registry.get(page) {
            Some(v) if v & PAGE_TAG != 0 => Some(class_size((v & !PAGE_TAG) as usize)),
            _ => match self.registry.get(addr) {
                Some(v) if v & PAGE_TAG == 0 => Some(v),
                _ => None,
            },
        }
    }

    /// Hands every empty cache page (and the registry, when nothing is left)
    /// back to the parent.
    pub fn trim(&mut self) {
        for c in 0..CLASSES {
            while let Some(page) = self.classes[c].take_empty_page() {
                self.release_page(page);
            }
        }
        self.registry.release_if_empty(&mut self.parent);
    }

    /// Figures per size class.
    pub fn class_stats(&self) -> impl Iterator<Item = ClassStats> + '_ {
        self.classes.iter().map(|c| ClassStats {
            object_size: c.object_size(),
            objects_in_use: c.objects_in_use(),
            pages: c.pages(),
            objects_per_page: c.objects_per_page(),
        })
    }

    /// Large allocations live: (count, bytes).
    pub fn large(&self) -> (u64, u64) {
        (self.large_count, self.large_bytes)
    }

    /// Writes the heap's stats, then a line per non-empty class and the
    /// large allocations: the debug dump.
    pub fn dump(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(out, "{}", self.stats())?;
        for c in self.class_stats().filter(|c| c.pages != 0) {
            writeln!(
                out,
                "  {:>5} B: {} objects in {} pages of {}",
                c.object_size, c.objects_in_use, c.pages, c.objects_per_page
            )?;
        }
        writeln!(
            out,
            "  large: {} allocations, {} bytes",
            self.large_count, self.large_bytes
        )
    }

    #[cold]
    #[inline(never)]
    fn alloc_with_new_page(&mut self, class: usize) -> Result<u64, AllocError> {
        let page = self.parent.alloc(CACHE_PAGE_SIZE, CACHE_PAGE_SIZE)?;
        if let Err(e) = self
            .registry
            .insert(&mut self.parent, page, PAGE_TAG | class as u64)
        {
            self.parent.dealloc(page, CACHE_PAGE_SIZE);
            return Err(e);
        }
        // SAFETY: `page` is a fresh 64 KiB, 64 KiB-aligned allocation from
        // the backed parent, registered to this class.
        unsafe { self.classes[class].add_page(page) };
        let addr = self.classes[class]
            .alloc()
            .expect("a fresh page has a free object");
        self.acct.allocated(class_size(class));
        Ok(addr)
    }

    #[inline(never)]
    fn alloc_large(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        // Recorded sizes are never 0 (a 0-byte request is a 1-byte one).
        let size = size.max(1);
        let addr = self.parent.alloc(size, align)?;
        if let Err(e) = self.registry.insert(&mut self.parent, addr, size) {
            self.parent.dealloc(addr, size);
            return Err(e);
        }
        self.large_bytes += size;
        self.large_count += 1;
        self.acct.allocated(size);
        Ok(addr)
    }

    #[inline(always)]
    #[track_caller]
    fn free_small(&mut self, class: usize, page: u64, addr: u64) {
        // SAFETY: the registry maps exactly the pages this mcache holds to
        // their class, and `page` is one of them.
        match unsafe { self.classes[class].dealloc(page, addr) } {
            Ok(None) => {}
            Ok(Some(empty)) => self.release_page(empty),
            Err(why) => free_failed(self.name, class_size(class), addr, why),
        }
        self.acct.freed(class_size(class));
    }

    /// Frees a large allocation; `size`, if given, must be its size.
    #[inline(never)]
    #[track_caller]
    fn free_large(&mut self, addr: u64, size: Option<u64>) {
        let recorded = match self.registry.get(addr) {
            Some(v) if v & PAGE_TAG == 0 => v,
            _ => foreign_free(self.name, addr),
        };
        if let Some(size) = size
            && size.max(1) != recorded
        {
            wrong_size(self.name, addr, size, recorded);
        }
        self.registry.remove(addr);
        self.parent.dealloc(addr, recorded);
        self.large_bytes -= recorded;
        self.large_count -= 1;
        self.acct.freed(recorded);
    }

    #[cold]
    #[inline(never)]
    fn release_page(&mut self, page: u64) {
        self.registry.remove(page);
        self.parent.dealloc(page, CACHE_PAGE_SIZE);
    }
}

impl<P: BackedHeap> Heap for MCache<P> {
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        check_align(self.name, align);
        let class = class_of(size);
        if size <= MAX_OBJECT && align <= class_size(class) {
            if let Some(addr) = self.classes[class].alloc() {
                self.acct.allocated(class_size(class));
                return Ok(addr);
            }
            return self.alloc_with_new_page(class);
        }
        self.alloc_large(size, align)
    }

    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        let page = addr & !(CACHE_PAGE_SIZE - 1);
        match self.registry.get(page) {
            Some(v) if v & PAGE_TAG != 0 => {
                let class = (v & !PAGE_TAG) as usize;
                if size > MAX_OBJECT || class_of(size) != class {
                    wrong_size(self.name, addr, size, class_size(class));
                }
                self.free_small(class, page, addr);
            }
            _ => self.free_large(addr, Some(size)),
        }
    }

    fn stats(&self) -> HeapStats {
        let mut s = self.acct.snapshot(self.name);
        let pages: u64 = self.classes.iter().map(CacheCore::pages).sum();
        s.total = pages * CACHE_PAGE_SIZE + self.large_bytes + self.registry.bytes();
        s
    }
}

// SAFETY: small objects lie in pages from the backed parent, outside the
// page header, and the bitmap hands each to one owner until it is freed;
// large allocations are the parent's own, which keeps the promise.
unsafe impl<P: BackedHeap> BackedHeap for MCache<P> {}

impl<P: BackedHeap> Drop for MCache<P> {
    /// Hands back what it can; pages with live objects, and live large
    /// allocations, stay with their owners (leaked rather than freed under
    /// them).
    fn drop(&mut self) {
        self.trim();
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn wrong_size(heap: &'static str, addr: u64, size: u64, actual: u64) -> ! {
    panic!(
        "heap `{heap}`: wrong size on free of {addr:#x}: {size} bytes, but the allocation is \
         {actual} bytes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostArena, check, fill};
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn classes_by_leading_zeros() {
        assert_eq!(CLASSES, 8);
        for (size, class) in [
            (0, 0),
            (1, 0),
            (32, 0),
            (33, 1),
            (64, 1),
            (65, 2),
            (2048, 6),
            (2049, 7),
            (4096, 7),
        ] {
            assert_eq!(class_of(size), class, "size {size}");
        }
        for c in 0..CLASSES {
            assert_eq!(class_of(class_size(c)), c);
            assert_eq!(class_of(class_size(c) / 2 + 1), c);
        }
        // The figures the module docs quote.
        assert_eq!(class_cache("m", 0).objects_per_page(), 2038);
        assert_eq!(class_cache("m", 4).objects_per_page(), 127);
        assert_eq!(class_cache("m", 7).objects_per_page(), 15);
    }

    fn arena() -> HostArena {
        HostArena::new(8 << 20, CACHE_PAGE_SIZE)
    }

    #[test]
    fn every_size_is_aligned_usable_and_accounted() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let sizes = [
            1u64, 24, 32, 33, 100, 500, 1024, 3000, 4096, 4097, 10_000, 100_000,
        ];
        let mut live = Vec::new();
        let mut expect = 0;
        for (i, &s) in sizes.iter().enumerate() {
            let addr = m.alloc(s, 8).unwrap();
            let usable = m.allocation_size(addr).unwrap();
            assert!(usable >= s);
            if s <= MAX_OBJECT {
                assert_eq!(usable, s.max(32).next_power_of_two());
                assert_eq!(addr % usable, 0, "class objects are aligned to their size");
            }
            expect += usable;
            // SAFETY: `addr` is a live allocation of at least `s` bytes.
            unsafe { fill(addr, s, i as u8) };
            live.push((addr, s, i as u8));
        }
        assert_eq!(m.stats().allocated, expect);
        for &(addr, s, seed) in &live {
            // SAFETY: still live.
            assert!(unsafe { check(addr, s, seed) });
        }
        assert_eq!(m.large(), (3, 4097 + 10_000 + 100_000));
        for (i, &(addr, s, _)) in live.iter().enumerate() {
            if i % 2 == 0 {
                m.dealloc(addr, s);
            } else {
                m.free(addr);
            }
        }
        assert_eq!(m.stats().allocated, 0);
        assert_eq!(m.stats().high_water, expect);
        m.trim();
        assert_eq!(m.stats().total, 0);
        assert_eq!(m.parent().stats().allocated, 0);
    }

    #[test]
    fn an_object_cache_can_take_its_pages_from_an_mcache() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        {
            // 4 KiB cache pages come from the mcache's 4 KiB class.
            let mut nodes = crate::ObjCache::new("nodes", &mut m, 48, 16, 4096);
            let x: Vec<u64> = (0..200).map(|_| nodes.alloc_object().unwrap()).collect();
            for (i, &addr) in x.iter().enumerate() {
                // SAFETY: a live 48-byte object.
                unsafe { fill(addr, 48, i as u8) };
            }
            for (i, &addr) in x.iter().enumerate() {
                // SAFETY: as above.
                assert!(unsafe { check(addr, 48, i as u8) });
                nodes.free_object(addr);
            }
        }
        // Dropping the object cache gave its pages back.
        assert_eq!(m.stats().allocated, 0);
    }

    #[test]
    fn alignment_beyond_the_class_goes_to_the_parent() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let addr = m.alloc(32, 8192).unwrap();
        assert_eq!(addr % 8192, 0);
        assert_eq!(m.large(), (1, 32));
        m.dealloc(addr, 32);
        let addr = m.alloc(100, 128).unwrap();
        assert_eq!(m.allocation_size(addr), Some(128));
        m.free(addr);
    }

    #[test]
    fn out_of_memory_is_an_error() {
        let mut a = HostArena::new(4 * CACHE_PAGE_SIZE, CACHE_PAGE_SIZE);
        let mut m = MCache::new("small", a.backed_heap("backed", 4096));
        assert_eq!(m.alloc(1 << 20, 8), Err(AllocError));
        let mut got = Vec::new();
        while let Ok(addr) = m.alloc(4096, 4096) {
            got.push(addr);
        }
        // Three 64 KiB pages and the registry page: 45 objects, then none.
        assert_eq!(got.len(), 3 * 15);
        assert_eq!(m.alloc(64, 8), Err(AllocError));
        for addr in got {
            m.free(addr);
        }
        assert!(m.alloc(64, 8).is_ok());
    }

    #[test]
    fn dump_lists_classes_and_large() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let x = m.alloc(64, 8).unwrap();
        let y = m.alloc(8192, 8).unwrap();
        let mut out = String::new();
        m.dump(&mut out).unwrap();
        assert!(out.starts_with("general: allocated 8256 of"), "{out}");
        assert!(out.contains("   64 B: 1 objects in 1 pages of"), "{out}");
        assert!(out.contains("large: 1 allocations, 8192 bytes"), "{out}");
        m.free(x);
        m.free(y);
    }

    #[test]
    #[should_panic(expected = "heap `general`: double free of")]
    fn double_free_panics_naming_the_heap() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let x = m.alloc(128, 8).unwrap();
        let _y = m.alloc(128, 8).unwrap();
        m.free(x);
        m.dealloc(x, 128);
    }

    #[test]
    #[should_panic(expected = "heap `general`: wrong size on free of")]
    fn wrong_class_size_panics_naming_the_heap() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let x = m.alloc(128, 8).unwrap();
        m.dealloc(x, 256);
    }

    #[test]
    #[should_panic(expected = "heap `general`: wrong size on free of")]
    fn wrong_large_size_panics_naming_the_heap() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let x = m.alloc(10_000, 8).unwrap();
        m.dealloc(x, 9_999);
    }

    #[test]
    #[should_panic(expected = "heap `general`: foreign pointer: free of")]
    fn foreign_pointer_panics_naming_the_heap() {
        let mut a = arena();
        let mut b = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let mut other = MCache::new("other", b.backed_heap("backed2", 4096));
        let _x = m.alloc(64, 8).unwrap();
        let y = other.alloc(64, 8).unwrap();
        m.free(y);
    }

    #[test]
    #[should_panic(expected = "heap `general`: foreign pointer: free of")]
    fn free_of_a_large_allocation_twice_is_caught() {
        let mut a = arena();
        let mut m = MCache::new("general", a.backed_heap("backed", 4096));
        let x = m.alloc(20_000, 8).unwrap();
        m.free(x);
        m.free(x);
    }
}
