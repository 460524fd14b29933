//! The object cache: pages of fixed-size objects taken from a [`BackedHeap`]
//! parent, all of one size and aligned to that size, so an object's page is
//! its address masked.
//!
//! Each page starts with a header (magic, owner id, list links, objects in
//! use, a search hint) followed by an allocated-bitmap, one bit per object;
//! objects follow, aligned. The bitmap is the free list: allocation takes the
//! first clear bit from the hint, free checks and clears the object's bit.
//! Keeping free objects in a bitmap rather than a list threaded through them
//! means the cache never writes into memory it has handed out or that is
//! free, so a use-after-free write cannot corrupt the allocator, and a double
//! free is a bit already clear.
//!
//! Pages are the `current` page (allocations come from it: the fast path),
//! or on the `partial`, `full` or `empty` lists. A page that becomes empty is
//! kept on the empty list up to [`DEFAULT_MAX_CACHED_EMPTY`] pages and
//! otherwise handed back to the parent; [`ObjCache::trim`] hands back all of
//! them.
//!
//! Every free is validated in every build before the cache touches the page:
//! the page must be registered in this cache's address registry (so a foreign
//! pointer is caught without reading memory the cache does not own), the
//! header's magic and owner must match (a page header overwritten by an
//! overflow from the page below), the address must be an object boundary,
//! and its bit must be set (double free). Each failure panics naming the
//! heap. The checks are a hash probe and loads of the header the free reads
//! anyway.
//!
//! Contexts: an `ObjCache` takes no lock and needs `&mut`; share it through
//! [`Locking`](crate::Locking). It calls its parent, while the caller holds
//! whatever lock makes the cache exclusive, only to get or release a page or
//! to grow its registry.

use crate::addr_map::AddrMap;
use crate::heap::{AllocError, BackedHeap, Heap, check_align};
use crate::stats::{Accounting, HeapStats};
use core::mem::{offset_of, size_of};
use core::num::NonZeroU64;
use core::sync::atomic::{AtomicU64, Ordering};

/// Empty pages an object cache keeps for reuse before handing them back.
pub const DEFAULT_MAX_CACHED_EMPTY: u32 = 1;

const PAGE_MAGIC: u64 = 0x6361_6972_6e5f_6f62; // "cairn_ob"

/// Owner ids, unique per cache: a page's header names the cache that owns it.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// The header at the start of every cache page; the bitmap follows it.
#[repr(C)]
struct PageHeader {
    magic: u64,
    owner: u64,
    next: u64,
    prev: u64,
    in_use: u32,
    list: u32,
    /// Bitmap words below this one are full.
    search_word: u32,
    _reserved: u32,
}

const BITMAP_OFFSET: usize = size_of::<PageHeader>();

/// Which list a page is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum ListId {
    Current = 1,
    Partial = 2,
    Full = 3,
    Empty = 4,
}

/// A page this cache holds. Only made by [`Page::new`], whose contract is
/// what makes the accessors below sound.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Page(NonZeroU64);

impl Page {
    /// # Safety
    ///
    /// `addr` is the base of a cache page that its cache got from a
    /// [`BackedHeap`] parent and has not handed back: mapped, writable, at
    /// least the header and bitmap long, and used by nothing but its cache,
    /// which the caller holds exclusively. The accessors only touch the
    /// header and bitmap, which are never handed out.
    #[inline]
    unsafe fn new(addr: u64) -> Page {
        Page(NonZeroU64::new(addr).expect("cache page at address 0"))
    }

    #[inline]
    fn addr(self) -> u64 {
        self.0.get()
    }

    #[inline]
    fn read<T: Copy>(self, offset: usize) -> T {
        // SAFETY: by `Page::new`'s contract the header and bitmap are ours;
        // callers pass field offsets of `PageHeader` or bitmap word offsets
        // below the cache's `first_object`, aligned for `T` (the page is
        // page-aligned and the fields are naturally aligned).
        unsafe { core::ptr::with_exposed_provenance::<T>(self.addr() as usize + offset).read() }
    }

    #[inline]
    fn write<T: Copy>(self, offset: usize, value: T) {
        // SAFETY: as in `read`; the cache is held exclusively, so nothing
        // else reads or writes the header concurrently.
        unsafe {
            core::ptr::with_exposed_provenance_mut::<T>(self.addr() as usize + offset).write(value)
        }
    }

    #[inline]
    fn magic(self) -> u64 {
        self.read(offset_of!(PageHeader, magic))
    }
    #[inline]
    fn owner(self) -> u64 {
        self.read(offset_of!(PageHeader, owner))
    }
    #[inline]
    fn next(self) -> u64 {
        self.read(offset_of!(PageHeader, next))
    }
    #[inline]
    fn set_next(self, v: u64) {
        self.write(offset_of!(PageHeader, next), v)
    }
    #[inline]
    fn prev(self) -> u64 {
        self.read(offset_of!(PageHeader, prev))
    }
    #[inline]
    fn set_prev(self, v: u64) {
        self.write(offset_of!(PageHeader, prev), v)
    }
    #[inline]
    fn in_use(self) -> u32 {
        self.read(offset_of!(PageHeader, in_use))
    }
    #[inline]
    fn set_in_use(self, v: u32) {
        self.write(offset_of!(PageHeader, in_use), v)
    }
    #[inline]
    fn list(self) -> u32 {
        self.read(offset_of!(PageHeader, list))
    }
    #[inline]
    fn set_list(self, l: ListId) {
        self.write(offset_of!(PageHeader, list), l as u32)
    }
    #[inline]
    fn search_word(self) -> u32 {
        self.read(offset_of!(PageHeader, search_word))
    }
    #[inline]
    fn set_search_word(self, v: u32) {
        self.write(offset_of!(PageHeader, search_word), v)
    }
    #[inline]
    fn bitmap(self, w: u32) -> u64 {
        self.read(BITMAP_OFFSET + w as usize * 8)
    }
    #[inline]
    fn set_bitmap(self, w: u32, v: u64) {
        self.write(BITMAP_OFFSET + w as usize * 8, v)
    }

    /// The page a list link names.
    #[inline]
    fn from_link(link: u64) -> Option<Page> {
        // SAFETY: list links and list heads only ever hold pages of the cache
        // whose list it is (`PageList::push` is given only such pages), and
        // a page leaves every list before it is handed back.
        NonZeroU64::new(link).map(|_| unsafe { Page::new(link) })
    }
}

/// An intrusive doubly-linked list of pages, linked through their headers.
#[derive(Debug)]
struct PageList {
    head: u64,
    count: u32,
}

impl PageList {
    const fn new() -> Self {
        PageList { head: 0, count: 0 }
    }

    fn push(&mut self, page: Page, id: ListId) {
        page.set_list(id);
        page.set_prev(0);
        page.set_next(self.head);
        if let Some(h) = Page::from_link(self.head) {
            h.set_prev(page.addr());
        }
        self.head = page.addr();
        self.count += 1;
    }

    fn remove(&mut self, page: Page) {
        let (prev, next) = (page.prev(), page.next());
        match Page::from_link(prev) {
            Some(p) => p.set_next(next),
            None => self.head = next,
        }
        if let Some(n) = Page::from_link(next) {
            n.set_prev(prev);
        }
        self.count -= 1;
    }

    fn pop(&mut self) -> Option<Page> {
        let page = Page::from_link(self.head)?;
        self.remove(page);
        Some(page)
    }
}

/// Layout of one cache's pages.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// Distance between objects (the object size rounded up to its
    /// alignment).
    stride: u64,
    /// `log2(stride)` if it is a power of two, else `u32::MAX`.
    stride_shift: u32,
    align: u64,
    page_size: u64,
    /// Byte offset of object 0 in the page (after header and bitmap).
    first_object: u64,
    capacity: u32,
    bitmap_words: u32,
}

impl Geometry {
    const fn new(object_size: u64, align: u64, page_size: u64) -> Geometry {
        assert!(
            page_size.is_power_of_two(),
            "cache page size must be a power of two"
        );
        assert!(
            align.is_power_of_two(),
            "object alignment must be a power of two"
        );
        assert!(align <= page_size, "object alignment beyond the page size");
        let size = if object_size == 0 { 1 } else { object_size };
        let stride = size.div_ceil(align) * align;
        let header = BITMAP_OFFSET as u64;
        assert!(
            page_size > header + stride,
            "cache page too small for one object"
        );
        // The bitmap's size depends on the capacity and the capacity on
        // where objects start: size the bitmap for the upper bound.
        let upper = (page_size - header) / stride;
        let bitmap_words = upper.div_ceil(64);
        let meta = header + bitmap_words * 8;
        let first_object = meta.div_ceil(align) * align;
        assert!(
            first_object + stride <= page_size,
            "cache page too small for one object"
        );
        let capacity = (page_size - first_object) / stride;
        assert!(capacity <= u32::MAX as u64, "too many objects per page");
        let stride_shift = if stride.is_power_of_two() {
            stride.trailing_zeros()
        } else {
            u32::MAX
        };
        Geometry {
            stride,
            stride_shift,
            align,
            page_size,
            first_object,
            capacity: capacity as u32,
            bitmap_words: bitmap_words as u32,
        }
    }

    #[inline]
    fn object_addr(&self, page: Page, index: u64) -> u64 {
        let offset = if self.stride_shift != u32::MAX {
            index << self.stride_shift
        } else {
            index * self.stride
        };
        page.addr() + self.first_object + offset
    }

    /// The index of the object at `offset` into its page, if `offset` is an
    /// object boundary.
    #[inline]
    fn index_of(&self, offset: u64) -> Option<u64> {
        // An offset below `first_object` wraps to a huge index, refused
        // by the capacity check.
        let rel = offset.wrapping_sub(self.first_object);
        let (index, rem) = if self.stride_shift != u32::MAX {
            (rel >> self.stride_shift, rel & (self.stride - 1))
        } else {
            (rel / self.stride, rel % self.stride)
        };
        (rem == 0 && index < u64::from(self.capacity)).then_some(index)
    }
}

/// The object cache proper, without its parent or registry, so that an
/// [`MCache`](crate::MCache) can run one per size class over one parent.
pub(crate) struct CacheCore {
    name: &'static str,
    /// Owner id written into page headers; 0 until the first page.
    id: u64,
    geo: Geometry,
    current: Option<Page>,
    partial: PageList,
    full: PageList,
    empty: PageList,
    pages: u64,
    max_cached_empty: u32,
}

/// What went wrong with a free, for the owner's panic message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CoreFreeError {
    CorruptHeader,
    NotAnObject,
    DoubleFree,
}

impl CacheCore {
    pub(crate) const fn new(
        name: &'static str,
        object_size: u64,
        align: u64,
        page_size: u64,
    ) -> Self {
        CacheCore {
            name,
            id: 0,
            geo: Geometry::new(object_size, align, page_size),
            current: None,
            partial: PageList::new(),
            full: PageList::new(),
            empty: PageList::new(),
            pages: 0,
            max_cached_empty: DEFAULT_MAX_CACHED_EMPTY,
        }
    }

    #[inline]
    pub(crate) fn object_size(&self) -> u64 {
        self.geo.stride
    }

    #[inline]
    pub(crate) fn page_size(&self) -> u64 {
        self.geo.page_size
    }

    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// Objects handed out, counted from the page headers (for dumps and
    /// tests: the fast paths keep only the per-page counts).
    pub(crate) fn objects_in_use(&self) -> u64 {
        let mut n = self.current.map_or(0, |p| u64::from(p.in_use()));
        for list in [&self.partial, &self.full] {
            let mut link = list.head;
            while let Some(page) = Page::from_link(link) {
                n += u64::from(page.in_use());
                link = page.next();
            }
        }
        n
    }

    pub(crate) fn objects_per_page(&self) -> u32 {
        self.geo.capacity
    }

    pub(crate) fn set_max_cached_empty(&mut self, pages: u32) {
        self.max_cached_empty = pages;
    }

    /// Takes a free object from `page`, if it has one.
    #[inline]
    fn take_from(&self, page: Page) -> Option<u64> {
        let in_use = page.in_use();
        if in_use == self.geo.capacity {
            return None;
        }
        // The page has a free object, and bits past the capacity are set,
        // so the scan ends at a clear bit before `bitmap_words`.
        let mut w = page.search_word();
        loop {
            debug_assert!(w < self.geo.bitmap_words);
            let bits = page.bitmap(w);
            if bits != u64::MAX {
                let b = (!bits).trailing_zeros();
                page.set_bitmap(w, bits | (1 << b));
                page.set_search_word(w);
                page.set_in_use(in_use + 1);
                return Some(self.geo.object_addr(page, u64::from(w) * 64 + u64::from(b)));
            }
            w += 1;
        }
    }

    /// An object, or `None` if every page is full (the owner then adds one).
    #[inline]
    pub(crate) fn alloc(&mut self) -> Option<u64> {
        if let Some(page) = self.current
            && let Some(addr) = self.take_from(page)
        {
            return Some(addr);
        }
        self.alloc_from_lists()
    }

    /// The current page is full or missing: retire it and take the next.
    #[cold]
    #[inline(never)]
    fn alloc_from_lists(&mut self) -> Option<u64> {
        if let Some(page) = self.current.take() {
            self.full.push(page, ListId::Full);
        }
        let page = self.partial.pop().or_else(|| self.empty.pop())?;
        page.set_list(ListId::Current);
        self.current = Some(page);
        let addr = self
            .take_from(page)
            .expect("partial or empty page has a free object");
        Some(addr)
    }

    /// Formats a fresh page from the parent and makes it current.
    ///
    /// # Safety
    ///
    /// `addr` is a `page_size` allocation aligned to `page_size` from a
    /// [`BackedHeap`], now owned by this cache (see [`Page::new`]).
    pub(crate) unsafe fn add_page(&mut self, addr: u64) {
        debug_assert!(self.current.is_none());
        debug_assert_eq!(addr & (self.geo.page_size - 1), 0);
        if self.id == 0 {
            self.id = NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is `Page::new`'s.
        let page = unsafe { Page::new(addr) };
        page.write(offset_of!(PageHeader, magic), PAGE_MAGIC);
        page.write(offset_of!(PageHeader, owner), self.id);
        page.set_next(0);
        page.set_prev(0);
        page.set_in_use(0);
        page.set_list(ListId::Current);
        page.set_search_word(0);
        page.write(offset_of!(PageHeader, _reserved), 0u32);
        let cap = self.geo.capacity;
        for w in 0..self.geo.bitmap_words {
            // Bits past the capacity are set: never handed out.
            let first = w * 64;
            let bits = if first + 64 <= cap {
                0
            } else if first >= cap {
                u64::MAX
            } else {
                u64::MAX << (cap - first)
            };
            page.set_bitmap(w, bits);
        }
        self.current = Some(page);
        self.pages += 1;
    }

    /// Frees `addr` in `page`. Returns a page the owner must hand back to the
    /// parent (and unregister), if the free emptied one past the cache limit.
    ///
    /// # Safety
    ///
    /// `page` is a page registered to this cache (see [`Page::new`]).
    #[inline]
    pub(crate) unsafe fn dealloc(
        &mut self,
        page: u64,
        addr: u64,
    ) -> Result<Option<u64>, CoreFreeError> {
        // SAFETY: the caller's contract is `Page::new`'s.
        let page = unsafe { Page::new(page) };
        if page.magic() != PAGE_MAGIC || page.owner() != self.id {
            return Err(CoreFreeError::CorruptHeader);
        }
        let index = self
            .geo
            .index_of(addr - page.addr())
            .ok_or(CoreFreeError::NotAnObject)?;
        let w = (index / 64) as u32;
        let bit = 1u64 << (index % 64);
        let bits = page.bitmap(w);
        if bits & bit == 0 {
            return Err(CoreFreeError::DoubleFree);
        }
        page.set_bitmap(w, bits & !bit);
        if w < page.search_word() {
            page.set_search_word(w);
        }
        let in_use = page.in_use() - 1;
        page.set_in_use(in_use);
        if self.current == Some(page) {
            return Ok(None);
        }
        Ok(self.moved_after_free(page, in_use))
    }

    /// A page other than the current one lost an object: move it between
    /// lists, or release it.
    #[inline(never)]
    fn moved_after_free(&mut self, page: Page, in_use: u32) -> Option<u64> {
        let now_empty = in_use == 0;
        let list = page.list();
        if list == ListId::Full as u32 {
            self.full.remove(page);
        } else if now_empty {
            debug_assert_eq!(list, ListId::Partial as u32);
            self.partial.remove(page);
        } else {
            return None;
        }
        if !now_empty {
            self.partial.push(page, ListId::Partial);
            None
        } else if self.empty.count < self.max_cached_empty {
            self.empty.push(page, ListId::Empty);
            None
        } else {
            Some(self.retire(page))
        }
    }

    /// The page leaves the cache: it stops looking like one of ours.
    fn retire(&mut self, page: Page) -> u64 {
        page.write(offset_of!(PageHeader, magic), 0u64);
        self.pages -= 1;
        page.addr()
    }

    /// An empty page to hand back (cached empties first, then the current
    /// page if it is empty), or `None`.
    pub(crate) fn take_empty_page(&mut self) -> Option<u64> {
        if let Some(page) = self.empty.pop() {
            return Some(self.retire(page));
        }
        match self.current {
            Some(page) if page.in_use() == 0 => {
                self.current = None;
                Some(self.retire(page))
            }
            _ => None,
        }
    }

    /// Page counts: (current, partial, full, empty).
    #[cfg(test)]
    pub(crate) fn page_lists(&self) -> (u32, u32, u32, u32) {
        (
            u32::from(self.current.is_some()),
            self.partial.count,
            self.full.count,
            self.empty.count,
        )
    }
}

#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn free_failed(
    heap: &'static str,
    object_size: u64,
    addr: u64,
    why: CoreFreeError,
) -> ! {
    match why {
        CoreFreeError::CorruptHeader => panic!(
            "heap `{heap}`: free of {addr:#x}: its page header ({object_size}-byte objects) is \
             corrupt (overwritten by an overflow?)"
        ),
        CoreFreeError::NotAnObject => panic!(
            "heap `{heap}`: free of {addr:#x}, which is not the start of a {object_size}-byte object"
        ),
        CoreFreeError::DoubleFree => {
            panic!("heap `{heap}`: double free of {addr:#x} ({object_size}-byte object)")
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn foreign_free(heap: &'static str, addr: u64) -> ! {
    panic!("heap `{heap}`: foreign pointer: free of {addr:#x}, which this heap did not allocate")
}

/// A cache of objects of one size. See the module docs.
pub struct ObjCache<P: BackedHeap> {
    parent: P,
    core: CacheCore,
    /// The pages this cache holds.
    registry: AddrMap,
    acct: Accounting,
}

impl<P: BackedHeap> ObjCache<P> {
    /// A cache of `object_size`-byte objects aligned to `align`, in pages of
    /// `page_size` bytes (a power of two, taken from `parent` aligned to
    /// their size). Panics if a page cannot hold one object.
    pub const fn new(
        name: &'static str,
        parent: P,
        object_size: u64,
        align: u64,
        page_size: u64,
    ) -> Self {
        ObjCache {
            parent,
            core: CacheCore::new(name, object_size, align, page_size),
            registry: AddrMap::new(),
            acct: Accounting::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.core.name
    }

    /// The size of each object (the requested size rounded to its alignment).
    pub fn object_size(&self) -> u64 {
        self.core.object_size()
    }

    pub fn objects_per_page(&self) -> u32 {
        self.core.objects_per_page()
    }

    /// Pages held from the parent.
    pub fn pages(&self) -> u64 {
        self.core.pages()
    }

    /// How many empty pages to keep for reuse (default
    /// [`DEFAULT_MAX_CACHED_EMPTY`]).
    pub fn set_max_cached_empty(&mut self, pages: u32) {
        self.core.set_max_cached_empty(pages);
    }

    pub fn parent(&self) -> &P {
        &self.parent
    }

    /// One object.
    #[inline]
    pub fn alloc_object(&mut self) -> Result<u64, AllocError> {
        let addr = match self.core.alloc() {
            Some(addr) => addr,
            None => self.alloc_with_new_page()?,
        };
        self.acct.allocated(self.core.object_size());
        Ok(addr)
    }

    #[cold]
    fn alloc_with_new_page(&mut self) -> Result<u64, AllocError> {
        let size = self.core.page_size();
        let page = self.parent.alloc(size, size)?;
        if let Err(e) = self.registry.insert(&mut self.parent, page, 0) {
            self.parent.dealloc(page, size);
            return Err(e);
        }
        // SAFETY: `page` is a fresh `size`-byte, `size`-aligned allocation
        // from the backed parent, registered to this cache.
        unsafe { self.core.add_page(page) };
        Ok(self.core.alloc().expect("a fresh page has a free object"))
    }

    /// Frees one object. Panics, naming the heap, on a foreign pointer, a
    /// double free or an address inside an object.
    #[inline]
    #[track_caller]
    pub fn free_object(&mut self, addr: u64) {
        let page = addr & !(self.core.page_size() - 1);
        if self.registry.get(page).is_none() {
            foreign_free(self.core.name, addr);
        }
        // SAFETY: the registry holds exactly the pages this cache holds.
        match unsafe { self.core.dealloc(page, addr) } {
            Ok(None) => {}
            Ok(Some(empty)) => self.release(empty),
            Err(why) => free_failed(self.core.name, self.core.object_size(), addr, why),
        }
        self.acct.freed(self.core.object_size());
    }

    fn release(&mut self, page: u64) {
        self.registry.remove(page);
        self.parent.dealloc(page, self.core.page_size());
    }

    /// Hands every empty page (and the registry, if no page is left) back
    /// to the parent.
    pub fn trim(&mut self) {
        while let Some(page) = self.core.take_empty_page() {
            self.release(page);
        }
        self.registry.release_if_empty(&mut self.parent);
    }
}

impl<P: BackedHeap> Heap for ObjCache<P> {
    /// An object, for any `size` up to the object size and `align` up to
    /// the object alignment; larger requests are a bug and panic.
    #[inline]
    #[track_caller]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        check_align(self.core.name, align);
        if size > self.core.object_size() || align > self.core.geo.align {
            wrong_request(self.core.name, self.core.object_size(), size, align);
        }
        self.alloc_object()
    }

    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        if size > self.core.object_size() {
            wrong_size(self.core.name, addr, size, self.core.object_size());
        }
        self.free_object(addr);
    }

    fn stats(&self) -> HeapStats {
        let mut s = self.acct.snapshot(self.core.name);
        s.total = self.core.pages() * self.core.page_size() + self.registry.bytes();
        s
    }
}

// SAFETY: objects lie in pages from the backed parent, outside the page
// header, and the bitmap hands each to one owner until it is freed.
unsafe impl<P: BackedHeap> BackedHeap for ObjCache<P> {}

impl<P: BackedHeap> Drop for ObjCache<P> {
    /// Hands back what it can; pages with live objects stay with their
    /// owners' objects (leaked rather than freed under them).
    fn drop(&mut self) {
        self.trim();
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn wrong_request(heap: &'static str, object_size: u64, size: u64, align: u64) -> ! {
    panic!(
        "heap `{heap}`: request of {size} bytes aligned to {align} from a cache of \
         {object_size}-byte objects"
    )
}

#[cold]
#[inline(never)]
#[track_caller]
fn wrong_size(heap: &'static str, addr: u64, size: u64, object_size: u64) -> ! {
    panic!(
        "heap `{heap}`: wrong size on free of {addr:#x}: {size} bytes, but objects are {object_size} bytes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostArena;
    use std::vec::Vec;

    const PAGE: u64 = 16 * 1024;

    #[test]
    fn geometry_puts_objects_after_the_bitmap_aligned() {
        let g = Geometry::new(32, 32, 64 * 1024);
        // 2047 candidates → 32 bitmap words → 48 + 256 = 304 → objects at 320.
        assert_eq!(g.first_object, 320);
        assert_eq!(g.capacity, (65536 - 320) / 32);
        let g = Geometry::new(4096, 4096, 64 * 1024);
        assert_eq!((g.first_object, g.capacity), (4096, 15));
        let g = Geometry::new(48, 16, 4096);
        assert_eq!(g.stride, 48);
        assert_eq!(g.stride_shift, u32::MAX);
        assert_eq!(g.index_of(g.first_object + 96), Some(2));
        assert_eq!(g.index_of(g.first_object + 95), None);
        assert_eq!(g.index_of(8), None);
    }

    #[test]
    fn objects_are_distinct_aligned_and_usable() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("obj", arena.backed_heap("parent", 4096), 48, 16, PAGE);
        let per_page = u64::from(cache.objects_per_page());
        let mut objs = Vec::new();
        for i in 0..per_page * 3 + 5 {
            let a = cache.alloc(48, 16).unwrap();
            assert_eq!(a % 16, 0);
            // SAFETY: `a` is a live 48-byte object from a backed cache.
            unsafe { crate::host::fill(a, 48, i as u8) };
            objs.push(a);
        }
        let mut sorted = objs.clone();
        sorted.sort();
        assert!(sorted.windows(2).all(|w| w[1] - w[0] >= 48));
        for (i, &a) in objs.iter().enumerate() {
            // SAFETY: as above.
            assert!(unsafe { crate::host::check(a, 48, i as u8) });
        }
        assert_eq!(cache.pages(), 4);
        assert_eq!(cache.stats().allocated, objs.len() as u64 * 48);
        for a in objs {
            cache.dealloc(a, 48);
        }
        assert_eq!(cache.stats().allocated, 0);
        // The current page and one cached empty page stay.
        assert_eq!(cache.pages(), 2);
        cache.trim();
        assert_eq!(cache.pages(), 0);
        assert_eq!(cache.parent().stats().allocated, 0);
    }

    #[test]
    fn full_pages_come_back_to_partial_and_empty_pages_go_home() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("obj", arena.backed_heap("parent", 4096), 1024, 1024, PAGE);
        cache.set_max_cached_empty(0);
        let n = u64::from(cache.objects_per_page());
        let first: Vec<u64> = (0..n).map(|_| cache.alloc_object().unwrap()).collect();
        // The first page is full but still current until an allocation
        // finds it so.
        assert_eq!(cache.core.page_lists(), (1, 0, 0, 0));
        let second = cache.alloc_object().unwrap();
        // It went to the full list when the second page became current.
        assert_eq!(cache.core.page_lists(), (1, 0, 1, 0));
        let third = cache.alloc_object().unwrap();
        cache.free_object(first[0]);
        assert_eq!(cache.core.page_lists(), (1, 1, 0, 0));
        // Emptying the first page (not current) hands it straight back.
        for &a in &first[1..] {
            cache.free_object(a);
        }
        assert_eq!(cache.core.page_lists(), (1, 0, 0, 0));
        assert_eq!(
            cache.parent().stats().allocated,
            PAGE + cache.registry.bytes()
        );
        cache.free_object(second);
        cache.free_object(third);
        cache.trim();
        assert_eq!(cache.parent().stats().allocated, 0);
    }

    #[test]
    fn out_of_memory_is_an_error_and_leaves_the_cache_usable() {
        // Room for the registry and one page only.
        let mut arena = HostArena::new(2 * PAGE, PAGE);
        let mut cache = ObjCache::new("small", arena.backed_heap("parent", 4096), 4096, 4096, PAGE);
        let n = cache.objects_per_page();
        let objs: Vec<u64> = (0..n).map(|_| cache.alloc_object().unwrap()).collect();
        assert_eq!(cache.alloc_object(), Err(AllocError));
        cache.free_object(objs[0]);
        assert_eq!(cache.alloc_object(), Ok(objs[0]));
    }

    #[test]
    #[should_panic(expected = "heap `objs`: double free of")]
    fn double_free_panics_naming_the_heap() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("objs", arena.backed_heap("parent", 4096), 64, 64, PAGE);
        let a = cache.alloc_object().unwrap();
        let _b = cache.alloc_object().unwrap();
        cache.free_object(a);
        cache.free_object(a);
    }

    #[test]
    #[should_panic(expected = "heap `objs`: foreign pointer: free of 0x")]
    fn foreign_pointer_panics_naming_the_heap() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("objs", arena.backed_heap("parent", 4096), 64, 64, PAGE);
        let _a = cache.alloc_object().unwrap();
        let local = 0u64;
        cache.free_object(&local as *const u64 as u64);
    }

    #[test]
    #[should_panic(expected = "which is not the start of a 64-byte object")]
    fn interior_pointer_panics() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("objs", arena.backed_heap("parent", 4096), 64, 64, PAGE);
        let a = cache.alloc_object().unwrap();
        cache.free_object(a + 8);
    }

    #[test]
    #[should_panic(expected = "heap `objs`: wrong size on free")]
    fn wrong_size_panics_naming_the_heap() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("objs", arena.backed_heap("parent", 4096), 64, 64, PAGE);
        let a = cache.alloc(64, 8).unwrap();
        cache.dealloc(a, 128);
    }

    #[test]
    #[should_panic(expected = "page header (64-byte objects) is corrupt")]
    fn overwritten_header_is_caught() {
        let mut arena = HostArena::new(1 << 20, PAGE);
        let mut cache = ObjCache::new("objs", arena.backed_heap("parent", 4096), 64, 64, PAGE);
        let a = cache.alloc_object().unwrap();
        // An overflow from the page below clobbers the header.
        // SAFETY: deliberately corrupts the cache's own header in its arena,
        // which the arena keeps alive; the cache only compares it.
        unsafe { crate::host::fill(a & !(PAGE - 1), 8, 0x41) };
        cache.free_object(a);
    }

    #[test]
    #[cfg(not(loom))]
    fn two_caches_do_not_accept_each_others_objects() {
        static TEST_CLASS: cairn_sync::LockClass =
            cairn_sync::LockClass::new("test.objcache.parent");
        let mut arena = HostArena::new(1 << 20, PAGE);
        let parent = arena.backed_heap("parent", 4096);
        let shared = crate::Locking::new(&TEST_CLASS, parent);
        let mut a = ObjCache::new("a", &shared, 64, 64, PAGE);
        let mut b = ObjCache::new("b", &shared, 64, 64, PAGE);
        let x = a.alloc_object().unwrap();
        let y = b.alloc_object().unwrap();
        let caught = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| b.free_object(x)));
        assert!(caught.is_err());
        a.free_object(x);
        b.free_object(y);
    }
}
