//! Block device drivers behind `cairn_block`'s one asynchronous request
//! interface, their completions running in bh context.
//!
//! | module | device | status |
//! |---|---|---|
//! | [`virtio::blk`] | virtio-blk over PCI (modern), MSI-X or INTx | tested in QEMU |
//! | [`ata`] | PIIX IDE (`-M pc`): PIO and bus-master DMA, both channels | tested in QEMU |
//! | [`pvscsi`] | VMware PVSCSI: request/completion rings, SCSI disks | tested in QEMU |
//! | [`virtio::scsi`] | virtio-scsi: targets and LUNs, sense data, event queue | tested in QEMU |
//! | [`nvme`] | NVMe: admin queue, one I/O queue pair and MSI-X vector per vCPU, PRP lists, namespaces | tested in QEMU |
//! | [`virtio::net`] | virtio-net (not a block device): receive and transmit rings polled by the kernel's network stack, MSI-X or INTx | tested in QEMU (user networking) |
//! | [`xen`] | Xen blkfront: hypercalls, grant table, event channel, xenstore, blkif ring | host-tested against a backend model only; never run on a Xen host |
//!
//! | shared piece | owns |
//! |---|---|
//! | [`queue`] | the driver queue skeleton every driver runs on: validate, queue when full, issue, harvest, complete outside the lock |
//! | [`scsi`] | CDBs, sense data, status outcomes and the LUN probe of the SCSI hosts |
//! | [`virtio`] | the virtio PCI transport, interrupts and command rings |
//! | [`pci`] | memory BARs and MSI-X tables |
//! | [`env`] | [`env::DriverEnv`]: the kernel services, installed at boot |
//!
//! **Contexts** (DESIGN.md §2), the same for every driver (the skeleton's,
//! see [`queue`]):
//!
//! * `probe`: boot or kernel-lock context.
//! * `submit`: kernel-lock or bh context; never blocks, never completes a
//!   request itself. A request the device cannot take yet waits in the
//!   driver queue; a malformed or out-of-range one goes to the finished
//!   list with its error status, and the bh service completes it.
//! * interrupt handler (irq context): acknowledges the device and hands
//!   over to its queue, which requests the queue's bh service — one
//!   coalesced bhqueue item per queue (a pending flag), never one per
//!   request. It takes no lock.
//! * bh service (bh context, any CPU, kernel lock not held): harvests
//!   finished requests under the queue lock, completes them with the lock
//!   released (`Request::complete` runs the submitter's completion), then
//!   issues waiting requests.
//!
//! **Locks.** Each hardware queue has one `IrqSpinLock` (class
//! `drivers.<name>`) over its rings and lists, taken in kernel-lock and bh
//! context, never in irq context and never while a completion runs. Below
//! it only leaf locks (heaps, console, the kernel's `pci.config`, Xen's
//! grant table).
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
pub mod nvme;
pub mod pci;
pub mod pvscsi;
pub mod queue;
pub mod scsi;
#[cfg(test)]
mod testenv;
pub mod virtio;
pub mod xen;

pub use queue::{BhService, DriverQueue, Hardware, Harvest, Issue, Stats};

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
