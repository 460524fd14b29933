//! Reads, writes, readahead, batching, shared fills, sync and durability
//! against the simulated asynchronous device.
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Completion, Config, PAGE_SIZE, PageState};
use common::{DevConfig, World, pattern, wait};
use std::sync::mpsc::channel;

const PS: usize = PAGE_SIZE;

fn no_readahead() -> Config {
    Config {
        readahead_initial: 0,
        readahead_max: 0,
        ..Config::default()
    }
}

#[test]
fn write_then_read_back_then_durable_after_sync() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let n = w.node(0);
    let data = pattern(1, 1000, 3 * PS + 77);
    assert_eq!(w.write(&n, 1000, &data), Ok(data.len()));
    assert_eq!(w.read(&n, 1000, data.len()).unwrap(), data);
    // Bytes before the write are zeros, the file ends where the write did.
    assert_eq!(w.read(&n, 0, 1000).unwrap(), vec![0; 1000]);
    assert_eq!(
        w.read(&n, 1000 + data.len() as u64, 10).unwrap(),
        Vec::<u8>::new()
    );
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(
        w.fs.uninited(0),
        0,
        "mark_written ran for every written sector"
    );
    let mut expect = vec![0; 1000];
    expect.extend_from_slice(&data);
    assert_eq!(w.disk_image(0), expect);
    assert!(w.dev.flushes() >= 1);
    assert!(w.fs.meta_syncs.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

/// A filesystem records written extents per call (TFS logs each split
/// and merge), so writeback tells it once per contiguous run a request
/// wrote, not once per page: 32 MiB fsynced took 8,192 calls and most of
/// the fsync's CPU time in TFS before.
#[test]
fn writeback_marks_each_written_run_once_not_each_page() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let n = w.node(0);
    let data = pattern(9, 0, 64 * PS);
    assert_eq!(w.write(&n, 0, &data), Ok(data.len()));
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.fs.uninited(0), 0);
    let marks = w.fs.mark_calls.load(std::sync::atomic::Ordering::SeqCst);
    let writes = w.dev.writes();
    assert!(
        marks <= writes,
        "{marks} mark_written calls for {writes} write requests of 64 pages"
    );
    assert_eq!(w.disk_image(0), data);
}

/// The filesystem takes a mutex to answer `length`: reads, writes and
/// writeback of a node use the length it learned, growing it with the
/// node's own writes, and ask again only after `length_changed`.
#[test]
fn cached_reads_and_appends_ask_the_filesystem_for_the_length_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(6, 0, 2 * PS));
    let n = w.node(0);
    for _ in 0..50 {
        assert_eq!(w.read(&n, 0, PS).unwrap(), pattern(6, 0, PS));
    }
    let tail = pattern(7, 2 * PS as u64, 100);
    for i in 0..20u64 {
        let off = 2 * PS as u64 + i * 100;
        assert_eq!(w.write(&n, off, &tail), Ok(100));
    }
    assert_eq!(w.read(&n, 0, 8 * PS).unwrap().len(), 2 * PS + 2000);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(w.fs.length_calls.load(SeqCst), 1, "length asked again");
    // A change the filesystem makes by itself is seen after the kernel
    // says so.
    w.syscall(|| {
        w.fs.truncate(0, 100);
        n.length_changed();
    });
    assert_eq!(w.read(&n, 0, 8 * PS).unwrap(), pattern(6, 0, 100));
    assert_eq!(w.fs.length_calls.load(SeqCst), 2);
}

/// User memory readable only up to `readable` bytes (the rest a hole).
struct HoleAfter {
    data: Vec<u8>,
    readable: usize,
}

impl cairn_pagecache::RawSource for HoleAfter {
    unsafe fn copy_to(&mut self, at: usize, dst: *mut u8, len: usize) -> usize {
        let n = len.min(self.readable.saturating_sub(at));
        // SAFETY: the caller gives `dst..dst + len` writable, `n <= len`,
        // and `at + n <= readable <= data.len()`.
        unsafe { std::ptr::copy_nonoverlapping(self.data[at..].as_ptr(), dst, n) };
        n
    }
}

/// A write copies straight from its source into the leased pages, page
/// by page, and stops where the source does; what it copied is committed,
/// a NEW page copied only in part is dropped, not exposed.
#[test]
fn a_write_from_a_raw_source_stops_where_the_source_does() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let old = pattern(12, 0, 2 * PS);
    w.fs.preload(&w.dev, 0, &old);
    let n = w.node(0);
    // Pages 0-1 exist (read first); page 2 is NEW.
    assert_eq!(w.read(&n, 0, 2 * PS).unwrap(), old);
    let new = pattern(13, 100, 3 * PS);
    let batch = |readable: usize| {
        let (tx, rx) = channel();
        w.syscall(|| {
            n.write(
                100,
                3 * PS,
                cairn_pagecache::Completion::kernel_lock(move |r| tx.send(r).unwrap()),
            )
        });
        let mut b = wait(&rx).unwrap();
        let mut src = HoleAfter {
            data: new.clone(),
            readable,
        };
        w.syscall(|| {
            let copied = b.copy_in(0, &mut src, 3 * PS);
            (copied, b.commit(copied))
        })
    };
    // The hole in page 1: everything before it is written.
    assert_eq!(batch(PS + 50), (PS + 50, PS + 50));
    let mut expect = old.clone();
    expect[100..PS + 150].copy_from_slice(&new[..PS + 50]);
    assert!(
        w.read(&n, 0, 2 * PS).unwrap() == expect,
        "written bytes differ"
    );
    // The hole inside NEW page 2: that page is dropped, the rest stays.
    let in_new = 2 * PS - 100 + 10;
    assert_eq!(batch(in_new), (in_new, 2 * PS - 100));
    expect[100..2 * PS].copy_from_slice(&new[..2 * PS - 100]);
    // (The reserve made the file 100 + 3 pages long: the kernel pages the
    // source in first so a short copy is rare; dropped bytes read zeros.)
    let got = w.read(&n, 0, 3 * PS).unwrap();
    assert!(got[..2 * PS] == expect[..], "written bytes differ");
    assert!(
        got[2 * PS..].iter().all(|&b| b == 0),
        "a dropped NEW page leaked"
    );
}

#[test]
fn whole_page_writes_never_read_and_partial_writes_read_first() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(2, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    // Whole pages 1 and 2: no read at all.
    let new = pattern(3, PS as u64, 2 * PS);
    assert_eq!(w.write(&n, PS as u64, &new), Ok(2 * PS));
    assert_eq!(w.dev.reads(), 0, "a whole-page overwrite read the disk");
    // 100 bytes inside page 3: read-modify-write, one fill.
    let small = pattern(4, 3 * PS as u64 + 50, 100);
    assert_eq!(w.write(&n, 3 * PS as u64 + 50, &small), Ok(100));
    assert_eq!(w.dev.reads(), 1);
    let mut expect = file.clone();
    expect[PS..3 * PS].copy_from_slice(&new);
    expect[3 * PS + 50..3 * PS + 150].copy_from_slice(&small);
    assert_eq!(w.read(&n, 0, 4 * PS).unwrap(), expect);
    assert_eq!(
        n.page_info(3).unwrap().dirty,
        0b1,
        "only sector 0 of page 3 is dirty"
    );
    w.sync(&n).unwrap();
    assert_eq!(w.disk_image(0), expect);
}

#[test]
fn appending_past_eof_does_not_read() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.fs.preload(&w.dev, 0, &pattern(5, 0, 100));
    let n = w.node(0);
    // Page 0 holds old data in bytes 0..100: appending at 100 keeps them,
    // so that page is read; page 1 lies wholly past EOF: not read.
    let tail = pattern(6, 100, PS + 10);
    assert_eq!(w.write(&n, 100, &tail), Ok(tail.len()));
    assert_eq!(w.dev.reads(), 1);
    // A write starting past the old EOF leaves a zero gap, no read.
    let reads = w.dev.reads();
    let far = pattern(7, 5 * PS as u64 + 300, 20);
    w.write(&n, 5 * PS as u64 + 300, &far).unwrap();
    assert_eq!(w.dev.reads(), reads);
    let all = w.read(&n, 0, 6 * PS).unwrap();
    assert_eq!(&all[..100], &pattern(5, 0, 100)[..]);
    assert_eq!(&all[100..100 + tail.len()], &tail[..]);
    assert!(all[100 + tail.len()..5 * PS + 300].iter().all(|&b| b == 0));
    assert_eq!(&all[5 * PS + 300..], &far[..]);
}

#[test]
fn holes_and_uninited_extents_read_as_zeros_without_io() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let n = w.node(0);
    // Reserve-only extension: a write of 1 byte at 10 pages leaves a hole.
    w.write(&n, 10 * PS as u64, &[9]).unwrap();
    let before = w.dev.reads();
    let z = w.read(&n, 0, 10 * PS).unwrap();
    assert!(z.iter().all(|&b| b == 0));
    assert_eq!(w.dev.reads(), before, "holes were read from disk");
    assert!(w.cache.stats().zero_fills >= 10);
}

#[test]
fn uninited_sectors_read_as_zeros_whatever_the_disk_holds() {
    // Sectors a reservation hands out may hold old data (a real filesystem
    // reuses freed ones): until written, they must read as zeros.
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    w.dev.state.disk.lock().unwrap()[8 * 512..40 * 512].fill(0xee);
    let n = w.node(0);
    // A sparse file: page 0 a hole inside it, then a small write into
    // page 0 reserves one sector there (uninited, full of 0xee on disk)
    // and fills the rest of the page first.
    w.write(&n, 2 * PS as u64, &[1]).unwrap();
    w.write(&n, 300, &[2]).unwrap();
    let mut expect = vec![0; 2 * PS + 1];
    expect[300] = 2;
    expect[2 * PS] = 1;
    assert!(w.read(&n, 0, 3 * PS).unwrap() == expect, "old data read");
    w.sync(&n).unwrap();
    assert!(w.disk_image(0) == expect, "old data written back");
}

#[test]
fn enospc_is_reported_by_write() {
    let dev = DevConfig {
        sectors: 8 + 16,
        ..DevConfig::default()
    };
    let w = World::new(Config::default(), dev, 1);
    let n = w.node(0);
    assert_eq!(w.write(&n, 0, &pattern(1, 0, 2 * PS)), Ok(2 * PS));
    assert_eq!(
        w.write(&n, 2 * PS as u64, &[1]),
        Err(cairn_pagecache::Errno::ENOSPC)
    );
    // Nothing was cached for the refused write.
    assert!(n.page_info(2).is_none());
    assert_eq!(w.sync(&n), Ok(()));
}

#[test]
fn one_scatter_gather_read_per_contiguous_run() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(8, 0, 16 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 16 * PS).unwrap(), file);
    assert_eq!(
        w.dev.reads(),
        1,
        "16 contiguous pages took several requests"
    );
    assert_eq!(w.cache.stats().fills, 16);
    // Cached now: no more I/O.
    assert_eq!(w.read(&n, 4096, 5000).unwrap(), file[4096..9096].to_vec());
    assert_eq!(w.dev.reads(), 1);
}

#[test]
fn requests_respect_device_limits() {
    let dev = DevConfig {
        max_segments: 3,
        max_sectors: 16,
        ..DevConfig::default()
    };
    let w = World::new(no_readahead(), dev, 1);
    let file = pattern(9, 0, 12 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    assert_eq!(w.read(&n, 0, 12 * PS).unwrap(), file);
    // 96 sectors at most 16 per request.
    assert!(w.dev.reads() >= 6);
}

#[test]
fn readahead_grows_on_sequential_reads_and_resets_on_random() {
    let cfg = Config {
        readahead_initial: 2,
        readahead_max: 16,
        ..Config::default()
    };
    let w = World::new(cfg, DevConfig::default(), 1);
    let file = pattern(10, 0, 200 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let mut ahead = Vec::new();
    for k in 0..6u64 {
        assert_eq!(
            w.read(&n, k * PS as u64, PS).unwrap(),
            file[k as usize * PS..][..PS]
        );
        ahead.push(w.cache.stats().readahead);
        w.quiesce(&[&n]);
    }
    // Windows 2, 4, 8, 16, 16, 16 keep the frontier ahead of the reader:
    // pages 1-2, then 2-5, 3-10, 4-19, 5-20, 6-21.
    assert_eq!(ahead, vec![2, 5, 10, 19, 20, 21]);
    assert_eq!(
        w.cache.stats().misses,
        1,
        "sequential reads after the first hit readahead"
    );
    // A random read resets the window: no readahead for it.
    w.read(&n, 150 * PS as u64, 10).unwrap();
    assert_eq!(w.cache.stats().readahead, 21);
    // ...and the next sequential one starts small again.
    w.read(&n, 151 * PS as u64, 10).unwrap();
    assert_eq!(w.cache.stats().readahead, 23);
    assert_eq!(w.cache.stats().misses, 3);
}

#[test]
fn concurrent_readers_share_one_fill() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(11, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    w.dev.pause();
    let (tx, rx) = channel();
    for _ in 0..3 {
        let tx = tx.clone();
        w.syscall(|| {
            n.read(
                0,
                4 * PS,
                Completion::kernel_lock(move |r: Result<cairn_pagecache::Pages, _>| {
                    let p = r.unwrap();
                    let mut v = vec![0; p.len()];
                    p.copy_to(&mut v);
                    tx.send(v).unwrap();
                }),
            )
        });
    }
    assert_eq!(n.page_info(0).unwrap().state, PageState::Reading);
    assert_eq!(n.page_info(0).unwrap().pins, 3);
    w.dev.resume();
    for _ in 0..3 {
        assert_eq!(wait(&rx), file);
    }
    assert_eq!(w.dev.reads(), 1, "three readers, one fill");
    let s = w.cache.stats();
    assert_eq!((s.fills, s.misses), (4, 12));
}

#[test]
fn periodic_writeback_writes_only_old_pages() {
    let cfg = Config {
        writeback_age: 2,
        ..Config::default()
    };
    let w = World::new(cfg, DevConfig::default(), 1);
    let n = w.node(0);
    w.write(&n, 0, &pattern(12, 0, PS)).unwrap();
    assert_eq!(w.tick(), 0); // age 1
    w.write(&n, PS as u64, &pattern(13, 0, PS)).unwrap();
    assert_eq!(w.tick(), 1, "page 0 reached age 2"); // page 0 age 2, page 1 age 1
    w.settle();
    assert_eq!(w.tick(), 1, "then page 1");
    w.settle();
    assert_eq!(w.tick(), 0);
    // Written back: clean, and the disk has them.
    for i in 0..2 {
        let s = n.page_info(i).unwrap().state;
        assert!(matches!(s, PageState::Active | PageState::Writing), "{s:?}");
    }
    w.sync(&n).unwrap();
    assert_eq!(w.vol.dirty_nodes(), 0, "clean node left the dirty list");
    let mut expect = pattern(12, 0, PS);
    expect.extend(pattern(13, 0, PS));
    assert_eq!(w.disk_image(0), expect);
}

#[test]
fn sync_volume_writes_every_node_then_metadata_then_flush() {
    let w = World::new(Config::default(), DevConfig::default(), 3);
    let nodes: Vec<_> = (0..3).map(|f| w.node(f)).collect();
    for (f, n) in nodes.iter().enumerate() {
        w.write(n, f as u64 * 100, &pattern(f as u8, 0, 3 * PS))
            .unwrap();
    }
    assert_eq!(w.vol.dirty_nodes(), 3);
    let flushes = w.dev.flushes();
    assert_eq!(w.sync_volume(), Ok(()));
    assert_eq!(w.dev.flushes(), flushes + 1);
    for (f, n) in nodes.iter().enumerate() {
        for (_, info) in n.page_infos() {
            assert_eq!(info.state, PageState::Active);
        }
        let mut expect = vec![0; f * 100];
        expect.extend(pattern(f as u8, 0, 3 * PS));
        assert_eq!(w.disk_image(f), expect);
    }
}

#[test]
fn sync_waits_for_a_writer_between_prepare_and_commit() {
    let w = World::new(Config::default(), DevConfig::default(), 1);
    let n = w.node(0);
    w.write(&n, 0, &pattern(1, 0, PS)).unwrap();
    // A second write to the same page is prepared (leased) but not yet
    // committed: its copy is "blocked".
    let (tx, rx) = channel();
    w.syscall(|| {
        n.write(
            10,
            10,
            Completion::kernel_lock(move |r| tx.send(r).unwrap()),
        )
    });
    let mut batch = wait(&rx).unwrap();
    let (stx, srx) = channel();
    w.syscall(|| n.sync(Completion::kernel_lock(move |r| stx.send(r).unwrap())));
    // Pass 1 could not take the leased page: it is still DIRTY, and the
    // sync waits for the lease instead of completing without it.
    assert_eq!(n.page_info(0).unwrap().state, PageState::Dirty);
    assert_eq!(n.page_info(0).unwrap().leases, 1);
    w.settle();
    assert!(
        srx.try_recv().is_err(),
        "sync completed around a leased page"
    );
    // ...and the earlier write reaches the disk once the writer commits.
    w.syscall(|| {
        batch.copy_from(&[7; 10]);
        batch.commit(10)
    });
    assert_eq!(wait(&srx), Ok(()));
    let mut expect = pattern(1, 0, PS);
    expect[10..20].fill(7);
    assert_eq!(w.disk_image(0), expect);
}

/// `Pages::copy_out` copies straight from the frames, across page
/// boundaries from an unaligned offset, and stops exactly where the
/// destination stops being reachable.
#[test]
fn copy_out_goes_straight_to_the_destination_and_stops_short() {
    use cairn_pagecache::frame::host::BoundedBuffer;
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(12, 0, 3 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    let start = 100u64;
    let len = 2 * PS + 50;
    for reachable in [len, PS + 7, PS - 100, 0] {
        let (tx, rx) = channel();
        w.syscall(|| {
            n.read(
                start,
                len,
                Completion::kernel_lock(move |r| tx.send(r).unwrap()),
            )
        });
        let pages = wait(&rx).unwrap();
        let got = w.syscall(|| {
            let mut dst = BoundedBuffer::new(reachable);
            let got = pages.copy_out(&mut dst, 0);
            drop(pages);
            assert_eq!(
                dst.bytes[..got],
                file[start as usize..start as usize + got],
                "bytes copied with {reachable} reachable"
            );
            got
        });
        assert_eq!(got, reachable, "copy_out stopped at {got}, not {reachable}");
    }
    assert_eq!(n.page_info(0).unwrap().pins, 0, "copy_out left pins");
}

/// The fast path returns cached pages at once and never makes a
/// completion; a range with one page missing goes the asynchronous way.
#[test]
fn read_or_complete_returns_cached_pages_at_once() {
    let w = World::new(no_readahead(), DevConfig::default(), 1);
    let file = pattern(13, 0, 4 * PS);
    w.fs.preload(&w.dev, 0, &file);
    let n = w.node(0);
    w.read(&n, 0, 2 * PS).unwrap();
    let fast = w.syscall(|| {
        n.read_or_complete(10, 2 * PS - 10, || {
            panic!("a completion was made for cached pages")
        })
    });
    let pages = fast.expect("cached pages were not returned at once");
    let mut v = vec![0; pages.len()];
    w.syscall(|| {
        pages.copy_to(&mut v);
        drop(pages);
    });
    assert_eq!(v, file[10..2 * PS]);
    assert_eq!(n.page_info(0).unwrap().pins, 0);
    // Page 2 is not cached: the completion gets the pages after the fill.
    let (tx, rx) = channel();
    let slow = w.syscall(|| {
        n.read_or_complete(PS as u64, 2 * PS, || {
            Completion::kernel_lock(move |r| tx.send(r).unwrap())
        })
    });
    assert!(slow.is_none(), "a missing page was returned at once");
    let pages = wait(&rx).unwrap();
    let mut v = vec![0; pages.len()];
    w.syscall(|| {
        pages.copy_to(&mut v);
        drop(pages);
    });
    assert_eq!(v, file[PS..3 * PS]);
}

#[test]
fn nodes_are_counted_while_they_exist() {
    let w = World::new(no_readahead(), DevConfig::default(), 2);
    let before = w.cache.nodes();
    let a = w.node(0);
    let b = w.node(1);
    assert_eq!(w.cache.nodes(), before + 2);
    // (A node with pages written may live on after its last user: the
    // dirty list and completions hold it; only the count is checked here.)
    w.syscall(|| drop(a));
    assert_eq!(w.cache.nodes(), before + 1);
    w.syscall(|| drop(b));
    assert_eq!(w.cache.nodes(), before);
}

/// The lockless overwrite (`Node::write_cached`, the syscalls' path
/// without the kernel lock): only pages cached ACTIVE or DIRTY whose
/// sectors a write reserved, inside the file, with no truncate pending;
/// an ACTIVE page only when the caller may dirty more. Its commit dirties
/// exactly as a locked write's, so writeback takes the new bytes (a
/// commit that did not re-dirty the clean page loses them on disk).
#[test]
fn lockless_overwrite_takes_only_cached_reserved_pages_and_redirties() {
    use cairn_sync::Context;
    use cairn_sync::cpu::host::set_context;
    let w = World::new(no_readahead(), DevConfig::default(), 2);
    let n = w.node(0);
    let data = pattern(1, 0, 4 * PS);
    assert_eq!(w.write(&n, 0, &data), Ok(data.len()));
    let lockless = |off: u64, bytes: &[u8], may_dirty: bool| {
        set_context(Context::RunLoop);
        let r = n.write_cached(
            off,
            bytes.len(),
            || may_dirty,
            |b| {
                b.write_at(0, bytes);
                bytes.len()
            },
        );
        set_context(Context::KernelLock);
        r
    };
    let mut expect = data.clone();
    let new = pattern(2, 100, 2 * PS);
    assert_eq!(lockless(100, &new, false), Some(new.len()), "dirty pages");
    expect[100..100 + new.len()].copy_from_slice(&new);
    // Growth and pages past the end need the locked path.
    assert_eq!(lockless(4 * PS as u64 - 10, &[1; 20], true), None);
    assert_eq!(lockless(5 * PS as u64, &[1; 20], true), None);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(n.page_info(1).unwrap().state, PageState::Active);
    // Clean now: dirtying it is the caller's throttle decision.
    let again = pattern(3, PS as u64, 100);
    assert_eq!(lockless(PS as u64, &again, false), None);
    assert_eq!(lockless(PS as u64, &again, true), Some(100));
    expect[PS..PS + 100].copy_from_slice(&again);
    assert_eq!(n.page_info(1).unwrap().state, PageState::Dirty);
    assert_eq!(w.sync(&n), Ok(()));
    assert_eq!(
        w.disk_image(0),
        expect,
        "the lockless overwrite reached the disk"
    );
    // Pages filled from disk know of no reservation: the first write
    // takes the locked path.
    w.fs.preload(&w.dev, 1, &pattern(4, 0, 2 * PS));
    let m = w.node(1);
    assert_eq!(w.read(&m, 0, 2 * PS).unwrap(), pattern(4, 0, 2 * PS));
    set_context(Context::RunLoop);
    assert!(
        m.write_cached(0, 10, || true, |_| 0).is_none(),
        "filled, not reserved"
    );
    set_context(Context::KernelLock);
    // A pending truncate refuses it.
    assert_eq!(w.write(&m, 0, &[7; 10]), Ok(10));
    set_context(Context::RunLoop);
    assert!(m.write_cached(0, 10, || true, |_| 0).is_some());
    set_context(Context::KernelLock);
    assert_eq!(w.truncate_cache(&m, 5), Ok(()));
    set_context(Context::RunLoop);
    assert!(
        m.write_cached(0, 4, || true, |_| 0).is_none(),
        "truncate pending"
    );
    set_context(Context::KernelLock);
}
