//! What drivers need from the kernel: [`DriverEnv`], installed once at boot
//! with [`install`] and reached from any context with [`env`].
//!
//! The drivers never call kernel modules directly: DMA memory, device
//! mappings, PCI configuration space, interrupt vectors and routing, bh
//! scheduling, time and logging all go through this trait, so that the
//! protocol parts of the drivers (rings, grant tables, xenstore) build and
//! run on the host against models.
//!
//! **Contexts.** Every method is callable in boot, kernel-lock and bh
//! context; [`DriverEnv::schedule_bh`], [`DriverEnv::now_ns`],
//! [`DriverEnv::cpu_index`] and logging also in irq context. DMA memory comes from the kernel's `dma` heap, never
//! from `general`, so it may be freed in any context.

use cairn_pc::pci::PciAddress;
use cairn_sync::BhWork;
use core::fmt;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Physically contiguous, zeroed, page-aligned memory for a device.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DmaRegion {
    pub phys: u64,
    pub virt: u64,
    pub bytes: usize,
}

impl DmaRegion {
    /// Pointer to byte `offset` of the region.
    pub fn ptr<T>(&self, offset: usize) -> *mut T {
        debug_assert!(offset + core::mem::size_of::<T>() <= self.bytes);
        (self.virt as usize + offset) as *mut T
    }
}

/// An interrupt handler: `func(arg)` in irq context.
#[derive(Copy, Clone, Debug)]
pub struct IrqHandler {
    pub func: fn(usize),
    pub arg: usize,
}

/// Log levels the drivers use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

/// The kernel services a driver uses.
pub trait DriverEnv: Sync {
    /// `bytes` (rounded up to pages) of zeroed DMA memory.
    fn dma_alloc(&self, bytes: usize) -> Option<DmaRegion>;
    /// Returns memory from [`DriverEnv::dma_alloc`].
    fn dma_free(&self, region: DmaRegion);
    /// Maps device memory uncached; returns its virtual address.
    fn map_mmio(&self, phys: u64, len: u64) -> u64;
    /// Physical address behind a kernel virtual address.
    fn virt_to_phys(&self, virt: u64) -> Option<u64>;
    /// Kernel virtual address (the direct map) of physical memory.
    fn phys_to_virt(&self, phys: u64) -> u64;

    /// Reads a configuration register (serialised with every other access).
    fn pci_read32(&self, a: PciAddress, offset: u8) -> u32;
    fn pci_write32(&self, a: PciAddress, offset: u8, v: u32);
    /// Runs `f` with configuration space to itself (multi-step programming
    /// with `cairn_pc::pci` functions: BARs, MSI, MSI-X).
    fn pci_exclusive(&self, f: &mut dyn FnMut());

    /// A free vector running `h` (for MSI and MSI-X).
    fn alloc_vector(&self, h: IrqHandler) -> Option<u8>;
    /// Routes ISA irq `irq` to a new vector running `h`.
    fn route_isa(&self, irq: u8, h: IrqHandler) -> Option<u8>;
    /// Routes the PCI INTx line the firmware assigned (`interrupt_line`).
    fn route_pci_intx(&self, line: u8, h: IrqHandler) -> Option<u8>;
    /// APIC id MSI messages are sent to when a device has one vector.
    fn msi_target(&self) -> u32;
    /// CPUs running (their indices are `0..cpu_count()`).
    fn cpu_count(&self) -> usize;
    /// Index of the CPU running the caller (a hint: the caller may move).
    fn cpu_index(&self) -> usize;
    /// APIC id of CPU `index`, for MSI-X messages aimed at one CPU.
    fn cpu_apic_id(&self, index: usize) -> u32;

    /// Queues bh work (irq-safe); false if the bhqueue is full.
    fn schedule_bh(&self, work: BhWork) -> bool;
    /// Monotonic nanoseconds.
    fn now_ns(&self) -> u64;
    /// Busy-waits (boot and probe paths only).
    fn delay_us(&self, us: u64);
    fn log(&self, level: Level, args: fmt::Arguments<'_>);
}

static ENV: AtomicPtr<&'static dyn DriverEnv> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the kernel's services. Once, at boot, before any driver probes.
pub fn install(e: &'static &'static dyn DriverEnv) {
    ENV.store(e as *const _ as *mut _, Ordering::Release);
}

/// The installed services.
///
/// # Panics
/// If [`install`] has not run.
pub fn env() -> &'static dyn DriverEnv {
    let p = ENV.load(Ordering::Acquire);
    assert!(!p.is_null(), "cairn-drivers: DriverEnv not installed");
    // SAFETY: `install` stores only pointers made from a
    // `&'static &'static dyn DriverEnv`.
    unsafe { *p }
}

/// Whether [`install`] has run.
pub fn installed() -> bool {
    !ENV.load(Ordering::Acquire).is_null()
}

#[macro_export]
#[doc(hidden)]
macro_rules! dlog {
    ($level:ident, $($arg:tt)*) => {
        $crate::env::env().log($crate::env::Level::$level, format_args!($($arg)*))
    };
}
