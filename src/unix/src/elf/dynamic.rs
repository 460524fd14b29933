//! The dynamic section of an executable or shared object, as far as a tool
//! that gathers a program's libraries needs it: `PT_INTERP`, `DT_NEEDED`,
//! `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH` and `DF_1_NODEFLIB`.
//!
//! Owns: reading those from the file's bytes (the string table is found by
//! translating `DT_STRTAB`'s address through the `PT_LOAD` segments).
//! Does not own: deciding where a library is (the image builder's resolver
//! in `cairn-tools`), nor anything the kernel does at `execve` (the dynamic
//! loader reads its own dynamic section).
//!
//! Contexts: any (host tools); no locks. Input is untrusted: every read is
//! bounds-checked and a malformed file is an [`ElfError`], never a panic.

use alloc::vec::Vec;

use super::{ET_EXEC, ElfError, ElfKind, PT_DYNAMIC, PT_INTERP, PT_LOAD, read_headers};

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_NODEFLIB: u64 = 0x800;

/// Most dynamic entries read (real objects have well under 100).
const MAX_DYNAMIC: u64 = 1 << 16;

/// What an ELF file says about the libraries it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    /// `ET_EXEC` or `ET_DYN`.
    pub kind: Option<ElfKind>,
    /// The `PT_INTERP` path, without its NUL.
    pub interp: Option<Vec<u8>>,
    /// Whether it has a `PT_DYNAMIC` segment at all (a static program has
    /// none; a static-pie has one without `DT_NEEDED`).
    pub has_dynamic: bool,
    /// `DT_NEEDED` names, in order.
    pub needed: Vec<Vec<u8>>,
    /// `DT_SONAME`.
    pub soname: Option<Vec<u8>>,
    /// `DT_RPATH` (colon-separated; ignored by the loader when `DT_RUNPATH`
    /// is present).
    pub rpath: Option<Vec<u8>>,
    /// `DT_RUNPATH` (colon-separated).
    pub runpath: Option<Vec<u8>>,
    /// `DF_1_NODEFLIB`: the loader skips the cache and the default
    /// directories for this object's dependencies.
    pub nodeflib: bool,
}

fn word(b: &[u8], off: u64) -> Option<u64> {
    let start = usize::try_from(off).ok()?;
    let bytes = b.get(start..start.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads the dynamic information of `file` (the whole file).
pub fn dynamic_info(file: &[u8]) -> Result<DynamicInfo, ElfError> {
    let (h, headers) = read_headers(file, file.len() as u64)?;
    let mut info = DynamicInfo {
        kind: Some(if h.e_type == ET_EXEC {
            ElfKind::Exec
        } else {
            ElfKind::Dyn
        }),
        ..DynamicInfo::default()
    };
    let mut dynamic = None;
    for ph in &headers {
        match ph.p_type {
            PT_INTERP => {
                if info.interp.is_some() {
                    return Err(ElfError::BadInterp("more than one"));
                }
                super::check_interp(ph, file.len() as u64)?;
                // In the file: checked just above.
                let bytes = &file[ph.offset as usize..(ph.offset + ph.filesz) as usize];
                match bytes.split_last() {
                    Some((0, path)) if !path.is_empty() && !path.contains(&0) => {
                        info.interp = Some(path.to_vec());
                    }
                    _ => return Err(ElfError::BadInterp("not one NUL-terminated string")),
                }
            }
            PT_DYNAMIC => {
                if dynamic.is_some() {
                    return Err(ElfError::BadDynamic("more than one PT_DYNAMIC"));
                }
                dynamic = Some(*ph);
            }
            _ => {}
        }
    }
    let Some(dynamic) = dynamic else {
        return Ok(info);
    };
    info.has_dynamic = true;
    let end = dynamic
        .offset
        .checked_add(dynamic.filesz)
        .filter(|&e| e <= file.len() as u64)
        .ok_or(ElfError::BadDynamic("PT_DYNAMIC outside the file"))?;
    let count = (dynamic.filesz / 16).min(MAX_DYNAMIC);
    let mut entries = Vec::new();
    for i in 0..count {
        let at = dynamic.offset + i * 16;
        if at + 16 > end {
            break;
        }
        let tag = word(file, at).ok_or(ElfError::BadDynamic("truncated"))?;
        let val = word(file, at + 8).ok_or(ElfError::BadDynamic("truncated"))?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, val));
    }
    let find = |tag: u64| entries.iter().find(|e| e.0 == tag).map(|e| e.1);
    let strings = entries
        .iter()
        .any(|e| matches!(e.0, DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH));
    if let Some(f) = find(DT_FLAGS_1) {
        info.nodeflib = f & DF_1_NODEFLIB != 0;
    }
    if !strings {
        return Ok(info);
    }
    let strtab = find(DT_STRTAB).ok_or(ElfError::BadDynamic("no DT_STRTAB"))?;
    let strsz = find(DT_STRSZ).ok_or(ElfError::BadDynamic("no DT_STRSZ"))?;
    // The string table's file offset: the PT_LOAD whose file bytes hold it.
    let table_off = headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .find_map(|ph| {
            let inside = strtab >= ph.vaddr
                && strtab
                    .checked_add(strsz)
                    .is_some_and(|e| ph.vaddr.checked_add(ph.filesz).is_some_and(|f| e <= f));
            inside.then(|| strtab - ph.vaddr + ph.offset)
        })
        .ok_or(ElfError::BadDynamic(
            "string table outside the loadable segments",
        ))?;
    let table = usize::try_from(table_off)
        .ok()
        .zip(usize::try_from(strsz).ok())
        .and_then(|(o, n)| file.get(o..o.checked_add(n)?))
        .ok_or(ElfError::BadDynamic("string table outside the file"))?;
    let string = |off: u64| -> Result<Vec<u8>, ElfError> {
        let rest = usize::try_from(off)
            .ok()
            .and_then(|o| table.get(o..))
            .ok_or(ElfError::BadDynamic("string outside the string table"))?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ElfError::BadDynamic("unterminated string"))?;
        Ok(rest[..len].to_vec())
    };
    for &(tag, val) in &entries {
        match tag {
            DT_NEEDED => info.needed.push(string(val)?),
            DT_SONAME => info.soname = Some(string(val)?),
            DT_RPATH => info.rpath = Some(string(val)?),
            DT_RUNPATH => info.runpath = Some(string(val)?),
            _ => {}
        }
    }
    Ok(info)
}
