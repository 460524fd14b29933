//! Fault fills for mmap, and Brian's scenario (seeds/002): a copy out of
//! (or into) the pagecache that faults into the same file's pagecache and
//! waits for a fill of it must complete, because no pagecache lock is held
//! while copying.
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Access, Completion, Config, Errno, Mapped, PAGE_SIZE, PageState, Pages};
use cairn_sync::lockdep;
use common::{DevConfig, World, pattern, wait};
use std::sync::mpsc::channel;

const PS: usize = PAGE_SIZE;
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

/// `read(fd, p, PS)` at `from`, where `p` is a shared writable mapping of
/// page `to` of the same file that nobody has touched. The copy runs
/// sector by sector; the first store faults, and the fault waits for a fill
/// of page `to` while this read still pins its own page.
fn read_into_own_mapping(w: &World, from: u64, to: u64) {
    let n = w.node(0);
    let (tx, rx) = channel();
    w.syscall(|| {
        n.read(
            from * PS as u64,
            PS,
            Completion::kernel_lock(move |r| tx.send(r).unwrap()),
        )
    });
    let pages: Pages = wait(&rx).unwrap();
    let reads_before = w.dev.reads();
    let mut mapping: Option<Mapped> = None;
    for s in 0..8 {
        let mut sector = [0u8; 512];
        w.syscall(|| {
            // Copying: nothing but the kernel lock is held.
            assert_eq!(lockdep::held_count(), if lockdep::ENABLED { 1 } else { 0 });
            pages.read_at(s * 512, &mut sector);
        });
        if mapping.is_none() {
            // The store faults: the fault handler fills page `to` of the
            // same file and the thread waits for it, kernel lock released.
            assert_eq!(n.page_info(from).unwrap().pins, 1);
            mapping = Some(w.fault(&n, to, SHARED_WRITE).expect("fault fill"));
        }
        w.syscall(|| mapping.as_ref().unwrap().write_at(s * 512, &sector));
    }
    if from != to {
        assert_eq!(
            w.dev.reads(),
            reads_before + 1,
            "the fault filled page {to} from disk"
        );
    }
    w.syscall(|| {
        drop(pages);
        drop(mapping);
    });
    assert_eq!(w.sync(&n), Ok(()));
}

#[test]
fn brians_scenario_read_into_a_mapping_of_another_page_of_the_same_file() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(1, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    read_into_own_mapping(&w, 0, 1);
    let mut expect = file.clone();
    expect.copy_within(0..PS, PS);
    assert_eq!(w.disk_image(0), expect);
}

#[test]
fn brians_scenario_read_into_a_mapping_of_the_same_page() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(2, 0, 2 * PS);
    w.fs.preload(&w.dev, 0, &file);
    read_into_own_mapping(&w, 1, 1);
    assert_eq!(w.disk_image(0), file);
    assert_eq!(
        w.cache.stats().write_requests,
        1,
        "the shared-written page was written back"
    );
}

#[test]
fn write_whose_source_faults_into_the_same_file_completes() {
    // write(fd, p, n) where p maps page 2 of the same file, untouched: the
    // copy into the write's leased page faults and waits for a fill.
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(3, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let (tx, rx) = channel();
    w.syscall(|| {
        n.write(
            100,
            1000,
            Completion::kernel_lock(move |r| tx.send(r).unwrap()),
        )
    });
    let mut batch = wait(&rx).unwrap();
    let src = w
        .fault(
            &n,
            2,
            Access {
                write: false,
                shared: true,
            },
        )
        .unwrap();
    let mut buf = vec![0; 1000];
    w.syscall(|| {
        src.read_at(0, &mut buf);
        batch.copy_from(&buf);
        assert_eq!(batch.commit(1000), 1000);
        drop(src);
    });
    let mut expect = file.clone();
    expect[100..1100].copy_from_slice(&file[2 * PS..2 * PS + 1000]);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), expect);
    w.sync(&n).unwrap();
    assert_eq!(w.disk_image(0), expect);
}

#[test]
fn aborted_new_page_is_refilled_for_a_waiting_reader() {
    // A whole-page writer whose copy fails (EFAULT in the kernel) commits
    // nothing; a reader that waited on its NEW page gets the disk data.
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(4, 0, 2 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let (tx, rx) = channel();
    w.syscall(|| n.write(0, PS, Completion::kernel_lock(move |r| tx.send(r).unwrap())));
    let mut batch = wait(&rx).unwrap();
    assert_eq!(n.page_info(0).unwrap().state, PageState::New);
    let (rtx, rrx) = channel();
    w.syscall(|| {
        n.read(
            0,
            PS,
            Completion::kernel_lock(move |r: Result<Pages, Errno>| {
                let p = r.unwrap();
                let mut v = vec![0; p.len()];
                p.copy_to(&mut v);
                rtx.send(v).unwrap();
            }),
        )
    });
    w.syscall(|| {
        batch.write_at(0, &[0xee; 100]);
        assert_eq!(
            batch.commit(100),
            0,
            "a partly copied NEW page must not be committed"
        );
    });
    assert_eq!(wait(&rrx), file[..PS].to_vec());
    assert_ne!(n.page_info(0).map(|i| i.state), Some(PageState::Dirty));
}

#[test]
fn shared_mapping_is_dirty_and_rewritten_on_every_sync_while_mapped() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(5, 0, 2 * PS + 300);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let m = w.fault(&n, 2, SHARED_WRITE).unwrap();
    assert!(m.writable());
    let info = n.page_info(2).unwrap();
    assert_eq!(info.state, PageState::Dirty);
    assert_eq!(info.dirty, 0b1, "only the sector inside EOF is dirty");
    w.syscall(|| m.write_at(0, &[1; 10]));
    w.sync(&n).unwrap();
    let writes = w.dev.writes();
    // A store with no fault (no PTE dirty bit): still written by the next
    // sync, since the page is mapped shared-writable.
    w.syscall(|| m.write_at(10, &[2; 10]));
    w.sync(&n).unwrap();
    assert_eq!(w.dev.writes(), writes + 1);
    let mut expect = file.clone();
    expect[2 * PS..2 * PS + 10].fill(1);
    expect[2 * PS + 10..2 * PS + 20].fill(2);
    assert_eq!(w.disk_image(0), expect);
    // Unmapped: clean pages are no longer rewritten.
    w.syscall(|| drop(m));
    w.sync(&n).unwrap();
    let writes = w.dev.writes();
    w.sync(&n).unwrap();
    assert_eq!(w.dev.writes(), writes);
    assert_eq!(n.page_info(2).unwrap().state, PageState::Active);
}

#[test]
fn private_write_fault_gets_a_read_only_page_to_copy() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(6, 0, PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let m = w
        .fault(
            &n,
            0,
            Access {
                write: true,
                shared: false,
            },
        )
        .unwrap();
    assert!(!m.writable());
    let mut cow = vec![0; PS];
    m.read_at(0, &mut cow);
    assert_eq!(cow, file);
    assert_eq!(n.page_info(0).unwrap().state, PageState::Active);
    assert_eq!(n.page_info(0).unwrap().pins, 1);
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.write_at(0, &[1]))).is_err()
    );
    w.syscall(|| drop(m));
    assert_eq!(n.page_info(0).unwrap().pins, 0);
    assert!(n.page_info(0).unwrap().on_lru);
}

#[test]
fn fault_past_eof_is_efault() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(7, 0, 100));
    let n = w.node(0);
    assert_eq!(w.fault(&n, 1, SHARED_WRITE).err(), Some(Errno::EFAULT));
    assert!(w.fault(&n, 0, SHARED_WRITE).is_ok());
}

/// Map-around pins exactly the cached, readable pages of the window (no
/// I/O, nothing past the end of file), with their content; the pins keep
/// them from eviction and go away with the `Mapped` values.
#[test]
fn map_resident_pins_cached_pages_only() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(21, 0, 6 * PS + 100);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    // Pages 1, 2 and 4 cached; 3 and 5 not; 6 is the partial last page.
    for i in [1usize, 2, 4, 6] {
        w.read(&n, (i * PS) as u64, 1).unwrap();
    }
    let reads = w.dev.reads();
    let maps = w.syscall(|| n.map_resident(1, 100));
    assert_eq!(w.dev.reads(), reads, "map-around started I/O");
    let got: Vec<u64> = maps.iter().map(|m| m.index()).collect();
    assert_eq!(got, [1, 2, 4, 6]);
    for m in &maps {
        assert!(!m.writable());
        assert_eq!(n.page_info(m.index()).unwrap().pins, 1);
        let mut head = [0u8; 64];
        m.read_at(0, &mut head);
        let at = m.index() as usize * PS;
        assert_eq!(head[..], file[at..at + 64]);
    }
    assert!(w.syscall(|| n.map_resident(7, 4)).is_empty(), "past EOF");
    assert_eq!(w.syscall(|| n.map_resident(0, 2)).len(), 1, "window of 2");
    assert_eq!(w.cache.shrink(100), 0, "a mapped-around page was evicted");
    w.syscall(|| drop(maps));
    assert_eq!(n.page_info(1).unwrap().pins, 0);
    assert_eq!(w.cache.shrink(100), 4, "unmapped pages stay pinned");
}

/// The unlocked fault path's pin (`map_cached`): only a readable page
/// inside a length the node knows, with no truncate pending; no I/O ever.
/// `Mapped::current` tells a fault, under its address-space lock, that a
/// truncate took its page away (or caps the file below it) meanwhile.
#[test]
fn map_cached_pins_only_cached_pages_inside_the_file() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(23, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    // The length is not known yet: nothing without asking the backing.
    assert!(n.map_cached(0).is_none());
    w.read(&n, 0, 1).unwrap();
    w.read(&n, 3 * PS as u64, 1).unwrap();
    let reads = w.dev.reads();
    assert!(n.map_cached(1).is_none(), "a page not cached");
    assert!(n.map_cached(4).is_none(), "past the end of file");
    let m0 = n.map_cached(0).expect("cached page 0");
    let m3 = n.map_cached(3).expect("cached page 3");
    assert_eq!(w.dev.reads(), reads, "map_cached started I/O");
    assert!(!m0.writable());
    let mut head = [0u8; 64];
    m3.read_at(0, &mut head);
    assert_eq!(head[..], file[3 * PS..3 * PS + 64]);
    assert_eq!(n.page_info(3).unwrap().pins, 1);
    assert!(m0.current() && m3.current());
    let m1 = n.map_resident(1, 1);
    assert!(m1.is_empty(), "page 1 is not cached");
    let both = [m0, m3];
    assert!(Mapped::all_current(&both));
    // Only the pagecache's part of a truncate: the cap is pending.
    w.truncate_cache(&n, 2 * PS as u64).unwrap();
    assert!(!Mapped::all_current(&both), "one of them was detached");
    assert!(Mapped::all_current(&both[..1]));
    let [m0, m3] = both;
    assert!(m0.current(), "a page the truncate keeps");
    assert!(!m3.current(), "a page the truncate detached");
    assert!(n.map_cached(0).is_none(), "a truncate is pending");
    w.fs.truncate(0, 2 * PS as u64);
    n.length_changed();
    w.syscall(|| drop(m3));
    assert_eq!(n.detached_pages(), 0);
    w.read(&n, 0, 1).unwrap();
    assert!(n.map_cached(0).is_some_and(|m| m.current()));
    assert!(n.map_cached(3).is_none(), "past the new end");
    w.syscall(|| drop(m0));
}

/// `Mapped::release_all` (an munmap's batch) leaves every page as dropping
/// each pin would: runs of one node and epoch are unpinned together, pins
/// of another node, of the same page twice, out of order, or of a page a
/// truncate detached meanwhile (whose last holder frees it) are not
/// confused with the run they sit in.
#[test]
fn release_all_unpins_like_dropping_each() {
    let w = World::new(no_readahead(), DevConfig::default(), 2);
    for f in 0..2 {
        w.fs.preload(&w.dev, f, &pattern(31 + f as u8, 0, 8 * PS));
    }
    let (a, b) = (w.node(0), w.node(1));
    for i in 0..8u64 {
        w.read(&a, i * PS as u64, 1).unwrap();
        w.read(&b, i * PS as u64, 1).unwrap();
    }
    let mut batch: Vec<Mapped> = Vec::new();
    w.syscall(|| {
        batch.extend(a.map_resident(0, 4)); // a 0..4
        batch.extend(b.map_resident(2, 3)); // b 2..5
        batch.extend(a.map_resident(4, 4)); // a 4..8: continues a's run
        batch.extend(a.map_resident(1, 2)); // a 1, 2 again
        batch.push(a.map_cached(6).expect("cached")); // a 6 again
        batch.extend(a.map_resident(5, 1)); // out of order
    });
    let pins = |n: &cairn_pagecache::Node, i: u64| n.page_info(i).unwrap().pins;
    assert_eq!((pins(&a, 6), pins(&a, 2), pins(&b, 3)), (2, 2, 1));
    // A truncate detaches a's pages 6 and 7 (pinned before it).
    w.truncate_cache(&a, 6 * PS as u64).unwrap();
    w.fs.truncate(0, 6 * PS as u64);
    a.length_changed();
    assert_eq!(a.detached_pages(), 2);
    w.syscall(|| Mapped::release_all(batch));
    for i in 0..6 {
        assert_eq!(pins(&a, i), 0, "a page {i}");
    }
    for i in 0..8 {
        assert_eq!(pins(&b, i), 0, "b page {i}");
    }
    assert_eq!(
        a.detached_pages(),
        0,
        "the last pins of detached pages freed them"
    );
    assert_eq!(w.cache.shrink(100), 14, "every page can be evicted again");
}
