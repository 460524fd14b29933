//! The kernel page tables: built once at boot (direct map of all RAM with
//! 2 MiB pages, the kernel image with 4 KiB pages and W^X permissions),
//! then changed only under the `mm.page_tables` lock: device mappings
//! ([`map_mmio`]), kernel virtual pages (heaps, stacks: [`map_page`],
//! [`unmap_page`]).
//!
//! Table frames come from the boot-time allocator until the physical heap
//! registers itself with [`set_frame_source`].
//!
//! Any context (the lock is irq-safe). A caller that unmaps shoots down
//! other CPUs' TLBs after releasing the lock (see `crate::smp::shootdown`),
//! and only then reuses the frame.

use super::early::EarlyFrames;
use cairn_pc::entry::KERNEL_BASE;
use cairn_pc::paging::{
    DIRECT_MAP_BASE, MMIO_BASE, MapError, PAGE_SIZE, PageSize, PageTables, TableMemory, flags,
};
use cairn_pc::start_info::{MemoryRegion, memory_type};
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicBool, Ordering};

static DIRECT_MAP_READY: AtomicBool = AtomicBool::new(false);

/// The virtual address of physical `phys`: the direct map once the kernel
/// tables are live, the boot mapping of the first GiB before.
pub fn phys_to_virt(phys: u64) -> u64 {
    if DIRECT_MAP_READY.load(Ordering::Acquire) {
        DIRECT_MAP_BASE + phys
    } else {
        KERNEL_BASE + phys
    }
}

/// Where table frames come from after boot.
#[derive(Copy, Clone)]
pub struct FrameSource {
    pub alloc: fn() -> Option<u64>,
    pub free: fn(u64),
}

struct TableFrames {
    early: Option<EarlyFrames>,
    source: Option<FrameSource>,
}

impl TableMemory for TableFrames {
    fn alloc_table(&mut self) -> Option<u64> {
        let f = match (&self.source, &mut self.early) {
            (Some(s), _) => (s.alloc)()?,
            (None, Some(e)) => e.alloc()?,
            (None, None) => return None,
        };
        let p = phys_to_virt(f) as *mut u8;
        // SAFETY: the frame was just allocated for this table and is mapped
        // at `phys_to_virt`; nothing else references it.
        unsafe { core::ptr::write_bytes(p, 0, PAGE_SIZE as usize) };
        Some(f)
    }
    fn free_table(&mut self, phys: u64) {
        if let Some(s) = &self.source {
            (s.free)(phys);
        }
    }
    fn phys_to_virt(&self, phys: u64) -> u64 {
        phys_to_virt(phys)
    }
}

struct KernelTables {
    tables: PageTables,
    frames: TableFrames,
}

static PAGE_TABLES_CLASS: LockClass = LockClass::new("mm.page_tables");
static KERNEL_TABLES: IrqSpinLock<Option<KernelTables>> =
    IrqSpinLock::new(&PAGE_TABLES_CLASS, None);

/// Highest physical address of usable RAM (for the physical heap).
static RAM_TOP: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Builds the kernel page tables and switches to them. Bootstrap CPU, once.
pub fn init(map: &[MemoryRegion]) {
    let (img_start, img_end) = super::image_phys_range();
    let mut frames = TableFrames {
        early: Some(EarlyFrames::new(map, img_start, img_end)),
        source: None,
    };
    let root = frames.alloc_table().expect("no memory for the kernel PML4");
    let mut tables = PageTables::from_root(root);
    let direct = flags::WRITABLE | flags::NO_EXECUTE | flags::GLOBAL;
    for r in map.iter().filter(|r| {
        matches!(
            r.kind,
            memory_type::RAM | memory_type::ACPI | memory_type::NVS
        )
    }) {
        let start = r.base & !(cairn_pc::paging::HUGE_PAGE_SIZE - 1);
        let end = (r.base + r.size).next_multiple_of(cairn_pc::paging::HUGE_PAGE_SIZE);
        let mut p = start;
        while p < end {
            match tables.map(
                &mut frames,
                DIRECT_MAP_BASE + p,
                p,
                PageSize::Size2M,
                direct,
            ) {
                Ok(()) | Err(MapError::AlreadyMapped) => {}
                Err(e) => panic!("direct map of {p:#x}: {e:?}"),
            }
            p += cairn_pc::paging::HUGE_PAGE_SIZE;
        }
    }
    let [text, rodata, data] = super::image_sections();
    for (range, f) in [
        (text, flags::GLOBAL),
        (rodata, flags::GLOBAL | flags::NO_EXECUTE),
        (data, flags::GLOBAL | flags::NO_EXECUTE | flags::WRITABLE),
    ] {
        let mut v = range.0;
        while v < range.1 {
            tables
                .map(&mut frames, v, v - KERNEL_BASE, PageSize::Size4K, f)
                .unwrap_or_else(|e| panic!("kernel image map of {v:#x}: {e:?}"));
            v += PAGE_SIZE;
        }
    }
    let top = map
        .iter()
        .filter(|r| r.kind == memory_type::RAM)
        .map(|r| r.base + r.size)
        .max()
        .unwrap_or(0);
    RAM_TOP.store(top, Ordering::Relaxed);
    enable_cpu_features();
    // SAFETY: the new tables map the kernel image at the same virtual
    // addresses as the boot tables (text, rodata, data, bss: this code,
    // its stack in bss, every static), plus the direct map.
    unsafe { cairn_pc::cpu::write_cr3(root) };
    DIRECT_MAP_READY.store(true, Ordering::Release);
    KERNEL_ROOT.store(root, Ordering::Release);
    *KERNEL_TABLES.lock() = Some(KernelTables { tables, frames });
}

/// NX (EFER.NXE) and global pages (CR4.PGE) on this CPU; every CPU calls
/// it before loading the kernel tables.
pub fn enable_cpu_features() {
    use cairn_pc::cpu::{msr, rdmsr, read_cr4, write_cr4, wrmsr};
    // SAFETY: EFER exists on every x86-64 CPU; NXE is set only when CPUID
    // reports NX, and CR4.PGE only enables global TLB entries.
    unsafe {
        if cairn_pc::cpu::features().nx {
            wrmsr(msr::EFER, rdmsr(msr::EFER) | (1 << 11));
        }
        write_cr4(read_cr4() | (1 << 7));
    }
}

static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Physical address of the kernel PML4.
pub fn kernel_root() -> u64 {
    let root = KERNEL_ROOT.load(Ordering::Acquire);
    assert!(root != 0, "kernel page tables not built");
    root
}

/// Highest physical RAM address.
pub fn ram_top() -> u64 {
    RAM_TOP.load(Ordering::Relaxed)
}

/// The physical ranges the boot-time allocator handed out (for the
/// physical heap to reserve) and the RAM it considered usable.
pub fn with_early_frames<R>(f: impl FnOnce(&mut EarlyFrames) -> R) -> R {
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut().expect("kernel page tables not built");
    f(k.frames
        .early
        .as_mut()
        .expect("early frames already retired"))
}

/// Hands table-frame allocation to the physical heap and retires the
/// boot-time allocator.
pub fn set_frame_source(source: FrameSource) {
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut().expect("kernel page tables not built");
    k.frames.source = Some(source);
    k.frames.early = None;
}

/// Maps `len` bytes of device memory at `phys` uncached; returns its
/// virtual address. Idempotent for a range already mapped.
pub fn map_mmio(phys: u64, len: u64) -> u64 {
    let start = phys & !(PAGE_SIZE - 1);
    let end = (phys + len).next_multiple_of(PAGE_SIZE);
    let f = flags::WRITABLE | flags::NO_CACHE | flags::WRITE_THROUGH | flags::NO_EXECUTE;
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut().expect("kernel page tables not built");
    let mut p = start;
    while p < end {
        match k
            .tables
            .map(&mut k.frames, MMIO_BASE + p, p, PageSize::Size4K, f)
        {
            Ok(()) | Err(MapError::AlreadyMapped) => {}
            Err(e) => panic!("MMIO map of {p:#x}: {e:?}"),
        }
        p += PAGE_SIZE;
    }
    MMIO_BASE + phys
}

/// Maps one 4 KiB kernel page.
pub fn map_page(virt: u64, phys: u64, page_flags: u64) -> Result<(), MapError> {
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut().expect("kernel page tables not built");
    k.tables
        .map(&mut k.frames, virt, phys, PageSize::Size4K, page_flags)
}

/// Maps one 2 MiB kernel page.
pub fn map_huge_page(virt: u64, phys: u64, page_flags: u64) -> Result<(), MapError> {
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut().expect("kernel page tables not built");
    k.tables
        .map(&mut k.frames, virt, phys, PageSize::Size2M, page_flags)
}

/// Unmaps one 4 KiB kernel page, returning its frame. The caller shoots
/// down other CPUs' TLBs before reusing the frame.
pub fn unmap_page(virt: u64) -> Option<u64> {
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut().expect("kernel page tables not built");
    k.tables.unmap(&mut k.frames, virt)
}

/// The physical address behind kernel virtual address `virt`.
pub fn virt_to_phys(virt: u64) -> Option<u64> {
    if (DIRECT_MAP_BASE..MMIO_BASE).contains(&virt) {
        return Some(virt - DIRECT_MAP_BASE);
    }
    if virt >= KERNEL_BASE {
        return Some(virt - KERNEL_BASE);
    }
    let mut k = KERNEL_TABLES.lock();
    let k = k.as_mut()?;
    k.tables.translate(&mut k.frames, virt)
}
