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
