//! Starting the program: read its ELF from the root filesystem, and its
//! dynamic loader (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) if it
//! names one, map their segments, map the vDSO (`vdso.rs`), build the initial stack
//! (argv, envp, auxv) and start the first thread — at the loader's entry
//! for a dynamically linked program, which then maps the libraries itself
//! through `mmap`.
//!
//! Placement (Linux's layout, randomised as Linux does): an `ET_EXEC`
//! program at its own addresses; a position-independent one (a PIE or a
//! static-pie) at [`PIE_BASE`] plus a random page-aligned offset below
//! [`PIE_RANDOM`]; the loader and the vDSO below the top of the mmap area
//! (`Layout::mmap_top`) at random distances below [`LOADER_RANDOM`], so
//! that the libraries the loader maps top-down land above it.
//!
//! Everything is checked before the process is created: a file that is not
//! a usable x86-64 ELF program (or whose loader is missing or unusable)
//! gives a message naming the file and what is wrong, and the kernel ends
//! the run (`main.rs`) with a shell's status: 127 when the program or its
//! loader does not exist, 126 when it cannot be run — never a panic.
//!
//! Kernel-lock context, in the kernel's main thread. Takes the `aspace`
//! lock (through `AddressSpace`) while mapping; reads files through the
//! pagecache (sleeping) with no lock held.

use super::aspace::PAGE;
use super::{PROCESS, Process};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use cairn_unix::elf::{ElfImage, ElfKind, LoadPlan, PHDR_SIZE};
use cairn_unix::prot::Prot;
use cairn_unix::stack::{Ids, PhdrSource, StartInfo};
use cairn_unix::vmap::{Layout, MapRequest, Placement, Share, VmapKind};

/// Top of the main thread's stack.
pub const STACK_TOP: u64 = 0x7ffd_0000_0000;
/// Size of the main thread's stack area.
pub const STACK_SIZE: u64 = 8 << 20;
/// Lowest address of a position-independent program (Linux's
/// `ELF_ET_DYN_BASE` on x86-64).
pub const PIE_BASE: u64 = 0x5555_5555_4000;
/// A position-independent program goes at most this far above
/// [`PIE_BASE`].
pub const PIE_RANDOM: u64 = 1 << 30;
/// The dynamic loader and the vDSO go at most this far below the top of
/// the mmap area.
pub const LOADER_RANDOM: u64 = 1 << 32;
/// Largest program or loader file read at start (the whole file is read).
const MAX_IMAGE: u64 = 1 << 30;

/// Why the program could not start (printed, then the run ends with
/// `status`).
#[derive(Debug)]
pub struct StartError {
    /// What went wrong, naming the file.
    pub message: String,
    /// The run's exit status: [`NOT_FOUND`] or [`CANNOT_RUN`].
    pub status: u32,
}

/// Exit status when the program or its loader does not exist (a shell's
/// "command not found").
pub const NOT_FOUND: u32 = 127;
/// Exit status when it exists but cannot be run.
pub const CANNOT_RUN: u32 = 126;

impl StartError {
    /// A program that cannot be run.
    pub fn cannot(message: String) -> StartError {
        StartError {
            message,
            status: CANNOT_RUN,
        }
    }
}

impl From<String> for StartError {
    fn from(message: String) -> StartError {
        StartError::cannot(message)
    }
}

impl From<&str> for StartError {
    fn from(message: &str) -> StartError {
        StartError::cannot(message.into())
    }
}

fn random_bytes() -> [u8; 16] {
    let mut r = [0u8; 16];
    for chunk in r.chunks_mut(8) {
        chunk.copy_from_slice(&crate::syscall::misc::random_u64().to_le_bytes());
    }
    r
}

/// A random multiple of `align` (a power of two) below `range`.
pub(super) fn random_offset(range: u64, align: u64) -> u64 {
    (crate::syscall::misc::random_u64() % range) & !(align - 1)
}

/// The whole of file `path` of the root filesystem; `Err` with whether
/// the file does not exist.
fn read_file(path: &[u8]) -> Result<Vec<u8>, (String, bool)> {
    let mount = crate::fs::root().ok_or(("no root filesystem".into(), false))?;
    let ino = mount.fs().resolve(path, true).map_err(|e| {
        (
            format!("{e}"),
            matches!(e, cairn_tfs::FsError::NoEnt | cairn_tfs::FsError::NotDir),
        )
    })?;
    let other = |e: String| (e, false);
    let st = mount.fs().stat(ino).map_err(|e| other(format!("{e}")))?;
    if st.kind != cairn_tfs::fs::FileType::Regular {
        return Err(other("not a regular file".into()));
    }
    let size = st.size;
    if size > MAX_IMAGE {
        return Err(other(format!("too large ({size} bytes)")));
    }
    let file = mount.file(&mut mount.fs(), ino);
    let mut image = vec![0u8; size as usize];
    let n = mount
        .read_kernel(&file, 0, &mut image)
        .map_err(|e| other(format!("read error (errno {})", e.0)))?;
    image.truncate(n);
    Ok(image)
}

/// A program or loader read and checked, not yet placed.
struct Image {
    path: Vec<u8>,
    bytes: Vec<u8>,
    elf: ElfImage,
}

impl Image {
    fn read(path: &[u8], what: &str) -> Result<Image, StartError> {
        let name = String::from_utf8_lossy(path);
        let bytes = read_file(path).map_err(|(e, missing)| StartError {
            message: format!("{what} {name}: {e}"),
            status: if missing { NOT_FOUND } else { CANNOT_RUN },
        })?;
        let elf = ElfImage::parse(&bytes, bytes.len() as u64)
            .map_err(|e| StartError::cannot(format!("{what} {name}: {e}")))?;
        Ok(Image {
            path: path.to_vec(),
            bytes,
            elf,
        })
    }

    fn name(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// Places it: `ET_EXEC` at its addresses, `ET_DYN` at `base` plus a
    /// random offset below `random` (aligned as the image asks).
    fn plan(&self, base: u64, random: u64) -> Result<LoadPlan, StartError> {
        let bias = match self.elf.kind() {
            ElfKind::Exec => 0,
            ElfKind::Dyn => {
                let align = self.elf.load_align();
                let lo = self.elf.span().0;
                (base + random_offset(random, align)).next_multiple_of(align) - lo
            }
        };
        self.elf
            .plan(bias)
            .map_err(|e| StartError::cannot(format!("{}: {e}", self.name())))
    }
}

/// Maps `plan`'s regions and copies the file's bytes into them.
pub(super) fn map_image(
    p: &Process,
    plan: &LoadPlan,
    image: &[u8],
    name: &str,
) -> Result<(), StartError> {
    for r in plan.regions() {
        p.aspace
            .with_vmaps(|v| {
                v.mmap(MapRequest {
                    len: r.end - r.start,
                    prot: r.prot,
                    max_prot: Prot::ALL,
                    share: Share::Private,
                    kind: VmapKind::Anonymous,
                    placement: Placement::FixedNoReplace(r.start),
                })
            })
            .map_err(|e| {
                format!(
                    "{name}: mapping {:#x}..{:#x}: errno {}",
                    r.start,
                    r.end,
                    e.raw()
                )
            })?;
        let mut page = r.start;
        while page < r.end {
            let mut bytes = [0u8; PAGE as usize];
            for f in plan.page_fills(page) {
                let (from, to) = (f.file_offset as usize, f.page_offset as usize);
                bytes[to..to + f.len as usize].copy_from_slice(&image[from..from + f.len as usize]);
            }
            p.aspace
                .populate(page, &bytes, r.prot)
                .map_err(|e| format!("{name}: loading page {page:#x}: errno {}", e.raw()))?;
            page += PAGE;
        }
    }
    Ok(())
}

/// Loads `path` with `argv`/`envp` and starts its first thread.
pub fn start(path: &[u8], argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Result<(), StartError> {
    let program = Image::read(path, "program")?;
    let interp = match program
        .elf
        .interp_path(&program.bytes)
        .map_err(|e| StartError::cannot(format!("program {}: {e}", program.name())))?
    {
        None => None,
        Some(loader) => {
            let i = Image::read(loader, "interpreter").map_err(|e| StartError {
                message: format!(
                    "{} (the dynamic loader program {} names)",
                    e.message,
                    program.name()
                ),
                status: e.status,
            })?;
            if i.elf.interp().is_some() {
                return Err(StartError::cannot(format!(
                    "interpreter {}: names an interpreter itself (it must be a static or static-pie program)",
                    i.name()
                )));
            }
            Some(i)
        }
    };
    let plan = program.plan(PIE_BASE, PIE_RANDOM)?;
    let mmap_top = Layout::default().mmap_top;
    let interp_plan = match &interp {
        Some(i) => {
            let (lo, hi) = i.elf.span();
            let below = mmap_top - (hi - lo) - LOADER_RANDOM;
            Some(i.plan(below, LOADER_RANDOM)?)
        }
        None => None,
    };
    let p: &Process = PROCESS.call_once(|| Process::new(plan.brk_start));
    crate::special::proc::set_program(
        path,
        argv,
        plan.regions().iter().map(|r| (r.start, r.end)).collect(),
    );
    crate::syscall::sys::program_started();
    map_image(p, &plan, &program.bytes, &program.name())?;
    let (start_at, base) = match (&interp, &interp_plan) {
        (Some(i), Some(ip)) => {
            map_image(p, ip, &i.bytes, &i.name())?;
            (ip.entry, ip.bias + i.elf.span().0)
        }
        _ => (plan.entry, 0),
    };
    let vdso = super::vdso::map(p)?;
    // The stack: an area the faults fill, with the start-up image on top.
    let stack_prot = if plan.exec_stack { Prot::ALL } else { Prot::RW };
    p.aspace
        .with_vmaps(|v| {
            v.mmap(MapRequest {
                len: STACK_SIZE,
                prot: stack_prot,
                max_prot: Prot::ALL,
                share: Share::Private,
                kind: VmapKind::Anonymous,
                placement: Placement::FixedNoReplace(STACK_TOP - STACK_SIZE),
            })
        })
        .map_err(|e| format!("mapping the stack: errno {}", e.raw()))?;
    let argv_refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let envp_refs: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
    let phdr_copy;
    let phdrs = match plan.phdrs.addr {
        Some(a) => PhdrSource::Mapped(a),
        None => {
            let off = plan.phdrs.file_offset as usize;
            phdr_copy = program.bytes[off..off + plan.phdrs.count as usize * PHDR_SIZE].to_vec();
            PhdrSource::Copy(&phdr_copy)
        }
    };
    let info = StartInfo {
        argv: &argv_refs,
        envp: &envp_refs,
        execfn: path,
        phdrs,
        phnum: plan.phdrs.count,
        entry: plan.entry,
        base,
        sysinfo_ehdr: Some(vdso),
        ids: Ids::default(),
        random: random_bytes(),
        hwcap: u64::from(cairn_pc::cpu::cpuid(1, 0).3),
        hwcap2: None,
        minsigstksz: None,
    };
    let stack = cairn_unix::stack::build(&info, STACK_TOP, (STACK_SIZE / 2) as usize)
        .map_err(|e| format!("building the stack: {e:?}"))?;
    crate::user::copy_to_user(stack.base, &stack.bytes).map_err(|_| "writing the stack")?;
    let regs = crate::user::UserRegs {
        rip: start_at,
        rsp: stack.rsp,
        rflags: crate::user::entry::USER_RFLAGS,
        ..Default::default()
    };
    super::spawn_thread(regs, 0).map_err(|e| format!("starting its thread: {e:?}"))?;
    Ok(())
}
