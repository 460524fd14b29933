//! `cargo xtask`: cairn's developer workflow.
//!
//! * `run`: build the kernel (and the default workload image) and boot it on
//!   QEMU.
//! * `test`: host tests, clippy for host and kernel target, loom models,
//!   and every in-QEMU test, each QEMU run under a timeout with its serial
//!   log kept on failure.
//! * `bench`: printed figures (boot time, host micro-benchmarks).
//!
//! First use installs what is missing (see [`setup`]).

mod bench;
mod bench_blk;
mod build;
mod disks;
mod fuzz;
mod ktest;
mod qemu;
mod setup;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "cairn's build, run, test and bench workflow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel and boot it on QEMU.
    Run(qemu::RunArgs),
    /// Run the whole test suite (host, clippy, loom, in-QEMU).
    Test(ktest::TestArgs),
    /// Print benchmark figures.
    Bench(bench::BenchArgs),
    /// Fuzz the TFS log replay and the manifest parser.
    Fuzz(fuzz::FuzzArgs),
    /// Check (and install when possible) the tools the workflow needs.
    Setup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Run(a) => qemu::run(a),
        Command::Test(a) => ktest::test(a),
        Command::Bench(a) => bench::bench(a),
        Command::Fuzz(a) => fuzz::fuzz(a),
        Command::Setup => setup::ensure(setup::Need::all()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A workflow failure, with the message to print.
pub type Result<T> = std::result::Result<T, String>;
