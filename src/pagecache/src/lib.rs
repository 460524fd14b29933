//! cairn's pagecache: the file-data cache between the filesystem, the syscall
//! layer and the block layer, asynchronous throughout (DESIGN.md §2, §4, §6).
//!
//! # Pieces
//!
//! | module | owns |
//! |---|---|
//! | [`page`] | [`Page`]: the state machine FREE/ALLOC/READING/NEW/ACTIVE/DIRTY/WRITING, pins, leases, dirty sectors, waiters; the transition table |
//! | [`cache`] | [`PageCache`] (global: frames, second-chance LRU of clean pages, memory limit, eviction, writeback clock, stats) and [`VolumeCache`] (a volume's storage, metadata hook, dirty-node list) |
//! | [`node`] | [`Node`]: one file's page tree (and its pages detached by truncate), split by job: `node/read.rs` reads with readahead, `fill.rs` fills, `write.rs` writes, `fault.rs` fault fills and map-around, `handles.rs` the handles [`Pages`], [`CachedPages`], [`WriteBatch`], [`CachedWrite`], [`Mapped`] |
//! | `io` | turning page ranges into sector pieces and batched scatter-gather requests |
//! | `writeback` | periodic and on-demand writeback, `sync_node`, `sync_volume` |
//! | `truncate` | [`Node::truncate`] (pages past a new end of file discarded, detached or waited for; the page holding the new end zeroed past it) and [`Node::invalidate_clean`] |
//! | [`frame`] | [`Frame`], the [`FrameAllocator`] hook, and the only `unsafe` code (raw copies in and out of frames) |
//!
//! # Contexts
//!
//! Kernel-lock context runs syscalls and page faults; one CPU at a time
//! holds the kernel lock and a thread that waits for I/O releases it. Bh
//! context runs device completions on any CPU, concurrently with the
//! kernel-lock holder. Irq context never calls in.
//!
//! | entry point | context | why |
//! |---|---|---|
//! | [`Node::read`], [`Node::write`], [`Node::fault`], [`WriteBatch::commit`], [`Node::sync`], [`VolumeCache::sync`], [`PageCache::writeback_tick`], [`Node::truncate`] | kernel-lock | they call the filesystem's [`Backing`] (a kernel-lock structure) and start I/O (truncate: asks the length, frees frames, waits) |
//! | truncate passes after a wait, and `done` of [`Node::truncate`] | kernel-lock (deferred from bh through the runqueue) | `done` must see no kernel-lock code between the last pass and itself: it tells the filesystem |
//! | fill and writeback request completions | bh (asserted) | block completions; they only take pagecache spinlocks and free frames |
//! | [`Completion::Bh`] closures | bh, or kernel-lock when the operation needed no I/O | run directly where the operation ends |
//! | [`Completion::KernelLock`] closures | kernel-lock (asserted) | handed to the [`RunQueueHook`] when the operation ends in bh, run inline otherwise |
//! | [`PageCache::shrink`], [`Node::invalidate_clean`], dropping [`Pages`] / [`Mapped`] (the last holder of a page detached by truncate frees its frame) | kernel-lock or bh | spinlocks only |
//! | `mark_written` after a writeback | kernel-lock (deferred from bh through the runqueue) | it is a [`Backing`] call |
//! | [`Node::read_cached`], [`Node::write_cached`] (which commits its [`CachedWrite`] itself), `Node::map_cached` | any but irq (the kernel's paths without the kernel lock) | they answer only when nothing needs the [`Backing`], a fill or an allocation: node lock (and LRU, dirty list) only, no allocation for a read or write (bh-safe ones elsewhere); a write commit's waiters are woken through the runqueue hook |
//!
//! Everything a bh completion may drop is allocated inside
//! [`cairn_sync::cpu::bh_safe_alloc`] (every entry point wraps its body in
//! it), and a node whose last reference would be dropped in bh is handed
//! to the runqueue and dropped there (its [`Backing`] came from the
//! kernel-lock general heap). [`Completion::bh`] builds its box bh-safe;
//! a [`Completion::KernelLock`] closure is only ever run or dropped under
//! the kernel lock.
//!
//! # Locks
//!
//! | class | protects | taken in | order |
//! |---|---|---|---|
//! | `pagecache.node` | a node's page tree, its pages, the pages truncate detached and its epoch, readahead state, writeback error | kernel-lock, bh | first; never two nodes at once |
//! | `pagecache.lru` | the global second-chance LRU of clean (ACTIVE) pages; eviction skips pinned ones | kernel-lock, bh | under a node lock, or alone (eviction pops, then takes the node lock after releasing it) |
//! | `pagecache.volume` | a volume's dirty-node list | kernel-lock, bh (adding only; writeback and truncate remove, kernel-lock) | under a node lock; never with `pagecache.lru` |
//! | `pagecache.volumes` | the cache's list of volumes | kernel-lock | alone |
//! | `pagecache.gather` | the completion slot of one operation | kernel-lock, bh | alone |
//!
//! All are [`cairn_sync::IrqSpinLock`]s (interrupts off while held). No
//! pagecache lock is held while calling a hook (frames, storage submit,
//! runqueue, backing, metadata), while running a completion or waking a
//! waiter, across I/O, or while copying to or from a caller's buffer
//! (DESIGN.md §4 rules 1-2): reads and writes hand the caller *pinned*
//! pages and the caller copies with no lock held, so a copy that faults
//! into this same file's pagecache (seeds/002, Brian's scenario) completes.
//!
//! # Truncate
//!
//! The kernel calls [`Node::truncate`] before the filesystem frees the
//! storage past the new end and tells the filesystem from its completion,
//! which runs under the kernel lock right after the last pass. Pages past
//! the end are discarded (dirty ones never written), or detached if held by
//! a read or a mapping (the holder keeps the old frame until it drops it;
//! nobody else ever sees it again), or waited for if in flight or leased.
//! Until the backing's length drops to the new end, the node caps the
//! length it reads and faults at (so the window before the filesystem acts
//! reads nothing old back in). The kernel must keep writes to the file out
//! between `done` and the filesystem's truncate (none if `done` tells the
//! filesystem itself), and apply a file's truncates one at a time (see
//! `truncate.rs`).
//!
//! # Errors
//!
//! A failed fill drops the page back to FREE and fails its readers with
//! EIO (later reads retry). A failed writeback keeps the pages dirty and
//! records EIO on the node; the next [`Node::sync`] reports it once.
//! [`Backing::reserve`] runs at write time, so ENOSPC is the write's error.
//! A [`Backing`] error (the filesystem could not say where the data is)
//! fails the same way, with its own errno, exactly the pages whose fill or
//! writeback needed the answer. A fill or writeback request covering
//! several pieces that fails is retried piece by piece (a piece is at most
//! one page), so one bad sector fails only the page holding it, not the
//! readahead batch or writeback run around it.
#![no_std]

extern crate alloc;
#[cfg(not(target_os = "none"))]
extern crate std;

pub mod cache;
pub mod frame;
mod io;
pub mod node;
pub mod page;
mod truncate;
mod writeback;

pub use cache::{Config, PageCache, StatsSnapshot, VolumeCache};
pub use frame::{Frame, FrameAllocator, RawDestination, RawSource};
pub use node::{
    Access, CACHED_MAX_PAGES, CachedPages, CachedWrite, Mapped, Node, Pages, WriteBatch,
};
pub use page::{Page, PageState};

use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{Context, context};

/// Size of a cached page.
pub const PAGE_SIZE: usize = 4096;
/// Size of a disk sector.
pub const SECTOR_SIZE: u64 = 512;

/// A Linux error number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EIO: Errno = Errno(5);
    pub const ENOMEM: Errno = Errno(12);
    pub const EFAULT: Errno = Errno(14);
    pub const EINVAL: Errno = Errno(22);
    pub const EFBIG: Errno = Errno(27);
    pub const ENOSPC: Errno = Errno(28);
}

/// Where an operation's result is delivered.
pub enum Completion<T> {
    /// Run where the operation ends: in the bh completion of its last I/O,
    /// or inline in the kernel-lock call that needed no I/O. The closure
    /// must be bh-safe (build it with [`Completion::bh`]).
    Bh(Box<dyn FnOnce(T) + Send>),
    /// A syscall continuation: run under the kernel lock, through the
    /// runqueue hook if the operation ends in bh.
    KernelLock(Box<dyn FnOnce(T) + Send>),
}

impl<T: Send + 'static> Completion<T> {
    /// A bh completion, its box allocated bh-safe.
    pub fn bh(f: impl FnOnce(T) + Send + 'static) -> Self {
        Completion::Bh(bh_safe_alloc(|| Box::new(f)))
    }

    /// A kernel-lock completion.
    pub fn kernel_lock(f: impl FnOnce(T) + Send + 'static) -> Self {
        Completion::KernelLock(Box::new(f))
    }

    /// Delivers `value` per the variant.
    pub(crate) fn complete(self, runqueue: &dyn RunQueueHook, value: T) {
        match self {
            Completion::Bh(f) => {
                let c = context();
                assert!(
                    matches!(c, Context::Bh | Context::KernelLock | Context::Boot),
                    "pagecache bh completion run in {c:?} context"
                );
                f(value)
            }
            Completion::KernelLock(f) => run_or_defer(runqueue, move || f(value)),
        }
    }
}

/// The one "run now under the kernel lock, or defer" helper: runs `f` at
/// once in kernel-lock (or boot) context, otherwise boxes it bh-safe (the
/// runqueue hook's consumer frees it) and hands it to `runqueue`, which
/// runs it under the kernel lock. Callable from bh and kernel-lock context
/// with no pagecache lock held.
pub(crate) fn run_or_defer(runqueue: &dyn RunQueueHook, f: impl FnOnce() + Send + 'static) {
    if in_kernel_lock() {
        f();
    } else {
        let work: Box<dyn FnOnce() + Send> = bh_safe_alloc(|| {
            Box::new(move || {
                assert_kernel_lock("pagecache deferred work");
                f()
            })
        });
        runqueue.defer(work);
    }
}

/// Whether the caller may do kernel-lock work here (boot counts: it is
/// single-threaded and may do anything).
pub(crate) fn in_kernel_lock() -> bool {
    matches!(context(), Context::KernelLock | Context::Boot)
}

#[track_caller]
pub(crate) fn assert_kernel_lock(what: &str) {
    let c = context();
    assert!(
        matches!(c, Context::KernelLock | Context::Boot),
        "{what} called in {c:?} context (kernel-lock only)"
    );
}

#[track_caller]
pub(crate) fn assert_bh(what: &str) {
    let c = context();
    assert_eq!(c, Context::Bh, "{what} ran in {c:?} context, not bh");
}

/// Where the pagecache's deferred kernel-lock work goes (the kernel gives
/// it a worker thread, which may sleep; tests a simulated runqueue). Every
/// deferral goes through [`run_or_defer`]. Called from bh and kernel-lock
/// context with no pagecache lock held.
pub trait RunQueueHook: Send + Sync {
    fn defer(&self, work: Box<dyn FnOnce() + Send>);
}

/// What backs a byte range of a file, in whole 512-byte sectors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Initialised data at disk sector `sector`.
    Disk { sector: u64 },
    /// Allocated at `sector` but never written: reads as zeros; a write
    /// goes to `sector`, then [`Backing::mark_written`] turns it into
    /// `Disk`.
    Uninited { sector: u64 },
    /// Nothing allocated: reads as zeros; never written to (writes reserve
    /// first).
    Hole,
}

/// `len` bytes of the file at `offset` (both multiples of 512).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub offset: u64,
    pub len: u64,
    pub extent: Extent,
}

/// A file's storage as its filesystem knows it. Implemented by the kernel
/// over TFS; every method is called in kernel-lock context only, with no
/// pagecache lock held. Every method can fail (the filesystem could not
/// read its metadata): the error goes to exactly the operation and the
/// pages that needed the answer, never turned into a default.
pub trait Backing: Send + Sync {
    /// The file's length in bytes. The node asks once and then keeps it:
    /// it changes only by [`Backing::reserve`] (the node grows its copy)
    /// and by the filesystem's own truncate or fallocate, after which the
    /// kernel calls [`Node::length_changed`]. The truncate runs after
    /// [`Node::truncate`] (from its completion); a pending truncate caps
    /// the length the node uses until this reports the new end.
    fn length(&self) -> Result<u64, Errno>;
    /// How `offset .. offset + len` (sector-aligned) is stored, in file
    /// order; ranges not covered read as holes. An error fails the fill
    /// (its pages' readers get it) or the writeback (the pages stay dirty,
    /// the node records it for fsync) of exactly that range.
    fn map(&self, offset: u64, len: u64) -> Result<Vec<Mapping>, Errno>;
    /// Called by `write` before anything is cached: allocate the sectors
    /// covering `offset .. offset + len` (as uninited) and extend the
    /// length to cover it. ENOSPC here is the write's error.
    fn reserve(&self, offset: u64, len: u64) -> Result<(), Errno>;
    /// The sectors of `offset .. offset + len` were written: uninited
    /// extents there become initialised. An error keeps the written pages
    /// dirty (written again, and marked again, by the next writeback) and
    /// is recorded on the node for fsync.
    fn mark_written(&self, offset: u64, len: u64) -> Result<(), Errno>;
}

/// A volume's filesystem metadata, flushed by sync between the data
/// writeback and the device flush. Called in kernel-lock context; `done`
/// may run in any context but irq.
pub trait MetadataSync: Send + Sync {
    fn sync_metadata(&self, done: Box<dyn FnOnce(Result<(), Errno>) + Send>);
}
