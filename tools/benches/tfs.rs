//! TFS benchmarks (figures printed, never asserted): mkfs import throughput
//! of a generated host tree, and mount (log replay) time against the number
//! of files and the log length.

use cairn_tfs::{Filesystem, FormatOptions, MemDevice};
use cairn_tools::mkfs::{MkfsOptions, make_image};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::path::PathBuf;

fn host_tree(files: usize, size: usize) -> (PathBuf, u64) {
    let dir = std::env::temp_dir().join(format!("cairn-bench-tree-{files}-{size}"));
    if !dir.exists() {
        for i in 0..files {
            let sub = dir.join(format!("d{}", i % 16));
            std::fs::create_dir_all(&sub).unwrap();
            let data: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
            std::fs::write(sub.join(format!("f{i}")), data).unwrap();
        }
    }
    (dir, (files * size) as u64)
}

fn mkfs_import(c: &mut Criterion) {
    let (tree, bytes) = host_tree(256, 256 * 1024);
    let image = std::env::temp_dir().join("cairn-bench-import.img");
    let mut g = c.benchmark_group("mkfs_import");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("256 files x 256 KiB", |b| {
        b.iter(|| {
            let opts = MkfsOptions {
                image: image.clone(),
                import: Some(tree.clone()),
                uuid: Some([1; 16]),
                ..Default::default()
            };
            make_image(&opts).unwrap()
        })
    });
    g.finish();
}

fn image_with_files(n: usize) -> Vec<u8> {
    let opts = FormatOptions {
        label: b"bench".to_vec(),
        uuid: [2; 16],
        nanos_padding: false,
    };
    let mut fs = Filesystem::format(MemDevice::new(1 << 17), &opts, None).unwrap();
    let root = fs.root();
    let dirs: Vec<_> = (0..10)
        .map(|i| fs.mkdir(root, format!("d{i}").as_bytes()).unwrap())
        .collect();
    for i in 0..n {
        let f = fs
            .create(dirs[i % 10], format!("file{i}").as_bytes())
            .unwrap();
        fs.write(f, 0, &[i as u8; 100]).unwrap();
        if i % 64 == 0 {
            fs.sync().unwrap();
        }
    }
    fs.sync().unwrap();
    fs.into_device().into_image()
}

fn mount(c: &mut Criterion) {
    let mut g = c.benchmark_group("mount");
    g.sample_size(20);
    for n in [100usize, 1000, 10_000] {
        let img = image_with_files(n);
        let chain = Filesystem::mount(MemDevice::from_image(img.clone()))
            .unwrap()
            .log_chain()
            .len();
        println!(
            "mount: {n} files, log of {} extensions, image {} MiB",
            chain,
            img.len() >> 20
        );
        g.bench_with_input(BenchmarkId::new("files", n), &img, |b, img| {
            b.iter_batched(
                || MemDevice::from_image(img.clone()),
                |dev| Filesystem::mount(dev).unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, mkfs_import, mount);
criterion_main!(benches);
