//! Errno values and names, syscall numbers and names, log-once bitmap.

use cairn_unix::errno::syscall_return;
use cairn_unix::syscalls::{self, OnceLog};
use cairn_unix::{Errno, SysResult};

#[test]
fn errno_values() {
    assert_eq!(Errno::ENOENT.raw(), libc::ENOENT);
    assert_eq!(Errno::ENOSYS.raw(), libc::ENOSYS);
    assert_eq!(Errno::EAGAIN, Errno::EWOULDBLOCK);
    assert_eq!(Errno::ENOSYS.as_neg(), -38);
    assert_eq!(Errno::ENOENT.name(), Some("ENOENT"));
    assert_eq!(Errno::from_raw(41).and_then(Errno::name), None);
    assert_eq!(Errno::from_raw(0), None);
    assert_eq!(Errno::from_raw(4096), None);
    assert_eq!(format!("{:?}", Errno::EHWPOISON), "EHWPOISON");
    assert_eq!(Errno::from_syscall_return(-2), Some(Errno::ENOENT));
    assert_eq!(Errno::from_syscall_return(-4096), None);
    let ok: SysResult<u64> = Ok(5);
    assert_eq!(syscall_return(ok), 5);
    assert_eq!(syscall_return(Err(Errno::EBADF)), -9);
    // Every named errno agrees with the host's strerror table size.
    for raw in 1..=133 {
        if let Some(name) = Errno::from_raw(raw).unwrap().name() {
            assert!(name.starts_with('E'));
        }
    }
}

#[test]
fn syscall_table() {
    assert_eq!(syscalls::READ, 0);
    assert_eq!(syscalls::name(0), Some("read"));
    assert_eq!(syscalls::name(libc::SYS_openat as u64), Some("openat"));
    assert_eq!(
        syscalls::name(libc::SYS_exit_group as u64),
        Some("exit_group")
    );
    assert_eq!(syscalls::name(libc::SYS_statx as u64), Some("statx"));
    assert_eq!(syscalls::name(libc::SYS_clone3 as u64), Some("clone3"));
    assert_eq!(
        syscalls::name(libc::SYS_futex_waitv as u64),
        Some("futex_waitv")
    );
    assert_eq!(syscalls::FUTEX, libc::SYS_futex as u64);
    assert_eq!(syscalls::RT_SIGACTION, libc::SYS_rt_sigaction as u64);
    assert_eq!(syscalls::name(335), None);
    assert_eq!(syscalls::name(u64::MAX), None);
}

#[test]
fn once_log() {
    let mut l = OnceLog::new();
    assert!(l.first_time(syscalls::IO_URING_SETUP));
    assert!(!l.first_time(syscalls::IO_URING_SETUP));
    assert!(l.first_time(0));
    assert!(l.first_time(u64::MAX));
    assert!(!l.first_time(100_000), "huge numbers share one slot");
}
