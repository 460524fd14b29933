//! io_uring: `io_uring_setup`, `io_uring_enter`, `io_uring_register`.
//!
//! **Rings.** A ring's submission queue (SQ), completion queue (CQ) and
//! SQE array live in the pages of an unlinked TFS file, as a memfd's
//! (`memfd.rs`): the program maps them shared through the ordinary mmap
//! path (`mm.rs` asks [`map_region`] which file pages an offset means),
//! and the kernel reads SQEs and writes CQEs through its own pins of the
//! same pagecache pages (`cairn_pagecache::Mapped`, taken at setup and
//! held until the ring goes), never through the program's pointers. One
//! region holds both rings (`IORING_FEAT_SINGLE_MMAP`: offsets
//! `IORING_OFF_SQ_RING` and `IORING_OFF_CQ_RING` map the same pages),
//! the SQEs another. Every index and field the program writes (SQ tail,
//! CQ head, the SQ array, the SQEs) is hostile: an SQ array entry past
//! the ring is counted in the SQ's `dropped`, counts are clamped to the
//! ring sizes, user addresses in SQEs go through the checked user copies.
//! The kernel keeps its own SQ head and CQ tail and only writes them out.
//!
//! **Execution.** SQEs are consumed by `io_uring_enter`, in the calling
//! thread, in ring order. `O_DIRECT` reads and writes at an explicit
//! offset (`READ`, `WRITE`, `READV`, `WRITEV`, `READ_FIXED`,
//! `WRITE_FIXED`, without `RWF_DSYNC`/`RWF_SYNC`) are *started* and go in
//! flight (`Request::start`, `fs/inflight.rs`): their CQE is posted later
//! by the `dio` lander thread, which holds the ring's description until
//! then. Everything else runs at once through `request.rs` (buffered I/O,
//! offset -1, fsync, the metadata opcodes), as do the members of an
//! `IOSQE_IO_LINK` chain (so a chain stays ordered) and an
//! `IOSQE_IO_DRAIN` SQE, which first waits until none of the ring's
//! requests is in flight (so it starts after every earlier SQE completed,
//! and later ones after it). Closing or unmapping the ring with requests
//! in flight frees nothing they use: each holds the ring, its file and its
//! pinned user pages until it lands. `IOSQE_IO_LINK`: a
//! failed request (an error, or a short read or write) completes the rest
//! of its chain with `-ECANCELED`. A CQE that does not fit in the CQ waits
//! in a kernel backlog (`IORING_FEAT_NODROP`, `IORING_SQ_CQ_OVERFLOW` set
//! meanwhile) and is moved to the CQ when the program makes room and
//! enters again; past [`BACKLOG_MAX`] CQEs are counted in the CQ's
//! `overflow` and dropped. `IORING_SETUP_SQPOLL` and `IORING_SETUP_IOPOLL`
//! are refused (`EINVAL`): there is no polling thread.
//!
//! Kernel-lock context, in the calling thread. Locks: `uring.submit`
//! (SleepMutex, one per ring) held across a submission batch, so two
//! threads entering the same ring consume SQEs one at a time; it is taken
//! before every lock of the requests it runs (`file.pos`, `fs.truncate`,
//! `fs`, fd table). `uring.state` (SpinLock, kernel-lock only, a leaf)
//! around the CQ tail, the backlog and the registered tables; never held
//! across a request, a user copy, a wait or an eventfd signal.

use super::request::{self, Op, Request};
use super::{SysResult, copy_in, copy_out};
use crate::fs::FileData;
use crate::ipc::eventfd::EventFd;
use crate::process::aspace::PAGE;
use crate::process::current;
use crate::process::file::{FileKind, FileOps, O_RDWR, OpenFile, poll};
use crate::sched::mutex::SleepMutex;
use crate::sched::wait::{Pollable, WaitError, wait_event};
use crate::sched::waitqueue::WaitQueue;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use cairn_pagecache::{Access, Mapped};
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

pub static SUBMIT_CLASS: LockClass = LockClass::new("uring.submit");
static STATE_CLASS: LockClass = LockClass::new("uring.state");

const MAX_ENTRIES: u32 = 32768;
const MAX_CQ_ENTRIES: u32 = 2 * MAX_ENTRIES;
/// CQEs kept for a full CQ before they are counted as overflowed.
pub const BACKLOG_MAX: usize = 65536;
const SQE_SIZE: u64 = 64;
const CQE_SIZE: u64 = 16;

// Setup flags.
const SETUP_IOPOLL: u32 = 1;
const SETUP_SQPOLL: u32 = 2;
const SETUP_CQSIZE: u32 = 8;
const SETUP_CLAMP: u32 = 16;
const SETUP_SUBMIT_ALL: u32 = 128;
const SETUP_COOP_TASKRUN: u32 = 256;
const SETUP_SINGLE_ISSUER: u32 = 4096;
const SETUP_DEFER_TASKRUN: u32 = 8192;
const SETUP_NO_SQARRAY: u32 = 65536;
/// What `io_uring_setup` accepts: completions are posted at submission,
/// so the task-run hints hold trivially.
const SETUP_FLAGS: u32 = SETUP_CQSIZE
    | SETUP_CLAMP
    | SETUP_SUBMIT_ALL
    | SETUP_COOP_TASKRUN
    | SETUP_SINGLE_ISSUER
    | SETUP_DEFER_TASKRUN
    | SETUP_NO_SQARRAY;

// Features reported.
const FEAT_SINGLE_MMAP: u32 = 1;
const FEAT_NODROP: u32 = 2;
const FEAT_SUBMIT_STABLE: u32 = 4;
const FEAT_RW_CUR_POS: u32 = 8;
const FEAT_EXT_ARG: u32 = 256;
const FEAT_CQE_SKIP: u32 = 2048;

// mmap offsets.
const OFF_SQ_RING: u64 = 0;
const OFF_CQ_RING: u64 = 0x800_0000;
const OFF_SQES: u64 = 0x1000_0000;

// Enter flags.
const ENTER_GETEVENTS: u32 = 1;
const ENTER_SQ_WAKEUP: u32 = 2;
const ENTER_SQ_WAIT: u32 = 4;
const ENTER_EXT_ARG: u32 = 8;

// SQ flags (kernel-written).
const SQ_CQ_OVERFLOW: u32 = 2;
// CQ flags (program-written).
const CQ_EVENTFD_DISABLED: u32 = 1;

// SQE flags.
const IOSQE_FIXED_FILE: u8 = 1;
const IOSQE_IO_DRAIN: u8 = 2;
const IOSQE_IO_LINK: u8 = 4;
const IOSQE_IO_HARDLINK: u8 = 8;
const IOSQE_ASYNC: u8 = 16;
const IOSQE_CQE_SKIP_SUCCESS: u8 = 64;
const IOSQE_FLAGS: u8 = IOSQE_FIXED_FILE
    | IOSQE_IO_DRAIN
    | IOSQE_IO_LINK
    | IOSQE_IO_HARDLINK
    | IOSQE_ASYNC
    | IOSQE_CQE_SKIP_SUCCESS;

// Opcodes.
const OP_NOP: u8 = 0;
const OP_READV: u8 = 1;
const OP_WRITEV: u8 = 2;
const OP_FSYNC: u8 = 3;
const OP_READ_FIXED: u8 = 4;
const OP_WRITE_FIXED: u8 = 5;
const OP_FALLOCATE: u8 = 17;
const OP_OPENAT: u8 = 18;
const OP_CLOSE: u8 = 19;
const OP_STATX: u8 = 21;
const OP_READ: u8 = 22;
const OP_WRITE: u8 = 23;
const OP_RENAMEAT: u8 = 35;
const OP_UNLINKAT: u8 = 36;
const OP_MKDIRAT: u8 = 37;
/// Every opcode executed; the rest complete with `-EINVAL` and the
/// probe reports exactly these.
const SUPPORTED: [u8; 15] = [
    OP_NOP,
    OP_READV,
    OP_WRITEV,
    OP_FSYNC,
    OP_READ_FIXED,
    OP_WRITE_FIXED,
    OP_FALLOCATE,
    OP_OPENAT,
    OP_CLOSE,
    OP_STATX,
    OP_READ,
    OP_WRITE,
    OP_RENAMEAT,
    OP_UNLINKAT,
    OP_MKDIRAT,
];
const FSYNC_DATASYNC: u32 = 1;

// Register opcodes.
const REG_BUFFERS: u32 = 0;
const UNREG_BUFFERS: u32 = 1;
const REG_FILES: u32 = 2;
const UNREG_FILES: u32 = 3;
const REG_EVENTFD: u32 = 4;
const UNREG_EVENTFD: u32 = 5;
const REG_EVENTFD_ASYNC: u32 = 7;
const REG_PROBE: u32 = 8;
/// Linux's `IORING_MAX_REG_BUFFERS`.
const MAX_REG_BUFFERS: u32 = 1 << 14;
/// Linux's `IORING_MAX_FIXED_FILES`.
const MAX_FIXED_FILES: u32 = 1 << 20;
/// A registered buffer's largest size (Linux: 1 GiB).
const MAX_BUFFER: u64 = 1 << 30;
/// Linux's `IORING_OP_LAST` at the time of writing: the probe's size.
const OP_LAST: u32 = 58;

// Layout of the rings region (the program learns it from the offsets).
const SQ_HEAD: u64 = 0;
const SQ_TAIL: u64 = 4;
const SQ_MASK: u64 = 8;
const SQ_ENTRIES: u64 = 12;
const SQ_FLAGS: u64 = 16;
const SQ_DROPPED: u64 = 20;
const CQ_HEAD: u64 = 64;
const CQ_TAIL: u64 = 68;
const CQ_MASK: u64 = 72;
const CQ_ENTRIES: u64 = 76;
const CQ_OVERFLOW: u64 = 80;
const CQ_FLAGS: u64 = 84;
const CQES: u64 = 128;

/// The kernel's side of a ring's state.
struct State {
    /// The SQ head (the next SQE to consume); written out, never read.
    sq_head: u32,
    /// The CQ tail; written out, never read.
    cq_tail: u32,
    sq_flags: u32,
    dropped: u32,
    overflow: u32,
    /// CQEs waiting for room in the CQ.
    backlog: VecDeque<[u8; 16]>,
    /// Registered buffers: (address, length).
    buffers: Option<Vec<(u64, u64)>>,
    /// Registered files (`None`: an empty slot).
    files: Option<Vec<Option<Arc<OpenFile>>>>,
    eventfd: Option<Arc<OpenFile>>,
}

/// One ring: the object behind an io_uring descriptor.
pub struct Ring {
    file: Arc<FileData>,
    /// Holds the unlinked file open, as a memfd's descriptor does.
    _open: Arc<OpenFile>,
    /// The kernel's pins of every page: the rings region, then the SQEs.
    pages: Vec<Mapped>,
    sq_entries: u32,
    cq_entries: u32,
    no_sqarray: bool,
    /// File offset of the SQ array in the rings region (0 with
    /// `IORING_SETUP_NO_SQARRAY`).
    array: u64,
    /// Bytes of the rings region (a whole number of pages).
    rings_len: u64,
    sqes_len: u64,
    submit: SleepMutex<()>,
    state: SpinLock<State>,
    /// Notified when CQEs are posted.
    ready: Pollable,
    ino: u64,
    /// Requests in flight (started, not landed).
    in_flight: AtomicUsize,
    /// Woken when the last request in flight lands (`IOSQE_IO_DRAIN`).
    drained: WaitQueue,
}

impl Ring {
    fn read(&self, at: u64, dst: &mut [u8]) {
        let mut done = 0usize;
        while done < dst.len() {
            let pos = at + done as u64;
            let (page, off) = ((pos / PAGE) as usize, (pos % PAGE) as usize);
            let n = (dst.len() - done).min(PAGE as usize - off);
            self.pages[page].read_at(off, &mut dst[done..done + n]);
            done += n;
        }
    }

    fn write(&self, at: u64, src: &[u8]) {
        let mut done = 0usize;
        while done < src.len() {
            let pos = at + done as u64;
            let (page, off) = ((pos / PAGE) as usize, (pos % PAGE) as usize);
            let n = (src.len() - done).min(PAGE as usize - off);
            self.pages[page].write_at(off, &src[done..done + n]);
            done += n;
        }
    }

    fn get32(&self, at: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(at, &mut b);
        u32::from_le_bytes(b)
    }

    fn put32(&self, at: u64, v: u32) {
        self.write(at, &v.to_le_bytes());
    }

    /// CQEs the program has not consumed (at most the CQ's size, whatever
    /// it wrote in the CQ head).
    fn cq_ready(&self, st: &State) -> u32 {
        let head = self.get32(CQ_HEAD);
        st.cq_tail.wrapping_sub(head).min(self.cq_entries)
    }

    /// Moves backlog CQEs into the CQ while there is room.
    fn flush(&self, st: &mut State) -> bool {
        let mut moved = false;
        while !st.backlog.is_empty() {
            let head = self.get32(CQ_HEAD);
            let used = st.cq_tail.wrapping_sub(head);
            if used >= self.cq_entries {
                break;
            }
            let cqe = st.backlog.pop_front().expect("backlog");
            self.put_cqe(st, &cqe);
            moved = true;
        }
        if st.backlog.is_empty() && st.sq_flags & SQ_CQ_OVERFLOW != 0 {
            st.sq_flags &= !SQ_CQ_OVERFLOW;
            self.put32(SQ_FLAGS, st.sq_flags);
        }
        moved
    }

    fn put_cqe(&self, st: &mut State, cqe: &[u8; 16]) {
        let slot = u64::from(st.cq_tail & (self.cq_entries - 1));
        self.write(CQES + slot * CQE_SIZE, cqe);
        // The CQE before the tail that publishes it.
        fence(Ordering::Release);
        st.cq_tail = st.cq_tail.wrapping_add(1);
        self.put32(CQ_TAIL, st.cq_tail);
    }

    /// Posts one completion (to the backlog if the CQ is full), then
    /// signals the registered eventfd.
    fn post(&self, user_data: u64, res: i64) {
        let mut cqe = [0u8; 16];
        cqe[0..8].copy_from_slice(&user_data.to_le_bytes());
        let res = res.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        cqe[8..12].copy_from_slice(&res.to_le_bytes());
        let eventfd = {
            let mut st = self.state.lock();
            self.flush(&mut st);
            let head = self.get32(CQ_HEAD);
            if st.backlog.is_empty() && st.cq_tail.wrapping_sub(head) < self.cq_entries {
                self.put_cqe(&mut st, &cqe);
            } else if st.backlog.len() < BACKLOG_MAX {
                st.backlog.push_back(cqe);
                st.sq_flags |= SQ_CQ_OVERFLOW;
                self.put32(SQ_FLAGS, st.sq_flags);
            } else {
                st.overflow = st.overflow.wrapping_add(1);
                self.put32(CQ_OVERFLOW, st.overflow);
            }
            let disabled = self.get32(CQ_FLAGS) & CQ_EVENTFD_DISABLED != 0;
            if disabled { None } else { st.eventfd.clone() }
        };
        self.ready.notify();
        if let Some(f) = eventfd
            && let Some(ops) = f.ops()
        {
            let one = 1u64.to_le_bytes();
            let _ = ops.write(&f, 0, crate::process::file::Src::Kernel(&one), 8);
        }
    }
}

impl FileOps for Ring {
    fn poll(&self) -> u16 {
        let st = self.state.lock();
        let mut r = poll::POLLOUT | poll::POLLWRNORM;
        if self.cq_ready(&st) > 0 || !st.backlog.is_empty() {
            r |= poll::POLLIN | poll::POLLRDNORM;
        }
        r
    }

    fn pollable(&self) -> Option<&Pollable> {
        Some(&self.ready)
    }

    fn stat(&self) -> FileStat {
        crate::special::stat_of(self.ino, 0o600, 0, 0)
    }

    fn name(&self) -> Vec<u8> {
        b"anon_inode:[io_uring]".to_vec()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// An unlinked TFS file of `size` bytes, held open (as a memfd).
fn backing_file(size: u64) -> Result<(Arc<FileData>, Arc<OpenFile>), Errno> {
    let m = crate::fs::root().ok_or(Errno::ENOMEM)?;
    let tmp = format!(".io_uring-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_bytes();
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
    crate::special::proc::remember_path(file.loc(), b"anon_inode:[io_uring]".to_vec());
    Ok((file, open))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// io_uring_setup(entries, params).
pub fn setup(entries: u32, params: u64) -> SysResult {
    let mut p = [0u8; 120];
    copy_in(&mut p, params)?;
    let flags = le32(&p, 8);
    // resv[3] must be zero.
    if p[28..40].iter().any(|&b| b != 0) {
        return Err(Errno::EINVAL);
    }
    if flags & (SETUP_SQPOLL | SETUP_IOPOLL) != 0 || flags & !SETUP_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & SETUP_DEFER_TASKRUN != 0 && flags & SETUP_SINGLE_ISSUER == 0 {
        return Err(Errno::EINVAL);
    }
    let clamp = flags & SETUP_CLAMP != 0;
    if entries == 0 {
        return Err(Errno::EINVAL);
    }
    let entries = if entries > MAX_ENTRIES {
        if !clamp {
            return Err(Errno::EINVAL);
        }
        MAX_ENTRIES
    } else {
        entries
    };
    let sq = entries.next_power_of_two();
    let cq = if flags & SETUP_CQSIZE != 0 {
        let want = le32(&p, 4);
        if want == 0 {
            return Err(Errno::EINVAL);
        }
        let want = if want > MAX_CQ_ENTRIES {
            if !clamp {
                return Err(Errno::EINVAL);
            }
            MAX_CQ_ENTRIES
        } else {
            want
        };
        let cq = want.next_power_of_two();
        if cq < sq {
            return Err(Errno::EINVAL);
        }
        cq
    } else {
        2 * sq
    };
    let no_sqarray = flags & SETUP_NO_SQARRAY != 0;
    let cqes_end = CQES + u64::from(cq) * CQE_SIZE;
    let array = if no_sqarray { 0 } else { cqes_end };
    let rings_end = if no_sqarray {
        cqes_end
    } else {
        cqes_end + 4 * u64::from(sq)
    };
    let rings_len = rings_end.next_multiple_of(PAGE);
    let sqes_len = (u64::from(sq) * SQE_SIZE).next_multiple_of(PAGE);
    let (file, open) = backing_file(rings_len + sqes_len)?;
    let mut pages = Vec::new();
    pages
        .try_reserve_exact(((rings_len + sqes_len) / PAGE) as usize)
        .map_err(|_| Errno::ENOMEM)?;
    for i in 0..(rings_len + sqes_len) / PAGE {
        let m = crate::fs::wait_fault(
            &file,
            i,
            Access {
                write: true,
                shared: true,
            },
            // The ring's own pages only: no readahead.
            0,
        )
        .map_err(super::fs::pc_err)?;
        if !m.writable() {
            return Err(Errno::ENOMEM);
        }
        pages.push(m);
    }
    let ring = Arc::new(Ring {
        file,
        _open: open,
        pages,
        sq_entries: sq,
        cq_entries: cq,
        no_sqarray,
        array,
        rings_len,
        sqes_len,
        submit: SleepMutex::new(&SUBMIT_CLASS, ()),
        state: SpinLock::new(
            &STATE_CLASS,
            State {
                sq_head: 0,
                cq_tail: 0,
                sq_flags: 0,
                dropped: 0,
                overflow: 0,
                backlog: VecDeque::new(),
                buffers: None,
                files: None,
                eventfd: None,
            },
        ),
        ready: Pollable::new(),
        ino: crate::special::new_ino(),
        in_flight: AtomicUsize::new(0),
        drained: WaitQueue::new(),
    });
    // The read-only fields of the rings (the pages start zeroed: heads,
    // tails, flags, counters are 0).
    ring.put32(SQ_MASK, sq - 1);
    ring.put32(SQ_ENTRIES, sq);
    ring.put32(CQ_MASK, cq - 1);
    ring.put32(CQ_ENTRIES, cq);
    // The answer: sizes, features, offsets.
    put32(&mut p, 0, sq);
    put32(&mut p, 4, cq);
    put32(&mut p, 20, {
        FEAT_SINGLE_MMAP
            | FEAT_NODROP
            | FEAT_SUBMIT_STABLE
            | FEAT_RW_CUR_POS
            | FEAT_EXT_ARG
            | FEAT_CQE_SKIP
    });
    let sq_off = [
        SQ_HEAD, SQ_TAIL, SQ_MASK, SQ_ENTRIES, SQ_FLAGS, SQ_DROPPED, array,
    ];
    for (k, v) in sq_off.iter().enumerate() {
        put32(&mut p, 40 + 4 * k, *v as u32);
    }
    p[68..80].fill(0);
    let cq_off = [
        CQ_HEAD,
        CQ_TAIL,
        CQ_MASK,
        CQ_ENTRIES,
        CQ_OVERFLOW,
        CQES,
        CQ_FLAGS,
    ];
    for (k, v) in cq_off.iter().enumerate() {
        put32(&mut p, 80 + 4 * k, *v as u32);
    }
    p[108..120].fill(0);
    copy_out(params, &p)?;
    let f = OpenFile::new(FileKind::Object(ring), O_RDWR);
    // Linux's io_uring descriptors are close-on-exec.
    current()
        .fds
        .lock()
        .alloc(f, true)
        .map(|fd| fd as u64)
        .map_err(|(e, _)| e)
}

/// What `mmap(fd = ring, offset, len)` maps: the ring's file and the file
/// offset there; `EINVAL` for an unknown offset or a length past the
/// region.
pub fn map_region(
    f: &OpenFile,
    offset: u64,
    len: u64,
) -> Result<Option<(Arc<FileData>, u64)>, Errno> {
    let Some(ring) = f.downcast::<Ring>() else {
        return Ok(None);
    };
    let (at, size) = match offset {
        OFF_SQ_RING | OFF_CQ_RING => (0, ring.rings_len),
        OFF_SQES => (ring.rings_len, ring.sqes_len),
        _ => return Err(Errno::EINVAL),
    };
    if len > size {
        return Err(Errno::EINVAL);
    }
    Ok(Some((ring.file.clone(), at)))
}

fn ring_of(fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = super::fs::get_file(fd)?;
    if f.downcast::<Ring>().is_none() {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(f)
}

/// One decoded SQE.
struct Sqe {
    opcode: u8,
    flags: u8,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    file_index: u32,
}

fn decode(b: &[u8; 64]) -> Sqe {
    Sqe {
        opcode: b[0],
        flags: b[1],
        fd: le32(b, 4) as i32,
        off: le64(b, 8),
        addr: le64(b, 16),
        len: le32(b, 24),
        op_flags: le32(b, 28),
        user_data: le64(b, 32),
        buf_index: u16::from_le_bytes([b[40], b[41]]),
        file_index: le32(b, 44),
    }
}

fn neg(e: Errno) -> i64 {
    -i64::from(e.raw())
}

/// The file an SQE names: a registered slot with `IOSQE_FIXED_FILE`,
/// else a descriptor.
fn file_of(ring: &Ring, sqe: &Sqe) -> Result<Arc<OpenFile>, Errno> {
    if sqe.flags & IOSQE_FIXED_FILE == 0 {
        return super::fs::get_file(sqe.fd);
    }
    let st = ring.state.lock();
    let files = st.files.as_ref().ok_or(Errno::EBADF)?;
    usize::try_from(sqe.fd)
        .ok()
        .and_then(|i| files.get(i))
        .and_then(|s| s.clone())
        .ok_or(Errno::EBADF)
}

/// Runs one SQE: its result, and whether it counts as a failure for its
/// link chain (an error, or a short read or write); `None` when it went
/// in flight (`fly`: it may), its CQE to come from the lander.
fn execute(rf: &Arc<OpenFile>, ring: &Ring, sqe: &Sqe, fly: bool) -> Option<(i64, bool)> {
    let r = match sqe.opcode {
        OP_NOP => Ok(0),
        OP_READ | OP_WRITE | OP_READV | OP_WRITEV | OP_READ_FIXED | OP_WRITE_FIXED => {
            return rw(rf, ring, sqe, fly);
        }
        OP_FSYNC => {
            if sqe.op_flags & !FSYNC_DATASYNC != 0 {
                Err(Errno::EINVAL)
            } else {
                file_of(ring, sqe).and_then(|f| {
                    Request {
                        file: &f,
                        op: Op::Sync,
                        buf: 0,
                        len: 0,
                        offset: None,
                        rw_flags: 0,
                    }
                    .run_result()
                })
            }
        }
        OP_FALLOCATE => file_of(ring, sqe)
            .and_then(|f| super::fs::fallocate_file(&f, sqe.len as i32, sqe.off, sqe.addr)),
        _ if sqe.flags & IOSQE_FIXED_FILE != 0 => Err(Errno::EBADF),
        OP_OPENAT if sqe.file_index != 0 => Err(Errno::EINVAL),
        OP_OPENAT => super::fs::openat(sqe.fd, sqe.addr, sqe.op_flags, sqe.len),
        OP_CLOSE => close(ring, sqe),
        OP_STATX => super::fs::statx(sqe.fd, sqe.addr, sqe.op_flags as i32, sqe.len, sqe.off),
        OP_RENAMEAT => {
            super::fs::renameat2(sqe.fd, sqe.addr, sqe.len as i32, sqe.off, sqe.op_flags)
        }
        OP_UNLINKAT => super::fs::unlinkat(sqe.fd, sqe.addr, sqe.op_flags as i32),
        OP_MKDIRAT => super::fs::mkdirat(sqe.fd, sqe.addr, sqe.len),
        _ => Err(Errno::EINVAL),
    };
    Some(match r {
        Ok(v) => (v as i64, false),
        Err(Errno::ERESTARTSYS) => (neg(Errno::EINTR), true),
        Err(e) => (neg(e), true),
    })
}

/// IORING_OP_CLOSE: a descriptor, or (`file_index`) a registered slot.
fn close(ring: &Ring, sqe: &Sqe) -> SysResult {
    if sqe.file_index != 0 {
        if sqe.fd != 0 {
            return Err(Errno::EINVAL);
        }
        let gone = {
            let mut st = ring.state.lock();
            let files = st.files.as_mut().ok_or(Errno::ENXIO)?;
            let slot = files
                .get_mut(sqe.file_index as usize - 1)
                .ok_or(Errno::EINVAL)?;
            slot.take().ok_or(Errno::EBADF)?
        };
        // Released after the lock: a regular file's release takes its
        // volume's `fs` mutex.
        drop(gone);
        return Ok(0);
    }
    // The ring's own descriptors cannot be closed from inside a ring.
    if super::fs::get_file(sqe.fd)?.downcast::<Ring>().is_some() {
        return Err(Errno::EBADF);
    }
    super::fs::close(sqe.fd)
}

/// The read and write opcodes (`None`: in flight).
fn rw(rf: &Arc<OpenFile>, ring: &Ring, sqe: &Sqe, fly: bool) -> Option<(i64, bool)> {
    let fail = |e: Errno| Some((neg(e), true));
    let fixed = matches!(sqe.opcode, OP_READ_FIXED | OP_WRITE_FIXED);
    if fixed {
        let st = ring.state.lock();
        let Some(&(base, blen)) = st
            .buffers
            .as_ref()
            .and_then(|b| b.get(usize::from(sqe.buf_index)))
        else {
            return fail(Errno::EFAULT);
        };
        let end = sqe.addr.checked_add(u64::from(sqe.len));
        if sqe.addr < base || end.is_none_or(|e| e > base + blen) {
            return fail(Errno::EFAULT);
        }
    }
    if let Err(e) = request::check_rw_flags(sqe.op_flags) {
        return fail(e);
    }
    let file = match file_of(ring, sqe) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let op = match sqe.opcode {
        OP_READ | OP_READ_FIXED => Op::Read,
        OP_WRITE | OP_WRITE_FIXED => Op::Write,
        OP_READV => Op::Readv,
        _ => Op::Writev,
    };
    let offset = (sqe.off as i64 != -1).then_some(sqe.off);
    let req = Request {
        file: &file,
        op,
        buf: sqe.addr,
        len: u64::from(sqe.len),
        offset,
        rw_flags: sqe.op_flags,
    };
    let res = if fly {
        let (user_data, skip) = (sqe.user_data, sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0);
        let held = rf.clone();
        ring.in_flight.fetch_add(1, Ordering::AcqRel);
        // Called by the lander (kernel-lock context), holding the ring.
        let landing = Box::new(move |res: i64| {
            let ring = held.downcast::<Ring>().expect("ring");
            if !(res >= 0 && skip) {
                ring.post(user_data, res);
            }
            ring.landed();
        });
        match req.start(&file, landing) {
            None => return None,
            Some(res) => {
                ring.landed();
                res
            }
        }
    } else {
        req.run()
    };
    drop(file);
    // A short transfer fails a link (Linux compares with the bytes asked;
    // for vectors, with their sum, which is not known here: only errors).
    let failed = res < 0 || (matches!(op, Op::Read | Op::Write) && res != i64::from(sqe.len));
    Some((res, failed))
}

impl Ring {
    /// One request in flight is done (its CQE posted, if any).
    fn landed(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.wake_all();
        }
    }
}

/// Consumes up to `want` SQEs; returns how many were submitted.
fn submit(rf: &Arc<OpenFile>, ring: &Ring, want: u32) -> u32 {
    let _batch = ring.submit.lock();
    let tail = ring.get32(SQ_TAIL);
    // The SQEs written before the tail that published them.
    fence(Ordering::Acquire);
    let head = ring.state.lock().sq_head;
    let avail = tail.wrapping_sub(head).min(ring.sq_entries).min(want);
    let mut submitted = 0;
    // Within a chain: whether an earlier member failed.
    let mut chain_failed = false;
    // Whether the SQE before linked to this one.
    let mut in_chain = false;
    for k in 0..avail {
        let pos = head.wrapping_add(k);
        let slot = pos & (ring.sq_entries - 1);
        let idx = if ring.no_sqarray {
            slot
        } else {
            ring.get32(ring.array + 4 * u64::from(slot))
        };
        {
            let mut st = ring.state.lock();
            st.sq_head = pos.wrapping_add(1);
            ring.put32(SQ_HEAD, st.sq_head);
            if idx >= ring.sq_entries {
                st.dropped = st.dropped.wrapping_add(1);
                ring.put32(SQ_DROPPED, st.dropped);
                break;
            }
        }
        let mut b = [0u8; 64];
        ring.read(ring.rings_len + u64::from(idx) * SQE_SIZE, &mut b);
        let sqe = decode(&b);
        submitted += 1;
        let hard = sqe.flags & IOSQE_IO_HARDLINK != 0;
        let linked = hard || sqe.flags & IOSQE_IO_LINK != 0;
        let drain = sqe.flags & IOSQE_IO_DRAIN != 0;
        if drain && !chain_failed {
            // Every earlier request completes first.
            ring.drained
                .wait_until(|| ring.in_flight.load(Ordering::Acquire) == 0);
        }
        // Chain members and drains run now, in order.
        let fly = !linked && !in_chain && !drain;
        in_chain = linked;
        let (res, failed) = if chain_failed {
            (neg(Errno::ECANCELED), true)
        } else if sqe.flags & !IOSQE_FLAGS != 0 {
            (neg(Errno::EINVAL), true)
        } else {
            match execute(rf, ring, &sqe, fly) {
                Some(r) => r,
                None => continue,
            }
        };
        if !(res >= 0 && sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0) {
            ring.post(sqe.user_data, res);
        }
        chain_failed = linked && (chain_failed || (failed && !hard));
    }
    submitted
}

/// io_uring_enter(fd, to_submit, min_complete, flags, arg, argsz).
pub fn enter(
    fd: i32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    arg: u64,
    argsz: u64,
) -> SysResult {
    if flags & !(ENTER_GETEVENTS | ENTER_SQ_WAKEUP | ENTER_SQ_WAIT | ENTER_EXT_ARG) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = ring_of(fd)?;
    let ring = f.downcast::<Ring>().expect("ring");
    let (mask_at, mask_size, ts) = if flags & ENTER_EXT_ARG != 0 {
        if argsz != 24 {
            return Err(Errno::EINVAL);
        }
        let mut b = [0u8; 24];
        copy_in(&mut b, arg)?;
        (le64(&b, 0), u64::from(le32(&b, 8)), le64(&b, 16))
    } else {
        (arg, argsz, 0)
    };
    let submitted = if to_submit > 0 {
        submit(&f, ring, to_submit)
    } else {
        0
    };
    if flags & ENTER_GETEVENTS == 0 {
        return Ok(u64::from(submitted));
    }
    let waited = (|| {
        let mask = super::poll::temporary_mask(mask_at, mask_size)?;
        let deadline = super::poll::timespec_deadline(ts)?;
        let want = min_complete.min(ring.cq_entries);
        super::signal::with_temporary_mask(mask, || {
            let r = wait_event(&[&ring.ready], deadline, || {
                let mut st = ring.state.lock();
                ring.flush(&mut st);
                (ring.cq_ready(&st) >= want).then_some(())
            });
            match r {
                Ok(()) => Ok(()),
                Err(WaitError::TimedOut) => Err(Errno::ETIME),
                Err(WaitError::Interrupted) => Err(Errno::EINTR),
            }
        })
    })();
    match waited {
        Ok(()) => Ok(u64::from(submitted)),
        Err(_) if submitted > 0 => Ok(u64::from(submitted)),
        Err(e) => Err(e),
    }
}

/// io_uring_register(fd, opcode, arg, nr_args).
pub fn register(fd: i32, opcode: u32, arg: u64, nr_args: u32) -> SysResult {
    let f = ring_of(fd)?;
    let ring = f.downcast::<Ring>().expect("ring");
    match opcode {
        REG_BUFFERS => {
            if nr_args == 0 || nr_args > MAX_REG_BUFFERS {
                return Err(Errno::EINVAL);
            }
            if ring.state.lock().buffers.is_some() {
                return Err(Errno::EBUSY);
            }
            let mut raw = vec![0u8; nr_args as usize * 16];
            copy_in(&mut raw, arg)?;
            let mut bufs = Vec::with_capacity(nr_args as usize);
            let aspace = &current().aspace;
            for c in raw.chunks_exact(16) {
                let (base, len) = (le64(c, 0), le64(c, 8));
                if base == 0 && len != 0 || len > MAX_BUFFER {
                    return Err(Errno::EFAULT);
                }
                if len != 0 {
                    if !crate::user::user_range_ok(base, len) {
                        return Err(Errno::EFAULT);
                    }
                    // The memory must be mapped now (Linux pins it).
                    let start = base & !(PAGE - 1);
                    let span = (base + len).next_multiple_of(PAGE) - start;
                    aspace
                        .with_vmaps(|v| v.clipped(start, span).map(|_| ()))
                        .map_err(|_| Errno::EFAULT)?;
                }
                bufs.push((base, len));
            }
            let mut st = ring.state.lock();
            if st.buffers.is_some() {
                return Err(Errno::EBUSY);
            }
            st.buffers = Some(bufs);
            Ok(0)
        }
        UNREG_BUFFERS => {
            if arg != 0 || nr_args != 0 {
                return Err(Errno::EINVAL);
            }
            ring.state.lock().buffers.take().ok_or(Errno::ENXIO)?;
            Ok(0)
        }
        REG_FILES => {
            if nr_args == 0 || nr_args > MAX_FIXED_FILES {
                return Err(Errno::EINVAL);
            }
            if ring.state.lock().files.is_some() {
                return Err(Errno::EBUSY);
            }
            let mut raw = vec![0u8; nr_args as usize * 4];
            copy_in(&mut raw, arg)?;
            let mut files = Vec::with_capacity(nr_args as usize);
            for c in raw.chunks_exact(4) {
                let fd = le32(c, 0) as i32;
                if fd == -1 {
                    files.push(None);
                    continue;
                }
                let file = super::fs::get_file(fd)?;
                // A ring in a ring's table would keep itself alive.
                if file.downcast::<Ring>().is_some() {
                    return Err(Errno::EBADF);
                }
                files.push(Some(file));
            }
            let mut st = ring.state.lock();
            if st.files.is_some() {
                drop(st);
                return Err(Errno::EBUSY);
            }
            st.files = Some(files);
            Ok(0)
        }
        UNREG_FILES => {
            if arg != 0 || nr_args != 0 {
                return Err(Errno::EINVAL);
            }
            let gone = ring.state.lock().files.take().ok_or(Errno::ENXIO)?;
            drop(gone);
            Ok(0)
        }
        REG_EVENTFD | REG_EVENTFD_ASYNC => {
            if nr_args != 1 {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 4];
            copy_in(&mut b, arg)?;
            let e = super::fs::get_file(i32::from_le_bytes(b))?;
            if e.downcast::<EventFd>().is_none() {
                return Err(Errno::EINVAL);
            }
            let mut st = ring.state.lock();
            if st.eventfd.is_some() {
                return Err(Errno::EBUSY);
            }
            st.eventfd = Some(e);
            Ok(0)
        }
        UNREG_EVENTFD => {
            if arg != 0 || nr_args != 0 {
                return Err(Errno::EINVAL);
            }
            ring.state.lock().eventfd.take().ok_or(Errno::ENXIO)?;
            Ok(0)
        }
        REG_PROBE => {
            let n = nr_args.min(256);
            let mut b = vec![0u8; 16 + n as usize * 8];
            copy_in(&mut b, arg)?;
            if b.iter().any(|&x| x != 0) {
                return Err(Errno::EINVAL);
            }
            let last = *SUPPORTED.iter().max().expect("ops");
            b[0] = last;
            b[1] = n.min(u32::from(last) + 1).min(OP_LAST) as u8;
            for op in 0..u32::from(b[1]) {
                let at = 16 + op as usize * 8;
                b[at] = op as u8;
                if SUPPORTED.contains(&(op as u8)) {
                    // IO_URING_OP_SUPPORTED
                    b[at + 2] = 1;
                }
            }
            copy_out(arg, &b)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
