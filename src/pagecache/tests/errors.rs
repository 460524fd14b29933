//! Injected device errors: nothing is lost, everything is reported once.
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Config, Errno, PAGE_SIZE, PageState};
use common::{DevConfig, World, pattern};
use std::sync::atomic::Ordering::SeqCst;

const PS: usize = PAGE_SIZE;

#[test]
fn failed_writeback_keeps_pages_dirty_and_fsync_reports_eio_once() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let n = w.node(0);
    let data = pattern(1, 0, 3 * PS);
    w.write(&n, 0, &data).unwrap();
    w.dev.state.fail_writes.store(true, SeqCst);
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    for i in 0..3 {
        let info = n.page_info(i).unwrap();
        assert_eq!(info.state, PageState::Dirty, "page {i} lost its dirtiness");
        assert_eq!(info.dirty, 0xff);
    }
    assert!(w.cache.stats().write_errors >= 3);
    assert_eq!(w.vol.dirty_nodes(), 1);
    // Still failing: the rewrite fails again and is reported again.
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    // The fault clears: the next sync rewrites the pages and succeeds.
    w.dev.state.fail_writes.store(false, SeqCst);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), data);
    // The cached data was never disturbed.
    assert_eq!(w.read(&n, 0, 3 * PS).unwrap(), data);
}

#[test]
fn periodic_writeback_failure_is_reported_by_the_next_fsync() {
    let cfg = Config {
        writeback_age: 0,
        ..Config::default()
    };
    let w = World::new(cfg, DevConfig::default(), 1);
    let n = w.node(0);
    let data = pattern(2, 0, PS);
    w.write(&n, 0, &data).unwrap();
    w.dev.state.fail_writes.store(true, SeqCst);
    assert_eq!(w.tick(), 1);
    w.quiesce(&[&n]);
    assert_eq!(n.page_info(0).unwrap().state, PageState::Dirty);
    w.dev.state.fail_writes.store(false, SeqCst);
    // This sync's own writeback succeeds, but the earlier failure is not
    // dropped: reported once, then cleared.
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), data);
}

#[test]
fn failed_fill_fails_the_reader_frees_the_page_and_later_reads_retry() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let file = pattern(3, 0, 8 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    w.dev.state.fail_reads.store(true, SeqCst);
    assert_eq!(w.read(&n, 0, 2 * PS), Err(Errno::EIO));
    w.quiesce(&[&n]);
    for (i, info) in n.page_infos() {
        assert_ne!(info.state, PageState::Reading, "page {i} left READING");
        assert_ne!(
            info.state,
            PageState::Active,
            "page {i} filled from a failed read"
        );
    }
    assert_eq!(
        w.cache.resident(),
        0,
        "frames of failed fills were not freed"
    );
    assert!(w.cache.stats().read_errors >= 2);
    w.dev.state.fail_reads.store(false, SeqCst);
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), file[..2 * PS].to_vec());
}

#[test]
fn failed_fill_under_a_partial_write_fails_the_write_and_loses_nothing() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let file = pattern(4, 0, 2 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    w.dev.state.fail_reads.store(true, SeqCst);
    assert_eq!(w.write(&n, 100, &[1, 2, 3]), Err(Errno::EIO));
    w.quiesce(&[&n]);
    w.dev.state.fail_reads.store(false, SeqCst);
    assert!(
        n.page_infos()
            .iter()
            .all(|(_, i)| i.leases == 0 && i.pins == 0)
    );
    assert_eq!(w.write(&n, 100, &[1, 2, 3]), Ok(3));
    let mut expect = file.clone();
    expect[100..103].copy_from_slice(&[1, 2, 3]);
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), expect);
}

#[test]
fn failed_flush_or_metadata_fails_the_sync() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let n = w.node(0);
    w.write(&n, 0, &[1; 10]).unwrap();
    w.dev.state.fail_flush.store(true, SeqCst);
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    assert_eq!(w.sync_volume(), Err(Errno::EIO));
    assert_eq!(w.cache.stats().flush_errors, 2);
    w.dev.state.fail_flush.store(false, SeqCst);
    w.fs.fail_meta.store(true, SeqCst);
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    w.fs.fail_meta.store(false, SeqCst);
    assert_eq!(w.sync(&n), Ok(()));
}

#[test]
fn sync_volume_reports_a_node_error_and_leaves_it_for_that_fsync() {
    let w = World::new(Config::default(), DevConfig::default(), 2);
    let (a, b) = (w.node(0), w.node(1));
    w.write(&a, 0, &[1; 10]).unwrap();
    w.write(&b, 0, &[2; 10]).unwrap();
    w.dev.state.fail_writes.store(true, SeqCst);
    assert_eq!(w.sync_volume(), Err(Errno::EIO));
    w.dev.state.fail_writes.store(false, SeqCst);
    // Each file's own fsync still learns of its failure, once.
    assert_eq!(w.sync(&a), Err(Errno::EIO));
    assert_eq!(w.sync(&a), Ok(()));
    assert_eq!(w.sync(&b), Err(Errno::EIO));
    assert_eq!(w.sync_volume(), Ok(()));
}

/// A device that completes in order, so a test knows which pages share a
/// request.
fn fifo() -> DevConfig {
    DevConfig {
        random: false,
        ..DevConfig::default()
    }
}

#[test]
fn a_backing_map_error_fails_the_fill_instead_of_reading_zeros() {
    let w = World::new(Config::default(), fifo(), 1);
    let file = pattern(7, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    w.fs.fail_map.store(true, SeqCst);
    assert_eq!(w.read(&n, 0, 2 * PS), Err(Errno::EIO));
    w.quiesce(&[&n]);
    assert_eq!(w.cache.resident(), 0, "failed fills kept their frames");
    // A write into a page that must be filled first fails too.
    assert_eq!(w.write(&n, 10, b"xy"), Err(Errno::EIO));
    w.fs.fail_map.store(false, SeqCst);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), file);
}

#[test]
fn a_backing_length_error_fails_reads_writes_and_faults() {
    let w = World::new(Config::default(), fifo(), 1);
    w.fs.preload(&w.dev, 0, &pattern(8, 0, 2 * PS));
    let n = w.node(0);
    w.fs.fail_length.store(true, SeqCst);
    assert_eq!(w.read(&n, 0, PS), Err(Errno::EIO));
    assert_eq!(w.write(&n, 0, b"abc"), Err(Errno::EIO));
    let access = cairn_pagecache::Access {
        write: false,
        shared: true,
    };
    assert_eq!(w.fault(&n, 0, access).err(), Some(Errno::EIO));
    w.fs.fail_length.store(false, SeqCst);
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), pattern(8, 0, 2 * PS));
}

#[test]
fn a_backing_map_error_in_writeback_keeps_the_pages_dirty_for_fsync() {
    let w = World::new(Config::default(), fifo(), 1);
    let n = w.node(0);
    let data = pattern(9, 0, 2 * PS);
    w.write(&n, 0, &data).unwrap();
    w.fs.fail_map.store(true, SeqCst);
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    for i in 0..2 {
        assert_eq!(n.page_info(i).unwrap().state, PageState::Dirty);
    }
    w.fs.fail_map.store(false, SeqCst);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), data);
}

#[test]
fn a_mark_written_error_keeps_the_pages_dirty_for_fsync() {
    let w = World::new(Config::default(), fifo(), 1);
    let n = w.node(0);
    let data = pattern(10, 0, 2 * PS);
    w.write(&n, 0, &data).unwrap();
    w.fs.fail_mark.store(true, SeqCst);
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    assert_eq!(w.fs.uninited(0), 16, "extents marked despite the error");
    for i in 0..2 {
        assert_eq!(n.page_info(i).unwrap().state, PageState::Dirty);
    }
    w.fs.fail_mark.store(false, SeqCst);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.fs.uninited(0), 0);
    assert_eq!(w.disk_image(0), data);
}

#[test]
fn one_bad_sector_fails_only_its_page_of_a_batched_fill() {
    let w = World::new(Config::default(), fifo(), 1);
    let pages = 24;
    let file = pattern(11, 0, pages * PS);
    w.fs.preload(&w.dev, 0, &file);
    let bad = 16u64;
    let sector = w.fs.disk_sector(0, bad * PS as u64 + 1024).unwrap();
    w.dev.state.bad_reads.lock().unwrap().insert(sector);
    let n = w.node(0);
    // One read of the whole file: one request covers every page. The
    // pages before the bad one come back (a short read).
    let got = w.read(&n, 0, pages * PS).unwrap();
    assert_eq!(
        got.len(),
        bad as usize * PS,
        "not a short read up to the bad page"
    );
    assert_eq!(got, file[..bad as usize * PS]);
    w.quiesce(&[&n]);
    for (i, info) in n.page_infos() {
        if i == bad {
            assert_eq!(info.state, PageState::Free, "the bad page filled");
        } else {
            assert_eq!(
                info.state,
                PageState::Active,
                "good page {i} failed with the bad one"
            );
        }
    }
    assert!(w.cache.stats().retries >= 1);
    assert_eq!(w.read(&n, bad * PS as u64, PS), Err(Errno::EIO));
    let after = (bad + 1) * PS as u64;
    assert_eq!(
        w.read(&n, after, PS).unwrap(),
        file[after as usize..after as usize + PS]
    );
}

#[test]
fn one_bad_sector_keeps_only_its_page_dirty_in_a_batched_writeback() {
    let w = World::new(Config::default(), fifo(), 1);
    let n = w.node(0);
    let pages = 12;
    let data = pattern(12, 0, pages * PS);
    w.write(&n, 0, &data).unwrap();
    let bad = 5u64;
    let sector = w.fs.disk_sector(0, bad * PS as u64).unwrap();
    w.dev.state.bad_writes.lock().unwrap().insert(sector);
    assert_eq!(w.sync(&n), Err(Errno::EIO));
    for (i, info) in n.page_infos() {
        let want = if i == bad {
            PageState::Dirty
        } else {
            PageState::Active
        };
        assert_eq!(info.state, want, "page {i}");
    }
    w.dev.state.bad_writes.lock().unwrap().clear();
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.disk_image(0), data);
}
