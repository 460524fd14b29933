//! Runtime tests on cairn: every test of the `cairn-runtime-tests`
//! catalogue built into its own image and booted (TCG, its `-smp`, 512 MiB)
//! on its first storage kind (virtio-blk for most), and with
//! `--all-storage` on every kind it lists (ata-pci, pvscsi, virtio-scsi,
//! NVMe). A test's data volumes are made empty (`mkfs -e -l LABEL`) and
//! attached after its image, on the image's kind unless it names another.
//!
//! A boot passes when the kernel reports the expected exit status
//! (`cairn: exit status N`, confirmed by QEMU's debug-exit status) and,
//! for a status the program ends with by itself, the program's own line
//! (`PASS <program>` / `FIRST-BOOT <program>`) is on the serial console,
//! so a kernel that exits 0 without running anything does not pass.
//! Persistence tests boot the same image twice. A boot that outlives the
//! test's timeout is a hang. A failure names the boot, the statuses and
//! prints the serial tail; the full log stays in `target/xtask/logs/`.

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::qemu::{Outcome, Vm, symbolize};
use cairn_runtime_tests::{Boot, Inject, RuntimeTest};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to run.
pub struct Selection<'a> {
    /// Only tests whose name contains this.
    pub filter: Option<&'a str>,
    /// Every storage kind the test lists, not only its first.
    pub all_storage: bool,
}

fn storage_of(s: cairn_runtime_tests::Storage) -> Storage {
    match s {
        cairn_runtime_tests::Storage::Virtio => Storage::Virtio,
        cairn_runtime_tests::Storage::Ata => Storage::Ata,
        cairn_runtime_tests::Storage::Pvscsi => Storage::Pvscsi,
        cairn_runtime_tests::Storage::VirtioScsi => Storage::VirtioScsi,
        cairn_runtime_tests::Storage::Nvme => Storage::Nvme,
    }
}

/// The tests and storage kinds `sel` picks, in catalogue order.
pub fn selected(sel: &Selection) -> Vec<(&'static RuntimeTest, Storage)> {
    let mut v = Vec::new();
    for t in cairn_runtime_tests::catalogue() {
        if sel.filter.is_some_and(|f| !t.name.contains(f)) {
            continue;
        }
        for &s in t.storage {
            if sel.all_storage || s == t.primary_storage() {
                v.push((t, storage_of(s)));
            }
        }
    }
    v
}

/// A blkdebug rule file failing every read that covers `sector`.
pub fn blkdebug_read_rule(sector: u64) -> String {
    format!(
        "[inject-error]\nevent = \"read_aio\"\niotype = \"read\"\nerrno = \"5\"\nonce = \"off\"\nsector = \"{sector}\"\n"
    )
}

/// The QEMU `file=` value for `disk` with `t`'s injection, if any.
fn drive_file(t: &RuntimeTest, disk: &Path, pristine: &Path, tag: &str) -> Result<String> {
    match t.inject {
        None => Ok(disk.display().to_string()),
        Some(Inject::ReadFile { path, offset }) => {
            let sector = crate::image::file_sector(pristine, path, offset)?;
            let rules = disks::dir().join(format!("rt-{tag}.blkdebug"));
            std::fs::write(&rules, blkdebug_read_rule(sector))
                .map_err(|e| format!("{}: {e}", rules.display()))?;
            Ok(format!("blkdebug:{}:{}", rules.display(), disk.display()))
        }
    }
}

/// Makes the empty data volume `v` at `img` (what `mkfs -e -l LABEL -s
/// MiB [--uuid UUID]` makes).
pub fn make_volume(img: &Path, v: &cairn_runtime_tests::DataVolume) -> Result<()> {
    let uuid = match v.uuid {
        Some(u) => {
            Some(cairn_tfs::uuid::parse(u.as_bytes()).ok_or_else(|| format!("bad UUID {u:?}"))?)
        }
        None => None,
    };
    let opts = cairn_tools::mkfs::MkfsOptions {
        image: img.to_path_buf(),
        label: v.label.into(),
        uuid,
        size: Some(v.mib << 20),
        ..Default::default()
    };
    cairn_tools::mkfs::make_image(&opts)
        .map(|_| ())
        .map_err(|e| format!("mkfs -e {}: {e}", img.display()))
}

/// Why a boot did not end as expected, if it did not.
pub fn judge(t: &RuntimeTest, boot: usize, b: &Boot, o: &Outcome) -> Result<()> {
    let want = b.status;
    let boots = t.boot_list().len();
    let which = if boots > 1 {
        format!("boot {boot} of {boots}: ")
    } else {
        String::new()
    };
    if o.timed_out {
        return Err(format!(
            "{which}timed out after {} s (hang; no exit status)",
            t.timeout_s
        ));
    }
    if o.panicked {
        return Err(format!("{which}kernel panic"));
    }
    if !o.exited_with(want) {
        return Err(match o.exit_status {
            Some(got) => format!(
                "{which}exit status {got}, expected {want}{}",
                match got {
                    cairn_runtime_tests::FAILED => " (a check failed: see FAIL on the console)",
                    cairn_runtime_tests::HANG => " (the program's watchdog found a stuck thread)",
                    129..=191 => " (killed by a fatal signal)",
                    _ => "",
                }
            ),
            None => format!(
                "{which}no `cairn: exit status` line (QEMU status {:?}), expected {want}",
                o.qemu_status
            ),
        });
    }
    if let Some(m) = b.expect.iter().find(|m| !o.serial.contains(m.as_str())) {
        return Err(format!(
            "{which}exit status {want} but the program never printed {m:?}: it did not run as expected"
        ));
    }
    if let Some(line) = t.console.iter().find(|l| !o.serial.contains(*l)) {
        return Err(format!(
            "{which}exit status {want} but the console lacks {line:?}"
        ));
    }
    Ok(())
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Boots `t` on `storage` (every boot); `Ok` if all ended as expected.
pub fn run_one(kernel: &Path, t: &RuntimeTest, storage: Storage) -> Result<()> {
    let pristine = crate::image::build_test_image(t, None)?;
    let tag = format!("{}-{}", t.name, storage.name());
    std::fs::create_dir_all(disks::dir()).map_err(|e| e.to_string())?;
    let disk: PathBuf = disks::dir().join(format!("rt-{tag}.img"));
    std::fs::copy(&pristine, &disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    let file = drive_file(t, &disk, &pristine, &tag)?;
    let mut attached = vec![disks::Disk::new(storage, file)];
    for (i, v) in t.volumes.iter().enumerate() {
        let img = disks::dir().join(format!("rt-{tag}-vol{i}.img"));
        make_volume(&img, v)?;
        let kind = v.storage.map_or(storage, storage_of);
        attached.push(disks::Disk::new(kind, img.display().to_string()));
    }
    let (machine, flags) = disks::attach(&attached);
    for (i, b) in t.boot_list().iter().enumerate() {
        let boot = i + 1;
        let log = build::out_dir()
            .join("logs")
            .join(format!("runtime-{tag}-boot{boot}.log"));
        let mut vm = Vm::new(kernel, log.clone());
        vm.smp = t.smp;
        vm.memory = format!("{}M", t.memory_mib);
        vm.machine = machine.unwrap_or("q35").into();
        vm.extra = flags.clone();
        vm.timeout = Duration::from_secs(t.timeout_s);
        let peer = match t.net {
            Some(role) => Some(crate::net_peer::start(
                t,
                role,
                Duration::from_secs(t.timeout_s),
            )?),
            None => None,
        };
        if let Some(p) = &peer {
            vm.extra.extend(p.flags.iter().cloned());
            if !p.argv.is_empty() {
                let mut argv = vec![t.program().to_string()];
                argv.extend(p.argv.iter().cloned());
                vm.append = format!("argv={}", encode_argv(&argv));
            }
        }
        if !b.argv.is_empty() {
            vm.append = format!("argv={}", encode_argv(&b.argv));
            // An absolute argv[0] also names the boot's program.
            if b.argv[0].starts_with('/') {
                vm.append += &format!(" program={}", encode_argv(&b.argv[..1]));
            }
        }
        let o = vm.boot()?;
        let host = peer.map(|p| {
            p.stop.store(true, std::sync::atomic::Ordering::Release);
            p.handle
                .join()
                .unwrap_or_else(|_| Err("host peer panicked".into()))
        });
        let verdict = judge(t, boot, b, &o).and_then(|()| match &host {
            Some(Err(e)) => Err(format!("host side: {e}")),
            Some(Ok(figures)) => {
                eprintln!("  host side: {figures}");
                Ok(())
            }
            None => Ok(()),
        });
        if let Err(e) = verdict {
            match &host {
                Some(Err(h)) => eprintln!("host side: {h}"),
                Some(Ok(figures)) => eprintln!("host side (ended well): {figures}"),
                None => {}
            }
            eprintln!(
                "---- serial tail ({}) ----\n{}",
                log.display(),
                tail(&o.serial, 30)
            );
            let sym = symbolize(kernel, &o.serial);
            if !sym.is_empty() {
                eprintln!("---- backtrace ----\n{sym}");
            }
            eprintln!("----");
            return Err(format!("{e} ({:.1} s)", o.elapsed.as_secs_f64()));
        }
    }
    Ok(())
}

/// The kernel's `argv=` value: arguments joined by `,`, with `,`, space
/// and `%` escaped (the kernel's `cmdline::decode_argv`).
pub fn encode_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            a.replace('%', "%25")
                .replace(',', "%2C")
                .replace(' ', "%20")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the selection, reporting each (test, storage) through `step`.
pub fn run(kernel: &Path, sel: &Selection, step: &mut dyn FnMut(&str, Result<()>)) {
    let list = selected(sel);
    if list.is_empty() {
        step(
            "runtime tests",
            Err(format!("no runtime test matches {:?}", sel.filter)),
        );
    }
    for (t, storage) in list {
        let name = format!(
            "runtime {} on {} ({} boot{}, -smp {})",
            t.name,
            storage.name(),
            t.boot_list().len(),
            if t.boot_list().len() > 1 { "s" } else { "" },
            t.smp
        );
        let r = run_one(kernel, t, storage);
        step(&name, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u32>, serial: &str) -> Outcome {
        Outcome {
            qemu_status: status.map(|s| ((s.min(126) << 1) | 1) as i32),
            timed_out: false,
            serial: format!(
                "{serial}\n{}",
                status
                    .map(|s| format!("cairn: exit status {s}"))
                    .unwrap_or_default()
            ),
            exit_status: status,
            panicked: false,
            elapsed: Duration::from_millis(1),
            marker_at: None,
        }
    }

    #[test]
    fn judges_status_and_the_programs_own_line() {
        let t = cairn_runtime_tests::find("persist").unwrap();
        let b = t.boot_list();
        assert!(judge(t, 1, &b[0], &outcome(Some(42), "FIRST-BOOT persist: x")).is_ok());
        assert!(judge(t, 2, &b[1], &outcome(Some(0), "PASS persist")).is_ok());
        // The right status without the program having run is a failure.
        let e = judge(t, 2, &b[1], &outcome(Some(0), "no workload support yet")).unwrap_err();
        assert!(e.contains("did not run"), "{e}");
        let e = judge(t, 2, &b[1], &outcome(Some(1), "FAIL persist: ...")).unwrap_err();
        assert!(
            e.contains("boot 2 of 2") && e.contains("a check failed"),
            "{e}"
        );
        let mut hung = outcome(None, "");
        hung.timed_out = true;
        assert!(judge(t, 1, &b[0], &hung).unwrap_err().contains("hang"));
        let e = judge(t, 1, &b[0], &outcome(Some(142), "")).unwrap_err();
        assert!(e.contains("fatal signal"), "{e}");
        // A real program's boot is judged by the lines it must print.
        let bb = cairn_runtime_tests::find("busybox").unwrap();
        let steps = bb.boot_list();
        assert_eq!(steps.len(), 8);
        assert!(judge(bb, 1, &steps[0], &outcome(Some(0), "")).is_ok());
        let find = &steps[3];
        let e = judge(bb, 4, find, &outcome(Some(0), "data/a/one.dat")).unwrap_err();
        assert!(e.contains("boot 4 of 8"), "{e}");
        let all = find.expect.join("\n");
        assert!(judge(bb, 4, find, &outcome(Some(0), &all)).is_ok());
    }

    #[test]
    fn selects_the_first_kind_unless_all_storage() {
        let all = selected(&Selection {
            filter: None,
            all_storage: false,
        });
        assert!(
            all.iter()
                .all(|(t, s)| *s == storage_of(t.primary_storage()))
        );
        assert!(all.iter().filter(|(_, s)| *s == Storage::Virtio).count() > 10);
        assert!(
            all.iter()
                .any(|(t, s)| t.name == "volume_nvme_scsi" && *s == Storage::Nvme)
        );
        assert_eq!(all.len(), cairn_runtime_tests::catalogue().len());
        let every = selected(&Selection {
            filter: Some("hello"),
            all_storage: true,
        });
        assert_eq!(every.len(), 2 * 5);
    }

    #[test]
    fn argv_goes_through_the_kernel_command_line() {
        let a: Vec<String> = ["busybox", "sort", "a b", "x,y", "100%"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(encode_argv(&a), "busybox,sort,a%20b,x%2Cy,100%25");
    }

    #[test]
    fn blkdebug_rule_names_the_sector() {
        let r = blkdebug_read_rule(1234);
        assert!(r.contains("sector = \"1234\"") && r.contains("read_aio"));
    }
}
