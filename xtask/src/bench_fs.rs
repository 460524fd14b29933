//! `cargo xtask bench fs [--storage KIND]`: the `fsbench` workload
//! (test/runtime/c/fsbench.c) on cairn (release kernel, TFS image) and on
//! the Linux guest (Debian's kernel, ext4 image with the same files), both
//! under TCG with the same QEMU flags (`-M q35 -smp 2 -m 512M
//! -mem-prealloc`, the disk on virtio-blk or the kind `--storage` names) in
//! the same run. Prints a table of rates and the cairn/Linux ratio (above
//! 1: cairn is faster) and writes it to the `## fs` section of
//! BENCHMARKS.md (`## fs on <kind>` for another kind), keeping the other
//! sections. Figures are printed, never asserted; a side that cannot run
//! is reported with its reason.

use crate::Result;
use crate::build;
use crate::disks::Storage;
use std::collections::BTreeMap;

/// One `fsbench` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub ops: u64,
    pub bytes: u64,
    pub ns: u64,
}

/// The `fsbench <case> ops= bytes= ns=` lines of a console.
pub fn parse(serial: &str) -> BTreeMap<String, Case> {
    serial
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("fsbench ")?;
            let mut w = rest.split_whitespace();
            let name = w.next()?.to_string();
            let mut field = |k: &str| -> Option<u64> {
                let v = w.next()?.strip_prefix(k)?;
                v.parse::<f64>().ok().map(|f| f as u64)
            };
            Some((
                name,
                Case {
                    ops: field("ops=")?,
                    bytes: field("bytes=")?,
                    ns: field("ns=")?,
                },
            ))
        })
        .collect()
}

/// The rows of the table: case, what is measured, unit.
const ROWS: &[(&str, &str, Unit)] = &[
    (
        "seq_write_fsync",
        "sequential write 32 MiB + fsync",
        Unit::MiBs,
    ),
    ("seq_read_cold", "sequential read 32 MiB, cold", Unit::MiBs),
    (
        "seq_read_cached",
        "sequential read 32 MiB, cached",
        Unit::MiBs,
    ),
    (
        "seq_write_cached",
        "sequential write 32 MiB, cached (no fsync)",
        Unit::MiBs,
    ),
    (
        "memcpy",
        "memcpy 32 MiB in user space (baseline)",
        Unit::MiBs,
    ),
    ("rand_read_4k_cold", "random 4 KiB reads, cold", Unit::Iops),
    (
        "rand_read_4k_cached",
        "random 4 KiB reads, cached",
        Unit::Iops,
    ),
    ("create_unlink", "create + close + unlink", Unit::Ops),
    (
        "mmap_fault_cold",
        "mapped-file read faults, cold",
        Unit::Faults,
    ),
    (
        "mmap_fault_cached",
        "mapped-file read faults, cached",
        Unit::Faults,
    ),
    ("fsync_4k", "fsync of 4 KiB dirty (median of 16)", Unit::Ms),
    ("fsync_1m", "fsync of 1 MiB dirty (median of 8)", Unit::Ms),
    ("fsync_64m", "fsync of 64 MiB dirty", Unit::Ms),
];

#[derive(Copy, Clone)]
enum Unit {
    MiBs,
    Iops,
    Ops,
    Faults,
    /// Latency of one call: lower is better.
    Ms,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::MiBs => "MiB/s",
            Unit::Iops => "IOPS",
            Unit::Ops => "ops/s",
            Unit::Faults => "faults/s",
            Unit::Ms => "ms (lower is better)",
        }
    }

    fn rate(self, c: &Case) -> f64 {
        let s = c.ns.max(1) as f64 / 1e9;
        match self {
            Unit::MiBs => c.bytes as f64 / (1u64 << 20) as f64 / s,
            Unit::Iops | Unit::Ops | Unit::Faults => c.ops as f64 / s,
            Unit::Ms => c.ns as f64 / c.ops.max(1) as f64 / 1e6,
        }
    }

    /// How many times faster cairn is: rates divide, latencies the other
    /// way.
    fn speedup(self, cairn: f64, linux: f64) -> f64 {
        match self {
            Unit::Ms => linux / cairn,
            _ => cairn / linux,
        }
    }
}

/// One side's figures, or why there are none.
type Side = std::result::Result<BTreeMap<String, Case>, String>;

/// The console log name of run `run` of a side (the first keeps the
/// name a single run always had).
fn log_name(side: &str, run: usize) -> String {
    match run {
        0 => format!("bench-fs-{side}"),
        n => format!("bench-fs-{side}-{n}"),
    }
}

fn cairn_side(storage: Storage, run: usize) -> Side {
    let t = cairn_runtime_tests::fs_bench();
    let serial = crate::bench_guest::cairn(t, storage, 2, &log_name("cairn", run), "fsbench ")?;
    complete(parse(&serial), &serial)
}

fn linux_side(storage: Storage, run: usize) -> (Side, String) {
    let t = cairn_runtime_tests::fs_bench();
    let (serial, version) =
        crate::bench_guest::linux(t, storage, 2, &log_name("linux", run), "fsbench ");
    (serial.and_then(|s| complete(parse(&s), &s)), version)
}

/// Min, median (the mean of the middle two for an even count) and max of
/// `v` (not empty).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], mid, v[n - 1])
}

/// A row's rates over the runs that measured it: the median alone for one
/// run, `median (min-max)` for several.
fn rates(runs: &[Side], case: &str, unit: Unit) -> Option<(f64, String)> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.as_ref().ok()?.get(case).map(|c| unit.rate(c)))
        .collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let (lo, mid, hi) = spread(v);
    Some(if n == 1 {
        (mid, format!("{mid:.1}"))
    } else {
        (mid, format!("{mid:.1} ({lo:.1}-{hi:.1})"))
    })
}

/// Every row's case, or what is missing.
fn complete(cases: BTreeMap<String, Case>, serial: &str) -> Side {
    if cases.len() < ROWS.len() {
        return Err(format!(
            "the workload did not print every case\nserial tail:\n{}",
            crate::bench_guest::tail(serial, 8)
        ));
    }
    Ok(cases)
}

/// The table of one run of each side as Markdown.
#[cfg(test)]
pub fn table(cairn: &Side, linux: &Side) -> String {
    table_of_runs(core::slice::from_ref(cairn), core::slice::from_ref(linux))
}

/// The table as Markdown: each side's median over its runs (with min-max
/// when there are several), the ratio of the medians, and the cached rows
/// against memcpy from each side's first complete run.
pub fn table_of_runs(cairn_runs: &[Side], linux_runs: &[Side]) -> String {
    let mut s = String::from(
        "| workload | unit | cairn | Linux | cairn/Linux (>1: cairn faster) |\n|---|---|---:|---:|---:|\n",
    );
    for (case, what, unit) in ROWS {
        let c = rates(cairn_runs, case, *unit);
        let l = rates(linux_runs, case, *unit);
        let fmt = |x: &Option<(f64, String)>| x.as_ref().map_or("n/a".to_string(), |r| r.1.clone());
        let ratio = match (&c, &l) {
            (Some(c), Some(l)) => format!("{:.2}", unit.speedup(c.0, l.0)),
            _ => "n/a".into(),
        };
        s += &format!(
            "| {what} | {} | {} | {} | {ratio} |\n",
            unit.name(),
            fmt(&c),
            fmt(&l)
        );
    }
    let first = |runs: &[Side]| -> Side {
        runs.iter()
            .find(|r| r.is_ok())
            .or(runs.first())
            .cloned()
            .unwrap_or_else(|| Err("no run".into()))
    };
    let (cairn, linux) = (&first(cairn_runs), &first(linux_runs));
    // The cached rows against each system's own memcpy, measured in the
    // same run (the pagecache goal: cached reads at least 70% of memcpy).
    s += "\n| cached throughput / same-run memcpy | cairn | Linux |\n|---|---:|---:|\n";
    for (case, what) in [
        ("seq_read_cached", "sequential read, cached"),
        ("seq_write_cached", "sequential write, cached"),
    ] {
        let ratio = |side: &Side| {
            side.as_ref()
                .ok()
                .and_then(|m| {
                    Some(Unit::MiBs.rate(m.get(case)?) / Unit::MiBs.rate(m.get("memcpy")?))
                })
                .map_or("n/a".to_string(), |r| format!("{:.0}%", r * 100.0))
        };
        s += &format!("| {what} | {} | {} |\n", ratio(cairn), ratio(linux));
    }
    s
}

/// Replaces (or appends) the `## <heading>` section of `doc` with `body`.
/// Replaces (or appends) section `heading` of BENCHMARKS.md with `body`
/// and says so on stderr, naming the bench `what`.
pub fn write_section(what: &str, heading: &str, body: &str) -> Result<()> {
    let path = build::root().join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, replace_section(&doc, heading, body))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("xtask: bench {what}: table written to {}", path.display());
    Ok(())
}

pub fn replace_section(doc: &str, heading: &str, body: &str) -> String {
    let head = format!("## {heading}");
    let mut out = String::new();
    let mut lines = doc.lines().peekable();
    let mut done = false;
    while let Some(l) = lines.next() {
        if !done && l.trim_end() == head {
            out += body;
            // Skip the old section up to the next `## ` heading.
            while lines.peek().is_some_and(|n| !n.starts_with("## ")) {
                lines.next();
            }
            done = true;
            continue;
        }
        out += l;
        out.push('\n');
    }
    if !done {
        if out.is_empty() {
            out += "# Benchmarks\n\nFigures are printed, never asserted.\n\n";
        } else if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out += body;
    }
    out
}

/// `cargo xtask bench fs` with the disks on `storage`, `repeat` runs of
/// each side, alternating (one run costs what it always did).
pub fn run(storage: Storage, repeat: usize) -> Result<()> {
    let repeat = repeat.max(1);
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let kind = storage.name();
    let mut cairn_runs = Vec::new();
    let mut linux_runs = Vec::new();
    let mut version = String::new();
    for run in 0..repeat {
        eprintln!(
            "xtask: bench fs: cairn (release kernel, TFS on {kind}), run {}/{repeat}",
            run + 1
        );
        cairn_runs.push(cairn_side(storage, run));
        eprintln!(
            "xtask: bench fs: Linux guest (ext4 on {kind}), run {}/{repeat}",
            run + 1
        );
        let (linux, v) = linux_side(storage, run);
        linux_runs.push(linux);
        if version.is_empty() {
            version = v;
        }
    }
    let t = table_of_runs(&cairn_runs, &linux_runs);
    // A side is reported as not measured only if no run of it completed.
    let side = |runs: &[Side]| -> Side {
        runs.iter()
            .find(|r| r.is_ok())
            .or(runs.first())
            .cloned()
            .unwrap_or_else(|| Err("no run".into()))
    };
    let (cairn, linux) = (side(&cairn_runs), side(&linux_runs));
    let mut notes = String::new();
    if let Err(e) = &cairn {
        notes += &format!(
            "\ncairn: not measured: {}\n",
            e.lines().next().unwrap_or("")
        );
    }
    if let Err(e) = &linux {
        notes += &format!(
            "\nLinux: not measured: {}\n",
            e.lines().next().unwrap_or("")
        );
    }
    println!(
        "fs workloads under TCG (-M q35 -smp 2 -m 512M -mem-prealloc, {kind}), same run; cairn/Linux above 1: cairn faster"
    );
    print!("{t}");
    for side in [&cairn, &linux] {
        if let Err(e) = side {
            eprintln!("xtask: bench fs: {e}");
        }
    }
    let (heading, command) = if storage == Storage::Virtio {
        ("fs".to_string(), "cargo xtask bench fs".to_string())
    } else {
        (
            format!("fs on {kind}"),
            format!("cargo xtask bench fs --storage {kind}"),
        )
    };
    let body = format!(
        "## {heading}\n\n`{command}`: test/runtime/c/fsbench.c on cairn (release kernel, TFS) and on \
         {} ({}) under TCG, `-M q35 -smp 2 -m 512M -mem-prealloc` (guest RAM pre-faulted on the host: a first touch costs ~18 µs here), {kind}, in the same run. \
         Rates (higher is better), {}; cairn/Linux above 1 means cairn is faster (ratio of medians). Host: {} CPUs.\n\n{t}{notes}\n",
        if version.is_empty() {
            "a Linux guest"
        } else {
            &version
        },
        "busybox initramfs",
        if repeat == 1 {
            "one run of each side".to_string()
        } else {
            format!("median (min-max) of {repeat} runs of each side, alternating")
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    write_section("fs", &heading, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_makes_the_table() {
        let serial = "boot\nfsbench seq_write_fsync ops=32 bytes=33554432 ns=1000000000\n\
                      fsbench create_unlink ops=500 bytes=0 ns=500000000\nPASS fsbench\n";
        let m = parse(serial);
        assert_eq!(m.len(), 2);
        assert_eq!(m["create_unlink"].ops, 500);
        let linux: Side = Ok(m.clone());
        let mut faster = m.clone();
        faster.get_mut("create_unlink").unwrap().ns = 250_000_000;
        let t = table(&Ok(faster), &linux);
        assert!(
            t.contains("| sequential write 32 MiB + fsync | MiB/s | 32.0 | 32.0 | 1.00 |"),
            "{t}"
        );
        assert!(
            t.contains("| create + close + unlink | ops/s | 2000.0 | 1000.0 | 2.00 |"),
            "{t}"
        );
        let t = table(&Err("no".into()), &linux);
        assert!(t.contains("| n/a | 32.0 | n/a |"), "{t}");
    }

    #[test]
    fn several_runs_give_median_min_and_max() {
        let one = |ns: u64| -> Side {
            Ok(parse(&format!(
                "fsbench create_unlink ops=1000 bytes=0 ns={ns}\n\
                 fsbench memcpy ops=1 bytes=33554432 ns=100000000\n"
            )))
        };
        // 1000 ops in 1, 0.5 and 0.25 s: 1000, 2000 and 4000 ops/s.
        let cairn = [
            one(1_000_000_000),
            Err("hung".into()),
            one(250_000_000),
            one(500_000_000),
        ];
        let linux = [one(1_000_000_000)];
        let t = table_of_runs(&cairn, &linux);
        assert!(
            t.contains(
                "| create + close + unlink | ops/s | 2000.0 (1000.0-4000.0) | 1000.0 | 2.00 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| sequential read 32 MiB, cold | MiB/s | n/a | n/a | n/a |"),
            "{t}"
        );
        // Two runs: the mean of both is the median.
        let t = table_of_runs(&[one(1_000_000_000), one(500_000_000)], &linux);
        assert!(
            t.contains(
                "| create + close + unlink | ops/s | 1500.0 (1000.0-2000.0) | 1000.0 | 1.50 |"
            ),
            "{t}"
        );
    }

    #[test]
    fn replaces_only_its_section() {
        let doc = "# Benchmarks\n\nintro\n\n## boot\n\nboot figures\n\n## fs\n\nold\n\n## blk\n\nblk figures\n";
        let new = replace_section(doc, "fs", "## fs\n\nnew\n\n");
        assert_eq!(
            new,
            "# Benchmarks\n\nintro\n\n## boot\n\nboot figures\n\n## fs\n\nnew\n\n## blk\n\nblk figures\n"
        );
        let added = replace_section("# B\n\n## boot\n\nx\n", "fs", "## fs\n\ny\n");
        assert!(added.ends_with("## boot\n\nx\n\n## fs\n\ny\n"), "{added:?}");
        assert!(replace_section("", "fs", "## fs\n").starts_with("# Benchmarks"));
    }
}
