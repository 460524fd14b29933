//! The kernel's [`DriverEnv`]: what the block drivers get from the kernel.
//!
//! DMA memory is the `dma` heap's (never `general`), configuration space
//! goes through `crate::pci`'s lock, vectors and routing through
//! `crate::irq` (device interrupts go to the bootstrap CPU unless a driver
//! aims an MSI-X vector at one CPU, as NVMe does per queue), bh work onto
//! the global bhqueue. Any context, as the trait documents.

use cairn_drivers::env::{DmaRegion, DriverEnv, IrqHandler, Level};
use cairn_pc::pci::PciAddress;
use cairn_sync::BhWork;

struct KernelEnv;

fn handler(h: IrqHandler) -> crate::irq::Handler {
    crate::irq::Handler {
        func: h.func,
        arg: h.arg,
    }
}

fn irq_target() -> u32 {
    crate::percpu::cpu(0).apic_id()
}

impl DriverEnv for KernelEnv {
    fn dma_alloc(&self, bytes: usize) -> Option<DmaRegion> {
        let (phys, virt) = crate::heaps::dma::alloc(bytes)?;
        Some(DmaRegion {
            phys,
            virt,
            bytes: bytes.next_multiple_of(4096),
        })
    }
    fn dma_free(&self, r: DmaRegion) {
        crate::heaps::dma::free(r.phys, r.virt, r.bytes);
    }
    fn map_mmio(&self, phys: u64, len: u64) -> u64 {
        crate::mm::map_mmio(phys, len)
    }
    fn virt_to_phys(&self, virt: u64) -> Option<u64> {
        crate::mm::virt_to_phys(virt)
    }
    fn phys_to_virt(&self, phys: u64) -> u64 {
        crate::mm::phys_to_virt(phys)
    }
    fn pci_read32(&self, a: PciAddress, offset: u8) -> u32 {
        crate::pci::read32(a, offset)
    }
    fn pci_write32(&self, a: PciAddress, offset: u8, v: u32) {
        crate::pci::write32(a, offset, v)
    }
    fn pci_exclusive(&self, f: &mut dyn FnMut()) {
        crate::pci::with_config(f)
    }
    fn alloc_vector(&self, h: IrqHandler) -> Option<u8> {
        crate::irq::allocate(handler(h))
    }
    fn route_isa(&self, irq: u8, h: IrqHandler) -> Option<u8> {
        crate::irq::route_isa(irq, handler(h), irq_target()).ok()
    }
    fn route_pci_intx(&self, line: u8, h: IrqHandler) -> Option<u8> {
        crate::irq::route_pci_intx(line, handler(h), irq_target()).ok()
    }
    fn msi_target(&self) -> u32 {
        irq_target()
    }
    fn cpu_count(&self) -> usize {
        crate::percpu::cpus().len()
    }
    fn cpu_index(&self) -> usize {
        crate::percpu::this_cpu().index()
    }
    fn cpu_apic_id(&self, index: usize) -> u32 {
        crate::percpu::cpu(index).apic_id()
    }
    fn schedule_bh(&self, work: BhWork) -> bool {
        crate::sched::schedule_bh(work).is_ok()
    }
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }
    fn delay_us(&self, us: u64) {
        crate::time::delay_us(us)
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        use crate::console::Level as L;
        let l = match level {
            Level::Error => L::Error,
            Level::Warn => L::Warn,
            Level::Info => L::Info,
            Level::Debug => L::Debug,
        };
        crate::log!(l, "{}", args);
    }
}

static ENV: &dyn DriverEnv = &KernelEnv;

/// Hands the services to the drivers (once, before probing).
pub fn install() {
    cairn_drivers::env::install(&ENV);
}
