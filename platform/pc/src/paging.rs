//! x86-64 four-level page tables: map, unmap, protect and translate 4 KiB
//! and 2 MiB pages, reaching table memory through a physical-to-virtual
//! window the kernel provides.
//!
//! cairn runs one address space: user mappings in the lower half, the direct
//! map of physical memory at [`DIRECT_MAP_BASE`], device memory at
//! [`MMIO_BASE`], kernel virtual ranges at [`KERNEL_VIRT_BASE`] and the
//! kernel image at [`crate::entry::KERNEL_BASE`].
//!
//! This module is mechanics only: callers serialise changes to one table
//! tree (the kernel's page-table lock) and shoot down other CPUs' TLBs.
//! Any context, as long as the caller holds that lock; except
//! [`PageTables::user_table`], [`PageTables::user_entry`] and
//! [`PageTables::set_user_entry`], which find, read and change one user
//! page's entry under the caller's own lock on that page.

use crate::cpu::invlpg;

pub const PAGE_SIZE: u64 = 4096;
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

/// Start of the direct map of physical memory (PML4 slot 256).
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// Start of the uncached window onto device memory (PML4 slot 384).
pub const MMIO_BASE: u64 = 0xffff_c000_0000_0000;
/// Start of kernel virtual ranges: heaps, stacks with guard pages (slot 448).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_e000_0000_0000;
/// End (exclusive) of kernel virtual ranges.
pub const KERNEL_VIRT_END: u64 = 0xffff_ff00_0000_0000;
/// User addresses are below this.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Page-table entry flag bits.
pub mod flags {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const WRITE_THROUGH: u64 = 1 << 3;
    pub const NO_CACHE: u64 = 1 << 4;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    pub const HUGE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    pub const NO_EXECUTE: u64 = 1 << 63;
}

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Page size of a mapping.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
}

impl PageSize {
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => PAGE_SIZE,
            PageSize::Size2M => HUGE_PAGE_SIZE,
        }
    }
}

/// Why a mapping change failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfMemory,
    /// Something is already mapped there.
    AlreadyMapped,
    /// A 2 MiB page covers the address where a 4 KiB one was asked (or the
    /// other way round).
    SizeConflict,
    /// Address not aligned to the page size.
    Misaligned,
}

/// What the page-table code needs from the memory manager.
pub trait TableMemory {
    /// A zeroed 4 KiB frame for a new table, or `None`.
    fn alloc_table(&mut self) -> Option<u64>;
    /// A table frame no longer used.
    fn free_table(&mut self, phys: u64);
    /// The virtual address at which physical `phys` can be read and written.
    fn phys_to_virt(&self, phys: u64) -> u64;
}

/// One tree of page tables, named by the physical address of its PML4.
pub struct PageTables {
    root: u64,
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

impl PageTables {
    /// Takes over the tree rooted at `pml4_phys`.
    pub const fn from_root(pml4_phys: u64) -> Self {
        PageTables { root: pml4_phys }
    }

    /// Physical address of the PML4 (what CR3 is loaded with).
    pub fn root(&self) -> u64 {
        self.root
    }

    fn read(mem: &dyn TableMemory, table: u64, i: usize) -> u64 {
        let p = (mem.phys_to_virt(table) + (i as u64) * 8) as *const u64;
        // SAFETY: `table` is a page-table frame of this tree (the root or a
        // frame referenced by a present entry), mapped at `phys_to_virt` by
        // the window the caller provides; entry `i` < 512 lies inside it.
        unsafe { p.read_volatile() }
    }

    fn write(mem: &dyn TableMemory, table: u64, i: usize, value: u64) {
        let p = (mem.phys_to_virt(table) + (i as u64) * 8) as *mut u64;
        // SAFETY: as in `read`; the caller's page-table lock makes this the
        // only writer of the tree's structure, and the only writer of this
        // entry (`set_user_entry`'s callers own the entry they write; an
        // aligned 8-byte volatile store is never torn).
        unsafe { p.write_volatile(value) }
    }

    /// Walks to the table at `level` (0 = page table) for `virt`, creating
    /// intermediate tables when `create` is set.
    fn walk(
        &mut self,
        mem: &mut dyn TableMemory,
        virt: u64,
        level: u32,
        create: bool,
    ) -> Result<Option<u64>, MapError> {
        let mut table = self.root;
        for l in (level + 1..=3).rev() {
            let e = Self::read(mem, table, index(virt, l));
            if e & flags::PRESENT == 0 {
                if !create {
                    return Ok(None);
                }
                let frame = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
                // Intermediate tables allow everything; leaves restrict.
                let mut f = flags::PRESENT | flags::WRITABLE;
                if virt < USER_END {
                    f |= flags::USER;
                }
                // The zeroed table is complete before it is published: a
                // walk without the lock (`user_table`) may follow the
                // entry as soon as it is written.
                core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
                Self::write(mem, table, index(virt, l), frame | f);
                table = frame;
            } else if e & flags::HUGE != 0 {
                return Err(MapError::SizeConflict);
            } else {
                table = e & ADDR_MASK;
            }
        }
        Ok(Some(table))
    }

    /// Maps `virt` to `phys` with `flags` (PRESENT is added).
    pub fn map(
        &mut self,
        mem: &mut dyn TableMemory,
        virt: u64,
        phys: u64,
        size: PageSize,
        flags: u64,
    ) -> Result<(), MapError> {
        if virt % size.bytes() != 0 || phys % size.bytes() != 0 {
            return Err(MapError::Misaligned);
        }
        let level = match size {
            PageSize::Size4K => 0,
            PageSize::Size2M => 1,
        };
        let table = self
            .walk(mem, virt, level, true)?
            .ok_or(MapError::OutOfMemory)?;
        if Self::read(mem, table, index(virt, level)) & flags::PRESENT != 0 {
            return Err(MapError::AlreadyMapped);
        }
        let huge = if level == 1 { flags::HUGE } else { 0 };
        Self::write(
            mem,
            table,
            index(virt, level),
            phys | flags | flags::PRESENT | huge,
        );
        Ok(())
    }

    /// Finds the leaf entry for `virt`: (entry value, page size).
    pub fn lookup(&mut self, mem: &mut dyn TableMemory, virt: u64) -> Option<(u64, PageSize)> {
        let mut table = self.root;
        for l in (0..=3).rev() {
            let e = Self::read(mem, table, index(virt, l));
            if e & flags::PRESENT == 0 {
                return None;
            }
            if l == 0 {
                return Some((e, PageSize::Size4K));
            }
            if l == 1 && e & flags::HUGE != 0 {
                return Some((e, PageSize::Size2M));
            }
            table = e & ADDR_MASK;
        }
        None
    }

    /// The page table (level 0) holding the entry of user page `virt`,
    /// found without the tree's lock; `None` when a table above it is
    /// missing or a 2 MiB page is there (the caller takes the lock and uses
    /// [`Self::map`], which creates it). Tables are never freed and are
    /// published only once zeroed (see `walk`), so a walk without the lock
    /// sees either no table or a whole one, and the answer stays valid.
    pub fn user_table(&self, mem: &dyn TableMemory, virt: u64) -> Option<u64> {
        debug_assert!(virt < USER_END);
        let mut table = self.root;
        for l in (1..=3).rev() {
            let e = Self::read(mem, table, index(virt, l));
            if e & flags::PRESENT == 0 || e & flags::HUGE != 0 {
                return None;
            }
            table = e & ADDR_MASK;
        }
        Some(table)
    }

    /// The entry of user page `virt` in its page table `table`
    /// ([`Self::user_table`]).
    pub fn user_entry(mem: &dyn TableMemory, table: u64, virt: u64) -> u64 {
        Self::read(mem, table, index(virt, 0))
    }

    /// Replaces the entry of user page `virt` in its page table `table`
    /// ([`Self::user_table`]) with `value` (0 to unmap, flushing this CPU's
    /// TLB entry) without the tree's lock, returning the old entry.
    ///
    /// # Safety
    ///
    /// `table` is the page table of `virt` in a live tree, and the caller
    /// is the only writer of this entry (cairn: the lock of the user page's
    /// records); entries of other pages may change meanwhile.
    pub unsafe fn set_user_entry(mem: &dyn TableMemory, table: u64, virt: u64, value: u64) -> u64 {
        debug_assert!(virt < USER_END && virt % PAGE_SIZE == 0);
        let old = Self::read(mem, table, index(virt, 0));
        Self::write(mem, table, index(virt, 0), value);
        if old & flags::PRESENT != 0 {
            invlpg(virt);
        }
        old
    }

    /// The physical address `virt` maps to.
    pub fn translate(&mut self, mem: &mut dyn TableMemory, virt: u64) -> Option<u64> {
        let (e, size) = self.lookup(mem, virt)?;
        Some((e & ADDR_MASK & !(size.bytes() - 1)) + (virt & (size.bytes() - 1)))
    }

    /// Removes the 4 KiB mapping of `virt`, returning the frame it mapped.
    /// Invalidates this CPU's TLB entry; other CPUs are the caller's job.
    pub fn unmap(&mut self, mem: &mut dyn TableMemory, virt: u64) -> Option<u64> {
        let table = self.walk(mem, virt, 0, false).ok()??;
        let e = Self::read(mem, table, index(virt, 0));
        if e & flags::PRESENT == 0 {
            return None;
        }
        let phys = e & ADDR_MASK;
        Self::write(mem, table, index(virt, 0), 0);
        invlpg(virt);
        Some(phys)
    }

    /// Replaces the flags of the 4 KiB mapping of `virt` (keeping its
    /// frame); false if nothing is mapped there.
    pub fn protect(&mut self, mem: &mut dyn TableMemory, virt: u64, new_flags: u64) -> bool {
        let Ok(Some(table)) = self.walk(mem, virt, 0, false) else {
            return false;
        };
        let e = Self::read(mem, table, index(virt, 0));
        if e & flags::PRESENT == 0 {
            return false;
        }
        Self::write(
            mem,
            table,
            index(virt, 0),
            (e & ADDR_MASK) | new_flags | flags::PRESENT,
        );
        invlpg(virt);
        true
    }

    /// Copies the kernel half (PML4 slots 256..512) of `other` into this
    /// tree, so both share every kernel mapping below those slots.
    pub fn share_kernel_half(&mut self, mem: &mut dyn TableMemory, other: &PageTables) {
        for i in 256..512 {
            let e = Self::read(mem, other.root, i);
            Self::write(mem, self.root, i, e);
        }
    }
}

/// Physical address part of an entry.
pub fn entry_address(entry: u64) -> u64 {
    entry & ADDR_MASK
}
