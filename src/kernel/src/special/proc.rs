//! `/proc`: system files (`cpuinfo`, `meminfo`, `stat`, `mounts`,
//! `uptime`), cairn's own accounting (`cairn/kstats`), the profiler's
//! phase marks (`cairn/profile`, write-only: `crate::profile::mark`) and the program's own directory, `/proc/1`, which
//! `/proc/self` links to (the program is pid 1): `exe`, `cwd`, `cmdline`,
//! `comm`, `status`, `maps`, `mounts` and `fd/`.
//!
//! What it knows about the program comes from [`set_program`] (the path
//! and argv, at exec), the paths files were opened by ([`remember_path`]:
//! `fd/N` links and `maps` name files by the path of their last open;
//! a rename since is not seen) and the thread names `prctl(PR_SET_NAME)`
//! set ([`set_comm`]).
//!
//! Kernel-lock context. Lock: `special.proc` (SpinLock, kernel-lock only,
//! a leaf).

use super::{Node, S_IFDIR, S_IFLNK, link, new_ino, register, stat_of, text};
use crate::fs::Loc;
use crate::process::file::O_ACCMODE;
use crate::process::file::{FileKind, OpenFile};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use cairn_unix::path::NodeKind;
use cairn_unix::prot::Prot;
use cairn_unix::vmap::{Share, VmapKind};
use core::fmt::Write;

static PROC_CLASS: LockClass = LockClass::new("special.proc");

#[derive(Default)]
struct Info {
    exe: Vec<u8>,
    argv: Vec<Vec<u8>>,
    /// Where the program's ELF segments were loaded.
    segments: Vec<(u64, u64)>,
    /// File (`Loc::key`: volume and inode) → the path it was last opened by.
    paths: BTreeMap<u64, Vec<u8>>,
    /// Thread id → name (`prctl(PR_SET_NAME)`).
    comm: BTreeMap<u32, [u8; 16]>,
}

static INFO: SpinLock<Option<Info>> = SpinLock::new(&PROC_CLASS, None);

fn with_info<R>(f: impl FnOnce(&mut Info) -> R) -> R {
    f(INFO.lock().get_or_insert_with(Info::default))
}

/// The program's path, argv and loaded segments (exec).
pub fn set_program(exe: &[u8], argv: &[Vec<u8>], segments: Vec<(u64, u64)>) {
    with_info(|i| {
        i.exe = exe.to_vec();
        i.argv = argv.to_vec();
        i.segments = segments;
    });
}

/// The program's path.
pub fn exe() -> Vec<u8> {
    with_info(|i| i.exe.clone())
}

/// The TFS file at `loc` was opened by absolute path `path`.
pub fn remember_path(loc: Loc, path: Vec<u8>) {
    with_info(|i| {
        i.paths.insert(loc.key(), path);
    });
}

/// Forgets the path of the TFS file at `loc` (its inode is gone).
pub fn forget_path(loc: Loc) {
    with_info(|i| {
        i.paths.remove(&loc.key());
    });
}

/// The path the TFS file at `loc` was last opened by.
pub fn path_of(loc: Loc) -> Option<Vec<u8>> {
    with_info(|i| i.paths.get(&loc.key()).cloned())
}

/// Sets thread `tid`'s name (at most 15 bytes are kept).
pub fn set_comm(tid: u32, name: &[u8]) {
    let mut b = [0u8; 16];
    let name = name.split(|&c| c == 0).next().unwrap_or(&[]);
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name[..n]);
    with_info(|i| {
        i.comm.insert(tid, b);
    });
}

/// Thread `tid`'s name: what `PR_SET_NAME` set, else the program's file
/// name (15 bytes at most, as Linux keeps).
pub fn comm(tid: u32) -> Vec<u8> {
    with_info(|i| {
        if let Some(b) = i.comm.get(&tid) {
            let n = b.iter().position(|&c| c == 0).unwrap_or(16);
            return b[..n].to_vec();
        }
        let base = i.exe.rsplit(|&c| c == b'/').next().unwrap_or(&[]);
        base[..base.len().min(15)].to_vec()
    })
}

/// The name of an open file, for `fd/N` links.
pub fn file_name(f: &OpenFile) -> Vec<u8> {
    match &f.kind {
        FileKind::Regular(d) => {
            path_of(d.loc()).unwrap_or_else(|| format!("/inode:{}", d.ino.0).into_bytes())
        }
        FileKind::Directory(loc) => path_of(*loc).unwrap_or_else(|| b"/".to_vec()),
        FileKind::Console => b"/dev/console".to_vec(),
        FileKind::Object(o) => o.name(),
    }
}

fn cpuinfo() -> Vec<u8> {
    let (_, b, c, d) = cairn_pc::cpu::cpuid(0, 0);
    let mut vendor = Vec::new();
    for r in [b, d, c] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let (eax1, _, ecx1, edx1) = cairn_pc::cpu::cpuid(1, 0);
    let family = ((eax1 >> 8) & 0xf)
        + if (eax1 >> 8) & 0xf == 0xf {
            (eax1 >> 20) & 0xff
        } else {
            0
        };
    let model = ((eax1 >> 4) & 0xf) | (((eax1 >> 16) & 0xf) << 4);
    let mut brand = Vec::new();
    if cairn_pc::cpu::cpuid(0x8000_0000, 0).0 >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            let (a, b, c, d) = cairn_pc::cpu::cpuid(leaf, 0);
            for r in [a, b, c, d] {
                brand.extend_from_slice(&r.to_le_bytes());
            }
        }
    }
    let brand: String = String::from_utf8_lossy(brand.split(|&c| c == 0).next().unwrap_or(&[]))
        .trim()
        .into();
    let (_, ebx7, _, _) = cairn_pc::cpu::cpuid(7, 0);
    let (_, _, ecx81, edx81) = cairn_pc::cpu::cpuid(0x8000_0001, 0);
    let edx87 = cairn_pc::cpu::cpuid(0x8000_0007, 0).3;
    let bits: &[(u32, u32, &str)] = &[
        (edx1, 0, "fpu"),
        (edx1, 4, "tsc"),
        (edx1, 5, "msr"),
        (edx1, 6, "pae"),
        (edx1, 8, "cx8"),
        (edx1, 9, "apic"),
        (edx1, 11, "sep"),
        (edx1, 15, "cmov"),
        (edx1, 16, "pat"),
        (edx1, 19, "clflush"),
        (edx1, 23, "mmx"),
        (edx1, 24, "fxsr"),
        (edx1, 25, "sse"),
        (edx1, 26, "sse2"),
        (edx1, 28, "ht"),
        (edx81, 11, "syscall"),
        (edx81, 20, "nx"),
        (edx81, 26, "pdpe1gb"),
        (edx81, 27, "rdtscp"),
        (edx81, 29, "lm"),
        (edx87, 8, "constant_tsc"),
        (edx87, 8, "nonstop_tsc"),
        (ecx1, 0, "pni"),
        (ecx1, 1, "pclmulqdq"),
        (ecx1, 9, "ssse3"),
        (ecx1, 12, "fma"),
        (ecx1, 13, "cx16"),
        (ecx1, 19, "sse4_1"),
        (ecx1, 20, "sse4_2"),
        (ecx1, 21, "x2apic"),
        (ecx1, 22, "movbe"),
        (ecx1, 23, "popcnt"),
        (ecx1, 25, "aes"),
        (ecx1, 26, "xsave"),
        (ecx1, 28, "avx"),
        (ecx1, 29, "f16c"),
        (ecx1, 30, "rdrand"),
        (ecx81, 0, "lahf_lm"),
        (ecx81, 5, "abm"),
        (ebx7, 0, "fsgsbase"),
        (ebx7, 3, "bmi1"),
        (ebx7, 5, "avx2"),
        (ebx7, 8, "bmi2"),
        (ebx7, 9, "erms"),
        (ebx7, 18, "rdseed"),
        (ebx7, 19, "adx"),
    ];
    let flags: Vec<&str> = bits
        .iter()
        .filter(|(r, b, _)| r & (1 << b) != 0)
        .map(|(_, _, n)| *n)
        .collect();
    let mhz = crate::time::tsc_hz() / 1_000_000;
    let n = crate::cpu_count();
    let mut s = String::new();
    for cpu in 0..n {
        let _ = write!(
            s,
            "processor\t: {cpu}\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\n\
             model name\t: {brand}\nstepping\t: {}\ncpu MHz\t\t: {mhz}.000\nphysical id\t: 0\n\
             siblings\t: {n}\ncore id\t\t: {cpu}\ncpu cores\t: {n}\napicid\t\t: {cpu}\n\
             fpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: {}\nwp\t\t: yes\nflags\t\t: {}\n\
             bogomips\t: {}.00\nclflush size\t: 64\ncache_alignment\t: 64\n\
             address sizes\t: 46 bits physical, 48 bits virtual\n\n",
            String::from_utf8_lossy(&vendor),
            eax1 & 0xf,
            cairn_pc::cpu::cpuid(0, 0).0,
            flags.join(" "),
            mhz * 2,
        );
    }
    s.into_bytes()
}

fn meminfo() -> Vec<u8> {
    let (total, free) = crate::heaps::PHYSICAL
        .try_stats()
        .map_or((0, 0), |s| (s.total, s.total - s.allocated));
    let cached = crate::fs::pagecache().resident() as u64 * 4;
    let kb = |b: u64| b / 1024;
    format!(
        "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\n\
         Buffers:        {:8} kB\nCached:         {:8} kB\nSwapCached:     {:8} kB\n\
         SwapTotal:      {:8} kB\nSwapFree:       {:8} kB\nShmem:          {:8} kB\n",
        kb(total),
        kb(free),
        kb(free) + cached,
        0,
        cached,
        0,
        0,
        0,
        0
    )
    .into_bytes()
}

fn stat() -> Vec<u8> {
    let mut s = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
    for c in 0..crate::cpu_count() {
        let _ = writeln!(s, "cpu{c} 0 0 0 0 0 0 0 0 0 0");
    }
    let boot = (crate::time::realtime_ns() - crate::time::now_ns()) / 1_000_000_000;
    let _ = write!(
        s,
        "intr 0\nctxt 0\nbtime {boot}\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n"
    );
    s.into_bytes()
}

/// `/proc/mounts`: the root, each data volume where it is mounted, and
/// the special tree.
fn mounts() -> Vec<u8> {
    let mut s = String::from("/dev/root / tfs rw,relatime 0 0\n");
    for m in crate::fs::mounts().skip(1) {
        // Blanks in a mount point are written as octal escapes, as Linux does.
        let at = m.path().replace(' ', "\\040").replace('\t', "\\011");
        let _ = writeln!(s, "/dev/{} {at} tfs rw,relatime 0 0", m.device());
    }
    s.push_str(
        "proc /proc proc rw,nosuid,nodev,noexec 0 0\nsysfs /sys sysfs rw,nosuid,nodev,noexec 0 0\n\
         devtmpfs /dev devtmpfs rw,nosuid 0 0\n",
    );
    s.into_bytes()
}

/// `/proc/cairn/kstats`: the kernel's own accounting, one `name value`
/// line each, for tests that assert nothing grows (the soak tests,
/// `test/runtime/c/cairn_test.h`'s `kstats_read`). Per heap of
/// `kernel_heaps`: `heap.<name>.bytes` and `heap.<name>.objects` in use
/// (a heap whose lock is busy is left out); then `threads` (kernel and user
/// thread objects that exist), `user_threads` (the program's live threads),
/// `files` (open file descriptions), `fds` (the program's descriptors),
/// `vmaps` (the program's mappings), `pagecache.nodes` (files with a page
/// tree), `pagecache.pages` (frames the cache holds), `pagecache.fills`
/// (pages read from a device since boot) and `pagecache.read_requests`
/// (device read requests since boot), `block.flushes` (device flushes
/// submitted since boot), `heap.reclaims` (kernel allocations that had
/// to drop cached pages first), `faults.file_unlocked` and
/// `faults.file_locked` (file-page faults served without the kernel lock,
/// and those that took the locked path, since boot), `buffers.charged`
/// (capacity of pipe, AF_UNIX and TCP/UDP buffers charged to the
/// programs' budget, `heaps::global::charge_buffer`), `dio.started` and
/// `dio.in_flight` (`O_DIRECT` transfers AIO and io_uring started in
/// flight since boot, and in flight now: `fs::inflight`),
/// `syscalls.write_lockless` and `syscalls.fstat_lockless` (writes and
/// `fstat`s served without the kernel lock since boot), `net.rx_frames`,
/// `net.tx_frames` and `net.tx_dropped` (virtio-net frames received, sent,
/// and built but dropped for a full transmit ring; 0 without a NIC). Made
/// when opened:
/// the opener's own descriptor is counted.
fn kstats() -> Vec<u8> {
    let mut out = String::new();
    for s in crate::heaps::stats().into_iter().flatten() {
        let _ = writeln!(out, "heap.{}.bytes {}", s.name, s.allocated);
        let _ = writeln!(out, "heap.{}.objects {}", s.name, s.objects);
    }
    let p = crate::process::current();
    let vmaps = p.aspace.with_vmaps(|v| Ok(v.iter().count())).unwrap_or(0);
    let pc = crate::fs::pagecache();
    let stats = pc.stats();
    let net = crate::net::counters().unwrap_or((0, 0, 0));
    let _ = writeln!(
        out,
        "threads {}\nuser_threads {}\nfiles {}\nfds {}\nvmaps {}\npagecache.nodes {}\n\
         pagecache.pages {}\npagecache.fills {}\npagecache.read_requests {}\nblock.flushes {}\n\
         heap.reclaims {}\nheap.reclaimed {}\nfaults.file_unlocked {}\nfaults.file_locked {}\n\
         buffers.charged {}\ndio.started {}\ndio.in_flight {}\n\
         syscalls.write_lockless {}\nsyscalls.fstat_lockless {}\nnet.rx_frames {}\nnet.tx_frames {}\n\
         net.tx_dropped {}",
        crate::sched::thread::live_threads(),
        p.thread_count(),
        crate::process::file::live_descriptions(),
        p.fds.lock().count(),
        vmaps,
        pc.nodes(),
        pc.resident(),
        stats.fills,
        stats.read_requests,
        crate::block::device_flushes(),
        crate::heaps::global::RECLAIMS.load(core::sync::atomic::Ordering::Relaxed),
        crate::heaps::global::RECLAIMED.load(core::sync::atomic::Ordering::Relaxed),
        crate::process::aspace::FILE_FAULTS_UNLOCKED.load(core::sync::atomic::Ordering::Relaxed),
        crate::process::aspace::FILE_FAULTS_LOCKED.load(core::sync::atomic::Ordering::Relaxed),
        crate::heaps::global::buffers_charged(),
        crate::fs::inflight::started(),
        crate::fs::inflight::in_flight(),
        crate::syscall::lockless::WRITES_LOCKLESS.load(core::sync::atomic::Ordering::Relaxed),
        crate::syscall::lockless::FSTATS_LOCKLESS.load(core::sync::atomic::Ordering::Relaxed),
        net.0,
        net.1,
        net.2,
    );
    out.into_bytes()
}

fn uptime() -> Vec<u8> {
    let ns = crate::time::now_ns();
    format!(
        "{}.{:02} 0.00\n",
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 10_000_000
    )
    .into_bytes()
}

fn cmdline() -> Vec<u8> {
    with_info(|i| {
        let mut out = Vec::new();
        for a in &i.argv {
            out.extend_from_slice(a);
            out.push(0);
        }
        out
    })
}

fn comm_file() -> Vec<u8> {
    let mut c = comm(1);
    c.push(b'\n');
    c
}

fn status() -> Vec<u8> {
    let p = crate::process::current();
    let n = crate::cpu_count();
    let threads = p.thread_count();
    let rss_kb = p.aspace.resident_pages() * 4;
    let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    format!(
        "Name:\t{}\nUmask:\t{:04o}\nState:\tR (running)\nTgid:\t1\nNgid:\t0\nPid:\t1\nPPid:\t0\n\
         TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t{}\nGroups:\t\n\
         VmPeak:\t{rss_kb:8} kB\nVmSize:\t{rss_kb:8} kB\nVmHWM:\t{rss_kb:8} kB\nVmRSS:\t{rss_kb:8} kB\n\
         Threads:\t{threads}\nSigQ:\t0/0\nCpus_allowed:\t{mask:x}\nCpus_allowed_list:\t0-{}\n\
         voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n",
        String::from_utf8_lossy(&comm(1)),
        p.umask.load(core::sync::atomic::Ordering::Relaxed),
        p.fds.lock().limit(),
        n.saturating_sub(1),
    )
    .into_bytes()
}

fn maps() -> Vec<u8> {
    let p = crate::process::current();
    let (segments, brk) = (with_info(|i| i.segments.clone()), {
        let b = p.brk.lock();
        (b.start, b.current.next_multiple_of(4096))
    });
    let exe = exe();
    let stack = (
        crate::process::exec::STACK_TOP - crate::process::exec::STACK_SIZE,
        crate::process::exec::STACK_TOP,
    );
    let areas = p
        .aspace
        .with_vmaps(|v| Ok(v.iter().cloned().collect::<Vec<_>>()))
        .unwrap_or_default();
    let mut s = String::new();
    for a in areas {
        let perm = |b: Prot, c: char| if a.prot.contains(b) { c } else { '-' };
        let share = if a.share == Share::Shared { 's' } else { 'p' };
        let (offset, dev, ino, name) = match &a.kind {
            VmapKind::File { file, offset } => {
                let loc = file.0.loc();
                (
                    *offset,
                    crate::syscall::fs::dev_of(loc.mount),
                    u64::from(loc.ino.0) + 1,
                    path_of(loc).unwrap_or_default(),
                )
            }
            VmapKind::Anonymous => {
                let name: &[u8] = if a.start >= stack.0 && a.end <= stack.1 {
                    b"[stack]"
                } else if a.start >= brk.0 && a.end <= brk.1.max(brk.0) && brk.1 > brk.0 {
                    b"[heap]"
                } else if segments.iter().any(|&(s, e)| a.start >= s && a.end <= e) {
                    &exe
                } else {
                    b""
                };
                (0, 0, 0, name.to_vec())
            }
        };
        let head = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {} {}",
            a.start,
            a.end,
            perm(Prot::READ, 'r'),
            perm(Prot::WRITE, 'w'),
            perm(Prot::EXEC, 'x'),
            share,
            offset,
            format_args!(
                "{:02x}:{:02x}",
                cairn_unix::abi::major(dev),
                cairn_unix::abi::minor(dev)
            ),
            ino
        );
        s.push_str(&head);
        if !name.is_empty() {
            for _ in head.len()..73 {
                s.push(' ');
            }
            s.push_str(&String::from_utf8_lossy(&name));
        }
        s.push('\n');
    }
    s.into_bytes()
}

/// `/proc/1/fd`: one link per open descriptor.
struct FdDir {
    ino: u64,
}

/// `/proc/1/fd/N`.
struct FdLink {
    fd: i32,
    file: Arc<OpenFile>,
}

impl Node for FdDir {
    fn kind(&self) -> NodeKind {
        NodeKind::Directory
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, S_IFDIR | 0o500, 0, 0)
    }
    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Node>> {
        let fd: i32 = core::str::from_utf8(name).ok()?.parse().ok()?;
        let file = crate::process::current().fds.lock().get(fd).ok()?.clone();
        Some(Arc::new(FdLink { fd, file }))
    }
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Node>)> {
        let fds: Vec<(i32, Arc<OpenFile>)> = crate::process::current()
            .fds
            .lock()
            .iter()
            .map(|(fd, f)| (fd, f.clone()))
            .collect();
        fds.into_iter()
            .map(|(fd, file)| {
                let n: Arc<dyn Node> = Arc::new(FdLink { fd, file });
                (format!("{fd}").into_bytes(), n)
            })
            .collect()
    }
}

impl Node for FdLink {
    fn kind(&self) -> NodeKind {
        NodeKind::Symlink
    }
    fn stat(&self) -> FileStat {
        stat_of(0x1_0000 + self.fd as u64, S_IFLNK | 0o700, 0, 0)
    }
    fn readlink(&self) -> Option<Vec<u8>> {
        Some(file_name(&self.file))
    }
    fn target_file(&self) -> Option<Arc<OpenFile>> {
        Some(self.file.clone())
    }
}

/// Reopens the file behind a followed `fd/N` link: a new description of
/// the same file (so even an unlinked file opens again), as Linux does.
pub fn reopen(f: &OpenFile, flags: u32) -> Result<FileKind, Errno> {
    let acc = flags & O_ACCMODE;
    if (acc != 0 && !f.writable) || (acc != 1 && !f.readable) {
        return Err(Errno::EACCES);
    }
    Ok(match &f.kind {
        FileKind::Regular(d) => FileKind::Regular(d.clone()),
        FileKind::Directory(i) => FileKind::Directory(*i),
        FileKind::Console => FileKind::Console,
        FileKind::Object(o) => FileKind::Object(o.clone()),
    })
}

pub fn init() {
    register("/proc/self", link(|| b"1".to_vec()));
    register("/proc/cpuinfo", text(cpuinfo));
    register("/proc/meminfo", text(meminfo));
    register("/proc/stat", text(stat));
    register("/proc/mounts", text(mounts));
    register("/proc/uptime", text(uptime));
    register("/proc/cairn/kstats", text(kstats));
    register(
        "/proc/cairn/profile",
        Arc::new(ProfileFile { ino: new_ino() }),
    );
    register("/proc/1/exe", link(exe));
    register(
        "/proc/1/cwd",
        link(|| {
            crate::process::current()
                .cwd
                .lock()
                .path
                .as_bytes()
                .to_vec()
        }),
    );
    register("/proc/1/cmdline", text(cmdline));
    register("/proc/1/comm", text(comm_file));
    register("/proc/1/status", text(status));
    register("/proc/1/maps", text(maps));
    register("/proc/1/mounts", text(mounts));
    register("/proc/1/fd", Arc::new(FdDir { ino: new_ino() }));
}

/// `/proc/cairn/profile`: each write names a new profiler phase
/// (`crate::profile::mark`; nothing happens while the profiler is off).
struct ProfileFile {
    ino: u64,
}

impl Node for ProfileFile {
    fn kind(&self) -> NodeKind {
        NodeKind::Other
    }
    fn stat(&self) -> FileStat {
        stat_of(self.ino, super::S_IFREG | 0o200, 0, 0)
    }
    fn open(&self, _path: &[u8], flags: u32) -> Result<FileKind, Errno> {
        if flags & O_ACCMODE == 0 {
            return Err(Errno::EACCES);
        }
        Ok(FileKind::Object(Arc::new(ProfileMarks {
            stat: self.stat(),
        })))
    }
}

/// An open `/proc/cairn/profile`.
struct ProfileMarks {
    stat: FileStat,
}

impl crate::process::file::FileOps for ProfileMarks {
    fn write(
        &self,
        _f: &OpenFile,
        _off: u64,
        src: crate::process::file::Src<'_>,
        len: usize,
    ) -> Result<usize, Errno> {
        let mut name = [0u8; 64];
        let n = len.min(name.len());
        src.get(0, &mut name[..n])?;
        crate::profile::mark(&name[..n]);
        Ok(len)
    }
    fn stat(&self) -> FileStat {
        self.stat
    }
    fn name(&self) -> Vec<u8> {
        b"/proc/cairn/profile".to_vec()
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}
