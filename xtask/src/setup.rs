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

fn apt_install(packages: &[&str], from_backports: bool) -> Result<()> {
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
