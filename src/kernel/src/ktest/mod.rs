//! In-kernel tests, run one per boot: `-append test=<name>`.
//!
//! Each test declares the CPU counts it runs with and whether it must pass
//! or must panic with a given message (negative tests of the validators).
//! `tests=list` prints the catalogue for `cargo xtask test`, which boots
//! each test with each CPU count and judges the exit status and console.
//! A test runs in the kernel's main thread (kernel-lock context) and
//! returns `Ok` or an error message; the runner exits QEMU with 0 or 1.

use crate::panic::exit;
use crate::println;

mod basic;
mod block;
mod fs;
mod heap;
mod negative;
mod pci;
mod sched;
mod smp;
mod user;
pub mod util;

/// What a test must do.
#[derive(Copy, Clone, Debug)]
pub enum Expect {
    Pass,
    /// Panic, with this text in the message.
    Panic(&'static str),
    /// End the run with this exit status (a user program's `exit`).
    Exit(u32),
}

pub struct KernelTest {
    pub name: &'static str,
    /// The `-smp` values to run it with.
    pub smp: &'static [usize],
    pub expect: Expect,
    pub run: fn() -> Result<(), alloc::string::String>,
}

fn catalogue() -> impl Iterator<Item = &'static KernelTest> {
    basic::TESTS
        .iter()
        .chain(smp::TESTS)
        .chain(sched::TESTS)
        .chain(heap::TESTS)
        .chain(pci::TESTS)
        .chain(user::TESTS)
        .chain(negative::TESTS)
        .chain(block::TESTS)
        .chain(fs::TESTS)
        .chain(block::BENCH)
}

/// Prints one line per test: `ktest <name> smp=<a,b> expect=pass|panic:<text>`.
pub fn list() {
    for t in catalogue() {
        let smp: alloc::vec::Vec<alloc::string::String> =
            t.smp.iter().map(|n| alloc::format!("{n}")).collect();
        // Disk words (`storage=... disk=...`) go before `expect=`.
        let disk = block::catalogue_words(t.name)
            .or_else(|| fs::catalogue_words(t.name))
            .map(|w| alloc::format!(" {w}"))
            .unwrap_or_default();
        match t.expect {
            Expect::Pass => println!("ktest {} smp={}{disk} expect=pass", t.name, smp.join(",")),
            Expect::Panic(m) => println!(
                "ktest {} smp={}{disk} expect=panic:{m}",
                t.name,
                smp.join(",")
            ),
            Expect::Exit(s) => println!(
                "ktest {} smp={}{disk} expect=exit:{s}",
                t.name,
                smp.join(",")
            ),
        }
    }
}

/// Runs test `name` and leaves QEMU with its result.
pub fn run(name: &str) -> ! {
    let Some(t) = catalogue().find(|t| t.name == name) else {
        println!("ktest: no test named '{name}'");
        exit(2)
    };
    util::init();
    println!("ktest: running {} on {} CPU(s)", t.name, crate::cpu_count());
    match (t.run)() {
        Ok(()) => {
            println!("ktest: {} PASSED", t.name);
            exit(0)
        }
        Err(e) => {
            println!("ktest: {} FAILED: {e}", t.name);
            exit(1)
        }
    }
}
