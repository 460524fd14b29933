//! Memory a mounted filesystem keeps does not grow with the operations it
//! has served: create (pinned as the kernel pins an open file), optional
//! write and sync, unlink, release — a program's create/write/close/unlink
//! loop. Counted by a global allocator that tracks live allocations.
//!
//! What may grow is the log's dictionary (an index per entity the current
//! log chain names), until compaction rewrites the chain after
//! `COMPACT_OBSOLETE` obsolete entries: so the live count must level off —
//! the second half of a long run may peak no higher than the first half.

use cairn_tfs::{Filesystem, FormatOptions, MemDevice};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged (only counted).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn cycles(fs: &mut Filesystem<MemDevice>, n: usize, write: bool, sync: bool) {
    let root = fs.root();
    for i in 0..n {
        let f = fs.create(root, b"soak-a").unwrap();
        fs.hold(f);
        if write {
            fs.write(f, 0, &[i as u8; 8192]).unwrap();
        }
        if sync {
            fs.sync().unwrap();
        }
        fs.unlink(root, b"soak-a").unwrap();
        fs.release(f);
    }
    fs.sync().unwrap();
}

/// Live allocations and bytes after each of `rounds` rounds of `per`
/// cycles, less those after a warm-up.
fn samples(write: bool, sync: bool, rounds: usize, per: usize) -> Vec<(isize, isize)> {
    let opts = FormatOptions {
        label: b"t".to_vec(),
        uuid: [1; 16],
        nanos_padding: false,
    };
    let mut fs = Filesystem::format(MemDevice::new(65536), &opts, None).unwrap();
    cycles(&mut fs, 200, write, sync);
    let before = (
        LIVE.load(Ordering::Relaxed),
        LIVE_BYTES.load(Ordering::Relaxed),
    );
    (0..rounds)
        .map(|_| {
            cycles(&mut fs, per, write, sync);
            (
                LIVE.load(Ordering::Relaxed) - before.0,
                LIVE_BYTES.load(Ordering::Relaxed) - before.1,
            )
        })
        .collect()
}

#[test]
fn create_unlink_cycles_level_off() {
    for (write, sync) in [(false, false), (true, false), (false, true), (true, true)] {
        let rounds = 16;
        let v = samples(write, sync, rounds, 2000);
        eprintln!(
            "write={write} sync={sync}: live (allocations, bytes) after each 2000 cycles {v:?}"
        );
        let half = v.len() / 2;
        let peak = |s: &[(isize, isize)]| {
            (
                s.iter().map(|x| x.0).max().unwrap(),
                s.iter().map(|x| x.1).max().unwrap(),
            )
        };
        let (first, second) = (peak(&v[..half]), peak(&v[half..]));
        assert!(
            second.0 <= first.0 + 64 && second.1 <= first.1 + 4096,
            "write={write} sync={sync}: memory kept grows with the cycles: {v:?}"
        );
    }
}
