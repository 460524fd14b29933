//! The network stack: the virtio-net device under smoltcp's interface and
//! socket set, polled in bh context, and the readiness of the sockets
//! programs hold ([`socket`]).
//!
//! | item | owns |
//! |---|---|
//! | [`STACK`] | the one interface: smoltcp's `Interface`, `SocketSet`, the NIC's rings, the watch list (socket handle → the file's readiness source), orphaned handles |
//! | [`init`] | probing the first virtio-net function (boot) |
//! | [`configure`] | the address: the manifest's `ipaddr`/`netmask`/`gateway`, or DHCP |
//! | [`poll`] | one turn of the stack, then notifies the sockets whose state changed |
//! | [`socket`] | the `FileOps` of AF_INET stream and datagram sockets |
//!
//! What it does not own: the syscall ABI (`syscall::net`), the driver's
//! rings' layout (`cairn_drivers::virtio::net`).
//!
//! **Contexts.** [`poll`] runs in bh (the NIC's interrupt queues it
//! through the driver's coalesced bh service; a 10 ms kernel timer runs it
//! for TCP's timers) and in kernel-lock context (after a syscall queued
//! data, so it leaves at once). [`with`]: kernel-lock or bh.
//!
//! **Locks.** `net.stack` (IrqSpinLock: bh takes it) around [`Stack`];
//! ordered after `net.socket` (a socket's own state, kernel-lock only)
//! and before the heaps (every section runs inside `bh_safe_alloc`: what
//! smoltcp allocates under it may be freed by bh). Readiness sources are
//! notified after it is released (`wait.subscribers` is never taken under
//! it). Never held across a user copy or a sleep.

pub mod socket;

use crate::heaps::global::{charge_buffer, release_buffer};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use cairn_drivers::virtio::net::Nic;
use cairn_sync::cpu::bh_safe_alloc;
use cairn_sync::{IrqSpinLock, LockClass};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpCidr, IpListenEndpoint, Ipv4Address, Ipv4Cidr, Ipv6Address,
    Ipv6Cidr,
};

pub static STACK_CLASS: LockClass = LockClass::new("net.stack");

/// The interface and its sockets.
/// Boxed: smoltcp's interface and the NIC's rings are large for a 32 KiB
/// bh stack or a 64 KiB thread stack to move around.
pub static STACK: IrqSpinLock<Option<alloc::boxed::Box<Stack>>> =
    IrqSpinLock::new(&STACK_CLASS, None);

/// Whether a NIC was found (the stack exists).
static PRESENT: AtomicBool = AtomicBool::new(false);

/// What a socket file shares with the stack: its readiness source.
pub struct Shared {
    pub ready: crate::sched::wait::Pollable,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        bh_safe_alloc(|| {
            Arc::new(Shared {
                ready: crate::sched::wait::Pollable::new(),
            })
        })
    }
}

/// One smoltcp socket a file watches.
struct Watch {
    handle: SocketHandle,
    file: Weak<Shared>,
    /// The last state seen (see [`snapshot`]).
    seen: u64,
    /// A TCP socket (else UDP).
    tcp: bool,
    /// A listener's backlog entry: listen again on this endpoint when the
    /// half-open connection it held dies.
    relisten: Option<IpListenEndpoint>,
    /// A backlog entry's half-open connection: when it was first seen in
    /// `SynReceived` (monotonic ns; 0 when it is not).
    half_open_since: u64,
}

pub struct Stack {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    dev: NicDev,
    watches: Vec<Watch>,
    /// Handles whose file is gone, removed once their connection ends,
    /// or reset at their deadline (monotonic ns; a peer that never
    /// closes its side).
    orphans: Vec<(SocketHandle, u64)>,
    dhcp: Option<SocketHandle>,
}

/// The NIC as smoltcp's `Device`.
struct NicDev(alloc::boxed::Box<Nic>);

struct Rx<'a>(&'a mut cairn_drivers::virtio::net::Rx);
struct Tx<'a>(&'a mut cairn_drivers::virtio::net::Tx);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self.0.receive(f) {
            Ok(r) => r,
            Err(f) => f(&[]),
        }
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        match self.0.send(len, |b| (f.take().expect("tx"))(b)) {
            Some(r) => r,
            // No slot after all (`transmit` checked): the frame is built
            // and dropped, as a full queue on a real wire would.
            None => {
                let mut scratch = [0u8; cairn_drivers::virtio::net::MTU_FRAME];
                let n = len.min(scratch.len());
                (f.take().expect("tx"))(&mut scratch[..n])
            }
        }
    }
}

impl Device for NicDev {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        if !self.0.rx.pending() {
            return None;
        }
        Some((Rx(&mut self.0.rx), Tx(&mut self.0.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        self.0.tx.ready().then_some(Tx(&mut self.0.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = cairn_drivers::virtio::net::MTU_FRAME;
        c.max_burst_size = Some(cairn_drivers::virtio::net::RING / 2);
        c
    }
}

fn now() -> Instant {
    Instant::from_micros((crate::time::now_ns() / 1000) as i64)
}

/// Whether the machine has a network interface.
pub fn present() -> bool {
    PRESENT.load(Ordering::Acquire)
}

fn bh_poll(_: usize) {
    if let Some(n) = NIC_IRQ.get() {
        n.begin();
    }
    poll();
}

static NIC_IRQ: spin::Once<&'static cairn_drivers::virtio::net::NetIrq> = spin::Once::new();

/// Probes the first virtio-net function (boot, after the block devices).
/// Without one, nothing changes: socket calls fail with `ENETUNREACH`.
pub fn init() {
    let Some(f) = crate::pci::functions()
        .iter()
        .find(|f| cairn_drivers::virtio::net::matches(f))
    else {
        return;
    };
    let nic = match cairn_drivers::virtio::net::probe(f, bh_poll, 0) {
        Ok(n) => n,
        Err(e) => {
            crate::warn!("virtio-net {}: {e}", f.address);
            return;
        }
    };
    NIC_IRQ.call_once(|| nic.irq);
    let mac = nic.mac;
    bh_safe_alloc(|| {
        let mut dev = NicDev(nic);
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = crate::syscall::misc::random_u64();
        let mut iface = Interface::new(cfg, &mut dev, now());
        // IPv6: the link-local address of the MAC (EUI-64).
        let ll = Ipv6Address::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
            u16::from_be_bytes([mac[2], 0xff]),
            u16::from_be_bytes([0xfe, mac[3]]),
            u16::from_be_bytes([mac[4], mac[5]]),
        );
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv6(Ipv6Cidr::new(ll, 64)));
        });
        let stack = alloc::boxed::Box::new(Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            watches: Vec::new(),
            orphans: Vec::new(),
            dhcp: None,
        });
        *STACK.lock() = Some(stack);
    });
    crate::info!(
        "net: interface {} bytes, NIC {} bytes",
        core::mem::size_of::<Interface>(),
        core::mem::size_of::<Nic>()
    );
    PRESENT.store(true, Ordering::Release);
    crate::timer::every(10_000_000, poll);
}

/// Parses dotted IPv4 text.
pub fn parse_v4(s: &[u8]) -> Option<Ipv4Address> {
    let mut o = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for b in &mut o {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *b = core::str::from_utf8(p).ok()?.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Address::from(o))
}

/// How long a closed connection may take to finish (FIN-WAIT, LAST-ACK)
/// before it is reset, like Linux's `tcp_fin_timeout`.
const ORPHAN_NS: u64 = 60_000_000_000;

/// How long the boot waits for a DHCP lease before the program starts.
const DHCP_WAIT_NS: u64 = 10_000_000_000;

/// Sets the address from the manifest (`ipaddr`, `netmask`, `gateway`,
/// Nanos's names) or, without `ipaddr`, starts DHCP (kernel-lock, after
/// the root is mounted). A malformed value is an error for the boot log;
/// the interface then stays unconfigured.
pub fn configure(ipaddr: Option<&[u8]>, netmask: Option<&[u8]>, gateway: Option<&[u8]>) {
    if !present() {
        return;
    }
    let Some(ip) = ipaddr else {
        with(|s| {
            let h = s.sockets.add(dhcpv4::Socket::new());
            s.dhcp = Some(h);
        });
        crate::info!("net: DHCP");
        poll();
        // The program starts once the interface has an address, or after
        // DHCP_WAIT_NS without one (it then sees ENETUNREACH until DHCP
        // answers), as a program started at boot expects the network up.
        let until = crate::time::now_ns() + DHCP_WAIT_NS;
        while with(|s| s.ipv4().is_none()).unwrap_or(false) && crate::time::now_ns() < until {
            let _ = crate::sched::wait::sleep_until(crate::time::now_ns() + 20_000_000);
        }
        if with(|s| s.ipv4().is_none()).unwrap_or(true) {
            crate::warn!("net: no DHCP answer yet; starting the program anyway");
        }
        return;
    };
    let Some(ip) = parse_v4(ip) else {
        crate::warn!("net: bad ipaddr {:?}", core::str::from_utf8(ip));
        return;
    };
    let mask = netmask
        .and_then(parse_v4)
        .unwrap_or(Ipv4Address::new(255, 255, 255, 0));
    let prefix = u32::from_be_bytes(mask.octets()).leading_ones() as u8;
    let gw = gateway.and_then(parse_v4);
    with(|s| {
        s.iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(ip, prefix)));
        });
        if let Some(g) = gw {
            let _ = s.iface.routes_mut().add_default_ipv4_route(g);
        }
    });
    crate::info!("net: {ip}/{prefix} gateway {gw:?}");
}

/// Runs `f` on the stack under its lock (bh-safe allocation); `None`
/// without a NIC.
pub fn with<R>(f: impl FnOnce(&mut Stack) -> R) -> Option<R> {
    bh_safe_alloc(|| STACK.lock().as_mut().map(|s| f(s)))
}

/// Whether a socket's state changed in a way a waiter may care about.
/// `tcp`: its kind, found once by [`Stack::watch`] (each turn looks sockets
/// up by handle, never by a scan of the set).
fn snapshot(s: &smoltcp::iface::SocketSet<'_>, h: SocketHandle, tcp: bool) -> u64 {
    if tcp {
        let t = s.get::<tcp::Socket>(h);
        (t.state() as u64)
            | (t.recv_queue() as u64) << 8
            | (t.send_queue() as u64) << 32
            | u64::from(t.may_send()) << 62
            | u64::from(t.may_recv()) << 63
    } else {
        let u = s.get::<udp::Socket>(h);
        (u.recv_queue() as u64) | (u.send_queue() as u64) << 32 | u64::from(u.can_send()) << 63
    }
}

/// One turn of the stack (bh or kernel-lock): moves frames both ways,
/// runs TCP's timers, reaps finished orphans, restarts dead backlog
/// entries, then notifies every socket file whose state changed.
pub fn poll() {
    if !present() {
        return;
    }
    let woken: Vec<Arc<Shared>> = bh_safe_alloc(|| {
        let mut g = STACK.lock();
        let Some(s) = g.as_mut() else {
            return Vec::new();
        };
        let t = now();
        let now_ns = crate::time::now_ns();
        // Frame by frame, so that a listener whose backlog a burst of SYNs
        // filled listens again before the next frame ([`keep_listening`]).
        loop {
            match s.iface.poll_ingress_single(t, &mut s.dev, &mut s.sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    keep_listening(&mut s.sockets, &mut s.watches, now_ns);
                }
            }
        }
        s.iface.poll_egress(t, &mut s.dev, &mut s.sockets);
        if let Some(h) = s.dhcp {
            dhcp_event(s, h);
        }
        // Orphans: remove once their connection is over.
        let mut i = 0;
        while i < s.orphans.len() {
            let (h, deadline) = s.orphans[i];
            let t = s.sockets.get_mut::<tcp::Socket>(h);
            if now_ns >= deadline && t.state() != tcp::State::Closed {
                // Removed at the next turn, after the reset went out.
                t.abort();
                s.orphans[i].1 = u64::MAX;
                i += 1;
                continue;
            }
            let st = s.sockets.get::<tcp::Socket>(h).state();
            if matches!(st, tcp::State::Closed | tcp::State::TimeWait) {
                remove_socket(&mut s.sockets, h);
                s.orphans.swap_remove(i);
            } else {
                i += 1;
            }
        }
        let mut out = Vec::new();
        let Stack {
            sockets, watches, ..
        } = &mut **s;
        watches.retain_mut(|w| {
            let Some(file) = w.file.upgrade() else {
                return false;
            };
            let now = snapshot(sockets, w.handle, w.tcp);
            if now != w.seen {
                w.seen = now;
                out.push(file);
            }
            true
        });
        keep_listening(sockets, watches, now_ns);
        out
    });
    for f in &woken {
        f.ready.notify();
    }
    bh_safe_alloc(|| drop(woken));
}

/// Keeps every listener listening: a backlog entry whose connection died
/// (`Closed`) listens again; and since a SYN flood can leave every entry
/// holding a half-open connection (`SynReceived`) until its timeout, while
/// the listener refuses every new connection (smoltcp resets a SYN no
/// socket listens for), a listener none of whose entries listens gives up
/// the half-open connection it has held longest, without a word to its
/// peer (as Linux drops a SYN-RECV entry; Linux also keeps a longer SYN
/// queue, then SYN cookies), and listens on that entry again. Runs after
/// each frame that changed a socket and at the end of each turn.
fn keep_listening(sockets: &mut SocketSet<'static>, watches: &mut [Watch], now_ns: u64) {
    let mut endpoints: Vec<IpListenEndpoint> = Vec::new();
    for w in watches.iter_mut() {
        let Some(ep) = w.relisten else {
            continue;
        };
        let t = sockets.get_mut::<tcp::Socket>(w.handle);
        match t.state() {
            tcp::State::Closed => {
                let _ = t.listen(ep);
                w.half_open_since = 0;
            }
            tcp::State::SynReceived if w.half_open_since == 0 => w.half_open_since = now_ns.max(1),
            tcp::State::SynReceived => {}
            _ => w.half_open_since = 0,
        }
        if !endpoints.contains(&ep) {
            endpoints.push(ep);
        }
    }
    for ep in endpoints {
        let listening = watches.iter().any(|w| {
            w.relisten == Some(ep)
                && sockets.get::<tcp::Socket>(w.handle).state() == tcp::State::Listen
        });
        if listening {
            continue;
        }
        if let Some(oldest) = watches
            .iter_mut()
            .filter(|w| w.relisten == Some(ep) && w.half_open_since != 0)
            .min_by_key(|w| w.half_open_since)
        {
            let t = sockets.get_mut::<tcp::Socket>(oldest.handle);
            t.abort();
            let _ = t.listen(ep);
            oldest.half_open_since = 0;
        }
    }
}

fn dhcp_event(s: &mut Stack, h: SocketHandle) {
    let ev = s.sockets.get_mut::<dhcpv4::Socket>(h).poll();
    match ev {
        Some(dhcpv4::Event::Configured(c)) => {
            s.iface.update_ip_addrs(|a| {
                a.retain(|x| !matches!(x, IpCidr::Ipv4(_)));
                let _ = a.push(IpCidr::Ipv4(c.address));
            });
            if let Some(r) = c.router {
                let _ = s.iface.routes_mut().add_default_ipv4_route(r);
            }
            crate::info!("net: DHCP gave {} gateway {:?}", c.address, c.router);
        }
        Some(dhcpv4::Event::Deconfigured) => {
            s.iface
                .update_ip_addrs(|a| a.retain(|x| !matches!(x, IpCidr::Ipv4(_))));
            s.iface.routes_mut().remove_default_ipv4_route();
        }
        None => {}
    }
}

impl Stack {
    /// Watches `h` for `file` (its readiness changes notify it).
    pub fn watch(
        &mut self,
        h: SocketHandle,
        file: &Arc<Shared>,
        relisten: Option<IpListenEndpoint>,
    ) {
        let tcp = self
            .sockets
            .iter()
            .any(|(x, s)| x == h && matches!(s, smoltcp::socket::Socket::Tcp(_)));
        let seen = snapshot(&self.sockets, h, tcp);
        self.watches.retain(|w| w.handle != h);
        self.watches.push(Watch {
            handle: h,
            file: Arc::downgrade(file),
            seen,
            tcp,
            relisten,
            half_open_since: 0,
        });
    }

    /// Stops watching `h`.
    pub fn unwatch(&mut self, h: SocketHandle) {
        self.watches.retain(|w| w.handle != h);
    }

    /// Hands a closed file's connection to the stack: removed once over.
    pub fn orphan(&mut self, h: SocketHandle) {
        self.unwatch(h);
        self.orphans
            .push((h, crate::time::now_ns().saturating_add(ORPHAN_NS)));
    }

    /// Removes `h` now.
    pub fn remove(&mut self, h: SocketHandle) {
        self.unwatch(h);
        remove_socket(&mut self.sockets, h);
    }

    /// Whether a TCP port is in use by a socket in the set.
    pub fn tcp_port_used(&self, port: u16) -> bool {
        use smoltcp::socket::Socket;
        self.sockets.iter().any(|(_, s)| match s {
            Socket::Tcp(t) => {
                t.listen_endpoint().port == port
                    || t.local_endpoint().is_some_and(|e| e.port == port)
            }
            _ => false,
        })
    }

    /// Whether a UDP port is bound.
    pub fn udp_port_used(&self, port: u16) -> bool {
        use smoltcp::socket::Socket;
        self.sockets.iter().any(|(_, s)| match s {
            Socket::Udp(u) => u.endpoint().port == port,
            _ => false,
        })
    }

    /// The interface's first IPv4 address.
    pub fn ipv4(&self) -> Option<Ipv4Address> {
        self.iface.ipv4_addr()
    }

    /// A UDP socket with `bytes` of payload buffering each way; `None`
    /// when they do not fit the programs' buffer budget.
    pub fn new_udp(&mut self, bytes: usize) -> Option<SocketHandle> {
        if !charge_buffer(2 * bytes as u64) {
            return None;
        }
        let meta = 64;
        let rx = udp::PacketBuffer::new(
            alloc::vec![udp::PacketMetadata::EMPTY; meta],
            alloc::vec![0u8; bytes],
        );
        let tx = udp::PacketBuffer::new(
            alloc::vec![udp::PacketMetadata::EMPTY; meta],
            alloc::vec![0u8; bytes],
        );
        Some(self.sockets.add(udp::Socket::new(rx, tx)))
    }

    /// A TCP socket with the given buffers; `None` when they do not fit
    /// the programs' buffer budget.
    pub fn new_tcp(&mut self, rx: usize, tx: usize) -> Option<SocketHandle> {
        if !charge_buffer((rx + tx) as u64) {
            return None;
        }
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(alloc::vec![0u8; rx]),
            tcp::SocketBuffer::new(alloc::vec![0u8; tx]),
        );
        Some(self.sockets.add(s))
    }
}

/// Removes `h` from the set and gives its buffers back to the programs'
/// buffer budget (charged by [`Stack::new_tcp`] / [`Stack::new_udp`]).
fn remove_socket(sockets: &mut SocketSet<'static>, h: SocketHandle) {
    let bytes = match sockets.remove(h) {
        smoltcp::socket::Socket::Tcp(t) => t.recv_capacity() + t.send_capacity(),
        smoltcp::socket::Socket::Udp(u) => u.payload_recv_capacity() + u.payload_send_capacity(),
        _ => 0,
    };
    release_buffer(bytes as u64);
}

/// Counters for `/proc/cairn/kstats`-style reports: (frames received,
/// frames sent, frames dropped for a full transmit ring).
pub fn counters() -> Option<(u64, u64, u64)> {
    with(|s| (s.dev.0.rx.frames, s.dev.0.tx.frames, s.dev.0.tx.full))
}

/// An ephemeral port (49152..65535) not in use for `tcp` or UDP.
pub fn ephemeral(s: &Stack, tcp: bool) -> Option<u16> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for _ in 0..16384 {
        let p = 49152 + (NEXT.fetch_add(1, Ordering::Relaxed) % 16384) as u16;
        let used = if tcp {
            s.tcp_port_used(p)
        } else {
            s.udp_port_used(p)
        };
        if !used {
            return Some(p);
        }
    }
    None
}
