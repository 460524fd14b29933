//! The cairn kernel: boot, per-CPU run loops, the kernel lock, bhqueue and
//! runqueue, threads, timers and the in-kernel tests. Built for
//! `x86_64-unknown-none` by `cargo xtask`.
//!
//! Boot order on the bootstrap CPU (`cairn_start_bsp`): IDT and per-CPU
//! data, context hooks, console, `hvm_start_info`, kernel page tables,
//! local APIC and legacy PIC, clock calibration, ACPI MADT and I/O APICs,
//! heaps, application processors, then the run loop, whose first work item
//! is the kernel's main thread, which probes the block devices and the
//! NIC (`net::init`), then runs a test or the workload.
#![no_std]
#![no_main]

extern crate alloc;

pub mod block;
pub mod cmdline;
pub mod console;
pub mod context;
pub mod fs;
pub mod hang;
pub mod heaps;
pub mod ipc;
pub mod irq;
pub mod ktest;
pub mod lock_order;
pub mod mm;
pub mod net;
pub mod panic;
pub mod pci;
pub mod percpu;
pub mod process;
pub mod profile;
pub mod sched;
pub mod signal;
pub mod smp;
pub mod special;
pub mod syscall;
pub mod time;
pub mod timer;
pub mod trap;
pub mod user;

use cairn_pc::entry::KERNEL_BASE;
use cairn_pc::start_info::StartInfo;
use core::sync::atomic::{AtomicUsize, Ordering};

static CPU_TOTAL: AtomicUsize = AtomicUsize::new(1);

/// Number of CPUs running.
pub fn cpu_count() -> usize {
    CPU_TOTAL.load(Ordering::Relaxed)
}

#[unsafe(no_mangle)]
extern "C" fn cairn_start_bsp(start_info_phys: u64) -> ! {
    cairn_pc::idt::init();
    percpu::install(0, 0);
    context::install();
    console::init();
    println!("cairn: booting");
    let info = match StartInfo::parse(start_info_phys, |p| KERNEL_BASE + p) {
        Ok(i) => i,
        Err(e) => panic!("bad PVH start info: {e:?}"),
    };
    mm::kernel_map::init(info.regions());
    heaps::init(info.regions());
    // The command line lives for the whole run.
    let args = cmdline::parse(alloc::string::String::from(info.cmdline()).leak());
    if let Some(l) = args.log {
        console::set_level(l);
    }
    if let Some(hz) = args.profile_hz {
        profile::enable(hz);
    }
    let features = cairn_pc::cpu::features();
    let xapic_virt = if features.x2apic {
        0
    } else {
        mm::map_mmio(cairn_pc::apic::XAPIC_DEFAULT_PHYS, 4096)
    };
    cairn_pc::apic::select_mode(features.x2apic, xapic_virt);
    cairn_pc::pic::disable();
    cpu_local_init();
    percpu::this_cpu()
        .apic_id
        .store(cairn_pc::apic::id(), Ordering::Relaxed);
    time::calibrate();
    time::init_realtime();
    info!(
        "clock: TSC {} MHz, APIC timer {} MHz, {} APIC",
        time::tsc_hz() / 1_000_000,
        time::apic_timer_hz() / 1_000_000,
        if features.x2apic { "x2" } else { "x" }
    );
    let madt = match cairn_pc::acpi::read_madt(info.rsdp_phys, mm::phys_to_virt) {
        Ok(m) => m,
        Err(e) => panic!("ACPI: {e:?}"),
    };
    irq::init_ioapics(&madt, |p| mm::map_mmio(p, 4096));
    irq::set_handler(
        irq::TIMER,
        irq::Handler {
            func: timer::interrupt,
            arg: 0,
        },
    );
    irq::set_handler(
        irq::WAKEUP,
        irq::Handler {
            func: smp::wakeup_interrupt,
            arg: 0,
        },
    );
    irq::set_handler(
        irq::TLB_SHOOTDOWN,
        irq::Handler {
            func: smp::shootdown_interrupt,
            arg: 0,
        },
    );
    irq::set_handler(
        irq::APIC_ERROR,
        irq::Handler {
            func: apic_error,
            arg: 0,
        },
    );
    irq::set_handler(
        irq::RESCHED,
        irq::Handler {
            func: sched::preempt::resched_interrupt,
            arg: 0,
        },
    );
    pci::init();
    if args.list_tests {
        ktest::list();
        panic::exit(0);
    }
    lock_order::declare();
    let n = smp::start_aps(&madt);
    CPU_TOTAL.store(n, Ordering::Relaxed);
    sched::thread::spawn("main", move || kernel_main(args));
    println!(
        "cairn: run loop on {n} CPU(s) at {} us",
        time::now_ns() / 1000
    );
    sched::runloop::run()
}

/// Per-CPU hardware set-up every CPU runs (after its per-CPU data): the
/// local APIC.
pub fn cpu_local_init() {
    cairn_pc::apic::enable(irq::SPURIOUS, irq::APIC_ERROR);
    user::init_cpu();
}

fn apic_error(_: usize) {
    warn!("local APIC error");
}

/// The kernel's main thread.
fn kernel_main(args: cmdline::Cmdline) {
    // The bootstrap CPU enters its run loop after queueing this thread; an
    // AP may pick it up first.
    while percpu::cpus()
        .iter()
        .any(|c| !c.online.load(Ordering::Acquire))
    {
        sched::thread::yield_now();
    }
    block::init();
    net::init();
    match args.test {
        Some(name) => ktest::run(name),
        None => {
            if let Err(e) = process::run_workload(args.program(), args.argv()) {
                println!("cairn: cannot start the workload: {}", e.message);
                panic::exit(e.status);
            }
        }
    }
}
