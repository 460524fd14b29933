//! The blocking storage interface TFS runs on ([`BlockDevice`]), an
//! in-memory device for tools and tests ([`MemDevice`]) and the
//! partition/offset adapter ([`Partition`]).
//!
//! Runs in kernel-lock/thread context only and takes no locks itself; a
//! kernel implementation of [`BlockDevice`] blocks the calling thread on its
//! asynchronous block layer (releasing the kernel lock while it waits).

use crate::error::IoError;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Bytes in a sector, the unit of every device request.
pub const SECTOR_SIZE: usize = 512;

/// A blocking block device addressed in 512-byte sectors.
pub trait BlockDevice {
    /// Size of the device in 512-byte sectors.
    fn sector_count(&self) -> u64;
    /// Reads `buf.len() / 512` sectors starting at `sector`.
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `buf.len() / 512` sectors starting at `sector`.
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Makes every completed write durable (a write barrier).
    fn flush(&self) -> Result<(), IoError>;
}

impl<T: BlockDevice + ?Sized> BlockDevice for &T {
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read(sector, buf)
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        (**self).write(sector, buf)
    }
    fn flush(&self) -> Result<(), IoError> {
        (**self).flush()
    }
}

/// Checks that a request of `len` bytes at `sector` fits a device of
/// `sectors` sectors and is a whole number of sectors.
pub fn check_request(sectors: u64, sector: u64, len: usize) -> Result<(), IoError> {
    if len % SECTOR_SIZE != 0 {
        return Err(IoError::Unaligned);
    }
    let count = (len / SECTOR_SIZE) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= sectors => Ok(()),
        _ => Err(IoError::OutOfRange),
    }
}

/// A device held in memory; `flush` is a no-op.
#[derive(Debug, Default)]
pub struct MemDevice {
    bytes: RefCell<Vec<u8>>,
}

impl MemDevice {
    /// A zero-filled device of `sectors` sectors.
    pub fn new(sectors: u64) -> Self {
        MemDevice {
            bytes: RefCell::new(vec![0; sectors as usize * SECTOR_SIZE]),
        }
    }

    /// A device holding `image` (padded with zeros to a whole sector).
    pub fn from_image(mut image: Vec<u8>) -> Self {
        let padded = image.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        image.resize(padded, 0);
        MemDevice {
            bytes: RefCell::new(image),
        }
    }

    /// A copy of the whole device.
    pub fn to_image(&self) -> Vec<u8> {
        self.bytes.borrow().clone()
    }

    /// Gives back the device contents.
    pub fn into_image(self) -> Vec<u8> {
        self.bytes.into_inner()
    }
}

impl BlockDevice for MemDevice {
    fn sector_count(&self) -> u64 {
        (self.bytes.borrow().len() / SECTOR_SIZE) as u64
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_request(self.sector_count(), sector, buf.len())?;
        let start = sector as usize * SECTOR_SIZE;
        buf.copy_from_slice(&self.bytes.borrow()[start..start + buf.len()]);
        Ok(())
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        check_request(self.sector_count(), sector, buf.len())?;
        let start = sector as usize * SECTOR_SIZE;
        self.bytes.borrow_mut()[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> Result<(), IoError> {
        Ok(())
    }
}

/// A window of `count` sectors starting at `start` on another device.
#[derive(Debug)]
pub struct Partition<D> {
    device: D,
    start: u64,
    count: u64,
}

impl<D: BlockDevice> Partition<D> {
    /// A window onto `device`; fails if it reaches beyond the device.
    pub fn new(device: D, start: u64, count: u64) -> Result<Self, IoError> {
        match start.checked_add(count) {
            Some(end) if end <= device.sector_count() => Ok(Partition {
                device,
                start,
                count,
            }),
            _ => Err(IoError::OutOfRange),
        }
    }

    /// First sector of the window on the underlying device.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The underlying device.
    pub fn inner(&self) -> &D {
        &self.device
    }

    /// Gives back the underlying device.
    pub fn into_inner(self) -> D {
        self.device
    }
}

impl<D: BlockDevice> BlockDevice for Partition<D> {
    fn sector_count(&self) -> u64 {
        self.count
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_request(self.count, sector, buf.len())?;
        self.device.read(self.start + sector, buf)
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        check_request(self.count, sector, buf.len())?;
        self.device.write(self.start + sector, buf)
    }
    fn flush(&self) -> Result<(), IoError> {
        self.device.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_device_round_trips_and_checks_bounds() {
        let dev = MemDevice::new(4);
        let data = [7u8; 1024];
        dev.write(2, &data).unwrap();
        let mut back = [0u8; 1024];
        dev.read(2, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(dev.write(3, &data), Err(IoError::OutOfRange));
        assert_eq!(dev.read(0, &mut [0u8; 100]), Err(IoError::Unaligned));
    }

    #[test]
    fn partition_offsets_and_clips() {
        let dev = MemDevice::new(10);
        let part = Partition::new(&dev, 4, 3).unwrap();
        part.write(1, &[9u8; 512]).unwrap();
        let mut raw = [0u8; 512];
        dev.read(5, &mut raw).unwrap();
        assert_eq!(raw, [9u8; 512]);
        assert_eq!(part.write(3, &[0u8; 512]), Err(IoError::OutOfRange));
        assert!(Partition::new(&dev, 8, 3).is_err());
    }
}
