//! Per-CPU data, reached through the GS base of each CPU.
//!
//! Every CPU owns one [`PerCpu`] in a static array, indexed by its dense CPU
//! index (0 = bootstrap). GS base points at it; its first word points at
//! itself so that one `mov rax, gs:[0]` finds it from any context. Fields
//! are atomics written only by their own CPU (other CPUs may read them:
//! idle flags, counters) or, for the descriptor tables, written once by
//! their own CPU before it loads them.
//!
//! Any context; no locks.

use cairn_pc::acpi::MAX_CPUS;
use cairn_pc::cpu::{msr, wrmsr};
use cairn_pc::gdt::{Gdt, Tss};
use cairn_sync::cpu::HeldLocks;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Size of each interrupt stack (double fault, NMI, machine check).
pub const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
pub struct IstStack(pub [u8; IST_STACK_SIZE]);

/// One CPU's data.
#[repr(C)]
pub struct PerCpu {
    /// Address of this struct (read through `gs:[0]`).
    self_ptr: AtomicPtr<PerCpu>,
    /// The user stack pointer, saved by the syscall entry stub (at a fixed
    /// offset the stub uses).
    pub syscall_user_rsp: AtomicU64,
    /// Top of the running thread's kernel stack: where the syscall stub
    /// (and, through the TSS, an interrupt from user mode) starts.
    pub kernel_stack_top: AtomicU64,
    /// Dense index, 0 for the bootstrap CPU.
    pub index: AtomicUsize,
    /// Local APIC id.
    pub apic_id: AtomicU32,
    /// Set once the CPU runs its run loop.
    pub online: AtomicBool,
    /// Interrupt nesting depth (> 0: irq context).
    pub irq_depth: AtomicU32,
    /// Set while the run loop drains the bhqueue.
    pub in_bh: AtomicBool,
    /// Set while the CPU runs the boot sequence (before its run loop).
    pub booting: AtomicBool,
    /// Set while the CPU is halted (or about to) in its idle loop.
    pub idle: AtomicBool,
    /// Set while the run loop waits (halting) for its kernel-lock ticket:
    /// releasers wake such CPUs.
    pub awaiting_kernel_lock: AtomicBool,
    /// The thread running here should give the CPU up at its next return
    /// to user mode (set in irq context by the slice tick and by wake-up
    /// preemption: `sched::preempt`).
    pub need_resched: AtomicBool,
    /// When the thread running here was resumed (ns), 0 in the run loop.
    pub slice_start_ns: AtomicU64,
    /// When that thread's time slice ends (ns), 0 for none: one of the two
    /// deadlines this CPU's local APIC timer is armed for.
    pub slice_deadline_ns: AtomicU64,
    /// The kernel timers' deadline this CPU armed its local timer for (ns),
    /// 0 for none: the other deadline (`timer`).
    pub timer_deadline_ns: AtomicU64,
    /// When the sampling profiler takes this CPU's next sample (ns), 0 for
    /// none: the third deadline (`profile`), only with `profile=` on.
    pub sample_deadline_ns: AtomicU64,
    /// Nesting depth of `bh_safe_alloc` scopes.
    pub bh_safe_alloc_depth: AtomicU32,
    /// While non-zero, a fault on a user address during a kernel copy is
    /// not paged in: the copy fails at once (reads under a lock).
    pub pagefault_disabled: AtomicU32,
    /// Locks this CPU holds, for the validator.
    pub held_locks: HeldLocks,
    /// Interrupts taken, by kind.
    pub irq_count: AtomicU64,
    pub ipi_wakeups: AtomicU64,
    pub tlb_shootdowns: AtomicU64,
    pub bh_items: AtomicU64,
    /// Bh items run at interrupt exits (part of `bh_items`).
    pub bh_exit_items: AtomicU64,
    /// User threads preempted here (slice ends and wake-up preemption).
    pub preemptions: AtomicU64,
    /// The thread this CPU runs (an `Arc<Thread>` leaked into a raw
    /// pointer by the scheduler), or null in the run loop.
    pub current_thread: AtomicPtr<()>,
    /// Saved stack pointer of the run loop while a thread runs.
    pub scheduler_rsp: AtomicU64,
    /// Last fault fixed up on this CPU: vector, error code, address.
    pub last_fault_vector: AtomicU64,
    pub last_fault_error: AtomicU64,
    pub last_fault_address: AtomicU64,
    gdt: UnsafeCell<Gdt>,
    tss: UnsafeCell<Tss>,
}

/// The interrupt stacks of every CPU, kept apart from [`PerCpu`] so that
/// they stay in `.bss` (zero) instead of the image's data.
struct IstStacks([UnsafeCell<[IstStack; 3]>; MAX_CPUS]);

// SAFETY: CPU `i` only ever touches entry `i` (its TSS points there).
unsafe impl Sync for IstStacks {}

static IST_STACKS: IstStacks =
    IstStacks([const { UnsafeCell::new([const { IstStack([0; IST_STACK_SIZE]) }; 3]) }; MAX_CPUS]);

// SAFETY: all shared fields are atomics; `gdt` and `tss` are written
// only by their own CPU in `load_descriptors`, once, before the CPU loads
// them, and afterwards only read by the CPU hardware (or, for `tss.rsp0`,
// rewritten by the same CPU).
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            syscall_user_rsp: AtomicU64::new(0),
            kernel_stack_top: AtomicU64::new(0),
            index: AtomicUsize::new(0),
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            irq_depth: AtomicU32::new(0),
            in_bh: AtomicBool::new(false),
            booting: AtomicBool::new(true),
            idle: AtomicBool::new(false),
            awaiting_kernel_lock: AtomicBool::new(false),
            need_resched: AtomicBool::new(false),
            slice_start_ns: AtomicU64::new(0),
            slice_deadline_ns: AtomicU64::new(0),
            timer_deadline_ns: AtomicU64::new(0),
            sample_deadline_ns: AtomicU64::new(0),
            bh_safe_alloc_depth: AtomicU32::new(0),
            pagefault_disabled: AtomicU32::new(0),
            held_locks: HeldLocks::new(),
            irq_count: AtomicU64::new(0),
            ipi_wakeups: AtomicU64::new(0),
            tlb_shootdowns: AtomicU64::new(0),
            bh_items: AtomicU64::new(0),
            bh_exit_items: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            current_thread: AtomicPtr::new(core::ptr::null_mut()),
            scheduler_rsp: AtomicU64::new(0),
            last_fault_vector: AtomicU64::new(0),
            last_fault_error: AtomicU64::new(0),
            last_fault_address: AtomicU64::new(0),
            gdt: UnsafeCell::new(Gdt::new()),
            tss: UnsafeCell::new(Tss::new()),
        }
    }

    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed)
    }

    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    /// Points the stack used on entry from user mode (TSS `rsp0` for
    /// interrupts, the syscall stub's slot) at `top`. Only the owning CPU
    /// calls it, when it switches to a user thread.
    pub fn set_kernel_entry_stack(&self, top: u64) {
        self.kernel_stack_top.store(top, Ordering::Relaxed);
        // SAFETY: the TSS belongs to the calling CPU (this is `this_cpu()`);
        // the hardware reads rsp0 only on a privilege change, which cannot
        // happen on this CPU while it executes this kernel code.
        unsafe { (*self.tss.get()).rsp[0] = top };
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Number of CPUs that have been given an index.
static CPU_COUNT: AtomicUsize = AtomicUsize::new(1);

/// The per-CPU data of CPU `index`.
pub fn cpu(index: usize) -> &'static PerCpu {
    &CPUS[index]
}

/// All CPUs brought up so far (or being brought up).
pub fn cpus() -> &'static [PerCpu] {
    &CPUS[..CPU_COUNT.load(Ordering::Acquire)]
}

/// Reserves the next CPU index (bootstrap CPU: 0, already taken).
pub fn allocate_index() -> Option<usize> {
    let i = CPU_COUNT.fetch_add(1, Ordering::AcqRel);
    (i < MAX_CPUS).then_some(i)
}

/// Makes `CPUS[index]` this CPU's data: sets GS base and the self pointer,
/// loads its GDT (with the TSS and IST stacks) and the shared IDT.
///
/// Must run on the CPU being set up, once, with interrupts off.
pub fn install(index: usize, apic_id: u32) {
    let c = &CPUS[index];
    let p = c as *const PerCpu as *mut PerCpu;
    c.self_ptr.store(p, Ordering::Relaxed);
    c.index.store(index, Ordering::Relaxed);
    c.apic_id.store(apic_id, Ordering::Relaxed);
    // SAFETY: GS_BASE exists on x86-64; pointing it at this CPU's static
    // data is what `this_cpu` relies on, and nothing read GS before.
    unsafe { wrmsr(msr::GS_BASE, p as u64) };
    // SAFETY: these cells belong to the CPU running this function, which
    // sets them up once before loading them; no other code touches them.
    let (gdt, tss) = unsafe {
        let ist = &*IST_STACKS.0[index].get();
        let tss = &mut *c.tss.get();
        for (i, stack) in ist.iter().enumerate() {
            tss.ist[i] = stack.0.as_ptr() as u64 + IST_STACK_SIZE as u64;
        }
        (&mut *c.gdt.get(), &*c.tss.get())
    };
    // SAFETY: per-CPU statics live forever and this TSS is loaded only here.
    unsafe { cairn_pc::gdt::load(gdt, tss) };
    // Loading the GS selector cleared GS base: set it again.
    // SAFETY: as above.
    unsafe { wrmsr(msr::GS_BASE, p as u64) };
    cairn_pc::idt::load();
}

/// This CPU's data.
pub fn this_cpu() -> &'static PerCpu {
    let p: u64;
    // SAFETY: reads the self pointer at GS:0, installed by `install` before
    // any caller runs on this CPU.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    if p == 0 {
        // Before `install` on the bootstrap CPU.
        return &CPUS[0];
    }
    // SAFETY: the pointer was made from `&CPUS[i]` in `install`.
    unsafe { &*(p as *const PerCpu) }
}
