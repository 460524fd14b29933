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

fn cairn_side(storage: Storage) -> Side {
    let t = cairn_runtime_tests::fs_bench();
    let serial = crate::bench_guest::cairn(t, storage, 2, "bench-fs-cairn", "fsbench ")?;
    complete(parse(&serial), &serial)
}

fn linux_side(storage: Storage) -> (Side, String) {
    let t = cairn_runtime_tests::fs_bench();
    let (serial, version) = crate::bench_guest::linux(t, storage, 2, "bench-fs-linux", "fsbench ");
    (serial.and_then(|s| complete(parse(&s), &s)), version)
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

/// The table as Markdown.
pub fn table(cairn: &Side, linux: &Side) -> String {
    let mut s = String::from(
        "| workload | unit | cairn | Linux | cairn/Linux (>1: cairn faster) |\n|---|---|---:|---:|---:|\n",
    );
    for (case, what, unit) in ROWS {
        let c = cairn.as_ref().ok().and_then(|m| m.get(*case));
        let l = linux.as_ref().ok().and_then(|m| m.get(*case));
        let fmt =
            |x: Option<&Case>| x.map_or("n/a".to_string(), |c| format!("{:.1}", unit.rate(c)));
        let ratio = match (c, l) {
            (Some(c), Some(l)) => format!("{:.2}", unit.speedup(unit.rate(c), unit.rate(l))),
            _ => "n/a".into(),
        };
        s += &format!(
            "| {what} | {} | {} | {} | {ratio} |\n",
            unit.name(),
            fmt(c),
            fmt(l)
        );
    }
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

/// `cargo xtask bench fs` with the disks on `storage`.
pub fn run(storage: Storage) -> Result<()> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let kind = storage.name();
    eprintln!("xtask: bench fs: cairn (release kernel, TFS on {kind})");
    let cairn = cairn_side(storage);
    eprintln!("xtask: bench fs: Linux guest (ext4 on {kind})");
    let (linux, version) = linux_side(storage);
    let t = table(&cairn, &linux);
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
         Rates (higher is better); cairn/Linux above 1 means cairn is faster. Host: {} CPUs.\n\n{t}{notes}\n",
        if version.is_empty() {
            "a Linux guest"
        } else {
            &version
        },
        "busybox initramfs",
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
