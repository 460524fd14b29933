//! `cargo xtask test`: the whole suite, in this order: formatting, host
//! tests, clippy (host and kernel target), loom models, in-QEMU kernel
//! tests (each test at each of its CPU counts, under TCG), and, when
//! `/dev/kvm` is usable, one boot under KVM so that path stays alive;
//! then the runtime tests (workload images, see [`crate::runtime`]) on
//! virtio-blk, or on every storage kind with `--all-storage`. `--stress`
//! runs the stress target instead ([`crate::stress`]), `--soak` the long
//! soak and fuzz runs ([`crate::soak`]).
//!
//! Every QEMU run has a timeout and its serial log stays in
//! `target/xtask/logs/`; failures print the log's tail and the symbolised
//! backtrace.

use crate::Result;
use crate::build::{self, cargo, cargo_quiet};
use crate::qemu::{Accel, Outcome, Vm, symbolize};
use clap::Args;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct TestArgs {
    /// Only run in-QEMU tests whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip host tests, clippy and loom: in-QEMU tests only.
    #[arg(long)]
    pub kernel_only: bool,
    /// Skip the in-QEMU tests.
    #[arg(long)]
    pub host_only: bool,
    /// Seconds before one VM is killed.
    #[arg(long, default_value_t = 90)]
    pub timeout: u64,
    /// Only runtime tests whose name contains this.
    #[arg(long, value_name = "FILTER")]
    pub runtime: Option<String>,
    /// Runtime tests only (no host steps, no kernel tests).
    #[arg(long, conflicts_with_all = ["host_only", "no_runtime"])]
    pub runtime_only: bool,
    /// Skip the runtime tests.
    #[arg(long)]
    pub no_runtime: bool,
    /// Run every runtime test on every storage kind it lists (ata-pci,
    /// pvscsi, virtio-scsi and NVMe besides virtio-blk).
    #[arg(long)]
    pub all_storage: bool,
    /// The stress target instead of the suite: the seed and liveness tests
    /// at -smp 4 while host threads keep every host core busy.
    #[arg(long, conflicts_with_all = ["host_only", "no_runtime", "kernel_only", "runtime_only"])]
    pub stress: bool,
    /// The soak target instead of the suite: the long runs of the soak and
    /// syscall-fuzz runtime tests (`--runtime FILTER` narrows them).
    #[arg(long, conflicts_with_all = ["host_only", "no_runtime", "kernel_only", "runtime_only", "stress"])]
    pub soak: bool,
}

/// One in-QEMU test from the kernel's catalogue.
#[derive(Debug, Clone)]
struct KernelTest {
    name: String,
    smp: Vec<usize>,
    /// `None`: must pass; `Some(text)`: must panic with `text`.
    panic: Option<String>,
    /// Must end with this exit status (instead of passing).
    exit: Option<u32>,
    /// The disk it asked for (`storage=... disk=...` words).
    disk: Option<crate::disks::DiskSpec>,
    /// It sends QEMU monitor commands (`qmp` word; see `Vm::qmp`).
    qmp: bool,
}

fn parse_catalogue(serial: &str) -> Vec<KernelTest> {
    serial
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("ktest ")?;
            // `expect=` comes last (a panic text may hold spaces); words
            // between `smp=` and it describe the test's disk.
            let (head, expect) = rest.split_once(" expect=")?;
            let mut words = head.split(' ');
            let name = words.next()?.to_string();
            let smp = words
                .next()?
                .strip_prefix("smp=")?
                .split(',')
                .filter_map(|n| n.parse().ok())
                .collect();
            let words: Vec<&str> = words.collect();
            let qmp = words.contains(&"qmp");
            let disk = crate::disks::DiskSpec::from_words(words.into_iter());
            let panic = expect.strip_prefix("panic:").map(str::to_string);
            let exit = expect.strip_prefix("exit:").and_then(|s| s.parse().ok());
            Some(KernelTest {
                name,
                smp,
                panic,
                exit,
                disk,
                qmp,
            })
        })
        .collect()
}

struct Report {
    passed: usize,
    failed: Vec<String>,
    skipped: Vec<String>,
}

fn step(report: &mut Report, name: &str, r: Result<()>) {
    match r {
        Ok(()) => {
            report.passed += 1;
            eprintln!("xtask: ok   {name}");
        }
        Err(e) => {
            eprintln!("xtask: FAIL {name}: {e}");
            report.failed.push(name.to_string());
        }
    }
}

fn loom_tests() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for dir in ["src", "platform"] {
        let Ok(crates) = std::fs::read_dir(build::root().join(dir)) else {
            continue;
        };
        for c in crates.flatten() {
            let tests = c.path().join("tests");
            let Ok(files) = std::fs::read_dir(&tests) else {
                continue;
            };
            let manifest = std::fs::read_to_string(c.path().join("Cargo.toml")).unwrap_or_default();
            let Some(pkg) = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .map(|n| n.trim_end_matches('"').to_string())
            else {
                continue;
            };
            for f in files.flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if let Some(stem) = n.strip_prefix("loom_").and_then(|s| s.strip_suffix(".rs")) {
                    v.push((pkg.clone(), format!("loom_{stem}")));
                }
            }
        }
    }
    v.sort();
    v
}

fn run_loom(pkg: &str, test: &str) -> Result<()> {
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo_bin)
        .args(["test", "--quiet", "--release", "-p", pkg, "--test", test])
        .env("RUSTFLAGS", "--cfg loom")
        .env(
            "CARGO_TARGET_DIR",
            build::root().join("target").join("loom"),
        )
        .current_dir(build::root())
        .output()
        .map_err(|e| e.to_string())?;
    if status.status.success() {
        Ok(())
    } else {
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        );
        Err(format!("{}", status.status))
    }
}

fn judge(t: &KernelTest, o: &Outcome) -> Result<()> {
    if o.timed_out {
        return Err("timed out (hang)".into());
    }
    if let Some(status) = t.exit {
        return if o.exited_with(status) {
            Ok(())
        } else {
            Err(format!(
                "expected exit status {status}, got {:?} (QEMU status {:?}{})",
                o.exit_status,
                o.qemu_status,
                if o.panicked { ", kernel panic" } else { "" }
            ))
        };
    }
    match &t.panic {
        None if o.exited_with(0) => Ok(()),
        None if o.panicked => Err("kernel panic".into()),
        None => Err(format!(
            "exit status {:?} (QEMU status {:?})",
            o.exit_status, o.qemu_status
        )),
        Some(text) => {
            if !o.panicked || o.qemu_status != Some(255) {
                Err(format!(
                    "expected a panic containing {text:?}; none happened"
                ))
            } else if !o.serial.contains(text.as_str()) {
                Err(format!("panicked, but the message lacks {text:?}"))
            } else {
                Ok(())
            }
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn kernel_tests(a: &TestArgs, report: &mut Report) -> Result<()> {
    let kernel = build::kernel(false)?;
    let logs = build::out_dir().join("logs");
    let mut list_vm = Vm::new(&kernel, logs.join("list-tests.log"));
    list_vm.smp = 1;
    list_vm.append = "tests=list".into();
    list_vm.timeout = Duration::from_secs(a.timeout);
    let o = list_vm.boot()?;
    let catalogue = parse_catalogue(&o.serial);
    if catalogue.is_empty() || !o.exited_with(0) {
        return Err(format!(
            "could not read the kernel's test catalogue; serial:\n{}",
            tail(&o.serial, 20)
        ));
    }
    for t in &catalogue {
        if a.filter
            .as_ref()
            .is_some_and(|f| !t.name.contains(f.as_str()))
        {
            continue;
        }
        for &smp in &t.smp {
            let name = format!("ktest {} -smp {smp}", t.name);
            let log = logs.join(format!("ktest-{}-smp{smp}.log", t.name));
            let mut vm = Vm::new(&kernel, log.clone());
            vm.smp = smp;
            vm.append = format!("test={}", t.name);
            vm.timeout = Duration::from_secs(a.timeout);
            vm.qmp = t.qmp;
            if let Some(d) = &t.disk {
                let (machine, flags) = crate::disks::prepare(&t.name, d)?;
                vm.machine = machine.unwrap_or("q35").into();
                vm.extra.extend(flags);
            }
            let o = vm.boot()?;
            let r = judge(t, &o);
            if r.is_err() {
                print_failure(&kernel, &log, &o);
            }
            step(
                report,
                &format!("{name} ({:.2} s)", o.elapsed.as_secs_f64()),
                r,
            );
        }
    }
    if kvm_usable() && a.filter.is_none() {
        let mut vm = Vm::new(&kernel, logs.join("ktest-boot-kvm.log"));
        vm.accel = Accel::Kvm;
        // QEMU's default CPU model: `-cpu host` needs MSRs that software
        // hypervisors (like this workplace's) may refuse.
        vm.cpu = Some("qemu64".into());
        vm.append = "test=boot".into();
        vm.timeout = Duration::from_secs(a.timeout);
        let o = vm.boot()?;
        let t = KernelTest {
            name: "boot".into(),
            smp: vec![2],
            panic: None,
            exit: None,
            disk: None,
            qmp: false,
        };
        step(report, "ktest boot -smp 2 under KVM", judge(&t, &o));
    } else if a.filter.is_none() {
        report
            .skipped
            .push("KVM smoke boot: /dev/kvm is not usable here".into());
    }
    Ok(())
}

fn print_failure(kernel: &Path, log: &Path, o: &Outcome) {
    eprintln!("---- serial tail ({}) ----", log.display());
    eprintln!("{}", tail(&o.serial, 40));
    let sym = symbolize(kernel, &o.serial);
    if !sym.is_empty() {
        eprintln!("---- backtrace ----\n{sym}");
    }
    eprintln!("----");
}

/// `cargo xtask test`.
pub fn test(a: TestArgs) -> Result<ExitCode> {
    let start = Instant::now();
    crate::setup::ensure(crate::setup::Need::all())?;
    let mut report = Report {
        passed: 0,
        failed: Vec::new(),
        skipped: Vec::new(),
    };
    if a.stress {
        match build::kernel(false) {
            Ok(kernel) => crate::stress::run(&kernel, &mut |name, r| step(&mut report, name, r)),
            Err(e) => step(&mut report, "stress", Err(e)),
        }
    }
    if a.soak {
        match build::kernel(false) {
            Ok(kernel) => crate::soak::run(&kernel, a.runtime.as_deref(), &mut |name, r| {
                step(&mut report, name, r)
            }),
            Err(e) => step(&mut report, "soak", Err(e)),
        }
    }
    if !a.kernel_only && !a.runtime_only && !a.stress && !a.soak {
        step(
            &mut report,
            "cargo fmt --check",
            cargo(&["fmt", "--all", "--", "--check"], "cargo fmt --check"),
        );
        step(
            &mut report,
            "host tests (cargo test)",
            cargo_quiet(&["test", "--quiet"], "host tests"),
        );
        step(
            &mut report,
            "clippy (host)",
            cargo(
                &["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"],
                "clippy (host)",
            ),
        );
        step(
            &mut report,
            "clippy (kernel target)",
            cargo(
                &[
                    "clippy",
                    "--quiet",
                    "-p",
                    "cairn-kernel",
                    "--target",
                    "x86_64-unknown-none",
                    "--",
                    "-D",
                    "warnings",
                ],
                "clippy (kernel target)",
            ),
        );
        for (pkg, t) in loom_tests() {
            step(&mut report, &format!("loom {pkg} {t}"), run_loom(&pkg, &t));
        }
    }
    if !a.host_only && !a.runtime_only && !a.stress && !a.soak {
        if let Err(e) = kernel_tests(&a, &mut report) {
            step(&mut report, "in-QEMU tests", Err(e));
        }
    }
    if !a.host_only && !a.no_runtime && !a.stress && !a.soak {
        match build::kernel(false) {
            Ok(kernel) => crate::runtime::run(
                &kernel,
                &crate::runtime::Selection {
                    filter: a.runtime.as_deref(),
                    all_storage: a.all_storage,
                },
                &mut |name, r| step(&mut report, name, r),
            ),
            Err(e) => step(&mut report, "runtime tests", Err(e)),
        }
    }
    eprintln!(
        "\nxtask: {} passed, {} failed, {} skipped in {:.0} s",
        report.passed,
        report.failed.len(),
        report.skipped.len(),
        start.elapsed().as_secs_f64()
    );
    for s in &report.skipped {
        eprintln!("xtask: SKIPPED {s}");
    }
    for f in &report.failed {
        eprintln!("xtask: FAILED  {f}");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
