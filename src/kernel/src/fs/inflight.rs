//! Direct transfers in flight: an `O_DIRECT` read or write at an explicit
//! offset that Linux AIO or io_uring submits is *started*
//! ([`Mount::start_direct`]) and finished later, so the system call
//! returns while the device works and a program keeps many requests
//! queued (fio's `iodepth`).
//!
//! **Start** (kernel-lock context, the submitting thread): the user
//! buffers are pinned ([`crate::process::aspace::AddressSpace::pin_user`]);
//! then, under the file's `fs.truncate` mutex, the file's dirty pages are
//! written back and waited for (as the synchronous path,
//! `fs/direct.rs`), a write reserves its storage, the extents are looked
//! up, holes of a read are zeroed in the user's pages, and the transfer is
//! counted on the file ([`FileData::dio`]) and globally; the mutex is then
//! released and the block requests are submitted. A truncate or hole punch
//! takes the mutex and then waits for the file's count to reach zero
//! ([`wait_file`]), so no storage is freed under a transfer.
//!
//! **Completion**: each block request's completion runs in bh context: it
//! records a failure and drops its reference to the transfer's shared
//! record (allocated bh-safe); the one that drops the last reference
//! (`Arc::into_inner`, atomic) moves the record, untouched, to the
//! **lander** (`dio`, a [`Worker`] thread, kernel-lock context), which
//! finishes it ([`land`]): for a write, records the range written and any
//! growth of the length in TFS (logged for the next commit, as a buffered
//! write) and drops the cached clean pages of the range; then unpins the
//! user pages, uncounts the transfer and calls the caller's [`Landing`]
//! (which posts the CQE or `io_event`, signals eventfds, wakes waiters),
//! then drops the open file description it held. Nothing general-heap is
//! freed in bh context: the bh side only moves the record. If the
//! submitting thread's own reference is the last (every request already
//! finished), it lands the transfer itself.
//!
//! What is not started this way runs synchronously in the caller
//! ([`Start::Synchronous`]): buffers in a shared file mapping (bounced),
//! misaligned or faulting buffers (the synchronous path reports them),
//! more than [`MAX_IOVECS`] vectors or [`MAX_BYTES`] in all.
//!
//! A device writes into pinned frames only: an `munmap` or the program's
//! exit while a transfer is in flight defers those frames' free to the
//! unpin (`aspace.pins`), and the open file description the transfer holds
//! keeps the file (and its storage) alive. The program's exit waits for
//! every transfer ([`wait_all`]) before the final sync.
//!
//! Locks: `fs.truncate` then `fs` at the start (never across the device
//! I/O); `fs` in the lander. Wait queue `LANDED` (woken by the lander).

use super::{FileData, Mount, errno_of};
use crate::process::aspace::PinnedUser;
use crate::process::file::OpenFile;
use crate::sched::waitqueue::WaitQueue;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_block::{Request, Segment, Status};
use cairn_pagecache::{Errno, PAGE_SIZE};
use cairn_sync::cpu::bh_safe_alloc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::direct::DIO_ALIGN;

/// Most vectors a transfer started in flight may have.
pub const MAX_IOVECS: usize = 64;
/// Most bytes a transfer started in flight may move (the synchronous
/// path's pin window).
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;

const PS: u64 = PAGE_SIZE as u64;

/// What the lander calls when a transfer is finished (kernel-lock
/// context, the lander thread or the submitter): the bytes moved, or the
/// error.
pub type Landing = Box<dyn FnOnce(Result<usize, Errno>) + Send + Sync>;

/// What [`Mount::start_direct`] did.
pub enum Start {
    /// Started: the landing was taken and will be called.
    InFlight,
    /// Finished at once, without the landing (nothing to move, or an
    /// error before any I/O).
    Done(Result<usize, Errno>),
    /// Not eligible: run the synchronous path instead.
    Synchronous,
}

/// Transfers in flight, all files.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Transfers started in flight since boot (`/proc/cairn/kstats`).
static STARTED: AtomicU64 = AtomicU64::new(0);
/// Woken when a transfer lands.
static LANDED: WaitQueue = WaitQueue::new();
static LANDER: spin::Once<&'static super::worker::Worker> = spin::Once::new();

/// Transfers started in flight since boot.
pub fn started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// Transfers in flight now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Sleeps until no transfer of `file` is in flight (a truncate or punch,
/// holding the file's `fs.truncate` mutex, so none starts meanwhile).
pub fn wait_file(file: &FileData) {
    LANDED.wait_until(|| file.dio.load(Ordering::Acquire) == 0);
}

/// Sleeps until no transfer is in flight (the program's exit).
pub fn wait_all() {
    LANDED.wait_until(|| IN_FLIGHT.load(Ordering::Acquire) == 0);
}

/// A started transfer: what the lander needs.
struct Flight {
    mount: &'static Mount,
    file: Arc<FileData>,
    /// The open file description, held until the transfer has landed.
    hold: Arc<OpenFile>,
    write: bool,
    off: u64,
    /// Bytes written (a write) or read (a read, short at the end of file).
    len: u64,
    pins: Vec<PinnedUser>,
    landing: Landing,
}

/// Shared by the block requests of one transfer and its submitter.
struct Shared {
    failed: AtomicBool,
    flight: Flight,
}

/// Calls `each(buffer, from, n)` for the part of each pinned buffer that
/// bytes `[from, from + len)` of them, taken as one run, cover.
fn for_each_part(
    pins: &[PinnedUser],
    mut from: u64,
    mut len: u64,
    mut each: impl FnMut(&PinnedUser, u64, u64),
) {
    for p in pins {
        if len == 0 {
            break;
        }
        if from >= p.len() {
            from -= p.len();
            continue;
        }
        let n = (p.len() - from).min(len);
        each(p, from, n);
        from = 0;
        len -= n;
    }
}

/// Segments of bytes `[from, from + len)` of the pinned buffers, taken
/// as one run (physically adjacent pieces joined).
fn segments(pins: &[PinnedUser], from: u64, len: u64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for_each_part(pins, from, len, |p, from, n| {
        for s in p.segments(from, n) {
            match out.last_mut() {
                Some(last) if last.phys + u64::from(last.len) == s.phys => last.len += s.len,
                _ => out.push(s),
            }
        }
    });
    out
}

/// Zeroes bytes `[from, from + len)` of the pinned buffers (a hole read).
fn zero(pins: &[PinnedUser], from: u64, len: u64) {
    for_each_part(pins, from, len, |p, from, n| p.zero(from, n));
}

/// A block request's completion, or the submitter's end: whoever drops
/// the last reference hands the transfer on (bh: to the lander).
fn release(s: Arc<Shared>, inline: bool) {
    if let Some(s) = Arc::into_inner(s) {
        if inline {
            land(s);
        } else {
            let lander = LANDER.get().expect("dio lander");
            lander.defer(Box::new(move || land(s)));
        }
    }
}

/// Finishes a transfer (kernel-lock context, in a thread).
fn land(s: Shared) {
    let Shared { failed, flight } = s;
    let Flight {
        mount,
        file,
        hold,
        write,
        off,
        len,
        pins,
        landing,
    } = flight;
    let mut r = if failed.load(Ordering::Acquire) {
        Err(Errno::EIO)
    } else {
        Ok(len as usize)
    };
    if write {
        if r.is_ok() {
            let grown = super::direct::finish_write(&mut mount.fs(), &file, off, len);
            file.node.length_changed();
            if let Err(e) = grown {
                r = Err(e);
            }
        }
        // Buffered readers see the new data: the cached copies go.
        file.node
            .invalidate_clean_range(off / PS, (off + len).div_ceil(PS));
    }
    drop(pins);
    file.dio.fetch_sub(1, Ordering::AcqRel);
    landing(r);
    drop(hold);
    drop(file);
    IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    LANDED.wake_all();
}

impl Mount {
    /// Starts a direct transfer of the user buffers `iov` (address,
    /// length) to (`write`) or from `file` at `off`, holding `hold` (the
    /// open file description) until it lands; `landing` is taken when it
    /// goes in flight. Kernel-lock context, in a thread; no spinlock held.
    pub fn start_direct(
        &'static self,
        file: &Arc<FileData>,
        hold: &Arc<OpenFile>,
        write: bool,
        off: u64,
        iov: &[(u64, u64)],
        landing: &mut Option<Landing>,
    ) -> Start {
        if iov.is_empty() || iov.len() > MAX_IOVECS {
            return Start::Synchronous;
        }
        let mut total = 0u64;
        for &(addr, len) in iov {
            if len == 0 || super::direct::check_aligned(addr, off, len).is_err() {
                return Start::Synchronous;
            }
            total += len;
        }
        if total > MAX_BYTES {
            return Start::Synchronous;
        }
        // Pinned before any lock is taken (pinning faults pages in).
        let p = crate::process::current();
        let mut pins = Vec::with_capacity(iov.len());
        for &(addr, len) in iov {
            match p.aspace.pin_user(addr, len, !write) {
                Ok(Some(p)) => pins.push(p),
                // A shared file mapping (bounced), or a fault: the
                // synchronous path handles and reports it.
                _ => return Start::Synchronous,
            }
        }
        let storage = file.truncating.lock();
        if let Err(e) = self.write_back_cached(file) {
            return Start::Done(Err(e));
        }
        let (len, maps) = {
            let mut fs = self.fs();
            let len = if write {
                if let Err(e) = fs.allocate(file.ino, off, total) {
                    return Start::Done(Err(errno_of(e)));
                }
                total
            } else {
                let size = match fs.length(file.ino) {
                    Ok(s) => s,
                    Err(e) => return Start::Done(Err(errno_of(e))),
                };
                if off >= size {
                    return Start::Done(Ok(0));
                }
                total.min(size - off)
            };
            let whole = len.next_multiple_of(DIO_ALIGN);
            match fs.map(file.ino, off, whole) {
                Ok(m) => (len, m),
                Err(e) => return Start::Done(Err(errno_of(e))),
            }
        };
        let whole = len.next_multiple_of(DIO_ALIGN);
        // Pieces for the device: (byte of the buffers, bytes, sector).
        let mut pieces = Vec::new();
        for run in super::direct::runs(maps, off, whole, write) {
            match run {
                Ok((at, n, Some(sector))) => pieces.push((at, n, sector)),
                Ok((at, n, None)) => zero(&pins, at, n),
                Err(e) => return Start::Done(Err(e)),
            }
        }
        let Some(landing) = landing.take() else {
            return Start::Synchronous;
        };
        file.dio.fetch_add(1, Ordering::AcqRel);
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        STARTED.fetch_add(1, Ordering::Relaxed);
        // Counted: a truncate now waits for it.
        drop(storage);
        LANDER.call_once(|| super::worker::Worker::start("dio"));
        let all: Vec<(Vec<Segment>, u64)> = pieces
            .iter()
            .map(|&(at, n, sector)| (segments(&pins, at, n), sector))
            .collect();
        let shared = bh_safe_alloc(|| {
            Arc::new(Shared {
                failed: AtomicBool::new(false),
                flight: Flight {
                    mount: self,
                    file: file.clone(),
                    hold: hold.clone(),
                    write,
                    off,
                    len,
                    pins,
                    landing,
                },
            })
        });
        for (segs, sector) in &all {
            for (at, req) in super::direct::requests(self.volume().device_info(), segs, *sector) {
                let s = shared.clone();
                let done = move |st: Status| {
                    if st != Status::Ok {
                        s.failed.store(true, Ordering::Release);
                    }
                    release(s, false);
                };
                let request = if write {
                    Request::write(at, &req, done)
                } else {
                    Request::read(at, &req, done)
                };
                self.volume().submit(request);
            }
        }
        release(shared, true);
        Start::InFlight
    }
}
