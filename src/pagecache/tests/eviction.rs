//! Eviction: only clean, unpinned pages on the LRU; the memory limit; frame
//! allocation failures; `shrink`.
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Access, Completion, Config, Errno, PAGE_SIZE, PageState};
use common::{DevConfig, World, pattern, wait};
use std::sync::mpsc::channel;

const PS: usize = PAGE_SIZE;

fn limited(pages: usize) -> Config {
    Config {
        limit_pages: pages,
        readahead_initial: 0,
        readahead_max: 0,
        ..Config::default()
    }
}

#[test]
fn memory_limit_evicts_clean_pages_lru_first() {
    let w = World::new(limited(8), DevConfig::default(), 1);
    let file = pattern(1, 0, 32 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    for k in 0..32 {
        assert_eq!(
            w.read(&n, (k * PS) as u64, PS).unwrap(),
            file[k * PS..][..PS]
        );
        assert!(
            w.cache.resident() <= 8,
            "over the limit: {}",
            w.cache.resident()
        );
    }
    assert_eq!(w.cache.stats().evictions, 24);
    // The last eight pages are the ones kept.
    let kept: Vec<u64> = n
        .page_infos()
        .into_iter()
        .filter(|(_, i)| i.state == PageState::Active)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept, (24..32).collect::<Vec<_>>());
    assert_eq!(w.cache.lru_len(), 8);
}

#[test]
fn eviction_never_touches_dirty_writing_reading_or_pinned_pages() {
    let w = World::new(limited(64), DevConfig::default(), 1);
    let file = pattern(2, 0, 16 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    // Pages 0-3 dirty.
    w.write(&n, 0, &pattern(3, 0, 4 * PS)).unwrap();
    // Pages 4-5 read and kept pinned.
    let (tx, rx) = channel();
    w.syscall(|| {
        n.read(
            4 * PS as u64,
            2 * PS,
            Completion::kernel_lock(move |r| tx.send(r).unwrap()),
        )
    });
    let pinned = wait(&rx).unwrap();
    // Page 6 mapped (pinned by the mapping).
    let mapped = w
        .fault(
            &n,
            6,
            Access {
                write: false,
                shared: true,
            },
        )
        .unwrap();
    // Pages 8-9 being written back (device paused), 10-11 being filled.
    w.write(&n, 8 * PS as u64, &pattern(4, 0, 2 * PS)).unwrap();
    // Pages 12-15 clean and unpinned: the only candidates.
    w.read(&n, 12 * PS as u64, 4 * PS).unwrap();
    w.dev.pause();
    let (stx, srx) = channel();
    w.syscall(|| n.sync(Completion::kernel_lock(move |r| stx.send(r).unwrap())));
    let (rtx, rrx) = channel();
    w.syscall(|| {
        n.read(
            10 * PS as u64,
            2 * PS,
            Completion::kernel_lock(move |r: Result<cairn_pagecache::Pages, Errno>| {
                rtx.send(r.map(|p| p.len())).unwrap()
            }),
        )
    });
    let before: Vec<_> = n.page_infos();
    let evicted = w.cache.shrink(1000);
    let after: Vec<_> = n.page_infos();
    assert_eq!(
        evicted, 4,
        "evicted {evicted}, expected exactly the 4 clean pages"
    );
    assert_eq!(w.cache.stats().evictions, 4);
    for (i, info) in &before {
        let now = after.iter().find(|(k, _)| k == i).map(|(_, x)| x.state);
        match info.state {
            PageState::Active if info.pins == 0 => assert_eq!(now, None, "page {i}"),
            s => assert_eq!(now, Some(s), "page {i} in {s:?} was touched by eviction"),
        }
    }
    assert!(before.iter().any(|(_, i)| i.state == PageState::Writing));
    assert!(before.iter().any(|(_, i)| i.state == PageState::Reading));
    w.dev.resume();
    assert_eq!(wait(&srx), Ok(()));
    assert_eq!(wait(&rrx), Ok(2 * PS));
    let mut buf = vec![0; 2 * PS];
    pinned.copy_to(&mut buf);
    assert_eq!(buf, file[4 * PS..6 * PS]);
    let mut page = vec![0; PS];
    mapped.read_at(0, &mut page);
    assert_eq!(page, file[6 * PS..7 * PS]);
    w.syscall(|| {
        drop(pinned);
        drop(mapped);
    });
    // Unpinned now, and clean after the sync: all evictable.
    w.quiesce(&[&n]);
    assert!(w.cache.shrink(1000) >= 8);
    let mut expect = pattern(3, 0, 4 * PS);
    expect.extend_from_slice(&file[4 * PS..8 * PS]);
    expect.extend(pattern(4, 0, 2 * PS));
    expect.extend_from_slice(&file[10 * PS..]);
    assert_eq!(w.read(&n, 0, 16 * PS).unwrap(), expect);
}

#[test]
fn frame_allocation_failure_evicts_and_retries_then_reports_enomem() {
    // The frame allocator itself runs out at 4 frames; the configured
    // limit is far above it.
    let w = World::with_frames(limited(1000), DevConfig::default(), 1, 4);
    let file = pattern(5, 0, 16 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    for k in 0..16 {
        assert_eq!(
            w.read(&n, (k * PS) as u64, PS).unwrap(),
            file[k * PS..][..PS]
        );
    }
    assert_eq!(w.frames.live(), 4);
    assert_eq!(w.cache.stats().evictions, 12);
    // Dirty pages cannot be evicted: with all four frames dirty, a fill
    // has no frame: ENOMEM, and the page is left FREE, not ALLOC.
    w.write(&n, 0, &pattern(6, 0, 4 * PS)).unwrap();
    assert_eq!(w.read(&n, 8 * PS as u64, 10), Err(Errno::ENOMEM));
    assert!(n.page_info(8).is_none());
    // Once written back they are clean and evictable again.
    w.sync(&n).unwrap();
    assert_eq!(
        w.read(&n, 8 * PS as u64, 10).unwrap(),
        file[8 * PS..8 * PS + 10]
    );
}

#[test]
fn write_that_cannot_get_frames_fails_cleanly() {
    let w = World::with_frames(limited(1000), DevConfig::default(), 1, 2);
    let n = w.node(0);
    assert_eq!(w.write(&n, 0, &pattern(7, 0, 4 * PS)), Err(Errno::ENOMEM));
    w.quiesce(&[&n]);
    assert!(
        n.page_infos()
            .iter()
            .all(|(_, i)| i.pins == 0 && i.leases == 0)
    );
    assert!(
        n.page_infos()
            .iter()
            .all(|(_, i)| i.state != PageState::New)
    );
    assert_eq!(w.write(&n, 0, &pattern(7, 0, 2 * PS)), Ok(2 * PS));
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), pattern(7, 0, 2 * PS));
}

#[test]
fn dirty_pages_past_half_the_limit_ask_writers_to_throttle() {
    let w = World::new(limited(16), DevConfig::default(), 2);
    let n = w.node(0);
    // Clean cached pages never count.
    let file = pattern(5, 0, 16 * PS);
    w.fs.preload(&w.dev, 0, &file);
    w.read(&n, 0, 16 * PS).unwrap();
    assert!(!w.cache.over_dirty_limit());
    // Dirty pages do, past half the limit.
    let m = w.node(1);
    for k in 0..8 {
        w.write(&m, (k * PS) as u64, &pattern(6, 0, PS)).unwrap();
        assert!(
            !w.cache.over_dirty_limit(),
            "throttled at {} dirty pages",
            k + 1
        );
    }
    w.write(&m, (8 * PS) as u64, &pattern(6, 0, PS)).unwrap();
    assert_eq!(w.cache.unclean(), 9);
    assert!(w.cache.over_dirty_limit());
    // Writeback brings it back under.
    w.sync(&m).unwrap();
    assert!(!w.cache.over_dirty_limit());
}
