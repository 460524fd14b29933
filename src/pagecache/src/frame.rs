//! Page frames, and the only code in the crate that touches their memory.
//!
//! Owns [`Frame`] (a 4 KiB physical page the [`FrameAllocator`] hook hands
//! out), [`RawDestination`] (memory copies go to without a Rust slice),
//! `FrameView` (the crate-internal handle that copies to and from a
//! frame attached to a page) and, on the host, [`host::HostFrames`], the
//! frame allocator and DMA emulation that tests and benchmarks use.
//!
//! Every `unsafe` block of the crate is here. Their justification is the page
//! state machine of [`crate::page`]:
//!
//! * A [`Frame`] value is owned: while the crate holds it outside a page
//!   (between allocation and attachment, or after detachment) nobody else
//!   can reach its memory, so `&mut Frame` is exclusive access.
//! * A `FrameView` is made only from a frame attached to a page that the
//!   view's owner **pins** (`Pages`, `WriteBatch`, `Mapped`, all in
//!   `node/handles.rs`). A pinned page is never evicted, so its frame is
//!   not freed or reused while the view lives.
//! * Read views exist only for pages in ACTIVE, DIRTY or WRITING: the
//!   content is initialised and no device writes into the frame (fills run
//!   only in READING, which no view ever sees).
//! * Write views exist only for pages under a write lease (NEW owned by the
//!   writer, ACTIVE or DIRTY): writeback never starts on a leased page and a
//!   writer waits for WRITING to end, so no device reads the frame while a
//!   CPU writes it (stable pages during writeback).
//! * Truncate zeroes the tail of the page holding the new end of file only
//!   while that page is settled (ACTIVE or DIRTY, no lease, no I/O) and
//!   under the node lock, so neither a device nor a writer touches it; a
//!   fill zeroes the tail of the page holding the end of file under the
//!   node lock after its last piece completed, before anyone can read it.
//! * CPU against CPU: copies run in kernel-lock context, and only one CPU
//!   holds the kernel lock; a copy that faults and waits is not executing
//!   while another thread runs. User stores through shared mappings are, as
//!   in every kernel, outside the Rust memory model.
//!
//! Contexts: `Frame::zero` kernel-lock (fill preparation); `FrameView`
//! copies kernel-lock (syscall copies) or bh (a `Bh` completion that reads
//! a page). Takes no locks; [`host::HostFrames`] takes a host mutex.

use crate::PAGE_SIZE;

/// A 4 KiB page of memory: its physical address (for DMA segments) and the
/// address the CPU reaches it at.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    phys: u64,
    addr: usize,
}

impl Frame {
    /// Wraps a page handed out by a frame allocator.
    ///
    /// # Safety
    ///
    /// `addr` is the CPU address of [`PAGE_SIZE`] bytes of readable and
    /// writable memory, `phys` the physical address of the same bytes, and
    /// nothing else uses them until this `Frame` is given back to the
    /// allocator's `free`.
    pub unsafe fn from_raw(phys: u64, addr: usize) -> Frame {
        Frame { phys, addr }
    }

    pub fn phys(&self) -> u64 {
        self.phys
    }

    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Zeroes `len` bytes at `offset`.
    pub(crate) fn zero(&mut self, offset: usize, len: usize) {
        assert!(offset + len <= PAGE_SIZE, "zero past the end of a frame");
        // SAFETY: `from_raw`'s contract makes `addr..addr + PAGE_SIZE` valid
        // memory of this frame, and the range is checked above. `&mut self`
        // is exclusive: a frame the crate holds by value is attached to no
        // page (states FREE/ALLOC have no frame), so no view, no request
        // segment and no mapping reaches it.
        unsafe { core::ptr::write_bytes((self.addr + offset) as *mut u8, 0, len) };
    }

    /// A handle for copies, taken while the frame is attached to a pinned
    /// page (see the module doc for who may call this).
    pub(crate) fn view(&self) -> FrameView {
        FrameView {
            phys: self.phys,
            addr: self.addr,
        }
    }
}

/// Copy access to the frame of a pinned page. Made only in `node/` for
/// `Pages`, `WriteBatch` and `Mapped`, each of which holds the pin for as
/// long as it holds the view.
#[derive(Copy, Clone, Debug)]
pub(crate) struct FrameView {
    phys: u64,
    addr: usize,
}

impl FrameView {
    /// The filler of an inline array's unused slots (`CachedPages`): a
    /// view of no frame, never copied through (only the slots a pin
    /// filled are).
    pub(crate) const NONE: FrameView = FrameView { phys: 0, addr: 0 };

    pub(crate) fn phys(&self) -> u64 {
        self.phys
    }

    /// Copies `dst.len()` bytes at `offset` out of the page.
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) {
        assert!(offset + dst.len() <= PAGE_SIZE, "read past a page");
        // SAFETY: the view's holder pins the page, so the frame is attached
        // and not freed (eviction requires zero pins); read views are made
        // only in ACTIVE/DIRTY/WRITING, where the bytes are initialised and
        // no device writes them. `dst` is a distinct Rust buffer, so the
        // ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self.addr + offset) as *const u8,
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
    }

    /// Copies `len` bytes at `offset` out of the page into `dst` at byte
    /// `at` of it; returns the bytes `dst` took (short when it ends in
    /// unreachable memory).
    pub(crate) fn copy_out(
        &self,
        offset: usize,
        len: usize,
        dst: &mut impl RawDestination,
        at: usize,
    ) -> usize {
        assert!(offset + len <= PAGE_SIZE, "read past a page");
        // SAFETY: as in `read`, the holder's pin keeps the frame attached
        // and its bytes initialised for the whole call, including while
        // `dst` sleeps on a fault of its own; `RawDestination` copies with
        // raw instructions, so bytes a writer on another CPU changes
        // meanwhile are never seen through a Rust reference.
        unsafe { dst.copy_from(at, (self.addr + offset) as *const u8, len) }
    }

    /// Zeroes `len` bytes of the page at `offset`: the bytes past the end
    /// of file of the page holding it, by truncate or at the end of a fill.
    pub(crate) fn zero(&self, offset: usize, len: usize) {
        assert!(offset + len <= PAGE_SIZE, "zero past a page");
        // SAFETY: both callers hold the node lock, so the frame stays
        // attached (no eviction or discard meanwhile), and no device
        // accesses it: truncate zeroes a settled page (ACTIVE or DIRTY,
        // no lease, no I/O in flight, and none starts under the lock), a
        // fill zeroes its page once its last piece has completed. No
        // writer copies in (truncate: no lease; fill: a writer waiting on
        // the fill has no view yet). Readers: a just-filled page has none
        // yet (views are made only of readable pages, after the wake-ups
        // that follow the lock); a truncated page's readers copy in
        // kernel-lock context, as truncate runs, so they do not run
        // meanwhile (same rule as `write`).
        unsafe { core::ptr::write_bytes((self.addr + offset) as *mut u8, 0, len) };
    }

    /// Copies `len` bytes from `src` (from its byte `at`) into the page at
    /// `offset`; returns the bytes `src` gave (short when it runs into
    /// memory it cannot reach).
    pub(crate) fn copy_in(
        &self,
        offset: usize,
        len: usize,
        src: &mut impl RawSource,
        at: usize,
    ) -> usize {
        assert!(offset + len <= PAGE_SIZE, "write past a page");
        // SAFETY: as in `write`, the holder's pin and write lease keep the
        // frame live and free of device access for the whole call;
        // `RawSource` writes it with raw instructions only.
        unsafe { src.copy_to(at, (self.addr + offset) as *mut u8, len) }
    }

    /// Copies `src` into the page at `offset`.
    pub(crate) fn write(&self, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= PAGE_SIZE, "write past a page");
        // SAFETY: the holder pins the page and holds a write lease (or a
        // shared writable mapping): the frame is live, no fill DMA targets
        // it (not READING) and writeback neither starts on a leased page nor
        // runs while a writer copies (writers wait for WRITING to end).
        // `src` is a distinct Rust buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), (self.addr + offset) as *mut u8, src.len())
        };
    }
}

/// Memory that [`crate::Pages::copy_out`] copies into and that the crate
/// cannot name as a Rust slice: user memory, reached through the kernel's
/// fault-tolerant copy, which may fault, demand-page and sleep mid-copy.
/// Copying straight from the pinned frames saves the bounce through a
/// kernel buffer that [`crate::Pages::read_at`] would need.
pub trait RawDestination {
    /// Copies `len` bytes from `src` to byte `at` of this destination;
    /// returns how many were copied (all of them unless the destination
    /// runs into memory it cannot reach).
    ///
    /// # Safety
    ///
    /// `src..src + len` must be readable for the whole call. Its bytes may
    /// change during the call (a writer on another CPU, while this copy
    /// sleeps on a fault), so an implementation copies with raw memory
    /// instructions and never makes a Rust reference to `src`.
    unsafe fn copy_from(&mut self, at: usize, src: *const u8, len: usize) -> usize;
}

/// Memory that [`crate::WriteBatch::copy_in`] copies from and that the
/// crate cannot name as a Rust slice: user memory, reached through the
/// kernel's fault-tolerant copy. Writes copy from it straight into the
/// leased frames, with no bounce through a kernel buffer.
pub trait RawSource {
    /// Copies `len` bytes from byte `at` of this source to `dst`; returns
    /// how many were copied (all of them unless the source runs into
    /// memory it cannot reach: then the copy stops there).
    ///
    /// # Safety
    ///
    /// `dst..dst + len` must be writable for the whole call and not be
    /// reached through a Rust reference meanwhile; an implementation writes
    /// it with raw memory instructions only.
    unsafe fn copy_to(&mut self, at: usize, dst: *mut u8, len: usize) -> usize;
}

/// The kernel's physical page allocator, as the pagecache sees it.
///
/// Called from kernel-lock context (fills) and from bh context (a failed
/// fill frees its frame), never with a pagecache lock held: the kernel's
/// implementation must be a locked heap.
pub trait FrameAllocator: Send + Sync {
    /// A zeroed or dirty 4 KiB frame, or `None` when physical memory is out.
    fn alloc(&self) -> Option<Frame>;
    /// Gives `frame` back.
    fn free(&self, frame: Frame);
}

/// Host frames: aligned std allocations whose physical address is their
/// virtual address, plus the DMA a simulated device performs on them.
#[cfg(not(target_os = "none"))]
pub mod host {
    use super::{Frame, FrameAllocator, RawDestination};
    use crate::PAGE_SIZE;
    use std::alloc::{Layout, alloc_zeroed, dealloc};
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::vec;
    use std::vec::Vec;

    /// A frame allocator over the host heap, optionally capped at
    /// `capacity` frames to simulate physical memory running out. Freed
    /// frames are kept on a free list and reused, as a kernel's page
    /// allocator would (fresh ones are zeroed, so frame memory is always
    /// initialised).
    pub struct HostFrames {
        live: Mutex<BTreeSet<usize>>,
        free: Mutex<Vec<usize>>,
        capacity: usize,
        allocs: AtomicUsize,
    }

    fn layout() -> Layout {
        Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).expect("page layout")
    }

    impl HostFrames {
        /// At most `capacity` frames live at once.
        pub fn new(capacity: usize) -> Self {
            HostFrames {
                live: Mutex::new(BTreeSet::new()),
                free: Mutex::new(Vec::new()),
                capacity,
                allocs: AtomicUsize::new(0),
            }
        }

        /// Frames currently handed out.
        pub fn live(&self) -> usize {
            self.live.lock().expect("frames").len()
        }

        /// Successful allocations so far.
        pub fn allocations(&self) -> usize {
            self.allocs.load(Ordering::Relaxed)
        }

        /// Panics unless `phys..phys + len` lies inside one live frame.
        fn check(live: &BTreeSet<usize>, phys: u64, len: usize) -> usize {
            let addr = phys as usize;
            let base = addr & !(PAGE_SIZE - 1);
            assert!(
                live.contains(&base) && addr - base + len <= PAGE_SIZE,
                "DMA to {phys:#x}+{len} is outside every live frame"
            );
            addr
        }

        /// Device DMA into memory: copies `data` to physical address `phys`.
        pub fn dma_write(&self, phys: u64, data: &[u8]) {
            let live = self.live.lock().expect("frames");
            let addr = Self::check(&live, phys, data.len());
            // SAFETY: `check` proved the range lies inside a live frame
            // allocated by `alloc` below. The pagecache submits a read
            // segment only for a page in READING, whose frame nobody else
            // reads or writes until the request completes.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        }

        /// Device DMA out of memory: copies from physical address `phys`.
        pub fn dma_read(&self, phys: u64, out: &mut [u8]) {
            let live = self.live.lock().expect("frames");
            let addr = Self::check(&live, phys, out.len());
            // SAFETY: the range lies inside a live frame (checked). Write
            // segments cover pages in WRITING: content initialised, and no
            // CPU writes them until the request completes.
            unsafe {
                core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len())
            };
        }
    }

    impl FrameAllocator for HostFrames {
        fn alloc(&self) -> Option<Frame> {
            let mut live = self.live.lock().expect("frames");
            if live.len() >= self.capacity {
                return None;
            }
            let p = match self.free.lock().expect("frames").pop() {
                Some(p) => p as *mut u8,
                // SAFETY: the layout has a non-zero size.
                None => unsafe { alloc_zeroed(layout()) },
            };
            if p.is_null() {
                return None;
            }
            live.insert(p as usize);
            self.allocs.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `p` is an exclusively owned allocation of PAGE_SIZE
            // bytes (fresh, or freed and off every list but this one); on
            // the host physical == virtual.
            Some(unsafe { Frame::from_raw(p as u64, p as usize) })
        }

        fn free(&self, frame: Frame) {
            let mut live = self.live.lock().expect("frames");
            assert!(live.remove(&frame.addr), "freeing a frame twice");
            self.free.lock().expect("frames").push(frame.addr);
        }
    }

    /// A [`RawDestination`] of `reachable` bytes followed by memory the
    /// copy cannot reach: the host's stand-in for a user buffer that runs
    /// into an unmapped page.
    pub struct BoundedBuffer {
        pub bytes: Vec<u8>,
    }

    impl BoundedBuffer {
        pub fn new(reachable: usize) -> Self {
            BoundedBuffer {
                bytes: vec![0; reachable],
            }
        }
    }

    impl RawDestination for BoundedBuffer {
        unsafe fn copy_from(&mut self, at: usize, src: *const u8, len: usize) -> usize {
            let n = len.min(self.bytes.len().saturating_sub(at));
            // SAFETY: the caller makes `src..src + len` readable for this
            // call and `n <= len`; `at + n` lies inside `bytes`, a distinct
            // allocation.
            unsafe { core::ptr::copy_nonoverlapping(src, self.bytes[at..].as_mut_ptr(), n) };
            n
        }
    }

    impl Drop for HostFrames {
        fn drop(&mut self) {
            let free = self.free.get_mut().expect("frames");
            for &addr in free.iter() {
                // SAFETY: every address on the free list came from
                // `alloc_zeroed` with this layout and is no longer live.
                unsafe { dealloc(addr as *mut u8, layout()) };
            }
        }
    }
}
