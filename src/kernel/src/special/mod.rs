//! The special filesystem: `/dev`, `/proc` and `/sys`, made by the kernel
//! (nothing of it is stored in TFS), laid over the root filesystem's tree.
//!
//! | module | owns |
//! |---|---|
//! | here | the node tree, [`register`], path lookup, opening, the generic node kinds |
//! | [`dev`] | `/dev`: null, zero, full, random, urandom, console, tty, fd links |
//! | [`proc`] | `/proc`: cpuinfo, meminfo, stat, mounts, `self` (exe, maps, fd/, status, cmdline...) |
//! | [`sys`] | `/sys/devices/system/cpu`: online, possible, present, `cpuN` |
//!
//! **Adding a file.** `register("/proc/cairn/pagecache", text(|| ...))`
//! (any time after boot, kernel-lock context) puts a read-only file whose
//! contents are made when it is opened; missing directories are created.
//! Other node kinds implement [`Node`] (a directory that lists what exists
//! now, like `/proc/self/fd`; a device that opens a [`FileOps`] object).
//!
//! **Paths.** A path enters the special tree when, made absolute (from the
//! working directory or a special directory's descriptor) and normalised
//! lexically, its first component is a top-level special directory; the
//! rest is walked by `cairn_unix::path::walk` over the nodes. A symlink
//! here may lead back into TFS (`/proc/self/cwd`) or straight to an open
//! file (`/proc/self/fd/N`): followed as the last component, [`lookup`]
//! says so and the caller goes on there; followed in the middle of a path
//! it must stay inside the special tree. TFS symlinks into `/proc` are not
//! followed into it.
//!
//! Contexts: kernel-lock, in a thread. Locks: `special.dir` (SpinLock,
//! kernel-lock only, a leaf: never held while a node is opened or listed).

pub mod dev;
pub mod proc;
pub mod sys;

use crate::process::file::{DirEntry, FileKind, FileOps, OpenFile};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::{DT_CHR, DT_DIR, DT_LNK, DT_REG, FileStat, makedev};
use cairn_unix::errno::Errno;
use cairn_unix::path::{Namespace, NodeKind, walk};
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

/// `st_dev` of every special file.
pub const DEV: u64 = makedev(0, 4);

static NEXT_INO: AtomicU64 = AtomicU64::new(2);

/// A fresh inode number for a special node.
pub fn new_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// A plain `FileStat` of a special node.
pub fn stat_of(ino: u64, mode: u32, rdev: u64, size: u64) -> FileStat {
    let t = (crate::time::realtime_ns() / 1_000_000_000) as i64;
    FileStat {
        dev: DEV,
        ino,
        nlink: 1,
        mode,
        uid: 0,
        gid: 0,
        rdev,
        size: size as i64,
        blksize: 4096,
        blocks: 0,
        atime: (t, 0),
        mtime: (t, 0),
        ctime: (t, 0),
        btime: None,
    }
}

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

/// A node of the special tree.
pub trait Node: Send + Sync {
    fn kind(&self) -> NodeKind;
    fn stat(&self) -> FileStat;
    /// A directory's child.
    fn lookup(&self, _name: &[u8]) -> Option<Arc<dyn Node>> {
        None
    }
    /// A directory's children.
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Node>)> {
        Vec::new()
    }
    /// A link's target path.
    fn readlink(&self) -> Option<Vec<u8>> {
        None
    }
    /// A link that leads to an open file (`/proc/self/fd/N`) rather than
    /// a path.
    fn target_file(&self) -> Option<Arc<OpenFile>> {
        None
    }
    /// Opens a file or device node found at `path` (directories are
    /// opened here, links are followed before).
    fn open(&self, _path: &[u8], _flags: u32) -> Result<FileKind, Errno> {
        Err(Errno::EACCES)
    }
    /// Adds `name` to a directory that takes registrations; false if it
    /// does not.
    fn insert(&self, _name: &[u8], _node: Arc<dyn Node>) -> bool {
        false
    }
}

/// `DT_*` of a node.
fn dtype(n: &dyn Node) -> u8 {
    match n.kind() {
        NodeKind::Directory => DT_DIR,
        NodeKind::Symlink => DT_LNK,
        NodeKind::Other if n.stat().mode & 0o170000 == S_IFCHR => DT_CHR,
        NodeKind::Other => DT_REG,
    }
}

static DIR_CLASS: LockClass = LockClass::new("special.dir");

/// A directory whose entries are registered ([`register`]).
pub struct Dir {
    ino: u64,
    entries: SpinLock<BTreeMap<Vec<u8>, Arc<dyn Node>>>,
}

impl Dir {
    pub fn new() -> Arc<Dir> {
        Arc::new(Dir {
            ino: new_ino(),
            entries: SpinLock::new(&DIR_CLASS, BTreeMap::new()),
        })
    }
}

impl Node for Dir {
    fn kind(&self) -> NodeKind {
        NodeKind::Directory
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, S_IFDIR | 0o555, 0, 0)
    }
    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Node>> {
        self.entries.lock().get(name).cloned()
    }
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Node>)> {
        self.entries
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn insert(&self, name: &[u8], node: Arc<dyn Node>) -> bool {
        self.entries.lock().insert(name.to_vec(), node);
        true
    }
}

/// A read-only file whose contents `make` produces when it is opened.
pub struct TextFile {
    ino: u64,
    make: fn() -> Vec<u8>,
}

/// A [`TextFile`] node.
pub fn text(make: fn() -> Vec<u8>) -> Arc<dyn Node> {
    Arc::new(TextFile {
        ino: new_ino(),
        make,
    })
}

impl Node for TextFile {
    fn kind(&self) -> NodeKind {
        NodeKind::Other
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, S_IFREG | 0o444, 0, 0)
    }
    fn open(&self, path: &[u8], flags: u32) -> Result<FileKind, Errno> {
        if flags & crate::process::file::O_ACCMODE != 0 {
            return Err(Errno::EACCES);
        }
        Ok(FileKind::Object(Arc::new(Snapshot {
            data: (self.make)(),
            stat: self.stat(),
            path: path.to_vec(),
        })))
    }
}

/// An open [`TextFile`]: the contents as they were at open.
pub struct Snapshot {
    data: Vec<u8>,
    stat: FileStat,
    path: Vec<u8>,
}

impl FileOps for Snapshot {
    fn read(
        &self,
        _f: &OpenFile,
        off: u64,
        mut dst: crate::process::file::Dst<'_>,
        len: usize,
    ) -> Result<usize, Errno> {
        let start = (off as usize).min(self.data.len());
        let n = len.min(self.data.len() - start);
        dst.put(0, &self.data[start..start + n])?;
        Ok(n)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn stat(&self) -> FileStat {
        self.stat
    }
    fn name(&self) -> Vec<u8> {
        self.path.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A symlink whose target `target` computes.
pub struct Link {
    ino: u64,
    target: fn() -> Vec<u8>,
}

/// A [`Link`] node.
pub fn link(target: fn() -> Vec<u8>) -> Arc<dyn Node> {
    Arc::new(Link {
        ino: new_ino(),
        target,
    })
}

impl Node for Link {
    fn kind(&self) -> NodeKind {
        NodeKind::Symlink
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, S_IFLNK | 0o777, 0, 0)
    }
    fn readlink(&self) -> Option<Vec<u8>> {
        Some((self.target)())
    }
}

/// A character device: each open makes a description of `open()`.
pub struct Device {
    ino: u64,
    rdev: u64,
    open: fn() -> FileKind,
}

/// A [`Device`] node with device number `major:minor`.
pub fn device(major: u32, minor: u32, open: fn() -> FileKind) -> Arc<dyn Node> {
    Arc::new(Device {
        ino: new_ino(),
        rdev: makedev(major, minor),
        open,
    })
}

impl Node for Device {
    fn kind(&self) -> NodeKind {
        NodeKind::Other
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, S_IFCHR | 0o666, self.rdev, 0)
    }
    fn open(&self, _path: &[u8], _flags: u32) -> Result<FileKind, Errno> {
        Ok((self.open)())
    }
}

/// An open special directory: lists its node, serves as a `*at` dirfd.
pub struct OpenDir {
    path: Vec<u8>,
    node: Arc<dyn Node>,
}

impl FileOps for OpenDir {
    fn stat(&self) -> FileStat {
        self.node.stat()
    }
    fn readdir(&self) -> Option<Vec<DirEntry>> {
        Some(
            self.node
                .list()
                .into_iter()
                .map(|(name, n)| DirEntry {
                    ino: n.stat().ino,
                    kind: dtype(&*n),
                    name,
                })
                .collect(),
        )
    }
    fn read(
        &self,
        _f: &OpenFile,
        _off: u64,
        _dst: crate::process::file::Dst<'_>,
        _len: usize,
    ) -> Result<usize, Errno> {
        Err(Errno::EISDIR)
    }
    fn name(&self) -> Vec<u8> {
        self.path.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The root of the special tree (its top-level directories).
fn root() -> &'static Arc<Dir> {
    static ROOT: spin::Once<Arc<Dir>> = spin::Once::new();
    ROOT.call_once(Dir::new)
}

/// Puts `node` at absolute `path` (`/proc/cairn/x`), creating missing
/// directories (kernel-lock context).
pub fn register(path: &str, node: Arc<dyn Node>) {
    let parts: Vec<&[u8]> = cairn_unix::path::components(path.as_bytes()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return;
    };
    let mut here: Arc<dyn Node> = root().clone();
    for d in dirs {
        here = match here.lookup(d) {
            Some(n) => n,
            None => {
                let nd: Arc<dyn Node> = Dir::new();
                if !here.insert(d, nd.clone()) {
                    crate::warn!("special: {path}: cannot add a directory there");
                    return;
                }
                nd
            }
        };
    }
    if !here.insert(last, node) {
        crate::warn!("special: {path}: the parent takes no registrations");
    }
}

/// Builds the tree, once, at the first lookup (the CPU count is final by
/// then). Registrations made earlier are kept.
fn init() {
    static DONE: spin::Once<()> = spin::Once::new();
    DONE.call_once(|| {
        dev::init();
        proc::init();
        sys::init();
    });
}

/// A node with the path it was reached by (the walk's node).
#[derive(Clone)]
pub struct Found {
    pub path: Vec<u8>,
    pub node: Arc<dyn Node>,
}

struct Ns;

impl Namespace for Ns {
    type Node = Found;
    fn root(&self) -> Found {
        Found {
            path: b"/".to_vec(),
            node: root().clone(),
        }
    }
    fn parent(&mut self, dir: &Found) -> Result<Found, Errno> {
        let mut p = dir.path.clone();
        while p.len() > 1 && p.last() != Some(&b'/') {
            p.pop();
        }
        if p.len() > 1 {
            p.pop();
        }
        // Canonical paths hold no links: a lexical walk down finds it.
        let mut here = self.root();
        for c in cairn_unix::path::components(&p) {
            here = match self.lookup(&here, c)? {
                Some((n, _)) => n,
                None => return Err(Errno::ENOENT),
            };
        }
        Ok(here)
    }
    fn lookup(&mut self, dir: &Found, name: &[u8]) -> Result<Option<(Found, NodeKind)>, Errno> {
        Ok(dir.node.lookup(name).map(|n| {
            let kind = n.kind();
            let mut path = dir.path.clone();
            if path.len() > 1 {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            (Found { path, node: n }, kind)
        }))
    }
    fn read_link(&mut self, link: &Found) -> Result<Vec<u8>, Errno> {
        link.node.readlink().ok_or(Errno::EINVAL)
    }
}

/// Where a special path leads.
pub enum Target {
    /// A node of the special tree.
    Node(Found),
    /// An open file (a followed `/proc/self/fd/N`).
    File(Arc<OpenFile>),
    /// Out of the special tree: resolve this absolute path in TFS.
    Tfs(Vec<u8>),
}

/// Makes `path` absolute and normalises `.`, `..` and repeated slashes.
fn absolute(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let full: Vec<u8> = if path.first() == Some(&b'/') {
        path.to_vec()
    } else {
        let mut v = base.to_vec();
        v.push(b'/');
        v.extend_from_slice(path);
        v
    };
    for c in full.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    if path.last() == Some(&b'/') && out.len() > 1 {
        out.push(b'/');
    }
    out
}

/// Whether absolute, normalised `p` lies in the special tree.
fn inside(p: &[u8]) -> bool {
    let first = cairn_unix::path::components(p).next();
    first.is_some_and(|c| root().lookup(c).is_some())
}

/// If `path`, taken relative to `dirfd`, lies in the special tree: where
/// it leads (`follow`: follow a final symlink). `None`: a TFS path.
pub fn lookup(dirfd: i32, path: &[u8], follow: bool) -> Option<Result<Target, Errno>> {
    init();
    let base = if path.first() == Some(&b'/') {
        Vec::new()
    } else if dirfd == crate::syscall::fs::AT_FDCWD {
        crate::process::current()
            .cwd
            .lock()
            .path
            .as_bytes()
            .to_vec()
    } else {
        let f = crate::syscall::fs::get_file(dirfd).ok()?;
        f.downcast::<OpenDir>()?.path.clone()
    };
    let abs = absolute(&base, path);
    if !inside(&abs) {
        return None;
    }
    Some(resolve(abs, follow, 0))
}

fn resolve(abs: Vec<u8>, follow: bool, depth: u32) -> Result<Target, Errno> {
    if depth > cairn_unix::path::MAXSYMLINKS {
        return Err(Errno::ELOOP);
    }
    let w = walk(&mut Ns, &Ns.root(), b"/", &abs, false)?;
    let (found, kind) = w.target.ok_or(Errno::ENOENT)?;
    if kind != NodeKind::Symlink || !(follow || w.trailing_slash) {
        return Ok(Target::Node(found));
    }
    if let Some(f) = found.node.target_file() {
        return Ok(Target::File(f));
    }
    let target = found.node.readlink().ok_or(Errno::EINVAL)?;
    let mut dir = found.path.clone();
    while dir.len() > 1 && dir.last() != Some(&b'/') {
        dir.pop();
    }
    let next = absolute(&dir, &target);
    if inside(&next) {
        resolve(next, follow, depth + 1)
    } else {
        Ok(Target::Tfs(next))
    }
}

/// Opens a node found by [`lookup`].
pub fn open(found: &Found, flags: u32) -> Result<FileKind, Errno> {
    match found.node.kind() {
        NodeKind::Directory => {
            if flags & crate::process::file::O_ACCMODE != 0 {
                return Err(Errno::EISDIR);
            }
            Ok(FileKind::Object(Arc::new(OpenDir {
                path: found.path.clone(),
                node: found.node.clone(),
            })))
        }
        _ => {
            if flags & crate::process::file::O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            found.node.open(&found.path, flags)
        }
    }
}
