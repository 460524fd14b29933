//! System V shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`) for the
//! one process cairn runs. Debian's fio keeps its job table in a segment
//! (`shmget(IPC_PRIVATE)`, `shmat`, `shmctl(IPC_RMID)` at once, `shmdt` at
//! the end), so it needs these even when its jobs are threads.
//!
//! A segment is an unlinked TFS file of the segment's size (as a memfd,
//! `memfd.rs`): `shmat` maps it shared through the ordinary mmap path, so
//! two attachments see the same pages. `IPC_RMID` marks it removed: it
//! goes (its file with it) when its last attachment is detached. Keys are
//! kept for `shmget` lookups; permissions are recorded, not enforced (the
//! program runs as root). Attachments are found again by their address
//! (`shmdt`); an attachment removed by `munmap` instead is forgotten only
//! at `shmdt` of that address (EINVAL then, as nothing is mapped).
//!
//! Kernel-lock context, in the calling thread. Lock: `ipc.shm` (SpinLock,
//! kernel-lock only, a leaf: never held while mapping, unmapping or
//! touching the filesystem or user memory).

use super::SysResult;
use crate::fs::FileData;
use crate::process::aspace::{FileRef, PAGE};
use crate::process::current;
use crate::process::file::{FileKind, O_RDWR, OpenFile};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::sync::Arc;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;
use cairn_unix::prot::Prot;
use cairn_unix::vmap::{MapRequest, Placement, Share, VmapKind};

static SHM_CLASS: LockClass = LockClass::new("ipc.shm");

const IPC_PRIVATE: i32 = 0;
const IPC_CREAT: i32 = 0o1000;
const IPC_EXCL: i32 = 0o2000;
const IPC_RMID: i32 = 0;
const IPC_SET: i32 = 1;
const IPC_STAT: i32 = 2;
const SHM_RDONLY: i32 = 0o10000;
const SHM_RND: i32 = 0o20000;
const SHM_REMAP: i32 = 0o40000;
/// Largest segment (Linux's default `shmmax` is larger; this bounds a
/// typo's damage to the disk).
const SHM_MAX: u64 = 1 << 32;

struct Segment {
    key: i32,
    size: u64,
    mode: u32,
    file: Arc<FileData>,
    /// Holds the unlinked file open (TFS frees an unlinked file with no
    /// holder), as a memfd's descriptor does.
    _open: Arc<OpenFile>,
    attaches: u64,
    removed: bool,
}

struct Table {
    segments: BTreeMap<i32, Segment>,
    /// Attachment address → (segment id, mapped length).
    attached: BTreeMap<u64, (i32, u64)>,
    next_id: i32,
}

static SHM: SpinLock<Table> = SpinLock::new(
    &SHM_CLASS,
    Table {
        segments: BTreeMap::new(),
        attached: BTreeMap::new(),
        next_id: 0,
    },
);

/// An unlinked file of `size` bytes, held open.
fn new_file(size: u64) -> Result<(Arc<FileData>, Arc<OpenFile>), Errno> {
    let m = crate::fs::root().ok_or(Errno::ENOENT)?;
    let id = SHM.lock().next_id;
    let tmp = format!(".shm-{id}").into_bytes();
    let ino = {
        super::fs::room_for_new_node().map_err(|_| Errno::ENOMEM)?;
        let mut fs = m.fs();
        let root = fs.root();
        fs.create(root, &tmp).map_err(super::fs::tfs_err)?
    };
    let file = m.file(&mut m.fs(), ino);
    let open = OpenFile::new(FileKind::Regular(file.clone()), O_RDWR);
    let sized = m.truncate(&file, size);
    {
        let mut fs = m.fs();
        let root = fs.root();
        fs.unlink(root, &tmp).map_err(super::fs::tfs_err)?;
    }
    sized.map_err(super::fs::pc_err)?;
    crate::special::proc::remember_path(
        file.loc(),
        format!("/SYSV{id:08x} (deleted)").into_bytes(),
    );
    Ok((file, open))
}

pub fn shmget(key: i32, size: u64, flags: i32) -> SysResult {
    if key != IPC_PRIVATE {
        let t = SHM.lock();
        if let Some((&id, s)) = t.segments.iter().find(|(_, s)| s.key == key && !s.removed) {
            if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            if size > s.size {
                return Err(Errno::EINVAL);
            }
            return Ok(id as u64);
        }
        if flags & IPC_CREAT == 0 {
            return Err(Errno::ENOENT);
        }
    }
    if size == 0 || size > SHM_MAX {
        return Err(Errno::EINVAL);
    }
    let (file, open) = new_file(size)?;
    let mut t = SHM.lock();
    let id = t.next_id;
    t.next_id = t.next_id.checked_add(1).ok_or(Errno::ENOSPC)?;
    t.segments.insert(
        id,
        Segment {
            key,
            size,
            mode: (flags & 0o777) as u32,
            file,
            _open: open,
            attaches: 0,
            removed: false,
        },
    );
    Ok(id as u64)
}

pub fn shmat(id: i32, addr: u64, flags: i32) -> SysResult {
    let (file, size) = {
        let t = SHM.lock();
        let s = t.segments.get(&id).ok_or(Errno::EINVAL)?;
        (s.file.clone(), s.size)
    };
    let len = size.next_multiple_of(PAGE);
    let prot = if flags & SHM_RDONLY != 0 {
        Prot::READ
    } else {
        Prot::RW
    };
    let placement = match addr {
        0 => Placement::Anywhere,
        a => {
            let a = if flags & SHM_RND != 0 {
                a & !(PAGE - 1)
            } else {
                a
            };
            if a % PAGE != 0 {
                return Err(Errno::EINVAL);
            }
            if flags & SHM_REMAP != 0 {
                Placement::Fixed(a)
            } else {
                Placement::FixedNoReplace(a)
            }
        }
    };
    let aspace = &current().aspace;
    let mapped = aspace
        .with_vmaps(|v| {
            v.mmap(MapRequest {
                len,
                prot,
                max_prot: Prot::ALL,
                share: Share::Shared,
                kind: VmapKind::File {
                    file: FileRef(file.clone()),
                    offset: 0,
                },
                placement,
            })
        })
        .map_err(|e| if e == Errno::EEXIST { Errno::EINVAL } else { e })?;
    aspace.zap(&mapped.unmapped);
    let mut t = SHM.lock();
    if let Some(s) = t.segments.get_mut(&id) {
        s.attaches += 1;
    }
    t.attached.insert(mapped.addr, (id, len));
    Ok(mapped.addr)
}

pub fn shmdt(addr: u64) -> SysResult {
    let (id, len) = SHM.lock().attached.remove(&addr).ok_or(Errno::EINVAL)?;
    let r = super::mm::munmap(addr, len);
    let gone = {
        let mut t = SHM.lock();
        let done = t.segments.get_mut(&id).is_some_and(|s| {
            s.attaches = s.attaches.saturating_sub(1);
            s.removed && s.attaches == 0
        });
        if done { t.segments.remove(&id) } else { None }
    };
    // The file is released (and freed, being unlinked) outside the lock.
    drop(gone);
    r
}

pub fn shmctl(id: i32, cmd: i32, buf: u64) -> SysResult {
    match cmd {
        IPC_RMID => {
            let gone = {
                let mut t = SHM.lock();
                let s = t.segments.get_mut(&id).ok_or(Errno::EINVAL)?;
                s.removed = true;
                if s.attaches == 0 {
                    t.segments.remove(&id)
                } else {
                    None
                }
            };
            drop(gone);
            Ok(0)
        }
        IPC_STAT => {
            let b = {
                let t = SHM.lock();
                let s = t.segments.get(&id).ok_or(Errno::EINVAL)?;
                stat_bytes(s)
            };
            super::copy_out(buf, &b)?;
            Ok(0)
        }
        IPC_SET => {
            let mut b = [0u8; 48];
            super::copy_in(&mut b, buf)?;
            let mode = u32::from(u16::from_le_bytes([b[20], b[21]])) & 0o777;
            let mut t = SHM.lock();
            t.segments.get_mut(&id).ok_or(Errno::EINVAL)?.mode = mode;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `struct shmid_ds` (x86-64, 112 bytes).
fn stat_bytes(s: &Segment) -> [u8; 112] {
    let mut b = [0u8; 112];
    b[0..4].copy_from_slice(&s.key.to_le_bytes());
    // uid, gid, cuid, cgid: 0 (root).
    let mut mode = s.mode as u16;
    if s.removed {
        mode |= 0o1000; // SHM_DEST
    }
    b[20..22].copy_from_slice(&mode.to_le_bytes());
    b[48..56].copy_from_slice(&s.size.to_le_bytes());
    b[80..84].copy_from_slice(&1i32.to_le_bytes()); // shm_cpid
    b[88..96].copy_from_slice(&s.attaches.to_le_bytes()); // shm_nattch
    b
}
