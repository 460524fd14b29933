//! SMP, IPI and TLB shoot-down tests.

use super::util::{call_on, wait_for};
use super::{Expect, KernelTest};
use crate::percpu::cpus;
use alloc::format;
use alloc::string::String;
use cairn_pc::acpi::MAX_CPUS;
use core::sync::atomic::{AtomicU64, Ordering};

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "smp",
        smp: &[2, 4],
        expect: Expect::Pass,
        run: smp,
    },
    KernelTest {
        name: "ipi",
        smp: &[2, 4],
        expect: Expect::Pass,
        run: ipi,
    },
    KernelTest {
        name: "tlb_shootdown",
        smp: &[2, 4],
        expect: Expect::Pass,
        run: tlb_shootdown,
    },
];

fn smp() -> Result<(), String> {
    let n = crate::cpu_count();
    let online = cpus()
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire))
        .count();
    if online != n {
        return Err(format!("{online} CPUs online, {n} started"));
    }
    if n < 2 {
        return Err(format!(
            "only {n} CPU: the MADT listed no application processor"
        ));
    }
    let mut ids: alloc::vec::Vec<u32> = cpus().iter().map(|c| c.apic_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != n {
        return Err(format!("APIC ids not distinct: {ids:?}"));
    }
    // Every CPU's run loop is alive: each one drains a wake-up IPI.
    for c in cpus() {
        let before = c.ipi_wakeups.load(Ordering::Relaxed);
        if c.index() != crate::percpu::this_cpu().index() {
            cairn_pc::apic::send_ipi(c.apic_id(), crate::irq::WAKEUP);
            wait_for("a wake-up IPI", || {
                c.ipi_wakeups.load(Ordering::Relaxed) > before
            })?;
        }
    }
    Ok(())
}

static HITS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static WHO: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];

fn record_hit(expected: usize) {
    let me = crate::percpu::this_cpu().index();
    WHO[expected].store(me as u64, Ordering::Release);
    HITS[me].fetch_add(1, Ordering::AcqRel);
}

fn ipi() -> Result<(), String> {
    for round in 1..=20u64 {
        for c in cpus() {
            call_on(c.index(), record_hit, c.index())?;
        }
        for c in cpus() {
            let i = c.index();
            wait_for("a test IPI handler", || {
                HITS[i].load(Ordering::Acquire) >= round
            })?;
            if WHO[i].load(Ordering::Acquire) != i as u64 {
                return Err(format!(
                    "IPI for CPU {i} ran on CPU {}",
                    WHO[i].load(Ordering::Acquire)
                ));
            }
        }
    }
    Ok(())
}

static TEST_PAGE_ADDR: AtomicU64 = AtomicU64::new(0);
static SEEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn read_test_page(_: usize) {
    let me = crate::percpu::this_cpu().index();
    let v =
        cairn_pc::fixup::probe_read(TEST_PAGE_ADDR.load(Ordering::Acquire)).map_or(0xff, u64::from);
    SEEN[me].store(v | 0x100, Ordering::Release);
}

fn read_everywhere() -> Result<alloc::vec::Vec<u64>, String> {
    for c in cpus() {
        SEEN[c.index()].store(0, Ordering::Release);
        call_on(c.index(), read_test_page, 0)?;
    }
    let mut v = alloc::vec::Vec::new();
    for c in cpus() {
        let i = c.index();
        wait_for("a CPU reading the test page", || {
            SEEN[i].load(Ordering::Acquire) != 0
        })?;
        v.push(SEEN[i].load(Ordering::Acquire) & 0xff);
    }
    Ok(v)
}

fn tlb_shootdown() -> Result<(), String> {
    use cairn_pc::paging::flags;
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    let frames = [
        alloc::boxed::Box::new(Page([0xa1; 4096])),
        alloc::boxed::Box::new(Page([0xb2; 4096])),
    ];
    let phys: alloc::vec::Vec<u64> = frames
        .iter()
        .map(|f| crate::mm::virt_to_phys(f.0.as_ptr() as u64).ok_or("no frame"))
        .collect::<Result<_, _>>()?;
    let f = flags::WRITABLE | flags::NO_EXECUTE;
    let test_page = crate::heaps::virtual_pages(1).ok_or("no virtual page")?;
    TEST_PAGE_ADDR.store(test_page, Ordering::Release);
    crate::mm::kernel_map::map_page(test_page, phys[0], f).map_err(|e| format!("{e:?}"))?;
    let before: u64 = cpus()
        .iter()
        .map(|c| c.tlb_shootdowns.load(Ordering::Relaxed))
        .sum();
    for round in 0..10 {
        let (now, next) = (round % 2, (round + 1) % 2);
        let seen = read_everywhere()?;
        let want = u64::from(frames[now].0[0]);
        if seen.iter().any(|&s| s != want) {
            return Err(format!(
                "round {round}: CPUs read {seen:x?}, expected {want:#x}"
            ));
        }
        crate::mm::kernel_map::unmap_page(test_page).ok_or("test page vanished")?;
        crate::mm::kernel_map::map_page(test_page, phys[next], f).map_err(|e| format!("{e:?}"))?;
        crate::smp::shootdown();
    }
    let after: u64 = cpus()
        .iter()
        .map(|c| c.tlb_shootdowns.load(Ordering::Relaxed))
        .sum();
    let others = (crate::cpu_count() - 1) as u64;
    if after - before < 10 * others {
        return Err(format!(
            "{} shoot-down IPIs handled, expected {}",
            after - before,
            10 * others
        ));
    }
    crate::mm::kernel_map::unmap_page(test_page);
    crate::smp::shootdown();
    crate::heaps::free_virtual_pages(test_page, 1);
    Ok(())
}
