//! Truncate: pages past the new end leave the cache (dirty ones are never
//! written), the page holding the new end is zeroed past it, busy pages
//! are waited for, held ones are detached and stay valid for their
//! holders; `invalidate_clean`.
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Access, Completion, Config, Errno, PAGE_SIZE, PageState, Pages};
use common::{DevConfig, World, pattern, wait};
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;

const PS: usize = PAGE_SIZE;
const P: u64 = PS as u64;
const SHARED_WRITE: Access = Access {
    write: true,
    shared: true,
};

fn no_readahead() -> Config {
    Config {
        readahead_initial: 0,
        readahead_max: 0,
        ..Config::default()
    }
}

fn write_sectors(w: &World) -> u64 {
    w.dev.state.counters.write_sectors.load(Ordering::SeqCst)
}

/// The bytes of disk sectors `first .. first + n`.
fn disk(w: &World, first: u64, n: u64) -> Vec<u8> {
    let d = w.dev.state.disk.lock().unwrap();
    d[(first * 512) as usize..((first + n) * 512) as usize].to_vec()
}

/// Every page of `n` in the tree is consistent with the LRU.
fn check_lru(w: &World, n: &std::sync::Arc<cairn_pagecache::Node>) {
    w.quiesce(&[n]);
    let infos = n.page_infos();
    for (i, info) in &infos {
        assert_eq!(info.on_lru, info.state == PageState::Active, "page {i}");
    }
    let active = infos
        .iter()
        .filter(|(_, i)| i.state == PageState::Active)
        .count();
    assert_eq!(w.cache.lru_len(), active);
}

/// Shrink to `PS + 100`, then grow with a write at page 5: the old tail of
/// page 1 and the gap read as zeros, the first `PS + 100` bytes are intact,
/// in the cache and after a remount.
fn shrink_then_extend(w: &World, n: &std::sync::Arc<cairn_pagecache::Node>, file: &[u8]) {
    let len = P + 100;
    let past = n
        .page_infos()
        .iter()
        .filter(|(i, p)| *i >= 2 && p.state != PageState::Free)
        .count();
    let live = w.frames.live();
    assert_eq!(w.truncate(n, 0, len), Ok(()));
    assert_eq!(
        w.frames.live(),
        live - past,
        "frames of dropped pages freed"
    );
    assert_eq!(w.fs.len(0), len);
    let kept: Vec<u64> = n.page_infos().into_iter().map(|(i, _)| i).collect();
    assert!(kept.iter().all(|&i| i <= 1), "pages past the end: {kept:?}");
    assert_eq!(w.read(n, 0, 4 * PS).unwrap(), file[..len as usize]);
    assert_eq!(w.read(n, 2 * P, PS).unwrap(), Vec::<u8>::new());
    let far = pattern(9, 5 * P, 10);
    assert_eq!(w.write(n, 5 * P, &far), Ok(10));
    let mut expect = file[..len as usize].to_vec();
    expect.resize(5 * PS, 0);
    expect.extend_from_slice(&far);
    assert_eq!(w.read(n, 0, 6 * PS).unwrap(), expect);
    check_lru(w, n);
    assert_eq!(w.sync(n), Ok(()));
    assert_eq!(w.disk_image(0), expect);
    assert_eq!(w.stray_writes(), 0);
}

#[test]
fn shrink_then_extend_clean_pages() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(1, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), file);
    assert_eq!(w.cache.lru_len(), 4);
    shrink_then_extend(&w, &n, &file);
    assert_eq!(w.cache.stats().truncated, 2);
}

#[test]
fn shrink_then_extend_dirty_pages_never_writes_past_the_end() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let n = w.node(0);
    let file = pattern(2, 0, 4 * PS);
    assert_eq!(w.write(&n, 0, &file), Ok(4 * PS));
    let before = write_sectors(&w);
    assert_eq!(w.truncate(&n, 0, P + 100), Ok(()));
    let info = n.page_info(1).unwrap();
    assert_eq!(
        (info.state, info.dirty),
        (PageState::Dirty, 0b1),
        "page 1 keeps only its sector inside the file dirty"
    );
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(
        write_sectors(&w) - before,
        8 + 1,
        "page 0 and the first sector of page 1, nothing past the end"
    );
    assert_eq!(w.stray_writes(), 0);
    shrink_then_extend(&w, &n, &file);
}

#[test]
fn dirty_sectors_only_past_the_end_leave_the_page_clean() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(3, 0, 2 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    w.write(&n, P + 3600, &[7; 10]).unwrap();
    assert_eq!(n.page_info(1).unwrap().dirty, 0b1000_0000);
    let writes = w.dev.writes();
    assert_eq!(w.truncate(&n, 0, P + 100), Ok(()));
    let info = n.page_info(1).unwrap();
    assert_eq!(
        (info.state, info.dirty, info.on_lru),
        (PageState::Active, 0, true)
    );
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.dev.writes(), writes, "nothing left to write");
    assert_eq!(w.vol.dirty_nodes(), 0);
    let mut expect = file[..PS + 100].to_vec();
    assert_eq!(w.disk_image(0), expect);
    // Growing again: zeros where the old tail and the write were.
    assert_eq!(w.truncate(&n, 0, 2 * P), Ok(()));
    expect.resize(2 * PS, 0);
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), expect);
    assert_eq!(w.disk_image(0), expect);
}

#[test]
fn page_aligned_and_zero_lengths() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let n = w.node(0);
    let file = pattern(4, 0, 3 * PS);
    w.write(&n, 0, &file).unwrap();
    assert_eq!(w.truncate(&n, 0, 2 * P), Ok(()));
    assert_eq!(n.cached_pages(), 2);
    assert_eq!(n.page_info(1).unwrap().dirty, 0xff, "page 1 is untouched");
    assert_eq!(w.read(&n, 0, 3 * PS).unwrap(), file[..2 * PS]);
    assert_eq!(w.truncate(&n, 0, 0), Ok(()));
    assert_eq!(n.cached_pages(), 0);
    assert_eq!(w.vol.dirty_nodes(), 0, "nothing left to write");
    assert_eq!(w.read(&n, 0, 3 * PS).unwrap(), Vec::<u8>::new());
    assert_eq!(w.write(&n, 2 * P, &[1]), Ok(1));
    let mut expect = vec![0; 2 * PS];
    expect.push(1);
    assert_eq!(w.read(&n, 0, 3 * PS).unwrap(), expect);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), expect);
    assert_eq!(w.stray_writes(), 0);
}

#[test]
fn truncate_waits_for_writeback_in_flight_past_the_end_then_discards() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let n = w.node(0);
    let file = pattern(5, 0, 4 * PS);
    w.write(&n, 0, &file).unwrap();
    w.dev.pause();
    let (stx, srx) = channel();
    w.syscall(|| n.sync(Completion::kernel_lock(move |r| stx.send(r).unwrap())));
    assert_eq!(n.page_info(3).unwrap().state, PageState::Writing);
    let trx = w.start_truncate(&n, 0, P);
    w.settle();
    assert!(trx.try_recv().is_err(), "truncate ended under a writeback");
    assert_eq!(w.fs.len(0), 4 * P, "the filesystem was told too early");
    for i in 1..4 {
        assert_eq!(n.page_info(i).unwrap().state, PageState::Writing);
    }
    w.dev.resume();
    assert_eq!(wait(&srx), Ok(()));
    assert_eq!(wait(&trx), Ok(()));
    assert_eq!(w.fs.len(0), P);
    assert_eq!(n.cached_pages(), 1);
    assert_eq!(w.stray_writes(), 0);
    assert_eq!(w.read(&n, P, PS).unwrap(), Vec::<u8>::new());
    w.write(&n, 3 * P, &[1]).unwrap();
    let mut expect = file[..PS].to_vec();
    expect.resize(3 * PS, 0);
    expect.push(1);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), expect);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), expect);
    check_lru(&w, &n);
}

#[test]
fn truncate_waits_for_a_writer_between_prepare_and_commit() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let n = w.node(0);
    w.write(&n, 0, &pattern(6, 0, 3 * PS)).unwrap();
    let (tx, rx) = channel();
    w.syscall(|| {
        n.write(
            2 * P + 10,
            10,
            Completion::kernel_lock(move |r| tx.send(r).unwrap()),
        )
    });
    let mut batch = wait(&rx).unwrap();
    let trx = w.start_truncate(&n, 0, P + 1);
    w.settle();
    assert!(trx.try_recv().is_err(), "truncate ended around a lease");
    // The commit ends the lease; the truncate then discards the page.
    w.syscall(|| {
        batch.copy_from(&[9; 10]);
        assert_eq!(batch.commit(10), 10);
    });
    assert_eq!(wait(&trx), Ok(()));
    assert!(n.page_info(2).is_none());
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.stray_writes(), 0);
    assert_eq!(w.disk_image(0), pattern(6, 0, PS + 1));
}

#[test]
fn read_racing_a_truncate_gets_the_old_content_and_keeps_its_pages() {
    for seed in 0..20 {
        let dev = DevConfig {
            seed,
            ..DevConfig::default()
        };
        let w = World::new(no_readahead(), dev, 1);
        let file = pattern(7, 0, 4 * PS);
        w.fs.preload(&w.dev, 0, &file);
        let n = w.node(0);
        w.dev.pause();
        let (tx, rx) = channel();
        w.syscall(|| {
            n.read(
                0,
                4 * PS,
                Completion::kernel_lock(move |r: Result<Pages, Errno>| tx.send(r).unwrap()),
            )
        });
        let trx = w.start_truncate(&n, 0, 100);
        w.settle();
        assert!(trx.try_recv().is_err(), "truncate ended under a fill");
        w.dev.resume();
        let pages = wait(&rx).unwrap();
        assert_eq!(wait(&trx), Ok(()));
        // The read started first: it has the old content, past the new end
        // too (page 0's tail may be zeroed already: it is shared).
        let mut got = vec![0; pages.len()];
        w.syscall(|| pages.copy_to(&mut got));
        assert_eq!(got.len(), 4 * PS);
        assert_eq!(got[..100], file[..100]);
        assert_eq!(got[PS..], file[PS..]);
        assert!(got[100..PS] == file[100..PS] || got[100..PS].iter().all(|&b| b == 0));
        assert_eq!(n.detached_pages(), 3, "seed {seed}");
        assert_eq!(n.cached_pages(), 1);
        // A new read sees the new length.
        assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), file[..100]);
        let live = w.frames.live();
        w.syscall(|| drop(pages));
        assert_eq!(n.detached_pages(), 0);
        assert_eq!(w.frames.live(), live - 3, "detached frames freed");
        check_lru(&w, &n);
    }
}

#[test]
fn pinned_pages_past_the_end_stay_valid_until_dropped() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(8, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let (tx, rx) = channel();
    w.syscall(|| {
        n.read(
            2 * P,
            2 * PS,
            Completion::kernel_lock(move |r: Result<Pages, Errno>| tx.send(r).unwrap()),
        )
    });
    let pages = wait(&rx).unwrap();
    // Truncating does not wait for the pin.
    assert_eq!(w.truncate(&n, 0, P + 100), Ok(()));
    assert_eq!(n.detached_pages(), 2);
    assert!(n.page_info(2).is_none() && n.page_info(3).is_none());
    assert_eq!(w.cache.lru_len(), 0, "detached pages are off the LRU");
    // The handle still reads the old bytes.
    let mut got = vec![0; 2 * PS];
    w.syscall(|| pages.copy_to(&mut got));
    assert_eq!(got, file[2 * PS..]);
    // Nobody else does: reads past the end get nothing, and after the
    // file grows back the gap is zeros.
    assert_eq!(w.read(&n, 2 * P, PS).unwrap(), Vec::<u8>::new());
    w.write(&n, 5 * P, &[1]).unwrap();
    assert_eq!(w.read(&n, 2 * P, 2 * PS).unwrap(), vec![0; 2 * PS]);
    w.syscall(|| pages.copy_to(&mut got));
    assert_eq!(got, file[2 * PS..], "the handle's pages were reused");
    let live = w.frames.live();
    w.syscall(|| drop(pages));
    assert_eq!(n.detached_pages(), 0);
    assert_eq!(w.frames.live(), live - 2);
    let mut expect = file[..PS + 100].to_vec();
    expect.resize(5 * PS, 0);
    expect.push(1);
    assert_eq!(w.read(&n, 0, 6 * PS).unwrap(), expect);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), expect);
    assert_eq!(w.stray_writes(), 0);
    check_lru(&w, &n);
}

#[test]
fn mapped_pages_past_the_end_stay_valid_and_are_never_written() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(9, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    // File data starts at disk sector 8: page 2 is sectors 24 .. 32.
    let page2 = 8 + 16;
    let shared = w.fault(&n, 2, SHARED_WRITE).unwrap();
    let private = w
        .fault(
            &n,
            3,
            Access {
                write: false,
                shared: false,
            },
        )
        .unwrap();
    w.syscall(|| shared.write_at(0, &[0xaa; 10]));
    assert_eq!(n.page_info(2).unwrap().state, PageState::Dirty);
    let writes = w.dev.writes();
    assert_eq!(w.truncate(&n, 0, P), Ok(()));
    assert_eq!(n.detached_pages(), 2);
    assert_eq!(
        w.vol.dirty_nodes(),
        0,
        "nothing of the node is to be written"
    );
    // Both mappings still work on their old frames.
    let mut b = [0u8; 12];
    shared.read_at(0, &mut b);
    assert_eq!(b[..10], [0xaa; 10]);
    assert_eq!(b[10..], file[2 * PS + 10..2 * PS + 12]);
    w.syscall(|| shared.write_at(100, &[0xbb; 4]));
    private.read_at(0, &mut b);
    assert_eq!(b, file[3 * PS..3 * PS + 12]);
    // A new fault past the end is refused; sync writes nothing.
    assert_eq!(w.fault(&n, 2, SHARED_WRITE).err(), Some(Errno::EFAULT));
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.dev.writes(), writes);
    assert_eq!(w.stray_writes(), 0);
    assert_eq!(
        disk(&w, page2, 8),
        file[2 * PS..3 * PS],
        "old sectors untouched"
    );
    // Growing back: a fault on page 2 gets a fresh zero page.
    w.write(&n, 4 * P, &[1]).unwrap();
    let again = w.fault(&n, 2, SHARED_WRITE).unwrap();
    again.read_at(0, &mut b);
    assert_eq!(b, [0; 12]);
    assert_ne!(again.phys(), shared.phys());
    let live = w.frames.live();
    w.syscall(|| {
        drop(shared);
        drop(private);
    });
    assert_eq!(n.detached_pages(), 0);
    assert_eq!(w.frames.live(), live - 2);
    w.syscall(|| drop(again));
    let mut expect = file[..PS].to_vec();
    expect.resize(4 * PS, 0);
    expect.push(1);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), expect);
    assert_eq!(w.stray_writes(), 0);
}

#[test]
fn the_cache_is_capped_until_the_filesystem_applies_the_truncate() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let file = pattern(10, 0, 8 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, PS).unwrap(), file[..PS]);
    w.quiesce(&[&n]);
    assert_eq!(w.truncate_cache(&n, P + 5), Ok(()));
    // The filesystem still has 8 pages; the cache shows P + 5 bytes and
    // reads nothing past them back in (no fill, no readahead).
    assert_eq!(w.fs.len(0), 8 * P);
    let reads = w.dev.reads();
    assert_eq!(w.read(&n, 0, 8 * PS).unwrap(), file[..PS + 5]);
    assert_eq!(w.read(&n, 3 * P, PS).unwrap(), Vec::<u8>::new());
    assert_eq!(w.fault(&n, 2, SHARED_WRITE).err(), Some(Errno::EFAULT));
    w.quiesce(&[&n]);
    assert!(n.page_infos().iter().all(|&(i, _)| i <= 1));
    assert!(w.dev.reads() <= reads + 1, "only page 1 was filled");
    // Page 1 filled again now reads the old bytes past the new end from
    // disk (the filesystem has not zeroed them yet): the fill zeroes them.
    assert_eq!(w.syscall(|| n.invalidate_clean()), 2);
    assert_eq!(w.read(&n, P, PS).unwrap(), file[PS..PS + 5]);
    // The filesystem catches up; then the file grows again.
    w.syscall(|| {
        w.fs.truncate(0, P + 5);
        n.length_changed();
    });
    assert_eq!(w.write(&n, 4 * P, &[3]), Ok(1));
    let mut expect = file[..PS + 5].to_vec();
    expect.resize(4 * PS, 0);
    expect.push(3);
    assert_eq!(w.read(&n, 0, 8 * PS).unwrap(), expect);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), expect);
    assert_eq!(w.stray_writes(), 0);
}

#[test]
fn invalidate_clean_drops_only_clean_unheld_pages() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(11, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), file);
    w.write(&n, P, &[5; 10]).unwrap();
    let (tx, rx) = channel();
    w.syscall(|| {
        n.read(
            2 * P,
            10,
            Completion::kernel_lock(move |r: Result<Pages, Errno>| tx.send(r).unwrap()),
        )
    });
    let pinned = wait(&rx).unwrap();
    let live = w.frames.live();
    assert_eq!(w.syscall(|| n.invalidate_clean()), 2, "pages 0 and 3");
    assert_eq!(w.frames.live(), live - 2);
    let states: Vec<(u64, PageState)> = n
        .page_infos()
        .into_iter()
        .map(|(i, p)| (i, p.state))
        .collect();
    assert_eq!(states, vec![(1, PageState::Dirty), (2, PageState::Active)]);
    assert_eq!(w.cache.lru_len(), 1);
    w.syscall(|| drop(pinned));
    let mut expect = file.clone();
    expect[PS..PS + 10].fill(5);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), expect);
    check_lru(&w, &n);
}

#[test]
fn reallocated_sectors_read_as_zeros_until_written() {
    // Sectors freed by a truncate and reserved again (uninited) still
    // hold the old data on disk; a fill must not read them.
    let w = World::new(no_readahead(), DevConfig::default(), 2);
    let old = pattern(12, 0, PS);
    w.fs.preload(&w.dev, 0, &old);
    let a = w.node(0);
    assert_eq!(w.truncate(&a, 0, 0), Ok(()));
    let b = w.node(1);
    // A sparse file: page 0 is a hole inside the file...
    w.write(&b, 2 * P, &[1]).unwrap();
    // ...then a small write into it reserves one of the freed sectors and
    // reads the rest of the page first.
    w.write(&b, 300, &[2]).unwrap();
    let mut expect = vec![0; 2 * PS + 1];
    expect[300] = 2;
    expect[2 * PS] = 1;
    assert!(w.read(&b, 0, 3 * PS).unwrap() == expect, "old data leaked");
    assert_eq!(w.sync(&b), Ok(()));
    assert!(w.disk_image(1) == expect, "old data written back");
    assert_eq!(w.stray_writes(), 0);
}

/// `punch` drops the pages of a range (dirty ones never written back),
/// keeps the others, and `invalidate_clean_range` drops only the clean,
/// unheld pages of its range.
#[test]
fn punch_and_invalidate_a_range() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(4, 0, 6 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 6 * PS).unwrap(), file);
    // Pages 2 and 3 dirty, then punched: gone, never written.
    assert_eq!(w.write(&n, 2 * P, &[9; 2 * PS]), Ok(2 * PS));
    let before = write_sectors(&w);
    let (tx, rx) = channel();
    w.syscall(|| {
        n.punch(
            1,
            4,
            Completion::kernel_lock(move |r| {
                tx.send(r).unwrap();
            }),
        )
    });
    assert_eq!(wait(&rx), Ok(()));
    let kept: Vec<u64> = n.page_infos().into_iter().map(|(i, _)| i).collect();
    assert_eq!(kept, vec![0, 4, 5], "pages of the punched range left");
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(
        write_sectors(&w),
        before,
        "a punched dirty page was written"
    );
    check_lru(&w, &n);
    // Invalidate pages 4.. only: page 0 stays, 4 and 5 go; a dirty page
    // (1, written again) stays.
    assert_eq!(w.write(&n, P, &[5; 10]), Ok(10));
    assert_eq!(w.syscall(|| n.invalidate_clean_range(1, 6)), 2);
    let kept: Vec<u64> = n.page_infos().into_iter().map(|(i, _)| i).collect();
    assert_eq!(kept, vec![0, 1]);
    assert_eq!(w.syscall(|| n.invalidate_clean_range(3, 3)), 0);
    check_lru(&w, &n);
}
