//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! fuzz target bodies as ordinary tests.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn log_replay_corpus() {
    assert!(replay("log_replay", cairn_tfs::fuzz_targets::log_replay) >= 3);
}

#[test]
fn manifest_corpus() {
    assert!(replay("manifest", cairn_tfs::fuzz_targets::manifest) >= 3);
}

#[test]
fn corpus_seeds_are_meaningful() {
    // The mkfs seed must mount in frame mode: the corpus exercises real logs.
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/log_replay/mkfs_manifest");
    let img = cairn_tfs::fuzz_targets::image_from_input(&std::fs::read(dir).unwrap());
    let fs = cairn_tfs::Filesystem::mount(cairn_tfs::MemDevice::from_image(img)).unwrap();
    assert_eq!(fs.workload().program.as_deref(), Some(&b"/bin/hello"[..]));
}
