//! Disks for in-QEMU tests and benchmarks: a kernel test asks for one in
//! its catalogue line (`storage=virtio|ata|pvscsi disk=<MiB>` and optionally
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
}

impl Storage {
    pub fn parse(s: &str) -> Option<Storage> {
        match s {
            "virtio" => Some(Storage::Virtio),
            "ata" => Some(Storage::Ata),
            "pvscsi" => Some(Storage::Pvscsi),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Storage::Virtio => "virtio",
            Storage::Ata => "ata",
            Storage::Pvscsi => "pvscsi",
        }
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
}

impl DiskSpec {
    /// Reads `storage=`, `disk=` and `inject=` from a catalogue line's
    /// words; `None` if the test asked for no disk.
    pub fn from_words<'a>(words: impl Iterator<Item = &'a str>) -> Option<DiskSpec> {
        let mut storage = None;
        let mut mib = 16;
        let mut inject = Vec::new();
        for w in words {
            if let Some(s) = w.strip_prefix("storage=") {
                storage = Storage::parse(s);
            } else if let Some(n) = w.strip_prefix("disk=") {
                mib = n.parse().unwrap_or(mib);
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

/// QEMU flags attaching `image` (as `file=` value, possibly `blkdebug:`).
pub fn qemu_flags(storage: Storage, file: &str) -> (Option<&'static str>, Vec<String>) {
    match storage {
        Storage::Virtio => (
            None,
            vec![
                "-drive".into(),
                format!("if=none,id=d0,format=raw,file={file}"),
                "-device".into(),
                "virtio-blk-pci,drive=d0".into(),
            ],
        ),
        Storage::Ata => (
            Some("pc"),
            vec![
                "-drive".into(),
                format!("if=ide,index=0,format=raw,file={file}"),
            ],
        ),
        Storage::Pvscsi => (
            None,
            vec![
                "-device".into(),
                "pvscsi,id=s0".into(),
                "-drive".into(),
                format!("if=none,id=d0,format=raw,file={file}"),
                "-device".into(),
                "scsi-hd,bus=s0.0,drive=d0".into(),
            ],
        ),
    }
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
    if spec.storage == Storage::Ata {
        // A second, small disk as the secondary channel's slave, so that
        // the tests cover both channels and a slave drive.
        let second = dir().join(format!("{name}-2.img"));
        create_image(&second, 1)?;
        flags.push("-drive".into());
        flags.push(format!(
            "if=ide,index=3,format=raw,file={}",
            second.display()
        ));
    }
    if spec.storage == Storage::Pvscsi {
        // A second, small disk as another target of the same adapter.
        let second = dir().join(format!("{name}-2.img"));
        create_image(&second, 1)?;
        flags.push("-drive".into());
        flags.push(format!(
            "if=none,id=d1,format=raw,file={}",
            second.display()
        ));
        flags.push("-device".into());
        flags.push("scsi-hd,bus=s0.0,drive=d1,scsi-id=2".into());
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
        let r = blkdebug_rules(&d.inject);
        assert!(r.contains("event = \"read_aio\"") && r.contains("sector = \"10\""));
    }
}
