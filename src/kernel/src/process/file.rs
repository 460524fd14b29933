//! Open file descriptions: what a file descriptor refers to, with its
//! offset and status flags. Regular files read and write through the
//! pagecache ([`crate::fs::Mount`]); directories list through TFS; the
//! console is the serial port; everything else (pipes, eventfds, timerfds,
//! epoll instances, the special files of `crate::special`) is a
//! [`FileOps`] object.
//!
//! Each description has an id ([`OpenFile::id`]): the owner of its
//! open-file-description locks (`F_OFD_SETLK`, `flock`), which are
//! released when the description goes (its last descriptor closes).
//!
//! Kernel-lock context. The offset and flags are atomics only written
//! under the kernel lock (so `read` + offset update is atomic with respect
//! to other syscalls unless the read sleeps; Linux gives no stronger
//! guarantee for shared descriptions either).

use crate::fs::{FileData, Loc};
use crate::sched::mutex::SleepMutex;
use crate::sched::wait::Pollable;
use alloc::sync::Arc;
use alloc::vec::Vec;
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub enum FileKind {
    Regular(Arc<FileData>),
    Directory(Loc),
    /// The serial console (fds 0, 1, 2).
    Console,
    /// A pipe end, an eventfd, a special file...
    Object(Arc<dyn FileOps>),
}

/// `poll` event bits.
pub mod poll {
    pub const POLLIN: u16 = 0x001;
    pub const POLLPRI: u16 = 0x002;
    pub const POLLOUT: u16 = 0x004;
    pub const POLLERR: u16 = 0x008;
    pub const POLLHUP: u16 = 0x010;
    pub const POLLNVAL: u16 = 0x020;
    pub const POLLRDNORM: u16 = 0x040;
    pub const POLLWRNORM: u16 = 0x100;
    /// Readable and writable (regular files, devices).
    pub const ALWAYS: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
}

/// Where a read puts its bytes: user memory or a kernel buffer (sendfile,
/// copy_file_range).
pub enum Dst<'a> {
    User(u64),
    Kernel(&'a mut [u8]),
}

impl Dst<'_> {
    /// Copies `bytes` to offset `at` of the destination.
    pub fn put(&mut self, at: usize, bytes: &[u8]) -> Result<(), Errno> {
        match self {
            Dst::User(a) => crate::syscall::copy_out(*a + at as u64, bytes),
            Dst::Kernel(b) => {
                b.get_mut(at..at + bytes.len())
                    .ok_or(Errno::EFAULT)?
                    .copy_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Fills `len` bytes at offset `at` with zeros.
    pub fn zero(&mut self, at: usize, len: usize) -> Result<(), Errno> {
        let z = [0u8; 512];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(z.len());
            self.put(at + done, &z[..n])?;
            done += n;
        }
        Ok(())
    }
}

/// Where a write takes its bytes from.
pub enum Src<'a> {
    User(u64),
    Kernel(&'a [u8]),
}

impl Src<'_> {
    /// Copies `out.len()` bytes from offset `at` of the source.
    pub fn get(&self, at: usize, out: &mut [u8]) -> Result<(), Errno> {
        match self {
            Src::User(a) => crate::syscall::copy_in(out, *a + at as u64),
            Src::Kernel(b) => {
                out.copy_from_slice(b.get(at..at + out.len()).ok_or(Errno::EFAULT)?);
                Ok(())
            }
        }
    }
}

/// One directory entry of a [`FileOps`] directory.
pub struct DirEntry {
    pub ino: u64,
    /// `DT_*`.
    pub kind: u8,
    pub name: Vec<u8>,
}

/// A file that is not a TFS file or directory. Every method runs in
/// kernel-lock context, in the calling thread, with no lock held; reads
/// and writes may sleep (through `crate::sched::wait`), and must hold no
/// spinlock while they copy user memory.
pub trait FileOps: Send + Sync + Any {
    /// Reads up to `len` bytes at `off` (ignored unless seekable).
    fn read(&self, _f: &OpenFile, _off: u64, _dst: Dst<'_>, _len: usize) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// Writes `len` bytes at `off` (ignored unless seekable).
    fn write(&self, _f: &OpenFile, _off: u64, _src: Src<'_>, _len: usize) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// Reads and writes move the description's offset; lseek works.
    fn seekable(&self) -> bool {
        false
    }
    /// The size `SEEK_END` counts from.
    fn size(&self) -> u64 {
        0
    }
    /// Current readiness (`poll::*` bits).
    fn poll(&self) -> u16 {
        poll::ALWAYS
    }
    /// The source that notifies readiness changes; `None`: never changes.
    fn pollable(&self) -> Option<&Pollable> {
        None
    }
    fn stat(&self) -> FileStat;
    fn ioctl(&self, _f: &OpenFile, _req: u64, _arg: u64) -> Result<u64, Errno> {
        Err(Errno::ENOTTY)
    }
    /// A directory's entries (`.` and `..` excluded); `None`: not one.
    fn readdir(&self) -> Option<Vec<DirEntry>> {
        None
    }
    /// What `/proc/self/fd/N` links to (`pipe:[7]`, `/dev/null`, ...).
    fn name(&self) -> Vec<u8>;
    /// A `MAP_PRIVATE` mapping of it is anonymous memory (`/dev/zero`).
    fn maps_as_anonymous(&self) -> bool {
        false
    }
    fn as_any(&self) -> &dyn Any;
}

pub struct OpenFile {
    pub kind: FileKind,
    pub offset: AtomicU64,
    /// Held by a read, write or seek through the description's offset for
    /// the whole call, so concurrent calls on a shared description each
    /// see and move the offset atomically (Linux's `f_pos_lock`): a long
    /// copy runs without the kernel lock (issue 17).
    pub pos_lock: SleepMutex<()>,
    /// `O_APPEND`, `O_NONBLOCK`... (the status flags F_GETFL returns).
    pub flags: AtomicU32,
    pub readable: bool,
    pub writable: bool,
    id: u64,
}

pub const O_ACCMODE: u32 = 3;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
/// Direct I/O: regular files' reads and writes bypass the pagecache
/// (`fs::direct`).
pub const O_DIRECT: u32 = 0o40000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_PATH: u32 = 0o10000000;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Open file descriptions that exist now.
static LIVE: AtomicU64 = AtomicU64::new(0);

/// How many open file descriptions exist now (`/proc/cairn/kstats`).
pub fn live_descriptions() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// The lock class of every description's [`OpenFile::pos_lock`] (ordered
/// before `fs.truncate` and `fs`: an append asks the file's size under it).
pub static POS_CLASS: cairn_sync::LockClass = cairn_sync::LockClass::new("file.pos");

impl OpenFile {
    pub fn new(kind: FileKind, flags: u32) -> Arc<OpenFile> {
        let acc = flags & O_ACCMODE;
        if let FileKind::Regular(d) = &kind {
            d.mount.fs().hold(d.ino);
        }
        LIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(OpenFile {
            kind,
            offset: AtomicU64::new(0),
            pos_lock: SleepMutex::new(&POS_CLASS, ()),
            flags: AtomicU32::new(flags & !(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)),
            readable: acc != O_WRONLY,
            writable: acc == O_WRONLY || acc == O_RDWR,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn console(flags: u32) -> Arc<OpenFile> {
        Self::new(FileKind::Console, flags)
    }

    /// A description of object `ops`.
    pub fn object(ops: Arc<dyn FileOps>, flags: u32) -> Arc<OpenFile> {
        Self::new(FileKind::Object(ops), flags)
    }

    /// The description's identity (owner of its OFD and flock locks).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where it is in the TFS tree (`None` for the console and objects).
    pub fn loc(&self) -> Option<Loc> {
        match &self.kind {
            FileKind::Regular(d) => Some(d.loc()),
            FileKind::Directory(l) => Some(*l),
            FileKind::Console | FileKind::Object(_) => None,
        }
    }

    /// The object behind the description, if it is one.
    pub fn ops(&self) -> Option<&Arc<dyn FileOps>> {
        match &self.kind {
            FileKind::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The object as a `T` (an epoll instance, a timerfd...).
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        self.ops().and_then(|o| o.as_any().downcast_ref::<T>())
    }

    pub fn append(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & O_APPEND != 0
    }

    /// Opened (or `F_SETFL`) with `O_DIRECT`.
    pub fn direct(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & O_DIRECT != 0
    }

    pub fn nonblocking(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0
    }

    /// Current readiness for poll/select/epoll.
    pub fn poll(&self) -> u16 {
        match &self.kind {
            FileKind::Object(o) => o.poll(),
            _ => poll::ALWAYS,
        }
    }

    /// The readiness source, for files whose readiness can change.
    pub fn pollable(&self) -> Option<&Pollable> {
        self.ops().and_then(|o| o.pollable())
    }
}

impl Drop for OpenFile {
    /// Releases the description's locks and its pin on a regular file;
    /// the file is reaped if that was its last holder and it has no name
    /// left (`Mount::reap`). Kernel-lock context, in a thread.
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        crate::process::locks::release_description(self);
        if let FileKind::Regular(d) = &self.kind {
            d.mount.flush_times(d);
            d.mount.fs().release(d.ino);
            d.mount.reap(d.ino, 1);
        }
    }
}
