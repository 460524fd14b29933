//! The socket system calls for AF_INET and AF_INET6 stream (TCP) and
//! datagram (UDP) sockets (AF_INET6 ones dual-stack: IPv4 peers appear
//! as `::ffff:a.b.c.d`): socket, bind, listen, accept/accept4, connect, send/sendto/
//! sendmsg, recv/recvfrom/recvmsg, shutdown, getsockname/getpeername,
//! setsockopt/getsockopt. The sockets themselves are `crate::net::socket`.
//!
//! Kernel-lock context, in the calling thread. No lock is held here:
//! addresses and data are copied in and out around the socket calls.

use super::fs::get_file;
use super::pipe::install;
use super::{SysResult, copy_in, copy_out};
use crate::net::socket::{Kind, MSG_NOSIGNAL, Opts, Socket, raise_sigpipe};
use crate::process::file::{Dst, O_CLOEXEC, O_NONBLOCK, O_RDWR, OpenFile, Src};
use alloc::sync::Arc;
use alloc::vec;
use cairn_unix::errno::Errno;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

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
const TCP_NODELAY: i32 = 1;
const IPPROTO_IPV6: i32 = 41;
const IPV6_V6ONLY: i32 = 26;

/// The socket behind `fd` (`ENOTSOCK` for other files).
fn sock(fd: i32) -> Result<(Arc<OpenFile>, Arc<dyn crate::process::file::FileOps>), Errno> {
    let f = get_file(fd)?;
    let ops = match &f.kind {
        crate::process::file::FileKind::Object(o) if o.as_any().is::<Socket>() => o.clone(),
        _ => return Err(Errno::ENOTSOCK),
    };
    Ok((f, ops))
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

pub fn socket(domain: i32, ty: u32, protocol: i32) -> SysResult {
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

pub fn bind(fd: i32, addr: u64, len: u32) -> SysResult {
    let (_f, o) = sock(fd)?;
    let s = as_socket(&o);
    let (ip, port) = read_addr(addr, len, s.v6)?;
    s.bind(ip, port).map(|_| 0)
}

pub fn listen(fd: i32, backlog: i32) -> SysResult {
    let (_f, o) = sock(fd)?;
    as_socket(&o).listen(backlog).map(|_| 0)
}

pub fn accept4(fd: i32, addr: u64, len_at: u64, flags: u32) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (f, o) = sock(fd)?;
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

pub fn sendto(fd: i32, buf: u64, len: u64, flags: u32, addr: u64, alen: u32) -> SysResult {
    let (f, o) = sock(fd)?;
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
    let mut b = [0u8; 56];
    copy_in(&mut b, msg)?;
    let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
    Ok((u(0), u(8) as u32, u(16), u(24)))
}

pub fn sendmsg(fd: i32, msg: u64, flags: u32) -> SysResult {
    let (f, o) = sock(fd)?;
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
    as_socket(&o).shutdown(how).map(|_| 0)
}

pub fn getsockname(fd: i32, addr: u64, len_at: u64) -> SysResult {
    let (_f, o) = sock(fd)?;
    let s = as_socket(&o);
    let (ip, port) = s.local();
    if addr == 0 || len_at == 0 {
        return Err(Errno::EFAULT);
    }
    write_addr(addr, len_at, s.v6, ip, port).map(|_| 0)
}

pub fn getpeername(fd: i32, addr: u64, len_at: u64) -> SysResult {
    let (_f, o) = sock(fd)?;
    let s = as_socket(&o);
    let (ip, port) = endpoint(s.peer()?);
    if addr == 0 || len_at == 0 {
        return Err(Errno::EFAULT);
    }
    write_addr(addr, len_at, s.v6, ip, port).map(|_| 0)
}

pub fn setsockopt(fd: i32, level: i32, name: i32, val: u64, len: u32) -> SysResult {
    let (_f, o) = sock(fd)?;
    let s = as_socket(&o);
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    copy_in(&mut b, val)?;
    let v = i32::from_le_bytes(b);
    let mut opts: Opts = s.opts();
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
    let s = as_socket(&o);
    let opts = s.opts();
    let v: i32 = match (level, name) {
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
    let mut l = [0u8; 4];
    copy_in(&mut l, len_at)?;
    let room = i32::from_le_bytes(l);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let n = (room as usize).min(4);
    copy_out(val, &v.to_le_bytes()[..n])?;
    copy_out(len_at, &(n as i32).to_le_bytes())?;
    Ok(0)
}
