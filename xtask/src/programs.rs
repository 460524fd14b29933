//! Real programs for the runtime tests and `cargo xtask bench programs`,
//! built once into `target/xtask/programs/` from Debian's packages and
//! sources:
//!
//! * SQLite: `apt-get source sqlite3` (its `configure` and `make sqlite3.c
//!   shell.c` make the amalgamation; tclsh runs the generators), compiled
//!   once into `sqlite3.o` with threads on, then linked `-static` into the
//!   shell, `test/speedtest1.c`, and the runtime tests that use SQLite
//!   (`Real::WithSqlite`: `c/<test>.c` + the amalgamation).
//! * fio: `apt-get source fio`, `./configure --build-static
//!   --disable-native --disable-shm` (no SysV shared memory: cairn runs
//!   one process, fio runs its jobs as threads, `thread` in the job file).
//! * busybox: Debian's `busybox-static` package (`apt-get download`,
//!   `dpkg-deb -x`).
//!
//! `apt-get source` needs a `deb-src` line in apt's sources: set-up adds
//! one for the running suite when there is none (as root; otherwise it
//! prints the command). A program already built is reused.

use crate::Result;
use crate::build;
use cairn_runtime_tests::{Real, RuntimeTest};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn dir() -> PathBuf {
    build::out_dir().join("programs")
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("xtask: programs: {what}");
    let o = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if o.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    Err(format!(
        "{what} failed ({}):\n{}",
        o.status,
        lines[lines.len().saturating_sub(30)..].join("\n")
    ))
}

/// The source tree `apt-get source pkg` unpacked into `programs/src/`.
fn source(pkg: &str) -> Result<PathBuf> {
    let src = dir().join("src");
    let found = |src: &Path| {
        std::fs::read_dir(src).ok().and_then(|rd| {
            rd.flatten().map(|e| e.path()).find(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}-")))
            })
        })
    };
    if let Some(p) = found(&src) {
        return Ok(p);
    }
    crate::setup::ensure_sources()?;
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    run(
        Command::new("apt-get")
            .args(["source", "-q", pkg])
            .current_dir(&src),
        &format!("apt-get source {pkg}"),
    )?;
    found(&src).ok_or_else(|| format!("apt-get source {pkg} left no {pkg}-* directory"))
}

/// `sqlite3.o` and `sqlite3.h` of the amalgamation, built once.
fn sqlite_amalgamation() -> Result<PathBuf> {
    let b = dir().join("sqlite");
    let obj = b.join("sqlite3.o");
    if obj.is_file() && b.join("shell.c").is_file() {
        return Ok(b);
    }
    let src = source("sqlite3")?;
    std::fs::create_dir_all(&b).map_err(|e| e.to_string())?;
    if !b.join("sqlite3.c").is_file() || !b.join("shell.c").is_file() {
        run(
            Command::new(src.join("configure"))
                .args(["--disable-tcl", "--disable-readline"])
                .current_dir(&b),
            "configuring SQLite",
        )?;
        run(
            Command::new("make")
                .args(["sqlite3.c", "shell.c"])
                .current_dir(&b),
            "making the SQLite amalgamation",
        )?;
    }
    run(
        Command::new(cairn_runtime_tests::gcc())
            .args([
                "-O2",
                "-DSQLITE_THREADSAFE=1",
                "-c",
                "sqlite3.c",
                "-o",
                "sqlite3.o",
            ])
            .current_dir(&b),
        "compiling the SQLite amalgamation",
    )?;
    Ok(b)
}

/// Links `sources` with the amalgamation into `out` (`-static`).
fn link_with_sqlite(sources: &[PathBuf], extra_include: Option<&Path>, out: &Path) -> Result<()> {
    let b = sqlite_amalgamation()?;
    let mut cmd = Command::new(cairn_runtime_tests::gcc());
    cmd.args(["-static", "-O2", "-pthread", "-DSQLITE_THREADSAFE=1"])
        .arg("-I")
        .arg(&b);
    if let Some(i) = extra_include {
        cmd.arg("-I").arg(i);
    }
    cmd.args(sources)
        .arg(b.join("sqlite3.o"))
        .args(["-lm", "-ldl", "-o"])
        .arg(out);
    run(&mut cmd, &format!("linking {}", out.display()))
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(a), m(b)) {
        (Some(x), Some(y)) => x > y,
        _ => true,
    }
}

/// The binary of real program `real` (for test `t` when it is built from
/// the test's own source), building it if needed.
pub fn program(real: Real, t: Option<&RuntimeTest>) -> Result<PathBuf> {
    let bin = dir().join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    match real {
        Real::Sqlite3 => {
            let out = bin.join("sqlite3");
            if !out.is_file() {
                let b = sqlite_amalgamation()?;
                link_with_sqlite(&[b.join("shell.c")], None, &out)?;
            }
            Ok(out)
        }
        Real::Speedtest1 => {
            let out = bin.join("speedtest1");
            if !out.is_file() {
                let src = source("sqlite3")?;
                link_with_sqlite(&[src.join("test").join("speedtest1.c")], None, &out)?;
            }
            Ok(out)
        }
        Real::WithSqlite => {
            let t = t.ok_or("a test that links SQLite names its source")?;
            let out = bin.join(t.program());
            if newer(&t.source_path(), &out) {
                link_with_sqlite(
                    &[t.source_path()],
                    Some(&cairn_runtime_tests::dir().join("c")),
                    &out,
                )?;
            }
            Ok(out)
        }
        Real::Fio => {
            let out = bin.join("fio");
            if !out.is_file() {
                let src = source("fio")?;
                run(
                    Command::new("./configure")
                        .args(["--build-static", "--disable-native", "--disable-shm"])
                        .current_dir(&src),
                    "configuring fio",
                )?;
                run(
                    Command::new("make").args(["-j2", "fio"]).current_dir(&src),
                    "building fio",
                )?;
                std::fs::copy(src.join("fio"), &out).map_err(|e| e.to_string())?;
            }
            Ok(out)
        }
        Real::Debian { path, .. } => Ok(PathBuf::from(path)),
        Real::Data => Err("a bad-input test has no program".into()),
        Real::Busybox => {
            let out = bin.join("busybox");
            if !out.is_file() {
                let work = dir().join("busybox-deb");
                let _ = std::fs::remove_dir_all(&work);
                std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
                let deb = crate::linux::apt_download("busybox-static", &work)?;
                let x = work.join("x");
                run(
                    Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
                    "unpacking busybox-static",
                )?;
                let bb = [x.join("bin/busybox"), x.join("usr/bin/busybox")]
                    .into_iter()
                    .find(|p| p.is_file())
                    .ok_or("busybox-static has no busybox binary")?;
                std::fs::copy(&bb, &out).map_err(|e| e.to_string())?;
                let _ = std::fs::remove_dir_all(&work);
            }
            Ok(out)
        }
    }
}

/// Makes sure Debian's `package` is installed on the host, so that `path`
/// (one of its programs) exists: `apt-get install` as root, else the
/// command to run.
pub fn debian_program(package: &str, path: &str) -> Result<()> {
    if Path::new(path).exists() {
        return Ok(());
    }
    crate::setup::apt_install(&[package], false)?;
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("{package} is installed but has no {path}"))
    }
}

/// Puts `t`'s real program (if it has one) into its build directory
/// `dir`, where its manifest's host paths point.
pub fn install(t: &RuntimeTest, dir: &Path) -> Result<()> {
    let Some(real) = t.real else {
        return Ok(());
    };
    match real {
        Real::Debian { package, path } => return debian_program(package, path),
        Real::Data => return Ok(()),
        _ => {}
    }
    let bin = program(real, Some(t))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let to = dir.join(t.program());
    std::fs::copy(&bin, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(())
}

/// Builds everything `t` needs into `dir`: its program (compiled from
/// `c/`, or a real program) and data files.
pub fn prepare(t: &RuntimeTest, dir: &Path) -> Result<PathBuf> {
    install(t, dir)?;
    t.prepare(dir).map_err(|e| e.to_string())
}
