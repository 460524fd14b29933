//! ELF loader: synthetic images for every check, arbitrary bytes never
//! panic, and real static / static-pie / dynamic programs from the host
//! `gcc` (skipped with a message when gcc is missing).

use cairn_unix::elf::dynamic::dynamic_info;
use cairn_unix::elf::{
    ElfError, ElfImage, ElfKind, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_PHDR, PT_TLS, Region,
    headers_len,
};
use cairn_unix::{PAGE_SIZE, Prot};
use proptest::prelude::*;

#[derive(Clone, Copy)]
struct Ph {
    t: u32,
    flags: u32,
    off: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn load(flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
    Ph {
        t: PT_LOAD,
        flags,
        off,
        vaddr,
        filesz,
        memsz,
        align: PAGE_SIZE,
    }
}

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

fn image(e_type: u16, entry: u64, phs: &[Ph], len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(64 + 56 * phs.len())];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&e_type.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    for (i, p) in phs.iter().enumerate() {
        let o = 64 + 56 * i;
        b[o..o + 4].copy_from_slice(&p.t.to_le_bytes());
        b[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
        b[o + 8..o + 16].copy_from_slice(&p.off.to_le_bytes());
        b[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
        b[o + 24..o + 32].copy_from_slice(&p.vaddr.to_le_bytes());
        b[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
        b[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
        b[o + 48..o + 56].copy_from_slice(&p.align.to_le_bytes());
    }
    b
}

fn parse(b: &[u8]) -> Result<ElfImage, ElfError> {
    ElfImage::parse(b, b.len() as u64)
}

/// A typical static layout: headers+rodata page, text, data sharing a page
/// boundary with bss, TLS in data.
fn typical() -> Vec<Ph> {
    vec![
        load(R, 0, 0x400000, 0x300, 0x300),
        load(R | X, 0x1000, 0x401000, 0x2345, 0x2345),
        load(R | W, 0x4e00, 0x404e00, 0x300, 0x1400),
        Ph {
            t: PT_TLS,
            flags: R,
            off: 0x4e00,
            vaddr: 0x404e00,
            filesz: 0x10,
            memsz: 0x40,
            align: 8,
        },
        Ph {
            t: PT_GNU_STACK,
            flags: R | W,
            off: 0,
            vaddr: 0,
            filesz: 0,
            memsz: 0,
            align: 16,
        },
    ]
}

#[test]
fn static_exec_plan() {
    let b = image(2, 0x401010, &typical(), 0x6000);
    assert_eq!(headers_len(&b[..64]).unwrap(), 64 + 56 * 5);
    let img = parse(&b).unwrap();
    assert_eq!(img.kind(), ElfKind::Exec);
    assert_eq!(img.span(), (0x400000, 0x407000));
    let plan = img.plan(0).unwrap();
    assert_eq!(plan.entry, 0x401010);
    assert_eq!(plan.segments.len(), 3);
    assert_eq!(plan.segments[2].prot, Prot::READ | Prot::WRITE);
    assert!(!plan.exec_stack);
    assert_eq!(plan.brk_start, 0x407000);
    let tls = plan.tls.unwrap();
    assert_eq!(
        (tls.vaddr, tls.filesz, tls.memsz, tls.align),
        (0x404e00, 0x10, 0x40, 8)
    );
    // The headers are in the first segment's file bytes.
    assert_eq!(plan.phdrs.addr, Some(0x400040));
    assert_eq!(plan.phdrs.count, 5);
    assert_eq!(
        plan.regions(),
        vec![
            Region {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::READ
            },
            Region {
                start: 0x401000,
                end: 0x404000,
                prot: Prot::READ | Prot::EXEC
            },
            Region {
                start: 0x404000,
                end: 0x407000,
                prot: Prot::READ | Prot::WRITE
            },
        ]
    );
    // Page fills: data page starts at 0xe00 within its page, 0x200 bytes
    // in that page, 0x100 in the next; bss page has none.
    let f: Vec<_> = plan.page_fills(0x404000).collect();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].page_offset, f[0].file_offset, f[0].len),
        (0xe00, 0x4e00, 0x200)
    );
    let f: Vec<_> = plan.page_fills(0x405000).collect();
    assert_eq!(
        (f[0].page_offset, f[0].file_offset, f[0].len),
        (0, 0x5000, 0x100)
    );
    assert_eq!(plan.page_fills(0x406000).count(), 0);
    // Text's last partial page.
    let f: Vec<_> = plan.page_fills(0x403000).collect();
    assert_eq!(
        (f[0].page_offset, f[0].file_offset, f[0].len),
        (0, 0x3000, 0x345)
    );
}

#[test]
fn shared_page_gets_union_of_protections() {
    // Text ends mid-page and data starts in the same page.
    let phs = [
        load(R | X, 0, 0x400000, 0x1800, 0x1800),
        load(R | W, 0x1800, 0x401800, 0x100, 0x2000),
    ];
    let plan = parse(&image(2, 0x400100, &phs, 0x2000))
        .unwrap()
        .plan(0)
        .unwrap();
    assert_eq!(
        plan.regions(),
        vec![
            Region {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::READ | Prot::EXEC
            },
            Region {
                start: 0x401000,
                end: 0x402000,
                prot: Prot::ALL
            },
            Region {
                start: 0x402000,
                end: 0x404000,
                prot: Prot::READ | Prot::WRITE
            },
        ]
    );
    let f: Vec<_> = plan.page_fills(0x401000).collect();
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].page_offset, f[0].len), (0, 0x800));
    assert_eq!(
        (f[1].page_offset, f[1].file_offset, f[1].len),
        (0x800, 0x1800, 0x100)
    );
}

#[test]
fn static_pie_needs_bias() {
    let mut phs = typical();
    for p in &mut phs {
        if p.vaddr != 0 {
            p.vaddr -= 0x400000;
        }
    }
    phs.push(Ph {
        t: PT_PHDR,
        flags: R,
        off: 64,
        vaddr: 64,
        filesz: 56 * 6,
        memsz: 56 * 6,
        align: 8,
    });
    let img = parse(&image(3, 0x1010, &phs, 0x6000)).unwrap();
    assert_eq!(img.kind(), ElfKind::Dyn);
    // Unbiased, the first page would be at 0.
    assert_eq!(img.plan(0).unwrap_err(), ElfError::OutsideUserSpace);
    assert_eq!(img.plan(0x1234).unwrap_err(), ElfError::BadBias(0x1234));
    let plan = img.plan(0x5555_0000_0000).unwrap();
    assert_eq!(plan.entry, 0x5555_0000_1010);
    assert_eq!(plan.phdrs.addr, Some(0x5555_0000_0040));
    assert_eq!(plan.segments[0].vaddr, 0x5555_0000_0000);
    assert_eq!(plan.tls.unwrap().vaddr, 0x5555_0000_4e00);
    assert_eq!(plan.brk_start, 0x5555_0000_7000);
    // An ET_EXEC refuses a bias.
    let exec = parse(&image(2, 0x401010, &typical(), 0x6000)).unwrap();
    assert_eq!(exec.plan(0x1000).unwrap_err(), ElfError::BadBias(0x1000));
}

#[test]
fn missing_gnu_stack_means_exec_stack() {
    let phs = &typical()[..3];
    let plan = parse(&image(2, 0x401010, phs, 0x6000))
        .unwrap()
        .plan(0)
        .unwrap();
    assert!(plan.exec_stack);
}

#[test]
fn header_errors() {
    let good = image(2, 0x401010, &typical(), 0x6000);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        parse(&b).unwrap_err()
    };
    assert_eq!(parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
    assert_eq!(parse(b"\x7fEL").unwrap_err(), ElfError::NotElf);
    assert_eq!(parse(&[]).unwrap_err(), ElfError::NotElf);
    assert_eq!(with(&|b| b[4] = 1), ElfError::WrongClass(1));
    assert_eq!(with(&|b| b[5] = 2), ElfError::WrongEndian(2));
    assert_eq!(with(&|b| b[7] = 9), ElfError::WrongOsAbi(9));
    assert_eq!(with(&|b| b[18] = 3), ElfError::WrongMachine(3));
    assert_eq!(with(&|b| b[16] = 1), ElfError::NotExecutable(1));
    assert_eq!(with(&|b| b[54] = 32), ElfError::BadPhentsize(32));
    assert_eq!(
        with(&|b| b[56..58].copy_from_slice(&0xffffu16.to_le_bytes())),
        ElfError::TooManyHeaders(0xffff)
    );
    assert_eq!(
        with(&|b| b[56..58].copy_from_slice(&300u16.to_le_bytes())),
        ElfError::TooManyHeaders(300)
    );
    assert_eq!(
        with(&|b| b[56..58].copy_from_slice(&0u16.to_le_bytes())),
        ElfError::NoLoadSegments
    );
    assert_eq!(
        with(&|b| b[32..40].copy_from_slice(&u64::MAX.to_le_bytes())),
        ElfError::HeadersOutsideFile
    );
    // Short buffer but the file is long enough: asks for more bytes.
    assert_eq!(
        ElfImage::parse(&good[..100], good.len() as u64).unwrap_err(),
        ElfError::Truncated { need: 64 + 56 * 5 }
    );
    assert_eq!(
        ElfImage::parse(&good[..40], good.len() as u64).unwrap_err(),
        ElfError::Truncated { need: 64 }
    );
}

#[test]
fn segment_errors() {
    let e = |phs: &[Ph], entry: u64| parse(&image(2, entry, phs, 0x6000)).unwrap_err();
    let interp = Ph {
        t: PT_INTERP,
        flags: R,
        off: 0x200,
        vaddr: 0x400200,
        filesz: 28,
        memsz: 28,
        align: 1,
    };
    let dynamic = [load(R | X, 0, 0x400000, 0x1000, 0x1000), interp];
    // Two PT_INTERP headers, one outside the file, an empty or huge one.
    assert_eq!(
        e(&[dynamic[0], interp, interp], 0x400100),
        ElfError::BadInterp("more than one")
    );
    let mut outside = interp;
    outside.off = 0x5ff0;
    assert_eq!(
        e(&[dynamic[0], outside], 0x400100),
        ElfError::BadInterp("outside the file")
    );
    let mut empty = interp;
    empty.filesz = 1;
    let err = e(&[dynamic[0], empty], 0x400100);
    assert_eq!(err.to_string(), "bad PT_INTERP header: empty");
    let mut huge = interp;
    huge.filesz = 5000;
    assert_eq!(
        e(&[dynamic[0], huge], 0x400100),
        ElfError::BadInterp("path too long")
    );
    assert_eq!(
        e(&[load(R, 0, 0x400000, 0x2000, 0x1000)], 0x400000),
        ElfError::MemszBelowFilesz(0)
    );
    assert_eq!(
        e(&[load(R, 0, u64::MAX - 0x1000, 0x10, 0x2000)], 0x400000),
        ElfError::Wraps(0)
    );
    assert_eq!(
        e(&[load(R, 0, u64::MAX - 0x2000, 0x10, 0x1800)], 0x400000),
        ElfError::Wraps(0)
    );
    assert_eq!(
        e(&[load(R, u64::MAX - 4, 0x400000, 0x10, 0x10)], 0x400000),
        ElfError::Wraps(0)
    );
    assert_eq!(
        e(&[load(R, 0x5000, 0x400000, 0x2000, 0x2000)], 0x400000),
        ElfError::OutsideFile(0)
    );
    assert_eq!(
        e(&[load(R, 0x10, 0x400000, 0x20, 0x20)], 0x400000),
        ElfError::Misaligned(0)
    );
    let overlap = [
        load(R, 0, 0x400000, 0x1000, 0x1800),
        load(R, 0x1000, 0x401000, 0x100, 0x100),
    ];
    assert_eq!(e(&overlap, 0x400000), ElfError::Overlap(0, 1));
    let unsorted = [
        load(R, 0x1000, 0x401000, 0x100, 0x100),
        load(R, 0, 0x400000, 0x100, 0x100),
    ];
    assert_eq!(e(&unsorted, 0x400000), ElfError::Unsorted(1));
    assert_eq!(
        e(&[load(R, 0, 0x400000, 0x100, 0x100)], 0x500000),
        ElfError::EntryOutsideSegments(0x500000)
    );
    let only_empty = [load(R, 0, 0x400000, 0, 0)];
    assert_eq!(e(&only_empty, 0x400000), ElfError::NoLoadSegments);
    let mut two_tls = typical();
    two_tls.push(two_tls[3]);
    assert_eq!(e(&two_tls, 0x401010), ElfError::BadTls);
    let mut tls_outside = typical();
    tls_outside[3].vaddr = 0x900000;
    assert_eq!(e(&tls_outside, 0x401010), ElfError::BadTls);
    let mut tls_align = typical();
    tls_align[3].align = 24;
    assert_eq!(e(&tls_align, 0x401010), ElfError::BadTls);
    // Beyond user space.
    let high = [load(R, 0, 0x7fff_ffff_f000, 0x100, 0x100)];
    let img = parse(&image(2, 0x7fff_ffff_f000, &high, 0x1000)).unwrap();
    assert_eq!(img.plan(0).unwrap_err(), ElfError::OutsideUserSpace);
}

proptest! {
    /// Any bytes: parse and plan return, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600), size in any::<u64>(), bias in any::<u64>()) {
        let _ = headers_len(&b);
        if let Ok(img) = ElfImage::parse(&b, size) {
            if let Ok(plan) = img.plan(bias & !0xfff) {
                let _ = plan.regions();
            }
        }
    }

    /// A valid image with random header words overwritten: never panics,
    /// and whatever is accepted satisfies the plan's invariants.
    #[test]
    fn mutated_images_keep_invariants(muts in proptest::collection::vec((64usize..64 + 56 * 5, any::<u64>()), 1..6)) {
        let mut b = image(2, 0x401010, &typical(), 0x6000);
        for (at, v) in muts {
            let at = at.min(b.len() - 8);
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        if let Ok(plan) = parse(&b).and_then(|i| i.plan(0)) {
            let regions = plan.regions();
            for w in regions.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
            for r in &regions {
                prop_assert!(r.start < r.end && r.start % PAGE_SIZE == 0 && r.end % PAGE_SIZE == 0);
                prop_assert!(r.start >= cairn_unix::USER_MIN && r.end <= cairn_unix::USER_END);
            }
            for s in &plan.segments {
                prop_assert!(s.filesz <= s.memsz);
                prop_assert!(s.file_offset + s.filesz <= b.len() as u64);
            }
            prop_assert!(plan.segments.iter().any(|s| s.vaddr <= plan.entry && plan.entry < s.end()));
        }
    }
}

/// Reconstructs memory bytes of the loaded image at `addr` from the plan
/// and the file, as the kernel's page-by-page copy would.
fn read_loaded(plan: &cairn_unix::elf::LoadPlan, file: &[u8], addr: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for a in addr..addr + len as u64 {
        let page = a & !(PAGE_SIZE - 1);
        let off = a - page;
        let byte = plan
            .page_fills(page)
            .find(|f| f.page_offset <= off && off < f.page_offset + f.len)
            .map(|f| file[(f.file_offset + off - f.page_offset) as usize])
            .unwrap_or(0);
        out.push(byte);
    }
    out
}

fn gcc(flags: &[&str], name: &str) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("cairn-unix-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("t.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n__thread int t = 7;\nint main(){printf(\"%d\\n\", t);return 0;}\n",
    )
    .ok()?;
    let out = dir.join(name);
    let ok = std::process::Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    std::fs::read(&out).ok()
}

#[test]
fn real_programs_from_gcc() {
    let Some(exe) = gcc(&["-static"], "static") else {
        eprintln!("SKIPPED: no working `gcc -static` on this host");
        return;
    };
    let img = parse(&exe).unwrap();
    assert_eq!(img.kind(), ElfKind::Exec);
    let plan = img.plan(0).unwrap();
    let regions = plan.regions();
    assert!(
        regions
            .iter()
            .any(|r| r.prot.contains(Prot::EXEC) && r.start <= plan.entry && plan.entry < r.end)
    );
    assert!(plan.tls.is_some());
    // AT_PHDR must point at the real program headers once loaded.
    let at = plan.phdrs.addr.expect("phdrs mapped");
    let table = &exe[64..64 + 56 * plan.phdrs.count as usize];
    assert_eq!(read_loaded(&plan, &exe, at, table.len()), table);

    if let Some(pie) = gcc(&["-static-pie"], "pie") {
        let img = parse(&pie).unwrap();
        assert_eq!(img.kind(), ElfKind::Dyn);
        let plan = img.plan(0x7f00_0000_0000).unwrap();
        let at = plan.phdrs.addr.unwrap();
        let table = &pie[64..64 + 56 * plan.phdrs.count as usize];
        assert_eq!(read_loaded(&plan, &pie, at, table.len()), table);
    }
    if let Some(dynamic) = gcc(&[], "dynamic") {
        let img = parse(&dynamic).unwrap();
        assert_eq!(img.kind(), ElfKind::Dyn, "gcc makes a PIE by default");
        assert_eq!(
            img.interp_path(&dynamic).unwrap(),
            Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
        );
        let info = dynamic_info(&dynamic).unwrap();
        assert_eq!(info.needed, [b"libc.so.6".to_vec()]);
        assert_eq!(
            info.interp.as_deref(),
            Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
        );
    }
    if let Some(nopie) = gcc(&["-no-pie"], "nopie") {
        let img = parse(&nopie).unwrap();
        assert_eq!(img.kind(), ElfKind::Exec);
        assert!(img.interp().is_some());
        assert!(img.plan(0).is_ok());
    }
}

/// A dynamically linked program with a PT_INTERP string inside the file.
fn with_interp(path: &[u8]) -> Vec<u8> {
    let interp = Ph {
        t: PT_INTERP,
        flags: R,
        off: 0x200,
        vaddr: 0x200,
        filesz: path.len() as u64,
        memsz: path.len() as u64,
        align: 1,
    };
    let mut b = image(
        3,
        0x100,
        &[interp, load(R | X, 0, 0, 0x1000, 0x1000)],
        0x1000,
    );
    b[0x200..0x200 + path.len()].copy_from_slice(path);
    b
}

#[test]
fn interpreter_path() {
    let b = with_interp(b"/lib64/ld-linux-x86-64.so.2\0");
    let img = parse(&b).unwrap();
    assert_eq!(img.kind(), ElfKind::Dyn);
    assert_eq!(img.interp(), Some((0x200, 28)));
    assert_eq!(
        img.interp_path(&b).unwrap(),
        Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
    );
    // Only the headers supplied: asks for the bytes holding the path.
    assert_eq!(
        img.interp_path(&b[..0x100]).unwrap_err(),
        ElfError::Truncated { need: 0x200 + 28 }
    );
    for bad in [&b"/lib/ld.so"[..], b"/lib/\0ld.so\0", b"\0\0"] {
        let b = with_interp(bad);
        let img = parse(&b).unwrap();
        assert!(
            matches!(img.interp_path(&b), Err(ElfError::BadInterp(_))),
            "{bad:?}"
        );
    }
    // A static program has none.
    let s = image(2, 0x401010, &typical(), 0x6000);
    assert_eq!(parse(&s).unwrap().interp_path(&s).unwrap(), None);
}

#[test]
fn load_alignment() {
    let mut phs = typical();
    assert_eq!(
        parse(&image(2, 0x401010, &phs, 0x6000))
            .unwrap()
            .load_align(),
        PAGE_SIZE
    );
    phs[1].align = 0x20_0000;
    phs[2].align = 3; // not a power of two: ignored
    assert_eq!(
        parse(&image(2, 0x401010, &phs, 0x6000))
            .unwrap()
            .load_align(),
        0x20_0000
    );
    phs[1].align = 1 << 40;
    assert_eq!(
        parse(&image(2, 0x401010, &phs, 0x6000))
            .unwrap()
            .load_align(),
        0x20_0000
    );
}

#[test]
fn dynamic_section_of_real_objects() {
    // The host's own programs and libraries (Debian): ls needs libc and
    // names the loader; libc names its soname and needs the loader.
    let Ok(ls) = std::fs::read("/bin/ls") else {
        eprintln!("SKIPPED: no /bin/ls");
        return;
    };
    let info = dynamic_info(&ls).unwrap();
    assert!(info.has_dynamic);
    assert!(info.needed.iter().any(|n| n == b"libc.so.6"), "{info:?}");
    assert_eq!(
        info.interp.as_deref(),
        Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
    );
    for libc in ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"] {
        if let Ok(b) = std::fs::read(libc) {
            let info = dynamic_info(&b).unwrap();
            assert_eq!(info.soname.as_deref(), Some(&b"libc.so.6"[..]));
            assert!(info.interp.is_some(), "libc.so.6 is runnable");
            assert!(info.needed.iter().any(|n| n.starts_with(b"ld-linux")));
            break;
        }
    }
    // Synthetic: no PT_DYNAMIC at all.
    let s = image(2, 0x401010, &typical(), 0x6000);
    let info = dynamic_info(&s).unwrap();
    assert!(!info.has_dynamic && info.needed.is_empty() && info.interp.is_none());
}

/// A minimal shared object: one PT_LOAD, a PT_DYNAMIC with the given
/// entries and a string table.
fn shared_object(entries: &[(u64, u64)], strings: &[u8]) -> Vec<u8> {
    let dyn_off = 0x400u64;
    let str_off = 0x800u64;
    let dynamic = Ph {
        t: 2,
        flags: R | W,
        off: dyn_off,
        vaddr: dyn_off,
        filesz: 16 * (entries.len() as u64 + 1),
        memsz: 16 * (entries.len() as u64 + 1),
        align: 8,
    };
    let mut b = image(3, 0, &[load(R, 0, 0, 0x1000, 0x1000), dynamic], 0x1000);
    for (i, (t, v)) in entries.iter().enumerate() {
        let o = dyn_off as usize + 16 * i;
        b[o..o + 8].copy_from_slice(&t.to_le_bytes());
        b[o + 8..o + 16].copy_from_slice(&v.to_le_bytes());
    }
    b[str_off as usize..str_off as usize + strings.len()].copy_from_slice(strings);
    b
}

#[test]
fn dynamic_section_entries_and_errors() {
    let strings = b"\0libfoo.so.1\0libbar.so\0$ORIGIN/../lib\0/opt/r\0libme.so.2\0";
    let ok = shared_object(
        &[
            (1, 1),
            (1, 13),
            (29, 23),
            (15, 38),
            (14, 45),
            (5, 0x800),
            (10, strings.len() as u64),
            (0x6fff_fffb, 0x800),
        ],
        strings,
    );
    let info = dynamic_info(&ok).unwrap();
    assert_eq!(
        info.needed,
        [b"libfoo.so.1".to_vec(), b"libbar.so".to_vec()]
    );
    assert_eq!(info.runpath.as_deref(), Some(&b"$ORIGIN/../lib"[..]));
    assert_eq!(info.rpath.as_deref(), Some(&b"/opt/r"[..]));
    assert_eq!(info.soname.as_deref(), Some(&b"libme.so.2"[..]));
    assert!(info.nodeflib);
    assert_eq!(info.kind, Some(ElfKind::Dyn));
    // A name beyond the string table, a table outside the segments, no
    // string table at all.
    let bad = |e: &[(u64, u64)]| dynamic_info(&shared_object(e, strings)).unwrap_err();
    assert!(matches!(
        bad(&[(1, 500), (5, 0x800), (10, strings.len() as u64)]),
        ElfError::BadDynamic(_)
    ));
    assert!(matches!(
        bad(&[(1, 1), (5, 0x5000), (10, 16)]),
        ElfError::BadDynamic(_)
    ));
    assert!(matches!(bad(&[(1, 1)]), ElfError::BadDynamic(_)));
}

proptest! {
    /// Any bytes after a valid header: dynamic_info returns, never panics.
    #[test]
    fn dynamic_info_never_panics(muts in proptest::collection::vec((0usize..0x1000, any::<u64>()), 0..8)) {
        let strings = b"\0libfoo.so.1\0";
        let mut b = shared_object(&[(1, 1), (5, 0x800), (10, 14)], strings);
        for (at, v) in muts {
            let at = at.min(b.len() - 8);
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        let _ = dynamic_info(&b);
    }
}
