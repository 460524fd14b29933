//! The block layer: one asynchronous request interface for every storage
//! driver (virtio-blk, ata-pci, pvscsi, xen blkfront), and volumes (whole
//! disks and MBR partitions) on top of it.
//!
//! | item | role |
//! |---|---|
//! | [`Request`] | read / write / flush of a sector range over a scatter-gather list of physical segments, with a completion |
//! | [`Status`] | how a request ended: ok, I/O error, out of range, unsupported |
//! | [`BlockDevice`] | what a driver implements: `info` and a non-blocking `submit` |
//! | [`Volume`] | a sector window of a device (whole disk or partition) |
//! | [`mbr`] | the MBR partition table parser |
//! | [`WriteCache`] | which completed writes a device may not have made durable yet (a sync flushes only then) |
//!
//! **Contexts.** `submit` is called in kernel-lock or bh context and never
//! blocks; a driver's interrupt handler only acknowledges the device and
//! queues its bh service, which completes finished requests. Every
//! completion runs exactly once, in bh context, never inside `submit`.
//! Because completions (and with them the request) are dropped in bh
//! context, requests are built inside `cairn_sync::cpu::bh_safe_alloc`
//! (the constructors here do it), never from the kernel-lock-only general
//! heap.
//!
//! Takes no locks itself; drivers document theirs.
#![no_std]

extern crate alloc;
#[cfg(not(target_os = "none"))]
extern crate std;

pub mod mbr;
mod request;
mod volume;
mod write_cache;

pub use request::{Completion, Op, Request, SECTOR_SIZE, Segment, Status};
pub use volume::Volume;
pub use write_cache::WriteCache;

use alloc::string::String;

/// What a driver reports about its device.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Short unique name, e.g. `virtio-blk0`, `ata0.0`, `pvscsi0:1:0`.
    pub name: String,
    /// Model or product string from the device, if it has one.
    pub model: String,
    /// Capacity in 512-byte sectors.
    pub sectors: u64,
    /// Requests the driver keeps in flight at once.
    pub queue_depth: u32,
    /// Most segments one request may carry.
    pub max_segments: u32,
    /// Most sectors one request may carry.
    pub max_sectors: u32,
    /// Whether the device has a volatile write cache to flush. When false a
    /// flush completes `Ok` without reaching the device.
    pub flush: bool,
}

/// A storage driver's device.
pub trait BlockDevice: Send + Sync {
    fn info(&self) -> &DeviceInfo;

    /// Queues `request` without blocking. It completes later, once, in bh
    /// context; a request the device cannot take yet waits in the driver.
    /// Requests out of range, misaligned or too large complete with
    /// [`Status::OutOfRange`] (or [`Status::Unsupported`]) the same way.
    fn submit(&self, request: Request);

    /// The device's write-cache state, which its volumes tag every request
    /// with; `None` (the default): unknown, so every sync flushes.
    fn write_cache(&self) -> Option<&alloc::sync::Arc<WriteCache>> {
        None
    }
}
