//! Images made from a host program: `cargo xtask run --elf PATH [--]
//! [ARGS...]` and `cargo xtask image --elf PATH [-- ARGS...]`. The program,
//! its dynamic loader and every library it needs, a generated
//! `/etc/ld.so.cache` and minimal `/etc` files go into a new TFS image
//! (`cairn_tools::program`, the same code as `mkfs --program`), with room
//! to write (`--size`); `--manifest` adds files, directories and settings.

use crate::Result;
use cairn_tools::mkfs::{MkfsOptions, make_image, parse_size};
use cairn_tools::program::{ProgramSpec, build};
use clap::Args;
use std::path::{Path, PathBuf};

/// Room to write an image gets beyond its files unless `--size` says more.
pub const DEFAULT_ROOM: u64 = 64 << 20;
/// Imports at least this large show progress even off a terminal.
const PROGRESS_BYTES: u64 = 32 << 20;

/// The options shared by `run --elf` and `image --elf`.
#[derive(Args, Clone, Debug, Default)]
pub struct ElfArgs {
    /// Make the image from this host program (dynamically linked or
    /// static): it, its loader and libraries keep their host paths.
    #[arg(long, value_name = "PATH")]
    pub elf: Option<PathBuf>,
    /// With --elf: minimum image size (bytes or with k/m/g), room to write
    /// included (default: the files plus 64 MiB).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// With --elf: a Nanos-syntax manifest merged over the image (files,
    /// directories as contents:(host:DIR), arguments, environment).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// With --elf: an environment variable NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
}

/// `target/xtask/images/elf-<name>.img` for program `p`.
pub fn default_image(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    crate::image::images_dir().join(format!("elf-{name}.img"))
}

/// Builds the image of `a.elf` with `args` (argv[1..]) at `out` (or
/// [`default_image`]); returns its path.
pub fn build_image(a: &ElfArgs, args: &[String], out: Option<&Path>) -> Result<PathBuf> {
    let program = a.elf.clone().ok_or("--elf names no program")?;
    let manifest = match &a.manifest {
        Some(m) => {
            let text = std::fs::read(m).map_err(|e| format!("{}: {e}", m.display()))?;
            let base = m
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            Some((text, base))
        }
        None => None,
    };
    let env = a
        .env
        .iter()
        .map(|e| {
            e.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--env needs NAME=VALUE, not {e:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let spec = ProgramSpec {
        program: Some(program.clone()),
        args: args.to_vec(),
        env,
        manifest,
        root: PathBuf::from("/"),
        library_path: Vec::new(),
    };
    let image = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_image(&program));
    let size = match a.size.as_deref() {
        Some(s) => Size::AtLeast(parse_size(s).ok_or_else(|| format!("invalid --size {s:?}"))?),
        None => Size::Room(DEFAULT_ROOM),
    };
    make(&spec, &image, size)?;
    Ok(image)
}

/// How large an image is made.
#[derive(Clone, Copy, Debug)]
pub enum Size {
    /// At least this many bytes (mkfs grows it if the files need more).
    AtLeast(u64),
    /// The files plus this much room to write.
    Room(u64),
    /// At least the first, and the files plus the second.
    Both(u64, u64),
}

/// Makes `image` from `spec`, sized by `size`.
pub fn make(spec: &ProgramSpec, image: &Path, size: Size) -> Result<()> {
    let img = build(spec).map_err(|e| e.to_string())?;
    for w in &img.warnings {
        eprintln!("xtask: warning: {w}");
    }
    let bytes = img.file_bytes();
    let size = match size {
        Size::AtLeast(n) => n,
        Size::Room(r) => bytes + r,
        Size::Both(n, r) => n.max(bytes + r),
    };
    if let Some(d) = image.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let staging = image.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let root = img.to_store(&staging).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: image {}: {} with {} libraries and loader(s), {} MiB of files",
        image.display(),
        img.program.display(),
        img.libraries.len(),
        bytes >> 20
    );
    let opts = MkfsOptions {
        image: image.to_path_buf(),
        root: Some(root),
        label: "cairn".into(),
        size: Some(size),
        progress: bytes >= PROGRESS_BYTES,
        ..MkfsOptions::default()
    };
    let r = make_image(&opts);
    let _ = std::fs::remove_dir_all(&staging);
    let summary = r.map_err(|e| format!("mkfs {}: {e}", image.display()))?;
    for w in summary.warnings {
        eprintln!("xtask: mkfs: {w}");
    }
    Ok(())
}
