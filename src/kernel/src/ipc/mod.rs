//! Kernel objects behind descriptors that are not files on a disk:
//! pipes, eventfds, timerfds, epoll instances and AF_UNIX sockets, all
//! [`crate::process::file::FileOps`] objects whose readiness is announced
//! through `crate::sched::wait`.
//!
//! | module | owns |
//! |---|---|
//! | [`pipe`] | the pipe buffer, its ends, atomic writes, EOF and EPIPE |
//! | [`eventfd`] | the eventfd counter (plain and semaphore) |
//! | [`timerfd`] | timerfd deadlines, intervals and expiration counts |
//! | [`unix`] | AF_UNIX sockets: states, backlogs, the name table, descriptor passing |
//! | [`epoll`] | interest lists, level/edge/one-shot reporting |
//!
//! Contexts: kernel-lock, in the calling thread (timerfd announcements:
//! bh). Each object's lock is a leaf; see each module.

pub mod epoll;
pub mod eventfd;
pub mod pipe;
pub mod timerfd;
pub mod unix;
