//! ABI encoders: field offsets and sizes checked against the host C
//! library's definitions (libc crate, x86-64 Linux), getdents64 packing
//! with resumable offsets, decoders' bounds checks.

use std::mem::{offset_of, size_of};

use cairn_unix::Errno;
use cairn_unix::abi::*;
use cairn_unix::signal::{SigAction, SigSet};

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}

fn sample() -> FileStat {
    FileStat {
        dev: makedev(8, 0x12345),
        ino: 0x1111_2222_3333,
        nlink: 3,
        mode: 0o100644,
        uid: 1000,
        gid: 100,
        rdev: makedev(0x1234, 7),
        size: 123_456_789,
        blksize: 4096,
        blocks: 241_128,
        atime: (1_700_000_001, 11),
        mtime: (1_700_000_002, 22),
        ctime: (1_700_000_003, 33),
        btime: Some((1_600_000_000, 44)),
    }
}

#[test]
fn stat_layout_matches_libc() {
    assert_eq!(size_of::<libc::stat>(), STAT_SIZE);
    let st = sample();
    let mut b = [0xaau8; STAT_SIZE + 8];
    assert_eq!(encode_stat(&st, &mut b).unwrap(), STAT_SIZE);
    assert_eq!(b[STAT_SIZE], 0xaa, "wrote past the struct");
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_dev)), st.dev);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_ino)), st.ino);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_nlink)), 3);
    assert_eq!(u32_at(&b, offset_of!(libc::stat, st_mode)), 0o100644);
    assert_eq!(u32_at(&b, offset_of!(libc::stat, st_uid)), 1000);
    assert_eq!(u32_at(&b, offset_of!(libc::stat, st_gid)), 100);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_rdev)), st.rdev);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_size)), 123_456_789);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_blksize)), 4096);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_blocks)), 241_128);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_atime)), 1_700_000_001);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_atime_nsec)), 11);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_mtime)), 1_700_000_002);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_mtime_nsec)), 22);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_ctime)), 1_700_000_003);
    assert_eq!(u64_at(&b, offset_of!(libc::stat, st_ctime_nsec)), 33);
    // glibc's own major/minor agree with the encoding.
    assert_eq!(libc::major(st.dev), 8);
    assert_eq!(libc::minor(st.dev), 0x12345);
    assert_eq!(libc::makedev(0x1234, 7), st.rdev);
    assert_eq!((major(st.rdev), minor(st.rdev)), (0x1234, 7));
    assert_eq!(
        encode_stat(&st, &mut [0u8; 100]).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn statx_layout_matches_libc() {
    assert_eq!(size_of::<libc::statx>(), STATX_SIZE);
    let st = sample();
    let mut b = [0xaau8; STATX_SIZE];
    encode_statx(&st, STATX_BASIC_STATS | STATX_BTIME, &mut b).unwrap();
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_mask)), 0xfff);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_blksize)), 4096);
    assert_eq!(u64_at(&b, offset_of!(libc::statx, stx_attributes)), 0);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_nlink)), 3);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_uid)), 1000);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_gid)), 100);
    assert_eq!(u16_at(&b, offset_of!(libc::statx, stx_mode)), 0o100644);
    assert_eq!(u64_at(&b, offset_of!(libc::statx, stx_ino)), st.ino);
    assert_eq!(u64_at(&b, offset_of!(libc::statx, stx_size)), 123_456_789);
    assert_eq!(u64_at(&b, offset_of!(libc::statx, stx_blocks)), 241_128);
    let ts = |b: &[u8], f: usize| (u64_at(b, f), u32_at(b, f + 8));
    assert_eq!(
        ts(&b, offset_of!(libc::statx, stx_atime)),
        (1_700_000_001, 11)
    );
    assert_eq!(
        ts(&b, offset_of!(libc::statx, stx_btime)),
        (1_600_000_000, 44)
    );
    assert_eq!(
        ts(&b, offset_of!(libc::statx, stx_ctime)),
        (1_700_000_003, 33)
    );
    assert_eq!(
        ts(&b, offset_of!(libc::statx, stx_mtime)),
        (1_700_000_002, 22)
    );
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_rdev_major)), 0x1234);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_rdev_minor)), 7);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_dev_major)), 8);
    assert_eq!(u32_at(&b, offset_of!(libc::statx, stx_dev_minor)), 0x12345);
    // Padding is zeroed, not left as it was.
    assert!(
        b[offset_of!(libc::statx, stx_mnt_id)..]
            .iter()
            .all(|&x| x == 0)
    );
    // Without BTIME requested, no BTIME bit and a zero birth time.
    encode_statx(&st, STATX_BASIC_STATS, &mut b).unwrap();
    assert_eq!(u32_at(&b, 0), STATX_BASIC_STATS);
    assert_eq!(ts(&b, offset_of!(libc::statx, stx_btime)), (0, 0));
}

#[test]
fn time_structs() {
    assert_eq!(size_of::<libc::timespec>(), Timespec::SIZE);
    assert_eq!(size_of::<libc::timeval>(), Timeval::SIZE);
    let mut b = [0u8; 16];
    Timespec::from_nanos(3_000_000_007).encode(&mut b).unwrap();
    assert_eq!(u64_at(&b, offset_of!(libc::timespec, tv_sec)), 3);
    assert_eq!(u64_at(&b, offset_of!(libc::timespec, tv_nsec)), 7);
    assert_eq!(
        Timespec::decode_valid(&b).unwrap().as_nanos(),
        3_000_000_007
    );
    Timeval::from_nanos(5_000_123_999).encode(&mut b).unwrap();
    assert_eq!(u64_at(&b, offset_of!(libc::timeval, tv_usec)), 123);
    assert_eq!(Timeval::decode(&b).unwrap(), Timeval { sec: 5, usec: 123 });
    // Invalid ranges and short buffers.
    let bad = Timespec {
        sec: 1,
        nsec: 1_000_000_000,
    };
    bad.encode(&mut b).unwrap();
    assert_eq!(Timespec::decode_valid(&b).unwrap_err(), Errno::EINVAL);
    Timespec { sec: -1, nsec: 0 }.encode(&mut b).unwrap();
    assert_eq!(Timespec::decode_valid(&b).unwrap_err(), Errno::EINVAL);
    assert_eq!(Timespec::decode(&b[..15]).unwrap_err(), Errno::EFAULT);
    assert_eq!(Timeval::decode(&[0xff; 16]).unwrap_err(), Errno::EINVAL);
}

#[test]
fn small_structs() {
    assert_eq!(size_of::<libc::utsname>(), Utsname::SIZE);
    let u = Utsname {
        sysname: b"Linux",
        nodename: b"cairn",
        release: b"6.1.0",
        version: b"#1 cairn",
        machine: b"x86_64",
        domainname: &[b'd'; 100],
    };
    let mut b = vec![0xffu8; Utsname::SIZE];
    u.encode(&mut b).unwrap();
    let field = |off: usize| {
        let f = &b[off..off + 65];
        f[..f.iter().position(|&c| c == 0).unwrap()].to_vec()
    };
    assert_eq!(field(offset_of!(libc::utsname, sysname)), b"Linux");
    assert_eq!(field(offset_of!(libc::utsname, release)), b"6.1.0");
    assert_eq!(field(offset_of!(libc::utsname, machine)), b"x86_64");
    assert_eq!(field(offset_of!(libc::utsname, domainname)).len(), 64);

    assert_eq!(size_of::<libc::rlimit>(), Rlimit::SIZE);
    let mut b = [0u8; 16];
    Rlimit {
        cur: 1024,
        max: RLIM_INFINITY,
    }
    .encode(&mut b)
    .unwrap();
    assert_eq!(u64_at(&b, offset_of!(libc::rlimit, rlim_max)), u64::MAX);
    assert_eq!(Rlimit::decode(&b).unwrap().cur, 1024);
    Rlimit { cur: 5, max: 4 }.encode(&mut b).unwrap();
    assert_eq!(Rlimit::decode(&b).unwrap_err(), Errno::EINVAL);

    assert_eq!(size_of::<libc::stack_t>(), StackT::SIZE);
    let mut b = [0u8; 24];
    StackT {
        sp: 0x1000,
        flags: 2,
        size: 8192,
    }
    .encode(&mut b)
    .unwrap();
    assert_eq!(u64_at(&b, offset_of!(libc::stack_t, ss_size)), 8192);
    assert_eq!(u32_at(&b, offset_of!(libc::stack_t, ss_flags)), 2);
    assert_eq!(StackT::decode(&b).unwrap().sp, 0x1000);

    assert_eq!(size_of::<libc::iovec>(), IoVec::SIZE);
    let mut raw = Vec::new();
    for (base, len) in [(0x1000u64, 5u64), (0x2000, 7)] {
        raw.extend_from_slice(&base.to_le_bytes());
        raw.extend_from_slice(&len.to_le_bytes());
    }
    let v = decode_iovecs(&raw, 2).unwrap();
    assert_eq!(
        v[1],
        IoVec {
            base: 0x2000,
            len: 7
        }
    );
    assert_eq!(decode_iovecs(&raw, 3).unwrap_err(), Errno::EFAULT);
    assert_eq!(decode_iovecs(&raw, IOV_MAX + 1).unwrap_err(), Errno::EINVAL);
    raw[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_eq!(decode_iovecs(&raw, 2).unwrap_err(), Errno::EINVAL);
}

#[test]
fn kernel_sigaction_round_trip() {
    let a = SigAction {
        handler: 0x401234,
        flags: 0x0400_0004,
        restorer: 0x401000,
        mask: SigSet::from_bits(0x8000_0000_0000_0001),
    };
    let mut b = [0u8; KernelSigaction::SIZE];
    KernelSigaction::encode(&a, &mut b).unwrap();
    assert_eq!(u64_at(&b, 0), 0x401234);
    assert_eq!(u64_at(&b, 8), 0x0400_0004);
    assert_eq!(u64_at(&b, 16), 0x401000);
    assert_eq!(u64_at(&b, 24), 0x8000_0000_0000_0001);
    assert_eq!(KernelSigaction::decode(&b).unwrap(), a);
    assert_eq!(
        KernelSigaction::decode(&b[..31]).unwrap_err(),
        Errno::EFAULT
    );
}

/// A directory of `n` entries, listed with a buffer of `buf` bytes per
/// call, resuming at the returned offsets: every entry exactly once, in
/// order, records parse like glibc's readdir would.
fn list(n: usize, buf: usize) -> Result<Vec<(u64, Vec<u8>, u8)>, Errno> {
    let names: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("file-{}{}", i, "x".repeat(i % 13)).into_bytes())
        .collect();
    let mut pos: i64 = 0;
    let mut out = Vec::new();
    loop {
        let mut b = vec![0u8; buf];
        let mut w = DirentWriter::new(&mut b);
        for (i, name) in names.iter().enumerate().skip(pos as usize) {
            let e = Dirent {
                ino: 100 + i as u64,
                next: i as i64 + 1,
                kind: DT_REG,
                name,
            };
            if !w.push(&e)? {
                break;
            }
        }
        let (used, resume) = w.finish()?;
        if used == 0 {
            return Ok(out);
        }
        let mut o = 0;
        while o < used {
            let reclen = u16_at(&b, o + 16) as usize;
            assert_eq!(reclen % 8, 0);
            assert_eq!(
                reclen,
                dirent_reclen(b[o + 19..o + reclen].iter().position(|&c| c == 0).unwrap())
            );
            let name_end = b[o + 19..].iter().position(|&c| c == 0).unwrap();
            out.push((
                u64_at(&b, o),
                b[o + 19..o + 19 + name_end].to_vec(),
                b[o + 18],
            ));
            let d_off = u64_at(&b, o + 8) as i64;
            o += reclen;
            if o == used {
                assert_eq!(Some(d_off), resume);
            }
        }
        pos = resume.unwrap();
    }
}

#[test]
fn getdents_resumes_exactly() {
    for buf in [40, 64, 100, 333, 4096] {
        let got = list(57, buf).unwrap();
        assert_eq!(got.len(), 57, "buffer {buf}");
        for (i, (ino, name, kind)) in got.iter().enumerate() {
            assert_eq!(*ino, 100 + i as u64);
            assert_eq!(
                name,
                &format!("file-{}{}", i, "x".repeat(i % 13)).into_bytes()
            );
            assert_eq!(*kind, DT_REG);
        }
    }
    // A buffer too small for the first entry.
    assert_eq!(list(3, 24).unwrap_err(), Errno::EINVAL);
    let mut b = [0u8; 64];
    let mut w = DirentWriter::new(&mut b);
    assert_eq!(
        w.push(&Dirent {
            ino: 1,
            next: 1,
            kind: 0,
            name: b"a/b"
        })
        .unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        w.push(&Dirent {
            ino: 1,
            next: 1,
            kind: 0,
            name: &[b'n'; DIRENT_NAME_LIMIT + 1]
        })
        .unwrap_err(),
        Errno::ENAMETOOLONG
    );
    // Names over NAME_MAX (Nanos's mkfs makes them) are listed, as Linux
    // lists whatever its filesystem holds.
    let mut big = [0u8; 1024];
    let mut w = DirentWriter::new(&mut big);
    let long = [b'n'; 300];
    assert!(
        w.push(&Dirent {
            ino: 7,
            next: 3,
            kind: DT_REG,
            name: &long
        })
        .unwrap()
    );
    let (n, resume) = w.finish().unwrap();
    assert_eq!((n, resume), (dirent_reclen(300), Some(3)));
    assert_eq!(u16_at(&big, 16) as usize, dirent_reclen(300));
    assert_eq!(&big[19..319], &long[..]);
    assert_eq!(big[319], 0);
    assert_eq!(dirent_reclen(1), 24);
    assert_eq!(dirent_reclen(4), 24);
    assert_eq!(dirent_reclen(5), 32);
}
