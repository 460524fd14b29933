//! The CMOS real-time clock (ports 0x70/0x71), read once at boot to give
//! the wall clock its starting point. Boot only, one CPU.

use crate::cpu::{inb, outb};

fn read(reg: u8) -> u8 {
    // SAFETY: 0x70 selects a CMOS register (NMI stays enabled: bit 7 clear)
    // and 0x71 reads it; nothing else uses the CMOS.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

fn updating() -> bool {
    read(0x0a) & 0x80 != 0
}

/// Seconds since 1970-01-01 UTC as the RTC reports them (QEMU keeps it in
/// UTC), or `None` if the values make no sense.
pub fn unix_time() -> Option<u64> {
    let snapshot = || {
        while updating() {
            core::hint::spin_loop();
        }
        [
            read(0x00),
            read(0x02),
            read(0x04),
            read(0x07),
            read(0x08),
            read(0x09),
            read(0x32),
        ]
    };
    let mut a = snapshot();
    loop {
        let b = snapshot();
        if a == b {
            break;
        }
        a = b;
    }
    let status_b = read(0x0b);
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| if bcd { (v & 0x0f) + (v >> 4) * 10 } else { v };
    let (sec, min) = (conv(a[0]), conv(a[1]));
    let mut hour = conv(a[2] & 0x7f);
    if status_b & 0x02 == 0 && a[2] & 0x80 != 0 {
        hour = (hour % 12) + 12;
    }
    let (day, month, year) = (conv(a[3]), conv(a[4]), conv(a[5]));
    let century = match conv(a[6]) {
        c @ 19..=21 => u64::from(c),
        _ => 20,
    };
    let year = century * 100 + u64::from(year);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days since the epoch (civil-from-days inverse).
    let (y, m) = if month <= 2 {
        (year - 1, u64::from(month) + 9)
    } else {
        (year, u64::from(month) - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + u64::from(hour) * 3600 + u64::from(min) * 60 + u64::from(sec))
}
