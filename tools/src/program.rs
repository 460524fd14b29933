//! An image made from a host program: the program at its host path, its
//! dynamic loader and every library it needs ([`crate::deps`], links kept
//! as on the host, [`crate::hosttree`]), a generated `/etc/ld.so.cache`
//! listing those libraries, minimal `/etc/passwd`, `/etc/group`,
//! `/etc/hosts` and `/etc/nsswitch.conf`, `/tmp` and `/root`, and what an
//! optional manifest adds on top (files, directories, links, the
//! workload's arguments and environment).
//!
//! A manifest's `contents:(host:DIR)` naming a host *directory* adds that
//! directory's tree (e.g. `/usr/lib/python3.11`). ELF programs and
//! libraries the manifest adds get their libraries too: a library missing
//! for a file the manifest names is an error, for a file inside an added
//! directory a warning (such modules are loaded on demand, if ever).
//!
//! Host only; no locks.

use crate::deps::{Closure, DepsError, Resolver, Via};
use crate::hosttree::{Node, Tree, TreeError};
use crate::ldcache;
use cairn_tfs::manifest;
use cairn_tfs::store::{NodeId, Store, Value};
use cairn_tfs::symbol::known;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The environment a program image gets unless told otherwise.
pub const DEFAULT_ENV: &[(&str, &str)] =
    &[("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/root")];

/// `/etc/passwd` of an image (the program runs as root).
pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
/// `/etc/group`.
pub const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
/// `/etc/hosts`.
pub const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
/// `/etc/nsswitch.conf`: the C library's built-in `files` service only.
pub const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nprotocols: files\nservices: files\n";

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct ProgramSpec {
    /// The program's host path (relative paths are taken from the current
    /// directory); `None`: the manifest's `program`.
    pub program: Option<PathBuf>,
    /// `argv[1..]`; empty keeps the manifest's arguments, if any.
    pub args: Vec<String>,
    /// Environment variables added to (and overriding) the manifest's and
    /// [`DEFAULT_ENV`].
    pub env: Vec<(String, String)>,
    /// A manifest merged over the generated tree, with the directory its
    /// relative host paths start from.
    pub manifest: Option<(Vec<u8>, PathBuf)>,
    /// Where absolute host paths are read from (`/` normally).
    pub root: PathBuf,
    /// Host `LD_LIBRARY_PATH` directories to resolve libraries with (the
    /// libraries found there are listed in the image's cache).
    pub library_path: Vec<PathBuf>,
}

/// The result: a tree and the workload.
#[derive(Clone, Debug)]
pub struct ProgramImage {
    /// Everything the image holds.
    pub tree: Tree,
    /// The program's path in the image.
    pub program: PathBuf,
    /// argv, `argv[0]` first.
    pub arguments: Vec<Vec<u8>>,
    /// Environment.
    pub environment: Vec<(Vec<u8>, Vec<u8>)>,
    /// Libraries (with loaders) copied.
    pub libraries: Vec<PathBuf>,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// Root attributes of the manifest other than the tree and workload.
    extra: Option<(Store, NodeId)>,
}

/// Why the image could not be described.
#[derive(Debug)]
pub enum ProgramError {
    /// A library, the loader or the program is unusable or missing.
    Deps(DepsError),
    /// A host path could not be added.
    Tree(TreeError),
    /// Anything else (bad manifest, no program).
    Invalid(String),
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::Deps(e) => write!(f, "{e}"),
            ProgramError::Tree(e) => write!(f, "{e}"),
            ProgramError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ProgramError {}

impl From<DepsError> for ProgramError {
    fn from(e: DepsError) -> Self {
        ProgramError::Deps(e)
    }
}

impl From<TreeError> for ProgramError {
    fn from(e: TreeError) -> Self {
        ProgramError::Tree(e)
    }
}

fn bytes_path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// Whether the host file at `p` is an ELF file that loads libraries.
fn is_dynamic_elf(p: &Path) -> bool {
    let mut head = [0u8; 4];
    let is_elf = std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"\x7fELF";
    is_elf
        && std::fs::read(p)
            .ok()
            .and_then(|b| cairn_unix::elf::dynamic::dynamic_info(&b).ok())
            .is_some_and(|i| i.interp.is_some() || !i.needed.is_empty())
}

/// The manifest's tree as a [`Tree`] (host paths resolved from `base`);
/// returns the ELF files it names (image path, whether named directly).
fn manifest_tree(
    store: &Store,
    t: NodeId,
    at: &Path,
    base: &Path,
    tree: &mut Tree,
    elves: &mut Vec<(PathBuf, PathBuf, bool)>,
) -> Result<(), ProgramError> {
    let Some(children) = store.get_tuple(t, known::CHILDREN) else {
        return Ok(());
    };
    for (k, v) in store.entries(children) {
        let name = bytes_path(store.symbols.name(k));
        let path = at.join(&name);
        let Value::Tuple(node) = v else {
            return Err(ProgramError::Invalid(format!(
                "{}: a directory entry must be a tuple",
                path.display()
            )));
        };
        if let Some(contents) = store.get_tuple(*node, known::CONTENTS) {
            let host = store
                .get(contents, known::HOST)
                .and_then(Value::as_bytes)
                .ok_or_else(|| {
                    ProgramError::Invalid(format!("{}: contents needs (host:path)", path.display()))
                })?;
            let host = base.join(bytes_path(host));
            let meta = std::fs::metadata(&host).map_err(|e| {
                ProgramError::Invalid(format!("{}: {}: {e}", path.display(), host.display()))
            })?;
            if meta.is_dir() {
                let mut found = Vec::new();
                tree.add_dir(&host, &path, &mut |h, img, _| {
                    if h.extension().is_some_and(|e| e == "so")
                        || h.to_string_lossy().contains(".so.")
                    {
                        found.push((img.to_path_buf(), h.to_path_buf()));
                    }
                })?;
                elves.extend(
                    found
                        .into_iter()
                        .filter(|(_, h)| is_dynamic_elf(h))
                        .map(|(i, h)| (i, h, false)),
                );
            } else {
                if is_dynamic_elf(&host) {
                    elves.push((path.clone(), host.clone(), true));
                }
                tree.insert(&path, Node::File(host))?;
            }
        } else if let Some(target) = store
            .get(*node, known::LINKTARGET)
            .and_then(Value::as_bytes)
        {
            tree.insert(&path, Node::Link(bytes_path(target)))?;
        } else {
            tree.insert(&path, Node::Dir)?;
            manifest_tree(store, *node, &path, base, tree, elves)?;
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

/// Adds a closure's loader and libraries to `tree` and their cache entries
/// to `cache`.
fn add_closure(
    c: &Closure,
    root: &Path,
    overlay: &BTreeMap<PathBuf, PathBuf>,
    tree: &mut Tree,
    cache: &mut Vec<(Vec<u8>, Vec<u8>)>,
    libraries: &mut Vec<PathBuf>,
) -> Result<(), ProgramError> {
    for o in c.objects.iter().skip(1) {
        if !overlay.contains_key(&o.path) {
            tree.add_path(root, &o.path)?;
        }
        if !libraries.contains(&o.path) {
            libraries.push(o.path.clone());
        }
        if matches!(
            o.via,
            Via::Cache | Via::SystemDir | Via::LibraryPath | Via::Interp
        ) {
            let path = o.path.as_os_str().as_bytes().to_vec();
            for n in o.names.iter().chain(o.info.soname.iter()) {
                if !n.contains(&b'/') {
                    cache.push((n.clone(), path.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Describes the image of `spec`.
pub fn build(spec: &ProgramSpec) -> Result<ProgramImage, ProgramError> {
    let root = if spec.root.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        spec.root.clone()
    };
    let parsed = match &spec.manifest {
        Some((text, base)) => Some((
            manifest::parse(text)
                .map_err(|e| ProgramError::Invalid(format!("manifest: {}", e.render(text))))?,
            base.clone(),
        )),
        None => None,
    };
    let from_manifest = parsed.as_ref().and_then(|(m, _)| {
        m.store
            .get(m.root, known::PROGRAM)
            .and_then(Value::as_bytes)
            .map(bytes_path)
    });
    let program = match (&spec.program, &from_manifest) {
        (Some(p), Some(m)) if absolute(p) != *m => {
            return Err(ProgramError::Invalid(format!(
                "the manifest names program {} but {} was given",
                m.display(),
                p.display()
            )));
        }
        (Some(p), _) => absolute(p),
        (None, Some(m)) => m.clone(),
        (None, None) => return Err(ProgramError::Invalid("no program given".into())),
    };
    // What the manifest adds comes first: libraries are resolved as in the
    // image (the manifest's files over the host's), its shared objects
    // indexed in the image's cache as ldconfig would.
    let mut user = Tree::new();
    let mut elves = Vec::new();
    if let Some((m, base)) = &parsed {
        manifest_tree(
            &m.store,
            m.root,
            Path::new("/"),
            base,
            &mut user,
            &mut elves,
        )?;
    }
    let overlay: BTreeMap<PathBuf, PathBuf> = user
        .files()
        .map(|(i, h)| (i.to_path_buf(), h.to_path_buf()))
        .collect();
    let mut cache = Vec::new();
    for (image, host, _) in &elves {
        if let Some(soname) = std::fs::read(host)
            .ok()
            .and_then(|b| cairn_unix::elf::dynamic::dynamic_info(&b).ok())
            .and_then(|i| i.soname)
        {
            cache.push((soname, image.as_os_str().as_bytes().to_vec()));
        }
    }
    // The image's LD_LIBRARY_PATH, then the caller's host directories.
    let mut library_path: Vec<PathBuf> = Vec::new();
    let image_env = parsed
        .as_ref()
        .map(|(m, _)| cairn_tfs::Workload::from_root(&m.store, m.root).environment)
        .unwrap_or_default();
    let lib_env = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .chain(image_env)
        .find(|(k, _)| k == b"LD_LIBRARY_PATH");
    if let Some((_, v)) = lib_env {
        library_path.extend(
            v.split(|&b| b == b':')
                .filter(|d| !d.is_empty())
                .map(bytes_path),
        );
    }
    library_path.extend(spec.library_path.iter().cloned());
    let resolver = Resolver::new(&root, library_path).with_overlay(overlay.clone(), &cache);
    let mut tree = Tree::new();
    let mut warnings = Vec::new();
    let mut libraries = Vec::new();
    if !overlay.contains_key(&program) {
        tree.add_path(&root, &program)?;
    }
    let closure = resolver.closure(&program)?;
    add_closure(
        &closure,
        &root,
        &overlay,
        &mut tree,
        &mut cache,
        &mut libraries,
    )?;
    for (image, host, named) in elves {
        if image == program {
            continue;
        }
        match resolver.closure_of(&image, &host) {
            Ok(c) => add_closure(&c, &root, &overlay, &mut tree, &mut cache, &mut libraries)?,
            Err(e) if named => return Err(e.into()),
            Err(e) => warnings.push(format!("{e} (the library will not load in the image)")),
        }
    }

    for d in ["/tmp", "/root"] {
        tree.insert(Path::new(d), Node::Dir)?;
    }
    for (p, text) in [
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
        ("/etc/hosts", HOSTS),
        ("/etc/nsswitch.conf", NSSWITCH),
    ] {
        tree.insert(Path::new(p), Node::Data(text.as_bytes().to_vec()))?;
    }
    tree.insert(
        Path::new("/etc/ld.so.cache"),
        Node::Data(ldcache::build(&cache)),
    )?;
    for (path, node) in user.nodes {
        tree.insert(&path, node)?;
    }

    // The workload.
    let mut arguments = vec![program.as_os_str().as_bytes().to_vec()];
    let mut environment: Vec<(Vec<u8>, Vec<u8>)> = DEFAULT_ENV
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mut extra = None;
    if let Some((m, _)) = &parsed {
        let w = cairn_tfs::Workload::from_root(&m.store, m.root);
        if spec.args.is_empty() && !w.arguments.is_empty() {
            arguments = w.arguments;
        }
        for (k, v) in w.environment {
            set_env(&mut environment, k, v);
        }
        extra = Some((m.store.clone(), m.root));
    }
    if !spec.args.is_empty() {
        arguments.extend(spec.args.iter().map(|a| a.as_bytes().to_vec()));
    }
    for (k, v) in &spec.env {
        set_env(
            &mut environment,
            k.as_bytes().to_vec(),
            v.as_bytes().to_vec(),
        );
    }
    Ok(ProgramImage {
        tree,
        program,
        arguments,
        environment,
        libraries,
        warnings,
        extra,
    })
}

fn set_env(env: &mut Vec<(Vec<u8>, Vec<u8>)>, k: Vec<u8>, v: Vec<u8>) {
    match env.iter_mut().find(|e| e.0 == k) {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    }
}

impl ProgramImage {
    /// The image as a manifest root (the tree, `program`, `arguments`,
    /// `environment` and the manifest's other root attributes); generated
    /// files are written under `staging`.
    pub fn to_store(&self, staging: &Path) -> Result<(Store, NodeId), ProgramError> {
        let mut store = Store::new();
        let root = self.tree.to_store(&mut store, staging)?;
        if let Some((m, mroot)) = &self.extra {
            let entries: Vec<_> = m.entries(*mroot).map(|(k, v)| (k, v.clone())).collect();
            for (k, v) in entries {
                if [
                    known::CHILDREN,
                    known::PROGRAM,
                    known::ARGUMENTS,
                    known::ENVIRONMENT,
                ]
                .contains(&k)
                {
                    continue;
                }
                let sym = store.sym(m.symbols.name(k));
                let v = store.import(m, &v);
                store.set(root, sym, Some(v));
            }
        }
        store.set(
            root,
            known::PROGRAM,
            Some(Value::Str(self.program.as_os_str().as_bytes().to_vec())),
        );
        let args = store.new_vector();
        for a in &self.arguments {
            store.vector_push(args, Some(Value::Str(a.clone())));
        }
        store.set(root, known::ARGUMENTS, Some(Value::Vector(args)));
        let env = store.new_tuple();
        for (k, v) in &self.environment {
            let sym = store.sym(k);
            store.set(env, sym, Some(Value::Str(v.clone())));
        }
        store.set(root, known::ENVIRONMENT, Some(Value::Tuple(env)));
        Ok((store, root))
    }

    /// Bytes of host files the image copies.
    pub fn file_bytes(&self) -> u64 {
        self.tree
            .files()
            .filter_map(|(_, h)| std::fs::metadata(h).ok())
            .map(|m| m.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str) -> ProgramSpec {
        ProgramSpec {
            program: Some(program.into()),
            root: "/".into(),
            ..ProgramSpec::default()
        }
    }

    #[test]
    fn ls_image_has_loader_libraries_cache_and_etc() {
        if !Path::new("/bin/ls").exists() {
            eprintln!("SKIPPED: no /bin/ls");
            return;
        }
        let mut s = spec("/bin/ls");
        s.args = vec!["-l".into(), "/".into()];
        let img = build(&s).unwrap();
        let n = &img.tree.nodes;
        // Debian's merged /usr: /bin is a link, kept.
        if std::fs::symlink_metadata("/bin").is_ok_and(|m| m.file_type().is_symlink()) {
            assert!(matches!(n[Path::new("/bin")], Node::Link(_)));
        }
        assert!(
            img.tree
                .files()
                .any(|(p, _)| p.to_string_lossy().contains("ld-linux-x86-64.so.2"))
        );
        assert!(img.libraries.iter().any(|l| l.ends_with("libc.so.6")));
        for f in [
            "/etc/passwd",
            "/etc/hosts",
            "/etc/nsswitch.conf",
            "/etc/group",
        ] {
            assert!(matches!(n[Path::new(f)], Node::Data(_)), "{f}");
        }
        let Node::Data(cache) = &n[Path::new("/etc/ld.so.cache")] else {
            panic!("no cache");
        };
        let entries = ldcache::parse(cache).unwrap();
        let libc = ldcache::lookup(&entries, b"libc.so.6").unwrap();
        assert!(img.libraries.contains(&bytes_path(libc)));
        assert_eq!(
            img.arguments,
            [b"/bin/ls".to_vec(), b"-l".to_vec(), b"/".to_vec()]
        );
        assert!(img.environment.iter().any(|(k, _)| k == b"PATH"));
        // Every library the image lists resolves in the tree to a file.
        let dir = std::env::temp_dir().join(format!("cairn-program-ls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        img.tree.lay_out(&dir).unwrap();
        for l in &img.libraries {
            let p = dir.join(l.strip_prefix("/").unwrap());
            // Absolute links inside point at the host's root: read them
            // through the host instead.
            assert!(
                std::fs::symlink_metadata(&p).is_ok(),
                "{} missing from the laid-out tree",
                l.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn manifest_adds_files_dirs_environment_and_elf_libraries() {
        let dir = std::env::temp_dir().join(format!("cairn-program-m-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
        std::fs::write(dir.join("tree/a.txt"), b"a").unwrap();
        std::fs::write(dir.join("tree/sub/b.txt"), b"b").unwrap();
        std::fs::write(dir.join("input.dat"), b"data").unwrap();
        if !Path::new("/bin/ls").exists() || !Path::new("/usr/bin/gzip").exists() {
            eprintln!("SKIPPED: no /bin/ls or /usr/bin/gzip");
            return;
        }
        let text = b"(children:(data:(children:(input.dat:(contents:(host:input.dat)))) \
              srv:(contents:(host:tree)) \
              usr:(children:(bin:(children:(gzip:(contents:(host:/usr/bin/gzip)))))) \
              latest:(linktarget:data/input.dat)) \
              arguments:[ls -a] environment:(LANG:C.UTF-8 PATH:/x) imagesize:64M)";
        let s = ProgramSpec {
            manifest: Some((text.to_vec(), dir.clone())),
            ..spec("/bin/ls")
        };
        let img = build(&s).unwrap();
        let n = &img.tree.nodes;
        assert_eq!(
            n[Path::new("/data/input.dat")],
            Node::File(dir.join("input.dat"))
        );
        assert_eq!(
            n[Path::new("/srv/sub/b.txt")],
            Node::File(dir.join("tree/sub/b.txt"))
        );
        assert_eq!(n[Path::new("/latest")], Node::Link("data/input.dat".into()));
        assert_eq!(img.arguments, [b"ls".to_vec(), b"-a".to_vec()]);
        let env: std::collections::BTreeMap<_, _> = img.environment.iter().cloned().collect();
        assert_eq!(env[&b"PATH".to_vec()], b"/x");
        assert_eq!(env[&b"LANG".to_vec()], b"C.UTF-8");
        assert_eq!(env[&b"HOME".to_vec()], b"/root");
        // The store carries the other root attributes and the workload.
        let (store, root) = img.to_store(&dir.join("staging")).unwrap();
        assert!(store.get(root, known::IMAGESIZE).is_some());
        let w = cairn_tfs::Workload::from_root(&store, root);
        assert_eq!(w.program.as_deref(), Some(&b"/bin/ls"[..]));
        // A missing host file is an error naming it.
        let bad = ProgramSpec {
            manifest: Some((
                b"(children:(x:(contents:(host:nope))))".to_vec(),
                dir.clone(),
            )),
            ..spec("/bin/ls")
        };
        assert!(build(&bad).unwrap_err().to_string().contains("nope"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
