//! AF_UNIX sockets, the part that is plain data: `sockaddr_un` decoding
//! and encoding, the socket name a path stands for, and the receive queue
//! of one socket ([`Queue`]) with the byte-stream, datagram and
//! sequenced-packet rules Linux applies to it.
//!
//! Owns: the queued data of one direction of a connection (or of a
//! datagram socket's receive side), the attachments that travel with it
//! (SCM_RIGHTS descriptors as an opaque `R`, the sender's address as an
//! opaque `A`), the two ends' shutdown state as seen by the queue (no more
//! writers: end of file after the data; no more reader: `EPIPE`), and the
//! byte count it is limited to. Does not own: waiting, the sockets, the
//! name table, locks (the kernel's `ipc::unix` wraps each queue in its
//! socket's lock).
//!
//! Rules (as Linux's `af_unix`):
//! - a stream read returns what is queued (across writes) up to the
//!   buffer; it stops after the first write that carried descriptors, and
//!   before a later one that carries some, so descriptors arrive with the
//!   bytes they were sent with;
//! - a datagram or sequenced-packet read returns one message, truncated to
//!   the buffer (the rest is dropped; the full length is reported for
//!   `MSG_TRUNC`); a zero-length message is a message;
//! - a stream write queues what fits (at least one byte); a message write
//!   queues the whole message or nothing, `EMSGSIZE` when it could never
//!   fit.
//!
//! Contexts: any (no lock, no waiting, no allocation failure handling
//! beyond `Vec`'s). Nothing here panics on user input.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::Errno;

/// `AF_UNIX`.
pub const AF_UNIX: u16 = 1;
/// Bytes of `sun_path`.
pub const SUN_PATH_MAX: usize = 108;
/// `sizeof(struct sockaddr_un)`.
pub const SOCKADDR_UN_SIZE: usize = 2 + SUN_PATH_MAX;

/// The three AF_UNIX socket types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockType {
    /// `SOCK_STREAM`: bytes, no boundaries.
    Stream,
    /// `SOCK_DGRAM`: messages, connectionless.
    Dgram,
    /// `SOCK_SEQPACKET`: messages over a connection.
    Seqpacket,
}

impl SockType {
    /// From the low bits of `socket`'s type argument.
    pub fn from_raw(ty: u32) -> Option<SockType> {
        match ty {
            1 => Some(SockType::Stream),
            2 => Some(SockType::Dgram),
            5 => Some(SockType::Seqpacket),
            _ => None,
        }
    }

    /// The `SOCK_*` value (`SO_TYPE`).
    pub fn raw(self) -> i32 {
        match self {
            SockType::Stream => 1,
            SockType::Dgram => 2,
            SockType::Seqpacket => 5,
        }
    }

    /// Connection-oriented (listen/accept/connect make pairs).
    pub fn connected(self) -> bool {
        self != SockType::Dgram
    }
}

/// A socket's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnixAddr {
    /// No name (an unbound socket, a socketpair end, a connecting one).
    Unnamed,
    /// A filesystem path, as the program gave it (without the NUL).
    Path(Vec<u8>),
    /// An abstract name: the bytes after the leading NUL.
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// Decodes the first `len` bytes of a `sockaddr_un` (`bytes` holds at
    /// least `min(len, SOCKADDR_UN_SIZE)` of them). Length 2 (the family
    /// only) is [`UnixAddr::Unnamed`] (autobind for `bind`).
    pub fn decode(bytes: &[u8], len: usize) -> Result<UnixAddr, Errno> {
        if !(2..=SOCKADDR_UN_SIZE).contains(&len) || bytes.len() < len {
            return Err(Errno::EINVAL);
        }
        if u16::from_le_bytes([bytes[0], bytes[1]]) != AF_UNIX {
            return Err(Errno::EINVAL);
        }
        let path = &bytes[2..len];
        if path.is_empty() {
            return Ok(UnixAddr::Unnamed);
        }
        if path[0] == 0 {
            return Ok(UnixAddr::Abstract(path[1..].to_vec()));
        }
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        Ok(UnixAddr::Path(path[..end].to_vec()))
    }

    /// The `sockaddr_un` Linux reports for it (the length is the
    /// vector's): the family alone for an unnamed socket, a path with its
    /// NUL, an abstract name with its leading NUL and no terminator.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = AF_UNIX.to_le_bytes().to_vec();
        match self {
            UnixAddr::Unnamed => {}
            UnixAddr::Path(p) => {
                v.extend_from_slice(p);
                v.push(0);
            }
            UnixAddr::Abstract(a) => {
                v.push(0);
                v.extend_from_slice(a);
            }
        }
        v.truncate(SOCKADDR_UN_SIZE);
        v
    }

    /// The key of the name table: a path made absolute against `cwd` and
    /// cleaned lexically (`.`, `..`, repeated slashes), so that two
    /// spellings of one path are one name; abstract names as they are.
    /// `None` for an unnamed address.
    pub fn key(&self, cwd: &[u8]) -> Option<UnixAddr> {
        match self {
            UnixAddr::Unnamed => None,
            UnixAddr::Abstract(_) => Some(self.clone()),
            UnixAddr::Path(p) => Some(UnixAddr::Path(absolute(cwd, p))),
        }
    }
}

/// `path` made absolute against `cwd` and cleaned lexically.
pub fn absolute(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let base: &[u8] = if path.first() == Some(&b'/') {
        b""
    } else {
        cwd
    };
    for c in base.split(|&b| b == b'/').chain(path.split(|&b| b == b'/')) {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

struct Msg<R, A> {
    data: Vec<u8>,
    /// Bytes of `data` already read (streams).
    off: usize,
    rights: Option<R>,
    from: Option<A>,
}

/// What one read took.
#[derive(Debug, PartialEq, Eq)]
pub struct Received<R, A> {
    /// Bytes copied into the buffer.
    pub n: usize,
    /// The message's whole length (messages; `n` for streams).
    pub full: usize,
    /// Descriptors that came with the data.
    pub rights: Option<R>,
    /// The sender's address (datagrams).
    pub from: Option<A>,
}

/// The receive queue of one socket (one direction of a pair).
pub struct Queue<R, A> {
    ty: SockType,
    msgs: VecDeque<Msg<R, A>>,
    bytes: usize,
    capacity: usize,
    eof: bool,
    closed: bool,
}

impl<R, A> Queue<R, A> {
    /// An empty queue of `ty` holding at most `capacity` bytes.
    pub fn new(ty: SockType, capacity: usize) -> Self {
        Queue {
            ty,
            msgs: VecDeque::new(),
            bytes: 0,
            capacity: capacity.max(1),
            eof: false,
            closed: false,
        }
    }

    /// Queued bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The byte limit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `FIONREAD` as Linux reports it: every queued byte of a stream or
    /// sequenced-packet socket, the next datagram's length.
    pub fn readable_bytes(&self) -> usize {
        match self.ty {
            SockType::Dgram => self.msgs.front().map_or(0, |m| m.data.len()),
            _ => self.bytes,
        }
    }

    /// A read would not wait: data, or end of file.
    pub fn readable(&self) -> bool {
        !self.msgs.is_empty() || self.eof
    }

    /// A write of one byte (stream) or a small message would not wait
    /// (or would fail at once because the reader is gone).
    pub fn writable(&self) -> bool {
        self.closed || self.bytes < self.capacity
    }

    /// No writer will add more: reads return end of file once empty.
    pub fn set_eof(&mut self) {
        self.eof = true;
    }

    /// Whether [`Queue::set_eof`] was called.
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// No reader will take more: writes fail with `EPIPE`; what is queued
    /// is dropped and returned (descriptors the caller releases).
    pub fn close_reader(&mut self) -> Vec<R> {
        self.closed = true;
        self.bytes = 0;
        self.msgs.drain(..).filter_map(|m| m.rights).collect()
    }

    /// The reader shut its side down (`SHUT_RD`): what is queued can
    /// still be read, then end of file; writes fail with `EPIPE`.
    pub fn shut_read(&mut self) {
        self.closed = true;
        self.eof = true;
    }

    /// Whether [`Queue::close_reader`] or [`Queue::shut_read`] was called.
    pub fn reader_closed(&self) -> bool {
        self.closed
    }

    /// Queues `data` (with `rights` and the sender `from`): the bytes
    /// taken. `EAGAIN`: no room now (nothing queued, `rights` dropped:
    /// the caller keeps its own copy and retries); `EPIPE`: no reader;
    /// `EMSGSIZE`: a message larger than the queue can ever hold.
    pub fn push(
        &mut self,
        data: &[u8],
        rights: Option<R>,
        from: Option<A>,
    ) -> Result<usize, Errno> {
        if self.closed {
            return Err(Errno::EPIPE);
        }
        let free = self.capacity.saturating_sub(self.bytes);
        let take = match self.ty {
            SockType::Stream => {
                if data.is_empty() {
                    return Ok(0);
                }
                if free == 0 {
                    return Err(Errno::EAGAIN);
                }
                data.len().min(free)
            }
            _ => {
                if data.len() > self.capacity {
                    return Err(Errno::EMSGSIZE);
                }
                if data.len() > free {
                    return Err(Errno::EAGAIN);
                }
                data.len()
            }
        };
        self.msgs.push_back(Msg {
            data: data[..take].to_vec(),
            off: 0,
            rights,
            from,
        });
        self.bytes += take;
        Ok(take)
    }

    /// Takes (or with `peek` copies) data into `out`. `None`: nothing
    /// queued and no end of file (the caller waits); `n == 0` with no
    /// message: end of file.
    pub fn pop(&mut self, out: &mut [u8], peek: bool) -> Option<Received<R, A>>
    where
        R: Clone,
        A: Clone,
    {
        if self.msgs.is_empty() {
            return self.eof.then_some(Received {
                n: 0,
                full: 0,
                rights: None,
                from: None,
            });
        }
        if self.ty != SockType::Stream {
            let m = self.msgs.front()?;
            let n = m.data.len().min(out.len());
            out[..n].copy_from_slice(&m.data[..n]);
            let full = m.data.len();
            if peek {
                return Some(Received {
                    n,
                    full,
                    rights: m.rights.clone(),
                    from: m.from.clone(),
                });
            }
            let m = self.msgs.pop_front()?;
            self.bytes -= full;
            return Some(Received {
                n,
                full,
                rights: m.rights,
                from: m.from,
            });
        }
        let mut n = 0;
        let mut rights = None;
        let mut i = 0;
        while i < self.msgs.len() && n < out.len() {
            let m = &mut self.msgs[i];
            if m.rights.is_some() && (n > 0 || rights.is_some()) {
                break;
            }
            let k = (m.data.len() - m.off).min(out.len() - n);
            out[n..n + k].copy_from_slice(&m.data[m.off..m.off + k]);
            n += k;
            let carried = if peek {
                m.rights.clone()
            } else {
                m.rights.take()
            };
            if !peek {
                m.off += k;
            }
            let done = m.off == m.data.len();
            if carried.is_some() {
                rights = carried;
            }
            if !peek && done {
                self.msgs.pop_front();
            } else {
                i += 1;
            }
            if rights.is_some() {
                break;
            }
        }
        if !peek {
            self.bytes -= n;
        }
        Some(Received {
            n,
            full: n,
            rights,
            from: None,
        })
    }
}
