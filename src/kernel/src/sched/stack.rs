//! [`KernelStack`]: the memory a thread runs its kernel code on.
//!
//! Owns the stack's memory only; the thread (`sched::thread`) builds the
//! first frame on it and switches to it. A stack is 16 physically
//! contiguous frames reached through the direct map whenever RAM has such
//! a run, so it goes straight back to the physical heap when its thread
//! ends. (Stacks from the kernel heap stayed mapped in the heap's window:
//! after a burst of 512 threads, 32 MiB of RAM were the heap's for good and
//! the pagecache was left without frames: runtime test `mempressure`.)
//! When RAM is too fragmented for a run, the stack is a kernel-heap block.
//!
//! Any context may drop one (the physical heap's lock is irq-safe; a heap
//! block is freed wherever its thread is, which is kernel-lock context).

use crate::heaps::PHYSICAL;
use alloc::vec::Vec;
use cairn_pc::paging::DIRECT_MAP_BASE;

pub enum KernelStack {
    /// `len` bytes of physical memory at `phys`.
    Frames {
        phys: u64,
        len: u64,
    },
    Heap(Vec<u64>),
}

impl KernelStack {
    /// A stack of `len` bytes (a multiple of 4 KiB), or `None` when there
    /// is no memory for it.
    pub fn new(len: usize) -> Option<KernelStack> {
        let bytes = len as u64;
        if let Ok(phys) = PHYSICAL.lock().alloc_contiguous(bytes, 4096) {
            return Some(KernelStack::Frames { phys, len: bytes });
        }
        let mut v = Vec::new();
        v.try_reserve_exact(len / 8).ok()?;
        v.resize(len / 8, 0);
        Some(KernelStack::Heap(v))
    }

    /// The stack's lowest address and its length in bytes.
    pub fn range(&self) -> (u64, u64) {
        match self {
            KernelStack::Frames { phys, len } => (DIRECT_MAP_BASE + phys, *len),
            KernelStack::Heap(v) => (v.as_ptr() as u64, (v.len() * 8) as u64),
        }
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        if let KernelStack::Frames { phys, len } = *self {
            PHYSICAL.lock().free_pages(phys, len / 4096);
        }
    }
}
