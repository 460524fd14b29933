//! The socket system calls for AF_INET and AF_INET6 stream (TCP) and
//! datagram (UDP) sockets (AF_INET6 ones dual-stack: IPv4 peers appear
//! as `::ffff:a.b.c.d`) and AF_UNIX stream, datagram and seqpacket
//! sockets: socket, socketpair (AF_UNIX), bind, listen, accept/accept4,
//! connect, send/sendto/sendmsg (SCM_RIGHTS for AF_UNIX),
//! recv/recvfrom/recvmsg, shutdown, getsockname/getpeername,
//! setsockopt/getsockopt. The sockets themselves are `crate::net::socket`
//! and `crate::ipc::unix`.
//!
//! Kernel-lock context, in the calling thread. No lock is held here:
//! addresses and data are copied in and out around the socket calls.

use super::fs::get_file;
use super::pipe::install;
use super::{SysResult, copy_in, copy_out};
use crate::ipc::unix::{self, Rights, UnixSocket};
use crate::net::socket::{Kind, MSG_NOSIGNAL, Opts, Socket, raise_sigpipe};
use crate::process::file::{Dst, FileOps, O_CLOEXEC, O_NONBLOCK, O_RDWR, OpenFile, Src};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use cairn_unix::errno::Errno;
use cairn_unix::unixsock::{SOCKADDR_UN_SIZE, SockType, UnixAddr};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

const AF_UNIX: u32 = 1;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_NONBLOCK: u32 = O_NONBLOCK;
const SOCK_CLOEXEC: u32 = O_CLOEXEC;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

const SOL_SOCKET: i32 = 1;
const SO_REUSEADDR: i32 = 2;
const SO_TYPE: i32 = 3;
const SO_ERROR: i32 = 4;
const SO_SNDBUF: i32 = 7;
const SO_RCVBUF: i32 = 8;
const SO_KEEPALIVE: i32 = 9;
const SO_REUSEPORT: i32 = 15;
const SO_ACCEPTCONN: i32 = 30;
const SO_LINGER: i32 = 13;
const SO_PASSCRED: i32 = 16;
const SO_PEERCRED: i32 = 17;
const SO_RCVTIMEO: i32 = 20;
const SO_SNDTIMEO: i32 = 21;
const SCM_RIGHTS: i32 = 1;
const MSG_CTRUNC: u32 = 0x8;
const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;
/// Most descriptors one SCM_RIGHTS message carries (Linux's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// Most control bytes a sendmsg reads.
const MAX_CONTROL: usize = 64 * 1024;
/// Most bytes one AF_UNIX sendmsg gathers (a stream send is short beyond).
const MAX_GATHER: usize = 8 << 20;
const TCP_NODELAY: i32 = 1;
const IPPROTO_IPV6: i32 = 41;
const IPV6_V6ONLY: i32 = 26;

/// The socket behind `fd` (`ENOTSOCK` for other files).
fn sock(fd: i32) -> Result<(Arc<OpenFile>, Arc<dyn FileOps>), Errno> {
    let f = get_file(fd)?;
    let ops = match &f.kind {
        crate::process::file::FileKind::Object(o)
            if o.as_any().is::<Socket>() || o.as_any().is::<UnixSocket>() =>
        {
            o.clone()
        }
        _ => return Err(Errno::ENOTSOCK),
    };
    Ok((f, ops))
}

fn as_unix(o: &Arc<dyn FileOps>) -> Option<&UnixSocket> {
    o.as_any().downcast_ref::<UnixSocket>()
}

/// Reads a `sockaddr_un` of `len` bytes.
fn read_unix_addr(addr: u64, len: u32) -> Result<UnixAddr, Errno> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    let len = len as usize;
    if !(2..=SOCKADDR_UN_SIZE).contains(&len) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; SOCKADDR_UN_SIZE];
    copy_in(&mut b[..len], addr)?;
    UnixAddr::decode(&b, len)
}

/// Writes a `sockaddr_un` at `addr`, its length at `len_at` (in/out,
/// the copy truncated to the caller's room).
fn write_unix_addr(addr: u64, len_at: u64, a: &UnixAddr) -> Result<(), Errno> {
    if addr == 0 || len_at == 0 {
        return Ok(());
    }
    let mut l = [0u8; 4];
    copy_in(&mut l, len_at)?;
    let room = i32::from_le_bytes(l);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let b = a.encode();
    copy_out(addr, &b[..(room as usize).min(b.len())])?;
    copy_out(len_at, &(b.len() as i32).to_le_bytes())
}

fn as_socket(o: &Arc<dyn crate::process::file::FileOps>) -> &Socket {
    o.as_any().downcast_ref::<Socket>().expect("socket")
}

/// Reads a `sockaddr_in`, or a `sockaddr_in6` for an AF_INET6 socket
/// (an IPv4-mapped address is IPv4): (address, `None` for any; port).
fn read_addr(addr: u64, len: u32, v6: bool) -> Result<(Option<IpAddress>, u16), Errno> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    if len < 2 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 28];
    let n = (len as usize).min(28);
    copy_in(&mut b[..n], addr)?;
    let family = u16::from_le_bytes([b[0], b[1]]) as u32;
    let port = u16::from_be_bytes([b[2], b[3]]);
    match (family, v6) {
        (AF_INET, false) => {
            if len < 16 {
                return Err(Errno::EINVAL);
            }
            let a = Ipv4Address::new(b[4], b[5], b[6], b[7]);
            Ok(((!a.is_unspecified()).then_some(IpAddress::Ipv4(a)), port))
        }
        (AF_INET6, true) => {
            if len < 24 {
                return Err(Errno::EINVAL);
            }
            let raw: [u8; 16] = b[8..24].try_into().expect("16");
            let a = Ipv6Address::from(raw);
            let ip = match a.to_ipv4_mapped() {
                Some(v4) if !v4.is_unspecified() => Some(IpAddress::Ipv4(v4)),
                Some(_) => None,
                None if a.is_unspecified() => None,
                None => Some(IpAddress::Ipv6(a)),
            };
            Ok((ip, port))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// Writes a `sockaddr_in` (or for an AF_INET6 socket a `sockaddr_in6`,
/// IPv4 addresses mapped) at `addr` with its length at `len_at` (in/out,
/// truncated to the caller's size as Linux does).
fn write_addr(
    addr: u64,
    len_at: u64,
    v6: bool,
    ip: Option<IpAddress>,
    port: u16,
) -> Result<(), Errno> {
    if addr == 0 || len_at == 0 {
        return Ok(());
    }
    let mut l = [0u8; 4];
    copy_in(&mut l, len_at)?;
    let room = i32::from_le_bytes(l);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 28];
    let size = if v6 {
        b[0..2].copy_from_slice(&(AF_INET6 as u16).to_le_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        let a: [u8; 16] = match ip {
            Some(IpAddress::Ipv6(a)) => a.octets(),
            Some(IpAddress::Ipv4(a)) => a.to_ipv6_mapped().octets(),
            None => [0; 16],
        };
        b[8..24].copy_from_slice(&a);
        28
    } else {
        b[0..2].copy_from_slice(&(AF_INET as u16).to_le_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        if let Some(IpAddress::Ipv4(a)) = ip {
            b[4..8].copy_from_slice(&a.octets());
        }
        16
    };
    copy_out(addr, &b[..(room as usize).min(size)])?;
    copy_out(len_at, &(size as i32).to_le_bytes())
}

fn endpoint(ep: IpEndpoint) -> (Option<IpAddress>, u16) {
    (Some(ep.addr), ep.port)
}

/// An AF_UNIX socket type and flags from `socket`'s arguments.
fn unix_type(ty: u32, protocol: i32) -> Result<SockType, Errno> {
    if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let t = SockType::from_raw(ty & 0xf).ok_or(Errno::ESOCKTNOSUPPORT)?;
    if protocol != 0 && protocol != AF_UNIX as i32 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(t)
}

pub fn socket(domain: i32, ty: u32, protocol: i32) -> SysResult {
    if domain as u32 == AF_UNIX {
        let s = UnixSocket::new(unix_type(ty, protocol)?);
        let f = OpenFile::object(s, O_RDWR | (ty & SOCK_NONBLOCK));
        return install(f, ty & SOCK_CLOEXEC != 0).map(|fd| fd as u64);
    }
    let v6 = match domain as u32 {
        AF_INET => false,
        AF_INET6 => true,
        _ => return Err(Errno::EAFNOSUPPORT),
    };
    let kind = match ty & 0xf {
        SOCK_STREAM if protocol == 0 || protocol as u32 == IPPROTO_TCP => Kind::Stream,
        SOCK_DGRAM if protocol == 0 || protocol as u32 == IPPROTO_UDP => Kind::Dgram,
        SOCK_STREAM | SOCK_DGRAM => return Err(Errno::EPROTONOSUPPORT),
        _ => return Err(Errno::EINVAL),
    };
    if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let s = Socket::new(kind, v6);
    let f = OpenFile::object(s, O_RDWR | (ty & SOCK_NONBLOCK));
    install(f, ty & SOCK_CLOEXEC != 0).map(|fd| fd as u64)
}

pub fn socketpair(domain: i32, ty: u32, protocol: i32, sv: u64) -> SysResult {
    match domain as u32 {
        AF_UNIX => {}
        AF_INET | AF_INET6 => return Err(Errno::EOPNOTSUPP),
        _ => return Err(Errno::EAFNOSUPPORT),
    }
    let t = unix_type(ty, protocol)?;
    let (a, b) = UnixSocket::pair(t);
    let status = O_RDWR | (ty & SOCK_NONBLOCK);
    let cloexec = ty & SOCK_CLOEXEC != 0;
    let (fa, fb) = {
        let mut tbl = crate::process::current().fds.lock();
        let fa = tbl
            .alloc(OpenFile::object(a, status), cloexec)
            .map_err(|(e, _)| e)?;
        match tbl.alloc(OpenFile::object(b, status), cloexec) {
            Ok(fb) => (fa, fb),
            Err((e, f)) => {
                let undo = tbl.close(fa);
                drop(tbl);
                drop((undo, f));
                return Err(e);
            }
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&fa.to_le_bytes());
    out[4..].copy_from_slice(&fb.to_le_bytes());
    if let Err(e) = copy_out(sv, &out) {
        let closed = {
            let mut tbl = crate::process::current().fds.lock();
            (tbl.close(fa), tbl.close(fb))
        };
        drop(closed);
        return Err(e);
    }
    Ok(0)
}

pub fn bind(fd: i32, addr: u64, len: u32) -> SysResult {
    let (_f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        return u.bind(read_unix_addr(addr, len)?).map(|_| 0);
    }
    let s = as_socket(&o);
    let (ip, port) = read_addr(addr, len, s.v6)?;
    s.bind(ip, port).map(|_| 0)
}

pub fn listen(fd: i32, backlog: i32) -> SysResult {
    let (_f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        return u.listen(backlog).map(|_| 0);
    }
    as_socket(&o).listen(backlog).map(|_| 0)
}

pub fn accept4(fd: i32, addr: u64, len_at: u64, flags: u32) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        let s = u.accept(f.nonblocking())?;
        let peer = s.peer_name().unwrap_or(UnixAddr::Unnamed);
        let nf = OpenFile::object(s, O_RDWR | (flags & SOCK_NONBLOCK));
        let fd = install(nf, flags & SOCK_CLOEXEC != 0)?;
        if let Err(e) = write_unix_addr(addr, len_at, &peer) {
            let closed = crate::process::current().fds.lock().close(fd);
            drop(closed);
            return Err(e);
        }
        return Ok(fd as u64);
    }
    let v6 = as_socket(&o).v6;
    let (s, peer) = as_socket(&o).accept(f.nonblocking())?;
    let nf = OpenFile::object(s, O_RDWR | (flags & SOCK_NONBLOCK));
    let (ip, port) = endpoint(peer);
    let fd = install(nf, flags & SOCK_CLOEXEC != 0)?;
    if let Err(e) = write_addr(addr, len_at, v6, ip, port) {
        let closed = crate::process::current().fds.lock().close(fd);
        drop(closed);
        return Err(e);
    }
    Ok(fd as u64)
}

pub fn connect(fd: i32, addr: u64, len: u32) -> SysResult {
    let (f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        let a = read_unix_addr(addr, len)?;
        return u.connect(a, f.nonblocking()).map(|_| 0);
    }
    let s = as_socket(&o);
    let (ip, port) = read_addr(addr, len, s.v6)?;
    let ip = match (ip, s.v6) {
        (Some(ip), _) => ip,
        // Linux connects to the loopback address; there is none here.
        (None, _) => return Err(Errno::ENETUNREACH),
    };
    s.connect(ip, port, f.nonblocking()).map(|_| 0)
}

fn send_common(
    f: &OpenFile,
    s: &Socket,
    src: Src<'_>,
    len: usize,
    flags: u32,
    to: Option<IpEndpoint>,
) -> SysResult {
    let r = s.send(&src, len, flags, to, f.nonblocking());
    if r == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        raise_sigpipe();
    }
    r.map(|n| n as u64)
}

/// An AF_UNIX send; `SIGPIPE` for `EPIPE` unless `MSG_NOSIGNAL`.
fn unix_send(
    f: &OpenFile,
    u: &UnixSocket,
    src: Src<'_>,
    len: usize,
    flags: u32,
    to: Option<UnixAddr>,
    rights: Option<Rights>,
) -> SysResult {
    let r = u.send(&src, len, flags, to, rights, f.nonblocking());
    if r == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        raise_sigpipe();
    }
    r.map(|n| n as u64)
}

pub fn sendto(fd: i32, buf: u64, len: u64, flags: u32, addr: u64, alen: u32) -> SysResult {
    let (f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        let to = if addr != 0 {
            Some(read_unix_addr(addr, alen)?)
        } else {
            None
        };
        let len = (len as usize).min(super::fs::MAX_RW_COUNT as usize);
        return unix_send(&f, u, Src::User(buf), len, flags, to, None);
    }
    let s = as_socket(&o);
    let to = if addr != 0 && s.kind == Kind::Dgram {
        let (ip, port) = read_addr(addr, alen, s.v6)?;
        Some(IpEndpoint::new(ip.ok_or(Errno::ENETUNREACH)?, port))
    } else {
        None
    };
    let len = (len as usize).min(super::fs::MAX_RW_COUNT as usize);
    send_common(&f, s, Src::User(buf), len, flags, to)
}

pub fn recvfrom(fd: i32, buf: u64, len: u64, flags: u32, addr: u64, len_at: u64) -> SysResult {
    let (f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        let len = (len as usize).min(super::fs::MAX_RW_COUNT as usize);
        if len == 0 && u.ty == SockType::Stream {
            return Ok(0);
        }
        let (n, full, _rights, from) = u.recv(&mut Dst::User(buf), len, flags, f.nonblocking())?;
        if addr != 0 && len_at != 0 {
            match from {
                Some(a) => write_unix_addr(addr, len_at, &a)?,
                None => copy_out(len_at, &0i32.to_le_bytes())?,
            }
        }
        return Ok(if flags & unix::MSG_TRUNC != 0 {
            full
        } else {
            n
        } as u64);
    }
    let s = as_socket(&o);
    let len = (len as usize).min(super::fs::MAX_RW_COUNT as usize);
    let (n, from) = s.recv(&mut Dst::User(buf), len, flags, f.nonblocking())?;
    if let Some(ep) = from {
        let (ip, port) = endpoint(ep);
        write_addr(addr, len_at, s.v6, ip, port)?;
    }
    Ok(n as u64)
}

/// `struct msghdr`: (name, namelen, iov, iovlen).
fn read_msghdr(msg: u64) -> Result<(u64, u32, u64, u64), Errno> {
    let (name, namelen, iov, iovlen, _, _) = read_msghdr_full(msg)?;
    Ok((name, namelen, iov, iovlen))
}

/// `struct msghdr`: (name, namelen, iov, iovlen, control, controllen).
fn read_msghdr_full(msg: u64) -> Result<(u64, u32, u64, u64, u64, u64), Errno> {
    let mut b = [0u8; 56];
    copy_in(&mut b, msg)?;
    let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
    Ok((u(0), u(8) as u32, u(16), u(24), u(32), u(40)))
}

/// The descriptors of the SCM_RIGHTS messages in a sendmsg's control
/// data (other control messages are ignored).
fn read_rights(control: u64, len: u64) -> Result<Option<Rights>, Errno> {
    if control == 0 || len == 0 {
        return Ok(None);
    }
    if len as usize > MAX_CONTROL {
        return Err(Errno::ENOBUFS);
    }
    let mut b = vec![0u8; len as usize];
    copy_in(&mut b, control)?;
    let mut files = Vec::new();
    let mut at = 0usize;
    while at + 16 <= b.len() {
        let clen = u64::from_le_bytes(b[at..at + 8].try_into().expect("8")) as usize;
        let level = i32::from_le_bytes(b[at + 8..at + 12].try_into().expect("4"));
        let ty = i32::from_le_bytes(b[at + 12..at + 16].try_into().expect("4"));
        if clen < 16 || clen > b.len() - at {
            return Err(Errno::EINVAL);
        }
        if level == SOL_SOCKET && ty == SCM_RIGHTS {
            for c in b[at + 16..at + clen].chunks_exact(4) {
                let fd = i32::from_le_bytes(c.try_into().expect("4"));
                files.push(get_file(fd)?);
                if files.len() > SCM_MAX_FD {
                    return Err(Errno::EINVAL);
                }
            }
        }
        at += clen.next_multiple_of(8);
    }
    Ok((!files.is_empty()).then(|| Arc::new(files)))
}

/// Installs received descriptors and writes their SCM_RIGHTS message into
/// the caller's control buffer: the `msg_flags` bits to add (`MSG_CTRUNC`
/// when some did not fit; those are closed).
fn deliver_rights(
    msg: u64,
    control: u64,
    room: u64,
    rights: Option<Rights>,
    flags: u32,
) -> Result<u32, Errno> {
    let Some(rights) = rights else {
        copy_out(msg + 40, &0u64.to_le_bytes())?;
        return Ok(0);
    };
    let fits = if control == 0 || room < 20 {
        0
    } else {
        ((room as usize - 16) / 4).min(rights.len())
    };
    let mut fds = Vec::with_capacity(fits);
    for f in rights.iter().take(fits) {
        match install(f.clone(), flags & MSG_CMSG_CLOEXEC != 0) {
            Ok(fd) => fds.push(fd),
            Err(_) => break,
        }
    }
    if fds.is_empty() {
        copy_out(msg + 40, &0u64.to_le_bytes())?;
        return Ok(MSG_CTRUNC);
    }
    let clen = 16 + 4 * fds.len();
    let mut b = Vec::with_capacity(clen);
    b.extend_from_slice(&(clen as u64).to_le_bytes());
    b.extend_from_slice(&SOL_SOCKET.to_le_bytes());
    b.extend_from_slice(&SCM_RIGHTS.to_le_bytes());
    for fd in &fds {
        b.extend_from_slice(&fd.to_le_bytes());
    }
    if let Err(e) = copy_out(control, &b) {
        let closed: Vec<_> = {
            let mut t = crate::process::current().fds.lock();
            fds.iter().map(|&fd| t.close(fd)).collect()
        };
        drop(closed);
        return Err(e);
    }
    let space = (clen.next_multiple_of(8) as u64).min(room);
    copy_out(msg + 40, &space.to_le_bytes())?;
    Ok(if fds.len() < rights.len() {
        MSG_CTRUNC
    } else {
        0
    })
}

/// Gathers a sendmsg's iovecs into one kernel buffer (at most `cap`
/// bytes).
fn gather(iov: u64, iovlen: u64, cap: usize) -> Result<Vec<u8>, Errno> {
    let vecs = super::fs::iovecs(iov, iovlen)?;
    let total: usize = vecs.iter().map(|v| v.len as usize).sum();
    let mut buf = vec![0u8; total.min(cap)];
    let mut at = 0;
    for v in &vecs {
        let k = (v.len as usize).min(buf.len() - at);
        copy_in(&mut buf[at..at + k], v.base)?;
        at += k;
    }
    Ok(buf)
}

fn unix_sendmsg(f: &OpenFile, u: &UnixSocket, msg: u64, flags: u32) -> SysResult {
    let (name, namelen, iov, iovlen, control, controllen) = read_msghdr_full(msg)?;
    let to = if name != 0 && namelen != 0 {
        Some(read_unix_addr(name, namelen)?)
    } else {
        None
    };
    let rights = read_rights(control, controllen)?;
    // A message larger than the queue is EMSGSIZE: gather one byte more.
    let cap = if u.ty == SockType::Stream {
        MAX_GATHER
    } else {
        unix::CAPACITY + 1
    };
    let buf = gather(iov, iovlen, cap)?;
    unix_send(f, u, Src::Kernel(&buf), buf.len(), flags, to, rights)
}

fn unix_recvmsg(f: &OpenFile, u: &UnixSocket, msg: u64, flags: u32) -> SysResult {
    let (name, _namelen, iov, iovlen, control, controllen) = read_msghdr_full(msg)?;
    let vecs = super::fs::iovecs(iov, iovlen)?;
    let total: usize = vecs.iter().map(|v| v.len as usize).sum();
    let total = total.min(unix::CAPACITY);
    let mut buf = vec![0u8; total];
    let (n, full, rights, from) = if total == 0 && u.ty == SockType::Stream {
        (0, 0, None, None)
    } else {
        u.recv(&mut Dst::Kernel(&mut buf), total, flags, f.nonblocking())?
    };
    let mut at = 0;
    for v in &vecs {
        if at >= n {
            break;
        }
        let k = (v.len as usize).min(n - at);
        copy_out(v.base, &buf[at..at + k])?;
        at += k;
    }
    match from {
        Some(a) if name != 0 => write_unix_addr(name, msg + 8, &a)?,
        _ => copy_out(msg + 8, &0u32.to_le_bytes())?,
    }
    let mut mflags = deliver_rights(msg, control, controllen, rights, flags)?;
    if full > n {
        mflags |= unix::MSG_TRUNC;
    }
    copy_out(msg + 48, &mflags.to_le_bytes())?;
    Ok(if flags & unix::MSG_TRUNC != 0 {
        full
    } else {
        n
    } as u64)
}

pub fn sendmsg(fd: i32, msg: u64, flags: u32) -> SysResult {
    let (f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        return unix_sendmsg(&f, u, msg, flags);
    }
    let s = as_socket(&o);
    let (name, namelen, iov, iovlen) = read_msghdr(msg)?;
    let to = if name != 0 && s.kind == Kind::Dgram {
        let (ip, port) = read_addr(name, namelen, s.v6)?;
        Some(IpEndpoint::new(ip.ok_or(Errno::ENETUNREACH)?, port))
    } else {
        None
    };
    let vecs = super::fs::iovecs(iov, iovlen)?;
    let total: usize = vecs.iter().map(|v| v.len as usize).sum();
    let mut buf = vec![0u8; total];
    let mut at = 0;
    for v in &vecs {
        copy_in(&mut buf[at..at + v.len as usize], v.base)?;
        at += v.len as usize;
    }
    send_common(&f, s, Src::Kernel(&buf), total, flags, to)
}

pub fn recvmsg(fd: i32, msg: u64, flags: u32) -> SysResult {
    let (f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        return unix_recvmsg(&f, u, msg, flags);
    }
    let s = as_socket(&o);
    let (name, _namelen, iov, iovlen) = read_msghdr(msg)?;
    let vecs = super::fs::iovecs(iov, iovlen)?;
    let total: usize = vecs.iter().map(|v| v.len as usize).sum();
    let mut buf = vec![0u8; total];
    let (n, from) = s.recv(&mut Dst::Kernel(&mut buf), total, flags, f.nonblocking())?;
    let mut at = 0;
    for v in &vecs {
        if at >= n {
            break;
        }
        let k = (v.len as usize).min(n - at);
        copy_out(v.base, &buf[at..at + k])?;
        at += k;
    }
    // msg_namelen at offset 8, msg_controllen at 40 (none), msg_flags at 48.
    if let Some(ep) = from
        && name != 0
    {
        let (ip, port) = endpoint(ep);
        write_addr(name, msg + 8, s.v6, ip, port)?;
    } else {
        copy_out(msg + 8, &0u32.to_le_bytes())?;
    }
    copy_out(msg + 40, &0u64.to_le_bytes())?;
    copy_out(msg + 48, &0i32.to_le_bytes())?;
    Ok(n as u64)
}

pub fn shutdown(fd: i32, how: i32) -> SysResult {
    let (_f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        return u.shutdown(how).map(|_| 0);
    }
    as_socket(&o).shutdown(how).map(|_| 0)
}

pub fn getsockname(fd: i32, addr: u64, len_at: u64) -> SysResult {
    let (_f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        if addr == 0 || len_at == 0 {
            return Err(Errno::EFAULT);
        }
        return write_unix_addr(addr, len_at, &u.name()).map(|_| 0);
    }
    let s = as_socket(&o);
    let (ip, port) = s.local();
    if addr == 0 || len_at == 0 {
        return Err(Errno::EFAULT);
    }
    write_addr(addr, len_at, s.v6, ip, port).map(|_| 0)
}

pub fn getpeername(fd: i32, addr: u64, len_at: u64) -> SysResult {
    let (_f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        let p = u.peer_name()?;
        if addr == 0 || len_at == 0 {
            return Err(Errno::EFAULT);
        }
        return write_unix_addr(addr, len_at, &p).map(|_| 0);
    }
    let s = as_socket(&o);
    let (ip, port) = endpoint(s.peer()?);
    if addr == 0 || len_at == 0 {
        return Err(Errno::EFAULT);
    }
    write_addr(addr, len_at, s.v6, ip, port).map(|_| 0)
}

/// Reads a `struct timeval` option (`SO_RCVTIMEO`/`SO_SNDTIMEO`): ns,
/// 0 for none.
fn read_timeval(val: u64, len: u32) -> Result<u64, Errno> {
    if len < 16 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 16];
    copy_in(&mut b, val)?;
    let sec = i64::from_le_bytes(b[..8].try_into().expect("8"));
    let usec = i64::from_le_bytes(b[8..].try_into().expect("8"));
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 {
        return Ok(0);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(usec as u64 * 1000))
}

fn timeval_bytes(ns: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    b.extend_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_le_bytes());
    b
}

/// Reads a `struct linger`: `None` when off.
fn read_linger(val: u64, len: u32) -> Result<Option<i32>, Errno> {
    if len < 8 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 8];
    copy_in(&mut b, val)?;
    let on = i32::from_le_bytes(b[..4].try_into().expect("4"));
    let secs = i32::from_le_bytes(b[4..].try_into().expect("4"));
    Ok((on != 0).then_some(secs.max(0)))
}

fn linger_bytes(l: Option<i32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(8);
    b.extend_from_slice(&i32::from(l.is_some()).to_le_bytes());
    b.extend_from_slice(&l.unwrap_or(0).to_le_bytes());
    b
}

fn read_int(val: u64, len: u32) -> Result<i32, Errno> {
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    copy_in(&mut b, val)?;
    Ok(i32::from_le_bytes(b))
}

fn unix_setsockopt(u: &UnixSocket, level: i32, name: i32, val: u64, len: u32) -> SysResult {
    let mut o = u.opts();
    match (level, name) {
        (SOL_SOCKET, SO_RCVTIMEO) => o.rcvtimeo = read_timeval(val, len)?,
        (SOL_SOCKET, SO_SNDTIMEO) => o.sndtimeo = read_timeval(val, len)?,
        (SOL_SOCKET, SO_LINGER) => o.linger = read_linger(val, len)?,
        (SOL_SOCKET, SO_SNDBUF) => {
            o.sndbuf = (read_int(val, len)?.max(2304) as u32).saturating_mul(2)
        }
        (SOL_SOCKET, SO_RCVBUF) => {
            o.rcvbuf = (read_int(val, len)?.max(1152) as u32).saturating_mul(2)
        }
        (SOL_SOCKET, SO_PASSCRED) => o.passcred = read_int(val, len)? != 0,
        (SOL_SOCKET, SO_REUSEADDR) => o.reuseaddr = read_int(val, len)? != 0,
        (SOL_SOCKET, SO_KEEPALIVE) => o.keepalive = read_int(val, len)? != 0,
        _ => return Err(Errno::ENOPROTOOPT),
    }
    u.set_opts(o);
    Ok(0)
}

/// The bytes of an AF_UNIX socket option.
fn unix_getsockopt(u: &UnixSocket, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
    let o = u.opts();
    let int = |v: i32| v.to_le_bytes().to_vec();
    Ok(match (level, name) {
        (SOL_SOCKET, SO_RCVTIMEO) => timeval_bytes(o.rcvtimeo),
        (SOL_SOCKET, SO_SNDTIMEO) => timeval_bytes(o.sndtimeo),
        (SOL_SOCKET, SO_LINGER) => linger_bytes(o.linger),
        (SOL_SOCKET, SO_SNDBUF) => int(o.sndbuf as i32),
        (SOL_SOCKET, SO_RCVBUF) => int(o.rcvbuf as i32),
        (SOL_SOCKET, SO_PASSCRED) => int(o.passcred.into()),
        (SOL_SOCKET, SO_REUSEADDR) => int(o.reuseaddr.into()),
        (SOL_SOCKET, SO_KEEPALIVE) => int(o.keepalive.into()),
        (SOL_SOCKET, SO_TYPE) => int(u.ty.raw()),
        (SOL_SOCKET, SO_ERROR) => int(0),
        (SOL_SOCKET, SO_ACCEPTCONN) => int(u.listening().into()),
        (SOL_SOCKET, SO_PEERCRED) => {
            // struct ucred: pid, uid, gid (one program: its own).
            let (pid, id) = if u.connected() {
                (super::signal::PID, 0u32)
            } else {
                (0, u32::MAX)
            };
            let mut b = int(pid);
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
            b
        }
        _ => return Err(Errno::ENOPROTOOPT),
    })
}

pub fn setsockopt(fd: i32, level: i32, name: i32, val: u64, len: u32) -> SysResult {
    let (_f, o) = sock(fd)?;
    if let Some(u) = as_unix(&o) {
        return unix_setsockopt(u, level, name, val, len);
    }
    let s = as_socket(&o);
    let mut opts: Opts = s.opts();
    match (level, name) {
        (SOL_SOCKET, SO_RCVTIMEO) => {
            opts.rcvtimeo = read_timeval(val, len)?;
            s.set_opts(opts);
            return Ok(0);
        }
        (SOL_SOCKET, SO_SNDTIMEO) => {
            opts.sndtimeo = read_timeval(val, len)?;
            s.set_opts(opts);
            return Ok(0);
        }
        (SOL_SOCKET, SO_LINGER) => {
            opts.linger = read_linger(val, len)?;
            s.set_opts(opts);
            return Ok(0);
        }
        _ => {}
    }
    let v = read_int(val, len)?;
    match (level, name) {
        (SOL_SOCKET, SO_REUSEADDR) => opts.reuseaddr = v != 0,
        (SOL_SOCKET, SO_REUSEPORT) => opts.reuseport = v != 0,
        (SOL_SOCKET, SO_KEEPALIVE) => opts.keepalive = v != 0,
        // Linux doubles the value it is given and reports that.
        (SOL_SOCKET, SO_RCVBUF) => opts.rcvbuf = (v.max(1152) as u32).saturating_mul(2),
        (SOL_SOCKET, SO_SNDBUF) => opts.sndbuf = (v.max(2304) as u32).saturating_mul(2),
        (IPPROTO_IPV6, IPV6_V6ONLY) if s.v6 => opts.v6only = v != 0,
        (lvl, TCP_NODELAY) if lvl as u32 == IPPROTO_TCP => {
            if s.kind != Kind::Stream {
                return Err(Errno::EOPNOTSUPP);
            }
            opts.nodelay = v != 0
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    s.set_opts(opts);
    Ok(0)
}

pub fn getsockopt(fd: i32, level: i32, name: i32, val: u64, len_at: u64) -> SysResult {
    let (_f, o) = sock(fd)?;
    let bytes = match as_unix(&o) {
        Some(u) => unix_getsockopt(u, level, name)?,
        None => inet_getsockopt(as_socket(&o), level, name)?,
    };
    let mut l = [0u8; 4];
    copy_in(&mut l, len_at)?;
    let room = i32::from_le_bytes(l);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let n = (room as usize).min(bytes.len());
    copy_out(val, &bytes[..n])?;
    copy_out(len_at, &(n as i32).to_le_bytes())?;
    Ok(0)
}

fn inet_getsockopt(s: &Socket, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
    let opts = s.opts();
    let v: i32 = match (level, name) {
        (SOL_SOCKET, SO_RCVTIMEO) => return Ok(timeval_bytes(opts.rcvtimeo)),
        (SOL_SOCKET, SO_SNDTIMEO) => return Ok(timeval_bytes(opts.sndtimeo)),
        (SOL_SOCKET, SO_LINGER) => return Ok(linger_bytes(opts.linger)),
        (SOL_SOCKET, SO_REUSEADDR) => opts.reuseaddr.into(),
        (SOL_SOCKET, SO_REUSEPORT) => opts.reuseport.into(),
        (SOL_SOCKET, SO_KEEPALIVE) => opts.keepalive.into(),
        (SOL_SOCKET, SO_RCVBUF) => opts.rcvbuf as i32,
        (SOL_SOCKET, SO_SNDBUF) => opts.sndbuf as i32,
        (SOL_SOCKET, SO_TYPE) => match s.kind {
            Kind::Stream => SOCK_STREAM as i32,
            Kind::Dgram => SOCK_DGRAM as i32,
        },
        (SOL_SOCKET, SO_ACCEPTCONN) => s.listening().into(),
        (SOL_SOCKET, SO_ERROR) => s.take_error().map_or(0, |e| e.raw()),
        (IPPROTO_IPV6, IPV6_V6ONLY) if s.v6 => opts.v6only.into(),
        (lvl, TCP_NODELAY) if lvl as u32 == IPPROTO_TCP => opts.nodelay.into(),
        _ => return Err(Errno::ENOPROTOOPT),
    };
    Ok(v.to_le_bytes().to_vec())
}
