//! Filesystem and pagecache tests over virtio-blk: TFS formatted and
//! mounted in the kernel, files written and read through the pagecache,
//! fsync'd, namespace operations, and durability checked by mounting the
//! same volume a second time and reading the data straight from disk.

use super::{Expect, KernelTest};
use crate::fs::volume_device::VolumeDevice;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use cairn_tfs::{FileType, FormatOptions, Ino};

pub static TESTS: &[KernelTest] = &[KernelTest {
    name: "fs_pagecache",
    smp: &[2],
    expect: Expect::Pass,
    run: fs_pagecache,
}];

/// Disk words for the test catalogue.
pub fn catalogue_words(name: &str) -> Option<&'static str> {
    match name {
        "fs_pagecache" => Some("storage=virtio disk=64"),
        _ => None,
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn e<T: core::fmt::Debug>(what: &str) -> impl FnOnce(T) -> String + '_ {
    move |err| format!("{what}: {err:?}")
}

fn fs_pagecache() -> Result<(), String> {
    let volume = crate::block::volumes()
        .into_iter()
        .next()
        .ok_or("no disk")?;
    // A fresh filesystem on the scratch disk, committed, then mounted as root.
    {
        let mut fs = crate::fs::Tfs::format(
            VolumeDevice::new(volume.clone()),
            &FormatOptions {
                label: b"ktest".to_vec(),
                uuid: [7; 16],
                nanos_padding: false,
            },
            None,
        )
        .map_err(e("format"))?;
        fs.sync_metadata().map_err(e("first commit"))?;
    }
    let m = crate::fs::mount_root()?;
    let root = m.fs().root();
    let (a, dir) = {
        let mut fs = m.fs();
        let a = fs.create(root, b"a").map_err(e("create a"))?;
        let dir = fs.mkdir(root, b"dir").map_err(e("mkdir"))?;
        (a, dir)
    };
    // 3 MiB + a partial page, written in odd-sized pieces.
    let data = pattern(42, 3 * 1024 * 1024 + 1234);
    let file = m.file(&mut m.fs(), a);
    let mut at = 0;
    for piece in data.chunks(100_003) {
        let n = m
            .write_kernel(&file, at as u64, piece)
            .map_err(e("write"))?;
        if n != piece.len() {
            return Err(format!("short write {n} of {}", piece.len()));
        }
        at += n;
    }
    let mut back = vec![0u8; data.len() + 100];
    let n = m.read_kernel(&file, 0, &mut back).map_err(e("read"))?;
    if n != data.len() || back[..n] != data[..] {
        return Err(format!(
            "read back {n} bytes, differing from what was written"
        ));
    }
    // Overwrite a middle range across page boundaries (read-modify-write).
    let patch = pattern(7, 10_000);
    m.write_kernel(&file, 5000, &patch).map_err(e("patch"))?;
    let mut expect = data.clone();
    expect[5000..15_000].copy_from_slice(&patch);
    m.fsync(&file).map_err(e("fsync"))?;
    {
        let mut fs = m.fs();
        fs.rename(root, b"a", dir, b"b").map_err(e("rename"))?;
        let c = fs.create(root, b"c").map_err(e("create c"))?;
        fs.unlink(root, b"c").map_err(e("unlink"))?;
        let names: Vec<Vec<u8>> = fs
            .readdir(dir)
            .map_err(e("readdir"))?
            .into_iter()
            .map(|d| d.name)
            .collect();
        if names != [b"b".to_vec()] {
            return Err(format!("dir holds {:?}", names));
        }
        if fs.stat(c).is_ok() && fs.lookup(root, b"c").is_ok() {
            return Err("unlinked file still visible".into());
        }
    }
    m.sync().map_err(e("sync"))?;
    // Evict every clean page, then read again: the data must come from disk.
    let resident = crate::fs::pagecache().resident();
    let evicted = crate::fs::pagecache().shrink(resident);
    if evicted == 0 {
        return Err("nothing evicted after sync".into());
    }
    let n = m.read_kernel(&file, 0, &mut back).map_err(e("re-read"))?;
    if back[..n] != expect[..] {
        return Err("data differs after eviction".into());
    }
    // A second, independent mount of the same volume sees the fsync'd data.
    let fs2 = crate::fs::Tfs::mount(VolumeDevice::new(volume)).map_err(e("second mount"))?;
    let b = fs2.resolve(b"/dir/b", true).map_err(e("resolve /dir/b"))?;
    let st = fs2.stat(b).map_err(e("stat"))?;
    if st.kind != FileType::Regular || st.size != expect.len() as u64 {
        return Err(format!("second mount: {st:?}"));
    }
    let mut disk = vec![0u8; expect.len()];
    fs2.read(b, 0, &mut disk).map_err(e("direct read"))?;
    if disk != expect {
        let first = disk.iter().zip(&expect).position(|(x, y)| x != y);
        return Err(format!("on-disk data differs at byte {first:?}"));
    }
    let _ = Ino(0);
    let s = crate::fs::pagecache().stats();
    crate::info!("fs: pagecache {s:?}");
    Ok(())
}
