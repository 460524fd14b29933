//! `/etc/ld.so.cache` in glibc's format (`glibc-ld.so.cache1.1`, written by
//! `ldconfig` since glibc 2.32 without the old `ld.so-1.7.0` prefix): read
//! the host's to find libraries the way the dynamic loader does, and write
//! one for an image that lists exactly the libraries copied into it.
//!
//! Layout (little-endian): the 20-byte magic, `nlibs`, `len_strings`, a flags
//! byte (2: little-endian), 3 bytes of padding, `extension_offset` (0: no
//! extension), 3 unused words; then `nlibs` 24-byte entries (`flags`,
//! `key`, `value`, `osversion`, `hwcap`), then the string table. `key` (the
//! soname) and `value` (the path) are offsets from the start of the file.
//! The loader binary-searches the entries, so they are sorted in
//! *descending* [`libcmp`] order (digit runs compare as numbers).
//!
//! Host only; no locks. A malformed cache is an error, never a panic.

use std::cmp::Ordering;
use std::fmt;

/// The magic and version at the start of the file.
pub const MAGIC: &[u8; 20] = b"glibc-ld.so.cache1.1";
/// `flags` of an x86-64 glibc library entry (`FLAG_ELF_LIBC6 |
/// FLAG_X8664_LIB64`), the only kind the x86-64 loader accepts besides
/// plain `FLAG_ELF_LIBC6` (1).
pub const FLAGS_X86_64: i32 = 0x0303;
/// Size of the header.
const HEADER: usize = 48;
/// Size of one entry.
const ENTRY: usize = 24;
/// The header's flags byte for a little-endian cache.
const ENDIAN_LITTLE: u8 = 2;

/// One library: the name the loader looks up and the path it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Entry flags ([`FLAGS_X86_64`] for everything cairn writes).
    pub flags: i32,
    /// The soname (`libc.so.6`).
    pub name: Vec<u8>,
    /// The absolute path (`/lib/x86_64-linux-gnu/libc.so.6`).
    pub path: Vec<u8>,
    /// The hardware-capability bits the entry needs (0: none).
    pub hwcap: u64,
}

/// Why a cache could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheError(pub String);

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ld.so.cache: {}", self.0)
    }
}

impl std::error::Error for CacheError {}

/// The loader's name order: bytes compare as bytes, except that runs of
/// digits compare as numbers and a digit sorts after any non-digit.
pub fn libcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (x.is_ascii_digit(), y.is_ascii_digit()) {
                (true, true) => {
                    let (mut m, mut n) = (0u128, 0u128);
                    while let Some(d) = a.get(i).filter(|d| d.is_ascii_digit()) {
                        m = m.saturating_mul(10).saturating_add(u128::from(d - b'0'));
                        i += 1;
                    }
                    while let Some(d) = b.get(j).filter(|d| d.is_ascii_digit()) {
                        n = n.saturating_mul(10).saturating_add(u128::from(d - b'0'));
                        j += 1;
                    }
                    if m != n {
                        return m.cmp(&n);
                    }
                }
                (true, false) => return Ordering::Greater,
                (false, true) => return Ordering::Less,
                (false, false) => {
                    if x != y {
                        return x.cmp(y);
                    }
                    i += 1;
                    j += 1;
                }
            },
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, CacheError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| CacheError(format!("truncated at byte {at}")))
}

fn cstr_at(b: &[u8], at: u32) -> Result<Vec<u8>, CacheError> {
    let rest = b
        .get(at as usize..)
        .ok_or_else(|| CacheError(format!("string offset {at} outside the file")))?;
    let len = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| CacheError(format!("unterminated string at {at}")))?;
    Ok(rest[..len].to_vec())
}

/// Reads a cache file's entries, in file order.
pub fn parse(b: &[u8]) -> Result<Vec<Entry>, CacheError> {
    if b.len() < HEADER || &b[..20] != MAGIC {
        return Err(CacheError(
            "not a glibc-ld.so.cache1.1 file (the old ld.so-1.7.0 format is not read)".into(),
        ));
    }
    if b[28] & 3 == 3 {
        return Err(CacheError("a big-endian cache".into()));
    }
    let nlibs = u32_at(b, 20)? as usize;
    if nlibs > (b.len() - HEADER) / ENTRY {
        return Err(CacheError(format!(
            "{nlibs} entries do not fit in the file"
        )));
    }
    let mut out = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = HEADER + i * ENTRY;
        let flags = u32_at(b, at)? as i32;
        let key = u32_at(b, at + 4)?;
        let value = u32_at(b, at + 8)?;
        let hwcap = u64::from(u32_at(b, at + 16)?) | (u64::from(u32_at(b, at + 20)?) << 32);
        out.push(Entry {
            flags,
            name: cstr_at(b, key)?,
            path: cstr_at(b, value)?,
            hwcap,
        });
    }
    Ok(out)
}

/// The path the loader would take for `name` from `entries` (the first
/// x86-64 entry of that name without hardware-capability requirements).
pub fn lookup<'a>(entries: &'a [Entry], name: &[u8]) -> Option<&'a [u8]> {
    entries
        .iter()
        .find(|e| (e.flags == FLAGS_X86_64 || e.flags == 1) && e.hwcap == 0 && e.name == name)
        .map(|e| e.path.as_slice())
}

/// A cache listing `libs` (name, path) as x86-64 libraries, sorted as the
/// loader's binary search needs; duplicate names keep their first path.
pub fn build(libs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = Vec::new();
    for l in libs {
        if !sorted.iter().any(|s| s.0 == l.0) {
            sorted.push(l);
        }
    }
    sorted.sort_by(|a, b| libcmp(&b.0, &a.0));
    let strings_at = HEADER + sorted.len() * ENTRY;
    let mut strings = Vec::new();
    let mut entries = Vec::with_capacity(sorted.len() * ENTRY);
    let intern = |s: &[u8], strings: &mut Vec<u8>| -> u32 {
        let at = (strings_at + strings.len()) as u32;
        strings.extend_from_slice(s);
        strings.push(0);
        at
    };
    for (name, path) in sorted {
        let key = intern(name, &mut strings);
        let value = intern(path, &mut strings);
        entries.extend_from_slice(&FLAGS_X86_64.to_le_bytes());
        entries.extend_from_slice(&key.to_le_bytes());
        entries.extend_from_slice(&value.to_le_bytes());
        entries.extend_from_slice(&0u32.to_le_bytes());
        entries.extend_from_slice(&0u64.to_le_bytes());
    }
    let mut out = Vec::with_capacity(strings_at + strings.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&((entries.len() / ENTRY) as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.extend_from_slice(&[ENDIAN_LITTLE, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_le_bytes()); // no extension
    out.extend_from_slice(&[0u8; 12]);
    debug_assert_eq!(out.len(), HEADER);
    out.extend_from_slice(&entries);
    out.extend_from_slice(&strings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcmp_orders_numbers_numerically() {
        assert_eq!(libcmp(b"libz.so.1", b"libz.so.1"), Ordering::Equal);
        assert_eq!(libcmp(b"libfoo.so.10", b"libfoo.so.9"), Ordering::Greater);
        assert_eq!(libcmp(b"libz3.so", b"libzstd.so.1"), Ordering::Greater);
        assert_eq!(libcmp(b"libz3.so.4", b"libz3.so"), Ordering::Greater);
        assert_eq!(libcmp(b"liba.so", b"libb.so"), Ordering::Less);
        assert_eq!(libcmp(b"", b"a"), Ordering::Less);
    }

    #[test]
    fn built_cache_reads_back_sorted() {
        let libs = vec![
            (
                b"libc.so.6".to_vec(),
                b"/lib/x86_64-linux-gnu/libc.so.6".to_vec(),
            ),
            (
                b"libm.so.6".to_vec(),
                b"/lib/x86_64-linux-gnu/libm.so.6".to_vec(),
            ),
            (b"libfoo.so.10".to_vec(), b"/opt/lib/libfoo.so.10".to_vec()),
            (b"libfoo.so.9".to_vec(), b"/opt/lib/libfoo.so.9".to_vec()),
            (b"libc.so.6".to_vec(), b"/elsewhere/libc.so.6".to_vec()),
        ];
        let bytes = build(&libs);
        assert_eq!(&bytes[..20], MAGIC);
        let e = parse(&bytes).unwrap();
        let names: Vec<&[u8]> = e.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(
            names,
            [
                &b"libm.so.6"[..],
                b"libfoo.so.10",
                b"libfoo.so.9",
                b"libc.so.6"
            ]
        );
        assert!(e.iter().all(|e| e.flags == FLAGS_X86_64 && e.hwcap == 0));
        assert_eq!(
            lookup(&e, b"libc.so.6"),
            Some(&b"/lib/x86_64-linux-gnu/libc.so.6"[..])
        );
        assert_eq!(lookup(&e, b"libnope.so"), None);
    }

    #[test]
    fn malformed_caches_are_errors() {
        assert!(parse(b"ld.so-1.7.0").is_err());
        let mut b = build(&[(b"a".to_vec(), b"/a".to_vec())]);
        b[20] = 200; // more entries than fit
        assert!(parse(&b).is_err());
        let mut b = build(&[(b"a".to_vec(), b"/a".to_vec())]);
        let n = b.len();
        b[48 + 4..48 + 8].copy_from_slice(&(n as u32 + 5).to_le_bytes());
        assert!(parse(&b).is_err());
        let mut b = build(&[(b"a".to_vec(), b"/a".to_vec())]);
        b.pop(); // the last string loses its NUL
        assert!(parse(&b).is_err());
    }

    #[test]
    fn the_hosts_cache_is_sorted_as_the_loader_searches_it() {
        // The real cache ldconfig wrote on this host: our reader takes
        // it, it is in descending libcmp order (what our writer produces),
        // and libc is in it.
        let Ok(b) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("SKIPPED: no /etc/ld.so.cache");
            return;
        };
        let e = parse(&b).unwrap();
        assert!(!e.is_empty());
        for w in e.windows(2) {
            assert_ne!(
                libcmp(&w[0].name, &w[1].name),
                Ordering::Less,
                "{:?} before {:?}",
                String::from_utf8_lossy(&w[0].name),
                String::from_utf8_lossy(&w[1].name)
            );
        }
        let libc = lookup(&e, b"libc.so.6").expect("libc.so.6 in the host's cache");
        assert!(std::path::Path::new(std::str::from_utf8(libc).unwrap()).exists());
    }
}
