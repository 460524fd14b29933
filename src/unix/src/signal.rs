//! Minimal signal bookkeeping: signal numbers and sets, the per-process
//! sigaction table (rt_sigaction), per-thread masks (rt_sigprocmask), the
//! alternate stack (sigaltstack), default actions, and the decision of what
//! a signal does — in particular which signals end the program with exit
//! status 128 + N.
//!
//! Contexts: kernel-lock (syscalls, fault handling, timer expiry run from
//! the runqueue). Locks: none; the kernel keeps the table with the process
//! and the mask with the thread, under the kernel lock.
//!
//! Not here: delivering to a handler (signal frames, `rt_sigreturn`),
//! pending queues and siginfo. The minimum cairn needs is that fatal
//! signals end the program; [`deliver`] tells the kernel when a handler
//! would run so it can report that as unsupported.

use crate::Errno;

/// Number of signals (1..=64).
pub const NSIG: u32 = 64;
/// Hangup.
pub const SIGHUP: u32 = 1;
/// Interrupt.
pub const SIGINT: u32 = 2;
/// Quit.
pub const SIGQUIT: u32 = 3;
/// Illegal instruction.
pub const SIGILL: u32 = 4;
/// Trace trap.
pub const SIGTRAP: u32 = 5;
/// Abort.
pub const SIGABRT: u32 = 6;
/// Bus error.
pub const SIGBUS: u32 = 7;
/// Floating-point exception.
pub const SIGFPE: u32 = 8;
/// Kill (cannot be caught or blocked).
pub const SIGKILL: u32 = 9;
/// User signal 1.
pub const SIGUSR1: u32 = 10;
/// Segmentation fault.
pub const SIGSEGV: u32 = 11;
/// User signal 2.
pub const SIGUSR2: u32 = 12;
/// Broken pipe.
pub const SIGPIPE: u32 = 13;
/// Alarm clock.
pub const SIGALRM: u32 = 14;
/// Termination.
pub const SIGTERM: u32 = 15;
/// Stack fault.
pub const SIGSTKFLT: u32 = 16;
/// Child status changed.
pub const SIGCHLD: u32 = 17;
/// Continue.
pub const SIGCONT: u32 = 18;
/// Stop (cannot be caught or blocked).
pub const SIGSTOP: u32 = 19;
/// Terminal stop.
pub const SIGTSTP: u32 = 20;
/// Background read from tty.
pub const SIGTTIN: u32 = 21;
/// Background write to tty.
pub const SIGTTOU: u32 = 22;
/// Urgent socket condition.
pub const SIGURG: u32 = 23;
/// CPU time limit.
pub const SIGXCPU: u32 = 24;
/// File size limit.
pub const SIGXFSZ: u32 = 25;
/// Virtual alarm.
pub const SIGVTALRM: u32 = 26;
/// Profiling alarm.
pub const SIGPROF: u32 = 27;
/// Window size change.
pub const SIGWINCH: u32 = 28;
/// I/O possible.
pub const SIGIO: u32 = 29;
/// Power failure.
pub const SIGPWR: u32 = 30;
/// Bad syscall.
pub const SIGSYS: u32 = 31;
/// First real-time signal.
pub const SIGRTMIN: u32 = 32;

/// `SIG_DFL` handler value.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN` handler value.
pub const SIG_IGN: u64 = 1;

/// `SA_NOCLDSTOP`
pub const SA_NOCLDSTOP: u64 = 0x1;
/// `SA_NOCLDWAIT`
pub const SA_NOCLDWAIT: u64 = 0x2;
/// `SA_SIGINFO`
pub const SA_SIGINFO: u64 = 0x4;
/// `SA_RESTORER`
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `SA_ONSTACK`
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `SA_RESTART`
pub const SA_RESTART: u64 = 0x1000_0000;
/// `SA_NODEFER`
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `SA_RESETHAND`
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `SIG_BLOCK`
pub const SIG_BLOCK: i32 = 0;
/// `SIG_UNBLOCK`
pub const SIG_UNBLOCK: i32 = 1;
/// `SIG_SETMASK`
pub const SIG_SETMASK: i32 = 2;

/// `SS_ONSTACK`
pub const SS_ONSTACK: i32 = 1;
/// `SS_DISABLE`
pub const SS_DISABLE: i32 = 2;
/// `SS_AUTODISARM`
pub const SS_AUTODISARM: i32 = 1 << 31;
/// Smallest alternate stack accepted.
pub const MINSIGSTKSZ: u64 = 2048;

/// The size user space passes as `sigsetsize`.
pub const SIGSET_SIZE: u64 = 8;

/// `EINVAL` unless `sig` is in 1..=64.
pub fn check(sig: u32) -> Result<(), Errno> {
    if (1..=NSIG).contains(&sig) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// A set of signals (bit `n - 1` for signal `n`), as in `sigset_t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SigSet(u64);

impl SigSet {
    /// No signal.
    pub const EMPTY: SigSet = SigSet(0);
    /// The signals that can never be blocked or caught.
    pub const UNBLOCKABLE: SigSet = SigSet((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));

    /// From raw bits.
    pub const fn from_bits(b: u64) -> Self {
        SigSet(b)
    }

    /// Raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// True if `sig` (1..=64) is in the set; false for invalid numbers.
    pub fn contains(self, sig: u32) -> bool {
        check(sig).is_ok() && self.0 & (1 << (sig - 1)) != 0
    }

    /// The set with `sig` added (invalid numbers are ignored).
    pub fn with(self, sig: u32) -> Self {
        if check(sig).is_ok() {
            SigSet(self.0 | (1 << (sig - 1)))
        } else {
            self
        }
    }

    /// The set without the members of `other`.
    pub fn without(self, other: SigSet) -> Self {
        SigSet(self.0 & !other.0)
    }

    /// The union.
    pub fn union(self, other: SigSet) -> Self {
        SigSet(self.0 | other.0)
    }
}

/// One signal's action (fields as in the kernel's `struct sigaction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    /// `SIG_DFL`, `SIG_IGN` or a handler address.
    pub handler: u64,
    /// `SA_*` flags, kept as given.
    pub flags: u64,
    /// `sa_restorer` (used with `SA_RESTORER`).
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: SigSet,
}

/// What a signal does by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process.
    Terminate,
    /// End the process with a core dump (cairn just ends it).
    CoreDump,
    /// Nothing.
    Ignore,
    /// Stop the process.
    Stop,
    /// Continue a stopped process.
    Continue,
}

/// The default action of `sig` (real-time signals terminate).
pub fn default_action(sig: u32) -> DefaultAction {
    match sig {
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => DefaultAction::CoreDump,
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGCONT => DefaultAction::Continue,
        _ => DefaultAction::Terminate,
    }
}

/// True if `sig`'s default action ends the program.
pub fn fatal_by_default(sig: u32) -> bool {
    matches!(
        default_action(sig),
        DefaultAction::Terminate | DefaultAction::CoreDump
    )
}

/// The exit status of a program ended by `sig`, as a shell reports it
/// (and as cairn passes to QEMU): 128 + N.
pub fn exit_status(sig: u32) -> i32 {
    128 + (sig.min(NSIG) as i32)
}

/// The per-process sigaction table.
#[derive(Clone, Debug)]
pub struct SigActions {
    table: [SigAction; NSIG as usize],
}

impl Default for SigActions {
    fn default() -> Self {
        Self::new()
    }
}

impl SigActions {
    /// Every signal at `SIG_DFL`.
    pub fn new() -> Self {
        SigActions {
            table: [SigAction::default(); NSIG as usize],
        }
    }

    fn slot(&self, sig: u32) -> Result<usize, Errno> {
        check(sig)?;
        Ok((sig - 1) as usize)
    }

    /// The action of `sig`.
    pub fn get(&self, sig: u32) -> Result<SigAction, Errno> {
        let i = self.slot(sig)?;
        Ok(self.table.get(i).copied().unwrap_or_default())
    }

    /// rt_sigaction: returns the old action and installs `new` if given.
    /// `EINVAL` for a bad signal number, `sigsetsize != 8`, or a new
    /// action for SIGKILL/SIGSTOP. The mask never holds SIGKILL/SIGSTOP.
    pub fn rt_sigaction(
        &mut self,
        sig: u32,
        new: Option<SigAction>,
        sigsetsize: u64,
    ) -> Result<SigAction, Errno> {
        if sigsetsize != SIGSET_SIZE {
            return Err(Errno::EINVAL);
        }
        let i = self.slot(sig)?;
        let old = self.get(sig)?;
        if let Some(mut a) = new {
            if sig == SIGKILL || sig == SIGSTOP {
                return Err(Errno::EINVAL);
            }
            a.mask = a.mask.without(SigSet::UNBLOCKABLE);
            if let Some(s) = self.table.get_mut(i) {
                *s = a;
            }
        }
        Ok(old)
    }

    /// At exec: handlers go back to `SIG_DFL`; ignored signals stay ignored.
    pub fn reset_for_exec(&mut self) {
        for a in &mut self.table {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
    }
}

/// A thread's blocked-signal mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadMask(SigSet);

impl From<SigSet> for ThreadMask {
    fn from(set: SigSet) -> Self {
        ThreadMask(set.without(SigSet::UNBLOCKABLE))
    }
}

impl ThreadMask {
    /// The blocked set.
    pub fn blocked(&self) -> SigSet {
        self.0
    }

    /// rt_sigprocmask: returns the old mask and applies `how` with `set`
    /// if given. `EINVAL` for `sigsetsize != 8` or an unknown `how` (only
    /// checked when `set` is given, as Linux does). SIGKILL and SIGSTOP
    /// are never blocked.
    pub fn rt_sigprocmask(
        &mut self,
        how: i32,
        set: Option<SigSet>,
        sigsetsize: u64,
    ) -> Result<SigSet, Errno> {
        if sigsetsize != SIGSET_SIZE {
            return Err(Errno::EINVAL);
        }
        let old = self.0;
        if let Some(s) = set {
            let new = match how {
                SIG_BLOCK => old.union(s),
                SIG_UNBLOCK => old.without(s),
                SIG_SETMASK => s,
                _ => return Err(Errno::EINVAL),
            };
            self.0 = new.without(SigSet::UNBLOCKABLE);
        }
        Ok(old)
    }
}

/// How a signal is raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A synchronous fault of the thread (SIGSEGV, SIGBUS, SIGILL, SIGFPE
    /// from an exception): blocking or ignoring it does not help, Linux
    /// forces the default action.
    Fault,
    /// Sent (kill, tgkill, alarm expiry, abort's raise).
    Sent,
}

/// What happens when a signal arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing (ignored).
    Ignore,
    /// Blocked: stays pending until unblocked (cairn keeps no queue: the
    /// kernel may record one pending bit).
    Blocked,
    /// The program ends with this exit status (128 + N); the kernel prints
    /// its one-line report.
    Terminate(i32),
    /// Stop or continue (no job control in cairn: treat as ignored).
    StopOrContinue,
    /// A handler would run with this action.
    Handler(SigAction),
}

/// Decides what `sig` does given the process's actions and the thread's
/// mask. `EINVAL` for a bad signal number.
pub fn deliver(
    actions: &SigActions,
    mask: &ThreadMask,
    sig: u32,
    origin: Origin,
) -> Result<Delivery, Errno> {
    let a = actions.get(sig)?;
    if sig == SIGKILL {
        return Ok(Delivery::Terminate(exit_status(sig)));
    }
    let blocked = mask.blocked().contains(sig);
    if origin == Origin::Fault && (blocked || a.handler == SIG_IGN) {
        return Ok(Delivery::Terminate(exit_status(sig)));
    }
    if blocked {
        return Ok(Delivery::Blocked);
    }
    Ok(match a.handler {
        SIG_IGN => Delivery::Ignore,
        SIG_DFL => match default_action(sig) {
            DefaultAction::Terminate | DefaultAction::CoreDump => {
                Delivery::Terminate(exit_status(sig))
            }
            DefaultAction::Ignore => Delivery::Ignore,
            DefaultAction::Stop | DefaultAction::Continue => Delivery::StopOrContinue,
        },
        _ => Delivery::Handler(a),
    })
}

/// A thread's alternate signal stack (sigaltstack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltStack {
    /// Base.
    pub sp: u64,
    /// Size.
    pub size: u64,
    /// `SS_DISABLE` when none, plus `SS_AUTODISARM` if set.
    pub flags: i32,
}

impl Default for AltStack {
    fn default() -> Self {
        AltStack {
            sp: 0,
            size: 0,
            flags: SS_DISABLE,
        }
    }
}

impl AltStack {
    /// sigaltstack: returns the old stack (with `SS_ONSTACK` if `on_stack`)
    /// and installs `new` if given. `EPERM` while running on the
    /// alternate stack, `EINVAL` for unknown flags, `ENOMEM` below
    /// [`MINSIGSTKSZ`].
    pub fn sigaltstack(
        &mut self,
        new: Option<AltStack>,
        on_stack: bool,
    ) -> Result<AltStack, Errno> {
        let mut old = *self;
        if on_stack {
            old.flags |= SS_ONSTACK;
        }
        if let Some(n) = new {
            if on_stack {
                return Err(Errno::EPERM);
            }
            let mode = n.flags & !SS_AUTODISARM;
            if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
                return Err(Errno::EINVAL);
            }
            *self = if mode == SS_DISABLE {
                AltStack::default()
            } else {
                if n.size < MINSIGSTKSZ {
                    return Err(Errno::ENOMEM);
                }
                AltStack {
                    sp: n.sp,
                    size: n.size,
                    flags: n.flags & SS_AUTODISARM,
                }
            };
        }
        Ok(old)
    }
}
