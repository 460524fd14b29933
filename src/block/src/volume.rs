//! Volumes: a window of sectors on a device (a whole disk or one MBR
//! partition) that filesystems mount.
//!
//! Submitting is callable in kernel-lock or bh context; no locks.

use crate::request::{Op, Request};
use crate::{BlockDevice, DeviceInfo};
use alloc::string::String;
use alloc::sync::Arc;

/// Sectors `first .. first + sectors` of a device.
#[derive(Clone)]
pub struct Volume {
    device: Arc<dyn BlockDevice>,
    first: u64,
    sectors: u64,
    name: String,
}

impl Volume {
    /// The whole device.
    pub fn whole(device: Arc<dyn BlockDevice>) -> Self {
        let info = device.info();
        let (sectors, name) = (info.sectors, info.name.clone());
        Volume {
            device,
            first: 0,
            sectors,
            name,
        }
    }

    /// A window of `device`; `None` if it does not fit on the device.
    pub fn window(
        device: Arc<dyn BlockDevice>,
        first: u64,
        sectors: u64,
        name: String,
    ) -> Option<Self> {
        let end = first.checked_add(sectors)?;
        (sectors > 0 && end <= device.info().sectors).then_some(Volume {
            device,
            first,
            sectors,
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// First sector on the device.
    pub fn first_sector(&self) -> u64 {
        self.first
    }

    /// Whether a sync must flush the device: a write completed since the
    /// last flush (or the device does not say).
    pub fn needs_flush(&self) -> bool {
        self.device.write_cache().is_none_or(|c| c.needs_flush())
    }

    /// Flushes submitted to the device so far, if it counts them.
    pub fn flushes(&self) -> Option<u64> {
        self.device.write_cache().map(|c| c.flushes())
    }

    pub fn device_info(&self) -> &DeviceInfo {
        self.device.info()
    }

    /// Submits `request`, whose sectors are relative to the volume. A range
    /// outside the volume is moved past the device's end, so the driver
    /// fails it with [`Status::OutOfRange`](crate::Status::OutOfRange) in bh context like any other
    /// (completions never run inside `submit`).
    pub fn submit(&self, mut request: Request) {
        if let Some(cache) = self.device.write_cache() {
            request.track(cache);
        }
        if request.op != Op::Flush {
            let inside = request
                .sector
                .checked_add(request.sectors)
                .is_some_and(|end| end <= self.sectors);
            if inside {
                request.offset_by(self.first);
            } else {
                request.sector = u64::MAX;
            }
        }
        self.device.submit(request);
    }
}

impl core::fmt::Debug for Volume {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Volume({} sectors {}..{})",
            self.name,
            self.first,
            self.first + self.sectors
        )
    }
}
