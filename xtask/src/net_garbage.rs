//! The host side of `net_garbage`: malformed frames straight onto the
//! guest's link. QEMU's `dgram` netdev hands each frame the guest's
//! virtio-net sends to a host UDP socket and injects each datagram sent to
//! it as one frame, so the host plays the whole link: it answers ARP for
//! the gateway the manifest names (10.0.2.2) and sends, from a fixed seed,
//! frames no stack should accept (random bytes, truncations, flipped bits
//! under a checksum, impossible header and datagram lengths, fragments,
//! TCP option soup, IPv6 extension and NDP option chains, ARP oddities,
//! VLAN tags, frames longer than the MTU, SYN floods left half-open).
//! Between batches, valid requests whose answers prove the guest's stack
//! and program still work: a UDP echo, an ICMP echo, a TCP handshake whose
//! data the guest acknowledges.
//!
//! What fails the test: a probe never answered before the boot's limit
//! (the kernel died or its stack or the program hung), an echo of a
//! datagram the guest had to drop (a bad checksum or an over-long length
//! accepted), or the guest's status (a panic ends the boot without it).
//! Nothing asserts on time: waits are retries under the boot's deadline.

use crate::Result;
use crate::net_frames::{self as nf, Ip4, Ip6, Mac, Seen, Tcp};
use crate::net_peer::{Deadline, Peer};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const HOST_MAC: Mac = [0x52, 0x54, 0x00, 0xfe, 0x00, 0x02];
const HOST_IP: Ip4 = [10, 0, 2, 2];
const GUEST_IP: Ip4 = [10, 0, 2, 15];
/// The host's UDP source port of the valid echo requests.
const PROBE_PORT: u16 = 50000;
/// Malformed frames between two probes.
const BATCH: usize = 50;
/// The payload prefix of datagrams the guest must drop unread.
const MUST_DROP: &[u8] = b"bad-";

/// Starts the peer: the QEMU flags of a virtio-net NIC on a dgram netdev
/// whose far end is this host socket; the guest program gets
/// `echo_port tcp_port`.
pub fn start(
    echo_port: u16,
    tcp_port: u16,
    frames: usize,
    deadline: Deadline,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Peer> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let host_port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let qemu_port = crate::net_peer::free_udp_port()?;
    let netdev = format!(
        "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={qemu_port},\
         remote.type=inet,remote.host=127.0.0.1,remote.port={host_port}"
    );
    let flags = vec![
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    let qemu: SocketAddr = ([127, 0, 0, 1], qemu_port).into();
    let handle = std::thread::spawn(move || {
        let mut link = Link {
            sock,
            qemu,
            guest_mac: nf::BROADCAST,
            sent: 0,
            received: 0,
            resent: 0,
            accepted_bad: Vec::new(),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
        };
        let verdict = run(&mut link, echo_port, tcp_port, frames, &deadline);
        // The program ends at "quit", sent until the guest is gone (also
        // after a failure, so that the boot ends without waiting for its
        // limit).
        while !deadline.over() {
            link.udp_to_guest(PROBE_PORT, echo_port, b"quit")?;
            link.recv(Duration::from_millis(500))?;
        }
        verdict
    });
    Ok(Peer {
        flags,
        argv: vec![echo_port.to_string(), tcp_port.to_string()],
        handle,
        stop,
    })
}

/// A fixed-seed generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Fewer than `max` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

/// The host's end of the guest's link.
struct Link {
    sock: UdpSocket,
    qemu: SocketAddr,
    guest_mac: Mac,
    sent: u64,
    received: u64,
    /// Requests of probes sent again (no answer within a second).
    resent: u64,
    /// Datagrams the guest echoed although it had to drop them.
    accepted_bad: Vec<String>,
    rng: Rng,
}

impl Link {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.sock
            .send_to(frame, self.qemu)
            .map_err(|e| format!("send to QEMU: {e}"))?;
        self.sent += 1;
        Ok(())
    }

    /// A frame to the guest from the host.
    fn send_to_guest(&mut self, ethertype: u16, payload: &[u8]) -> Result<()> {
        let f = nf::ethernet(self.guest_mac, HOST_MAC, ethertype, payload);
        self.send(&f)
    }

    fn udp_to_guest(&mut self, sport: u16, dport: u16, payload: &[u8]) -> Result<()> {
        let u = nf::udp4(HOST_IP, GUEST_IP, sport, dport, payload);
        self.send_to_guest(
            nf::ETH_IPV4,
            &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_UDP, &u),
        )
    }

    fn tcp_to_guest(&mut self, t: &Tcp) -> Result<()> {
        let s = nf::tcp4(HOST_IP, GUEST_IP, t);
        self.send_to_guest(
            nf::ETH_IPV4,
            &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_TCP, &s),
        )
    }

    /// The next frame from the guest within `wait`, after the link's own
    /// duties: ARP for the host's address is answered, and an echo of a
    /// datagram the guest had to drop is recorded.
    fn recv(&mut self, wait: Duration) -> Result<Option<Vec<u8>>> {
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65536];
        let n = match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(_) => return Ok(None),
        };
        buf.truncate(n);
        self.received += 1;
        match nf::parse(&buf) {
            Seen::ArpRequest { mac, target } if target == HOST_IP => {
                let a = nf::arp(2, HOST_MAC, HOST_IP, mac, GUEST_IP);
                self.send(&nf::ethernet(mac, HOST_MAC, nf::ETH_ARP, &a))?;
            }
            Seen::Udp4 { payload, .. } if payload.starts_with(MUST_DROP) => {
                let what = String::from_utf8_lossy(&payload[..payload.len().min(24)]).into_owned();
                self.accepted_bad.push(what);
            }
            _ => {}
        }
        Ok(Some(buf))
    }

    /// Sends `request` (again every second) until a frame from the guest
    /// satisfies `answer`; `what` names the exchange in a failure.
    fn exchange(
        &mut self,
        what: &str,
        request: &mut dyn FnMut(&mut Link) -> Result<()>,
        answer: &mut dyn FnMut(&Seen) -> bool,
        deadline: &Deadline,
    ) -> Result<()> {
        let mut first = true;
        loop {
            if !first {
                self.resent += 1;
            }
            first = false;
            if deadline.over() {
                return Err(format!(
                    "{what}: no answer before the guest ended or the limit ({} frames sent, {} received)",
                    self.sent, self.received
                ));
            }
            request(self)?;
            let mut waited = Duration::ZERO;
            while waited < Duration::from_secs(1) {
                let step = Duration::from_millis(100);
                if let Some(f) = self.recv(step)?
                    && answer(&nf::parse(&f))
                {
                    return Ok(());
                }
                waited += step;
            }
        }
    }

    /// Takes what the guest sent so far, without waiting long.
    fn drain(&mut self) -> Result<()> {
        while self.recv(Duration::from_millis(1))?.is_some() {}
        Ok(())
    }
}

fn run(
    link: &mut Link,
    echo_port: u16,
    tcp_port: u16,
    frames: usize,
    deadline: &Deadline,
) -> Result<String> {
    // The guest's MAC, from its answer to ARP (it answers once its stack
    // is up; the program may start later).
    let mut mac = None;
    link.exchange(
        "ARP for the guest",
        &mut |l| {
            let a = nf::arp(1, HOST_MAC, HOST_IP, [0; 6], GUEST_IP);
            l.send(&nf::ethernet(nf::BROADCAST, HOST_MAC, nf::ETH_ARP, &a))
        },
        &mut |s| match *s {
            Seen::ArpReply { mac: m, ip } if ip == GUEST_IP => {
                mac = Some(m);
                true
            }
            _ => false,
        },
        deadline,
    )?;
    link.guest_mac = mac.expect("set by the answer");
    let mut probes = 0usize;
    let mut tcp_ok = 0usize;
    let batches = frames.div_ceil(BATCH);
    for b in 0..batches {
        echo_probe(link, echo_port, b, deadline)?;
        probes += 1;
        for _ in 0..BATCH {
            let mut f = garbage(link, echo_port, tcp_port);
            // An empty datagram is end of stream to QEMU's dgram netdev,
            // which then stops reading the link (no wire has empty frames).
            if f.is_empty() {
                f.push(0);
            }
            link.send(&f)?;
        }
        link.drain()?;
        if b % 8 == 0 {
            ping_probe(link, b as u16, deadline)?;
            probes += 1;
        }
        if b % 16 == 0 {
            syn_flood(link, tcp_port, b, deadline)?;
            tcp_probe(link, tcp_port, b, deadline)?;
            tcp_ok += 1;
        }
    }
    echo_probe(link, echo_port, batches, deadline)?;
    if !link.accepted_bad.is_empty() {
        return Err(format!(
            "the guest echoed {} datagrams it had to drop (bad checksum or length), first {:?}",
            link.accepted_bad.len(),
            link.accepted_bad[0]
        ));
    }
    Ok(format!(
        "{} malformed frames in {batches} batches, {probes} echo probes and {tcp_ok} TCP handshakes answered ({} requests sent again); {} frames sent, {} received",
        batches * BATCH,
        link.resent,
        link.sent,
        link.received
    ))
}

/// A valid UDP datagram to the echo port, answered with the same bytes.
fn echo_probe(link: &mut Link, port: u16, n: usize, deadline: &Deadline) -> Result<()> {
    let msg = format!("ok-{n}").into_bytes();
    link.exchange(
        &format!("UDP echo probe {n}"),
        &mut |l| l.udp_to_guest(PROBE_PORT, port, &msg),
        &mut |s| matches!(*s, Seen::Udp4 { sport, dport, payload, .. } if sport == port && dport == PROBE_PORT && payload == msg.as_slice()),
        deadline,
    )
}

/// A valid ICMP echo request, answered by an echo reply of the same id.
fn ping_probe(link: &mut Link, id: u16, deadline: &Deadline) -> Result<()> {
    let rest = [(id >> 8) as u8, id as u8, 0, 1];
    let m = nf::icmp4(8, 0, rest, b"cairn ping");
    link.exchange(
        &format!("ICMP echo {id}"),
        &mut |l| {
            l.send_to_guest(
                nf::ETH_IPV4,
                &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_ICMP, &m),
            )
        },
        &mut |s| matches!(*s, Seen::Icmp4 { ty: 0, rest: r } if r == rest),
        deadline,
    )
}

/// `SYN`s from many ports to the listener, never completed: half-open
/// connections the guest must not keep at the cost of new ones. Returns
/// once the guest answered each (SYN-ACK: held half-open; reset:
/// refused), so that the probe after it meets a listener that has seen
/// the whole flood.
fn syn_flood(link: &mut Link, port: u16, round: usize, deadline: &Deadline) -> Result<()> {
    const FLOOD: u16 = 32;
    let base = 20000 + (round as u16 % 64) * FLOOD;
    let seqs: Vec<u32> = (0..FLOOD).map(|_| link.rng.next() as u32).collect();
    let mut answered = vec![false; usize::from(FLOOD)];
    while answered.contains(&false) {
        if deadline.over() {
            return Err(format!(
                "SYN flood {round}: {} of {FLOOD} SYNs never answered",
                answered.iter().filter(|a| !**a).count()
            ));
        }
        for k in 0..FLOOD {
            if !answered[usize::from(k)] {
                link.tcp_to_guest(&Tcp {
                    sport: base + k,
                    dport: port,
                    seq: seqs[usize::from(k)],
                    ack: 0,
                    flags: nf::TCP_SYN,
                    options: &[2, 4, 0x05, 0xb4],
                    payload: &[],
                })?;
            }
        }
        let mut waited = Duration::ZERO;
        while waited < Duration::from_secs(1) && answered.contains(&false) {
            let step = Duration::from_millis(100);
            if let Some(f) = link.recv(step)?
                && let Seen::Tcp4 {
                    sport,
                    dport,
                    flags,
                    ..
                } = nf::parse(&f)
                && sport == port
                && (base..base + FLOOD).contains(&dport)
                && flags & (nf::TCP_SYN | nf::TCP_RST) != 0
            {
                answered[usize::from(dport - base)] = true;
            }
            waited += step;
        }
    }
    Ok(())
}

/// A whole connection by hand: SYN, the guest's SYN-ACK, ACK with 5 bytes
/// the guest must acknowledge, then a reset.
fn tcp_probe(link: &mut Link, port: u16, round: usize, deadline: &Deadline) -> Result<()> {
    let sport = 40000 + round as u16;
    let iss = link.rng.next() as u32;
    let mut theirs = 0u32;
    let mut refused = false;
    link.exchange(
        &format!("TCP handshake {round} (SYN-ACK)"),
        &mut |l| {
            l.tcp_to_guest(&Tcp {
                sport,
                dport: port,
                seq: iss,
                ack: 0,
                flags: nf::TCP_SYN,
                options: &[2, 4, 0x05, 0xb4],
                payload: &[],
            })
        },
        &mut |s| match *s {
            Seen::Tcp4 {
                sport: gs,
                dport,
                seq,
                ack,
                flags,
            } if gs == port
                && dport == sport
                && flags & (nf::TCP_SYN | nf::TCP_ACK) == nf::TCP_SYN | nf::TCP_ACK
                && ack == iss.wrapping_add(1) =>
            {
                theirs = seq;
                true
            }
            Seen::Tcp4 {
                sport: gs,
                dport,
                flags,
                ..
            } if gs == port && dport == sport && flags & nf::TCP_RST != 0 => {
                refused = true;
                true
            }
            _ => false,
        },
        deadline,
    )?;
    if refused {
        return Err(format!(
            "TCP handshake {round}: the listener reset the connection (half-open connections of a SYN flood held its whole backlog)"
        ));
    }
    let data = b"hello";
    link.exchange(
        &format!("TCP data {round} (acknowledged)"),
        &mut |l| {
            l.tcp_to_guest(&Tcp {
                sport,
                dport: port,
                seq: iss.wrapping_add(1),
                ack: theirs.wrapping_add(1),
                flags: nf::TCP_ACK | nf::TCP_PSH,
                options: &[],
                payload: data,
            })
        },
        &mut |s| match *s {
            Seen::Tcp4 {
                sport: gs,
                dport,
                ack,
                flags,
                ..
            } if gs == port && dport == sport && flags & nf::TCP_ACK != 0 => {
                ack == iss.wrapping_add(1 + data.len() as u32)
            }
            _ => false,
        },
        deadline,
    )?;
    link.tcp_to_guest(&Tcp {
        sport,
        dport: port,
        seq: iss.wrapping_add(1 + data.len() as u32),
        ack: 0,
        flags: nf::TCP_RST,
        options: &[],
        payload: &[],
    })
}

/// One malformed frame (the kinds in turn, their contents from the seed).
fn garbage(link: &mut Link, echo_port: u16, tcp_port: u16) -> Vec<u8> {
    let g = link.guest_mac;
    let r = &mut link.rng;
    let kind = r.below(12);
    let tag = format!("bad-{}", r.next() % 1_000_000).into_bytes();
    let valid_udp = |payload: &[u8]| {
        let u = nf::udp4(HOST_IP, GUEST_IP, PROBE_PORT, echo_port, payload);
        nf::ethernet(
            g,
            HOST_MAC,
            nf::ETH_IPV4,
            &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_UDP, &u),
        )
    };
    match kind {
        // Random bytes, to the guest, to everyone or to no one.
        0 => {
            let n = r.below(1600);
            let mut f = r.bytes(n);
            if f.len() >= 6 && r.below(2) == 0 {
                f[..6].copy_from_slice(if r.below(2) == 0 { &g } else { &nf::BROADCAST });
            }
            f
        }
        // A datagram to the echo port cut short anywhere.
        1 => {
            let mut f = valid_udp(&tag);
            let n = r.below(f.len());
            f.truncate(n);
            f
        }
        // One byte of the IP or UDP header or payload changed under the
        // checksums (a UDP checksum turned zero would mean "none": left).
        2 => {
            let mut f = valid_udp(&tag);
            let at = 14 + r.below(f.len() - 14);
            f[at] ^= 1 + r.below(255) as u8;
            if f[40] == 0 && f[41] == 0 {
                f[40] = 1;
            }
            f
        }
        // The UDP length beyond the datagram (checksums right for the
        // bytes sent): the guest must drop it.
        3 => {
            let mut u = nf::udp4(HOST_IP, GUEST_IP, PROBE_PORT, echo_port, &tag);
            let claimed = u.len() as u16 + 1 + r.below(2000) as u16;
            u[4..6].copy_from_slice(&claimed.to_be_bytes());
            nf::fix_transport_checksum4(HOST_IP, GUEST_IP, nf::PROTO_UDP, &mut u);
            nf::ethernet(
                g,
                HOST_MAC,
                nf::ETH_IPV4,
                &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_UDP, &u),
            )
        }
        // An IPv4 header with any version/length/flags/fragment/protocol
        // whose checksum is right for what it claims.
        4 => {
            let body_len = r.below(200);
            let mut p = nf::ipv4(HOST_IP, GUEST_IP, r.next() as u8, &r.bytes(body_len));
            p[0] = if r.below(4) == 0 {
                r.next() as u8
            } else {
                0x40 | r.below(16) as u8
            };
            if r.below(2) == 0 {
                let total = r.next() as u16;
                p[2..4].copy_from_slice(&total.to_be_bytes());
            }
            p[6] = r.next() as u8;
            p[7] = r.next() as u8;
            p[8] = r.below(3) as u8; // TTL 0..2
            let opts = r.bytes(usize::from(p[0] & 0xf).saturating_sub(5) * 4);
            let hl = (20 + opts.len()).min(p.len());
            p[20..hl].copy_from_slice(&opts[..hl - 20]);
            nf::fix_ipv4_checksum(&mut p);
            nf::ethernet(g, HOST_MAC, nf::ETH_IPV4, &p)
        }
        // Fragments of a datagram to the echo port, at any offset.
        5 => {
            let u = nf::udp4(HOST_IP, GUEST_IP, PROBE_PORT, echo_port, &tag);
            let frag = (r.below(2) as u16) << 13 | r.below(8192) as u16;
            let p = nf::ipv4_with(HOST_IP, GUEST_IP, nf::PROTO_UDP, &[], frag | 0x2000, &u);
            nf::ethernet(g, HOST_MAC, nf::ETH_IPV4, &p)
        }
        // TCP to the listener or a closed port: any flags, any data
        // offset, option soup (lengths 0, 1 and past the header).
        6 => {
            let opts = r.some_bytes(40);
            let payload = r.some_bytes(100);
            let mut s = nf::tcp4(
                HOST_IP,
                GUEST_IP,
                &Tcp {
                    sport: 1024 + r.below(60000) as u16,
                    dport: if r.below(2) == 0 {
                        tcp_port
                    } else {
                        r.next() as u16
                    },
                    seq: r.next() as u32,
                    ack: r.next() as u32,
                    flags: r.next() as u8,
                    options: &opts,
                    payload: &payload,
                },
            );
            if r.below(3) == 0 {
                s[12] = (r.below(16) as u8) << 4;
            }
            nf::fix_transport_checksum4(HOST_IP, GUEST_IP, nf::PROTO_TCP, &mut s);
            nf::ethernet(
                g,
                HOST_MAC,
                nf::ETH_IPV4,
                &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_TCP, &s),
            )
        }
        // ICMP of any type and code; errors quoting a truncated header.
        7 => {
            let body = r.some_bytes(120);
            let rest = [
                r.next() as u8,
                r.next() as u8,
                r.next() as u8,
                r.next() as u8,
            ];
            let m = nf::icmp4(r.below(20) as u8, r.below(16) as u8, rest, &body);
            nf::ethernet(
                g,
                HOST_MAC,
                nf::ETH_IPV4,
                &nf::ipv4(HOST_IP, GUEST_IP, nf::PROTO_ICMP, &m),
            )
        }
        // ARP with odd sizes and operations, claims on the guest's own
        // address, truncations.
        8 => {
            let spa = if r.below(2) == 0 { GUEST_IP } else { HOST_IP };
            let mut a = nf::arp(r.below(5) as u16, HOST_MAC, spa, g, GUEST_IP);
            if r.below(2) == 0 {
                a[4] = r.next() as u8;
                a[5] = r.next() as u8;
            }
            let n = a.len() - r.below(a.len());
            a.truncate(n);
            let dst = if r.below(2) == 0 { nf::BROADCAST } else { g };
            nf::ethernet(dst, HOST_MAC, nf::ETH_ARP, &a)
        }
        // IPv6 to the guest's link-local address: extension header chains
        // of any lengths, NDP with options of length 0 and past the end,
        // payload lengths that lie.
        9 => {
            let src: Ip6 = nf::link_local(HOST_MAC);
            let dst: Ip6 = nf::link_local(g);
            let mut payload = Vec::new();
            let next = match r.below(3) {
                0 => {
                    // Hop-by-hop / routing / fragment / destination
                    // options headers chained, then anything.
                    for _ in 0..1 + r.below(6) {
                        let kinds = [0u8, 43, 44, 60];
                        payload.push(kinds[r.below(4)]);
                        let len = r.below(3) as u8;
                        payload.push(len);
                        payload.extend(r.bytes(6 + 8 * usize::from(len)));
                    }
                    payload.push(r.next() as u8);
                    0
                }
                1 => {
                    // Neighbor solicitation / advertisement / router
                    // advertisement with option soup.
                    let ty = [133u8, 134, 135, 136, 137][r.below(5)];
                    let n = 4 + 16 * r.below(2);
                    let mut body = r.bytes(n);
                    for _ in 0..r.below(4) {
                        body.push(r.below(40) as u8);
                        body.push(r.below(3) as u8); // 0: length zero
                        body.extend(r.bytes(6));
                    }
                    payload = nf::icmp6(src, dst, ty, r.below(2) as u8, &body);
                    nf::PROTO_ICMPV6
                }
                _ => {
                    payload = nf::udp6(src, dst, PROBE_PORT, echo_port, &tag);
                    nf::PROTO_UDP
                }
            };
            let hop = if r.below(2) == 0 { 255 } else { r.next() as u8 };
            let mut p = nf::ipv6(src, dst, next, hop, &payload);
            if r.below(3) == 0 {
                let lie = r.next() as u16;
                p[4..6].copy_from_slice(&lie.to_be_bytes());
            }
            nf::ethernet(g, HOST_MAC, nf::ETH_IPV6, &p)
        }
        // VLAN tags, unknown ethertypes, runts.
        10 => {
            let ethertype = [0x8100u16, 0x88a8, 0x0000, 0xffff, 0x05dc][r.below(5)];
            let body = r.some_bytes(64);
            let mut f = nf::ethernet(g, HOST_MAC, ethertype, &body);
            f.truncate(12 + r.below(f.len() - 11));
            f
        }
        // Longer than the MTU (the device drops what exceeds the
        // receive buffers; the rest must be refused by the stack).
        // (Not a datagram to drop: what follows its IP length is padding.)
        _ => {
            let mut f = valid_udp(b"long");
            let extra = 1 + r.below(3000);
            f.extend(std::iter::repeat_n(0xa5, extra));
            f
        }
    }
}
