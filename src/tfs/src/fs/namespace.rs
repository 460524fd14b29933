//! Names: lookup and path resolution (with symlinks), create, mkdir,
//! symlink, link, unlink, rmdir, rename, readdir and stat. Every change is
//! the Nanos update for it — a one-entry update of the parent's `children`
//! tuple naming the new tuple, an existing one (link, rename) or null
//! (unlink) — staged for the next commit, which makes a multi-entry change
//! such as rename atomic.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use super::{DirEntry, DirInfo, FileInfo, FileType, Filesystem, Ino, Stat};
use crate::device::BlockDevice;
use crate::error::FsError;
use crate::store::{NodeId, Value};
use crate::symbol::known;
use alloc::vec::Vec;

/// Longest name.
pub const NAME_MAX: usize = 255;
/// Longest path.
pub const PATH_MAX: usize = 4096;
/// Symlinks followed before `ELOOP` (Nanos `SYMLINK_HOPS_MAX`).
pub const SYMLINK_HOPS_MAX: u32 = 8;

fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::Inval);
    }
    Ok(())
}

impl<D: BlockDevice> Filesystem<D> {
    fn dir(&self, dir: Ino) -> Result<DirInfo, FsError> {
        match self.dirs.get(&dir.0) {
            Some(d) => Ok(*d),
            None if self.kind(dir.0).is_some() => Err(FsError::NotDir),
            None => Err(FsError::NoEnt),
        }
    }

    fn entry(&self, dir: Ino, name: &[u8]) -> Result<Option<NodeId>, FsError> {
        let d = self.dir(dir)?;
        let Some(sym) = self.store.symbols.find(name) else {
            return Ok(None);
        };
        Ok(match self.store.get(d.children, sym) {
            Some(Value::Tuple(t)) => Some(*t),
            _ => None,
        })
    }

    /// The entry `name` of directory `dir` ("." and ".." included).
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Ino, FsError> {
        let d = self.dir(dir)?;
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        match name {
            b"." => Ok(dir),
            b".." => Ok(Ino(d.parent)),
            _ => self.entry(dir, name)?.map(Ino).ok_or(FsError::NoEnt),
        }
    }

    /// Resolves `path` from the root (a leading '/' is optional), following
    /// symlinks in every component and, if `follow`, in the last one.
    pub fn resolve(&self, path: &[u8], follow: bool) -> Result<Ino, FsError> {
        if path.len() > PATH_MAX {
            return Err(FsError::NameTooLong);
        }
        let mut pending: Vec<Vec<u8>> = components(path);
        let mut cur = self.root;
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            let next = self.lookup(Ino(cur), &c)?.0;
            let last = pending.is_empty();
            if self.symlinks.contains(&next) && (!last || follow) {
                hops += 1;
                if hops > SYMLINK_HOPS_MAX {
                    return Err(FsError::Loop);
                }
                let target = self.readlink(Ino(next))?;
                if target.first() == Some(&b'/') {
                    cur = self.root;
                }
                pending.extend(components(&target));
                continue;
            }
            cur = next;
        }
        Ok(Ino(cur))
    }

    /// Resolves all but the last component of `path`; returns the directory
    /// and the final name.
    pub fn resolve_parent(&self, path: &[u8]) -> Result<(Ino, Vec<u8>), FsError> {
        let mut parts: Vec<Vec<u8>> = components(path);
        parts.reverse();
        let name = parts.pop().ok_or(FsError::Inval)?;
        let mut dir_path = Vec::new();
        for p in parts {
            dir_path.push(b'/');
            dir_path.extend_from_slice(&p);
        }
        let dir = self.resolve(&dir_path, true)?;
        self.dir(dir)?;
        Ok((dir, name))
    }

    fn new_entry(&mut self, dir: Ino, name: &[u8]) -> Result<(DirInfo, NodeId), FsError> {
        check_name(name)?;
        let d = self.dir(dir)?;
        if self.entry(dir, name)?.is_some() {
            return Err(FsError::Exist);
        }
        self.reserve_new_node()?;
        let t = self.store.new_tuple();
        let now = self.now();
        self.store.set(t, known::ATIME, Some(now.clone()));
        self.store.set(t, known::MTIME, Some(now));
        Ok((d, t))
    }

    /// Makes room in the in-memory index for one more file, directory or
    /// symlink (its tuple and one child tuple), so that the large tables
    /// grow here, fallibly, and not in the middle of the operation: the
    /// whole tree lives in memory, and when memory is short the volume is
    /// as full as one out of inodes (`NoSpace`).
    fn reserve_new_node(&mut self) -> Result<(), FsError> {
        let ids = self.store.node_count() + 2;
        self.store
            .try_reserve_nodes(2)
            .and_then(|()| self.files.try_reserve(ids, 1))
            .and_then(|()| self.links.try_reserve(ids, 1))
            .map_err(|_| FsError::NoSpace)
    }

    fn publish(&mut self, dir: Ino, d: DirInfo, name: &[u8], t: NodeId) {
        let sym = self.sym(name);
        self.log_set(d.children, sym, Some(Value::Tuple(t)));
        self.touch(dir.0);
    }

    /// Creates an empty regular file `name` in `dir`.
    pub fn create(&mut self, dir: Ino, name: &[u8]) -> Result<Ino, FsError> {
        let (d, t) = self.new_entry(dir, name)?;
        let e = self.store.new_tuple();
        self.store.set(t, known::EXTENTS, Some(Value::Tuple(e)));
        self.publish(dir, d, name, t);
        self.files.insert(
            t,
            FileInfo {
                extents_tuple: Some(e),
                ..FileInfo::default()
            },
        );
        self.links.insert(t, 1);
        Ok(Ino(t))
    }

    /// Creates directory `name` in `dir`.
    pub fn mkdir(&mut self, dir: Ino, name: &[u8]) -> Result<Ino, FsError> {
        let (d, t) = self.new_entry(dir, name)?;
        let c = self.store.new_tuple();
        self.store.set(t, known::CHILDREN, Some(Value::Tuple(c)));
        self.publish(dir, d, name, t);
        self.dirs.insert(
            t,
            DirInfo {
                parent: dir.0,
                children: c,
            },
        );
        Ok(Ino(t))
    }

    /// Creates symlink `name` in `dir` pointing at `target`.
    pub fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8]) -> Result<Ino, FsError> {
        if target.is_empty() {
            return Err(FsError::NoEnt);
        }
        if target.len() >= PATH_MAX {
            return Err(FsError::NameTooLong);
        }
        let (d, t) = self.new_entry(dir, name)?;
        self.store
            .set(t, known::LINKTARGET, Some(Value::Str(target.to_vec())));
        self.publish(dir, d, name, t);
        self.symlinks.insert(t);
        self.links.insert(t, 1);
        Ok(Ino(t))
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>, FsError> {
        if !self.symlinks.contains(&ino.0) {
            return Err(if self.kind(ino.0).is_some() {
                FsError::Inval
            } else {
                FsError::NoEnt
            });
        }
        self.store
            .get(ino.0, known::LINKTARGET)
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec)
            .ok_or(FsError::Inval)
    }

    /// Adds the name `name` in `dir` for the non-directory `ino`.
    pub fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> Result<(), FsError> {
        match self.kind(ino.0) {
            None => return Err(FsError::NoEnt),
            Some(FileType::Directory) => return Err(FsError::Perm),
            Some(_) if self.orphans.contains(&ino.0) => return Err(FsError::NoEnt),
            Some(_) => {}
        }
        check_name(name)?;
        let d = self.dir(dir)?;
        if self.entry(dir, name)?.is_some() {
            return Err(FsError::Exist);
        }
        self.publish(dir, d, name, ino.0);
        *self.links.get_or_insert(ino.0, 0) += 1;
        Ok(())
    }

    fn drop_name(&mut self, node: NodeId) {
        let Some(n) = self.links.get_mut(&node) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        if self.held.contains_key(&node) {
            self.links.remove(&node);
            self.orphans.insert(node);
        } else {
            self.destroy(node);
        }
    }

    /// Removes the non-directory entry `name` of `dir`.
    pub fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<(), FsError> {
        let t = self.entry(dir, name)?.ok_or(FsError::NoEnt)?;
        if self.dirs.contains_key(&t) {
            return Err(FsError::IsDir);
        }
        let d = self.dir(dir)?;
        let sym = self.sym(name);
        self.log_set(d.children, sym, None);
        self.touch(dir.0);
        self.drop_name(t);
        Ok(())
    }

    /// Removes the empty directory `name` of `dir`.
    pub fn rmdir(&mut self, dir: Ino, name: &[u8]) -> Result<(), FsError> {
        if name == b"." {
            return Err(FsError::Inval);
        }
        if name == b".." {
            return Err(FsError::NotEmpty);
        }
        let t = self.entry(dir, name)?.ok_or(FsError::NoEnt)?;
        let Some(td) = self.dirs.get(&t).copied() else {
            return Err(FsError::NotDir);
        };
        if self.store.tuple_len(td.children) != 0 {
            return Err(FsError::NotEmpty);
        }
        let d = self.dir(dir)?;
        let sym = self.sym(name);
        self.log_set(d.children, sym, None);
        self.touch(dir.0);
        self.dirs.remove(&t);
        self.times_dirty.remove(&t);
        Ok(())
    }

    fn is_ancestor(&self, ancestor: NodeId, mut node: NodeId) -> bool {
        for _ in 0..=self.dirs.len() {
            if node == ancestor {
                return true;
            }
            match self.dirs.get(&node) {
                Some(d) if d.parent != node => node = d.parent,
                _ => return false,
            }
        }
        false
    }

    /// Moves entry `from_name` of `from_dir` to `to_name` of `to_dir`,
    /// replacing a target that is a non-directory or an empty directory.
    pub fn rename(
        &mut self,
        from_dir: Ino,
        from_name: &[u8],
        to_dir: Ino,
        to_name: &[u8],
    ) -> Result<(), FsError> {
        if from_name == b"." || from_name == b".." {
            return Err(FsError::Inval);
        }
        let src = self.entry(from_dir, from_name)?.ok_or(FsError::NoEnt)?;
        check_name(to_name)?;
        let to = self.dir(to_dir)?;
        let from = self.dir(from_dir)?;
        let dst = self.entry(to_dir, to_name)?;
        if from_dir == to_dir && from_name == to_name {
            return Ok(());
        }
        let src_is_dir = self.dirs.contains_key(&src);
        if src_is_dir && self.is_ancestor(src, to_dir.0) {
            return Err(FsError::Inval);
        }
        if let Some(dst) = dst {
            if dst == src {
                return Ok(());
            }
            match (src_is_dir, self.dirs.get(&dst)) {
                (true, Some(dd)) if self.store.tuple_len(dd.children) != 0 => {
                    return Err(FsError::NotEmpty);
                }
                (true, None) => return Err(FsError::NotDir),
                (false, Some(_)) => return Err(FsError::IsDir),
                _ => {}
            }
        }
        let to_sym = self.sym(to_name);
        let from_sym = self.sym(from_name);
        self.log_set(to.children, to_sym, Some(Value::Tuple(src)));
        self.log_set(from.children, from_sym, None);
        if let Some(d) = self.dirs.get_mut(&src) {
            d.parent = to_dir.0;
        }
        if let Some(dst) = dst {
            if self.dirs.remove(&dst).is_some() {
                self.times_dirty.remove(&dst);
            } else {
                self.drop_name(dst);
            }
        }
        self.touch(from_dir.0);
        if from_dir != to_dir {
            self.touch(to_dir.0);
        }
        Ok(())
    }

    /// Swaps entries `a_name` of `a_dir` and `b_name` of `b_dir`
    /// (`RENAME_EXCHANGE`): both must exist; either may be a directory,
    /// which then changes parent. Both updates are staged for the same
    /// commit, so the swap is atomic on disk too. `EINVAL` if a directory
    /// would become its own descendant.
    pub fn exchange(
        &mut self,
        a_dir: Ino,
        a_name: &[u8],
        b_dir: Ino,
        b_name: &[u8],
    ) -> Result<(), FsError> {
        for n in [a_name, b_name] {
            if n == b"." || n == b".." {
                return Err(FsError::Inval);
            }
        }
        let a = self.entry(a_dir, a_name)?.ok_or(FsError::NoEnt)?;
        let b = self.entry(b_dir, b_name)?.ok_or(FsError::NoEnt)?;
        let (ad, bd) = (self.dir(a_dir)?, self.dir(b_dir)?);
        if a == b {
            return Ok(());
        }
        // `a` moves under `b_dir` and `b` under `a_dir`.
        if (self.dirs.contains_key(&a) && self.is_ancestor(a, b_dir.0))
            || (self.dirs.contains_key(&b) && self.is_ancestor(b, a_dir.0))
        {
            return Err(FsError::Inval);
        }
        let (a_sym, b_sym) = (self.sym(a_name), self.sym(b_name));
        self.log_set(ad.children, a_sym, Some(Value::Tuple(b)));
        self.log_set(bd.children, b_sym, Some(Value::Tuple(a)));
        if let Some(d) = self.dirs.get_mut(&a) {
            d.parent = b_dir.0;
        }
        if let Some(d) = self.dirs.get_mut(&b) {
            d.parent = a_dir.0;
        }
        self.touch(a_dir.0);
        if a_dir != b_dir {
            self.touch(b_dir.0);
        }
        Ok(())
    }

    /// The entries of `dir` ("." and ".." are not listed).
    pub fn readdir(&self, dir: Ino) -> Result<Vec<DirEntry>, FsError> {
        let d = self.dir(dir)?;
        let mut out = Vec::new();
        for (sym, v) in self.store.entries(d.children) {
            let Value::Tuple(t) = v else { continue };
            let Some(kind) = self.kind(*t) else { continue };
            out.push(DirEntry {
                name: self.store.symbols.name(sym).to_vec(),
                ino: Ino(*t),
                kind,
            });
        }
        Ok(out)
    }

    /// Attributes of `ino`.
    pub fn stat(&self, ino: Ino) -> Result<Stat, FsError> {
        let kind = self.kind(ino.0).ok_or(FsError::NoEnt)?;
        let (atime, mtime) = self.times(ino.0);
        let (mode, size, nlink, blocks) = match kind {
            FileType::Directory => {
                let d = self.dirs[&ino.0];
                let subdirs = self
                    .store
                    .entries(d.children)
                    .filter(|(_, v)| matches!(v, Value::Tuple(t) if self.dirs.contains_key(t)))
                    .count() as u32;
                (0o040755, 0, 2 + subdirs, 0)
            }
            FileType::Symlink => {
                let len = self.readlink(ino).map(|t| t.len() as u64).unwrap_or(0);
                (
                    0o120777,
                    len,
                    self.links.get(&ino.0).copied().unwrap_or(0),
                    0,
                )
            }
            FileType::Regular => {
                let f = &self.files[&ino.0];
                let blocks = f.extents.values().map(|x| x.allocated).sum();
                (
                    0o100644,
                    f.length,
                    self.links.get(&ino.0).copied().unwrap_or(0),
                    blocks,
                )
            }
        };
        Ok(Stat {
            ino,
            kind,
            mode,
            size,
            nlink,
            blocks,
            atime,
            mtime,
        })
    }
}

/// Splits a path into its non-empty components, last one first.
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    v.reverse();
    v
}
