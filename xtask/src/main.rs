//! `cargo xtask`: cairn's developer workflow.
//!
//! * `run`: build the kernel and the default workload image (the `demo`
//!   runtime test; `--image` picks another) and boot it on QEMU; with
//!   `--append "test=..."` boot a kernel test instead.
//! * `image`: build a runtime test's program and image, or an image from a
//!   manifest; `--elf PATH` makes one from a host program (its loader and
//!   libraries included).
//! * `test`: host tests, clippy for host and kernel target, loom models,
//!   and every in-QEMU test, each QEMU run under a timeout with its serial
//!   log kept on failure.
//! * `bench`: printed figures (boot time, host micro-benchmarks, block
//!   drivers, filesystem workloads next to a Linux guest).
//! * `profile`: a benchmark workload under the kernel's sampling profiler,
//!   printed per phase as the functions with the most samples.
//!
//! First use installs what is missing (see [`setup`]).

mod bench;
mod bench_blk;
mod bench_fio;
mod bench_fs;
mod bench_guest;
mod bench_net;
mod bench_programs;
mod bench_scale;
mod bench_sched;
mod bench_tfs;
mod build;
mod disks;
mod elf_image;
mod fuzz;
mod image;
mod ktest;
mod linux;
mod linux_test;
mod net_frames;
mod net_garbage;
mod net_peer;
mod profile;
mod programs;
mod qemu;
mod run_image;
mod runtime;
mod setup;
mod soak;
mod stress;

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
    /// Build the kernel and a workload image (the demo by default, or one
    /// made from a host program with `--elf PATH [--] [ARGS...]`) and boot
    /// it on QEMU; `--append "test=NAME"` boots a kernel test instead.
    Run(run_image::RunCmd),
    /// Build a runtime test's program and image, or an image from a
    /// manifest, into target/xtask/images/.
    Image(image::ImageArgs),
    /// Run the whole test suite (host, clippy, loom, in-QEMU).
    Test(ktest::TestArgs),
    /// Print benchmark figures.
    Bench(bench::BenchArgs),
    /// Sample where the kernel spends a benchmark workload's time.
    Profile(profile::ProfileArgs),
    /// Fuzz the TFS log replay and the manifest parser.
    Fuzz(fuzz::FuzzArgs),
    /// Run the runtime tests on a Linux guest (Debian's kernel, ext4 on
    /// virtio-blk) with the same QEMU flags: checks the test programs.
    LinuxTest(linux_test::LinuxTestArgs),
    /// Check (and install when possible) the tools the workflow needs.
    Setup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Run(a) if a.wants_image() => run_image::run(a),
        Command::Run(a) => qemu::run(a.vm),
        Command::Image(a) => image::image(a),
        Command::Test(a) => ktest::test(a),
        Command::Bench(a) => bench::bench(a),
        Command::Profile(a) => profile::profile(a),
        Command::Fuzz(a) => fuzz::fuzz(a),
        Command::LinuxTest(a) => linux_test::linux_test(a),
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
