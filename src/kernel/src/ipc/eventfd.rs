//! eventfd: a 64-bit counter. A write adds to it (sleeping while the sum
//! would pass `u64::MAX - 1`); a read takes the whole count, or 1 in
//! semaphore mode, sleeping while it is 0. Waits are interruptible;
//! `O_NONBLOCK` makes them `EAGAIN`.
//!
//! Kernel-lock context. Lock: `ipc.eventfd` (SpinLock, kernel-lock only,
//! a leaf); readiness changes are announced after it is released.

use crate::process::file::{Dst, FileOps, OpenFile, Src, poll};
use crate::sched::wait::{Pollable, WaitError, wait_event};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;

static EVENTFD_CLASS: LockClass = LockClass::new("ipc.eventfd");

const MAX: u64 = u64::MAX - 1;

pub struct EventFd {
    count: SpinLock<u64>,
    semaphore: bool,
    ready: Pollable,
    ino: u64,
}

pub fn new(initial: u32, semaphore: bool) -> Arc<EventFd> {
    Arc::new(EventFd {
        count: SpinLock::new(&EVENTFD_CLASS, u64::from(initial)),
        semaphore,
        ready: Pollable::new(),
        ino: crate::special::new_ino(),
    })
}

fn errno(e: WaitError) -> Errno {
    match e {
        WaitError::Interrupted => Errno::EINTR,
        WaitError::TimedOut => Errno::EAGAIN,
    }
}

impl FileOps for EventFd {
    fn read(&self, f: &OpenFile, _off: u64, mut dst: Dst<'_>, len: usize) -> Result<usize, Errno> {
        if len < 8 {
            return Err(Errno::EINVAL);
        }
        let nonblock = f.nonblocking();
        let v = wait_event(&[&self.ready], None, || {
            let mut c = self.count.lock();
            if *c > 0 {
                let v = if self.semaphore { 1 } else { *c };
                *c -= v;
                return Some(Ok(v));
            }
            nonblock.then_some(Err(Errno::EAGAIN))
        })
        .map_err(errno)??;
        self.ready.notify();
        dst.put(0, &v.to_le_bytes())?;
        Ok(8)
    }

    fn write(&self, f: &OpenFile, _off: u64, src: Src<'_>, len: usize) -> Result<usize, Errno> {
        if len < 8 {
            return Err(Errno::EINVAL);
        }
        let mut b = [0u8; 8];
        src.get(0, &mut b)?;
        let add = u64::from_le_bytes(b);
        if add == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let nonblock = f.nonblocking();
        wait_event(&[&self.ready], None, || {
            let mut c = self.count.lock();
            if MAX - *c >= add {
                *c += add;
                return Some(Ok(()));
            }
            nonblock.then_some(Err(Errno::EAGAIN))
        })
        .map_err(errno)??;
        self.ready.notify();
        Ok(8)
    }

    fn poll(&self) -> u16 {
        let c = *self.count.lock();
        let mut r = 0;
        if c > 0 {
            r |= poll::POLLIN | poll::POLLRDNORM;
        }
        if c < MAX {
            r |= poll::POLLOUT | poll::POLLWRNORM;
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
        b"anon_inode:[eventfd]".to_vec()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
