//! BRING-UP ONLY: a bump allocator over a static arena, replaced by
//! `kernel_heaps` (issue 3) before this module is committed.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

const ARENA: usize = 32 << 20;
#[repr(C, align(4096))]
struct Arena([u8; ARENA]);
static mut MEM: Arena = Arena([0; ARENA]);
static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Bump;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let base = &raw mut MEM as usize;
        let mut cur = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(l.align()) - base;
            let end = start + l.size();
            if end > ARENA {
                return core::ptr::null_mut();
            }
            match NEXT.compare_exchange(cur, end, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(c) => cur = c,
            }
        }
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static GLOBAL: Bump = Bump;

pub fn report_at_panic() {}

/// Physically contiguous, zeroed memory for device DMA (bring-up version
/// over the arena; the real `dma` heap keeps this interface). Any context.
pub mod dma {
    /// `bytes` (rounded up to 4 KiB pages) of zeroed, page-aligned,
    /// physically contiguous memory: (physical, virtual) addresses.
    pub fn alloc(bytes: usize) -> Option<(u64, u64)> {
        let layout = core::alloc::Layout::from_size_align(bytes.next_multiple_of(4096), 4096).ok()?;
        // SAFETY: non-zero size (a multiple of 4096, at least one page).
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        if p.is_null() {
            return None;
        }
        let virt = p as u64;
        Some((crate::mm::virt_to_phys(virt)?, virt))
    }

    /// Returns memory from [`alloc`].
    pub fn free(_phys: u64, virt: u64, bytes: usize) {
        let layout = core::alloc::Layout::from_size_align(bytes.next_multiple_of(4096), 4096)
            .expect("dma::free of a size dma::alloc refused");
        // SAFETY: `virt` came from `alloc` with this size.
        unsafe { alloc::alloc::dealloc(virt as *mut u8, layout) };
    }
}
