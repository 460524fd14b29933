//! Ethernet frames built and read by hand for `net_garbage`'s host side
//! (`net_garbage.rs`): Ethernet II, ARP, IPv4, IPv6, UDP, TCP and ICMP
//! headers with correct checksums, so that a malformed field reaches the
//! guest's parser for that field instead of failing an earlier checksum;
//! and the few fields the host reads back from the guest's frames.
//!
//! Nothing here owns a socket or a thread: pure functions of bytes.

pub type Mac = [u8; 6];
pub type Ip4 = [u8; 4];
pub type Ip6 = [u8; 16];

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_ARP: u16 = 0x0806;
pub const ETH_IPV6: u16 = 0x86dd;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const BROADCAST: Mac = [0xff; 6];

pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// The Internet checksum (RFC 1071) of `parts` laid end to end.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP packet for Ethernet/IPv4 (`op` 1 request, 2 reply).
pub fn arp(op: u16, sha: Mac, spa: Ip4, tha: Mac, tpa: Ip4) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0x00, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa);
    p
}

/// An IPv4 header of 20 bytes (plus `options`, padded to 4) before
/// `payload`, its checksum correct for what it claims.
pub fn ipv4_with(
    src: Ip4,
    dst: Ip4,
    proto: u8,
    options: &[u8],
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let opt_len = options.len().div_ceil(4) * 4;
    let hlen = 20 + opt_len;
    let total = (hlen + payload.len()) as u16;
    let mut h = vec![0x40 | (hlen / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(options);
    h.resize(hlen, 0);
    fix_ipv4_checksum(&mut h);
    h.extend_from_slice(payload);
    h
}

pub fn ipv4(src: Ip4, dst: Ip4, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_with(src, dst, proto, &[], 0, payload)
}

/// Recomputes the header checksum of the IPv4 packet `p` over the header
/// length its first byte claims (at least 20, at most what `p` holds).
pub fn fix_ipv4_checksum(p: &mut [u8]) {
    let hlen = (usize::from(p[0] & 0xf) * 4).clamp(20, p.len());
    p[10] = 0;
    p[11] = 0;
    let c = checksum(&[&p[..hlen]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// The IPv4 pseudo-header of a transport checksum.
fn pseudo4(src: Ip4, dst: Ip4, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo6(src: Ip6, dst: Ip6, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

/// A UDP datagram whose checksum covers `pseudo` (IPv4 or IPv6).
fn udp_over(pseudo: &[u8], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::with_capacity(usize::from(len));
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = match checksum(&[pseudo, &u]) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

pub fn udp4(src: Ip4, dst: Ip4, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let pseudo = pseudo4(src, dst, PROTO_UDP, 8 + payload.len());
    udp_over(&pseudo, sport, dport, payload)
}

pub fn udp6(src: Ip6, dst: Ip6, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let pseudo = pseudo6(src, dst, PROTO_UDP, 8 + payload.len());
    udp_over(&pseudo, sport, dport, payload)
}

/// One TCP segment's fields.
pub struct Tcp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Raw option bytes (padded to 4 with zeros); the data offset follows.
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

pub fn tcp4(src: Ip4, dst: Ip4, t: &Tcp) -> Vec<u8> {
    let opt_len = t.options.len().div_ceil(4) * 4;
    let hlen = 20 + opt_len;
    let mut s = Vec::with_capacity(hlen + t.payload.len());
    s.extend_from_slice(&t.sport.to_be_bytes());
    s.extend_from_slice(&t.dport.to_be_bytes());
    s.extend_from_slice(&t.seq.to_be_bytes());
    s.extend_from_slice(&t.ack.to_be_bytes());
    s.push(((hlen / 4) as u8) << 4);
    s.push(t.flags);
    s.extend_from_slice(&64240u16.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(t.options);
    s.resize(hlen, 0);
    s.extend_from_slice(t.payload);
    fix_transport_checksum4(src, dst, PROTO_TCP, &mut s);
    s
}

/// Recomputes the checksum of the TCP or UDP segment `s` (sent from `src`
/// to `dst` over IPv4) over all of `s`.
pub fn fix_transport_checksum4(src: Ip4, dst: Ip4, proto: u8, s: &mut [u8]) {
    let at = if proto == PROTO_TCP { 16 } else { 6 };
    if s.len() < at + 2 {
        return;
    }
    s[at] = 0;
    s[at + 1] = 0;
    let c = checksum(&[&pseudo4(src, dst, proto, s.len()), s]);
    s[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An ICMP (v4) message: type, code, the 4 bytes after the checksum, body.
pub fn icmp4(ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMPv6 message from `src` to `dst` (its checksum covers the
/// pseudo-header).
pub fn icmp6(src: Ip6, dst: Ip6, ty: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(body);
    let c = checksum(&[&pseudo6(src, dst, PROTO_ICMPV6, m.len()), &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An IPv6 header before `payload` (`next`: the first next-header value;
/// the payload length is what follows).
pub fn ipv6(src: Ip6, dst: Ip6, next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.push(next);
    h.push(hop_limit);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// The link-local IPv6 address of `mac` (EUI-64).
pub fn link_local(mac: Mac) -> Ip6 {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 2;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

/// What the host reads of a frame the guest sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// An ARP request for `target` from `mac`.
    ArpRequest {
        mac: Mac,
        target: Ip4,
    },
    /// An ARP reply: `ip` is at `mac`.
    ArpReply {
        mac: Mac,
        ip: Ip4,
    },
    Udp4 {
        src: Ip4,
        sport: u16,
        dport: u16,
        payload: &'a [u8],
    },
    Tcp4 {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
    },
    Icmp4 {
        ty: u8,
        rest: [u8; 4],
    },
    Other,
}

/// Reads the parts of the guest's frame `f` the host acts on.
pub fn parse(f: &[u8]) -> Seen<'_> {
    if f.len() < 14 {
        return Seen::Other;
    }
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let p = &f[14..];
    match ethertype {
        ETH_ARP if p.len() >= 28 => {
            let mac: Mac = p[8..14].try_into().unwrap();
            let spa: Ip4 = p[14..18].try_into().unwrap();
            let tpa: Ip4 = p[24..28].try_into().unwrap();
            match u16::from_be_bytes([p[6], p[7]]) {
                1 => Seen::ArpRequest { mac, target: tpa },
                2 => Seen::ArpReply { mac, ip: spa },
                _ => Seen::Other,
            }
        }
        ETH_IPV4 if p.len() >= 20 && p[0] >> 4 == 4 => {
            let hlen = usize::from(p[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
            if hlen < 20 || total < hlen {
                return Seen::Other;
            }
            let src: Ip4 = p[12..16].try_into().unwrap();
            let t = &p[hlen..total];
            match p[9] {
                PROTO_UDP if t.len() >= 8 => Seen::Udp4 {
                    src,
                    sport: u16::from_be_bytes([t[0], t[1]]),
                    dport: u16::from_be_bytes([t[2], t[3]]),
                    payload: &t[8..],
                },
                PROTO_TCP if t.len() >= 20 => Seen::Tcp4 {
                    sport: u16::from_be_bytes([t[0], t[1]]),
                    dport: u16::from_be_bytes([t[2], t[3]]),
                    seq: u32::from_be_bytes(t[4..8].try_into().unwrap()),
                    ack: u32::from_be_bytes(t[8..12].try_into().unwrap()),
                    flags: t[13],
                },
                PROTO_ICMP if t.len() >= 8 => Seen::Icmp4 {
                    ty: t[0],
                    rest: t[4..8].try_into().unwrap(),
                },
                _ => Seen::Other,
            }
        }
        _ => Seen::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The widely published worked example: 4500 0073 0000 4000 4011
        // [b861] c0a8 0001 c0a8 00c7.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00,
            0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        fix_ipv4_checksum(&mut h);
        assert_eq!(&h[10..12], &[0xb8, 0x61]);
        assert_eq!(checksum(&[&h]), 0);
    }

    #[test]
    fn built_frames_parse_back() {
        let u = udp4([10, 0, 2, 2], [10, 0, 2, 15], 40000, 7777, b"hello");
        let f = ethernet(
            BROADCAST,
            [2; 6],
            ETH_IPV4,
            &ipv4([10, 0, 2, 2], [10, 0, 2, 15], PROTO_UDP, &u),
        );
        assert_eq!(
            parse(&f),
            Seen::Udp4 {
                src: [10, 0, 2, 2],
                sport: 40000,
                dport: 7777,
                payload: b"hello"
            }
        );
        // The UDP checksum verifies over the pseudo-header.
        let pseudo = pseudo4([10, 0, 2, 2], [10, 0, 2, 15], PROTO_UDP, u.len());
        assert_eq!(checksum(&[&pseudo, &u]), 0);
        let a = ethernet(
            BROADCAST,
            [2; 6],
            ETH_ARP,
            &arp(1, [2; 6], [10, 0, 2, 2], [0; 6], [10, 0, 2, 15]),
        );
        assert_eq!(
            parse(&a),
            Seen::ArpRequest {
                mac: [2; 6],
                target: [10, 0, 2, 15]
            }
        );
    }
}
