//! `fsck`: replays a TFS image's log and checks its extents, references and
//! tree; exits non-zero with the list of problems.

use cairn_tfs::check::check;
use cairn_tfs::open_root_volume;
use cairn_tools::filedev::FileDevice;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check a TFS image.
#[derive(Parser, Debug)]
#[command(name = "fsck", version)]
struct Args {
    /// Image file (bare TFS or MBR disk).
    image: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let dev = match FileDevice::open(&args.image, false) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fsck: cannot open {}: {e}", args.image.display());
            return ExitCode::FAILURE;
        }
    };
    let vol = match open_root_volume(&dev) {
        Ok(v) => v,
        Err(e) => {
            println!("{}: 1 problem", args.image.display());
            println!("  {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = check(&vol);
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    if report.is_clean() {
        println!(
            "{}: clean: {} files, {} directories, {} symlinks, {} log extensions, {} log entries, {} sectors used",
            args.image.display(),
            report.files,
            report.dirs,
            report.symlinks,
            report.extensions,
            report.log_entries,
            report.used_sectors
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{}: {} problems",
            args.image.display(),
            report.problems.len()
        );
        for p in &report.problems {
            println!("  {p}");
        }
        ExitCode::FAILURE
    }
}
