//! The pinned handles a caller holds while it copies with no pagecache
//! lock: [`Pages`] (a read's pages), [`CachedPages`] (a lockless read's
//! pages, borrowed from the node and held inline for one copy),
//! [`WriteBatch`] (a write's leased pages), [`CachedWrite`] (a lockless
//! overwrite's, held inline for one copy), [`Mapped`] (a faulted-in page,
//! for as long as it is mapped).
//!
//! Owns: the copies in and out of the pinned frames (a copy may fault and
//! sleep, even on a mapping of this same file: a pin excludes only
//! eviction), and releasing the pins when a handle goes. Does not own:
//! making the handles (`read.rs`, `write.rs`, `fault.rs`), the pin
//! accounting and detached pages (`Node::unpin_range`, `NodeInner::locate`
//! in `node/mod.rs`), committing a write (`release_write` in `write.rs`).
//!
//! Contexts: the copies any context (no lock). Dropping [`Pages`],
//! [`CachedPages`] or [`Mapped`] any context but irq (the last holder of a
//! page detached by truncate frees its frame; the node reference is
//! `Held`, or borrowed for [`CachedPages`]).
//! [`Mapped::current`] any context but irq. [`WriteBatch::commit`] and
//! dropping a [`WriteBatch`] kernel-lock (asserted). [`CachedWrite`] is
//! committed by `Node::write_cached` itself (any context but irq).
//!
//! Locks: none while copying. Dropping [`Pages`], [`CachedPages`] or
//! [`Mapped`] and [`Mapped::current`] take `pagecache.node` alone; a
//! commit takes what `release_write` takes.

use super::{PS, coverage};
use crate::frame::{FrameView, RawDestination};
use crate::io::Held;
use crate::{PAGE_SIZE, assert_kernel_lock};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::cpu::bh_safe_alloc;
use core::ops::Range;
use core::sync::atomic::Ordering;

/// Pinned, readable pages of a read, from file offset `offset` for `len`
/// bytes. Copy out with [`Pages::read_at`] / [`Pages::copy_to`] /
/// [`Pages::copy_out`] with no pagecache lock held; dropping it unpins the pages (any context but irq).
pub struct Pages {
    pub(super) node: Option<Held>,
    pub(super) offset: u64,
    pub(super) len: usize,
    pub(super) first: u64,
    /// The node's truncate epoch when the pages were pinned.
    pub(super) epoch: u64,
    pub(super) views: Vec<FrameView>,
}

impl Pages {
    pub(super) fn empty(offset: u64) -> Pages {
        Pages {
            node: None,
            offset,
            len: 0,
            first: offset / PS,
            epoch: 0,
            views: Vec::new(),
        }
    }

    /// Bytes available (the request clipped at the end of file).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Page indices and the file ranges of this read they hold, in order.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, Range<u64>)> + '_ {
        let end = self.offset + self.len as u64;
        (0..self.views.len() as u64).map(move |k| {
            let i = self.first + k;
            let r = coverage(i, self.offset, end);
            (i, i * PS + r.start as u64..i * PS + r.end as u64)
        })
    }

    /// Copies the bytes at `pos` (relative to [`Pages::offset`]) into
    /// `dst`; `pos + dst.len()` must not exceed [`Pages::len`].
    pub fn read_at(&self, pos: usize, dst: &mut [u8]) {
        self.span().read_at(pos, dst)
    }

    /// Copies all the bytes straight from the pinned frames into `dst`
    /// from its byte `at` on, page by page, stopping at the first short
    /// copy. Returns the bytes copied. The pages stay pinned throughout, so `dst` may fault and
    /// sleep (even on a mapping of this very file: a pin excludes only
    /// eviction, never another reader or a fault).
    pub fn copy_out(&self, dst: &mut impl RawDestination, at: usize) -> usize {
        self.span().copy_out(dst, at)
    }

    fn span(&self) -> Span<'_> {
        Span {
            offset: self.offset,
            len: self.len,
            first: self.first,
            views: &self.views,
        }
    }

    /// Copies everything (or as much as fits) into `dst`; returns bytes.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = self.len.min(dst.len());
        self.read_at(0, &mut dst[..n]);
        n
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let last = self.first + self.views.len() as u64 - 1;
            node.unpin_range(self.first, last, self.epoch, false);
        }
    }
}

/// The pinned frames of a read (of [`Pages`] or [`CachedPages`]): file
/// bytes `offset .. offset + len`, `views[k]` holding page `first + k`.
struct Span<'a> {
    offset: u64,
    len: usize,
    first: u64,
    views: &'a [FrameView],
}

impl Span<'_> {
    fn read_at(&self, pos: usize, dst: &mut [u8]) {
        assert!(pos + dst.len() <= self.len, "read past the pinned range");
        let mut file = self.offset + pos as u64;
        let mut done = 0;
        while done < dst.len() {
            let k = (file / PS - self.first) as usize;
            let in_page = (file % PS) as usize;
            let n = (PAGE_SIZE - in_page).min(dst.len() - done);
            self.views[k].read(in_page, &mut dst[done..done + n]);
            done += n;
            file += n as u64;
        }
    }

    fn copy_out(&self, dst: &mut impl RawDestination, at: usize) -> usize {
        let end = self.offset + self.len as u64;
        let mut done = 0;
        for (k, view) in self.views.iter().enumerate() {
            let r = coverage(self.first + k as u64, self.offset, end);
            let n = r.end - r.start;
            let got = view.copy_out(r.start, n, dst, at + done);
            done += got;
            if got < n {
                break;
            }
        }
        done
    }

    /// Write views only: the holder leased the pages (see `FrameView`).
    fn write_at(&self, pos: usize, src: &[u8]) {
        assert!(pos + src.len() <= self.len, "write past the leased range");
        let mut file = self.offset + pos as u64;
        let mut done = 0;
        while done < src.len() {
            let k = (file / PS - self.first) as usize;
            let in_page = (file % PS) as usize;
            let n = (PAGE_SIZE - in_page).min(src.len() - done);
            self.views[k].write(in_page, &src[done..done + n]);
            done += n;
            file += n as u64;
        }
    }

    /// Write views only, as [`Span::write_at`].
    fn copy_in(&self, pos: usize, src: &mut impl crate::RawSource, len: usize) -> usize {
        assert!(pos + len <= self.len, "write past the leased range");
        let mut file = self.offset + pos as u64;
        let mut done = 0;
        while done < len {
            let k = (file / PS - self.first) as usize;
            let in_page = (file % PS) as usize;
            let n = (PAGE_SIZE - in_page).min(len - done);
            let got = self.views[k].copy_in(in_page, n, src, done);
            done += got;
            if got < n {
                break;
            }
            file += n as u64;
        }
        done
    }
}

/// Most pages [`CachedPages`] or [`CachedWrite`] holds: 64 KiB (the
/// syscalls' lockless limit) starting inside a page.
/// [`Node::read_cached`](super::Node::read_cached) and
/// [`Node::write_cached`](super::Node::write_cached) answer `None` for a
/// longer range.
pub const CACHED_MAX_PAGES: usize = 17;

/// The pinned, readable pages of a lockless read
/// ([`Node::read_cached`](super::Node::read_cached) lends it to its copy),
/// file bytes [`CachedPages::offset`] for [`CachedPages::len`]: borrowed
/// from the node (no reference taken) and held in an inline array (no
/// allocation). Copy out with no pagecache lock held; its drop unpins the
/// pages with one acquisition of the node lock (any context but irq).
pub struct CachedPages<'a> {
    pub(super) node: &'a super::Node,
    pub(super) offset: u64,
    pub(super) len: usize,
    pub(super) first: u64,
    /// The node's truncate epoch when the pages were pinned.
    pub(super) epoch: u64,
    /// Pages pinned: `views[..count]` are theirs.
    pub(super) count: usize,
    pub(super) views: [FrameView; CACHED_MAX_PAGES],
}

impl CachedPages<'_> {
    /// Bytes available (the request clipped at the end of file).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// As [`Pages::read_at`].
    pub fn read_at(&self, pos: usize, dst: &mut [u8]) {
        self.span().read_at(pos, dst)
    }

    /// As [`Pages::copy_out`].
    pub fn copy_out(&self, dst: &mut impl RawDestination, at: usize) -> usize {
        self.span().copy_out(dst, at)
    }

    fn span(&self) -> Span<'_> {
        Span {
            offset: self.offset,
            len: self.len,
            first: self.first,
            views: &self.views[..self.count],
        }
    }
}

impl Drop for CachedPages<'_> {
    fn drop(&mut self) {
        // Nothing pinned (`count` 0) until `Node::pin_cached` succeeded.
        if self.count > 0 {
            let last = self.first + self.count as u64 - 1;
            self.node.unpin_range(self.first, last, self.epoch, false);
        }
    }
}

/// The leased, pinned pages of a lockless overwrite
/// ([`Node::write_cached`](super::Node::write_cached) lends it to its
/// copy, then commits what the copy reports), file bytes
/// [`CachedWrite::offset`] for [`CachedWrite::len`]: every page ACTIVE or
/// DIRTY with the range's storage reserved, none NEW. The page views sit
/// in an inline array (no allocation). Copy in with no pagecache lock held.
pub struct CachedWrite {
    pub(super) offset: u64,
    pub(super) len: usize,
    pub(super) first: u64,
    /// Pages leased: `views[..count]` are theirs.
    pub(super) count: usize,
    pub(super) views: [FrameView; CACHED_MAX_PAGES],
}

impl CachedWrite {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// As [`WriteBatch::write_at`].
    pub fn write_at(&mut self, pos: usize, src: &[u8]) {
        self.span().write_at(pos, src)
    }

    /// As [`WriteBatch::copy_in`]; the pages are not NEW, so a fault of
    /// the source into one of them would not wait for this write.
    pub fn copy_in(&mut self, pos: usize, src: &mut impl crate::RawSource, len: usize) -> usize {
        self.span().copy_in(pos, src, len)
    }

    fn span(&self) -> Span<'_> {
        Span {
            offset: self.offset,
            len: self.len,
            first: self.first,
            views: &self.views[..self.count],
        }
    }
}

/// Leased, pinned pages of a write. Copy in with [`WriteBatch::write_at`]
/// (no pagecache lock held), then [`WriteBatch::commit`] the bytes copied,
/// under the kernel lock. Dropping it uncommitted aborts (commits 0 bytes),
/// which must also happen under the kernel lock.
///
/// A copy into a batch must not fault into a page of this same batch that
/// the batch took NEW (it would wait for this very commit): the syscall
/// layer faults the source in before calling `write`, or stops at the
/// first fault, commits what it copied and retries (as Linux does).
pub struct WriteBatch {
    pub(super) node: Option<Held>,
    pub(super) offset: u64,
    pub(super) len: usize,
    pub(super) first: u64,
    pub(super) views: Vec<FrameView>,
    pub(super) owned: Vec<bool>,
    pub(super) finished: bool,
}

impl WriteBatch {
    pub(super) fn empty(offset: u64) -> WriteBatch {
        WriteBatch {
            node: None,
            offset,
            len: 0,
            first: offset / PS,
            views: Vec::new(),
            owned: Vec::new(),
            finished: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Copies `src` to position `pos` of the batch (relative to
    /// [`WriteBatch::offset`]).
    pub fn write_at(&mut self, pos: usize, src: &[u8]) {
        self.span().write_at(pos, src)
    }

    /// Copies `len` bytes of `src` (from its byte 0) to position `pos` of
    /// the batch, page by page; stops where `src` does. Returns the bytes
    /// copied, for [`WriteBatch::commit`]. A source that may fault on a
    /// page of this batch must not demand-page (see the type's doc): the
    /// kernel copies with user faults disabled, commits what it got and
    /// faults the rest in outside the batch.
    pub fn copy_in(&mut self, pos: usize, src: &mut impl crate::RawSource, len: usize) -> usize {
        self.span().copy_in(pos, src, len)
    }

    fn span(&self) -> Span<'_> {
        Span {
            offset: self.offset,
            len: self.len,
            first: self.first,
            views: &self.views,
        }
    }

    /// Copies as much of `src` as the batch holds; returns bytes copied.
    pub fn copy_from(&mut self, src: &[u8]) -> usize {
        let n = self.len.min(src.len());
        self.write_at(0, &src[..n]);
        n
    }

    /// Commits the first `copied` bytes as dirty and releases the pages;
    /// returns the bytes committed (less than `copied` if a NEW page was
    /// only partly copied: it is dropped rather than exposing garbage).
    /// Kernel-lock context.
    pub fn commit(mut self, copied: usize) -> usize {
        self.finish(copied)
    }

    fn finish(&mut self, copied: usize) -> usize {
        if self.finished {
            return 0;
        }
        self.finished = true;
        let Some(node) = self.node.take() else {
            return 0;
        };
        assert_kernel_lock("WriteBatch::commit");
        let arc = node.arc().clone();
        let n = bh_safe_alloc(|| arc.release_write(self, copied));
        drop(arc);
        drop(node);
        n
    }
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        self.finish(0);
    }
}

/// A faulted-in page, pinned for as long as it is mapped. Dropping it is
/// the unmap (any context but irq).
pub struct Mapped {
    pub(super) node: Option<Held>,
    pub(super) index: u64,
    /// The node's truncate epoch when the page was pinned.
    pub(super) epoch: u64,
    pub(super) view: FrameView,
    pub(super) writable: bool,
}

impl Mapped {
    /// The frame to put in the page table.
    pub fn phys(&self) -> u64 {
        self.view.phys()
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// Whether the page may be mapped writable (a shared write fault).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether the page is still the file's page at its index and inside
    /// the file: not truncated or punched away since it was pinned (a page
    /// taken out while held is detached, see the module doc), and no
    /// pending truncate ends at or below it. A fault checks it under its
    /// address space's lock before it installs the page: a truncate caps
    /// the length, detaches, then removes the mappings of the pages past
    /// the end under that lock, so a page installed after that removal
    /// must not be one the truncate took away. Any context but irq; takes
    /// the node lock.
    pub fn current(&self) -> bool {
        let Some(node) = &self.node else {
            return false;
        };
        if self.index.saturating_mul(PS) >= node.cap.load(Ordering::Acquire) {
            return false;
        }
        node.inner.lock().locate(self.index, self.epoch).is_none()
    }

    /// Whether every one of `pages` is [`Self::current`], with one node-lock
    /// section for each run of pages of one node (a fault's page and its
    /// map-around). Any context but irq.
    pub fn all_current(pages: &[Mapped]) -> bool {
        let mut i = 0;
        while i < pages.len() {
            let Some(node) = &pages[i].node else {
                return false;
            };
            let cap = node.cap.load(Ordering::Acquire);
            let inner = node.inner.lock();
            while let Some(m) = pages.get(i)
                && m.node
                    .as_ref()
                    .is_some_and(|n| Arc::ptr_eq(n.arc(), node.arc()))
            {
                if m.index.saturating_mul(PS) >= cap || inner.locate(m.index, m.epoch).is_some() {
                    return false;
                }
                i += 1;
            }
        }
        true
    }

    /// Copies out of the page (a private mapping's copy-on-write, or a
    /// user load).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) {
        self.view.read(offset, dst);
    }

    /// A store through a shared writable mapping (what user code does
    /// through the PTE; host tests call it).
    pub fn write_at(&self, offset: usize, src: &[u8]) {
        assert!(self.writable, "store through a read-only mapping");
        self.view.write(offset, src);
    }
}

impl Mapped {
    /// Drops many pins at once, the same as dropping each: an unmap's
    /// pages come in address order, and each run of consecutive pages of
    /// one node pinned at one epoch is unpinned in one node-lock section
    /// instead of one per page. Any context but irq.
    pub fn release_all(mapped: impl IntoIterator<Item = Mapped>) {
        // The run: node, first and last index, epoch, writable.
        let mut run: Option<(Held, u64, u64, u64, bool)> = None;
        for mut m in mapped {
            let Some(node) = m.node.take() else {
                continue;
            };
            if let Some((held, _, last, epoch, writable)) = &mut run
                && Arc::ptr_eq(held.arc(), node.arc())
                && *epoch == m.epoch
                && *writable == m.writable
                && m.index == *last + 1
            {
                *last = m.index;
                continue;
            }
            if let Some((held, first, last, epoch, writable)) = run.take() {
                held.unpin_range(first, last, epoch, writable);
            }
            run = Some((node, m.index, m.index, m.epoch, m.writable));
        }
        if let Some((held, first, last, epoch, writable)) = run {
            held.unpin_range(first, last, epoch, writable);
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.unpin_range(self.index, self.index, self.epoch, self.writable);
        }
    }
}
