//! `mkfs`: builds a TFS image from a Nanos manifest (stdin or `-m`) and/or
//! a host directory tree, or from a host program (`--program PATH [--]
//! [ARGS...]`: the program, its dynamic loader and libraries, `/etc`
//! files, and what `-m` adds; see `cairn_tools::program`).

use cairn_tools::mkfs::{MkfsOptions, make_image, parse_size};
use clap::Parser;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

/// Make a TFS image (Nanos TFS version 5).
#[derive(Parser, Debug)]
#[command(name = "mkfs", version)]
struct Args {
    /// Output image file.
    image: PathBuf,
    /// Read the manifest from this file instead of stdin; relative host
    /// paths are taken from its directory.
    #[arg(short = 'm', long)]
    manifest: Option<PathBuf>,
    /// Import this host directory tree under the root.
    #[arg(long)]
    import: Option<PathBuf>,
    /// Make an empty filesystem (no manifest): a data volume for a
    /// manifest's `mounts`, named by its label (`-l`) or UUID.
    #[arg(short = 'e', long)]
    empty: bool,
    /// Volume label (at most 31 bytes).
    #[arg(short = 'l', long, default_value = "")]
    label: String,
    /// Minimum image size: bytes, or with a k/m/g suffix.
    #[arg(short = 's', long)]
    size: Option<String>,
    /// Look up host paths in this target root first.
    #[arg(short = 'r', long = "target-root")]
    target_root: Option<PathBuf>,
    /// Add tuple(s) to the manifest root, e.g. "(program:/bin/x)".
    #[arg(short = 't', long = "tuple")]
    tuples: Vec<String>,
    /// Volume UUID as 32 hex digits (random by default).
    #[arg(long)]
    uuid: Option<String>,
    /// Put the volume in an MBR partition (type 0x83, the last one).
    #[arg(long)]
    mbr: bool,
    /// Show import progress even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Make the image run this host program: it, its dynamic loader and
    /// every library it needs go into the image at their host paths
    /// (with -m, the manifest adds files, directories and settings).
    #[arg(long)]
    program: Option<PathBuf>,
    /// With --program: an environment variable (NAME=VALUE), repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// With --program: a host directory searched for libraries first (as
    /// LD_LIBRARY_PATH), repeatable.
    #[arg(long = "library-path", value_name = "DIR")]
    library_path: Vec<PathBuf>,
    /// With --program: the program's arguments (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    cairn_tfs::uuid::parse(s.as_bytes())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.label.len() >= 32 {
        eprintln!("mkfs: label '{}' too long", args.label);
        return ExitCode::FAILURE;
    }
    let size = match args.size.as_deref().map(parse_size) {
        Some(None) => {
            eprintln!(
                "mkfs: invalid image size {:?}",
                args.size.unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
        Some(s) => s,
        None => None,
    };
    let uuid = match args.uuid.as_deref().map(parse_uuid) {
        Some(None) => {
            eprintln!("mkfs: --uuid needs 32 hex digits");
            return ExitCode::FAILURE;
        }
        Some(u) => u,
        None => None,
    };
    if args.program.is_some() {
        return program_image(&args, size, uuid);
    }
    let manifest = if let Some(path) = &args.manifest {
        match std::fs::read(path) {
            Ok(text) => {
                let dir = path.parent().map(PathBuf::from).unwrap_or_default();
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir
                };
                Some((text, dir))
            }
            Err(e) => {
                eprintln!("mkfs: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    } else if args.empty || (args.import.is_some() && std::io::stdin().is_terminal()) {
        None
    } else {
        let mut text = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut text) {
            eprintln!("mkfs: cannot read the manifest from stdin: {e}");
            return ExitCode::FAILURE;
        }
        if text.iter().all(u8::is_ascii_whitespace) && args.import.is_some() {
            None
        } else {
            Some((text, std::env::current_dir().unwrap_or_default()))
        }
    };
    let opts = MkfsOptions {
        image: args.image,
        manifest,
        import: args.import,
        extra_tuples: args.tuples,
        label: args.label,
        uuid,
        size,
        target_root: args.target_root,
        mbr: args.mbr,
        progress: args.progress,
        root: None,
    };
    finish(make_image(&opts))
}

fn finish(r: Result<cairn_tools::mkfs::MkfsSummary, cairn_tools::mkfs::MkfsError>) -> ExitCode {
    match r {
        Ok(summary) => {
            for w in &summary.warnings {
                eprintln!("mkfs: warning: {w}");
            }
            eprintln!(
                "mkfs: {} files, {} bytes of data, image {} bytes, UUID {}",
                summary.files,
                summary.bytes,
                summary.image_size,
                cairn_tools::dump::uuid_string(&summary.uuid)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mkfs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--program`: an image that runs a host program.
fn program_image(args: &Args, size: Option<u64>, uuid: Option<[u8; 16]>) -> ExitCode {
    let manifest = match &args.manifest {
        Some(path) => match std::fs::read(path) {
            Ok(text) => Some((
                text,
                path.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from),
            )),
            Err(e) => {
                eprintln!("mkfs: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut env = Vec::new();
    for e in &args.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
            _ => {
                eprintln!("mkfs: --env needs NAME=VALUE, not {e:?}");
                return ExitCode::FAILURE;
            }
        }
    }
    let spec = cairn_tools::program::ProgramSpec {
        program: args.program.clone(),
        args: args.args.clone(),
        env,
        manifest,
        root: PathBuf::from("/"),
        library_path: args.library_path.clone(),
    };
    let img = match cairn_tools::program::build(&spec) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("mkfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &img.warnings {
        eprintln!("mkfs: warning: {w}");
    }
    let staging = args.image.with_extension("staging");
    let root = match img.to_store(&staging) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mkfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "mkfs: {} with {} libraries and loader(s), {} KiB of files",
        img.program.display(),
        img.libraries.len(),
        img.file_bytes() >> 10
    );
    let opts = MkfsOptions {
        image: args.image.clone(),
        root: Some(root),
        extra_tuples: args.tuples.clone(),
        label: args.label.clone(),
        uuid,
        size,
        mbr: args.mbr,
        progress: args.progress,
        ..MkfsOptions::default()
    };
    let r = make_image(&opts);
    let _ = std::fs::remove_dir_all(&staging);
    finish(r)
}
