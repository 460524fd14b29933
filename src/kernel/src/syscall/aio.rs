//! Linux native AIO: io_setup, io_destroy, io_submit, io_getevents,
//! io_pgetevents, io_cancel.
//!
//! A context is a queue of completion events. `io_submit` hands each
//! request to `request.rs` (shared with io_uring): `O_DIRECT` `PREAD`,
//! `PWRITE`, `PREADV`, `PWRITEV` (without `RWF_DSYNC`/`RWF_SYNC`) are
//! *started* and go in flight (`Request::start`, `fs/inflight.rs`): the
//! `dio` lander thread queues their `io_event` later. The rest (buffered
//! I/O, `FSYNC`/`FDSYNC`) runs at once in the calling thread through the
//! paths of pread/pwrite/preadv/pwritev/fsync. Each completion queues its
//! `io_event` and, with `IOCB_FLAG_RESFD`, adds 1 to the request's
//! eventfd; `io_getevents` takes queued events, sleeping (until `min_nr`
//! are there, its timeout passes or a signal comes) when there are fewer.
//! A context takes at most `nr_events` requests queued or in flight
//! (`EAGAIN` past that). `io_destroy` waits for the context's requests
//! in flight, as Linux's. `io_cancel` cancels nothing (`EINVAL`: a
//! started block request cannot be called back; Linux's block-device
//! requests cannot be cancelled either).
//!
//! The context id is the address of a read-only page mapped in the
//! program (Linux maps its completion ring there); the page holds zeros,
//! so libaio's user-space check of the ring's magic fails and it always
//! makes the `io_getevents` system call.
//!
//! Kernel-lock context, in a thread. Locks: `aio.contexts` (the table),
//! `aio.events` (a context's queue); both SpinLocks, kernel-lock only,
//! leaves, never held across a request, a user copy or a wait.

use super::request::{self, Op, Request};
use super::{SysResult, copy_in, copy_out};
use crate::ipc::eventfd::EventFd;
use crate::sched::wait::{Pollable, WaitError, wait_event};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::errno::Errno;

static CONTEXTS_CLASS: LockClass = LockClass::new("aio.contexts");
static EVENTS_CLASS: LockClass = LockClass::new("aio.events");

/// Contexts by id (the address of their page).
static CONTEXTS: SpinLock<BTreeMap<u64, Arc<Context>>> =
    SpinLock::new(&CONTEXTS_CLASS, BTreeMap::new());

/// Most events a context may be set up for (Linux's default
/// `aio-max-nr`).
const MAX_EVENTS: u64 = 65536;
const PAGE: u64 = 4096;
const IOCB_SIZE: usize = 64;
const EVENT_SIZE: usize = 32;

const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_PWRITE: u16 = 1;
const IOCB_CMD_FSYNC: u16 = 2;
const IOCB_CMD_FDSYNC: u16 = 3;
const IOCB_CMD_PREADV: u16 = 7;
const IOCB_CMD_PWRITEV: u16 = 8;
const IOCB_FLAG_RESFD: u32 = 1;
const IOCB_FLAG_IOPRIO: u32 = 2;

struct Context {
    /// Events not yet taken (at most `capacity`).
    events: SpinLock<VecDeque<[u8; EVENT_SIZE]>>,
    capacity: usize,
    ready: Pollable,
    /// Set by io_destroy: waiters leave.
    dead: core::sync::atomic::AtomicBool,
    /// Requests in flight (started, no event queued yet).
    in_flight: core::sync::atomic::AtomicUsize,
    /// Woken when the last request in flight lands (io_destroy).
    drained: crate::sched::waitqueue::WaitQueue,
}

impl Context {
    /// Queues a completion's event, then signals its eventfd.
    fn complete(&self, ev: [u8; EVENT_SIZE], resfd: Option<File>) {
        self.events.lock().push_back(ev);
        self.ready.notify();
        if let Some(f) = resfd {
            let one = 1u64.to_le_bytes();
            if let Some(ops) = f.ops() {
                let _ = ops.write(&f, 0, crate::process::file::Src::Kernel(&one), 8);
            }
        }
    }
}

/// The `io_event` of a completion: `data`, `obj` (the iocb), `res`.
fn event(data: u64, obj: u64, res: i64) -> [u8; EVENT_SIZE] {
    let mut ev = [0u8; EVENT_SIZE];
    ev[0..8].copy_from_slice(&data.to_le_bytes());
    ev[8..16].copy_from_slice(&obj.to_le_bytes());
    ev[16..24].copy_from_slice(&res.to_le_bytes());
    ev
}

impl Context {
    /// One request in flight is done (its event queued).
    fn landed(&self) {
        let n = self
            .in_flight
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
        if n == 1 {
            self.drained.wake_all();
        }
    }
}

fn context(id: u64) -> Result<Arc<Context>, Errno> {
    CONTEXTS.lock().get(&id).cloned().ok_or(Errno::EINVAL)
}

/// io_setup(nr_events, ctxp): `*ctxp` must be 0; writes the new id there.
pub fn io_setup(nr_events: u32, ctxp: u64) -> SysResult {
    let mut cur = [0u8; 8];
    copy_in(&mut cur, ctxp)?;
    if u64::from_le_bytes(cur) != 0 || nr_events == 0 {
        return Err(Errno::EINVAL);
    }
    if u64::from(nr_events) > MAX_EVENTS {
        return Err(Errno::EAGAIN);
    }
    // PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS.
    let id = super::mm::mmap(0, PAGE, 1, 0x22, -1, 0)?;
    if let Err(e) = copy_out(ctxp, &id.to_le_bytes()) {
        let _ = super::mm::munmap(id, PAGE);
        return Err(e);
    }
    let ctx = Arc::new(Context {
        events: SpinLock::new(&EVENTS_CLASS, VecDeque::new()),
        capacity: nr_events as usize,
        ready: Pollable::new(),
        dead: core::sync::atomic::AtomicBool::new(false),
        in_flight: core::sync::atomic::AtomicUsize::new(0),
        drained: crate::sched::waitqueue::WaitQueue::new(),
    });
    CONTEXTS.lock().insert(id, ctx);
    Ok(0)
}

/// io_destroy(ctx): the context goes (its page is unmapped) once its
/// requests in flight have completed; threads waiting in io_getevents on
/// it return.
pub fn io_destroy(id: u64) -> SysResult {
    let ctx = CONTEXTS.lock().remove(&id).ok_or(Errno::EINVAL)?;
    ctx.drained
        .wait_until(|| ctx.in_flight.load(core::sync::atomic::Ordering::Acquire) == 0);
    ctx.dead.store(true, core::sync::atomic::Ordering::Release);
    ctx.ready.notify();
    let _ = super::mm::munmap(id, PAGE);
    Ok(0)
}

/// One decoded `struct iocb`.
struct Iocb {
    data: u64,
    rw_flags: u32,
    opcode: u16,
    fd: i32,
    buf: u64,
    nbytes: u64,
    offset: u64,
    reserved2: u64,
    flags: u32,
    resfd: i32,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn decode(b: &[u8; IOCB_SIZE]) -> Iocb {
    Iocb {
        data: le64(b, 0),
        rw_flags: le32(b, 12),
        opcode: u16::from_le_bytes([b[16], b[17]]),
        fd: le32(b, 20) as i32,
        buf: le64(b, 24),
        nbytes: le64(b, 32),
        offset: le64(b, 40),
        reserved2: le64(b, 48),
        flags: le32(b, 56),
        resfd: le32(b, 60) as i32,
    }
}

type File = Arc<crate::process::file::OpenFile>;

/// Checks what Linux's `io_submit_one` refuses before the request runs;
/// returns the request's file and the eventfd to signal, if any.
fn check(cb: &Iocb) -> Result<(File, Option<File>), Errno> {
    if cb.reserved2 != 0 || cb.flags & !(IOCB_FLAG_RESFD | IOCB_FLAG_IOPRIO) != 0 {
        return Err(Errno::EINVAL);
    }
    if !matches!(
        cb.opcode,
        IOCB_CMD_PREAD
            | IOCB_CMD_PWRITE
            | IOCB_CMD_FSYNC
            | IOCB_CMD_FDSYNC
            | IOCB_CMD_PREADV
            | IOCB_CMD_PWRITEV
    ) {
        return Err(Errno::EINVAL);
    }
    request::check_rw_flags(cb.rw_flags)?;
    let file = super::fs::get_file(cb.fd)?;
    if cb.flags & IOCB_FLAG_RESFD == 0 {
        return Ok((file, None));
    }
    let f = super::fs::get_file(cb.resfd)?;
    if f.downcast::<EventFd>().is_none() {
        return Err(Errno::EINVAL);
    }
    Ok((file, Some(f)))
}

/// Starts or runs one request: its `res` (a count, or a negative errno),
/// or `None` when it went in flight (`landing` gets it later).
fn run(cb: &Iocb, file: &File, landing: Box<dyn FnOnce(i64) + Send + Sync>) -> Option<i64> {
    let op = match cb.opcode {
        IOCB_CMD_PREAD => Op::Read,
        IOCB_CMD_PWRITE => Op::Write,
        IOCB_CMD_PREADV => Op::Readv,
        IOCB_CMD_PWRITEV => Op::Writev,
        _ => Op::Sync,
    };
    Request {
        file,
        op,
        buf: cb.buf,
        len: cb.nbytes,
        offset: Some(cb.offset),
        rw_flags: cb.rw_flags,
    }
    .start(file, landing)
}

/// io_submit(ctx, nr, iocbpp): runs the requests in order; returns how
/// many were submitted, or the first one's error when none was.
pub fn io_submit(id: u64, nr: i64, iocbpp: u64) -> SysResult {
    if nr < 0 {
        return Err(Errno::EINVAL);
    }
    let ctx = context(id)?;
    let mut done = 0u64;
    let fail = |e: Errno, done: u64| if done > 0 { Ok(done) } else { Err(e) };
    for i in 0..nr as u64 {
        let mut p = [0u8; 8];
        if let Err(e) = copy_in(&mut p, iocbpp + i * 8) {
            return fail(e, done);
        }
        let at = u64::from_le_bytes(p);
        let mut b = [0u8; IOCB_SIZE];
        if let Err(e) = copy_in(&mut b, at) {
            return fail(e, done);
        }
        let cb = decode(&b);
        let (file, resfd) = match check(&cb) {
            Ok(r) => r,
            Err(e) => return fail(e, done),
        };
        let busy = ctx.in_flight.load(core::sync::atomic::Ordering::Acquire);
        if ctx.events.lock().len() + busy >= ctx.capacity {
            return fail(Errno::EAGAIN, done);
        }
        let data = cb.data;
        ctx.in_flight
            .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
        let (held, fd) = (ctx.clone(), resfd.clone());
        // Called by the lander (kernel-lock context).
        let landing = Box::new(move |res: i64| {
            held.complete(event(data, at, res), fd);
            held.landed();
        });
        if let Some(res) = run(&cb, &file, landing) {
            ctx.complete(event(data, at, res), resfd);
            ctx.landed();
        }
        drop(file);
        done += 1;
    }
    Ok(done)
}

/// io_getevents(ctx, min_nr, nr, events, timeout): takes up to `nr`
/// events, waiting while fewer than `min_nr` are queued until `timeout`
/// (relative; NULL: no limit). Returns how many were taken; 0 at the
/// timeout with none; `EINTR` for a signal before any.
pub fn io_getevents(id: u64, min_nr: i64, nr: i64, events: u64, timeout: u64) -> SysResult {
    let ctx = context(id)?;
    if min_nr < 0 || nr < 0 || min_nr > nr {
        return Err(Errno::EINVAL);
    }
    let deadline = super::poll::timespec_deadline(timeout)?;
    let (min_nr, nr) = (min_nr as usize, nr as usize);
    let taken: Result<Vec<[u8; EVENT_SIZE]>, WaitError> =
        wait_event(&[&ctx.ready], deadline, || {
            let mut q = ctx.events.lock();
            if q.len() >= min_nr.max(1) || ctx.dead.load(core::sync::atomic::Ordering::Acquire) {
                let k = q.len().min(nr);
                return Some(q.drain(..k).collect());
            }
            if min_nr == 0 {
                return Some(Vec::new());
            }
            None
        });
    let taken = match taken {
        Ok(t) => t,
        // The timeout: whatever is there (fewer than min_nr).
        Err(WaitError::TimedOut) => {
            let mut q = ctx.events.lock();
            let k = q.len().min(nr);
            q.drain(..k).collect()
        }
        Err(WaitError::Interrupted) => return Err(Errno::EINTR),
    };
    let mut out = Vec::with_capacity(taken.len() * EVENT_SIZE);
    for e in &taken {
        out.extend_from_slice(e);
    }
    if let Err(e) = copy_out(events, &out) {
        // Put them back for the next call, in order.
        let mut q = ctx.events.lock();
        for ev in taken.into_iter().rev() {
            q.push_front(ev);
        }
        return Err(e);
    }
    Ok(taken.len() as u64)
}

/// io_pgetevents: io_getevents with a signal mask for the wait
/// (`struct { const sigset_t *sigmask; size_t sigsetsize; }` at `usig`).
pub fn io_pgetevents(
    id: u64,
    min_nr: i64,
    nr: i64,
    events: u64,
    timeout: u64,
    usig: u64,
) -> SysResult {
    if usig == 0 {
        return io_getevents(id, min_nr, nr, events, timeout);
    }
    let mut b = [0u8; 16];
    copy_in(&mut b, usig)?;
    let (mask_at, size) = (le64(&b, 0), le64(&b, 8));
    let mask = super::poll::temporary_mask(mask_at, size)?;
    super::signal::with_temporary_mask(mask, || io_getevents(id, min_nr, nr, events, timeout))
}

/// io_cancel(ctx, iocb, result): nothing is ever cancelled (a request
/// runs at submission or is a started block transfer): `EINVAL`, as
/// Linux for a request that cannot be cancelled.
pub fn io_cancel(id: u64, _iocb: u64, _result: u64) -> SysResult {
    context(id)?;
    Err(Errno::EINVAL)
}
