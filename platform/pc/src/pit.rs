//! The 8254 PIT's channel 2, used once at boot as a reference clock to
//! calibrate the TSC and the local APIC timer. Boot only, one CPU.

use crate::cpu::{inb, outb};

/// PIT input frequency in Hz.
pub const FREQUENCY: u64 = 1_193_182;

/// Busy-waits `micros` microseconds (at most about 54 ms) on PIT channel 2.
pub fn wait_micros(micros: u64) {
    let count = (FREQUENCY * micros / 1_000_000).clamp(1, 0xffff) as u16;
    // SAFETY: port 0x61 bit 0 gates channel 2 and bit 1 drives the speaker
    // (kept off); 0x43/0x42 program channel 2 in mode 0 (interrupt on
    // terminal count), whose output shows in port 0x61 bit 5.
    unsafe {
        let ctl = inb(0x61);
        outb(0x61, (ctl & !0x02) & !0x01);
        outb(0x43, 0b1011_0000);
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        outb(0x61, (ctl & !0x02) | 0x01);
        while inb(0x61) & 0x20 == 0 {
            core::hint::spin_loop();
        }
    }
}
