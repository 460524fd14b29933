//! Host-only support for tests and benchmarks (not built for the kernel):
//! [`HostArena`], a block of std-allocated memory with an id heap over it
//! that is a [`BackedHeap`](crate::BackedHeap), standing in for the kernel's
//! `backed` heap; and [`fill`]/[`check`], which write and verify a byte
//! pattern in an allocation to show that it is usable memory.
//!
//! Contexts: host threads only; no locks of its own.

use crate::backed::Backed;
use crate::id_heap::IdHeap;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::vec;
use std::vec::Vec;

/// A block of host memory and the bitmap storage for an id heap over it.
pub struct HostArena {
    base: u64,
    layout: Layout,
    storage: Vec<u64>,
}

impl HostArena {
    /// `len` bytes aligned to `align`, zeroed.
    pub fn new(len: u64, align: u64) -> Self {
        let layout = Layout::from_size_align(len as usize, align as usize).expect("arena layout");
        // SAFETY: `layout` has a non-zero size (callers ask for whole pages).
        let p = unsafe { alloc_zeroed(layout) };
        assert!(!p.is_null(), "host arena allocation of {len} bytes failed");
        HostArena {
            base: p.expose_provenance() as u64,
            layout,
            storage: Vec::new(),
        }
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn len(&self) -> u64 {
        self.layout.size() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }

    /// An id heap over the whole arena in `unit`-byte units, as a backed
    /// heap. Borrowing the arena keeps its memory alive while the heap is.
    pub fn backed_heap(&mut self, name: &'static str, unit: u64) -> Backed<IdHeap<'_>> {
        let len = self.len() & !(unit - 1);
        self.storage = vec![0; IdHeap::words_for(len, unit)];
        let mut heap = IdHeap::new(name, unit);
        heap.add_range(self.base, len, &mut self.storage)
            .expect("arena range");
        // SAFETY: the arena's memory is a live, writable std allocation that
        // outlives the returned heap (which borrows the arena), and nothing
        // but the heap hands it out; the id heap gives each unit to one
        // owner at a time.
        unsafe { Backed::new(heap) }
    }
}

impl Drop for HostArena {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed(self.layout)`.
        unsafe {
            dealloc(
                std::ptr::with_exposed_provenance_mut(self.base as usize),
                self.layout,
            )
        }
    }
}

/// Writes `len` bytes of a pattern seeded by `seed` at `addr`.
///
/// # Safety
///
/// `addr..addr + len` is writable memory the caller owns exclusively (an
/// allocation from a backed heap, not yet freed).
pub unsafe fn fill(addr: u64, len: u64, seed: u8) {
    for i in 0..len {
        // SAFETY: the caller owns `addr..addr + len`.
        unsafe {
            std::ptr::with_exposed_provenance_mut::<u8>((addr + i) as usize)
                .write_volatile(seed.wrapping_add(i as u8))
        }
    }
}

/// Whether the pattern [`fill`] wrote with `seed` is intact.
///
/// # Safety
///
/// As for [`fill`].
pub unsafe fn check(addr: u64, len: u64, seed: u8) -> bool {
    (0..len).all(|i| {
        // SAFETY: the caller owns `addr..addr + len`.
        let b =
            unsafe { std::ptr::with_exposed_provenance::<u8>((addr + i) as usize).read_volatile() };
        b == seed.wrapping_add(i as u8)
    })
}
