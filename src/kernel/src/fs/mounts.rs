//! Mounting at boot: choosing the root among the TFS volumes the block
//! layer found, then mounting the data volumes the root's manifest names
//! in its `mounts` tuple (`mounts:(LABEL-or-UUID:/path ...)`, as Nanos).
//!
//! * **Candidates**: every block volume whose sector 0 is a TFS header
//!   (its label and UUID read from there), MBR partitions first (the last
//!   partition of each disk first: Nanos's boot disk; the root-volume rule
//!   of `cairn_block::mbr`, which the tools follow too), then whole disks.
//! * **Root**: the first candidate whose root tuple names a `program` (a
//!   workload image); without one anywhere (kernel tests), the first
//!   candidate. Data volumes made by `mkfs -e` name no program, so the
//!   root is found whatever order the disks were attached in.
//! * **Volumes**: each `mounts` entry names a volume by label or UUID text
//!   and an existing directory of the root filesystem (not `/`, not a
//!   directory already covered). Unlike Nanos, which mounts what it finds
//!   and logs the rest, a named volume that is missing, ambiguous or
//!   unmountable, or a bad mount point, stops the boot with an error that
//!   names it: a program must not run with its data silently on the root.
//!
//! Kernel-lock context, in the kernel's main thread at boot (mounting
//! replays the log: it sleeps for I/O). Locks: each new mount's `fs` mutex
//! alone (never two).

use super::{Loc, Mount, Tfs, VolumeDevice, register, tfs_clock};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use cairn_block::Volume;
use cairn_tfs::frame::VolumeId;
use cairn_tfs::{BlockDevice, FileType};

/// A TFS volume found on a block volume.
struct Candidate {
    volume: Volume,
    id: VolumeId,
    /// Mounted while looking for the root (kept for `mounts`).
    fs: Option<Tfs>,
    /// Why it would not mount, if it did not.
    refused: Option<String>,
    /// Mounted already (named by an earlier `mounts` entry).
    taken: bool,
}

impl Candidate {
    fn describe(&self) -> String {
        format!(
            "{} (label \"{}\", UUID {})",
            self.volume.name(),
            String::from_utf8_lossy(&self.id.label),
            cairn_tfs::uuid::format(&self.id.uuid)
        )
    }
}

/// The TFS header of `v`, if it has one.
fn tfs_id(v: &Volume) -> Option<VolumeId> {
    let dev = VolumeDevice::new(v.clone());
    let mut s = [0u8; 512];
    dev.read(0, &mut s).ok()?;
    cairn_tfs::frame::parse_extension_header(&s, true)
        .ok()?
        .volume
}

/// Every TFS volume, in the order the root is looked for.
fn candidates() -> Vec<Candidate> {
    let volumes = crate::block::volumes();
    let partitions = volumes.iter().rev().filter(|v| v.first_sector() != 0);
    let disks = volumes.iter().filter(|v| v.first_sector() == 0);
    partitions
        .chain(disks)
        .filter_map(|v| {
            Some(Candidate {
                volume: v.clone(),
                id: tfs_id(v)?,
                fs: None,
                refused: None,
                taken: false,
            })
        })
        .collect()
}

fn mount_tfs(v: &Volume) -> Result<Tfs, String> {
    let start = crate::time::now_ns();
    let mut fs = Tfs::mount(VolumeDevice::new(v.clone()))
        .map_err(|e| format!("refusing to mount {}: {e}", v.name()))?;
    fs.set_clock(tfs_clock);
    crate::debug!(
        "tfs: replayed {} ({} sectors) in {} us",
        v.name(),
        v.sectors(),
        (crate::time::now_ns() - start) / 1000
    );
    Ok(fs)
}

/// Finds and mounts the root, then the volumes its `mounts` tuple names.
pub fn mount_root() -> Result<&'static Mount, String> {
    let mut cands = candidates();
    if cands.is_empty() {
        return Err("no TFS filesystem on any disk".to_string());
    }
    let mut root_at = None;
    for (i, c) in cands.iter_mut().enumerate() {
        match mount_tfs(&c.volume) {
            Ok(fs) => {
                let names_program = fs.workload().program.is_some();
                c.fs = Some(fs);
                if names_program {
                    root_at = Some(i);
                    break;
                }
            }
            Err(e) => {
                crate::warn!("tfs: {e}");
                c.refused = Some(e);
            }
        }
    }
    let root_at = root_at.unwrap_or(0);
    let c = cands.remove(root_at);
    let fs = match (c.fs, c.refused) {
        (Some(fs), _) => fs,
        (None, Some(e)) => return Err(e),
        (None, None) => mount_tfs(&c.volume)?,
    };
    let root = register(fs, c.volume, None)?;
    crate::info!("tfs: mounted {}", root.describe());
    let wanted = root.fs().workload().mounts;
    for (key, path) in wanted {
        let key = String::from_utf8_lossy(&key).into_owned();
        let path = String::from_utf8_lossy(&path).into_owned();
        let m = attach(root, &mut cands, &key, &path)
            .map_err(|e| format!("mounts: volume \"{key}\" on {path}: {e}"))?;
        crate::info!("tfs: mounted {}", m.describe());
    }
    Ok(root)
}

/// Mounts the volume `key` names on `path` of the root.
fn attach(
    root: &'static Mount,
    cands: &mut [Candidate],
    key: &str,
    path: &str,
) -> Result<&'static Mount, String> {
    let named: Vec<usize> = (0..cands.len())
        .filter(|&i| !cands[i].taken && cands[i].id.named_by(key.as_bytes()))
        .collect();
    let i = match named.as_slice() {
        [i] => *i,
        [] => {
            let list: Vec<String> = cands
                .iter()
                .filter(|c| !c.taken)
                .map(Candidate::describe)
                .collect();
            let already = super::mounts()
                .any(|m| m.label == key || cairn_tfs::uuid::parse(key.as_bytes()) == Some(m.uuid));
            return Err(if already {
                "that volume is already mounted (or is the root)".to_string()
            } else if list.is_empty() {
                "not found: no other TFS volume is attached".to_string()
            } else {
                format!("not found; other TFS volumes: {}", list.join(", "))
            });
        }
        many => {
            let list: Vec<String> = many.iter().map(|&i| cands[i].describe()).collect();
            return Err(format!(
                "ambiguous: {} volumes match ({})",
                many.len(),
                list.join(", ")
            ));
        }
    };
    let dir = {
        let fs = root.fs();
        let ino = fs
            .resolve(path.as_bytes(), true)
            .map_err(|e| format!("mount point: {e:?} in the root filesystem"))?;
        let st = fs.stat(ino).map_err(|e| format!("mount point: {e:?}"))?;
        if st.kind != FileType::Directory {
            return Err("mount point is not a directory".to_string());
        }
        if ino == fs.root() {
            return Err("cannot mount over /".to_string());
        }
        Loc { mount: 0, ino }
    };
    if super::covering(dir).is_some() {
        return Err("another volume is already mounted there".to_string());
    }
    let c = &mut cands[i];
    if let Some(e) = c.refused.take() {
        return Err(e);
    }
    let fs = match c.fs.take() {
        Some(fs) => fs,
        None => mount_tfs(&c.volume)?,
    };
    // A second entry naming it gets "already mounted".
    c.taken = true;
    register(fs, c.volume.clone(), Some((dir, path.to_string())))
}
