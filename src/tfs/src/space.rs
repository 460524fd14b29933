//! Free-space accounting: the set of used sector ranges of a volume, rebuilt
//! at mount from every extent and log extension (free space is never stored
//! on disk), with first-fit allocation like Nanos's
//! `filesystem_allocate_storage`.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use alloc::collections::BTreeMap;

/// Used ranges of a volume of `size` sectors.
#[derive(Debug, Clone)]
pub struct SpaceMap {
    size: u64,
    used: BTreeMap<u64, u64>,
    used_total: u64,
}

impl SpaceMap {
    /// An empty map of a volume of `size` sectors.
    pub fn new(size: u64) -> Self {
        SpaceMap {
            size,
            used: BTreeMap::new(),
            used_total: 0,
        }
    }

    /// Volume size in sectors.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Free sectors.
    pub fn free_sectors(&self) -> u64 {
        self.size - self.used_total
    }

    /// True if any sector of `[start, start+len)` is used or out of range.
    pub fn intersects(&self, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return true;
        };
        if end > self.size {
            return true;
        }
        if let Some((&s, &e)) = self.used.range(..end).next_back() {
            if e > start && s < end {
                return true;
            }
        }
        false
    }

    /// Marks `[start, start+len)` used; fails if any of it is used already
    /// or outside the volume.
    pub fn reserve(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        if self.intersects(start, len) {
            return false;
        }
        let mut s = start;
        let mut e = start + len;
        if let Some((&ps, &pe)) = self.used.range(..s).next_back() {
            if pe == s {
                s = ps;
                self.used.remove(&ps);
            }
        }
        if let Some(&ne) = self.used.get(&e) {
            self.used.remove(&e);
            e = ne;
        }
        self.used.insert(s, e);
        self.used_total += len;
        true
    }

    /// Marks `[start, start+len)` free; fails unless all of it was used.
    pub fn release(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let end = start + len;
        let Some((&s, &e)) = self.used.range(..=start).next_back() else {
            return false;
        };
        if e < end {
            return false;
        }
        self.used.remove(&s);
        if s < start {
            self.used.insert(s, start);
        }
        if end < e {
            self.used.insert(end, e);
        }
        self.used_total -= len;
        true
    }

    /// First free run of `len` sectors (first fit), reserved.
    pub fn allocate(&mut self, len: u64) -> Option<u64> {
        if len == 0 {
            return None;
        }
        let mut cursor = 0u64;
        let mut found = None;
        for (&s, &e) in &self.used {
            if s >= cursor && s - cursor >= len {
                found = Some(cursor);
                break;
            }
            cursor = cursor.max(e);
        }
        let start = match found {
            Some(s) => s,
            None if self.size >= cursor && self.size - cursor >= len => cursor,
            None => return None,
        };
        self.reserve(start, len).then_some(start)
    }

    /// The largest free run `(start, sectors)` (the first of equal ones),
    /// if any sector is free.
    pub fn largest_free(&self) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        let mut cursor = 0u64;
        let mut consider = |start: u64, end: u64| {
            if end > start && best.is_none_or(|(_, n)| end - start > n) {
                best = Some((start, end - start));
            }
        };
        for (&s, &e) in &self.used {
            consider(cursor, s);
            cursor = cursor.max(e);
        }
        consider(cursor, self.size);
        best
    }

    /// The used ranges, in order.
    pub fn used_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.used.iter().map(|(&s, &e)| (s, e - s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn largest_free_run() {
        let mut m = SpaceMap::new(100);
        assert_eq!(m.largest_free(), Some((0, 100)));
        assert!(m.reserve(10, 5));
        assert!(m.reserve(40, 55));
        assert_eq!(m.largest_free(), Some((15, 25)));
        assert!(m.reserve(15, 25));
        assert_eq!(m.largest_free(), Some((0, 10)));
        assert!(m.reserve(0, 10));
        assert_eq!(m.largest_free(), Some((95, 5)));
        assert!(m.reserve(95, 5));
        assert_eq!(m.largest_free(), None);
    }

    #[test]
    fn first_fit_and_merge() {
        let mut m = SpaceMap::new(100);
        assert!(m.reserve(0, 1));
        assert_eq!(m.allocate(10), Some(1));
        assert_eq!(m.allocate(10), Some(11));
        assert!(m.release(1, 10));
        assert_eq!(m.allocate(5), Some(1));
        assert_eq!(m.allocate(6), Some(21));
        assert_eq!(m.free_sectors(), 100 - 1 - 5 - 10 - 6);
        assert_eq!(m.allocate(1000), None);
        let ranges: Vec<_> = m.used_ranges().collect();
        assert_eq!(ranges, [(0, 6), (11, 16)]);
    }

    #[test]
    fn refuses_overlap_and_bad_release() {
        let mut m = SpaceMap::new(50);
        assert!(m.reserve(10, 10));
        assert!(!m.reserve(15, 10));
        assert!(!m.reserve(45, 10));
        assert!(!m.release(5, 10));
        assert!(m.release(12, 3));
        assert!(m.reserve(12, 3));
        assert_eq!(m.free_sectors(), 40);
    }

    #[test]
    fn fills_the_volume_exactly() {
        let mut m = SpaceMap::new(8);
        assert_eq!(m.allocate(8), Some(0));
        assert_eq!(m.allocate(1), None);
        assert!(m.release(3, 2));
        assert_eq!(m.allocate(3), None);
        assert_eq!(m.allocate(2), Some(3));
    }
}
