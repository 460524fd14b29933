//! `dump`: prints a TFS image's metadata (text or JSON) and tree, and
//! extracts its files.

use cairn_tfs::{Filesystem, open_root_volume};
use cairn_tools::dump::{extract, render_json, render_text, render_tree, uuid_string};
use cairn_tools::filedev::FileDevice;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print and extract a TFS image.
#[derive(Parser, Debug)]
#[command(name = "dump", version)]
struct Args {
    /// Image file (bare TFS or MBR disk).
    image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also print the directory tree.
    #[arg(short = 't', long)]
    tree: bool,
    /// Copy the filesystem's contents into this directory.
    #[arg(short = 'd', long = "dir")]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let dev = match FileDevice::open(&args.image, false) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("dump: cannot open {}: {e}", args.image.display());
            return ExitCode::FAILURE;
        }
    };
    let fs = match open_root_volume(&dev).and_then(Filesystem::mount) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("dump: {}: {e}", args.image.display());
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        print!("{}", render_json(&fs));
    } else {
        println!("Label: {}", String::from_utf8_lossy(fs.label()));
        println!("UUID: {}", uuid_string(&fs.uuid()));
        println!("metadata");
        print!("{}", render_text(fs.store(), fs.root_tuple()));
    }
    if args.tree {
        print!("{}", render_tree(&fs));
    }
    if let Some(dir) = &args.dir {
        match extract(&fs, dir) {
            Ok(n) => eprintln!("dump: extracted {n} files into {}", dir.display()),
            Err(e) => {
                eprintln!("dump: extraction failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
