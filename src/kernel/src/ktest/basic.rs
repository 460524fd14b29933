//! Boot, exceptions and SMP bring-up tests.

use super::{Expect, KernelTest};
use alloc::format;
use alloc::string::String;

pub static TESTS: &[KernelTest] = &[
    KernelTest {
        name: "boot",
        smp: &[1],
        expect: Expect::Pass,
        run: boot,
    },
    KernelTest {
        name: "exceptions",
        smp: &[1],
        expect: Expect::Pass,
        run: exceptions,
    },
];

fn boot() -> Result<(), String> {
    if crate::context::current() != cairn_sync::Context::KernelLock {
        return Err(format!(
            "main thread runs in {:?} context",
            crate::context::current()
        ));
    }
    Ok(())
}

fn exceptions() -> Result<(), String> {
    use cairn_pc::fixup::*;
    use cairn_pc::idt::vector;
    type Probe = (&'static str, fn() -> bool, u8);
    let cases: [Probe; 4] = [
        ("ud2", probe_invalid_opcode, vector::INVALID_OPCODE),
        ("divide by zero", probe_divide_error, vector::DIVIDE_ERROR),
        ("int3", probe_breakpoint, vector::BREAKPOINT),
        (
            "non-canonical read",
            probe_general_protection,
            vector::GENERAL_PROTECTION,
        ),
    ];
    for (what, probe, expected) in cases {
        if !probe() {
            return Err(format!("{what}: no exception"));
        }
        let (v, _, _) = crate::trap::last_fault();
        if v != u64::from(expected) {
            return Err(format!("{what}: vector {v}, expected {expected}"));
        }
    }
    let unmapped = 0xffff_e000_dead_0000u64;
    if probe_read(unmapped).is_some() {
        return Err("read of an unmapped kernel address succeeded".into());
    }
    let (v, err, cr2) = crate::trap::last_fault();
    if v != u64::from(vector::PAGE_FAULT) || cr2 != unmapped || err & 1 != 0 {
        return Err(format!(
            "page fault reported as vector {v} error {err:#x} cr2 {cr2:#x}"
        ));
    }
    Ok(())
}
