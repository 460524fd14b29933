//! The kernel's implementations of the pagecache's hooks: frames from the
//! physical heap, the runqueue, a file's TFS backing, and the volume's
//! metadata sync.
//!
//! Contexts: frames any (bh included); the deferral hook bh or kernel-lock
//! (work runs in the pagecache worker thread);
//! `Backing` kernel-lock in a thread (it takes the filesystem's sleeping
//! mutex); `MetadataSync` bh or kernel-lock (it queues the commit for the
//! volume's commit worker thread, since a commit sleeps and its caller may
//! be a runqueue closure).

use super::{Mount, errno_of};
use alloc::boxed::Box;
use alloc::vec::Vec;
use cairn_pagecache::{
    Backing, Errno, Extent, Frame, FrameAllocator, Mapping, MetadataSync, RunQueueHook,
};
use cairn_pc::paging::DIRECT_MAP_BASE;
use cairn_tfs::{Ino, MappingKind};

/// Page frames for the pagecache, from the physical heap through the
/// direct map, never from its last [`RESERVE_DIVISOR`]th: that reserve is
/// for the kernel heaps (which grow from the physical heap and panic when
/// they cannot), so the pagecache evicts clean pages, or fails the fill or
/// write with ENOMEM, before it takes the memory a syscall's allocation
/// needs.
pub struct KernelFrames;

/// The pagecache leaves `1 / RESERVE_DIVISOR` of RAM free.
pub const RESERVE_DIVISOR: u64 = 16;

impl FrameAllocator for KernelFrames {
    fn alloc(&self) -> Option<Frame> {
        let phys = {
            let mut heap = crate::heaps::PHYSICAL.lock();
            let s = cairn_heap::Heap::stats(&*heap);
            if s.total.saturating_sub(s.allocated) < s.total / RESERVE_DIVISOR {
                return None;
            }
            heap.alloc_pages(1).ok()?
        };
        // SAFETY: a page just taken from the physical heap for this frame
        // alone, mapped read-write by the direct map at DIRECT_MAP_BASE +
        // phys; `free` below gives it back.
        Some(unsafe { Frame::from_raw(phys, (DIRECT_MAP_BASE + phys) as usize) })
    }

    fn free(&self, frame: Frame) {
        crate::heaps::PHYSICAL.lock().free_pages(frame.phys(), 1);
    }
}

/// Where the pagecache's kernel-lock work runs: the pagecache worker
/// thread (see `fs::worker`), since that work may sleep on the `fs` mutex.
impl RunQueueHook for &'static super::worker::Worker {
    fn defer(&self, work: Box<dyn FnOnce() + Send>) {
        super::worker::Worker::defer(self, work);
    }
}

/// One file's storage in the mounted TFS.
pub struct TfsBacking {
    pub mount: &'static Mount,
    pub ino: Ino,
}

impl Backing for TfsBacking {
    fn length(&self) -> Result<u64, Errno> {
        self.mount.fs().length(self.ino).map_err(errno_of)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Vec<Mapping>, Errno> {
        let maps = self
            .mount
            .fs()
            .map(self.ino, offset, len)
            .map_err(errno_of)?;
        Ok(maps
            .into_iter()
            .map(|m| Mapping {
                offset: m.offset,
                len: m.len,
                extent: match m.kind {
                    MappingKind::Disk { sector } => Extent::Disk { sector },
                    MappingKind::Uninited { sector } => Extent::Uninited { sector },
                    MappingKind::Hole => Extent::Hole,
                },
            })
            .collect())
    }

    fn reserve(&self, offset: u64, len: u64) -> Result<(), Errno> {
        let mut fs = self.mount.fs();
        match fs.allocate(self.ino, offset, len) {
            Ok(()) => {}
            // Space freed by changes not yet committed (an unlink, a
            // truncate) becomes usable at the next commit: commit, retry.
            Err(cairn_tfs::FsError::NoSpace) => {
                fs.sync_metadata().map_err(errno_of)?;
                fs.allocate(self.ino, offset, len).map_err(errno_of)?;
            }
            Err(e) => return Err(errno_of(e)),
        }
        // Only ever grows the length, keeping extents past the old end
        // (a growing `set_length` would drop those a direct write in
        // flight has reserved: `fs/inflight.rs`).
        fs.grow_length(self.ino, offset + len).map_err(errno_of)
    }

    fn mark_written(&self, offset: u64, len: u64) -> Result<(), Errno> {
        self.mount
            .fs()
            .mark_written(self.ino, offset, len)
            .map_err(errno_of)
    }
}

/// The TFS log commit of a sync (data written back before, device flush
/// after, by the pagecache). Commits run in the volume's long-lived commit
/// worker, in order: a commit sleeps (the `fs` mutex, log I/O) and its
/// caller may be a runqueue closure, and a thread per commit would make
/// every fsync create and free a kernel thread.
pub struct TfsMetadata {
    pub mount: &'static Mount,
    pub commits: &'static super::worker::Worker,
}

impl MetadataSync for TfsMetadata {
    fn sync_metadata(&self, done: Box<dyn FnOnce(Result<(), Errno>) + Send>) {
        let mount = self.mount;
        self.commits.defer(cairn_sync::cpu::bh_safe_alloc(|| {
            Box::new(move || {
                let r = mount.fs().sync_metadata().map_err(errno_of);
                done(r);
            })
        }));
    }
}
