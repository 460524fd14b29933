//! A [`BlockDevice`] over a host file: positioned reads and writes, reads
//! past the end of a sparse file return zeros, and the highest byte written
//! is tracked (mkfs sizes the image from it, as Nanos's mkfs does).

use cairn_tfs::{BlockDevice, IoError, SECTOR_SIZE};
use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A file seen as a block device.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    sectors: u64,
    high_water: Cell<u64>,
    durable: bool,
}

impl FileDevice {
    /// Opens an existing image; its size (rounded down to sectors) is the
    /// device size.
    pub fn open(path: &Path, writable: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let len = file.metadata()?.len();
        Ok(FileDevice {
            file,
            sectors: len / SECTOR_SIZE as u64,
            high_water: Cell::new(len),
            durable: writable,
        })
    }

    /// Creates (truncating) an image that behaves as a device of `sectors`
    /// sectors; the file only grows as far as it is written.
    pub fn create(path: &Path, sectors: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(FileDevice {
            file,
            sectors,
            high_water: Cell::new(0),
            durable: false,
        })
    }

    /// One past the highest byte written.
    pub fn high_water(&self) -> u64 {
        self.high_water.get()
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl BlockDevice for FileDevice {
    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        cairn_tfs::device::check_request(self.sectors, sector, buf.len())?;
        let mut done = 0;
        let base = sector * SECTOR_SIZE as u64;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], base + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(IoError::Device),
            }
        }
        Ok(())
    }

    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        cairn_tfs::device::check_request(self.sectors, sector, buf.len())?;
        let base = sector * SECTOR_SIZE as u64;
        self.file
            .write_all_at(buf, base)
            .map_err(|_| IoError::Device)?;
        self.high_water
            .set(self.high_water.get().max(base + buf.len() as u64));
        Ok(())
    }

    fn flush(&self) -> Result<(), IoError> {
        if self.durable {
            self.file.sync_data().map_err(|_| IoError::Device)?;
        }
        Ok(())
    }
}
