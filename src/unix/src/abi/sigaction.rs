//! The kernel's x86-64 `struct sigaction` as rt_sigaction reads and
//! writes it: `sa_handler @0`, `sa_flags: u64 @8`, `sa_restorer @16`,
//! `sa_mask: u64 @24` (32 bytes; not the C library's layout).
//!
//! Contexts: any. Locks: none.

use super::{get_u64, out_buf, put};
use crate::Errno;
use crate::signal::{SigAction, SigSet};

/// Encoding of [`SigAction`] in the kernel ABI.
pub struct KernelSigaction;

impl KernelSigaction {
    /// Encoded size.
    pub const SIZE: usize = 32;

    /// Writes `a` into `out[..32]`.
    pub fn encode(a: &SigAction, out: &mut [u8]) -> Result<usize, Errno> {
        let b = out_buf(out, Self::SIZE)?;
        put(b, 0, &a.handler.to_le_bytes());
        put(b, 8, &a.flags.to_le_bytes());
        put(b, 16, &a.restorer.to_le_bytes());
        put(b, 24, &a.mask.bits().to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Reads one (`EFAULT` if short). Flags are kept as given.
    pub fn decode(b: &[u8]) -> Result<SigAction, Errno> {
        Ok(SigAction {
            handler: get_u64(b, 0)?,
            flags: get_u64(b, 8)?,
            restorer: get_u64(b, 16)?,
            mask: SigSet::from_bits(get_u64(b, 24)?),
        })
    }
}
