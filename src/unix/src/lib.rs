//! The Linux system-call layer's pure logic: everything about running an
//! unmodified x86-64 Linux program that can be decided without
//! touching hardware, so that the kernel's glue stays thin and this part is
//! tested on the host.
//!
//! # Pieces
//!
//! | module | owns |
//! |---|---|
//! | [`errno`] | [`Errno`], Linux error numbers and the `-errno` syscall return |
//! | [`syscalls`] | x86-64 syscall numbers, names, and the log-once bitmap for unsupported ones |
//! | [`prot`] | [`Prot`], the `PROT_*` bit set |
//! | [`elf`] | checking an ELF64 executable (static, static-pie, PIE or the dynamic loader) and turning it into a [`elf::LoadPlan`]; its `PT_INTERP`; the dynamic section's library names and search paths |
//! | [`stack`] | the initial user stack: argc, argv, envp, auxv, strings, AT_RANDOM bytes |
//! | [`pagemap`] | an address space's page records: one per mapped page, in 256 KiB leaves |
//! | [`vmap`] | an address space's map of virtual areas: placement, mmap/munmap/mprotect/mremap, merging, in-transition areas |
//! | [`fdtable`] | file descriptors: lowest-free allocation, dup/dup2/dup3, FD_CLOEXEC, RLIMIT_NOFILE |
//! | [`futex`] | futex wait queues: wait, wake, bitsets, requeue, cancellation |
//! | [`abi`] | byte-exact encoders and decoders for the structures syscalls read and write |
//! | [`path`] | path checks and a filesystem-independent walker (`.`/`..`, symlinks, trailing slashes) |
//! | [`signal`] | signal numbers, sets, the sigaction table, thread masks, fatal defaults |
//! | [`sigpending`] | queues of pending signals and the order they are delivered in |
//! | [`sigframe`] | handler frames on the user stack: siginfo, ucontext, placement, `rt_sigreturn` decoding |
//! | [`unixsock`] | AF_UNIX names (`sockaddr_un`, the name-table key) and a socket's receive queue: stream/datagram/seqpacket rules, shutdown, attached descriptors |
//! | [`reclock`] | advisory record, OFD and flock locks: ranges, owners, conflicts, the deadlock test |
//!
//! # Contexts and locks
//!
//! Everything here runs in kernel-lock context in the kernel (syscalls and
//! page faults of a thread; DESIGN.md §2) and takes **no lock of its own**:
//! the structures are plain data that the kernel wraps in its own locks
//! (the fd table, the address-space lock, the futex table). None of it
//! waits, performs I/O or touches user memory: operations that need the
//! kernel to do something (zap page-table entries, write back file pages,
//! wake threads, drop file references) *return* that work, so the caller
//! can do it after releasing whatever lock it holds (DESIGN.md §4 rules
//! 1-2). The lock order the kernel must follow around these structures is
//! fd table → filesystem → address space (§4 rule 4), and is documented in
//! [`vmap`].
//!
//! # Robustness
//!
//! Nothing that comes from user space or from disk can make this crate
//! panic: parsers are bounds-checked and return errors, arithmetic on
//! user-supplied values is checked. There is no `unsafe` code.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod abi;
pub mod elf;
pub mod errno;
pub mod fdtable;
pub mod futex;
pub mod pagemap;
pub mod path;
pub mod prot;
pub mod reclock;
pub mod sigframe;
pub mod signal;
pub mod sigpending;
pub mod stack;
pub mod syscalls;
pub mod unixsock;
pub mod vmap;

pub use errno::{Errno, SysResult};
pub use prot::Prot;

/// The lowest address a user mapping may start at (Linux's default
/// `vm.mmap_min_addr`), so that null-pointer dereferences always fault.
pub const USER_MIN: u64 = 0x1_0000;

/// One past the highest user address (Linux's x86-64 `TASK_SIZE` with
/// 4-level paging: the top page of the lower half is never mapped).
pub const USER_END: u64 = 0x7fff_ffff_f000;

/// The page size of x86-64 user mappings.
pub const PAGE_SIZE: u64 = 4096;

/// Rounds `v` up to a multiple of [`PAGE_SIZE`], `None` on overflow.
pub const fn page_round_up(v: u64) -> Option<u64> {
    match v.checked_add(PAGE_SIZE - 1) {
        Some(x) => Some(x & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// Rounds `v` down to a multiple of [`PAGE_SIZE`].
pub const fn page_round_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

/// True if `v` is a multiple of [`PAGE_SIZE`].
pub const fn page_aligned(v: u64) -> bool {
    v & (PAGE_SIZE - 1) == 0
}
