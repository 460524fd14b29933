//! Descriptors for kernel objects: pipe/pipe2, eventfd/eventfd2,
//! timerfd_create/settime/gettime (the objects are in `crate::ipc`).
//!
//! Kernel-lock context, in the calling thread.

use super::{SysResult, copy_in, copy_out};
use crate::ipc::{eventfd, pipe, timerfd};
use crate::process::current;
use crate::process::file::{O_CLOEXEC, O_NONBLOCK, O_RDWR, O_WRONLY, OpenFile};
use alloc::sync::Arc;
use cairn_unix::abi::Timespec;
use cairn_unix::errno::Errno;

/// Installs `f` at the lowest free descriptor.
pub fn install(f: Arc<OpenFile>, cloexec: bool) -> Result<i32, Errno> {
    current().fds.lock().alloc(f, cloexec).map_err(|(e, _f)| e)
}

pub fn pipe2(fds: u64, flags: u32) -> SysResult {
    const O_DIRECT: u32 = 0o40000;
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = pipe::new();
    let status = flags & O_NONBLOCK;
    let rf = OpenFile::object(r, status);
    let wf = OpenFile::object(w, status | O_WRONLY);
    let cloexec = flags & O_CLOEXEC != 0;
    let (a, b) = {
        let mut t = current().fds.lock();
        let a = t.alloc(rf, cloexec).map_err(|(e, _)| e)?;
        match t.alloc(wf, cloexec) {
            Ok(b) => (a, b),
            Err((e, _)) => {
                let undo = t.close(a);
                drop(t);
                drop(undo);
                return Err(e);
            }
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&a.to_le_bytes());
    out[4..].copy_from_slice(&b.to_le_bytes());
    if let Err(e) = copy_out(fds, &out) {
        let closed = {
            let mut t = current().fds.lock();
            (t.close(a), t.close(b))
        };
        drop(closed);
        return Err(e);
    }
    Ok(0)
}

pub fn eventfd2(initval: u32, flags: u32) -> SysResult {
    const EFD_SEMAPHORE: u32 = 1;
    if flags & !(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let e = eventfd::new(initval, flags & EFD_SEMAPHORE != 0);
    let f = OpenFile::object(e, O_RDWR | (flags & O_NONBLOCK));
    install(f, flags & O_CLOEXEC != 0).map(|fd| fd as u64)
}

pub fn timerfd_create(clock: i32, flags: u32) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let t = timerfd::new(clock)?;
    let f = OpenFile::object(t, flags & O_NONBLOCK);
    install(f, flags & O_CLOEXEC != 0).map(|fd| fd as u64)
}

fn timer_of(fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = super::fs::get_file(fd)?;
    if f.downcast::<timerfd::TimerFd>().is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

fn ns(t: &Timespec) -> u64 {
    (t.sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.nsec as u64)
}

fn encode_spec(out: u64, (interval, value): timerfd::Spec) -> Result<(), Errno> {
    let mut b = [0u8; 2 * Timespec::SIZE];
    for (i, v) in [interval, value].into_iter().enumerate() {
        Timespec {
            sec: (v / 1_000_000_000) as i64,
            nsec: (v % 1_000_000_000) as i64,
        }
        .encode(&mut b[i * Timespec::SIZE..])?;
    }
    copy_out(out, &b)
}

pub fn timerfd_settime(fd: i32, flags: i32, new: u64, old: u64) -> SysResult {
    const TFD_TIMER_ABSTIME: i32 = 1;
    const TFD_TIMER_CANCEL_ON_SET: i32 = 2;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = timer_of(fd)?;
    let mut b = [0u8; 2 * Timespec::SIZE];
    copy_in(&mut b, new)?;
    let interval = Timespec::decode_valid(&b[..Timespec::SIZE])?;
    let value = Timespec::decode_valid(&b[Timespec::SIZE..])?;
    let t = f.downcast::<timerfd::TimerFd>().ok_or(Errno::EINVAL)?;
    let prev = t.settime(flags & TFD_TIMER_ABSTIME != 0, ns(&interval), ns(&value));
    if old != 0 {
        encode_spec(old, prev)?;
    }
    Ok(0)
}

pub fn timerfd_gettime(fd: i32, out: u64) -> SysResult {
    let f = timer_of(fd)?;
    let t = f.downcast::<timerfd::TimerFd>().ok_or(Errno::EINVAL)?;
    encode_spec(out, t.gettime())?;
    Ok(0)
}
