//! File times: `utimensat`, `futimesat`, `utimes`, `utime` (and glibc's
//! `futimens`, which is `utimensat(fd, NULL, ...)`) set the access and
//! modification times TFS keeps for every node (logged with the next
//! metadata commit, so they persist across a remount, as Nanos's do).
//!
//! Times are wall-clock (`crate::time::realtime_ns`, the RTC at boot plus
//! the monotonic clock); `UTIME_NOW` and a NULL `times` take the current
//! one, `UTIME_OMIT` leaves a time alone. TFS keeps no change time
//! (`st_ctime` reports the modification time) and no owners or modes, so
//! no permission is checked. Files that are not TFS nodes (the special
//! tree, pipes, memfds, the console) keep no times: setting them succeeds
//! and changes nothing (docs/SYSCALLS.md).
//!
//! Lock order: as `super::fs` (the fd table and working directory are
//! read and released before a walk takes a volume's `fs` mutex; the time
//! is set under the mutex the walk holds).
//!
//! Kernel-lock context, in the calling thread.

use super::fs::{
    AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, existing, get_file, resolve, start_dir,
};
use super::{SysResult, copy_in, user_string};
use crate::fs::walk::{Walker, fs_errno};
use crate::fs::{Loc, Tfs};
use crate::special::Target;
use cairn_tfs::Timestamp;
use cairn_unix::abi::{TimeSet, decode_utimbuf, decode_utimens, decode_utimes};
use cairn_unix::errno::Errno;
use cairn_unix::path::PATH_MAX;

/// The times a call asks for; `None` (a NULL `times`): both now.
type Times = Option<[TimeSet; 2]>;

fn timestamp(t: TimeSet, now: u64) -> Option<Timestamp> {
    let (secs, nanos) = match t {
        TimeSet::Omit => return None,
        TimeSet::Now => (now / 1_000_000_000, (now % 1_000_000_000) as u32),
        // TFS counts unsigned 32-bit seconds: earlier than 1970 is 1970,
        // later than 2106 is 2106.
        TimeSet::At(ts) => (ts.sec.clamp(0, i64::from(u32::MAX)) as u64, ts.nsec as u32),
    };
    Some(Timestamp::from_secs_nanos(secs, nanos))
}

fn set(fs: &mut Tfs, loc: Loc, times: Times) -> SysResult {
    let [a, m] = times.unwrap_or([TimeSet::Now; 2]);
    let now = crate::time::realtime_ns();
    fs.set_times(loc.ino, timestamp(a, now), timestamp(m, now))
        .map_err(fs_errno)?;
    Ok(0)
}

/// Sets the times of the file open at `fd`.
fn set_fd(fd: i32, times: Times) -> SysResult {
    let f = get_file(fd)?;
    let Some(loc) = f.loc() else {
        return Ok(0); // not a TFS node: no times kept
    };
    drop(f);
    let mut wk = Walker::new();
    set(wk.fs(loc.mount), loc, times)
}

/// Sets the times of `path` (relative to `dirfd`).
fn set_path(dirfd: i32, path: &[u8], follow: bool, times: Times) -> SysResult {
    let (dirfd, p) = match crate::special::lookup(dirfd, path, follow) {
        None => (dirfd, path.to_vec()),
        Some(Err(e)) => return Err(e),
        Some(Ok(Target::Node(_) | Target::File(_))) => return Ok(0),
        Some(Ok(Target::Tfs(p))) => (AT_FDCWD, p),
    };
    let start = start_dir(dirfd)?;
    let mut wk = Walker::new();
    let w = resolve(&mut wk, &start, &p, follow)?;
    let (loc, _) = existing(&w)?;
    set(wk.fs(loc.mount), loc, times)
}

fn read_times(
    addr: u64,
    size: usize,
    decode: fn(&[u8]) -> Result<[TimeSet; 2], Errno>,
) -> Result<Times, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let mut b = [0u8; 32];
    copy_in(&mut b[..size], addr)?;
    decode(&b[..size]).map(Some)
}

/// `utimensat(dirfd, path, times, flags)`; a NULL `path` names `dirfd`
/// itself (`futimens`).
pub fn utimensat(dirfd: i32, path: u64, times: u64, flags: i32) -> SysResult {
    let times = read_times(times, 32, decode_utimens)?;
    // Both omitted: nothing to do, and the path is not even looked at.
    if times == Some([TimeSet::Omit; 2]) {
        return Ok(0);
    }
    if path == 0 && dirfd != AT_FDCWD {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        return set_fd(dirfd, times);
    }
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = user_string(path, PATH_MAX)?;
    if p.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd != AT_FDCWD {
            return set_fd(dirfd, times);
        }
        return set_path(AT_FDCWD, b".", true, times);
    }
    set_path(dirfd, &p, flags & AT_SYMLINK_NOFOLLOW == 0, times)
}

/// `futimesat(dirfd, path, times)` (`struct timeval[2]`); `utimes` is
/// `futimesat(AT_FDCWD, ...)`.
pub fn futimesat(dirfd: i32, path: u64, times: u64) -> SysResult {
    let times = read_times(times, 32, decode_utimes)?;
    if path == 0 && dirfd != AT_FDCWD {
        return set_fd(dirfd, times);
    }
    let p = user_string(path, PATH_MAX)?;
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    set_path(dirfd, &p, true, times)
}

/// `utime(path, times)` (`struct utimbuf`, whole seconds).
pub fn utime(path: u64, times: u64) -> SysResult {
    let times = read_times(times, 16, decode_utimbuf)?;
    let p = user_string(path, PATH_MAX)?;
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    set_path(AT_FDCWD, &p, true, times)
}
