//! Workload images: `cargo xtask image <test|path/to/manifest>`.
//!
//! A runtime test's image: its C program built with the host's gcc and
//! its data files in `target/xtask/runtime/<test>/` (the directory the
//! manifest's host paths start from), then cairn's mkfs (`cairn-tools`,
//! as a library) makes `target/xtask/images/<test>.img` of the catalogue's
//! size, bare or MBR-partitioned. A manifest path makes an image from that
//! manifest as it is (host paths relative to its directory).

use crate::Result;
use crate::build;
use cairn_runtime_tests::RuntimeTest;
use cairn_tools::mkfs::{MkfsOptions, make_image};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct ImageArgs {
    /// A runtime test's name (see `cargo xtask image --list`) or a
    /// manifest file.
    pub what: Option<String>,
    /// List the runtime tests.
    #[arg(long)]
    pub list: bool,
    /// Output image (default: target/xtask/images/<name>.img).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub elf: crate::elf_image::ElfArgs,
    /// With --elf: the program's arguments (argv[1..], after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `target/xtask/images/`.
pub fn images_dir() -> PathBuf {
    build::out_dir().join("images")
}

/// `target/xtask/runtime/<test>/`: the program and its data files.
pub fn build_dir(t: &RuntimeTest) -> PathBuf {
    build::out_dir().join("runtime").join(t.name)
}

fn mkfs(image: &Path, manifest: Vec<u8>, base: &Path, size: Option<u64>, mbr: bool) -> Result<()> {
    if let Some(d) = image.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let opts = MkfsOptions {
        image: image.to_path_buf(),
        manifest: Some((manifest, base.to_path_buf())),
        label: "cairn".into(),
        size,
        mbr,
        ..MkfsOptions::default()
    };
    let summary = make_image(&opts).map_err(|e| format!("mkfs {}: {e}", image.display()))?;
    for w in summary.warnings {
        eprintln!("xtask: mkfs: {w}");
    }
    Ok(())
}

/// Builds runtime test `t`'s program, data files and image (at `out`, or
/// `target/xtask/images/<test>.img`); returns the image's path.
pub fn build_test_image(t: &RuntimeTest, out: Option<&Path>) -> Result<PathBuf> {
    let dir = build_dir(t);
    crate::programs::prepare(t, &dir)?;
    let image = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| images_dir().join(format!("{}.img", t.name)));
    let text = t.manifest_text().map_err(|e| e.to_string())?;
    if t.program_image() {
        // The program, its loader and libraries, /etc, the manifest on top.
        let spec = program_spec(text, &dir);
        crate::elf_image::make(
            &spec,
            &image,
            crate::elf_image::Size::Both(t.image_mib << 20, 32 << 20),
        )?;
        return Ok(image);
    }
    mkfs(&image, text, &dir, Some(t.image_mib << 20), t.mbr)?;
    Ok(image)
}

/// The program image of test `t` (its manifest `text`, host paths from
/// its build directory `dir`).
pub fn program_spec(text: Vec<u8>, dir: &Path) -> cairn_tools::program::ProgramSpec {
    cairn_tools::program::ProgramSpec {
        manifest: Some((text, dir.to_path_buf())),
        root: PathBuf::from("/"),
        ..Default::default()
    }
}

/// Makes an image from the manifest file `path` as it stands.
pub fn build_manifest_image(path: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let image = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| images_dir().join(format!("{stem}.img")));
    mkfs(&image, text, &base, None, false)?;
    Ok(image)
}

/// The image for `what`: a runtime test's name, a manifest file, or an
/// existing image file (`.img`, used as it is).
pub fn resolve(what: &str, out: Option<&Path>) -> Result<PathBuf> {
    if let Some(t) = cairn_runtime_tests::find(what) {
        return build_test_image(t, out);
    }
    let p = Path::new(what);
    if p.is_file() {
        if p.extension().is_some_and(|e| e == "img") {
            return Ok(p.to_path_buf());
        }
        // A catalogue manifest builds its program too.
        if let Some(t) = cairn_runtime_tests::catalogue().iter().find(|t| {
            std::fs::canonicalize(t.manifest_path()).ok() == std::fs::canonicalize(p).ok()
        }) {
            return build_test_image(t, out);
        }
        return build_manifest_image(p, out);
    }
    Err(format!(
        "{what:?} is neither a runtime test ({}) nor a file",
        cairn_runtime_tests::catalogue()
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The absolute disk sector holding byte `offset` of `path` in `image`
/// (bare or MBR-partitioned).
pub fn file_sector(image: &Path, path: &str, offset: u64) -> Result<u64> {
    use cairn_tfs::fs::MappingKind;
    let dev = cairn_tools::filedev::FileDevice::open(image, false)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let part = cairn_tfs::open_root_volume(dev).map_err(|e| format!("{e:?}"))?;
    let start = part.start();
    let fs = cairn_tfs::Filesystem::mount(part).map_err(|e| format!("mount: {e:?}"))?;
    let ino = fs
        .resolve(path.as_bytes(), true)
        .map_err(|e| format!("{path}: {e:?}"))?;
    let maps = fs
        .map(ino, offset, 512)
        .map_err(|e| format!("{path}: {e:?}"))?;
    match maps.first().map(|m| (m.kind, m.offset)) {
        Some((MappingKind::Disk { sector }, moff)) => Ok(start + sector + (offset - moff) / 512),
        other => Err(format!("{path} byte {offset} is not on disk ({other:?})")),
    }
}

/// `cargo xtask image`.
pub fn image(a: ImageArgs) -> Result<ExitCode> {
    if a.elf.elf.is_some() {
        if a.what.is_some() {
            return Err("--elf and a test or manifest name exclude each other".into());
        }
        let img = crate::elf_image::build_image(&a.elf, &a.args, a.out.as_deref())?;
        let size = std::fs::metadata(&img).map(|m| m.len()).unwrap_or(0);
        println!("{} ({} KiB)", img.display(), size >> 10);
        return Ok(ExitCode::SUCCESS);
    }
    if a.list || a.what.is_none() {
        for t in cairn_runtime_tests::catalogue() {
            println!("{:<18} {}", t.name, t.what);
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::setup::ensure(crate::setup::Need {
        qemu: false,
        gcc: true,
        clippy: false,
    })?;
    let what = a.what.unwrap_or_default();
    let img = resolve(&what, a.out.as_deref())?;
    let size = std::fs::metadata(&img).map(|m| m.len()).unwrap_or(0);
    println!("{} ({} KiB)", img.display(), size >> 10);
    Ok(ExitCode::SUCCESS)
}
