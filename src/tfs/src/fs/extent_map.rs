//! [`ExtentMap`]: a file's extents by first file sector. Most files have one
//! or two extents, kept inline (a mount of ten thousand small files then
//! allocates no map per file); a third moves them into a B-tree. The
//! interface is the part of `BTreeMap` the filesystem uses, with the same
//! key order.
//!
//! Plain data owned by the file's index entry; takes no locks.

use super::index::Extent;
use alloc::collections::BTreeMap;
use alloc::collections::btree_map;
use core::ops::{Bound, RangeBounds};

/// Extents kept inline before a map moves to a B-tree.
const INLINE: usize = 2;

/// A file's extents by first file sector.
#[derive(Clone, Debug)]
pub enum ExtentMap {
    /// `items[..len]`, sorted by key.
    Inline {
        /// Entries in use.
        len: u8,
        /// Entries, sorted by key in `..len`.
        items: [(u64, Extent); INLINE],
    },
    /// More than [`INLINE`] extents (or once had).
    Tree(BTreeMap<u64, Extent>),
}

impl Default for ExtentMap {
    fn default() -> Self {
        ExtentMap::Inline {
            len: 0,
            items: [(0, Extent::default()); INLINE],
        }
    }
}

impl ExtentMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of extents.
    pub fn len(&self) -> usize {
        match self {
            ExtentMap::Inline { len, .. } => usize::from(*len),
            ExtentMap::Tree(m) => m.len(),
        }
    }

    /// True if there are no extents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The extent starting at file sector `k`.
    pub fn get(&self, k: &u64) -> Option<&Extent> {
        match self {
            ExtentMap::Inline { len, items } => items[..usize::from(*len)]
                .iter()
                .find(|e| e.0 == *k)
                .map(|e| &e.1),
            ExtentMap::Tree(m) => m.get(k),
        }
    }

    /// The extent starting at file sector `k`, to change.
    pub fn get_mut(&mut self, k: &u64) -> Option<&mut Extent> {
        match self {
            ExtentMap::Inline { len, items } => items[..usize::from(*len)]
                .iter_mut()
                .find(|e| e.0 == *k)
                .map(|e| &mut e.1),
            ExtentMap::Tree(m) => m.get_mut(k),
        }
    }

    /// Sets the extent at file sector `k`; returns the previous one.
    pub fn insert(&mut self, k: u64, x: Extent) -> Option<Extent> {
        match self {
            ExtentMap::Inline { len, items } => {
                let n = usize::from(*len);
                match items[..n].binary_search_by_key(&k, |e| e.0) {
                    Ok(i) => Some(core::mem::replace(&mut items[i].1, x)),
                    Err(i) if n < INLINE => {
                        items[i..=n].rotate_right(1);
                        items[i] = (k, x);
                        *len += 1;
                        None
                    }
                    Err(_) => {
                        let mut m: BTreeMap<u64, Extent> = items.iter().copied().collect();
                        m.insert(k, x);
                        *self = ExtentMap::Tree(m);
                        None
                    }
                }
            }
            ExtentMap::Tree(m) => m.insert(k, x),
        }
    }

    /// Removes the extent at file sector `k` and returns it.
    pub fn remove(&mut self, k: &u64) -> Option<Extent> {
        match self {
            ExtentMap::Inline { len, items } => {
                let n = usize::from(*len);
                let i = items[..n].binary_search_by_key(k, |e| e.0).ok()?;
                let old = items[i].1;
                items[i..n].rotate_left(1);
                *len -= 1;
                Some(old)
            }
            ExtentMap::Tree(m) => m.remove(k),
        }
    }

    /// The extents whose first file sector lies in `range`, in order.
    pub fn range<R: RangeBounds<u64>>(&self, range: R) -> Iter<'_> {
        match self {
            ExtentMap::Inline { len, items } => {
                let run = &items[..usize::from(*len)];
                let lo = run.partition_point(|e| match range.start_bound() {
                    Bound::Included(s) => e.0 < *s,
                    Bound::Excluded(s) => e.0 <= *s,
                    Bound::Unbounded => false,
                });
                let hi = run.partition_point(|e| match range.end_bound() {
                    Bound::Included(s) => e.0 <= *s,
                    Bound::Excluded(s) => e.0 < *s,
                    Bound::Unbounded => true,
                });
                Iter::Inline(run[lo..hi.max(lo)].iter())
            }
            ExtentMap::Tree(m) => Iter::Tree(m.range(range)),
        }
    }

    /// All extents in order.
    pub fn iter(&self) -> Iter<'_> {
        self.range(..)
    }

    /// All extents in order, without their keys.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Extent> + '_ {
        self.iter().map(|(_, x)| x)
    }
}

/// Extents of an [`ExtentMap`] in key order.
pub enum Iter<'a> {
    /// From the inline entries.
    Inline(core::slice::Iter<'a, (u64, Extent)>),
    /// From the B-tree.
    Tree(btree_map::Range<'a, u64, Extent>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a u64, &'a Extent);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Inline(i) => i.next().map(|(k, x)| (k, x)),
            Iter::Tree(i) => i.next(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Inline(i) => i.next_back().map(|(k, x)| (k, x)),
            Iter::Tree(i) => i.next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn extent(n: u64) -> Extent {
        Extent {
            start: n * 3,
            length: n + 1,
            allocated: n + 2,
            uninited: n % 2 == 0,
            tuple: n as u32,
        }
    }

    fn pairs<'a>(i: impl Iterator<Item = (&'a u64, &'a Extent)>) -> Vec<(u64, Extent)> {
        i.map(|(k, x)| (*k, *x)).collect()
    }

    /// Every operation and every kind of range agrees with a `BTreeMap`,
    /// through the inline sizes and the move to a tree.
    #[test]
    fn behaves_like_a_btreemap() {
        for seed in 1..40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut m = ExtentMap::new();
            let mut model: BTreeMap<u64, Extent> = BTreeMap::new();
            // Small key spaces keep most maps at 0..=2 entries.
            let span = 2 + seed % 7;
            for _ in 0..400 {
                let k = rng.next() % span;
                let v = extent(rng.next() % 100);
                match rng.next() % 5 {
                    0 | 1 => assert_eq!(m.insert(k, v), model.insert(k, v)),
                    2 => assert_eq!(m.remove(&k), model.remove(&k)),
                    3 => {
                        if let (Some(a), Some(b)) = (m.get_mut(&k), model.get_mut(&k)) {
                            a.length += 1;
                            b.length += 1;
                        }
                    }
                    _ => {}
                }
                assert_eq!(m.get(&k), model.get(&k));
                assert_eq!(m.len(), model.len());
                assert_eq!(pairs(m.iter()), pairs(model.iter()));
                assert_eq!(pairs(m.iter().rev()), pairs(model.iter().rev()));
                let a = rng.next() % (span + 1);
                let b = a + rng.next() % (span + 1);
                assert_eq!(pairs(m.range(a..b)), pairs(model.range(a..b)));
                assert_eq!(pairs(m.range(..=a)), pairs(model.range(..=a)));
                assert_eq!(pairs(m.range(..a)), pairs(model.range(..a)));
                assert_eq!(pairs(m.range(a..)), pairs(model.range(a..)));
                assert_eq!(pairs(m.range(a..=b)), pairs(model.range(a..=b)));
                assert_eq!(
                    m.range(..a).next_back().map(|(k, _)| *k),
                    model.range(..a).next_back().map(|(k, _)| *k)
                );
                let vals: Vec<Extent> = m.values().copied().collect();
                let want: Vec<Extent> = model.values().copied().collect();
                assert_eq!(vals, want);
            }
        }
    }
}
