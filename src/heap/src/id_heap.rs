//! The id heap: a bitmap allocator over up to [`MAX_RANGES`] ranges of ids.
//!
//! Ids are addresses in units of a fixed power-of-two size (4096 for pages,
//! 1 for plain ids). Each range keeps one bit per unit in storage the caller
//! provides (`&'a mut [u64]`, [`IdHeap::words_for`] words), because the
//! kernel creates the physical heap before any allocator exists: nothing in
//! here allocates. Allocation is next-fit per range (a hint that follows the
//! last allocation), of `n` contiguous units at any power-of-two alignment;
//! [`IdHeap::reserve`] claims a given range; [`IdHeap::alloc_in`] allocates
//! within an address window.
//!
//! Every free is validated: inside one range, unit-aligned, and every unit
//! allocated. A bad free panics naming the heap ([`Heap::dealloc`]) in every
//! build; [`IdHeap::try_dealloc`] returns the reason instead for callers that
//! would rather handle it. The check is the bitmap scan the free does anyway,
//! so it costs nothing to keep in release builds.
//!
//! Contexts: an `IdHeap` takes no lock and needs `&mut`. Shared ones
//! (physical, virtual_huge, virtual_page) live in a
//! [`Locking`](crate::Locking), whose `lock()` also reaches the methods here
//! (reserve, `alloc_in`, hints) under its lock; that is cairn's form of
//! Nanos's `locking` flag on id heaps.

use crate::heap::{AllocError, Heap, check_align};
use crate::stats::{Accounting, HeapStats};
use bitvec::prelude::{BitSlice, Lsb0};
use core::fmt;

/// Ranges per heap (the memory map of a PC rarely has more than a handful).
pub const MAX_RANGES: usize = 32;

type Bits = BitSlice<u64, Lsb0>;

/// Why [`IdHeap::add_range`] refused a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// The range has no whole unit.
    Empty,
    /// Base or length is not a multiple of the unit, or the end overflows.
    Misaligned,
    /// It overlaps a range already in the heap.
    Overlaps,
    /// The storage has fewer than [`IdHeap::words_for`] words.
    StorageTooSmall,
    /// The heap already has [`MAX_RANGES`] ranges.
    TooManyRanges,
}

/// Why [`IdHeap::reserve`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveError {
    /// The span is not inside one range of the heap.
    NotInHeap,
    /// Some unit of the span is already allocated.
    Busy,
}

/// Why a free was refused (see [`IdHeap::try_dealloc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFree {
    /// The span is not inside one range of this heap: a foreign address.
    NotInHeap,
    /// The address is not a multiple of the unit.
    Misaligned,
    /// Some unit of the span is free: a double free, or a wrong size.
    NotAllocated,
}

impl fmt::Display for BadFree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadFree::NotInHeap => "foreign address: not inside one range of this heap",
            BadFree::Misaligned => "address is not a multiple of the unit",
            BadFree::NotAllocated => "double free or wrong size: a unit in the span is free",
        })
    }
}

/// One range: `units` ids from `base`, a bit each.
struct IdRange<'a> {
    base: u64,
    units: u64,
    bits: &'a mut Bits,
    /// Next-fit: the unit index where the next search starts.
    hint: u64,
    free_units: u64,
}

impl IdRange<'_> {
    fn end(&self, unit_shift: u32) -> u64 {
        self.base + (self.units << unit_shift)
    }

    /// Smallest index `>= i` whose address is a multiple of `step` units,
    /// where `phase` is the first such index.
    fn align_index(i: u64, phase: u64, step: u64) -> u64 {
        if i <= phase {
            phase
        } else {
            phase + ((i - phase + step - 1) & !(step - 1))
        }
    }

    /// First run of `n` free units starting in `[from, to - n]`, aligned to
    /// `step` units (a power of two).
    fn find(&self, n: u64, step: u64, unit_shift: u32, from: u64, to: u64) -> Option<u64> {
        let base_units = self.base >> unit_shift;
        let phase = (step - (base_units & (step - 1))) & (step - 1);
        let mut i = from;
        loop {
            if i >= to || to - i < n {
                return None;
            }
            // Jump over busy units a word at a time.
            let z = self.bits[i as usize..to as usize].first_zero()? as u64;
            let c = Self::align_index(i + z, phase, step);
            if c >= to || to - c < n {
                return None;
            }
            match self.bits[c as usize..(c + n) as usize].last_one() {
                None => return Some(c),
                Some(k) => i = c + k as u64 + 1,
            }
        }
    }

    fn take(&mut self, i: u64, n: u64) {
        self.bits[i as usize..(i + n) as usize].fill(true);
        self.free_units -= n;
    }
}

/// A bitmap range allocator of ids or addresses. See the module docs.
pub struct IdHeap<'a> {
    name: &'static str,
    unit_shift: u32,
    ranges: [Option<IdRange<'a>>; MAX_RANGES],
    range_count: usize,
    /// Next-fit across ranges: the range the last allocation came from.
    next_range: usize,
    acct: Accounting,
}

impl<'a> IdHeap<'a> {
    /// An empty heap handing out ids in units of `unit` bytes (a power of
    /// two). Add ranges with [`IdHeap::add_range`].
    pub const fn new(name: &'static str, unit: u64) -> Self {
        assert!(
            unit.is_power_of_two(),
            "id heap unit must be a power of two"
        );
        IdHeap {
            name,
            unit_shift: unit.trailing_zeros(),
            ranges: [const { None }; MAX_RANGES],
            range_count: 0,
            next_range: 0,
            acct: Accounting::new(),
        }
    }

    /// Words of storage a range of `len` bytes needs at `unit`.
    pub const fn words_for(len: u64, unit: u64) -> usize {
        (len / unit).div_ceil(64) as usize
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn unit(&self) -> u64 {
        1 << self.unit_shift
    }

    /// Bytes free in all ranges.
    pub fn free_bytes(&self) -> u64 {
        self.ranges().map(|r| r.free_units << self.unit_shift).sum()
    }

    fn ranges(&self) -> impl Iterator<Item = &IdRange<'a>> {
        self.ranges[..self.range_count].iter().flatten()
    }

    /// Adds `[base, base + len)` with its bitmap in `storage` (cleared here;
    /// any contents are overwritten). Base and length must be multiples of
    /// the unit.
    pub fn add_range(
        &mut self,
        base: u64,
        len: u64,
        storage: &'a mut [u64],
    ) -> Result<(), RangeError> {
        let unit = self.unit();
        if len < unit {
            return Err(RangeError::Empty);
        }
        if base & (unit - 1) != 0 || len & (unit - 1) != 0 || base.checked_add(len).is_none() {
            return Err(RangeError::Misaligned);
        }
        let end = base + len;
        if self
            .ranges()
            .any(|r| base < r.end(self.unit_shift) && r.base < end)
        {
            return Err(RangeError::Overlaps);
        }
        if storage.len() < Self::words_for(len, unit) {
            return Err(RangeError::StorageTooSmall);
        }
        if self.range_count == MAX_RANGES {
            return Err(RangeError::TooManyRanges);
        }
        let units = len >> self.unit_shift;
        let bits = &mut Bits::from_slice_mut(storage)[..units as usize];
        bits.fill(false);
        self.ranges[self.range_count] = Some(IdRange {
            base,
            units,
            bits,
            hint: 0,
            free_units: units,
        });
        self.range_count += 1;
        self.acct.grew(len);
        Ok(())
    }

    /// Units for a request of `size` bytes (at least one).
    fn units_for(&self, size: u64) -> u64 {
        size.div_ceil(self.unit()).max(1)
    }

    /// Alignment in units (at least one).
    fn step_for(&self, align: u64) -> u64 {
        (align >> self.unit_shift).max(1)
    }

    fn range_index_of(&self, addr: u64) -> Option<usize> {
        (0..self.range_count).find(|&i| {
            self.ranges[i]
                .as_ref()
                .is_some_and(|r| r.base <= addr && addr < r.end(self.unit_shift))
        })
    }

    /// Allocates `size` bytes (rounded up to whole units) aligned to `align`,
    /// next-fit: each range is searched from its hint, ranges from the one
    /// that served last.
    pub fn alloc_units(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        check_align(self.name, align);
        let n = self.units_for(size);
        let step = self.step_for(align);
        let shift = self.unit_shift;
        for k in 0..self.range_count {
            let ri = (self.next_range + k) % self.range_count;
            let Some(r) = self.ranges[ri].as_mut() else {
                continue;
            };
            if r.free_units < n {
                continue;
            }
            let hint = r.hint.min(r.units);
            let found = r
                .find(n, step, shift, hint, r.units)
                .or_else(|| r.find(n, step, shift, 0, (hint + n - 1).min(r.units)));
            if let Some(i) = found {
                r.take(i, n);
                r.hint = if i + n >= r.units { 0 } else { i + n };
                self.next_range = ri;
                self.acct.allocated(n << shift);
                return Ok(r.base + (i << shift));
            }
        }
        Err(AllocError)
    }

    /// Allocates like [`IdHeap::alloc_units`] but only inside the address
    /// window `[lo, hi)` (e.g. below 4 GiB for 32-bit DMA), first fit from
    /// `lo`. Leaves the next-fit hints alone.
    pub fn alloc_in(&mut self, size: u64, align: u64, lo: u64, hi: u64) -> Result<u64, AllocError> {
        check_align(self.name, align);
        let n = self.units_for(size);
        let step = self.step_for(align);
        let shift = self.unit_shift;
        for r in self.ranges[..self.range_count].iter_mut().flatten() {
            let end = r.end(shift);
            let from_addr = lo.max(r.base);
            let to_addr = hi.min(end);
            if from_addr >= to_addr || r.free_units < n {
                continue;
            }
            let from = (from_addr - r.base).div_ceil(1 << shift);
            let to = (to_addr - r.base) >> shift;
            if let Some(i) = r.find(n, step, shift, from, to) {
                r.take(i, n);
                self.acct.allocated(n << shift);
                return Ok(r.base + (i << shift));
            }
        }
        Err(AllocError)
    }

    /// Points the next-fit hint of the range holding `addr` at `addr`, so
    /// the next allocation from that range searches from there.
    pub fn set_hint(&mut self, addr: u64) {
        if let Some(ri) = self.range_index_of(addr) {
            let shift = self.unit_shift;
            let r = self.ranges[ri].as_mut().expect("range index is live");
            r.hint = (addr - r.base) >> shift;
            self.next_range = ri;
        }
    }

    /// Marks `[addr, addr + len)`, widened to whole units, allocated (e.g. the
    /// kernel image inside a memory range). It must lie inside one range and
    /// be entirely free. Reserved bytes count as allocated.
    pub fn reserve(&mut self, addr: u64, len: u64) -> Result<(), ReserveError> {
        let unit = self.unit();
        let start = addr & !(unit - 1);
        let end = addr
            .checked_add(len.max(1))
            .and_then(|e| e.checked_add(unit - 1))
            .ok_or(ReserveError::NotInHeap)?
            & !(unit - 1);
        let ri = self.range_index_of(start).ok_or(ReserveError::NotInHeap)?;
        let shift = self.unit_shift;
        let r = self.ranges[ri].as_mut().expect("range index is live");
        if end > r.end(shift) {
            return Err(ReserveError::NotInHeap);
        }
        let i = (start - r.base) >> shift;
        let n = (end - start) >> shift;
        if r.bits[i as usize..(i + n) as usize].any() {
            return Err(ReserveError::Busy);
        }
        r.take(i, n);
        self.acct.allocated(n << shift);
        Ok(())
    }

    /// Frees `[addr, addr + size)` (rounded up to whole units) if every unit
    /// of it is allocated; otherwise changes nothing and says why.
    pub fn try_dealloc(&mut self, addr: u64, size: u64) -> Result<(), BadFree> {
        let shift = self.unit_shift;
        if addr & (self.unit() - 1) != 0 {
            return Err(BadFree::Misaligned);
        }
        let n = self.units_for(size);
        let ri = self.range_index_of(addr).ok_or(BadFree::NotInHeap)?;
        let r = self.ranges[ri].as_mut().expect("range index is live");
        let i = (addr - r.base) >> shift;
        if r.units - i < n {
            return Err(BadFree::NotInHeap);
        }
        let span = &mut r.bits[i as usize..(i + n) as usize];
        if !span.all() {
            return Err(BadFree::NotAllocated);
        }
        span.fill(false);
        r.free_units += n;
        self.acct.freed(n << shift);
        Ok(())
    }

    /// Whether every unit of `[addr, addr + size)` is allocated.
    pub fn is_allocated(&self, addr: u64, size: u64) -> bool {
        let shift = self.unit_shift;
        let n = self.units_for(size);
        let Some(ri) = self.range_index_of(addr) else {
            return false;
        };
        let r = self.ranges[ri].as_ref().expect("range index is live");
        let i = (addr - r.base) >> shift;
        r.units - i >= n && r.bits[i as usize..(i + n) as usize].all()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_free(name: &'static str, addr: u64, size: u64, why: BadFree) -> ! {
    panic!("id heap `{name}`: bad free of {addr:#x} (+{size:#x}): {why}")
}

impl Heap for IdHeap<'_> {
    #[inline]
    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        self.alloc_units(size, align)
    }

    #[inline]
    #[track_caller]
    fn dealloc(&mut self, addr: u64, size: u64) {
        if let Err(why) = self.try_dealloc(addr, size) {
            bad_free(self.name, addr, size, why);
        }
    }

    fn stats(&self) -> HeapStats {
        self.acct.snapshot(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn storage(len: u64, unit: u64) -> Vec<u64> {
        vec![!0u64; IdHeap::words_for(len, unit)]
    }

    #[test]
    fn words_for_rounds_up() {
        assert_eq!(IdHeap::words_for(4096 * 64, 4096), 1);
        assert_eq!(IdHeap::words_for(4096 * 65, 4096), 2);
        assert_eq!(IdHeap::words_for(0, 4096), 0);
    }

    #[test]
    fn allocates_contiguous_aligned_runs_and_frees_them() {
        let mut s = storage(1 << 20, 4096);
        let mut h = IdHeap::new("pages", 4096);
        // Base deliberately not 64 KiB aligned.
        h.add_range(0x10_3000, 1 << 20, &mut s).unwrap();
        let a = h.alloc(3 * 4096, 4096).unwrap();
        assert_eq!(a, 0x10_3000);
        let b = h.alloc(1, 0x1_0000).unwrap();
        assert_eq!(b % 0x1_0000, 0);
        assert!(b >= a + 3 * 4096);
        assert_eq!(h.stats().allocated, 4 * 4096);
        h.dealloc(a, 3 * 4096);
        h.dealloc(b, 4096);
        assert_eq!(h.stats().allocated, 0);
        assert_eq!(h.stats().high_water, 4 * 4096);
        assert_eq!(h.free_bytes(), 1 << 20);
    }

    #[test]
    fn next_fit_moves_on_then_wraps() {
        let mut s = storage(8, 1);
        let mut h = IdHeap::new("ids", 1);
        h.add_range(0, 8, &mut s).unwrap();
        let a = h.alloc(1, 1).unwrap();
        h.dealloc(a, 1);
        // Next fit: the freed id 0 is not reused at once.
        assert_eq!(h.alloc(1, 1).unwrap(), 1);
        for want in 2..8 {
            assert_eq!(h.alloc(1, 1).unwrap(), want);
        }
        // Wrapped around to the freed 0.
        assert_eq!(h.alloc(1, 1).unwrap(), 0);
        assert_eq!(h.alloc(1, 1), Err(AllocError));
    }

    #[test]
    fn run_that_straddles_the_hint_is_found() {
        let mut s = storage(8, 1);
        let mut h = IdHeap::new("ids", 1);
        h.add_range(0, 8, &mut s).unwrap();
        for _ in 0..8 {
            h.alloc(1, 1).unwrap();
        }
        // Free 2..6, put the hint at 4: a run of 4 must start at 2.
        h.dealloc(2, 4);
        h.set_hint(4);
        assert_eq!(h.alloc(4, 1).unwrap(), 2);
    }

    #[test]
    fn several_ranges_and_out_of_memory() {
        let (mut s1, mut s2) = (storage(4, 1), storage(4, 1));
        let mut h = IdHeap::new("ids", 1);
        h.add_range(100, 4, &mut s1).unwrap();
        h.add_range(200, 4, &mut s2).unwrap();
        assert_eq!(h.stats().total, 8);
        // A run of 4 fits in one range; a run of 5 in none.
        assert_eq!(h.alloc(5, 1), Err(AllocError));
        let a = h.alloc(4, 1).unwrap();
        let b = h.alloc(4, 1).unwrap();
        assert_eq!([a.min(b), a.max(b)], [100, 200]);
        assert_eq!(h.alloc(1, 1), Err(AllocError));
    }

    #[test]
    fn add_range_refuses_bad_ranges() {
        let mut big = storage(1 << 16, 4096);
        let mut other = storage(1 << 16, 4096);
        let mut h = IdHeap::new("pages", 4096);
        assert_eq!(h.add_range(0x1000, 100, &mut []), Err(RangeError::Empty));
        assert_eq!(
            h.add_range(0x1001, 0x2000, &mut []),
            Err(RangeError::Misaligned)
        );
        assert_eq!(
            h.add_range(0x1000, 1 << 16, &mut []),
            Err(RangeError::StorageTooSmall)
        );
        h.add_range(0x1000, 1 << 16, &mut big).unwrap();
        assert_eq!(
            h.add_range(0x2000, 0x1000, &mut other),
            Err(RangeError::Overlaps)
        );
    }

    #[test]
    fn too_many_ranges() {
        let mut words: Vec<u64> = vec![0; MAX_RANGES + 1];
        let mut h = IdHeap::new("ids", 1);
        let mut parts = words.iter_mut();
        for i in 0..MAX_RANGES as u64 {
            h.add_range(i * 64, 64, core::slice::from_mut(parts.next().unwrap()))
                .unwrap();
        }
        assert_eq!(
            h.add_range(10_000, 64, core::slice::from_mut(parts.next().unwrap())),
            Err(RangeError::TooManyRanges)
        );
    }

    #[test]
    fn reserve_claims_a_given_span_and_fails_if_busy() {
        let mut s = storage(1 << 20, 4096);
        let mut h = IdHeap::new("pages", 4096);
        h.add_range(0, 1 << 20, &mut s).unwrap();
        // Widened to whole pages: 0x1800..0x3800 is pages 1, 2 and 3.
        h.reserve(0x1800, 0x2000).unwrap();
        assert!(h.is_allocated(0x1000, 3 * 4096));
        assert_eq!(h.stats().allocated, 3 * 4096);
        assert_eq!(h.reserve(0x3000, 1), Err(ReserveError::Busy));
        assert_eq!(h.reserve(1 << 20, 1), Err(ReserveError::NotInHeap));
        assert_eq!(
            h.reserve((1 << 20) - 4096, 8192),
            Err(ReserveError::NotInHeap)
        );
        // Allocation skips the reservation.
        assert_eq!(h.alloc(4096, 4096).unwrap(), 0);
        assert_eq!(h.alloc(4096, 4096).unwrap(), 0x4000);
    }

    #[test]
    fn alloc_in_respects_the_window() {
        let mut s = storage(1 << 20, 4096);
        let mut h = IdHeap::new("pages", 4096);
        h.add_range(0, 1 << 20, &mut s).unwrap();
        let a = h.alloc_in(8192, 8192, 0x8_1000, 0x9_0000).unwrap();
        assert_eq!(a, 0x8_2000);
        assert_eq!(
            h.alloc_in(0x1_0000, 4096, 0x8_0000, 0x8_8000),
            Err(AllocError)
        );
    }

    #[test]
    fn try_dealloc_reports_without_changing_anything() {
        let mut s = storage(16, 1);
        let mut h = IdHeap::new("ids", 1);
        h.add_range(0, 16, &mut s).unwrap();
        let a = h.alloc(2, 1).unwrap();
        assert_eq!(h.try_dealloc(a, 3), Err(BadFree::NotAllocated));
        assert_eq!(h.try_dealloc(100, 1), Err(BadFree::NotInHeap));
        assert_eq!(h.try_dealloc(15, 2), Err(BadFree::NotInHeap));
        assert!(h.is_allocated(a, 2));
        assert_eq!(h.stats().allocated, 2);
        h.dealloc(a, 2);
    }

    #[test]
    fn misaligned_free_is_refused() {
        let mut s = storage(1 << 16, 4096);
        let mut h = IdHeap::new("pages", 4096);
        h.add_range(0, 1 << 16, &mut s).unwrap();
        let a = h.alloc(4096, 4096).unwrap();
        assert_eq!(h.try_dealloc(a + 8, 4096), Err(BadFree::Misaligned));
    }

    #[test]
    #[should_panic(expected = "id heap `victim`: bad free of 0x3000 (+0x1000): double free")]
    fn double_free_panics_naming_the_heap() {
        let mut s = storage(1 << 16, 4096);
        let mut h = IdHeap::new("victim", 4096);
        h.add_range(0, 1 << 16, &mut s).unwrap();
        for _ in 0..4 {
            h.alloc(4096, 4096).unwrap();
        }
        h.dealloc(0x3000, 4096);
        h.dealloc(0x3000, 4096);
    }

    #[test]
    #[should_panic(expected = "id heap `victim`: bad free of 0x100000 (+0x1000): foreign address")]
    fn foreign_free_panics_naming_the_heap() {
        let mut s = storage(1 << 16, 4096);
        let mut h = IdHeap::new("victim", 4096);
        h.add_range(0, 1 << 16, &mut s).unwrap();
        h.dealloc(0x10_0000, 4096);
    }

    #[test]
    #[should_panic(expected = "heap `victim`: alignment 0x3 is not a power of two")]
    fn bad_alignment_panics() {
        let mut h = IdHeap::new("victim", 1);
        let _ = h.alloc(1, 3);
    }
}
