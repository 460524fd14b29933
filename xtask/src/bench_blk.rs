//! `cargo xtask bench blk`: block driver throughput under TCG, printed next
//! to the host doing the same I/O on the same image file in the same run.
//!
//! For each driver (virtio, ata, pvscsi, virtio-scsi, nvme; `--storage`
//! picks some) a 128 MiB image full of data is
//! attached to a release kernel booted with `test=blk_bench` (`-smp 2`),
//! which runs sequential 1 MiB and random 4 KiB reads and writes at queue
//! depth 1 and 32 and prints one `blkbench` line per case. The host then
//! replays each case on the image file with positioned reads and writes
//! from one thread (its page cache is warm: this measures the emulation
//! cost, not the host disk). Figures are printed, never asserted.

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::qemu::Vm;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const IMAGE_MIB: u64 = 128;

struct Case {
    name: String,
    qd: u64,
    ops: u64,
    bytes: u64,
    ns: u64,
}

fn parse(serial: &str) -> Vec<Case> {
    serial
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("blkbench ")?;
            let mut w = rest.split(' ');
            let name = w.next()?.to_string();
            let mut field = |k: &str| -> Option<u64> { w.next()?.strip_prefix(k)?.parse().ok() };
            Some(Case {
                name,
                qd: field("qd=")?,
                ops: field("ops=")?,
                bytes: field("bytes=")?,
                ns: field("ns=")?,
            })
        })
        .collect()
}

/// The host doing `c` on `path`: nanoseconds.
fn host_run(path: &std::path::Path, c: &Case) -> Result<u64> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let size = c.bytes / c.ops;
    let disk = IMAGE_MIB << 20;
    let mut buf = vec![0x5au8; size as usize];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let write = c.name.contains("write");
    let random = c.name.starts_with("rand");
    let start = Instant::now();
    for i in 0..c.ops {
        let off = if random {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % (disk / size)) * size
        } else {
            (i * size) % disk
        };
        if write {
            f.write_all_at(&buf, off).map_err(|e| e.to_string())?;
        } else {
            f.read_exact_at(&mut buf, off).map_err(|e| e.to_string())?;
        }
    }
    Ok(start.elapsed().as_nanos() as u64)
}

fn mbs(bytes: u64, ns: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / (ns.max(1) as f64 / 1e9)
}

fn iops(ops: u64, ns: u64) -> f64 {
    ops as f64 / (ns.max(1) as f64 / 1e9)
}

pub fn run(kinds: &[Storage]) -> Result<()> {
    let kernel = build::kernel(true)?;
    println!(
        "block drivers under TCG (-smp 2, release kernel), {IMAGE_MIB} MiB image; host = one thread, positioned I/O on the same image file (page cache warm)"
    );
    println!(
        "{:<11} {:<14} {:>3} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "driver",
        "workload",
        "qd",
        "guest MB/s",
        "guest IOPS",
        "host MB/s",
        "host IOPS",
        "guest/host"
    );
    for &storage in kinds {
        let img = disks::dir().join(format!("bench-{}.img", storage.name()));
        disks::create_image(&img, IMAGE_MIB)?;
        // Real data, so that neither side reads holes.
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
        let f = OpenOptions::new()
            .write(true)
            .open(&img)
            .map_err(|e| e.to_string())?;
        for i in 0..IMAGE_MIB {
            f.write_all_at(&chunk, i << 20).map_err(|e| e.to_string())?;
        }
        drop(f);
        let (machine, flags) = disks::qemu_flags(storage, &img.display().to_string());
        let mut vm = Vm::new(
            &kernel,
            build::out_dir()
                .join("logs")
                .join(format!("bench-blk-{}.log", storage.name())),
        );
        vm.smp = 2;
        vm.machine = machine.unwrap_or("q35").into();
        vm.extra = flags;
        vm.append = "test=blk_bench".into();
        vm.timeout = Duration::from_secs(600);
        let o = vm.boot()?;
        if !o.exited_with(0) {
            return Err(format!(
                "{} bench run failed:\n{}",
                storage.name(),
                o.serial
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        for c in parse(&o.serial) {
            let host_ns = host_run(&img, &c)?;
            println!(
                "{:<11} {:<14} {:>3} {:>10.1} {:>10.0} {:>10.1} {:>10.0} {:>11.2}x",
                storage.name(),
                c.name,
                c.qd,
                mbs(c.bytes, c.ns),
                iops(c.ops, c.ns),
                mbs(c.bytes, host_ns),
                iops(c.ops, host_ns),
                mbs(c.bytes, c.ns) / mbs(c.bytes, host_ns)
            );
        }
    }
    Ok(())
}
