//! The runtime-test catalogue: workload programs (C, built with the host's
//! `gcc -static -O2`, one with `-static-pie`) and their Nanos-syntax
//! manifests, each booted as its own image under `-smp 2` and judged by its
//! exit status.
//!
//! Layout of `test/runtime/`:
//!
//! * `c/<program>.c` and `c/cairn_test.h`: the programs. Each passes with 0;
//!   a failed check prints `FAIL <test>: ...` on stderr and exits 1; the
//!   in-program hang detector exits 3; a persistence test's first boot
//!   exits 42 ([`FIRST_BOOT`]).
//! * `manifests/<test>.manifest`: the image's root tuple (`program`,
//!   `arguments`, `environment`, the tree, `mounts`). Host paths are
//!   relative to the build directory, where xtask puts the compiled
//!   program and the data files of [`RuntimeTest::data`].
//! * Data volumes ([`RuntimeTest::volumes`]): empty TFS volumes xtask makes
//!   (`mkfs -e -l LABEL`) and attaches after the image, which the
//!   manifest's `mounts` tuple mounts.
//! * `files/`: fixed files some images carry (e.g. the demo's `motd`).
//!
//! The same programs run natively on Linux (`tests/native.rs` builds and
//! runs every test that does not need a device of its own), which checks
//! the programs themselves; `cargo xtask test` boots them on cairn.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod badelf;
pub mod real;

/// Exit status of a persistence test's first boot (data written, boot
/// again to verify).
pub const FIRST_BOOT: u32 = 42;
/// Exit status of a failed check.
pub const FAILED: u32 = 1;
/// Exit status of the in-program hang detector (a stuck worker thread).
pub const HANG: u32 = 3;

/// A block device kind a test runs on (the xtask `disks` kinds).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// virtio-blk (the default suite).
    Virtio,
    /// PIIX IDE (`--all-storage`).
    Ata,
    /// VMware PVSCSI (`--all-storage`).
    Pvscsi,
    /// virtio-scsi (`--all-storage`).
    VirtioScsi,
    /// NVMe (`--all-storage`).
    Nvme,
}

impl Storage {
    /// The name xtask and the QEMU flags use.
    pub fn name(self) -> &'static str {
        match self {
            Storage::Virtio => "virtio",
            Storage::Ata => "ata",
            Storage::Pvscsi => "pvscsi",
            Storage::VirtioScsi => "virtio-scsi",
            Storage::Nvme => "nvme",
        }
    }
}

/// An empty TFS data volume attached after the image (`mkfs -e -l LABEL
/// [--uuid UUID] -s MiB`), kept across the boots of a test.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DataVolume {
    pub label: &'static str,
    /// Its UUID, when the manifest names it by UUID (random otherwise).
    pub uuid: Option<&'static str>,
    pub mib: u64,
    /// The kind it is attached through; `None`: the image's.
    pub storage: Option<Storage>,
}

/// Every storage kind.
pub const ALL_STORAGE: &[Storage] = &[
    Storage::Virtio,
    Storage::Ata,
    Storage::Pvscsi,
    Storage::VirtioScsi,
    Storage::Nvme,
];

/// A file the image carries besides the program.
#[derive(Copy, Clone, Debug)]
pub enum DataFile {
    /// `bytes` of the pattern with `seed` (see [`pattern_word`]).
    Pattern {
        name: &'static str,
        bytes: u64,
        seed: u32,
    },
    /// A copy of `test/runtime/files/<name>`.
    Fixed { name: &'static str },
    /// The bytes `make` returns (scripts and inputs of the real programs,
    /// see [`real`]).
    Generated {
        name: &'static str,
        make: fn() -> Vec<u8>,
    },
}

impl DataFile {
    /// Its name in the build directory (and the manifest's host path).
    pub fn name(&self) -> &'static str {
        match self {
            DataFile::Pattern { name, .. }
            | DataFile::Fixed { name }
            | DataFile::Generated { name, .. } => name,
        }
    }
}

/// A block-level fault QEMU injects (blkdebug, errno EIO).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Inject {
    /// Every read covering the sector that holds byte `offset` of the
    /// image file `path` fails. The runner finds the sector in the image.
    ReadFile { path: &'static str, offset: u64 },
}

/// How the program is linked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// `gcc -static`.
    Static,
    /// `gcc -static-pie`.
    StaticPie,
    /// gcc's default: a PIE that the dynamic loader starts, linked against
    /// `lib<source>_lib.so.1` (from `c/<source>_lib.c`), with
    /// `lib<source>_plugin.so` (from `c/<source>_plugin.c`) beside it for
    /// dlopen. The image is made as `cargo xtask run --elf` makes one
    /// ([`RuntimeTest::program_image`]).
    Dynamic,
}

/// A real program that xtask builds from Debian's packages and sources
/// (`cargo xtask` set-up; see `xtask/src/programs.rs`) instead of a test
/// program compiled from `c/`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Real {
    /// SQLite's shell, static, from `apt-get source sqlite3` (the
    /// amalgamation).
    Sqlite3,
    /// SQLite's `test/speedtest1.c` on the amalgamation.
    Speedtest1,
    /// The test's `c/<source>.c` linked with the SQLite amalgamation.
    WithSqlite,
    /// fio, static and threads-only, from `apt-get source fio`.
    Fio,
    /// busybox, from Debian's `busybox-static`.
    Busybox,
    /// A dynamically linked program of a Debian package, installed on the
    /// host by xtask's set-up (`apt-get install package`) and copied into
    /// the image at its host path `path` (the manifest's `program`) with
    /// its loader and libraries ([`RuntimeTest::program_image`]).
    Debian {
        /// The package that has it.
        package: &'static str,
        /// Its path (on the host and in the image).
        path: &'static str,
    },
    /// No program: the manifest's `program` is one of the data files (the
    /// bad-input tests, whose "programs" the kernel must refuse).
    Data,
}

/// One boot of a test whose boots run different command lines (a program
/// with no way to run others: busybox applets one per boot).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// argv, argv[0] first (the kernel takes it from its command line,
    /// `argv=`); empty: the manifest's `arguments`. An absolute argv[0]
    /// also names the program this boot runs (`program=`), e.g.
    /// `/usr/bin/gzip` in an image whose manifest names `/usr/bin/tar`.
    pub argv: &'static [&'static str],
    /// Expected exit status.
    pub status: u32,
    /// Text the console must show (the program's proof that it ran).
    pub expect: &'static [&'static str],
}

/// One boot as a runner performs it (see [`RuntimeTest::boot_list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// argv for the kernel's `argv=`; empty: the manifest's.
    pub argv: Vec<String>,
    pub status: u32,
    /// Text the console must show.
    pub expect: Vec<String>,
}

/// Whether a test can run natively on the host (to check the program).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Native {
    Yes,
    /// Needs something only its image provides; the reason.
    No(&'static str),
}

/// What the host does while a networked test's guest runs (the runner
/// attaches a virtio-net NIC on QEMU's user networking, picks free host
/// ports each run, and judges the host side's result with the boot's).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NetRole {
    /// The guest serves HTTP/1.1 on `guest_port` from the files of
    /// [`RuntimeTest::data`] under `/www`; the host fetches `requests`
    /// of them over `connections` keep-alive connections (one after the
    /// other, each `requests / connections` requests), compares the bytes,
    /// then sends `GET /quit`.
    HttpClient {
        guest_port: u16,
        requests: usize,
        connections: usize,
    },
    /// Before the HTTP run of `HttpClient`, abuse the guest's port: many
    /// connections opened and dropped at once, connections reset with
    /// requests half sent, and connections left idle.
    HttpFlood {
        guest_port: u16,
        requests: usize,
        connections: usize,
    },
    /// The guest echoes UDP datagrams on `guest_port`; the host sends
    /// `datagrams` of them, checks each echo, then sends `quit`.
    UdpEcho { guest_port: u16, datagrams: usize },
    /// The host is the guest's whole link (QEMU's dgram netdev, no user
    /// networking): it answers ARP as the gateway 10.0.2.2 and sends
    /// `frames` malformed frames, with valid UDP echoes (to `echo_port`),
    /// ICMP echoes and TCP handshakes (to `tcp_port`) between batches; the
    /// guest program gets `echo_port tcp_port` and ends at `quit`.
    RawFrames {
        echo_port: u16,
        tcp_port: u16,
        frames: usize,
    },
    /// Only a NIC on QEMU's user networking (addresses by DHCP), for a
    /// program that needs AF_INET sockets but no peer.
    Nic,
    /// The host runs a TCP echo server; the guest gets its port (QEMU's
    /// host is 10.0.2.2) and a port nothing listens on as `argv[1]` and
    /// `argv[2]`.
    HostServer,
}

/// One runtime test.
#[derive(Clone, Debug)]
pub struct RuntimeTest {
    /// Test name (also the image name).
    pub name: &'static str,
    /// What it checks.
    pub what: &'static str,
    /// Program source in `c/` (the binary is named after its stem).
    pub source: &'static str,
    /// Manifest in `manifests/`.
    pub manifest: &'static str,
    pub link: Link,
    /// Expected exit status of each boot of the same image, in order.
    pub boots: &'static [u32],
    /// Minimum image size in MiB (mkfs `-s`).
    pub image_mib: u64,
    /// Put the filesystem in an MBR partition instead of at sector 0.
    pub mbr: bool,
    /// Storage kinds its image runs on: the first in the default suite,
    /// all of them with `--all-storage`.
    pub storage: &'static [Storage],
    /// Data volumes attached after the image.
    pub volumes: &'static [DataVolume],
    /// Lines the console must show (a boot error the test expects).
    pub console: &'static [&'static str],
    pub inject: Option<Inject>,
    /// vCPUs.
    pub smp: usize,
    /// Guest memory in MiB (QEMU `-m`).
    pub memory_mib: u64,
    /// Seconds before the runner kills one boot (a hang).
    pub timeout_s: u64,
    /// Files the image carries besides the program.
    pub data: &'static [DataFile],
    pub native: Native,
    /// Built by xtask from Debian's packages or sources, not from `c/`.
    pub real: Option<Real>,
    /// Boots with their own command lines; when set, `boots` is unused.
    pub steps: &'static [Step],
    /// Whether it runs on the Linux guest (`cargo xtask linux-test`).
    pub linux: Native,
    /// argv of its long run under `cargo xtask test --soak` (one boot that
    /// must pass, with [`RuntimeTest::soak_timeout_s`]); empty: not part of
    /// the soak target.
    pub soak: &'static [&'static str],
    /// Seconds before the runner kills the soak run.
    pub soak_timeout_s: u64,
    /// Console lines the soak run must print; empty: the program's `PASS`
    /// marker (a program from a distribution prints its own lines).
    pub soak_expect: &'static [&'static str],
    /// A NIC and a host-side peer (`None`: no network device, as before).
    pub net: Option<NetRole>,
}

const PAGE: u64 = 4096;

const fn pattern(name: &'static str, bytes: u64, seed: u32) -> DataFile {
    DataFile::Pattern { name, bytes, seed }
}

const fn test(name: &'static str, what: &'static str) -> RuntimeTest {
    RuntimeTest {
        name,
        what,
        source: name,
        manifest: name,
        link: Link::Static,
        boots: &[0],
        image_mib: 16,
        mbr: false,
        storage: ALL_STORAGE,
        volumes: &[],
        console: &[],
        inject: None,
        smp: 2,
        memory_mib: 512,
        timeout_s: 120,
        data: &[],
        native: Native::Yes,
        real: None,
        steps: &[],
        linux: Native::Yes,
        soak: &[],
        soak_timeout_s: 0,
        soak_expect: &[],
        net: None,
    }
}

/// The terse lines of `files/fio-uring.fio`'s jobs (name, group, error 0).
const FIO_URING_JOBS: &[&str] = &[
    ";uring_d1;0;0;",
    ";uring_d32;1;0;",
    ";uring_b1;2;0;",
    ";uring_b32;3;0;",
    ";aio_d1;4;0;",
    ";aio_b32;5;0;",
    ";uring_read;6;0;",
];

/// The files the HTTP tests serve from `/www`.
const WWW: &[DataFile] = &[
    pattern("small", 100, 71),
    pattern("page", 4096, 72),
    pattern("image", 30_000, 73),
    pattern("big", 150_000, 74),
    pattern("empty", 0, 75),
];

/// The dyn_lighttpd test's files: its configuration, `/quit` and [`WWW`].
const LIGHTTPD_DATA: &[DataFile] = &[
    DataFile::Fixed {
        name: "lighttpd.conf",
    },
    DataFile::Fixed { name: "quit" },
    WWW[0],
    WWW[1],
    WWW[2],
    WWW[3],
    WWW[4],
];

static CATALOGUE: &[RuntimeTest] = &[
    RuntimeTest {
        data: &[DataFile::Fixed { name: "motd" }],
        ..test(
            "demo",
            "the default `cargo xtask run` workload: uname, argv/env, the root listing, a file written/read/mapped, two threads",
        )
    },
    test(
        "hello",
        "start-up of a static glibc program: argv and environment from the manifest, stdout, exit status",
    ),
    RuntimeTest {
        source: "hello",
        manifest: "hello",
        link: Link::StaticPie,
        mbr: true,
        ..test(
            "hello_pie",
            "hello built -static-pie (relocating loader start-up) on an MBR-partitioned image",
        )
    },
    test(
        "fileio",
        "read/write/O_APPEND/pread/pwrite/readv/writev/lseek/fstat, holes, partial-page overwrites, F_DUPFD/dup3, EBADF/EEXIST/ENOENT/EINVAL/EFAULT",
    ),
    test(
        "rwlimits",
        "offsets no file can reach: negative or wrapping pread/pwrite/preadv/pwritev (preadv at -1 too) and read/write at the file offset give EINVAL, copy_file_range EOVERFLOW, the file unchanged",
    ),
    test(
        "truncate",
        "ftruncate shrink and grow (regrown tail reads zeros), O_TRUNC, sparse write after truncate to 0, fallocate",
    ),
    RuntimeTest {
        boots: &[FIRST_BOOT, 0],
        ..test(
            "persist",
            "boot 1 writes and fsync/fdatasyncs files, a new directory, a rename, a shrink, an overwrite; boot 2 finds them intact",
        )
    },
    test(
        "dirs",
        "mkdir/rename (plain, over a file, across dirs, of a dir)/unlink/rmdir, getdents over 150 entries, chdir/getcwd, ENOTEMPTY/ENOTDIR/EEXIST, reading an open unlinked file",
    ),
    RuntimeTest {
        native: Native::No("needs a name over 255 bytes, which only its image can hold"),
        linux: Native::No("needs a name over 255 bytes, which Linux cannot create"),
        ..test(
            "longname",
            "getdents64 lists a name over 255 bytes (Nanos's mkfs makes them) and goes on past it; stat of it is ENAMETOOLONG",
        )
    },
    RuntimeTest {
        boots: &[FIRST_BOOT, 0],
        ..test(
            "edges",
            "wall-clock time (CLOCK_REALTIME, gettimeofday, time, new files' times after 2024); utimensat/futimens/utimes/futimesat/utime (UTIME_NOW/OMIT, NULL, AT_SYMLINK_NOFOLLOW, EINVAL) persisting to boot 2; fchdir+getcwd; short writes at an unmapped page; futex EFAULT; *at flag checks",
        )
    },
    RuntimeTest {
        boots: &[FIRST_BOOT, 0],
        ..test(
            "fileops",
            "creat; legacy getdents (d_type in the last byte); renameat2 NOREPLACE (EEXIST) and EXCHANGE (files across directories, a file with a directory) persisting to boot 2; fallocate PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE (zeros, length kept, fewer blocks, EOPNOTSUPP modes) persisting to boot 2; SEEK_DATA/SEEK_HOLE over a sparse file with dirty pages and after fsync; posix_fadvise DONTNEED makes the next read go to the device (kstats pagecache.fills; mincore on Linux)",
        )
    },
    RuntimeTest {
        boots: &[FIRST_BOOT, 0],
        image_mib: 64,
        ..test(
            "dio",
            "O_DIRECT: statx STATX_DIOALIGN, F_GETFL; a direct write replaces a buffered reader's cached pages, a direct read sees dirty buffered data; misaligned buffer/offset/length EINVAL; EOF, holes, growth; a buffer in a shared file mapping (64 KiB and 1 MiB); 4 and 12 MiB scattered buffers; the data persists (boot 2, read direct and buffered)",
        )
    },
    test(
        "aio",
        "Linux AIO (raw syscalls): io_setup/io_destroy, io_submit of PWRITE/PWRITEV/FSYNC/FDSYNC/PREAD/PREADV reaped by io_getevents (data, obj, res), O_DIRECT requests (misaligned: res -EINVAL), IOCB_FLAG_RESFD eventfd counts, a timeout with nothing pending, EINVAL/EBADF at submission, io_cancel of a completed request EINVAL; O_DIRECT requests in flight after io_submit (some of 80 submissions of 32 not all complete right after, or a 4 MiB read not yet filled), data checked; io_destroy with requests in flight waits for them",
    ),
    RuntimeTest {
        image_mib: 32,
        ..test(
            "uring",
            "io_uring (raw syscalls): setup sizes/CQSIZE/CLAMP/refusals, the three mmaps; NOP, READ/WRITE/READV/WRITEV (EOF short read, offset -1), FSYNC/DATASYNC, OPENAT/STATX/CLOSE/FALLOCATE/MKDIRAT/RENAMEAT/UNLINKAT; IOSQE_IO_LINK -ECANCELED after an error or a short read; probe (unsupported opcodes -EINVAL); fixed buffers and files; eventfd; O_DIRECT; a full CQ keeps its CQEs (NODROP); dropped SQ indexes, wild tails, bad pointers -EFAULT; ETIME/EINTR waits; rings torn down unreaped; O_DIRECT READ/WRITE/READV/WRITEV in flight after io_uring_enter (some of 80 submissions of 32 not all complete right after), data checked, IOSQE_IO_DRAIN completes last, a linked direct write+read in order, rings closed with direct requests in flight (the writes land)",
        )
    },
    RuntimeTest {
        source: "uring",
        data: &[
            pattern("good.dat", 64 * 1024, 11),
            pattern("bad.dat", 256 * 1024, 12),
        ],
        inject: Some(Inject::ReadFile {
            path: "/bad.dat",
            offset: 128 * 1024,
        }),
        native: Native::No("needs the injected read error"),
        linux: Native::No("needs the injected read error"),
        ..test(
            "uring_eio",
            "io_uring READs of bad.dat's failing sector (QEMU blkdebug) complete with -EIO, buffered and O_DIRECT; the ring and the volume go on",
        )
    },
    RuntimeTest {
        boots: &[FIRST_BOOT, 0],
        ..test(
            "mmap_file",
            "shared mapping stores seen by read() and write()s seen through it, private stores stay private, EACCES, msync'd and fsync'd stores persist (boot 2)",
        )
    },
    RuntimeTest {
        timeout_s: 180,
        ..test(
            "threads_files",
            "4 pthreads each write, fsync and read back their own 1 MiB file and their stripes of a shared file",
        )
    },
    RuntimeTest {
        image_mib: 96,
        timeout_s: 400,
        ..test(
            "bigfile",
            "64 MiB sequential write in 1 MiB pieces, fsync, sequential read-back checking every byte",
        )
    },
    RuntimeTest {
        // A leak of a few KiB per call (a kernel stack per commit) runs a
        // 128 MiB guest out of memory within the 10,000 rounds.
        memory_mib: 128,
        timeout_s: 600,
        ..test(
            "fsync_many",
            "10,000 rounds of a rewritten record made durable by fsync/fdatasync/syncfs/sync (and fsync with nothing dirty), then 10,000 pthread create/join, on a 128 MiB guest: nothing grows per call",
        )
    },
    RuntimeTest {
        timeout_s: 300,
        ..test(
            "fsync_flush",
            "device flushes per sync as a database syncs: an fsync after a write flushes once or twice, an fsync/fdatasync/syncfs with nothing written flushes nothing, an overwrite in place still flushes (kstats block.flushes)",
        )
    },
    RuntimeTest {
        timeout_s: 600,
        ..test(
            "orphans",
            "files written then unlinked or renamed over before writeback, an open unlinked file (read/write/mmap/fstat until its last close), a mapped unlinked file, a dirty memfd and SysV segment: sync/syncfs return 0; 2,000-cycle loops (with and without fsync) give their space back",
        )
    },
    RuntimeTest {
        image_mib: 8,
        native: Native::No("needs a small disk of its own"),
        ..test(
            "enospc",
            "write until ENOSPC on an 8 MiB image: errno, the accepted data reads back, synced data intact, unlink makes room, fill again to ENOSPC",
        )
    },
    RuntimeTest {
        source: "enospc",
        manifest: "enospc_lowmem",
        image_mib: 320,
        memory_mib: 128,
        timeout_s: 600,
        native: Native::No("needs a small disk of its own"),
        ..test(
            "enospc_lowmem",
            "fill a 320 MiB image to ENOSPC in 4 KiB writes with no fsync from a 128 MiB guest (more than twice its RAM), delete, fill again: ENOSPC both times, no kernel panic",
        )
    },
    RuntimeTest {
        image_mib: 256,
        memory_mib: 128,
        timeout_s: 600,
        native: Native::No("sized for a 128 MiB guest"),
        ..test(
            "mempressure",
            "a 128 MiB guest caches a 96 MiB file, then touches 48 MiB of anonymous memory, keeps 200 threads alive at once and creates 10,000 files (no pagecache node kept per closed file once its pages are evicted), then starts threads until EAGAIN, twice: clean cached pages give way to every other kind of memory, exhaustion is an error to the program, never a kernel panic",
        )
    },
    RuntimeTest {
        image_mib: 64,
        memory_mib: 128,
        timeout_s: 900,
        native: Native::No("sized for a 128 MiB guest"),
        ..test(
            "kmemflood",
            "a 128 MiB guest pushes every count that grows kernel memory until the kernel says no (mappings, epoll watches, extended attributes, io_uring rings, AIO contexts), twice: an errno each time, never a kernel panic, and the program's memory still works",
        )
    },
    RuntimeTest {
        memory_mib: 128,
        timeout_s: 900,
        native: Native::No("sized for a 128 MiB guest"),
        storage: &[Storage::Virtio],
        net: Some(NetRole::Nic),
        ..test(
            "bufflood",
            "a 128 MiB guest holds all the kernel buffers it can: 4,096 descriptors of pipes grown to 1 MiB and filled, AF_UNIX socketpairs filled both ways, TCP listeners and UDP sockets, until calls say no (an errno, never a kernel panic); everything closed and done again three times (nothing kept), and the program's own memory still works",
        )
    },
    RuntimeTest {
        image_mib: 256,
        memory_mib: 128,
        timeout_s: 1200,
        native: Native::No("sized for a 128 MiB guest"),
        ..test(
            "manyfiles",
            "a 128 MiB guest creates empty files (1,000 per directory) until the system says no (ENOSPC or ENOMEM, never a kernel panic), deletes them all, and must fit as many again (nothing kept per deleted file)",
        )
    },
    RuntimeTest {
        image_mib: 600,
        memory_mib: 128,
        timeout_s: 900,
        native: Native::No("sized for a 128 MiB guest"),
        ..test(
            "dirty_flood",
            "512 MiB (4x guest RAM) written in 512-byte write()s with no fsync from a 128 MiB guest, then read back and checked: writers are throttled and written back, no kernel allocation failure",
        )
    },
    RuntimeTest {
        data: &[
            pattern("good.dat", 64 * 1024, 11),
            pattern("bad.dat", 256 * 1024, 12),
        ],
        inject: Some(Inject::ReadFile {
            path: "/bad.dat",
            offset: 128 * 1024,
        }),
        native: Native::No("needs the injected read error"),
        ..test(
            "eio",
            "reads of bad.dat (its sectors fail through QEMU blkdebug) return -1/EIO; good.dat still reads and new files still write afterwards",
        )
    },
    RuntimeTest {
        source: "fatal",
        manifest: "fatal_segv",
        boots: &[139],
        native: Native::No("ends by a fatal signal by design"),
        ..test(
            "fatal_segv",
            "a store to an unmapped address ends the program with SIGSEGV: status 139 and a report line",
        )
    },
    RuntimeTest {
        source: "fatal",
        manifest: "fatal_bus",
        boots: &[135],
        native: Native::No("ends by a fatal signal by design"),
        ..test(
            "fatal_bus",
            "a load past the end of a mapped file ends the program with SIGBUS: status 135",
        )
    },
    RuntimeTest {
        source: "fatal",
        manifest: "fatal_abrt",
        boots: &[134],
        native: Native::No("ends by a fatal signal by design"),
        ..test(
            "fatal_abrt",
            "abort() ends the program with SIGABRT: status 134",
        )
    },
    RuntimeTest {
        source: "fatal",
        manifest: "fatal_alrm",
        boots: &[142],
        native: Native::No("ends by a fatal signal by design"),
        ..test(
            "fatal_alrm",
            "an expiring alarm() ends the program with SIGALRM: status 142",
        )
    },
    RuntimeTest {
        data: &[pattern("brian.dat", 2 * 200 * 2 * PAGE, 21)],
        timeout_s: 300,
        ..test(
            "seed_brian",
            "seeds/002 Brian: read(fd, p) / write(fd, p) where p is an untouched shared (or private) mapping of the same file, 2 threads x 200 iterations on cold pages",
        )
    },
    RuntimeTest {
        data: &[
            pattern("colin-map.dat", 200 * 4 * PAGE, 31),
            pattern("colin-buf.dat", 200 * 4 * PAGE, 33),
        ],
        timeout_s: 300,
        ..test(
            "seed_colin",
            "seeds/002 Colin: one thread faults on a mapped file while another reads/writes a different file into faulting anonymous and file-mapped buffers, 200 iterations",
        )
    },
    RuntimeTest {
        data: &[
            pattern("race-map.dat", 64 * PAGE, 41),
            pattern("race-io.dat", 64 * PAGE, 42),
        ],
        timeout_s: 300,
        ..test(
            "seed_mman_race",
            "seeds/000: 4 threads race mmap/mremap/munmap of file and anonymous mappings, open/read/close/unlink, and msync, 200 iterations each",
        )
    },
    RuntimeTest {
        data: &[pattern("split.dat", 16 * PAGE, 51)],
        timeout_s: 300,
        ..test(
            "seed_split_merge",
            "seeds/001+004: mprotect splits/merges, MAP_FIXED replacement and munmap/mmap of adjacent regions while other threads fault in them, 200 iterations",
        )
    },
    RuntimeTest {
        boots: &[FIRST_BOOT, 0],
        volumes: &[DataVolume {
            label: "cairn-data",
            uuid: None,
            mib: 24,
            storage: None,
        }],
        native: Native::No("needs a data volume mounted on data/"),
        ..test(
            "volume",
            "a data volume mounted on /data by label (manifest mounts): its own st_dev and statfs, files written and fsync'd there persist (boot 2), rename/link to the root EXDEV, the mount point EBUSY, .. leaves the volume, OFD locks and /proc/self/fd tell its files from root files with the same st_ino, /proc/mounts lists it",
        )
    },
    RuntimeTest {
        source: "volume",
        manifest: "volume_uuid",
        boots: &[FIRST_BOOT, 0],
        storage: &[Storage::Nvme],
        volumes: &[DataVolume {
            label: "scsi-data",
            uuid: Some("c41a7e5d-0b1c-4e55-9a0f-3d2b6f7a9e01"),
            mib: 24,
            storage: Some(Storage::VirtioScsi),
        }],
        native: Native::No("needs a data volume mounted on data/"),
        ..test(
            "volume_nvme_scsi",
            "root on NVMe, data volume on virtio-scsi (probed first) mounted by UUID: the volume test across two drivers",
        )
    },
    RuntimeTest {
        source: "volume",
        manifest: "volume_missing",
        boots: &[126],
        storage: &[Storage::Virtio],
        console: &["volume \"no-such-volume\" on /data: not found"],
        native: Native::No("its boot fails by design"),
        ..test(
            "volume_missing",
            "a manifest naming a volume no disk holds: the boot stops with an error naming it (status 126), the program never runs",
        )
    },
    RuntimeTest {
        source: "seed_brian",
        data: &[pattern("brian.dat", 2 * 200 * 2 * PAGE, 21)],
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "seed_brian_spin",
            "seed_brian (100 iterations) beside 4 CPU-bound threads on 2 vCPUs; the watchdog, a sleeping thread, keeps running",
        )
    },
    RuntimeTest {
        source: "seed_colin",
        data: &[
            pattern("colin-map.dat", 200 * 4 * PAGE, 31),
            pattern("colin-buf.dat", 200 * 4 * PAGE, 33),
        ],
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "seed_colin_spin",
            "seed_colin (100 iterations) beside 4 CPU-bound threads on 2 vCPUs; the watchdog keeps running",
        )
    },
    RuntimeTest {
        source: "seed_mman_race",
        data: &[
            pattern("race-map.dat", 64 * PAGE, 41),
            pattern("race-io.dat", 64 * PAGE, 42),
        ],
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "seed_mman_race_spin",
            "seed_mman_race (100 iterations) beside 4 CPU-bound threads on 2 vCPUs; the watchdog keeps running",
        )
    },
    RuntimeTest {
        source: "seed_split_merge",
        data: &[pattern("split.dat", 16 * PAGE, 51)],
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "seed_split_merge_spin",
            "seed_split_merge (100 iterations) beside 4 CPU-bound threads on 2 vCPUs; the watchdog keeps running",
        )
    },
    RuntimeTest {
        source: "liveness",
        smp: 1,
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "liveness_smp1",
            "1 vCPU: 50 ms sleeps and pwrite+fsync complete, and every thread progresses, beside 1 and 2 CPU-bound threads (user loop, syscall loop, mmap/munmap loop)",
        )
    },
    RuntimeTest {
        source: "liveness",
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "liveness_smp2",
            "liveness_smp1 on 2 vCPUs with 2 and 4 CPU-bound threads",
        )
    },
    RuntimeTest {
        source: "liveness",
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test(
            "liveness_smp4",
            "liveness_smp1 on 4 vCPUs with 4 and 8 CPU-bound threads (more vCPUs than host cores under TCG)",
        )
    },
    RuntimeTest {
        source: "sharedfile",
        image_mib: 32,
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "sharedfile_smp2",
            "4 threads on 2 vCPUs share one file: read() through one shared offset reads every block exactly once; owned regions rewritten by pwrite and a shared mapping read back right; a tail truncated and regrown under readers",
        )
    },
    RuntimeTest {
        source: "sharedfile",
        image_mib: 32,
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test(
            "sharedfile_smp4",
            "sharedfile_smp2 with 8 threads on 4 vCPUs",
        )
    },
    RuntimeTest {
        source: "mapfault",
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "mapfault_smp2",
            "mapped-file faults (issues 14, 17): truncate leaves no page past the end mapped (SIGBUS exactly there, shared and private; zeros when regrown); 4 threads on 2 vCPUs fault one file while it is shrunk, regrown, rewritten and remapped, against a shadow, with cached faults taken without the kernel lock",
        )
    },
    RuntimeTest {
        source: "remapfault",
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "remapfault_smp2",
            "faults racing a mapping replaced under them (issue 17): readers on every vCPU read a window while it is mapped over with another file (MAP_FIXED, shared and private), mprotected to PROT_NONE and back, and replaced by a mapping of the other file moved over it with mremap; right after each change every page holds the file now mapped, and readers only ever see one of the two files",
        )
    },
    RuntimeTest {
        source: "remapfault",
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test(
            "remapfault_smp4",
            "remapfault_smp2 with 5 readers on 4 vCPUs",
        )
    },
    RuntimeTest {
        source: "mapfault",
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test("mapfault_smp4", "mapfault_smp2 with 6 threads on 4 vCPUs")
    },
    RuntimeTest {
        source: "shared_offset",
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "shared_offset_smp2",
            "4 threads on 2 vCPUs read() a cached file in 4 KiB calls through one shared offset, 60 passes: every block read exactly once per pass",
        )
    },
    RuntimeTest {
        source: "shared_offset",
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test(
            "shared_offset_smp4",
            "shared_offset_smp2 with 8 threads on 4 vCPUs",
        )
    },
    RuntimeTest {
        source: "cached_write",
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "cached_write_smp2",
            "4 threads on 2 vCPUs pwrite/pwritev their own regions of one cached file (read back with readv/preadv) and a fixed pattern into a shared region and a tail that another thread truncates and regrows (ftruncate, truncate) and fstats; then, after fsync, a rewrite of the clean cached pages (pwrite, writev), fsync, and the file read back through O_DIRECT against what each wrote and the cache; fstat size, mtime/ctime moving with a write and kept by fsync; kstats show writes and fstats without the kernel lock",
        )
    },
    RuntimeTest {
        source: "cached_write",
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test(
            "cached_write_smp4",
            "cached_write_smp2 with 8 threads on 4 vCPUs",
        )
    },
    RuntimeTest {
        source: "pread_close",
        storage: &[Storage::Virtio],
        timeout_s: 600,
        ..test(
            "pread_close_smp2",
            "4 threads on 2 vCPUs pread 4 KiB blocks through one descriptor number while another thread dup2()s fresh opens of two files over it and closes them (and unlinks and recreates the other file): every block is wholly one file's, and no open file description leaks",
        )
    },
    RuntimeTest {
        source: "pread_close",
        smp: 4,
        storage: &[Storage::Virtio],
        timeout_s: 900,
        ..test(
            "pread_close_smp4",
            "pread_close_smp2 with 8 threads on 4 vCPUs",
        )
    },
    RuntimeTest {
        timeout_s: 300,
        ..test(
            "signals",
            "signal handlers: alarm/setitimer interrupting a spinning thread, kill/raise/pthread_kill with siginfo, per-thread masks and pending, SA_RESTART vs EINTR, sigsuspend/ppoll masks, sigtimedwait with queued RT signals, SA_RESETHAND/SA_NODEFER, POSIX timers (SIGEV_SIGNAL, SIGEV_THREAD), a handler in a thread waiting on a condition variable",
        )
    },
    RuntimeTest {
        timeout_s: 300,
        ..test(
            "sigfault",
            "synchronous signals: SIGSEGV fixed by mprotect and retried, SEGV_MAPERR/BUS_ADRERR/FPE_INTDIV escaped by siglongjmp, SIGILL handler editing the saved context, stack overflow caught on an alternate stack, x87/SSE state and rounding mode preserved across handlers",
        )
    },
    test(
        "locks",
        "fcntl record and OFD locks (conflicts, F_GETLK, split/merge, release on any close, F_SETLKW/F_OFD_SETLKW woken by another thread, EDEADLK on cairn), flock",
    ),
    test(
        "unix_sockets",
        "AF_UNIX within the program: socketpair (stream/dgram/seqpacket), a path-named stream server with client threads, abstract names, EADDRINUSE/ENOENT/ECONNREFUSED, message boundaries, shutdown, EPIPE/SIGPIPE, non-blocking, epoll edge-triggered, SO_RCVTIMEO/SO_SNDTIMEO/SO_LINGER, SCM_RIGHTS, ping-pong with more threads than vCPUs, bad pointers",
    ),
    test(
        "pipes",
        "pipe2 (EOF, EPIPE, O_NONBLOCK, capacity, atomic PIPE_BUF writes, 4 MiB between threads), poll/ppoll/select/pselect, eventfd, epoll (level, edge, one-shot), timerfd",
    ),
    RuntimeTest {
        data: WWW,
        storage: &[Storage::Virtio],
        native: Native::No("needs the host-side HTTP client"),
        linux: Native::No("needs the host-side HTTP client"),
        timeout_s: 600,
        net: Some(NetRole::HttpClient {
            guest_port: 8080,
            requests: 1000,
            connections: 4,
        }),
        ..test(
            "httpd",
            "an HTTP/1.1 server on virtio-net (epoll level and edge, non-blocking accept4, keep-alive, sendfile from TFS): the host fetches 1,000 files over 4 connections and compares the bytes",
        )
    },
    RuntimeTest {
        source: "httpd",
        manifest: "httpd",
        data: WWW,
        storage: &[Storage::Virtio],
        native: Native::No("needs the host-side HTTP client"),
        linux: Native::No("needs the host-side HTTP client"),
        timeout_s: 600,
        net: Some(NetRole::HttpFlood {
            guest_port: 8080,
            requests: 200,
            connections: 2,
        }),
        ..test(
            "httpd_flood",
            "bad input from the network: 160 connections opened and dropped at once, resets with half a request sent, idle connections, garbage; then the HTTP run must still pass and the kernel never panics",
        )
    },
    RuntimeTest {
        real: Some(Real::Debian {
            package: "lighttpd",
            path: "/usr/sbin/lighttpd",
        }),
        data: LIGHTTPD_DATA,
        image_mib: 64,
        storage: &[Storage::Virtio],
        native: Native::No("a Debian program in its image, with the host-side HTTP client"),
        linux: Native::No("needs the host-side HTTP client"),
        timeout_s: 600,
        net: Some(NetRole::HttpClient {
            guest_port: 8080,
            requests: 1000,
            connections: 4,
        }),
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &["server started (lighttpd/"],
        }],
        ..test(
            "dyn_lighttpd",
            "Debian's lighttpd (one process, epoll, sendfile, keep-alive) serving files from TFS: the host fetches 1,000 files over 4 connections and compares the bytes; lighttpd exits after 20 s idle",
        )
    },
    RuntimeTest {
        storage: &[Storage::Virtio],
        native: Native::No("needs the host-side UDP client"),
        linux: Native::No("needs the host-side UDP client"),
        timeout_s: 300,
        net: Some(NetRole::UdpEcho {
            guest_port: 7777,
            datagrams: 300,
        }),
        ..test(
            "udpecho",
            "a UDP echo server on virtio-net (bind, poll, recvfrom/sendto, EADDRINUSE, EDESTADDRREQ, connect/getpeername on a datagram socket): the host sends 300 datagrams and checks each echo",
        )
    },
    RuntimeTest {
        source: "udpecho",
        manifest: "udpecho",
        storage: &[Storage::Virtio],
        native: Native::No("needs the host as its network link"),
        linux: Native::No("needs the host as its network link"),
        timeout_s: 600,
        net: Some(NetRole::RawFrames {
            echo_port: 7777,
            tcp_port: 8080,
            frames: 10_000,
        }),
        ..test(
            "net_garbage",
            "bad input from the network, frame by frame: the host is the guest's link (QEMU dgram netdev) and sends 10,000 malformed frames (random bytes, truncations, flipped bytes under checksums, lying lengths, fragments, TCP option soup, IPv6 extension and NDP option chains, ARP oddities, over-long frames, SYN floods left half-open); UDP echo, ICMP echo and TCP handshake probes between batches must be answered and datagrams that had to be dropped never echoed",
        )
    },
    RuntimeTest {
        storage: &[Storage::Virtio],
        native: Native::No("needs the host-side echo server"),
        linux: Native::No("needs the host-side echo server"),
        timeout_s: 300,
        net: Some(NetRole::HostServer),
        ..test(
            "tcpclient",
            "a TCP client of a host echo server: blocking and non-blocking connect (EINPROGRESS, SO_ERROR), 1 MiB through a poll loop, MSG_PEEK/MSG_WAITALL, SHUT_WR and EOF, EPIPE/SIGPIPE/MSG_NOSIGNAL, ECONNREFUSED, options",
        )
    },
    test(
        "special",
        "/dev/null, zero (mapped too), full, urandom, random; /proc/self exe, cmdline, comm, status, maps, fd/; /proc/cpuinfo, meminfo; /sys cpu/online against glibc's CPU count",
    ),
    test(
        "syscalls_misc",
        "getrusage, times, prctl, wait4/waitid, sendfile, copy_file_range, sync_file_range, preadv2/pwritev2, mlock/mlockall, affinity, scheduler, nice, memfd_create, membarrier, FUTEX_WAKE_OP, clone3",
    ),
    RuntimeTest {
        real: Some(Real::Sqlite3),
        data: &[DataFile::Generated {
            name: "delete.sql",
            make: real::sqlite_delete_script,
        }],
        image_mib: 64,
        timeout_s: 300,
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &["PASS sqlite-delete"],
        }],
        native: Native::No("a real program built by xtask"),
        ..test(
            "sqlite_delete",
            "SQLite's shell (Debian's source, static) with its default unix VFS in rollback-journal mode: 100k INSERTs in a transaction, index, update/delete, rollback, integrity_check",
        )
    },
    RuntimeTest {
        real: Some(Real::Sqlite3),
        data: &[DataFile::Generated {
            name: "wal.sql",
            make: real::sqlite_wal_script,
        }],
        image_mib: 64,
        timeout_s: 300,
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &["PASS sqlite-wal"],
        }],
        native: Native::No("a real program built by xtask"),
        ..test(
            "sqlite_wal",
            "the same in WAL mode (shared mapping of the -shm file and its locks), checkpoint, integrity_check",
        )
    },
    RuntimeTest {
        real: Some(Real::WithSqlite),
        timeout_s: 300,
        native: Native::No("linked with the SQLite amalgamation xtask builds"),
        ..test(
            "sqlite_threads",
            "two threads, two SQLite connections to one database, concurrent transactions in DELETE and WAL modes (a reader checks WAL snapshots), counts, sums, integrity_check",
        )
    },
    RuntimeTest {
        real: Some(Real::Speedtest1),
        image_mib: 64,
        timeout_s: 400,
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &["PRAGMA integrity_check", "TOTAL"],
        }],
        native: Native::No("a real program built by xtask"),
        ..test(
            "speedtest1",
            "SQLite's speedtest1 --size 10 (Debian's source): the whole benchmark mix, exit status 0",
        )
    },
    RuntimeTest {
        real: Some(Real::Fio),
        data: &[DataFile::Fixed {
            name: "fio-test.fio",
        }],
        image_mib: 96,
        timeout_s: 400,
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &[
                ";seqwrite;0;0;",
                ";seqread;1;0;",
                ";randread;2;0;",
                ";randwrite;3;0;",
                ";dirwrite;4;0;",
                ";uringwrite;5;0;",
            ],
        }],
        native: Native::No("a real program built by xtask"),
        ..test(
            "fio",
            "fio --thread (Debian's source, static): sequential write + fsync with crc32c verify, sequential read (psync), random read and random write with periodic fsync and verify (pvsync2), O_DIRECT random write with crc32c verify (psync, direct=1), O_DIRECT random write 32 deep with crc32c verify (io_uring)",
        )
    },
    RuntimeTest {
        real: Some(Real::Busybox),
        data: &BUSYBOX_DATA,
        image_mib: 96,
        timeout_s: 300,
        steps: BUSYBOX_STEPS,
        native: Native::No("a real program from Debian, one applet per boot"),
        ..test(
            "busybox",
            "busybox (Debian's busybox-static) applets, one per boot on one image: tar create, tar extract, cp -r, find, sort of 10 MiB, gzip, gunzip, then md5sum -c of everything",
        )
    },
    RuntimeTest {
        link: Link::Dynamic,
        storage: &[Storage::Virtio],
        native: Native::No("needs its image's loader cache and library layout"),
        ..test(
            "dynamic",
            "a PIE started by glibc's loader: AT_BASE/AT_ENTRY/AT_PHDR against dl_iterate_phdr, a library found only through the generated ld.so.cache, per-thread library TLS, dlopen via LD_LIBRARY_PATH, clocks (vDSO or syscalls), getcpu",
        )
    },
    RuntimeTest {
        real: Some(Real::Debian {
            package: "sqlite3",
            path: "/usr/bin/sqlite3",
        }),
        data: &[DataFile::Generated {
            name: "dyn.sql",
            make: real::dyn_sqlite_script,
        }],
        image_mib: 64,
        timeout_s: 300,
        storage: &[Storage::Virtio],
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &["PASS dyn-sqlite3"],
        }],
        native: Native::No("a Debian program in its image"),
        ..test(
            "dyn_sqlite3",
            "Debian's sqlite3 (dynamically linked) in WAL mode: 20k INSERTs, index, update/delete, rollback, checkpoint, integrity_check",
        )
    },
    RuntimeTest {
        real: Some(Real::Debian {
            package: "python3",
            path: "/usr/bin/python3",
        }),
        data: &DYN_PYTHON_DATA,
        image_mib: 160,
        timeout_s: 300,
        storage: &[Storage::Virtio],
        steps: &[
            Step {
                argv: &["python3", "walk_json.py", "write", "data", "out"],
                status: FIRST_BOOT,
                expect: &["FIRST-BOOT dyn-python"],
            },
            Step {
                argv: &["python3", "walk_json.py", "check", "data", "out"],
                status: 0,
                expect: &["PASS dyn-python"],
            },
        ],
        native: Native::No("a Debian program in its image"),
        ..test(
            "dyn_python",
            "Debian's python3 with its standard library: os.walk of a tree checked against its pattern, sha256, JSON records written and fsync'd, tempfile + os.replace (boot 1), read back and compared (boot 2)",
        )
    },
    RuntimeTest {
        real: Some(Real::Debian {
            package: "python3",
            path: "/usr/bin/python3",
        }),
        data: &[DataFile::Fixed {
            name: "asyncio_echo.py",
        }],
        image_mib: 160,
        timeout_s: 300,
        storage: &[Storage::Virtio],
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &["PASS dyn-asyncio"],
        }],
        native: Native::No("a Debian program in its image"),
        ..test(
            "dyn_asyncio",
            "Debian's python3 asyncio: an event loop (its self-pipe a socketpair) with a unix-socket echo server and 8 clients in one process (1 B-300 KB messages, SHA-256 and bytes checked, EOF), sock_sendall/sock_recv over a socketpair, call_soon_threadsafe and run_in_executor wake-ups",
        )
    },
    RuntimeTest {
        real: Some(Real::Debian {
            package: "tar",
            path: "/usr/bin/tar",
        }),
        data: &DYN_TAR_DATA,
        image_mib: 64,
        timeout_s: 300,
        storage: &[Storage::Virtio],
        steps: DYN_TAR_STEPS,
        native: Native::No("Debian programs in their image, one per boot"),
        ..test(
            "dyn_gzip_tar",
            "Debian's tar, gzip and md5sum (dynamically linked), one per boot: tar -cf, gzip -9, gzip -d, tar -xvf, md5sum -c of the extracted tree",
        )
    },
    RuntimeTest {
        real: Some(Real::Debian {
            package: "fio",
            path: "/usr/bin/fio",
        }),
        data: &[
            DataFile::Fixed {
                name: "fio-test.fio",
            },
            DataFile::Fixed {
                name: "fio-aio.fio",
            },
            DataFile::Fixed {
                name: "fio-uring.fio",
            },
            DataFile::Fixed {
                name: "fio-soak.fio",
            },
        ],
        image_mib: 192,
        timeout_s: 400,
        storage: &[Storage::Virtio],
        steps: &[
            Step {
                argv: &[],
                status: 0,
                expect: &[
                    ";seqwrite;0;0;",
                    ";seqread;1;0;",
                    ";randread;2;0;",
                    ";randwrite;3;0;",
                    ";dirwrite;4;0;",
                    ";uringwrite;5;0;",
                ],
            },
            Step {
                argv: &["fio", "--eta=never", "--output-format=terse", "fio-aio.fio"],
                status: 0,
                expect: &[";aiowrite;0;0;", ";aioread;1;0;"],
            },
            Step {
                argv: &[
                    "fio",
                    "--eta=never",
                    "--output-format=terse",
                    "fio-uring.fio",
                ],
                status: 0,
                expect: FIO_URING_JOBS,
            },
            // The next boot reads every file back and checks its crc32c.
            Step {
                argv: &[
                    "fio",
                    "--eta=never",
                    "--output-format=terse",
                    "--verify_only",
                    "fio-uring.fio",
                ],
                status: 0,
                expect: FIO_URING_JOBS,
            },
        ],
        native: Native::No("a Debian program in its image"),
        soak: &[
            "fio",
            "--eta=never",
            "--output-format=terse",
            "fio-soak.fio",
        ],
        soak_timeout_s: 1800,
        // fio's terse lines: job name, group, error 0.
        soak_expect: &[
            ";uring_direct;0;0;",
            ";aio_direct;1;0;",
            ";uring_buffered;2;0;",
            ";aio_buffered;3;0;",
        ],
        ..test(
            "dyn_fio",
            "Debian's fio (dynamically linked, 60-odd libraries, System V shared memory): the fio test's jobs with crc32c verify; then its libaio engine, O_DIRECT, eight deep, with crc32c verify; then io_uring (O_DIRECT and buffered, 1 and 32 deep) and libaio (O_DIRECT 1 deep, buffered 32 deep) random writes with crc32c verify, io_uring random reads; then all of it verified again after a reboot (--verify_only) (--soak: io_uring and libaio, O_DIRECT and buffered, 32 deep random writes for two minutes a job with crc32c verify as it goes)",
        )
    },
    RuntimeTest {
        real: Some(Real::Data),
        source: "notelf",
        data: &[
            DataFile::Generated {
                name: "bad/notelf",
                make: badelf::not_elf,
            },
            DataFile::Generated {
                name: "bad/elf32",
                make: badelf::elf32,
            },
            DataFile::Generated {
                name: "bad/noloader",
                make: badelf::missing_loader,
            },
            DataFile::Generated {
                name: "bad/badphdr",
                make: badelf::bad_phdr,
            },
        ],
        storage: &[Storage::Virtio],
        steps: &[
            Step {
                argv: &["/bad/notelf"],
                status: 126,
                expect: &["cannot start the workload: program /bad/notelf: not an ELF file"],
            },
            Step {
                argv: &["/bad/elf32"],
                status: 126,
                expect: &["program /bad/elf32: not a 64-bit ELF file (class 1)"],
            },
            Step {
                argv: &["/bad/noloader"],
                status: 127,
                expect: &[
                    "interpreter /lib64/ld-cairn-missing.so.2: no such file or directory (the dynamic loader program /bad/noloader names)",
                ],
            },
            Step {
                argv: &["/bad/badphdr"],
                status: 126,
                expect: &["program /bad/badphdr: segment 0: file range beyond end of file"],
            },
            Step {
                argv: &["/bad/nothere"],
                status: 127,
                expect: &["program /bad/nothere: no such file or directory"],
            },
        ],
        native: Native::No("files that are not programs"),
        linux: Native::No(
            "the messages are cairn's; Linux's shell would try the text file as a script",
        ),
        ..test(
            "bad_exec",
            "programs the kernel refuses with a message and status 126/127, one per boot: text, a 32-bit ELF, a missing dynamic loader, a program header past the file's end, no such file",
        )
    },
    RuntimeTest {
        storage: &[Storage::Virtio],
        timeout_s: 300,
        image_mib: 32,
        native: Native::No(
            "calls syscalls with random arguments, absolute paths included: only in a VM",
        ),
        soak: &["fuzz", "2", "1000000"],
        soak_timeout_s: 8 * 3600,
        ..test(
            "fuzz",
            "syscall fuzzer: 20,000 calls of every implemented syscall with random and boundary arguments (NULL, kernel-half, non-canonical and unmapped pointers, huge and negative lengths and offsets, bad flags, closed fds) from seed 1; no panic, no hang, EFAULT/EBADF/ENOSYS where predictable, the filesystem still works after (--soak: 1,000,000 calls, seed 2)",
        )
    },
    RuntimeTest {
        source: "soak",
        storage: &[Storage::Virtio],
        timeout_s: 300,
        soak: &["soak", "fsync", "100000"],
        soak_timeout_s: 6 * 3600,
        ..test(
            "soak_fsync",
            "pwrite+fsync of one file 300 times after a warm-up: heap bytes and objects, threads, files, mappings and pagecache nodes (/proc/cairn/kstats) must not grow (--soak: 100,000)",
        )
    },
    RuntimeTest {
        source: "soak",
        storage: &[Storage::Virtio],
        timeout_s: 300,
        soak: &["soak", "unlink", "20000"],
        soak_timeout_s: 6 * 3600,
        ..test(
            "soak_unlink",
            "300 create/write/close/unlink cycles (without fsync, with fsync, renamed over a dirty file) after a warm-up: the kernel's accounting must not grow (--soak: 20,000)",
        )
    },
    RuntimeTest {
        source: "soak",
        storage: &[Storage::Virtio],
        timeout_s: 300,
        soak: &["soak", "threads", "10000"],
        soak_timeout_s: 4 * 3600,
        ..test(
            "soak_threads",
            "300 pthread_create/join after a warm-up: threads, stacks and heap objects must not grow (--soak: 10,000)",
        )
    },
    RuntimeTest {
        source: "soak",
        storage: &[Storage::Virtio],
        timeout_s: 300,
        soak: &["soak", "mmap", "10000"],
        soak_timeout_s: 4 * 3600,
        ..test(
            "soak_mmap",
            "300 mmap (shared written, private read)/munmap of a file after a warm-up: mappings, heap objects and pagecache nodes must not grow (--soak: 10,000)",
        )
    },
    RuntimeTest {
        source: "soak",
        storage: &[Storage::Virtio],
        timeout_s: 300,
        soak: &["soak", "open", "5000"],
        soak_timeout_s: 8 * 3600,
        ..test(
            "soak_open",
            "3 rounds of open and close of 1,000 files after a warm-up round: descriptions, descriptors, heap objects and pagecache nodes must not grow (--soak: 5,000 rounds)",
        )
    },
];

/// The dyn_python test's files (`real::PY_TREE`).
const DYN_PYTHON_DATA: [DataFile; 9] = [
    DataFile::Fixed {
        name: "walk_json.py",
    },
    pattern("data/f-101-4096.dat", 4096, 101),
    pattern("data/f-102-1.dat", 1, 102),
    pattern("data/a/f-103-100000.dat", 100_000, 103),
    pattern("data/a/f-104-0.dat", 0, 104),
    pattern("data/a/b/f-105-65536.dat", 65_536, 105),
    pattern("data/a/b/c/f-106-33333.dat", 33_333, 106),
    pattern("data/d/f-107-12345.dat", 12_345, 107),
    pattern("data/d/f-108-8192.dat", 8192, 108),
];

/// The dyn_gzip_tar test's files: the busybox tree and its sums.
const DYN_TAR_DATA: [DataFile; 7] = [
    BUSYBOX_DATA[0],
    BUSYBOX_DATA[1],
    BUSYBOX_DATA[2],
    BUSYBOX_DATA[3],
    BUSYBOX_DATA[4],
    BUSYBOX_DATA[5],
    DataFile::Generated {
        name: "sums.md5",
        make: real::tar_sums,
    },
];

/// One program per boot; `/usr/bin/...` names the boot's program.
const DYN_TAR_STEPS: &[Step] = &[
    Step {
        argv: &["tar", "-cf", "t.tar", "data"],
        status: 0,
        expect: &[],
    },
    // -n: no name or time stamp in the header. (A file made in the first
    // second after boot has mtime 0 while TFS takes times from the
    // monotonic clock, and gzip warns about that with status 2.)
    Step {
        argv: &["/usr/bin/gzip", "-9", "-n", "t.tar"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["/usr/bin/gzip", "-d", "t.tar.gz"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["tar", "-xvf", "t.tar", "-C", "out"],
        status: 0,
        expect: &["data/a/deeper/three.dat", "data/six.dat"],
    },
    Step {
        argv: &["/usr/bin/md5sum", "-c", "sums.md5"],
        status: 0,
        expect: &[
            "out/data/a/one.dat: OK",
            "out/data/a/two.dat: OK",
            "out/data/a/deeper/three.dat: OK",
            "out/data/b/four.dat: OK",
            "out/data/b/five.dat: OK",
            "out/data/six.dat: OK",
        ],
    },
];

/// The busybox test's files.
const BUSYBOX_DATA: [DataFile; 9] = [
    pattern(
        real::BUSYBOX_TREE[0].0,
        real::BUSYBOX_TREE[0].1,
        real::BUSYBOX_TREE[0].2,
    ),
    pattern(
        real::BUSYBOX_TREE[1].0,
        real::BUSYBOX_TREE[1].1,
        real::BUSYBOX_TREE[1].2,
    ),
    pattern(
        real::BUSYBOX_TREE[2].0,
        real::BUSYBOX_TREE[2].1,
        real::BUSYBOX_TREE[2].2,
    ),
    pattern(
        real::BUSYBOX_TREE[3].0,
        real::BUSYBOX_TREE[3].1,
        real::BUSYBOX_TREE[3].2,
    ),
    pattern(
        real::BUSYBOX_TREE[4].0,
        real::BUSYBOX_TREE[4].1,
        real::BUSYBOX_TREE[4].2,
    ),
    pattern(
        real::BUSYBOX_TREE[5].0,
        real::BUSYBOX_TREE[5].1,
        real::BUSYBOX_TREE[5].2,
    ),
    pattern("big.dat", real::GZIP_BYTES, 67),
    DataFile::Generated {
        name: "unsorted.txt",
        make: real::unsorted,
    },
    DataFile::Generated {
        name: "sums.md5",
        make: real::busybox_sums,
    },
];

/// One applet per boot; the last checks what the others made.
const BUSYBOX_STEPS: &[Step] = &[
    Step {
        argv: &["busybox", "tar", "-cf", "t.tar", "data"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["busybox", "tar", "-xf", "t.tar", "-C", "out"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["busybox", "cp", "-r", "data", "copy"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["busybox", "find", "data", "-type", "f"],
        status: 0,
        expect: real::FIND_LINES,
    },
    Step {
        argv: &["busybox", "sort", "-o", "sorted.txt", "unsorted.txt"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["busybox", "gzip", "big.dat"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["busybox", "gunzip", "big.dat.gz"],
        status: 0,
        expect: &[],
    },
    Step {
        argv: &["busybox", "md5sum", "-c", "sums.md5"],
        status: 0,
        expect: &[
            "out/data/a/one.dat: OK",
            "out/data/a/deeper/three.dat: OK",
            "copy/b/four.dat: OK",
            "copy/six.dat: OK",
            "sorted.txt: OK",
            "big.dat: OK",
        ],
    },
];

/// The filesystem benchmark of `cargo xtask bench fs` (not a test: its
/// figures are printed, never judged; it fails only on wrong data).
static FS_BENCH: RuntimeTest = RuntimeTest {
    data: &[
        pattern("cold.dat", 32 << 20, 91),
        pattern("rand.dat", 16 << 20, 92),
        pattern("map.dat", 16 << 20, 93),
    ],
    image_mib: 256,
    storage: &[Storage::Virtio],
    timeout_s: 900,
    ..test(
        "fsbench",
        "sequential write+fsync, sequential and random reads cold and cached, create+unlink, mapped-file faults",
    )
};

/// The `bench fs` workload.
pub fn fs_bench() -> &'static RuntimeTest {
    &FS_BENCH
}

/// The workload of `cargo xtask bench sched` (the liveness program in its
/// bench mode; printed, never judged).
static SCHED_BENCH: RuntimeTest = RuntimeTest {
    source: "liveness",
    storage: &[Storage::Virtio],
    timeout_s: 900,
    ..test(
        "schedbench",
        "wake-up and fsync latency percentiles beside 0, N and 2N CPU-bound threads",
    )
};

/// The `bench sched` workload.
pub fn sched_bench() -> &'static RuntimeTest {
    &SCHED_BENCH
}

/// The workload of `cargo xtask bench scale` (printed, never judged).
static SCALE_BENCH: RuntimeTest = RuntimeTest {
    image_mib: 128,
    storage: &[Storage::Virtio],
    timeout_s: 1800,
    ..test(
        "scalebench",
        "aggregate cached pread/pwrite, 4 KiB pread, anonymous-fault and getpid rates with 1, 2 and 4 threads",
    )
};

/// The `bench scale` workload.
pub fn scale_bench() -> &'static RuntimeTest {
    &SCALE_BENCH
}

/// The workload of `cargo xtask bench net`: the httpd test's server with
/// a 1 KiB and a 1 MiB file, on cairn and on the Linux guest (printed,
/// never judged; the bench drives it with a host load generator).
static NET_BENCH: RuntimeTest = RuntimeTest {
    source: "httpd",
    data: &[pattern("1k", 1024, 81), pattern("1m", 1 << 20, 82)],
    storage: &[Storage::Virtio],
    timeout_s: 900,
    native: Native::No("needs the host-side load generator"),
    ..test(
        "netbench",
        "HTTP requests/s and p99 latency for a 1 KiB and a 1 MiB file from the host",
    )
};

/// The `bench net` workload.
pub fn net_bench() -> &'static RuntimeTest {
    &NET_BENCH
}

/// The workloads of `cargo xtask bench programs` (not tests: figures are
/// printed; they fail only if the program fails).
static PROGRAM_BENCHES: [RuntimeTest; 2] = [
    RuntimeTest {
        real: Some(Real::Speedtest1),
        manifest: "speedtest1",
        image_mib: 128,
        storage: &[Storage::Virtio],
        timeout_s: 1200,
        steps: &[Step {
            argv: &["speedtest1", "--size", "10", "bench.db"],
            status: 0,
            expect: &["TOTAL"],
        }],
        native: Native::No("a real program built by xtask"),
        ..test("bench_speedtest1", "SQLite speedtest1 --size 10")
    },
    RuntimeTest {
        real: Some(Real::Fio),
        manifest: "fio-bench",
        data: &[DataFile::Fixed {
            name: "fio-bench.fio",
        }],
        image_mib: 256,
        storage: &[Storage::Virtio],
        timeout_s: 1200,
        steps: &[Step {
            argv: &[],
            status: 0,
            expect: &[";seqwrite;0;0;", ";randwrite;3;0;"],
        }],
        native: Native::No("a real program built by xtask"),
        ..test(
            "bench_fio",
            "fio: sequential write + fsync, sequential read, 4 KiB random reads and writes",
        )
    },
];

/// The `bench programs` workloads.
pub fn program_benches() -> &'static [RuntimeTest] {
    &PROGRAM_BENCHES
}

/// The workload of `cargo xtask bench fio`: Debian's fio (its libaio
/// engine needs the library) running `files/fio-engines.fio`.
static FIO_ENGINES_BENCH: RuntimeTest = RuntimeTest {
    real: Some(Real::Debian {
        package: "fio",
        path: "/usr/bin/fio",
    }),
    manifest: "fio-engines",
    data: &[DataFile::Fixed {
        name: "fio-engines.fio",
    }],
    image_mib: 192,
    storage: &[Storage::Virtio],
    timeout_s: 1200,
    steps: &[Step {
        argv: &[],
        status: 0,
        expect: &[";aio_d_rr1;0;0;", ";uring_b_sw;23;0;"],
    }],
    native: Native::No("a Debian program in its image"),
    ..test(
        "bench_fio_engines",
        "fio libaio and io_uring, O_DIRECT and buffered: 4 KiB random read/write 1 and 32 deep, 1 MiB sequential read/write",
    )
};

/// The `bench fio` workload.
pub fn fio_engines_bench() -> &'static RuntimeTest {
    &FIO_ENGINES_BENCH
}

/// Every runtime test.
///
/// Each runs on the first of its storage kinds in the default suite.
pub fn catalogue() -> &'static [RuntimeTest] {
    CATALOGUE
}

/// A runtime test or the fs benchmark workload, by name.
pub fn find(name: &str) -> Option<&'static RuntimeTest> {
    CATALOGUE
        .iter()
        .chain([
            fs_bench(),
            sched_bench(),
            scale_bench(),
            net_bench(),
            fio_engines_bench(),
        ])
        .chain(program_benches())
        .find(|t| t.name == name)
}

/// `test/runtime/`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The data pattern: the little-endian word at byte `off` (a multiple of
/// 4) of a file made with `seed`; `pat32` in `c/cairn_test.h`.
pub fn pattern_word(off: u64, seed: u32) -> u32 {
    let mut x = ((off >> 2) as u32).wrapping_mul(2_654_435_761)
        ^ seed.wrapping_mul(0x9e37_79b9)
        ^ (off >> 34) as u32;
    x ^= x >> 15;
    x = x.wrapping_mul(0x2c1b_3c6d);
    x ^= x >> 12;
    x
}

/// `len` bytes of pattern `seed` starting at byte `off` (a multiple of 4).
pub fn pattern_bytes(off: u64, len: usize, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 4);
    let mut o = off;
    while v.len() < len {
        v.extend_from_slice(&pattern_word(o, seed).to_le_bytes());
        o += 4;
    }
    v.truncate(len);
    v
}

/// Why a program or its build directory could not be made.
#[derive(Debug)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

fn io_err(what: &Path) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |e| BuildError(format!("{}: {e}", what.display()))
}

impl RuntimeTest {
    /// The program's file name (the source's stem, or the real
    /// program's name).
    pub fn program(&self) -> &'static str {
        match self.real {
            Some(Real::Sqlite3) => "sqlite3",
            Some(Real::Speedtest1) => "speedtest1",
            Some(Real::Fio) => "fio",
            Some(Real::Busybox) => "busybox",
            Some(Real::Debian { path, .. }) => path.rsplit('/').next().unwrap_or(path),
            Some(Real::WithSqlite | Real::Data) | None => self.source,
        }
    }

    /// Whether its image is made like `cargo xtask run --elf`'s (program,
    /// loader, libraries, generated `/etc`, the manifest on top) rather
    /// than from the manifest alone.
    pub fn program_image(&self) -> bool {
        self.link == Link::Dynamic || matches!(self.real, Some(Real::Debian { .. }))
    }

    /// A [`Link::Dynamic`] test's shared libraries: (file name, source).
    /// The first is linked into the program; the manifest places both.
    pub fn shared_libraries(&self) -> Vec<(String, PathBuf)> {
        if self.link != Link::Dynamic {
            return Vec::new();
        }
        ["lib", "plugin"]
            .iter()
            .map(|k| {
                let so = if *k == "lib" {
                    format!("lib{}_lib.so.1", self.source)
                } else {
                    format!("lib{}_plugin.so", self.source)
                };
                (so, dir().join("c").join(format!("{}_{k}.c", self.source)))
            })
            .collect()
    }

    /// Its boots: the `steps`, or one per `boots` status with the
    /// manifest's command line, expecting the program's own line
    /// ([`RuntimeTest::marker`]).
    pub fn boot_list(&self) -> Vec<Boot> {
        if !self.steps.is_empty() {
            return self
                .steps
                .iter()
                .map(|s| Boot {
                    argv: s.argv.iter().map(|a| a.to_string()).collect(),
                    status: s.status,
                    expect: s.expect.iter().map(|e| e.to_string()).collect(),
                })
                .collect();
        }
        self.boots
            .iter()
            .map(|&status| Boot {
                argv: Vec::new(),
                status,
                expect: self.marker(status).into_iter().collect(),
            })
            .collect()
    }

    /// Path of the C source.
    pub fn source_path(&self) -> PathBuf {
        dir().join("c").join(format!("{}.c", self.source))
    }

    /// Path of the manifest.
    pub fn manifest_path(&self) -> PathBuf {
        dir()
            .join("manifests")
            .join(format!("{}.manifest", self.manifest))
    }

    /// The manifest text.
    pub fn manifest_text(&self) -> Result<Vec<u8>, BuildError> {
        let p = self.manifest_path();
        std::fs::read(&p).map_err(io_err(&p))
    }

    /// The workload the manifest names (program path, argv, environment).
    pub fn workload(&self) -> Result<cairn_tfs::Workload, BuildError> {
        let text = self.manifest_text()?;
        let m = cairn_tfs::manifest::parse(&text).map_err(|e| {
            BuildError(format!(
                "{}: {}",
                self.manifest_path().display(),
                e.render(&text)
            ))
        })?;
        Ok(cairn_tfs::Workload::from_root(&m.store, m.root))
    }

    /// The line the program prints when it ends with `status` by itself
    /// (`PASS <program>` for 0, `FIRST-BOOT <program>` for [`FIRST_BOOT`]):
    /// a runner requires it, so that a kernel that exits with the right
    /// status without running the program does not pass.
    pub fn marker(&self, status: u32) -> Option<String> {
        match status {
            0 => Some(format!("PASS {}", self.program())),
            FIRST_BOOT => Some(format!("FIRST-BOOT {}", self.program())),
            _ => None,
        }
    }

    /// Whether it boots on `storage`.
    pub fn runs_on(&self, storage: Storage) -> bool {
        self.storage.contains(&storage)
    }

    /// The storage kind of the default suite.
    pub fn primary_storage(&self) -> Storage {
        self.storage[0]
    }

    /// Compiles the program into `out` (gcc `-static` or `-static-pie`,
    /// `-O2 -pthread`, with libm) and returns the binary's path.
    pub fn build_program(&self, out: &Path) -> Result<PathBuf, BuildError> {
        std::fs::create_dir_all(out).map_err(io_err(out))?;
        let bin = out.join(self.program());
        let run = |cmd: &mut Command, what: &Path| -> Result<(), BuildError> {
            let o = cmd
                .output()
                .map_err(|e| BuildError(format!("cannot run {}: {e}", gcc())))?;
            if !o.status.success() {
                return Err(BuildError(format!(
                    "{} {} failed:\n{}",
                    gcc(),
                    what.display(),
                    String::from_utf8_lossy(&o.stderr)
                )));
            }
            Ok(())
        };
        let libs = self.shared_libraries();
        for (so, src) in &libs {
            let mut cmd = Command::new(gcc());
            cmd.args([
                "-shared", "-fPIC", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
            ]);
            if so.ends_with(".so.1") {
                cmd.arg(format!("-Wl,-soname,{so}"));
            } else {
                // The plugin uses the program's library.
                cmd.arg("-L").arg(out).arg(format!("-l:{}", libs[0].0));
            }
            run(cmd.arg("-o").arg(out.join(so)).arg(src), src)?;
        }
        let mut cmd = Command::new(gcc());
        match self.link {
            Link::Static => {
                cmd.arg("-static");
            }
            Link::StaticPie => {
                cmd.arg("-static-pie");
            }
            Link::Dynamic => {}
        }
        cmd.args(["-O2", "-g", "-pthread", "-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(dir().join("c"))
            .arg("-o")
            .arg(&bin)
            .arg(self.source_path())
            .arg("-lm");
        if let Some((so, _)) = libs.first() {
            cmd.arg("-L").arg(out).arg(format!("-l:{so}")).arg("-ldl");
        }
        run(&mut cmd, &self.source_path())?;
        Ok(bin)
    }

    /// Writes the data files into `out`.
    pub fn write_data(&self, out: &Path) -> Result<(), BuildError> {
        std::fs::create_dir_all(out).map_err(io_err(out))?;
        for d in self.data {
            let path = out.join(d.name());
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            match *d {
                DataFile::Pattern { bytes, seed, .. } => {
                    let f = std::fs::File::create(&path).map_err(io_err(&path))?;
                    let mut w = std::io::BufWriter::new(f);
                    let chunk = 1 << 20;
                    let mut off = 0;
                    while off < bytes {
                        let n = chunk.min(bytes - off);
                        w.write_all(&pattern_bytes(off, n as usize, seed))
                            .map_err(io_err(&path))?;
                        off += n;
                    }
                    w.flush().map_err(io_err(&path))?;
                }
                DataFile::Fixed { name } => {
                    let src = dir().join("files").join(name);
                    std::fs::copy(&src, &path).map_err(io_err(&src))?;
                }
                DataFile::Generated { make, .. } => {
                    std::fs::write(&path, make()).map_err(io_err(&path))?;
                }
            }
        }
        Ok(())
    }

    /// Builds the program and writes the data files into `out`: everything
    /// the manifest's host paths name. A real program must already be in
    /// `out` (xtask puts it there).
    pub fn prepare(&self, out: &Path) -> Result<PathBuf, BuildError> {
        self.write_data(out)?;
        if let Some(Real::Debian { path, .. }) = self.real {
            return Ok(PathBuf::from(path));
        }
        if self.real == Some(Real::Data) {
            return Ok(out.to_path_buf());
        }
        if self.real.is_some() {
            let bin = out.join(self.program());
            return if bin.is_file() {
                Ok(bin)
            } else {
                Err(BuildError(format!(
                    "{}: {} is built by `cargo xtask` (from Debian's packages and sources)",
                    self.name,
                    self.program()
                )))
            };
        }
        self.build_program(out)
    }
}

/// The C compiler (`$CC`, else `gcc`).
pub fn gcc() -> String {
    std::env::var("CC")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gcc".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_tfs::store::{NodeId, Store, Value};
    use cairn_tfs::symbol::known;
    use std::collections::BTreeSet;

    /// Host paths named by `contents:(host:...)` anywhere under `t`, and
    /// whether `path` (a `/`-separated program path) resolves to a file.
    fn host_paths(store: &Store, t: NodeId, out: &mut BTreeSet<String>) {
        let entries: Vec<_> = store.entries(t).map(|(k, v)| (k, v.clone())).collect();
        for (k, v) in entries {
            if let Value::Tuple(c) = v {
                if k == known::CONTENTS {
                    let host = store
                        .get(c, known::HOST)
                        .and_then(Value::as_bytes)
                        .expect("contents without host");
                    out.insert(String::from_utf8_lossy(host).into_owned());
                } else {
                    host_paths(store, c, out);
                }
            }
        }
    }

    fn resolves_to_file(store: &Store, root: NodeId, path: &[u8]) -> bool {
        let mut t = root;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            let Some(children) = store.get_tuple(t, known::CHILDREN) else {
                return false;
            };
            let sym = store.symbols.find(part);
            match sym.and_then(|s| store.get(children, s)) {
                Some(Value::Tuple(n)) => t = *n,
                _ => return false,
            }
        }
        store.get(t, known::CONTENTS).is_some()
    }

    #[test]
    fn every_manifest_parses_and_names_its_program_and_files() {
        for t in catalogue()
            .iter()
            .chain([
                fs_bench(),
                sched_bench(),
                scale_bench(),
                net_bench(),
                fio_engines_bench(),
            ])
            .chain(program_benches())
        {
            let text = t.manifest_text().unwrap();
            let m = cairn_tfs::manifest::parse(&text)
                .unwrap_or_else(|e| panic!("{}: {}", t.name, e.render(&text)));
            let w = cairn_tfs::Workload::from_root(&m.store, m.root);
            let program = w.program.as_deref().expect("no program");
            if let Some(Real::Debian { path, .. }) = t.real {
                // The image builder adds the program from the host.
                assert_eq!(program, path.as_bytes(), "{}", t.name);
            } else {
                assert!(
                    resolves_to_file(&m.store, m.root, program),
                    "{}: program {} is not a file of the tree",
                    t.name,
                    String::from_utf8_lossy(program)
                );
            }
            assert!(
                program.ends_with(format!("/{}", t.program()).as_bytes()),
                "{}: program path does not end in the binary's name",
                t.name
            );
            assert!(!w.arguments.is_empty(), "{}: argv[0] must be given", t.name);
            let mut hosts = BTreeSet::new();
            host_paths(&m.store, m.root, &mut hosts);
            // Absolute host paths name the host's own files (programs and
            // directories of Debian packages, for program images).
            if t.program_image() {
                hosts.retain(|h| !h.starts_with('/'));
            }
            let mut expected: BTreeSet<String> =
                t.data.iter().map(|d| d.name().to_string()).collect();
            if !matches!(t.real, Some(Real::Debian { .. } | Real::Data)) {
                expected.insert(t.program().to_string());
            }
            expected.extend(t.shared_libraries().into_iter().map(|(so, _)| so));
            assert_eq!(
                hosts, expected,
                "{}: the manifest's host paths must be the program and the data files",
                t.name
            );
            assert!(
                m.store.get(m.root, known::IMAGESIZE).is_none(),
                "{}: the image size belongs in the catalogue",
                t.name
            );
        }
    }

    #[test]
    fn catalogue_is_consistent() {
        let mut names = BTreeSet::new();
        for t in catalogue() {
            assert!(names.insert(t.name), "duplicate test {}", t.name);
            let own_source = matches!(t.real, None | Some(Real::WithSqlite));
            for (_, src) in t.shared_libraries() {
                assert!(src.is_file(), "{}: no {}", t.name, src.display());
            }
            assert!(
                !own_source || t.source_path().is_file(),
                "{}: no source",
                t.name
            );
            if !t.steps.is_empty() {
                // argv[0] is the program's name, or an absolute path that
                // names the boot's program.
                assert!(
                    t.steps.iter().all(|s| s.argv.is_empty()
                        || s.argv[0] == t.program()
                        || s.argv[0].starts_with('/')),
                    "{}",
                    t.name
                );
            }
            assert!(!t.boots.is_empty() && t.smp >= 1 && t.timeout_s > 0);
            assert!(!t.storage.is_empty(), "{}", t.name);
            // The manifest's mounts name the test's volumes, unless the
            // test is about a boot that must fail.
            let w = t.workload().unwrap();
            for (key, _) in &w.mounts {
                let named = t.volumes.iter().any(|v| {
                    v.label.as_bytes() == key.as_slice()
                        || v.uuid.is_some_and(|u| u.as_bytes() == key.as_slice())
                });
                assert!(
                    named || t.boots == [126],
                    "{}: mounts names {} which no volume of the test is",
                    t.name,
                    String::from_utf8_lossy(key)
                );
            }
            for v in t.volumes {
                assert!(v.label.len() < 32, "{}: label too long", t.name);
                if let Some(u) = v.uuid {
                    assert!(cairn_tfs::uuid::parse(u.as_bytes()).is_some(), "{u}");
                }
            }
            if let Some(Inject::ReadFile { path, offset }) = t.inject {
                let d = t
                    .data
                    .iter()
                    .find(|d| format!("/{}", d.name()) == path)
                    .expect("inject names a data file");
                if let DataFile::Pattern { bytes, .. } = d {
                    assert!(offset < *bytes);
                }
            }
            for d in t.data {
                if let DataFile::Fixed { name } = d {
                    assert!(dir().join("files").join(name).is_file());
                }
            }
        }
        for n in [
            "demo",
            "hello",
            "hello_pie",
            "persist",
            "enospc",
            "eio",
            "volume",
            "volume_nvme_scsi",
        ] {
            assert!(find(n).is_some(), "{n}");
        }
        assert!(catalogue().iter().any(|t| t.link == Link::StaticPie));
        assert!(catalogue().iter().any(|t| t.boots.len() == 2));
        // The four seed scenarios, each also beside CPU-bound threads.
        let seeds = |spin: bool| {
            catalogue()
                .iter()
                .filter(|t| t.name.starts_with("seed_") && t.name.ends_with("_spin") == spin)
                .count()
        };
        assert_eq!((seeds(false), seeds(true)), (4, 4));
    }

    #[test]
    fn in_program_alarms_fire_before_the_runner_gives_up() {
        // alarm() in watchdog_start(stall, total) must end a hung program
        // (SIGALRM, 142) before the runner's timeout kills QEMU.
        for t in catalogue().iter().filter(|t| t.source_path().is_file()) {
            let src = std::fs::read_to_string(t.source_path()).unwrap();
            if let Some(at) = src.find("watchdog_start(") {
                let args = &src[at..src[at..].find(';').unwrap() + at];
                let mut total: u64 = args
                    .rsplit(',')
                    .next()
                    .unwrap()
                    .trim_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .unwrap();
                // The seed programs take the total from argv[4] when given.
                let argv = t.workload().unwrap().arguments;
                if src.contains("arg_long(argc, argv, 4,") && argv.len() > 4 {
                    total = std::str::from_utf8(&argv[4]).unwrap().parse().unwrap();
                }
                assert!(total < t.timeout_s, "{}: alarm({total}) >= timeout", t.name);
            }
        }
    }

    #[test]
    fn seed_data_files_cover_the_iterations() {
        // argv[1] of the seed programs is the iteration count; the cold
        // data files must hold that many regions.
        for (name, file, per_iter) in [
            ("seed_brian", "brian.dat", 2 * 2 * PAGE),
            ("seed_colin", "colin-map.dat", 4 * PAGE),
            ("seed_colin", "colin-buf.dat", 4 * PAGE),
        ] {
            let t = find(name).unwrap();
            let w = t.workload().unwrap();
            let iters: u64 = String::from_utf8_lossy(&w.arguments[1]).parse().unwrap();
            assert!(iters >= 200, "{name}: at least 200 iterations");
            let bytes = t
                .data
                .iter()
                .find_map(|d| match d {
                    DataFile::Pattern { name, bytes, .. } if *name == file => Some(*bytes),
                    _ => None,
                })
                .unwrap();
            assert!(bytes >= iters * per_iter, "{name}: {file} too small");
        }
        for name in ["seed_mman_race", "seed_split_merge"] {
            let w = find(name).unwrap().workload().unwrap();
            let iters: u64 = String::from_utf8_lossy(&w.arguments[1]).parse().unwrap();
            assert!(iters >= 200, "{name}");
        }
    }

    #[test]
    fn pattern_matches_the_c_side() {
        // Values printed by pat32() of c/cairn_test.h.
        assert_eq!(pattern_word(0, 1), 0x672152f9);
        assert_eq!(pattern_word(4, 1), 0x60dfeef6);
        assert_eq!(pattern_word(4096 * 1000, 21), 0x21463481);
        assert_eq!(pattern_word((1 << 36) + 8, 77), 0x125a2c1d);
        assert_eq!(pattern_bytes(0, 6, 1).len(), 6);
        assert_eq!(
            pattern_bytes(8, 8, 7),
            [
                pattern_word(8, 7).to_le_bytes(),
                pattern_word(12, 7).to_le_bytes()
            ]
            .concat()
        );
        assert_ne!(pattern_word(0, 1), pattern_word(0, 2));
        assert_ne!(pattern_word(0, 1), pattern_word(4, 1));
    }
}
