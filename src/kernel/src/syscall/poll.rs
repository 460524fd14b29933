//! Waiting for descriptors: poll, ppoll, select, pselect6, and the epoll
//! calls (epoll_create/create1, epoll_ctl, epoll_wait, epoll_pwait,
//! epoll_pwait2).
//!
//! Every wait subscribes to the sources of the files it watches and sleeps
//! in `sched::wait::wait_event` (interruptible: `EINTR` once signals can
//! interrupt). Files without a source (regular files, the console,
//! devices) are always ready. The signal masks of ppoll, pselect6 and
//! epoll_pwait are read and checked but not applied: no signal is
//! delivered to a handler yet, so there is nothing for them to unblock.
//!
//! Kernel-lock context, in the calling thread.

use super::fs::get_file;
use super::{SysResult, copy_in, copy_out};
use crate::ipc::epoll::{self, Epoll};
use crate::process::file::{OpenFile, poll as pbits};
use crate::sched::wait::{Pollable, WaitError, wait_event};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use cairn_unix::abi::{Timespec, Timeval};
use cairn_unix::errno::Errno;

fn deadline_after(ns: u64) -> u64 {
    crate::time::now_ns().saturating_add(ns)
}

/// A relative `timespec` at `addr` as a deadline; `None` for a null
/// pointer (wait forever).
pub(crate) fn timespec_deadline(addr: u64) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let mut b = [0u8; Timespec::SIZE];
    copy_in(&mut b, addr)?;
    let t = Timespec::decode_valid(&b)?;
    let ns = (t.sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.nsec as u64);
    Ok(Some(deadline_after(ns)))
}

/// Checks a signal-mask argument's size (the mask itself is not applied).
fn check_sigset(size: u64) -> Result<(), Errno> {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The files behind `fds` (`None` for negative or closed descriptors).
fn files_of(fds: &[i32]) -> Vec<Option<Arc<OpenFile>>> {
    let p = crate::process::current();
    let t = p.fds.lock();
    fds.iter()
        .map(|&fd| {
            if fd < 0 {
                None
            } else {
                t.get(fd).ok().cloned()
            }
        })
        .collect()
}

/// The distinct sources of `files`.
fn sources(files: &[Option<Arc<OpenFile>>]) -> Vec<&Pollable> {
    let mut v: Vec<&Pollable> = Vec::new();
    for p in files.iter().flatten().filter_map(|f| f.pollable()) {
        if !v.iter().any(|q| core::ptr::eq(*q, p)) {
            v.push(p);
        }
    }
    v
}

/// Polls `fds` with `events`; returns each `revents` (0 on timeout).
fn do_poll(fds: &[i32], events: &[u16], deadline: Option<u64>) -> Result<Vec<u16>, Errno> {
    let files = files_of(fds);
    let srcs = sources(&files);
    let scan = || -> Vec<u16> {
        fds.iter()
            .zip(&files)
            .zip(events)
            .map(|((&fd, f), &ev)| match f {
                _ if fd < 0 => 0,
                None => pbits::POLLNVAL,
                Some(f) => f.poll() & (ev | pbits::POLLERR | pbits::POLLHUP),
            })
            .collect()
    };
    match wait_event(&srcs, deadline, || {
        let r = scan();
        r.iter().any(|&x| x != 0).then_some(r)
    }) {
        Ok(r) => Ok(r),
        Err(WaitError::TimedOut) => Ok(vec![0; fds.len()]),
        Err(WaitError::Interrupted) => Err(Errno::EINTR),
    }
}

fn poll_common(ufds: u64, nfds: u64, deadline: Option<u64>) -> SysResult {
    let limit = crate::process::current().fds.lock().limit() as u64;
    if nfds > limit.max(16) {
        return Err(Errno::EINVAL);
    }
    let n = nfds as usize;
    let mut raw = vec![0u8; n * 8];
    copy_in(&mut raw, ufds)?;
    let fds: Vec<i32> = raw
        .chunks(8)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let events: Vec<u16> = raw
        .chunks(8)
        .map(|c| u16::from_le_bytes([c[4], c[5]]))
        .collect();
    let rev = do_poll(&fds, &events, deadline)?;
    for (c, r) in raw.chunks_mut(8).zip(&rev) {
        c[6..8].copy_from_slice(&r.to_le_bytes());
    }
    copy_out(ufds, &raw)?;
    Ok(rev.iter().filter(|&&r| r != 0).count() as u64)
}

pub fn poll(ufds: u64, nfds: u64, timeout_ms: i32) -> SysResult {
    let deadline = (timeout_ms >= 0).then(|| deadline_after(timeout_ms as u64 * 1_000_000));
    poll_common(ufds, nfds, deadline)
}

/// The temporary signal mask of ppoll/pselect6/epoll_pwait at `addr`
/// (none if 0), applied around the wait by
/// `super::signal::with_temporary_mask`.
pub(crate) fn temporary_mask(
    addr: u64,
    size: u64,
) -> Result<Option<cairn_unix::signal::SigSet>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    check_sigset(size)?;
    let mut b = [0u8; 8];
    copy_in(&mut b, addr)?;
    Ok(Some(cairn_unix::signal::SigSet::from_bits(
        u64::from_le_bytes(b),
    )))
}

pub fn ppoll(ufds: u64, nfds: u64, tsp: u64, sigmask: u64, size: u64) -> SysResult {
    let mask = temporary_mask(sigmask, size)?;
    let deadline = timespec_deadline(tsp)?;
    super::signal::with_temporary_mask(mask, || poll_common(ufds, nfds, deadline))
}

/// select's three sets over descriptors `0..nfds`.
fn select_common(nfds: i32, sets: [u64; 3], deadline: Option<u64>) -> Result<u64, Errno> {
    if !(0..=1024 * 1024).contains(&nfds) {
        return Err(Errno::EINVAL);
    }
    let n = nfds as usize;
    let bytes = n.div_ceil(64) * 8;
    let mut bits: [Vec<u8>; 3] = [vec![0; bytes], vec![0; bytes], vec![0; bytes]];
    for (b, &addr) in bits.iter_mut().zip(&sets) {
        if addr != 0 {
            copy_in(b, addr)?;
        }
    }
    let isset = |b: &[u8], fd: usize| b[fd / 8] & (1 << (fd % 8)) != 0;
    const READ: u16 = pbits::POLLIN | pbits::POLLRDNORM | pbits::POLLHUP | pbits::POLLERR;
    const WRITE: u16 = pbits::POLLOUT | pbits::POLLWRNORM | pbits::POLLERR;
    const EXCEPT: u16 = pbits::POLLPRI;
    let mut fds = Vec::new();
    let mut events = Vec::new();
    for fd in 0..n {
        let mut ev = 0;
        if isset(&bits[0], fd) {
            ev |= READ;
        }
        if isset(&bits[1], fd) {
            ev |= WRITE;
        }
        if isset(&bits[2], fd) {
            ev |= EXCEPT;
        }
        if ev != 0 {
            fds.push(fd as i32);
            events.push(ev);
        }
    }
    if files_of(&fds).iter().any(Option::is_none) {
        return Err(Errno::EBADF);
    }
    let rev = do_poll(&fds, &events, deadline)?;
    let mut out: [Vec<u8>; 3] = [vec![0; bytes], vec![0; bytes], vec![0; bytes]];
    let mut count = 0;
    for ((&fd, &ev), &r) in fds.iter().zip(&events).zip(&rev) {
        let fd = fd as usize;
        for (k, mask) in [READ, WRITE, EXCEPT].into_iter().enumerate() {
            if isset(&bits[k], fd) && r & mask & ev != 0 {
                out[k][fd / 8] |= 1 << (fd % 8);
                count += 1;
            }
        }
    }
    for (b, &addr) in out.iter().zip(&sets) {
        if addr != 0 {
            copy_out(addr, b)?;
        }
    }
    Ok(count)
}

pub fn select(nfds: i32, r: u64, w: u64, e: u64, tvp: u64) -> SysResult {
    let deadline = if tvp == 0 {
        None
    } else {
        let mut b = [0u8; Timeval::SIZE];
        copy_in(&mut b, tvp)?;
        let sec = i64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let usec = i64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            return Err(Errno::EINVAL);
        }
        Some(deadline_after(
            sec as u64 * 1_000_000_000 + usec as u64 * 1000,
        ))
    };
    let n = select_common(nfds, [r, w, e], deadline)?;
    if let Some(d) = deadline {
        // Linux writes back the time left.
        let left = d.saturating_sub(crate::time::now_ns());
        let tv = Timeval {
            sec: (left / 1_000_000_000) as i64,
            usec: ((left % 1_000_000_000) / 1000) as i64,
        };
        let mut b = [0u8; Timeval::SIZE];
        tv.encode(&mut b)?;
        copy_out(tvp, &b)?;
    }
    Ok(n)
}

pub fn pselect6(nfds: i32, r: u64, w: u64, e: u64, tsp: u64, sig: u64) -> SysResult {
    let mut mask = None;
    if sig != 0 {
        let mut b = [0u8; 16];
        copy_in(&mut b, sig)?;
        let addr = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
        mask = temporary_mask(addr, size)?;
    }
    let deadline = timespec_deadline(tsp)?;
    super::signal::with_temporary_mask(mask, || select_common(nfds, [r, w, e], deadline))
}

pub fn epoll_create1(flags: u32) -> SysResult {
    use crate::process::file::O_CLOEXEC;
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let f = OpenFile::object(epoll::new(), 0);
    super::pipe::install(f, flags & O_CLOEXEC != 0).map(|fd| fd as u64)
}

pub fn epoll_create(size: i32) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    epoll_create1(0)
}

fn epoll_of(epfd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = get_file(epfd)?;
    if f.downcast::<Epoll>().is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

pub fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: u64) -> SysResult {
    let ep = epoll_of(epfd)?;
    let target = get_file(fd)?;
    if epfd == fd {
        return Err(Errno::EINVAL);
    }
    let (events, data) = if op == epoll::EPOLL_CTL_DEL {
        (0, 0)
    } else {
        let mut b = [0u8; 12];
        copy_in(&mut b, event)?;
        (
            u32::from_le_bytes(b[0..4].try_into().map_err(|_| Errno::EFAULT)?),
            u64::from_le_bytes(b[4..12].try_into().map_err(|_| Errno::EFAULT)?),
        )
    };
    if op != epoll::EPOLL_CTL_DEL
        && target.pollable().is_none()
        && !matches!(target.kind, crate::process::file::FileKind::Console)
    {
        // As on Linux: files without readiness of their own (regular
        // files, directories, /dev/null) cannot be watched. poll and
        // select report them always ready.
        return Err(Errno::EPERM);
    }
    let e = ep.downcast::<Epoll>().ok_or(Errno::EINVAL)?;
    e.ctl(op, fd, &target, events, data)?;
    Ok(0)
}

fn epoll_wait_common(epfd: i32, events: u64, max: i32, deadline: Option<u64>) -> SysResult {
    if max <= 0 || max as usize > i32::MAX as usize / 12 {
        return Err(Errno::EINVAL);
    }
    let ep = epoll_of(epfd)?;
    let e = ep.downcast::<Epoll>().ok_or(Errno::EINVAL)?;
    let got = e.wait(max as usize, deadline)?;
    let mut b = vec![0u8; got.len() * 12];
    for (c, (ev, data)) in b.chunks_mut(12).zip(&got) {
        c[0..4].copy_from_slice(&ev.to_le_bytes());
        c[4..12].copy_from_slice(&data.to_le_bytes());
    }
    copy_out(events, &b)?;
    Ok(got.len() as u64)
}

pub fn epoll_wait(epfd: i32, events: u64, max: i32, timeout_ms: i32) -> SysResult {
    let deadline = (timeout_ms >= 0).then(|| deadline_after(timeout_ms as u64 * 1_000_000));
    epoll_wait_common(epfd, events, max, deadline)
}

pub fn epoll_pwait(
    epfd: i32,
    events: u64,
    max: i32,
    timeout_ms: i32,
    sig: u64,
    size: u64,
) -> SysResult {
    let mask = temporary_mask(sig, size)?;
    super::signal::with_temporary_mask(mask, || epoll_wait(epfd, events, max, timeout_ms))
}

pub fn epoll_pwait2(epfd: i32, events: u64, max: i32, tsp: u64, sig: u64, size: u64) -> SysResult {
    let mask = temporary_mask(sig, size)?;
    let deadline = timespec_deadline(tsp)?;
    super::signal::with_temporary_mask(mask, || epoll_wait_common(epfd, events, max, deadline))
}
