//! The Rust global allocator: `Box`, `Vec`, `Arc` and friends.
//!
//! Allocation is routed by context (see the table in `heaps`): kernel-lock
//! context outside `bh_safe_alloc` uses `general`, everything else `locked`.
//! Free and reallocation are routed by address (the two mcaches live in
//! separate windows) and a `general` block freed outside the kernel lock
//! panics with the context. Out of memory returns null, which Rust's
//! collections turn into `handle_alloc_error` (or an `Err` for the
//! `try_reserve` family).
//!
//! Any context.

use super::{LOCKED, general_misuse, with_general};
use crate::percpu::this_cpu;
use cairn_heap::Heap;
use cairn_heap::SharedHeap;
use cairn_sync::Context;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

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

fn alloc_in(owner: Owner, layout: Layout) -> *mut u8 {
    let (size, align) = (layout.size() as u64, layout.align() as u64);
    let r = match owner {
        Owner::General => with_general(|g| g.alloc(size, align)),
        Owner::Locked => LOCKED.alloc(size, align),
    };
    r.map_or(core::ptr::null_mut(), |a| a as *mut u8)
}

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
