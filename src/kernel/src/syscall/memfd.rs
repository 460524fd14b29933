//! memfd_create: an anonymous file. cairn has no memory-only filesystem,
//! so it is a TFS file created in the root directory and unlinked at once
//! (an open unlinked file, like `O_TMPFILE`): it reads, writes, truncates
//! and maps (shared mappings included) like any file, through the
//! pagecache, and its storage is freed when its last descriptor and
//! mapping go. Its pages may be written back to disk meanwhile.
//!
//! Seals (`F_ADD_SEALS`/`F_GET_SEALS`) are recorded and reported but not
//! enforced (listed in docs/SYSCALLS.md).
//!
//! Kernel-lock context, in the calling thread. Lock: `process.memfd`
//! (SpinLock, kernel-lock only, a leaf).

use super::{SysResult, user_string};
use crate::process::current;
use crate::process::file::{FileKind, O_RDWR, OpenFile};
use alloc::collections::BTreeMap;
use alloc::format;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;
use core::sync::atomic::{AtomicU64, Ordering};

static MEMFD_CLASS: LockClass = LockClass::new("process.memfd");
/// File (`Loc::key`) → its seals, for every memfd.
static SEALS: SpinLock<BTreeMap<u64, u32>> = SpinLock::new(&MEMFD_CLASS, BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

const MFD_CLOEXEC: u32 = 1;
const MFD_ALLOW_SEALING: u32 = 2;
const MFD_HUGETLB: u32 = 4;
const F_SEAL_SEAL: u32 = 1;

pub fn memfd_create(name: u64, flags: u32) -> SysResult {
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_HUGETLB != 0 {
        return Err(Errno::EINVAL);
    }
    let name = user_string(name, 250)?;
    let m = crate::fs::root().ok_or(Errno::ENOENT)?;
    let tmp = format!(".memfd-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_bytes();
    let ino = {
        super::fs::room_for_new_node().map_err(|_| Errno::ENOMEM)?;
        let mut fs = m.fs();
        let root = fs.root();
        fs.create(root, &tmp).map_err(super::fs::tfs_err)?
    };
    // Held open before the name goes, so the data outlives the unlink.
    let data = m.file(&mut m.fs(), ino);
    let loc = data.loc();
    let f = OpenFile::new(FileKind::Regular(data), O_RDWR);
    {
        let mut fs = m.fs();
        let root = fs.root();
        fs.unlink(root, &tmp).map_err(super::fs::tfs_err)?;
    }
    let mut shown = b"/memfd:".to_vec();
    shown.extend_from_slice(&name);
    shown.extend_from_slice(b" (deleted)");
    crate::special::proc::remember_path(loc, shown);
    SEALS.lock().insert(
        loc.key(),
        if flags & MFD_ALLOW_SEALING != 0 {
            0
        } else {
            F_SEAL_SEAL
        },
    );
    current()
        .fds
        .lock()
        .alloc(f, flags & MFD_CLOEXEC != 0)
        .map(|fd| fd as u64)
        .map_err(|(e, _)| e)
}

/// `fcntl(F_GET_SEALS)`.
pub fn get_seals(f: &OpenFile) -> SysResult {
    let loc = f.loc().ok_or(Errno::EINVAL)?;
    SEALS
        .lock()
        .get(&loc.key())
        .map(|&s| u64::from(s))
        .ok_or(Errno::EINVAL)
}

/// `fcntl(F_ADD_SEALS)`.
pub fn add_seals(f: &OpenFile, seals: u32) -> SysResult {
    const ALL: u32 = 0x3f;
    if seals & !ALL != 0 {
        return Err(Errno::EINVAL);
    }
    if !f.writable {
        return Err(Errno::EPERM);
    }
    let loc = f.loc().ok_or(Errno::EINVAL)?;
    let mut t = SEALS.lock();
    let s = t.get_mut(&loc.key()).ok_or(Errno::EINVAL)?;
    if *s & F_SEAL_SEAL != 0 {
        return Err(Errno::EPERM);
    }
    *s |= seals;
    Ok(0)
}
