//! Property tests: random alloc/free sequences on an `ObjCache` and an
//! `MCache` over a host arena (a backed id heap), against a model of the
//! live allocations.
//!
//! Checked: no two live allocations overlap, each is aligned as asked,
//! each is usable memory (a pattern written at allocation is intact at
//! free), accounting equals the model, out of memory is an error that
//! leaves the heap usable, and after freeing everything and trimming the
//! parent has nothing allocated.
#![cfg(not(loom))]

use cairn_heap::host::{HostArena, check, fill};
use cairn_heap::mcache::{CACHE_PAGE_SIZE, MAX_OBJECT};
use cairn_heap::{AllocError, Heap, MCache, ObjCache};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Live allocations by address: (length checked for overlap, pattern seed,
/// bytes patterned).
struct Live(BTreeMap<u64, (u64, u8, u64)>);

impl Live {
    fn insert(
        &mut self,
        addr: u64,
        len: u64,
        seed: u8,
        patterned: u64,
    ) -> Result<(), TestCaseError> {
        if let Some((&a, &(l, _, _))) = self.0.range(..=addr).next_back() {
            prop_assert!(a + l <= addr, "{:#x}+{} overlaps {:#x}", a, l, addr);
        }
        if let Some((&a, _)) = self.0.range(addr..).next() {
            prop_assert!(addr + len <= a, "{:#x}+{} overlaps {:#x}", addr, len, a);
        }
        // SAFETY: `addr..addr + patterned` is a live allocation from a
        // backed heap, owned by this test.
        unsafe { fill(addr, patterned, seed) };
        self.0.insert(addr, (len, seed, patterned));
        Ok(())
    }

    fn remove_nth(&mut self, pick: usize) -> Option<(u64, u64)> {
        if self.0.is_empty() {
            return None;
        }
        let addr = *self.0.keys().nth(pick % self.0.len()).unwrap();
        let (len, seed, patterned) = self.0.remove(&addr).unwrap();
        // SAFETY: still live until the caller frees it.
        let intact = unsafe { check(addr, patterned, seed) };
        assert!(intact, "pattern at {addr:#x} damaged");
        Some((addr, len))
    }
}

#[derive(Clone, Debug)]
enum CacheOp {
    Alloc,
    Free(usize),
    Trim,
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        6 => Just(CacheOp::Alloc),
        5 => any::<usize>().prop_map(CacheOp::Free),
        1 => Just(CacheOp::Trim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn objcache_matches_model(
        object_size in 1u64..700,
        align_log in 0u32..7,
        page_log in prop::sample::select(vec![12u32, 14, 16]),
        arena_pages in 2u64..12,
        max_empty in 0u32..3,
        ops in prop::collection::vec(cache_op(), 1..400),
    ) {
        let align = 1u64 << align_log;
        let page = 1u64 << page_log;
        let mut arena = HostArena::new(arena_pages * page, page);
        let mut cache = ObjCache::new("prop-obj", arena.backed_heap("backed", 4096), object_size, align, page);
        cache.set_max_cached_empty(max_empty);
        let stride = cache.object_size();
        prop_assert!(stride >= object_size && stride % align == 0);
        let mut live = Live(BTreeMap::new());
        let mut seed = 0u8;
        for op in ops {
            match op {
                CacheOp::Alloc => match cache.alloc(object_size, align) {
                    Ok(a) => {
                        prop_assert_eq!(a % align, 0);
                        seed = seed.wrapping_add(1);
                        live.insert(a, stride, seed, object_size)?;
                    }
                    Err(AllocError) => {
                        // Only when every page it holds is full (it had to
                        // ask the parent, which had no aligned page left).
                        prop_assert_eq!(
                            live.0.len() as u64,
                            cache.pages() * u64::from(cache.objects_per_page())
                        );
                    }
                },
                CacheOp::Free(pick) => {
                    if let Some((a, _)) = live.remove_nth(pick) {
                        cache.dealloc(a, object_size);
                    }
                }
                CacheOp::Trim => cache.trim(),
            }
            let s = cache.stats();
            prop_assert_eq!(s.allocated, live.0.len() as u64 * stride);
            prop_assert!(s.high_water >= s.allocated);
            prop_assert_eq!(s.total, cache.parent().stats().allocated);
            // Cached empty pages are bounded: every page but the current
            // one and `max_empty` empties holds a live object.
            let per_page = u64::from(cache.objects_per_page());
            let needed = (live.0.len() as u64).div_ceil(per_page);
            prop_assert!(cache.pages() <= live.0.len() as u64 + 1 + u64::from(max_empty));
            prop_assert!(cache.pages() >= needed);
        }
        while let Some((a, _)) = live.remove_nth(0) {
            cache.dealloc(a, object_size);
        }
        prop_assert_eq!(cache.stats().allocated, 0);
        cache.trim();
        prop_assert_eq!(cache.stats().total, 0);
        prop_assert_eq!(cache.parent().stats().allocated, 0);
    }
}

#[derive(Clone, Debug)]
enum MOp {
    Alloc { size: u64, align_log: u32 },
    Dealloc(usize),
    Free(usize),
    Trim,
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..=MAX_OBJECT,
        2 => prop::sample::select(vec![32u64, 64, 128, 256, 512, 1024, 2048, 4096]),
        1 => (MAX_OBJECT + 1)..(3 * CACHE_PAGE_SIZE),
    ]
}

fn mop() -> impl Strategy<Value = MOp> {
    prop_oneof![
        8 => (size(), prop_oneof![6 => 0u32..4, 1 => 4u32..14])
            .prop_map(|(size, align_log)| MOp::Alloc { size, align_log }),
        3 => any::<usize>().prop_map(MOp::Dealloc),
        3 => any::<usize>().prop_map(MOp::Free),
        1 => Just(MOp::Trim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mcache_matches_model(
        arena_pages in 4u64..40,
        max_empty in 0u32..3,
        ops in prop::collection::vec(mop(), 1..400),
    ) {
        let mut arena = HostArena::new(arena_pages * CACHE_PAGE_SIZE, CACHE_PAGE_SIZE);
        let mut m = MCache::new("prop-mcache", arena.backed_heap("backed", 4096));
        m.set_max_cached_empty(max_empty);
        let mut live = Live(BTreeMap::new());
        // The size each live allocation was requested with.
        let mut requested: BTreeMap<u64, u64> = BTreeMap::new();
        let mut expect_allocated = 0u64;
        let mut seed = 0u8;
        let mut ooms = 0u32;
        for op in ops {
            match op {
                MOp::Alloc { size, align_log } => {
                    let align = 1u64 << align_log;
                    match m.alloc(size, align) {
                        Ok(a) => {
                            prop_assert_eq!(a % align, 0);
                            let usable = m.allocation_size(a).unwrap();
                            prop_assert!(usable >= size);
                            expect_allocated += usable;
                            seed = seed.wrapping_add(1);
                            // Pattern the whole of small objects, the ends
                            // of large ones.
                            live.insert(a, size.max(1), seed, size.min(2 * MAX_OBJECT))?;
                            requested.insert(a, size);
                        }
                        Err(AllocError) => {
                            // A cache class fails only when all its pages are
                            // full (it had to ask the parent).
                            if size <= MAX_OBJECT && align <= size.max(32).next_power_of_two() {
                                let class = m
                                    .class_stats()
                                    .find(|c| c.object_size >= size)
                                    .unwrap();
                                prop_assert_eq!(
                                    class.objects_in_use,
                                    class.pages * u64::from(class.objects_per_page)
                                );
                            }
                            ooms += 1;
                        }
                    }
                }
                MOp::Dealloc(pick) | MOp::Free(pick) => {
                    if let Some((a, _)) = live.remove_nth(pick) {
                        let size = requested.remove(&a).unwrap();
                        expect_allocated -= m.allocation_size(a).unwrap();
                        if matches!(op, MOp::Dealloc(_)) {
                            m.dealloc(a, size);
                        } else {
                            m.free(a);
                        }
                        prop_assert_eq!(m.allocation_size(a).filter(|_| size > MAX_OBJECT), None);
                    }
                }
                MOp::Trim => m.trim(),
            }
            let s = m.stats();
            prop_assert_eq!(s.allocated, expect_allocated);
            prop_assert!(s.high_water >= s.allocated);
            // The parent rounds large allocations up to its 4 KiB units.
            let parent = m.parent().stats().allocated;
            prop_assert!(s.total <= parent && parent - s.total < 4096 * (m.large().0 + 1));
        }
        while let Some((a, _)) = live.remove_nth(0) {
            m.free(a);
        }
        // Out of memory happened in some cases and left the heap consistent.
        let _ = ooms;
        prop_assert_eq!(m.stats().allocated, 0);
        prop_assert_eq!(m.large(), (0, 0));
        m.trim();
        prop_assert_eq!(m.stats().total, 0);
        prop_assert_eq!(m.parent().stats().allocated, 0);
    }
}
