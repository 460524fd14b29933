//! The index a mount builds from the replayed tree: which tuples are
//! directories (and their parents), regular files (with their extent maps
//! and lengths) and symlinks, how many names each non-directory has, and
//! the used-space map. Building it validates the tree — cycles, directories
//! reachable twice, entries that are not tuples, malformed or overlapping
//! extents, extents outside the volume — and reports every problem found,
//! so mount can refuse with a reason and fsck can list them all.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use super::extent_map::ExtentMap;
use crate::frame::Span;
use crate::nodemap::NodeMap;
use crate::space::SpaceMap;
use crate::store::{NodeId, Store, Value, parse_decimal};
use crate::symbol::{Sym, known};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Largest extent in sectors (Nanos `MAX_EXTENT_SIZE`, 32 MiB).
pub const MAX_EXTENT_SECTORS: u64 = 65536;

/// One extent of a file: file sectors `[key, key+length)` live at storage
/// sectors `[start, start+length)`; `[start, start+allocated)` is reserved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// First storage sector.
    pub start: u64,
    /// Sectors of file data mapped.
    pub length: u64,
    /// Sectors reserved (at least `length`).
    pub allocated: u64,
    /// Reads as zeros until written (fallocate).
    pub uninited: bool,
    /// The extent's tuple.
    pub tuple: NodeId,
}

/// A regular file.
#[derive(Clone, Debug, Default)]
pub struct FileInfo {
    /// Extents by first file sector.
    pub extents: ExtentMap,
    /// Length in bytes.
    pub length: u64,
    /// The `extents` tuple, once the file has one.
    pub extents_tuple: Option<NodeId>,
}

/// A directory.
#[derive(Clone, Copy, Debug)]
pub struct DirInfo {
    /// Parent directory (the root is its own parent).
    pub parent: NodeId,
    /// The `children` tuple.
    pub children: NodeId,
}

/// Result of indexing a tree.
#[derive(Debug, Default)]
pub struct Index {
    /// Directories.
    pub dirs: BTreeMap<NodeId, DirInfo>,
    /// Regular files.
    pub files: NodeMap<FileInfo>,
    /// Symbolic links.
    pub symlinks: BTreeSet<NodeId>,
    /// Names of each non-directory.
    pub links: NodeMap<u32>,
    /// First name found for every node (parent, name), for messages;
    /// indexed by node id.
    pub names: Vec<Option<(NodeId, Sym)>>,
}

impl Index {
    /// A readable path of `node` ("/" for the root).
    pub fn path(&self, store: &Store, node: NodeId) -> String {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = node;
        let mut guard = 0;
        while let Some(&Some((parent, sym))) = self.names.get(cur as usize) {
            parts.push(store.symbols.name(sym));
            cur = parent;
            guard += 1;
            if guard > 4096 {
                break;
            }
        }
        if parts.is_empty() {
            return String::from("/");
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(p));
        }
        s
    }
}

const MAX_PROBLEMS: usize = 1000;

/// Where a node was met in the walk, turned into a path only for a
/// problem's message (building paths for every entry cost more than the
/// rest of the walk).
#[derive(Clone, Copy)]
enum Place {
    Root,
    Entry { dir: NodeId, name: Sym },
}

struct Builder<'a> {
    store: &'a Store,
    index: Index,
    /// The role each node was claimed for, by node id.
    claimed: Vec<Option<&'static str>>,
    problems: Vec<String>,
}

impl Builder<'_> {
    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }

    /// The path of `at`, for a message.
    fn path(&self, at: Place) -> String {
        match at {
            Place::Root => String::from("/"),
            Place::Entry { dir, name } => {
                let mut p = self.index.path(self.store, dir);
                if p != "/" {
                    p.push('/');
                }
                p.push_str(&String::from_utf8_lossy(self.store.symbols.name(name)));
                p
            }
        }
    }

    fn claim(&mut self, node: NodeId, role: &'static str, at: Place) -> bool {
        let i = node as usize;
        if self.claimed.len() <= i {
            self.claimed.resize(i + 1, None);
        }
        if let Some(prev) = self.claimed[i] {
            let msg = format!(
                "{}: {role} tuple is already used as {prev} elsewhere in the tree",
                self.path(at)
            );
            self.problem(msg);
            return false;
        }
        self.claimed[i] = Some(role);
        true
    }

    /// Indexes file `node`, whose `filelength` and `extents` are given.
    fn file(&mut self, node: NodeId, at: Place, length: Option<&Value>, extents: Option<&Value>) {
        let store = self.store;
        let mut info = FileInfo::default();
        match length {
            None => {}
            Some(v) => match v.as_u64() {
                Some(n) => info.length = n,
                None => {
                    let path = self.path(at);
                    self.problem(format!("{path}: filelength is not a number"))
                }
            },
        }
        match extents {
            None => {}
            Some(Value::Tuple(e)) if store.is_tuple(*e) => self.adopt_extents(*e, &mut info, at),
            Some(_) => {
                let path = self.path(at);
                self.problem(format!("{path}: extents is not a tuple"))
            }
        }
        self.index.files.insert(node, info);
    }

    fn adopt_extents(&mut self, e: NodeId, info: &mut FileInfo, at: Place) {
        if self.claim(e, "extents", at) {
            info.extents_tuple = Some(e);
            self.extents(e, info, at);
        }
    }

    fn extents(&mut self, e: NodeId, info: &mut FileInfo, at: Place) {
        let store = self.store;
        for (name, v) in store.entries(e) {
            let key_bytes = store.symbols.name(name);
            let Some(key) = parse_decimal(key_bytes) else {
                let k = String::from_utf8_lossy(key_bytes);
                let path = self.path(at);
                self.problem(format!("{path}: extent name {k:?} is not a block number"));
                continue;
            };
            let Value::Tuple(x) = v else {
                let path = self.path(at);
                self.problem(format!("{path}: extent {key} is not a tuple"));
                continue;
            };
            if !store.is_tuple(*x) || !self.claim(*x, "extent", at) {
                continue;
            }
            let [offset, length, allocated, uninited] = store.get_many(
                *x,
                [
                    known::OFFSET,
                    known::LENGTH,
                    known::ALLOCATED,
                    known::UNINITED,
                ],
            );
            let num = |v: Option<&Value>| v.and_then(Value::as_u64);
            let (Some(start), Some(length), Some(allocated)) =
                (num(offset), num(length), num(allocated))
            else {
                let path = self.path(at);
                self.problem(format!(
                    "{path}: extent {key} lacks offset, length or allocated"
                ));
                continue;
            };
            if length == 0 || allocated < length {
                let path = self.path(at);
                self.problem(format!(
                    "{path}: extent {key} has length {length} and allocation {allocated}"
                ));
                continue;
            }
            if key.checked_add(length).is_none() || start.checked_add(allocated).is_none() {
                let path = self.path(at);
                self.problem(format!("{path}: extent {key} overflows"));
                continue;
            }
            // The usual file has one extent: nothing to overlap.
            if !info.extents.is_empty() {
                if let Some((&pk, p)) = info.extents.range(..key + length).next_back() {
                    if pk + p.length > key {
                        let path = self.path(at);
                        self.problem(format!(
                            "{path}: extents {pk} and {key} overlap in the file"
                        ));
                        continue;
                    }
                }
                if let Some((&nk, _)) = info.extents.range(key..).next() {
                    if nk < key + length {
                        let path = self.path(at);
                        self.problem(format!(
                            "{path}: extents {key} and {nk} overlap in the file"
                        ));
                        continue;
                    }
                }
            }
            let uninited = uninited.is_some();
            info.extents.insert(
                key,
                Extent {
                    start,
                    length,
                    allocated,
                    uninited,
                    tuple: *x,
                },
            );
        }
    }
}

/// Indexes the tree under `root`. `chain` lists the log extensions, which
/// are reserved in the space map before the file extents.
pub fn build(
    store: &Store,
    root: NodeId,
    volume_sectors: u64,
    chain: &[Span],
) -> (Index, SpaceMap, Vec<String>) {
    let mut b = Builder {
        store,
        index: Index {
            files: NodeMap::with_capacity(store.node_count(), 0),
            links: NodeMap::with_capacity(store.node_count(), 0),
            ..Index::default()
        },
        claimed: alloc::vec![None; store.node_count()],
        problems: Vec::new(),
    };
    b.index.names = alloc::vec![None; store.node_count()];
    let mut space = SpaceMap::new(volume_sectors);
    for span in chain {
        if !space.reserve(span.start, span.sectors) {
            b.problem(format!(
                "log extension at sector {} overlaps another or the volume end",
                span.start
            ));
        }
    }
    let Some(root_children) = store.get_tuple(root, known::CHILDREN) else {
        b.problem(String::from("root tuple has no children tuple"));
        return (b.index, space, b.problems);
    };
    b.claim(root, "directory", Place::Root);
    b.claim(root_children, "children", Place::Root);
    b.index.dirs.insert(
        root,
        DirInfo {
            parent: root,
            children: root_children,
        },
    );
    let mut stack = alloc::vec![root];
    while let Some(dir) = stack.pop() {
        let children = b.index.dirs[&dir].children;
        for (name, v) in store.entries(children) {
            let Value::Tuple(t) = v else {
                let p = b.index.path(store, dir);
                let n = String::from_utf8_lossy(store.symbols.name(name));
                b.problem(format!("{p}: entry {n:?} is not a tuple"));
                continue;
            };
            let t = *t;
            if !store.is_tuple(t) {
                continue;
            }
            let first_sight =
                t != root && b.index.names.get(t as usize).is_some_and(|n| n.is_none());
            if first_sight {
                b.index.names[t as usize] = Some((dir, name));
            }
            let at = Place::Entry { dir, name };
            let [children, linktarget, length, extents] = store.get_many(
                t,
                [
                    known::CHILDREN,
                    known::LINKTARGET,
                    known::FILELENGTH,
                    known::EXTENTS,
                ],
            );
            let children = match children {
                Some(Value::Tuple(c)) if store.is_tuple(*c) => Some(*c),
                _ => None,
            };
            if let Some(c) = children {
                if !b.claim(t, "directory", at) || !b.claim(c, "children", at) {
                    continue;
                }
                b.index.dirs.insert(
                    t,
                    DirInfo {
                        parent: dir,
                        children: c,
                    },
                );
                stack.push(t);
            } else if let Some(n) = b.index.links.get_mut(&t) {
                *n += 1;
            } else {
                if !b.claim(t, "file", at) {
                    continue;
                }
                b.index.links.insert(t, 1);
                match linktarget {
                    Some(v) if v.as_bytes().is_some() => {
                        b.index.symlinks.insert(t);
                    }
                    Some(_) => {
                        let path = b.path(at);
                        b.problem(format!("{path}: linktarget is not a string"))
                    }
                    None => b.file(t, at, length, extents),
                }
            }
        }
    }
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(b.index.files.len());
    for f in b.index.files.values() {
        runs.extend(f.extents.values().map(|x| (x.start, x.allocated)));
    }
    if space.reserve_all(&mut runs) {
        return (b.index, space, b.problems);
    }
    // Something overlaps: reserve one by one to name the extents.
    let mut late = Vec::new();
    for (&node, f) in &b.index.files {
        for x in f.extents.values() {
            if !space.reserve(x.start, x.allocated) {
                let p = b.index.path(store, node);
                let what = if x.start.saturating_add(x.allocated) > volume_sectors {
                    "lies beyond the end of the volume"
                } else {
                    "overlaps another extent or the log"
                };
                late.push(format!(
                    "{p}: extent at sector {} ({} sectors) {what}",
                    x.start, x.allocated
                ));
            }
        }
    }
    for p in late {
        b.problem(p);
    }
    (b.index, space, b.problems)
}
