//! The boot-time frame allocator: hands out zeroed 4 KiB frames from the
//! usable RAM of the memory map, above the kernel image, in increasing
//! address order, until the physical heap takes over. Everything it gave
//! out is reported by [`EarlyFrames::used`] so the physical heap leaves it
//! alone. Boot only (bootstrap CPU, before any other CPU runs).

use cairn_pc::start_info::{MemoryRegion, memory_type};

/// Low memory below this is never handed out (real-mode structures, the
/// AP trampoline at 0x8000).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

pub struct EarlyFrames {
    regions: [MemoryRegion; 64],
    count: usize,
    /// Next free address in the current region.
    next: u64,
    region: usize,
    start: u64,
    /// Frames handed out (each region's [start, next) once passed).
    used: [(u64, u64); 8],
    used_count: usize,
}

impl EarlyFrames {
    /// Usable RAM from `map`, skipping low memory and `[reserved_start,
    /// reserved_end)` (the kernel image).
    pub fn new(map: &[MemoryRegion], reserved_start: u64, reserved_end: u64) -> Self {
        let mut regions = [MemoryRegion::default(); 64];
        let mut count = 0;
        for r in map.iter().filter(|r| r.kind == memory_type::RAM) {
            let mut base = r.base.max(LOW_MEMORY_END);
            let end = r.base + r.size;
            if base < reserved_end && end > reserved_start {
                base = base.max(reserved_end);
            }
            let base = base.next_multiple_of(4096);
            let end = end & !4095;
            if base < end && count < regions.len() {
                regions[count] = MemoryRegion {
                    base,
                    size: end - base,
                    kind: r.kind,
                };
                count += 1;
            }
        }
        let next = regions[0].base;
        EarlyFrames {
            regions,
            count,
            next,
            region: 0,
            start: next,
            used: [(0, 0); 8],
            used_count: 0,
        }
    }

    /// Allocates one frame (not zeroed: the caller zeroes it through the
    /// mapping it can reach).
    pub fn alloc(&mut self) -> Option<u64> {
        while self.region < self.count {
            let r = self.regions[self.region];
            if self.next + 4096 <= r.base + r.size {
                let f = self.next;
                self.next += 4096;
                return Some(f);
            }
            self.close_region();
            self.region += 1;
            if self.region < self.count {
                self.next = self.regions[self.region].base;
                self.start = self.next;
            }
        }
        None
    }

    fn close_region(&mut self) {
        if self.next > self.start && self.used_count < self.used.len() {
            self.used[self.used_count] = (self.start, self.next);
            self.used_count += 1;
        }
        self.start = self.next;
    }

    /// Physical ranges handed out so far.
    pub fn used(&mut self) -> &[(u64, u64)] {
        self.close_region();
        &self.used[..self.used_count]
    }

    /// The usable RAM regions (after the reservations).
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.count]
    }
}
