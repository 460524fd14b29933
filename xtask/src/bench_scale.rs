//! `cargo xtask bench scale`: how throughput grows with threads (issue 17),
//! on cairn (release kernel) and on the Linux guest in the same run, under
//! TCG with `-smp 2` and `-smp 4` (`-M q35 -m 512M -mem-prealloc`).
//!
//! The workload is test/runtime/c/scalebench.c: 1, 2 and 4 threads each
//! doing the same work (cached 1 MiB preads and pwrites of a 16 MiB file
//! of their own, 4 KiB preads at random offsets, first touches of
//! anonymous memory, read faults on a shared mapping of the cached file,
//! getpid, 4 KiB overwrites of the cached file, fstat). Prints aggregate rates and the speedup over
//! one thread, writes the table to the `## scale` section of
//! BENCHMARKS.md. Figures are printed, never asserted.

use crate::Result;
use crate::disks::Storage;
use std::collections::BTreeMap;

/// (case, threads) → (ops, bytes, ns).
pub type Figures = BTreeMap<(String, u32), (u64, u64, u64)>;

/// The `scalebench <case> threads= ops= bytes= ns=` lines of a console.
pub fn parse(serial: &str) -> Figures {
    serial
        .lines()
        .filter_map(|l| {
            let mut w = l.trim().strip_prefix("scalebench ")?.split_whitespace();
            let case = w.next()?.to_string();
            let mut field = |k: &str| -> Option<u64> {
                w.next()?
                    .strip_prefix(k)?
                    .parse::<f64>()
                    .ok()
                    .map(|f| f as u64)
            };
            let threads = field("threads=")? as u32;
            let v = (field("ops=")?, field("bytes=")?, field("ns=")?);
            Some(((case, threads), v))
        })
        .collect()
}

/// The cases, their unit, and how a rate is computed.
const CASES: &[(&str, &str, bool)] = &[
    ("pread_cached", "MiB/s", true),
    ("pwrite_cached", "MiB/s", true),
    ("pread_4k", "IOPS", false),
    ("anon_fault", "MiB/s faulted", true),
    ("file_fault", "MiB/s faulted (cached file, shared)", true),
    ("getpid", "calls/s", false),
    ("pwrite_4k", "IOPS", false),
    ("fstat", "calls/s", false),
];

fn rate(f: &Figures, case: &str, threads: u32, bytes: bool) -> Option<f64> {
    let (ops, b, ns) = *f.get(&(case.to_string(), threads))?;
    let s = ns.max(1) as f64 / 1e9;
    Some(if bytes {
        b as f64 / (1u64 << 20) as f64 / s
    } else {
        ops as f64 / s
    })
}

type Side = std::result::Result<Figures, String>;

/// The table as Markdown: per case and thread count, both systems' rates
/// and speedups over one thread, and cairn/Linux.
pub fn table(smp: usize, cairn: &Side, linux: &Side) -> String {
    let mut s = format!(
        "\n`-smp {smp}`\n\n| case | threads | cairn | cairn speedup | Linux | Linux speedup | cairn/Linux |\n\
         |---|---:|---:|---:|---:|---:|---:|\n"
    );
    for (case, unit, bytes) in CASES {
        for t in [1u32, 2, 4] {
            let c = cairn.as_ref().ok().and_then(|f| rate(f, case, t, *bytes));
            let l = linux.as_ref().ok().and_then(|f| rate(f, case, t, *bytes));
            let c1 = cairn.as_ref().ok().and_then(|f| rate(f, case, 1, *bytes));
            let l1 = linux.as_ref().ok().and_then(|f| rate(f, case, 1, *bytes));
            let fmt = |x: Option<f64>| x.map_or("n/a".into(), |v| format!("{v:.0}"));
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "n/a".into(),
            };
            s += &format!(
                "| {case} ({unit}) | {t} | {} | {} | {} | {} | {} |\n",
                fmt(c),
                ratio(c, c1),
                fmt(l),
                ratio(l, l1),
                ratio(c, l)
            );
        }
    }
    s
}

/// `cargo xtask bench scale`.
pub fn run() -> Result<()> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let t = cairn_runtime_tests::scale_bench();
    let mut tables = String::new();
    let mut version = String::new();
    for smp in [2usize, 4] {
        eprintln!("xtask: bench scale: cairn, -smp {smp}");
        let cairn: Side = crate::bench_guest::cairn(
            t,
            Storage::Virtio,
            smp,
            &format!("bench-scale-cairn-{smp}"),
            "scalebench ",
        )
        .map(|s| parse(&s));
        eprintln!("xtask: bench scale: Linux guest, -smp {smp}");
        let (linux, v) = crate::bench_guest::linux(
            t,
            Storage::Virtio,
            smp,
            &format!("bench-scale-linux-{smp}"),
            "scalebench ",
        );
        version = v;
        let linux: Side = linux.map(|s| parse(&s));
        for (name, side) in [("cairn", &cairn), ("Linux", &linux)] {
            if let Err(e) = side {
                eprintln!("xtask: bench scale: {name} -smp {smp}: {e}");
            }
        }
        tables += &table(smp, &cairn, &linux);
    }
    println!("throughput against threads under TCG, same run{tables}");
    let body = format!(
        "## scale\n\n`cargo xtask bench scale`: test/runtime/c/scalebench.c on cairn (release \
         kernel) and on {} under TCG, `-M q35 -m 512M -mem-prealloc`, virtio-blk, in the same run. \
         Each thread does the same work on its own file or memory; rates are aggregates over all \
         threads; speedup is against one thread on the same system. Host: {} CPUs.\n{tables}\n",
        if version.is_empty() {
            "a Linux guest"
        } else {
            &version
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    crate::bench_fs::write_section("scale", "scale", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_tabulates_speedups() {
        let serial = "scalebench pread_cached threads=1 ops=10 bytes=1048576000 ns=1000000000\n\
                      scalebench pread_cached threads=2 ops=20 bytes=2097152000 ns=1000000000\n";
        let f = parse(serial);
        assert_eq!(f.len(), 2);
        let t = table(2, &Ok(f.clone()), &Ok(f));
        assert!(
            t.contains("| pread_cached (MiB/s) | 2 | 2000 | 2.00 | 2000 | 2.00 | 1.00 |"),
            "{t}"
        );
        assert!(t.contains("| getpid (calls/s) | 1 | n/a |"), "{t}");
    }
}
