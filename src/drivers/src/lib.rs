//! Block device drivers behind `cairn_block`'s one asynchronous request
//! interface, their completions running in bh context.
//!
//! | module | device | status |
//! |---|---|---|
//! | [`virtio_blk`] | virtio-blk over PCI (modern), MSI-X or INTx | tested in QEMU |
//! | [`ata`] | PIIX IDE (`-M pc`): PIO and bus-master DMA, both channels | tested in QEMU |
//! | [`pvscsi`] | VMware PVSCSI: request/completion rings, SCSI disks | tested in QEMU |
//! | [`xen`] | Xen blkfront: hypercalls, grant table, event channel, xenstore, blkif ring | host-tested against a backend model only; never run on a Xen host |
//!
//! **Kernel services** come through [`env::DriverEnv`], installed by the
//! kernel at boot.
//!
//! **Contexts** (DESIGN.md §2), the same for every driver:
//!
//! * `probe`: boot or kernel-lock context.
//! * `submit`: kernel-lock or bh context; never blocks, never completes a
//!   request itself. A request the device cannot take yet waits in the
//!   driver's queue; a malformed or out-of-range one goes to the driver's
//!   finished list with its error status, and the bh service completes it.
//! * interrupt handler (irq context): acknowledges the device and requests
//!   the device's bh service through its [`BhService`] — one coalesced bhqueue
//!   item per device (a pending flag), never one per request. It takes no
//!   lock.
//! * bh service (bh context, any CPU, kernel lock not held): harvests
//!   finished requests under the device lock, completes them with the lock
//!   released (`Request::complete` runs the submitter's completion), then
//!   issues waiting requests.
//!
//! **Locks.** Each device has one `IrqSpinLock` (class `drivers.<name>`)
//! over its rings and queues, taken in kernel-lock and bh context, never in
//! irq context and never while a completion runs. Below it only leaf locks
//! (heaps, console, the kernel's `pci.config`).
//!
//! **Memory.** Everything a completion path may free is allocated inside
//! `cairn_sync::cpu::bh_safe_alloc` (driver queues, indirect descriptor
//! lists) or is DMA memory; nothing the bh service frees comes from the
//! kernel-lock-only `general` heap (the bug class of seeds/003).
#![no_std]

extern crate alloc;
#[cfg(not(target_os = "none"))]
extern crate std;

pub mod ata;
pub mod env;
pub mod pvscsi;
pub mod virtio_blk;
pub mod xen;

use cairn_block::{Request, Status};
use cairn_sync::BhWork;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The coalesced bh service of one device: a pending flag and the work item
/// that runs the service. Any context.
pub struct BhService {
    pending: AtomicBool,
    /// bhqueue refusals (a full queue is a visible error).
    refused: AtomicU64,
    /// Times the service was queued.
    queued: AtomicU64,
}

impl BhService {
    pub const fn new() -> Self {
        BhService {
            pending: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    /// Queues `run(arg)` on the bhqueue unless it is already pending.
    pub fn request(&self, run: fn(usize), arg: usize) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if env::env().schedule_bh(BhWork::new(run, arg)) {
            self.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            // Counted and reported by the run loop; the next interrupt or
            // submit tries again.
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.pending.store(false, Ordering::Release);
        }
    }

    /// Called first by the service: a request after this point queues the
    /// service again, so no completion is missed.
    pub fn begin(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// (times queued, bhqueue refusals).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.queued.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

impl Default for BhService {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-device counters, readable from any context.
#[derive(Default)]
pub struct Stats {
    pub submitted: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub interrupts: AtomicU64,
    /// Requests that had to wait in the driver queue.
    pub queued: AtomicU64,
}

impl Stats {
    pub const fn new() -> Self {
        Stats {
            submitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interrupts: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Completes the finished requests `next` hands out, one at a time,
    /// counting them and their errors. `next` takes and releases the
    /// driver's lock on each call, so no driver lock is held while a
    /// completion runs (bh context).
    fn complete_each(&self, mut next: impl FnMut() -> Option<(Request, Status)>) {
        while let Some((r, status)) = next() {
            Self::count(&self.completed);
            if !status.is_ok() {
                Self::count(&self.errors);
            }
            r.complete(status);
        }
    }
}

/// Builds a device name from a prefix and index without `format!` in the
/// hot path (probe only).
pub(crate) fn name(prefix: &str, rest: core::fmt::Arguments<'_>) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::from(prefix);
    let _ = s.write_fmt(rest);
    s
}

/// Copies an ATA/SCSI-style ASCII field, trimming spaces and NULs.
pub(crate) fn ascii(bytes: &[u8]) -> alloc::string::String {
    let s: alloc::string::String = bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    alloc::string::String::from(s.trim())
}
