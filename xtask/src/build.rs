//! Building the kernel and locating workspace paths.

use crate::Result;
use std::path::PathBuf;
use std::process::Command;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where xtask keeps its own outputs (logs, images).
pub fn out_dir() -> PathBuf {
    root().join("target").join("xtask")
}

/// Runs a cargo command in the workspace, failing with `what` on error.
pub fn cargo(args: &[&str], what: &str) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("{what}: cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Runs a cargo command with its output captured; on failure the output's
/// tail is printed (so a green suite stays readable).
pub fn cargo_quiet(args: &[&str], what: &str) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("{what}: cannot run cargo: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("---- {what} output (last 80 lines) ----");
    for l in &lines[lines.len().saturating_sub(80)..] {
        eprintln!("{l}");
    }
    Err(format!("{what} failed ({})", out.status))
}

/// Builds the kernel (debug: lock validator and heap assertions on) and
/// returns the path of its ELF image.
pub fn kernel(release: bool) -> Result<PathBuf> {
    let mut args = vec![
        "build",
        "--quiet",
        "-p",
        "cairn-kernel",
        "--target",
        "x86_64-unknown-none",
    ];
    if release {
        args.push("--release");
    }
    cargo(&args, "building the kernel")?;
    let profile = if release { "release" } else { "debug" };
    Ok(root()
        .join("target")
        .join("x86_64-unknown-none")
        .join(profile)
        .join("cairn-kernel"))
}
