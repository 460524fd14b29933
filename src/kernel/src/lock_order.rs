//! The global lock order of docs/ARCHITECTURE.md ("Locks"), declared to the
//! validator at boot, so that an acquisition against it panics the first
//! time it happens (debug builds) rather than once both orders have been
//! seen. Only the kernel's outer classes are declared here; the pagecache,
//! drivers, heaps and leaves are ordered by what the validator observes.
//!
//! Boot context, once, before the classes are used. No locks.

use cairn_sync::lockdep::declare_order;

/// Declares the order (no-op in builds without the validator).
pub fn declare() {
    // Sleeping locks first (never taken under a spinlock), then the fd
    // table and the address space.
    declare_order(&[
        &crate::syscall::uring::SUBMIT_CLASS,
        &crate::process::file::POS_CLASS,
        &crate::fs::TRUNCATE_CLASS,
        &crate::fs::FS_CLASS,
        &crate::process::FDS_CLASS,
        &crate::process::aspace::ASPACE_CLASS,
    ]);
    declare_order(&[&crate::fs::FS_CLASS, &crate::process::CWD_CLASS]);
    // A socket's own state, then the network stack (which covers the
    // NIC's rings).
    declare_order(&[&crate::net::socket::SOCKET_CLASS, &crate::net::STACK_CLASS]);
    // The AF_UNIX name table, then one AF_UNIX socket's state.
    declare_order(&[
        &crate::ipc::unix::NAMES_CLASS,
        &crate::ipc::unix::UNIX_CLASS,
    ]);
    // Signals: the sigaction table, the thread list, a thread's signal
    // state, the process's pending queue.
    declare_order(&[
        &crate::process::SIGNALS_CLASS,
        &crate::process::THREADS_CLASS,
        &crate::signal::THREAD_SIGNALS_CLASS,
        &crate::process::SIGPENDING_CLASS,
    ]);
}
