//! Memory system calls: mmap, munmap, mprotect, mremap, msync, madvise,
//! mincore, brk — the vmap bookkeeping of `cairn_unix::vmap` applied to the
//! page tables by `process::aspace`.
//!
//! Lock order (DESIGN.md §4 rule 4): the fd table (to find a file) is
//! released before the address space lock is taken; every vmap change and
//! its ownership check happen atomically under the address space lock;
//! areas in transition are waited for.
//!
//! Kernel-lock context, in the calling thread.

use super::SysResult;
use super::fs::get_file;
use crate::process::aspace::{FileRef, PAGE};
use crate::process::current;
use crate::process::file::FileKind;
use cairn_unix::errno::Errno;
use cairn_unix::prot::Prot;
use cairn_unix::vmap::{MapRequest, Placement, RemapFlags, Share, VmapKind};

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x100000;

pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: i32, off: u64) -> SysResult {
    let prot = Prot::from_bits(prot)?;
    let share = match flags & MAP_SHARED_VALIDATE {
        MAP_SHARED | MAP_SHARED_VALIDATE => Share::Shared,
        MAP_PRIVATE => Share::Private,
        _ => return Err(Errno::EINVAL),
    };
    if len == 0 || off % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let anonymous = flags & MAP_ANONYMOUS != 0 || {
        // A private mapping of /dev/zero is anonymous memory.
        let f = get_file(fd)?;
        f.ops().is_some_and(|o| o.maps_as_anonymous())
    };
    let ring = if anonymous {
        None
    } else {
        super::uring::map_region(&*get_file(fd)?, off, len)?
    };
    let (kind, max_prot) = if anonymous {
        (VmapKind::Anonymous, Prot::ALL)
    } else if let Some((file, offset)) = ring {
        // An io_uring's rings or SQEs: always the shared pages.
        if share != Share::Shared {
            return Err(Errno::EINVAL);
        }
        (
            VmapKind::File {
                file: FileRef(file),
                offset,
            },
            Prot::READ | Prot::WRITE,
        )
    } else {
        let f = get_file(fd)?;
        let FileKind::Regular(ref data) = f.kind else {
            return Err(Errno::ENODEV);
        };
        if !f.readable {
            return Err(Errno::EACCES);
        }
        let max = if share == Share::Shared && !f.writable {
            Prot::READ | Prot::EXEC
        } else {
            Prot::ALL
        };
        (
            VmapKind::File {
                file: FileRef(data.clone()),
                offset: off,
            },
            max,
        )
    };
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace(addr)
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed(addr)
    } else if addr != 0 {
        Placement::Hint(addr & !(PAGE - 1))
    } else {
        Placement::Anywhere
    };
    let aspace = &current().aspace;
    let mapped = aspace.with_vmaps(|v| {
        v.mmap(MapRequest {
            len,
            prot,
            max_prot,
            share,
            kind: kind.clone(),
            placement,
        })
    })?;
    aspace.zap(&mapped.unmapped);
    Ok(mapped.addr)
}

pub fn munmap(addr: u64, len: u64) -> SysResult {
    let aspace = &current().aspace;
    let removed = aspace.with_vmaps(|v| v.munmap(addr, len))?;
    write_back_shared(&removed);
    aspace.zap_and_free_unlocked(&removed);
    Ok(0)
}

/// Shared file pages are the pagecache's own, dirtied in place: nothing to
/// copy back at unmap; the writeback clock or an fsync writes them.
fn write_back_shared(_removed: &[cairn_unix::vmap::Vmap<FileRef>]) {}

pub fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    let prot = Prot::from_bits(prot)?;
    let aspace = &current().aspace;
    let changes = aspace.with_vmaps(|v| v.mprotect(addr, len, prot))?;
    aspace.reprotect(&changes);
    Ok(0)
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    const MAYMOVE: u64 = 1;
    const FIXED: u64 = 2;
    if flags & !(MAYMOVE | FIXED) != 0 {
        return Err(Errno::EINVAL);
    }
    let rf = RemapFlags {
        may_move: flags & MAYMOVE != 0,
        fixed: (flags & FIXED != 0).then_some(new_addr),
    };
    let aspace = &current().aspace;
    let r = aspace.with_vmaps(|v| v.mremap(old, old_len, new_len, rf))?;
    aspace.zap(&r.unmapped);
    if let Some(m) = r.moved {
        aspace.move_pages(m.from, m.to, m.len);
    }
    Ok(r.addr)
}

pub fn msync(addr: u64, len: u64, flags: i32) -> SysResult {
    const MS_ASYNC: i32 = 1;
    const MS_INVALIDATE: i32 = 2;
    const MS_SYNC: i32 = 4;
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
        || addr % PAGE != 0
    {
        return Err(Errno::EINVAL);
    }
    let aspace = &current().aspace;
    let areas = aspace.with_vmaps(|v| v.msync(addr, len))?;
    if flags & MS_ASYNC != 0 {
        return Ok(0);
    }
    // Write back every file with a shared mapping in the range: its dirty
    // pages (mapped ones included) go to disk, then the log commits.
    let mut done: alloc::vec::Vec<*const crate::fs::FileData> = alloc::vec::Vec::new();
    for a in areas.iter().filter(|a| a.needs_writeback()) {
        if let VmapKind::File { file, .. } = &a.kind {
            let p = alloc::sync::Arc::as_ptr(&file.0);
            if !done.contains(&p) {
                done.push(p);
                file.0.mount.fsync(&file.0).map_err(super::fs::pc_err)?;
            }
        }
    }
    Ok(0)
}

pub fn madvise(addr: u64, len: u64, advice: i32) -> SysResult {
    const MADV_DONTNEED: i32 = 4;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let aspace = &current().aspace;
    let areas = aspace.with_vmaps(|v| v.clipped(addr, len))?;
    if advice == MADV_DONTNEED {
        for a in areas {
            aspace.discard(a.start, a.end - a.start);
        }
    }
    Ok(0)
}

pub fn mincore(addr: u64, len: u64, vec: u64) -> SysResult {
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let aspace = &current().aspace;
    aspace.with_vmaps(|v| v.clipped(addr, len))?;
    let bits: alloc::vec::Vec<u8> = aspace
        .resident(addr, len)
        .into_iter()
        .map(u8::from)
        .collect();
    super::copy_out(vec, &bits)?;
    Ok(0)
}

pub fn brk(addr: u64) -> SysResult {
    let p = current();
    let (start, cur) = {
        let b = p.brk.lock();
        (b.start, b.current)
    };
    if addr < start {
        return Ok(cur);
    }
    let (old_end, new_end) = (cur.next_multiple_of(PAGE), addr.next_multiple_of(PAGE));
    if new_end > old_end {
        let grown = p.aspace.with_vmaps(|v| {
            v.mmap(MapRequest {
                len: new_end - old_end,
                prot: Prot::RW,
                max_prot: Prot::ALL,
                share: Share::Private,
                kind: VmapKind::Anonymous,
                placement: Placement::FixedNoReplace(old_end),
            })
        });
        if grown.is_err() {
            return Ok(cur);
        }
    } else if new_end < old_end {
        let removed = p
            .aspace
            .with_vmaps(|v| v.munmap(new_end, old_end - new_end))?;
        p.aspace.zap(&removed);
    }
    p.brk.lock().current = addr;
    Ok(addr)
}
