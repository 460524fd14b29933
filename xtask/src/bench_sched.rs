//! `cargo xtask bench sched`: scheduler latency under CPU load, on cairn and
//! on the Linux guest in the same run (`-M q35 -smp 2 -m 512M`, TCG).
//!
//! The workload is test/runtime/c/liveness.c in its bench mode: beside 0,
//! N and 2N CPU-bound threads (N = vCPUs) a thread sleeps 20 ms 100 times
//! (wake-up latency: how late each sleep returns) and another does 40
//! 4 KiB pwrite+fsync (fsync latency). Prints p50 and p99 of each, and the
//! cairn/Linux ratio of p99 (below 2 meets issue 10's goal), and writes the
//! table to the `## sched` section of BENCHMARKS.md. Figures are printed,
//! never asserted.

use crate::Result;
use crate::disks::Storage;
use std::collections::BTreeMap;

/// Percentiles of one load level, in ns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Level {
    pub wake_p50: u64,
    pub wake_p99: u64,
    pub fsync_p50: u64,
    pub fsync_p99: u64,
}

/// The `schedbench spinners=K ...` lines of a console, by spinner count.
pub fn parse(serial: &str) -> BTreeMap<u32, Level> {
    serial
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("schedbench ")?;
            let mut fields = BTreeMap::new();
            for w in rest.split_whitespace() {
                let (k, v) = w.split_once('=')?;
                fields.insert(k, v.parse::<u64>().ok()?);
            }
            Some((
                *fields.get("spinners")? as u32,
                Level {
                    wake_p50: *fields.get("wake_p50_ns")?,
                    wake_p99: *fields.get("wake_p99_ns")?,
                    fsync_p50: *fields.get("fsync_p50_ns")?,
                    fsync_p99: *fields.get("fsync_p99_ns")?,
                },
            ))
        })
        .collect()
}

type Side = std::result::Result<BTreeMap<u32, Level>, String>;

/// The table as Markdown (times in ms).
pub fn table(cairn: &Side, linux: &Side) -> String {
    let mut s = String::from(
        "| spinners | wake p50 cairn | wake p50 Linux | wake p99 cairn | wake p99 Linux | p99 cairn/Linux | fsync p50 cairn | fsync p50 Linux | fsync p99 cairn | fsync p99 Linux | p99 cairn/Linux |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let levels: Vec<u32> = cairn
        .iter()
        .chain(linux.iter())
        .flat_map(|m| m.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for k in levels {
        let c = cairn.as_ref().ok().and_then(|m| m.get(&k));
        let l = linux.as_ref().ok().and_then(|m| m.get(&k));
        let ms =
            |x: Option<u64>| x.map_or("n/a".to_string(), |ns| format!("{:.2}", ns as f64 / 1e6));
        let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a as f64 / b.max(1) as f64),
            _ => "n/a".into(),
        };
        s += &format!(
            "| {k} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            ms(c.map(|c| c.wake_p50)),
            ms(l.map(|l| l.wake_p50)),
            ms(c.map(|c| c.wake_p99)),
            ms(l.map(|l| l.wake_p99)),
            ratio(c.map(|c| c.wake_p99), l.map(|l| l.wake_p99)),
            ms(c.map(|c| c.fsync_p50)),
            ms(l.map(|l| l.fsync_p50)),
            ms(c.map(|c| c.fsync_p99)),
            ms(l.map(|l| l.fsync_p99)),
            ratio(c.map(|c| c.fsync_p99), l.map(|l| l.fsync_p99)),
        );
    }
    s
}

/// `cargo xtask bench sched`.
pub fn run() -> Result<()> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let t = cairn_runtime_tests::sched_bench();
    eprintln!("xtask: bench sched: cairn (release kernel)");
    let cairn: Side =
        crate::bench_guest::cairn(t, Storage::Virtio, 2, "bench-sched-cairn", "schedbench ")
            .map(|s| parse(&s));
    eprintln!("xtask: bench sched: Linux guest");
    let (linux, version) =
        crate::bench_guest::linux(t, Storage::Virtio, 2, "bench-sched-linux", "schedbench ");
    let linux: Side = linux.map(|s| parse(&s));
    let t = table(&cairn, &linux);
    let mut notes = String::new();
    for (name, side) in [("cairn", &cairn), ("Linux", &linux)] {
        if let Err(e) = side {
            eprintln!("xtask: bench sched: {name}: {e}");
            notes += &format!(
                "\n{name}: not measured: {}\n",
                e.lines().next().unwrap_or("")
            );
        }
    }
    println!(
        "scheduler latency under TCG (-M q35 -smp 2 -m 512M -mem-prealloc), same run; times in ms"
    );
    print!("{t}");
    let body = format!(
        "## sched\n\n`cargo xtask bench sched`: test/runtime/c/liveness.c in bench mode on cairn \
         (release kernel) and on {} under TCG, `-M q35 -smp 2 -m 512M -mem-prealloc`, in the same \
         run. Beside 0, 2 and 4 CPU-bound threads, a thread sleeps 20 ms 100 times (wake-up \
         latency: how late each sleep returns) and another does 40 4 KiB pwrite+fsync. Times in \
         ms; cairn/Linux below 1 means cairn is faster. Host: {} CPUs.\n\n{t}{notes}\n",
        if version.is_empty() {
            "a Linux guest"
        } else {
            &version
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    crate::bench_fs::write_section("sched", "sched", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels_and_makes_the_table() {
        let serial = "x\nschedbench spinners=0 wake_p50_ns=1000000 wake_p99_ns=2000000 \
                      fsync_p50_ns=3000000 fsync_p99_ns=4000000\n\
                      schedbench spinners=2 wake_p50_ns=1500000 wake_p99_ns=3000000 \
                      fsync_p50_ns=3000000 fsync_p99_ns=8000000\nPASS liveness\n";
        let m = parse(serial);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&2].fsync_p99, 8_000_000);
        let mut slower = m.clone();
        slower.get_mut(&2).unwrap().wake_p99 = 6_000_000;
        let t = table(&Ok(slower), &Ok(m));
        assert!(
            t.contains(
                "| 2 | 1.50 | 1.50 | 6.00 | 3.00 | 2.00 | 3.00 | 3.00 | 8.00 | 8.00 | 1.00 |"
            ),
            "{t}"
        );
        let t = table(&Err("no".into()), &Ok(parse(serial)));
        assert!(t.contains("| 0 | n/a | 1.00 |"), "{t}");
    }
}
