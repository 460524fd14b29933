//! AF_INET sockets as files: TCP streams (listening, connecting,
//! connected) and UDP datagrams over smoltcp sockets in [`super::STACK`].
//!
//! **What it owns.** A socket file's own state ([`Socket`]): its mode, the
//! endpoint it is bound to, its options, a pending error (`SO_ERROR`), its
//! shutdown flags and its readiness source ([`super::Shared`]). A
//! listener keeps a backlog of smoltcp sockets in `Listen` (smoltcp has no
//! accept queue: a listening socket becomes the connection), replacing
//! each one `accept` takes. What it does not own: the smoltcp sockets
//! themselves (the stack's set) and the ABI (`syscall::net`).
//!
//! **Errors as Linux's.** A reset on a connection (its smoltcp socket
//! `Closed` before this side closed) reads as `ECONNRESET` once, then end
//! of file; a connect that ends `Closed` is `ECONNREFUSED` (`ETIMEDOUT`
//! after [`CONNECT_TIMEOUT_NS`]); writing after the peer or this side
//! shut the stream down is `EPIPE` (with `SIGPIPE` unless `MSG_NOSIGNAL`,
//! raised by the caller). An AF_INET socket never sees IPv6 traffic
//! (smoltcp's wildcard endpoints take both families): such datagrams are
//! dropped and such connections reset before a program can see them.
//!
//! **Contexts.** Kernel-lock context, in the calling thread (waits sleep
//! through `sched::wait::wait_event` on the socket's readiness source).
//! `Drop` (the last descriptor closed): kernel-lock.
//!
//! **Locks.** `net.socket` (SpinLock, kernel-lock only) → `net.stack`.
//! Neither is held across a user copy or a sleep: data is copied through
//! a kernel buffer outside both.

use super::{Shared, Stack, with};
use crate::process::file::{Dst, FileOps, OpenFile, Src, poll};
use crate::sched::wait::{WaitError, wait_event};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use cairn_sync::{LockClass, SpinLock};
use cairn_unix::abi::FileStat;
use cairn_unix::errno::Errno;
use core::any::Any;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

pub static SOCKET_CLASS: LockClass = LockClass::new("net.socket");

/// A connect that has not finished by then fails with `ETIMEDOUT`.
pub const CONNECT_TIMEOUT_NS: u64 = 75_000_000_000;
/// Buffers of a TCP socket each way (bytes); `SO_RCVBUF`/`SO_SNDBUF`
/// are reported, not applied (docs/SYSCALLS.md).
const TCP_BUF: usize = 64 * 1024;
/// Payload bytes a UDP socket queues each way.
const UDP_BUF: usize = 64 * 1024;
/// Largest UDP payload over IPv4 in one 1500-byte frame.
const MAX_UDP_V4: usize = 1500 - 20 - 8;
/// Bytes copied per step between user memory and the stack.
const STEP: usize = 64 * 1024;
/// A half-open connection in a listener's backlog is dropped after this.
const SYN_TIMEOUT: Duration = Duration::from_secs(10);
/// Most backlog entries a listener keeps.
const MAX_BACKLOG: usize = 16;

pub const MSG_PEEK: u32 = 0x2;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_NOSIGNAL: u32 = 0x4000;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Dgram,
}

/// Options a program sets; reported back by `getsockopt`.
#[derive(Copy, Clone, Debug)]
pub struct Opts {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub nodelay: bool,
    pub keepalive: bool,
    pub rcvbuf: u32,
    pub sndbuf: u32,
    /// `IPV6_V6ONLY` (reported; IPv4 peers are not refused).
    pub v6only: bool,
    /// `SO_RCVTIMEO` in ns (0: none): a blocking receive or accept
    /// gives up with `EAGAIN`.
    pub rcvtimeo: u64,
    /// `SO_SNDTIMEO` in ns (0: none): a blocking send gives up with
    /// `EAGAIN` (what was sent counts), a connect with `EINPROGRESS`.
    pub sndtimeo: u64,
    /// `SO_LINGER` (`None`: off): linger 0 resets the connection on
    /// close; other values close as usual (no waiting in close).
    pub linger: Option<i32>,
}

enum Mode {
    /// Not listening or connected (maybe bound).
    Fresh,
    Listening {
        ep: IpListenEndpoint,
        backlog: Vec<SocketHandle>,
    },
    /// A TCP connection (connecting, connected or closing).
    Conn {
        h: SocketHandle,
        /// Still in the handshake this side started (`connect`).
        connecting: bool,
        /// When that connect started (monotonic ns).
        started: u64,
        /// A reset was reported already: reads are end of file.
        reset_seen: bool,
    },
    /// A UDP socket bound in the stack.
    Udp(SocketHandle),
    /// Gone (the stack's socket was removed).
    Dead,
}

struct Inner {
    mode: Mode,
    /// The endpoint `bind` asked for.
    bound: Option<IpListenEndpoint>,
    /// UDP: the `connect`ed default peer.
    peer: Option<IpEndpoint>,
    opts: Opts,
    /// `SO_ERROR`.
    error: Option<Errno>,
    shut_rd: bool,
    shut_wr: bool,
}

pub struct Socket {
    pub kind: Kind,
    /// Made as AF_INET6: addresses are `sockaddr_in6`, IPv4 ones mapped
    /// (`::ffff:a.b.c.d`).
    pub v6: bool,
    shared: Arc<Shared>,
    inner: SpinLock<Inner>,
    ino: u64,
}

/// Whether an AF_INET socket (`v6` false) must not see traffic from
/// `addr`: smoltcp's wildcard endpoints take both families, Linux keeps
/// them apart (an IPv6 sender never reaches an AF_INET socket).
fn foreign(v6: bool, addr: IpAddress) -> bool {
    !v6 && matches!(addr, IpAddress::Ipv6(_))
}

/// Drops the datagrams at the head of `u`'s queue that the socket must
/// not see ([`foreign`]).
fn drop_foreign_datagrams(u: &mut udp::Socket, v6: bool) {
    while u.peek().is_ok_and(|(_, m)| foreign(v6, m.endpoint.addr)) {
        let _ = u.recv();
    }
}

/// Resets the connections in a listener's backlog that the socket must
/// not accept ([`foreign`]); the stack's poll listens on their entries
/// again.
fn reset_foreign_connections(s: &mut Stack, backlog: &[SocketHandle], v6: bool) {
    for &h in backlog {
        let t = s.sockets.get_mut::<tcp::Socket>(h);
        if t.remote_endpoint().is_some_and(|e| foreign(v6, e.addr))
            && t.state() != tcp::State::Closed
        {
            t.abort();
        }
    }
}

fn interrupted(e: WaitError) -> Errno {
    match e {
        WaitError::Interrupted => Errno::ERESTARTSYS,
        WaitError::TimedOut => Errno::EAGAIN,
    }
}

fn listen_ep(ep: IpListenEndpoint) -> IpListenEndpoint {
    match ep.addr {
        Some(a) if a.is_unspecified() => IpListenEndpoint {
            addr: None,
            port: ep.port,
        },
        _ => ep,
    }
}

impl Socket {
    pub fn new(kind: Kind, v6: bool) -> Arc<Socket> {
        Self::with_mode(kind, v6, Mode::Fresh, default_opts(), Shared::new())
    }

    fn with_mode(kind: Kind, v6: bool, mode: Mode, opts: Opts, shared: Arc<Shared>) -> Arc<Socket> {
        Arc::new(Socket {
            kind,
            v6,
            shared,
            inner: SpinLock::new(
                &SOCKET_CLASS,
                Inner {
                    mode,
                    bound: None,
                    peer: None,
                    opts,
                    error: None,
                    shut_rd: false,
                    shut_wr: false,
                },
            ),
            ino: crate::special::new_ino(),
        })
    }

    /// Binds to `addr` (`None`: any address) and `port` (0: an ephemeral one).
    pub fn bind(&self, addr: Option<IpAddress>, port: u16) -> Result<(), Errno> {
        let mut i = self.inner.lock();
        if i.bound.is_some() || !matches!(i.mode, Mode::Fresh) {
            return Err(Errno::EINVAL);
        }
        let kind = self.kind;
        let ep = with(|s| {
            if let Some(a) = addr
                && !s.iface.has_ip_addr(a)
                && !match a {
                    IpAddress::Ipv4(v) => v.is_loopback(),
                    IpAddress::Ipv6(v) => v.is_loopback(),
                }
            {
                return Err(Errno::EADDRNOTAVAIL);
            }
            let port = if port == 0 {
                super::ephemeral(s, kind == Kind::Stream).ok_or(Errno::EADDRINUSE)?
            } else {
                port
            };
            let used = match kind {
                Kind::Stream => port_listened(s, port),
                Kind::Dgram => s.udp_port_used(port),
            };
            if used {
                return Err(Errno::EADDRINUSE);
            }
            Ok(IpListenEndpoint { addr, port })
        })
        .ok_or(Errno::EADDRNOTAVAIL)??;
        i.bound = Some(ep);
        if kind == Kind::Dgram {
            let shared = self.shared.clone();
            let h = with(|s| {
                let h = s.new_udp(UDP_BUF).ok_or(Errno::ENOBUFS)?;
                let _ = s.sockets.get_mut::<udp::Socket>(h).bind(ep);
                s.watch(h, &shared, None);
                Ok(h)
            })
            .ok_or(Errno::EADDRNOTAVAIL)??;
            i.mode = Mode::Udp(h);
        }
        Ok(())
    }

    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        if self.kind != Kind::Stream {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut i = self.inner.lock();
        let n = (backlog.max(2) as usize).min(MAX_BACKLOG);
        if let Mode::Listening { ep, backlog } = &mut i.mode {
            let ep = *ep;
            let shared = self.shared.clone();
            with(|s| {
                while backlog.len() < n
                    && let Some(h) = new_listener(s, ep, &shared)
                {
                    backlog.push(h);
                }
            });
            return Ok(());
        }
        if !matches!(i.mode, Mode::Fresh) {
            return Err(Errno::EINVAL);
        }
        if i.bound.is_none() {
            drop(i);
            self.bind(None, 0)?;
            i = self.inner.lock();
        }
        let ep = listen_ep(i.bound.expect("bound"));
        let shared = self.shared.clone();
        // As many entries as the programs' buffer budget allows, at least
        // one (else ENOBUFS, as Linux when a socket's memory is short).
        let backlog: Vec<SocketHandle> =
            with(|s| (0..n).map_while(|_| new_listener(s, ep, &shared)).collect())
                .ok_or(Errno::ENETDOWN)?;
        if backlog.is_empty() {
            return Err(Errno::ENOBUFS);
        }
        i.mode = Mode::Listening { ep, backlog };
        Ok(())
    }

    /// Takes an established connection: the new socket and its peer.
    pub fn accept(&self, nonblock: bool) -> Result<(Arc<Socket>, IpEndpoint), Errno> {
        let opts = {
            let i = self.inner.lock();
            if !matches!(i.mode, Mode::Listening { .. }) {
                return Err(Errno::EINVAL);
            }
            i.opts
        };
        let r = wait_event(
            &[&self.shared.ready],
            crate::ipc::unix::deadline(opts.rcvtimeo),
            || {
                let mut i = self.inner.lock();
                let Mode::Listening { ep, backlog } = &mut i.mode else {
                    return Some(Err(Errno::EINVAL));
                };
                let ep = *ep;
                let got = with(|s| {
                    if backlog.is_empty()
                        && let Some(h) = new_listener(s, ep, &self.shared)
                    {
                        backlog.push(h);
                    }
                    reset_foreign_connections(s, backlog, self.v6);
                    let at = backlog.iter().position(|&h| {
                        let t = s.sockets.get::<tcp::Socket>(h);
                        !matches!(
                            t.state(),
                            tcp::State::Listen | tcp::State::SynReceived | tcp::State::Closed
                        )
                    })?;
                    let h = backlog[at];
                    let t = s.sockets.get_mut::<tcp::Socket>(h);
                    let peer = t.remote_endpoint()?;
                    backlog.remove(at);
                    let shared = Shared::new();
                    t.set_timeout(None);
                    apply_opts(t, &opts);
                    s.watch(h, &shared, None);
                    let listener_shared = self.shared.clone();
                    // (Past the buffer budget the backlog shrinks by one;
                    // an empty one is refilled by the next accept.)
                    if let Some(h) = new_listener(s, ep, &listener_shared) {
                        backlog.push(h);
                    }
                    Some((h, shared, peer))
                })
                .flatten();
                match got {
                    Some((h, shared, peer)) => Some(Ok((h, shared, peer))),
                    None if nonblock => Some(Err(Errno::EAGAIN)),
                    None => None,
                }
            },
        )
        .map_err(interrupted)??;
        let (h, shared, peer) = r;
        let s = Self::with_mode(
            Kind::Stream,
            self.v6,
            Mode::Conn {
                h,
                connecting: false,
                started: 0,
                reset_seen: false,
            },
            opts,
            shared,
        );
        super::poll();
        Ok((s, peer))
    }

    pub fn connect(&self, addr: IpAddress, port: u16, nonblock: bool) -> Result<(), Errno> {
        if self.kind == Kind::Dgram {
            let mut i = self.inner.lock();
            if addr.is_unspecified() && port == 0 {
                i.peer = None;
                return Ok(());
            }
            drop(i);
            self.ensure_udp()?;
            self.inner.lock().peer = Some(IpEndpoint::new(addr, port));
            return Ok(());
        }
        {
            let mut i = self.inner.lock();
            match &i.mode {
                Mode::Conn {
                    connecting: true, ..
                } => return Err(Errno::EALREADY),
                Mode::Conn { .. } => return Err(Errno::EISCONN),
                Mode::Listening { .. } | Mode::Udp(_) | Mode::Dead => {
                    return Err(Errno::EINVAL);
                }
                Mode::Fresh => {}
            }
            if port == 0 {
                return Err(Errno::ECONNREFUSED);
            }
            let bound = i.bound;
            let opts = i.opts;
            let shared = self.shared.clone();
            let h = with(|s| {
                let local_port = match bound {
                    Some(b) => b.port,
                    None => super::ephemeral(s, true).ok_or(Errno::EADDRNOTAVAIL)?,
                };
                let routable = match addr {
                    IpAddress::Ipv4(_) => s.ipv4().is_some(),
                    IpAddress::Ipv6(_) => s.iface.ipv6_addr().is_some(),
                };
                if !routable {
                    return Err(Errno::ENETUNREACH);
                }
                let h = s.new_tcp(TCP_BUF, TCP_BUF).ok_or(Errno::ENOBUFS)?;
                let Stack { iface, sockets, .. } = s;
                let t = sockets.get_mut::<tcp::Socket>(h);
                apply_opts(t, &opts);
                let remote = IpEndpoint::new(addr, port);
                let local = IpListenEndpoint {
                    addr: bound.and_then(|b| b.addr),
                    port: local_port,
                };
                if t.connect(iface.context(), remote, local).is_err() {
                    s.remove(h);
                    return Err(Errno::EINVAL);
                }
                s.watch(h, &shared, None);
                Ok(h)
            })
            .ok_or(Errno::ENETUNREACH)??;
            i.mode = Mode::Conn {
                h,
                connecting: true,
                started: crate::time::now_ns(),
                reset_seen: false,
            };
        }
        super::poll();
        if nonblock {
            return Err(Errno::EINPROGRESS);
        }
        wait_event(
            &[&self.shared.ready],
            crate::ipc::unix::deadline(self.opts().sndtimeo),
            || self.connect_result(),
        )
        .map_err(|e| match e {
            WaitError::Interrupted => Errno::EINTR,
            // SO_SNDTIMEO: the handshake goes on (Linux).
            WaitError::TimedOut => Errno::EINPROGRESS,
        })?
    }

    /// Where a connect this side started stands: `None` while in the
    /// handshake.
    fn connect_result(&self) -> Option<Result<(), Errno>> {
        let mut i = self.inner.lock();
        let Mode::Conn {
            h,
            connecting,
            started,
            ..
        } = &mut i.mode
        else {
            return Some(Err(Errno::EINVAL));
        };
        if !*connecting {
            return Some(Ok(()));
        }
        let (h, started) = (*h, *started);
        let st = with(|s| s.sockets.get::<tcp::Socket>(h).state()).unwrap_or(tcp::State::Closed);
        match st {
            tcp::State::SynSent | tcp::State::SynReceived => {
                if crate::time::now_ns().saturating_sub(started) > CONNECT_TIMEOUT_NS {
                    with(|s| s.sockets.get_mut::<tcp::Socket>(h).abort());
                    *connecting = false;
                    return Some(Err(Errno::ETIMEDOUT));
                }
                None
            }
            tcp::State::Closed => {
                *connecting = false;
                let e = if crate::time::now_ns().saturating_sub(started) > CONNECT_TIMEOUT_NS {
                    Errno::ETIMEDOUT
                } else {
                    Errno::ECONNREFUSED
                };
                if let Mode::Conn { reset_seen, .. } = &mut i.mode {
                    *reset_seen = true;
                }
                Some(Err(e))
            }
            _ => {
                *connecting = false;
                Some(Ok(()))
            }
        }
    }

    /// A UDP socket's smoltcp socket, bound to an ephemeral port first if
    /// needed.
    fn ensure_udp(&self) -> Result<SocketHandle, Errno> {
        if let Mode::Udp(h) = self.inner.lock().mode {
            return Ok(h);
        }
        self.bind(None, 0)?;
        match self.inner.lock().mode {
            Mode::Udp(h) => Ok(h),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Sends `len` bytes from `src` (to `to` for UDP). The caller raises
    /// `SIGPIPE` for `EPIPE` unless `MSG_NOSIGNAL`.
    pub fn send(
        &self,
        src: &Src<'_>,
        len: usize,
        flags: u32,
        to: Option<IpEndpoint>,
        nonblock: bool,
    ) -> Result<usize, Errno> {
        let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
        match self.kind {
            Kind::Dgram => self.send_udp(src, len, to, nonblock),
            Kind::Stream => self.send_tcp(src, len, nonblock),
        }
    }

    fn send_udp(
        &self,
        src: &Src<'_>,
        len: usize,
        to: Option<IpEndpoint>,
        nonblock: bool,
    ) -> Result<usize, Errno> {
        let to = match to.or(self.inner.lock().peer) {
            Some(t) => t,
            None => return Err(Errno::EDESTADDRREQ),
        };
        // One frame: no IP fragmentation (docs/SYSCALLS.md).
        let most = match to.addr {
            IpAddress::Ipv4(_) => MAX_UDP_V4,
            IpAddress::Ipv6(_) => MAX_UDP_V4 - 20,
        };
        if len > most {
            return Err(Errno::EMSGSIZE);
        }
        let h = self.ensure_udp()?;
        let mut buf = vec![0u8; len];
        src.get(0, &mut buf)?;
        wait_event(
            &[&self.shared.ready],
            crate::ipc::unix::deadline(self.opts().sndtimeo),
            || {
                let r = with(|s| {
                    let u = s.sockets.get_mut::<udp::Socket>(h);
                    match u.send_slice(&buf, to) {
                        Ok(()) => Some(Ok(len)),
                        Err(udp::SendError::BufferFull) => None,
                        Err(udp::SendError::Unaddressable) => Some(Err(Errno::ENETUNREACH)),
                    }
                })
                .unwrap_or(Some(Err(Errno::ENETDOWN)));
                match r {
                    None if nonblock => Some(Err(Errno::EAGAIN)),
                    r => r,
                }
            },
        )
        .map_err(interrupted)?
        .inspect(|_| super::poll())
    }

    fn conn(&self) -> Result<SocketHandle, Errno> {
        match self.inner.lock().mode {
            Mode::Conn { h, .. } => Ok(h),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn send_tcp(&self, src: &Src<'_>, len: usize, nonblock: bool) -> Result<usize, Errno> {
        let h = self.conn()?;
        if self.inner.lock().shut_wr {
            return Err(Errno::EPIPE);
        }
        let timeo = crate::ipc::unix::deadline(self.opts().sndtimeo);
        let mut done = 0;
        let mut buf = vec![0u8; len.min(STEP)];
        while done < len {
            let n = (len - done).min(STEP);
            if let Err(e) = src.get(done, &mut buf[..n]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            let mut at = 0;
            while at < n {
                let r = wait_event(&[&self.shared.ready], timeo, || {
                    let r = with(|s| {
                        let t = s.sockets.get_mut::<tcp::Socket>(h);
                        if !t.may_send() {
                            return Some(Err(match t.state() {
                                tcp::State::SynSent | tcp::State::SynReceived => Errno::ENOTCONN,
                                tcp::State::Closed if !t.is_open() => Errno::EPIPE,
                                _ => Errno::EPIPE,
                            }));
                        }
                        if t.can_send() {
                            return Some(t.send_slice(&buf[at..n]).map_err(|_| Errno::EPIPE));
                        }
                        None
                    })
                    .unwrap_or(Some(Err(Errno::ENETDOWN)));
                    // Still connecting: wait, as Linux (EAGAIN when
                    // non-blocking).
                    match r {
                        None | Some(Err(Errno::ENOTCONN)) if nonblock => Some(Err(Errno::EAGAIN)),
                        Some(Err(Errno::ENOTCONN)) => None,
                        r => r,
                    }
                })
                .map_err(interrupted);
                match r {
                    Ok(Ok(k)) => {
                        at += k;
                        super::poll();
                    }
                    Ok(Err(e)) | Err(e) => {
                        let sent = done + at;
                        if sent > 0 {
                            return Ok(sent);
                        }
                        if e == Errno::EPIPE && self.take_reset() {
                            return Err(Errno::ECONNRESET);
                        }
                        return Err(e);
                    }
                }
            }
            done += n;
        }
        Ok(done)
    }

    /// Whether the connection was reset by the peer (reported once).
    fn take_reset(&self) -> bool {
        let mut i = self.inner.lock();
        let shut_wr = i.shut_wr;
        let Mode::Conn { h, reset_seen, .. } = &mut i.mode else {
            return false;
        };
        if *reset_seen || shut_wr {
            return false;
        }
        let h = *h;
        let closed = with(|s| s.sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed)
            .unwrap_or(false);
        if closed {
            *reset_seen = true;
        }
        closed
    }

    /// Receives up to `len` bytes into `dst`; the sender for UDP.
    pub fn recv(
        &self,
        dst: &mut Dst<'_>,
        len: usize,
        flags: u32,
        nonblock: bool,
    ) -> Result<(usize, Option<IpEndpoint>), Errno> {
        let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
        let peek = flags & MSG_PEEK != 0;
        match self.kind {
            Kind::Dgram => {
                // An unbound socket has nothing to read (Linux does not
                // bind it for a receive); a blocking one is bound so that
                // it can ever receive.
                if nonblock && !matches!(self.inner.lock().mode, Mode::Udp(_)) {
                    return Err(Errno::EAGAIN);
                }
                let h = self.ensure_udp()?;
                let mut buf = vec![0u8; len.min(UDP_BUF)];
                let (n, from) = wait_event(
                    &[&self.shared.ready],
                    crate::ipc::unix::deadline(self.opts().rcvtimeo),
                    || {
                        let r = with(|s| {
                            let u = s.sockets.get_mut::<udp::Socket>(h);
                            drop_foreign_datagrams(u, self.v6);
                            let r = if peek {
                                u.peek_slice(&mut buf).map(|(n, m)| (n, m.endpoint))
                            } else {
                                u.recv_slice(&mut buf).map(|(n, m)| (n, m.endpoint))
                            };
                            match r {
                                Ok(x) => Some(Ok(x)),
                                // A datagram longer than the buffer: Linux
                                // truncates it; smoltcp keeps it, so take it
                                // whole and cut.
                                Err(udp::RecvError::Truncated) => {
                                    let (d, m) = u.recv().ok()?;
                                    let k = d.len().min(buf.len());
                                    buf[..k].copy_from_slice(&d[..k]);
                                    Some(Ok((k, m.endpoint)))
                                }
                                Err(_) => None,
                            }
                        })
                        .unwrap_or(Some(Err(Errno::ENETDOWN)));
                        match r {
                            None if nonblock => Some(Err(Errno::EAGAIN)),
                            r => r,
                        }
                    },
                )
                .map_err(interrupted)??;
                dst.put(0, &buf[..n])?;
                Ok((n, Some(from)))
            }
            Kind::Stream => {
                let h = self.conn()?;
                if self.inner.lock().shut_rd {
                    return Ok((0, None));
                }
                let want = if flags & MSG_WAITALL != 0 && !peek {
                    len
                } else {
                    1
                };
                let timeo = crate::ipc::unix::deadline(self.opts().rcvtimeo);
                let mut done = 0;
                let mut buf = vec![0u8; len.clamp(1, STEP)];
                while done < len {
                    let n = (len - done).min(STEP);
                    let r = wait_event(&[&self.shared.ready], timeo, || {
                        let r = with(|s| {
                            let t = s.sockets.get_mut::<tcp::Socket>(h);
                            if t.can_recv() {
                                let r = if peek {
                                    t.peek_slice(&mut buf[..n])
                                } else {
                                    t.recv_slice(&mut buf[..n])
                                };
                                return Some(r.map_err(|_| Errno::ECONNRESET));
                            }
                            if !t.may_recv() {
                                return match t.state() {
                                    tcp::State::SynSent | tcp::State::SynReceived => None,
                                    _ => Some(Ok(0)),
                                };
                            }
                            None
                        })
                        .unwrap_or(Some(Err(Errno::ENETDOWN)));
                        match r {
                            None if nonblock || done >= want => Some(Err(Errno::EAGAIN)),
                            r => r,
                        }
                    })
                    .map_err(interrupted);
                    match r {
                        Ok(Ok(0)) => {
                            if done == 0 && self.take_reset() {
                                return Err(Errno::ECONNRESET);
                            }
                            break;
                        }
                        Ok(Ok(k)) => {
                            if !peek {
                                super::poll();
                            }
                            if let Err(e) = dst.put(done, &buf[..k]) {
                                return if done > 0 { Ok((done, None)) } else { Err(e) };
                            }
                            done += k;
                            if done >= want || peek {
                                break;
                            }
                        }
                        Ok(Err(e)) | Err(e) => {
                            return if done > 0 { Ok((done, None)) } else { Err(e) };
                        }
                    }
                }
                Ok((done, None))
            }
        }
    }

    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let mut i = self.inner.lock();
        let (rd, wr) = match how {
            0 => (true, false),
            1 => (false, true),
            2 => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let h = match i.mode {
            Mode::Conn { h, .. } => h,
            Mode::Listening { .. } => return Ok(()),
            _ => return Err(Errno::ENOTCONN),
        };
        i.shut_rd |= rd;
        if wr && !i.shut_wr {
            i.shut_wr = true;
            with(|s| s.sockets.get_mut::<tcp::Socket>(h).close());
        }
        drop(i);
        super::poll();
        self.shared.ready.notify();
        Ok(())
    }

    /// The local endpoint (`getsockname`): `None` for any address.
    pub fn local(&self) -> (Option<IpAddress>, u16) {
        let i = self.inner.lock();
        match &i.mode {
            Mode::Conn { h, .. } => {
                let h = *h;
                with(|s| {
                    s.sockets
                        .get::<tcp::Socket>(h)
                        .local_endpoint()
                        .map(|e| (Some(e.addr), e.port))
                })
                .flatten()
                .unwrap_or((None, 0))
            }
            Mode::Listening { ep, .. } => (ep.addr, ep.port),
            _ => i.bound.map(|b| (b.addr, b.port)).unwrap_or((None, 0)),
        }
    }

    /// The peer (`getpeername`).
    pub fn peer(&self) -> Result<IpEndpoint, Errno> {
        let i = self.inner.lock();
        let ep = match &i.mode {
            Mode::Conn { h, .. } => {
                let h = *h;
                with(|s| s.sockets.get::<tcp::Socket>(h).remote_endpoint()).flatten()
            }
            Mode::Udp(_) => i.peer,
            _ => None,
        };
        ep.ok_or(Errno::ENOTCONN)
    }

    pub fn opts(&self) -> Opts {
        self.inner.lock().opts
    }

    /// Sets the options and applies what smoltcp can (Nagle, keep-alive).
    pub fn set_opts(&self, o: Opts) {
        let mut i = self.inner.lock();
        i.opts = o;
        if let Mode::Conn { h, .. } = i.mode {
            with(|s| apply_opts(s.sockets.get_mut::<tcp::Socket>(h), &o));
        }
    }

    /// `SO_ERROR`: the pending error, cleared.
    pub fn take_error(&self) -> Option<Errno> {
        let connecting = matches!(
            self.inner.lock().mode,
            Mode::Conn {
                connecting: true,
                ..
            }
        );
        if connecting && let Some(Err(e)) = self.connect_result() {
            return Some(e);
        }
        self.inner.lock().error.take()
    }

    pub fn listening(&self) -> bool {
        matches!(self.inner.lock().mode, Mode::Listening { .. })
    }
}

fn default_opts() -> Opts {
    Opts {
        reuseaddr: false,
        reuseport: false,
        nodelay: false,
        keepalive: false,
        rcvbuf: TCP_BUF as u32 * 2,
        sndbuf: TCP_BUF as u32 * 2,
        v6only: false,
        rcvtimeo: 0,
        sndtimeo: 0,
        linger: None,
    }
}

fn apply_opts(t: &mut tcp::Socket, o: &Opts) {
    t.set_nagle_enabled(!o.nodelay);
    t.set_keep_alive(o.keepalive.then(|| Duration::from_secs(75)));
}

/// Whether a listener holds `port` already.
fn port_listened(s: &Stack, port: u16) -> bool {
    s.sockets.iter().any(|(_, x)| match x {
        smoltcp::socket::Socket::Tcp(t) => {
            t.state() == tcp::State::Listen && t.listen_endpoint().port == port
        }
        _ => false,
    })
}

/// A backlog entry: a smoltcp socket listening on `ep`, watched for the
/// listener.
/// A backlog entry listening on `ep`; `None` past the programs' buffer
/// budget.
fn new_listener(s: &mut Stack, ep: IpListenEndpoint, shared: &Arc<Shared>) -> Option<SocketHandle> {
    let h = s.new_tcp(TCP_BUF, TCP_BUF)?;
    let t = s.sockets.get_mut::<tcp::Socket>(h);
    let _ = t.listen(ep);
    t.set_timeout(Some(SYN_TIMEOUT));
    s.watch(h, shared, Some(ep));
    Some(h)
}

impl Drop for Socket {
    fn drop(&mut self) {
        let linger0 = self.inner.get_mut().opts.linger == Some(0);
        let mode = core::mem::replace(&mut self.inner.get_mut().mode, Mode::Dead);
        with(|s| match mode {
            Mode::Conn { h, .. } => {
                let t = s.sockets.get_mut::<tcp::Socket>(h);
                // Unread data, or SO_LINGER with a zero time: Linux
                // resets the connection.
                if t.recv_queue() > 0 || linger0 {
                    t.abort();
                } else {
                    t.close();
                }
                t.set_timeout(Some(Duration::from_secs(30)));
                s.orphan(h);
            }
            Mode::Listening { backlog, .. } => {
                for h in backlog {
                    let t = s.sockets.get_mut::<tcp::Socket>(h);
                    t.abort();
                    s.orphan(h);
                }
            }
            Mode::Udp(h) => s.remove(h),
            Mode::Fresh | Mode::Dead => {}
        });
        super::poll();
    }
}

impl FileOps for Socket {
    fn read(&self, f: &OpenFile, _off: u64, mut dst: Dst<'_>, len: usize) -> Result<usize, Errno> {
        self.recv(&mut dst, len, 0, f.nonblocking()).map(|r| r.0)
    }

    fn write(&self, f: &OpenFile, _off: u64, src: Src<'_>, len: usize) -> Result<usize, Errno> {
        let r = self.send(&src, len, 0, None, f.nonblocking());
        if r == Err(Errno::EPIPE) {
            raise_sigpipe();
        }
        r
    }

    fn poll(&self) -> u16 {
        let i = self.inner.lock();
        let rd = poll::POLLIN | poll::POLLRDNORM;
        let wr = poll::POLLOUT | poll::POLLWRNORM;
        const POLLRDHUP: u16 = 0x2000;
        match &i.mode {
            Mode::Fresh => {
                if self.kind == Kind::Dgram {
                    wr
                } else {
                    poll::POLLOUT | poll::POLLHUP
                }
            }
            Mode::Dead => poll::POLLHUP,
            Mode::Listening { backlog, .. } => with(|s| {
                reset_foreign_connections(s, backlog, self.v6);
                backlog.iter().any(|&h| {
                    !matches!(
                        s.sockets.get::<tcp::Socket>(h).state(),
                        tcp::State::Listen | tcp::State::SynReceived | tcp::State::Closed
                    )
                })
            })
            .map_or(0, |ready| if ready { rd } else { 0 }),
            Mode::Udp(h) => {
                let h = *h;
                with(|s| {
                    let u = s.sockets.get_mut::<udp::Socket>(h);
                    drop_foreign_datagrams(u, self.v6);
                    (if u.can_recv() { rd } else { 0 }) | (if u.can_send() { wr } else { 0 })
                })
                .unwrap_or(0)
            }
            Mode::Conn { h, connecting, .. } => {
                let (h, connecting) = (*h, *connecting);
                let (shut_rd, shut_wr) = (i.shut_rd, i.shut_wr);
                with(|s| {
                    let t = s.sockets.get::<tcp::Socket>(h);
                    match t.state() {
                        tcp::State::SynSent | tcp::State::SynReceived => 0,
                        tcp::State::Closed if connecting => wr | poll::POLLERR | poll::POLLHUP,
                        tcp::State::Closed => {
                            rd | POLLRDHUP
                                | poll::POLLHUP
                                | if shut_wr { 0 } else { poll::POLLERR | wr }
                        }
                        _ => {
                            let mut r = 0;
                            if t.can_recv() || !t.may_recv() || shut_rd {
                                r |= rd;
                            }
                            if !t.may_recv() {
                                r |= POLLRDHUP;
                            }
                            if t.can_send() || !t.may_send() {
                                r |= wr;
                            }
                            r
                        }
                    }
                })
                .unwrap_or(poll::POLLHUP)
            }
        }
    }

    fn pollable(&self) -> Option<&crate::sched::wait::Pollable> {
        Some(&self.shared.ready)
    }

    fn stat(&self) -> FileStat {
        crate::special::stat_of(self.ino, 0o140777, 0, 0)
    }

    fn name(&self) -> Vec<u8> {
        alloc::format!("socket:[{}]", self.ino).into_bytes()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Raises `SIGPIPE` on the calling thread (a write to a stream that can
/// no longer send).
pub fn raise_sigpipe() {
    if let Some(t) = crate::signal::current_thread() {
        let _ = crate::signal::send::to_thread(
            &t,
            cairn_unix::sigframe::SigInfo::kernel(cairn_unix::signal::SIGPIPE),
        );
    }
}
