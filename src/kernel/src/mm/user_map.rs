//! Entries of user pages (the lower half) in the one set of page tables:
//! map, unmap and look up a 4 KiB user page under the caller's lock on that
//! page's record (`process::pages`, a shard lock) instead of the global
//! `mm.page_tables` lock, so that faults on different CPUs write their
//! entries at the same time (issue 17). Only a missing table takes
//! `mm.page_tables`, to create it (`kernel_map::map_page`); tables are
//! never freed, and are zeroed before they are published.
//!
//! What it does not own: which pages are mapped (the address space's
//! records) and TLB shoot-downs (the caller's, after its locks; an unmap
//! flushes this CPU's entry only).
//!
//! Contexts: any thread context; the caller holds the lock of the page's
//! record, the only writer of its entry. No lock of its own.

use super::kernel_map::{kernel_root, phys_to_virt};
use cairn_pc::paging::{MapError, PageTables, TableMemory, entry_address, flags};

/// The tables' memory seen through the direct map; creates nothing.
struct DirectMap;

impl TableMemory for DirectMap {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }
    fn free_table(&mut self, _phys: u64) {}
    fn phys_to_virt(&self, phys: u64) -> u64 {
        phys_to_virt(phys)
    }
}

/// Finds user pages' entries, remembering the last page table found: a
/// batch of pages in one 2 MiB range (a fault's map-around, an munmap's
/// leaf) walks the tables once. Valid for as long as it lives: tables are
/// never freed.
#[derive(Default)]
pub struct Cursor {
    /// The 2 MiB range last looked up and its page table.
    last: Option<(u64, u64)>,
}

const RANGE: u64 = 2 << 20;

impl Cursor {
    pub fn new() -> Self {
        Cursor { last: None }
    }

    /// The page table of `virt`, if every table above it exists.
    fn table(&mut self, virt: u64) -> Option<u64> {
        let range = virt & !(RANGE - 1);
        if let Some((r, t)) = self.last
            && r == range
        {
            return Some(t);
        }
        let t = PageTables::from_root(kernel_root()).user_table(&DirectMap, virt)?;
        self.last = Some((range, t));
        Some(t)
    }

    /// Maps user page `virt` to frame `phys` with `page_flags` (PRESENT is
    /// added). `AlreadyMapped` if an entry is there.
    pub fn map(&mut self, virt: u64, phys: u64, page_flags: u64) -> Result<(), MapError> {
        let Some(table) = self.table(virt) else {
            // A table above it is missing: created under `mm.page_tables`.
            return super::kernel_map::map_page(virt, phys, page_flags);
        };
        if PageTables::user_entry(&DirectMap, table, virt) & flags::PRESENT != 0 {
            return Err(MapError::AlreadyMapped);
        }
        let value = phys | page_flags | flags::PRESENT;
        // SAFETY: `table` is `virt`'s table; its record's lock is held (module doc).
        unsafe { PageTables::set_user_entry(&DirectMap, table, virt, value) };
        Ok(())
    }

    /// Unmaps user page `virt` (flushing this CPU's TLB entry), returning
    /// its frame if it was mapped.
    pub fn unmap(&mut self, virt: u64) -> Option<u64> {
        let table = self.table(virt)?;
        // SAFETY: as in `map`.
        let old = unsafe { PageTables::set_user_entry(&DirectMap, table, virt, 0) };
        (old & flags::PRESENT != 0).then(|| entry_address(old))
    }

    /// The frame and flags of user page `virt`, if mapped.
    pub fn lookup(&mut self, virt: u64) -> Option<(u64, u64)> {
        let e = PageTables::user_entry(&DirectMap, self.table(virt)?, virt);
        (e & flags::PRESENT != 0).then(|| (entry_address(e), entry_flags(e)))
    }
}

/// The flags bits of an entry (everything but the frame's address).
fn entry_flags(e: u64) -> u64 {
    e & !entry_address(u64::MAX)
}

/// [`Cursor::map`] for one page.
pub fn map(virt: u64, phys: u64, page_flags: u64) -> Result<(), MapError> {
    Cursor::new().map(virt, phys, page_flags)
}

/// [`Cursor::unmap`] for one page.
pub fn unmap(virt: u64) -> Option<u64> {
    Cursor::new().unmap(virt)
}

/// [`Cursor::lookup`] for one page.
pub fn lookup(virt: u64) -> Option<(u64, u64)> {
    Cursor::new().lookup(virt)
}
