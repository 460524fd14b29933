//! Host harness for the pagecache tests and benchmarks.
//!
//! * [`SimDevice`]: a `cairn_block::BlockDevice` whose requests go to a
//!   device thread running in bh context (`set_context(Context::Bh)`). It
//!   completes them in random order after random short delays (or in
//!   order, at once, for benchmarks), emulates DMA by copying between a
//!   `Vec<u8>` disk and frame memory (physical address == host address,
//!   checked against the live frames), counts requests, can be paused, and
//!   injects read, write and flush errors.
//! * [`HostRunQueue`]: a thread in kernel-lock context that takes the test
//!   kernel lock around each deferred item.
//! * [`TestFs`] / [`FileBacking`]: a tiny filesystem: per-file sector maps
//!   with uninited extents, a bump allocator with a capacity (ENOSPC), and
//!   truncate, whose freed sectors are reused first by later allocations
//!   (so a stray write to a freed sector corrupts another file) and are
//!   watched by the device while free ([`DevState::stray_writes`]).
//! * [`World`]: all of it wired up, with blocking helpers that behave like
//!   syscall threads: hold the kernel lock while calling the pagecache,
//!   release it while waiting.
#![allow(dead_code)]

use cairn_block::{BlockDevice, DeviceInfo, Op, Request, SECTOR_SIZE, Status, Volume};
use cairn_pagecache::frame::host::HostFrames;
use cairn_pagecache::{
    Access, Backing, Completion, Config, Errno, Extent, Mapped, Mapping, MetadataSync, Node,
    PageCache, RunQueueHook, VolumeCache,
};
use cairn_sync::cpu::host::set_context;
use cairn_sync::{Context, KernelLock};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A small deterministic PRNG (xorshift64*).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[derive(Clone, Copy)]
pub struct DevConfig {
    /// Complete in random order after random delays (else FIFO at once).
    pub random: bool,
    pub seed: u64,
    pub sectors: u64,
    pub max_segments: u32,
    pub max_sectors: u32,
    /// Non-zero: every request completes this long after its submission
    /// (FIFO by due time, any number in flight): an SSD-like device.
    pub latency: Duration,
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig {
            random: true,
            seed: 1,
            sectors: 1 << 14,
            max_segments: 32,
            max_sectors: 256,
            latency: Duration::ZERO,
        }
    }
}

#[derive(Default)]
pub struct DevCounters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub read_sectors: AtomicU64,
    pub write_sectors: AtomicU64,
}

pub struct DevState {
    pub disk: Mutex<Vec<u8>>,
    pub frames: Arc<HostFrames>,
    /// Sectors the filesystem freed and has not reallocated: no write may
    /// reach them.
    pub unowned: Mutex<BTreeSet<u64>>,
    /// Writes that touched an unowned sector.
    pub stray_writes: AtomicU64,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
    pub fail_flush: AtomicBool,
    /// Sectors whose reads / writes fail: any request covering one fails.
    pub bad_reads: Mutex<BTreeSet<u64>>,
    pub bad_writes: Mutex<BTreeSet<u64>>,
    pub counters: DevCounters,
    paused: Mutex<bool>,
    resume: Condvar,
}

pub struct SimDevice {
    info: DeviceInfo,
    latency: Duration,
    tx: Mutex<Sender<(Request, std::time::Instant)>>,
    pub state: Arc<DevState>,
}

impl SimDevice {
    pub fn new(cfg: DevConfig, frames: Arc<HostFrames>) -> Arc<SimDevice> {
        let (tx, rx) = channel::<(Request, std::time::Instant)>();
        let state = Arc::new(DevState {
            disk: Mutex::new(vec![0; (cfg.sectors * SECTOR_SIZE as u64) as usize]),
            frames,
            unowned: Mutex::new(BTreeSet::new()),
            stray_writes: AtomicU64::new(0),
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
            fail_flush: AtomicBool::new(false),
            bad_reads: Mutex::new(BTreeSet::new()),
            bad_writes: Mutex::new(BTreeSet::new()),
            counters: DevCounters::default(),
            paused: Mutex::new(false),
            resume: Condvar::new(),
        });
        let st = state.clone();
        std::thread::Builder::new()
            .name("sim-device".into())
            .spawn(move || device_thread(cfg, st, rx))
            .expect("device thread");
        Arc::new(SimDevice {
            latency: cfg.latency,
            info: DeviceInfo {
                name: "sim0".into(),
                model: "simulated".into(),
                sectors: cfg.sectors,
                queue_depth: 64,
                max_segments: cfg.max_segments,
                max_sectors: cfg.max_sectors,
                flush: true,
            },
            tx: Mutex::new(tx),
            state,
        })
    }

    /// Holds completions back until [`SimDevice::resume`].
    pub fn pause(&self) {
        *self.state.paused.lock().unwrap() = true;
    }

    pub fn resume(&self) {
        *self.state.paused.lock().unwrap() = false;
        self.state.resume.notify_all();
    }

    pub fn reads(&self) -> u64 {
        self.state.counters.reads.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> u64 {
        self.state.counters.writes.load(Ordering::SeqCst)
    }
    pub fn flushes(&self) -> u64 {
        self.state.counters.flushes.load(Ordering::SeqCst)
    }
}

impl BlockDevice for SimDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn submit(&self, request: Request) {
        let due = std::time::Instant::now() + self.latency;
        self.tx
            .lock()
            .unwrap()
            .send((request, due))
            .expect("device thread gone");
    }
}

fn device_thread(cfg: DevConfig, st: Arc<DevState>, rx: Receiver<(Request, std::time::Instant)>) {
    set_context(Context::Bh);
    let mut rng = Rng::new(cfg.seed);
    let mut pending: Vec<(Request, std::time::Instant)> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(r) => pending.push(r),
                Err(_) => return,
            }
        }
        {
            let mut paused = st.paused.lock().unwrap();
            while *paused {
                paused = st.resume.wait(paused).unwrap();
            }
        }
        if !cfg.latency.is_zero() {
            // Due-time order: sleep until the earliest is due, taking in
            // new submissions meanwhile.
            let due = pending[0].1;
            let now = std::time::Instant::now();
            if due > now {
                if let Ok(r) = rx.recv_timeout(due - now) {
                    pending.push(r);
                }
                continue;
            }
            let (r, _) = pending.remove(0);
            let status = serve(&st, cfg, &r);
            r.complete(status);
            continue;
        }
        if cfg.random && rng.below(4) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(200)));
        }
        while let Ok(r) = rx.try_recv() {
            pending.push(r);
        }
        let (r, _) = if cfg.random {
            let i = rng.below(pending.len() as u64) as usize;
            pending.swap_remove(i)
        } else {
            pending.remove(0)
        };
        let status = serve(&st, cfg, &r);
        r.complete(status);
    }
}

/// Whether request `r` covers a sector of `bad`.
fn covers(bad: &Mutex<BTreeSet<u64>>, r: &Request) -> bool {
    bad.lock()
        .unwrap()
        .range(r.sector..r.sector + r.sectors)
        .next()
        .is_some()
}

fn serve(st: &DevState, cfg: DevConfig, r: &Request) -> Status {
    if let Err(s) = r.check(cfg.sectors, cfg.max_segments) {
        return s;
    }
    let c = &st.counters;
    match r.op {
        Op::Flush => {
            c.flushes.fetch_add(1, Ordering::SeqCst);
            if st.fail_flush.load(Ordering::SeqCst) {
                return Status::IoError;
            }
        }
        Op::Read => {
            c.reads.fetch_add(1, Ordering::SeqCst);
            c.read_sectors.fetch_add(r.sectors, Ordering::SeqCst);
            if st.fail_reads.load(Ordering::SeqCst) || covers(&st.bad_reads, r) {
                return Status::IoError;
            }
            let disk = st.disk.lock().unwrap();
            let mut at = (r.sector * SECTOR_SIZE as u64) as usize;
            for s in &r.segments {
                st.frames.dma_write(s.phys, &disk[at..at + s.len as usize]);
                at += s.len as usize;
            }
        }
        Op::Write => {
            c.writes.fetch_add(1, Ordering::SeqCst);
            c.write_sectors.fetch_add(r.sectors, Ordering::SeqCst);
            if st
                .unowned
                .lock()
                .unwrap()
                .range(r.sector..r.sector + r.sectors)
                .next()
                .is_some()
            {
                st.stray_writes.fetch_add(1, Ordering::SeqCst);
            }
            if st.fail_writes.load(Ordering::SeqCst) || covers(&st.bad_writes, r) {
                return Status::IoError;
            }
            let mut disk = st.disk.lock().unwrap();
            let mut at = (r.sector * SECTOR_SIZE as u64) as usize;
            for s in &r.segments {
                st.frames
                    .dma_read(s.phys, &mut disk[at..at + s.len as usize]);
                at += s.len as usize;
            }
        }
    }
    Status::Ok
}

type Work = Box<dyn FnOnce() + Send>;

/// The kernel's runqueue on the host: a thread in kernel-lock context.
pub struct HostRunQueue {
    tx: Mutex<Sender<Work>>,
    pub ran: AtomicU64,
}

impl HostRunQueue {
    pub fn new(kl: Arc<KernelLock>) -> Arc<HostRunQueue> {
        let (tx, rx) = channel::<Work>();
        let rq = Arc::new(HostRunQueue {
            tx: Mutex::new(tx),
            ran: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&rq);
        std::thread::Builder::new()
            .name("runqueue".into())
            .spawn(move || {
                set_context(Context::KernelLock);
                for work in rx {
                    let _k = kl.lock();
                    work();
                    if let Some(rq) = weak.upgrade() {
                        rq.ran.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
            .expect("runqueue thread");
        rq
    }
}

impl RunQueueHook for HostRunQueue {
    fn defer(&self, work: Work) {
        // A send fails only once the test is over and the thread is gone.
        let _ = self.tx.lock().unwrap().send(work);
    }
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    disk: u64,
    inited: bool,
}

#[derive(Default)]
struct FileMeta {
    len: u64,
    sectors: BTreeMap<u64, Loc>,
}

struct FsInner {
    next_free: u64,
    capacity: u64,
    /// Sectors freed by truncate, handed out again before `next_free`.
    freed: BTreeSet<u64>,
    files: Vec<FileMeta>,
}

/// A tiny filesystem over the simulated disk (metadata in memory).
pub struct TestFs {
    inner: Mutex<FsInner>,
    dev: Arc<DevState>,
    pub meta_syncs: AtomicU64,
    /// `mark_written` calls made.
    pub mark_calls: AtomicU64,
    /// `length` calls made.
    pub length_calls: AtomicU64,
    pub fail_meta: AtomicBool,
    /// Make the backings' `length` / `map` / `mark_written` fail (EIO).
    pub fail_length: AtomicBool,
    pub fail_map: AtomicBool,
    pub fail_mark: AtomicBool,
}

impl TestFs {
    /// Data sectors `first .. first + capacity` of `dev`'s disk.
    pub fn new(dev: &SimDevice, first: u64, capacity: u64, files: usize) -> Arc<TestFs> {
        Arc::new(TestFs {
            inner: Mutex::new(FsInner {
                next_free: first,
                capacity: first + capacity,
                freed: BTreeSet::new(),
                files: (0..files).map(|_| FileMeta::default()).collect(),
            }),
            dev: dev.state.clone(),
            meta_syncs: AtomicU64::new(0),
            mark_calls: AtomicU64::new(0),
            length_calls: AtomicU64::new(0),
            fail_meta: AtomicBool::new(false),
            fail_length: AtomicBool::new(false),
            fail_map: AtomicBool::new(false),
            fail_mark: AtomicBool::new(false),
        })
    }

    pub fn len(&self, file: usize) -> u64 {
        self.inner.lock().unwrap().files[file].len
    }

    /// The disk sector holding byte `off` of `file`, if allocated.
    pub fn disk_sector(&self, file: usize, off: u64) -> Option<u64> {
        self.inner.lock().unwrap().files[file]
            .sectors
            .get(&(off / SECTOR_SIZE as u64))
            .map(|l| l.disk)
    }

    /// Sectors still uninited in `file`.
    pub fn uninited(&self, file: usize) -> usize {
        self.inner.lock().unwrap().files[file]
            .sectors
            .values()
            .filter(|l| !l.inited)
            .count()
    }

    /// Creates a file of `data` directly on disk (as mkfs would).
    pub fn preload(&self, dev: &SimDevice, file: usize, data: &[u8]) {
        let mut fs = self.inner.lock().unwrap();
        let mut disk = dev.state.disk.lock().unwrap();
        let n = (data.len() as u64).div_ceil(SECTOR_SIZE as u64);
        let start = fs.next_free;
        fs.next_free += n;
        assert!(fs.next_free <= fs.capacity);
        let f = &mut fs.files[file];
        f.len = data.len() as u64;
        for s in 0..n {
            f.sectors.insert(
                s,
                Loc {
                    disk: start + s,
                    inited: true,
                },
            );
        }
        let at = (start * SECTOR_SIZE as u64) as usize;
        disk[at..at + data.len()].copy_from_slice(data);
    }

    /// Sets the length of `file` as TFS does: shrinking frees the sectors
    /// past the new end (they become unowned until reallocated) and zeroes
    /// the on-disk tail of the last partial sector; growing leaves a hole.
    /// Returns the disk sectors freed.
    pub fn truncate(&self, file: usize, len: u64) -> Vec<u64> {
        let mut fs = self.inner.lock().unwrap();
        let fs = &mut *fs;
        let f = &mut fs.files[file];
        let cut = f.sectors.split_off(&len.div_ceil(SS));
        let freed: Vec<u64> = cut.values().map(|l| l.disk).collect();
        if len < f.len && len % SS != 0 {
            if let Some(l) = f.sectors.get(&(len / SS)).filter(|l| l.inited) {
                let mut disk = self.dev.disk.lock().unwrap();
                let at = (l.disk * SS + len % SS) as usize;
                let end = ((l.disk + 1) * SS) as usize;
                disk[at..end].fill(0);
            }
        }
        f.len = len;
        fs.freed.extend(freed.iter().copied());
        self.dev
            .unowned
            .lock()
            .unwrap()
            .extend(freed.iter().copied());
        freed
    }

    pub fn backing(self: &Arc<Self>, file: usize) -> Arc<dyn Backing> {
        Arc::new(FileBacking {
            fs: self.clone(),
            file,
        })
    }
}

pub struct FileBacking {
    fs: Arc<TestFs>,
    file: usize,
}

fn assert_kernel_lock_ctx(what: &str) {
    let c = cairn_sync::context();
    assert!(
        matches!(c, Context::KernelLock | Context::Boot),
        "backing {what} called in {c:?} context"
    );
}

const SS: u64 = SECTOR_SIZE as u64;

impl Backing for FileBacking {
    fn length(&self) -> Result<u64, Errno> {
        assert_kernel_lock_ctx("length");
        self.fs.length_calls.fetch_add(1, Ordering::SeqCst);
        if self.fs.fail_length.load(Ordering::SeqCst) {
            return Err(Errno::EIO);
        }
        Ok(self.fs.len(self.file))
    }

    fn map(&self, offset: u64, len: u64) -> Result<Vec<Mapping>, Errno> {
        assert_kernel_lock_ctx("map");
        if self.fs.fail_map.load(Ordering::SeqCst) {
            return Err(Errno::EIO);
        }
        assert!(offset % SS == 0 && len % SS == 0, "unaligned map");
        let fs = self.fs.inner.lock().unwrap();
        let f = &fs.files[self.file];
        let (first, end) = (offset / SS, (offset + len) / SS);
        let mut out: Vec<Mapping> = Vec::new();
        let mut push = |s: u64, ext: Extent| {
            if let Some(m) = out.last_mut() {
                let n = m.len / SS;
                let joins = m.offset / SS + n == s
                    && match (m.extent, ext) {
                        (Extent::Disk { sector: a }, Extent::Disk { sector: b }) => a + n == b,
                        (Extent::Uninited { sector: a }, Extent::Uninited { sector: b }) => {
                            a + n == b
                        }
                        _ => false,
                    };
                if joins {
                    m.len += SS;
                    return;
                }
            }
            out.push(Mapping {
                offset: s * SS,
                len: SS,
                extent: ext,
            });
        };
        // Sectors not in the map are holes: left out (the pagecache reads
        // unmapped ranges as holes).
        for (&s, l) in f.sectors.range(first..end) {
            let ext = if l.inited {
                Extent::Disk { sector: l.disk }
            } else {
                Extent::Uninited { sector: l.disk }
            };
            push(s, ext);
        }
        Ok(out)
    }

    fn reserve(&self, offset: u64, len: u64) -> Result<(), Errno> {
        assert_kernel_lock_ctx("reserve");
        let mut fs = self.fs.inner.lock().unwrap();
        let first = offset / SS;
        let end = (offset + len).div_ceil(SS);
        if fs.files[self.file].sectors.range(first..end).count() as u64 == end - first {
            let f = &mut fs.files[self.file];
            f.len = f.len.max(offset + len);
            return Ok(());
        }
        let missing: Vec<u64> = (first..end)
            .filter(|s| !fs.files[self.file].sectors.contains_key(s))
            .collect();
        let available = fs.freed.len() as u64 + (fs.capacity - fs.next_free);
        if missing.len() as u64 > available {
            return Err(Errno::ENOSPC);
        }
        for s in missing {
            let disk = match fs.freed.pop_first() {
                Some(d) => {
                    self.fs.dev.unowned.lock().unwrap().remove(&d);
                    d
                }
                None => {
                    fs.next_free += 1;
                    fs.next_free - 1
                }
            };
            fs.files[self.file].sectors.insert(
                s,
                Loc {
                    disk,
                    inited: false,
                },
            );
        }
        let f = &mut fs.files[self.file];
        f.len = f.len.max(offset + len);
        Ok(())
    }

    fn mark_written(&self, offset: u64, len: u64) -> Result<(), Errno> {
        assert_kernel_lock_ctx("mark_written");
        self.fs.mark_calls.fetch_add(1, Ordering::SeqCst);
        if self.fs.fail_mark.load(Ordering::SeqCst) {
            return Err(Errno::EIO);
        }
        let mut fs = self.fs.inner.lock().unwrap();
        let f = &mut fs.files[self.file];
        for s in offset / SS..(offset + len).div_ceil(SS) {
            if let Some(l) = f.sectors.get_mut(&s) {
                l.inited = true;
            }
        }
        Ok(())
    }
}

impl MetadataSync for TestFs {
    fn sync_metadata(&self, done: Box<dyn FnOnce(Result<(), Errno>) + Send>) {
        assert_kernel_lock_ctx("sync_metadata");
        self.meta_syncs.fetch_add(1, Ordering::SeqCst);
        if self.fail_meta.load(Ordering::SeqCst) {
            done(Err(Errno::EIO))
        } else {
            done(Ok(()))
        }
    }
}

/// Everything wired up.
pub struct World {
    pub kl: Arc<KernelLock>,
    pub frames: Arc<HostFrames>,
    pub dev: Arc<SimDevice>,
    pub rq: Arc<HostRunQueue>,
    pub fs: Arc<TestFs>,
    pub cache: Arc<PageCache>,
    pub vol: Arc<VolumeCache>,
}

pub const WAIT: Duration = Duration::from_secs(60);

/// Receives an operation's result; a hang here is a deadlock or a lost
/// wake-up, reported as such rather than as a timing assertion.
pub fn wait<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(WAIT)
        .expect("operation never completed: deadlock or lost wake-up")
}

impl World {
    pub fn new(cfg: Config, dev: DevConfig, files: usize) -> World {
        Self::with_frames(cfg, dev, files, usize::MAX)
    }

    pub fn with_frames(cfg: Config, dcfg: DevConfig, files: usize, frame_cap: usize) -> World {
        let kl = Arc::new(KernelLock::new());
        let frames = Arc::new(HostFrames::new(frame_cap));
        let dev = SimDevice::new(dcfg, frames.clone());
        let fs = TestFs::new(&dev, 8, dcfg.sectors - 8, files);
        Self::mount(kl, frames, dev, fs, cfg)
    }

    fn mount(
        kl: Arc<KernelLock>,
        frames: Arc<HostFrames>,
        dev: Arc<SimDevice>,
        fs: Arc<TestFs>,
        cfg: Config,
    ) -> World {
        let rq = HostRunQueue::new(kl.clone());
        set_context(Context::KernelLock);
        let _k = kl.lock();
        let cache = PageCache::new(cfg, frames.clone(), rq.clone());
        let vol = VolumeCache::new(&cache, Volume::whole(dev.clone()), fs.clone());
        drop(_k);
        World {
            kl,
            frames,
            dev,
            rq,
            fs,
            cache,
            vol,
        }
    }

    /// A fresh cache over the same disk and filesystem (a reboot after
    /// sync: only what reached the disk survives).
    pub fn remount(&self, cfg: Config) -> World {
        Self::mount(
            self.kl.clone(),
            self.frames.clone(),
            self.dev.clone(),
            self.fs.clone(),
            cfg,
        )
    }

    /// Runs `f` as a syscall: kernel-lock context, kernel lock held.
    pub fn syscall<R>(&self, f: impl FnOnce() -> R) -> R {
        set_context(Context::KernelLock);
        let _k = self.kl.lock();
        f()
    }

    pub fn node(&self, file: usize) -> Arc<Node> {
        self.syscall(|| Node::new(&self.vol, self.fs.backing(file)))
    }

    pub fn read(&self, node: &Arc<Node>, off: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let (tx, rx) = channel();
        self.syscall(|| {
            node.read(
                off,
                len,
                Completion::kernel_lock(move |r| {
                    tx.send(r).unwrap();
                }),
            )
        });
        let r = wait(&rx);
        self.syscall(|| {
            r.map(|p| {
                let mut v = vec![0; p.len()];
                p.copy_to(&mut v);
                v
            })
        })
    }

    pub fn write(&self, node: &Arc<Node>, off: u64, data: &[u8]) -> Result<usize, Errno> {
        let (tx, rx) = channel();
        self.syscall(|| {
            node.write(
                off,
                data.len(),
                Completion::kernel_lock(move |r| {
                    tx.send(r).unwrap();
                }),
            )
        });
        let r = wait(&rx);
        self.syscall(|| {
            r.map(|mut b| {
                let n = b.copy_from(data);
                b.commit(n)
            })
        })
    }

    pub fn sync(&self, node: &Arc<Node>) -> Result<(), Errno> {
        let (tx, rx) = channel();
        self.syscall(|| {
            node.sync(Completion::kernel_lock(move |r| {
                tx.send(r).unwrap();
            }))
        });
        wait(&rx)
    }

    pub fn sync_volume(&self) -> Result<(), Errno> {
        let (tx, rx) = channel();
        self.syscall(|| {
            self.vol.sync(Completion::kernel_lock(move |r| {
                tx.send(r).unwrap();
            }))
        });
        wait(&rx)
    }

    /// Starts `ftruncate(file, len)` as the kernel does it: the pagecache
    /// first, then, from its completion (kernel-lock, no window), the
    /// filesystem. The result arrives on the receiver.
    pub fn start_truncate(
        &self,
        node: &Arc<Node>,
        file: usize,
        len: u64,
    ) -> Receiver<Result<(), Errno>> {
        let (tx, rx) = channel();
        let fs = self.fs.clone();
        let n = node.clone();
        self.syscall(|| {
            node.truncate(
                len,
                Completion::kernel_lock(move |r: Result<(), Errno>| {
                    if r.is_ok() {
                        fs.truncate(file, len);
                        n.length_changed();
                    }
                    tx.send(r).unwrap();
                }),
            )
        });
        rx
    }

    /// `ftruncate(file, len)`, waited for.
    pub fn truncate(&self, node: &Arc<Node>, file: usize, len: u64) -> Result<(), Errno> {
        wait(&self.start_truncate(node, file, len))
    }

    /// Only the pagecache's part of a truncate (the filesystem is told
    /// later, by the caller).
    pub fn truncate_cache(&self, node: &Arc<Node>, len: u64) -> Result<(), Errno> {
        let (tx, rx) = channel();
        self.syscall(|| {
            node.truncate(
                len,
                Completion::kernel_lock(move |r| {
                    tx.send(r).unwrap();
                }),
            )
        });
        wait(&rx)
    }

    /// Writes that reached a sector the filesystem had freed.
    pub fn stray_writes(&self) -> u64 {
        self.dev.state.stray_writes.load(Ordering::SeqCst)
    }

    pub fn fault(&self, node: &Arc<Node>, index: u64, access: Access) -> Result<Mapped, Errno> {
        let (tx, rx) = channel();
        self.syscall(|| {
            node.fault(
                index,
                access,
                Completion::kernel_lock(move |r| {
                    tx.send(r).unwrap();
                }),
            )
        });
        wait(&rx)
    }

    pub fn tick(&self) -> usize {
        self.syscall(|| self.cache.writeback_tick())
    }

    /// Waits until the runqueue has drained what is queued now.
    pub fn settle(&self) {
        let (tx, rx) = channel();
        self.rq.defer(Box::new(move || {
            tx.send(()).unwrap();
        }));
        wait(&rx);
    }

    /// Waits until no page of `nodes` has I/O in flight (polling page
    /// states; a bound of [`WAIT`] catches I/O that never completes).
    pub fn quiesce(&self, nodes: &[&Arc<Node>]) {
        use cairn_pagecache::PageState::{Alloc, Reading, Writing};
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let busy = nodes.iter().any(|n| {
                n.page_infos()
                    .iter()
                    .any(|(_, i)| matches!(i.state, Reading | Writing | Alloc))
            });
            if !busy {
                self.settle();
                return;
            }
            assert!(std::time::Instant::now() < deadline, "I/O never completed");
            std::thread::yield_now();
        }
    }

    /// The disk bytes of `file` as a fresh mount would read them.
    pub fn disk_image(&self, file: usize) -> Vec<u8> {
        let w = self.remount(Config::default());
        let n = w.node(file);
        let len = self.fs.len(file) as usize;
        w.read(&n, 0, len).expect("re-read after remount")
    }
}

/// A recognisable pattern for `len` bytes at file offset `off`.
pub fn pattern(seed: u8, off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((off + i) as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
