//! `cargo xtask bench programs`: real programs on cairn (release kernel,
//! TFS image) and on the Linux guest (Debian's kernel, ext4 image with the
//! same files), both under TCG with the same QEMU flags (`-M q35 -smp 2
//! -m 512M -mem-prealloc`, virtio-blk), in the same run: SQLite's
//! speedtest1 (total time) and fio (`files/fio-bench.fio`: sequential
//! write + fsync, sequential read, 4 KiB random reads, 4 KiB random writes
//! with periodic fsync). Prints the table with cairn/Linux ratios (above
//! 1: cairn faster) and writes it to the `## programs` section of
//! BENCHMARKS.md. Figures are printed, never asserted.

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::qemu::Vm;
use cairn_runtime_tests::RuntimeTest;
use std::collections::BTreeMap;
use std::time::Duration;

const PREFAULT: &[&str] = &["-mem-prealloc"];

/// Figures by row key.
type Figures = BTreeMap<&'static str, f64>;

/// speedtest1's `TOTAL....   12.345s` in seconds.
pub fn speedtest_total(serial: &str) -> Option<f64> {
    serial.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("TOTAL")?;
        rest.trim_start_matches('.')
            .trim()
            .strip_suffix('s')?
            .trim()
            .parse()
            .ok()
    })
}

/// fio's terse (v3) lines: job name → (read KiB/s, read IOPS, write KiB/s,
/// write IOPS).
pub fn fio_terse(serial: &str) -> BTreeMap<String, (f64, f64, f64, f64)> {
    serial
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let start = l.find("3;fio-")?;
            let f: Vec<&str> = l[start..].split(';').collect();
            if f.len() < 50 {
                return None;
            }
            let n = |i: usize| f[i].parse::<f64>().ok();
            Some((f[2].to_string(), (n(6)?, n(7)?, n(47)?, n(48)?)))
        })
        .collect()
}

/// The rows: key, what, unit, higher is better.
const ROWS: &[(&str, &str, &str, bool)] = &[
    (
        "speedtest1",
        "SQLite speedtest1 --size 10, total time",
        "s",
        false,
    ),
    (
        "seqwrite",
        "fio sequential write 64 MiB (1 MiB blocks) + fsync",
        "MiB/s",
        true,
    ),
    (
        "seqread",
        "fio sequential read 64 MiB (1 MiB blocks)",
        "MiB/s",
        true,
    ),
    ("randread", "fio 4 KiB random reads, 10 s", "IOPS", true),
    (
        "randwrite",
        "fio 4 KiB random writes, fsync every 64, 10 s",
        "IOPS",
        true,
    ),
];

fn figures(speed: &str, fio: &str) -> Figures {
    let mut m = Figures::new();
    if let Some(t) = speedtest_total(speed) {
        m.insert("speedtest1", t);
    }
    let f = fio_terse(fio);
    if let Some(j) = f.get("seqwrite") {
        m.insert("seqwrite", j.2 / 1024.0);
    }
    if let Some(j) = f.get("seqread") {
        m.insert("seqread", j.0 / 1024.0);
    }
    if let Some(j) = f.get("randread") {
        m.insert("randread", j.1);
    }
    if let Some(j) = f.get("randwrite") {
        m.insert("randwrite", j.3);
    }
    m
}

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Boots `t` on cairn (release kernel); its console.
pub(crate) fn cairn_run(t: &RuntimeTest) -> Result<String> {
    let image = crate::image::build_test_image(t, None)?;
    let kernel = build::kernel(true)?;
    std::fs::create_dir_all(disks::dir()).map_err(|e| e.to_string())?;
    let disk = disks::dir().join(format!("bench-{}-cairn.img", t.name));
    std::fs::copy(&image, &disk).map_err(|e| e.to_string())?;
    let (machine, flags) = disks::qemu_flags(Storage::Virtio, &disk.display().to_string());
    let mut vm = Vm::new(
        &kernel,
        build::out_dir()
            .join("logs")
            .join(format!("bench-{}-cairn.log", t.name)),
    );
    vm.smp = 2;
    vm.machine = machine.unwrap_or("q35").into();
    vm.extra = flags;
    vm.extra.extend(PREFAULT.iter().map(|f| f.to_string()));
    vm.timeout = Duration::from_secs(t.timeout_s);
    let b = &t.boot_list()[0];
    if !b.argv.is_empty() {
        vm.append = format!("argv={}", crate::runtime::encode_argv(&b.argv));
    }
    let o = vm.boot()?;
    let _ = std::fs::remove_file(&disk);
    if !o.exited_with(0) {
        return Err(format!(
            "{} did not complete (exit status {:?}{})\n{}",
            t.name,
            o.exit_status,
            if o.timed_out { ", timed out" } else { "" },
            tail(&o.serial, 8)
        ));
    }
    Ok(o.serial)
}

/// Boots `t` on the Linux guest; its console.
pub(crate) fn linux_run(g: &crate::linux::Guest, t: &RuntimeTest) -> Result<String> {
    let work = crate::linux::dir().join(format!("bench-{}", t.name));
    let tree = work.join("tree");
    let mut w = crate::linux_test::tree_and_workload(t, &tree)?;
    let b = &t.boot_list()[0];
    if !b.argv.is_empty() {
        w.args = b.argv[1..].to_vec();
    }
    let image = work.join("disk.img");
    crate::linux::mkfs_ext4(&image, t.image_mib, &tree)?;
    let initrd = crate::linux::initramfs(g, &w, &format!("bench-{}", t.name))?;
    let o = crate::linux::boot(
        g,
        &initrd,
        &[disks::Disk::new(
            Storage::Virtio,
            image.display().to_string(),
        )],
        2,
        Duration::from_secs(t.timeout_s),
        build::out_dir()
            .join("logs")
            .join(format!("bench-{}-linux.log", t.name)),
        PREFAULT,
    )?;
    let _ = std::fs::remove_file(&image);
    if crate::linux::exit_status(&o.serial) != Some(0) {
        return Err(format!(
            "{} did not complete on Linux\n{}",
            t.name,
            tail(&o.serial, 8)
        ));
    }
    Ok(o.serial)
}

/// The table as Markdown.
pub fn table(cairn: &Figures, linux: &Figures) -> String {
    let mut s = String::from(
        "| workload | unit | cairn | Linux | cairn/Linux |\n|---|---|---:|---:|---:|\n",
    );
    for (key, what, unit, higher) in ROWS {
        let (c, l) = (cairn.get(key), linux.get(key));
        let fmt = |x: Option<&f64>| x.map_or("n/a".into(), |v| format!("{v:.2}"));
        let ratio = match (c, l) {
            (Some(c), Some(l)) if *c > 0.0 && *l > 0.0 => {
                format!("{:.2}", if *higher { c / l } else { l / c })
            }
            _ => "n/a".into(),
        };
        s += &format!("| {what} | {unit} | {} | {} | {ratio} |\n", fmt(c), fmt(l));
    }
    s
}

/// `cargo xtask bench programs`.
pub fn run() -> Result<()> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let benches = cairn_runtime_tests::program_benches();
    let (speed, fio) = (&benches[0], &benches[1]);
    let mut notes = String::new();
    eprintln!("xtask: bench programs: cairn (release kernel, TFS on virtio-blk)");
    let c_speed = cairn_run(speed);
    let c_fio = cairn_run(fio);
    eprintln!("xtask: bench programs: Linux guest (ext4 on virtio-blk)");
    let (l_speed, l_fio, version) = match crate::linux::guest() {
        Ok(g) => (
            linux_run(&g, speed),
            linux_run(&g, fio),
            format!("Linux {} (Debian linux-image-amd64), ext4", g.version),
        ),
        Err(e) => (
            Err(format!("no Linux guest: {e}")),
            Err(format!("no Linux guest: {e}")),
            "a Linux guest".into(),
        ),
    };
    for (side, r) in [
        ("cairn speedtest1", &c_speed),
        ("cairn fio", &c_fio),
        ("Linux speedtest1", &l_speed),
        ("Linux fio", &l_fio),
    ] {
        if let Err(e) = r {
            eprintln!("xtask: bench programs: {side}: {e}");
            notes += &format!(
                "\n{side}: not measured: {}\n",
                e.lines().next().unwrap_or("")
            );
        }
    }
    let text = |r: &Result<String>| r.as_deref().unwrap_or("").to_string();
    let cairn = figures(&text(&c_speed), &text(&c_fio));
    let linux = figures(&text(&l_speed), &text(&l_fio));
    let t = table(&cairn, &linux);
    println!(
        "real programs under TCG (-M q35 -smp 2 -m 512M -mem-prealloc, virtio-blk), same run; cairn/Linux above 1: cairn faster"
    );
    print!("{t}");
    let body = format!(
        "## programs\n\n`cargo xtask bench programs`: SQLite's speedtest1 and fio (test/runtime/files/fio-bench.fio, \
         `--thread`, psync and pvsync2) built by xtask from Debian's sources, on cairn (release kernel, TFS) and on \
         {version} (busybox initramfs) under TCG, `-M q35 -smp 2 -m 512M -mem-prealloc`, virtio-blk, in the same run. \
         cairn/Linux above 1 means cairn is faster (for the time row: Linux's time over cairn's). \
         The fio reads find the file the write left in the page cache on both systems (`invalidate=0`). \
         Host: {} CPUs.\n\n{t}{notes}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    crate::bench_fs::write_section("programs", "programs", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_speedtest1_and_fio_terse() {
        assert_eq!(
            speedtest_total("x\n       TOTAL.......................    12.345s\n"),
            Some(12.345)
        );
        assert_eq!(speedtest_total("no total"), None);
        let mut line = String::from("3;fio-3.33;randwrite;3;0");
        for i in 5..60 {
            line += &format!(";{i}");
        }
        let m = fio_terse(&format!("[ 1.0] noise\n{line}\n"));
        assert_eq!(m["randwrite"], (6.0, 7.0, 47.0, 48.0));
        let c: Figures = [("seqread", 200.0), ("speedtest1", 10.0)]
            .into_iter()
            .collect();
        let l: Figures = [("seqread", 100.0), ("speedtest1", 20.0)]
            .into_iter()
            .collect();
        let t = table(&c, &l);
        assert!(t.contains("| 200.00 | 100.00 | 2.00 |"), "{t}");
        assert!(t.contains("| 10.00 | 20.00 | 2.00 |"), "{t}");
        assert!(t.contains("| n/a | n/a | n/a |"), "{t}");
    }
}
