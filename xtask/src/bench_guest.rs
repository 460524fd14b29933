//! One benchmark workload on both guests: cairn (release kernel, TFS image)
//! and the Linux guest (Debian's kernel, ext4 image with the same files),
//! the disk on the same storage kind (virtio-blk, or what `bench fs
//! --storage` names), under TCG with the same QEMU flags, so a benchmark
//! compares the two in the same run. Used by `bench fs`, `bench sched`,
//! `bench scale` and (with a NIC) `bench net`.

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::qemu::Vm;
use cairn_runtime_tests::RuntimeTest;
use std::time::Duration;

/// QEMU flags of both guests: guest RAM faulted in on the host before
/// boot. On this kind of host the first touch of a guest page costs about
/// 18 µs (a host page fault), several times a 4 KiB copy: without this the
/// figures would measure which guest's allocator happens to hand out
/// never-touched memory, not the storage stack.
pub const PREFAULT: &[&str] = &["-mem-prealloc"];

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Boots `t` on cairn with `smp` vCPUs, its image on `storage`; the
/// console, if the workload ran to a clean exit and printed `marker` lines.
pub fn cairn(
    t: &RuntimeTest,
    storage: Storage,
    smp: usize,
    log_name: &str,
    marker: &str,
) -> Result<String> {
    cairn_with(t, storage, smp, log_name, marker, "")
}

/// [`cairn`] with kernel command line `append` (`profile=`, `argv=`).
pub fn cairn_with(
    t: &RuntimeTest,
    storage: Storage,
    smp: usize,
    log_name: &str,
    marker: &str,
    append: &str,
) -> Result<String> {
    cairn_full(t, storage, smp, log_name, marker, append, &[])
}

/// [`cairn`] on virtio-blk with the QEMU flags `nic` of a NIC
/// ([`crate::qemu::net_flags`]): `bench net`.
pub fn cairn_net(
    t: &RuntimeTest,
    smp: usize,
    log_name: &str,
    marker: &str,
    nic: &[String],
) -> Result<String> {
    cairn_full(t, Storage::Virtio, smp, log_name, marker, "", nic)
}

fn cairn_full(
    t: &RuntimeTest,
    storage: Storage,
    smp: usize,
    log_name: &str,
    marker: &str,
    append: &str,
    nic: &[String],
) -> Result<String> {
    let image = crate::image::build_test_image(t, None)?;
    let kernel = build::kernel(true)?;
    std::fs::create_dir_all(disks::dir()).map_err(|e| e.to_string())?;
    let disk = disks::dir().join(format!("{log_name}.img"));
    std::fs::copy(&image, &disk).map_err(|e| e.to_string())?;
    let (machine, flags) = disks::qemu_flags(storage, &disk.display().to_string());
    let mut vm = Vm::new(
        &kernel,
        build::out_dir()
            .join("logs")
            .join(format!("{log_name}.log")),
    );
    vm.smp = smp;
    vm.append = append.into();
    vm.machine = machine.unwrap_or("q35").into();
    vm.extra = flags;
    vm.extra.extend(PREFAULT.iter().map(|f| f.to_string()));
    vm.extra.extend(nic.iter().cloned());
    vm.timeout = Duration::from_secs(t.timeout_s);
    let o = vm.boot()?;
    if !o.exited_with(0) || !o.serial.contains(marker) {
        let why = if o.timed_out {
            format!("timed out after {} s", t.timeout_s)
        } else if o.panicked {
            "kernel panic".into()
        } else if !o.serial.contains(marker) {
            format!(
                "the workload never ran (kernel exit status {:?}, no {marker:?} line on the console)",
                o.exit_status
            )
        } else {
            format!(
                "the workload did not complete (exit status {:?})",
                o.exit_status
            )
        };
        return Err(format!("{why}\nserial tail:\n{}", tail(&o.serial, 8)));
    }
    Ok(o.serial)
}

/// Boots `t` on the Linux guest with `smp` vCPUs, its ext4 image on
/// `storage`; the console (as [`cairn`]) and the guest's description.
pub fn linux(
    t: &RuntimeTest,
    storage: Storage,
    smp: usize,
    log_name: &str,
    marker: &str,
) -> (Result<String>, String) {
    linux_full(t, storage, smp, log_name, marker, &[])
}

/// [`linux`] on virtio-blk with the NIC of [`cairn_net`]: the init script
/// brings it up with cairn's address, and the workload runs chrooted into
/// the disk so that the absolute paths it serves are its image's, as on
/// cairn.
pub fn linux_net(
    t: &RuntimeTest,
    smp: usize,
    log_name: &str,
    marker: &str,
    nic: &[String],
) -> (Result<String>, String) {
    linux_full(t, Storage::Virtio, smp, log_name, marker, nic)
}

fn linux_full(
    t: &RuntimeTest,
    storage: Storage,
    smp: usize,
    log_name: &str,
    marker: &str,
    nic: &[String],
) -> (Result<String>, String) {
    let g = match crate::linux::guest() {
        Ok(g) => g,
        Err(e) => return (Err(format!("no Linux guest: {e}")), String::new()),
    };
    let version = format!("Linux {} (Debian linux-image-amd64), ext4", g.version);
    let run = || -> Result<String> {
        let work = crate::linux::dir().join(log_name);
        let tree = work.join("tree");
        let mut w = crate::linux_test::tree_and_workload(t, &tree)?;
        if !nic.is_empty() {
            w.net = true;
            w.chroot = true;
        }
        let image = work.join("disk.img");
        crate::linux::mkfs_ext4(&image, t.image_mib, &tree)?;
        let initrd = crate::linux::initramfs(&g, &w, log_name)?;
        let extra: Vec<&str> = PREFAULT
            .iter()
            .copied()
            .chain(nic.iter().map(String::as_str))
            .collect();
        let o = crate::linux::boot(
            &g,
            &initrd,
            &[disks::Disk::new(storage, image.display().to_string())],
            smp,
            Duration::from_secs(t.timeout_s),
            build::out_dir()
                .join("logs")
                .join(format!("{log_name}.log")),
            &extra,
        )?;
        let _ = std::fs::remove_file(&image);
        if crate::linux::exit_status(&o.serial) != Some(0) || !o.serial.contains(marker) {
            return Err(format!(
                "the workload did not complete\nserial tail:\n{}",
                tail(&o.serial, 8)
            ));
        }
        Ok(o.serial)
    };
    (run(), version)
}
