//! The bad-input runtime test's "programs": files the kernel must refuse
//! with a clear message and a non-zero status, never a panic. Made here,
//! byte by byte, so that each is wrong in exactly one way:
//!
//! * [`not_elf`] gives text;
//! * [`elf32`] a well-formed 32-bit i386 executable header;
//! * [`missing_loader`] a 64-bit PIE whose `PT_INTERP` names a loader the
//!   image does not have;
//! * [`bad_phdr`] a 64-bit executable whose only `PT_LOAD` reaches past
//!   the end of the file.

/// Not an ELF file at all.
pub fn not_elf() -> Vec<u8> {
    b"this is a text file, not a program\n".to_vec()
}

fn ehdr64(e_type: u16, entry: u64, phnum: u16) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little-endian
    b[6] = 1;
    b[16..18].copy_from_slice(&e_type.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&phnum.to_le_bytes());
    b
}

#[allow(clippy::too_many_arguments)]
fn phdr(t: u32, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64, align: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(56);
    b.extend_from_slice(&t.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&off.to_le_bytes());
    b.extend_from_slice(&vaddr.to_le_bytes());
    b.extend_from_slice(&vaddr.to_le_bytes());
    b.extend_from_slice(&filesz.to_le_bytes());
    b.extend_from_slice(&memsz.to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b
}

/// A 32-bit i386 `ET_EXEC` header with one `PT_LOAD` (what `gcc -m32`
/// makes, minus the code).
pub fn elf32() -> Vec<u8> {
    let mut b = vec![0u8; 52];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 1; // 32-bit
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&3u16.to_le_bytes()); // i386
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..28].copy_from_slice(&0x0804_8054u32.to_le_bytes());
    b[28..32].copy_from_slice(&52u32.to_le_bytes());
    b[40..42].copy_from_slice(&52u16.to_le_bytes());
    b[42..44].copy_from_slice(&32u16.to_le_bytes());
    b[44..46].copy_from_slice(&1u16.to_le_bytes());
    for w in [1u32, 0, 0x0804_8000, 0x0804_8000, 0x60, 0x60, 5, 0x1000] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(&[0xcc; 12]);
    b
}

/// The loader `missing_loader` names.
pub const MISSING_LOADER: &str = "/lib64/ld-cairn-missing.so.2";

/// A PIE naming [`MISSING_LOADER`] as its dynamic loader.
pub fn missing_loader() -> Vec<u8> {
    let interp = format!("{MISSING_LOADER}\0");
    let interp_off = 64 + 2 * 56;
    let mut b = ehdr64(3, 0x1000, 2);
    b.extend(phdr(
        3,
        4,
        interp_off,
        interp_off,
        interp.len() as u64,
        interp.len() as u64,
        1,
    ));
    b.extend(phdr(1, 5, 0, 0, 0x2000, 0x2000, 0x1000));
    b.extend_from_slice(interp.as_bytes());
    b.resize(0x2000, 0xcc);
    b
}

/// An executable whose `PT_LOAD` says it holds 1 MiB of a 4 KiB file.
pub fn bad_phdr() -> Vec<u8> {
    let mut b = ehdr64(2, 0x40_1000, 1);
    b.extend(phdr(1, 5, 0, 0x40_0000, 1 << 20, 1 << 20, 0x1000));
    b.resize(0x1000, 0xcc);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_is_wrong_in_its_own_way() {
        assert!(!not_elf().starts_with(b"\x7fELF"));
        let e = elf32();
        assert_eq!((e[4], e.len()), (1, 52 + 32 + 12));
        let m = missing_loader();
        let at = 64 + 2 * 56;
        assert!(m[at..].starts_with(MISSING_LOADER.as_bytes()));
        let p = bad_phdr();
        assert_eq!(p.len(), 0x1000);
        // The PT_LOAD's filesz (at 64 + 32) is beyond the file.
        assert_eq!(u64::from_le_bytes(p[96..104].try_into().unwrap()), 1 << 20);
    }
}
