//! The program cairn runs: one process with its address space, file
//! descriptors, working directory, futexes, signal dispositions and
//! threads.
//!
//! | module | owns |
//! |---|---|
//! | [`aspace`] | vmaps, mapped pages, demand paging |
//! | [`file`] | open file descriptions, the [`file::FileOps`] objects |
//! | [`locks`] | advisory record, OFD and flock locks |
//! | [`exec`] | loading the ELF (and its dynamic loader) and starting the first thread |
//! | [`vdso`] | the vDSO and its data page in the address space |
//! | here | [`Process`], thread creation and exit, the workload's start and end |
//!
//! **Locks** (all SpinLocks, kernel-lock context only, never held across a
//! sleep): `process.fds` → (filesystem) → `aspace`; `process.signals` →
//! `process.threads` → `thread.signals` → `process.sigpending` (see
//! `crate::signal`); `process.futex`, `process.cwd`, `process.brk` are
//! leaves.
//!
//! Contexts: kernel-lock, in threads.

pub mod aspace;
pub mod exec;
pub mod file;
pub mod locks;
pub mod pages;
pub mod vdso;

use crate::sched::thread::Thread;
use crate::sched::waitqueue::WaitQueue;
use crate::user::{UserRegs, UserState};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use aspace::AddressSpace;
use cairn_sync::{LockClass, SpinLock};
use cairn_tfs::Ino;
use cairn_unix::errno::Errno;
use cairn_unix::fdtable::FdTable;
use cairn_unix::futex::FutexTable;
use cairn_unix::signal::SigActions;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use file::OpenFile;

pub(crate) static FDS_CLASS: LockClass = LockClass::new("process.fds");
pub(crate) static CWD_CLASS: LockClass = LockClass::new("process.cwd");
static FUTEX_CLASS: LockClass = LockClass::new("process.futex");
pub(crate) static SIGNALS_CLASS: LockClass = LockClass::new("process.signals");
pub(crate) static SIGPENDING_CLASS: LockClass = LockClass::new("process.sigpending");
pub(crate) static THREADS_CLASS: LockClass = LockClass::new("process.threads");
static BRK_CLASS: LockClass = LockClass::new("process.brk");

/// One thread waiting on a futex.
pub struct FutexWaiter {
    pub woken: AtomicBool,
}

pub struct Cwd {
    /// The directory (a volume and an inode of it).
    pub dir: crate::fs::Loc,
    pub path: String,
}

pub struct Brk {
    pub start: u64,
    pub current: u64,
}

pub struct Process {
    pub aspace: AddressSpace,
    pub fds: SpinLock<FdTable<Arc<OpenFile>>>,
    pub cwd: SpinLock<Cwd>,
    pub futex: SpinLock<FutexTable<Arc<FutexWaiter>>>,
    /// Futex sleepers (each checks its own `woken`).
    pub futex_sleepers: WaitQueue,
    pub signals: SpinLock<SigActions>,
    /// Signals sent to the process, waiting for a thread that does not
    /// block them (`crate::signal`).
    pub sigpending: SpinLock<cairn_unix::sigpending::PendingSignals>,
    /// The user threads, by thread id (signals aimed at a thread).
    pub threads: SpinLock<BTreeMap<u32, Arc<Thread>>>,
    /// Notified whenever a signal is sent (`rt_sigtimedwait` waits on it).
    pub sig_arrived: crate::sched::wait::Pollable,
    pub brk: SpinLock<Brk>,
    pub umask: AtomicU32,
    next_tid: AtomicU32,
    live_threads: AtomicU32,
}

pub static PROCESS: spin::Once<Process> = spin::Once::new();

/// Creates the process without a program (in-kernel tests that run code
/// in user mode directly).
pub fn ensure_bare() -> &'static Process {
    PROCESS.call_once(|| Process::new(0))
}

/// The running program (after `exec::start`).
pub fn current() -> &'static Process {
    PROCESS.get().expect("no process")
}

impl Process {
    fn new(brk_start: u64) -> Process {
        let root = crate::fs::root().map_or(
            crate::fs::Loc {
                mount: 0,
                ino: Ino(0),
            },
            |m| m.root_loc(),
        );
        let mut fds = FdTable::new(1024);
        for (fd, flags) in [(0, 0), (1, file::O_WRONLY), (2, file::O_WRONLY)] {
            let got = fds.alloc(OpenFile::console(flags), false).ok();
            debug_assert_eq!(got, Some(fd));
        }
        Process {
            aspace: AddressSpace::new(cairn_unix::vmap::Layout::default()),
            fds: SpinLock::new(&FDS_CLASS, fds),
            cwd: SpinLock::new(
                &CWD_CLASS,
                Cwd {
                    dir: root,
                    path: String::from("/"),
                },
            ),
            futex: SpinLock::new(&FUTEX_CLASS, FutexTable::new()),
            futex_sleepers: WaitQueue::new(),
            signals: SpinLock::new(&SIGNALS_CLASS, SigActions::default()),
            sigpending: SpinLock::new(
                &SIGPENDING_CLASS,
                cairn_unix::sigpending::PendingSignals::new(),
            ),
            threads: SpinLock::new(&THREADS_CLASS, BTreeMap::new()),
            sig_arrived: crate::sched::wait::Pollable::new(),
            brk: SpinLock::new(
                &BRK_CLASS,
                Brk {
                    start: brk_start,
                    current: brk_start,
                },
            ),
            umask: AtomicU32::new(0o022),
            next_tid: AtomicU32::new(1),
            live_threads: AtomicU32::new(0),
        }
    }

    pub fn thread_count(&self) -> u32 {
        self.live_threads.load(Ordering::Relaxed)
    }
}

/// Starts a user thread with `regs` and TLS base `fs_base`; returns its id.
/// EAGAIN (as Linux's `clone` when it cannot allocate a task) when memory,
/// after dropping cached pages, is down to the kernel's own reserve.
pub fn spawn_thread(regs: UserRegs, fs_base: u64) -> Result<(u32, Arc<Thread>), Errno> {
    let p = current();
    if u64::from(p.thread_count()) >= max_threads()
        || !crate::heaps::global::room_for_user(THREAD_MEMORY)
    {
        return Err(Errno::EAGAIN);
    }
    // A new thread inherits its creator's signal mask.
    let mask = crate::signal::current_mask();
    let tid = p.next_tid.fetch_add(1, Ordering::Relaxed);
    let t =
        Thread::new_user("user", UserState::new(tid, regs, fs_base, mask)).ok_or(Errno::EAGAIN)?;
    p.live_threads.fetch_add(1, Ordering::Relaxed);
    p.threads.lock().insert(tid, t.clone());
    crate::sched::runqueue().enqueue(crate::sched::Runnable::Thread(t.clone()));
    crate::sched::runloop::wake_cpu_for_work();
    Ok((tid, t))
}

/// Kernel memory a user thread needs: its kernel stack and its state.
const THREAD_MEMORY: u64 = crate::sched::thread::STACK_SIZE as u64 + 8192;

/// Most user threads at once (`RLIMIT_NPROC`): their kernel memory may take
/// an eighth of RAM, Linux's rule for `threads-max` (at least 20). A
/// program starting threads without end gets EAGAIN from `clone` long
/// before memory runs out (which would end it with SIGBUS at a fault).
pub fn max_threads() -> u64 {
    // RAM from the memory map, not the physical heap's figures, which a
    // busy heap lock would hide (a limit of 20 threads under contention).
    let ram = crate::mm::kernel_map::ram_top();
    (ram / 8 / THREAD_MEMORY).max(20)
}

/// Ends the calling user thread (`exit`): clears and wakes its
/// `clear_child_tid`, and ends the program with `status` if it was the
/// last thread.
pub fn exit_thread(status: u32) -> ! {
    let p = current();
    if let Some(t) = crate::sched::thread::current()
        && let Some(u) = &t.user
    {
        let ctid = u.clear_child_tid.load(Ordering::Relaxed);
        let tid = u.tid;
        drop(t);
        p.threads.lock().remove(&tid);
        if ctid != 0 && crate::user::copy_to_user(ctid, &0u32.to_le_bytes()).is_ok() {
            crate::syscall::thread::futex_wake(ctid, 1);
        }
    }
    if p.live_threads.fetch_sub(1, Ordering::AcqRel) == 1 {
        exit_program(status);
    }
    crate::sched::thread::exit_current()
}

/// Ends the program (`exit_group`, a fatal signal, or the last thread):
/// writes back and commits every volume, then leaves QEMU with `status`.
pub fn exit_program(status: u32) -> ! {
    // Direct transfers still in flight land first (their data and length
    // reach the final commit).
    crate::fs::inflight::wait_all();
    if crate::fs::sync_all().is_err() {
        crate::warn!("sync at exit failed");
    }
    crate::panic::exit(status)
}

/// Boots the workload the root filesystem names (the kernel's main thread),
/// with `program` and `argv` instead of the root tuple's if given
/// (`program=` and `argv=` on the kernel command line).
pub fn run_workload(
    program: Option<Vec<u8>>,
    argv: Option<Vec<Vec<u8>>>,
) -> Result<(), exec::StartError> {
    crate::fs::mount_root().map_err(exec::StartError::cannot)?;
    let w = crate::fs::root()
        .ok_or_else(|| exec::StartError::cannot("no root".into()))?
        .fs()
        .workload();
    crate::net::configure(
        w.ipaddr.as_deref(),
        w.netmask.as_deref(),
        w.gateway.as_deref(),
    );
    let program = program.or(w.program).ok_or_else(|| {
        exec::StartError::cannot("the image names no program (root tuple has no `program`)".into())
    })?;
    let mut argv: Vec<Vec<u8>> = argv.unwrap_or(w.arguments);
    if argv.is_empty() {
        argv.push(program.clone());
    }
    let envp: Vec<Vec<u8>> = w
        .environment
        .into_iter()
        .map(|(k, v)| {
            let mut e = k;
            e.push(b'=');
            e.extend_from_slice(&v);
            e
        })
        .collect();
    crate::info!("starting {}", String::from_utf8_lossy(&program));
    exec::start(&program, &argv, &envp)
}
