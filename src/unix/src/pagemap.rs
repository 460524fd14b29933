//! A sparse map from page-aligned user addresses to one record per mapped
//! page: the address space's page records (`process::aspace` in the
//! kernel keeps what backs each mapped page in one).
//!
//! **Shape.** Pages are grouped in leaves of [`LEAF_PAGES`] consecutive
//! pages (256 KiB of address space), each an array indexed by the page's
//! place in it, kept in a B-tree by the leaf's base address. A fault's
//! insert, and the lookups around it, are an array store once the leaf
//! exists; an munmap walks the arrays of the leaves its range covers
//! instead of searching a tree once per page. A leaf is freed when its last
//! record goes, so memory stays proportional to the pages mapped (a leaf
//! of one page costs `LEAF_PAGES` slots, the worst case of a program that
//! maps lone pages 256 KiB apart).
//!
//! **What it does not own.** The page-table entries, the frames and pins
//! behind the records: the caller unmaps and releases what it takes out.
//!
//! **Contexts and locks.** Plain data with no lock of its own (see the
//! crate's doc); the kernel keeps it under its `aspace` lock. Only
//! [`PageMap::insert`] allocates (a new leaf), only removals free.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// Pages per leaf.
pub const LEAF_PAGES: usize = 64;
/// Bytes of address space a leaf covers.
pub const LEAF_SPAN: u64 = PAGE * LEAF_PAGES as u64;

struct Leaf<T> {
    /// Slots holding a record.
    used: usize,
    slots: [Option<T>; LEAF_PAGES],
}

impl<T> Leaf<T> {
    fn new() -> Box<Self> {
        Box::new(Leaf {
            used: 0,
            slots: [const { None }; LEAF_PAGES],
        })
    }
}

/// Page records keyed by page-aligned address (see the module doc).
pub struct PageMap<T> {
    leaves: BTreeMap<u64, Box<Leaf<T>>>,
    len: usize,
}

impl<T> Default for PageMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The leaf base and slot of page-aligned `addr`.
fn split(addr: u64) -> (u64, usize) {
    debug_assert_eq!(addr % PAGE, 0, "page records are keyed by page address");
    let base = addr & !(LEAF_SPAN - 1);
    (base, ((addr - base) / PAGE) as usize)
}

impl<T> PageMap<T> {
    /// An empty map.
    pub const fn new() -> Self {
        PageMap {
            leaves: BTreeMap::new(),
            len: 0,
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The record of page `addr`.
    pub fn get(&self, addr: u64) -> Option<&T> {
        let (base, slot) = split(addr);
        self.leaves.get(&base)?.slots[slot].as_ref()
    }

    /// Whether page `addr` has a record.
    pub fn contains(&self, addr: u64) -> bool {
        self.get(addr).is_some()
    }

    /// Sets the record of page `addr`, returning the one it replaces.
    pub fn insert(&mut self, addr: u64, record: T) -> Option<T> {
        let (base, slot) = split(addr);
        let leaf = self.leaves.entry(base).or_insert_with(Leaf::new);
        let old = leaf.slots[slot].replace(record);
        if old.is_none() {
            leaf.used += 1;
            self.len += 1;
        }
        old
    }

    /// Takes the record of page `addr` out.
    pub fn remove(&mut self, addr: u64) -> Option<T> {
        let (base, slot) = split(addr);
        let leaf = self.leaves.get_mut(&base)?;
        let old = leaf.slots[slot].take()?;
        leaf.used -= 1;
        self.len -= 1;
        if leaf.used == 0 {
            self.leaves.remove(&base);
        }
        Some(old)
    }

    /// The records of the pages in `[start, end)`, in address order.
    pub fn range(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &T)> {
        let first = start & !(LEAF_SPAN - 1);
        self.leaves
            .range(first..end.max(first))
            .flat_map(move |(&base, leaf)| {
                leaf.slots.iter().enumerate().filter_map(move |(i, s)| {
                    let addr = base + i as u64 * PAGE;
                    s.as_ref()
                        .filter(|_| addr >= start && addr < end)
                        .map(|r| (addr, r))
                })
            })
    }

    /// The base of the first leaf holding records at or after the leaf of
    /// `at` and below `end` (leaves cover [`LEAF_SPAN`] bytes each).
    pub fn next_leaf(&self, at: u64, end: u64) -> Option<u64> {
        let first = at & !(LEAF_SPAN - 1);
        self.leaves
            .range(first..end.max(first))
            .next()
            .map(|(&base, _)| base)
    }

    /// Takes the records of the pages in `[start, end)` out, in address
    /// order, handing each to `each`.
    pub fn take_range(&mut self, start: u64, end: u64, mut each: impl FnMut(u64, T)) {
        let mut at = start;
        while let Some(base) = self.next_leaf(at, end) {
            let leaf = self.leaves.get_mut(&base).expect("leaf just found");
            let from = (at.saturating_sub(base) / PAGE) as usize;
            let to = end
                .saturating_sub(base)
                .div_ceil(PAGE)
                .min(LEAF_PAGES as u64) as usize;
            for i in from..to {
                if let Some(r) = leaf.slots[i].take() {
                    leaf.used -= 1;
                    self.len -= 1;
                    each(base + i as u64 * PAGE, r);
                }
            }
            if leaf.used == 0 {
                self.leaves.remove(&base);
            }
            at = base + LEAF_SPAN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap as Model;
    use alloc::vec::Vec;

    #[test]
    fn insert_get_remove_and_leaves_freed() {
        let mut m = PageMap::new();
        assert_eq!(m.insert(0x1000, 1), None);
        assert_eq!(m.insert(0x1000, 2), Some(1));
        assert_eq!(m.insert(0x40_0000, 3), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(0x1000), Some(&2));
        assert!(!m.contains(0x2000));
        assert_eq!(m.remove(0x1000), Some(2));
        assert_eq!(m.remove(0x1000), None);
        assert_eq!(m.leaves.len(), 1, "an empty leaf is freed");
        assert_eq!(m.remove(0x40_0000), Some(3));
        assert!(m.is_empty() && m.leaves.is_empty());
    }

    #[test]
    fn range_is_bounded_and_ordered() {
        let mut m = PageMap::new();
        for p in [0u64, 1, 63, 64, 65, 200, 1000] {
            m.insert(p * PAGE, p);
        }
        let got: Vec<u64> = m.range(PAGE, 200 * PAGE).map(|(_, &v)| v).collect();
        assert_eq!(got, [1, 63, 64, 65]);
        let got: Vec<u64> = m
            .range(64 * PAGE, 65 * PAGE)
            .map(|(a, _)| a / PAGE)
            .collect();
        assert_eq!(got, [64]);
        assert_eq!(m.range(5 * PAGE, 5 * PAGE).count(), 0);
        assert_eq!(m.next_leaf(PAGE, 1001 * PAGE), Some(0));
        assert_eq!(m.next_leaf(66 * PAGE, 1001 * PAGE), Some(64 * PAGE));
        assert_eq!(m.next_leaf(128 * PAGE, 1001 * PAGE), Some(192 * PAGE));
        assert_eq!(m.next_leaf(256 * PAGE, 960 * PAGE), None);
        assert_eq!(m.next_leaf(256 * PAGE, 961 * PAGE), Some(960 * PAGE));
    }

    #[test]
    fn take_range_takes_exactly_the_range() {
        let mut m = PageMap::new();
        for p in 0..300u64 {
            m.insert(p * PAGE, p);
        }
        let mut out = Vec::new();
        m.take_range(10 * PAGE, 290 * PAGE, |a, v| {
            assert_eq!(a, v * PAGE);
            out.push(v)
        });
        assert_eq!(out, (10..290).collect::<Vec<_>>());
        assert_eq!(m.len(), 20);
        let left: Vec<u64> = m.range(0, u64::MAX).map(|(_, &v)| v).collect();
        assert_eq!(left, (0..10).chain(290..300).collect::<Vec<_>>());
        assert_eq!(m.leaves.len(), 2, "emptied leaves are freed");
    }

    /// Random operations against a B-tree of the same records.
    #[test]
    fn matches_a_btree_model() {
        let mut m = PageMap::new();
        let mut model = Model::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..20_000u64 {
            let page = (rnd() % 2048) * PAGE;
            match rnd() % 4 {
                0 | 1 => assert_eq!(m.insert(page, step), model.insert(page, step)),
                2 => assert_eq!(m.remove(page), model.remove(&page)),
                _ => {
                    let end = page + (rnd() % 300) * PAGE;
                    let mut got = Vec::new();
                    m.take_range(page, end, |a, v| got.push((a, v)));
                    let want: Vec<(u64, u64)> =
                        model.range(page..end).map(|(&a, &v)| (a, v)).collect();
                    for (a, _) in &want {
                        model.remove(a);
                    }
                    assert_eq!(got, want);
                }
            }
            assert_eq!(m.len(), model.len());
        }
        let all: Vec<(u64, u64)> = m.range(0, u64::MAX).map(|(a, &v)| (a, v)).collect();
        let want: Vec<(u64, u64)> = model.into_iter().collect();
        assert_eq!(all, want);
        assert_eq!(m.leaves.values().map(|l| l.used).sum::<usize>(), m.len());
    }
}
