//! Pending signals: the queue a thread (or the process) keeps of signals
//! sent but not yet delivered, and the choice of which one goes next.
//!
//! Standard signals (1..=31) are not queued twice: a second one while the
//! first is pending is merged into it. Real-time signals (32..=64) queue
//! each instance with its own `siginfo`, up to [`RT_QUEUE_MAX`] per queue
//! (more are refused with `EAGAIN`, as `sigqueue` reports past
//! RLIMIT_SIGPENDING). Delivery order is Linux's: synchronous fault signals
//! first (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS), then the lowest
//! number; instances of one real-time signal in the order they came.
//!
//! Contexts: any (pure); the kernel keeps one per thread and one for the
//! process, under its locks. Locks: none.

use crate::Errno;
use crate::sigframe::SigInfo;
use crate::signal::{SIGBUS, SIGFPE, SIGILL, SIGRTMIN, SIGSEGV, SIGSYS, SIGTRAP, SigSet, check};
use alloc::collections::VecDeque;

/// Queued real-time signal instances per queue, at most.
pub const RT_QUEUE_MAX: usize = 1024;

/// Signals a thread raises by faulting: they go before any other.
pub const SYNCHRONOUS: SigSet = SigSet::from_bits(
    (1 << (SIGSEGV - 1))
        | (1 << (SIGBUS - 1))
        | (1 << (SIGILL - 1))
        | (1 << (SIGTRAP - 1))
        | (1 << (SIGFPE - 1))
        | (1 << (SIGSYS - 1)),
);

/// A queue of pending signals.
#[derive(Clone, Debug, Default)]
pub struct PendingSignals {
    set: SigSet,
    infos: VecDeque<SigInfo>,
}

impl PendingSignals {
    /// An empty queue.
    pub const fn new() -> Self {
        PendingSignals {
            set: SigSet::EMPTY,
            infos: VecDeque::new(),
        }
    }

    /// The signals pending.
    pub fn set(&self) -> SigSet {
        self.set
    }

    /// Queues `info`. A standard signal already pending is merged (`Ok`,
    /// nothing added); a real-time one past [`RT_QUEUE_MAX`] is `EAGAIN`.
    pub fn push(&mut self, info: SigInfo) -> Result<(), Errno> {
        check(info.signo)?;
        if info.signo < SIGRTMIN {
            if self.set.contains(info.signo) {
                return Ok(());
            }
        } else if self.infos.len() >= RT_QUEUE_MAX {
            return Err(Errno::EAGAIN);
        }
        self.set = self.set.with(info.signo);
        self.infos.push_back(info);
        Ok(())
    }

    /// The number of the signal [`PendingSignals::take`] would take among
    /// those not in `blocked`.
    pub fn next(&self, blocked: SigSet) -> Option<u32> {
        let ready = self.set.without(blocked);
        let sync = SigSet::from_bits(ready.bits() & SYNCHRONOUS.bits());
        let pick = if sync.bits() != 0 { sync } else { ready };
        (pick.bits() != 0).then(|| pick.bits().trailing_zeros() + 1)
    }

    /// Takes the next signal not in `blocked` (see the module docs).
    pub fn take(&mut self, blocked: SigSet) -> Option<SigInfo> {
        let sig = self.next(blocked)?;
        self.take_signal(sig)
    }

    /// Takes the oldest instance of `sig`, if pending.
    pub fn take_signal(&mut self, sig: u32) -> Option<SigInfo> {
        let i = self.infos.iter().position(|i| i.signo == sig)?;
        let info = self.infos.remove(i)?;
        if !self.infos.iter().any(|i| i.signo == sig) {
            self.set = self.set.without(SigSet::from_bits(0).with(sig));
        }
        Some(info)
    }

    /// Drops every pending instance of the signals in `set` (a disposition
    /// set to ignore discards what is pending).
    pub fn discard(&mut self, set: SigSet) {
        self.infos.retain(|i| !set.contains(i.signo));
        self.set = self.set.without(set);
    }
}
