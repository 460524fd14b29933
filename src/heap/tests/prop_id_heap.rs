//! Property test: random alloc / alloc_in / reserve / free / hint sequences
//! on an `IdHeap` of several ranges, against a model of one bool per unit.
//!
//! Checked after every step: results lie inside one range, are aligned and
//! were free in the model (no overlap); an allocation fails only if the
//! model has no aligned free run of that length (next-fit misses nothing);
//! accounting equals the model; freeing everything returns the heap to
//! empty.
#![cfg(not(loom))]

use cairn_heap::{AllocError, Heap, IdHeap, ReserveError};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        units: u64,
        align_log: u32,
    },
    AllocIn {
        units: u64,
        align_log: u32,
        lo_frac: u8,
        hi_frac: u8,
    },
    Reserve {
        range: usize,
        start_frac: u8,
        units: u64,
    },
    Free {
        pick: usize,
    },
    Hint {
        range: usize,
        frac: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..12, 0u32..5).prop_map(|(units, align_log)| Op::Alloc { units, align_log }),
        1 => (1u64..6, 0u32..4, any::<u8>(), any::<u8>())
            .prop_map(|(units, align_log, lo_frac, hi_frac)| Op::AllocIn { units, align_log, lo_frac, hi_frac }),
        1 => (0usize..3, any::<u8>(), 1u64..5)
            .prop_map(|(range, start_frac, units)| Op::Reserve { range, start_frac, units }),
        4 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => (0usize..3, any::<u8>()).prop_map(|(range, frac)| Op::Hint { range, frac }),
    ]
}

/// Ranges as (base in units, length in units), non-overlapping.
fn ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..64, 1u64..200), 1..=3).prop_map(|v| {
        let mut next = 0;
        v.into_iter()
            .map(|(gap, len)| {
                let base = next + gap;
                next = base + len;
                (base, len)
            })
            .collect()
    })
}

struct Model {
    unit: u64,
    /// (base address, busy bit per unit)
    ranges: Vec<(u64, Vec<bool>)>,
}

impl Model {
    fn locate(&self, addr: u64) -> Option<(usize, usize)> {
        self.ranges
            .iter()
            .enumerate()
            .find_map(|(ri, (base, bits))| {
                (addr >= *base && addr < base + bits.len() as u64 * self.unit)
                    .then(|| (ri, ((addr - base) / self.unit) as usize))
            })
    }

    /// Whether an aligned run of `n` free units exists within `[lo, hi)`.
    fn fits(&self, n: u64, align: u64, lo: u64, hi: u64) -> bool {
        self.ranges.iter().any(|(base, bits)| {
            (0..bits.len()).any(|i| {
                let a = base + i as u64 * self.unit;
                a % align == 0
                    && a >= lo
                    && a + n * self.unit <= hi
                    && i + n as usize <= bits.len()
                    && bits[i..i + n as usize].iter().all(|b| !b)
            })
        })
    }

    fn take(&mut self, addr: u64, n: u64) {
        let (ri, i) = self.locate(addr).expect("result inside a range");
        let bits = &mut self.ranges[ri].1;
        assert!(i + n as usize <= bits.len(), "result runs past its range");
        for b in &mut bits[i..i + n as usize] {
            assert!(!*b, "unit at {addr:#x} handed out twice");
            *b = true;
        }
    }

    fn busy_units(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(_, b)| b.iter().filter(|&&x| x).count() as u64)
            .sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn id_heap_matches_model(
        unit_log in prop::sample::select(vec![0u32, 3, 12]),
        ranges in ranges(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let unit = 1u64 << unit_log;
        let mut storage: Vec<Vec<u64>> = ranges
            .iter()
            .map(|&(_, len)| vec![!0; IdHeap::words_for(len * unit, unit)])
            .collect();
        let mut heap = IdHeap::new("prop", unit);
        for (&(base, len), words) in ranges.iter().zip(storage.iter_mut()) {
            heap.add_range(base * unit, len * unit, words).unwrap();
        }
        let mut model = Model {
            unit,
            ranges: ranges.iter().map(|&(b, l)| (b * unit, vec![false; l as usize])).collect(),
        };
        let end = model.ranges.last().map(|(b, bits)| b + bits.len() as u64 * unit).unwrap();
        let mut live: Vec<(u64, u64)> = Vec::new();

        for op in ops {
            match op {
                Op::Alloc { units, align_log } => {
                    let align = 1u64 << (align_log + unit_log);
                    match heap.alloc(units * unit, align) {
                        Ok(a) => {
                            prop_assert_eq!(a % align, 0);
                            model.take(a, units);
                            live.push((a, units));
                        }
                        Err(AllocError) => prop_assert!(
                            !model.fits(units, align, 0, u64::MAX),
                            "alloc of {} units aligned {:#x} failed but fits", units, align
                        ),
                    }
                }
                Op::AllocIn { units, align_log, lo_frac, hi_frac } => {
                    let align = 1u64 << (align_log + unit_log);
                    let lo = end * u64::from(lo_frac) / 255;
                    let hi = end * u64::from(hi_frac) / 255;
                    match heap.alloc_in(units * unit, align, lo, hi) {
                        Ok(a) => {
                            prop_assert_eq!(a % align, 0);
                            prop_assert!(a >= lo && a + units * unit <= hi);
                            model.take(a, units);
                            live.push((a, units));
                        }
                        Err(AllocError) => prop_assert!(!model.fits(units, align, lo, hi)),
                    }
                }
                Op::Reserve { range, start_frac, units } => {
                    let Some((base, bits)) = model.ranges.get(range) else { continue };
                    let i = (bits.len() as u64 * u64::from(start_frac) / 256) as usize;
                    let addr = base + i as u64 * unit;
                    let fits = i + units as usize <= bits.len();
                    let free = fits && bits[i..i + units as usize].iter().all(|b| !b);
                    match heap.reserve(addr, units * unit) {
                        Ok(()) => {
                            prop_assert!(free);
                            model.take(addr, units);
                            live.push((addr, units));
                        }
                        Err(ReserveError::Busy) => prop_assert!(fits && !free),
                        Err(ReserveError::NotInHeap) => prop_assert!(!fits),
                    }
                }
                Op::Free { pick } => {
                    if live.is_empty() {
                        continue;
                    }
                    let (a, n) = live.swap_remove(pick % live.len());
                    heap.dealloc(a, n * unit);
                    let (ri, i) = model.locate(a).unwrap();
                    for b in &mut model.ranges[ri].1[i..i + n as usize] {
                        *b = false;
                    }
                    // A second free of the same span is refused.
                    prop_assert!(heap.try_dealloc(a, n * unit).is_err());
                }
                Op::Hint { range, frac } => {
                    if let Some((base, bits)) = model.ranges.get(range) {
                        heap.set_hint(base + bits.len() as u64 * unit * u64::from(frac) / 256 / unit * unit);
                    }
                }
            }
            let s = heap.stats();
            prop_assert_eq!(s.allocated, model.busy_units() * unit);
            prop_assert!(s.high_water >= s.allocated);
            prop_assert_eq!(heap.free_bytes(), s.total - s.allocated);
        }
        for (a, n) in live.drain(..) {
            heap.dealloc(a, n * unit);
        }
        prop_assert_eq!(heap.stats().allocated, 0);
        prop_assert_eq!(heap.free_bytes(), heap.stats().total);
    }
}
