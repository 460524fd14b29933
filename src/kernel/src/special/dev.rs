//! `/dev`: the memory devices (`null`, `zero`, `full`, `random`,
//! `urandom`), the console (`console`, `tty`) and the descriptor links
//! (`fd`, `stdin`, `stdout`, `stderr`).
//!
//! `random` and `urandom` read RDRAND (or the kernel's xorshift stream
//! where the CPU has none; see `syscall::misc::random_u64`) and never
//! block; writes to them are accepted and ignored, as Linux accepts them
//! (they would only mix into its entropy pool).
//!
//! Kernel-lock context. No locks.

use super::{S_IFCHR, device, link, new_ino, register, stat_of};
use crate::process::file::{Dst, FileKind, FileOps, OpenFile, Src};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_unix::abi::{FileStat, makedev};
use cairn_unix::errno::Errno;
use core::any::Any;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mem {
    Null,
    Zero,
    Full,
    Random,
}

/// An open memory device.
pub struct MemDevice {
    which: Mem,
    ino: u64,
}

impl MemDevice {
    fn minor(&self) -> u32 {
        match self.which {
            Mem::Null => 3,
            Mem::Zero => 5,
            Mem::Full => 7,
            Mem::Random => 9,
        }
    }
}

impl FileOps for MemDevice {
    fn read(&self, _f: &OpenFile, _off: u64, mut dst: Dst<'_>, len: usize) -> Result<usize, Errno> {
        match self.which {
            Mem::Null => Ok(0),
            Mem::Zero | Mem::Full => {
                dst.zero(0, len)?;
                Ok(len)
            }
            Mem::Random => {
                let mut chunk = [0u8; 256];
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(chunk.len());
                    for w in chunk[..n].chunks_mut(8) {
                        let r = crate::syscall::misc::random_u64().to_le_bytes();
                        w.copy_from_slice(&r[..w.len()]);
                    }
                    dst.put(done, &chunk[..n])?;
                    done += n;
                }
                Ok(len)
            }
        }
    }
    fn write(&self, _f: &OpenFile, _off: u64, _src: Src<'_>, len: usize) -> Result<usize, Errno> {
        match self.which {
            Mem::Full => Err(Errno::ENOSPC),
            _ => Ok(len),
        }
    }
    fn seekable(&self) -> bool {
        // lseek succeeds (and means nothing) on these, as on Linux.
        true
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, S_IFCHR | 0o666, makedev(1, self.minor()), 0)
    }
    fn name(&self) -> Vec<u8> {
        match self.which {
            Mem::Null => b"/dev/null".to_vec(),
            Mem::Zero => b"/dev/zero".to_vec(),
            Mem::Full => b"/dev/full".to_vec(),
            Mem::Random => b"/dev/urandom".to_vec(),
        }
    }
    fn maps_as_anonymous(&self) -> bool {
        self.which == Mem::Zero
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn mem(which: Mem) -> FileKind {
    FileKind::Object(Arc::new(MemDevice {
        which,
        ino: new_ino(),
    }))
}

pub fn init() {
    register("/dev/null", device(1, 3, || mem(Mem::Null)));
    register("/dev/zero", device(1, 5, || mem(Mem::Zero)));
    register("/dev/full", device(1, 7, || mem(Mem::Full)));
    register("/dev/random", device(1, 8, || mem(Mem::Random)));
    register("/dev/urandom", device(1, 9, || mem(Mem::Random)));
    register("/dev/console", device(5, 1, || FileKind::Console));
    register("/dev/tty", device(5, 0, || FileKind::Console));
    register("/dev/fd", link(|| b"/proc/self/fd".to_vec()));
    register("/dev/stdin", link(|| b"/proc/self/fd/0".to_vec()));
    register("/dev/stdout", link(|| b"/proc/self/fd/1".to_vec()));
    register("/dev/stderr", link(|| b"/proc/self/fd/2".to_vec()));
}
