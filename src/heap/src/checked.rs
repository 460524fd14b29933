//! The kernel-lock assertion of the `general` heap (issue 3, item 3).
//!
//! `general` is an mcache without a lock of its own: it is safe only because
//! every use happens under the kernel lock. [`KernelLockChecked`] wraps it
//! and, in builds with debug assertions, checks on every alloc and free that
//! this CPU holds the kernel lock and is not running bh work nested on top of
//! a holder (or is still in single-threaded boot), and
//! otherwise panics naming the caller (`#[track_caller]`), the context and
//! the heap. That is how a bh completion dropping the last reference to a
//! general-heap object (the bug class of the Nanos audit, seeds/003) is
//! caught at the free instead of corrupting the heap later.
//!
//! It needs `&mut`: the kernel keeps the wrapper where only kernel-lock code
//! can reach it; this type adds the check, not the exclusivity.
//!
//! Contexts: kernel-lock and boot; any other panics (debug builds). Takes no
//! lock; reads the kernel lock's owner.

use crate::heap::{AllocError, BackedHeap, Heap};
use crate::mcache::MCache;
use crate::stats::HeapStats;
use cairn_sync::cpu::Context;
use cairn_sync::{KernelLock, context};
use core::panic::Location;

/// Whether the check runs in this build.
pub const ENABLED: bool = cfg!(debug_assertions);

/// A heap that may only be used under the kernel lock. See the module docs.
pub struct KernelLockChecked<H> {
    heap: H,
    kernel_lock: &'static KernelLock,
}

impl<H> KernelLockChecked<H> {
    pub const fn new(heap: H, kernel_lock: &'static KernelLock) -> Self {
        KernelLockChecked { heap, kernel_lock }
    }
}

impl<H: Heap> KernelLockChecked<H> {
    /// Panics (debug builds) unless this CPU holds the kernel lock or is
    /// booting; `op` and the caller's location go into the message.
    #[inline]
    #[track_caller]
    pub fn check(&self, op: &'static str) {
        if ENABLED && (!self.kernel_lock.held_by_this_cpu() || context() == Context::Bh) {
            let ctx = context();
            if ctx != Context::Boot {
                outside_kernel_lock(self.heap.stats().name, op, ctx, Location::caller());
            }
        }
    }

    /// The inner heap, checked like a call (for methods outside [`Heap`]).
    #[inline]
    #[track_caller]
    pub fn get_mut(&mut self) -> &mut H {
        self.check("access");
        &mut self.heap
    }
}

#[cold]
#[inline(never)]
fn outside_kernel_lock(
    heap: &'static str,
    op: &'static str,
    ctx: Context,
    site: &Location<'_>,
) -> ! {
    panic!(
        "heap `{heap}`: {op} at {site} in {ctx:?} context without the kernel lock (the general \
         heap is for kernel-lock context only; use the locked heap)"
    )
}

impl<P: BackedHeap> KernelLockChecked<MCache<P>> {
    /// `MCache::free` (no size), checked.
    #[inline]
    #[track_caller]
    pub fn free(&mut self, addr: u64) {
        self.check("free");
        self.heap.free(addr)
    }
}

impl<H: Heap> Heap for KernelLockChecked<H> {
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.check("alloc");
        self.heap.alloc(size, align)
    }

    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        self.check("free");
        self.heap.dealloc(addr, size)
    }

    fn stats(&self) -> HeapStats {
        self.heap.stats()
    }
}

// SAFETY: the wrapper forwards to `H` unchanged.
unsafe impl<H: BackedHeap> BackedHeap for KernelLockChecked<H> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::host::HostArena;
    use cairn_sync::cpu::host::set_context;

    static KERNEL: KernelLock = KernelLock::new();

    fn general(
        arena: &mut HostArena,
    ) -> KernelLockChecked<MCache<crate::Backed<crate::IdHeap<'_>>>> {
        KernelLockChecked::new(
            MCache::new("general", arena.backed_heap("backed", 4096)),
            &KERNEL,
        )
    }

    #[test]
    fn allowed_at_boot_and_under_the_kernel_lock() {
        let mut arena = HostArena::new(1 << 20, 1 << 16);
        let mut g = general(&mut arena);
        std::thread::scope(|s| {
            s.spawn(|| {
                set_context(Context::Boot);
                let a = g.alloc(64, 8).unwrap();
                set_context(Context::KernelLock);
                let k = KERNEL.lock();
                g.dealloc(a, 64);
                let b = g.alloc(100, 8).unwrap();
                g.free(b);
                drop(k);
            });
        });
    }

    #[test]
    #[should_panic(expected = "in Bh context without the kernel lock")]
    #[cfg_attr(not(debug_assertions), ignore = "the check is compiled out")]
    fn free_from_bh_context_is_caught() {
        let mut arena = HostArena::new(1 << 20, 1 << 16);
        let mut g = general(&mut arena);
        let a = g.alloc(64, 8).unwrap();
        // A bh completion drops the last reference: the free must be caught,
        // and the message names this file as the caller.
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                set_context(Context::Bh);
                g.dealloc(a, 64);
            })
            .join()
        });
        if let Err(payload) = r {
            let msg = payload
                .downcast_ref::<std::string::String>()
                .cloned()
                .unwrap_or_default();
            assert!(
                msg.contains("heap `general`: free at src/checked.rs:"),
                "{msg}"
            );
            std::panic::resume_unwind(std::boxed::Box::new(msg));
        }
    }

    #[test]
    #[should_panic(expected = "heap `general`: alloc at")]
    #[cfg_attr(not(debug_assertions), ignore = "the check is compiled out")]
    fn alloc_on_a_cpu_without_the_lock_is_caught_even_if_another_holds_it() {
        let mut arena = HostArena::new(1 << 20, 1 << 16);
        let mut g = general(&mut arena);
        let k = KERNEL.lock();
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                set_context(Context::KernelLock);
                let _ = g.alloc(64, 8);
            })
            .join()
        });
        drop(k);
        if let Err(payload) = r {
            std::panic::resume_unwind(payload);
        }
    }
}
