//! Every runtime test that needs no device of its own, built with the
//! host's gcc and run natively on Linux in a scratch directory laid out
//! like its image (program and data files at the root), with the
//! manifest's argv and environment, boot after boot: this checks the test
//! programs themselves, so that a failure on cairn is cairn's.

use cairn_runtime_tests::{Native, RuntimeTest, catalogue, fs_bench};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs boot `boot` of `t` natively: its exit status and the last lines of
/// its output (for the failure message).
fn run_once(t: &RuntimeTest, dir: &Path, boot: usize) -> Result<(u32, String), String> {
    let w = t.workload().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(dir.join(t.program()));
    let argv0 = std::ffi::OsStr::from_bytes(&w.arguments[0]);
    cmd.arg0(argv0)
        .args(
            w.arguments[1..]
                .iter()
                .map(|a| std::ffi::OsStr::from_bytes(a)),
        )
        .env_clear()
        .envs(w.environment.iter().map(|(k, v)| {
            (
                std::ffi::OsStr::from_bytes(k),
                std::ffi::OsStr::from_bytes(v),
            )
        }))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", t.name))?;
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("native {} boot {boot}: {s}\n{}", t.name, text.trim_end());
            let lines: Vec<&str> = text.trim_end().lines().collect();
            let tail = lines[lines.len().saturating_sub(6)..].join("\n");
            return match (s.code(), s.signal()) {
                (Some(c), _) => Ok((c as u32, tail)),
                (None, Some(sig)) => Ok((128 + sig as u32, tail)),
                _ => Err(format!("{}: no status", t.name)),
            };
        }
        if start.elapsed() > Duration::from_secs(t.timeout_s) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{}: timed out (hang) in boot {boot}", t.name));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn runtime_programs_pass_natively() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runtime-native");
    let mut failures = Vec::new();
    let mut ran = 0;
    for t in catalogue() {
        if let Native::No(why) = t.native {
            eprintln!("native {}: not run natively ({why})", t.name);
            continue;
        }
        let dir = scratch.join(t.name);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = t.prepare(&dir) {
            failures.push(format!("{}: {e}", t.name));
            continue;
        }
        for (i, want) in t.boot_list().into_iter().map(|b| b.status).enumerate() {
            match run_once(t, &dir, i + 1) {
                Ok((got, _)) if got == want => {}
                Ok((got, tail)) => failures.push(format!(
                    "{} boot {}: exit status {got}, expected {want}; output ends:\n{tail}",
                    t.name,
                    i + 1
                )),
                Err(e) => failures.push(e),
            }
        }
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} tests ran natively");
    assert!(
        failures.is_empty(),
        "failed natively:\n{}",
        failures.join("\n")
    );
}

#[test]
fn fs_bench_runs_natively() {
    let t = fs_bench();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fsbench-native");
    let _ = std::fs::remove_dir_all(&dir);
    t.prepare(&dir).unwrap();
    assert_eq!(run_once(t, &dir, 1).map(|(status, _)| status), Ok(0));
    let _ = std::fs::remove_dir_all(&dir);
}
