//! Corrupt, truncated and hostile images are refused at mount with a
//! reason, never a panic or a hang.

use cairn_tfs::frame::{
    END_OF_LOG, LOG_EXTENSION_LINK, TUPLE_AVAILABLE, VolumeId, push_extension_header,
};
use cairn_tfs::{Filesystem, FormatOptions, MemDevice, MountError, varint};

fn good_image() -> Vec<u8> {
    let opts = FormatOptions {
        label: b"h".to_vec(),
        uuid: [3; 16],
        nanos_padding: false,
    };
    let mut fs = Filesystem::format(MemDevice::new(8192), &opts, None).unwrap();
    let root = fs.root();
    let d = fs.mkdir(root, b"dir").unwrap();
    let f = fs.create(d, b"file").unwrap();
    fs.write(f, 0, &[0x5a; 3000]).unwrap();
    fs.sync().unwrap();
    fs.into_device().into_image()
}

fn mount(img: Vec<u8>) -> Result<(), MountError> {
    Filesystem::mount(MemDevice::from_image(img)).map(|_| ())
}

/// An image whose sector 0 links to one extension at sector 1 holding `frames`.
fn with_frames(frames: &[u8]) -> Vec<u8> {
    let mut img = Vec::new();
    push_extension_header(
        &mut img,
        1,
        Some(&VolumeId {
            uuid: [1; 16],
            label: Vec::new(),
        }),
    );
    img.extend_from_slice(&[LOG_EXTENSION_LINK, 1, 0x88, 0x00, END_OF_LOG]);
    img.resize(512, 0);
    push_extension_header(&mut img, 1024, None);
    img.extend_from_slice(frames);
    img.resize(512 * 4096, 0);
    img
}

#[test]
fn bit_flips_never_panic_and_most_are_refused() {
    let img = good_image();
    let mut refused = 0;
    for byte in 0..1100 {
        for bit in [0, 3, 7] {
            let mut bad = img.clone();
            bad[byte] ^= 1 << bit;
            if let Err(e) = mount(bad) {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(refused > 100, "only {refused} flips refused");
}

#[test]
fn truncated_images_are_refused_with_a_reason() {
    let img = good_image();
    for len in [0, 100, 512, 600, 1024] {
        let err = mount(img[..len].to_vec()).unwrap_err();
        assert!(!err.to_string().is_empty(), "{len}");
    }
}

#[test]
fn link_cycles_between_extensions_are_refused() {
    // Extension 1 links back to itself.
    let mut frames = vec![LOG_EXTENSION_LINK];
    varint::push(&mut frames, 1);
    varint::push(&mut frames, 1024);
    let err = mount(with_frames(&frames)).unwrap_err();
    assert!(err.to_string().contains("loops back"), "{err}");
    // Huge and out-of-range links.
    let mut frames = vec![LOG_EXTENSION_LINK];
    varint::push(&mut frames, 2000);
    varint::push(&mut frames, 1 << 40);
    assert!(mount(with_frames(&frames)).is_err());
}

#[test]
fn huge_lengths_and_dangling_references_are_refused() {
    let mut frames = vec![TUPLE_AVAILABLE];
    varint::push(&mut frames, u64::MAX);
    varint::push(&mut frames, 5);
    frames.extend_from_slice(&[0x91, 0x81, b'a', 0x90, 0x01]);
    let err = mount(with_frames(&frames)).unwrap_err();
    assert!(err.to_string().contains("invalid length"), "{err}");
    // A reference to dictionary entry 9 that does not exist.
    let entry = [0x11, 0x09, 0x81, b'a', 0x80];
    let mut frames = vec![TUPLE_AVAILABLE, entry.len() as u8, entry.len() as u8];
    frames.extend_from_slice(&entry);
    frames.push(END_OF_LOG);
    let err = mount(with_frames(&frames)).unwrap_err();
    assert!(err.to_string().contains("unknown"), "{err}");
}

#[test]
fn reference_loops_in_the_tree_are_refused() {
    // Root (1) = (children:(2 "children", tuple 3)); then an update puts the
    // root inside its own children: children-tuple(3) "x" := root(1).
    let root = [
        0x91, 0x88, 0x08, b'c', b'h', b'i', b'l', b'd', b'r', b'e', b'n', 0x90,
    ];
    let update = [0x11, 0x03, 0x81, b'x', 0x10, 0x01];
    let mut frames = Vec::new();
    for e in [&root[..], &update[..]] {
        frames.extend_from_slice(&[TUPLE_AVAILABLE, e.len() as u8, e.len() as u8]);
        frames.extend_from_slice(e);
    }
    frames.push(END_OF_LOG);
    let err = mount(with_frames(&frames)).unwrap_err();
    assert!(matches!(err, MountError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("already used"), "{err}");
}

#[test]
fn overlapping_extents_are_refused() {
    let img = good_image();
    let mut fs = Filesystem::mount(MemDevice::from_image(img)).unwrap();
    let root = fs.root();
    let g = fs.create(root, b"g").unwrap();
    fs.write(g, 0, &[1; 512]).unwrap();
    fs.sync().unwrap();
    let f = fs.resolve(b"/dir/file", true).unwrap();
    let fx = fs.extents(f).unwrap()[0].1;
    let gx = fs.extents(g).unwrap()[0].1;
    let mut img = fs.into_device().into_image();
    // Rewrite g's extent offset varint in the log to point at f's data.
    let needle = {
        let mut v = vec![0xb0];
        varint::push(&mut v, gx.start);
        v
    };
    let at = img
        .windows(needle.len())
        .rposition(|w| w == needle.as_slice())
        .expect("g's extent in the log");
    let mut repl = vec![0xb0];
    varint::push(&mut repl, fx.start);
    assert_eq!(
        repl.len(),
        needle.len(),
        "same varint width keeps the frame intact"
    );
    img[at..at + repl.len()].copy_from_slice(&repl);
    let err = mount(img).unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
}
