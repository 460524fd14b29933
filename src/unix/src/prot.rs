//! Memory protection bits ([`Prot`]), shared by the ELF loader and the
//! vmaps.
//!
//! Owns: the `PROT_READ`/`PROT_WRITE`/`PROT_EXEC` bit set and its checks.
//! Contexts: any (a value type). Locks: none.

use core::fmt;
use core::ops::{BitAnd, BitOr};

/// A set of `PROT_*` bits (`READ` = 1, `WRITE` = 2, `EXEC` = 4, as in the
/// syscall ABI).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prot(u8);

impl Prot {
    /// `PROT_NONE`.
    pub const NONE: Prot = Prot(0);
    /// `PROT_READ`.
    pub const READ: Prot = Prot(1);
    /// `PROT_WRITE`.
    pub const WRITE: Prot = Prot(2);
    /// `PROT_EXEC`.
    pub const EXEC: Prot = Prot(4);
    /// Read, write and execute.
    pub const ALL: Prot = Prot(7);
    /// Read and write.
    pub const RW: Prot = Prot(3);

    /// The set for a syscall's `prot` argument: `EINVAL` if bits other than
    /// READ/WRITE/EXEC are set (`PROT_GROWSDOWN`/`PROT_GROWSUP` are not
    /// supported either).
    pub fn from_bits(bits: u64) -> Result<Prot, crate::Errno> {
        if bits & !7 != 0 {
            Err(crate::Errno::EINVAL)
        } else {
            Ok(Prot(bits as u8))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every bit of `other` is in `self`.
    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any of READ/WRITE/EXEC is set (page-table presence).
    pub const fn accessible(self) -> bool {
        self.0 != 0
    }
}

impl BitOr for Prot {
    type Output = Prot;
    fn bitor(self, rhs: Prot) -> Prot {
        Prot(self.0 | rhs.0)
    }
}

impl BitAnd for Prot {
    type Output = Prot;
    fn bitand(self, rhs: Prot) -> Prot {
        Prot(self.0 & rhs.0)
    }
}

impl fmt::Debug for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |p: Prot, ch: char| if self.contains(p) { ch } else { '-' };
        write!(
            f,
            "{}{}{}",
            c(Prot::READ, 'r'),
            c(Prot::WRITE, 'w'),
            c(Prot::EXEC, 'x')
        )
    }
}
