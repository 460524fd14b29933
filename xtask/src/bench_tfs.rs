//! `cargo xtask bench tfs`: how long the kernel takes to mount (replay the
//! log of) a TFS image, against the number of files in it, under TCG.
//! Each image holds the `hello` program and N small files imported from a
//! host tree; booted with `log=debug`, the kernel prints `tfs: replayed
//! <volume> (<n> sectors) in <us> us` for each TFS it mounts (the log replay
//! and the index build, what `Filesystem::mount` does). Median of 3 boots
//! per size. Printed, never asserted.

use crate::Result;
use crate::build;
use crate::qemu::Vm;
use cairn_tools::mkfs::{MkfsOptions, make_image};
use std::path::Path;
use std::time::Duration;

fn image_with_files(n: usize, dir: &Path) -> Result<std::path::PathBuf> {
    let tree = dir.join(format!("tree-{n}"));
    let _ = std::fs::remove_dir_all(&tree);
    let files = tree.join("files");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    for i in 0..n {
        // 100 directories of at most n/100 files, like a source tree.
        let d = files.join(format!("d{}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        }
        std::fs::write(d.join(format!("f{i}")), format!("file {i}\n"))
            .map_err(|e| e.to_string())?;
    }
    let hello = crate::image::build_test_image(
        cairn_runtime_tests::find("hello").ok_or("no hello test")?,
        None,
    )?;
    drop(hello);
    let prog = crate::image::build_dir(cairn_runtime_tests::find("hello").ok_or("no hello")?)
        .join("hello");
    std::fs::copy(&prog, tree.join("hello")).map_err(|e| format!("{}: {e}", prog.display()))?;
    let image = dir.join(format!("mount-{n}.img"));
    let opts = MkfsOptions {
        image: image.clone(),
        import: Some(tree),
        extra_tuples: vec![
            "(program:/hello arguments:[hello hello-arg] environment:(CAIRN_TEST:hello))".into(),
        ],
        label: "bench".into(),
        size: Some(64 << 20),
        ..MkfsOptions::default()
    };
    make_image(&opts).map_err(|e| format!("mkfs: {e}"))?;
    Ok(image)
}

fn mount_us(serial: &str) -> Option<f64> {
    serial
        .lines()
        .find_map(|l| l.split("tfs: replayed ").nth(1))
        .and_then(|r| r.split(" in ").nth(1))
        .and_then(|r| r.trim().trim_end_matches(" us").parse().ok())
}

pub fn bench() -> Result<()> {
    let kernel = build::kernel(true)?;
    let dir = build::out_dir().join("bench-tfs");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!(
        "TFS mount (log replay) in the kernel under TCG, -smp 2, virtio-blk, median of 3 boots:"
    );
    println!("| files | mount |");
    println!("|---:|---:|");
    for n in [100usize, 1_000, 10_000] {
        let image = image_with_files(n, &dir)?;
        let mut times = Vec::new();
        for i in 0..3 {
            let mut vm = Vm::new(
                &kernel,
                build::out_dir()
                    .join("logs")
                    .join(format!("bench-tfs-{n}-{i}.log")),
            );
            vm.extra = crate::disks::qemu_flags(
                crate::disks::Storage::Virtio,
                &image.display().to_string(),
            )
            .1;
            vm.timeout = Duration::from_secs(120);
            vm.append = "log=debug".into();
            let o = vm.boot()?;
            if o.exit_status != Some(0) {
                return Err(format!(
                    "the workload of {} failed (exit status {:?}):\n{}",
                    image.display(),
                    o.exit_status,
                    o.serial
                ));
            }
            times.push(mount_us(&o.serial).ok_or_else(|| format!("no mount line:\n{}", o.serial))?);
        }
        times.sort_by(f64::total_cmp);
        println!("| {n} | {:.1} ms |", times[1] / 1000.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_kernels_replay_line() {
        let serial = "boot\n[debug] tfs: replayed virtio-blk0 (131072 sectors) in 41234 us\n\
                      [info] tfs: mounted virtio-blk0 \"\" (UUID x) on /\n";
        assert_eq!(super::mount_us(serial), Some(41234.0));
        assert_eq!(super::mount_us("tfs: mounted virtio-blk0 on /"), None);
    }
}
