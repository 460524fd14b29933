//! The host side of the networked runtime tests (`RuntimeTest::net`):
//! free host ports picked per run, the QEMU flags of a virtio-net NIC on
//! user networking forwarding them, and the peer that runs on the host
//! while the guest runs (an HTTP client, a UDP client, a TCP echo
//! server), in a thread whose result is judged with the boot's.
//!
//! Nothing here asserts on time: every wait is a generous deadline that
//! only turns a hang into a failure (a guest still booting is retried).

use crate::Result;
use cairn_runtime_tests::{DataFile, NetRole, RuntimeTest, pattern_bytes};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A started host peer.
pub struct Peer {
    /// QEMU flags for the NIC.
    pub flags: Vec<String>,
    /// Arguments the guest program gets after argv[0] (empty: the
    /// manifest's).
    pub argv: Vec<String>,
    pub handle: JoinHandle<Result<String>>,
    /// Set by the runner when the guest has ended: the peer stops waiting.
    pub stop: Arc<AtomicBool>,
}

/// When the peer gives up: the boot's limit, or the guest's end.
#[derive(Clone)]
pub struct Deadline {
    at: Instant,
    stop: Arc<AtomicBool>,
}

impl Deadline {
    /// `limit` from now, or when `stop` is set.
    pub fn new(limit: Duration, stop: Arc<AtomicBool>) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            stop,
        }
    }

    pub fn over(&self) -> bool {
        Instant::now() >= self.at || self.stop.load(Ordering::Acquire)
    }
}

/// A host TCP port free now (the kernel picks it; it is released at once
/// for QEMU to take).
pub fn free_tcp_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn free_udp_port() -> Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts the host side of `t` (whose boot may take up to `limit`).
pub fn start(t: &RuntimeTest, role: NetRole, limit: Duration) -> Result<Peer> {
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Deadline::new(limit, stop.clone());
    let peer = |flags, argv, handle| Peer {
        flags,
        argv,
        handle,
        stop: stop.clone(),
    };
    match role {
        NetRole::HttpClient {
            guest_port,
            requests,
            connections,
        }
        | NetRole::HttpFlood {
            guest_port,
            requests,
            connections,
        } => {
            let port = free_tcp_port()?;
            let files = www(t);
            let flood = matches!(role, NetRole::HttpFlood { .. });
            Ok(peer(
                crate::qemu::net_flags(&[(port, guest_port)], &[]),
                Vec::new(),
                std::thread::spawn(move || {
                    http_client(port, &files, requests, connections, flood, &deadline)
                }),
            ))
        }
        NetRole::UdpEcho {
            guest_port,
            datagrams,
        } => {
            let port = free_udp_port()?;
            Ok(peer(
                crate::qemu::net_flags(&[], &[(port, guest_port)]),
                Vec::new(),
                std::thread::spawn(move || udp_client(port, datagrams, &deadline)),
            ))
        }
        NetRole::RawFrames {
            echo_port,
            tcp_port,
            frames,
        } => crate::net_garbage::start(echo_port, tcp_port, frames, deadline, stop.clone()),
        NetRole::Nic => Ok(peer(
            crate::qemu::net_flags(&[], &[]),
            Vec::new(),
            std::thread::spawn(|| Ok("a NIC, no peer".to_string())),
        )),
        NetRole::HostServer => {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            let closed = free_tcp_port()?;
            Ok(peer(
                crate::qemu::net_flags(&[], &[]),
                vec![port.to_string(), closed.to_string()],
                std::thread::spawn(move || echo_server(l, &deadline)),
            ))
        }
    }
}

/// The files the guest serves: (URL path, bytes).
pub fn www(t: &RuntimeTest) -> Vec<(String, Vec<u8>)> {
    t.data
        .iter()
        .filter_map(|d| match *d {
            DataFile::Pattern { name, bytes, seed } => Some((
                format!("/www/{name}"),
                pattern_bytes(0, bytes as usize, seed),
            )),
            _ => None,
        })
        .collect()
}

fn left(deadline: &Deadline) -> Result<Duration> {
    if deadline.stop.load(Ordering::Acquire) {
        return Err("host peer: the guest ended first".into());
    }
    deadline
        .at
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "host peer: out of time".to_string())
}

/// One HTTP response: (status, body).
pub fn get(r: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<(u32, Vec<u8>)> {
    r.get_mut().write_all(
        format!("GET {path} HTTP/1.1\r\nHost: cairn\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
    )?;
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before the response",
        ));
    }
    let status: u32 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other(format!("bad length {v:?}")))?;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((status, body))
}

pub fn connect(port: u16, deadline: &Deadline) -> Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let t = left(deadline)?.min(Duration::from_secs(120));
    s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(t)).map_err(|e| e.to_string())?;
    Ok(BufReader::new(s))
}

/// Waits for the guest's server: a request answered.
pub fn wait_for_server(port: u16, deadline: &Deadline) -> Result<()> {
    let mut last = String::new();
    while !deadline.over() {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(s);
            match get(&mut r, "/www/none") {
                Ok((404, _)) => return Ok(()),
                Ok((st, _)) => return Err(format!("GET of a missing file: status {st}")),
                Err(e) => last = e.to_string(),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("the guest's server never answered ({last})"))
}

/// Abuse before the real run: connections opened and dropped, resets with
/// half a request sent, idle connections kept open across the run.
fn flood(port: u16, deadline: &Deadline) -> Result<Vec<TcpStream>> {
    let mut idle = Vec::new();
    for round in 0..4 {
        let mut burst = Vec::new();
        for _ in 0..40 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                burst.push(s);
            }
        }
        for (i, s) in burst.into_iter().enumerate() {
            match i % 4 {
                // Half a request, then a reset (linger 0 is not in std:
                // shutting down both ways with unread data resets).
                0 => {
                    let _ = (&s).write_all(b"GET /www/big HTTP/1.1\r\nHo");
                    let _ = s.shutdown(Shutdown::Both);
                }
                1 => {
                    let _ = (&s).write_all(b"GET /www/big HTTP/1.1\r\n\r\n");
                    drop(s);
                }
                // A response half read, then closed with data unread: the
                // host resets the connection.
                2 if round > 0 => {
                    let _ = (&s).write_all(b"GET /www/big HTTP/1.1\r\n\r\n");
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = (&s).read(&mut [0u8; 16]);
                    drop(s);
                }
                2 if idle.len() < 8 => idle.push(s),
                _ => drop(s),
            }
        }
        left(deadline)?;
    }
    // Garbage and an over-long request.
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.write_all(&[0xffu8; 8192]);
    }
    Ok(idle)
}

fn http_client(
    port: u16,
    files: &[(String, Vec<u8>)],
    requests: usize,
    connections: usize,
    abuse: bool,
    deadline: &Deadline,
) -> Result<String> {
    wait_for_server(port, deadline)?;
    let _idle = if abuse {
        flood(port, deadline)?
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let per = requests.div_ceil(connections.max(1));
    let mut done = 0usize;
    let mut bytes = 0usize;
    for c in 0..connections {
        let mut r = connect(port, deadline)?;
        for i in 0..per.min(requests - done) {
            let (path, want) = &files[(c * 7 + i) % files.len()];
            let (st, body) =
                get(&mut r, path).map_err(|e| format!("request {done} ({path}): {e}"))?;
            if st != 200 {
                return Err(format!("request {done} ({path}): status {st}"));
            }
            if &body != want {
                let at = body.iter().zip(want).position(|(a, b)| a != b);
                return Err(format!(
                    "request {done} ({path}): {} bytes, expected {}, first difference at {at:?}",
                    body.len(),
                    want.len()
                ));
            }
            done += 1;
            bytes += body.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut r = connect(port, deadline)?;
    let (st, body) = get(&mut r, "/quit").map_err(|e| format!("GET /quit: {e}"))?;
    if st != 200 || body != b"bye\n" {
        return Err(format!("GET /quit: status {st}"));
    }
    Ok(format!(
        "{done} requests, {bytes} bytes over {connections} connections in {secs:.1} s ({:.0} requests/s, {:.2} MB/s)",
        done as f64 / secs,
        bytes as f64 / secs / 1e6
    ))
}

fn udp_client(port: u16, datagrams: usize, deadline: &Deadline) -> Result<String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    s.connect(("127.0.0.1", port))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    let mut i = 0;
    let mut resent = 0;
    while i < datagrams {
        left(deadline)?;
        let len = [1usize, 100, 512, 1000, 1400, 1472][i % 6];
        let msg: Vec<u8> = (0..len).map(|k| (k * 31 + i * 7) as u8).collect();
        let mut msg = msg;
        msg[0] = b'D';
        s.send(&msg).map_err(|e| format!("send: {e}"))?;
        match s.recv(&mut buf) {
            Ok(n) if buf[..n] == msg[..] => i += 1,
            Ok(n) => {
                // A late echo of an earlier (resent) datagram: skip.
                if n == 0 {
                    return Err(format!("datagram {i}: empty echo"));
                }
            }
            Err(_) => {
                // The guest is booting, or a datagram was lost.
                resent += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    s.send(b"quit").map_err(|e| format!("send quit: {e}"))?;
    Ok(format!(
        "{datagrams} datagrams echoed ({resent} sent again)"
    ))
}

/// Echoes every connection until it closes (one that starts with `RESET`
/// is closed with data unread: a reset), until the guest has ended.
fn echo_server(l: TcpListener, deadline: &Deadline) -> Result<String> {
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut served = 0;
    let mut bytes = 0;
    loop {
        if deadline.over() {
            return Ok(format!("{served} connections, {bytes} bytes echoed"));
        }
        match l.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(120)))
                    .map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        // The guest asks for a reset: leave what it sends
                        // next unread and close, which resets.
                        // (It answers "OK", then sends more: wait for that
                        // to arrive, unread.)
                        Ok(n) if buf[..n].starts_with(b"RESET") => {
                            let _ = s.write_all(b"OK");
                            let _ = s.peek(&mut buf[..1]);
                            break;
                        }
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            bytes += n;
                        }
                    }
                }
                served += 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
