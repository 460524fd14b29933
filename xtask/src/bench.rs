//! `cargo xtask bench`: figures, printed, never asserted.
//!
//! * `boot`: wall time from QEMU start to the run loop and to exit, `-smp 2`,
//!   TCG, median of 5 (the kernel prints its own run-loop time).
//! * `host`: the criterion benchmarks of the host crates.
//! * `blk`, `fs`: block drivers next to the host, filesystem workloads
//!   next to a Linux guest (see `bench_blk`, `bench_fs`).
//! * `sched`: wake-up and fsync latency beside CPU-bound threads, next to
//!   a Linux guest (see `bench_sched`).
//! * `scale`: throughput against threads and vCPUs, next to a Linux guest
//!   (see `bench_scale`).
//! * `net`: HTTP requests/s and p99 latency from the host (wrk) to the
//!   same server on cairn and on a Linux guest (see `bench_net`).
//! * `programs`: SQLite speedtest1 and fio next to a Linux guest (see
//!   `bench_programs`).
//! * `fio`: fio's libaio and io_uring engines, direct and buffered, next
//!   to a Linux guest (see `bench_fio`).

use crate::Result;
use crate::build::{self, cargo};
use crate::disks::Storage;
use crate::qemu::Vm;
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    Boot,
    Host,
    /// In-kernel TFS mount time against file count.
    Tfs,
    /// Block drivers under TCG next to the host (see `bench_blk`).
    Blk,
    /// Filesystem workloads on cairn next to a Linux guest (see `bench_fs`).
    Fs,
    /// Wake-up and fsync latency under CPU load, cairn next to a Linux guest
    /// (see `bench_sched`).
    Sched,
    /// Real programs (SQLite speedtest1, fio) on cairn next to a Linux
    /// guest (see `bench_programs`).
    Programs,
    /// Throughput against threads, cairn next to a Linux guest (see
    /// `bench_scale`).
    Scale,
    /// HTTP requests from the host to the same server on cairn and a Linux
    /// guest (see `bench_net`).
    Net,
    /// fio's libaio and io_uring engines, direct and buffered, cairn next
    /// to a Linux guest (see `bench_fio`).
    Fio,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmarks (default: all).
    #[arg(value_enum)]
    pub suite: Option<Suite>,
    /// Storage kinds: `blk` measures these drivers (default: all), `fs`
    /// runs on the first (default: virtio). Repeatable.
    #[arg(long, value_name = "KIND")]
    pub storage: Vec<String>,
    /// `fs`: runs of each side (cairn, Linux), reported as median and
    /// min-max.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub repeat: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn boot() -> Result<()> {
    let kernel = build::kernel(true)?;
    let mut to_exit = Vec::new();
    let mut to_loop = Vec::new();
    for i in 0..5 {
        let mut vm = Vm::new(
            &kernel,
            build::out_dir()
                .join("logs")
                .join(format!("bench-boot-{i}.log")),
        );
        vm.smp = 2;
        vm.append = "test=boot".into();
        vm.timeout = Duration::from_secs(60);
        vm.marker = Some("cairn: run loop".into());
        let o = vm.boot()?;
        if !o.exited_with(0) {
            return Err(format!("boot run {i} did not exit cleanly:\n{}", o.serial));
        }
        to_exit.push(o.elapsed.as_secs_f64() * 1000.0);
        if let Some(t) = o.marker_at {
            to_loop.push(t.as_secs_f64() * 1000.0);
        }
    }
    println!("boot (TCG, -smp 2, release kernel), median of 5:");
    println!(
        "  QEMU start to exit:          {:8.1} ms",
        median(to_exit.clone())
    );
    if !to_loop.is_empty() {
        println!(
            "  QEMU start to run loop:      {:8.1} ms (console poll, +-5 ms)",
            median(to_loop)
        );
    }
    println!(
        "  runs: {:?}",
        to_exit.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    Ok(())
}

/// `cargo xtask bench`.
pub fn bench(a: BenchArgs) -> Result<ExitCode> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: false,
        clippy: false,
    })?;
    if a.suite.is_none_or(|s| s == Suite::Boot) {
        boot()?;
    }
    let kinds = a
        .storage
        .iter()
        .map(|k| {
            Storage::parse(k).ok_or_else(|| format!("unknown storage {k:?} ({})", Storage::names()))
        })
        .collect::<Result<Vec<_>>>()?;
    if a.suite.is_none_or(|s| s == Suite::Blk) {
        crate::bench_blk::run(if kinds.is_empty() {
            &Storage::ALL
        } else {
            &kinds
        })?;
    }
    if a.suite.is_none_or(|s| s == Suite::Fs) {
        crate::bench_fs::run(kinds.first().copied().unwrap_or(Storage::Virtio), a.repeat)?;
    }
    if a.suite.is_none_or(|s| s == Suite::Sched) {
        crate::bench_sched::run()?;
    }
    if a.suite.is_none_or(|s| s == Suite::Scale) {
        crate::bench_scale::run()?;
    }
    if a.suite.is_none_or(|s| s == Suite::Programs) {
        crate::bench_programs::run()?;
    }
    if a.suite.is_none_or(|s| s == Suite::Net) {
        crate::bench_net::run()?;
    }
    if a.suite.is_none_or(|s| s == Suite::Fio) {
        crate::bench_fio::run()?;
    }
    if a.suite.is_none_or(|s| s == Suite::Tfs) {
        crate::bench_tfs::bench()?;
    }
    if a.suite.is_none_or(|s| s == Suite::Host) {
        for pkg in [
            "cairn-sync",
            "cairn-heap",
            "cairn-pagecache",
            "cairn-tfs",
            "cairn-tools",
        ] {
            cargo(&["bench", "--quiet", "-p", pkg], "host benchmarks")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
