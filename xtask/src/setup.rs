//! First-use set-up: the `x86_64-unknown-none` target and clippy through
//! rustup, QEMU (10.x, from Debian's bookworm-backports on bookworm) and gcc
//! through apt-get when running as root. Otherwise it stops with the exact
//! command to run.

use crate::Result;
use std::process::{Command, ExitCode, Stdio};

/// What a command needs.
#[derive(Copy, Clone)]
pub struct Need {
    pub qemu: bool,
    pub gcc: bool,
    pub clippy: bool,
}

impl Need {
    pub fn all() -> Need {
        Need {
            qemu: true,
            gcc: true,
            clippy: true,
        }
    }
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_step(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: setup: {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {cmd:?} failed with {status}"))
    }
}

fn kernel_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-none"))
}

fn debian_codename() -> Option<String> {
    let s = std::fs::read_to_string("/etc/os-release").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

pub fn apt_install(packages: &[&str], from_backports: bool) -> Result<()> {
    let codename = debian_codename();
    let backports = from_backports && codename.as_deref() == Some("bookworm");
    let mut hint = String::new();
    if backports {
        hint.push_str("echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/cairn-backports.list && ");
    }
    hint.push_str("apt-get update && apt-get install -y --no-install-recommends ");
    if backports {
        hint.push_str("-t bookworm-backports ");
    }
    hint.push_str(&packages.join(" "));
    if !is_root() {
        return Err(format!(
            "missing {}; run as root:\n    sudo sh -c \"{hint}\"",
            packages.join(", ")
        ));
    }
    if backports {
        std::fs::write(
            "/etc/apt/sources.list.d/cairn-backports.list",
            "deb http://deb.debian.org/debian bookworm-backports main\n",
        )
        .map_err(|e| format!("cannot add bookworm-backports to apt's sources: {e}"))?;
    }
    run_step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
    ]);
    if backports {
        cmd.args(["-t", "bookworm-backports"]);
    }
    cmd.args(packages);
    run_step(&format!("installing {}", packages.join(" ")), &mut cmd)
}

/// Makes sure everything in `need` is present, installing what it can.
pub fn ensure(need: Need) -> Result<ExitCode> {
    if !kernel_target_installed() {
        run_step(
            "adding the x86_64-unknown-none target (rustup target add x86_64-unknown-none)",
            Command::new("rustup").args(["target", "add", "x86_64-unknown-none"]),
        )?;
    }
    if need.clippy && !have("cargo-clippy", "--version") {
        run_step(
            "adding clippy (rustup component add clippy)",
            Command::new("rustup").args(["component", "add", "clippy"]),
        )?;
    }
    if need.qemu && !have("qemu-system-x86_64", "--version") {
        apt_install(&["qemu-system-x86"], true)?;
    }
    if need.gcc && !have("gcc", "--version") {
        apt_install(&["gcc", "libc6-dev"], false)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes sure e2fsprogs (`mkfs.ext4`, `debugfs`) is present: the Linux
/// guest's ext4 disks (`bench fs`, `linux-test`).
pub fn ensure_e2fsprogs() -> Result<()> {
    if have("mkfs.ext4", "-V") && have("debugfs", "-V") {
        return Ok(());
    }
    apt_install(&["e2fsprogs"], false)
}

/// Makes sure wrk (Debian's `wrk`, an HTTP load generator) is present:
/// `bench net`'s host side.
pub fn ensure_wrk() -> Result<()> {
    if have("wrk", "--version") || Command::new("wrk").output().is_ok() {
        return Ok(());
    }
    apt_install(&["wrk"], false)
}

fn has_deb_src() -> bool {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    files.iter().any(|f| {
        let is_source = f.extension().is_some_and(|e| e == "list" || e == "sources")
            || f.ends_with("sources.list");
        is_source
            && std::fs::read_to_string(f).is_ok_and(|t| {
                t.lines().any(|l| {
                    let l = l.trim();
                    l.starts_with("deb-src ") || (l.starts_with("Types:") && l.contains("deb-src"))
                })
            })
    })
}

/// Makes sure `apt-get source` works and the tools that build the real
/// programs are present (`cargo xtask` runtime tests and `bench
/// programs`): a `deb-src` line for the running Debian suite, dpkg-dev
/// (unpacks sources), tclsh (SQLite's amalgamation generators), make, gcc
/// and the static C library, zlib for fio.
pub fn ensure_sources() -> Result<()> {
    let tclsh = std::path::Path::new("/usr/bin/tclsh").exists();
    if !have("make", "--version") || !tclsh || !have("dpkg-source", "--version") {
        apt_install(
            &["make", "tcl", "dpkg-dev", "gcc", "libc6-dev", "zlib1g-dev"],
            false,
        )?;
    }
    if has_deb_src() {
        return Ok(());
    }
    let codename = debian_codename().unwrap_or_else(|| "bookworm".into());
    let line = format!("deb-src http://deb.debian.org/debian {codename} main\n");
    if !is_root() {
        return Err(format!(
            "apt-get source needs a deb-src line; run as root:\n    sudo sh -c \"echo '{}' > /etc/apt/sources.list.d/cairn-src.list && apt-get update\"",
            line.trim_end()
        ));
    }
    std::fs::write("/etc/apt/sources.list.d/cairn-src.list", line)
        .map_err(|e| format!("cannot add a deb-src line to apt's sources: {e}"))?;
    run_step(
        "apt-get update (deb-src)",
        Command::new("apt-get").args(["update", "-qq"]),
    )
}
