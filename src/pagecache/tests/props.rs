//! Property test: random reads, writes, shared-mapping stores, syncs,
//! writeback ticks and shrinks over several files, with a memory limit of a
//! few pages so that eviction runs all the time, against a plain `Vec<u8>`
//! model per file (read-after-write); then a sync of the volume and a fresh
//! cache over the same disk must read back the model (durability).
#![cfg(not(loom))]

mod common;

use cairn_pagecache::{Access, Config, Errno, PAGE_SIZE, PageState};
use common::{DevConfig, World};
use proptest::prelude::*;

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
        1 => file.prop_map(|file| Op::Sync { file }),
        1 => Just(Op::SyncVolume),
        1 => Just(Op::Tick),
        1 => (0..8usize).prop_map(Op::Shrink),
    ]
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
    assert_eq!(w.sync_volume(), Ok(()));
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
