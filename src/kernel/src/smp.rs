//! Bringing up the application processors and talking to them: the AP
//! start sequence, wake-up IPIs and TLB shoot-downs.
//!
//! APs are found in the MADT and started one at a time (they share the
//! trampoline mailbox) by the bootstrap CPU at boot. A shoot-down IPIs every
//! other online CPU and waits until each has flushed; callers must not hold
//! an irq-safe lock another CPU might spin on with interrupts off (the
//! page-table lock in particular): release it first.
//!
//! Lock: none (the shoot-down generation is lock-free).

use crate::percpu::{self, cpus, this_cpu};
use crate::{info, irq, warn};
use cairn_pc::acpi::Madt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Size of each AP's boot (run-loop) stack.
const AP_STACK_SIZE: usize = 64 * 1024;

static AP_ALIVE: AtomicBool = AtomicBool::new(false);

/// Starts every enabled processor the MADT lists, besides this one.
/// Returns the number of CPUs online.
pub fn start_aps(madt: &Madt) -> usize {
    let me = this_cpu().apic_id();
    cairn_pc::smp::install_trampoline(&crate::mm::phys_to_virt);
    for p in madt
        .processors()
        .iter()
        .filter(|p| p.enabled && p.apic_id != me)
    {
        let Some(index) = percpu::allocate_index() else {
            warn!(
                "more CPUs than cairn supports: APIC id {} left off",
                p.apic_id
            );
            break;
        };
        let stack = alloc::vec![0u8; AP_STACK_SIZE].leak();
        let top = (stack.as_ptr() as u64 + AP_STACK_SIZE as u64) & !15;
        crate::debug!("starting CPU {index} (APIC id {})", p.apic_id);
        AP_ALIVE.store(false, Ordering::SeqCst);
        cairn_pc::smp::send_init(p.apic_id);
        // The 10 ms INIT settle time is for real processors; virtual CPUs
        // (CPUID's hypervisor bit) take the start-up IPI at once.
        if !cairn_pc::cpu::features().hypervisor {
            crate::time::delay_us(10_000);
        }
        let r = cairn_pc::smp::start(
            &cairn_pc::smp::ApStart {
                apic_id: p.apic_id,
                entry: ap_entry,
                arg: index as u64,
                stack_top: top,
                kernel_cr3: crate::mm::kernel_map::kernel_root(),
            },
            &crate::mm::phys_to_virt,
            &crate::time::delay_us,
            &|| AP_ALIVE.load(Ordering::SeqCst),
        );
        crate::debug!("start result {r:?}");
        if let Err(e) = r {
            panic!("CPU {index} (APIC id {}) did not start: {e:?}", p.apic_id);
        }
        while !percpu::cpu(index).online.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
    let n = cpus()
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire))
        .count()
        + 1;
    info!("{n} CPU(s) online");
    n
}

extern "C" fn ap_entry(index: u64) -> ! {
    // The trampoline stub already loaded the kernel tables (our stack lives
    // in a heap window). Per-CPU data first: every lock and the context
    // query reach it through GS.
    percpu::install(index as usize, 0);
    crate::mm::kernel_map::enable_cpu_features();
    crate::cpu_local_init();
    this_cpu()
        .apic_id
        .store(cairn_pc::apic::id(), Ordering::Relaxed);
    AP_ALIVE.store(true, Ordering::SeqCst);
    crate::sched::runloop::run()
}

/// The wake-up IPI's handler: the run loop re-checks its queues on return.
pub fn wakeup_interrupt(_: usize) {
    this_cpu().ipi_wakeups.fetch_add(1, Ordering::Relaxed);
}

static SHOOTDOWN_GENERATION: AtomicU64 = AtomicU64::new(0);
static SHOOTDOWN_ACKS: [AtomicU64; cairn_pc::acpi::MAX_CPUS] =
    [const { AtomicU64::new(0) }; cairn_pc::acpi::MAX_CPUS];

/// The TLB shoot-down IPI's handler.
pub fn shootdown_interrupt(_: usize) {
    let c = this_cpu();
    cairn_pc::cpu::flush_tlb();
    c.tlb_shootdowns.fetch_add(1, Ordering::Relaxed);
    let generation = SHOOTDOWN_GENERATION.load(Ordering::Acquire);
    SHOOTDOWN_ACKS[c.index()].fetch_max(generation, Ordering::AcqRel);
}

/// Flushes the TLB of every online CPU (this one included) and returns once
/// all have. Any context but irq; hold no irq-safe lock.
pub fn shootdown() {
    let me = this_cpu().index();
    cairn_pc::cpu::flush_tlb();
    let generation = SHOOTDOWN_GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    let targets = || {
        cpus()
            .iter()
            .filter(move |c| c.index() != me && c.online.load(Ordering::Acquire))
    };
    for c in targets() {
        cairn_pc::apic::send_ipi(c.apic_id(), irq::TLB_SHOOTDOWN);
    }
    for c in targets() {
        while SHOOTDOWN_ACKS[c.index()].load(Ordering::Acquire) < generation {
            core::hint::spin_loop();
        }
    }
}
