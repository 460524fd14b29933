//! Pipes: a bounded byte queue with a read end and a write end.
//!
//! Linux semantics: reads return what is there (at least one byte),
//! sleeping while the pipe is empty and a writer remains, 0 at end of file;
//! writes of at most [`PIPE_BUF`] bytes are atomic (all or, while full,
//! none), larger ones may be split; a write with no reader left fails with
//! `EPIPE` after raising `SIGPIPE`; `O_NONBLOCK` makes a wait `EAGAIN`.
//! The capacity is 64 KiB (`F_GETPIPE_SZ`/`F_SETPIPE_SZ` read and change
//! it), charged to the programs' buffer budget
//! (`heaps::global::charge_buffer`): past it a new pipe gets one page and
//! growing one fails with `EPERM`. Waits are interruptible (`sched::wait`).
//!
//! Bytes cross user memory with no lock held: a read takes them out into a
//! kernel buffer, then copies; a write copies into a kernel buffer first,
//! then appends.
//!
//! Kernel-lock context, in the calling thread. Lock: `ipc.pipe`
//! (SpinLock, kernel-lock only, a leaf); readiness changes are announced
//! on the pipe's [`Pollable`] after the lock is released.

use crate::heaps::global::{charge_buffer, charge_buffer_anyway, release_buffer};
use crate::process::file::{Dst, FileOps, OpenFile, Src, poll};
use crate::sched::wait::{Pollable, WaitError, wait_event};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// Default capacity.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;
/// Smallest capacity: one page.
pub const MIN_CAPACITY: usize = 4096;
/// Largest capacity `F_SETPIPE_SZ` grants (Linux's `pipe-max-size`).
pub const MAX_CAPACITY: usize = 1 << 20;

static PIPE_CLASS: LockClass = LockClass::new("ipc.pipe");
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct State {
    buf: VecDeque<u8>,
    capacity: usize,
    readers: u32,
    writers: u32,
}

pub struct Pipe {
    state: SpinLock<State>,
    ready: Pollable,
    id: u64,
    ino: u64,
}

/// One end of a pipe (the object behind a pipe descriptor).
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
}

/// A new pipe: (read end, write end).
pub fn new() -> (Arc<PipeEnd>, Arc<PipeEnd>) {
    // Its capacity is charged to the programs' buffer budget; past it, a
    // new pipe gets one page (as Linux past `pipe-user-pages-soft`).
    let capacity = if charge_buffer(DEFAULT_CAPACITY as u64) {
        DEFAULT_CAPACITY
    } else {
        charge_buffer_anyway(MIN_CAPACITY as u64);
        MIN_CAPACITY
    };
    let pipe = Arc::new(Pipe {
        state: SpinLock::new(
            &PIPE_CLASS,
            State {
                buf: VecDeque::new(),
                capacity,
                readers: 1,
                writers: 1,
            },
        ),
        ready: Pollable::new(),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        ino: crate::special::new_ino(),
    });
    (
        Arc::new(PipeEnd {
            pipe: pipe.clone(),
            write: false,
        }),
        Arc::new(PipeEnd { pipe, write: true }),
    )
}

fn interrupted(e: WaitError) -> Errno {
    match e {
        WaitError::Interrupted => Errno::ERESTARTSYS,
        WaitError::TimedOut => Errno::EAGAIN,
    }
}

impl PipeEnd {
    /// Bytes waiting to be read (`FIONREAD`).
    pub fn available(&self) -> usize {
        self.pipe.state.lock().buf.len()
    }

    /// `F_GETPIPE_SZ`.
    pub fn capacity(&self) -> usize {
        self.pipe.state.lock().capacity
    }

    /// `F_SETPIPE_SZ`: rounds up to a page; `EBUSY` below what is queued;
    /// `EPERM` when the growth does not fit the programs' buffer budget
    /// (Linux's answer past `pipe-user-pages-hard`).
    pub fn set_capacity(&self, want: usize) -> Result<usize, Errno> {
        if want > MAX_CAPACITY {
            return Err(Errno::EPERM);
        }
        let cap = want.max(MIN_CAPACITY).next_multiple_of(MIN_CAPACITY);
        let mut st = self.pipe.state.lock();
        if cap < st.buf.len() {
            return Err(Errno::EBUSY);
        }
        if cap > st.capacity {
            if !charge_buffer((cap - st.capacity) as u64) {
                return Err(Errno::EPERM);
            }
        } else {
            release_buffer((st.capacity - cap) as u64);
        }
        st.capacity = cap;
        drop(st);
        self.pipe.ready.notify();
        Ok(cap)
    }
}

impl FileOps for PipeEnd {
    fn read(&self, f: &OpenFile, _off: u64, mut dst: Dst<'_>, len: usize) -> Result<usize, Errno> {
        if self.write {
            return Err(Errno::EBADF);
        }
        if len == 0 {
            return Ok(0);
        }
        let nonblock = f.nonblocking();
        let got: Vec<u8> = wait_event(&[&self.pipe.ready], None, || {
            let mut st = self.pipe.state.lock();
            if !st.buf.is_empty() {
                let n = len.min(st.buf.len());
                return Some(Ok(st.buf.drain(..n).collect()));
            }
            if st.writers == 0 {
                return Some(Ok(Vec::new()));
            }
            nonblock.then_some(Err(Errno::EAGAIN))
        })
        .map_err(interrupted)??;
        if !got.is_empty() {
            self.pipe.ready.notify();
        }
        dst.put(0, &got)?;
        Ok(got.len())
    }

    fn write(&self, f: &OpenFile, _off: u64, src: Src<'_>, len: usize) -> Result<usize, Errno> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        if len == 0 {
            return Ok(0);
        }
        let nonblock = f.nonblocking();
        let mut done = 0usize;
        let mut chunk = Vec::new();
        while done < len {
            let n = (len - done).min(DEFAULT_CAPACITY);
            chunk.resize(n, 0);
            if let Err(e) = src.get(done, &mut chunk) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            // Atomic writes wait for room for all of it; others for a byte.
            let need = if len <= PIPE_BUF { n } else { 1 };
            let r = wait_event(&[&self.pipe.ready], None, || {
                let mut st = self.pipe.state.lock();
                if st.readers == 0 {
                    return Some(Err(Errno::EPIPE));
                }
                let free = st.capacity.saturating_sub(st.buf.len());
                if free >= need.min(st.capacity) {
                    let k = free.min(n);
                    st.buf.extend(&chunk[..k]);
                    return Some(Ok(k));
                }
                nonblock.then_some(Err(Errno::EAGAIN))
            })
            .map_err(interrupted);
            match r {
                Ok(Ok(k)) => {
                    self.pipe.ready.notify();
                    done += k;
                }
                Ok(Err(Errno::EPIPE)) | Err(Errno::EPIPE) => {
                    if done > 0 {
                        return Ok(done);
                    }
                    // SIGPIPE goes to the writing thread (its default
                    // action ends the program).
                    if let Some(t) = crate::signal::current_thread() {
                        crate::signal::send::to_thread(
                            &t,
                            cairn_unix::sigframe::SigInfo::kernel(cairn_unix::signal::SIGPIPE),
                        )?;
                    }
                    return Err(Errno::EPIPE);
                }
                Ok(Err(e)) | Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
            }
        }
        Ok(done)
    }

    fn poll(&self) -> u16 {
        let st = self.pipe.state.lock();
        if self.write {
            if st.readers == 0 {
                poll::POLLOUT | poll::POLLWRNORM | poll::POLLERR
            } else if st.capacity - st.buf.len().min(st.capacity) >= PIPE_BUF.min(st.capacity) {
                poll::POLLOUT | poll::POLLWRNORM
            } else {
                0
            }
        } else {
            let mut r = 0;
            if !st.buf.is_empty() {
                r |= poll::POLLIN | poll::POLLRDNORM;
            }
            if st.writers == 0 {
                r |= poll::POLLHUP;
            }
            r
        }
    }

    fn pollable(&self) -> Option<&Pollable> {
        Some(&self.pipe.ready)
    }

    fn stat(&self) -> FileStat {
        let mut s = crate::special::stat_of(self.pipe.ino, 0o010600, 0, 0);
        s.dev = cairn_unix::abi::makedev(0, 12);
        s
    }

    fn ioctl(&self, _f: &OpenFile, req: u64, arg: u64) -> Result<u64, Errno> {
        const FIONREAD: u64 = 0x541b;
        match req {
            FIONREAD => {
                let n = self.available() as i32;
                crate::syscall::copy_out(arg, &n.to_le_bytes())?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn name(&self) -> Vec<u8> {
        format!("pipe:[{}]", self.pipe.id).into_bytes()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        release_buffer(self.state.get_mut().capacity as u64);
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        {
            let mut st = self.pipe.state.lock();
            if self.write {
                st.writers -= 1;
            } else {
                st.readers -= 1;
                if st.readers == 0 {
                    st.buf = VecDeque::new();
                }
            }
        }
        self.pipe.ready.notify();
    }
}
