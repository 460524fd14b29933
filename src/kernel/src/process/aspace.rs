//! The program's address space: its vmaps (`cairn_unix::vmap`), the pages
//! mapped in its page tables, demand paging, and the page-table side of
//! mmap, munmap, mprotect and mremap.
//!
//! **Locks.** `aspace` (SpinLock) around the vmaps, which change only under
//! the kernel lock too, each change moving a generation counter; and the
//! page records (what backs each mapped page) in shards with a lock each,
//! `aspace.pages` (`process::pages`: a record and its page-table entry
//! change together under the shard lock of their 256 KiB leaf, the entry
//! through `mm::user_map` with no page-table lock). Neither is
//! held across anything that sleeps: a fault on a file page marks the page
//! *in transition*, releases the locks, fills the page from the pagecache
//! (sleeping for I/O; its fill first, then the mapping readahead), retakes
//! them and installs the entry (DESIGN.md §4 rules 1 and 3, seeds/001 and
//! 002). Operations that meet an area in transition wait for it to end and
//! retry from the start. Order: fd table → filesystem → `aspace` →
//! `aspace.pages` (one shard at a time) → `pagecache.node` (pins and
//! checks only) → `aspace.pins` → `mm.page_tables` (a new table only) →
//! heap locks. An
//! operation changes the vmaps first, then visits the records of its range
//! shard by shard. TLB shoot-downs happen after the locks are released,
//! before freed frames are reused.
//!
//! **Pages.** Anonymous and private-file pages are frames owned here
//! (copied from the pagecache at the first fault of a private file page).
//! Shared-file pages are the pagecache's own frames, pinned by a
//! `cairn_pagecache::Mapped` for as long as they are mapped. A read fault
//! on a shared file mapping also maps the next cached pages read-only
//! (map-around, no I/O and no sleep; their pins keep them from eviction
//! until unmapped).
//!
//! **Pins.** Direct I/O (`fs/direct.rs`) pins the owned frames behind a
//! user buffer ([`AddressSpace::pin_user`]) so a device can transfer to or
//! from them with no copy; a frame unmapped while pinned is freed at its
//! last unpin instead (the `aspace.pins` table, taken under a shard lock
//! or alone; heap locks are taken after it is released).
//!
//! **Without the kernel lock** (issue 17): a user fault first tries
//! [`AddressSpace::fault_unlocked`]: an anonymous first touch, or a file
//! page the pagecache holds readable. It reads the area under `aspace`,
//! then installs under the page's shard lock if the vmaps generation has
//! not moved and its pins are still current, so faults in different
//! leaves install at the same time, and an munmap elsewhere holds one
//! shard for a leaf at a time. A truncate removes the mappings past its
//! new end ([`AddressSpace::zap_file`]) after the pagecache capped the
//! length and detached the pages, and every fault checks its pins with
//! `Mapped::current` under the shard lock before installing, so no entry
//! to a page past the end of file survives a truncate.
//!
//! Contexts: kernel-lock, in a thread (faults sleep), except
//! `fault_unlocked` (a user fault, no lock held) and the frees of
//! [`AddressSpace::zap_and_free_unlocked`].

use super::pages::Pages;
use crate::fs::FileData;
use crate::sched::waitqueue::WaitQueue;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_pagecache::{Access, Mapped};
use cairn_pc::paging::{DIRECT_MAP_BASE, flags};
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;
use cairn_unix::pagemap::{LEAF_PAGES, LEAF_SPAN, PageMap};
use cairn_unix::prot::Prot;
use cairn_unix::vmap::{FaultError, MapFile, Share, VmError, Vmap, VmapKind, Vmaps};
use core::sync::atomic::{AtomicU64, Ordering};

pub const PAGE: u64 = 4096;

/// Pages mapped around a read fault on a shared file mapping, and the
/// mapping readahead after a fault that does not continue a walk.
const FAULT_AROUND_PAGES: u64 = 15;

/// File-page faults served without the kernel lock
/// ([`AddressSpace::fault_unlocked`]) since boot (`/proc/cairn/kstats`
/// `faults.file_unlocked`).
pub static FILE_FAULTS_UNLOCKED: AtomicU64 = AtomicU64::new(0);
/// File-page faults that went to the locked path (`faults.file_locked`).
pub static FILE_FAULTS_LOCKED: AtomicU64 = AtomicU64::new(0);

/// A mapped file: the file's pagecache node (identity decides merging).
#[derive(Clone)]
pub struct FileRef(pub Arc<FileData>);

impl MapFile for FileRef {
    fn same_file(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for FileRef {
    /// A mapping of an unlinked file may be its last holder: the file is
    /// reaped (`Mount::reap`) by the volume's worker, since a mapping goes
    /// under its address space's lock.
    fn drop(&mut self) {
        // More holders (the node table, this one, others): the last of the
        // others reaps.
        if Arc::strong_count(&self.0) <= 2 {
            self.0.mount.reap_later(self.0.ino);
        }
    }
}

impl core::fmt::Debug for FileRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FileRef({})", self.0.ino.0)
    }
}

/// What backs one mapped page.
enum PageRef {
    /// A frame owned by the address space (anonymous or private copy).
    Owned(u64),
    /// A pinned pagecache page of a shared file mapping.
    Shared(Mapped),
}

pub(crate) static ASPACE_CLASS: LockClass = LockClass::new("aspace");

pub struct AddressSpace {
    /// The areas (the `aspace` lock). Changed only under the kernel lock
    /// too, and every change bumps `generation`.
    vmaps: SpinLock<Vmaps<FileRef>>,
    /// Changes of `vmaps` so far: a fault that looked at the areas without
    /// the kernel lock checks, under its page's shard lock, that they have
    /// not changed since (see [`AddressSpace::fault_unlocked`]).
    generation: AtomicU64,
    /// What backs each mapped page, sharded (`aspace.pages` locks).
    pages: Pages<PageRef>,
    /// Threads waiting for a transition to end.
    transitions: WaitQueue,
}

/// The part of a shared file area that map-around may fill: its range and
/// protection, every page of it the same file at the same offset from
/// `start`, checked when the view was taken.
#[derive(Clone, Copy)]
struct AreaView {
    start: u64,
    end: u64,
    prot: Prot,
}

/// What the lock-dropped part of a file fault did.
enum Filled {
    Installed,
    /// The page was truncated (or punched) away while the lock was
    /// dropped; nothing was installed.
    Stale,
}

/// How a fault could not be served.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// SIGSEGV: no mapping, or the access is not allowed.
    Segv,
    /// SIGBUS: a file page beyond the end of the file, or an I/O error.
    Bus,
}

fn pte_flags(prot: Prot, writable: bool) -> u64 {
    let mut f = flags::USER;
    if writable {
        f |= flags::WRITABLE;
    }
    if !prot.contains(Prot::EXEC) {
        f |= flags::NO_EXECUTE;
    }
    f
}

/// A zeroed frame for a program's page: ENOMEM (the fault becomes
/// SIGBUS) when RAM is down to the kernel's reserve.
fn alloc_frame() -> Result<u64, Errno> {
    if !crate::heaps::global::room_for_user(PAGE) {
        return Err(Errno::ENOMEM);
    }
    let phys = crate::heaps::PHYSICAL
        .lock()
        .alloc_pages(1)
        .map_err(|_| Errno::ENOMEM)?;
    // SAFETY: a page just allocated for us, mapped by the direct map.
    unsafe { core::ptr::write_bytes((DIRECT_MAP_BASE + phys) as *mut u8, 0, PAGE as usize) };
    Ok(phys)
}

/// Frees an owned frame, or, while direct I/O has it pinned
/// ([`AddressSpace::pin_user`]), marks it to be freed at its last unpin.
fn free_frame(phys: u64) {
    {
        let mut pins = PINS.lock();
        if let Some(p) = pins.get_mut(&phys) {
            p.1 = true;
            return;
        }
    }
    crate::heaps::PHYSICAL.lock().free_pages(phys, 1);
}

/// Frees owned frames (an unmap's, after its shoot-down) with one pass
/// over the pins and one physical-heap section: [`free_frame`] for many.
fn free_frames(mut frames: Vec<u64>) {
    if frames.is_empty() {
        return;
    }
    {
        let mut pins = PINS.lock();
        if !pins.is_empty() {
            frames.retain(|phys| match pins.get_mut(phys) {
                Some(p) => {
                    p.1 = true;
                    false
                }
                None => true,
            });
        }
    }
    let mut heap = crate::heaps::PHYSICAL.lock();
    for &phys in &frames {
        heap.free_pages(phys, 1);
    }
    // The list is freed after the physical heap's lock (heap lock order).
    drop(heap);
}

/// The lock class of [`PINS`] (kernel-lock only; taken under `aspace` or
/// alone, never holding a heap lock).
pub(crate) static PINS_CLASS: LockClass = LockClass::new("aspace.pins");

/// Owned frames direct I/O is using: frame → (pins, freed while pinned).
static PINS: SpinLock<BTreeMap<u64, (u32, bool)>> = SpinLock::new(&PINS_CLASS, BTreeMap::new());

/// User pages pinned for a direct transfer ([`AddressSpace::pin_user`]):
/// the frames behind `[addr, addr + len)`, kept from being freed (an
/// `munmap` meanwhile defers the free to the unpin) until this drops.
pub struct PinnedUser {
    addr: u64,
    len: u64,
    frames: Vec<u64>,
}

impl PinnedUser {
    /// The physical pieces of bytes `[from, from + len)` of the range, with
    /// physically contiguous neighbours merged.
    pub fn segments(&self, from: u64, len: u64) -> Vec<cairn_block::Segment> {
        let mut out: Vec<cairn_block::Segment> = Vec::new();
        let mut at = self.addr + from;
        let end = self.addr + from + len;
        while at < end {
            let page = at & !(PAGE - 1);
            let idx = ((page - (self.addr & !(PAGE - 1))) / PAGE) as usize;
            let n = (page + PAGE).min(end) - at;
            let phys = self.frames[idx] + (at - page);
            match out.last_mut() {
                Some(last) if last.phys + u64::from(last.len) == phys => last.len += n as u32,
                _ => out.push(cairn_block::Segment {
                    phys,
                    len: n as u32,
                }),
            }
            at += n;
        }
        out
    }

    /// Zeroes bytes `[from, from + len)` of the range (a hole read).
    pub fn zero(&self, from: u64, len: u64) {
        for s in self.segments(from, len) {
            // SAFETY: a frame pinned by this object (not freed until it
            // drops), owned by the program's address space and written by
            // the program's own direct read; reached through the direct map.
            unsafe {
                core::ptr::write_bytes((DIRECT_MAP_BASE + s.phys) as *mut u8, 0, s.len as usize)
            };
        }
    }

    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for PinnedUser {
    fn drop(&mut self) {
        let mut free = Vec::new();
        {
            let mut pins = PINS.lock();
            for &f in &self.frames {
                if let Some(p) = pins.get_mut(&f) {
                    p.0 -= 1;
                    if p.0 == 0 {
                        if p.1 {
                            free.push(f);
                        }
                        pins.remove(&f);
                    }
                }
            }
        }
        for f in free {
            crate::heaps::PHYSICAL.lock().free_pages(f, 1);
        }
    }
}

/// The bytes of frame `phys` (through the direct map).
fn frame_bytes(phys: u64) -> &'static mut [u8] {
    // SAFETY: `phys` is a frame this address space owns (or is filling);
    // nothing else writes it while the caller holds the `aspace` lock or
    // has not yet published the frame.
    unsafe { core::slice::from_raw_parts_mut((DIRECT_MAP_BASE + phys) as *mut u8, PAGE as usize) }
}

impl AddressSpace {
    pub fn new(layout: cairn_unix::vmap::Layout) -> Self {
        AddressSpace {
            vmaps: SpinLock::new(&ASPACE_CLASS, Vmaps::new(layout)),
            generation: AtomicU64::new(0),
            pages: Pages::new(),
            transitions: WaitQueue::new(),
        }
    }

    /// Runs `f` on the vmaps under `aspace` as a change: the generation
    /// moves (every change of the areas goes through here or
    /// [`Self::with_vmaps`], under the kernel lock).
    fn change_vmaps<R>(&self, f: impl FnOnce(&mut Vmaps<FileRef>) -> R) -> R {
        let mut vmaps = self.vmaps.lock();
        let r = f(&mut vmaps);
        self.generation.fetch_add(1, Ordering::SeqCst);
        r
    }

    /// Runs a vmap operation, waiting out transitions it meets (the
    /// operation is retried from scratch after each wait).
    pub fn with_vmaps<R>(
        &self,
        mut op: impl FnMut(&mut Vmaps<FileRef>) -> Result<R, VmError>,
    ) -> Result<R, Errno> {
        loop {
            match self.change_vmaps(&mut op) {
                Ok(r) => return Ok(r),
                Err(VmError::MustWait(w)) => self.wait_transition(w.id),
                Err(e) => return Err(e.errno().unwrap_or(Errno::EINVAL)),
            }
        }
    }

    fn wait_transition(&self, id: cairn_unix::vmap::TransitionId) {
        self.transitions.wait_until(|| {
            // The transition's range disappears when it ends. The vmaps are
            // read without the `aspace` lock's guard here only through
            // `try_lock`: a busy lock means "not ended yet, check again".
            self.vmaps
                .try_lock()
                .is_some_and(|v| v.transition_range(id).is_none())
        });
    }

    /// Takes the records of `[from, to)`, inside one leaf of `map`, out into
    /// `out` and unmaps their entries  The
    /// caller holds the leaf's shard lock.
    fn unmap_leaf(map: &mut PageMap<PageRef>, from: u64, to: u64, out: &mut Vec<PageRef>) {
        let mut addrs = [0u64; LEAF_PAGES];
        let mut n = 0;
        map.take_range(from, to, |k, p| {
            addrs[n] = k;
            n += 1;
            out.push(p);
        });
        let mut entries = crate::mm::user_map::Cursor::new();
        for &k in &addrs[..n] {
            entries.unmap(k);
        }
    }

    /// Drops the page records of `[start, end)` (one shard lock at a time,
    /// a leaf per hold): unmaps their entries and returns what to free
    /// once other CPUs' TLBs are shot down.
    fn unmap_range(&self, start: u64, end: u64, out: &mut Vec<PageRef>) {
        self.pages.for_each_leaf(start, end, |map, from, to| {
            Self::unmap_leaf(map, from, to, out);
            to
        });
    }

    /// Frees pages after the shoot-down: owned frames with one pass over
    /// the pins and one physical-heap section, shared pages' pins a run of
    /// one file at a time (`Mapped::release_all`).
    fn release(pages: Vec<PageRef>) {
        if pages.is_empty() {
            return;
        }
        crate::smp::shootdown();
        Self::free_shot_down(pages);
    }

    /// The frees of [`Self::release`], once other CPUs' TLBs are shot down.
    /// Any context but irq: what `pages` holds is freed with no general-heap
    /// memory, so with `pages` itself from the `locked` heap (allocated in
    /// `bh_safe_alloc`) this may run without the kernel lock.
    fn free_shot_down(pages: Vec<PageRef>) {
        let mut frames = Vec::new();
        Mapped::release_all(pages.into_iter().filter_map(|p| match p {
            PageRef::Owned(phys) => {
                frames.push(phys);
                None
            }
            PageRef::Shared(m) => Some(m),
        }));
        free_frames(frames);
    }

    /// Unmaps the pages of removed areas (munmap, MAP_FIXED replacement,
    /// mremap shrink). The areas are gone from the vmaps already and the
    /// caller holds the kernel lock, which every mmap takes, so nothing
    /// maps their range again meanwhile; the records go a leaf per hold of
    /// its shard lock, and faults elsewhere in the address space go on.
    pub fn zap(&self, removed: &[Vmap<FileRef>]) {
        Self::release(self.unmap_areas(removed));
    }

    /// [`Self::zap`] for munmap, whose frees need no kernel state: the
    /// entries are removed and other CPUs' TLBs shot down under the kernel
    /// lock (so no mmap can reuse the range while a stale TLB entry may
    /// still reach an old frame), then the frames are freed and the pins
    /// dropped with the kernel lock released, so that other threads'
    /// syscalls go on meanwhile. Kernel-lock thread, holding no spinlock.
    pub fn zap_and_free_unlocked(&self, removed: &[Vmap<FileRef>]) {
        let freed = self.unmap_areas(removed);
        if freed.is_empty() {
            return;
        }
        crate::smp::shootdown();
        crate::sched::runloop::without_kernel_lock(|| Self::free_shot_down(freed));
    }

    /// The page records of removed areas, their entries unmapped (see
    /// [`Self::zap`]). The list comes from the `locked` heap, to be freed
    /// in any context.
    fn unmap_areas(&self, removed: &[Vmap<FileRef>]) -> Vec<PageRef> {
        cairn_sync::cpu::bh_safe_alloc(|| {
            let mut freed = Vec::new();
            for v in removed {
                self.unmap_range(v.start, v.end, &mut freed);
            }
            freed
        })
    }

    /// Applies an mprotect's page-table changes (after the vmaps changed).
    pub fn reprotect(&self, changes: &[cairn_unix::vmap::Reprotect]) {
        for c in changes {
            self.pages.for_each_leaf(c.start, c.end, |map, from, to| {
                {
                    let mut entries = crate::mm::user_map::Cursor::new();
                    for (k, p) in map.range(from, to) {
                        let (phys, writable) = match p {
                            PageRef::Owned(p) => (*p, c.new.contains(Prot::WRITE)),
                            PageRef::Shared(m) => {
                                (m.phys(), c.new.contains(Prot::WRITE) && m.writable())
                            }
                        };
                        entries.unmap(k);
                        if c.new.accessible() {
                            let _ = entries.map(k, phys, pte_flags(c.new, writable));
                        }
                        // PROT_NONE: the page is kept without an entry; a
                        // fault after access is granted again re-installs it.
                    }
                }
                to
            });
        }
        crate::smp::shootdown();
    }

    /// Moves page records and entries for an mremap that moved (after the
    /// vmaps changed). A page another thread faulted in at the new place
    /// meanwhile gives way to the moved one.
    pub fn move_pages(&self, from: u64, to: u64, len: u64) {
        let mut moved = Vec::new();
        self.pages.for_each_leaf(from, from + len, |map, a, b| {
            let mut taken = Vec::new();
            map.take_range(a, b, |k, p| taken.push((k, p)));
            for (k, p) in taken {
                // Kept while PROT_NONE (no entry): the record moves alone.
                let entry = crate::mm::user_map::lookup(k);
                crate::mm::user_map::unmap(k);
                moved.push((to + (k - from), entry, p));
            }
            b
        });
        let mut displaced = Vec::new();
        for (nk, entry, p) in moved {
            let mut map = self.pages.lock(nk);
            if let Some(old) = map.remove(nk) {
                crate::mm::user_map::unmap(nk);
                displaced.push(old);
            }
            if let Some((phys, fl)) = entry {
                let _ = crate::mm::user_map::map(nk, phys, fl);
            }
            map.insert(nk, p);
        }
        crate::smp::shootdown();
        Self::free_shot_down(displaced);
    }

    /// Places `bytes` (at most a page) at page `addr` with protection
    /// `prot`, regardless of write permission (program loading).
    pub fn populate(&self, addr: u64, bytes: &[u8], prot: Prot) -> Result<(), Errno> {
        let phys = alloc_frame()?;
        frame_bytes(phys)[..bytes.len()].copy_from_slice(bytes);
        let mut map = self.pages.lock(addr);
        crate::mm::user_map::map(addr, phys, pte_flags(prot, prot.contains(Prot::WRITE)))
            .map_err(|_| Errno::ENOMEM)?;
        map.insert(addr, PageRef::Owned(phys));
        Ok(())
    }

    /// Whether some area maps `addr` (a fault there is an access the area
    /// does not allow, SEGV_ACCERR, rather than SEGV_MAPERR).
    pub fn is_mapped(&self, addr: u64) -> bool {
        self.vmaps.lock().lookup(addr).is_some()
    }

    /// A user page fault's first try, without the kernel lock (issue 17):
    /// a first touch of an anonymous page, or of a file page the pagecache
    /// holds readable (a read, or any access to a private area, whose page
    /// is then a copy), in an area the access is allowed in and not in
    /// transition. `None`, with nothing changed: anything else (a shared
    /// write, which must reserve and mark dirty; a page to fill; a pending
    /// truncate; past the end of file, which is SIGBUS; a page already
    /// there; a bad access): the caller takes the kernel lock and runs
    /// [`Self::fault`].
    ///
    /// Two steps, never both locks at once. Under `aspace`: the area is
    /// checked, the generation read and a file page pinned with the pages
    /// after it in the same area and leaf (`Node::map_cached` /
    /// `map_resident`: the node's irq-safe lock only, no filesystem mutex,
    /// no general heap). Under the page's shard lock: the page is installed
    /// if the generation has not moved (no mmap, munmap, mprotect, mremap
    /// or transition since: each of those changes the vmaps first and then
    /// takes the shard locks of its range, so one that comes after the
    /// check finds the page) and the pinned pages are still the file's
    /// (`Mapped::all_current`: a truncate caps the length and detaches
    /// before it removes mappings under the same shard locks). Pins and a
    /// frame not used are released after both locks.
    pub fn fault_unlocked(&self, addr: u64, write: bool, exec: bool) -> Option<()> {
        let page = addr & !(PAGE - 1);
        let access = access_of(write, exec);
        let (generation, area, shared, mut pins) = {
            let vmaps = self.vmaps.lock();
            let generation = self.generation.load(Ordering::SeqCst);
            let v = vmaps.check_access(addr, access).ok()?;
            if v.in_transition() {
                return None;
            }
            let area = AreaView {
                start: v.start,
                end: v.end,
                prot: v.prot,
            };
            let shared = v.share == Share::Shared;
            let pins = match &v.kind {
                VmapKind::Anonymous => None,
                VmapKind::File { .. } => {
                    if shared && write {
                        return None;
                    }
                    let (file, offset) = v.file_at(page)?;
                    let index = offset / PAGE;
                    let mut pins = alloc::vec![file.0.node.map_cached(index)?];
                    if shared {
                        // Map-around: the cached pages after it in this
                        // area and this leaf (one shard lock).
                        let leaf_end = (page | (LEAF_SPAN - 1)) + 1;
                        let n = (v.end.min(leaf_end) - page) / PAGE - 1;
                        pins.extend(
                            file.0
                                .node
                                .map_resident(index + 1, n.min(FAULT_AROUND_PAGES)),
                        );
                    }
                    Some(pins)
                }
            };
            (generation, area, shared, pins)
        };
        // A frame of our own: zeroed, or the private copy.
        let own = match &pins {
            None => alloc_frame().ok(),
            Some(pins) if !shared => {
                let phys = crate::heaps::PHYSICAL.lock().alloc_pages(1).ok();
                if let Some(phys) = phys {
                    pins[0].read_at(0, frame_bytes(phys));
                }
                phys
            }
            Some(_) => None,
        };
        if own.is_none() && (pins.is_none() || !shared) {
            return None; // no memory: the locked path decides
        }
        let installed = {
            let mut map = self.pages.lock(page);
            let still = self.generation.load(Ordering::SeqCst) == generation
                && !map.contains(page)
                && pins.as_deref().is_none_or(Mapped::all_current);
            if !still {
                None
            } else if let Some(phys) = own {
                let writable = area.prot.contains(Prot::WRITE);
                crate::mm::user_map::map(page, phys, pte_flags(area.prot, writable))
                    .ok()
                    .map(|()| {
                        map.insert(page, PageRef::Owned(phys));
                    })
            } else {
                let pins = pins.as_mut().expect("a shared file page");
                let first = pins.remove(0);
                match crate::mm::user_map::map(page, first.phys(), pte_flags(area.prot, false)) {
                    Ok(()) => {
                        let index = first.index();
                        map.insert(page, PageRef::Shared(first));
                        let around = core::mem::take(pins);
                        Self::install_around(&mut map, page, index, area, around, pins);
                        Some(())
                    }
                    Err(_) => {
                        pins.insert(0, first);
                        None
                    }
                }
            }
        };
        // Pins and a frame not used are released after the locks.
        drop(pins);
        if installed.is_none()
            && let Some(phys) = own
        {
            free_frame(phys);
        }
        if installed.is_some() && shared {
            FILE_FAULTS_UNLOCKED.fetch_add(1, Ordering::Relaxed);
        }
        installed
    }

    /// Serves a fault at `addr` (`write`: a store; `exec`: a fetch).
    /// Sleeps for file pages. `Ok` when the access can be retried.
    /// Kernel-lock context: the vmaps cannot change but through this
    /// thread, and the page's shard lock is taken under `aspace`.
    pub fn fault(&self, addr: u64, write: bool, exec: bool) -> Result<(), FaultOutcome> {
        let page = addr & !(PAGE - 1);
        let access = access_of(write, exec);
        // Make room for a frame while no lock is held (dropping cached
        // pages needs that); `alloc_frame` below, under `aspace`, only
        // checks.
        crate::heaps::global::room_for_user(PAGE);
        loop {
            let mut vmaps = self.vmaps.lock();
            let v = match vmaps.check_access(addr, access) {
                Ok(v) => v.clone(),
                Err(FaultError::Unmapped | FaultError::Protection) => {
                    return Err(FaultOutcome::Segv);
                }
            };
            let mut map = self.pages.lock(page);
            // Already served (another thread, or a spurious fault)?
            if let Some(p) = map.get(page) {
                let entry = crate::mm::user_map::lookup(page);
                if entry.is_none() {
                    // Kept while PROT_NONE: install it again.
                    let (phys, writable) = match p {
                        PageRef::Owned(phys) => (*phys, v.prot.contains(Prot::WRITE)),
                        PageRef::Shared(m) => (m.phys(), false),
                    };
                    crate::mm::user_map::map(page, phys, pte_flags(v.prot, writable))
                        .map_err(|_| FaultOutcome::Bus)?;
                    continue;
                }
                let writable_now = entry.is_some_and(|(_, f)| f & flags::WRITABLE != 0);
                match p {
                    PageRef::Owned(_) if !write || writable_now => return Ok(()),
                    PageRef::Owned(phys) => {
                        // Write to an owned page mapped read-only: the area
                        // allows writing now (checked above).
                        let phys = *phys;
                        crate::mm::user_map::unmap(page);
                        crate::mm::user_map::map(page, phys, pte_flags(v.prot, true))
                            .map_err(|_| FaultOutcome::Bus)?;
                        return Ok(());
                    }
                    PageRef::Shared(_) if !write || writable_now => return Ok(()),
                    PageRef::Shared(_) => {
                        // A store to a shared page first mapped by a read:
                        // fault it again for writing (marks it dirty).
                    }
                }
            }
            match &v.kind {
                VmapKind::Anonymous => {
                    let phys = alloc_frame().map_err(|_| FaultOutcome::Bus)?;
                    if crate::mm::user_map::map(
                        page,
                        phys,
                        pte_flags(v.prot, v.prot.contains(Prot::WRITE)),
                    )
                    .is_err()
                    {
                        // Never mapped: freed without a shoot-down.
                        free_frame(phys);
                        return Err(FaultOutcome::Bus);
                    }
                    map.insert(page, PageRef::Owned(phys));
                    return Ok(());
                }
                VmapKind::File { .. } => {
                    drop(map);
                    let (file, offset) = v
                        .file_at(page)
                        .map(|(f, o)| (f.clone(), o))
                        .expect("file area");
                    let begun = vmaps.begin_transition(page, PAGE);
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    let id = match begun {
                        Ok(id) => id,
                        Err(VmError::MustWait(w)) => {
                            drop(vmaps);
                            self.wait_transition(w.id);
                            continue;
                        }
                        Err(_) => return Err(FaultOutcome::Segv),
                    };
                    drop(vmaps);
                    FILE_FAULTS_LOCKED.fetch_add(1, Ordering::Relaxed);
                    let shared = v.share == Share::Shared;
                    let r =
                        self.fill_file_page(page, &file, offset, write && shared, shared, v.prot);
                    let ended = self.change_vmaps(|v| v.end_transition(id));
                    if ended.is_some_and(|e| e.wake) {
                        self.transitions.wake_all();
                    }
                    match r {
                        Ok(Filled::Installed) => {
                            if shared && !write {
                                self.map_around(page, &file, offset);
                            }
                            return Ok(());
                        }
                        // Truncated away while the lock was dropped: look
                        // again (past the new end, that is SIGBUS).
                        Ok(Filled::Stale) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// The lock-dropped part of a file fault: get the page from the
    /// pagecache (sleeping; its fill goes first, then the mapping
    /// readahead), then install it under its shard lock (the area is in
    /// transition: nothing else changes it), unless a truncate took it
    /// away meanwhile ([`Filled::Stale`], checked with `Mapped::current`
    /// under the lock: see [`Self::zap_file`]).
    fn fill_file_page(
        &self,
        page: u64,
        file: &FileRef,
        offset: u64,
        write: bool,
        shared: bool,
        prot: Prot,
    ) -> Result<Filled, FaultOutcome> {
        let index = offset / PAGE;
        let mapped =
            crate::fs::wait_fault(&file.0, index, Access { write, shared }, FAULT_AROUND_PAGES)
                .map_err(|_| FaultOutcome::Bus)?;
        // A private page is copied before the lock is taken (the frame is
        // ours until it is published); its pin is kept until the check.
        let (new, source) = if shared {
            (PageRef::Shared(mapped), None)
        } else {
            let phys = alloc_frame().map_err(|_| FaultOutcome::Bus)?;
            mapped.read_at(0, frame_bytes(phys));
            (PageRef::Owned(phys), Some(mapped))
        };
        let (phys, writable) = match &new {
            PageRef::Shared(m) => (
                m.phys(),
                write && prot.contains(Prot::WRITE) && m.writable(),
            ),
            PageRef::Owned(p) => (*p, prot.contains(Prot::WRITE)),
        };
        let mut map = self.pages.lock(page);
        let current = match (&new, &source) {
            (PageRef::Shared(m), _) | (_, Some(m)) => m.current(),
            _ => true,
        };
        if !current {
            drop(map);
            drop(source);
            Self::forget_unmapped(new);
            return Ok(Filled::Stale);
        }
        let old = map.remove(page);
        if old.is_some() {
            crate::mm::user_map::unmap(page);
        }
        let unused = match crate::mm::user_map::map(page, phys, pte_flags(prot, writable)) {
            Ok(()) => {
                map.insert(page, new);
                None
            }
            Err(_) => Some(new),
        };
        drop(map);
        drop(source);
        // Whatever happened, the old page's entry is gone: other CPUs' TLBs
        // are shot down before its frame is freed or its pin dropped, and
        // both happen after the lock. A new page that could not be mapped
        // was never visible: it is released without a shoot-down.
        if let Some(old) = old {
            Self::release(alloc::vec![old]);
        }
        match unused {
            None => Ok(Filled::Installed),
            Some(p) => {
                Self::forget_unmapped(p);
                Err(FaultOutcome::Bus)
            }
        }
    }

    /// Releases a page that was never mapped (no TLB holds it).
    fn forget_unmapped(p: PageRef) {
        match p {
            PageRef::Owned(phys) => free_frame(phys),
            PageRef::Shared(m) => drop(m),
        }
    }

    /// Map-around, after a read fault on a shared file mapping: maps,
    /// read-only, those of the next [`FAULT_AROUND_PAGES`] pages of the
    /// file that the pagecache holds readable right now (no I/O, no
    /// sleep, no filesystem mutex: `Node::map_resident`), so that a
    /// program walking a cached mapping takes one fault per run of pages,
    /// as on Linux. The pages were pinned without a lock of ours: the area
    /// is looked up again (it may have changed while the fault slept,
    /// DESIGN.md §4 rule 3) and the pins checked current under the shard
    /// lock, all or none.
    fn map_around(&self, page: u64, file: &FileRef, offset: u64) {
        let index = offset / PAGE;
        let mut found = file.0.node.map_resident(index + 1, FAULT_AROUND_PAGES);
        if found.is_empty() {
            return;
        }
        let mut unused = Vec::new();
        {
            let vmaps = self.vmaps.lock();
            let area = vmaps.lookup(page).and_then(|v| {
                (v.share == Share::Shared
                    && !v.in_transition()
                    && v.prot.accessible()
                    && v.file_at(page)
                        .is_some_and(|(f, o)| f.same_file(file) && o == offset))
                .then_some(AreaView {
                    start: v.start,
                    end: v.end,
                    prot: v.prot,
                })
            });
            let mut map = self.pages.lock(page);
            match area {
                Some(area) if Mapped::all_current(&found) => Self::install_around(
                    &mut map,
                    page,
                    index,
                    area,
                    core::mem::take(&mut found),
                    &mut unused,
                ),
                _ => {}
            }
        }
        // Unpinned outside the locks.
        drop(found);
        drop(unused);
    }

    /// Installs map-around pages `found` (pinned, current, ascending) after
    /// the page at `page` (file page `index`) of `area`, under the shard
    /// lock of `page` (`map`): a page is mapped, read-only, where it lies
    /// inside the area and the leaf of `page` and nothing is mapped yet,
    /// all  What is not mapped goes to
    /// `unused`, released by the caller after the lock.
    fn install_around(
        map: &mut PageMap<PageRef>,
        page: u64,
        index: u64,
        area: AreaView,
        found: Vec<Mapped>,
        unused: &mut Vec<Mapped>,
    ) {
        let leaf_end = (page | (LEAF_SPAN - 1)) + 1;
        let end = area.end.min(leaf_end);
        let flags = pte_flags(area.prot, false);
        // (address, mapped, page)
        let mut ready: Vec<(u64, bool, Mapped)> = Vec::with_capacity(found.len());
        for m in found {
            let addr = page + (m.index() - index) * PAGE;
            if addr < area.start || addr >= end || map.contains(addr) {
                unused.push(m);
            } else {
                ready.push((addr, false, m));
            }
        }
        let mut entries = crate::mm::user_map::Cursor::new();
        for (addr, mapped, m) in &mut ready {
            // Not mapped: no memory for a table.
            *mapped = entries.map(*addr, m.phys(), flags).is_ok();
        }
        for (addr, mapped, m) in ready {
            if mapped {
                map.insert(addr, PageRef::Shared(m));
            } else {
                unused.push(m);
            }
        }
    }

    /// Removes the mappings of file offsets `[from, to)` of `file` (a
    /// truncate's end rounded up to a page, or a punched hole) from every
    /// area mapping it, shared or private (a private copy too, as Linux
    /// does on truncate): an access there faults again, and past the end
    /// of file gets SIGBUS. Called after the pagecache dropped the pages
    /// (the truncate's cap is set by then), under the kernel lock (the
    /// areas cannot change between the lookup and the removal): a fault
    /// that pinned a page before checks `Mapped::current` under the shard
    /// lock taken here, so no page taken away is installed after this.
    pub fn zap_file(&self, file: &FileData, from: u64, to: u64) {
        let from = from.div_ceil(PAGE) * PAGE;
        let ranges: Vec<(u64, u64)> = {
            let vmaps = self.vmaps.lock();
            vmaps
                .iter()
                .filter_map(|v| {
                    let VmapKind::File { file: f, offset } = &v.kind else {
                        return None;
                    };
                    if !core::ptr::eq(Arc::as_ptr(&f.0), file) {
                        return None;
                    }
                    let area_end = offset.saturating_add(v.end - v.start);
                    let (s, e) = (from.max(*offset), to.min(area_end));
                    (s < e).then(|| (v.start + (s - offset), v.start + (e - offset)))
                })
                .collect()
        };
        let mut freed = Vec::new();
        for (a, b) in ranges {
            self.unmap_range(a, b, &mut freed);
        }
        Self::release(freed);
    }

    /// Atomically replaces the 32-bit word at user address `addr` (4-byte
    /// aligned) with `f(old)` and returns `old` (futex `FUTEX_WAKE_OP`).
    /// The page is faulted in for writing first (sleeping, lock dropped);
    /// the update itself runs under the page's shard lock, which keeps the
    /// page mapped, as one compare-exchange loop on the frame, so it is
    /// atomic against the program's own atomics on other CPUs.
    pub fn atomic_update_u32(
        &self,
        addr: u64,
        mut f: impl FnMut(u32) -> u32,
    ) -> Result<u32, Errno> {
        if addr % 4 != 0 {
            return Err(Errno::EINVAL);
        }
        let page = addr & !(PAGE - 1);
        loop {
            {
                let _map = self.pages.lock(page);
                if let Some((phys, fl)) = crate::mm::user_map::lookup(page)
                    && fl & flags::WRITABLE != 0
                {
                    let ptr = (DIRECT_MAP_BASE + phys + (addr - page)) as *mut u32;
                    // SAFETY: the frame is mapped writable at `page` in this
                    // address space and stays so while the page's shard
                    // lock is held (unmapping takes it); `ptr` is 4-byte
                    // aligned inside the frame, reached through the direct
                    // map.
                    let word = unsafe { core::sync::atomic::AtomicU32::from_ptr(ptr) };
                    let mut old = word.load(core::sync::atomic::Ordering::Relaxed);
                    loop {
                        match word.compare_exchange_weak(
                            old,
                            f(old),
                            core::sync::atomic::Ordering::SeqCst,
                            core::sync::atomic::Ordering::Relaxed,
                        ) {
                            Ok(_) => return Ok(old),
                            Err(now) => old = now,
                        }
                    }
                }
            }
            self.fault(addr, true, false).map_err(|_| Errno::EFAULT)?;
        }
    }

    /// Pins the frames behind the user range `[addr, addr + len)` for a
    /// direct transfer (`write`: the device writes them, a direct read):
    /// every page is faulted in with that access first (`EFAULT` if it
    /// cannot be), then, a leaf at a time under its shard lock, each must
    /// be an owned frame (anonymous or private memory) and is pinned there.
    /// `Ok(None)` when one is a shared file mapping's pagecache page (the
    /// caller bounces through a kernel buffer instead) or the range kept
    /// changing under us.
    pub fn pin_user(&self, addr: u64, len: u64, write: bool) -> Result<Option<PinnedUser>, Errno> {
        if len == 0 || !crate::user::user_range_ok(addr, len) {
            return Err(Errno::EFAULT);
        }
        let first = addr & !(PAGE - 1);
        let end = (addr + len).div_ceil(PAGE) * PAGE;
        for _ in 0..4 {
            let mut page = first;
            while page < end {
                self.fault(page.max(addr), write, false)
                    .map_err(|_| Errno::EFAULT)?;
                page += PAGE;
            }
            // Dropped early (shared page or unmapped meanwhile), it unpins
            // what it holds.
            let mut pinned = PinnedUser {
                addr,
                len,
                frames: Vec::with_capacity(((end - first) / PAGE) as usize),
            };
            let mut page = first;
            let mut shared = false;
            'leaves: while page < end {
                let leaf_end = ((page | (LEAF_SPAN - 1)) + 1).min(end);
                let map = self.pages.lock(page);
                let mut pins = PINS.lock();
                while page < leaf_end {
                    match map.get(page) {
                        Some(PageRef::Owned(phys)) => {
                            pins.entry(*phys).or_insert((0, false)).0 += 1;
                            pinned.frames.push(*phys);
                        }
                        Some(PageRef::Shared(_)) => {
                            shared = true;
                            break 'leaves;
                        }
                        None => break 'leaves,
                    }
                    page += PAGE;
                }
            }
            if shared {
                return Ok(None);
            }
            if page < end {
                // Unmapped between the fault and the lock: again.
                continue;
            }
            return Ok(Some(pinned));
        }
        Ok(None)
    }

    /// Pages mapped now (the resident set, `/proc/self/status`).
    pub fn resident_pages(&self) -> u64 {
        self.pages.count() as u64
    }

    /// Which of the pages of `[start, start + len)` are resident (mincore).
    pub fn resident(&self, start: u64, len: u64) -> Vec<bool> {
        let mut out = alloc::vec![false; len.div_ceil(PAGE) as usize];
        for a in self.pages.addresses(start, start + len) {
            out[((a - start) / PAGE) as usize] = true;
        }
        out
    }

    /// Drops the pages of `[start, start + len)` (madvise DONTNEED):
    /// anonymous memory reads as zeros again, file pages are re-read.
    pub fn discard(&self, start: u64, len: u64) {
        let mut freed = Vec::new();
        self.unmap_range(start, start + len, &mut freed);
        Self::release(freed);
    }
}

/// The access a fault was (`write`: a store; `exec`: a fetch).
fn access_of(write: bool, exec: bool) -> Prot {
    if exec {
        Prot::EXEC
    } else if write {
        Prot::WRITE
    } else {
        Prot::READ
    }
}
