//! `/sys/devices/system/cpu`: `online`, `possible`, `present` (glibc's
//! `get_nprocs` reads `online`) and one `cpuN` directory per CPU
//! (`sysconf(_SC_NPROCESSORS_CONF)` counts them).
//!
//! Kernel-lock context. No locks.

use super::{Dir, register, text};
use alloc::format;
use alloc::vec::Vec;

fn cpu_list() -> Vec<u8> {
    match crate::cpu_count() {
        0 | 1 => b"0\n".to_vec(),
        n => format!("0-{}\n", n - 1).into_bytes(),
    }
}

pub fn init() {
    register("/sys/devices/system/cpu/online", text(cpu_list));
    register("/sys/devices/system/cpu/possible", text(cpu_list));
    register("/sys/devices/system/cpu/present", text(cpu_list));
    for c in 0..crate::cpu_count() {
        register(&format!("/sys/devices/system/cpu/cpu{c}"), Dir::new());
    }
}
