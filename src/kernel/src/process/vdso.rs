//! The vDSO in a program's address space: `linux-vdso.so.1` (built from
//! `vdso/vdso.rs` by `build.rs`; clock_gettime, gettimeofday, time and
//! getcpu in user mode) mapped read-execute at a random page between the
//! mmap area and the stack, with its data page (`__vvar_page`: the clock
//! parameters of `time::vdso_params`) mapped read-only right after it.
//! `exec` passes its address as `AT_SYSINFO_EHDR`.
//!
//! Kernel-lock context, at program start (exec). Takes the `aspace` lock
//! through `AddressSpace`.

use super::Process;
use super::aspace::PAGE;
use super::exec::{STACK_SIZE, STACK_TOP, StartError};
use alloc::format;
use cairn_unix::elf::ElfImage;
use cairn_unix::prot::Prot;
use cairn_unix::vmap::{Layout, MapRequest, Placement, Share, VmapKind};

/// The shared object.
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// Layout version of the data page (`vdso.rs`'s `Data`).
const DATA_VERSION: u64 = 1;

/// The data page's bytes.
fn data_page() -> [u8; PAGE as usize] {
    let (tsc_base, ns_per_tsc, realtime_base) = crate::time::vdso_params();
    let mut b = [0u8; PAGE as usize];
    for (i, v) in [DATA_VERSION, tsc_base, ns_per_tsc, realtime_base]
        .into_iter()
        .enumerate()
    {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// Maps the vDSO and its data page into `p`; returns the vDSO's address.
pub fn map(p: &Process) -> Result<u64, StartError> {
    let elf = ElfImage::parse(IMAGE, IMAGE.len() as u64).map_err(|e| format!("the vDSO: {e}"))?;
    let (lo, hi) = elf.span();
    let len = hi - lo + PAGE;
    // Between the mmap area (plus a gigabyte) and the stack (minus one).
    let low = Layout::default().mmap_top + (1 << 30);
    let high = STACK_TOP - STACK_SIZE - (1 << 30) - len;
    let base = low + super::exec::random_offset(high - low, PAGE);
    let plan = elf.plan(base - lo).map_err(|e| format!("the vDSO: {e}"))?;
    super::exec::map_image(p, &plan, IMAGE, "the vDSO")?;
    let data_at = base + (hi - lo);
    p.aspace
        .with_vmaps(|v| {
            v.mmap(MapRequest {
                len: PAGE,
                prot: Prot::READ,
                max_prot: Prot::READ,
                share: Share::Private,
                kind: VmapKind::Anonymous,
                placement: Placement::FixedNoReplace(data_at),
            })
        })
        .map_err(|e| format!("mapping the vDSO's data: errno {}", e.raw()))?;
    p.aspace
        .populate(data_at, &data_page(), Prot::READ)
        .map_err(|e| format!("the vDSO's data: errno {}", e.raw()))?;
    Ok(base)
}
