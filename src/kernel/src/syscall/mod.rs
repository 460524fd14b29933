//! The Linux system calls of the user program: dispatch by number to the
//! handlers in [`fs`], [`mm`], [`thread`], [`misc`], [`pipe`] (pipes,
//! eventfd, timerfd), [`poll`] (poll, select, epoll), [`lock`] (flock),
//! [`copy`] (sendfile, copy_file_range), [`sys`] (rusage, prctl,
//! scheduler, mlock, membarrier), [`memfd`], [`times`] (file times), [`aio`]
//! and [`uring`] (asynchronous I/O, both through [`request`]); user-memory helpers; the
//! handling of exceptions raised in user mode.
//!
//! Kernel-lock context (the entry path takes the lock before calling in),
//! in the calling thread, which may sleep. Unsupported calls return ENOSYS
//! and are logged once by number and name.

pub mod aio;
pub mod copy;
pub mod fs;
pub mod lock;
pub mod lockless;
pub mod memfd;
pub mod misc;
pub mod mm;
pub mod net;
pub mod pipe;
pub mod poll;
pub mod request;
pub mod shm;
pub mod signal;
pub mod sys;
pub mod thread;
pub mod times;
pub mod uring;
pub mod xattr;

use crate::process::aspace::FaultOutcome;
use crate::user::UserRegs;
use alloc::vec::Vec;
use cairn_pc::idt::TrapFrame;
use cairn_unix::errno::Errno;
use cairn_unix::syscalls as nr;
use core::sync::atomic::{AtomicU64, Ordering};

/// A syscall's result: a value or an errno.
pub type SysResult = Result<u64, Errno>;

/// One bit per syscall number below 512: "ENOSYS already logged"; the
/// last word's bit 63 stands for every number from 511 up (a program
/// trying numbers no kernel has must not flood the console: one line).
static REPORTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn unsupported(n: u64) -> SysResult {
    let (w, b) = match ((n / 64) as usize, n % 64) {
        (w, _) if w >= REPORTED.len() => (REPORTED.len() - 1, 63),
        wb => wb,
    };
    if REPORTED[w].fetch_or(1 << b, Ordering::Relaxed) & (1 << b) == 0 {
        crate::warn!(
            "unsupported syscall {n} ({}): ENOSYS",
            nr::name(n).unwrap_or("unknown")
        );
    }
    Err(Errno::ENOSYS)
}

/// Runs the syscall in `regs` (number in rax, arguments in rdi, rsi, rdx,
/// r10, r8, r9) and puts its result in rax.
pub fn dispatch(regs: &mut UserRegs) {
    let a = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
    let n = regs.rax;
    let r = call(n, a, regs);
    regs.rax = match r {
        Ok(v) => v,
        Err(e) => e.as_neg() as u64,
    };
}

fn call(n: u64, a: [u64; 6], regs: &UserRegs) -> SysResult {
    let i = |k: usize| a[k] as i32;
    match n {
        nr::READ => fs::read(i(0), a[1], a[2]),
        nr::WRITE => fs::write(i(0), a[1], a[2]),
        nr::OPEN => fs::openat(fs::AT_FDCWD, a[0], a[1] as u32, a[2] as u32),
        // creat(path, mode) is open(path, O_CREAT | O_WRONLY | O_TRUNC, mode).
        nr::CREAT => fs::openat(fs::AT_FDCWD, a[0], 0o1101, a[1] as u32),
        nr::CLOSE => fs::close(i(0)),
        nr::STAT => fs::fstatat(fs::AT_FDCWD, a[0], a[1], 0),
        nr::FSTAT => fs::fstat(i(0), a[1]),
        nr::LSTAT => fs::fstatat(fs::AT_FDCWD, a[0], a[1], fs::AT_SYMLINK_NOFOLLOW),
        nr::LSEEK => fs::lseek(i(0), a[1] as i64, i(2)),
        nr::MMAP => mm::mmap(a[0], a[1], a[2], a[3], i(4), a[5]),
        nr::MPROTECT => mm::mprotect(a[0], a[1], a[2]),
        nr::MUNMAP => mm::munmap(a[0], a[1]),
        nr::BRK => mm::brk(a[0]),
        nr::RT_SIGACTION => signal::rt_sigaction(i(0), a[1], a[2], a[3]),
        nr::RT_SIGPROCMASK => signal::rt_sigprocmask(i(0), a[1], a[2], a[3]),
        nr::RT_SIGPENDING => signal::rt_sigpending(a[0], a[1]),
        nr::RT_SIGTIMEDWAIT => signal::rt_sigtimedwait(a[0], a[1], a[2], a[3]),
        nr::RT_SIGQUEUEINFO => signal::rt_sigqueueinfo(i(0), i(1), a[2]),
        nr::RT_TGSIGQUEUEINFO => signal::rt_tgsigqueueinfo(i(0), i(1), i(2), a[3]),
        nr::RT_SIGSUSPEND => signal::rt_sigsuspend(a[0], a[1]),
        nr::PAUSE => signal::pause(),
        nr::SETITIMER => signal::setitimer(i(0), a[1], a[2]),
        nr::GETITIMER => signal::getitimer(i(0), a[1]),
        nr::TIMER_CREATE => signal::timer_create(i(0), a[1], a[2]),
        nr::TIMER_SETTIME => signal::timer_settime(i(0), i(1), a[2], a[3]),
        nr::TIMER_GETTIME => signal::timer_gettime(i(0), a[1]),
        nr::TIMER_GETOVERRUN => signal::timer_getoverrun(i(0)),
        nr::TIMER_DELETE => signal::timer_delete(i(0)),
        nr::IOCTL => fs::ioctl(i(0), a[1], a[2]),
        nr::PREAD64 => fs::pread(i(0), a[1], a[2], a[3]),
        nr::PWRITE64 => fs::pwrite(i(0), a[1], a[2], a[3]),
        nr::READV => fs::readv(i(0), a[1], a[2], None),
        nr::WRITEV => fs::writev(i(0), a[1], a[2], None),
        nr::PREADV => fs::readv(i(0), a[1], a[2], Some(a[3])),
        nr::PWRITEV => fs::writev(i(0), a[1], a[2], Some(a[3])),
        nr::ACCESS => fs::faccessat(fs::AT_FDCWD, a[0], i(1), 0),
        nr::SCHED_YIELD => thread::sched_yield(),
        nr::MREMAP => mm::mremap(a[0], a[1], a[2], a[3], a[4]),
        nr::MSYNC => mm::msync(a[0], a[1], i(2)),
        nr::MINCORE => mm::mincore(a[0], a[1], a[2]),
        nr::MADVISE => mm::madvise(a[0], a[1], i(2)),
        nr::DUP => fs::dup(i(0)),
        nr::DUP2 => fs::dup3(i(0), i(1), 0, true),
        nr::NANOSLEEP => misc::nanosleep(a[0], a[1]),
        nr::ALARM => signal::alarm(a[0] as u32),
        nr::GETPID => Ok(1),
        nr::CLONE => thread::clone(a[0], a[1], a[2], a[3], a[4], regs),
        nr::EXIT => crate::process::exit_thread(a[0] as u32 & 0xff),
        nr::KILL => signal::kill(i(0), i(1)),
        nr::TGKILL => signal::tgkill(i(0), i(1), i(2)),
        nr::TKILL => signal::tgkill(-1, i(0), i(1)),
        nr::UNAME => misc::uname(a[0]),
        nr::FCNTL => fs::fcntl(i(0), i(1), a[2]),
        nr::FSYNC | nr::FDATASYNC => fs::fsync(i(0)),
        nr::TRUNCATE => fs::truncate_path(a[0], a[1] as i64),
        nr::FTRUNCATE => fs::ftruncate(i(0), a[1] as i64),
        nr::GETCWD => fs::getcwd(a[0], a[1]),
        nr::CHDIR => fs::chdir(a[0]),
        nr::FCHDIR => fs::fchdir(i(0)),
        nr::RENAME => fs::renameat2(fs::AT_FDCWD, a[0], fs::AT_FDCWD, a[1], 0),
        nr::MKDIR => fs::mkdirat(fs::AT_FDCWD, a[0], a[1] as u32),
        nr::RMDIR => fs::unlinkat(fs::AT_FDCWD, a[0], fs::AT_REMOVEDIR),
        nr::LINK => fs::linkat(fs::AT_FDCWD, a[0], fs::AT_FDCWD, a[1], 0),
        nr::UNLINK => fs::unlinkat(fs::AT_FDCWD, a[0], 0),
        nr::SYMLINK => fs::symlinkat(a[0], fs::AT_FDCWD, a[1]),
        nr::READLINK => fs::readlinkat(fs::AT_FDCWD, a[0], a[1], a[2]),
        nr::CHMOD | nr::FCHMOD | nr::FCHMODAT | nr::CHOWN | nr::FCHOWN | nr::LCHOWN => Ok(0),
        // Its flags are checked as Linux does (the change itself is a no-op).
        nr::FCHOWNAT if i(4) & !(fs::AT_SYMLINK_NOFOLLOW | fs::AT_EMPTY_PATH) != 0 => {
            Err(Errno::EINVAL)
        }
        nr::FCHOWNAT => Ok(0),
        nr::UMASK => Ok(u64::from(
            crate::process::current()
                .umask
                .swap(a[0] as u32 & 0o777, Ordering::Relaxed),
        )),
        nr::GETTIMEOFDAY => misc::gettimeofday(a[0]),
        nr::GETRLIMIT => misc::prlimit(0, i(0), 0, a[1]),
        nr::SETRLIMIT => misc::prlimit(0, i(0), a[1], 0),
        nr::GETUID | nr::GETGID | nr::GETEUID | nr::GETEGID => Ok(0),
        nr::GETPPID => Ok(0),
        nr::GETPGRP | nr::GETPGID | nr::GETSID => Ok(1),
        nr::SIGALTSTACK => signal::sigaltstack(a[0], a[1]),
        nr::STATFS => fs::statfs_path(a[0], a[1]),
        nr::FSTATFS => fs::fstatfs(i(0), a[1]),
        nr::ARCH_PRCTL => thread::arch_prctl(i(0), a[1]),
        nr::SYNC => fs::sync().map(|_| 0),
        nr::GETTID => thread::gettid(),
        nr::TIME => misc::time(a[0]),
        nr::FUTEX => thread::futex(a[0], i(1), a[2] as u32, a[3], a[4], a[5] as u32),
        nr::SET_TID_ADDRESS => thread::set_tid_address(a[0]),
        nr::GETDENTS64 => fs::getdents64(i(0), a[1], a[2]),
        nr::GETDENTS => fs::getdents(i(0), a[1], a[2]),
        nr::IO_SETUP => aio::io_setup(a[0] as u32, a[1]),
        nr::IO_DESTROY => aio::io_destroy(a[0]),
        nr::IO_SUBMIT => aio::io_submit(a[0], a[1] as i64, a[2]),
        nr::IO_GETEVENTS => aio::io_getevents(a[0], a[1] as i64, a[2] as i64, a[3], a[4]),
        nr::IO_PGETEVENTS => aio::io_pgetevents(a[0], a[1] as i64, a[2] as i64, a[3], a[4], a[5]),
        nr::IO_CANCEL => aio::io_cancel(a[0], a[1], a[2]),
        nr::IO_URING_SETUP => uring::setup(a[0] as u32, a[1]),
        nr::IO_URING_ENTER => uring::enter(i(0), a[1] as u32, a[2] as u32, a[3] as u32, a[4], a[5]),
        nr::IO_URING_REGISTER => uring::register(i(0), a[1] as u32, a[2], a[3] as u32),
        nr::FADVISE64 => fs::fadvise64(i(0), a[1] as i64, a[2] as i64, i(3)),
        nr::CLOCK_GETTIME => misc::clock_gettime(i(0), a[1]),
        nr::CLOCK_GETRES => misc::clock_getres(i(0), a[1]),
        nr::CLOCK_NANOSLEEP => misc::clock_nanosleep(i(0), i(1), a[2], a[3]),
        nr::EXIT_GROUP => crate::process::exit_program(a[0] as u32 & 0xff),
        nr::OPENAT => fs::openat(i(0), a[1], a[2] as u32, a[3] as u32),
        nr::MKDIRAT => fs::mkdirat(i(0), a[1], a[2] as u32),
        nr::NEWFSTATAT => fs::fstatat(i(0), a[1], a[2], i(3)),
        nr::UNLINKAT => fs::unlinkat(i(0), a[1], i(2)),
        nr::RENAMEAT => fs::renameat2(i(0), a[1], i(2), a[3], 0),
        nr::LINKAT => fs::linkat(i(0), a[1], i(2), a[3], i(4)),
        nr::SYMLINKAT => fs::symlinkat(a[0], i(1), a[2]),
        nr::READLINKAT => fs::readlinkat(i(0), a[1], a[2], a[3]),
        nr::FACCESSAT => fs::faccessat(i(0), a[1], i(2), 0),
        nr::FACCESSAT2 => fs::faccessat(i(0), a[1], i(2), i(3)),
        nr::SET_ROBUST_LIST => Ok(0),
        nr::UTIMENSAT => times::utimensat(i(0), a[1], a[2], i(3)),
        nr::FUTIMESAT => times::futimesat(i(0), a[1], a[2]),
        nr::UTIMES => times::futimesat(fs::AT_FDCWD, a[0], a[1]),
        nr::UTIME => times::utime(a[0], a[1]),
        nr::FALLOCATE => fs::fallocate(i(0), i(1), a[2], a[3]),
        nr::DUP3 => fs::dup3(i(0), i(1), i(2), false),
        nr::PRLIMIT64 => misc::prlimit(a[0], i(1), a[2], a[3]),
        nr::SYNCFS => fs::syncfs(i(0)),
        nr::RENAMEAT2 => fs::renameat2(i(0), a[1], i(2), a[3], a[4] as u32),
        nr::GETRANDOM => misc::getrandom(a[0], a[1]),
        nr::STATX => fs::statx(i(0), a[1], i(2), a[3] as u32, a[4]),
        nr::SYSINFO => misc::sysinfo(a[0]),
        nr::PREADV2 => fs::rw_v2(i(0), a[1], a[2], a[3], a[5] as u32, false),
        nr::PWRITEV2 => fs::rw_v2(i(0), a[1], a[2], a[3], a[5] as u32, true),
        nr::PIPE => pipe::pipe2(a[0], 0),
        nr::PIPE2 => pipe::pipe2(a[0], a[1] as u32),
        nr::EVENTFD => pipe::eventfd2(a[0] as u32, 0),
        nr::EVENTFD2 => pipe::eventfd2(a[0] as u32, a[1] as u32),
        nr::TIMERFD_CREATE => pipe::timerfd_create(i(0), a[1] as u32),
        nr::TIMERFD_SETTIME => pipe::timerfd_settime(i(0), i(1), a[2], a[3]),
        nr::TIMERFD_GETTIME => pipe::timerfd_gettime(i(0), a[1]),
        nr::POLL => poll::poll(a[0], a[1], i(2)),
        nr::PPOLL => poll::ppoll(a[0], a[1], a[2], a[3], a[4]),
        nr::SELECT => poll::select(i(0), a[1], a[2], a[3], a[4]),
        nr::PSELECT6 => poll::pselect6(i(0), a[1], a[2], a[3], a[4], a[5]),
        nr::EPOLL_CREATE => poll::epoll_create(i(0)),
        nr::EPOLL_CREATE1 => poll::epoll_create1(a[0] as u32),
        nr::EPOLL_CTL => poll::epoll_ctl(i(0), i(1), i(2), a[3]),
        nr::EPOLL_WAIT => poll::epoll_wait(i(0), a[1], i(2), i(3)),
        nr::EPOLL_PWAIT => poll::epoll_pwait(i(0), a[1], i(2), i(3), a[4], a[5]),
        nr::EPOLL_PWAIT2 => poll::epoll_pwait2(i(0), a[1], i(2), a[3], a[4], a[5]),
        nr::FLOCK => lock::flock(i(0), i(1)),
        nr::SOCKET => net::socket(i(0), a[1] as u32, i(2)),
        nr::SOCKETPAIR => net::socketpair(i(0), a[1] as u32, i(2), a[3]),
        nr::BIND => net::bind(i(0), a[1], a[2] as u32),
        nr::LISTEN => net::listen(i(0), i(1)),
        nr::ACCEPT => net::accept4(i(0), a[1], a[2], 0),
        nr::ACCEPT4 => net::accept4(i(0), a[1], a[2], a[3] as u32),
        nr::CONNECT => net::connect(i(0), a[1], a[2] as u32),
        nr::SENDTO => net::sendto(i(0), a[1], a[2], a[3] as u32, a[4], a[5] as u32),
        nr::RECVFROM => net::recvfrom(i(0), a[1], a[2], a[3] as u32, a[4], a[5]),
        nr::SENDMSG => net::sendmsg(i(0), a[1], a[2] as u32),
        nr::RECVMSG => net::recvmsg(i(0), a[1], a[2] as u32),
        nr::SHUTDOWN => net::shutdown(i(0), i(1)),
        nr::GETSOCKNAME => net::getsockname(i(0), a[1], a[2]),
        nr::GETPEERNAME => net::getpeername(i(0), a[1], a[2]),
        nr::SETSOCKOPT => net::setsockopt(i(0), i(1), i(2), a[3], a[4] as u32),
        nr::GETSOCKOPT => net::getsockopt(i(0), i(1), i(2), a[3], a[4]),
        nr::SENDFILE => copy::sendfile(i(0), i(1), a[2], a[3]),
        nr::COPY_FILE_RANGE => copy::copy_file_range(i(0), a[1], i(2), a[3], a[4], a[5] as u32),
        nr::SYNC_FILE_RANGE => copy::sync_file_range(i(0), a[1] as i64, a[2] as i64, a[3] as u32),
        nr::GETRUSAGE => sys::getrusage(i(0), a[1]),
        nr::TIMES => sys::times(a[0]),
        nr::PRCTL => sys::prctl(i(0), a[1], a[2], a[3], a[4]),
        nr::WAIT4 | nr::WAITID => sys::wait_children(),
        nr::SCHED_SETAFFINITY => sys::sched_setaffinity(a[0] as i64, a[1], a[2]),
        nr::SCHED_GETAFFINITY => sys::sched_getaffinity(a[0] as i64, a[1], a[2]),
        nr::SCHED_GETSCHEDULER => sys::sched_getscheduler(a[0] as i64),
        nr::SCHED_GETPARAM => sys::sched_getparam(a[0] as i64, a[1]),
        nr::SCHED_SETSCHEDULER => sys::sched_setscheduler(a[0] as i64, i(1), a[2]),
        nr::SCHED_SETPARAM => sys::sched_setscheduler(a[0] as i64, -1, a[1]),
        nr::SCHED_GET_PRIORITY_MAX => sys::sched_priority_max(i(0)),
        nr::SCHED_GET_PRIORITY_MIN => sys::sched_priority_min(i(0)),
        nr::SCHED_RR_GET_INTERVAL => sys::sched_rr_get_interval(a[0] as i64, a[1]),
        nr::GETPRIORITY => sys::getpriority(i(0), a[1] as i64),
        nr::SETPRIORITY => sys::setpriority(i(0), a[1] as i64, i(2)),
        nr::MEMBARRIER => sys::membarrier(i(0), a[1] as u32, i(2)),
        nr::MLOCK => sys::mlock(a[0], a[1], 0),
        nr::MLOCK2 => sys::mlock(a[0], a[1], a[2] as u32),
        nr::MUNLOCK => sys::munlock(a[0], a[1]),
        nr::MLOCKALL => sys::mlockall(i(0)),
        nr::MUNLOCKALL => Ok(0),
        nr::MEMFD_CREATE => memfd::memfd_create(a[0], a[1] as u32),
        nr::CLONE3 => thread::clone3(a[0], a[1], regs),
        nr::GETCPU => sys::getcpu(a[0], a[1]),
        nr::SHMGET => shm::shmget(i(0), a[1], i(2)),
        nr::SHMAT => shm::shmat(i(0), a[1], i(2)),
        nr::SHMDT => shm::shmdt(a[0]),
        nr::SHMCTL => shm::shmctl(i(0), i(1), a[2]),
        nr::GETXATTR
        | nr::LGETXATTR
        | nr::SETXATTR
        | nr::LSETXATTR
        | nr::REMOVEXATTR
        | nr::LREMOVEXATTR => xattr::unsupported(xattr::Target::Path(a[0])),
        nr::FGETXATTR | nr::FSETXATTR | nr::FREMOVEXATTR => {
            xattr::unsupported(xattr::Target::Fd(i(0)))
        }
        nr::LISTXATTR | nr::LLISTXATTR => xattr::list(xattr::Target::Path(a[0])),
        nr::FLISTXATTR => xattr::list(xattr::Target::Fd(i(0))),
        _ => unsupported(n),
    }
}

/// Reads a NUL-terminated string (a path) from user memory, at most
/// `limit` bytes.
pub fn user_string(addr: u64, limit: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        // Never read past a page boundary in one go: the next page may be
        // unmapped while the string ends before it.
        let here = addr + out.len() as u64;
        let in_page = (4096 - (here % 4096)) as usize;
        let n = chunk.len().min(in_page);
        crate::user::copy_from_user(&mut chunk[..n], here).map_err(|_| Errno::EFAULT)?;
        if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..z]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() >= limit {
            return Err(Errno::ENAMETOOLONG);
        }
    }
}

pub fn copy_out(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    crate::user::copy_to_user(addr, bytes).map_err(|_| Errno::EFAULT)
}

pub fn copy_in(dst: &mut [u8], addr: u64) -> Result<(), Errno> {
    crate::user::copy_from_user(dst, addr).map_err(|_| Errno::EFAULT)
}

pub fn read_u64(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_in(&mut b, addr)?;
    Ok(u64::from_le_bytes(b))
}

/// Ends the program for a fatal signal, reporting it.
pub fn fatal_signal(sig: u32, what: &str) -> ! {
    let name = match sig {
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    };
    crate::println!("cairn: program killed by {name} ({sig}): {what}");
    crate::process::exit_program(cairn_unix::signal::exit_status(sig) as u32)
}

/// An exception in user mode: demand paging for page faults; otherwise
/// (or when the fault cannot be served) the fault's signal, which runs the
/// program's handler or, blocked, ignored or unhandled, ends the program.
pub fn user_exception(frame: &mut TrapFrame) {
    if frame.vector == 14 {
        let addr = cairn_pc::cpu::read_cr2();
        let (write, exec) = (frame.error & 2 != 0, frame.error & 16 != 0);
        let r = match crate::process::PROCESS.get() {
            Some(p) => p.aspace.fault(addr, write, exec),
            None => Err(FaultOutcome::Segv),
        };
        match r {
            Ok(()) => {}
            Err(FaultOutcome::Segv) => {
                let mapped = crate::process::PROCESS
                    .get()
                    .is_some_and(|p| p.aspace.is_mapped(addr));
                crate::signal::deliver::fault(
                    14,
                    frame.rip,
                    addr,
                    mapped,
                    &alloc::format!(
                        "page fault at {addr:#x} ({}) from RIP {:#x}",
                        if write {
                            "write"
                        } else if exec {
                            "fetch"
                        } else {
                            "read"
                        },
                        frame.rip
                    ),
                )
            }
            Err(FaultOutcome::Bus) => crate::signal::deliver::bus_error(
                addr,
                &alloc::format!(
                    "access beyond the end of a mapped file at {addr:#x} (RIP {:#x})",
                    frame.rip
                ),
            ),
        }
        return;
    }
    crate::signal::deliver::fault(
        frame.vector,
        frame.rip,
        0,
        false,
        &alloc::format!(
            "{} at RIP {:#x}",
            cairn_pc::idt::vector::name(frame.vector),
            frame.rip
        ),
    )
}

/// A page fault the kernel took on a user address while copying (a
/// fix-up site): try demand paging first. True if the copy can go on.
pub fn kernel_fault_on_user(addr: u64, write: bool) -> bool {
    match crate::process::PROCESS.get() {
        Some(p) => p.aspace.fault(addr, write, false).is_ok(),
        None => false,
    }
}
