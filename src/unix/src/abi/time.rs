//! `struct timespec` and `struct timeval` (16 bytes each on x86-64).
//!
//! Contexts: any. Locks: none.

use super::{get_i64, out_buf, put};
use crate::Errno;

/// `struct timespec { i64 tv_sec; i64 tv_nsec; }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, 0..1e9 when valid.
    pub nsec: i64,
}

impl Timespec {
    /// Encoded size.
    pub const SIZE: usize = 16;

    /// From a nanosecond count.
    pub fn from_nanos(ns: u64) -> Self {
        Timespec {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as i64,
        }
    }

    /// Writes it into `out[..16]`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Errno> {
        let b = out_buf(out, Self::SIZE)?;
        put(b, 0, &self.sec.to_le_bytes());
        put(b, 8, &self.nsec.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Reads one (`EFAULT` if short), without range checks.
    pub fn decode(b: &[u8]) -> Result<Self, Errno> {
        Ok(Timespec {
            sec: get_i64(b, 0)?,
            nsec: get_i64(b, 8)?,
        })
    }

    /// Reads one for a duration or time argument (nanosleep, futex
    /// timeouts, clock_nanosleep): `EINVAL` if `sec < 0` or `nsec` is
    /// outside 0..1e9.
    pub fn decode_valid(b: &[u8]) -> Result<Self, Errno> {
        let t = Self::decode(b)?;
        if t.sec < 0 || !(0..1_000_000_000).contains(&t.nsec) {
            return Err(Errno::EINVAL);
        }
        Ok(t)
    }

    /// Total nanoseconds (saturating); meant for valid values.
    pub fn as_nanos(&self) -> u64 {
        let s = u64::try_from(self.sec).unwrap_or(0);
        let n = u64::try_from(self.nsec).unwrap_or(0);
        s.saturating_mul(1_000_000_000).saturating_add(n)
    }
}

/// `struct timeval { i64 tv_sec; i64 tv_usec; }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timeval {
    /// Seconds.
    pub sec: i64,
    /// Microseconds, 0..1e6.
    pub usec: i64,
}

impl Timeval {
    /// Encoded size.
    pub const SIZE: usize = 16;

    /// From a nanosecond count (truncating to microseconds).
    pub fn from_nanos(ns: u64) -> Self {
        Timeval {
            sec: (ns / 1_000_000_000) as i64,
            usec: ((ns % 1_000_000_000) / 1000) as i64,
        }
    }

    /// Writes it into `out[..16]`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Errno> {
        let b = out_buf(out, Self::SIZE)?;
        put(b, 0, &self.sec.to_le_bytes());
        put(b, 8, &self.usec.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Reads one; `EINVAL` if `usec` is outside 0..1e6.
    pub fn decode(b: &[u8]) -> Result<Self, Errno> {
        let t = Timeval {
            sec: get_i64(b, 0)?,
            usec: get_i64(b, 8)?,
        };
        if !(0..1_000_000).contains(&t.usec) {
            return Err(Errno::EINVAL);
        }
        Ok(t)
    }
}

/// `tv_nsec` of a `utimensat` time: set it to the current time.
pub const UTIME_NOW: i64 = (1 << 30) - 1;
/// `tv_nsec` of a `utimensat` time: leave it unchanged.
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// What a `utimensat`/`utimes`/`utime` call asks for one of a file's
/// times (access or modification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    /// The current wall-clock time.
    Now,
    /// Unchanged.
    Omit,
    /// This time.
    At(Timespec),
}

/// Decodes `utimensat`'s `struct timespec times[2]` (32 bytes): `EINVAL`
/// for a `tv_nsec` that is neither in 0..1e9 nor `UTIME_NOW`/`UTIME_OMIT`
/// (seconds are not checked, as on Linux).
pub fn decode_utimens(b: &[u8]) -> Result<[TimeSet; 2], Errno> {
    let one = |at: usize| -> Result<TimeSet, Errno> {
        let t = Timespec::decode(b.get(at..).ok_or(Errno::EFAULT)?)?;
        match t.nsec {
            UTIME_NOW => Ok(TimeSet::Now),
            UTIME_OMIT => Ok(TimeSet::Omit),
            0..1_000_000_000 => Ok(TimeSet::At(t)),
            _ => Err(Errno::EINVAL),
        }
    };
    Ok([one(0)?, one(Timespec::SIZE)?])
}

/// Decodes `utimes`/`futimesat`'s `struct timeval times[2]` (32 bytes):
/// `EINVAL` for a `tv_usec` outside 0..1e6.
pub fn decode_utimes(b: &[u8]) -> Result<[TimeSet; 2], Errno> {
    let one = |at: usize| -> Result<TimeSet, Errno> {
        let t = Timeval::decode(b.get(at..).ok_or(Errno::EFAULT)?)?;
        Ok(TimeSet::At(Timespec {
            sec: t.sec,
            nsec: t.usec * 1000,
        }))
    };
    Ok([one(0)?, one(Timeval::SIZE)?])
}

/// Decodes `utime`'s `struct utimbuf { time_t actime, modtime; }` (16
/// bytes, whole seconds).
pub fn decode_utimbuf(b: &[u8]) -> Result<[TimeSet; 2], Errno> {
    let secs = |at: usize| -> Result<TimeSet, Errno> {
        Ok(TimeSet::At(Timespec {
            sec: get_i64(b, at)?,
            nsec: 0,
        }))
    };
    Ok([secs(0)?, secs(8)?])
}
