//! `cargo xtask run` with a workload: with no `test=` on the command line
//! (or with `--image`), build the image (the `demo` runtime test by
//! default), attach it as the first disk and boot the kernel on it
//! interactively; the program's exit status becomes xtask's. `--disk`
//! attaches more images after it (data volumes a manifest's `mounts`
//! names), as they are: what the program writes there stays. With
//! `--elf PATH [--] [ARGS...]` the image is made from that host program
//! ([`crate::elf_image`]).

use crate::Result;
use crate::build;
use crate::disks::{self, Storage};
use crate::qemu::{RunArgs, Vm, symbolize};
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// The image `cargo xtask run` boots when told nothing else.
pub const DEFAULT_IMAGE: &str = "demo";

#[derive(Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub vm: RunArgs,
    /// Boot this workload: a runtime test's name, a manifest or an .img
    /// file (default: the demo, unless --append names a kernel test).
    #[arg(long)]
    pub image: Option<String>,
    /// Storage the image is attached through: virtio, ata, pvscsi,
    /// virtio-scsi or nvme.
    #[arg(long, default_value = "virtio")]
    pub storage: String,
    /// Attach this image too, after the workload's (repeatable), through
    /// `--storage`'s kind or the KIND named (e.g. `virtio-scsi=data.img`).
    /// Make an empty data volume with `mkfs -e -l LABEL -s 64M data.img`.
    #[arg(long = "disk", value_name = "[KIND=]IMG")]
    pub disks: Vec<String>,
    #[command(flatten)]
    pub elf: crate::elf_image::ElfArgs,
    /// With --elf: the program's arguments (argv[1..]).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// A `--disk` value: its kind (default `storage`) and image.
fn extra_disk(spec: &str, storage: Storage) -> Result<disks::Disk> {
    let (kind, path) = match spec.split_once('=') {
        Some((k, p)) => (
            Storage::parse(k).ok_or_else(|| {
                format!("--disk {spec}: unknown kind {k:?} ({})", Storage::names())
            })?,
            p,
        ),
        None => (storage, spec),
    };
    let p = std::path::Path::new(path);
    if !p.is_file() {
        return Err(format!("--disk {spec}: {path} is not a file"));
    }
    let abs = std::fs::canonicalize(p).map_err(|e| format!("{path}: {e}"))?;
    Ok(disks::Disk::new(kind, abs.display().to_string()))
}

impl RunCmd {
    /// Whether this run boots a workload image (not a kernel test).
    pub fn wants_image(&self) -> bool {
        self.image.is_some()
            || self.elf.elf.is_some()
            || !self
                .vm
                .append
                .split_whitespace()
                .any(|w| w.starts_with("test=") || w.starts_with("tests="))
    }
}

/// `cargo xtask run` with a workload image.
pub fn run(a: RunCmd) -> Result<ExitCode> {
    crate::setup::ensure(crate::setup::Need {
        qemu: true,
        gcc: true,
        clippy: false,
    })?;
    let storage = Storage::parse(&a.storage)
        .ok_or_else(|| format!("unknown storage {:?} ({})", a.storage, Storage::names()))?;
    if !a.args.is_empty() && a.elf.elf.is_none() {
        return Err(format!(
            "arguments {:?} given without --elf (a test image's argv is its manifest's; --append \"argv=a,b\" replaces it)",
            a.args
        ));
    }
    let pristine = match (&a.elf.elf, &a.image) {
        (Some(_), Some(_)) => return Err("--elf and --image exclude each other".into()),
        (Some(_), None) => crate::elf_image::build_image(&a.elf, &a.args, None)?,
        (None, what) => crate::image::resolve(what.as_deref().unwrap_or(DEFAULT_IMAGE), None)?,
    };
    // Boot a copy: the workload may write, and the built image stays as made.
    std::fs::create_dir_all(disks::dir()).map_err(|e| e.to_string())?;
    let disk = disks::dir().join("run.img");
    std::fs::copy(&pristine, &disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    let kernel = build::kernel(a.vm.release)?;
    let mut attached = vec![disks::Disk::new(storage, disk.display().to_string())];
    for d in &a.disks {
        attached.push(extra_disk(d, storage)?);
    }
    let (machine, flags) = disks::attach(&attached);
    let net = a.vm.net_flags()?;
    let mut vm = Vm::new(&kernel, build::out_dir().join("logs").join("run.log"));
    vm.accel = a.vm.accel;
    vm.smp = a.vm.smp;
    vm.memory = a.vm.memory;
    vm.machine = match machine {
        Some(m) => m.into(),
        None => a.vm.machine,
    };
    vm.append = a.vm.append;
    vm.gdb = a.vm.gdb;
    vm.cpu = a.vm.cpu;
    vm.timeout = Duration::from_secs(a.vm.timeout);
    vm.interactive = true;
    vm.extra = flags;
    vm.extra.extend(net);
    eprintln!(
        "xtask: booting {} with workload image {} (copy {}) on {} ({:?}, {} vCPUs, {}); serial log in {}",
        kernel.display(),
        pristine.display(),
        disk.display(),
        storage.name(),
        vm.accel,
        vm.smp,
        vm.memory,
        vm.log.display()
    );
    for d in &attached[1..] {
        eprintln!("xtask: and {} on {}", d.file, d.storage.name());
    }
    let o = vm.boot()?;
    if o.timed_out {
        return Err(format!("VM killed after {} s (timeout)", a.vm.timeout));
    }
    if o.panicked {
        eprint!("{}", symbolize(&kernel, &o.serial));
    }
    eprintln!(
        "xtask: VM ended after {:.2} s: {}",
        o.elapsed.as_secs_f64(),
        match (o.exit_status, o.panicked) {
            (_, true) => "kernel panic".to_string(),
            (Some(s), _) => format!("workload exit status {s}"),
            (None, _) => format!("no exit status (QEMU status {:?})", o.qemu_status),
        }
    );
    Ok(match o.exit_status {
        Some(0) if !o.panicked => ExitCode::SUCCESS,
        Some(s) if !o.panicked => ExitCode::from(s.min(255) as u8),
        _ => ExitCode::FAILURE,
    })
}
