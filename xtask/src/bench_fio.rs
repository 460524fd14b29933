//! `cargo xtask bench fio`: Debian's fio (`files/fio-engines.fio`) on
//! cairn (release kernel, TFS image) and on the Linux guest (ext4 image
//! with the same files), both under TCG with the same QEMU flags as
//! `bench programs` (whose boots it shares), in the same run: 4 KiB random
//! read and write IOPS one and 32 deep and 1 MiB sequential read and write
//! MiB/s eight deep, with the libaio and io_uring engines, O_DIRECT and
//! buffered, 2 s a job. Prints the table with cairn/Linux ratios (above
//! 1: cairn faster) and writes it to the `## fio` section of
//! BENCHMARKS.md. Figures are printed, never asserted.

use crate::Result;
use crate::bench_programs::{cairn_run, fio_terse, linux_run};
use std::collections::BTreeMap;

/// Figures by job name (IOPS or MiB/s).
type Figures = BTreeMap<String, f64>;

/// (job suffix, what, unit): a job is `{engine}_{d|b}_{suffix}`.
const KINDS: &[(&str, &str, &str)] = &[
    ("rr1", "4 KiB random read, 1 deep", "IOPS"),
    ("rr32", "4 KiB random read, 32 deep", "IOPS"),
    ("rw1", "4 KiB random write, 1 deep", "IOPS"),
    ("rw32", "4 KiB random write, 32 deep", "IOPS"),
    ("sr", "1 MiB sequential read, 8 deep", "MiB/s"),
    ("sw", "1 MiB sequential write, 8 deep", "MiB/s"),
];

const ENGINES: &[(&str, &str)] = &[("aio", "libaio"), ("uring", "io_uring")];
const MODES: &[(&str, &str)] = &[("d", "O_DIRECT"), ("b", "buffered")];

/// Each job's figure from fio's terse output.
pub fn figures(serial: &str) -> Figures {
    let mut m = Figures::new();
    for (name, (rkib, riops, wkib, wiops)) in fio_terse(serial) {
        let v = match name.rsplit('_').next() {
            Some("rr1" | "rr32") => riops,
            Some("rw1" | "rw32") => wiops,
            Some("sr") => rkib / 1024.0,
            Some("sw") => wkib / 1024.0,
            _ => continue,
        };
        m.insert(name, v);
    }
    m
}

/// The table as Markdown.
pub fn table(cairn: &Figures, linux: &Figures) -> String {
    let mut s = String::from(
        "| engine | I/O | workload | unit | cairn | Linux | cairn/Linux |\n|---|---|---|---|---:|---:|---:|\n",
    );
    for (e, engine) in ENGINES {
        for (m, mode) in MODES {
            for (k, what, unit) in KINDS {
                let key = format!("{e}_{m}_{k}");
                let (c, l) = (cairn.get(&key), linux.get(&key));
                let fmt = |x: Option<&f64>| x.map_or("n/a".into(), |v| format!("{v:.0}"));
                let ratio = match (c, l) {
                    (Some(c), Some(l)) if *c > 0.0 && *l > 0.0 => format!("{:.2}", c / l),
                    _ => "n/a".into(),
                };
                s += &format!(
                    "| {engine} | {mode} | {what} | {unit} | {} | {} | {ratio} |\n",
                    fmt(c),
                    fmt(l)
                );
            }
        }
    }
    s
}

/// `cargo xtask bench fio`.
pub fn run() -> Result<()> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: false,
        clippy: false,
    })?;
    let t = cairn_runtime_tests::fio_engines_bench();
    let mut notes = String::new();
    eprintln!("xtask: bench fio: cairn (release kernel, TFS on virtio-blk)");
    let c = cairn_run(t);
    eprintln!("xtask: bench fio: Linux guest (ext4 on virtio-blk)");
    let (l, version) = match crate::linux::guest() {
        Ok(g) => (
            linux_run(&g, t),
            format!("Linux {} (Debian linux-image-amd64), ext4", g.version),
        ),
        Err(e) => (Err(format!("no Linux guest: {e}")), "a Linux guest".into()),
    };
    for (side, r) in [("cairn", &c), ("Linux", &l)] {
        if let Err(e) = r {
            eprintln!("xtask: bench fio: {side}: {e}");
            notes += &format!(
                "\n{side}: not measured: {}\n",
                e.lines().next().unwrap_or("")
            );
        }
    }
    let text = |r: &Result<String>| r.as_deref().unwrap_or("").to_string();
    let (cairn, linux) = (figures(&text(&c)), figures(&text(&l)));
    let t = table(&cairn, &linux);
    println!(
        "fio engines under TCG (-M q35 -smp 2 -m 512M -mem-prealloc, virtio-blk), same run; cairn/Linux above 1: cairn faster"
    );
    print!("{t}");
    let body = format!(
        "## fio\n\n`cargo xtask bench fio`: Debian's fio (test/runtime/files/fio-engines.fio, `--thread`, 2 s a job) \
         on cairn (release kernel, TFS) and on {version} (busybox initramfs) under TCG, `-M q35 -smp 2 -m 512M \
         -mem-prealloc`, virtio-blk, in the same run. cairn's O_DIRECT libaio and io_uring requests go in flight \
         (started at submission, completed by its `dio` lander thread); buffered ones run at submission, so \
         its buffered 32-deep figures are those of one request at a time. cairn/Linux above 1 means cairn is faster. Host: {} CPUs.\n\n{t}{notes}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    crate::bench_fs::write_section("fio", "fio", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_table() {
        let line = |name: &str| {
            let mut l = format!("3;fio-3.33;{name};0;0");
            for i in 5..60 {
                l += &format!(";{i}");
            }
            l
        };
        let serial = format!(
            "{}\n{}\n{}\n",
            line("uring_d_rr32"),
            line("aio_b_sw"),
            line("aio_b_sr")
        );
        let f = figures(&serial);
        assert_eq!(f["uring_d_rr32"], 7.0);
        assert_eq!(f["aio_b_sw"], 47.0 / 1024.0);
        assert_eq!(f["aio_b_sr"], 6.0 / 1024.0);
        let l: Figures = [("uring_d_rr32".to_string(), 3.5)].into_iter().collect();
        let t = table(&f, &l);
        assert!(
            t.contains(
                "| io_uring | O_DIRECT | 4 KiB random read, 32 deep | IOPS | 7 | 4 | 2.00 |"
            ),
            "{t}"
        );
        assert!(t.contains("| n/a | n/a | n/a |"), "{t}");
    }
}
