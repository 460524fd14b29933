//! The heap interface every cairn heap implements.
//!
//! Heaps deal in addresses (`u64`), not pointers: an [`IdHeap`](crate::IdHeap)
//! may hand out physical addresses (not dereferenceable), virtual ranges (not
//! yet mapped) or plain ids. Only a [`BackedHeap`] promises that its addresses
//! are memory the caller may write.
//!
//! * [`Heap`]: exclusive access (`&mut self`); the heap itself takes no lock.
//! * [`SharedHeap`]: the same through `&self`, for heaps that synchronise
//!   internally ([`Locking`](crate::Locking)). A `&T` of a shared heap is a
//!   [`Heap`], so a `&'static Locking<..>` can be the parent of a cache.
//!
//! Conventions every implementation follows:
//! * `align` is a power of two (anything else is a caller bug and panics,
//!   naming the heap); a size of 0 is served as the smallest allocation.
//! * Out of memory, or no fit, is `Err(AllocError)`, which callers handle.
//! * `dealloc(addr, size)` takes the size passed to `alloc`. Bad frees
//!   (double free, foreign address, wrong size) panic naming the heap, in
//!   every build: a heap that keeps going after one hands the same memory to
//!   two owners, and a unikernel has nothing to recover with.
//!
//! Contexts and locks: none at this level; see the implementations.

use crate::stats::HeapStats;
use core::fmt;

/// Out of memory or no fit. Callers handle it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out of memory")
    }
}

/// A heap used with exclusive access.
pub trait Heap {
    /// Allocates at least `size` bytes aligned to `align` (a power of two).
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError>;
    /// Frees what `alloc` returned; `size` is the size given to `alloc`.
    /// Panics, naming the heap, on a free it can prove wrong.
    fn dealloc(&mut self, addr: u64, size: u64);
    /// Allocated, total and high-water bytes, with the heap's name.
    fn stats(&self) -> HeapStats;
}

/// A heap that synchronises internally and is used through `&self`.
pub trait SharedHeap: Sync {
    /// As [`Heap::alloc`].
    fn alloc(&self, size: u64, align: u64) -> Result<u64, AllocError>;
    /// As [`Heap::dealloc`].
    fn dealloc(&self, addr: u64, size: u64);
    /// As [`Heap::stats`].
    fn stats(&self) -> HeapStats;
}

/// A shared heap by reference is a heap: this is how a `&'static Locking<..>`
/// becomes the parent of a cache.
impl<T: SharedHeap + ?Sized> Heap for &T {
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        (**self).alloc(size, align)
    }
    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        (**self).dealloc(addr, size)
    }
    fn stats(&self) -> HeapStats {
        (**self).stats()
    }
}

/// A reference to a shared heap is itself shared (so wrappers such as
/// [`Offset`](crate::Offset) can sit on a `&'static Locking<..>` and stay
/// shareable).
impl<T: SharedHeap + ?Sized> SharedHeap for &T {
    #[inline]
    #[track_caller]
    fn alloc(&self, size: u64, align: u64) -> Result<u64, AllocError> {
        (**self).alloc(size, align)
    }
    #[inline]
    #[track_caller]
    fn dealloc(&self, addr: u64, size: u64) {
        (**self).dealloc(addr, size)
    }
    fn stats(&self) -> HeapStats {
        (**self).stats()
    }
}

/// A heap borrowed mutably is a heap (a cache may borrow its parent).
impl<H: Heap + ?Sized> Heap for &mut H {
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        (**self).alloc(size, align)
    }
    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        (**self).dealloc(addr, size)
    }
    fn stats(&self) -> HeapStats {
        (**self).stats()
    }
}

/// A heap whose addresses are memory.
///
/// # Safety
///
/// Implementors promise that every address `alloc(size, align)` returns is
/// the start of at least `size` bytes of mapped, readable and writable
/// memory, aligned to `align`, that nothing else reads or writes until the
/// caller passes it back to `dealloc` (the caller owns it exclusively), and
/// that stays mapped until then. Object caches write their bookkeeping into
/// such memory on the strength of this promise alone.
///
/// The other half of "exclusively owned" is on the callers: only the owner
/// of an allocation frees it. `dealloc` is a safe method (heaps deal in
/// addresses, like Nanos's), so the type system does not enforce that; the
/// heaps catch what can be caught (double free, foreign address, wrong
/// size) and panic, but a free of someone else's *live* allocation of the
/// right size is indistinguishable from its owner's. Kernel code therefore
/// frees backed memory only through the handle that owns it (a box-like
/// owner, or the global allocator, whose `dealloc` is `unsafe`).
pub unsafe trait BackedHeap: Heap {}

/// A [`SharedHeap`] whose addresses are memory.
///
/// # Safety
///
/// The promise of [`BackedHeap`], for allocations made through `&self`.
pub unsafe trait BackedSharedHeap: SharedHeap {}

// SAFETY: `&T` forwards every call to `T`, which keeps the promise.
unsafe impl<T: BackedSharedHeap + ?Sized> BackedHeap for &T {}
// SAFETY: as above.
unsafe impl<T: BackedSharedHeap + ?Sized> BackedSharedHeap for &T {}
// SAFETY: `&mut H` forwards every call to `H`, which keeps the promise.
unsafe impl<H: BackedHeap + ?Sized> BackedHeap for &mut H {}

/// Panics unless `align` is a power of two; every heap's `alloc` calls it.
#[inline]
#[track_caller]
pub(crate) fn check_align(heap: &'static str, align: u64) {
    if !align.is_power_of_two() {
        bad_align(heap, align);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_align(heap: &'static str, align: u64) -> ! {
    panic!("heap `{heap}`: alignment {align:#x} is not a power of two")
}
