//! The Rust global allocator: `Box`, `Vec`, `Arc` and friends.
//!
//! Allocation is routed by context (see the table in `heaps`): kernel-lock
//! context outside `bh_safe_alloc` uses `general`, everything else `locked`.
//! Free and reallocation are routed by address (the two mcaches live in
//! separate windows) and a `general` block freed outside the kernel lock
//! panics with the context.
//!
//! **Out of memory.** When a heap cannot grow, the allocator first asks
//! the reclaimer [`set_reclaimer`] installed (the pagecache, which drops
//! clean cached pages: Linux's direct reclaim) for the bytes it needs and
//! tries again, as long as the reclaimer frees something. It does so only
//! where taking the pagecache's locks is safe: kernel-lock context with
//! interrupts on (no irq-safe spinlock held) and, in debug builds, no lock
//! of any class held; never re-entered. Otherwise, or when nothing is left
//! to drop, it returns null, which Rust's collections turn into
//! `handle_alloc_error` (or an `Err` for the `try_reserve` family).
//!
//! Any context; the reclaimer runs in kernel-lock context only.

use super::{LOCKED, general_misuse, with_general};
use crate::percpu::this_cpu;
use cairn_heap::Heap;
use cairn_heap::SharedHeap;
use cairn_sync::Context;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static GENERAL_START: AtomicU64 = AtomicU64::new(0);
static GENERAL_END: AtomicU64 = AtomicU64::new(0);
static LOCKED_START: AtomicU64 = AtomicU64::new(0);
static LOCKED_END: AtomicU64 = AtomicU64::new(0);

pub(super) fn set_windows(general: (u64, u64), locked: (u64, u64)) {
    GENERAL_START.store(general.0, Ordering::Relaxed);
    GENERAL_END.store(general.1, Ordering::Relaxed);
    LOCKED_START.store(locked.0, Ordering::Relaxed);
    LOCKED_END.store(locked.1, Ordering::Relaxed);
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Owner {
    General,
    Locked,
}

fn route() -> Owner {
    if this_cpu().bh_safe_alloc_depth.load(Ordering::Relaxed) == 0
        && crate::context::current() == Context::KernelLock
    {
        Owner::General
    } else {
        Owner::Locked
    }
}

fn owner_of(addr: u64) -> Owner {
    if (GENERAL_START.load(Ordering::Relaxed)..GENERAL_END.load(Ordering::Relaxed)).contains(&addr)
    {
        Owner::General
    } else if (LOCKED_START.load(Ordering::Relaxed)..LOCKED_END.load(Ordering::Relaxed))
        .contains(&addr)
    {
        Owner::Locked
    } else {
        panic!("global allocator: free of {addr:#x}, which no kernel heap handed out");
    }
}

/// Frees cached memory on demand: called with the bytes wanted, returns
/// the bytes it freed. Set once at boot.
static RECLAIMER: spin::Once<fn(u64) -> u64> = spin::Once::new();
/// Set while the reclaimer runs (it runs under the kernel lock, so on one
/// CPU at a time): an allocation inside it does not reclaim again.
static RECLAIMING: AtomicBool = AtomicBool::new(false);

/// Installs what the allocator calls when the general heap cannot grow.
pub fn set_reclaimer(reclaim: fn(u64) -> u64) {
    RECLAIMER.call_once(|| reclaim);
}

fn try_alloc_in(owner: Owner, size: u64, align: u64) -> Option<u64> {
    match owner {
        Owner::General => with_general(|g| g.alloc(size, align)).ok(),
        Owner::Locked => LOCKED.alloc(size, align).ok(),
    }
}

/// Whether this allocation may run the reclaimer: under the kernel lock
/// (`general`, or `locked` inside `bh_safe_alloc`), and the pagecache's
/// locks are irq-safe spinlocks, so none is held while interrupts are on;
/// the validator (debug builds) also knows every other lock held: the
/// kernel lock must be the only one.
fn may_reclaim() -> bool {
    crate::context::current() == Context::KernelLock
        && cairn_pc::cpu::interrupts_enabled()
        && cairn_sync::lockdep::held_count() == usize::from(cairn_sync::lockdep::ENABLED)
}

fn alloc_in(owner: Owner, layout: Layout) -> *mut u8 {
    let (size, align) = (layout.size() as u64, layout.align() as u64);
    if let Some(a) = try_alloc_in(owner, size, align) {
        return a as *mut u8;
    }
    let Some(reclaim) = RECLAIMER.get() else {
        return core::ptr::null_mut();
    };
    if !may_reclaim() || RECLAIMING.swap(true, Ordering::Acquire) {
        return core::ptr::null_mut();
    }
    // Ask for a 2 MiB page's worth more than the block: the window grows
    // in 2 MiB steps when it can, and the mcache in pages.
    let want = size.saturating_add(2 << 20);
    let mut r = None;
    while r.is_none() && reclaim(want) > 0 {
        RECLAIMS.fetch_add(1, Ordering::Relaxed);
        r = try_alloc_in(owner, size, align);
    }
    RECLAIMING.store(false, Ordering::Release);
    r.map_or(core::ptr::null_mut(), |a| a as *mut u8)
}

/// Memory user space may take (anonymous pages, new threads) stops at
/// `1 / USER_FLOOR_DIVISOR` of RAM free: the rest is the kernel heaps'
/// reserve, so that the kernel can still allocate what it needs to fail a
/// request cleanly. (The pagecache stops earlier, at 1/16: `fs::hooks`.)
pub const USER_FLOOR_DIVISOR: u64 = 32;

/// Kernel metadata that programs make grow without bound (TFS keeps every
/// file's index entries in the general heap) stops when the general heap
/// holds `1 / METADATA_MAX_DIVISOR` of RAM: the heaps keep the RAM they
/// ever mapped (see `window`), so what metadata once took is lost to
/// programs for good, and without a cap a program that made 130,000
/// empty files in 128 MiB could no longer fault its own pages in after
/// deleting them. It also stops at `1 / METADATA_FLOOR_DIVISOR` of RAM
/// free, above the programs' floor.
pub const METADATA_MAX_DIVISOR: u64 = 2;
pub const METADATA_FLOOR_DIVISOR: u64 = 16;

/// Whether `bytes` more of RAM can go to user space: free memory stays
/// above the kernel's reserve, after dropping cached pages if that is
/// needed and safe here (see [`may_reclaim`]). Any context.
pub fn room_for_user(bytes: u64) -> bool {
    room_above(USER_FLOOR_DIVISOR, bytes)
}

/// Whether kernel metadata may grow by about `bytes` on a program's
/// behalf (a new file): free memory stays above `1 /
/// METADATA_FLOOR_DIVISOR` of RAM, after dropping cached pages if needed
/// and safe here. Any context.
/// Kernel-lock context (it reads the general heap's figures).
pub fn room_for_metadata(bytes: u64) -> bool {
    let Some(ram) = super::PHYSICAL.try_stats().map(|s| s.total) else {
        return true;
    };
    let general = super::with_general(|g| g.stats());
    if general.allocated.saturating_add(bytes) > ram / METADATA_MAX_DIVISOR {
        return false;
    }
    // What the heaps already hold and have not handed out serves first.
    let idle = general.total.saturating_sub(general.allocated)
        + super::BACKED
            .try_stats()
            .map_or(0, |s| s.total.saturating_sub(s.allocated));
    idle >= bytes || room_above(METADATA_FLOOR_DIVISOR, bytes)
}

/// Kernel buffers whose size programs choose (pipe and AF_UNIX queues,
/// TCP/UDP socket buffers) together take at most `1 /
/// BUFFER_MAX_DIVISOR` of RAM: each is charged its whole capacity when it
/// is made ([`charge_buffer`]) and released when it goes. Without a
/// budget, 2,048 pipes grown to 1 MiB and filled, or a few hundred
/// socket pairs, ran a 128 MiB kernel out of memory (a panic).
pub const BUFFER_MAX_DIVISOR: u64 = 4;

/// Bytes charged by [`charge_buffer`] and not yet released.
static PROGRAM_BUFFERS: AtomicU64 = AtomicU64::new(0);

/// Charges `bytes` of buffer capacity to the programs' budget; false (and
/// nothing charged) when that would pass `1 / BUFFER_MAX_DIVISOR` of RAM.
/// Any context (an atomic).
pub fn charge_buffer(bytes: u64) -> bool {
    let limit = crate::mm::kernel_map::ram_top() / BUFFER_MAX_DIVISOR;
    PROGRAM_BUFFERS
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(bytes).filter(|&n| n <= limit)
        })
        .is_ok()
}

/// Charges `bytes` whatever the budget says: the least a pipe or a socket
/// queue gets (one page; their number is bounded by RLIMIT_NOFILE).
pub fn charge_buffer_anyway(bytes: u64) {
    PROGRAM_BUFFERS.fetch_add(bytes, Ordering::AcqRel);
}

/// Gives back what [`charge_buffer`] or [`charge_buffer_anyway`] charged.
pub fn release_buffer(bytes: u64) {
    PROGRAM_BUFFERS.fetch_sub(bytes, Ordering::AcqRel);
}

/// Bytes of buffer capacity programs hold (kstats `buffers.charged`).
pub fn buffers_charged() -> u64 {
    PROGRAM_BUFFERS.load(Ordering::Acquire)
}

/// Whether `bytes` more of RAM leave `1 / divisor` of it free, reclaiming
/// cached pages first if that is needed and safe here.
fn room_above(divisor: u64, bytes: u64) -> bool {
    let short = || {
        super::PHYSICAL.try_stats().map_or(0, |s| {
            let free = s.total.saturating_sub(s.allocated);
            (s.total / divisor + bytes).saturating_sub(free)
        })
    };
    let missing = short();
    if missing == 0 {
        return true;
    }
    let Some(reclaim) = RECLAIMER.get() else {
        return false;
    };
    if !may_reclaim() || RECLAIMING.swap(true, Ordering::Acquire) {
        return false;
    }
    let freed = reclaim(missing);
    RECLAIMED.fetch_add(freed, Ordering::Relaxed);
    RECLAIMING.store(false, Ordering::Release);
    if freed > 0 {
        RECLAIMS.fetch_add(1, Ordering::Relaxed);
    }
    short() == 0
}

/// Bytes the reclaimer freed for programs' memory (kstats `heap.reclaimed`).
pub static RECLAIMED: AtomicU64 = AtomicU64::new(0);

/// How many times an allocation ran the reclaimer (kstats `heap.reclaims`).
pub static RECLAIMS: AtomicU64 = AtomicU64::new(0);

fn free_in(owner: Owner, addr: u64, layout: Layout) {
    match owner {
        Owner::General => {
            let ctx = crate::context::current();
            if ctx != Context::KernelLock {
                crate::console::emergency(format_args!(
                    "general-heap block {addr:#x} of {} bytes (align {}) freed in {ctx:?} context\n",
                    layout.size(),
                    layout.align()
                ));
                general_misuse("free", ctx, core::panic::Location::caller());
            }
            with_general(|g| g.dealloc(addr, layout.size() as u64));
        }
        Owner::Locked => LOCKED.dealloc(addr, layout.size() as u64),
    }
}

pub struct KernelAllocator;

// SAFETY: every block comes from `general` or `locked`, which hand out
// distinct, aligned, writable memory of at least the requested size; frees
// and reallocations go back to the heap that owns the address.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_in(route(), layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let addr = ptr as u64;
        free_in(owner_of(addr), addr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let addr = ptr as u64;
        let owner = owner_of(addr);
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        let new = alloc_in(owner, new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least
            // `min(old, new)` bytes long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            free_in(owner, addr, layout);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: KernelAllocator = KernelAllocator;
