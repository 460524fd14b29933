//! AF_UNIX sockets within the program: `SOCK_STREAM`, `SOCK_DGRAM` and
//! `SOCK_SEQPACKET`, socketpair, names (filesystem paths and the abstract
//! namespace), listen/accept/connect with a backlog, shutdown, descriptor
//! passing (SCM_RIGHTS) and the socket options programs ask about.
//!
//! **What it owns.** A socket's state ([`UnixSocket`]): fresh, listening
//! (the backlog of connections not accepted yet: their server-side
//! sockets, made by `connect`) or connected (a weak reference to the
//! peer), its receive queue ([`cairn_unix::unixsock::Queue`]: the rules
//! for bytes, messages, end of file and `EPIPE` are there, host-tested),
//! its name, its options. The name table ([`NAMES`]): which live socket
//! holds a name. What it does not own: the ABI (`syscall::net`), waiting
//! (`sched::wait`).
//!
//! **Data path.** A send copies user bytes into a kernel buffer with no
//! lock held, then appends to the *peer's* receive queue under the peer's
//! lock; a receive takes from its own queue under its own lock into a
//! kernel buffer, then copies out. Both ends of a connection share one
//! [`Pollable`] (made by whichever end existed first: the connecting
//! socket, or socketpair), so every change on either queue wakes both
//! ends' waiters and epoll entries; a datagram sent by name notifies the
//! receiver's.
//!
//! **Names.** A filesystem name is kept in [`NAMES`] only, keyed by the
//! absolute path (made from the working directory, cleaned lexically); no
//! inode is created on the TFS volume, so `stat` of the path says
//! `ENOENT`. Otherwise it behaves as Linux's socket inode: it outlives the
//! socket (a later `bind` to it is `EADDRINUSE`, a connect
//! `ECONNREFUSED`) until `unlink` removes it (then connects get `ENOENT`;
//! existing connections go on). An abstract name goes with its socket. A
//! connect to a path nobody bound is `ENOENT`, to an abstract name nobody
//! holds `ECONNREFUSED`, to a bound socket that does not listen
//! `ECONNREFUSED`.
//!
//! **Contexts.** Kernel-lock context, in the calling thread; `Drop` (the
//! last reference: a descriptor closed, an unaccepted connection or
//! descriptors in flight released) as well.
//!
//! **Locks.** `ipc.unix.names` (SpinLock, kernel-lock only) →
//! `ipc.unix` (one socket's state, SpinLock, kernel-lock only). Two
//! sockets' locks are never held together (a send releases its own before
//! taking the peer's); neither is held across a user copy, a sleep or a
//! drop of a descriptor.

use crate::process::file::{Dst, FileOps, OpenFile, Src, poll};
use crate::sched::wait::{Pollable, WaitError, wait_event};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use cairn_unix::unixsock::{Queue, SockType, UnixAddr};
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

pub static UNIX_CLASS: LockClass = LockClass::new("ipc.unix");
pub static NAMES_CLASS: LockClass = LockClass::new("ipc.unix.names");

/// Bytes a socket's receive queue holds (Linux's default `wmem_default`,
/// which bounds what one sender may have queued).
pub const CAPACITY: usize = 212_992;
/// A socket's receive queue past the programs' buffer budget: one page.
pub const MIN_CAPACITY: usize = 4096;
/// Bytes a stream send moves per step.
const STEP: usize = 64 * 1024;
/// Most connections a backlog holds beyond `listen`'s argument.
const MAX_BACKLOG: usize = 4096;

pub const MSG_PEEK: u32 = 0x2;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_WAITALL: u32 = 0x100;

/// Descriptors in flight (SCM_RIGHTS).
pub type Rights = Arc<Vec<Arc<OpenFile>>>;

/// Sockets by name (weak: a path of a closed socket stays until
/// unlinked; an abstract name is removed when its socket goes).
static NAMES: SpinLock<BTreeMap<UnixAddr, Weak<UnixSocket>>> =
    SpinLock::new(&NAMES_CLASS, BTreeMap::new());
/// Autobind names.
static AUTOBIND: AtomicU64 = AtomicU64::new(1);

/// Options kept and reported (`SO_*`).
#[derive(Copy, Clone, Debug, Default)]
pub struct Opts {
    /// `SO_RCVTIMEO` in ns (0: none).
    pub rcvtimeo: u64,
    /// `SO_SNDTIMEO` in ns (0: none).
    pub sndtimeo: u64,
    /// `SO_LINGER` (`None`: off; the seconds otherwise). Closing never
    /// waits: queued data stays readable by the peer.
    pub linger: Option<i32>,
    pub sndbuf: u32,
    pub rcvbuf: u32,
    pub passcred: bool,
    pub reuseaddr: bool,
    pub keepalive: bool,
}

enum State {
    Fresh,
    Listening {
        backlog: VecDeque<Arc<UnixSocket>>,
        max: usize,
    },
    /// Stream/seqpacket: the other end; datagram: the default destination.
    Connected {
        peer: Weak<UnixSocket>,
    },
}

struct Inner {
    state: State,
    rx: Queue<Rights, UnixAddr>,
    /// The name as bound (getsockname).
    name: UnixAddr,
    /// Its key in [`NAMES`].
    key: Option<UnixAddr>,
    peer_name: UnixAddr,
    shut_wr: bool,
    opts: Opts,
}

pub struct UnixSocket {
    pub ty: SockType,
    me: Weak<UnixSocket>,
    ready: Arc<Pollable>,
    inner: SpinLock<Inner>,
    ino: u64,
    /// Its receive queue's capacity, charged to the programs' buffer
    /// budget (`heaps::global::charge_buffer`) until it is dropped.
    charged: usize,
}

fn waited(e: WaitError) -> Errno {
    match e {
        WaitError::Interrupted => Errno::ERESTARTSYS,
        WaitError::TimedOut => Errno::EAGAIN,
    }
}

/// The monotonic deadline of a `SO_*TIMEO` value (0: none).
pub fn deadline(timeo_ns: u64) -> Option<u64> {
    (timeo_ns != 0).then(|| crate::time::now_ns().saturating_add(timeo_ns))
}

/// The calling process's working directory (names are keyed by absolute
/// paths).
fn cwd() -> Vec<u8> {
    crate::process::current()
        .cwd
        .lock()
        .path
        .as_bytes()
        .to_vec()
}

/// The live socket holding the name `key`: `ENOENT` for a path nobody
/// bound, `ECONNREFUSED` for a closed socket's path or an abstract name
/// nobody holds.
fn lookup(key: &UnixAddr) -> Result<Arc<UnixSocket>, Errno> {
    match NAMES.lock().get(key) {
        Some(w) => w.upgrade().ok_or(Errno::ECONNREFUSED),
        None if matches!(key, UnixAddr::Path(_)) => Err(Errno::ENOENT),
        None => Err(Errno::ECONNREFUSED),
    }
}

/// A name held by a socket of another type: `EPROTOTYPE` for a path,
/// `ECONNREFUSED` for an abstract name (Linux looks abstract names up by
/// type).
fn type_mismatch(key: &UnixAddr) -> Errno {
    match key {
        UnixAddr::Path(_) => Errno::EPROTOTYPE,
        _ => Errno::ECONNREFUSED,
    }
}

/// `unlink` of a path that names a socket: the name is removed (true).
pub fn unlink_name(path: &[u8]) -> bool {
    let key = UnixAddr::Path(cairn_unix::unixsock::absolute(&cwd(), path));
    NAMES.lock().remove(&key).is_some()
}

impl UnixSocket {
    fn make(ty: SockType, ready: Arc<Pollable>, state: State) -> Arc<UnixSocket> {
        // Past the programs' buffer budget a socket receives one page.
        let capacity = if crate::heaps::global::charge_buffer(CAPACITY as u64) {
            CAPACITY
        } else {
            crate::heaps::global::charge_buffer_anyway(MIN_CAPACITY as u64);
            MIN_CAPACITY
        };
        Arc::new_cyclic(|me| UnixSocket {
            ty,
            me: me.clone(),
            ready,
            inner: SpinLock::new(
                &UNIX_CLASS,
                Inner {
                    state,
                    rx: Queue::new(ty, capacity),
                    name: UnixAddr::Unnamed,
                    key: None,
                    peer_name: UnixAddr::Unnamed,
                    shut_wr: false,
                    opts: Opts {
                        sndbuf: capacity as u32,
                        rcvbuf: capacity as u32,
                        ..Opts::default()
                    },
                },
            ),
            ino: crate::special::new_ino(),
            charged: capacity,
        })
    }

    /// A new unbound socket.
    pub fn new(ty: SockType) -> Arc<UnixSocket> {
        Self::make(ty, Arc::new(Pollable::new()), State::Fresh)
    }

    /// Two sockets connected to each other (`socketpair`).
    pub fn pair(ty: SockType) -> (Arc<UnixSocket>, Arc<UnixSocket>) {
        let ready = Arc::new(Pollable::new());
        let a = Self::make(ty, ready.clone(), State::Fresh);
        let b = Self::make(
            ty,
            ready,
            State::Connected {
                peer: Arc::downgrade(&a),
            },
        );
        a.inner.lock().state = State::Connected {
            peer: Arc::downgrade(&b),
        };
        (a, b)
    }

    /// Binds to `addr` (unnamed: an autobind abstract name).
    pub fn bind(&self, addr: UnixAddr) -> Result<(), Errno> {
        let addr = match addr {
            UnixAddr::Unnamed => UnixAddr::Abstract(
                alloc::format!("{:05x}", AUTOBIND.fetch_add(1, Ordering::Relaxed) & 0xfffff)
                    .into_bytes(),
            ),
            a => a,
        };
        let key = addr.key(&cwd()).ok_or(Errno::EINVAL)?;
        if self.inner.lock().key.is_some() {
            return Err(Errno::EINVAL);
        }
        let mut names = NAMES.lock();
        let taken = match names.get(&key) {
            Some(w) => w.strong_count() > 0 || matches!(key, UnixAddr::Path(_)),
            None => false,
        };
        if taken {
            return Err(Errno::EADDRINUSE);
        }
        let mut i = self.inner.lock();
        if i.key.is_some() {
            return Err(Errno::EINVAL);
        }
        names.insert(key.clone(), self.me.clone());
        i.key = Some(key);
        i.name = addr;
        Ok(())
    }

    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        if !self.ty.connected() {
            return Err(Errno::EOPNOTSUPP);
        }
        let max = (backlog.max(0) as usize).min(MAX_BACKLOG);
        let mut i = self.inner.lock();
        if i.key.is_none() {
            return Err(Errno::EINVAL);
        }
        match &mut i.state {
            State::Fresh => {
                i.state = State::Listening {
                    backlog: VecDeque::new(),
                    max,
                };
            }
            State::Listening { max: m, .. } => *m = max,
            State::Connected { .. } => return Err(Errno::EINVAL),
        }
        drop(i);
        self.ready.notify();
        Ok(())
    }

    /// Connects to the socket named `addr`.
    pub fn connect(&self, addr: UnixAddr, nonblock: bool) -> Result<(), Errno> {
        let key = addr.key(&cwd()).ok_or(Errno::EINVAL)?;
        let target = lookup(&key)?;
        if target.ty != self.ty {
            return Err(type_mismatch(&key));
        }
        let target_name = target.inner.lock().name.clone();
        if !self.ty.connected() {
            let mut i = self.inner.lock();
            i.state = State::Connected {
                peer: Arc::downgrade(&target),
            };
            i.peer_name = target_name;
            return Ok(());
        }
        let (my_name, sndtimeo) = {
            let i = self.inner.lock();
            match i.state {
                State::Fresh => {}
                State::Connected { .. } => return Err(Errno::EISCONN),
                State::Listening { .. } => return Err(Errno::EINVAL),
            }
            (i.name.clone(), i.opts.sndtimeo)
        };
        let server = Self::make(
            self.ty,
            self.ready.clone(),
            State::Connected {
                peer: self.me.clone(),
            },
        );
        {
            let mut s = server.inner.lock();
            s.name = target_name.clone();
            s.peer_name = my_name;
        }
        wait_event(&[&target.ready], deadline(sndtimeo), || {
            let mut t = target.inner.lock();
            let State::Listening { backlog, max } = &mut t.state else {
                return Some(Err(Errno::ECONNREFUSED));
            };
            if backlog.len() > *max {
                return nonblock.then_some(Err(Errno::EAGAIN));
            }
            backlog.push_back(server.clone());
            Some(Ok(()))
        })
        .map_err(|e| match e {
            WaitError::Interrupted => Errno::EINTR,
            WaitError::TimedOut => Errno::EAGAIN,
        })??;
        {
            let mut i = self.inner.lock();
            i.state = State::Connected {
                peer: Arc::downgrade(&server),
            };
            i.peer_name = target_name;
        }
        target.ready.notify();
        self.ready.notify();
        Ok(())
    }

    /// Takes a connection from the backlog.
    pub fn accept(&self, nonblock: bool) -> Result<Arc<UnixSocket>, Errno> {
        let rcvtimeo = self.inner.lock().opts.rcvtimeo;
        let s = wait_event(&[&self.ready], deadline(rcvtimeo), || {
            let mut i = self.inner.lock();
            let State::Listening { backlog, .. } = &mut i.state else {
                return Some(Err(Errno::EINVAL));
            };
            match backlog.pop_front() {
                Some(s) => Some(Ok(s)),
                None => nonblock.then_some(Err(Errno::EAGAIN)),
            }
        })
        .map_err(waited)??;
        self.ready.notify();
        Ok(s)
    }

    /// The socket data goes to: the connected peer, or for a datagram
    /// socket the one named `to`.
    fn destination(&self, to: Option<UnixAddr>) -> Result<Arc<UnixSocket>, Errno> {
        let i = self.inner.lock();
        if self.ty.connected() {
            if i.shut_wr {
                return Err(Errno::EPIPE);
            }
            return match &i.state {
                State::Connected { .. } if to.is_some() => Err(Errno::EISCONN),
                State::Connected { peer } => peer.upgrade().ok_or(Errno::EPIPE),
                _ if to.is_some() => Err(Errno::EOPNOTSUPP),
                _ => Err(Errno::ENOTCONN),
            };
        }
        if i.shut_wr {
            return Err(Errno::EPIPE);
        }
        let peer = match &i.state {
            State::Connected { peer } => Some(peer.clone()),
            _ => None,
        };
        drop(i);
        match to {
            Some(a) => {
                let key = a.key(&cwd()).ok_or(Errno::EINVAL)?;
                let t = lookup(&key)?;
                if t.ty != self.ty {
                    return Err(type_mismatch(&key));
                }
                Ok(t)
            }
            None => peer
                .ok_or(Errno::ENOTCONN)?
                .upgrade()
                .ok_or(Errno::ECONNREFUSED),
        }
    }

    /// Sends `len` bytes of `src` (with `rights`), to `to` for a datagram
    /// socket. The caller raises `SIGPIPE` for `EPIPE` unless
    /// `MSG_NOSIGNAL`.
    pub fn send(
        &self,
        src: &Src<'_>,
        len: usize,
        flags: u32,
        to: Option<UnixAddr>,
        rights: Option<Rights>,
        nonblock: bool,
    ) -> Result<usize, Errno> {
        let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
        let dest = self.destination(to)?;
        let (from, timeo) = {
            let i = self.inner.lock();
            let from = match &i.name {
                UnixAddr::Unnamed => None,
                n => Some(n.clone()),
            };
            (from, deadline(i.opts.sndtimeo))
        };
        let sources: [&Pollable; 2] = [&self.ready, &dest.ready];
        let sources = if Arc::ptr_eq(&self.ready, &dest.ready) {
            &sources[..1]
        } else {
            &sources[..]
        };
        if self.ty != SockType::Stream {
            if len > CAPACITY {
                return Err(Errno::EMSGSIZE);
            }
            let mut buf = vec![0u8; len];
            src.get(0, &mut buf)?;
            let n = wait_event(sources, timeo, || {
                let r = dest
                    .inner
                    .lock()
                    .rx
                    .push(&buf, rights.clone(), from.clone());
                match r {
                    Err(Errno::EAGAIN) if !nonblock => None,
                    Err(Errno::EPIPE) if !self.ty.connected() => Some(Err(Errno::ECONNREFUSED)),
                    r => Some(r),
                }
            })
            .map_err(waited)??;
            dest.ready.notify();
            return Ok(n);
        }
        let mut done = 0;
        let mut rights = rights;
        let mut buf = vec![0u8; len.min(STEP)];
        while done < len {
            let n = (len - done).min(STEP);
            if let Err(e) = src.get(done, &mut buf[..n]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            let mut at = 0;
            while at < n {
                let r = wait_event(sources, timeo, || {
                    let r = dest.inner.lock().rx.push(&buf[at..n], rights.clone(), None);
                    match r {
                        Err(Errno::EAGAIN) if !nonblock => None,
                        r => Some(r),
                    }
                })
                .map_err(waited)
                .and_then(|r| r);
                match r {
                    Ok(k) => {
                        rights = None;
                        at += k;
                        dest.ready.notify();
                    }
                    Err(e) => {
                        let sent = done + at;
                        return if sent > 0 { Ok(sent) } else { Err(e) };
                    }
                }
            }
            done += n;
        }
        Ok(done)
    }

    /// Receives into `dst` (up to `len`): (bytes copied, the message's
    /// whole length, descriptors, sender).
    pub fn recv(
        &self,
        dst: &mut Dst<'_>,
        len: usize,
        flags: u32,
        nonblock: bool,
    ) -> Result<(usize, usize, Option<Rights>, Option<UnixAddr>), Errno> {
        let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
        let peek = flags & MSG_PEEK != 0;
        let timeo = {
            let i = self.inner.lock();
            match i.state {
                State::Listening { .. } => return Err(Errno::EINVAL),
                State::Fresh if self.ty.connected() && !i.rx.eof() => {
                    return Err(Errno::EINVAL);
                }
                _ => {}
            }
            deadline(i.opts.rcvtimeo)
        };
        let waitall = flags & MSG_WAITALL != 0 && !peek && self.ty == SockType::Stream;
        let mut buf = vec![0u8; len.min(CAPACITY)];
        let mut done = 0;
        loop {
            let want = buf.len() - done;
            let r = wait_event(&[&self.ready], timeo, || {
                let r = self.inner.lock().rx.pop(&mut buf[..want], peek);
                match r {
                    Some(r) => Some(Ok(r)),
                    None if nonblock || done > 0 && !waitall => Some(Err(Errno::EAGAIN)),
                    None => None,
                }
            })
            .map_err(waited)
            .and_then(|r| r);
            let r = match r {
                Ok(r) => r,
                Err(e) if done > 0 => {
                    let _ = e;
                    return Ok((done, done, None, None));
                }
                Err(e) => return Err(e),
            };
            if !peek {
                self.ready.notify();
            }
            if let Err(e) = dst.put(done, &buf[..r.n]) {
                return if done > 0 {
                    Ok((done, done, None, None))
                } else {
                    Err(e)
                };
            }
            let eof = r.n == 0;
            done += r.n;
            if !waitall || eof || r.rights.is_some() || done >= buf.len() {
                let full = if self.ty == SockType::Stream {
                    done
                } else {
                    r.full
                };
                return Ok((done, full, r.rights, r.from));
            }
        }
    }

    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let (rd, wr) = match how {
            0 => (true, false),
            1 => (false, true),
            2 => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let peer = {
            let mut i = self.inner.lock();
            let peer = match &i.state {
                State::Connected { peer } => peer.upgrade(),
                State::Listening { .. } => None,
                State::Fresh if self.ty.connected() => return Err(Errno::ENOTCONN),
                State::Fresh => None,
            };
            if rd {
                i.rx.shut_read();
            }
            if wr {
                i.shut_wr = true;
            }
            peer
        };
        if let Some(p) = peer {
            if wr && self.ty.connected() {
                p.inner.lock().rx.set_eof();
            }
            p.ready.notify();
        }
        self.ready.notify();
        Ok(())
    }

    /// `getsockname`.
    pub fn name(&self) -> UnixAddr {
        self.inner.lock().name.clone()
    }

    /// `getpeername`.
    pub fn peer_name(&self) -> Result<UnixAddr, Errno> {
        let i = self.inner.lock();
        match &i.state {
            State::Connected { .. } => Ok(i.peer_name.clone()),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Connected (`SO_PEERCRED` has a peer).
    pub fn connected(&self) -> bool {
        matches!(self.inner.lock().state, State::Connected { .. })
    }

    pub fn listening(&self) -> bool {
        matches!(self.inner.lock().state, State::Listening { .. })
    }

    pub fn opts(&self) -> Opts {
        self.inner.lock().opts
    }

    pub fn set_opts(&self, o: Opts) {
        self.inner.lock().opts = o;
    }

    /// `FIONREAD`.
    pub fn available(&self) -> usize {
        self.inner.lock().rx.readable_bytes()
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        crate::heaps::global::release_buffer(self.charged as u64);
        let i = self.inner.get_mut();
        let state = core::mem::replace(&mut i.state, State::Fresh);
        let rights = i.rx.close_reader();
        if let Some(key @ UnixAddr::Abstract(_)) = i.key.take() {
            let mut names = NAMES.lock();
            if names.get(&key).is_some_and(|w| w.strong_count() == 0) {
                names.remove(&key);
            }
        }
        if let State::Connected { peer } = &state
            && self.ty.connected()
            && let Some(p) = peer.upgrade()
        {
            p.inner.lock().rx.set_eof();
            p.ready.notify();
            drop(p);
        }
        self.ready.notify();
        // Unaccepted connections and descriptors in flight go last, with
        // no lock held (their own drops take locks).
        drop(state);
        drop(rights);
    }
}

impl FileOps for UnixSocket {
    fn read(&self, f: &OpenFile, _off: u64, mut dst: Dst<'_>, len: usize) -> Result<usize, Errno> {
        if len == 0 {
            return Ok(0);
        }
        self.recv(&mut dst, len, 0, f.nonblocking()).map(|r| r.0)
    }

    fn write(&self, f: &OpenFile, _off: u64, src: Src<'_>, len: usize) -> Result<usize, Errno> {
        let r = self.send(&src, len, 0, None, None, f.nonblocking());
        if r == Err(Errno::EPIPE) {
            crate::net::socket::raise_sigpipe();
        }
        r
    }

    fn poll(&self) -> u16 {
        let rd = poll::POLLIN | poll::POLLRDNORM;
        let wr = poll::POLLOUT | poll::POLLWRNORM;
        const POLLRDHUP: u16 = 0x2000;
        let (mut r, peer) = {
            let i = self.inner.lock();
            let mut r = 0;
            if i.rx.readable() {
                r |= rd;
            }
            let peer = match &i.state {
                State::Listening { backlog, .. } => {
                    return if backlog.is_empty() { 0 } else { rd };
                }
                State::Fresh if self.ty.connected() => return wr | poll::POLLHUP | r,
                State::Fresh => return wr | r,
                State::Connected { peer } => peer.clone(),
            };
            if self.ty.connected() && i.rx.eof() {
                r |= POLLRDHUP;
                if i.shut_wr {
                    r |= poll::POLLHUP;
                }
            }
            (r, peer)
        };
        match peer.upgrade() {
            Some(p) => {
                if p.inner.lock().rx.writable() {
                    r |= wr;
                }
            }
            None if self.ty.connected() => r |= wr | rd | POLLRDHUP | poll::POLLHUP,
            None => r |= wr,
        }
        r
    }

    fn pollable(&self) -> Option<&Pollable> {
        Some(&self.ready)
    }

    fn stat(&self) -> FileStat {
        crate::special::stat_of(self.ino, 0o140777, 0, 0)
    }

    fn ioctl(&self, _f: &OpenFile, req: u64, arg: u64) -> Result<u64, Errno> {
        const FIONREAD: u64 = 0x541b;
        const TIOCOUTQ: u64 = 0x5411;
        let n = match req {
            FIONREAD => self.available() as i32,
            TIOCOUTQ => 0,
            _ => return Err(Errno::ENOTTY),
        };
        crate::syscall::copy_out(arg, &n.to_le_bytes())?;
        Ok(0)
    }

    fn name(&self) -> Vec<u8> {
        alloc::format!("socket:[{}]", self.ino).into_bytes()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
