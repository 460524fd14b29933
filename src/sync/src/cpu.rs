//! The platform hooks every lock and heap consults: which CPU this is, whether
//! its interrupts are enabled, which [`Context`] it is running in, and its
//! stack of held locks for the validator.
//!
//! The kernel installs its implementation once at boot with [`install`],
//! before a second CPU starts. Until then, and on the host, a simulated CPU
//! per OS thread answers ([`host`]), so that the locks work unchanged in
//! unit tests and loom models.
//!
//! Callable from any context; takes no locks.

use core::panic::Location;
use core::sync::atomic::{AtomicPtr, AtomicU16, AtomicUsize, Ordering};

/// Where kernel code on a CPU is running, per DESIGN.md §2.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Context {
    /// Single-threaded start-up, before the run loops: everything allowed.
    Boot,
    /// An interrupt handler: only per-CPU data and `BhQueue::enqueue_irqsafe`.
    Irq,
    /// The run loop draining the bhqueue, kernel lock not held.
    Bh,
    /// Kernel lock held by this CPU: syscalls, runqueue work, kernel threads.
    KernelLock,
    /// The CPU is executing a user thread (seen by code that inspects
    /// another CPU's state; kernel code itself never runs in it).
    User,
    /// The run loop between phases: no lock held, not draining the bhqueue.
    RunLoop,
}

impl Context {
    /// Whether the general (kernel-lock only) heap may be used here.
    pub fn may_use_general_heap(self) -> bool {
        matches!(self, Context::Boot | Context::KernelLock)
    }

    /// Irq and bh contexts: the lock classes taken here must always be
    /// taken with interrupts off.
    pub fn is_irq_or_bh(self) -> bool {
        matches!(self, Context::Irq | Context::Bh)
    }
}

/// Maximum depth of the per-CPU held-lock stack.
pub const MAX_HELD_LOCKS: usize = 24;

/// The stack of locks one CPU holds, in acquisition order. Only its own CPU
/// touches it, always with interrupts off, so relaxed atomics suffice; they
/// are atomics only so that the type is `Sync` without `unsafe`.
pub struct HeldLocks {
    depth: AtomicUsize,
    /// Entries below `base` belong to code this CPU interrupted to run bh
    /// work at an interrupt's exit ([`HeldLocks::enter_nested`]): the nested
    /// code neither orders against them nor counts them as its own.
    base: AtomicUsize,
    classes: [AtomicU16; MAX_HELD_LOCKS],
    sites: [AtomicPtr<Location<'static>>; MAX_HELD_LOCKS],
}

impl HeldLocks {
    #[allow(clippy::declare_interior_mutable_const)]
    const NO_CLASS: AtomicU16 = AtomicU16::new(0);
    #[allow(clippy::declare_interior_mutable_const)]
    const NO_SITE: AtomicPtr<Location<'static>> = AtomicPtr::new(core::ptr::null_mut());

    pub const fn new() -> Self {
        HeldLocks {
            depth: AtomicUsize::new(0),
            base: AtomicUsize::new(0),
            classes: [Self::NO_CLASS; MAX_HELD_LOCKS],
            sites: [Self::NO_SITE; MAX_HELD_LOCKS],
        }
    }

    /// Number of locks held.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Index of the first entry that belongs to the running (possibly
    /// nested) code; entries below it belong to the code it interrupted.
    pub fn base(&self) -> usize {
        self.base.load(Ordering::Relaxed)
    }

    /// Starts a nested context on this CPU (bh work run at an interrupt's
    /// exit, on top of whatever the interrupt stopped): the locks held so far
    /// are the interrupted code's, not the nested code's. Returns the value
    /// to hand back to [`HeldLocks::leave_nested`]. Interrupts off.
    pub fn enter_nested(&self) -> usize {
        self.base.swap(self.depth(), Ordering::Relaxed)
    }

    /// Ends the nested context started by the matching `enter_nested`.
    /// Interrupts off; the nested code has released everything it took.
    pub fn leave_nested(&self, saved_base: usize) {
        debug_assert_eq!(
            self.depth(),
            self.base(),
            "nested context left holding locks"
        );
        self.base.store(saved_base, Ordering::Relaxed);
    }

    /// The `i`th held lock: (class index, acquisition site).
    pub fn get(&self, i: usize) -> Option<(u16, &'static Location<'static>)> {
        if i >= self.depth() {
            return None;
        }
        let class = self.classes[i].load(Ordering::Relaxed);
        let site = self.sites[i].load(Ordering::Relaxed);
        Some((class, site_ref(site)))
    }

    /// Pushes a lock; false if the stack is full.
    pub(crate) fn push(&self, class: u16, site: &'static Location<'static>) -> bool {
        let d = self.depth();
        if d == MAX_HELD_LOCKS {
            return false;
        }
        self.classes[d].store(class, Ordering::Relaxed);
        self.sites[d].store(site as *const _ as *mut _, Ordering::Relaxed);
        self.depth.store(d + 1, Ordering::Relaxed);
        true
    }

    /// Removes the most recent entry of `class` (guards may be released out
    /// of order); false if it is not held.
    pub(crate) fn remove(&self, class: u16) -> bool {
        let d = self.depth();
        let Some(i) = (0..d)
            .rev()
            .find(|&i| self.classes[i].load(Ordering::Relaxed) == class)
        else {
            return false;
        };
        for j in i..d - 1 {
            let c = self.classes[j + 1].load(Ordering::Relaxed);
            let s = self.sites[j + 1].load(Ordering::Relaxed);
            self.classes[j].store(c, Ordering::Relaxed);
            self.sites[j].store(s, Ordering::Relaxed);
        }
        self.depth.store(d - 1, Ordering::Relaxed);
        true
    }
}

impl Default for HeldLocks {
    fn default() -> Self {
        Self::new()
    }
}

/// Turns a site pointer stored by [`HeldLocks::push`] back into a reference.
fn site_ref(p: *mut Location<'static>) -> &'static Location<'static> {
    // SAFETY: `push` is the only writer of `sites` and stores only pointers
    // made from `&'static Location<'static>`; callers read slots below
    // `depth`, which `push` writes before it raises `depth`.
    unsafe { &*p }
}

/// What the kernel provides about the CPU that calls it.
pub trait Cpu: Sync {
    /// Dense index of this CPU, 0 for the bootstrap processor.
    fn id(&self) -> usize;
    /// Whether this CPU's interrupts are enabled.
    fn interrupts_enabled(&self) -> bool;
    /// Disables interrupts on this CPU.
    fn disable_interrupts(&self);
    /// Enables interrupts on this CPU.
    fn enable_interrupts(&self);
    /// The context this CPU is running in.
    fn context(&self) -> Context;
    /// This CPU's held-lock stack.
    fn held_locks(&self) -> &HeldLocks;
    /// Runs `f` with the sleeping locks held by the thread running on this
    /// CPU in kernel-lock context (they travel with the thread, not the
    /// CPU). Not called, or `f` not run, where there is no such thread.
    fn with_thread_held_locks(&self, _f: &mut dyn FnMut(&HeldLocks)) {}
    /// Enters (`true`) or leaves (`false`) a bh-safe allocation scope: while
    /// inside, the kernel's global allocator serves this CPU from the locked
    /// heap whatever the context. See [`bh_safe_alloc`].
    fn bh_safe_alloc_scope(&self, _enter: bool) {}
}

/// Runs `f` with allocations routed to the heap that any context may free
/// into (the kernel's `locked` heap). Build here everything whose last
/// reference may be dropped in bh or irq context: block requests and their
/// completions, pagecache I/O batches. (Freeing general-heap memory outside
/// the kernel lock is the bug class of seeds/003; the kernel's allocator
/// catches it, this scope avoids it.) Scopes nest.
pub fn bh_safe_alloc<R>(f: impl FnOnce() -> R) -> R {
    struct Leave(&'static dyn Cpu);
    impl Drop for Leave {
        fn drop(&mut self) {
            self.0.bh_safe_alloc_scope(false);
        }
    }
    let c = cpu();
    c.bh_safe_alloc_scope(true);
    let _leave = Leave(c);
    f()
}

static INSTALLED: AtomicPtr<&'static dyn Cpu> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the kernel's hooks. Call once, on the bootstrap CPU, before any
/// other CPU runs.
pub fn install(hooks: &'static &'static dyn Cpu) {
    INSTALLED.store(hooks as *const _ as *mut _, Ordering::Release);
}

/// The hooks of the calling CPU: the kernel's once installed, otherwise the
/// start-up default (kernel) or the simulated CPU of this thread (host).
pub fn cpu() -> &'static dyn Cpu {
    let p = INSTALLED.load(Ordering::Acquire);
    if p.is_null() {
        return fallback();
    }
    // SAFETY: `install` stores only pointers made from a
    // `&'static &'static dyn Cpu`, so `p` is valid for `'static`.
    unsafe { *p }
}

/// The context the calling CPU is running in.
pub fn context() -> Context {
    cpu().context()
}

#[cfg(target_os = "none")]
fn fallback() -> &'static dyn Cpu {
    static BOOT: BootCpu = BootCpu {
        held: HeldLocks::new(),
    };
    &BOOT
}

/// The bootstrap CPU before the kernel installs its hooks: one CPU,
/// interrupts still off from the boot entry, context [`Context::Boot`].
#[cfg(target_os = "none")]
struct BootCpu {
    held: HeldLocks,
}

#[cfg(target_os = "none")]
impl Cpu for BootCpu {
    fn id(&self) -> usize {
        0
    }
    fn interrupts_enabled(&self) -> bool {
        false
    }
    fn disable_interrupts(&self) {}
    fn enable_interrupts(&self) {}
    fn context(&self) -> Context {
        Context::Boot
    }
    fn held_locks(&self) -> &HeldLocks {
        &self.held
    }
}

#[cfg(not(target_os = "none"))]
fn fallback() -> &'static dyn Cpu {
    host::current()
}

/// A simulated CPU per host thread, so the locks and heaps run in host tests.
/// Interrupts are a per-thread flag (initially enabled), the context is
/// settable, so tests can put a thread "in bh context" and watch an
/// assertion fire.
#[cfg(not(target_os = "none"))]
pub mod host {
    use super::{Context, Cpu, HeldLocks};
    use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
    use std::boxed::Box;

    /// One simulated CPU, leaked per thread. Atomics rather than `Cell`s
    /// keep it `Sync` without `unsafe`; only its own thread uses it.
    struct SimCpu {
        id: usize,
        interrupts: AtomicBool,
        context: AtomicU8,
        held: HeldLocks,
    }

    const CONTEXTS: [Context; 6] = [
        Context::Boot,
        Context::Irq,
        Context::Bh,
        Context::KernelLock,
        Context::User,
        Context::RunLoop,
    ];

    impl Cpu for SimCpu {
        fn id(&self) -> usize {
            self.id
        }
        fn interrupts_enabled(&self) -> bool {
            self.interrupts.load(Ordering::Relaxed)
        }
        fn disable_interrupts(&self) {
            self.interrupts.store(false, Ordering::Relaxed)
        }
        fn enable_interrupts(&self) {
            self.interrupts.store(true, Ordering::Relaxed)
        }
        fn context(&self) -> Context {
            CONTEXTS[usize::from(self.context.load(Ordering::Relaxed))]
        }
        fn held_locks(&self) -> &HeldLocks {
            &self.held
        }
    }

    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

    // Loom runs its simulated threads as coroutines on one OS thread, so under
    // loom each of them needs its own simulated CPU from loom's thread-local.
    #[cfg(loom)]
    use loom::thread_local;
    #[cfg(not(loom))]
    use std::thread_local;

    thread_local! {
        static THIS: &'static SimCpu = Box::leak(Box::new(SimCpu {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            interrupts: AtomicBool::new(true),
            context: AtomicU8::new(0),
            held: HeldLocks::new(),
        }));
    }

    pub(super) fn current() -> &'static dyn Cpu {
        THIS.with(|c| *c as &'static dyn Cpu)
    }

    /// Puts this thread's simulated CPU in `context`.
    pub fn set_context(context: Context) {
        let i = CONTEXTS.iter().position(|&c| c == context).unwrap_or(0);
        THIS.with(|c| c.context.store(i as u8, Ordering::Relaxed));
    }
}
