//! The locking wrapper: any [`Heap`] behind an [`IrqSpinLock`], so that it
//! can be shared between CPUs and used from bh and irq context. Every call
//! disables local interrupts, takes the lock, runs the inner heap and
//! releases both; an interrupt on this CPU can therefore never re-enter the
//! heap while this CPU holds it.
//!
//! [`Locking::lock`] hands out the guard itself, so methods of the inner
//! heap outside the [`Heap`] interface (an id heap's `reserve`, `alloc_in`,
//! hints; an mcache's `free` without a size) run under the same lock.
//!
//! Contexts: any (irq, bh, kernel-lock, boot). Locks: this heap's class,
//! given at construction; while holding it the inner heap may call its
//! parent, taking the parent's lock inside this one (child before parent;
//! the validator records that order and panics on an inversion). Never call
//! back into a heap whose lock this CPU already holds: the validator reports
//! it as recursion.

use crate::heap::{AllocError, BackedHeap, BackedSharedHeap, Heap, SharedHeap};
use crate::stats::HeapStats;
use cairn_sync::{IrqSpinLock, IrqSpinLockGuard, LockClass};

/// A heap behind an irq-safe spinlock. See the module docs.
pub struct Locking<H> {
    heap: IrqSpinLock<H>,
}

impl<H> Locking<H> {
    /// `heap` behind a lock of `class` (one class per heap: the validator
    /// orders heaps by class).
    #[cfg(not(loom))]
    pub const fn new(class: &'static LockClass, heap: H) -> Self {
        Locking {
            heap: IrqSpinLock::new(class, heap),
        }
    }

    /// `heap` behind a lock of `class`.
    #[cfg(loom)]
    pub fn new(class: &'static LockClass, heap: H) -> Self {
        Locking {
            heap: IrqSpinLock::new(class, heap),
        }
    }

    /// Interrupts off, lock held, inner heap reachable: for the methods
    /// outside the [`Heap`] interface. Keep the guard short; never wait for
    /// I/O while holding it.
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> IrqSpinLockGuard<'_, H> {
        self.heap.lock()
    }

    /// The inner heap through `&mut self`, without locking.
    pub fn get_mut(&mut self) -> &mut H {
        self.heap.get_mut()
    }

    pub fn into_inner(self) -> H {
        self.heap.into_inner()
    }

    pub fn class(&self) -> &'static LockClass {
        self.heap.class()
    }
}

impl<H: Heap> Locking<H> {
    /// The stats if the lock is free right now, without spinning: for the
    /// panic handler, which may run on a CPU that holds the lock.
    pub fn try_stats(&self) -> Option<HeapStats> {
        self.heap.try_lock().map(|h| h.stats())
    }
}

impl<H: Heap + Send> SharedHeap for Locking<H> {
    #[inline]
    #[track_caller]
    fn alloc(&self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.heap.lock().alloc(size, align)
    }

    #[inline]
    #[track_caller]
    fn dealloc(&self, addr: u64, size: u64) {
        self.heap.lock().dealloc(addr, size)
    }

    #[track_caller]
    fn stats(&self) -> HeapStats {
        self.heap.lock().stats()
    }
}

// SAFETY: the lock serialises calls into `H`, which keeps the promise for
// every address it returns; locking changes nothing about the memory.
unsafe impl<H: BackedHeap + Send> BackedSharedHeap for Locking<H> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::IdHeap;
    use cairn_sync::cpu::cpu;
    use cairn_sync::lockdep;
    use std::vec;

    static CLASS: LockClass = LockClass::new("test.locking.ids");

    /// A heap that records the interrupt state and lock ownership it runs
    /// with.
    struct Probe {
        irqs_on_inside: bool,
        held_inside: bool,
    }

    impl Heap for Probe {
        fn alloc(&mut self, _: u64, _: u64) -> Result<u64, AllocError> {
            self.irqs_on_inside = cpu().interrupts_enabled();
            self.held_inside = !lockdep::ENABLED || lockdep::holds(&PROBE_CLASS);
            Ok(0)
        }
        fn dealloc(&mut self, _: u64, _: u64) {}
        fn stats(&self) -> HeapStats {
            HeapStats {
                name: "probe",
                allocated: 0,
                total: 0,
                high_water: 0,
                objects: 0,
            }
        }
    }

    static PROBE_CLASS: LockClass = LockClass::new("test.locking.probe");

    #[test]
    fn calls_run_locked_with_interrupts_off_and_restore_them() {
        let l = Locking::new(
            &PROBE_CLASS,
            Probe {
                irqs_on_inside: true,
                held_inside: false,
            },
        );
        assert!(cpu().interrupts_enabled());
        SharedHeap::alloc(&l, 1, 1).unwrap();
        assert!(
            cpu().interrupts_enabled(),
            "interrupts restored after the call"
        );
        let g = l.lock();
        assert!(!g.irqs_on_inside, "interrupts were off inside");
        assert!(g.held_inside, "the lock was held inside");
        drop(g);
        // With interrupts already off they stay off.
        cpu().disable_interrupts();
        SharedHeap::alloc(&l, 1, 1).unwrap();
        assert!(!cpu().interrupts_enabled());
        cpu().enable_interrupts();
    }

    #[test]
    fn lock_reaches_id_heap_methods() {
        let mut words = vec![0u64; 1];
        let mut ids = IdHeap::new("ids", 1);
        ids.add_range(0, 64, &mut words).unwrap();
        let l = Locking::new(&CLASS, ids);
        l.lock().reserve(10, 4).unwrap();
        let a = l.lock().alloc_in(4, 4, 8, 64).unwrap();
        assert_eq!(a, 16);
        assert_eq!(l.stats().allocated, 8);
        assert_eq!(l.try_stats().unwrap().allocated, 8);
        let g = l.lock();
        assert_eq!(l.try_stats(), None, "try_stats never spins on a held lock");
        drop(g);
        l.dealloc(a, 4);
    }
}
