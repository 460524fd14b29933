//! The host tests' [`DriverEnv`]: page-aligned host memory as DMA memory
//! (its "physical" addresses are host addresses shifted so that frame
//! numbers fit 32 bits, as guest RAM's do), a bhqueue the test drains
//! itself with [`run_bh`] in simulated bh context, no PCI, no vectors.
//!
//! Every test that uses it holds the guard [`setup`] returns: the bhqueue
//! is global, and a test must not run (or wait on) another test's bh work.

use crate::env::{DmaRegion, DriverEnv, IrqHandler, Level};
use cairn_pc::pci::PciAddress;
use cairn_sync::BhWork;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, Once};

static BH: Mutex<VecDeque<BhWork>> = Mutex::new(VecDeque::new());

struct TestEnv;

/// Host virtual address of a page-aligned, zeroed, leaked allocation.
pub fn page_alloc(bytes: usize) -> u64 {
    let l = Layout::from_size_align(bytes.next_multiple_of(4096), 4096).unwrap();
    // SAFETY: non-zero size.
    unsafe { alloc_zeroed(l) as u64 }
}

/// The model's "physical" address space: host addresses shifted down so
/// that frame numbers fit a v1 grant entry's 32 bits (as guest RAM does).
/// All test memory is within 256 GiB of the first allocation.
static PHYS_BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
const PHYS_OFFSET: u64 = 1 << 40;

fn phys_base() -> u64 {
    *PHYS_BASE.get_or_init(|| (page_alloc(4096) & !0xfff) - PHYS_OFFSET / 2)
}

/// The "physical" address of host address `virt`.
pub fn phys(virt: u64) -> u64 {
    virt - phys_base()
}

/// The host address of "physical" address `phys`.
pub fn virt(phys: u64) -> u64 {
    phys + phys_base()
}

impl DriverEnv for TestEnv {
    fn dma_alloc(&self, bytes: usize) -> Option<DmaRegion> {
        let p = page_alloc(bytes);
        Some(DmaRegion {
            phys: phys(p),
            virt: p,
            bytes: bytes.next_multiple_of(4096),
        })
    }
    fn dma_free(&self, r: DmaRegion) {
        // SAFETY: allocated by `dma_alloc` with this size.
        unsafe {
            dealloc(
                r.virt as *mut u8,
                Layout::from_size_align(r.bytes, 4096).unwrap(),
            )
        }
    }
    fn map_mmio(&self, _: u64, _: u64) -> u64 {
        unreachable!("no MMIO in the host models")
    }
    fn virt_to_phys(&self, v: u64) -> Option<u64> {
        Some(phys(v))
    }
    fn phys_to_virt(&self, p: u64) -> u64 {
        virt(p)
    }
    fn pci_read32(&self, _: PciAddress, _: u8) -> u32 {
        u32::MAX
    }
    fn pci_write32(&self, _: PciAddress, _: u8, _: u32) {}
    fn pci_exclusive(&self, f: &mut dyn FnMut()) {
        f()
    }
    fn alloc_vector(&self, _: IrqHandler) -> Option<u8> {
        None
    }
    fn route_isa(&self, _: u8, _: IrqHandler) -> Option<u8> {
        None
    }
    fn route_pci_intx(&self, _: u8, _: IrqHandler) -> Option<u8> {
        None
    }
    fn msi_target(&self) -> u32 {
        0
    }
    fn cpu_count(&self) -> usize {
        1
    }
    fn cpu_index(&self) -> usize {
        0
    }
    fn cpu_apic_id(&self, _: usize) -> u32 {
        0
    }
    fn schedule_bh(&self, w: BhWork) -> bool {
        BH.lock().unwrap().push_back(w);
        true
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn delay_us(&self, _: u64) {}
    fn log(&self, _: Level, args: core::fmt::Arguments<'_>) {
        std::println!("{args}");
    }
}

static ENV: &dyn DriverEnv = &TestEnv;

/// Installs the test environment; the guard keeps other tests' bh work
/// out while it is held.
pub fn setup() -> MutexGuard<'static, ()> {
    static ONCE: Once = Once::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONCE.call_once(|| crate::env::install(&ENV));
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    BH.lock().unwrap().clear();
    guard
}

/// Bh work queued and not yet run.
pub fn pending_bh() -> usize {
    BH.lock().unwrap().len()
}

/// Runs queued bh work (in "bh context") until none is left.
pub fn run_bh() {
    loop {
        let w = BH.lock().unwrap().pop_front();
        match w {
            Some(w) => {
                cairn_sync::cpu::host::set_context(cairn_sync::Context::Bh);
                (w.run)(w.arg);
                cairn_sync::cpu::host::set_context(cairn_sync::Context::KernelLock);
            }
            None => break,
        }
    }
}
