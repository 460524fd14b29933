//! A dynamically linked program's dependencies, found on the host the way
//! glibc's dynamic loader (`ld.so`) finds them at run time, so that an
//! image holds exactly what the program will load.
//!
//! For each `DT_NEEDED` name of an object, breadth first from the program
//! (the loader's own order), the first match of:
//!
//! 1. a name with a `/`: that path;
//! 2. unless the object has `DT_RUNPATH`: the `DT_RPATH` of the object,
//!    then of the object that loaded it, and so on up to the program (an
//!    object's `DT_RPATH` is ignored when it also has `DT_RUNPATH`);
//! 3. `LD_LIBRARY_PATH` ([`Resolver::library_path`]);
//! 4. the object's `DT_RUNPATH`;
//! 5. unless the object is linked `-z nodeflib`: the host's
//!    `/etc/ld.so.cache`, then the system directories ([`SYSTEM_DIRS`]).
//!
//! `$ORIGIN` (the object's directory; the program's real directory), `$LIB`
//! and `$PLATFORM` are expanded in search paths; a path element with any
//! other `$` token is skipped, as the loader does. A name already loaded
//! (by the name it was loaded for, its path or its `DT_SONAME`) is not
//! loaded again, nor is the same file found under another name. A
//! candidate that is not a 64-bit x86-64 ELF file is passed over. The
//! program's `PT_INTERP` loader counts as loaded (it answers to its
//! soname, `ld-linux-x86-64.so.2`).
//!
//! Host only; no locks. Everything is read relative to a root directory
//! (`/` for the host itself), so tests can build a tree of their own.

use crate::ldcache;
use cairn_unix::elf::dynamic::{DynamicInfo, dynamic_info};
use cairn_unix::elf::{EHDR_SIZE, ElfError, headers_len};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The loader's system directories on Debian x86-64 (`ld.so --help`), then
/// the upstream x86-64 ones (other distributions).
pub const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
];
/// What `$LIB` expands to (Debian's multiarch library directory).
pub const DST_LIB: &str = "lib/x86_64-linux-gnu";
/// What `$PLATFORM` expands to.
pub const DST_PLATFORM: &str = "x86_64";

/// How a library was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The program itself.
    Program,
    /// The program's `PT_INTERP`.
    Interp,
    /// A `DT_NEEDED` name with a `/`.
    Path,
    /// A `DT_RPATH`.
    Rpath,
    /// `LD_LIBRARY_PATH`.
    LibraryPath,
    /// A `DT_RUNPATH`.
    Runpath,
    /// The host's `/etc/ld.so.cache`.
    Cache,
    /// A system directory.
    SystemDir,
}

/// One object of the closure.
#[derive(Clone, Debug)]
pub struct Object {
    /// Its absolute path as the loader opens it (the image path).
    pub path: PathBuf,
    /// The names it answers to (`DT_NEEDED` names it was loaded for, its
    /// soname).
    pub names: Vec<Vec<u8>>,
    /// Its dynamic section.
    pub info: DynamicInfo,
    /// How it was found.
    pub via: Via,
    /// The object that first needed it.
    pub needed_by: Option<usize>,
    /// The real host file (root prefix included), to spot one file found
    /// under two names.
    real: PathBuf,
}

impl Object {
    /// Whether the loader would say `name` is this object.
    fn answers_to(&self, name: &[u8]) -> bool {
        self.path.as_os_str().as_bytes() == name
            || self.names.iter().any(|n| n == name)
            || self.info.soname.as_deref() == Some(name)
    }
}

/// A program and everything it loads: `objects[0]` is the program,
/// followed by its loader (if any), then the libraries in load order.
#[derive(Clone, Debug)]
pub struct Closure {
    /// The objects.
    pub objects: Vec<Object>,
}

impl Closure {
    /// The program's loader, if it has one.
    pub fn interp(&self) -> Option<&Object> {
        self.objects.iter().find(|o| o.via == Via::Interp)
    }

    /// The libraries (neither the program nor its loader).
    pub fn libraries(&self) -> impl Iterator<Item = &Object> {
        self.objects
            .iter()
            .filter(|o| !matches!(o.via, Via::Program | Via::Interp))
    }
}

/// Why the closure could not be made.
#[derive(Debug)]
pub enum DepsError {
    /// A file could not be read.
    Io(PathBuf, std::io::Error),
    /// A file is not a usable ELF object.
    Elf(PathBuf, ElfError),
    /// The program's loader does not exist.
    MissingInterp {
        /// The `PT_INTERP` path.
        interp: PathBuf,
        /// The program naming it.
        program: PathBuf,
    },
    /// A library was found nowhere.
    Missing {
        /// The `DT_NEEDED` name.
        name: String,
        /// The object that needs it.
        needed_by: PathBuf,
        /// Where it was looked for.
        searched: Vec<String>,
    },
}

impl fmt::Display for DepsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            DepsError::Elf(p, e) => write!(f, "{}: {e}", p.display()),
            DepsError::MissingInterp { interp, program } => write!(
                f,
                "{}: its dynamic loader {} does not exist",
                program.display(),
                interp.display()
            ),
            DepsError::Missing {
                name,
                needed_by,
                searched,
            } => write!(
                f,
                "library {name} needed by {} not found (searched {})",
                needed_by.display(),
                searched.join(", ")
            ),
        }
    }
}

impl std::error::Error for DepsError {}

/// Finds libraries under a root directory.
#[derive(Clone, Debug)]
pub struct Resolver {
    /// The root the absolute paths are taken from (`/`: the host).
    pub root: PathBuf,
    /// `LD_LIBRARY_PATH` directories.
    pub library_path: Vec<PathBuf>,
    cache: Vec<ldcache::Entry>,
    /// Files an image places over the root: image path → host file.
    overlay: BTreeMap<PathBuf, PathBuf>,
    /// Cache entries of the image's own libraries, looked up before the
    /// host's cache.
    image_cache: Vec<ldcache::Entry>,
}

/// The host path of image path `p` under `root`.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

impl Resolver {
    /// A resolver for the tree at `root`, reading its `/etc/ld.so.cache`
    /// if there is one (a missing or unreadable cache is skipped, as the
    /// loader skips it).
    pub fn new(root: &Path, library_path: Vec<PathBuf>) -> Resolver {
        let cache = fs::read(under(root, Path::new("/etc/ld.so.cache")))
            .ok()
            .and_then(|b| ldcache::parse(&b).ok())
            .unwrap_or_default();
        Resolver {
            root: root.to_path_buf(),
            library_path,
            cache,
            overlay: BTreeMap::new(),
            image_cache: Vec::new(),
        }
    }

    /// Resolves as inside an image made of the root with `overlay` (image
    /// path → host file) on top, whose cache lists `image_cache` (name,
    /// path) before the host's entries.
    pub fn with_overlay(
        mut self,
        overlay: BTreeMap<PathBuf, PathBuf>,
        image_cache: &[(Vec<u8>, Vec<u8>)],
    ) -> Resolver {
        self.overlay = overlay;
        self.image_cache = image_cache
            .iter()
            .map(|(name, path)| ldcache::Entry {
                flags: ldcache::FLAGS_X86_64,
                name: name.clone(),
                path: path.clone(),
                hwcap: 0,
            })
            .collect();
        self
    }

    /// The host file behind image path `p`.
    pub fn host_path(&self, p: &Path) -> PathBuf {
        self.overlay
            .get(p)
            .cloned()
            .unwrap_or_else(|| under(&self.root, p))
    }

    fn read(&self, path: &Path, host: Option<&Path>) -> Result<(Vec<u8>, PathBuf), DepsError> {
        let host = host.map_or_else(|| self.host_path(path), Path::to_path_buf);
        let bytes = fs::read(&host).map_err(|e| DepsError::Io(path.to_path_buf(), e))?;
        let real = fs::canonicalize(&host).unwrap_or(host);
        Ok((bytes, real))
    }

    /// Whether `path` (image path) is a 64-bit x86-64 ELF file.
    fn usable(&self, path: &Path) -> bool {
        let mut head = [0u8; EHDR_SIZE];
        fs::File::open(self.host_path(path))
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|()| headers_len(&head).is_ok())
    }

    /// `$ORIGIN` of `o`: the program's real directory, a library's
    /// directory as loaded.
    fn origin(&self, o: &Object) -> PathBuf {
        let dir = if o.via == Via::Program {
            o.real
                .strip_prefix(fs::canonicalize(&self.root).unwrap_or(self.root.clone()))
                .map(|p| Path::new("/").join(p))
                .unwrap_or_else(|_| o.path.clone())
        } else {
            o.path.clone()
        };
        dir.parent().unwrap_or(Path::new("/")).to_path_buf()
    }

    /// A colon-separated search path of `o` with its tokens expanded.
    fn expand(&self, o: &Object, path: &[u8]) -> Vec<PathBuf> {
        let origin = self.origin(o);
        let origin = origin.to_string_lossy();
        path.split(|&b| b == b':')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let s = String::from_utf8_lossy(p)
                    .replace("${ORIGIN}", &origin)
                    .replace("$ORIGIN", &origin)
                    .replace("${LIB}", DST_LIB)
                    .replace("$LIB", DST_LIB)
                    .replace("${PLATFORM}", DST_PLATFORM)
                    .replace("$PLATFORM", DST_PLATFORM);
                (!s.contains('$')).then(|| PathBuf::from(s))
            })
            .collect()
    }

    /// Where `name`, needed by `objects[by]`, is found, and how; or the
    /// places searched.
    fn search(
        &self,
        objects: &[Object],
        by: usize,
        name: &[u8],
    ) -> Result<(PathBuf, Via), Vec<String>> {
        let text = String::from_utf8_lossy(name).into_owned();
        let mut searched = Vec::new();
        if name.contains(&b'/') {
            let p = PathBuf::from(&text);
            return if self.usable(&p) {
                Ok((p, Via::Path))
            } else {
                Err(vec![text])
            };
        }
        let loader = &objects[by];
        if loader.info.runpath.is_none() {
            let mut at = Some(by);
            let mut did_main = false;
            while let Some(i) = at {
                let o = &objects[i];
                if let (None, Some(rpath)) = (&o.info.runpath, &o.info.rpath) {
                    if let Some(f) = self.try_dirs(
                        &mut searched,
                        &self.expand(o, rpath),
                        &text,
                        Via::Rpath,
                        "RPATH",
                    ) {
                        return Ok(f);
                    }
                }
                did_main |= i == 0;
                at = o.needed_by;
            }
            let main = &objects[0];
            if !did_main {
                if let (None, Some(rpath)) = (&main.info.runpath, &main.info.rpath) {
                    if let Some(f) = self.try_dirs(
                        &mut searched,
                        &self.expand(main, rpath),
                        &text,
                        Via::Rpath,
                        "RPATH",
                    ) {
                        return Ok(f);
                    }
                }
            }
        }
        if let Some(f) = self.try_dirs(
            &mut searched,
            &self.library_path,
            &text,
            Via::LibraryPath,
            "LD_LIBRARY_PATH",
        ) {
            return Ok(f);
        }
        if let Some(runpath) = &loader.info.runpath {
            if let Some(f) = self.try_dirs(
                &mut searched,
                &self.expand(loader, runpath),
                &text,
                Via::Runpath,
                "RUNPATH",
            ) {
                return Ok(f);
            }
        }
        if !loader.info.nodeflib {
            searched.push("ld.so.cache".into());
            let found = ldcache::lookup(&self.image_cache, name)
                .or_else(|| ldcache::lookup(&self.cache, name));
            if let Some(p) = found {
                let p = PathBuf::from(std::ffi::OsStr::from_bytes(p));
                if self.usable(&p) {
                    return Ok((p, Via::Cache));
                }
            }
            let dirs: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
            if let Some(f) = self.try_dirs(&mut searched, &dirs, &text, Via::SystemDir, "") {
                return Ok(f);
            }
        }
        Err(searched.into_iter().map(|s| s.trim().to_string()).collect())
    }

    /// The first of `dirs` holding a usable `name`; records each in
    /// `searched`.
    fn try_dirs(
        &self,
        searched: &mut Vec<String>,
        dirs: &[PathBuf],
        name: &str,
        via: Via,
        label: &str,
    ) -> Option<(PathBuf, Via)> {
        for d in dirs {
            searched.push(format!("{label} {}", d.display()));
            let p = d.join(name);
            if p.is_absolute() && self.usable(&p) {
                return Some((p, via));
            }
        }
        None
    }

    fn object(
        &self,
        path: &Path,
        host: Option<&Path>,
        via: Via,
        needed_by: Option<usize>,
    ) -> Result<Object, DepsError> {
        let (bytes, real) = self.read(path, host)?;
        let info = dynamic_info(&bytes).map_err(|e| DepsError::Elf(path.to_path_buf(), e))?;
        Ok(Object {
            path: path.to_path_buf(),
            names: Vec::new(),
            info,
            via,
            needed_by,
            real,
        })
    }

    /// The closure of `program` (an absolute image path under the root).
    pub fn closure(&self, program: &Path) -> Result<Closure, DepsError> {
        self.closure_of(program, &self.host_path(program))
    }

    /// The closure of the object at image path `image` whose bytes are the
    /// host file `host` (a file an image places somewhere of its own).
    pub fn closure_of(&self, image: &Path, host: &Path) -> Result<Closure, DepsError> {
        let program = image;
        let main = self.object(program, Some(host), Via::Program, None)?;
        let mut objects = vec![main];
        if let Some(interp) = objects[0].info.interp.clone() {
            let ipath = PathBuf::from(std::ffi::OsStr::from_bytes(&interp));
            if !self.host_path(&ipath).exists() {
                return Err(DepsError::MissingInterp {
                    interp: ipath,
                    program: program.to_path_buf(),
                });
            }
            let mut i = self.object(&ipath, None, Via::Interp, Some(0))?;
            i.names.push(interp);
            objects.push(i);
        }
        let mut queue: VecDeque<usize> = VecDeque::from([0]);
        while let Some(i) = queue.pop_front() {
            for name in objects[i].info.needed.clone() {
                if objects.iter().any(|o| o.answers_to(&name)) {
                    continue;
                }
                let (path, via) =
                    self.search(&objects, i, &name)
                        .map_err(|searched| DepsError::Missing {
                            name: String::from_utf8_lossy(&name).into_owned(),
                            needed_by: objects[i].path.clone(),
                            searched,
                        })?;
                let mut o = self.object(&path, None, via, Some(i))?;
                if let Some(same) = objects.iter_mut().find(|x| x.real == o.real) {
                    // The same file under another name: one object.
                    same.names.push(name);
                    continue;
                }
                o.names.push(name);
                objects.push(o);
                queue.push_back(objects.len() - 1);
            }
        }
        Ok(Closure { objects })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Resolver {
        Resolver::new(Path::new("/"), Vec::new())
    }

    #[test]
    fn ls_needs_libc_and_the_loader() {
        if !Path::new("/bin/ls").exists() {
            eprintln!("SKIPPED: no /bin/ls");
            return;
        }
        let c = host().closure(Path::new("/bin/ls")).unwrap();
        assert_eq!(c.objects[0].via, Via::Program);
        let interp = c.interp().expect("ls is dynamically linked");
        assert_eq!(interp.path, Path::new("/lib64/ld-linux-x86-64.so.2"));
        let libc = c
            .libraries()
            .find(|o| o.names.iter().any(|n| n == b"libc.so.6"))
            .expect("libc");
        assert!(matches!(libc.via, Via::Cache | Via::SystemDir));
        // libc's own DT_NEEDED on the loader is the loader, not a copy.
        assert!(
            !c.libraries()
                .any(|o| o.info.soname.as_deref() == Some(b"ld-linux-x86-64.so.2"))
        );
        // What `ldd` prints is what we found (names and paths alike).
        if let Ok(out) = std::process::Command::new("ldd").arg("/bin/ls").output() {
            let text = String::from_utf8_lossy(&out.stdout);
            for o in c.libraries() {
                let name = String::from_utf8_lossy(&o.names[0]);
                assert!(
                    text.contains(&format!("{name} => {}", o.path.display())),
                    "ldd says:\n{text}\nwe found {name} at {}",
                    o.path.display()
                );
            }
            let ldd_libs = text.lines().filter(|l| l.contains("=>")).count();
            assert_eq!(ldd_libs, c.libraries().count(), "{text}");
        }
    }

    #[test]
    fn python_and_sqlite_match_ldd() {
        // Bigger closures from Debian's packages, when installed.
        for prog in ["/usr/bin/python3", "/usr/bin/sqlite3", "/usr/bin/fio"] {
            if !Path::new(prog).exists() {
                eprintln!("SKIPPED: no {prog}");
                continue;
            }
            let c = host().closure(Path::new(prog)).unwrap();
            let out = std::process::Command::new("ldd")
                .arg(prog)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let mut ldd: Vec<String> = text
                .lines()
                .filter_map(|l| l.split("=>").nth(1))
                .filter_map(|r| r.split_whitespace().next())
                .map(str::to_string)
                .collect();
            let mut ours: Vec<String> = c
                .libraries()
                .map(|o| o.path.display().to_string())
                .collect();
            ldd.sort();
            ours.sort();
            assert_eq!(ours, ldd, "{prog}");
        }
    }

    #[test]
    fn static_programs_need_nothing() {
        let Some(dir) = gcc_dir("static") else {
            return;
        };
        let exe = dir.join("s");
        assert!(cc(
            &["-static", "-o", exe.to_str().unwrap(), "main.c", "helper.c"],
            &dir
        ));
        let c = host().closure(&exe).unwrap();
        assert_eq!(c.objects.len(), 1);
        assert!(c.interp().is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    fn gcc_dir(name: &str) -> Option<PathBuf> {
        let dir = std::env::temp_dir().join(format!("cairn-deps-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).ok()?;
        fs::write(
            dir.join("main.c"),
            "int helper(void);\nint main(void){return helper() - 42;}\n",
        )
        .ok()?;
        fs::write(dir.join("helper.c"), "int helper(void){return 42;}\n").ok()?;
        if !cc(&["--version"], &dir) {
            eprintln!("SKIPPED: no gcc");
            return None;
        }
        Some(dir)
    }

    fn cc(args: &[&str], dir: &Path) -> bool {
        std::process::Command::new("gcc")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn runpath_origin_and_missing_libraries() {
        // A program whose library sits in $ORIGIN/../lib (RUNPATH), as a
        // relocatable install would have it; then the library removed.
        let Some(dir) = gcc_dir("runpath") else {
            return;
        };
        fs::create_dir_all(dir.join("app/bin")).unwrap();
        fs::create_dir_all(dir.join("app/lib")).unwrap();
        assert!(cc(
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,libhelper.so.1",
                "-o",
                "app/lib/libhelper.so.1",
                "helper.c"
            ],
            &dir
        ));
        assert!(cc(
            &[
                "-o",
                "app/bin/prog",
                "main.c",
                "app/lib/libhelper.so.1",
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"
            ],
            &dir
        ));
        // The program really runs on the host with that layout.
        let ran = std::process::Command::new(dir.join("app/bin/prog"))
            .status()
            .unwrap();
        assert!(ran.success());
        let prog = dir.join("app/bin/prog");
        let c = host().closure(&prog).unwrap();
        let helper = c
            .libraries()
            .find(|o| o.names.iter().any(|n| n == b"libhelper.so.1"))
            .unwrap();
        assert_eq!(helper.via, Via::Runpath);
        assert_eq!(helper.path, dir.join("app/bin/../lib/libhelper.so.1"));
        // LD_LIBRARY_PATH comes before RUNPATH.
        fs::create_dir_all(dir.join("other")).unwrap();
        fs::copy(
            dir.join("app/lib/libhelper.so.1"),
            dir.join("other/libhelper.so.1"),
        )
        .unwrap();
        let r = Resolver::new(Path::new("/"), vec![dir.join("other")]);
        let c = r.closure(&prog).unwrap();
        let helper = c
            .libraries()
            .find(|o| o.names.iter().any(|n| n == b"libhelper.so.1"))
            .unwrap();
        assert_eq!(
            (helper.via, helper.path.clone()),
            (Via::LibraryPath, dir.join("other/libhelper.so.1"))
        );
        // Missing: the error names the library and who needs it.
        fs::remove_file(dir.join("app/lib/libhelper.so.1")).unwrap();
        let e = host().closure(&prog).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("libhelper.so.1") && text.contains(&prog.display().to_string()),
            "{text}"
        );
        assert!(text.contains("RUNPATH"), "{text}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_loader_and_non_elf_programs() {
        let dir = std::env::temp_dir().join(format!("cairn-deps-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let e = host().closure(&script).unwrap_err();
        assert!(matches!(e, DepsError::Elf(_, ElfError::NotElf)), "{e}");
        assert!(e.to_string().contains("not an ELF file"));
        // /bin/ls under a root without the loader.
        if let Ok(ls) = fs::read("/bin/ls") {
            fs::create_dir_all(dir.join("bin")).unwrap();
            fs::write(dir.join("bin/ls"), ls).unwrap();
            let e = Resolver::new(&dir, Vec::new())
                .closure(Path::new("/bin/ls"))
                .unwrap_err();
            assert!(e.to_string().contains("ld-linux-x86-64.so.2"), "{e}");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
