//! The initial stack, read back the way a C library's start-up code reads
//! it: argc at rsp, argv, NULL, envp, NULL, auxv pairs up to AT_NULL, and
//! the strings and bytes they point to.

use std::collections::BTreeMap;

use cairn_unix::stack::*;
use proptest::prelude::*;

struct Parsed {
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    auxv: BTreeMap<u64, u64>,
    aux_order: Vec<u64>,
}

fn word(img: &StackImage, addr: u64) -> u64 {
    let o = (addr - img.base) as usize;
    u64::from_le_bytes(img.bytes[o..o + 8].try_into().unwrap())
}

fn cstr(img: &StackImage, addr: u64) -> Vec<u8> {
    let o = (addr - img.base) as usize;
    let end = img.bytes[o..].iter().position(|&c| c == 0).expect("NUL");
    img.bytes[o..o + end].to_vec()
}

fn parse(img: &StackImage) -> Parsed {
    let mut p = img.rsp;
    let argc = word(img, p);
    p += 8;
    let mut argv = Vec::new();
    for _ in 0..argc {
        argv.push(cstr(img, word(img, p)));
        p += 8;
    }
    assert_eq!(word(img, p), 0, "argv not NULL-terminated");
    p += 8;
    assert_eq!(p, img.envp);
    let mut envp = Vec::new();
    while word(img, p) != 0 {
        envp.push(cstr(img, word(img, p)));
        p += 8;
    }
    p += 8;
    assert_eq!(p, img.auxv);
    let mut auxv = BTreeMap::new();
    let mut aux_order = Vec::new();
    loop {
        let (k, v) = (word(img, p), word(img, p + 8));
        p += 16;
        aux_order.push(k);
        if k == AT_NULL {
            break;
        }
        assert!(auxv.insert(k, v).is_none(), "duplicate auxv key {k}");
    }
    Parsed {
        argv,
        envp,
        auxv,
        aux_order,
    }
}

fn info<'a>(argv: &'a [&'a [u8]], envp: &'a [&'a [u8]], phdrs: PhdrSource<'a>) -> StartInfo<'a> {
    StartInfo {
        argv,
        envp,
        execfn: b"/prog",
        phdrs,
        phnum: 9,
        entry: 0x401000,
        base: 0,
        sysinfo_ehdr: None,
        ids: Ids {
            uid: 1,
            euid: 2,
            gid: 3,
            egid: 4,
        },
        random: *b"0123456789abcdef",
        hwcap: 0x178bfbff,
        hwcap2: Some(2),
        minsigstksz: None,
    }
}

const TOP: u64 = 0x7fff_ffff_0000;

#[test]
fn reads_back_like_libc() {
    let argv: &[&[u8]] = &[b"/prog", b"-v", b""];
    let envp: &[&[u8]] = &[b"HOME=/", b"A=b=c"];
    let img = build(
        &info(argv, envp, PhdrSource::Mapped(0x400040)),
        TOP,
        1 << 20,
    )
    .unwrap();
    assert_eq!(img.rsp % 16, 0, "rsp must be 16-byte aligned at entry");
    assert_eq!(img.base, img.rsp);
    assert_eq!(img.base + img.bytes.len() as u64, TOP);
    let p = parse(&img);
    assert_eq!(p.argv, argv.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
    assert_eq!(p.envp, envp.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
    let a = &p.auxv;
    assert_eq!(a[&AT_PHDR], 0x400040);
    assert_eq!(a[&AT_PHENT], 56);
    assert_eq!(a[&AT_PHNUM], 9);
    assert_eq!(a[&AT_PAGESZ], 4096);
    assert_eq!(a[&AT_BASE], 0);
    assert_eq!(a[&AT_FLAGS], 0);
    assert_eq!(a[&AT_ENTRY], 0x401000);
    assert_eq!(
        (a[&AT_UID], a[&AT_EUID], a[&AT_GID], a[&AT_EGID]),
        (1, 2, 3, 4)
    );
    assert_eq!(a[&AT_SECURE], 0);
    assert_eq!(a[&AT_HWCAP], 0x178bfbff);
    assert_eq!(a[&AT_HWCAP2], 2);
    assert_eq!(a[&AT_CLKTCK], 100);
    assert!(!a.contains_key(&AT_MINSIGSTKSZ));
    assert_eq!(*p.aux_order.last().unwrap(), AT_NULL);
    let r = a[&AT_RANDOM];
    let o = (r - img.base) as usize;
    assert_eq!(&img.bytes[o..o + 16], b"0123456789abcdef");
    assert_eq!(cstr(&img, a[&AT_PLATFORM]), b"x86_64");
    assert_eq!(cstr(&img, a[&AT_EXECFN]), b"/prog");
    // Everything lives below the top, with the 8-byte end marker at the top.
    assert_eq!(&img.bytes[img.bytes.len() - 8..], &[0; 8]);
}

#[test]
fn dynamic_loader_and_vdso_entries() {
    let mut i = info(&[b"/prog"], &[], PhdrSource::Mapped(0x5555_0000_0040));
    i.base = 0x7f12_3456_7000;
    i.sysinfo_ehdr = Some(0x7f00_0000_1000);
    let img = build(&i, TOP, 1 << 20).unwrap();
    let p = parse(&img);
    assert_eq!(p.auxv[&AT_BASE], 0x7f12_3456_7000);
    assert_eq!(p.auxv[&AT_SYSINFO_EHDR], 0x7f00_0000_1000);
    // AT_ENTRY stays the program's (the loader jumps there).
    assert_eq!(p.auxv[&AT_ENTRY], 0x401000);
    assert_eq!(p.auxv[&AT_PHDR], 0x5555_0000_0040);
    // Without a vDSO the entry is absent (glibc then uses syscalls).
    let none = parse(&build(&info(&[b"x"], &[], PhdrSource::Mapped(1)), TOP, 1 << 20).unwrap());
    assert!(!none.auxv.contains_key(&AT_SYSINFO_EHDR));
}

#[test]
fn copied_program_headers() {
    let table: Vec<u8> = (0..56 * 3).map(|i| i as u8).collect();
    let img = build(&info(&[b"x"], &[], PhdrSource::Copy(&table)), TOP, 1 << 20).unwrap();
    let p = parse(&img);
    let at = p.auxv[&AT_PHDR];
    assert_eq!(at % 8, 0);
    let o = (at - img.base) as usize;
    assert_eq!(&img.bytes[o..o + table.len()], &table[..]);
}

#[test]
fn errors() {
    let i = info(&[b"a\0b"], &[], PhdrSource::Mapped(0));
    assert_eq!(
        build(&i, TOP, 1 << 20).unwrap_err(),
        StackError::NulInString
    );
    let i = info(&[b"a"], &[], PhdrSource::Mapped(0));
    assert_eq!(build(&i, TOP + 8, 1 << 20).unwrap_err(), StackError::BadTop);
    assert_eq!(build(&i, TOP, 64).unwrap_err(), StackError::TooBig);
    assert_eq!(StackError::TooBig.errno(), cairn_unix::Errno::E2BIG);
    let big = vec![b'x'; MAX_ARG_STRLEN];
    let argv: [&[u8]; 1] = [&big];
    let i = info(&argv, &[], PhdrSource::Mapped(0));
    assert_eq!(build(&i, TOP, 1 << 24).unwrap_err(), StackError::TooBig);
    // Near address 0: no underflow, just too big.
    let five_k = vec![b'y'; 5000];
    let argv: [&[u8]; 1] = [&five_k];
    let i = info(&argv, &[], PhdrSource::Mapped(0));
    assert_eq!(build(&i, 0x1000, 1 << 20).unwrap_err(), StackError::TooBig);
}

proptest! {
    #[test]
    fn any_strings_round_trip(
        argv in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 0..12),
        envp in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 0..12),
        top_pages in 16u64..1000,
        minsig in proptest::option::of(any::<u64>()),
    ) {
        let a: Vec<&[u8]> = argv.iter().map(|s| &s[..]).collect();
        let e: Vec<&[u8]> = envp.iter().map(|s| &s[..]).collect();
        let mut i = info(&a, &e, PhdrSource::Mapped(0x400040));
        i.minsigstksz = minsig;
        let top = top_pages * 4096 + 0x10_0000;
        let img = build(&i, top, 1 << 20).unwrap();
        prop_assert_eq!(img.rsp % 16, 0);
        let p = parse(&img);
        prop_assert_eq!(p.argv, argv);
        prop_assert_eq!(p.envp, envp);
        prop_assert_eq!(p.auxv.get(&AT_MINSIGSTKSZ).copied(), minsig);
    }
}
