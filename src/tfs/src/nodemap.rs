//! [`NodeMap`]: a map keyed by [`NodeId`] for the mount index (files, name
//! counts): a table indexed by node id holding each entry's position in a
//! dense vector of entries. Lookups are an index and a bounds check, an
//! insert a push (no tree nodes to allocate or rebalance: a mount inserts
//! tens of thousands of files), a removal a swap with the last entry.
//! Node ids are dense (a store's slots), so the table is as long as the
//! largest id inserted. Iteration is in key order, like the B-trees it
//! replaces.
//!
//! Plain data: whoever owns it serialises access; takes no locks.

use crate::store::NodeId;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// No entry for this id.
const NONE: u32 = u32::MAX;

/// A map from node id to `V`.
#[derive(Clone, Debug)]
pub struct NodeMap<V> {
    /// Position in `entries` by node id, `NONE` if absent.
    slot: Vec<u32>,
    entries: Vec<(NodeId, V)>,
}

impl<V> Default for NodeMap<V> {
    fn default() -> Self {
        NodeMap {
            slot: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl<V> NodeMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for ids below `ids` and `entries` entries.
    pub fn with_capacity(ids: usize, entries: usize) -> Self {
        NodeMap {
            slot: alloc::vec![NONE; ids],
            entries: Vec::with_capacity(entries),
        }
    }

    fn position(&self, k: NodeId) -> Option<usize> {
        match self.slot.get(k as usize) {
            Some(&p) if p != NONE => Some(p as usize),
            _ => None,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `k`.
    pub fn get(&self, k: &NodeId) -> Option<&V> {
        self.position(*k).map(|p| &self.entries[p].1)
    }

    /// The value of `k`, to change.
    pub fn get_mut(&mut self, k: &NodeId) -> Option<&mut V> {
        self.position(*k).map(|p| &mut self.entries[p].1)
    }

    /// True if `k` has a value.
    pub fn contains_key(&self, k: &NodeId) -> bool {
        self.position(*k).is_some()
    }

    /// Makes room for entries of ids below `ids` and `entries` more
    /// entries, or says that memory is short.
    pub fn try_reserve(&mut self, ids: usize, entries: usize) -> Result<(), TryReserveError> {
        self.slot.try_reserve(ids.saturating_sub(self.slot.len()))?;
        self.entries.try_reserve(entries)
    }

    /// Sets the value of `k`; returns the previous one.
    pub fn insert(&mut self, k: NodeId, v: V) -> Option<V> {
        if let Some(p) = self.position(k) {
            return Some(core::mem::replace(&mut self.entries[p].1, v));
        }
        let i = k as usize;
        if self.slot.len() <= i {
            self.slot.resize(i + 1, NONE);
        }
        // More than u32::MAX - 1 entries cannot exist: ids are u32 and
        // each has at most one entry.
        self.slot[i] = self.entries.len() as u32;
        self.entries.push((k, v));
        None
    }

    /// The value of `k`, inserting `v` first if it has none.
    pub fn get_or_insert(&mut self, k: NodeId, v: V) -> &mut V {
        let p = match self.position(k) {
            Some(p) => p,
            None => {
                self.insert(k, v);
                self.entries.len() - 1
            }
        };
        &mut self.entries[p].1
    }

    /// Removes the value of `k` and returns it.
    pub fn remove(&mut self, k: &NodeId) -> Option<V> {
        let p = self.position(*k)?;
        self.slot[*k as usize] = NONE;
        let (_, v) = self.entries.swap_remove(p);
        if let Some(&(moved, _)) = self.entries.get(p) {
            self.slot[moved as usize] = p as u32;
        }
        Some(v)
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            slot: self.slot.iter(),
            entries: &self.entries,
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &NodeId> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<V> core::ops::Index<&NodeId> for NodeMap<V> {
    type Output = V;
    fn index(&self, k: &NodeId) -> &V {
        match self.get(k) {
            Some(v) => v,
            None => panic!("NodeMap: no entry for node {k}"),
        }
    }
}

/// The entries of a [`NodeMap`] in key order.
pub struct Iter<'a, V> {
    slot: core::slice::Iter<'a, u32>,
    entries: &'a [(NodeId, V)],
}

impl<'a, V> Iter<'a, V> {
    fn entry(&self, p: u32) -> (&'a NodeId, &'a V) {
        let (k, v) = &self.entries[p as usize];
        (k, v)
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a NodeId, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        let p = *self.slot.find(|&&p| p != NONE)?;
        Some(self.entry(p))
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let p = *self.slot.rfind(|&&p| p != NONE)?;
        Some(self.entry(p))
    }
}

impl<'a, V> IntoIterator for &'a NodeMap<V> {
    type Item = (&'a NodeId, &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// A small deterministic generator (xorshift), so the test needs no
    /// dependency and replays the same operations every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn behaves_like_a_btreemap() {
        for seed in 1..20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut m: NodeMap<u64> = NodeMap::new();
            let mut model: BTreeMap<NodeId, u64> = BTreeMap::new();
            let span = 1 + (seed * 37) as u32;
            for step in 0..3000u64 {
                let k = (rng.next() % u64::from(span)) as NodeId;
                match rng.next() % 6 {
                    0 | 1 => assert_eq!(m.insert(k, step), model.insert(k, step)),
                    2 => assert_eq!(m.remove(&k), model.remove(&k)),
                    3 => {
                        *m.get_or_insert(k, 0) += 1;
                        *model.entry(k).or_insert(0) += 1;
                    }
                    4 => {
                        if let (Some(a), Some(b)) = (m.get_mut(&k), model.get_mut(&k)) {
                            *a += 7;
                            *b += 7;
                        }
                    }
                    _ => {}
                }
                assert_eq!(m.get(&k), model.get(&k));
                assert_eq!(m.contains_key(&k), model.contains_key(&k));
                assert_eq!(m.len(), model.len());
                if step % 97 == 0 {
                    let got: Vec<(NodeId, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
                    let want: Vec<(NodeId, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                    assert_eq!(got, want);
                    for k in 0..span {
                        assert_eq!(m.get(&k), model.get(&k), "key {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn absent_ids_beyond_the_table() {
        let mut m: NodeMap<u8> = NodeMap::new();
        assert_eq!(m.get(&1_000_000), None);
        assert_eq!(m.remove(&5), None);
        m.insert(3, 1);
        assert_eq!(m.get(&4), None);
        assert_eq!(m.get(&2), None);
        assert_eq!(m[&3], 1);
        assert!(!m.is_empty());
    }
}
