//! The mounted filesystems: TFS volumes over block-layer volumes (the root
//! and the data volumes its manifest mounts), with file data in the
//! pagecache, and the blocking file operations the syscall layer uses.
//!
//! | module | owns |
//! |---|---|
//! | [`volume_device`] | TFS's blocking device over a volume (metadata I/O) |
//! | [`hooks`] | the pagecache's frame, runqueue, backing and metadata hooks |
//! | [`mounts`] | [`mount_root`]: choosing the root, mounting the volumes of its `mounts` tuple |
//! | [`walk`] | path walks across mount points ([`Loc`]: a volume and an inode) |
//! | [`direct`] | `O_DIRECT` reads and writes: pinned user pages to the block layer, coherent with the pagecache |
//! | [`inflight`] | `O_DIRECT` transfers AIO and io_uring start and a lander thread finishes ([`Mount::start_direct`]) |
//! | here | [`Mount`] and the mount table, per-file pagecache nodes, read/write/fsync through the pagecache |
//!
//! **Volumes.** Each mounted volume is its own [`Mount`]: its own TFS (and
//! `fs` mutex), its own pagecache [`VolumeCache`] (dirty list, sync), its
//! own `st_dev` and `statfs`. One writeback thread serves them all (the
//! pagecache's periodic writeback walks every volume). A data volume is
//! mounted over an existing directory of the root; walks cross into it
//! (and `..` out of it) through the mount table, which is filled at boot
//! and never changes afterwards.
//!
//! **Contexts.** Everything here runs in kernel-lock context, in a thread:
//! operations sleep for I/O (releasing the kernel lock).
//!
//! **Locks, in order** (docs/ARCHITECTURE.md "Locks"; the fd table and the
//! working directory are read and released *before* any of these is
//! taken, and the address space is never locked under them):
//! 1. `fs.truncate` — a [`SleepMutex`] per file: one truncation at a time.
//! 2. `fs` — a [`SleepMutex`] around each volume's TFS [`Filesystem`]:
//!    every namespace and metadata operation; it is held across metadata
//!    I/O only (mount replay, log commits), never across file-data I/O, a
//!    user copy or a page fault, and never while calling into the
//!    pagecache (whose backing hook takes it). Every volume's mutex has the
//!    one lock class [`FS_CLASS`], and a thread holds one volume's at a
//!    time ([`walk::Walker`] releases one before it takes another when a
//!    path crosses a mount point): holding two would be a recursive
//!    acquisition of the class, which the validator refuses (debug builds),
//!    so no order between volumes exists or is needed.
//! 3. `fs.nodes` (SpinLock, kernel-lock only): the inode → pagecache node
//!    table; a leaf.
//!
//! A read copies straight from the pages it pins to the user buffer. A
//! pin only keeps a page from eviction (no fill, fault, write or truncate
//! waits for one), so a copy that faults into this same file's pagecache,
//! even onto the page being read (seeds/002, Brian's scenario), completes.
//! A write copies from the user into a kernel buffer first, then into the
//! pages it leases: a lease would block a fault that needs the page. So no
//! lease or lock is held while user memory is touched.

pub mod direct;
pub mod hooks;
pub mod inflight;
pub mod mounts;
pub mod volume_device;
pub mod walk;
pub mod worker;

pub use mounts::mount_root;
pub use walk::Loc;

use crate::sched::OneShot;
use crate::sched::mutex::{SleepMutex, SleepMutexGuard};
use crate::user::{UserDestination, UserSource};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::Volume;
use cairn_pagecache::{Completion, Config, Errno, Node, PageCache, Pages, VolumeCache};
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{LockClass, SpinLock};
use cairn_tfs::{FsError, Ino};
use cairn_unix::abi::FileStat;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use hooks::{KernelFrames, TfsBacking, TfsMetadata};
use volume_device::VolumeDevice;

pub type Tfs = cairn_tfs::Filesystem<VolumeDevice>;

/// A Linux errno from a TFS error.
pub fn errno_of(e: FsError) -> Errno {
    Errno(e.errno())
}

/// Copies longer than a page between user memory and page frames run
/// without the kernel lock (`sched::runloop::without_kernel_lock`), as
/// issue 17 asks of every copy; a page or less is cheaper to copy than
/// to hand the lock over for.
const UNLOCKED_COPY_MIN: usize = cairn_pagecache::PAGE_SIZE + 1;

/// Bytes a read pins, or a write leases, at a time. `cargo xtask bench
/// fs` (TCG): 256 KiB against 64 KiB made cached writes 2.4x and cold
/// sequential reads 1.7x as fast (the per-call costs, TFS allocation and
/// the wait, are paid 4x less often); 1 MiB bought nothing more and slowed
/// cold reads (a larger demand read waits longer before readahead
/// overlaps it).
const CHUNK: usize = 256 * 1024;
/// Period of the writeback thread.
const WRITEBACK_PERIOD_NS: u64 = 1_000_000_000;

static NODES_CLASS: LockClass = LockClass::new("fs.nodes");
/// The sleeping mutex of every volume's filesystem (held across TFS
/// metadata I/O); one class for all volumes: one is held at a time.
pub(crate) static FS_CLASS: LockClass = LockClass::new("fs");
/// A file's truncations, one at a time (sleeping; taken before `fs`).
pub(crate) static TRUNCATE_CLASS: LockClass = LockClass::new("fs.truncate");
/// A regular file's remembered `stat` (a leaf: kernel-lock and lockless
/// thread context, never bh).
static STAT_CLASS: LockClass = LockClass::new("fs.stat");

/// A regular file's data: its pagecache node.
pub struct FileData {
    /// The volume it is on.
    pub mount: &'static Mount,
    pub ino: Ino,
    pub node: Arc<Node>,
    /// Serialises truncates of this file (the pagecache applies them one
    /// at a time, each followed by the filesystem's own).
    pub truncating: SleepMutex<()>,
    /// Direct transfers of this file in flight ([`inflight`]): a truncate
    /// or punch waits for none (under `truncating`, so none starts).
    pub dio: AtomicUsize,
    /// Wall-clock nanoseconds of the latest write not yet stamped on the
    /// file in TFS (0: none). A write into cached pages needs no `fs`
    /// mutex (the lockless one has none to take), so it only records its
    /// time here ([`FileData::note_write`]); `stat` reports the later of
    /// this and TFS's mtime (and ctime), and [`Mount::flush_times`] stamps
    /// it into TFS (fsync, syncfs, last close), before any commit that
    /// must carry it.
    written_at: AtomicU64,
    /// The last `stat` the locked path read from TFS, with the volume's
    /// `fs` generation it was read at ([`Mount::fs_generation`]): valid
    /// while nothing has locked the filesystem since (lockless `fstat`).
    stat: SpinLock<Option<(u64, FileStat)>>,
}

impl FileData {
    /// A write changed the file's data now: see `written_at`. Any context
    /// but irq.
    pub fn note_write(&self) {
        self.written_at
            .fetch_max(crate::time::realtime_ns().max(1), Ordering::AcqRel);
    }

    /// `st` with the modification and change times raised to a write not
    /// yet stamped in TFS.
    pub fn with_pending_times(&self, st: FileStat) -> FileStat {
        with_write_time(st, self.written_at.load(Ordering::Acquire))
    }

    /// Remembers `st`, read under the `fs` mutex at `generation`.
    pub fn remember_stat(&self, generation: u64, st: FileStat) {
        *self.stat.lock() = Some((generation, st));
    }

    /// The remembered `stat` if nothing has locked the filesystem since it
    /// was read (so no metadata can have changed), with pending write
    /// times applied; else `None`. Any context but irq (lockless `fstat`).
    pub fn remembered_stat(&self) -> Option<FileStat> {
        let now = self.mount.fs_generation();
        let st = match *self.stat.lock() {
            Some((g, st)) if g == now => st,
            _ => return None,
        };
        Some(self.with_pending_times(st))
    }

    /// Where it is in the tree.
    pub fn loc(&self) -> Loc {
        Loc {
            mount: self.mount.id(),
            ino: self.ino,
        }
    }
}

/// A volume's filesystem under its `fs` mutex ([`Mount::fs`]). Shared
/// access (`stat`, `length`, `map`, lookups) leaves the volume's
/// generation as it is; each mutable access moves it on before the
/// caller can change anything, so a `stat` remembered at a generation
/// (`FileData::remembered_stat`) is still TFS's answer while the
/// generation has not moved. (When every acquisition moved it, two
/// threads' locked `fstat`s of different files made each other's
/// remembered stats stale forever: runtime test `cached_write`.)
pub struct FsGuard<'a> {
    tfs: SleepMutexGuard<'a, Tfs>,
    generation: &'a AtomicU64,
}

impl core::ops::Deref for FsGuard<'_> {
    type Target = Tfs;
    fn deref(&self) -> &Tfs {
        &self.tfs
    }
}

impl core::ops::DerefMut for FsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Tfs {
        self.generation.fetch_add(1, Ordering::AcqRel);
        &mut self.tfs
    }
}

/// One mounted TFS volume.
pub struct Mount {
    /// Index in the mount table (0: the root).
    id: u16,
    /// What the volume header says: label and UUID.
    label: String,
    uuid: [u8; 16],
    /// The directory it covers (`None` for the root) and its path.
    at: Option<(Loc, String)>,
    /// Its root directory's inode.
    root: Ino,
    fs: SleepMutex<Tfs>,
    /// Bumped by every acquisition of `fs` ([`Mount::fs`]): a `stat` read
    /// at generation `g` is still what TFS would say while the generation
    /// is `g` (nothing has had the filesystem since).
    fs_gen: AtomicU64,
    volume: Volume,
    cache: spin::Once<Arc<VolumeCache>>,
    /// One pagecache node per inode for the whole mount: a node outlives
    /// its last open file (its dirty pages wait for writeback in it), so a
    /// later open must find the same node, never a second one over stale
    /// disk contents. A file with no name and no holder left is reaped
    /// ([`Mount::reap`]); nodes nobody holds that hold nothing are swept
    /// out as the table grows ([`Mount::sweep_idle_nodes`]).
    nodes: SpinLock<BTreeMap<u32, Arc<FileData>>>,
    /// Table size at which [`Mount::file`] sweeps idle nodes next.
    sweep_at: AtomicUsize,
    /// The volume's worker thread: TFS log commits (`hooks::TfsMetadata`)
    /// and deferred reaps ([`Mount::reap_later`]).
    worker: &'static worker::Worker,
}

/// A writer throttled past the dirty limit also commits TFS's log when
/// the writeback staged more than this (well inside the log's reserve).
const COMMIT_AFTER_LOG_BYTES: usize = 64 * 1024;

/// Nodes a volume's table holds before its first sweep of idle ones.
pub const NODE_SWEEP_MIN: usize = 1024;

/// Most mounted volumes.
pub const MAX_MOUNTS: usize = 16;

/// The mount table: filled at boot by [`mounts`], read-only afterwards
/// (so walks read it without a lock).
static MOUNTS: [spin::Once<&'static Mount>; MAX_MOUNTS] = [const { spin::Once::new() }; MAX_MOUNTS];
static PAGECACHE: spin::Once<Arc<PageCache>> = spin::Once::new();

/// The pagecache every volume shares.
pub fn pagecache() -> &'static Arc<PageCache> {
    PAGECACHE.call_once(|| {
        crate::heaps::global::set_reclaimer(reclaim_for_heap);
        // A quarter of RAM as the cache's target size. (Half of RAM was
        // tried: in `mempressure` about 49 MiB of cached pages then stayed
        // unevictable under pressure and thread creation failed: open.)
        let pages = (crate::mm::kernel_map::ram_top() / 4 / 4096).max(1024) as usize;
        PageCache::new(
            Config {
                limit_pages: pages,
                ..Config::default()
            },
            Arc::new(KernelFrames),
            Arc::new(worker::Worker::start("pagecache")),
        )
    })
}

/// The kernel heap's reclaimer (`heaps::global`, Linux's direct reclaim):
/// drops clean cached pages, least recently used first, for an allocation
/// of `bytes` that found no free RAM; returns the bytes freed. Kernel-lock
/// context, no spinlock held (the allocator checks).
fn reclaim_for_heap(bytes: u64) -> u64 {
    let Some(pc) = PAGECACHE.get() else {
        return 0;
    };
    let n = pc.shrink(bytes.div_ceil(4096) as usize);
    crate::debug!(
        "pagecache: a kernel allocation of {bytes} bytes found no RAM: evicted {n} pages"
    );
    n as u64 * 4096
}

/// The mounted root, if any.
pub fn root() -> Option<&'static Mount> {
    mount(0)
}

/// Mount `id` of the mount table.
pub fn mount(id: u16) -> Option<&'static Mount> {
    MOUNTS.get(usize::from(id))?.get().copied()
}

/// Every mounted volume, the root first.
pub fn mounts() -> impl Iterator<Item = &'static Mount> {
    MOUNTS.iter().map_while(|m| m.get().copied())
}

/// The volume mounted over directory `at`, if any.
pub fn covering(at: Loc) -> Option<&'static Mount> {
    mounts().find(|m| m.at.as_ref().is_some_and(|(l, _)| *l == at))
}

/// syncfs of every volume (at exit, `sync()`): each is attempted; the
/// first error is returned.
pub fn sync_all() -> Result<(), Errno> {
    let mut result = Ok(());
    for m in mounts() {
        if let Err(e) = m.sync() {
            crate::warn!("sync of {} failed: errno {}", m.describe(), e.0);
            result = result.and(Err(e));
        }
    }
    result
}

/// Builds a [`Mount`] for `fs` on `volume`, its volume cache, and puts it
/// in the mount table (kernel-lock context, boot).
fn register(fs: Tfs, volume: Volume, at: Option<(Loc, String)>) -> Result<&'static Mount, String> {
    let id = mounts().count();
    if id == MAX_MOUNTS {
        return Err(alloc::format!("more than {MAX_MOUNTS} volumes"));
    }
    let label = String::from_utf8_lossy(fs.label()).into_owned();
    let uuid = fs.uuid();
    let root = fs.root();
    let mount: &'static Mount = alloc::boxed::Box::leak(alloc::boxed::Box::new(Mount {
        id: id as u16,
        label,
        uuid,
        at,
        root,
        fs: SleepMutex::new(&FS_CLASS, fs),
        fs_gen: AtomicU64::new(0),
        volume: volume.clone(),
        cache: spin::Once::new(),
        nodes: SpinLock::new(&NODES_CLASS, BTreeMap::new()),
        sweep_at: AtomicUsize::new(NODE_SWEEP_MIN),
        worker: worker::Worker::start("tfs"),
    }));
    let commits = mount.worker;
    mount.cache.call_once(|| {
        VolumeCache::new(
            pagecache(),
            volume,
            Arc::new(TfsMetadata { mount, commits }),
        )
    });
    MOUNTS[id].call_once(|| mount);
    if id == 0 {
        crate::sched::thread::spawn("writeback", || {
            loop {
                crate::sched::sleep(WRITEBACK_PERIOD_NS);
                pagecache().writeback_tick();
                relieve_memory_pressure();
                for m in mounts() {
                    m.sweep_when_large();
                }
            }
        });
    }
    Ok(mount)
}

/// Whether free physical memory is under the floor (1/8 of RAM) that
/// writers keep by writing back ([`Mount::balance_dirty`]).
fn memory_low() -> bool {
    crate::heaps::PHYSICAL
        .try_stats()
        .is_some_and(|s| s.total.saturating_sub(s.allocated) < s.total / 8)
}

/// When free physical memory drops below 1/8 of RAM, evicts clean cached
/// pages until it is back above 1/4 (the pagecache also evicts on its own
/// when a frame allocation fails). Called by the writeback thread and by
/// throttled writers.
fn relieve_memory_pressure() {
    let Some(s) = crate::heaps::PHYSICAL.try_stats() else {
        return;
    };
    let free = s.total.saturating_sub(s.allocated);
    if free < s.total / 8 {
        let want = ((s.total / 4 - free) / 4096) as usize;
        let n = pagecache().shrink(want);
        crate::debug!("pagecache: memory low ({free} bytes free): evicted {n} pages");
    }
}

/// TFS's clock for the times it stamps (creation, writes, renames): the
/// wall clock, as Linux's file times.
fn tfs_clock() -> cairn_tfs::Timestamp {
    let ns = crate::time::realtime_ns();
    cairn_tfs::Timestamp::from_secs_nanos(ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
}

/// `st` with its modification and change times raised to `written`
/// (wall-clock nanoseconds; 0: none), a write not yet stamped in TFS.
pub fn with_write_time(mut st: FileStat, written: u64) -> FileStat {
    let (s, n) = st.mtime;
    if written != 0 && (s.max(0) as u64) * 1_000_000_000 + u64::from(n) < written {
        let t = (
            (written / 1_000_000_000) as i64,
            (written % 1_000_000_000) as u32,
        );
        st.mtime = t;
        st.ctime = t;
    }
    st
}

/// Whether a writer may dirty more pages now without being throttled
/// (what [`Mount::balance_dirty`] checks first): the lockless write
/// dirties a clean page only then. Any context but irq.
pub fn may_dirty_more() -> bool {
    let cache = pagecache();
    let low = cache.unclean() > cache.config().limit_pages / 16 && memory_low();
    !cache.over_dirty_limit() && !low
}

/// A pagecache completion (bh) that delivers into `w`.
fn completion<T: Send + 'static>(w: &OneShot<T>) -> Completion<T> {
    Completion::bh(w.completion())
}

/// Starts an asynchronous pagecache operation and sleeps until its
/// completion delivers the result.
pub fn wait_for<T: Send + 'static>(start: impl FnOnce(Completion<T>)) -> T {
    let w = OneShot::new();
    start(completion(&w));
    w.wait()
}

/// The pinned pages of `offset .. offset + len` of `file`: at once when
/// they are all cached (no completion, no waiter), else after sleeping
/// for their fills.
fn read_pages(file: &FileData, offset: u64, len: usize) -> Result<Pages, Errno> {
    let mut waiter = None;
    match file
        .node
        .read_or_complete(offset, len, || completion(waiter.insert(OneShot::new())))
    {
        Some(pages) => Ok(pages),
        None => waiter.expect("a waiting read made its completion").wait(),
    }
}

impl Mount {
    /// Index in the mount table (0: the root); also its `st_dev` minor.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The root directory of this volume.
    pub fn root_loc(&self) -> Loc {
        Loc {
            mount: self.id,
            ino: self.root,
        }
    }

    /// `path` where it is mounted (`/` for the root).
    pub fn path(&self) -> &str {
        self.at.as_ref().map_or("/", |(_, p)| p.as_str())
    }

    /// The block-layer name of its volume (`virtio-blk1`, `nvme0n1p1`...).
    pub fn device(&self) -> &str {
        self.volume.name()
    }

    /// The directory it covers, if it is not the root.
    pub fn covers(&self) -> Option<Loc> {
        self.at.as_ref().map(|(l, _)| *l)
    }

    /// For logs and errors: `virtio-blk1 "data" (UUID ...) on /data`.
    pub fn describe(&self) -> String {
        alloc::format!(
            "{} \"{}\" (UUID {}) on {}",
            self.volume.name(),
            self.label,
            cairn_tfs::uuid::format(&self.uuid),
            self.path()
        )
    }

    /// The filesystem, under its sleeping mutex. Reading it through the
    /// guard leaves the generation alone; every mutable access moves it
    /// on first ([`FsGuard`]).
    pub fn fs(&self) -> FsGuard<'_> {
        FsGuard {
            tfs: self.fs.lock(),
            generation: &self.fs_gen,
        }
    }

    /// The `fs` generation: read under the mutex, it names the state the
    /// holder sees; read without, it tells whether anyone may have changed
    /// the filesystem since.
    pub fn fs_generation(&self) -> u64 {
        self.fs_gen.load(Ordering::Acquire)
    }

    /// The time of a write to `ino` not yet stamped in TFS (0: none), for
    /// a `stat` by path. Under the `fs` mutex or not.
    pub fn pending_write_time(&self, ino: Ino) -> u64 {
        self.nodes
            .lock()
            .get(&ino.0)
            .map_or(0, |f| f.written_at.load(Ordering::Acquire))
    }

    /// Stamps `file`'s pending write time ([`FileData::note_write`]) into
    /// TFS as its mtime, if later than the one there; the next commit logs
    /// it. Kernel-lock context, in a thread, holding no `fs` mutex.
    pub fn flush_times(&self, file: &FileData) {
        let w = file.written_at.load(Ordering::Acquire);
        if w == 0 {
            return;
        }
        {
            let mut fs = self.fs();
            let stamped = fs.stat(file.ino).map(|st| {
                let (s, n) = st.mtime.secs_nanos();
                s * 1_000_000_000 + u64::from(n)
            });
            if stamped.is_ok_and(|t| t < w) {
                let ts = cairn_tfs::Timestamp::from_secs_nanos(
                    w / 1_000_000_000,
                    (w % 1_000_000_000) as u32,
                );
                let _ = fs.set_times(file.ino, None, Some(ts));
            }
        }
        // A later write keeps its own time pending.
        let _ = file
            .written_at
            .compare_exchange(w, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// [`Mount::flush_times`] for every file of the volume with one
    /// pending (syncfs).
    fn flush_all_times(&self) {
        let pending: Vec<Arc<FileData>> = self
            .nodes
            .lock()
            .values()
            .filter(|f| f.written_at.load(Ordering::Acquire) != 0)
            .cloned()
            .collect();
        for f in pending {
            self.flush_times(&f);
        }
    }

    pub fn volume(&self) -> &Volume {
        &self.volume
    }

    pub fn cache(&self) -> &Arc<VolumeCache> {
        self.cache.get().expect("mount without a volume cache")
    }

    /// The pagecache node of regular file `ino` (one per inode), under the
    /// filesystem's mutex (`fs`: this volume's, locked by the caller).
    /// A new node pins the inode in TFS ([`Tfs::hold`]): while the node
    /// exists, losing the file's last name makes it an orphan whose data
    /// stays (so its dirty pages always have storage to go to, and its
    /// inode number is not reused under the node), until [`Mount::reap`]
    /// drops the node and the pin.
    pub fn file(&'static self, fs: &mut Tfs, ino: Ino) -> Arc<FileData> {
        let mut nodes = self.nodes.lock();
        if let Some(f) = nodes.get(&ino.0) {
            return f.clone();
        }
        let f = Arc::new(FileData {
            mount: self,
            ino,
            node: Node::new(self.cache(), Arc::new(TfsBacking { mount: self, ino })),
            truncating: SleepMutex::new(&TRUNCATE_CLASS, ()),
            dio: AtomicUsize::new(0),
            written_at: AtomicU64::new(0),
            stat: SpinLock::new(&STAT_CLASS, None),
        });
        fs.hold(ino);
        nodes.insert(ino.0, f.clone());
        let sweep = nodes.len() >= self.sweep_at.load(Ordering::Relaxed);
        drop(nodes);
        if sweep {
            self.sweep_idle_nodes(fs);
        }
        f
    }

    /// The writeback thread's periodic sweep ([`Mount::sweep_idle_nodes`]),
    /// once the table holds more than [`NODE_SWEEP_MIN`] nodes: nodes whose
    /// pages eviction took since go without waiting for the next new one.
    /// Kernel-lock context, in a thread, holding no `fs` mutex.
    fn sweep_when_large(&'static self) {
        if self.nodes.lock().len() > NODE_SWEEP_MIN {
            self.sweep_idle_nodes(&mut self.fs());
        }
    }

    /// Drops the nodes nobody holds that hold nothing (`Node::is_idle`):
    /// files opened and closed whose pages were written back and evicted.
    /// Without this the table kept a node (about 3 KiB of kernel heap) per
    /// file ever opened, and a 128 MiB guest creating 30,000 small files
    /// ran out of memory (runtime test `mempressure`). Runs when the table
    /// has doubled past what the last sweep left (at least
    /// [`NODE_SWEEP_MIN`] nodes), so its cost per open stays constant, and
    /// every second from the writeback thread while the table is large.
    /// Under this volume's `fs` mutex (`fs`).
    fn sweep_idle_nodes(&'static self, fs: &mut Tfs) {
        let gone: Vec<Arc<FileData>> = {
            let mut nodes = self.nodes.lock();
            let idle: Vec<u32> = nodes
                .iter()
                .filter(|(_, f)| {
                    // The table's reference only: no description, mapping
                    // or pagecache operation holds the file or its node.
                    Arc::strong_count(f) == 1 && Arc::strong_count(&f.node) == 1 && f.node.is_idle()
                })
                .map(|(&ino, _)| ino)
                .collect();
            let gone = idle.iter().filter_map(|ino| nodes.remove(ino)).collect();
            self.sweep_at
                .store((nodes.len() * 2).max(NODE_SWEEP_MIN), Ordering::Relaxed);
            gone
        };
        for f in gone {
            crate::special::proc::forget_path(Loc {
                mount: self.id,
                ino: f.ino,
            });
            fs.release(f.ino);
        }
    }

    /// Reaps `ino` if it has no name left and no holder besides the node
    /// table and `held_by_caller` references the caller still has: its
    /// cached pages are discarded, never written back (the pagecache's
    /// truncate to 0, which waits for writes already in flight), the node
    /// leaves the table, and the node's pin goes, so TFS frees the data.
    /// Called after an unlink or a rename over a file, and by holders (open
    /// file descriptions, mappings) as they go. Kernel-lock context, in a
    /// thread, holding no `fs` mutex.
    pub fn reap(&'static self, ino: Ino, held_by_caller: usize) {
        let unheld = |nodes: &BTreeMap<u32, Arc<FileData>>| {
            nodes
                .get(&ino.0)
                .is_some_and(|f| Arc::strong_count(f) == 1 + held_by_caller)
        };
        // The cheap test first: most files going have other holders.
        let unheld_now = unheld(&self.nodes.lock());
        if !unheld_now || !self.fs().is_orphan(ino) {
            return;
        }
        // An orphan never gets a name back, so no new holder can find it
        // once it is out of the table.
        let file = {
            let mut nodes = self.nodes.lock();
            if unheld(&nodes) {
                nodes.remove(&ino.0)
            } else {
                None
            }
        };
        let Some(file) = file else {
            return;
        };
        // Its /proc name goes with it (the name map would otherwise keep an
        // entry per file ever opened).
        crate::special::proc::forget_path(Loc {
            mount: self.id,
            ino,
        });
        // Truncate to 0 has no failure (see `Node::truncate`).
        let _ = wait_for(|c| file.node.truncate(0, c));
        self.fs().release(ino);
    }

    /// [`Mount::reap`] for a holder that goes where it may not sleep (a
    /// mapping dropped under its address space's lock): queued for the
    /// volume's worker thread. Bh or kernel-lock context.
    pub fn reap_later(&'static self, ino: Ino) {
        let work: alloc::boxed::Box<dyn FnOnce() + Send> =
            bh_safe_alloc(|| alloc::boxed::Box::new(move || self.reap(ino, 0)));
        self.worker.defer(work);
    }

    /// Nodes in the table (files opened since boot and not reaped).
    pub fn node_count(&self) -> usize {
        self.nodes.lock().len()
    }

    /// Reads up to `len` bytes at `offset` into user memory at `dst`.
    /// Returns the bytes read (short at end of file).
    ///
    /// The bytes go straight from the pinned page frames to the program's
    /// buffer; a buffer running into unmapped memory ends the read exactly
    /// there (EFAULT only if nothing was copied).
    pub fn read(&self, file: &FileData, offset: u64, dst: u64, len: usize) -> Result<usize, Errno> {
        let mut to = UserDestination::new(dst, len).map_err(|_| Errno::EFAULT)?;
        let mut done = 0usize;
        // After a copy without the kernel lock stopped at a page not mapped
        // yet, the next one runs under the lock and pages it in.
        let mut fault_in = false;
        while done < len {
            let want = CHUNK.min(len - done);
            // An error after some bytes ends the read short (Linux does
            // the same); the next read, starting at the bad page, gets it.
            let pages = match read_pages(file, offset + done as u64, want) {
                Ok(p) => p,
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            };
            let got = pages.len();
            if got == 0 {
                break;
            }
            if !fault_in && got >= UNLOCKED_COPY_MIN {
                let copied = crate::sched::runloop::without_kernel_lock(|| {
                    crate::user::with_user_faults_disabled(|| pages.copy_out(&mut to, done))
                });
                drop(pages);
                done += copied;
                fault_in = copied < got;
                if copied == got && got < want {
                    break;
                }
                continue;
            }
            fault_in = false;
            let copied = pages.copy_out(&mut to, done);
            drop(pages);
            done += copied;
            if copied < got {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EFAULT)
                };
            }
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// Same as [`Mount::read`] into a kernel buffer.
    pub fn read_kernel(
        &self,
        file: &FileData,
        offset: u64,
        dst: &mut [u8],
    ) -> Result<usize, Errno> {
        let mut done = 0usize;
        while done < dst.len() {
            let want = CHUNK.min(dst.len() - done);
            let pages = match read_pages(file, offset + done as u64, want) {
                Ok(p) => p,
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            };
            let got = pages.len();
            if got == 0 {
                break;
            }
            pages.read_at(0, &mut dst[done..done + got]);
            done += got;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// Writes `len` bytes from user memory at `src` at `offset`. ENOSPC is
    /// reported here (space is reserved before any page is dirtied).
    ///
    /// The bytes go straight from the program's buffer into the leased
    /// page frames (`WriteBatch::copy_in`). Each chunk's source is paged in
    /// first, outside any batch (`fault_in_readable`), and copied with user
    /// faults disabled: a source page of the same file that this very
    /// batch holds NEW would otherwise wait for the batch's own commit. A
    /// buffer that runs into an unreachable page writes the bytes before
    /// it (a short count), EFAULT only for none. Copies longer than a page
    /// run without the kernel lock.
    pub fn write(
        &self,
        file: &FileData,
        offset: u64,
        src: u64,
        len: usize,
    ) -> Result<usize, Errno> {
        let mut done = 0usize;
        // Rounds in a row that copied nothing: a source page that another
        // thread keeps unmapping between the fault-in and the copy ends
        // the write instead of spinning.
        let mut stalls = 0;
        while done < len && stalls < 8 {
            let at = src + done as u64;
            // Only the readable prefix is reserved and written: a short
            // write extends the file by what it wrote, not what it asked.
            let n = crate::user::fault_in_readable(at, CHUNK.min(len - done));
            if n == 0 {
                break;
            }
            let mut from = UserSource::new(at, n).map_err(|_| Errno::EFAULT)?;
            self.balance_dirty();
            let mut batch = match wait_for(|c| file.node.write(offset + done as u64, n, c)) {
                Ok(b) => b,
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            };
            let mut copy =
                || crate::user::with_user_faults_disabled(|| batch.copy_in(0, &mut from, n));
            let copied = if n >= UNLOCKED_COPY_MIN {
                crate::sched::runloop::without_kernel_lock(copy)
            } else {
                copy()
            };
            let committed = batch.commit(copied);
            done += committed;
            // Short only if another thread unmapped the buffer since it
            // was paged in: the next round pages in again.
            stalls = if committed == 0 { stalls + 1 } else { 0 };
        }
        if done == 0 && len > 0 {
            return Err(Errno::EFAULT);
        }
        file.note_write();
        Ok(done)
    }

    /// Same as [`Mount::write`] from a kernel buffer.
    pub fn write_kernel(&self, file: &FileData, offset: u64, src: &[u8]) -> Result<usize, Errno> {
        let mut done = 0usize;
        while done < src.len() {
            let n = CHUNK.min(src.len() - done);
            self.balance_dirty();
            done += self.write_chunk(file, offset + done as u64, &src[done..done + n])?;
        }
        Ok(done)
    }

    /// Throttles a writer before it dirties more (Linux's
    /// `balance_dirty_pages`): when the pagecache holds more unclean pages
    /// than its dirty limit, or free memory is under the floor, the writer
    /// itself writes this volume back and commits its log (a syncfs, which
    /// also frees the log's memory) and waits for it, then clean pages are
    /// evicted down to the floor. A writeback error stays recorded on its
    /// file for that file's fsync; the write goes on. Kernel-lock context,
    /// no lock held (it sleeps).
    fn balance_dirty(&self) {
        // Under the memory floor, only when writing back can help.
        if may_dirty_more() {
            return;
        }
        let low = memory_low();
        // Past the dirty limit, the volume's dirty data is written back and
        // the writer waits for it; when memory is low, or the writeback
        // left more than COMMIT_AFTER_LOG_BYTES of TFS log staged, a whole
        // syncfs (its commit frees the log's memory, and a small commit
        // always fits the log's reserve on a full disk). (A syncfs per
        // throttled write made four writers of cached files 3.6x slower
        // than two: bench scale pwrite_cached.)
        let mut r = if low {
            self.sync()
        } else {
            wait_for(|c| self.cache().write_back(c))
        };
        if !low && r.is_ok() && self.fs().staged_log_bytes() > COMMIT_AFTER_LOG_BYTES {
            r = self.sync();
        }
        if let Err(e) = r {
            crate::debug!(
                "pagecache: throttled writeback of {}: errno {}",
                self.describe(),
                e.0
            );
        }
        relieve_memory_pressure();
    }

    fn write_chunk(&self, file: &FileData, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        let mut batch = wait_for(|c| file.node.write(offset, data.len(), c))?;
        if data.len() >= UNLOCKED_COPY_MIN {
            // Into the leased pages without the kernel lock (a kernel
            // buffer: nothing faults).
            crate::sched::runloop::without_kernel_lock(|| batch.write_at(0, data));
        } else {
            batch.write_at(0, data);
        }
        Ok(batch.commit(data.len()))
    }

    /// Truncates (or extends) `file` to `len`: the pagecache drops what lies
    /// past the end first (so no writeback can reach storage TFS frees), and
    /// TFS's own truncate runs in the pagecache's completion, with no other
    /// kernel-lock code in between (so no write slips into the gap).
    pub fn truncate(&'static self, file: &FileData, len: u64) -> Result<(), Errno> {
        let _one_at_a_time = file.truncating.lock();
        inflight::wait_file(file);
        let ino = file.ino;
        let w = OneShot::new();
        let h = w.handle();
        let node = file.node.clone();
        file.node.truncate(
            len,
            Completion::kernel_lock(move |r: Result<(), Errno>| {
                let r = r.and_then(|()| self.fs().truncate(ino, len).map_err(errno_of));
                node.length_changed();
                h.deliver(r);
            }),
        );
        let r = w.wait();
        // No mapping keeps a page past the new end (an access there is
        // SIGBUS, as on Linux).
        if let Some(p) = crate::process::PROCESS.get() {
            p.aspace.zap_file(file, len, u64::MAX);
        }
        r
    }

    /// Punches the page-aligned hole `[start, end)` in `file`
    /// (`FALLOC_FL_PUNCH_HOLE` without its partial pages, which the caller
    /// zeroes by writing): the pagecache drops the pages there first (so no
    /// writeback can reach storage TFS frees), then TFS frees the storage
    /// in the pagecache's completion, with no kernel-lock code in between
    /// (as [`Mount::truncate`]); one at a time with truncates of the file.
    pub fn punch(&'static self, file: &FileData, start: u64, end: u64) -> Result<(), Errno> {
        const PS: u64 = cairn_pagecache::PAGE_SIZE as u64;
        if start >= end {
            return Ok(());
        }
        let _one_at_a_time = file.truncating.lock();
        inflight::wait_file(file);
        let ino = file.ino;
        let w = OneShot::new();
        let h = w.handle();
        file.node.punch(
            start / PS,
            end / PS,
            Completion::kernel_lock(move |r: Result<(), Errno>| {
                h.deliver(
                    r.and_then(|()| self.fs().punch(ino, start, end - start).map_err(errno_of)),
                );
            }),
        );
        let r = w.wait();
        // Mappings of the hole read it again (as zeros).
        if let Some(p) = crate::process::PROCESS.get() {
            p.aspace.zap_file(file, start, end);
        }
        r
    }

    /// fsync: the file's pending write time, its dirty pages, then the
    /// log, then a device flush.
    pub fn fsync(&self, file: &FileData) -> Result<(), Errno> {
        self.flush_times(file);
        wait_for(|c| file.node.sync(c))
    }

    /// syncfs: pending write times, every dirty page of the volume, the
    /// log, a device flush.
    pub fn sync(&self) -> Result<(), Errno> {
        self.flush_all_times();
        wait_for(|c| self.cache().sync(c))
    }
}

/// Gets page `index` of `file` for a mapping (sleeping for the fill).
/// The page's own fill is submitted first, then the mapping readahead of
/// `around` pages or more after it (`Node::fault_ahead`, which leaves the
/// `read()` readahead of the file alone), then the thread sleeps.
pub fn wait_fault(
    file: &Arc<FileData>,
    index: u64,
    access: cairn_pagecache::Access,
    around: u64,
) -> Result<cairn_pagecache::Mapped, Errno> {
    wait_for(|c| {
        file.node.fault(index, access, c);
        file.node.fault_ahead(index, around);
    })
}
