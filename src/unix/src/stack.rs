//! The initial user stack of a program: what `execve` leaves below the
//! stack top for the C library's start-up code.
//!
//! Owns: the layout of argc, the argv and envp pointer arrays, the auxiliary
//! vector (`AT_*`), the strings they point to, the 16 `AT_RANDOM` bytes and
//! the platform string, with `rsp` 16-byte aligned and pointing at argc, as
//! the x86-64 System V ABI requires at process entry. The kernel copies
//! [`StackImage::bytes`] to [`StackImage::base`] and starts the thread with
//! `rsp = StackImage::rsp` (and `rdx = 0`: no `atexit` function).
//!
//! Contexts: any; in the kernel, kernel-lock context at `execve`/boot.
//! Locks: none. The random bytes come from the caller (this crate has no
//! entropy source).
//!
//! Layout, from the top down:
//!
//! ```text
//! top      -> 8 zero bytes (end marker)
//!             execfn string (AT_EXECFN)
//!             envp strings, argv strings
//!             "x86_64\0" (AT_PLATFORM)
//!             16 random bytes (AT_RANDOM)
//!             copied program headers, if PhdrSource::Copy (AT_PHDR)
//!             padding to 16 bytes
//!             auxv pairs ... AT_NULL, 0
//!             envp[0] ... NULL
//!             argv[0] ... NULL
//! rsp      -> argc                                 (rsp % 16 == 0)
//! ```

use alloc::vec::Vec;

use crate::{Errno, PAGE_SIZE};

/// End of the auxiliary vector.
pub const AT_NULL: u64 = 0;
/// Program headers' address.
pub const AT_PHDR: u64 = 3;
/// Size of one program header.
pub const AT_PHENT: u64 = 4;
/// Number of program headers.
pub const AT_PHNUM: u64 = 5;
/// Page size.
pub const AT_PAGESZ: u64 = 6;
/// Interpreter base (0: none).
pub const AT_BASE: u64 = 7;
/// Flags (0).
pub const AT_FLAGS: u64 = 8;
/// Program entry point.
pub const AT_ENTRY: u64 = 9;
/// Real user id.
pub const AT_UID: u64 = 11;
/// Effective user id.
pub const AT_EUID: u64 = 12;
/// Real group id.
pub const AT_GID: u64 = 13;
/// Effective group id.
pub const AT_EGID: u64 = 14;
/// Address of the platform string.
pub const AT_PLATFORM: u64 = 15;
/// CPU capability bits (CPUID.1:EDX on x86).
pub const AT_HWCAP: u64 = 16;
/// Clock ticks per second for `times()`.
pub const AT_CLKTCK: u64 = 17;
/// Secure mode (0).
pub const AT_SECURE: u64 = 23;
/// Address of 16 random bytes.
pub const AT_RANDOM: u64 = 25;
/// More capability bits.
pub const AT_HWCAP2: u64 = 26;
/// Address of the executable's file name.
pub const AT_EXECFN: u64 = 31;
/// Address of the vDSO's ELF header.
pub const AT_SYSINFO_EHDR: u64 = 33;
/// Minimal signal stack size.
pub const AT_MINSIGSTKSZ: u64 = 51;

/// The platform string behind `AT_PLATFORM`.
pub const PLATFORM: &[u8] = b"x86_64";
/// Longest single argument or environment string (Linux's MAX_ARG_STRLEN).
pub const MAX_ARG_STRLEN: usize = 32 * PAGE_SIZE as usize;

/// Where `AT_PHDR` points.
#[derive(Clone, Copy, Debug)]
pub enum PhdrSource<'a> {
    /// The program headers are mapped by a segment at this address
    /// ([`crate::elf::Phdrs::addr`]).
    Mapped(u64),
    /// No segment maps them: these bytes (the raw table) are copied onto
    /// the stack and `AT_PHDR` points at the copy.
    Copy(&'a [u8]),
}

/// User and group ids for the auxiliary vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    /// `AT_UID`
    pub uid: u32,
    /// `AT_EUID`
    pub euid: u32,
    /// `AT_GID`
    pub gid: u32,
    /// `AT_EGID`
    pub egid: u32,
}

/// What goes on the stack.
#[derive(Clone, Copy, Debug)]
pub struct StartInfo<'a> {
    /// Arguments, without NUL terminators (a NUL inside is an error).
    pub argv: &'a [&'a [u8]],
    /// Environment strings (`NAME=value`), without NUL terminators.
    pub envp: &'a [&'a [u8]],
    /// The program's path, for `AT_EXECFN`.
    pub execfn: &'a [u8],
    /// The program headers.
    pub phdrs: PhdrSource<'a>,
    /// Their count (`AT_PHNUM`).
    pub phnum: u16,
    /// The program's entry point (`AT_ENTRY`; the thread starts at the
    /// dynamic loader's entry when there is one).
    pub entry: u64,
    /// Where the dynamic loader was loaded (`AT_BASE`), 0 without one.
    pub base: u64,
    /// The vDSO's ELF header (`AT_SYSINFO_EHDR`), left out if `None`.
    pub sysinfo_ehdr: Option<u64>,
    /// Ids.
    pub ids: Ids,
    /// The 16 bytes behind `AT_RANDOM` (stack protector and pointer guard
    /// seeds: the caller must supply real randomness).
    pub random: [u8; 16],
    /// `AT_HWCAP` value.
    pub hwcap: u64,
    /// `AT_HWCAP2`, left out if `None`.
    pub hwcap2: Option<u64>,
    /// `AT_MINSIGSTKSZ`, left out if `None`.
    pub minsigstksz: Option<u64>,
}

/// Why the stack cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The strings and vectors do not fit in the allowed size, or one
    /// string is longer than [`MAX_ARG_STRLEN`] (`E2BIG`).
    TooBig,
    /// A string contains a NUL byte (`EINVAL`).
    NulInString,
    /// The stack top is not 16-byte aligned or too low (`EINVAL`).
    BadTop,
}

impl StackError {
    /// The errno for `execve`.
    pub fn errno(self) -> Errno {
        match self {
            StackError::TooBig => Errno::E2BIG,
            StackError::NulInString | StackError::BadTop => Errno::EINVAL,
        }
    }
}

/// The bytes to copy and where to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackImage {
    /// Address of `bytes[0]` (equal to `rsp`).
    pub base: u64,
    /// Everything from `rsp` up to the top.
    pub bytes: Vec<u8>,
    /// Initial stack pointer (points at argc, 16-byte aligned).
    pub rsp: u64,
    /// Address of `argv[0]`'s pointer (`rsp + 8`).
    pub argv: u64,
    /// Address of `envp[0]`'s pointer.
    pub envp: u64,
    /// Address of the auxiliary vector.
    pub auxv: u64,
}

/// Builds the stack for a stack whose highest address (exclusive) is
/// `top`, using at most `max_size` bytes below it.
pub fn build(info: &StartInfo<'_>, top: u64, max_size: usize) -> Result<StackImage, StackError> {
    if top % 16 != 0 || top < PAGE_SIZE {
        return Err(StackError::BadTop);
    }
    let strings = info.argv.iter().chain(info.envp.iter());
    for s in strings.clone().chain(core::iter::once(&info.execfn)) {
        if s.contains(&0) {
            return Err(StackError::NulInString);
        }
        if s.len() >= MAX_ARG_STRLEN {
            return Err(StackError::TooBig);
        }
    }
    let floor = top.saturating_sub(max_size as u64);
    let mut cur = top;
    // Reserves `len` bytes aligned to `align` below `cur`.
    let mut take = |len: usize, align: u64| -> Result<u64, StackError> {
        let len = u64::try_from(len).map_err(|_| StackError::TooBig)?;
        let at = cur.checked_sub(len).ok_or(StackError::TooBig)? & !(align - 1);
        if at < floor {
            return Err(StackError::TooBig);
        }
        cur = at;
        Ok(at)
    };
    take(8, 8)?;
    let execfn = take(info.execfn.len() + 1, 1)?;
    let mut env_at = Vec::with_capacity(info.envp.len());
    for s in info.envp.iter().rev() {
        env_at.push(take(s.len() + 1, 1)?);
    }
    env_at.reverse();
    let mut arg_at = Vec::with_capacity(info.argv.len());
    for s in info.argv.iter().rev() {
        arg_at.push(take(s.len() + 1, 1)?);
    }
    arg_at.reverse();
    let platform = take(PLATFORM.len() + 1, 1)?;
    let random = take(16, 16)?;
    let phdr = match info.phdrs {
        PhdrSource::Mapped(a) => a,
        PhdrSource::Copy(b) => take(b.len(), 8)?,
    };

    let mut auxv: Vec<(u64, u64)> = Vec::with_capacity(24);
    auxv.extend_from_slice(&[
        (AT_PHDR, phdr),
        (AT_PHENT, crate::elf::PHDR_SIZE as u64),
        (AT_PHNUM, u64::from(info.phnum)),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_BASE, info.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, info.entry),
        (AT_UID, u64::from(info.ids.uid)),
        (AT_EUID, u64::from(info.ids.euid)),
        (AT_GID, u64::from(info.ids.gid)),
        (AT_EGID, u64::from(info.ids.egid)),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        (AT_HWCAP, info.hwcap),
        (AT_CLKTCK, 100),
        (AT_PLATFORM, platform),
        (AT_EXECFN, execfn),
    ]);
    if let Some(v) = info.sysinfo_ehdr {
        auxv.push((AT_SYSINFO_EHDR, v));
    }
    if let Some(h2) = info.hwcap2 {
        auxv.push((AT_HWCAP2, h2));
    }
    if let Some(m) = info.minsigstksz {
        auxv.push((AT_MINSIGSTKSZ, m));
    }
    auxv.push((AT_NULL, 0));

    // argc + argv + NULL + envp + NULL + auxv pairs, in 8-byte words.
    let words = 1 + (arg_at.len() + 1) + (env_at.len() + 1) + 2 * auxv.len();
    let ptr_bytes = words.checked_mul(8).ok_or(StackError::TooBig)?;
    // Align the block's start (rsp) to 16.
    let rsp = take(ptr_bytes, 16)?;
    let size = usize::try_from(top - rsp).map_err(|_| StackError::TooBig)?;
    let mut bytes = alloc::vec![0u8; size];
    let mut put = |addr: u64, data: &[u8]| {
        // Every address was reserved inside [rsp, top).
        let off = (addr - rsp) as usize;
        if let Some(dst) = bytes.get_mut(off..off + data.len()) {
            dst.copy_from_slice(data);
        }
    };
    put(execfn, info.execfn);
    for (s, &a) in info.envp.iter().zip(&env_at) {
        put(a, s);
    }
    for (s, &a) in info.argv.iter().zip(&arg_at) {
        put(a, s);
    }
    put(platform, PLATFORM);
    put(random, &info.random);
    if let PhdrSource::Copy(b) = info.phdrs {
        put(phdr, b);
    }
    let mut w = rsp;
    let mut word = |v: u64| {
        put(w, &v.to_le_bytes());
        w += 8;
    };
    word(arg_at.len() as u64);
    for &a in &arg_at {
        word(a);
    }
    word(0);
    for &a in &env_at {
        word(a);
    }
    word(0);
    for &(k, v) in &auxv {
        word(k);
        word(v);
    }
    let argv = rsp + 8;
    let envp = argv + 8 * (arg_at.len() as u64 + 1);
    let auxv_at = envp + 8 * (env_at.len() as u64 + 1);
    Ok(StackImage {
        base: rsp,
        bytes,
        rsp,
        argv,
        envp,
        auxv: auxv_at,
    })
}
