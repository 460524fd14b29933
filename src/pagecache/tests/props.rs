//! Property test: random reads, writes, shared-mapping stores, truncates
//! (some with a page past the new end held by a read or a mapping), syncs,
//! writeback ticks, shrinks and invalidations over several files, with a
//! memory limit of a few pages so that eviction runs all the time, against
//! a plain `Vec<u8>` model per file (read-after-write); then a sync of the
//! volume and a fresh cache over the same disk must read back the model
//! (durability). The test filesystem reuses the sectors truncates free, so
//! a write to a freed sector would corrupt another file; the device also
//! counts writes that reach a sector while it is free.
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Access, Completion, Config, Errno, PAGE_SIZE, PageState, Pages};
use common::{DevConfig, World, wait};
use proptest::prelude::*;
use std::sync::mpsc::channel;

const FILES: usize = 3;
const SPAN: u64 = 12 * PAGE_SIZE as u64;

#[derive(Clone, Debug)]
enum Op {
    Write {
        file: usize,
        off: u64,
        len: usize,
        seed: u8,
    },
    Read {
        file: usize,
        off: u64,
        len: usize,
    },
    Store {
        file: usize,
        page: u64,
        at: u16,
        byte: u8,
    },
    Sync {
        file: usize,
    },
    SyncVolume,
    Tick,
    Shrink(usize),
    /// `ftruncate`; with `hold`, page `hold` (if it lies past the new end)
    /// is first pinned by a read (`Hold::Read`) or a mapping, and checked
    /// to still hold the old bytes after the truncate. `deferred`: the
    /// filesystem is told only after the pagecache's truncate completed,
    /// with clean pages dropped and the file read in between.
    Truncate {
        file: usize,
        len: u64,
        hold: Option<(u64, Hold)>,
        deferred: bool,
    },
    Invalidate {
        file: usize,
    },
}

#[derive(Clone, Copy, Debug)]
enum Hold {
    Read,
    MapPrivate,
    MapShared,
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0..FILES;
    prop_oneof![
        6 => (file.clone(), 0..SPAN, 1..3 * PAGE_SIZE, any::<u8>())
            .prop_map(|(file, off, len, seed)| Op::Write { file, off, len, seed }),
        6 => (file.clone(), 0..SPAN + 4096, 1..4 * PAGE_SIZE)
            .prop_map(|(file, off, len)| Op::Read { file, off, len }),
        2 => (file.clone(), 0..SPAN / PAGE_SIZE as u64, 0..PAGE_SIZE as u16, any::<u8>())
            .prop_map(|(file, page, at, byte)| Op::Store { file, page, at, byte }),
        1 => file.clone().prop_map(|file| Op::Sync { file }),
        1 => Just(Op::SyncVolume),
        1 => Just(Op::Tick),
        1 => (0..8usize).prop_map(Op::Shrink),
        2 => (file.clone(), 0..SPAN + 4096, any::<bool>())
            .prop_map(|(file, len, deferred)| Op::Truncate { file, len, hold: None, deferred }),
        1 => (
            file.clone(),
            0..SPAN,
            0..SPAN / PAGE_SIZE as u64,
            prop_oneof![Just(Hold::Read), Just(Hold::MapPrivate), Just(Hold::MapShared)],
        )
            .prop_map(|(file, len, page, how)| Op::Truncate {
                file,
                len,
                hold: Some((page, how)),
                deferred: false,
            }),
        1 => file.prop_map(|file| Op::Invalidate { file }),
    ]
}

/// What holds a page across a truncate.
enum Held {
    Read(Pages),
    Map(cairn_pagecache::Mapped),
}

impl Held {
    fn read(&self, dst: &mut [u8]) {
        match self {
            Held::Read(p) => p.read_at(0, dst),
            Held::Map(m) => m.read_at(0, dst),
        }
    }
}

fn bytes(seed: u8, off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((off + i) as u8) ^ seed.wrapping_mul(29).wrapping_add(1))
        .collect()
}

fn run(ops: &[Op], seed: u64) {
    let cfg = Config {
        limit_pages: 6,
        writeback_age: 1,
        readahead_initial: 2,
        readahead_max: 8,
    };
    let dev = DevConfig {
        seed,
        max_segments: 4,
        max_sectors: 24,
        ..DevConfig::default()
    };
    let w = World::with_frames(cfg, dev, FILES, 256);
    let nodes: Vec<_> = (0..FILES).map(|f| w.node(f)).collect();
    let mut model: Vec<Vec<u8>> = vec![Vec::new(); FILES];
    for op in ops {
        match *op {
            Op::Write {
                file,
                off,
                len,
                seed,
            } => {
                let data = bytes(seed, off, len);
                assert_eq!(w.write(&nodes[file], off, &data), Ok(len));
                let m = &mut model[file];
                let end = off as usize + len;
                if m.len() < end {
                    m.resize(end, 0);
                }
                m[off as usize..end].copy_from_slice(&data);
            }
            Op::Read { file, off, len } => {
                let got = w.read(&nodes[file], off, len).expect("read");
                let m = &model[file];
                let s = (off as usize).min(m.len());
                let e = (off as usize + len).min(m.len());
                assert_eq!(got, m[s..e], "read {len} at {off} of file {file}");
            }
            Op::Store {
                file,
                page,
                at,
                byte,
            } => {
                let start = page * PAGE_SIZE as u64;
                let len = model[file].len() as u64;
                let shared = Access {
                    write: true,
                    shared: true,
                };
                let r = w.fault(&nodes[file], page, shared);
                if start >= len {
                    assert_eq!(r.err(), Some(Errno::EFAULT));
                    continue;
                }
                let m = r.expect("fault");
                // Stores inside the file only (past EOF they never persist).
                let at = u64::from(at) % (len - start).min(PAGE_SIZE as u64);
                w.syscall(|| {
                    m.write_at(at as usize, &[byte]);
                    drop(m);
                });
                model[file][(start + at) as usize] = byte;
            }
            Op::Sync { file } => assert_eq!(w.sync(&nodes[file]), Ok(())),
            Op::SyncVolume => assert_eq!(w.sync_volume(), Ok(())),
            Op::Tick => {
                w.tick();
            }
            Op::Shrink(n) => {
                w.cache.shrink(n);
            }
            Op::Truncate {
                file,
                len,
                hold,
                deferred,
            } => {
                let n = &nodes[file];
                let m = &mut model[file];
                let keep = len.div_ceil(PAGE_SIZE as u64);
                let held = hold
                    .filter(|&(page, _)| page >= keep && page * (PAGE_SIZE as u64) < m.len() as u64)
                    .map(|(page, how)| {
                        let start = (page * PAGE_SIZE as u64) as usize;
                        let old = m[start..m.len().min(start + PAGE_SIZE)].to_vec();
                        let h = match how {
                            Hold::Read => {
                                let (tx, rx) = channel();
                                w.syscall(|| {
                                    n.read(
                                        start as u64,
                                        PAGE_SIZE,
                                        Completion::kernel_lock(move |r| tx.send(r).unwrap()),
                                    )
                                });
                                Held::Read(wait(&rx).expect("read"))
                            }
                            Hold::MapPrivate | Hold::MapShared => {
                                let access = Access {
                                    write: matches!(how, Hold::MapShared),
                                    shared: matches!(how, Hold::MapShared),
                                };
                                Held::Map(w.fault(n, page, access).expect("fault"))
                            }
                        };
                        (h, old)
                    });
                if deferred {
                    assert_eq!(w.truncate_cache(n, len), Ok(()));
                    let old_len = m.len();
                    m.resize(len as usize, 0);
                    w.syscall(|| n.invalidate_clean());
                    // Until the filesystem acts, the file reads as the new
                    // length, or the old one where it grows.
                    let got = w.read(n, 0, SPAN as usize + 8192).expect("read");
                    assert!(got == m[..m.len().min(old_len)], "read in the window");
                    w.syscall(|| {
                        w.fs.truncate(file, len);
                        n.length_changed();
                    });
                } else {
                    assert_eq!(w.truncate(n, file, len), Ok(()));
                    m.resize(len as usize, 0);
                }
                // The page holding the end of file has zeros past it (a
                // mapping sees the whole page), so growing reads zeros.
                let tail = len as usize % PAGE_SIZE;
                if tail != 0 {
                    let private = Access {
                        write: false,
                        shared: false,
                    };
                    let mp = w.fault(n, len / PAGE_SIZE as u64, private).expect("fault");
                    let mut page = vec![0; PAGE_SIZE];
                    w.syscall(|| {
                        mp.read_at(0, &mut page);
                        drop(mp);
                    });
                    assert!(
                        page[tail..].iter().all(|&b| b == 0),
                        "old bytes past the end of file are cached"
                    );
                }
                if let Some((h, old)) = held {
                    let mut got = vec![0; old.len()];
                    w.syscall(|| h.read(&mut got));
                    assert!(got == old, "a held page changed under truncate");
                    assert!(n.detached_pages() > 0);
                    w.syscall(|| {
                        // A store through a detached shared mapping goes
                        // nowhere.
                        if let Held::Map(mp) = &h {
                            if mp.writable() {
                                mp.write_at(0, &[0x5a]);
                            }
                        }
                        drop(h);
                    });
                }
            }
            Op::Invalidate { file } => {
                w.syscall(|| nodes[file].invalidate_clean());
            }
        }
    }
    // Quiet: nothing pinned or leased, the LRU is exactly the clean pages.
    let refs: Vec<_> = nodes.iter().collect();
    w.quiesce(&refs);
    let mut active = 0;
    for n in &nodes {
        for (i, info) in n.page_infos() {
            assert_eq!((info.pins, info.leases), (0, 0), "page {i} still held");
            assert_eq!(
                info.on_lru,
                info.state == PageState::Active,
                "page {i}: {info:?}"
            );
            active += usize::from(info.state == PageState::Active);
        }
    }
    assert_eq!(w.cache.lru_len(), active);
    for n in &nodes {
        assert_eq!(n.detached_pages(), 0);
    }
    assert_eq!(w.sync_volume(), Ok(()));
    assert_eq!(w.stray_writes(), 0, "a write reached a freed sector");
    for (f, m) in model.iter().enumerate() {
        assert_eq!(w.fs.len(f), m.len() as u64);
        assert_eq!(&w.disk_image(f), m, "file {f} after remount");
    }
    // Reading back through the tiny cache once more, after all the churn.
    for (f, m) in model.iter().enumerate() {
        assert_eq!(&w.read(&nodes[f], 0, m.len()).unwrap(), m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn read_after_write_and_durability_under_eviction(
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<u64>(),
    ) {
        run(&ops, seed);
    }
}
