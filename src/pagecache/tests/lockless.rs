//! The pagecache's lockless entry points (the syscalls' paths without the
//! kernel lock): what they answer, and that a cached read of a few pages
//! costs no heap allocation (a lockless read runs on every cached `pread`;
//! it used to allocate its vector of page views each time).
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Config, PAGE_SIZE};
use cairn_sync::Context;
use cairn_sync::cpu::host::set_context;
use common::{DevConfig, World, pattern};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

const PS: usize = PAGE_SIZE;

/// The system allocator, counting this thread's allocations.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// The counter is a thread-local `Cell` with no destructor: it allocates nothing.
// SAFETY: every call is passed on to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every allocation does).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`, and the caller's contract.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

fn no_readahead() -> Config {
    Config {
        readahead_initial: 0,
        readahead_max: 0,
        ..Config::default()
    }
}

/// `Node::read_cached` in the lockless read's context: the bytes of
/// `off .. off + len` if the node answers, with the allocations it made
/// (pinning, copying and unpinning) counted.
fn lockless_read(
    n: &std::sync::Arc<cairn_pagecache::Node>,
    off: u64,
    len: usize,
) -> (Option<Vec<u8>>, u64) {
    let mut out = vec![0u8; len];
    set_context(Context::RunLoop);
    let before = allocs();
    let got = n.read_cached(off, len, |p| {
        let k = p.len();
        p.read_at(0, &mut out[..k]);
        k
    });
    let made = allocs() - before;
    set_context(Context::KernelLock);
    (
        got.map(|k| {
            out.truncate(k);
            out
        }),
        made,
    )
}

#[test]
fn lockless_cached_read_of_a_few_pages_allocates_nothing() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(3, 0, 20 * PS));
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 20 * PS).unwrap(), pattern(3, 0, 20 * PS));
    // One page, a page at an offset, three pages unaligned, and the most a
    // lockless read takes (64 KiB starting inside a page: 17 pages).
    for (off, len) in [
        (0u64, PS),
        (5 * PS as u64, PS),
        (100, 100),
        (PS as u64 + 7, 2 * PS + 50),
        (3 * PS as u64 + 1, 16 * PS),
    ] {
        let (data, made) = lockless_read(&n, off, len);
        assert_eq!(data, Some(pattern(3, off, len)), "read {off}+{len}");
        assert_eq!(made, 0, "allocations of a lockless read {off}+{len}");
    }
    for i in 0..20 {
        assert_eq!(n.page_info(i).unwrap().pins, 0, "page {i} left pinned");
    }
}

#[test]
fn lockless_cached_read_answers_only_when_every_page_is_ready() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(4, 0, 8 * PS + 100));
    let n = w.node(0);
    // Nothing cached, and the node does not know the length yet.
    assert_eq!(lockless_read(&n, 0, PS).0, None);
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), pattern(4, 0, 2 * PS));
    assert_eq!(lockless_read(&n, 10, PS).0, Some(pattern(4, 10, PS)));
    // A gap (page 2) and pages never read.
    assert_eq!(lockless_read(&n, PS as u64, 2 * PS).0, None);
    assert_eq!(lockless_read(&n, 3 * PS as u64, 10).0, None);
    assert_eq!(
        w.read(&n, 3 * PS as u64, 6 * PS).unwrap().len(),
        5 * PS + 100
    );
    // Clipped at the end of file; at or past it, the locked path answers.
    assert_eq!(
        lockless_read(&n, 8 * PS as u64, PS).0,
        Some(pattern(4, 8 * PS as u64, 100))
    );
    assert_eq!(lockless_read(&n, 8 * PS as u64 + 100, 10).0, None);
    // A pending truncate.
    assert_eq!(w.truncate_cache(&n, 5), Ok(()));
    assert_eq!(lockless_read(&n, 0, 4).0, None);
    for (i, p) in n.page_infos() {
        assert_eq!(p.pins, 0, "page {i} left pinned");
    }
}

/// A read that would start readahead needs the locked path (which starts
/// it); a read whose readahead window is cached already does not.
#[test]
fn lockless_cached_read_leaves_readahead_to_the_locked_path() {
    let cfg = Config {
        readahead_initial: 2,
        readahead_max: 8,
        ..Config::default()
    };
    let w = World::new(cfg, DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(5, 0, 64 * PS));
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, PS).unwrap(), pattern(5, 0, PS));
    w.settle();
    // Sequential: page 1 is cached (readahead), its window (pages 2..6)
    // is not all claimed.
    let cached = n.page_infos().len();
    assert!(cached >= 2, "readahead cached {cached} pages");
    assert_eq!(lockless_read(&n, PS as u64, PS).0, None);
    // A random read of a cached page needs no readahead.
    assert_eq!(lockless_read(&n, 0, 10).0, Some(pattern(5, 0, 10)));
}

/// Pages a truncate takes away while a lockless read holds them are
/// detached: the read still copies what it pinned, and its unpin (one
/// page or several) discards them.
#[test]
fn lockless_cached_read_keeps_pages_a_truncate_takes_away() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(6, 0, 4 * PS));
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), pattern(6, 0, 4 * PS));
    set_context(Context::RunLoop);
    let outer = n.read_cached(3 * PS as u64, PS, |one| {
        let inner = n.read_cached(10, 3 * PS, |three| {
            set_context(Context::KernelLock);
            assert_eq!(w.truncate_cache(&n, 0), Ok(()));
            assert_eq!(n.detached_pages(), 4);
            let mut buf = vec![0; 3 * PS];
            three.read_at(0, &mut buf);
            assert_eq!(buf, pattern(6, 10, 3 * PS));
            set_context(Context::RunLoop);
        });
        assert_eq!(inner, Some(()));
        assert_eq!(n.detached_pages(), 1);
        let mut buf = vec![0; PS];
        one.read_at(0, &mut buf);
        assert_eq!(buf, pattern(6, 3 * PS as u64, PS));
    });
    set_context(Context::KernelLock);
    assert_eq!(outer, Some(()));
    assert_eq!(n.detached_pages(), 0);
}

/// `Node::write_cached` in the lockless write's context: writes `bytes` at
/// `off` if the node answers, with the allocations it made and whether it
/// asked the dirty throttle (`may_dirty`).
fn lockless_write(
    n: &std::sync::Arc<cairn_pagecache::Node>,
    off: u64,
    bytes: &[u8],
    may_dirty: bool,
) -> (Option<usize>, u64, bool) {
    let asked = Cell::new(false);
    set_context(Context::RunLoop);
    let before = allocs();
    let r = n.write_cached(
        off,
        bytes.len(),
        || {
            asked.set(true);
            may_dirty
        },
        |b| {
            b.write_at(0, bytes);
            bytes.len()
        },
    );
    let made = allocs() - before;
    set_context(Context::KernelLock);
    (r, made, asked.get())
}

/// An overwrite of dirty pages (a pwrite's common case) allocates nothing
/// and does not ask the dirty throttle (which takes the LRU's lock): only
/// a clean page that would become dirty needs its verdict.
#[test]
fn lockless_overwrite_of_dirty_pages_allocates_nothing_and_asks_no_throttle() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let n = w.node(0);
    let mut expect = pattern(1, 0, 20 * PS);
    assert_eq!(w.write(&n, 0, &expect), Ok(expect.len()));
    for (off, len) in [
        (0u64, PS),
        (5 * PS as u64, PS),
        (100, 100),
        (PS as u64 + 7, 2 * PS + 50),
        (3 * PS as u64 + 1, 16 * PS),
    ] {
        let new = pattern(2, off + 1, len);
        let (r, made, asked) = lockless_write(&n, off, &new, false);
        assert_eq!(r, Some(len), "write {off}+{len}");
        assert_eq!(made, 0, "allocations of a lockless write {off}+{len}");
        assert!(!asked, "dirty pages need no throttle verdict");
        expect[off as usize..off as usize + len].copy_from_slice(&new);
    }
    for (i, p) in n.page_infos() {
        assert_eq!((p.pins, p.leases), (0, 0), "page {i} left held");
    }
    assert_eq!(w.read(&n, 0, 20 * PS).unwrap(), expect);
    // Clean pages: the throttle decides, and is asked once.
    assert_eq!(w.sync(&n), Ok(()));
    let (r, _, asked) = lockless_write(&n, 10, &[9; 2 * PS], false);
    assert_eq!((r, asked), (None, true));
    let (r, _, asked) = lockless_write(&n, 10, &[9; 2 * PS], true);
    assert_eq!((r, asked), (Some(2 * PS), true));
    expect[10..10 + 2 * PS].copy_from_slice(&[9; 2 * PS]);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(
        w.disk_image(0),
        expect,
        "the lockless overwrite reached the disk"
    );
}
