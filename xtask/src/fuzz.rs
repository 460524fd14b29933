//! `cargo xtask fuzz`: runs the fuzz targets with the stable-Rust
//! mutation driver of `src/tfs/fuzz` (libFuzzer needs a nightly
//! toolchain, which these machines cannot fetch). Inputs that panic are
//! saved under `src/tfs/fuzz/artifacts/`; add them to the corpus (replayed
//! by `cargo test -p cairn-tfs`) once fixed.

use crate::Result;
use crate::build;
use clap::Args;
use std::process::{Command, ExitCode};

#[derive(Args)]
pub struct FuzzArgs {
    /// Target: log_replay or manifest (default: both).
    pub target: Option<String>,
    /// Mutated inputs per target.
    #[arg(long, default_value_t = 200_000)]
    pub iterations: u64,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn fuzz(a: FuzzArgs) -> Result<ExitCode> {
    let targets: Vec<String> = match a.target {
        Some(t) => vec![t],
        None => vec!["log_replay".into(), "manifest".into()],
    };
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
    });
    let manifest = build::root().join("src/tfs/fuzz/Cargo.toml");
    for t in targets {
        eprintln!("xtask: fuzzing {t}: {} inputs, seed {seed}", a.iterations);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["run", "--quiet", "--release", "--manifest-path"])
            .arg(&manifest)
            .args(["--bin", "driver", "--"])
            .args([t.as_str(), &a.iterations.to_string(), &seed.to_string()])
            .status()
            .map_err(|e| format!("cannot run the fuzz driver: {e}"))?;
        if !status.success() {
            return Err(format!("fuzzing {t} found failures ({status})"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
