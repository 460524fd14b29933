//! The I/O APIC: routes legacy ISA interrupts and PCI INTx lines (global
//! system interrupts) to a vector on a CPU.
//!
//! The kernel maps each I/O APIC's registers (uncached) and passes the
//! virtual base. Register access is an index/data pair, so callers
//! serialise use of one I/O APIC (the kernel's irq-routing lock). Any
//! context under that lock.

/// Trigger mode and polarity of an interrupt line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LineMode {
    pub level_triggered: bool,
    pub active_low: bool,
}

impl LineMode {
    /// ISA default: edge-triggered, active high.
    pub const ISA: LineMode = LineMode {
        level_triggered: false,
        active_low: false,
    };
    /// PCI default: level-triggered, active low.
    pub const PCI: LineMode = LineMode {
        level_triggered: true,
        active_low: true,
    };
}

/// One I/O APIC at a mapped address.
pub struct IoApic {
    virt: u64,
    gsi_base: u32,
    lines: u32,
}

impl IoApic {
    /// # Safety
    /// `virt` must be an uncached mapping of an I/O APIC's register page,
    /// used through this value only.
    pub unsafe fn new(virt: u64, gsi_base: u32) -> Self {
        let mut io = IoApic {
            virt,
            gsi_base,
            lines: 0,
        };
        io.lines = ((io.read(1) >> 16) & 0xff) + 1;
        io
    }

    fn read(&mut self, reg: u32) -> u32 {
        // SAFETY: `new`'s contract: the page is this I/O APIC's registers;
        // IOREGSEL is at 0x00 and IOWIN at 0x10.
        unsafe {
            (self.virt as *mut u32).write_volatile(reg);
            ((self.virt + 0x10) as *const u32).read_volatile()
        }
    }

    fn write(&mut self, reg: u32, v: u32) {
        // SAFETY: as in `read`.
        unsafe {
            (self.virt as *mut u32).write_volatile(reg);
            ((self.virt + 0x10) as *mut u32).write_volatile(v);
        }
    }

    /// Number of redirection entries.
    pub fn lines(&self) -> u32 {
        self.lines
    }

    pub fn gsi_base(&self) -> u32 {
        self.gsi_base
    }

    /// Whether global system interrupt `gsi` is one of this I/O APIC's.
    pub fn handles(&self, gsi: u32) -> bool {
        gsi >= self.gsi_base && gsi < self.gsi_base + self.lines()
    }

    /// Routes `gsi` to `vector` on the CPU with APIC id `dest`, unmasked.
    pub fn route(&mut self, gsi: u32, vector: u8, dest: u32, mode: LineMode) {
        let line = gsi - self.gsi_base;
        let mut low = u32::from(vector);
        if mode.active_low {
            low |= 1 << 13;
        }
        if mode.level_triggered {
            low |= 1 << 15;
        }
        self.write(0x10 + 2 * line + 1, dest << 24);
        self.write(0x10 + 2 * line, low);
    }

    /// Masks `gsi`.
    pub fn mask(&mut self, gsi: u32) {
        let line = gsi - self.gsi_base;
        let low = self.read(0x10 + 2 * line);
        self.write(0x10 + 2 * line, low | (1 << 16));
    }

    /// Masks every line.
    pub fn mask_all(&mut self) {
        for line in 0..self.lines() {
            self.write(0x10 + 2 * line, 1 << 16);
        }
    }
}
