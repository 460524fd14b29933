//! The address registry of a cache: an open-addressing hash map from an
//! address to a `u64`, kept in memory the cache allocates from its
//! [`BackedHeap`] parent, so it needs no allocator of its own.
//!
//! Object caches register each page they hold (so that a free can prove a
//! page is theirs before touching it) and the mcache its large allocations
//! with their sizes (so that `free(addr)` works without a size and a header
//! that would break alignment). Linear probing, load at most one half,
//! backward-shift deletion (no tombstones); the table doubles when needed
//! and is handed back to the parent by [`AddrMap::release_if_empty`].
//!
//! Contexts and locks: none of its own; it is a field of its cache, used
//! under whatever makes the cache exclusive.

use crate::heap::{AllocError, BackedHeap};

/// Key of an empty slot. Registered addresses are aligned starts of
/// allocations, never `u64::MAX`.
const EMPTY: u64 = u64::MAX;
const SLOT_BYTES: u64 = 16;
/// Slots in the first table: 4 KiB.
const INITIAL_SLOTS: u64 = 256;

pub(crate) struct AddrMap {
    /// Address of the slot array (`capacity` pairs of `u64`: key, value), or
    /// 0 before the first insert.
    table: u64,
    /// Slots, a power of two (0 before the first insert).
    capacity: u64,
    /// `64 - log2(capacity)`: the hash is the top bits of a product.
    hash_shift: u32,
    len: u64,
}

impl AddrMap {
    pub(crate) const fn new() -> Self {
        AddrMap {
            table: 0,
            capacity: 0,
            hash_shift: 64,
            len: 0,
        }
    }

    /// Bytes of the table, held from the parent.
    #[inline]
    pub(crate) fn bytes(&self) -> u64 {
        self.capacity * SLOT_BYTES
    }

    #[inline]
    fn slot_of(&self, key: u64) -> u64 {
        key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.hash_shift
    }

    #[inline]
    fn slot_ptr(&self, i: u64) -> *mut u64 {
        debug_assert!(i < self.capacity);
        core::ptr::with_exposed_provenance_mut((self.table + i * SLOT_BYTES) as usize)
    }

    #[inline]
    fn key(&self, i: u64) -> u64 {
        // SAFETY: `table` is a live allocation of `capacity` 16-byte slots
        // from a `BackedHeap` (see `grow`), owned by this map alone, and
        // `i < capacity`; both words of every slot were written by `grow`.
        unsafe { self.slot_ptr(i).read() }
    }

    #[inline]
    fn value(&self, i: u64) -> u64 {
        // SAFETY: as in `key`, for the slot's second word.
        unsafe { self.slot_ptr(i).add(1).read() }
    }

    #[inline]
    fn set(&mut self, i: u64, key: u64, value: u64) {
        let p = self.slot_ptr(i);
        // SAFETY: as in `key`; `&mut self` makes this the only access to the
        // table.
        unsafe {
            p.write(key);
            p.add(1).write(value);
        }
    }

    /// The value registered for `key`.
    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let mask = self.capacity - 1;
        let mut i = self.slot_of(key);
        loop {
            match self.key(i) {
                k if k == key => return Some(self.value(i)),
                EMPTY => return None,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Registers `key` (not yet present) with `value`, growing the table from
    /// `parent` if needed. On `Err` nothing changed.
    pub(crate) fn insert<P: BackedHeap + ?Sized>(
        &mut self,
        parent: &mut P,
        key: u64,
        value: u64,
    ) -> Result<(), AllocError> {
        debug_assert_ne!(key, EMPTY);
        if (self.len + 1) * 2 > self.capacity {
            self.grow(parent)?;
        }
        let mask = self.capacity - 1;
        let mut i = self.slot_of(key);
        while self.key(i) != EMPTY {
            debug_assert_ne!(self.key(i), key, "address registered twice");
            i = (i + 1) & mask;
        }
        self.set(i, key, value);
        self.len += 1;
        Ok(())
    }

    /// Unregisters `key`, returning its value.
    pub(crate) fn remove(&mut self, key: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let mask = self.capacity - 1;
        let mut i = self.slot_of(key);
        loop {
            match self.key(i) {
                k if k == key => break,
                EMPTY => return None,
                _ => i = (i + 1) & mask,
            }
        }
        let value = self.value(i);
        // Backward-shift: pull later entries of the probe run into the hole
        // unless that would put them before their home slot.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let k = self.key(j);
            if k == EMPTY {
                break;
            }
            let home = self.slot_of(k);
            // Distance from home to j versus from home to the hole (cyclic).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                let v = self.value(j);
                self.set(hole, k, v);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.set(hole, EMPTY, 0);
        self.len -= 1;
        Some(value)
    }

    /// Doubles the table (or makes the first one).
    fn grow<P: BackedHeap + ?Sized>(&mut self, parent: &mut P) -> Result<(), AllocError> {
        let new_capacity = (self.capacity * 2).max(INITIAL_SLOTS);
        let new_table = parent.alloc(new_capacity * SLOT_BYTES, SLOT_BYTES)?;
        let old = AddrMap {
            table: self.table,
            capacity: self.capacity,
            hash_shift: self.hash_shift,
            len: self.len,
        };
        self.table = new_table;
        self.capacity = new_capacity;
        self.hash_shift = 64 - new_capacity.trailing_zeros();
        for i in 0..new_capacity {
            self.set(i, EMPTY, 0);
        }
        self.len = 0;
        let mask = new_capacity - 1;
        for i in 0..old.capacity {
            let k = old.key(i);
            if k != EMPTY {
                let mut j = self.slot_of(k);
                while self.key(j) != EMPTY {
                    j = (j + 1) & mask;
                }
                self.set(j, k, old.value(i));
                self.len += 1;
            }
        }
        if old.capacity != 0 {
            parent.dealloc(old.table, old.capacity * SLOT_BYTES);
        }
        Ok(())
    }

    /// Hands the table back to `parent` if nothing is registered. Returns the
    /// bytes released.
    pub(crate) fn release_if_empty<P: BackedHeap + ?Sized>(&mut self, parent: &mut P) -> u64 {
        if self.len != 0 || self.capacity == 0 {
            return 0;
        }
        let bytes = self.bytes();
        parent.dealloc(self.table, bytes);
        *self = AddrMap::new();
        bytes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Heap;
    use crate::host::HostArena;
    use std::collections::HashMap;

    #[test]
    fn insert_get_remove_against_a_model_through_growth() {
        let mut arena = HostArena::new(1 << 20, 4096);
        let mut parent = arena.backed_heap("registry-parent", 16);
        let mut map = AddrMap::new();
        let mut model = HashMap::new();
        // Keys that collide on purpose (multiples of 64 KiB) and many of them
        // (growth past 256 slots twice).
        let keys: std::vec::Vec<u64> = (1..=700u64).map(|i| i << 16).collect();
        for (n, &k) in keys.iter().enumerate() {
            map.insert(&mut parent, k, n as u64).unwrap();
            model.insert(k, n as u64);
            if n % 3 == 0 {
                let victim = keys[n / 2];
                assert_eq!(map.remove(victim), model.remove(&victim));
            }
        }
        assert_eq!(map.len(), model.len() as u64);
        for &k in &keys {
            assert_eq!(map.get(k), model.get(&k).copied(), "key {k:#x}");
        }
        assert_eq!(map.get(12345), None);
        for &k in &keys {
            assert_eq!(map.remove(k), model.remove(&k));
        }
        assert_eq!(map.len(), 0);
        assert!(map.bytes() >= 2048 * SLOT_BYTES / 2);
        assert_eq!(parent.stats().allocated, map.bytes());
        map.release_if_empty(&mut parent);
        assert_eq!(parent.stats().allocated, 0);
    }

    #[test]
    fn failed_growth_changes_nothing() {
        let mut arena = HostArena::new(4096, 4096);
        let mut parent = arena.backed_heap("tiny", 4096);
        let mut map = AddrMap::new();
        for k in 0..128u64 {
            map.insert(&mut parent, k * 8, k).unwrap();
        }
        // The next insert needs 8 KiB from a 4 KiB parent.
        assert_eq!(map.insert(&mut parent, 1 << 40, 1), Err(AllocError));
        assert_eq!(map.len(), 128);
        assert_eq!(map.get(1 << 40), None);
        assert_eq!(map.get(127 * 8), Some(127));
    }
}
