//! Pagecache throughput on the host, printed only (never asserted):
//!
//! * `cached_read` / `cached_write`: 256 KiB reads (copy out of pinned
//!   pages; through a completion, and through the `read_or_complete`
//!   fast path) and writes (lease, copy in, commit) of a fully cached 16 MiB
//!   file, next to a plain memcpy of the same size in the same run;
//! * `sequential_miss`: the whole file read sequentially in 64 KiB reads
//!   from a cold cache (readahead on), next to direct device reads of the
//!   same 64 KiB chunks into frames and copied out, one at a time, on the
//!   same in-memory device (FIFO, no delays).
//!
//! Run: `cargo bench -p cairn-pagecache --bench pagecache`

#[path = "../tests/common/mod.rs"]
mod common;

use cairn_block::{Request, Segment};
use cairn_pagecache::{Completion, Config, FrameAllocator, PAGE_SIZE, Pages, WriteBatch};
use cairn_sync::Context;
use cairn_sync::cpu::host::set_context;
use common::{DevConfig, World, pattern};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FILE: usize = 16 << 20;
const CHUNK: usize = 256 << 10;
const MISS_CHUNK: usize = 64 << 10;

/// A page-aligned 4 KiB buffer, laid out as a frame is.
#[repr(align(4096))]
struct AlignedPage([u8; PAGE_SIZE]);

fn world(latency: Duration) -> (World, Arc<cairn_pagecache::Node>) {
    let dev = DevConfig {
        random: false,
        latency,
        sectors: (FILE / 512) as u64 + 64,
        max_segments: 128,
        max_sectors: 1024,
        ..DevConfig::default()
    };
    let cfg = Config {
        readahead_max: 128,
        ..Config::default()
    };
    let w = World::new(cfg, dev, 1);
    w.fs.preload(&w.dev, 0, &pattern(1, 0, FILE));
    let n = w.node(0);
    set_context(Context::KernelLock);
    (w, n)
}

fn read_pages(n: &Arc<cairn_pagecache::Node>, off: u64, len: usize) -> Pages {
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    n.read(
        off,
        len,
        Completion::kernel_lock(move |r| {
            *s.lock().unwrap() = Some(r);
        }),
    );
    let r = slot.lock().unwrap().take();
    r.expect("cached read completes inline").expect("read")
}

fn cached(c: &mut Criterion) {
    let (w, n) = world(Duration::ZERO);
    let mut dst = vec![0u8; CHUNK];
    // Warm the cache.
    for off in (0..FILE).step_by(CHUNK) {
        w.read(&n, off as u64, CHUNK).unwrap();
    }
    w.quiesce(&[&n]);
    set_context(Context::KernelLock);
    let src = pattern(1, 0, FILE);
    let mut g = c.benchmark_group("cached_read");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut off = 0;
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(&src[off..off + CHUNK]);
            black_box(&dst);
            off = (off + CHUNK) % FILE;
        })
    });
    // The same copy out of separately allocated, page-aligned 4 KiB
    // buffers spread over as much memory as the cached file, as frames
    // are: what the frames' layout costs (page-aligned sources alias in
    // the L1 cache, which an unaligned contiguous memcpy never meets).
    let scattered: Vec<Box<AlignedPage>> = (0..FILE / PAGE_SIZE)
        .map(|k| {
            let mut page = Box::new(AlignedPage([0; PAGE_SIZE]));
            page.0
                .copy_from_slice(&src[k * PAGE_SIZE..(k + 1) * PAGE_SIZE]);
            page
        })
        .collect();
    let mut off = 0;
    g.bench_function("memcpy_4k_scattered", |b| {
        b.iter(|| {
            let first = off / PAGE_SIZE;
            for (k, page) in scattered[first..first + CHUNK / PAGE_SIZE]
                .iter()
                .enumerate()
            {
                dst[k * PAGE_SIZE..(k + 1) * PAGE_SIZE].copy_from_slice(&page.0);
            }
            black_box(&dst);
            off = (off + CHUNK) % FILE;
        })
    });
    let mut off = 0;
    g.bench_function("pagecache", |b| {
        b.iter(|| {
            let p = read_pages(&n, off as u64, CHUNK);
            p.copy_to(&mut dst);
            black_box(&dst);
            drop(p);
            off = (off + CHUNK) % FILE;
        })
    });
    let mut off = 0;
    g.bench_function("pagecache_read_or_complete", |b| {
        b.iter(|| {
            let p = n
                .read_or_complete(off as u64, CHUNK, || panic!("cached range not ready"))
                .expect("cached pages at once");
            p.copy_to(&mut dst);
            black_box(&dst);
            drop(p);
            off = (off + CHUNK) % FILE;
        })
    });
    g.finish();

    let mut g = c.benchmark_group("cached_write");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut buf = vec![0u8; FILE];
    let mut off = 0;
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            buf[off..off + CHUNK].copy_from_slice(&src[off..off + CHUNK]);
            black_box(&buf);
            off = (off + CHUNK) % FILE;
        })
    });
    let mut off = 0;
    g.bench_function("pagecache", |b| {
        b.iter(|| {
            let slot = Arc::new(Mutex::new(None));
            let s = slot.clone();
            n.write(
                off as u64,
                CHUNK,
                Completion::kernel_lock(move |r: Result<WriteBatch, _>| {
                    *s.lock().unwrap() = Some(r);
                }),
            );
            let mut batch = slot.lock().unwrap().take().unwrap().unwrap();
            let copied = batch.copy_from(&src[off..off + CHUNK]);
            black_box(batch.commit(copied));
            off = (off + CHUNK) % FILE;
        })
    });
    g.finish();
}

fn sequential_miss_on(c: &mut Criterion, group: &str, latency: Duration) {
    let (w, n) = world(latency);
    let mut dst = vec![0u8; MISS_CHUNK];
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(FILE as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("pagecache_readahead", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                w.quiesce(&[&n]);
                set_context(Context::KernelLock);
                w.cache.shrink(usize::MAX);
                assert_eq!(w.cache.resident(), 0, "cold cache");
                let t = Instant::now();
                for off in (0..FILE).step_by(MISS_CHUNK) {
                    let (tx, rx) = channel();
                    n.read(
                        off as u64,
                        MISS_CHUNK,
                        Completion::bh(move |r: Result<Pages, _>| {
                            tx.send(r).unwrap();
                        }),
                    );
                    let p = rx.recv().unwrap().unwrap();
                    p.copy_to(&mut dst);
                    black_box(&dst);
                }
                total += t.elapsed();
            }
            total
        })
    });
    // Direct: the same chunks read into 16 frames, one request at a time.
    let frames: Vec<_> = (0..MISS_CHUNK / PAGE_SIZE)
        .map(|_| w.frames.alloc().expect("frame"))
        .collect();
    let segs: Vec<Segment> = frames
        .iter()
        .map(|f| Segment {
            phys: f.phys(),
            len: PAGE_SIZE as u32,
        })
        .collect();
    let data_start = w.vol.storage().first_sector() + 8;
    g.bench_function("direct_device", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                for off in (0..FILE).step_by(MISS_CHUNK) {
                    let (tx, rx) = channel();
                    let sector = data_start + (off / 512) as u64;
                    w.vol
                        .storage()
                        .submit(Request::read(sector, &segs, move |s| {
                            tx.send(s).unwrap();
                        }));
                    assert!(rx.recv().unwrap().is_ok());
                    for (k, s) in segs.iter().enumerate() {
                        w.frames
                            .dma_read(s.phys, &mut dst[k * PAGE_SIZE..(k + 1) * PAGE_SIZE]);
                    }
                    black_box(&dst);
                }
            }
            t.elapsed()
        })
    });
    g.finish();
    for f in frames {
        w.frames.free(f);
    }
}

fn sequential_miss(c: &mut Criterion) {
    // An in-memory device: completes at once (CPU-bound; measures the
    // pagecache's per-page overhead, nothing to overlap).
    sequential_miss_on(c, "sequential_miss", Duration::ZERO);
    // An SSD-like device: 100 us per request, any number in flight
    // (what readahead is for).
    sequential_miss_on(c, "sequential_miss_100us", Duration::from_micros(100));
}

criterion_group!(benches, cached, sequential_miss);
criterion_main!(benches);
