//! The legacy 8259 PICs: remapped away from the exception vectors and fully
//! masked, since cairn routes interrupts through the I/O APIC. Boot only.

use crate::cpu::outb;

/// Remaps both PICs to vectors 0x20-0x2f and masks every line.
pub fn disable() {
    // SAFETY: ports 0x20/0x21/0xa0/0xa1 are the PICs; this is the standard
    // initialisation sequence followed by masking all lines.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, 0x20);
        outb(0xa1, 0x28);
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}
