//! The lock validator (debug builds): lock-order and irq-safety checks over
//! lock classes, in the spirit of Linux's lockdep.
//!
//! * **Order.** Whenever a lock of class `B` is about to be acquired while
//!   this CPU holds a lock of class `A`, the edge `A → B` is recorded with
//!   both acquisition sites. A new edge that closes a cycle (`B` already
//!   reaches `A`, directly or through other classes) is an inversion: the
//!   validator panics naming the classes and the call sites of both orders,
//!   before the acquisition can deadlock.
//! * **Recursion.** Acquiring a class this CPU already holds panics (it would
//!   spin forever on the same lock, or nest two locks of one class in an
//!   order nothing records).
//! * **Irq safety.** A class once acquired in irq or bh context must always
//!   be acquired with interrupts off; the first acquisition that breaks this,
//!   in either order of events, panics naming both sites.
//! * **Sleeping locks.** A sleeping mutex's holder migrates between CPUs, so
//!   the locks a thread sleeps holding live on a stack of the thread's own
//!   ([`before_sleep_acquire`] and friends). They are ordered against each
//!   other and before every spinlock the thread takes; taking one while the
//!   CPU holds any spinlock but the kernel lock panics.
//! * **Nesting.** Bh work run at an interrupt's exit starts a nested section
//!   of the CPU's stack ([`HeldLocks::enter_nested`]): it is validated on its
//!   own, never ordered against the locks of the code it interrupted (which,
//!   by the irq-safety rule, cannot be locks bh work takes).
//!
//! The checks run in builds with debug assertions and not under loom (whose
//! simulated threads share one OS thread's simulated CPU). The graph lives in
//! static tables (no allocation, so heaps may use validated locks); its
//! writer lock is an unvalidated leaf spinlock taken with interrupts off.
//!
//! Callable from any context.

use crate::class::LockClass;
use crate::cpu::{Context, HeldLocks, cpu};
use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU16, AtomicU64, AtomicUsize, Ordering};

/// Whether the validator runs in this build.
pub const ENABLED: bool = cfg!(all(debug_assertions, not(loom)));

/// Capacity of the class table (index 0 is "unregistered").
pub const MAX_CLASSES: usize = 256;
const WORDS: usize = MAX_CLASSES / 64;
/// Capacity of the edge-site table; edges past it are still checked, only
/// their sites are not remembered.
const MAX_EDGE_SITES: usize = 4096;

type Site = &'static Location<'static>;

static CLASSES: [AtomicPtr<LockClass>; MAX_CLASSES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CLASSES];
static CLASS_COUNT: AtomicUsize = AtomicUsize::new(1);
/// `EDGES[a]` bit `b`: a lock of class `b` was acquired while `a` was held.
static EDGES: [[AtomicU64; WORDS]; MAX_CLASSES] =
    [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_CLASSES];
static EDGE_FROM: [AtomicU16; MAX_EDGE_SITES] = [const { AtomicU16::new(0) }; MAX_EDGE_SITES];
static EDGE_TO: [AtomicU16; MAX_EDGE_SITES] = [const { AtomicU16::new(0) }; MAX_EDGE_SITES];
static EDGE_FROM_SITE: [AtomicPtr<Location<'static>>; MAX_EDGE_SITES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_EDGE_SITES];
static EDGE_TO_SITE: [AtomicPtr<Location<'static>>; MAX_EDGE_SITES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_EDGE_SITES];
static EDGE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// First site each class was acquired in irq/bh context.
static IRQ_SITE: [AtomicPtr<Location<'static>>; MAX_CLASSES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CLASSES];
/// First site each class was acquired with interrupts enabled.
static IRQS_ON_SITE: [AtomicPtr<Location<'static>>; MAX_CLASSES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CLASSES];

static GRAPH_LOCK: AtomicBool = AtomicBool::new(false);

/// The validator's own leaf lock: interrupts off, no validation.
struct GraphGuard {
    irqs_were_on: bool,
}

fn graph_lock() -> GraphGuard {
    let c = cpu();
    let irqs_were_on = c.interrupts_enabled();
    c.disable_interrupts();
    while GRAPH_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    GraphGuard { irqs_were_on }
}

impl Drop for GraphGuard {
    fn drop(&mut self) {
        GRAPH_LOCK.store(false, Ordering::Release);
        if self.irqs_were_on {
            cpu().enable_interrupts();
        }
    }
}

fn to_ptr(site: Site) -> *mut Location<'static> {
    site as *const Location<'static> as *mut Location<'static>
}

fn load_site(p: &AtomicPtr<Location<'static>>) -> Option<Site> {
    let p = p.load(Ordering::Acquire);
    // SAFETY: the tables above only ever store pointers made by `to_ptr` from
    // `&'static Location<'static>` references (or null).
    unsafe { p.as_ref() }
}

fn class_name(index: u16) -> &'static str {
    let p = CLASSES[usize::from(index)].load(Ordering::Acquire);
    // SAFETY: `register` stores only pointers made from `&'static LockClass`.
    match unsafe { p.as_ref() } {
        Some(c) => c.name(),
        None => "?",
    }
}

/// Registers `class`, returning its index. Panics when the table is full:
/// classes are static declarations, so that is a build-time mistake.
pub(crate) fn register(class: &'static LockClass) -> u16 {
    let _g = graph_lock();
    let slot = class.index_slot();
    let existing = slot.load(Ordering::Acquire);
    if existing != 0 {
        return existing;
    }
    let i = CLASS_COUNT.fetch_add(1, Ordering::Relaxed);
    assert!(
        i < MAX_CLASSES,
        "lockdep: more than {} lock classes",
        MAX_CLASSES - 1
    );
    CLASSES[i].store(
        class as *const LockClass as *mut LockClass,
        Ordering::Release,
    );
    let i = i as u16;
    slot.store(i, Ordering::Release);
    i
}

fn has_edge(from: u16, to: u16) -> bool {
    let (w, b) = (usize::from(to) / 64, usize::from(to) % 64);
    EDGES[usize::from(from)][w].load(Ordering::Acquire) & (1 << b) != 0
}

/// Path `from → … → to` through recorded edges, written into `path`
/// (excluding `from`); returns its length, or `None` if `to` is unreachable.
fn find_path(from: u16, to: u16, path: &mut [u16; MAX_CLASSES]) -> Option<usize> {
    let mut parent = [u16::MAX; MAX_CLASSES];
    let mut queue = [0u16; MAX_CLASSES];
    let (mut head, mut tail) = (0, 1);
    queue[0] = from;
    parent[usize::from(from)] = from;
    while head < tail {
        let n = queue[head];
        head += 1;
        if n == to {
            let mut len = 0;
            let mut c = to;
            while c != from {
                path[len] = c;
                len += 1;
                c = parent[usize::from(c)];
            }
            path[..len].reverse();
            return Some(len);
        }
        for (w, word) in EDGES[usize::from(n)].iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let m = w * 64 + b;
                if parent[m] == u16::MAX {
                    parent[m] = n;
                    queue[tail] = m as u16;
                    tail += 1;
                }
            }
        }
    }
    None
}

fn edge_sites(from: u16, to: u16) -> (Option<Site>, Option<Site>) {
    let n = EDGE_COUNT.load(Ordering::Acquire).min(MAX_EDGE_SITES);
    (0..n)
        .find(|&i| {
            EDGE_FROM[i].load(Ordering::Relaxed) == from && EDGE_TO[i].load(Ordering::Relaxed) == to
        })
        .map(|i| (load_site(&EDGE_FROM_SITE[i]), load_site(&EDGE_TO_SITE[i])))
        .unwrap_or((None, None))
}

struct ShowSite(Option<Site>);

impl core::fmt::Display for ShowSite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{}:{}:{}", s.file(), s.line(), s.column()),
            None => f.write_str("<site not recorded>"),
        }
    }
}

/// Records `held → acquiring`; panics if the edge closes a cycle.
fn add_edge(held: u16, held_site: Site, acquiring: u16, site: Site) {
    if has_edge(held, acquiring) {
        return;
    }
    let g = graph_lock();
    if has_edge(held, acquiring) {
        return;
    }
    let mut path = [0u16; MAX_CLASSES];
    if let Some(len) = find_path(acquiring, held, &mut path) {
        drop(g);
        // The opposite order: `acquiring` (first hop) was held when the next
        // class on the path was taken. Name the sites of that first edge.
        let first = path[0];
        let (a_site, b_site) = edge_sites(acquiring, first);
        panic!(
            "lock order inversion: acquiring `{}` at {} while holding `{}` (acquired at {}); \
             the opposite order was recorded earlier: `{}` held (acquired at {}) when `{}` was \
             acquired at {}{}",
            class_name(acquiring),
            ShowSite(Some(site)),
            class_name(held),
            ShowSite(Some(held_site)),
            class_name(acquiring),
            ShowSite(a_site),
            class_name(first),
            ShowSite(b_site),
            if len > 1 {
                " (the cycle runs through more classes)"
            } else {
                ""
            },
        );
    }
    let (w, b) = (usize::from(acquiring) / 64, usize::from(acquiring) % 64);
    EDGES[usize::from(held)][w].fetch_or(1 << b, Ordering::AcqRel);
    let i = EDGE_COUNT.fetch_add(1, Ordering::AcqRel);
    if i < MAX_EDGE_SITES {
        EDGE_FROM[i].store(held, Ordering::Relaxed);
        EDGE_TO[i].store(acquiring, Ordering::Relaxed);
        EDGE_FROM_SITE[i].store(to_ptr(held_site), Ordering::Release);
        EDGE_TO_SITE[i].store(to_ptr(site), Ordering::Release);
    }
}

/// Records the first site into `slot`.
fn first_site(slot: &AtomicPtr<Location<'static>>, site: Site) {
    let _ = slot.compare_exchange(
        core::ptr::null_mut(),
        to_ptr(site),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

/// Called before a blocking acquisition of `class` at `site`.
/// `irqs_on` says whether interrupts will be enabled while it is held.
pub(crate) fn before_acquire(class: &'static LockClass, site: Site, irqs_on: bool) {
    if !ENABLED {
        return;
    }
    let idx = class.index();
    let c = cpu();
    let ctx = c.context();
    check_irq_safety(idx, ctx, site, irqs_on);
    let held = c.held_locks();
    order_after(held, class, idx, site, "this CPU");
    if held.base() == 0 && ctx == Context::KernelLock {
        c.with_thread_held_locks(&mut |sleeping| {
            order_after(sleeping, class, idx, site, "this thread")
        });
    }
}

/// Records `h → idx` for every lock `h` of `held` that belongs to the running
/// code; panics on recursion.
fn order_after(held: &HeldLocks, class: &'static LockClass, idx: u16, site: Site, who: &str) {
    for i in held.base()..held.depth() {
        let Some((h, h_site)) = held.get(i) else {
            break;
        };
        if h == idx {
            panic!(
                "recursive lock acquisition: `{}` acquired at {} is already held by {who} \
                 (acquired at {})",
                class.name(),
                ShowSite(Some(site)),
                ShowSite(Some(h_site)),
            );
        }
        add_edge(h, h_site, idx, site);
    }
}

/// Records the documented order of `classes`, outermost first, as if each
/// had been seen held while the next was taken (at the caller's site). An
/// acquisition against it then panics the first time it happens, not only
/// once both orders have been seen. Call at boot, before the classes are
/// used (the kernel declares the order of docs/ARCHITECTURE.md).
#[track_caller]
pub fn declare_order(classes: &[&'static LockClass]) {
    if !ENABLED {
        return;
    }
    let site = Location::caller();
    for pair in classes.windows(2) {
        add_edge(pair[0].index(), site, pair[1].index(), site);
    }
}

/// Called before a thread takes the sleeping lock `class` at `site`.
/// `thread_held` is the stack of sleeping locks the thread holds (they move
/// with it from CPU to CPU, so they are not on any CPU's stack). A sleeping
/// lock may only be taken with no spinlock held besides the kernel lock
/// (its holder may sleep, and a spinlock holder must not); against the
/// thread's other sleeping locks it is ordered like any lock.
pub fn before_sleep_acquire(class: &'static LockClass, site: Site, thread_held: &HeldLocks) {
    if !ENABLED {
        return;
    }
    let idx = class.index();
    let held = cpu().held_locks();
    let kernel = crate::kernel_lock::KERNEL_LOCK_CLASS.index();
    for i in held.base()..held.depth() {
        if let Some((h, h_site)) = held.get(i)
            && h != kernel
        {
            panic!(
                "sleeping lock `{}` acquired at {} while this CPU holds spinlock `{}` (acquired \
                 at {}): a thread holding a spinlock must never sleep",
                class.name(),
                ShowSite(Some(site)),
                class_name(h),
                ShowSite(Some(h_site)),
            );
        }
    }
    order_after(thread_held, class, idx, site, "this thread");
}

/// Called once the thread holds the sleeping lock `class`.
pub fn sleep_acquired(class: &'static LockClass, site: Site, thread_held: &HeldLocks) {
    if !ENABLED {
        return;
    }
    let idx = class.index();
    if !with_irqs_off(|| thread_held.push(idx, site)) {
        panic!(
            "lockdep: more than {} sleeping locks held by one thread (acquiring `{}` at {})",
            crate::cpu::MAX_HELD_LOCKS,
            class.name(),
            ShowSite(Some(site))
        );
    }
}

/// Called when the thread releases the sleeping lock `class`.
pub fn sleep_released(class: &'static LockClass, thread_held: &HeldLocks) {
    if !ENABLED {
        return;
    }
    let idx = class.index();
    if !with_irqs_off(|| thread_held.remove(idx)) {
        panic!(
            "lockdep: releasing sleeping lock `{}`, which this thread does not hold",
            class.name()
        );
    }
}

fn check_irq_safety(idx: u16, ctx: Context, site: Site, irqs_on: bool) {
    let i = usize::from(idx);
    if ctx.is_irq_or_bh() {
        first_site(&IRQ_SITE[i], site);
        if let Some(on) = load_site(&IRQS_ON_SITE[i]) {
            panic!(
                "irq-unsafe lock: `{}` acquired in {:?} context at {} but acquired with \
                 interrupts enabled at {}",
                class_name(idx),
                ctx,
                ShowSite(Some(site)),
                ShowSite(Some(on)),
            );
        }
    }
    if irqs_on {
        first_site(&IRQS_ON_SITE[i], site);
        if let Some(irq) = load_site(&IRQ_SITE[i]) {
            panic!(
                "irq-unsafe lock: `{}` acquired with interrupts enabled at {} but acquired in \
                 irq/bh context at {}",
                class_name(idx),
                ShowSite(Some(site)),
                ShowSite(Some(irq)),
            );
        }
    }
}

/// Called once `class` is held (after a blocking or a successful try
/// acquisition).
pub(crate) fn acquired(class: &'static LockClass, site: Site) {
    if !ENABLED {
        return;
    }
    let idx = class.index();
    with_irqs_off(|| {
        if !cpu().held_locks().push(idx, site) {
            panic!(
                "lockdep: more than {} locks held on one CPU (acquiring `{}` at {})",
                crate::cpu::MAX_HELD_LOCKS,
                class.name(),
                ShowSite(Some(site))
            );
        }
    });
}

/// Called when `class` is released.
pub(crate) fn released(class: &'static LockClass) {
    if !ENABLED {
        return;
    }
    let idx = class.index();
    let removed = with_irqs_off(|| cpu().held_locks().remove(idx));
    if !removed {
        panic!(
            "lockdep: releasing `{}`, which this CPU does not hold",
            class.name()
        );
    }
}

/// Whether this CPU holds a lock of `class` (false when the validator is off).
pub fn holds(class: &'static LockClass) -> bool {
    if !ENABLED {
        return false;
    }
    let idx = class.index();
    let held = cpu().held_locks();
    (held.base()..held.depth()).any(|i| held.get(i).is_some_and(|(h, _)| h == idx))
}

/// Number of locks this CPU holds (0 when the validator is off). Threads
/// assert it before blocking: nothing but the kernel lock may be held then.
pub fn held_count() -> usize {
    if !ENABLED {
        return 0;
    }
    cpu().held_locks().depth()
}

fn with_irqs_off<R>(f: impl FnOnce() -> R) -> R {
    let c = cpu();
    let on = c.interrupts_enabled();
    c.disable_interrupts();
    let r = f();
    if on {
        c.enable_interrupts();
    }
    r
}
