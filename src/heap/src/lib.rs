//! cairn's heaps (DESIGN.md §3): the id heap, the object cache and the
//! power-of-two mcache, the locking wrapper and the physical page allocator,
//! all behind one interface that deals in addresses (`u64`), like Nanos.
//!
//! | module | owns | callable from |
//! |---|---|---|
//! | [`heap`] | the [`Heap`] / [`SharedHeap`] interface, [`AllocError`], the [`BackedHeap`] contract | — |
//! | [`stats`] | [`HeapStats`] (allocated, total, high-water mark) and the dump table printed at panic | any |
//! | [`id_heap`] | [`IdHeap`]: bitmap ranges over caller-provided storage, no allocation inside | whoever has `&mut` (alone, or under [`Locking`]) |
//! | [`objcache`] | [`ObjCache`]: pages of fixed-size objects from a [`BackedHeap`] parent | whoever has `&mut` |
//! | [`mcache`] | [`MCache`]: one object cache per power of two from 32 B to 4 KiB, larger requests to the parent, `free` without a size | whoever has `&mut` |
//! | [`locking`] | [`Locking`]: an `IrqSpinLock` (interrupts off) around any heap | any context, irq included |
//! | [`physical`] | [`PhysicalPages`]: an id heap of 4 KiB pages over memory-map ranges, contiguous runs for DMA | whoever has `&mut` |
//! | [`backed`] | [`Backed`] (the unsafe promise that a heap's addresses are memory) and [`Offset`] (a direct-map view) | as their inner heap |
//! | [`checked`] | [`KernelLockChecked`]: the debug assertion that a heap is used under the kernel lock | kernel-lock (and boot) only, by construction |
//! | [`host`] | a std-backed arena for host tests and benchmarks (not in kernel builds) | host only |
//!
//! Contexts: none of these heaps knows which context calls it except through
//! the wrapper it sits in. An unwrapped heap needs `&mut`, so the kernel must
//! make it exclusive: the `general` mcache by the kernel lock (checked by
//! [`KernelLockChecked`]), every heap shared with bh or irq context by
//! [`Locking`]. Lock order: a [`Locking`] heap takes its own lock, and while
//! holding it may call its parent, which may be another [`Locking`] heap; so
//! the lock classes of a heap stack nest child-before-parent (e.g. `locked`
//! mcache → `backed` → `physical`), and the validator in `cairn-sync` records
//! and enforces that order. No heap calls back into a child.
//!
//! `unsafe` lives only where a cache writes its bookkeeping into memory it got
//! from a [`BackedHeap`] parent (the object-cache page header and the address
//! registry), plus the constructors that make that promise ([`Backed::new`],
//! and the host arena).
#![no_std]

#[cfg(not(target_os = "none"))]
extern crate std;

mod addr_map;
pub mod backed;
pub mod checked;
pub mod heap;
#[cfg(not(target_os = "none"))]
pub mod host;
pub mod id_heap;
pub mod locking;
pub mod mcache;
pub mod objcache;
pub mod physical;
pub mod stats;

pub use backed::{Backed, Offset};
pub use checked::KernelLockChecked;
pub use heap::{AllocError, BackedHeap, BackedSharedHeap, Heap, SharedHeap};
pub use id_heap::{BadFree, IdHeap, RangeError, ReserveError};
pub use locking::Locking;
pub use mcache::MCache;
pub use objcache::ObjCache;
pub use physical::{PAGE_SIZE, PhysicalPages};
pub use stats::{HeapStats, StatsTable};
