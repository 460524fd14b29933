//! Building an image the way Nanos's `tools/mkfs.c` does: parse the
//! manifest (plus `-t` tuples and an optional host tree), consume
//! `imagesize` and `boot`, move every `contents:(host:path)` out of the tree
//! into a work list (depth first, in tuple order), write the translated
//! root as the log's first entry, give empty files `extents:()` and
//! `filelength:0`, then write each file's data in 32 MiB pieces (one extent
//! and one `filelength` update per piece), commit, and size the image as
//! `pad(size + 512 KiB, 512 KiB)`.
//!
//! One extension over Nanos: `contents:(host:DIR)` naming a host directory
//! imports that directory's tree there (files, directories and links).
//! Images made from a host program ([`crate::program`]) come in as an
//! already built root ([`MkfsOptions::root`]).

use crate::filedev::FileDevice;
use crate::progress::Progress;
use cairn_tfs::fs::MAX_EXTENT_SECTORS;
use cairn_tfs::manifest::{self, ManifestError};
use cairn_tfs::mbr::{PartitionEntry, TFS_PARTITION_TYPE, build_mbr};
use cairn_tfs::store::{NodeId, Store, Value};
use cairn_tfs::symbol::known;
use cairn_tfs::{BlockDevice, Filesystem, FormatOptions, Ino, Partition};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Image growth unit and headroom (`TFS_LOG_DEFAULT_EXTENSION_SIZE`).
pub const SIZE_PAD: u64 = 512 * 1024;
/// First sector of the root partition in `--mbr` images.
pub const MBR_PARTITION_START: u64 = 2048;
/// Sectors the filesystem may address while it is being built.
const BUILD_SECTORS: u64 = 1 << 40;

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct MkfsOptions {
    /// Output image.
    pub image: PathBuf,
    /// Manifest text and the directory its relative host paths start from.
    pub manifest: Option<(Vec<u8>, PathBuf)>,
    /// An already built root tuple (e.g. [`crate::program::ProgramImage::to_store`]),
    /// used instead of `manifest`; its host paths are absolute.
    pub root: Option<(Store, NodeId)>,
    /// A host directory whose tree goes under the root's `children`.
    pub import: Option<PathBuf>,
    /// Extra `(k:v ...)` tuples merged into the root (Nanos `-t`).
    pub extra_tuples: Vec<String>,
    /// Volume label.
    pub label: String,
    /// Volume UUID (random if `None`).
    pub uuid: Option<[u8; 16]>,
    /// Minimum image size in bytes (Nanos `-s`; a manifest `imagesize` wins).
    pub size: Option<u64>,
    /// Directory looked in first for host paths (Nanos `-r`).
    pub target_root: Option<PathBuf>,
    /// Put the volume in partition 2 of an MBR.
    pub mbr: bool,
    /// Show progress even when stderr is not a terminal.
    pub progress: bool,
}

/// What was built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MkfsSummary {
    /// Files written.
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Final image size.
    pub image_size: u64,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Warnings for the user.
    pub warnings: Vec<String>,
}

/// Why an image could not be built.
#[derive(Debug)]
pub enum MkfsError {
    /// The manifest does not parse; the text is kept for the caret.
    Manifest(ManifestError, Vec<u8>, String),
    /// The manifest or options make no sense.
    Invalid(String),
    /// A host file or the image failed.
    Io(String),
}

impl fmt::Display for MkfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkfsError::Manifest(e, src, what) => write!(f, "{what}: {}", e.render(src)),
            MkfsError::Invalid(s) => write!(f, "{s}"),
            MkfsError::Io(s) => write!(f, "{s}"),
        }
    }
}

/// Parses a size like Nanos's `parse_size`: a number with an optional
/// k/K, m/M or g/G suffix.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse().ok()?
    };
    if n == 0 {
        return None;
    }
    n.checked_mul(mult)
}

fn pad(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// A file whose data is still to be written.
#[derive(Clone, Debug)]
struct Job {
    node: NodeId,
    host: PathBuf,
    size: u64,
}

fn bytes_to_path(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

fn lookup_host(path: &Path, base: &Path, target_root: Option<&Path>) -> PathBuf {
    if let Some(root) = target_root {
        let mut p = path.to_path_buf();
        for _ in 0..40 {
            let candidate = root.join(p.strip_prefix("/").unwrap_or(&p));
            match fs::symlink_metadata(&candidate) {
                Ok(m) if m.file_type().is_symlink() => match fs::read_link(&candidate) {
                    Ok(t) if t.is_absolute() => p = t,
                    _ => return candidate,
                },
                Ok(_) => return candidate,
                Err(_) => break,
            }
        }
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn import_dir(
    store: &mut Store,
    dir: NodeId,
    host: &Path,
    files: &mut u64,
) -> Result<(), MkfsError> {
    let children = store
        .get_tuple(dir, known::CHILDREN)
        .ok_or_else(|| MkfsError::Invalid("import target is not a directory".into()))?;
    let mut entries: Vec<_> = fs::read_dir(host)
        .map_err(|e| MkfsError::Io(format!("cannot read {}: {e}", host.display())))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let sym = store.sym(name.as_bytes());
        if store.get(children, sym).is_some() {
            continue;
        }
        let path = e.path();
        let meta = fs::symlink_metadata(&path)
            .map_err(|err| MkfsError::Io(format!("{}: {err}", path.display())))?;
        let t = store.new_tuple();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)
                .map_err(|err| MkfsError::Io(format!("{}: {err}", path.display())))?;
            store.set(
                t,
                known::LINKTARGET,
                Some(Value::Str(target.as_os_str().as_bytes().to_vec())),
            );
        } else if meta.is_dir() {
            let c = store.new_tuple();
            store.set(t, known::CHILDREN, Some(Value::Tuple(c)));
            import_dir(store, t, &path, files)?;
        } else if meta.is_file() {
            let contents = store.new_tuple();
            let abs = fs::canonicalize(&path).unwrap_or(path.clone());
            store.set(
                contents,
                known::HOST,
                Some(Value::Str(abs.as_os_str().as_bytes().to_vec())),
            );
            store.set(t, known::CONTENTS, Some(Value::Tuple(contents)));
            *files += 1;
        } else {
            continue;
        }
        store.set(children, sym, Some(Value::Tuple(t)));
    }
    Ok(())
}

/// Moves `contents` out of every tuple under `root` into jobs (depth first,
/// in tuple order, as Nanos's `translate` visits them) and checks that
/// directory entries are tuples.
fn translate(
    store: &mut Store,
    root: NodeId,
    base: &Path,
    target_root: Option<&Path>,
) -> Result<Vec<Job>, MkfsError> {
    let mut jobs = Vec::new();
    let mut stack: Vec<(NodeId, String)> = vec![(root, String::new())];
    let mut visited = std::collections::BTreeSet::new();
    while let Some((t, path)) = stack.pop() {
        if !visited.insert(t) {
            continue;
        }
        let entries: Vec<_> = store.entries(t).map(|(k, v)| (k, v.clone())).collect();
        let mut nested = Vec::new();
        for (k, v) in entries {
            let name = String::from_utf8_lossy(store.symbols.name(k)).into_owned();
            if k == known::CONTENTS {
                let host = match &v {
                    Value::Tuple(c) => store
                        .get(*c, known::HOST)
                        .and_then(Value::as_bytes)
                        .map(<[u8]>::to_vec),
                    _ => None,
                };
                let Some(host) = host else {
                    return Err(MkfsError::Invalid(format!(
                        "{path}: contents needs (host:path)"
                    )));
                };
                let host = lookup_host(&bytes_to_path(&host), base, target_root);
                let meta = fs::metadata(&host)
                    .map_err(|e| MkfsError::Io(format!("{path}: {}: {e}", host.display())))?;
                store.set(t, known::CONTENTS, None);
                if meta.is_dir() {
                    // A host directory: its tree becomes this directory.
                    let c = match store.get_tuple(t, known::CHILDREN) {
                        Some(c) => c,
                        None => {
                            let c = store.new_tuple();
                            store.set(t, known::CHILDREN, Some(Value::Tuple(c)));
                            c
                        }
                    };
                    let mut n = 0;
                    import_dir(store, t, &host, &mut n)?;
                    nested.push((c, path.clone()));
                    continue;
                }
                jobs.push(Job {
                    node: t,
                    host,
                    size: meta.len(),
                });
                continue;
            }
            if k == known::CHILDREN {
                if let Value::Tuple(c) = v {
                    for (child, cv) in store.entries(c) {
                        if !matches!(cv, Value::Tuple(_)) {
                            let n = String::from_utf8_lossy(store.symbols.name(child));
                            return Err(MkfsError::Invalid(format!(
                                "{path}/{n}: a directory entry must be a tuple"
                            )));
                        }
                    }
                }
            }
            if let Value::Tuple(n) = v {
                nested.push((n, format!("{path}/{name}")));
            }
        }
        stack.extend(nested.into_iter().rev());
    }
    Ok(jobs)
}

fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut u);
    }
    u
}

/// Builds the image described by `opts`.
pub fn make_image(opts: &MkfsOptions) -> Result<MkfsSummary, MkfsError> {
    let mut summary = MkfsSummary::default();
    let (mut store, root, base) = match (&opts.root, &opts.manifest) {
        (Some((store, root)), _) => (store.clone(), *root, PathBuf::from("/")),
        (None, Some((text, base))) => {
            let m = manifest::parse(text)
                .map_err(|e| MkfsError::Manifest(e, text.clone(), "manifest".into()))?;
            (m.store, m.root, base.clone())
        }
        (None, None) => {
            let mut s = Store::new();
            let r = s.new_tuple();
            let c = s.new_tuple();
            s.set(r, known::CHILDREN, Some(Value::Tuple(c)));
            (s, r, std::env::current_dir().unwrap_or_default())
        }
    };
    for t in &opts.extra_tuples {
        let m = manifest::parse(t.as_bytes())
            .map_err(|e| MkfsError::Manifest(e, t.as_bytes().to_vec(), "-t tuple".into()))?;
        let entries: Vec<_> = m
            .store
            .entries(m.root)
            .map(|(k, v)| (k, v.clone()))
            .collect();
        for (k, v) in entries {
            let sym = store.sym(m.store.symbols.name(k));
            let v = store.import(&m.store, &v);
            store.set(root, sym, Some(v));
        }
    }
    if !matches!(store.get(root, known::CHILDREN), Some(Value::Tuple(_))) {
        if store.get(root, known::CHILDREN).is_some() {
            return Err(MkfsError::Invalid(
                "the root's children must be a tuple".into(),
            ));
        }
        let c = store.new_tuple();
        store.set(root, known::CHILDREN, Some(Value::Tuple(c)));
    }
    let mut min_size = opts.size;
    if let Some(v) = store.set(root, known::IMAGESIZE, None) {
        let s = v
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        min_size = Some(
            parse_size(&s)
                .ok_or_else(|| MkfsError::Invalid(format!("invalid imagesize string {s:?}")))?,
        );
    }
    let boot = store.sym(b"boot");
    if store.set(root, boot, None).is_some() {
        summary
            .warnings
            .push("the boot tuple is ignored: cairn boots its kernel directly".into());
    }
    let mut import_files = 0;
    if let Some(dir) = &opts.import {
        import_dir(&mut store, root, dir, &mut import_files)?;
    }
    let jobs = translate(&mut store, root, &base, opts.target_root.as_deref())?;

    let image_file = FileDevice::create(&opts.image, BUILD_SECTORS)
        .map_err(|e| MkfsError::Io(format!("cannot create {}: {e}", opts.image.display())))?;
    let offset_sectors = if opts.mbr { MBR_PARTITION_START } else { 0 };
    let part = Partition::new(&image_file, offset_sectors, BUILD_SECTORS - offset_sectors)
        .map_err(|e| MkfsError::Io(e.to_string()))?;
    let uuid = opts.uuid.unwrap_or_else(random_uuid);
    summary.uuid = uuid;
    let fopts = FormatOptions {
        label: opts.label.as_bytes().to_vec(),
        uuid,
        nanos_padding: true,
    };
    let mut fs = Filesystem::format(part, &fopts, Some((store, root))).map_err(|e| {
        MkfsError::Invalid(format!("the manifest tree is not a valid filesystem: {e}"))
    })?;
    let total: u64 = jobs.iter().map(|j| j.size).sum();
    let mut progress = Progress::new(total, jobs.len() as u64, opts.progress);
    for job in jobs.iter().filter(|j| j.size == 0) {
        fs.init_empty_file(Ino(job.node))
            .map_err(|e| MkfsError::Invalid(format!("{}: {e}", job.host.display())))?;
        summary.files += 1;
        progress.file_done();
    }
    let piece = MAX_EXTENT_SECTORS as usize * 512;
    let mut buf = vec![0u8; piece];
    for job in jobs.iter().filter(|j| j.size > 0) {
        let mut f = fs::File::open(&job.host)
            .map_err(|e| MkfsError::Io(format!("{}: {e}", job.host.display())))?;
        let mut off = 0u64;
        loop {
            let mut filled = 0;
            while filled < piece {
                match f.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(MkfsError::Io(format!("{}: {e}", job.host.display()))),
                }
            }
            if filled == 0 {
                break;
            }
            fs.write(Ino(job.node), off, &buf[..filled])
                .map_err(|e| MkfsError::Io(format!("{}: {e}", job.host.display())))?;
            off += filled as u64;
            progress.add_bytes(filled as u64);
            if filled < piece {
                break;
            }
        }
        summary.files += 1;
        summary.bytes += off;
        progress.file_done();
    }
    fs.sync()
        .map_err(|e| MkfsError::Io(format!("cannot commit the log: {e}")))?;
    progress.finish();
    drop(fs);
    let offset = offset_sectors * 512;
    let current = pad(image_file.high_water().max(offset + 512), 512);
    let target = pad(
        min_size.unwrap_or(current).saturating_sub(offset) + SIZE_PAD,
        SIZE_PAD,
    ) + offset;
    let final_size = current.max(target);
    image_file
        .file()
        .set_len(final_size)
        .map_err(|e| MkfsError::Io(format!("cannot size the image: {e}")))?;
    if opts.mbr {
        let entry = PartitionEntry {
            active: true,
            kind: TFS_PARTITION_TYPE,
            lba_start: offset_sectors as u32,
            sectors: u32::try_from((final_size - offset) / 512)
                .map_err(|_| MkfsError::Invalid("image too large for an MBR".into()))?,
        };
        let empty = PartitionEntry {
            active: false,
            kind: 0,
            lba_start: 0,
            sectors: 0,
        };
        image_file
            .write(0, &build_mbr(&[empty, entry]))
            .map_err(|e| MkfsError::Io(format!("cannot write the MBR: {e}")))?;
    }
    image_file
        .file()
        .sync_all()
        .map_err(|e| MkfsError::Io(format!("cannot sync the image: {e}")))?;
    summary.image_size = final_size;
    Ok(summary)
}
