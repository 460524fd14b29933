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
