//! System calls that run without the kernel lock (issue 17): the entry
//! tries them first, and only if one answers [`Lockless::NeedLock`] (or is
//! not one of them) does the thread queue for the kernel lock and run the
//! ordinary handler.
//!
//! **The rules a lockless handler follows**, in the thread's own context
//! with interrupts on and no kernel lock (`context()` says RunLoop, so any
//! allocation comes from the `locked` heap):
//!
//! * it takes only the fine-grained locks the documented order allows and
//!   holds none across a user copy;
//! * it never frees `general`-heap memory (the heap's check would panic,
//!   in every build): it drops nothing whose last reference it may hold
//!   unless that object was allocated bh-safe;
//! * it never sleeps and never pages user memory in: a user copy is made
//!   with faults disabled, and a copy that fails (a page not mapped yet, or
//!   a bad pointer) makes it answer `NeedLock`, so the locked handler
//!   redoes the call from scratch and pages in (or returns EFAULT). A
//!   handler that answers `NeedLock` has changed nothing the program can
//!   see.
//!
//! Contexts: the syscall entry, before the kernel lock. Locks: none here.

use super::SysResult;
use cairn_unix::syscalls as nr;

/// What a lockless attempt came to.
pub enum Lockless {
    /// The call's result.
    Done(SysResult),
    /// Run the ordinary handler under the kernel lock.
    NeedLock,
}

/// Copies `src` to the user at `dst` without paging anything in.
fn copy_out(dst: u64, src: &[u8]) -> Result<(), ()> {
    crate::user::with_user_faults_disabled(|| crate::user::copy_to_user(dst, src)).map_err(|_| ())
}

/// A result written to user memory: `Done(Ok(0))`, or `NeedLock` if the
/// copy could not be made here.
fn written(dst: u64, bytes: &[u8]) -> Lockless {
    match copy_out(dst, bytes) {
        Ok(()) => Lockless::Done(Ok(0)),
        Err(()) => Lockless::NeedLock,
    }
}

/// Tries syscall `n` with arguments `a` without the kernel lock.
pub fn try_call(n: u64, a: [u64; 6]) -> Lockless {
    use Lockless::{Done, NeedLock};
    match n {
        nr::GETPID => Done(Ok(u64::from(super::signal::PID as u32))),
        nr::GETPPID | nr::GETUID | nr::GETGID | nr::GETEUID | nr::GETEGID => Done(Ok(0)),
        nr::GETTID => {
            let mut tid = None;
            crate::sched::thread::with_current(|t| tid = t.user.as_ref().map(|u| u.tid));
            match tid {
                Some(t) => Done(Ok(u64::from(t))),
                None => NeedLock,
            }
        }
        nr::CLOCK_GETTIME => match super::misc::clock_bytes(a[0] as i32) {
            Ok(b) => written(a[1], &b),
            Err(e) => Done(Err(e)),
        },
        nr::GETTIMEOFDAY if a[0] == 0 => Done(Ok(0)),
        nr::GETTIMEOFDAY => written(a[0], &super::misc::timeofday_bytes()),
        nr::TIME => {
            let secs = crate::time::realtime_ns() / 1_000_000_000;
            if a[0] != 0 && copy_out(a[0], &secs.to_le_bytes()).is_err() {
                return NeedLock;
            }
            Done(Ok(secs))
        }
        nr::FUTEX => super::thread::futex_lockless(a),
        _ => NeedLock,
    }
}
