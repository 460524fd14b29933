//! cairn's heaps: `IdHeap`, `ObjCache`, `MCache`, the `Locking` wrapper and
//! the physical page allocator.
//!
//! Not built out yet (issue "Heaps").
#![no_std]
