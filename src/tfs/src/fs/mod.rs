//! The filesystem: a mounted TFS volume ([`Filesystem`]) with its
//! namespace, data and commit operations, split by purpose into
//! submodules.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

mod commit;
mod data;
pub mod extent_map;
pub mod index;
mod namespace;

use crate::codec::Encoder;
use crate::device::BlockDevice;
use crate::error::{FsError, MountError};
use crate::frame::{END_OF_SEGMENT, EXTENSION_SECTORS, Span, VolumeId};
use crate::log_writer::LogWriter;
use crate::nodemap::NodeMap;
use crate::replay;
use crate::space::SpaceMap;
use crate::store::{Integer, NodeId, Store, Value};
use crate::symbol::{Sym, known};
use crate::workload::Workload;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec::Vec;
use index::{DirInfo, FileInfo, Index};

pub use index::{Extent, MAX_EXTENT_SECTORS};

/// Stable handle of a file, directory or symlink for the life of a mount;
/// hard links share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(pub u32);

/// Time in Nanos's `timestamp` unit: seconds as 32.32 fixed point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From seconds and nanoseconds since the epoch.
    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Timestamp((secs << 32) | ((u64::from(nanos) << 32) / 1_000_000_000))
    }
    /// Seconds and nanoseconds since the epoch.
    pub fn secs_nanos(self) -> (u64, u32) {
        let frac = self.0 & 0xffff_ffff;
        (self.0 >> 32, ((frac * 1_000_000_000) >> 32) as u32)
    }
}

/// Kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
}

/// What `stat` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The node.
    pub ino: Ino,
    /// Its kind.
    pub kind: FileType,
    /// `st_mode` (type bits and permissions; TFS stores no permissions, so
    /// these are 0755 for directories, 0644 for files, 0777 for symlinks).
    pub mode: u32,
    /// Length in bytes.
    pub size: u64,
    /// Names (for directories: 2 + subdirectories).
    pub nlink: u32,
    /// 512-byte sectors reserved.
    pub blocks: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last modification.
    pub mtime: Timestamp,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Name.
    pub name: Vec<u8>,
    /// Target.
    pub ino: Ino,
    /// Kind of the target.
    pub kind: FileType,
}

/// What `statfs` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    /// Bytes per block (512).
    pub block_size: u32,
    /// Blocks in the volume.
    pub blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Files, directories and symlinks.
    pub files: u64,
    /// Longest name.
    pub name_max: u32,
}

/// Where a byte range of a file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingKind {
    /// On the device, starting at this sector (of the filesystem's device).
    Disk {
        /// First sector.
        sector: u64,
    },
    /// Allocated but never written: reads as zeros; writeback writes the
    /// data at this sector (then [`Filesystem::mark_written`]).
    Uninited {
        /// First sector of the storage reserved for the range.
        sector: u64,
    },
    /// Not allocated: reads as zeros.
    Hole,
}

/// A sector-aligned range of a file and where it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Byte offset in the file (a multiple of 512).
    pub offset: u64,
    /// Length in bytes (a multiple of 512).
    pub len: u64,
    /// Where it is.
    pub kind: MappingKind,
}

/// Options of [`Filesystem::format`].
#[derive(Clone, Debug, Default)]
pub struct FormatOptions {
    /// Volume label (at most 31 bytes).
    pub label: Vec<u8>,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Pad log sectors after `END_OF_LOG` with zeros, as Nanos's mkfs does,
    /// instead of cairn's `END_OF_SEGMENT` padding (costs one extra device
    /// flush on the first commit after mount).
    pub nanos_padding: bool,
}

/// Sectors of a log extension reserved for future use (`next_extend` or
/// `next_new` in Nanos).
const LOG_RESERVE: u64 = EXTENSION_SECTORS;

/// A mounted TFS volume on a block device.
pub struct Filesystem<D: BlockDevice> {
    dev: D,
    store: Store,
    log: LogWriter,
    root: NodeId,
    dirs: BTreeMap<NodeId, DirInfo>,
    files: NodeMap<FileInfo>,
    symlinks: BTreeSet<NodeId>,
    links: NodeMap<u32>,
    space: SpaceMap,
    pending_free: Vec<(u64, u64)>,
    next_extend: Option<Span>,
    next_new: Option<Span>,
    log_reserves_taken: bool,
    held: BTreeMap<NodeId, u32>,
    orphans: BTreeSet<NodeId>,
    times_dirty: BTreeSet<NodeId>,
    clock: fn() -> Timestamp,
    max_extensions: usize,
}

fn zero_clock() -> Timestamp {
    Timestamp(0)
}

impl<D: BlockDevice> Filesystem<D> {
    /// Mounts the TFS volume on `dev` (a bare volume; see
    /// [`crate::open_root_volume`] for disks with an MBR): replays the log,
    /// indexes and validates the tree, and rebuilds free space.
    pub fn mount(dev: D) -> Result<Self, MountError> {
        let r = replay::replay(&dev).map_err(|e| match e.0.contains("magic") {
            true => MountError::NotTfs(e.0),
            false => MountError::Log(e.0),
        })?;
        let (index, space, problems) = index::build(&r.store, r.root, dev.sector_count(), &r.chain);
        if let Some(first) = problems.first() {
            let more = problems.len() - 1;
            let msg = if more > 0 {
                format!("{first} (and {more} more problems)")
            } else {
                first.clone()
            };
            return Err(MountError::Corrupt(msg));
        }
        let log = LogWriter {
            chain: r.chain,
            tail: r.tail,
            fresh: false,
            dict: r.dict,
            staged: Vec::new(),
            staged_bytes: 0,
            volume: r.volume,
            pad: END_OF_SEGMENT,
            stats: r.stats,
        };
        Ok(Self::assemble(dev, r.store, log, r.root, index, space))
    }

    fn assemble(
        dev: D,
        store: Store,
        log: LogWriter,
        root: NodeId,
        index: Index,
        space: SpaceMap,
    ) -> Self {
        Filesystem {
            dev,
            store,
            log,
            root,
            dirs: index.dirs,
            files: index.files,
            symlinks: index.symlinks,
            links: index.links,
            space,
            pending_free: Vec::new(),
            next_extend: None,
            next_new: None,
            log_reserves_taken: false,
            held: BTreeMap::new(),
            orphans: BTreeSet::new(),
            times_dirty: BTreeSet::new(),
            clock: zero_clock,
            max_extensions: 16,
        }
    }

    /// Makes a new filesystem on `dev` whose root is a copy of tuple `root`
    /// of its store (a manifest's tree; node ids stay valid as [`Ino`]s), or `(children:())` when `None`.
    /// Nothing is written until the first sync. Space is laid out as Nanos's
    /// mkfs does: header sector 0, the first log extension at sector 1, two
    /// more extensions' worth reserved, file data from sector 3073.
    pub fn format(
        dev: D,
        opts: &FormatOptions,
        root: Option<(Store, NodeId)>,
    ) -> Result<Self, FsError> {
        let size = dev.sector_count();
        let mut space = SpaceMap::new(size);
        if !space.reserve(0, 1) {
            return Err(FsError::NoSpace);
        }
        let reserve_new = space.allocate(LOG_RESERVE);
        let reserve_extend = space.allocate(LOG_RESERVE);
        let first_sector = reserve_new.ok_or(FsError::NoSpace)?;
        let first = Span {
            start: first_sector,
            sectors: EXTENSION_SECTORS,
        };
        let next_new = space.allocate(LOG_RESERVE).map(|s| Span {
            start: s,
            sectors: LOG_RESERVE,
        });
        let next_extend = reserve_extend.map(|s| Span {
            start: s,
            sectors: LOG_RESERVE,
        });
        let (store, root_id) = match root {
            Some((store, id)) if store.is_tuple(id) => (store, id),
            Some(_) => return Err(FsError::Inval),
            None => {
                let mut store = Store::new();
                let t = store.new_tuple();
                let c = store.new_tuple();
                store.set(t, known::CHILDREN, Some(Value::Tuple(c)));
                (store, t)
            }
        };
        let mut label = opts.label.clone();
        label.truncate(crate::frame::LABEL_MAX - 1);
        let volume = VolumeId {
            uuid: opts.uuid,
            label,
        };
        let pad = if opts.nanos_padding {
            0
        } else {
            END_OF_SEGMENT
        };
        let mut log = LogWriter::fresh(volume, first, pad);
        let mut enc = Encoder::new(&store, &mut log.dict);
        enc.value(Some(&Value::Tuple(root_id)));
        let entry = enc.out;
        log.stage(entry);
        let chain = log.chain.clone();
        let (index, _, problems) = index::build(&store, root_id, size, &chain);
        if !problems.is_empty() {
            return Err(FsError::Inval);
        }
        let mut fs = Self::assemble(dev, store, log, root_id, index, space);
        fs.next_new = next_new;
        fs.next_extend = next_extend;
        fs.log_reserves_taken = true;
        Ok(fs)
    }

    /// Sets the clock used for new timestamps (defaults to 0).
    pub fn set_clock(&mut self, clock: fn() -> Timestamp) {
        self.clock = clock;
    }

    /// Compacts when the log chain grows beyond `n` extensions (default 16).
    pub fn set_max_log_extensions(&mut self, n: usize) {
        self.max_extensions = n.max(2);
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Gives back the device (sync first to keep staged updates).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// The volume UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.log.volume.uuid
    }

    /// The volume label.
    pub fn label(&self) -> &[u8] {
        &self.log.volume.label
    }

    /// The root directory.
    pub fn root(&self) -> Ino {
        Ino(self.root)
    }

    /// The replayed value graph (read-only), for tools that print it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The root tuple's id in [`Self::store`].
    pub fn root_tuple(&self) -> NodeId {
        self.root
    }

    /// The log extensions, header sector first.
    pub fn log_chain(&self) -> &[Span] {
        &self.log.chain
    }

    /// The workload the root tuple names.
    pub fn workload(&self) -> Workload {
        Workload::from_root(&self.store, self.root)
    }

    /// Volume statistics.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            block_size: 512,
            blocks: self.space.size(),
            free_blocks: self.space.free_sectors(),
            files: (self.dirs.len() + self.links.len()) as u64,
            name_max: namespace::NAME_MAX as u32,
        }
    }

    /// Pins `ino` while it is open, so unlinking its last name keeps its
    /// data until [`Self::release`].
    pub fn hold(&mut self, ino: Ino) {
        *self.held.entry(ino.0).or_insert(0) += 1;
    }

    /// Drops a pin taken by [`Self::hold`]; frees an unlinked file's data
    /// when its last pin goes.
    pub fn release(&mut self, ino: Ino) {
        let Some(n) = self.held.get_mut(&ino.0) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.held.remove(&ino.0);
            if self.orphans.remove(&ino.0) {
                self.destroy(ino.0);
            }
        }
    }

    /// Bytes of log entries staged since the last commit (what the next
    /// [`Self::sync_metadata`] writes, before framing).
    pub fn staged_log_bytes(&self) -> usize {
        self.log.staged_bytes
    }

    /// Whether `ino` lost its last name while held: its data lives until
    /// the last [`Self::release`].
    pub fn is_orphan(&self, ino: Ino) -> bool {
        self.orphans.contains(&ino.0)
    }

    fn now(&self) -> Value {
        Value::Int(Integer::from_u64((self.clock)().0))
    }

    /// Updates the modification time of a node that keeps times (nodes
    /// created at run time; manifest entries carry none, as in Nanos's mkfs
    /// output, and stay without).
    fn touch(&mut self, node: NodeId) {
        if self.store.get(node, known::MTIME).is_none() {
            return;
        }
        let t = self.now();
        self.store.set(node, known::MTIME, Some(t));
        self.times_dirty.insert(node);
    }

    /// Whether updates to `node` go to the log (false for unlinked files).
    fn logged(&self, node: NodeId) -> bool {
        !self.orphans.contains(&node)
    }

    /// Sets attribute `attr` of `entity` in memory and stages the update.
    fn log_set(&mut self, entity: NodeId, attr: Sym, value: Option<Value>) {
        let mut enc = Encoder::new(&self.store, &mut self.log.dict);
        let written = enc.eav(entity, attr, value.as_ref());
        let entry = enc.out;
        if written {
            self.log.stage(entry);
        }
        let deleting = value.is_none();
        let old = self.store.set(entity, attr, value);
        self.log.stats.total += 1;
        if old.is_some() {
            self.log.stats.obsolete += if deleting { 2 } else { 1 };
        }
    }

    fn sym(&mut self, name: &[u8]) -> Sym {
        self.store.sym(name)
    }

    fn kind(&self, node: NodeId) -> Option<FileType> {
        if self.dirs.contains_key(&node) {
            Some(FileType::Directory)
        } else if self.symlinks.contains(&node) {
            Some(FileType::Symlink)
        } else if self.files.contains_key(&node) {
            Some(FileType::Regular)
        } else {
            None
        }
    }

    /// Forgets a node with no names left and frees its data.
    fn destroy(&mut self, node: NodeId) {
        self.links.remove(&node);
        self.symlinks.remove(&node);
        self.times_dirty.remove(&node);
        let mut gone = alloc::vec![node];
        if let Some(f) = self.files.remove(&node) {
            for x in f.extents.values() {
                self.pending_free.push((x.start, x.allocated));
                gone.push(x.tuple);
            }
            gone.extend(f.extents_tuple);
        }
        // Nothing names the node any more, so its attributes go now, not at
        // the next compaction (a create/unlink loop would otherwise keep
        // every file's tuple). Ids the log never recorded are reused at
        // once; the others only once compaction has left them behind.
        for id in gone {
            if self.log.dict.contains_node(id) {
                self.store.free(id);
            } else {
                self.store.recycle(id);
            }
        }
    }

    /// Timestamps of `ino`.
    fn times(&self, node: NodeId) -> (Timestamp, Timestamp) {
        let get = |s| Timestamp(self.store.get(node, s).and_then(Value::as_u64).unwrap_or(0));
        (get(known::ATIME), get(known::MTIME))
    }

    /// Sets access and/or modification time (logged at the next sync).
    pub fn set_times(
        &mut self,
        ino: Ino,
        atime: Option<Timestamp>,
        mtime: Option<Timestamp>,
    ) -> Result<(), FsError> {
        self.kind(ino.0).ok_or(FsError::NoEnt)?;
        if let Some(a) = atime {
            self.store.set(
                ino.0,
                known::ATIME,
                Some(Value::Int(Integer::from_u64(a.0))),
            );
        }
        if let Some(m) = mtime {
            self.store.set(
                ino.0,
                known::MTIME,
                Some(Value::Int(Integer::from_u64(m.0))),
            );
        }
        self.times_dirty.insert(ino.0);
        Ok(())
    }
}
