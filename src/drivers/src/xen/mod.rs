//! Xen PV block front end for HVM/PVH guests.
//!
//! **Status: built completely, tested only against the backend model in
//! this module's host tests (`cargo test -p cairn-drivers`); it has never
//! run on a Xen host** (this workplace's KVM cannot host Xen).
//!
//! | module | owns |
//! |---|---|
//! | here | Xen detection (CPUID), the HVM platform: hypercall page, shared info, grant-table frames, event-channel upcall, xenstore page |
//! | [`grant`] | grant table v1 entries and their free list |
//! | [`ring`] | the blkif shared ring (x86_64 ABI), direct and indirect requests |
//! | [`xenstore`] | the xenstore ring client |
//! | [`blkfront`] | the block device: handshake, requests, completions |
//!
//! The protocol parts reach the hypervisor only through [`XenPlatform`],
//! so the host tests drive them against a model backend and store.
//!
//! **Contexts.** [`init`]: boot or kernel-lock. The upcall handler (irq)
//! scans the pending event bits and runs each port's handler, which only
//! requests its device's bh service. **Locks:** see [`blkfront`]; the
//! port table here is atomics only.

pub mod blkfront;
pub mod grant;
pub mod ring;
pub mod xenstore;

use crate::env::{IrqHandler, env};
use alloc::vec::Vec;
use cairn_block::BlockDevice;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What the front ends need from the hypervisor.
pub trait XenPlatform: Sync {
    /// Signals event channel `port`.
    fn notify(&self, port: u32);
    /// A new port for domain `remote` to bind to; `h` runs (irq context)
    /// when it is signalled.
    fn alloc_unbound(&self, remote: u16, h: IrqHandler) -> Option<u32>;
}

/// The CPUID leaf of Xen's signature, if running on Xen.
pub fn detect() -> Option<u32> {
    for base in (0x4000_0000u32..0x4001_0000).step_by(0x100) {
        let (_, b, c, d) = cairn_pc::cpu::cpuid(base, 0);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&b.to_le_bytes());
        sig[4..8].copy_from_slice(&c.to_le_bytes());
        sig[8..].copy_from_slice(&d.to_le_bytes());
        if &sig == b"XenVMMXenVMM" {
            return Some(base);
        }
    }
    None
}

// Hypercalls and their sub-operations.
const HYPERVISOR_MEMORY_OP: usize = 12;
const HYPERVISOR_EVENT_CHANNEL_OP: usize = 32;
const HYPERVISOR_HVM_OP: usize = 34;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const XENMAPSPACE_GRANT_TABLE: u32 = 1;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const HVMOP_SET_PARAM: u64 = 0;
const HVMOP_GET_PARAM: u64 = 1;
const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
const HVM_PARAM_STORE_PFN: u32 = 1;
const HVM_PARAM_STORE_EVTCHN: u32 = 2;
const DOMID_SELF: u16 = 0x7ff0;
/// Grant-table frames mapped (512 v1 entries each).
const GRANT_FRAMES: usize = 4;
/// Event channel ports with a handler slot.
const PORTS: usize = 256;

/// The HVM platform: hypercall page, shared info, event upcall.
pub struct Hvm {
    hypercall_page: u64,
    shared_info: u64,
}

static HANDLER_FUNCS: [AtomicUsize; PORTS] = [const { AtomicUsize::new(0) }; PORTS];
static HANDLER_ARGS: [AtomicUsize; PORTS] = [const { AtomicUsize::new(0) }; PORTS];
static HVM_PTR: AtomicU64 = AtomicU64::new(0);

impl Hvm {
    /// `hypercall(op, a1, a2)` through the hypercall page.
    fn hypercall(&self, op: usize, a1: u64, a2: u64) -> i64 {
        let entry = self.hypercall_page + (op as u64) * 32;
        let ret: i64;
        // SAFETY: `entry` is the hypercall page's stub for `op`, installed
        // by the hypervisor; the arguments follow the hypercall ABI (rdi,
        // rsi) and point at live structures of this stack frame.
        unsafe {
            core::arch::asm!(
                "call {entry}",
                entry = in(reg) entry,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                lateout("rax") ret,
                lateout("rcx") _, lateout("rdx") _, lateout("r8") _,
                lateout("r9") _, lateout("r10") _, lateout("r11") _,
            );
        }
        ret
    }

    fn add_to_physmap(&self, space: u32, idx: u64, gpfn: u64) -> i64 {
        // struct xen_add_to_physmap: domid u16, size u16, space u32, idx
        // u64, gpfn u64.
        let mut a = [0u64; 3];
        a[0] = u64::from(DOMID_SELF) | (u64::from(space) << 32);
        a[1] = idx;
        a[2] = gpfn;
        self.hypercall(
            HYPERVISOR_MEMORY_OP,
            XENMEM_ADD_TO_PHYSMAP,
            a.as_mut_ptr() as u64,
        )
    }

    fn hvm_param(&self, set: bool, index: u32, value: u64) -> Option<u64> {
        // struct xen_hvm_param: domid u16, pad, index u32, value u64.
        let mut p = [u64::from(DOMID_SELF) | (u64::from(index) << 32), value];
        let op = if set {
            HVMOP_SET_PARAM
        } else {
            HVMOP_GET_PARAM
        };
        (self.hypercall(HYPERVISOR_HVM_OP, op, p.as_mut_ptr() as u64) == 0).then_some(p[1])
    }
}

impl XenPlatform for Hvm {
    fn notify(&self, port: u32) {
        let mut p = [u64::from(port)];
        self.hypercall(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_SEND,
            p.as_mut_ptr() as u64,
        );
    }

    fn alloc_unbound(&self, remote: u16, h: IrqHandler) -> Option<u32> {
        // struct evtchn_alloc_unbound: dom u16, remote_dom u16, port u32.
        let mut a = [u64::from(DOMID_SELF) | (u64::from(remote) << 16)];
        if self.hypercall(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_ALLOC_UNBOUND,
            a.as_mut_ptr() as u64,
        ) != 0
        {
            return None;
        }
        let port = (a[0] >> 32) as u32;
        let slot = port as usize;
        if slot >= PORTS {
            return None;
        }
        HANDLER_ARGS[slot].store(h.arg, Ordering::Relaxed);
        HANDLER_FUNCS[slot].store(h.func as usize, Ordering::Release);
        Some(port)
    }
}

/// The event-channel upcall (irq context): runs the handler of every
/// pending, unmasked port.
fn upcall(_: usize) {
    let p = HVM_PTR.load(Ordering::Acquire);
    if p == 0 {
        return;
    }
    // SAFETY: `HVM_PTR` holds a leaked `Hvm` set once by `init`.
    let hvm = unsafe { &*(p as *const Hvm) };
    let si = hvm.shared_info;
    // vcpu_info[0]: upcall_pending u8 @0, pending_sel u64 @8; shared_info:
    // evtchn_pending[64] @2048, evtchn_mask[64] @2560.
    // SAFETY: the shared-info page mapped by `init`; the atomics follow
    // the hypervisor's protocol (clear the selector, then the bits).
    unsafe {
        (si as *mut u8).write_volatile(0);
        let sel = (*((si + 8) as *const AtomicU64)).swap(0, Ordering::AcqRel);
        for w in 0..64 {
            if sel & (1 << w) == 0 {
                continue;
            }
            let pending = &*((si + 2048 + 8 * w) as *const AtomicU64);
            let mask = (*((si + 2560 + 8 * w) as *const AtomicU64)).load(Ordering::Acquire);
            let bits = pending.load(Ordering::Acquire) & !mask;
            pending.fetch_and(!bits, Ordering::AcqRel);
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    let port = (w * 64 + b) as usize;
                    if port < PORTS {
                        let f = HANDLER_FUNCS[port].load(Ordering::Acquire);
                        if f != 0 {
                            let f: fn(usize) = core::mem::transmute::<usize, fn(usize)>(f);
                            f(HANDLER_ARGS[port].load(Ordering::Relaxed));
                        }
                    }
                }
            }
        }
    }
}

/// On a Xen HVM/PVH guest: sets up the platform and every vbd. Never run on
/// a Xen host yet.
pub fn init() -> Vec<&'static dyn BlockDevice> {
    let mut out: Vec<&'static dyn BlockDevice> = Vec::new();
    let Some(base) = detect() else { return out };
    let e = env();
    let (pages, msr, _, _) = {
        let (a, b, c, d) = cairn_pc::cpu::cpuid(base + 2, 0);
        (a, b, c, d)
    };
    let Some(hc) = e.dma_alloc(4096 * pages.max(1) as usize) else {
        return out;
    };
    // SAFETY: the MSR Xen names in CPUID leaf base+2 takes the physical
    // address of a page to fill with hypercall stubs.
    unsafe { cairn_pc::cpu::wrmsr(msr, hc.phys) };
    let (Some(si), Some(gt)) = (e.dma_alloc(4096), e.dma_alloc(4096 * GRANT_FRAMES)) else {
        return out;
    };
    let hvm: &'static Hvm = cairn_sync::cpu::bh_safe_alloc(|| {
        alloc::boxed::Box::leak(alloc::boxed::Box::new(Hvm {
            hypercall_page: hc.virt,
            shared_info: si.virt,
        }))
    });
    if hvm.add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, si.phys >> 12) != 0 {
        crate::dlog!(Error, "xen: cannot map shared info");
        return out;
    }
    for i in 0..GRANT_FRAMES {
        if hvm.add_to_physmap(
            XENMAPSPACE_GRANT_TABLE,
            i as u64,
            (gt.phys >> 12) + i as u64,
        ) != 0
        {
            crate::dlog!(Error, "xen: cannot map grant frame {i}");
            return out;
        }
    }
    HVM_PTR.store(hvm as *const Hvm as u64, Ordering::Release);
    let Some(vector) = e.alloc_vector(IrqHandler {
        func: upcall,
        arg: 0,
    }) else {
        return out;
    };
    if hvm
        .hvm_param(true, HVM_PARAM_CALLBACK_IRQ, (2 << 56) | u64::from(vector))
        .is_none()
    {
        crate::dlog!(Error, "xen: cannot set the upcall vector");
        return out;
    }
    let (Some(store_pfn), Some(store_port)) = (
        hvm.hvm_param(false, HVM_PARAM_STORE_PFN, 0),
        hvm.hvm_param(false, HVM_PARAM_STORE_EVTCHN, 0),
    ) else {
        return out;
    };
    // SAFETY: the mapped grant frames hold GRANT_FRAMES * 512 entries and
    // belong to this table only.
    let table = unsafe {
        grant::GrantTable::new(gt.virt as *mut grant::Entry, (GRANT_FRAMES * 512) as u32)
    };
    let grants: &'static blkfront::Grants = cairn_sync::cpu::bh_safe_alloc(|| {
        alloc::boxed::Box::leak(alloc::boxed::Box::new(blkfront::Grants::new(table)))
    });
    // SAFETY: the xenstore page Xen names in HVM_PARAM_STORE_PFN.
    let iface = unsafe { xenstore::Interface::new(e.phys_to_virt(store_pfn << 12) as *mut u8) };
    let kick = || hvm.notify(store_port as u32);
    let wait = || env().delay_us(100);
    let mut xs = xenstore::Client::new(&iface, &kick, &wait);
    let vbds = xs.directory("device/vbd").unwrap_or_default();
    for (i, v) in vbds.iter().enumerate() {
        match blkfront::probe(hvm, grants, &mut xs, v, i) {
            Ok(d) => out.push(d),
            Err(err) => crate::dlog!(Error, "xen vbd {v}: {err:?}"),
        }
    }
    out
}

#[cfg(test)]
mod model;
