//! Property tests: values survive encode → decode, and random sequences of
//! filesystem operations match an in-memory model across sync + remount.

use cairn_tfs::codec::{DecodeStats, Encoder, Encoding, decode};
use cairn_tfs::dictionary::Dictionary;
use cairn_tfs::store::{Integer, NodeId, Store, Value};
use cairn_tfs::{Filesystem, FormatOptions, FsError, MemDevice};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Tree {
    Str(Vec<u8>),
    Buf(Vec<u8>),
    Int(bool, u64),
    Flag,
    Tuple(Vec<(Vec<u8>, Tree)>),
    Vector(Vec<Option<Tree>>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..20).prop_map(Tree::Str),
        prop::collection::vec(any::<u8>(), 2..20).prop_map(Tree::Buf),
        (any::<bool>(), any::<u64>()).prop_map(|(n, m)| Tree::Int(n && m > 0, m)),
        Just(Tree::Flag),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 1..12), inner.clone()),
                0..6
            )
            .prop_map(Tree::Tuple),
            prop::collection::vec(prop::option::of(inner), 0..6).prop_map(Tree::Vector),
        ]
    })
}

fn build(store: &mut Store, t: &Tree) -> Value {
    match t {
        Tree::Str(b) => Value::Str(b.clone()),
        Tree::Buf(b) => Value::Buf(b.clone()),
        Tree::Int(n, m) => Value::Int(Integer {
            negative: *n,
            magnitude: *m,
        }),
        Tree::Flag => Value::Flag,
        Tree::Tuple(entries) => {
            let id = store.new_tuple();
            for (k, v) in entries {
                let sym = store.sym(k);
                let v = build(store, v);
                store.set(id, sym, Some(v));
            }
            Value::Tuple(id)
        }
        Tree::Vector(items) => {
            let id = store.new_vector();
            for i in items {
                let v = i.as_ref().map(|t| build(store, t));
                store.vector_push(id, v);
            }
            Value::Vector(id)
        }
    }
}

/// A store-independent rendering of a value, for comparison.
fn render(store: &Store, v: &Value) -> String {
    match v {
        Value::Tuple(t) => {
            let parts: Vec<String> = store
                .entries(*t)
                .map(|(k, v)| format!("{:?}={}", store.symbols.name(k), render(store, v)))
                .collect();
            let mut parts = parts;
            parts.sort();
            format!("({})", parts.join(" "))
        }
        Value::Vector(id) => {
            let parts: Vec<String> = store
                .vector(*id)
                .iter()
                .map(|s| s.as_ref().map(|v| render(store, v)).unwrap_or_default())
                .collect();
            format!("[{}]", parts.join(","))
        }
        other => format!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn values_round_trip(t in tree()) {
        let mut store = Store::new();
        let root: NodeId = store.new_tuple();
        let v = build(&mut store, &t);
        let x = store.sym(b"x");
        store.set(root, x, Some(v));
        let mut dict = Dictionary::new();
        let mut enc = Encoder::new(&store, &mut dict);
        enc.value(Some(&Value::Tuple(root)));
        let bytes = enc.out;
        let mut back = Store::new();
        let mut dict2 = Dictionary::new();
        let mut stats = DecodeStats::default();
        let (decoded, used) = decode(&bytes, &mut back, &mut dict2, Encoding::V5, &mut stats).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(dict.len(), dict2.len());
        let decoded = decoded.unwrap();
        prop_assert_eq!(render(&store, &Value::Tuple(root)), render(&back, &decoded));
    }
}

#[derive(Clone, Debug)]
enum FsOp {
    Create(u8),
    Write(u8, u16, u16, u8),
    Truncate(u8, u16),
    Unlink(u8),
    Rename(u8, u8),
    Link(u8, u8),
    Fallocate(u8, u16, u16),
    SyncRemount,
    Compact,
}

fn fs_op() -> impl Strategy<Value = FsOp> {
    prop_oneof![
        (0..6u8).prop_map(FsOp::Create),
        (0..6u8, any::<u16>(), 1..4000u16, any::<u8>())
            .prop_map(|(a, b, c, d)| FsOp::Write(a, b, c, d)),
        (0..6u8, any::<u16>()).prop_map(|(a, b)| FsOp::Truncate(a, b)),
        (0..6u8).prop_map(FsOp::Unlink),
        (0..6u8, 0..6u8).prop_map(|(a, b)| FsOp::Rename(a, b)),
        (0..6u8, 0..6u8).prop_map(|(a, b)| FsOp::Link(a, b)),
        (0..6u8, any::<u16>(), 1..9000u16).prop_map(|(a, b, c)| FsOp::Fallocate(a, b, c)),
        Just(FsOp::SyncRemount),
        Just(FsOp::Compact),
    ]
}

fn name(i: u8) -> Vec<u8> {
    format!("n{i}").into_bytes()
}

fn compare(
    fs: &Filesystem<MemDevice>,
    paths: &BTreeMap<u8, usize>,
    files: &[Vec<u8>],
) -> Result<(), TestCaseError> {
    let listed: Vec<Vec<u8>> = fs
        .readdir(fs.root())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let expected: Vec<Vec<u8>> = paths.keys().map(|&k| name(k)).collect();
    let mut l = listed.clone();
    l.sort();
    prop_assert_eq!(l, expected);
    for (&k, &id) in paths {
        let ino = fs.lookup(fs.root(), &name(k)).unwrap();
        let mut buf = vec![0u8; files[id].len() + 10];
        let n = fs.read(ino, 0, &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &files[id][..]);
        let links = paths.values().filter(|&&i| i == id).count() as u32;
        prop_assert_eq!(fs.stat(ino).unwrap().nlink, links);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn operations_match_the_model_across_remounts(ops in prop::collection::vec(fs_op(), 1..40)) {
        let opts = FormatOptions { label: b"p".to_vec(), uuid: [4; 16], nanos_padding: false };
        let mut fs = Filesystem::format(MemDevice::new(16384), &opts, None).unwrap();
        let mut paths: BTreeMap<u8, usize> = BTreeMap::new();
        let mut files: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            let root = fs.root();
            match op {
                FsOp::Create(a) => {
                    let r = fs.create(root, &name(a));
                    if let std::collections::btree_map::Entry::Vacant(slot) = paths.entry(a) {
                        r.unwrap();
                        files.push(Vec::new());
                        slot.insert(files.len() - 1);
                    } else {
                        prop_assert_eq!(r, Err(FsError::Exist));
                    }
                }
                FsOp::Write(a, off, len, b) => {
                    if let Some(&id) = paths.get(&a) {
                        let ino = fs.lookup(root, &name(a)).unwrap();
                        let data: Vec<u8> = (0..len).map(|i| b.wrapping_add(i as u8)).collect();
                        fs.write(ino, u64::from(off), &data).unwrap();
                        let f = &mut files[id];
                        let end = off as usize + data.len();
                        if f.len() < end { f.resize(end, 0); }
                        f[off as usize..end].copy_from_slice(&data);
                    }
                }
                FsOp::Truncate(a, len) => {
                    if let Some(&id) = paths.get(&a) {
                        let ino = fs.lookup(root, &name(a)).unwrap();
                        fs.truncate(ino, u64::from(len)).unwrap();
                        files[id].resize(len as usize, 0);
                    }
                }
                FsOp::Unlink(a) => {
                    let r = fs.unlink(root, &name(a));
                    prop_assert_eq!(r.is_ok(), paths.remove(&a).is_some());
                }
                FsOp::Rename(a, b) => {
                    let r = fs.rename(root, &name(a), root, &name(b));
                    match paths.get(&a).copied() {
                        None => prop_assert_eq!(r, Err(FsError::NoEnt)),
                        Some(id) => {
                            r.unwrap();
                            if a != b && paths.get(&b) != Some(&id) {
                                paths.remove(&a);
                                paths.insert(b, id);
                            }
                        }
                    }
                }
                FsOp::Link(a, b) => {
                    if let (Some(&id), false) = (paths.get(&a), paths.contains_key(&b)) {
                        let ino = fs.lookup(root, &name(a)).unwrap();
                        fs.link(ino, root, &name(b)).unwrap();
                        paths.insert(b, id);
                    }
                }
                FsOp::Fallocate(a, off, len) => {
                    if let Some(&id) = paths.get(&a) {
                        let ino = fs.lookup(root, &name(a)).unwrap();
                        fs.fallocate(ino, u64::from(off), u64::from(len), false).unwrap();
                        let end = off as usize + len as usize;
                        if files[id].len() < end { files[id].resize(end, 0); }
                    }
                }
                FsOp::SyncRemount => {
                    fs.sync().unwrap();
                    let img = fs.into_device().into_image();
                    fs = Filesystem::mount(MemDevice::from_image(img)).unwrap();
                    compare(&fs, &paths, &files)?;
                }
                FsOp::Compact => fs.compact().unwrap(),
            }
        }
        compare(&fs, &paths, &files)?;
        fs.sync().unwrap();
        let img = fs.into_device().into_image();
        let dev = MemDevice::from_image(img);
        prop_assert!(cairn_tfs::check::check(&dev).is_clean());
        let fs = Filesystem::mount(dev).unwrap();
        compare(&fs, &paths, &files)?;
    }
}
