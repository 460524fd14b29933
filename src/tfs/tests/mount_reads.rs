//! A mount reads the log only as far as it goes: a log ending early in an
//! extension leaves the rest of that extension unread (a 512 KiB extension
//! holding a few entries used to be read whole).

use cairn_tfs::{BlockDevice, Filesystem, FormatOptions, IoError, MemDevice};
use std::cell::Cell;

/// A device that counts the sectors read and fails reads of the sectors
/// in `bad`.
struct Counting {
    dev: MemDevice,
    read: Cell<u64>,
    bad: std::ops::Range<u64>,
}

impl BlockDevice for Counting {
    fn sector_count(&self) -> u64 {
        self.dev.sector_count()
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let n = (buf.len() / 512) as u64;
        if sector < self.bad.end && self.bad.start < sector + n {
            return Err(IoError::Device);
        }
        self.read.set(self.read.get() + n);
        self.dev.read(sector, buf)
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        self.dev.write(sector, buf)
    }
    fn flush(&self) -> Result<(), IoError> {
        Ok(())
    }
}

#[test]
fn mount_reads_the_log_only_to_its_end() {
    let mut fs =
        Filesystem::format(MemDevice::new(16384), &FormatOptions::default(), None).unwrap();
    let root = fs.root();
    for i in 0..20u32 {
        let f = fs.create(root, format!("f{i}").as_bytes()).unwrap();
        fs.write(f, 0, b"some data").unwrap();
    }
    fs.sync().unwrap();
    let chain = fs.log_chain().to_vec();
    assert_eq!(chain.len(), 2, "{chain:?}");
    let ext = chain[1];
    let dev = Counting {
        dev: fs.into_device(),
        read: Cell::new(0),
        // The second half of the only extension: unreadable, and past the
        // log's end.
        bad: ext.start + ext.sectors / 2..ext.start + ext.sectors,
    };
    let fs = Filesystem::mount(&dev).unwrap();
    assert_eq!(fs.readdir(fs.root()).unwrap().len(), 20);
    // The header sector and the first 64 KiB of the extension.
    assert_eq!(dev.read.get(), 1 + 128);
}
