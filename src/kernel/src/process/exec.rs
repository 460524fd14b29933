//! Starting the program: read its ELF from the root filesystem, map its
//! segments, build the initial stack (argv, envp, auxv) and start its
//! first thread.
//!
//! Kernel-lock context, in the kernel's main thread.

use super::aspace::PAGE;
use super::{PROCESS, Process};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use cairn_unix::elf::{ElfImage, ElfKind};
use cairn_unix::prot::Prot;
use cairn_unix::stack::{Ids, PhdrSource, StartInfo};
use cairn_unix::vmap::{MapRequest, Placement, Share, VmapKind};

/// Top of the main thread's stack.
pub const STACK_TOP: u64 = 0x7ffd_0000_0000;
/// Size of the main thread's stack area.
pub const STACK_SIZE: u64 = 8 << 20;
/// Where a static-pie program is placed.
const PIE_BIAS: u64 = 0x5555_5555_4000 & !(PAGE - 1);

/// Why the program could not start (printed, then the run ends).
pub type StartError = String;

fn random_bytes() -> [u8; 16] {
    let mut r = [0u8; 16];
    for chunk in r.chunks_mut(8) {
        chunk.copy_from_slice(&crate::syscall::misc::random_u64().to_le_bytes());
    }
    r
}

/// Loads `path` with `argv`/`envp` and starts its first thread.
pub fn start(path: &[u8], argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Result<(), StartError> {
    let mount = crate::fs::root().ok_or("no root filesystem")?;
    let ino = mount
        .fs()
        .resolve(path, true)
        .map_err(|e| alloc::format!("program {}: {e:?}", String::from_utf8_lossy(path)))?;
    let file = mount.file(ino);
    let size = mount
        .fs()
        .length(ino)
        .map_err(|e| alloc::format!("{e:?}"))?;
    let mut image = vec![0u8; size as usize];
    let n = mount
        .read_kernel(&file, 0, &mut image)
        .map_err(|e| alloc::format!("reading the program: errno {}", e.0))?;
    image.truncate(n);
    let elf = ElfImage::parse(&image, n as u64).map_err(|e| alloc::format!("{e}"))?;
    let bias = if elf.kind() == ElfKind::StaticPie {
        PIE_BIAS
    } else {
        0
    };
    let plan = elf.plan(bias).map_err(|e| alloc::format!("{e}"))?;
    let p: &Process = PROCESS.call_once(|| Process::new(plan.brk_start));
    crate::special::proc::set_program(
        path,
        argv,
        plan.regions().iter().map(|r| (r.start, r.end)).collect(),
    );
    crate::syscall::sys::program_started();
    for r in plan.regions() {
        let mapped = p
            .aspace
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
                alloc::format!("mapping {:#x}..{:#x}: errno {}", r.start, r.end, e.raw())
            })?;
        debug_assert_eq!(mapped.addr, r.start);
        let mut page = r.start;
        while page < r.end {
            let mut bytes = [0u8; PAGE as usize];
            for f in plan.page_fills(page) {
                let (from, to) = (f.file_offset as usize, f.page_offset as usize);
                bytes[to..to + f.len as usize].copy_from_slice(&image[from..from + f.len as usize]);
            }
            p.aspace
                .populate(page, &bytes, r.prot)
                .map_err(|e| alloc::format!("loading page {page:#x}: errno {}", e.raw()))?;
            page += PAGE;
        }
    }
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
        .map_err(|e| alloc::format!("mapping the stack: errno {}", e.raw()))?;
    let argv_refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let envp_refs: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
    let phdr_copy;
    let phdrs = match plan.phdrs.addr {
        Some(a) => PhdrSource::Mapped(a),
        None => {
            let off = plan.phdrs.file_offset as usize;
            phdr_copy = image[off..off + plan.phdrs.count as usize * 56].to_vec();
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
        ids: Ids::default(),
        random: random_bytes(),
        hwcap: u64::from(cairn_pc::cpu::cpuid(1, 0).3),
        hwcap2: None,
        minsigstksz: None,
    };
    let stack = cairn_unix::stack::build(&info, STACK_TOP, (STACK_SIZE / 2) as usize)
        .map_err(|e| alloc::format!("building the stack: {e:?}"))?;
    crate::user::copy_to_user(stack.base, &stack.bytes).map_err(|_| "writing the stack")?;
    let regs = crate::user::UserRegs {
        rip: plan.entry,
        rsp: stack.rsp,
        rflags: crate::user::entry::USER_RFLAGS,
        ..Default::default()
    };
    super::spawn_thread(regs, 0);
    Ok(())
}
