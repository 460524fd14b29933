//! Disks for in-QEMU tests and benchmarks: a kernel test asks for one in
//! its catalogue line (`storage=<kind> disk=<MiB>` and optionally
//! `inject=read@<sector>,write@<sector>,flush`), and xtask creates a scratch
//! image in `target/xtask/disks/`, a `blkdebug` rule file for the injected
//! errors, and the QEMU flags of DESIGN.md §5.
//!
//! Injected errors (QEMU's `blkdebug` driver, errno 5 = EIO):
//! * `read@S` / `write@S`: every read / write covering sector S fails;
//! * `flush`: the first flush that reaches the disk fails, later ones pass.

use crate::Result;
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    Virtio,
    Ata,
    Pvscsi,
    VirtioScsi,
    Nvme,
}

impl Storage {
    /// Every kind, in the order the suites run them.
    pub const ALL: [Storage; 5] = [
        Storage::Virtio,
        Storage::Ata,
        Storage::Pvscsi,
        Storage::VirtioScsi,
        Storage::Nvme,
    ];

    pub fn parse(s: &str) -> Option<Storage> {
        Storage::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Storage::Virtio => "virtio",
            Storage::Ata => "ata",
            Storage::Pvscsi => "pvscsi",
            Storage::VirtioScsi => "virtio-scsi",
            Storage::Nvme => "nvme",
        }
    }

    /// The names `parse` takes, for messages.
    pub fn names() -> String {
        Storage::ALL.map(Storage::name).join(", ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inject {
    Read(u64),
    Write(u64),
    Flush,
}

/// The disk a test asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub storage: Storage,
    pub mib: u64,
    pub inject: Vec<Inject>,
    /// `queues=N`: virtio-blk's `num-queues` (QEMU's default: one per vCPU).
    pub queues: Option<u32>,
}

impl DiskSpec {
    /// Reads `storage=`, `disk=`, `inject=` and `queues=` from a catalogue
    /// line's words; `None` if the test asked for no disk.
    pub fn from_words<'a>(words: impl Iterator<Item = &'a str>) -> Option<DiskSpec> {
        let mut storage = None;
        let mut mib = 16;
        let mut inject = Vec::new();
        let mut queues = None;
        for w in words {
            if let Some(s) = w.strip_prefix("storage=") {
                storage = Storage::parse(s);
            } else if let Some(n) = w.strip_prefix("disk=") {
                mib = n.parse().unwrap_or(mib);
            } else if let Some(n) = w.strip_prefix("queues=") {
                queues = n.parse().ok();
            } else if let Some(list) = w.strip_prefix("inject=") {
                for i in list.split(',') {
                    if i == "flush" {
                        inject.push(Inject::Flush);
                    } else if let Some(s) = i.strip_prefix("read@") {
                        inject.extend(s.parse().ok().map(Inject::Read));
                    } else if let Some(s) = i.strip_prefix("write@") {
                        inject.extend(s.parse().ok().map(Inject::Write));
                    }
                }
            }
        }
        Some(DiskSpec {
            storage: storage?,
            mib,
            inject,
            queues,
        })
    }
}

pub fn dir() -> PathBuf {
    crate::build::out_dir().join("disks")
}

/// The blkdebug rule file for `inject`.
fn blkdebug_rules(inject: &[Inject]) -> String {
    let mut s = String::new();
    for i in inject {
        let (event, iotype, sector, once) = match i {
            Inject::Read(n) => ("read_aio", "read", Some(*n), "off"),
            Inject::Write(n) => ("write_aio", "write", Some(*n), "off"),
            Inject::Flush => ("flush_to_disk", "flush", None, "on"),
        };
        s += &format!(
            "[inject-error]\nevent = \"{event}\"\niotype = \"{iotype}\"\nerrno = \"5\"\nonce = \"{once}\"\n"
        );
        if let Some(n) = sector {
            s += &format!("sector = \"{n}\"\n");
        }
        s += "\n";
    }
    s
}

/// Creates a zeroed (sparse) image of `mib` MiB at `path`.
pub fn create_image(path: &Path, mib: u64) -> Result<()> {
    std::fs::create_dir_all(dir()).map_err(|e| format!("{}: {e}", dir().display()))?;
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(mib << 20)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One disk to attach: its kind and QEMU `file=` value (an image path,
/// possibly `blkdebug:RULES:IMAGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub storage: Storage,
    pub file: String,
}

impl Disk {
    pub fn new(storage: Storage, file: impl Into<String>) -> Disk {
        Disk {
            storage,
            file: file.into(),
        }
    }
}

/// QEMU flags attaching `disks` in order (the first is the boot disk the
/// kernel looks at first of its kind): the machine type if it must change
/// (`pc` for ATA) and the flags. Each disk gets drive id `d<N>`; ATA disks
/// take IDE indexes 0, 1, ...; SCSI disks share one controller per kind
/// (`s0` for pvscsi, `vs0` for virtio-scsi) with SCSI ids 0, 1, ...; each
/// NVMe disk is namespace 1 of its own controller (serial `cairn<N>`).
pub fn attach(disks: &[Disk]) -> (Option<&'static str>, Vec<String>) {
    let mut machine = None;
    let mut flags: Vec<String> = Vec::new();
    let (mut ide, mut pvscsi, mut vscsi, mut nvme) = (0, 0, 0, 0);
    for (i, d) in disks.iter().enumerate() {
        let drive = format!("if=none,id=d{i},format=raw,file={}", d.file);
        match d.storage {
            Storage::Virtio => flags.extend([
                "-drive".into(),
                drive,
                "-device".into(),
                format!("virtio-blk-pci,drive=d{i}"),
            ]),
            Storage::Ata => {
                machine = Some("pc");
                flags.extend([
                    "-drive".into(),
                    format!("if=ide,index={ide},format=raw,file={}", d.file),
                ]);
                ide += 1;
            }
            Storage::Pvscsi => {
                if pvscsi == 0 {
                    flags.extend(["-device".into(), "pvscsi,id=s0".into()]);
                }
                flags.extend([
                    "-drive".into(),
                    drive,
                    "-device".into(),
                    format!("scsi-hd,bus=s0.0,drive=d{i},scsi-id={pvscsi}"),
                ]);
                pvscsi += 1;
            }
            Storage::VirtioScsi => {
                if vscsi == 0 {
                    flags.extend(["-device".into(), "virtio-scsi-pci,id=vs0".into()]);
                }
                flags.extend([
                    "-drive".into(),
                    drive,
                    "-device".into(),
                    format!("scsi-hd,bus=vs0.0,drive=d{i},scsi-id={vscsi}"),
                ]);
                vscsi += 1;
            }
            Storage::Nvme => {
                flags.extend([
                    "-drive".into(),
                    drive,
                    "-device".into(),
                    format!("nvme,serial=cairn{nvme},drive=d{i}"),
                ]);
                nvme += 1;
            }
        }
    }
    (machine, flags)
}

/// QEMU flags attaching one disk (see [`attach`]).
pub fn qemu_flags(storage: Storage, file: &str) -> (Option<&'static str>, Vec<String>) {
    attach(&[Disk::new(storage, file)])
}

/// Flags of one more SCSI disk on controller `bus`.
fn scsi_extra(bus: &str, id: &str, image: &Path, target: u32, lun: u32) -> [String; 4] {
    [
        "-drive".into(),
        format!("if=none,id={id},format=raw,file={}", image.display()),
        "-device".into(),
        format!("scsi-hd,bus={bus}.0,drive={id},scsi-id={target},lun={lun}"),
    ]
}

/// Prepares the disk of test `name`: the machine type to use (if it must
/// change) and the extra QEMU arguments.
pub fn prepare(name: &str, spec: &DiskSpec) -> Result<(Option<&'static str>, Vec<String>)> {
    let img = dir().join(format!("{name}.img"));
    create_image(&img, spec.mib)?;
    let file = if spec.inject.is_empty() {
        img.display().to_string()
    } else {
        let rules = dir().join(format!("{name}.blkdebug"));
        std::fs::write(&rules, blkdebug_rules(&spec.inject))
            .map_err(|e| format!("{}: {e}", rules.display()))?;
        format!("blkdebug:{}:{}", rules.display(), img.display())
    };
    let (machine, mut flags) = qemu_flags(spec.storage, &file);
    if let Some(n) = spec.queues {
        for f in flags
            .iter_mut()
            .filter(|f| f.starts_with("virtio-blk-pci,"))
        {
            f.push_str(&format!(",num-queues={n}"));
        }
    }
    match spec.storage {
        Storage::Ata => {
            // A second, small disk as the secondary channel's slave, so
            // that the tests cover both channels and a slave drive.
            let second = dir().join(format!("{name}-2.img"));
            create_image(&second, 1)?;
            flags.push("-drive".into());
            flags.push(format!(
                "if=ide,index=3,format=raw,file={}",
                second.display()
            ));
        }
        Storage::Pvscsi => {
            // A second, small disk as another target of the same adapter.
            let second = dir().join(format!("{name}-2.img"));
            create_image(&second, 1)?;
            flags.extend(scsi_extra("s0", "d1", &second, 2, 0));
        }
        Storage::VirtioScsi => {
            // Another target, and a second LUN of that target.
            for (n, lun) in [(1, 0), (2, 5)] {
                let extra = dir().join(format!("{name}-{}.img", n + 1));
                create_image(&extra, 1)?;
                flags.extend(scsi_extra("vs0", &format!("d{n}"), &extra, 2, lun));
            }
            // A drive with no device yet, for a test to hot-plug (`d9`).
            let spare = dir().join(format!("{name}-spare.img"));
            create_image(&spare, 1)?;
            flags.extend([
                "-drive".into(),
                format!("if=none,id=d9,format=raw,file={}", spare.display()),
            ]);
        }
        Storage::Nvme => {
            // A second namespace on a controller of its own: the driver
            // discovers namespaces through Identify.
            let extra = dir().join(format!("{name}-2.img"));
            create_image(&extra, 1)?;
            flags.extend([
                "-device".into(),
                "nvme,id=nv1,serial=cairn-ns".into(),
                "-drive".into(),
                format!("if=none,id=d1,format=raw,file={}", extra.display()),
                "-device".into(),
                "nvme-ns,bus=nv1,drive=d1,nsid=1".into(),
            ]);
            let third = dir().join(format!("{name}-3.img"));
            create_image(&third, 2)?;
            flags.extend([
                "-drive".into(),
                format!("if=none,id=d2,format=raw,file={}", third.display()),
                "-device".into(),
                "nvme-ns,bus=nv1,drive=d2,nsid=3".into(),
            ]);
        }
        Storage::Virtio => {}
    }
    Ok((machine, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_disk_words() {
        let d = DiskSpec::from_words(
            "smp=2 storage=ata disk=8 inject=read@10,write@20,flush".split(' '),
        )
        .unwrap();
        assert_eq!(d.storage, Storage::Ata);
        assert_eq!(d.mib, 8);
        assert_eq!(
            d.inject,
            vec![Inject::Read(10), Inject::Write(20), Inject::Flush]
        );
        assert!(DiskSpec::from_words("smp=2".split(' ')).is_none());
        let n = DiskSpec::from_words("storage=nvme disk=4".split(' ')).unwrap();
        assert_eq!(n.storage, Storage::Nvme);
        assert_eq!(n.queues, None);
        let q = DiskSpec::from_words("storage=virtio disk=4 queues=4".split(' ')).unwrap();
        assert_eq!(q.queues, Some(4));
        let r = blkdebug_rules(&d.inject);
        assert!(r.contains("event = \"read_aio\"") && r.contains("sector = \"10\""));
    }
}

#[cfg(test)]
mod attach_tests {
    use super::*;

    #[test]
    fn disks_of_mixed_kinds_get_their_own_ids_and_controllers() {
        let (machine, f) = attach(&[
            Disk::new(Storage::Nvme, "root.img"),
            Disk::new(Storage::VirtioScsi, "a.img"),
            Disk::new(Storage::VirtioScsi, "b.img"),
        ]);
        assert_eq!(machine, None);
        let f = f.join(" ");
        assert!(f.contains(
            "if=none,id=d0,format=raw,file=root.img -device nvme,serial=cairn0,drive=d0"
        ));
        assert_eq!(f.matches("virtio-scsi-pci,id=vs0").count(), 1);
        assert!(f.contains("scsi-hd,bus=vs0.0,drive=d1,scsi-id=0"));
        assert!(f.contains("scsi-hd,bus=vs0.0,drive=d2,scsi-id=1"));
        let (machine, f) = attach(&[
            Disk::new(Storage::Ata, "a.img"),
            Disk::new(Storage::Ata, "b.img"),
        ]);
        assert_eq!(machine, Some("pc"));
        assert!(f.join(" ").contains("if=ide,index=1,format=raw,file=b.img"));
        for s in Storage::ALL {
            assert_eq!(Storage::parse(s.name()), Some(s));
        }
    }
}
