//! Path walks across mount points: [`Loc`] (a volume of the mount table
//! and an inode of it) and [`Walker`], the `cairn_unix::path::Namespace`
//! the syscalls walk with.
//!
//! A lookup that lands on a directory some volume is mounted over returns
//! that volume's root instead; `..` of a volume's root is the parent of
//! the directory it covers; `..` of `/` is `/`. The mount table is fixed
//! after boot, so no lock guards it.
//!
//! **Locks.** A walker holds the `fs` mutex of one volume at a time (the
//! one it last looked in), switching when the walk crosses into another,
//! so no two `fs` mutexes are ever held together and no order between
//! them exists (they share the lock class `fs`: the validator would refuse
//! a second one as a recursive acquisition). The caller reads the fd table
//! and the working directory before it makes a walker (they are never
//! locked under an `fs` mutex). After a walk the caller goes on with the same walker: an
//! operation in the volume the walk ended in runs under the mutex the walk
//! held (as one `fs` critical section, as before volumes existed).
//! Kernel-lock context, in a thread (the mutex may sleep).

use super::{FsGuard, Mount, Tfs, errno_of};
use alloc::vec::Vec;
use cairn_tfs::{FileType, FsError, Ino};
use cairn_unix::errno::Errno;
use cairn_unix::path::{Namespace, NodeKind};

/// A file or directory of the whole tree: a mounted volume and an inode
/// of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Its volume's index in the mount table.
    pub mount: u16,
    pub ino: Ino,
}

impl Loc {
    /// Its volume.
    ///
    /// # Panics
    /// If the volume is not mounted (a `Loc` is only made from mounted
    /// volumes, and the table never shrinks).
    pub fn volume(&self) -> &'static Mount {
        super::mount(self.mount).expect("Loc of an unmounted volume")
    }

    /// A number naming it uniquely across volumes (the volume's index in
    /// the high half, the inode in the low): a key for tables of files.
    pub fn key(&self) -> u64 {
        (u64::from(self.mount) << 32) | u64::from(self.ino.0)
    }

    /// Whether it is the root of a volume mounted over a directory (a
    /// mount point: it cannot be renamed or removed).
    pub fn is_mount_point(&self) -> bool {
        let m = self.volume();
        m.covers().is_some() && self.ino == m.root_loc().ino
    }
}

/// The Linux errno of a TFS error.
pub fn fs_errno(e: FsError) -> Errno {
    Errno::from_raw(errno_of(e).0).unwrap_or(Errno::EIO)
}

/// The filesystem of one volume at a time, for a walk and the operation
/// that follows it.
#[derive(Default)]
pub struct Walker {
    held: Option<(u16, FsGuard<'static>)>,
}

impl Walker {
    pub fn new() -> Walker {
        Walker { held: None }
    }

    /// The filesystem of volume `mount`, locked (any other one released
    /// first).
    pub fn fs(&mut self, mount: u16) -> &mut Tfs {
        if self.held.as_ref().is_none_or(|(m, _)| *m != mount) {
            self.held = None;
            let m = super::mount(mount).expect("walk into an unmounted volume");
            self.held = Some((mount, m.fs()));
        }
        &mut self.held.as_mut().expect("just locked").1
    }

    /// Releases the volume it holds.
    pub fn release(&mut self) {
        self.held = None;
    }

    /// The absolute path of directory `dir` as the tree names it now
    /// (`fchdir`, which must leave `getcwd` right): each step up finds the
    /// name under which the parent lists the child (for a volume's root,
    /// the name of the directory it covers). `ENOENT` for a directory no
    /// longer in the tree (removed), as Linux's getcwd.
    pub fn path_of(&mut self, dir: Loc) -> Result<Vec<u8>, Errno> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = dir;
        let mut len = 0;
        loop {
            // The node that holds `cur`'s name: the covered directory for
            // a mounted volume's root.
            let m = cur.volume();
            let named = match m.covers() {
                Some(at) if cur.ino == m.root_loc().ino => at,
                _ => cur,
            };
            let parent = self.parent(&cur)?;
            if parent == cur {
                break; // `/`
            }
            let fs = self.fs(named.mount);
            let entry = fs
                .readdir(parent.ino)
                .map_err(fs_errno)?
                .into_iter()
                .find(|e| e.ino == named.ino)
                .ok_or(Errno::ENOENT)?;
            len += entry.name.len() + 1;
            if len >= cairn_unix::path::PATH_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            names.push(entry.name);
            cur = parent;
        }
        let mut path = Vec::with_capacity(len.max(1));
        for n in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(n);
        }
        if path.is_empty() {
            path.push(b'/');
        }
        Ok(path)
    }
}

fn kind_of(k: FileType) -> NodeKind {
    match k {
        FileType::Directory => NodeKind::Directory,
        FileType::Symlink => NodeKind::Symlink,
        FileType::Regular => NodeKind::Other,
    }
}

impl Namespace for Walker {
    type Node = Loc;

    fn root(&self) -> Loc {
        super::root().expect("walk without a root").root_loc()
    }

    fn parent(&mut self, dir: &Loc) -> Result<Loc, Errno> {
        let m = dir.volume();
        if dir.ino == m.root_loc().ino {
            return match m.covers() {
                // `..` of a mounted volume's root leaves the volume.
                Some(at) => self.parent(&at),
                None => Ok(*dir),
            };
        }
        let ino = self
            .fs(dir.mount)
            .lookup(dir.ino, b"..")
            .map_err(fs_errno)?;
        Ok(Loc {
            mount: dir.mount,
            ino,
        })
    }

    fn lookup(&mut self, dir: &Loc, name: &[u8]) -> Result<Option<(Loc, NodeKind)>, Errno> {
        let fs = self.fs(dir.mount);
        let ino = match fs.lookup(dir.ino, name) {
            Ok(ino) => ino,
            Err(FsError::NoEnt) => return Ok(None),
            Err(e) => return Err(fs_errno(e)),
        };
        let kind = kind_of(fs.stat(ino).map_err(fs_errno)?.kind);
        let found = Loc {
            mount: dir.mount,
            ino,
        };
        Ok(Some(match super::covering(found) {
            Some(m) => (m.root_loc(), NodeKind::Directory),
            None => (found, kind),
        }))
    }

    fn read_link(&mut self, link: &Loc) -> Result<Vec<u8>, Errno> {
        self.fs(link.mount).readlink(link.ino).map_err(fs_errno)
    }
}
