//! ELF64 x86-64 executables and shared objects: header checks, the
//! [`LoadPlan`] the kernel maps page by page, and the dynamic section a
//! host tool reads to find a program's libraries.
//!
//! Owns: parsing and validating the ELF header and program headers of an
//! `ET_EXEC` program or a position-independent `ET_DYN` one (a PIE, a
//! static-pie or the dynamic loader itself; the caller picks a page-aligned
//! load bias), the `PT_INTERP` path a dynamically linked program names
//! ([`ElfImage::interp_path`]), and describing what to map: `PT_LOAD`
//! segments, `PT_TLS`, `PT_GNU_STACK`, where the program headers are in
//! memory (for `AT_PHDR`), the entry point and the initial break.
//! [`dynamic`] reads `DT_NEEDED`, `DT_SONAME`, `DT_RPATH` and `DT_RUNPATH`
//! (the image builder's dependency resolver; the kernel leaves all of that
//! to the dynamic loader).
//!
//! Contexts: any; in the kernel, kernel-lock context at `execve`/boot.
//! Locks: none. Input is untrusted (it comes from disk): every read is
//! bounds-checked, all arithmetic is checked, and errors say what is wrong
//! ([`ElfError`]'s `Display`), never panic.
//!
//! # Use
//!
//! 1. Read the first [`EHDR_SIZE`] bytes, call [`headers_len`] to learn how
//!    many bytes hold the header and program headers, read that many.
//! 2. [`ElfImage::parse`] with those bytes and the file size.
//! 3. For [`ElfKind::Dyn`], choose a bias (e.g. the vmap placement of
//!    [`ElfImage::span`]'s size, aligned to [`ElfImage::load_align`]); for
//!    [`ElfKind::Exec`] the bias is 0. If [`ElfImage::interp_path`] names
//!    a dynamic loader, load it the same way (it must have none itself) and
//!    start the program at the loader's entry point.
//! 4. [`ElfImage::plan`] (in `plan.rs`) gives the [`LoadPlan`]: create one vmap per
//!    [`LoadPlan::regions`] entry and fill each page from
//!    [`LoadPlan::page_fills`] (file bytes; the rest of the page is zero).

pub mod dynamic;
mod plan;

use alloc::vec::Vec;
use core::fmt;

use crate::{Errno, PAGE_SIZE, Prot, page_round_down, page_round_up};

pub use plan::{LoadPlan, PageFill, Phdrs, Region, Segment, Tls};

/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Most program headers accepted (Linux caps the table at 64 KiB; real
/// static programs have fewer than 16).
pub const MAX_PHNUM: usize = 256;
/// Longest `PT_INTERP` path accepted, its NUL included (Linux's PATH_MAX).
pub const MAX_INTERP: u64 = 4096;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PN_XNUM: u16 = 0xffff;

/// `PT_LOAD`
pub const PT_LOAD: u32 = 1;
/// `PT_DYNAMIC`
pub const PT_DYNAMIC: u32 = 2;
/// `PT_INTERP`
pub const PT_INTERP: u32 = 3;
/// `PT_PHDR`
pub const PT_PHDR: u32 = 6;
/// `PT_TLS`
pub const PT_TLS: u32 = 7;
/// `PT_GNU_STACK`
pub const PT_GNU_STACK: u32 = 0x6474_e551;

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// What kind of executable the image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: linked at fixed addresses, bias 0.
    Exec,
    /// `ET_DYN`: position independent (a PIE, a static-pie or a dynamic
    /// loader); needs a non-zero bias.
    Dyn,
}

/// Why an image cannot be loaded. `Display` gives the message to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    NotElf,
    /// Not ELFCLASS64.
    WrongClass(u8),
    /// Not little-endian.
    WrongEndian(u8),
    /// `EI_VERSION` or `e_version` is not 1.
    WrongVersion,
    /// OS ABI neither System V nor GNU/Linux.
    WrongOsAbi(u8),
    /// `e_machine` is not x86-64.
    WrongMachine(u16),
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`.
    NotExecutable(u16),
    /// A bad `PT_INTERP` header: more than one, outside the file, empty,
    /// longer than [`MAX_INTERP`], or not one NUL-terminated string; the
    /// text says which.
    BadInterp(&'static str),
    /// The bytes supplied end before the header or program headers do; the
    /// caller should supply `need` bytes.
    Truncated {
        /// Bytes needed.
        need: u64,
    },
    /// The program header table lies (partly) outside the file.
    HeadersOutsideFile,
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// More than [`MAX_PHNUM`] program headers (or `PN_XNUM`).
    TooManyHeaders(u16),
    /// No `PT_LOAD` segment with a non-zero size.
    NoLoadSegments,
    /// `PT_LOAD` segments not in ascending address order (ELF requires it).
    Unsorted(usize),
    /// Segment `index` has `p_memsz < p_filesz`.
    MemszBelowFilesz(usize),
    /// Segment `index`'s addresses or file range wrap around.
    Wraps(usize),
    /// Segment `index`'s file range ends beyond the file.
    OutsideFile(usize),
    /// Segment `index`'s address and file offset differ modulo the page size.
    Misaligned(usize),
    /// Segments `.0` and `.1` overlap in memory.
    Overlap(usize, usize),
    /// Two `PT_TLS` headers, a TLS image outside the loaded segments, or a
    /// bad TLS alignment.
    BadTls,
    /// A malformed `PT_DYNAMIC` segment or dynamic string table; the text
    /// says what.
    BadDynamic(&'static str),
    /// The entry point is outside every `PT_LOAD` segment.
    EntryOutsideSegments(u64),
    /// The bias is not page aligned, is non-zero for `ET_EXEC`, or places
    /// the image outside user space.
    BadBias(u64),
    /// The (biased) image does not fit in user space
    /// ([`crate::USER_MIN`]..[`crate::USER_END`]).
    OutsideUserSpace,
}

impl ElfError {
    /// The errno `execve` reports for this error.
    pub fn errno(&self) -> Errno {
        match self {
            ElfError::BadBias(_) | ElfError::OutsideUserSpace => Errno::ENOMEM,
            _ => Errno::ENOEXEC,
        }
    }
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::WrongClass(c) => write!(f, "not a 64-bit ELF file (class {c})"),
            ElfError::WrongEndian(d) => write!(f, "not a little-endian ELF file (data {d})"),
            ElfError::WrongVersion => write!(f, "unknown ELF version"),
            ElfError::WrongOsAbi(a) => write!(f, "not a Linux program (OS ABI {a})"),
            ElfError::WrongMachine(m) => write!(f, "not an x86-64 program (machine {m})"),
            ElfError::NotExecutable(t) => write!(f, "not an executable (ELF type {t})"),
            ElfError::BadInterp(why) => write!(f, "bad PT_INTERP header: {why}"),
            ElfError::BadDynamic(why) => write!(f, "bad dynamic section: {why}"),
            ElfError::Truncated { need } => {
                write!(f, "ELF headers truncated: {need} bytes needed")
            }
            ElfError::HeadersOutsideFile => write!(f, "program headers lie outside the file"),
            ElfError::BadPhentsize(s) => write!(f, "bad program header size {s}"),
            ElfError::TooManyHeaders(n) => write!(f, "too many program headers ({n})"),
            ElfError::NoLoadSegments => write!(f, "no loadable segments"),
            ElfError::Unsorted(i) => write!(f, "segment {i} is out of address order"),
            ElfError::MemszBelowFilesz(i) => {
                write!(f, "segment {i}: memory size smaller than file size")
            }
            ElfError::Wraps(i) => write!(f, "segment {i}: address or file range wraps"),
            ElfError::OutsideFile(i) => write!(f, "segment {i}: file range beyond end of file"),
            ElfError::Misaligned(i) => {
                write!(
                    f,
                    "segment {i}: address and file offset not congruent modulo page size"
                )
            }
            ElfError::Overlap(a, b) => write!(f, "segments {a} and {b} overlap"),
            ElfError::BadTls => write!(f, "bad PT_TLS segment"),
            ElfError::EntryOutsideSegments(e) => {
                write!(f, "entry point {e:#x} outside loadable segments")
            }
            ElfError::BadBias(b) => write!(f, "bad load bias {b:#x}"),
            ElfError::OutsideUserSpace => write!(f, "program does not fit in user space"),
        }
    }
}

/// One raw program header (fields as in `Elf64_Phdr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type`
    pub p_type: u32,
    /// `p_flags` (PF_R = 4, PF_W = 2, PF_X = 1)
    pub flags: u32,
    /// `p_offset`
    pub offset: u64,
    /// `p_vaddr`
    pub vaddr: u64,
    /// `p_filesz`
    pub filesz: u64,
    /// `p_memsz`
    pub memsz: u64,
    /// `p_align`
    pub align: u64,
}

impl ProgramHeader {
    /// The protection its flags ask for.
    pub fn prot(&self) -> Prot {
        let mut p = Prot::NONE;
        if self.flags & PF_R != 0 {
            p = p | Prot::READ;
        }
        if self.flags & PF_W != 0 {
            p = p | Prot::WRITE;
        }
        if self.flags & PF_X != 0 {
            p = p | Prot::EXEC;
        }
        p
    }
}

fn bytes_at<const N: usize>(b: &[u8], off: u64) -> Result<[u8; N], ElfError> {
    let need = off
        .checked_add(N as u64)
        .ok_or(ElfError::HeadersOutsideFile)?;
    let start = usize::try_from(off).map_err(|_| ElfError::Truncated { need })?;
    let end = usize::try_from(need).map_err(|_| ElfError::Truncated { need })?;
    b.get(start..end)
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Truncated { need })
}

fn u16_at(b: &[u8], off: u64) -> Result<u16, ElfError> {
    bytes_at::<2>(b, off).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: u64) -> Result<u32, ElfError> {
    bytes_at::<4>(b, off).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: u64) -> Result<u64, ElfError> {
    bytes_at::<8>(b, off).map(u64::from_le_bytes)
}

/// How many leading bytes of the file hold the ELF header and the whole
/// program header table, computed from the first [`EHDR_SIZE`] bytes
/// (checks the magic, class and header-table size first).
pub fn headers_len(first: &[u8]) -> Result<u64, ElfError> {
    let h = Header::parse(first)?;
    Ok(h.table_end().max(EHDR_SIZE as u64))
}

struct Header {
    e_type: u16,
    entry: u64,
    phoff: u64,
    phnum: u16,
}

impl Header {
    fn parse(b: &[u8]) -> Result<Header, ElfError> {
        let ident: [u8; 16] = match bytes_at::<16>(b, 0) {
            Ok(i) => i,
            Err(_) if b.len() < 4 || b.get(..4) != Some(b"\x7fELF") => {
                return Err(ElfError::NotElf);
            }
            Err(e) => return Err(e),
        };
        if &ident[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        if ident[4] != 2 {
            return Err(ElfError::WrongClass(ident[4]));
        }
        if ident[5] != 1 {
            return Err(ElfError::WrongEndian(ident[5]));
        }
        if ident[6] != 1 {
            return Err(ElfError::WrongVersion);
        }
        if ident[7] != 0 && ident[7] != 3 {
            return Err(ElfError::WrongOsAbi(ident[7]));
        }
        if b.len() < EHDR_SIZE {
            return Err(ElfError::Truncated {
                need: EHDR_SIZE as u64,
            });
        }
        let e_type = u16_at(b, 16)?;
        let machine = u16_at(b, 18)?;
        if machine != EM_X86_64 {
            return Err(ElfError::WrongMachine(machine));
        }
        if u32_at(b, 20)? != 1 {
            return Err(ElfError::WrongVersion);
        }
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::NotExecutable(e_type));
        }
        let entry = u64_at(b, 24)?;
        let phoff = u64_at(b, 32)?;
        let phentsize = u16_at(b, 54)?;
        let phnum = u16_at(b, 56)?;
        if phnum == 0 {
            return Err(ElfError::NoLoadSegments);
        }
        if phnum == PN_XNUM || usize::from(phnum) > MAX_PHNUM {
            return Err(ElfError::TooManyHeaders(phnum));
        }
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::BadPhentsize(phentsize));
        }
        phoff
            .checked_add(u64::from(phnum) * PHDR_SIZE as u64)
            .ok_or(ElfError::HeadersOutsideFile)?;
        Ok(Header {
            e_type,
            entry,
            phoff,
            phnum,
        })
    }

    fn table_end(&self) -> u64 {
        // Checked in parse.
        self.phoff
            .saturating_add(u64::from(self.phnum) * PHDR_SIZE as u64)
    }
}

/// Parses the header (generic ELF64 x86-64 checks) and reads the program
/// header table from `bytes` (at least the table's end; see
/// [`headers_len`]) of a file of `file_size` bytes.
fn read_headers(bytes: &[u8], file_size: u64) -> Result<(Header, Vec<ProgramHeader>), ElfError> {
    let h = Header::parse(bytes)?;
    if h.table_end() > file_size {
        return Err(ElfError::HeadersOutsideFile);
    }
    if (bytes.len() as u64) < h.table_end() {
        return Err(ElfError::Truncated {
            need: h.table_end(),
        });
    }
    let mut headers = Vec::with_capacity(usize::from(h.phnum));
    for i in 0..u64::from(h.phnum) {
        let o = h.phoff + i * PHDR_SIZE as u64;
        headers.push(ProgramHeader {
            p_type: u32_at(bytes, o)?,
            flags: u32_at(bytes, o + 4)?,
            offset: u64_at(bytes, o + 8)?,
            vaddr: u64_at(bytes, o + 16)?,
            filesz: u64_at(bytes, o + 32)?,
            memsz: u64_at(bytes, o + 40)?,
            align: u64_at(bytes, o + 48)?,
        });
    }
    Ok((h, headers))
}

/// Checks a `PT_INTERP` header's file range (its bytes are checked by
/// [`ElfImage::interp_path`]).
fn check_interp(ph: &ProgramHeader, file_size: u64) -> Result<(), ElfError> {
    if ph.filesz < 2 {
        return Err(ElfError::BadInterp("empty"));
    }
    if ph.filesz > MAX_INTERP {
        return Err(ElfError::BadInterp("path too long"));
    }
    match ph.offset.checked_add(ph.filesz) {
        Some(end) if end <= file_size => Ok(()),
        _ => Err(ElfError::BadInterp("outside the file")),
    }
}

/// A checked, not yet placed executable: the parsed program headers and
/// what they say.
#[derive(Clone, Debug)]
pub struct ElfImage {
    kind: ElfKind,
    entry: u64,
    phoff: u64,
    phnum: u16,
    headers: Vec<ProgramHeader>,
    /// Indices into `headers` of the PT_LOAD segments with memsz > 0.
    loads: Vec<usize>,
    tls: Option<usize>,
    gnu_stack: Option<usize>,
    phdr: Option<usize>,
    interp: Option<usize>,
}

impl ElfImage {
    /// Parses and checks an image. `bytes` holds at least the first
    /// [`headers_len`] bytes of the file; `file_size` is the file's size
    /// (segments must lie inside it).
    pub fn parse(bytes: &[u8], file_size: u64) -> Result<ElfImage, ElfError> {
        let (h, headers) = read_headers(bytes, file_size)?;
        let mut img = ElfImage {
            kind: if h.e_type == ET_EXEC {
                ElfKind::Exec
            } else {
                ElfKind::Dyn
            },
            entry: h.entry,
            phoff: h.phoff,
            phnum: h.phnum,
            headers,
            loads: Vec::new(),
            tls: None,
            gnu_stack: None,
            phdr: None,
            interp: None,
        };
        img.check(file_size)?;
        Ok(img)
    }

    fn check(&mut self, file_size: u64) -> Result<(), ElfError> {
        let mut prev: Option<usize> = None;
        for (i, ph) in self.headers.iter().enumerate() {
            match ph.p_type {
                PT_INTERP => {
                    if self.interp.is_some() {
                        return Err(ElfError::BadInterp("more than one"));
                    }
                    check_interp(ph, file_size)?;
                    self.interp = Some(i);
                }
                PT_LOAD => {
                    if ph.memsz < ph.filesz {
                        return Err(ElfError::MemszBelowFilesz(i));
                    }
                    let end = ph.vaddr.checked_add(ph.memsz).ok_or(ElfError::Wraps(i))?;
                    page_round_up(end).ok_or(ElfError::Wraps(i))?;
                    let fend = ph.offset.checked_add(ph.filesz).ok_or(ElfError::Wraps(i))?;
                    if fend > file_size {
                        return Err(ElfError::OutsideFile(i));
                    }
                    if ph.filesz > 0 && ph.vaddr % PAGE_SIZE != ph.offset % PAGE_SIZE {
                        return Err(ElfError::Misaligned(i));
                    }
                    if ph.memsz == 0 {
                        continue;
                    }
                    if let Some(p) = prev {
                        let q = &self.headers[p];
                        if ph.vaddr < q.vaddr {
                            return Err(ElfError::Unsorted(i));
                        }
                        // q's end was checked not to wrap.
                        if ph.vaddr < q.vaddr + q.memsz {
                            return Err(ElfError::Overlap(p, i));
                        }
                    }
                    prev = Some(i);
                    self.loads.push(i);
                }
                PT_TLS => {
                    if self.tls.is_some() {
                        return Err(ElfError::BadTls);
                    }
                    self.tls = Some(i);
                }
                PT_GNU_STACK => self.gnu_stack = Some(i),
                PT_PHDR => self.phdr = Some(i),
                _ => {}
            }
        }
        if self.loads.is_empty() {
            return Err(ElfError::NoLoadSegments);
        }
        if !self.in_load(self.entry, 1) {
            return Err(ElfError::EntryOutsideSegments(self.entry));
        }
        if let Some(t) = self.tls {
            let ph = self.headers[t];
            let align_ok = ph.align <= 1 || ph.align.is_power_of_two();
            if ph.memsz < ph.filesz
                || !align_ok
                || ph.vaddr.checked_add(ph.memsz).is_none()
                || !self.in_load(ph.vaddr, ph.filesz.max(1))
            {
                return Err(ElfError::BadTls);
            }
        }
        Ok(())
    }

    /// True if `[addr, addr + len)` lies inside one PT_LOAD segment.
    fn in_load(&self, addr: u64, len: u64) -> bool {
        self.loads.iter().any(|&i| {
            let ph = &self.headers[i];
            addr >= ph.vaddr
                && addr
                    .checked_add(len)
                    .is_some_and(|e| e <= ph.vaddr + ph.memsz)
        })
    }

    /// The kind of executable.
    pub fn kind(&self) -> ElfKind {
        self.kind
    }

    /// The file range `(offset, length)` of the `PT_INTERP` path, if the
    /// program names a dynamic loader (checked to lie inside the file).
    pub fn interp(&self) -> Option<(u64, u64)> {
        self.interp.map(|i| {
            let ph = &self.headers[i];
            (ph.offset, ph.filesz)
        })
    }

    /// The dynamic loader's path (without its NUL) read from `file`, the
    /// whole file (or at least its first `offset + length` bytes of
    /// [`ElfImage::interp`]); `Ok(None)` for a program without one.
    pub fn interp_path<'a>(&self, file: &'a [u8]) -> Result<Option<&'a [u8]>, ElfError> {
        let Some((off, len)) = self.interp() else {
            return Ok(None);
        };
        let end = off + len; // checked in check_interp
        let bytes = usize::try_from(off)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(a, b)| file.get(a..b))
            .ok_or(ElfError::Truncated { need: end })?;
        let (last, path) = bytes.split_last().ok_or(ElfError::BadInterp("empty"))?;
        if *last != 0 || path.contains(&0) {
            return Err(ElfError::BadInterp("not one NUL-terminated string"));
        }
        if path.is_empty() {
            return Err(ElfError::BadInterp("empty"));
        }
        Ok(Some(path))
    }

    /// The alignment a bias must have: the largest `p_align` of the
    /// loadable segments that is a power of two, between the page size and
    /// 2 MiB (as Linux aligns an `ET_DYN` image).
    pub fn load_align(&self) -> u64 {
        self.loads
            .iter()
            .map(|&i| self.headers[i].align)
            .filter(|a| a.is_power_of_two())
            .max()
            .unwrap_or(PAGE_SIZE)
            .clamp(PAGE_SIZE, 2 << 20)
    }

    /// All program headers, in file order.
    pub fn headers(&self) -> &[ProgramHeader] {
        &self.headers
    }

    /// The page-aligned unbiased extent `[lo, hi)` of the loadable segments
    /// (a static-pie's bias must place it inside user space).
    pub fn span(&self) -> (u64, u64) {
        let first = &self.headers[self.loads[0]];
        let last = &self.headers[self.loads[self.loads.len() - 1]];
        // Ends were checked to round up without overflow.
        let hi = page_round_up(last.vaddr + last.memsz).unwrap_or(!(PAGE_SIZE - 1));
        (page_round_down(first.vaddr), hi)
    }
}
