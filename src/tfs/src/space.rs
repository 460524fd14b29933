//! Free-space accounting: the set of used sector ranges of a volume, rebuilt
//! at mount from every extent and log extension (free space is never stored
//! on disk), with first-fit allocation like Nanos's
//! `filesystem_allocate_storage`.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

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

    /// Marks every run `(start, len)` of `runs` used, all or none: fails,
    /// changing nothing, if any of them overlap each other, a used range
    /// or the volume's end. Sorts `runs`. One sort and one bulk build of
    /// the map instead of a tree update per run (a mount reserves every
    /// extent of the volume; the caller reserves one by one to say which
    /// run is wrong).
    pub fn reserve_all(&mut self, runs: &mut [(u64, u64)]) -> bool {
        runs.sort_unstable();
        let mut prev_end = 0u64;
        let mut total = 0u64;
        for &(s, l) in runs.iter() {
            if l == 0 {
                continue;
            }
            let Some(e) = s.checked_add(l) else {
                return false;
            };
            if e > self.size || s < prev_end || self.intersects(s, l) {
                return false;
            }
            prev_end = e;
            total += l;
        }
        let mut all: Vec<(u64, u64)> = Vec::with_capacity(self.used.len() + runs.len());
        let mut old = self.used.iter().map(|(&s, &e)| (s, e)).peekable();
        let mut new = runs
            .iter()
            .filter(|r| r.1 > 0)
            .map(|&(s, l)| (s, s + l))
            .peekable();
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) if a.0 <= b.0 => old.next(),
                (Some(_), Some(_)) => new.next(),
                (Some(_), None) => old.next(),
                (None, Some(_)) => new.next(),
                (None, None) => break,
            };
            let Some((s, e)) = next else { break };
            match all.last_mut() {
                Some(last) if last.1 == s => last.1 = e,
                _ => all.push((s, e)),
            }
        }
        self.used = all.into_iter().collect();
        self.used_total += total;
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

    /// `reserve_all` ends in the same map as reserving one by one, and
    /// changes nothing when one by one would fail somewhere.
    #[test]
    fn reserve_all_matches_one_by_one() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let size = 64 + next() % 64;
            let mut base = SpaceMap::new(size);
            for _ in 0..next() % 4 {
                base.reserve(next() % size, 1 + next() % 8);
            }
            let mut runs: Vec<(u64, u64)> = (0..next() % 12)
                .map(|_| (next() % (size + 4), next() % 9))
                .collect();
            let mut one = base.clone();
            let fits = runs.iter().all(|&(s, l)| one.reserve(s, l));
            let mut all = base.clone();
            assert_eq!(all.reserve_all(&mut runs), fits, "{runs:?}");
            let want: Vec<_> = if fits {
                one.used_ranges().collect()
            } else {
                base.used_ranges().collect()
            };
            assert_eq!(all.used_ranges().collect::<Vec<_>>(), want, "{runs:?}");
            let free = if fits {
                one.free_sectors()
            } else {
                base.free_sectors()
            };
            assert_eq!(all.free_sectors(), free);
        }
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
