//! `cargo xtask profile`: where the kernel spends a benchmark's time.
//!
//! Boots a benchmark workload (`fs`: test/runtime/c/fsbench.c, `scale`:
//! scalebench.c) on the release kernel with `profile=<hz>` on its command
//! line, so every CPU samples its interrupted instruction pointer on the
//! local APIC timer (the kernel's `profile` module). The workload names its
//! phases (its benchmark cases) through `/proc/cairn/profile`; at exit the
//! kernel prints `profile <phase> <address> <count>` lines, which this
//! module symbolises against the kernel's own symbol table (`nm`) and
//! prints per phase as the functions with the most samples.
//!
//! Figures are shares of samples, printed, never asserted. Samples land
//! where interrupts are enabled: time with interrupts off is charged to
//! the point they come back on (see the kernel module).

use crate::Result;
use crate::disks::Storage;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// fsbench (the `cargo xtask bench fs` workload).
    Fs,
    /// scalebench (the `cargo xtask bench scale` workload).
    Scale,
}

#[derive(Args)]
pub struct ProfileArgs {
    /// The workload to profile.
    #[arg(value_enum)]
    pub workload: Workload,
    /// vCPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: usize,
    /// Samples per second per CPU.
    #[arg(long, default_value_t = 997)]
    pub hz: u64,
    /// Functions shown per phase.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// Only phases whose name contains this.
    #[arg(long)]
    pub phase: Option<String>,
    /// The workload's arguments, comma-separated, as the kernel's `argv=`
    /// (e.g. `scalebench,1,2,cases=pread_4k`).
    #[arg(long)]
    pub argv: Option<String>,
}

/// What the console said: phase names and (phase, address) → samples.
#[derive(Default, Debug)]
pub struct Samples {
    pub phases: BTreeMap<u32, String>,
    pub counts: BTreeMap<(u32, u64), u64>,
    /// (phase, return address of the sampled kernel frame) → samples.
    pub callers: BTreeMap<(u32, u64), u64>,
    pub lost: u64,
}

/// The `profile ...` lines of a console.
pub fn parse(serial: &str) -> Samples {
    let mut s = Samples::default();
    s.phases.insert(0, "(before the first mark)".into());
    for line in serial.lines() {
        let Some(rest) = line.trim().strip_prefix("profile ") else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        match w.as_slice() {
            ["phase", n, name @ ..] => {
                if let Ok(n) = n.parse() {
                    s.phases.insert(n, name.join(" "));
                }
            }
            ["lost", n] => s.lost = n.parse().unwrap_or(0),
            ["caller", phase, address, count] => {
                if let Some(k) = sample(phase, address, count) {
                    *s.callers.entry((k.0, k.1)).or_default() += k.2;
                }
            }
            [phase, address, count] => {
                if let Some(k) = sample(phase, address, count) {
                    *s.counts.entry((k.0, k.1)).or_default() += k.2;
                }
            }
            _ => {}
        }
    }
    s
}

/// `phase`, `0xaddress`, `count` → numbers.
fn sample(phase: &str, address: &str, count: &str) -> Option<(u32, u64, u64)> {
    let address = address.strip_prefix("0x").unwrap_or(address);
    Some((
        phase.parse().ok()?,
        u64::from_str_radix(address, 16).ok()?,
        count.parse().ok()?,
    ))
}

/// Function start addresses and names, sorted by address.
pub struct Symbols(Vec<(u64, String)>);

impl Symbols {
    /// The text symbols of `elf`, from `nm`.
    pub fn of(elf: &Path) -> Result<Symbols> {
        let out = Command::new("nm")
            .args(["-C", "-n", "--defined-only"])
            .arg(elf)
            .output()
            .map_err(|e| format!("cannot run nm (binutils): {e}"))?;
        if !out.status.success() {
            return Err(format!("nm {} failed", elf.display()));
        }
        Ok(Self::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `nm -n` output → text symbols.
    pub fn parse(nm: &str) -> Symbols {
        let mut v: Vec<(u64, String)> = nm
            .lines()
            .filter_map(|l| {
                let mut w = l.splitn(3, ' ');
                let a = u64::from_str_radix(w.next()?, 16).ok()?;
                let kind = w.next()?;
                let name = w.next()?;
                matches!(kind, "t" | "T" | "w" | "W").then(|| (a, name.to_string()))
            })
            .collect();
        v.sort();
        Symbols(v)
    }

    /// The function containing `address`.
    pub fn name(&self, address: u64) -> String {
        if address == 1 {
            return "[user mode]".into();
        }
        match self.0.partition_point(|(a, _)| *a <= address) {
            0 => format!("{address:#x}"),
            i => shorten(&self.0[i - 1].1),
        }
    }
}

/// A demangled Rust path without its hash suffix.
fn shorten(name: &str) -> String {
    match name.rfind("::h") {
        Some(i) if name[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => name[..i].to_string(),
        _ => name.to_string(),
    }
}

/// Samples per phase and function.
fn by_function(
    counts: &BTreeMap<(u32, u64), u64>,
    syms: &Symbols,
) -> BTreeMap<u32, BTreeMap<String, u64>> {
    let mut per_phase: BTreeMap<u32, BTreeMap<String, u64>> = BTreeMap::new();
    for (&(phase, address), &n) in counts {
        *per_phase
            .entry(phase)
            .or_default()
            .entry(syms.name(address))
            .or_default() += n;
    }
    per_phase
}

/// The `top` entries of `funcs` as lines, shares of `total`.
fn top_lines(funcs: &BTreeMap<String, u64>, total: u64, top: usize) -> String {
    let mut v: Vec<(&String, &u64)> = funcs.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(top)
        .map(|(f, n)| format!("{:6.2}%  {n:6}  {f}\n", *n as f64 * 100.0 / total as f64))
        .collect()
}

/// The per-phase report: each phase's total, its `top` functions and
/// their `top` callers (shares of all the phase's samples).
pub fn report(s: &Samples, syms: &Symbols, top: usize, only: Option<&str>) -> String {
    let callers = by_function(&s.callers, syms);
    let mut out = String::new();
    for (phase, funcs) in by_function(&s.counts, syms) {
        let name = s.phases.get(&phase).map_or("?", |n| n.as_str());
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let total: u64 = funcs.values().sum();
        out += &format!("\n== phase {phase}: {name} ({total} samples)\n");
        out += &top_lines(&funcs, total, top);
        if let Some(c) = callers.get(&phase) {
            out += "-- callers of the sampled kernel functions:\n";
            out += &top_lines(c, total, top);
        }
    }
    if s.lost > 0 {
        out += &format!("\n{} samples lost (table full)\n", s.lost);
    }
    out
}

pub fn profile(a: ProfileArgs) -> Result<ExitCode> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let (t, marker) = match a.workload {
        Workload::Fs => (cairn_runtime_tests::fs_bench(), "fsbench "),
        Workload::Scale => (cairn_runtime_tests::scale_bench(), "scalebench "),
    };
    let mut append = format!("profile={}", a.hz);
    if let Some(argv) = &a.argv {
        append += &format!(" argv={argv}");
    }
    eprintln!(
        "xtask: profile: {:?} on cairn (release kernel, -smp {}, {} Hz per CPU)",
        a.workload, a.smp, a.hz
    );
    let serial =
        crate::bench_guest::cairn_with(t, Storage::Virtio, a.smp, "profile", marker, &append)?;
    let kernel = crate::build::kernel(true)?;
    let syms = Symbols::of(&kernel)?;
    let samples = parse(&serial);
    if samples.counts.is_empty() {
        return Err("the kernel printed no samples (is `profile=` known to it?)".into());
    }
    print!("{}", report(&samples, &syms, a.top, a.phase.as_deref()));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolises_and_groups_by_phase() {
        let serial = "boot\nprofile phase 1 rand_read\nfsbench x\n\
                      profile 1 0xffffffff80001010 3\nprofile 1 0xffffffff80001020 1\n\
                      profile 1 0x1 4\nprofile 0 0xffffffff80002000 2\n\
                      profile caller 1 0xffffffff80001030 3\nprofile lost 0\n";
        let s = parse(serial);
        assert_eq!(s.phases[&1], "rand_read");
        assert_eq!(s.counts[&(1, 0xffffffff80001010)], 3);
        let syms = Symbols::parse(
            "ffffffff80001000 T cairn_kernel::fs::read::h0123456789abcdef\n\
             ffffffff80001018 t cairn_kernel::fs::other\nffffffff80002000 r RODATA\n",
        );
        assert_eq!(syms.name(0xffffffff80001010), "cairn_kernel::fs::read");
        assert_eq!(syms.name(0xffffffff80001020), "cairn_kernel::fs::other");
        let r = report(&s, &syms, 10, Some("rand"));
        assert!(r.contains("phase 1: rand_read (8 samples)"), "{r}");
        assert!(r.contains(" 50.00%       4  [user mode]"), "{r}");
        assert!(r.contains(" 37.50%       3  cairn_kernel::fs::read"), "{r}");
        assert!(!r.contains("phase 0"), "{r}");
        assert!(r.contains("callers of the sampled"), "{r}");
        assert!(
            r.contains(" 37.50%       3  cairn_kernel::fs::other"),
            "{r}"
        );
    }
}
