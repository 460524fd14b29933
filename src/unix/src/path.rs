//! Path resolution independent of the filesystem: length limits,
//! components, `.` and `..`, symlinks (ELOOP after 40), trailing slashes.
//!
//! Owns: the walk. The filesystem is reached through [`Namespace`], which
//! the kernel implements over TFS (look a name up in a directory, read a
//! link, go to a parent). The walk keeps the canonical absolute path of
//! where it is, so `chdir` can store it for `getcwd`.
//!
//! Contexts: kernel-lock (syscalls). Locks: none of its own; the
//! [`Namespace`] calls take the filesystem lock as they need it (and may
//! wait for I/O, releasing the kernel lock: the walk holds no lock across
//! them). The caller must not hold the address-space lock (lock order fd
//! table → filesystem → address space).
//!
//! Rules (Linux's):
//! * `""` is `ENOENT` (callers handle `AT_EMPTY_PATH` before);
//!   a path of [`PATH_MAX`] bytes or more, or a component over
//!   [`NAME_MAX`], is `ENAMETOOLONG`.
//! * Runs of `/` count as one; `..` of the root is the root.
//! * A non-directory before the last component is `ENOTDIR`; a missing
//!   one is `ENOENT`.
//! * Symlinks before the last component are always followed; the last one
//!   only when asked (`follow_last`) or when the path ends in `/`. More
//!   than [`MAXSYMLINKS`] symlinks in one walk is `ELOOP`.
//! * A trailing `/` requires the result to be a directory (`ENOTDIR`);
//!   a missing last component is reported with `trailing_slash` set so
//!   the caller decides (mkdir accepts it, `open(O_CREAT)` says `EISDIR`).

use alloc::vec::Vec;

use crate::Errno;

/// Longest path, including its NUL (so at most 4095 bytes).
pub const PATH_MAX: usize = 4096;
/// Longest component.
pub const NAME_MAX: usize = 255;
/// Most symlinks followed in one walk.
pub const MAXSYMLINKS: u32 = 40;

/// Checks a path's lengths: `ENOENT` if empty, `ENAMETOOLONG` if
/// `PATH_MAX` bytes or more or a component is longer than `NAME_MAX`.
pub fn check_path(p: &[u8]) -> Result<(), Errno> {
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    if p.len() >= PATH_MAX || components(p).any(|c| c.len() > NAME_MAX) {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// The non-empty components of `p` (`"/a//b/"` → `a`, `b`).
pub fn components(p: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    p.split(|&c| c == b'/').filter(|c| !c.is_empty())
}

/// True if `p` ends in `/` after at least one component (`"a/"`, not `"/"`).
pub fn has_trailing_slash(p: &[u8]) -> bool {
    p.last() == Some(&b'/') && components(p).next().is_some()
}

/// What a name is, as far as the walk cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else.
    Other,
}

/// The filesystem as the walk sees it.
pub trait Namespace {
    /// A reference to a file or directory.
    type Node: Clone;
    /// The root directory.
    fn root(&self) -> Self::Node;
    /// The parent of directory `dir` (the root's parent is the root).
    fn parent(&mut self, dir: &Self::Node) -> Result<Self::Node, Errno>;
    /// Looks `name` up in directory `dir`: `Ok(None)` if absent; errors
    /// such as `EACCES` or `EIO` end the walk.
    fn lookup(
        &mut self,
        dir: &Self::Node,
        name: &[u8],
    ) -> Result<Option<(Self::Node, NodeKind)>, Errno>;
    /// The target of symlink `link`.
    fn read_link(&mut self, link: &Self::Node) -> Result<Vec<u8>, Errno>;
}

/// The last component of a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Last {
    /// The path named the root itself (`/`, `/..`, a link to `/`).
    Root,
    /// It ended in `.` (or at a directory reached through a link whose
    /// target had no last name, like `..`'s of a link).
    Dot,
    /// It ended in `..`.
    DotDot,
    /// A name (unlink, rename, create use it with `parent`).
    Name(Vec<u8>),
}

/// The result of a walk.
#[derive(Clone, Debug)]
pub struct Walk<N> {
    /// The directory holding the last component (for `Name`), or the
    /// target directory itself (for `Root`, `Dot`, `DotDot`).
    pub parent: N,
    /// The last component.
    pub last: Last,
    /// The node found, `None` if the last name does not exist.
    pub target: Option<(N, NodeKind)>,
    /// The path ended in `/`.
    pub trailing_slash: bool,
    /// Symlinks followed.
    pub links: u32,
    /// Canonical absolute path of the target (or of the missing name),
    /// symlinks expanded.
    pub canonical: Vec<u8>,
}

fn join(canon: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in canon {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Resolves `path` relative to `start` (the cwd or a dirfd's directory,
/// whose canonical absolute path is `start_path`).
pub fn walk<NS: Namespace>(
    ns: &mut NS,
    start: &NS::Node,
    start_path: &[u8],
    path: &[u8],
    follow_last: bool,
) -> Result<Walk<NS::Node>, Errno> {
    check_path(path)?;
    let absolute = path.first() == Some(&b'/');
    let mut dir = if absolute { ns.root() } else { start.clone() };
    let mut canon: Vec<Vec<u8>> = if absolute {
        Vec::new()
    } else {
        components(start_path).map(<[u8]>::to_vec).collect()
    };
    // Components still to walk, last one first (popped from the end).
    let mut pending: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
    let mut trailing = has_trailing_slash(path);
    let mut links = 0u32;
    let mut last = if canon.is_empty() {
        Last::Root
    } else {
        Last::Dot
    };

    while let Some(comp) = pending.pop() {
        let is_last = pending.is_empty();
        if comp == b"." {
            last = Last::Dot;
            continue;
        }
        if comp == b".." {
            dir = ns.parent(&dir)?;
            canon.pop();
            last = Last::DotDot;
            continue;
        }
        let found = ns.lookup(&dir, &comp)?;
        match found {
            None if is_last => {
                canon.push(comp.clone());
                return Ok(Walk {
                    parent: dir,
                    last: Last::Name(comp),
                    target: None,
                    trailing_slash: trailing,
                    links,
                    canonical: join(&canon),
                });
            }
            None => return Err(Errno::ENOENT),
            Some((link, NodeKind::Symlink)) if !is_last || follow_last || trailing => {
                links += 1;
                if links > MAXSYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = ns.read_link(&link)?;
                check_path(&target)?;
                if is_last {
                    trailing |= has_trailing_slash(&target);
                }
                if target.first() == Some(&b'/') {
                    dir = ns.root();
                    canon.clear();
                    last = Last::Root;
                } else {
                    last = Last::Dot;
                }
                pending.extend(components(&target).rev().map(<[u8]>::to_vec));
            }
            Some((node, kind)) if !is_last => {
                if kind != NodeKind::Directory {
                    return Err(Errno::ENOTDIR);
                }
                dir = node;
                canon.push(comp);
            }
            Some((node, kind)) => {
                if trailing && kind != NodeKind::Directory {
                    return Err(Errno::ENOTDIR);
                }
                canon.push(comp.clone());
                return Ok(Walk {
                    parent: dir,
                    last: Last::Name(comp),
                    target: Some((node, kind)),
                    trailing_slash: trailing,
                    links,
                    canonical: join(&canon),
                });
            }
        }
    }
    // Ended on ".", "..", the root, or a link whose target ended so.
    Ok(Walk {
        parent: dir.clone(),
        last,
        target: Some((dir, NodeKind::Directory)),
        trailing_slash: trailing,
        links,
        canonical: join(&canon),
    })
}
