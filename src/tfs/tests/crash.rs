//! Crash-consistency harness. A recording device logs every write and
//! flush a workload issues (creates, writes, fsyncs, renames, links,
//! unlinks, truncates, fallocates, directory changes, log extension and
//! compaction). For every flush barrier it then builds crash states: the
//! prefix at the barrier, the whole next epoch, each write of the epoch
//! dropped, sampled subsets (writes reordered/dropped within the epoch),
//! and torn writes (a prefix of a write's sectors plus half of the next
//! sector). Each state must mount, pass fsck, and show every file that was
//! fsync'd (or synced) and not touched since with exactly its synced
//! content.
//!
//! Crash model: 512-byte sector writes to the header sector are atomic (the
//! commit point of compaction, as in Nanos); every other write may tear
//! anywhere.

use cairn_tfs::check::check;
use cairn_tfs::{
    BlockDevice, FileType, Filesystem, FormatOptions, IoError, MemDevice, SECTOR_SIZE,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

const SECTORS: u64 = 12288;

#[derive(Clone)]
enum Op {
    Write {
        sector: u64,
        data: Vec<u8>,
        step: usize,
    },
    Flush {
        step: usize,
    },
}

struct Recorder {
    image: RefCell<Vec<u8>>,
    ops: RefCell<Vec<Op>>,
    step: Cell<usize>,
}

impl BlockDevice for Recorder {
    fn sector_count(&self) -> u64 {
        SECTORS
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let s = sector as usize * SECTOR_SIZE;
        buf.copy_from_slice(&self.image.borrow()[s..s + buf.len()]);
        Ok(())
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        cairn_tfs::device::check_request(SECTORS, sector, buf.len())?;
        let s = sector as usize * SECTOR_SIZE;
        self.image.borrow_mut()[s..s + buf.len()].copy_from_slice(buf);
        self.ops.borrow_mut().push(Op::Write {
            sector,
            data: buf.to_vec(),
            step: self.step.get(),
        });
        Ok(())
    }
    fn flush(&self) -> Result<(), IoError> {
        self.ops.borrow_mut().push(Op::Flush {
            step: self.step.get(),
        });
        Ok(())
    }
}

/// A crash image: a base plus sectors written over it.
struct Overlay<'a> {
    base: &'a [u8],
    sectors: BTreeMap<u64, Vec<u8>>,
}

impl BlockDevice for Overlay<'_> {
    fn sector_count(&self) -> u64 {
        SECTORS
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        cairn_tfs::device::check_request(SECTORS, sector, buf.len())?;
        for (i, chunk) in buf.chunks_mut(SECTOR_SIZE).enumerate() {
            let s = sector + i as u64;
            match self.sectors.get(&s) {
                Some(d) => chunk.copy_from_slice(d),
                None => {
                    let at = s as usize * SECTOR_SIZE;
                    chunk.copy_from_slice(&self.base[at..at + SECTOR_SIZE]);
                }
            }
        }
        Ok(())
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<(), IoError> {
        Err(IoError::Device)
    }
    fn flush(&self) -> Result<(), IoError> {
        Ok(())
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the workload promised: after the flush with index `flush`, `path`
/// holds `content`.
struct Guarantee {
    path: String,
    content: Vec<u8>,
    flush: usize,
    step: usize,
}

struct Model {
    paths: BTreeMap<String, usize>,
    contents: Vec<Vec<u8>>,
    touches: Vec<(usize, String)>,
    guarantees: Vec<Guarantee>,
}

impl Model {
    fn touch(&mut self, step: usize, path: &str) {
        self.touches.push((step, path.to_string()));
    }
    fn touch_file(&mut self, step: usize, id: usize) {
        let names: Vec<String> = self
            .paths
            .iter()
            .filter(|(_, i)| **i == id)
            .map(|(p, _)| p.clone())
            .collect();
        for n in names {
            self.touch(step, &n);
        }
    }
}

fn ino_of(fs: &Filesystem<&Recorder>, path: &str) -> cairn_tfs::Ino {
    fs.resolve(path.as_bytes(), true).unwrap()
}

fn run_workload(rec: &Recorder, seed: u64, steps: usize) -> Model {
    let mut fs = Filesystem::mount(rec).unwrap();
    fs.set_max_log_extensions(3);
    let mut m = Model {
        paths: BTreeMap::new(),
        contents: Vec::new(),
        touches: Vec::new(),
        guarantees: Vec::new(),
    };
    let mut rng = Rng(seed);
    let dirs = ["", "/a", "/b", "/a/sub"];
    let root = fs.root();
    let a = fs.mkdir(root, b"a").unwrap();
    fs.mkdir(root, b"b").unwrap();
    fs.mkdir(a, b"sub").unwrap();
    fs.mkdir(root, b"scratch").unwrap();
    let mut next_name = 0;
    let flushes = |rec: &Recorder| {
        rec.ops
            .borrow()
            .iter()
            .filter(|o| matches!(o, Op::Flush { .. }))
            .count()
    };
    for step in 1..steps {
        rec.step.set(step);
        let live: Vec<String> = m.paths.keys().cloned().collect();
        let pick = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize].clone();
        let choice = if live.len() < 3 { 0 } else { rng.below(100) };
        match choice {
            0..=9 => {
                let dir = dirs[rng.below(dirs.len() as u64) as usize];
                let path = format!("{dir}/f{next_name}");
                next_name += 1;
                let (d, name) = fs.resolve_parent(path.as_bytes()).unwrap();
                fs.create(d, &name).unwrap();
                m.contents.push(Vec::new());
                m.paths.insert(path.clone(), m.contents.len() - 1);
                m.touch(step, &path);
            }
            10..=39 => {
                let path = pick(&mut rng);
                let id = m.paths[&path];
                let len = m.contents[id].len() as u64;
                let off = if rng.below(3) == 0 {
                    len
                } else {
                    rng.below(len + 1024)
                };
                let max = if rng.below(10) == 0 { 40000 } else { 3000 };
                let n = 1 + rng.below(max) as usize;
                let byte = (step % 251) as u8;
                let data: Vec<u8> = (0..n).map(|i| byte.wrapping_add(i as u8)).collect();
                fs.write(ino_of(&fs, &path), off, &data).unwrap();
                let c = &mut m.contents[id];
                if c.len() < off as usize + n {
                    c.resize(off as usize + n, 0);
                }
                c[off as usize..off as usize + n].copy_from_slice(&data);
                m.touch_file(step, id);
            }
            40..=59 => {
                let path = pick(&mut rng);
                fs.fsync(ino_of(&fs, &path)).unwrap();
                let content = m.contents[m.paths[&path]].clone();
                m.guarantees.push(Guarantee {
                    path,
                    content,
                    flush: flushes(rec) - 1,
                    step,
                });
            }
            60..=64 => {
                fs.sync().unwrap();
                let f = flushes(rec) - 1;
                for (p, &id) in &m.paths {
                    m.guarantees.push(Guarantee {
                        path: p.clone(),
                        content: m.contents[id].clone(),
                        flush: f,
                        step,
                    });
                }
            }
            65..=71 => {
                let from = pick(&mut rng);
                let to = if rng.below(2) == 0 {
                    pick(&mut rng)
                } else {
                    next_name += 1;
                    format!(
                        "{}/r{next_name}",
                        dirs[rng.below(dirs.len() as u64) as usize]
                    )
                };
                let (fd, fname) = fs.resolve_parent(from.as_bytes()).unwrap();
                let (td, tname) = fs.resolve_parent(to.as_bytes()).unwrap();
                fs.rename(fd, &fname, td, &tname).unwrap();
                m.touch(step, &from);
                m.touch(step, &to);
                if from != to && m.paths[&from] != m.paths.get(&to).copied().unwrap_or(usize::MAX) {
                    let id = m.paths.remove(&from).unwrap();
                    m.paths.insert(to, id);
                }
            }
            72..=76 => {
                let path = pick(&mut rng);
                let (d, name) = fs.resolve_parent(path.as_bytes()).unwrap();
                fs.unlink(d, &name).unwrap();
                m.paths.remove(&path);
                m.touch(step, &path);
            }
            77..=83 => {
                let path = pick(&mut rng);
                let id = m.paths[&path];
                let len = rng.below(m.contents[id].len() as u64 + 2000);
                fs.truncate(ino_of(&fs, &path), len).unwrap();
                m.contents[id].resize(len as usize, 0);
                m.touch_file(step, id);
            }
            84..=87 => {
                let path = pick(&mut rng);
                let id = m.paths[&path];
                next_name += 1;
                let to = format!("/b/l{next_name}");
                let (d, name) = fs.resolve_parent(to.as_bytes()).unwrap();
                fs.link(ino_of(&fs, &path), d, &name).unwrap();
                m.paths.insert(to.clone(), id);
                m.touch(step, &to);
            }
            88..=91 => {
                let path = pick(&mut rng);
                let id = m.paths[&path];
                let off = rng.below(20000);
                let len = 1 + rng.below(20000);
                let keep = rng.below(2) == 0;
                fs.fallocate(ino_of(&fs, &path), off, len, keep).unwrap();
                if !keep && m.contents[id].len() < (off + len) as usize {
                    m.contents[id].resize((off + len) as usize, 0);
                }
                m.touch_file(step, id);
            }
            92..=96 => {
                let s = fs.resolve(b"/scratch", true).unwrap();
                let name = format!("d{}", rng.below(4));
                match fs.mkdir(s, name.as_bytes()) {
                    Ok(d) => {
                        if rng.below(2) == 0 {
                            fs.rename(s, name.as_bytes(), s, b"moved").ok();
                        } else {
                            let _ = d;
                        }
                    }
                    Err(_) => {
                        let _ = fs.rmdir(s, name.as_bytes());
                    }
                }
            }
            _ => {
                fs.compact().unwrap();
                let f = flushes(rec) - 1;
                for (p, &id) in &m.paths {
                    m.guarantees.push(Guarantee {
                        path: p.clone(),
                        content: m.contents[id].clone(),
                        flush: f,
                        step,
                    });
                }
            }
        }
    }
    m
}

fn verify(dev: &Overlay, m: &Model, flushes_done: usize, crash_step: usize, what: &str) {
    let fs = match Filesystem::mount(dev) {
        Ok(fs) => fs,
        Err(e) => panic!("{what}: mount failed: {e}"),
    };
    let report = check(dev);
    assert!(report.is_clean(), "{what}: fsck: {:?}", report.problems);
    for g in m.guarantees.iter().filter(|g| g.flush < flushes_done) {
        let touched = m.touches.iter().any(|(s, p)| {
            *s > g.step
                && *s <= crash_step
                && (g.path == *p || g.path.starts_with(&format!("{p}/")))
        });
        if touched {
            continue;
        }
        let ino = fs
            .resolve(g.path.as_bytes(), true)
            .unwrap_or_else(|e| panic!("{what}: {} lost: {e}", g.path));
        assert_eq!(fs.stat(ino).unwrap().kind, FileType::Regular);
        let mut buf = vec![0u8; g.content.len() + 1];
        let n = fs.read(ino, 0, &mut buf).unwrap();
        assert!(
            n == g.content.len() && buf[..n] == g.content[..],
            "{what}: {} has the wrong content",
            g.path
        );
    }
}

/// Runs one workload and checks all its crash states; returns (states,
/// writes, flushes, guarantees).
fn crash_run(seed: u64, steps: usize) -> (usize, usize, usize, usize) {
    let opts = FormatOptions {
        label: b"crash".to_vec(),
        uuid: [9; 16],
        nanos_padding: seed % 2 == 0,
    };
    let mut fs = Filesystem::format(MemDevice::new(SECTORS), &opts, None).unwrap();
    fs.sync().unwrap();
    let base = fs.into_device().into_image();
    let rec = Recorder {
        image: RefCell::new(base.clone()),
        ops: RefCell::new(Vec::new()),
        step: Cell::new(0),
    };
    let model = run_workload(&rec, seed, steps);
    let ops = rec.ops.into_inner();

    let mut epochs: Vec<Vec<(u64, Vec<u8>, usize)>> = vec![Vec::new()];
    let mut flush_steps = Vec::new();
    for op in &ops {
        match op {
            Op::Write { sector, data, step } => {
                epochs
                    .last_mut()
                    .unwrap()
                    .push((*sector, data.clone(), *step))
            }
            Op::Flush { step } => {
                flush_steps.push(*step);
                epochs.push(Vec::new());
            }
        }
    }
    let mut rng = Rng(seed ^ 0x1234_5678_9abc_def1);
    let mut image = base;
    let mut states = 0usize;
    let last_step = flush_steps.last().copied().unwrap_or(0);
    for (k, epoch) in epochs.iter().enumerate() {
        let crash_step = flush_steps.get(k).copied().unwrap_or(last_step);
        let n = epoch.len();
        // Distinct subsets of the epoch's writes that reached the disk: all
        // of them for small epochs, else the empty and full sets, each write
        // dropped, and random samples.
        let mut subsets: std::collections::BTreeSet<Vec<usize>> = std::collections::BTreeSet::new();
        if n <= 5 {
            for mask in 0u32..(1 << n) {
                subsets.insert((0..n).filter(|i| mask & (1 << i) != 0).collect());
            }
        } else {
            subsets.insert(Vec::new());
            subsets.insert((0..n).collect());
            for drop in 0..n {
                subsets.insert((0..n).filter(|&i| i != drop).collect());
            }
            for _ in 0..24 {
                subsets.insert((0..n).filter(|_| rng.below(2) == 0).collect());
            }
        }
        let apply = |subset: &[usize], torn: Option<(usize, usize)>| -> BTreeMap<u64, Vec<u8>> {
            let mut over = BTreeMap::new();
            for &i in subset {
                let (sector, data, _) = &epoch[i];
                for (j, chunk) in data.chunks(SECTOR_SIZE).enumerate() {
                    over.insert(sector + j as u64, chunk.to_vec());
                }
            }
            if let Some((i, keep)) = torn {
                let (sector, data, _) = &epoch[i];
                for (j, chunk) in data.chunks(SECTOR_SIZE).enumerate().take(keep) {
                    over.insert(sector + j as u64, chunk.to_vec());
                }
                let s = sector + keep as u64;
                if keep * SECTOR_SIZE < data.len() && s != 0 {
                    let at = s as usize * SECTOR_SIZE;
                    let mut half = image[at..at + SECTOR_SIZE].to_vec();
                    half[..SECTOR_SIZE / 2].copy_from_slice(
                        &data[keep * SECTOR_SIZE..keep * SECTOR_SIZE + SECTOR_SIZE / 2],
                    );
                    over.insert(s, half);
                }
            }
            over
        };
        let mut cases: Vec<(String, BTreeMap<u64, Vec<u8>>)> = Vec::new();
        for subset in &subsets {
            cases.push((
                format!("seed {seed:x} epoch {k} writes {subset:?}"),
                apply(subset, None),
            ));
        }
        if n > 0 {
            // Every write of the epoch torn in turn (the others landed or
            // not at random): a prefix of its sectors plus half a sector.
            for (w, (_, data, _)) in epoch.iter().enumerate() {
                let sectors = data.len() / SECTOR_SIZE;
                let others: Vec<usize> = (0..n).filter(|&i| i != w && rng.below(2) == 0).collect();
                for keep in [0, sectors / 2, sectors.saturating_sub(1)]
                    .into_iter()
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    cases.push((
                        format!("seed {seed:x} epoch {k} write {w} torn after {keep} sectors, others {others:?}"),
                        apply(&others, Some((w, keep))),
                    ));
                }
            }
        }
        for (what, sectors) in cases {
            let dev = Overlay {
                base: &image,
                sectors,
            };
            verify(&dev, &model, k, crash_step, &what);
            states += 1;
        }
        for (sector, data, _) in epoch {
            let at = *sector as usize * SECTOR_SIZE;
            image[at..at + data.len()].copy_from_slice(data);
        }
    }
    (
        states,
        ops.len() - flush_steps.len(),
        flush_steps.len(),
        model.guarantees.len(),
    )
}

#[test]
fn crash_states_mount_fsck_clean_and_keep_fsynced_data() {
    let started = std::time::Instant::now();
    let mut totals = (0, 0, 0, 0);
    for seed in [
        0x5eed_cafe_f00d_1234u64,
        0x0bad_5eed_1357_9bdf,
        0x7777_1234_abcd_0001,
    ] {
        let (s, w, f, g) = crash_run(seed, 900);
        totals = (totals.0 + s, totals.1 + w, totals.2 + f, totals.3 + g);
    }
    println!(
        "crash harness: {} crash states from {} writes and {} flushes, {} fsync guarantees, {:.1}s",
        totals.0,
        totals.1,
        totals.2,
        totals.3,
        started.elapsed().as_secs_f64()
    );
    assert!(totals.0 >= 10_000, "only {} crash states", totals.0);
}

#[test]
fn recorder_sees_data_before_log_commit() {
    // fsync order: the file's data write precedes the flush that precedes
    // the commit write.
    let opts = FormatOptions {
        label: Vec::new(),
        uuid: [1; 16],
        nanos_padding: false,
    };
    let mut fs = Filesystem::format(MemDevice::new(SECTORS), &opts, None).unwrap();
    fs.sync().unwrap();
    let rec = Recorder {
        image: RefCell::new(fs.into_device().into_image()),
        ops: RefCell::new(Vec::new()),
        step: Cell::new(0),
    };
    let mut fs = Filesystem::mount(&rec).unwrap();
    let f = fs.create(fs.root(), b"x").unwrap();
    fs.write(f, 0, &[1; 4096]).unwrap();
    fs.fsync(f).unwrap();
    let ops = rec.ops.borrow();
    let kinds: Vec<char> = ops
        .iter()
        .map(|o| {
            if matches!(o, Op::Flush { .. }) {
                'F'
            } else {
                'W'
            }
        })
        .collect();
    let s: String = kinds.into_iter().collect();
    assert!(
        s.starts_with('W') && s.ends_with("FWF"),
        "unexpected order {s}"
    );
    let first_flush = s.find('F').unwrap();
    let data_writes = ops[..first_flush]
        .iter()
        .filter(|o| matches!(o, Op::Write { data, .. } if data.len() == 4096))
        .count();
    assert_eq!(
        data_writes, 1,
        "the data write must precede the first flush"
    );
}
