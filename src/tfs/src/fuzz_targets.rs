//! Bodies of the fuzz targets, shared by the `fuzz/` crate (libFuzzer or
//! the plain random-mutation driver) and by the tests that replay the
//! checked-in corpus. Each must return normally on any input: a panic is a
//! bug.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::check;
use crate::device::{MemDevice, SECTOR_SIZE};
use crate::frame::{
    END_OF_LOG, EXTENSION_SECTORS, LOG_EXTENSION_LINK, VolumeId, push_extension_header,
};
use crate::fs::{Filesystem, FormatOptions, Ino};
use crate::manifest;
use crate::store::Value;
use crate::symbol::known;
use crate::varint;
use alloc::vec;
use alloc::vec::Vec;

/// Largest image the replay target builds.
const MAX_IMAGE: usize = 1 << 20;

/// Builds an image from fuzz input: inputs starting with `N` are raw images;
/// others become the frames of a log extension at sector 1 behind a valid
/// header sector, so mutations exercise frame and value decoding.
pub fn image_from_input(data: &[u8]) -> Vec<u8> {
    if data.first() == Some(&b'N') {
        let mut img = data[..data.len().min(MAX_IMAGE)].to_vec();
        img.resize(img.len().div_ceil(SECTOR_SIZE).max(1) * SECTOR_SIZE, 0);
        return img;
    }
    let mut img = Vec::new();
    push_extension_header(
        &mut img,
        1,
        Some(&VolumeId {
            uuid: [1; 16],
            label: b"fuzz".to_vec(),
        }),
    );
    img.push(LOG_EXTENSION_LINK);
    varint::push(&mut img, 1);
    varint::push(&mut img, EXTENSION_SECTORS);
    img.push(END_OF_LOG);
    img.resize(SECTOR_SIZE, 0);
    push_extension_header(&mut img, EXTENSION_SECTORS, None);
    img.extend_from_slice(&data[..data.len().min(MAX_IMAGE / 2)]);
    img.resize(4096 * SECTOR_SIZE, 0);
    img
}

/// Fuzz target: mount (log replay) and fsck of an arbitrary image, then a
/// walk over whatever mounted.
pub fn log_replay(data: &[u8]) {
    let img = image_from_input(data);
    let dev = MemDevice::from_image(img);
    let _ = check::check(&dev);
    if let Ok(fs) = Filesystem::mount(&dev) {
        let _ = fs.workload();
        let mut stack = vec![fs.root()];
        let mut seen = 0;
        while let Some(d) = stack.pop() {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            for e in fs.readdir(d).unwrap_or_default() {
                match e.kind {
                    crate::FileType::Directory => stack.push(e.ino),
                    crate::FileType::Regular => {
                        let mut buf = [0u8; 4096];
                        let _ = fs.read(e.ino, 0, &mut buf);
                        let _ = fs.map(e.ino, 0, 1 << 20);
                    }
                    crate::FileType::Symlink => {
                        let _ = fs.readlink(e.ino);
                    }
                }
                let _ = fs.stat(e.ino);
            }
        }
    }
}

/// Fuzz target: parse a manifest; if it parses and its tree is acceptable,
/// make a filesystem of it, commit, remount and read it back.
pub fn manifest(data: &[u8]) {
    let Ok(mut m) = manifest::parse(data) else {
        return;
    };
    let contents: Vec<_> = (0..m.store.node_count() as u32)
        .filter(|&n| m.store.get(n, known::CONTENTS).is_some())
        .collect();
    for n in contents {
        m.store.set(n, known::CONTENTS, None);
    }
    if !matches!(m.store.get(m.root, known::CHILDREN), Some(Value::Tuple(_))) {
        return;
    }
    let opts = FormatOptions {
        label: b"fuzz".to_vec(),
        uuid: [2; 16],
        nanos_padding: false,
    };
    let Ok(mut fs) = Filesystem::format(MemDevice::new(8192), &opts, Some((m.store, m.root)))
    else {
        return;
    };
    let workload = fs.workload();
    if fs.sync().is_err() {
        return;
    }
    let dev = fs.into_device();
    let fs = Filesystem::mount(&dev).expect("a committed manifest must mount");
    assert_eq!(fs.workload(), workload, "workload changed across remount");
    assert!(
        check::check(&dev).is_clean(),
        "fsck must pass on a fresh image"
    );
    let _ = fs.readdir(Ino(fs.root().0));
}
