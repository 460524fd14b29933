//! flock (the `fcntl` lock commands go through `fs::fcntl`); both are
//! served by `crate::process::locks`.
//!
//! Kernel-lock context, in the calling thread.

use super::SysResult;
use super::fs::get_file;

pub fn flock(fd: i32, op: i32) -> SysResult {
    crate::process::locks::flock(&*get_file(fd)?, op)
}
