//! Accounting: every heap counts the bytes it has handed out (`allocated`)
//! and the allocations behind them (`objects`),
//! the bytes it manages or holds from its parent (`total`) and the most it
//! ever had handed out at once (`high_water`). [`StatsTable`] prints a set of
//! heaps as a table, for the kernel's debug dump and its panic handler.
//!
//! Plain data: callable from any context, takes no locks. (At panic, read a
//! [`Locking`](crate::Locking) heap with `try_stats`, which never spins.)

use core::fmt;

/// A snapshot of one heap's accounting, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// The heap's name, as given at construction.
    pub name: &'static str,
    /// Bytes handed out and not yet freed (as the heap rounds them).
    pub allocated: u64,
    /// Bytes the heap manages: its ranges (id heaps), or what it holds from
    /// its parent (caches, including their bookkeeping).
    pub total: u64,
    /// The largest `allocated` ever seen.
    pub high_water: u64,
    /// Allocations handed out and not yet freed (one per `alloc` call).
    pub objects: u64,
}

impl fmt::Display for HeapStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: allocated {} of {} bytes in {} objects, high water {}",
            self.name, self.allocated, self.total, self.objects, self.high_water
        )
    }
}

/// Prints heaps as an aligned table, one line each:
///
/// ```
/// use cairn_heap::{HeapStats, StatsTable};
/// let s = HeapStats { name: "general", allocated: 4096, total: 65536, high_water: 8192, objects: 2 };
/// let text = format!("{}", StatsTable(&[s]));
/// assert!(text.contains("general"));
/// ```
pub struct StatsTable<'a>(pub &'a [HeapStats]);

impl fmt::Display for StatsTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>16} {:>16} {:>16} {:>12}",
            "heap", "allocated", "total", "high water", "objects"
        )?;
        for s in self.0 {
            writeln!(
                f,
                "{:<16} {:>16} {:>16} {:>16} {:>12}",
                s.name, s.allocated, s.total, s.high_water, s.objects
            )?;
        }
        Ok(())
    }
}

/// The running counters behind [`HeapStats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Accounting {
    allocated: u64,
    total: u64,
    high_water: u64,
    objects: u64,
}

impl Accounting {
    pub(crate) const fn new() -> Self {
        Accounting {
            allocated: 0,
            total: 0,
            high_water: 0,
            objects: 0,
        }
    }

    #[inline]
    pub(crate) fn allocated(&mut self, bytes: u64) {
        self.allocated += bytes;
        self.objects += 1;
        if self.allocated > self.high_water {
            self.high_water = self.allocated;
        }
    }

    #[inline]
    pub(crate) fn freed(&mut self, bytes: u64) {
        self.allocated -= bytes;
        self.objects -= 1;
    }

    pub(crate) fn grew(&mut self, bytes: u64) {
        self.total += bytes;
    }

    pub(crate) fn snapshot(&self, name: &'static str) -> HeapStats {
        HeapStats {
            name,
            allocated: self.allocated,
            total: self.total,
            high_water: self.high_water,
            objects: self.objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn high_water_keeps_the_peak() {
        let mut a = Accounting::new();
        a.grew(100);
        a.allocated(30);
        a.allocated(50);
        a.freed(60);
        a.allocated(10);
        let s = a.snapshot("t");
        assert_eq!((s.allocated, s.total, s.high_water), (30, 100, 80));
        assert_eq!(s.objects, 2, "three allocations, one freed");
    }

    #[test]
    fn table_has_a_line_per_heap() {
        let rows = [
            HeapStats {
                name: "physical",
                allocated: 1,
                total: 2,
                high_water: 3,
                objects: 7,
            },
            HeapStats {
                name: "general",
                allocated: 4,
                total: 5,
                high_water: 6,
                objects: 8,
            },
        ];
        let text = format!("{}", StatsTable(&rows));
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(2).unwrap().starts_with("general"));
        assert!(
            format!("{}", rows[0]).contains("allocated 1 of 2 bytes in 7 objects, high water 3")
        );
    }
}
