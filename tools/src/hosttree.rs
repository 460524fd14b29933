//! The tree of an image made from host files: directories, files (named by
//! their host path) and symbolic links, keyed by their absolute path in the
//! image. [`Tree::add_path`] copies a host path *as the host resolves it*:
//! every symbolic link met on the way (`/lib -> usr/lib`,
//! `libz.so.1 -> libz.so.1.2.13`) is kept as a link in the image and
//! followed, so the image answers the same path the same way.
//!
//! Sinks: [`Tree::to_store`] (a manifest tree for mkfs) and
//! [`Tree::lay_out`] (a host directory, for the Linux guest's ext4).
//!
//! Host only; no locks.

use cairn_tfs::store::{NodeId, Store, Value};
use cairn_tfs::symbol::known;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed in one path before giving up (Linux's limit).
const MAX_HOPS: usize = 40;

/// One entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file whose bytes are the host file at this path.
    File(PathBuf),
    /// A symbolic link with this target.
    Link(PathBuf),
    /// A file whose bytes are given (generated files such as `/etc/passwd`).
    Data(Vec<u8>),
}

/// Why a host path could not be added.
#[derive(Debug)]
pub struct TreeError(pub String);

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TreeError {}

/// An image tree: absolute image path → node. The root `/` is implicit.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// The entries.
    pub nodes: BTreeMap<PathBuf, Node>,
}

fn normal_parts(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect()
}

fn image_path(parts: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in parts {
        p.push(c);
    }
    p
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Records `node` at `path` and makes its parents directories (a parent
    /// already recorded as something else is an error).
    pub fn insert(&mut self, path: &Path, node: Node) -> Result<(), TreeError> {
        let parts = normal_parts(path);
        if parts.is_empty() {
            return Err(TreeError("the root cannot be replaced".into()));
        }
        for i in 1..parts.len() {
            let dir = image_path(&parts[..i]);
            match self.nodes.get(&dir) {
                None => {
                    self.nodes.insert(dir, Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(_) => {
                    return Err(TreeError(format!(
                        "{}: {} is not a directory in the image",
                        path.display(),
                        dir.display()
                    )));
                }
            }
        }
        let at = image_path(&parts);
        match (self.nodes.get(&at), &node) {
            (Some(Node::Dir), Node::Dir) => Ok(()),
            (Some(Node::Dir), _) => Err(TreeError(format!(
                "{}: already a directory in the image",
                at.display()
            ))),
            _ => {
                self.nodes.insert(at, node);
                Ok(())
            }
        }
    }

    /// Adds host path `root`+`path` (absolute, in the image) the way the
    /// host resolves it: links met on the way are recorded and followed,
    /// directories recorded (not their contents), the file at the end
    /// recorded. Returns the host path of what it resolved to.
    pub fn add_path(&mut self, root: &Path, path: &Path) -> Result<PathBuf, TreeError> {
        let mut pending: Vec<OsString> = normal_parts(path);
        pending.reverse();
        let mut real: Vec<OsString> = Vec::new();
        let mut hops = 0;
        let err = |what: &str| TreeError(format!("{}: {what}", path.display()));
        while let Some(c) = pending.pop() {
            if c == ".." {
                real.pop();
                continue;
            }
            if c == "." {
                continue;
            }
            real.push(c);
            let img = image_path(&real);
            let host = root.join(img.strip_prefix("/").unwrap_or(&img));
            let meta = fs::symlink_metadata(&host)
                .map_err(|e| err(&format!("{}: {e}", host.display())))?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(err("too many levels of symbolic links"));
                }
                let target =
                    fs::read_link(&host).map_err(|e| err(&format!("{}: {e}", host.display())))?;
                self.insert(&img, Node::Link(target.clone()))?;
                real.pop();
                if target.is_absolute() {
                    real.clear();
                }
                let mut more = normal_parts_keep_dots(&target);
                more.reverse();
                pending.extend(more);
            } else if meta.is_dir() {
                self.insert(&img, Node::Dir)?;
            } else if meta.is_file() {
                if !pending.is_empty() {
                    return Err(err(&format!("{} is not a directory", img.display())));
                }
                self.insert(&img, Node::File(host.clone()))?;
                return Ok(host);
            } else {
                return Err(err(&format!(
                    "{} is neither a file, a directory nor a link",
                    host.display()
                )));
            }
        }
        let img = image_path(&real);
        Ok(root.join(img.strip_prefix("/").unwrap_or(&img)))
    }

    /// Adds the host directory `host` (recursively: files, directories and
    /// links as they are, links not followed) at image path `at`; calls
    /// `file` with each file's host path and size (progress, ELF checks).
    pub fn add_dir(
        &mut self,
        host: &Path,
        at: &Path,
        file: &mut dyn FnMut(&Path, &Path, u64),
    ) -> Result<(), TreeError> {
        self.insert(at, Node::Dir)?;
        let mut entries: Vec<_> = fs::read_dir(host)
            .map_err(|e| TreeError(format!("{}: {e}", host.display())))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let img = at.join(e.file_name());
            let meta = fs::symlink_metadata(&p)
                .map_err(|err| TreeError(format!("{}: {err}", p.display())))?;
            if meta.file_type().is_symlink() {
                let t = fs::read_link(&p)
                    .map_err(|err| TreeError(format!("{}: {err}", p.display())))?;
                self.insert(&img, Node::Link(t))?;
            } else if meta.is_dir() {
                self.add_dir(&p, &img, file)?;
            } else if meta.is_file() {
                file(&p, &img, meta.len());
                self.insert(&img, Node::File(p))?;
            }
        }
        Ok(())
    }

    /// The files of the tree: (image path, host path).
    pub fn files(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.nodes.iter().filter_map(|(k, v)| match v {
            Node::File(h) => Some((k.as_path(), h.as_path())),
            _ => None,
        })
    }

    /// The tree as a manifest root's `children`: directories as
    /// `(children:(...))`, files as `(contents:(host:PATH))` (generated
    /// files are written under `staging` first), links as
    /// `(linktarget:TARGET)`. Returns the root tuple.
    pub fn to_store(&self, store: &mut Store, staging: &Path) -> Result<NodeId, TreeError> {
        let staging = &if staging.is_absolute() {
            staging.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(staging)
        };
        let root = store.new_tuple();
        let children = store.new_tuple();
        store.set(root, known::CHILDREN, Some(Value::Tuple(children)));
        let mut dirs: BTreeMap<PathBuf, NodeId> = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), children);
        let mut generated = 0;
        // BTreeMap order puts a directory before everything under it.
        for (path, node) in &self.nodes {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let Some(&pc) = dirs.get(parent) else {
                return Err(TreeError(format!(
                    "{}: no parent directory",
                    path.display()
                )));
            };
            let name = path.file_name().unwrap_or_default();
            let t = store.new_tuple();
            match node {
                Node::Dir => {
                    let c = store.new_tuple();
                    store.set(t, known::CHILDREN, Some(Value::Tuple(c)));
                    dirs.insert(path.clone(), c);
                }
                Node::File(host) => set_host(store, t, host),
                Node::Data(bytes) => {
                    fs::create_dir_all(staging)
                        .map_err(|e| TreeError(format!("{}: {e}", staging.display())))?;
                    generated += 1;
                    let f = staging.join(format!("{generated}-{}", name.to_string_lossy()));
                    fs::write(&f, bytes).map_err(|e| TreeError(format!("{}: {e}", f.display())))?;
                    set_host(store, t, &f);
                }
                Node::Link(target) => {
                    store.set(
                        t,
                        known::LINKTARGET,
                        Some(Value::Str(target.as_os_str().as_bytes().to_vec())),
                    );
                }
            }
            let sym = store.sym(name.as_bytes());
            store.set(pc, sym, Some(Value::Tuple(t)));
        }
        Ok(root)
    }

    /// Writes the tree into host directory `dir` (created; files copied,
    /// links made as they are).
    pub fn lay_out(&self, dir: &Path) -> Result<(), TreeError> {
        fn io(p: &Path) -> impl Fn(std::io::Error) -> TreeError + '_ {
            move |e| TreeError(format!("{}: {e}", p.display()))
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        for (path, node) in &self.nodes {
            let to = dir.join(path.strip_prefix("/").unwrap_or(path));
            match node {
                Node::Dir => fs::create_dir_all(&to).map_err(io(&to))?,
                Node::File(host) => {
                    fs::copy(host, &to).map_err(io(host))?;
                }
                Node::Data(bytes) => fs::write(&to, bytes).map_err(io(&to))?,
                Node::Link(target) => std::os::unix::fs::symlink(target, &to).map_err(io(&to))?,
            }
        }
        Ok(())
    }
}

fn set_host(store: &mut Store, t: NodeId, host: &Path) {
    let c = store.new_tuple();
    store.set(
        c,
        known::HOST,
        Some(Value::Str(host.as_os_str().as_bytes().to_vec())),
    );
    store.set(t, known::CONTENTS, Some(Value::Tuple(c)));
}

/// A link target's components, `.` and `..` kept (resolved by the walk).
fn normal_parts_keep_dots(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsStr::new("..").to_os_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cairn-hosttree-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn links_on_the_way_are_kept_and_followed() {
        // A merged-/usr layout: /lib -> usr/lib, a versioned library behind
        // a soname link, and an absolute link to the loader.
        let r = scratch("links");
        fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(r.join("usr/lib64")).unwrap();
        fs::write(r.join("usr/lib/x86_64-linux-gnu/libz.so.1.2.13"), b"z").unwrap();
        symlink(
            "libz.so.1.2.13",
            r.join("usr/lib/x86_64-linux-gnu/libz.so.1"),
        )
        .unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("usr/lib64", r.join("lib64")).unwrap();
        fs::write(r.join("usr/lib/x86_64-linux-gnu/ld.so"), b"ld").unwrap();
        symlink(
            "/lib/x86_64-linux-gnu/ld.so",
            r.join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        let mut t = Tree::new();
        let got = t
            .add_path(&r, Path::new("/lib/x86_64-linux-gnu/libz.so.1"))
            .unwrap();
        assert_eq!(got, r.join("usr/lib/x86_64-linux-gnu/libz.so.1.2.13"));
        assert_eq!(t.nodes[Path::new("/lib")], Node::Link("usr/lib".into()));
        assert_eq!(
            t.nodes[Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1")],
            Node::Link("libz.so.1.2.13".into())
        );
        assert_eq!(
            t.nodes[Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13")],
            Node::File(got.clone())
        );
        assert_eq!(t.nodes[Path::new("/usr/lib")], Node::Dir);
        let ld = t
            .add_path(&r, Path::new("/lib64/ld-linux-x86-64.so.2"))
            .unwrap();
        assert_eq!(ld, r.join("usr/lib/x86_64-linux-gnu/ld.so"));
        assert_eq!(t.nodes[Path::new("/lib64")], Node::Link("usr/lib64".into()));
        // `..` in a relative target resolves against the link's real
        // directory.
        symlink("../lib/x86_64-linux-gnu/ld.so", r.join("usr/lib64/rel")).unwrap();
        assert_eq!(t.add_path(&r, Path::new("/lib64/rel")).unwrap(), ld);
        // Missing, a file used as a directory, a loop.
        assert!(t.add_path(&r, Path::new("/lib/nope.so")).is_err());
        assert!(
            t.add_path(&r, Path::new("/lib/x86_64-linux-gnu/ld.so/x"))
                .unwrap_err()
                .0
                .contains("not a directory")
        );
        symlink("loop", r.join("loop")).unwrap();
        assert!(
            t.add_path(&r, Path::new("/loop"))
                .unwrap_err()
                .0
                .contains("levels")
        );

        // Laid out on the host, the image resolves the same paths.
        let out = r.join("out");
        t.lay_out(&out).unwrap();
        assert_eq!(
            fs::read_link(out.join("usr/lib64/ld-linux-x86-64.so.2")).unwrap(),
            Path::new("/lib/x86_64-linux-gnu/ld.so"),
            "links are copied as they are"
        );
        assert_eq!(
            fs::read(out.join("lib/x86_64-linux-gnu/libz.so.1")).unwrap(),
            b"z"
        );
        let _ = fs::remove_dir_all(&r);
    }

    #[test]
    fn directories_and_store() {
        let r = scratch("dirs");
        fs::create_dir_all(r.join("py/enc")).unwrap();
        fs::write(r.join("py/os.py"), b"os").unwrap();
        fs::write(r.join("py/enc/utf_8.py"), b"u").unwrap();
        symlink("os.py", r.join("py/alias.py")).unwrap();
        let mut t = Tree::new();
        let mut seen = Vec::new();
        t.add_dir(&r.join("py"), Path::new("/usr/lib/py"), &mut |h, _, n| {
            seen.push((h.to_path_buf(), n))
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        t.insert(
            Path::new("/etc/hosts"),
            Node::Data(b"127.0.0.1 localhost\n".to_vec()),
        )
        .unwrap();
        // A file cannot become a parent directory.
        assert!(t.insert(Path::new("/etc/hosts/x"), Node::Dir).is_err());
        let mut store = Store::new();
        let root = t.to_store(&mut store, &r.join("staging")).unwrap();
        let children = store.get_tuple(root, known::CHILDREN).unwrap();
        let etc = store.symbols.find(b"etc").unwrap();
        let Some(Value::Tuple(etc)) = store.get(children, etc) else {
            panic!("no /etc")
        };
        assert!(store.get_tuple(*etc, known::CHILDREN).is_some());
        let staged: Vec<_> = fs::read_dir(r.join("staging")).unwrap().collect();
        assert_eq!(staged.len(), 1);
        let _ = fs::remove_dir_all(&r);
    }
}
