//! The root-volume rule on real images: two TFS volumes built by mkfs,
//! laid out on one disk behind an MBR the way Nanos images are (a boot
//! volume first, the root last), read by dump and fsck through
//! `cairn_tfs::open_root_volume`, which parses with the kernel's own MBR
//! reader (`cairn_block::mbr`).

use cairn_tfs::mbr::{PartitionEntry, build_mbr};
use std::process::{Command, Stdio};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-mbr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bare TFS image made by mkfs, labelled `label`.
fn volume(dir: &std::path::Path, label: &str) -> Vec<u8> {
    let img = dir.join(format!("{label}.img"));
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs"))
        .args(["-e", "-l", label, "-s", "2M", img.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(img).unwrap()
}

/// A disk with `volumes` at the given first sectors and MBR `entries`.
fn disk(dir: &std::path::Path, entries: &[PartitionEntry], volumes: &[(u32, &[u8])]) -> String {
    let end = volumes
        .iter()
        .map(|(at, v)| *at as usize * 512 + v.len())
        .max()
        .unwrap();
    let mut bytes = vec![0u8; end];
    bytes[..512].copy_from_slice(&build_mbr(entries));
    for (at, v) in volumes {
        bytes[*at as usize * 512..][..v.len()].copy_from_slice(v);
    }
    let path = dir.join("disk.img");
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// A boot and a root volume, and where the root goes when the boot volume
/// starts at sector 2048 (Nanos's layout).
fn boot_and_root(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, u32) {
    let boot = volume(dir, "boot");
    let root = volume(dir, "root");
    let root_at = 2048 + (boot.len() / 512) as u32;
    (boot, root, root_at)
}

fn entry(kind: u8, lba_start: u32, len: usize) -> PartitionEntry {
    PartitionEntry {
        active: true,
        kind,
        lba_start,
        sectors: (len / 512) as u32,
    }
}

/// What dump says of the root volume of `img` (and whether it succeeded).
fn dump(img: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .args(["-t", img])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_last_partition_holding_tfs_is_the_root_whatever_its_type() {
    let dir = tmp("order");
    let (boot, root, root_at) = boot_and_root(&dir);

    // Nanos's layout: both typed 0x83, the root last.
    let img = disk(
        &dir,
        &[
            entry(0x83, 2048, boot.len()),
            entry(0x83, root_at, root.len()),
        ],
        &[(2048, &boot), (root_at, &root)],
    );
    let (ok, text) = dump(&img);
    assert!(ok && text.contains("Label: root"), "{text}");
    let fsck = Command::new(env!("CARGO_BIN_EXE_fsck"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(fsck.status.success());

    // The type byte does not matter (the kernel never looked at it): a root
    // typed 0x0c is still the root, not the boot volume before it.
    let img = disk(
        &dir,
        &[
            entry(0x83, 2048, boot.len()),
            entry(0x0c, root_at, root.len()),
        ],
        &[(2048, &boot), (root_at, &root)],
    );
    let (ok, text) = dump(&img);
    assert!(ok && text.contains("Label: root"), "{text}");

    // A last partition without a TFS header is passed over.
    let img = disk(
        &dir,
        &[
            entry(0x83, 2048, boot.len()),
            entry(0x83, root_at, root.len()),
        ],
        &[(2048, &boot), (root_at, &vec![0u8; root.len()])],
    );
    let (ok, text) = dump(&img);
    assert!(ok && text.contains("Label: boot"), "{text}");
}

#[test]
fn a_table_the_kernel_refuses_is_refused() {
    let dir = tmp("refuse");
    let (boot, root, root_at) = boot_and_root(&dir);
    // The second entry overlaps the first by a sector: the kernel's block
    // layer exposes no partition of such a disk, so the tools must not
    // find a root on it either.
    let img = disk(
        &dir,
        &[
            entry(0x83, 2048, boot.len()),
            entry(0x83, root_at - 1, root.len()),
        ],
        &[(2048, &boot), (root_at - 1, &root)],
    );
    let (ok, text) = dump(&img);
    assert!(!ok && text.contains("partitions 0 and 1 overlap"), "{text}");
    let fsck = Command::new(env!("CARGO_BIN_EXE_fsck"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(!fsck.status.success());
}
