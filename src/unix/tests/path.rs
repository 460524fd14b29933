//! Path walking over an in-memory tree: `.`/`..`, symlinks (relative,
//! absolute, chains, loops), trailing slashes, limits.

use std::collections::HashMap;

use cairn_unix::Errno;
use cairn_unix::path::*;

#[derive(Clone, Debug)]
enum Node {
    Dir(HashMap<Vec<u8>, usize>, usize),
    File,
    Link(Vec<u8>),
}

struct Fs {
    nodes: Vec<Node>,
}

impl Fs {
    fn new() -> Self {
        Fs {
            nodes: vec![Node::Dir(HashMap::new(), 0)],
        }
    }
    fn add(&mut self, parent: usize, name: &str, n: Node) -> usize {
        let id = self.nodes.len();
        let n = match n {
            Node::Dir(m, _) => Node::Dir(m, parent),
            n => n,
        };
        self.nodes.push(n);
        if let Node::Dir(m, _) = &mut self.nodes[parent] {
            m.insert(name.as_bytes().to_vec(), id);
        }
        id
    }
    fn dir(&mut self, p: usize, name: &str) -> usize {
        self.add(p, name, Node::Dir(HashMap::new(), 0))
    }
    fn link(&mut self, p: usize, name: &str, to: &str) -> usize {
        self.add(p, name, Node::Link(to.as_bytes().to_vec()))
    }
}

impl Namespace for Fs {
    type Node = usize;
    fn root(&self) -> usize {
        0
    }
    fn parent(&mut self, d: &usize) -> Result<usize, Errno> {
        match &self.nodes[*d] {
            Node::Dir(_, p) => Ok(*p),
            _ => Err(Errno::ENOTDIR),
        }
    }
    fn lookup(&mut self, d: &usize, name: &[u8]) -> Result<Option<(usize, NodeKind)>, Errno> {
        let Node::Dir(m, _) = &self.nodes[*d] else {
            return Err(Errno::ENOTDIR);
        };
        Ok(m.get(name).map(|&id| {
            let k = match self.nodes[id] {
                Node::Dir(..) => NodeKind::Directory,
                Node::File => NodeKind::Other,
                Node::Link(_) => NodeKind::Symlink,
            };
            (id, k)
        }))
    }
    fn read_link(&mut self, l: &usize) -> Result<Vec<u8>, Errno> {
        match &self.nodes[*l] {
            Node::Link(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// / ── a/ ── b/ ── f
///      │     ├── up -> ..
///      │     └── self -> ../b/.
///      ├── abs -> /a/b
///      ├── lf -> b/f
///      ├── dangling -> nowhere
///      ├── loop1 -> loop2, loop2 -> loop1
///      └── rootlink -> /
fn tree() -> (Fs, usize, usize, usize) {
    let mut fs = Fs::new();
    let a = fs.dir(0, "a");
    let b = fs.dir(a, "b");
    let f = fs.add(b, "f", Node::File);
    fs.link(b, "up", "..");
    fs.link(b, "self", "../b/.");
    fs.link(a, "abs", "/a/b");
    fs.link(a, "lf", "b/f");
    fs.link(a, "dangling", "nowhere");
    fs.link(a, "loop1", "loop2");
    fs.link(a, "loop2", "loop1");
    fs.link(a, "rootlink", "/");
    (fs, a, b, f)
}

fn w(fs: &mut Fs, cwd: usize, cwd_path: &str, p: &str, follow: bool) -> Result<Walk<usize>, Errno> {
    walk(fs, &cwd, cwd_path.as_bytes(), p.as_bytes(), follow)
}

#[test]
fn plain_and_dots() {
    let (mut fs, a, b, f) = tree();
    let r = w(&mut fs, 0, "/", "/a/b/f", true).unwrap();
    assert_eq!(
        (r.parent, r.target, r.last.clone()),
        (b, Some((f, NodeKind::Other)), Last::Name(b"f".to_vec()))
    );
    assert_eq!(r.canonical, b"/a/b/f");
    let r = w(&mut fs, b, "/a/b", "../../a/./b//f", true).unwrap();
    assert_eq!(r.target, Some((f, NodeKind::Other)));
    assert_eq!(r.canonical, b"/a/b/f");
    let r = w(&mut fs, a, "/a", "..", true).unwrap();
    assert_eq!(
        (r.target, r.last),
        (Some((0, NodeKind::Directory)), Last::DotDot)
    );
    assert_eq!(r.canonical, b"/");
    let r = w(&mut fs, 0, "/", "/../..", true).unwrap();
    assert_eq!(r.target, Some((0, NodeKind::Directory)));
    let r = w(&mut fs, a, "/a", ".", true).unwrap();
    assert_eq!(
        (r.target, r.last, r.canonical),
        (Some((a, NodeKind::Directory)), Last::Dot, b"/a".to_vec())
    );
    let r = w(&mut fs, a, "/a", "///", true).unwrap();
    assert_eq!(
        (r.target, r.last),
        (Some((0, NodeKind::Directory)), Last::Root)
    );
}

#[test]
fn missing_and_not_dir() {
    let (mut fs, a, b, _) = tree();
    let r = w(&mut fs, 0, "/", "/a/new", true).unwrap();
    assert_eq!(
        (r.parent, r.target, r.last),
        (a, None, Last::Name(b"new".to_vec()))
    );
    assert_eq!(r.canonical, b"/a/new");
    assert!(!r.trailing_slash);
    let r = w(&mut fs, 0, "/", "/a/b/newdir/", true).unwrap();
    assert_eq!((r.parent, r.target, r.trailing_slash), (b, None, true));
    assert_eq!(
        w(&mut fs, 0, "/", "/a/nope/x", true).unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(
        w(&mut fs, 0, "/", "/a/b/f/x", true).unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(
        w(&mut fs, 0, "/", "/a/b/f/", true).unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(
        w(&mut fs, 0, "/", "/a/b/f/.", true).unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(w(&mut fs, 0, "/", "", true).unwrap_err(), Errno::ENOENT);
}

#[test]
fn symlinks() {
    let (mut fs, a, b, f) = tree();
    // Followed in the middle always.
    let r = w(&mut fs, 0, "/", "/a/abs/f", false).unwrap();
    assert_eq!(
        (r.parent, r.target, r.links),
        (b, Some((f, NodeKind::Other)), 1)
    );
    assert_eq!(r.canonical, b"/a/b/f");
    // Last one only when asked.
    let r = w(&mut fs, 0, "/", "/a/lf", false).unwrap();
    assert_eq!((r.parent, r.target.unwrap().1), (a, NodeKind::Symlink));
    let r = w(&mut fs, 0, "/", "/a/lf", true).unwrap();
    assert_eq!(
        (r.parent, r.target, r.canonical),
        (b, Some((f, NodeKind::Other)), b"/a/b/f".to_vec())
    );
    // Trailing slash forces following, and then requires a directory.
    let r = w(&mut fs, 0, "/", "/a/abs/", false).unwrap();
    assert_eq!(r.target, Some((b, NodeKind::Directory)));
    assert_eq!(
        w(&mut fs, 0, "/", "/a/lf/", false).unwrap_err(),
        Errno::ENOTDIR
    );
    // Relative ".." inside a link is relative to the link's directory.
    let r = w(&mut fs, 0, "/", "/a/b/up/b/f", true).unwrap();
    assert_eq!(
        (r.target, r.canonical),
        (Some((f, NodeKind::Other)), b"/a/b/f".to_vec())
    );
    let r = w(&mut fs, 0, "/", "/a/b/self", true).unwrap();
    assert_eq!(
        (r.target, r.last),
        (Some((b, NodeKind::Directory)), Last::Dot)
    );
    let r = w(&mut fs, 0, "/", "/a/rootlink", true).unwrap();
    assert_eq!(
        (r.target, r.last, r.canonical),
        (Some((0, NodeKind::Directory)), Last::Root, b"/".to_vec())
    );
    // A dangling last link: the missing target's parent and name (O_CREAT
    // through a dangling link creates the target).
    let r = w(&mut fs, 0, "/", "/a/dangling", true).unwrap();
    assert_eq!(
        (r.parent, r.target, r.last),
        (a, None, Last::Name(b"nowhere".to_vec()))
    );
    assert_eq!(
        w(&mut fs, 0, "/", "/a/dangling/x", true).unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(
        w(&mut fs, 0, "/", "/a/loop1", true).unwrap_err(),
        Errno::ELOOP
    );
    // Not following a loop's last link is fine.
    assert!(w(&mut fs, 0, "/", "/a/loop1", false).is_ok());
}

#[test]
fn forty_links_ok_forty_one_eloop() {
    let mut fs = Fs::new();
    let d = fs.dir(0, "d");
    fs.add(d, "end", Node::File);
    // l0 -> l1 -> ... -> l{n-1} -> end
    let chain = |fs: &mut Fs, prefix: &str, n: usize| {
        for i in 0..n {
            let to = if i + 1 == n {
                "end".to_string()
            } else {
                format!("{prefix}{}", i + 1)
            };
            fs.link(d, &format!("{prefix}{i}"), &to);
        }
    };
    chain(&mut fs, "a", 40);
    chain(&mut fs, "b", 41);
    let r = w(&mut fs, d, "/d", "a0", true).unwrap();
    assert_eq!((r.links, r.target.unwrap().1), (40, NodeKind::Other));
    assert_eq!(w(&mut fs, d, "/d", "b0", true).unwrap_err(), Errno::ELOOP);
}

#[test]
fn length_limits() {
    let (mut fs, ..) = tree();
    let long_name = "n".repeat(NAME_MAX + 1);
    assert_eq!(
        w(&mut fs, 0, "/", &format!("/a/{long_name}"), true).unwrap_err(),
        Errno::ENAMETOOLONG
    );
    let ok_name = "n".repeat(NAME_MAX);
    assert!(w(&mut fs, 0, "/", &format!("/a/{ok_name}"), true).is_ok());
    let long_path = "/a".repeat(PATH_MAX / 2);
    assert_eq!(
        w(&mut fs, 0, "/", &long_path, true).unwrap_err(),
        Errno::ENAMETOOLONG
    );
    assert_eq!(
        check_path(&vec![b'a'; PATH_MAX - 1]),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(check_path(&[b'/'; PATH_MAX - 1]), Ok(()));
    assert!(has_trailing_slash(b"a/"));
    assert!(!has_trailing_slash(b"/"));
    assert_eq!(
        components(b"//a///b/").collect::<Vec<_>>(),
        vec![&b"a"[..], &b"b"[..]]
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn comp() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("f"),
            Just("up"),
            Just("self"),
            Just("abs"),
            Just("lf"),
            Just("dangling"),
            Just("loop1"),
            Just("rootlink"),
            Just("."),
            Just(".."),
            Just("x"),
        ]
    }

    proptest! {
        /// Any path over the test tree: the walk returns (never panics),
        /// and its canonical path, walked from the root without following
        /// the last link, names the same node (or the same missing name).
        #[test]
        fn canonical_path_names_the_same_node(
            comps in proptest::collection::vec(comp(), 0..8),
            absolute in any::<bool>(),
            trailing in any::<bool>(),
            follow in any::<bool>(),
            start in 0usize..3,
        ) {
            let (mut fs, a, b, _) = tree();
            let (cwd, cwd_path) = [(0, "/"), (a, "/a"), (b, "/a/b")][start];
            let mut p = comps.join("/");
            if absolute || p.is_empty() {
                p.insert(0, '/');
            }
            if trailing {
                p.push('/');
            }
            let Ok(r) = w(&mut fs, cwd, cwd_path, &p, follow) else { return Ok(()) };
            let canon = String::from_utf8(r.canonical.clone()).unwrap();
            let again = w(&mut fs, 0, "/", &canon, false).unwrap();
            prop_assert_eq!(again.target.map(|t| t.0), r.target.map(|t| t.0), "{} -> {}", p, canon);
            if r.target.is_none() {
                prop_assert_eq!(again.parent, r.parent);
                prop_assert_eq!(again.last, r.last);
            }
            if r.trailing_slash && r.target.is_some() {
                prop_assert_eq!(r.target.unwrap().1, NodeKind::Directory);
            }
        }
    }
}
